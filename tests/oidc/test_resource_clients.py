"""Which clients may get client credentials tokens for an API (RFC 8707 §2).

A resource server application lists the client applications that may get client
credentials tokens (RFC 6749 §4.4) for its resource identifiers (``resourceClients``,
``passport app add|update --resource-client``).  At the token endpoint's client
credentials grant, ``resource=X`` is granted only if the application serving X lists
the client; otherwise ``invalid_target`` — the very answer for an unknown resource, so
that no client learns which APIs exist.  None listed: no client gets one (the finding:
any confidential client could mint a token for any registered API, scope names being
global).  User-delegated grants (code, refresh, device) are not concerned: the user's
consent decides there."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlencode

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from oidc_support import KEK
from oidc_support import body
from oidc_support import ids
from oidc_support import rows
from passport.cli import cli
from passport.services import directory
from passport.storage.models import Application
from passport.storage.models import AuditEvent

from support import Harness
from support import PassportClient

API_A = "https://api-a.example.com"
API_B = "https://api-b.example.com"


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = f"{client_id}:{secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def setup(h: Harness) -> dict[str, tuple[str, str]]:
    """The finding's world: ApiA (``API_A``) lists no client; ApiB (``API_B``) lists
    Client2, registered with the scope ``orders:write`` meant for ApiB.  Credentials by
    name (Batch, the seeded service application, too)."""
    made: dict[str, tuple[str, str]] = {"Batch": (ids(h)["service_id"], ids(h)["service_secret"])}
    with h.app.services.db.session(write=True) as db, db.begin():
        client2, secret2 = directory.create_application(
            db, h.clock(), "Client2", scopes=["orders:write"]
        )
        made["Client2"] = (client2.client_id or "", secret2 or "")
        for name, uri in (("ApiA", API_A), ("ApiB", API_B)):
            app, secret = directory.create_application(db, h.clock(), name, resources=[uri])
            made[name] = (app.client_id or "", secret or "")
            if name == "ApiB":
                directory.set_resource_clients(db, app, [client2])
    return made


def machine_token(h: Harness, who: tuple[str, str], *resources: str) -> Any:
    pairs = [("grant_type", "client_credentials"), *(("resource", r) for r in resources)]
    return h.client.post(
        "/oauth2/token",
        data=urlencode(pairs),
        headers={**basic(*who), "Content-Type": "application/x-www-form-urlencoded"},
    )


def claims(jwt_token: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(jwt_token.split(".")[1] + "=="))  # type: ignore[no-any-return]


def refusal(answer: Any, value: str) -> tuple[int, str, str, str | None]:
    """A refusal with the resource value taken out: what compares equal for an unknown
    resource and one the client may not reach."""
    got = body(answer)
    return (
        answer.status_code,
        got["error"],
        got.get("error_description", "").replace(value, "X"),
        answer.headers.get("Cache-Control"),
    )


def update(h: Harness, api: str, clients: list[Application]) -> None:
    with h.app.services.db.session(write=True) as db, db.begin():
        app = directory.get_application(db, api)
        directory.set_resource_clients(db, app, [db.merge(c) for c in clients])


def app_named(h: Harness, name: str) -> Application:
    with h.app.services.db.session() as db:
        app = directory.get_application(db, name)
        db.expunge(app)
        return app


# -- the token endpoint -----------------------------------------------------------------


def test_a_listed_client_gets_a_token_for_the_api(h: Harness) -> None:
    made = setup(h)
    issued = machine_token(h, made["Client2"], API_B)
    assert issued.status_code == 200, issued.get_data(as_text=True)
    got = body(issued)
    assert claims(got["access_token"])["aud"] == API_B
    assert got["scope"] == "orders:write"
    seen = h.client.post(
        "/oauth2/introspect", data={"token": got["access_token"]}, headers=basic(*made["ApiB"])
    )
    assert body(seen)["active"] is True and body(seen)["aud"] == API_B


def test_an_unlisted_client_is_refused_as_for_an_unknown_resource(h: Harness) -> None:
    """The finding: Client2 asks for ApiA, which does not list it — refused, and the
    answer is the one for a resource that does not exist (no oracle)."""
    made = setup(h)
    refused = machine_token(h, made["Client2"], API_A)
    unknown = machine_token(h, made["Client2"], "https://api-c.example.com")
    assert refused.status_code == 400
    assert body(refused)["error"] == "invalid_target"
    assert refusal(refused, API_A) == refusal(unknown, "https://api-c.example.com")
    assert rows(h, "oauth_tokens") == 0


def test_one_unlisted_resource_refuses_the_whole_request(h: Harness) -> None:
    made = setup(h)
    refused = machine_token(h, made["Client2"], API_B, API_A)
    assert body(refused)["error"] == "invalid_target"
    assert rows(h, "oauth_tokens") == 0


def test_no_client_is_listed_by_default(h: Harness) -> None:
    """A new API lists nobody: not even the seeded service application gets a token."""
    made = setup(h)
    for who in ("Batch", "Client2", "ApiB"):
        assert body(machine_token(h, made[who], API_A))["error"] == "invalid_target", who


def test_without_resource_a_client_credentials_token_is_unchanged(h: Harness) -> None:
    made = setup(h)
    issued = body(machine_token(h, made["Client2"]))
    assert claims(issued["access_token"])["aud"] == made["Client2"][0]


def test_an_api_may_list_itself(h: Harness) -> None:
    made = setup(h)
    assert body(machine_token(h, made["ApiA"], API_A))["error"] == "invalid_target"
    update(h, "ApiA", [app_named(h, "ApiA")])
    issued = body(machine_token(h, made["ApiA"], API_A))
    assert claims(issued["access_token"])["aud"] == API_A


def test_removing_a_client_from_the_list_stops_new_tokens(h: Harness) -> None:
    made = setup(h)
    assert machine_token(h, made["Client2"], API_B).status_code == 200
    update(h, "ApiB", [])
    assert body(machine_token(h, made["Client2"], API_B))["error"] == "invalid_target"


def test_a_disabled_api_is_refused_even_to_a_listed_client(h: Harness) -> None:
    made = setup(h)
    with h.app.services.db.session(write=True) as db, db.begin():
        directory.get_application(db, "ApiB").enabled = False
    refused = machine_token(h, made["Client2"], API_B)
    unknown = machine_token(h, made["Client2"], "https://api-c.example.com")
    assert refusal(refused, API_B) == refusal(unknown, "https://api-c.example.com")


def test_deleting_the_client_application_deletes_its_listing(h: Harness) -> None:
    """ON DELETE CASCADE: no row is left to be inherited by a later application."""
    setup(h)
    assert rows(h, "resource_clients") == 1
    with h.app.services.db.session(write=True) as db, db.begin():
        directory.delete_application(db, directory.get_application(db, "Client2"), h.clock())
    assert rows(h, "resource_clients") == 0
    with h.app.services.db.session() as db:
        assert directory.get_application(db, "ApiB").resource_clients == []


def test_deleting_the_api_deletes_its_listing(h: Harness) -> None:
    setup(h)
    with h.app.services.db.session(write=True) as db, db.begin():
        directory.delete_application(db, directory.get_application(db, "ApiB"), h.clock())
    assert rows(h, "resource_clients") == 0


def test_user_delegated_grants_do_not_need_the_listing(h: Harness) -> None:
    """Only the client credentials grant asks the list: in the code flow the user's
    consent decides (tests/oidc/test_resource_indicators.py covers those flows)."""
    from oidc_support import PASSWORD
    from oidc_support import REDIRECT
    from oidc_support import first_party
    from oidc_support import query

    setup(h)
    h.login("alice", PASSWORD)
    first_party(h)
    pairs = [
        ("client_id", ids(h)["client_id"]),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", "openid"),
        ("state", "s1"),
        ("resource", API_A),
    ]
    answer = h.client.get("/oauth2/authorize?" + urlencode(pairs))
    code = query(answer)["code"]
    issued = h.client.post(
        "/oauth2/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
        headers=basic(ids(h)["client_id"], ids(h)["client_secret"]),
    )
    assert claims(body(issued)["access_token"])["aud"] == API_A


# -- administration: API ------------------------------------------------------------------


def signed_in(h: Harness, username: str, *rights: str) -> PassportClient:
    return h.administrator(username, *rights)


def listed(h: Harness, api: str) -> list[str]:
    with h.app.services.db.session() as db:
        return directory.get_application(db, api).resource_clients


def test_resource_clients_through_the_api(h: Harness) -> None:
    made = setup(h)
    client = signed_in(h, "root", "admin")
    batch, client2 = made["Batch"][0], made["Client2"][0]
    created = client.post(
        "/Applications/create",
        data={"name": "ApiC", "resources": "https://api-c.example.com", "resourceClients": batch},
    )
    assert created.status_code == 200, created.get_data(as_text=True)
    assert body(created)["Data"]["Application"]["ResourceClients"] == [batch]
    # duplicates count once; the list replaces
    changed = client.post(
        "/Applications/update",
        data={"application": "ApiA", "resourceClients": f"{client2} {batch},{client2}"},
    )
    assert changed.status_code == 200, changed.get_data(as_text=True)
    assert body(changed)["Data"]["Application"]["ResourceClients"] == sorted([batch, client2])
    shown = body(client.get("/Applications/get?application=ApiA"))["Data"]["Application"]
    assert shown["ResourceClients"] == sorted([batch, client2])
    assert machine_token(h, made["Client2"], API_A).status_code == 200
    # absent: unchanged; "": none
    kept = client.post("/Applications/update", data={"application": "ApiA", "description": "x"})
    assert body(kept)["Data"]["Application"]["ResourceClients"] == sorted([batch, client2])
    emptied = client.post(
        "/Applications/update", data={"application": "ApiA", "resourceClients": ""}
    )
    assert body(emptied)["Data"]["Application"]["ResourceClients"] == []
    assert body(machine_token(h, made["Client2"], API_A))["error"] == "invalid_target"


def hostile(h: Harness, made: dict[str, tuple[str, str]]) -> dict[str, tuple[str, int]]:
    """Values of ``resourceClients`` refused, with their status."""
    with h.app.services.db.session(write=True) as db, db.begin():
        passport = db.get(Application, 1)
        assert passport is not None
        passport.client_id = passport.client_id or "passport-itself"
        passport_id = passport.client_id
        spa, _ = directory.create_application(db, h.clock(), "Spa2", confidential=False)
        spa_id = spa.client_id or ""
    return {
        "unknown client id": ("no-such-client", 404),
        "an application's name": ("ApiB", 404),
        "an application's numeric id": ("1", 404),
        "the Passport application": (passport_id, 400),
        "a public client": (spa_id, 400),
        "unicode": ("cl\u00efent-\u2170d", 404),
        "sql": ("' OR '1'='1", 404),
        "long": ("a" * 500, 404),
        "too many": (" ".join([made["Batch"][0]] + [f"c{i}" for i in range(100)]), 400),
    }


def test_hostile_resource_clients_are_refused_through_the_api(h: Harness) -> None:
    made = setup(h)
    client = signed_in(h, "root", "admin")
    for label, (value, status) in hostile(h, made).items():
        for path, params in (
            ("/Applications/update", {"application": "ApiA"}),
            ("/Applications/create", {"name": "ApiC"}),
        ):
            answer = client.post(path, data={**params, "resourceClients": value})
            assert answer.status_code == status, (label, path, answer.get_data(as_text=True))
            problem = body(answer)["ClientExceptions"][0]
            assert problem["Source"] == "resourceClients", (label, problem)
    assert listed(h, "ApiA") == []
    assert rows(h, "resource_clients") == 1  # ApiB's, from setup
    with h.app.services.db.session() as db:
        assert "ApiC" not in db.scalars(select(Application.name)).all()
    huge = client.post(
        "/Applications/update", data={"application": "ApiA", "resourceClients": "a" * 9000}
    )
    assert huge.status_code == 400


def test_a_delegate_may_list_clients_but_not_on_passport(h: Harness) -> None:
    """The escalation rule: an ``apps:write`` delegate may list a client on an ordinary
    API, not change the Passport application (only ``admin``), nor list Passport."""
    made = setup(h)
    delegate = signed_in(h, "deployer", "apps:write", "apps:read")
    ok = delegate.post(
        "/Applications/update", data={"application": "ApiA", "resourceClients": made["Batch"][0]}
    )
    assert ok.status_code == 200, ok.get_data(as_text=True)
    on_passport = delegate.post(
        "/Applications/update",
        data={"application": "Passport", "resourceClients": made["Batch"][0]},
    )
    assert on_passport.status_code == 403
    assert listed(h, "Passport") == []
    passport_id = hostile(h, made)["the Passport application"][0]
    as_client = delegate.post(
        "/Applications/update", data={"application": "ApiA", "resourceClients": passport_id}
    )
    assert as_client.status_code in (400, 403)
    assert listed(h, "ApiA") == [made["Batch"][0]]


def test_the_change_is_audited(h: Harness) -> None:
    made = setup(h)
    client = signed_in(h, "root", "admin")
    answer = client.post(
        "/Applications/update", data={"application": "ApiA", "resourceClients": made["Batch"][0]}
    )
    assert answer.status_code == 200
    with h.app.services.db.session() as db:
        details = db.scalars(
            select(AuditEvent.detail).where(AuditEvent.event == "app_update")
        ).all()
    assert any("resourceClients" in d for d in details), details


# -- administration: CLI ------------------------------------------------------------------


def test_resource_clients_through_the_cli(h: Harness) -> None:
    made = setup(h)
    env = {"PASSPORT_PUBLIC_URL": h.settings.public_url, "PASSPORT_KEY_ENCRYPTION_KEY": KEK}

    def run(*args: str) -> Any:
        return CliRunner().invoke(cli, [*args, "--database-url", h.settings.database_url], env=env)

    batch, client2 = made["Batch"][0], made["Client2"][0]
    added = run(
        "app", "add", "ApiC", "--resource", "https://api-c.example.com",
        "--resource-client", batch, "--json",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert json.loads(added.output)[0]["ResourceClients"] == [batch]
    changed = run("app", "update", "ApiA", "--resource-client", client2, "--resource-client", batch)
    assert changed.exit_code == 0, changed.output
    assert json.loads(run("app", "show", "ApiA", "--json").output)[0]["ResourceClients"] == sorted(
        [batch, client2]
    )
    assert machine_token(h, made["Client2"], API_A).status_code == 200
    for label, (value, _) in hostile(h, made).items():
        if label == "too many":
            args = [a for c in value.split() for a in ("--resource-client", c)]
        else:
            args = ["--resource-client", value]
        refused = run("app", "update", "ApiA", *args)
        assert refused.exit_code == 1, (label, refused.output)
        assert "Traceback" not in refused.output
    assert listed(h, "ApiA") == sorted([batch, client2])
    assert run("app", "update", "ApiA", "--no-resource-clients").exit_code == 0
    assert listed(h, "ApiA") == []
    both = run("app", "update", "ApiA", "--no-resource-clients", "--resource-client", batch)
    assert both.exit_code == 2
    assert body(machine_token(h, made["Client2"], API_A))["error"] == "invalid_target"


@pytest.mark.parametrize("door", ["api", "cli"])
def test_unknown_client_names_the_setting(h: Harness, door: str) -> None:
    """The refusal says which setting and which value, not a stack trace or SQL."""
    setup(h)
    if door == "api":
        client = signed_in(h, "root", "admin")
        answer = client.post(
            "/Applications/update", data={"application": "ApiA", "resourceClients": "ghost"}
        )
        text = answer.get_data(as_text=True)
    else:
        env = {"PASSPORT_PUBLIC_URL": h.settings.public_url, "PASSPORT_KEY_ENCRYPTION_KEY": KEK}
        url = h.settings.database_url
        text = (
            CliRunner()
            .invoke(
                cli,
                ["app", "update", "ApiA", "--resource-client", "ghost", "--database-url", url],
                env=env,
            )
            .output
        )
    assert "ghost" in text and "SELECT" not in text and "Traceback" not in text


def test_removing_a_client_revokes_its_tokens_for_the_api(h: Harness) -> None:
    """Taken off the list through the administration: the client's client credentials
    tokens for the API are inactive at once; another listed client's and the client's
    own token without resource stay active."""
    made = setup(h)
    client = signed_in(h, "root", "admin")
    both = f"{made['Client2'][0]} {made['Batch'][0]}"
    listed_both = client.post(
        "/Applications/update", data={"application": "ApiB", "resourceClients": both}
    )
    assert listed_both.status_code == 200
    for_api = body(machine_token(h, made["Client2"], API_B))["access_token"]
    batch_for_api = body(machine_token(h, made["Batch"], API_B))["access_token"]
    plain = body(machine_token(h, made["Client2"]))["access_token"]

    def active(value: str, as_: tuple[str, str]) -> bool:
        seen = h.client.post("/oauth2/introspect", data={"token": value}, headers=basic(*as_))
        return bool(body(seen)["active"])

    assert active(for_api, made["ApiB"])
    removed = client.post(
        "/Applications/update",
        data={"application": "ApiB", "resourceClients": made["Batch"][0]},
    )
    assert removed.status_code == 200
    assert not active(for_api, made["ApiB"])
    assert not active(for_api, made["Client2"])
    assert active(batch_for_api, made["ApiB"])
    assert active(plain, made["Client2"])
    assert body(machine_token(h, made["Client2"], API_B))["error"] == "invalid_target"
