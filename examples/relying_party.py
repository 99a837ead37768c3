"""An example application that signs its users in through Passport (OpenID Connect).

Run next to Passport (see the README):

    PASSPORT_URL=http://127.0.0.1:8000 CLIENT_ID=... CLIENT_SECRET=... \\
        .venv/bin/python examples/relying_party.py --port 5000

It is a plain WSGI app with Authlib's OAuth 2 client: "/" says who is signed in,
"/signin" starts the code flow with PKCE ("/signin?acr_values=phr" asks for a passkey,
"?acr_values=urn:passport:acr:mfa" for a second factor: Passport steps the sign-in up),
"/callback" finishes it (checking the ID token's signature, issuer, audience and nonce;
"/" shows the token's ``acr`` and ``amr``: how the user signed in, and the user's
permissions in this application, asked of Passport server to server by
``Client/listPermissions`` with the client's credentials), "/signout" ends the Passport
session too (RP-initiated logout), and "/backchannel-logout" receives Passport's
logout tokens, so signing out anywhere signs the user out here too.
"""

from __future__ import annotations

import argparse
import html
import os
import secrets
from typing import Any
from wsgiref.simple_server import make_server

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey
from authlib.jose import jwt
from werkzeug import Request
from werkzeug import Response

PASSPORT = os.environ.get("PASSPORT_URL", "http://127.0.0.1:8000").rstrip("/")
CLIENT_ID = os.environ.get("CLIENT_ID", "")
CLIENT_SECRET = os.environ.get("CLIENT_SECRET", "")
sessions: dict[str, dict[str, Any]] = {}  # this example keeps its sessions in memory


def app(environ: dict[str, Any], start_response: Any) -> Any:
    request = Request(environ)
    sid = request.cookies.get("rp_session") or secrets.token_urlsafe(16)
    state = sessions.setdefault(sid, {})
    meta = requests.get(f"{PASSPORT}/.well-known/openid-configuration", timeout=10).json()
    me = f"{request.host_url.rstrip('/')}"
    client = OAuth2Session(
        CLIENT_ID,
        CLIENT_SECRET,
        scope="openid profile email",
        redirect_uri=f"{me}/callback",
        code_challenge_method="S256",
    )
    if request.path == "/signin":
        state["verifier"], state["nonce"] = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
        state["acr_values"] = request.args.get("acr_values", "")
        extra = {"acr_values": state["acr_values"]} if state["acr_values"] else {}
        uri, state["state"] = client.create_authorization_url(
            meta["authorization_endpoint"],
            code_verifier=state["verifier"],
            nonce=state["nonce"],
            **extra,
        )
        response = Response(status=302, headers={"Location": uri})
    elif request.path == "/callback":
        token = client.fetch_token(
            meta["token_endpoint"],
            authorization_response=request.url,
            state=state.get("state"),
            code_verifier=state.get("verifier"),
        )
        keys = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
        claims = jwt.decode(
            token["id_token"],
            keys,
            claims_options={
                "iss": {"essential": True, "value": meta["issuer"]},
                "aud": {"essential": True, "value": CLIENT_ID},
                "nonce": {"essential": True, "value": state.get("nonce")},
            },
        )
        claims.validate()
        state["user"], state["id_token"] = claims["preferred_username"], token["id_token"]
        state["sub"], state["acr"] = claims["sub"], claims.get("acr", "")
        state["amr"] = " ".join(claims.get("amr", []))
        granted = requests.get(
            f"{PASSPORT}/Client/listPermissions",
            params={"username": state["user"]},
            auth=(CLIENT_ID, CLIENT_SECRET),
            timeout=10,
        ).json()
        state["permissions"] = " ".join(sorted(granted["Data"]["Permissions"] or []))
        response = Response(status=302, headers={"Location": "/"})
    elif request.path == "/backchannel-logout" and request.method == "POST":
        keys = JsonWebKey.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
        claims = jwt.decode(
            request.form.get("logout_token", ""),
            keys,
            claims_options={
                "iss": {"essential": True, "value": meta["issuer"]},
                "aud": {"essential": True, "value": CLIENT_ID},
                "events": {"essential": True},
            },
        )
        claims.validate()
        for other in sessions.values():
            if other.get("sub") == claims["sub"]:
                other.clear()
        return Response(status=200)(environ, start_response)
    elif request.path == "/signout":
        hint = state.pop("id_token", "")
        state.pop("user", None)
        target = (
            f"{meta['end_session_endpoint']}?client_id={CLIENT_ID}"
            f"&post_logout_redirect_uri={me}/&id_token_hint={hint}"
        )
        response = Response(status=302, headers={"Location": target})
    elif "user" in state:
        body = (
            f"<h1>Signed in as <span id=user>{html.escape(state['user'])}</span></h1>"
            f"<p>How: <span id=acr>{html.escape(state['acr'])}</span>"
            f" (<span id=amr>{html.escape(state['amr'])}</span>)</p>"
            f"<p>Permissions here: <span id=permissions>{html.escape(state['permissions'])}"
            "</span></p>"
            "<p><a href=/signout>Sign out</a></p>"
        )
        response = Response(body, content_type="text/html")
    else:
        response = Response(
            "<h1>Not signed in</h1><p><a id=signin href=/signin>Sign in with Passport</a></p>",
            content_type="text/html",
        )
    response.set_cookie("rp_session", sid, httponly=True, samesite="Lax")
    return response(environ, start_response)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Example Passport relying party")
    parser.add_argument("--port", type=int, default=5000)
    port = parser.parse_args().port
    print(f"example app on http://127.0.0.1:{port}", flush=True)
    make_server("127.0.0.1", port, app).serve_forever()
