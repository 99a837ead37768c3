"""``/forward-auth`` in process: what each proxy sends, who is let through, what is refused.

The real nginx and Caddy in front of a live Passport are ``tests/test_forward_auth_live.py``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import select
from werkzeug import Response
from werkzeug.test import EnvironBuilder

from passport.services import forward_auth
from passport.storage.models import Application
from passport.storage.models import ForwardAuthHost

from support import STRONG
from support import Harness

PROXY = {"REMOTE_ADDR": "10.0.0.5"}
STRANGER = {"REMOTE_ADDR": "203.0.113.9"}
HOST = "app.example.test"
# What a header value can carry through WSGI (latin-1, no line break).
HEADER_CHARS = st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x85")


@pytest.fixture
def site(factory: Any) -> dict[str, Any]:
    """A Passport with a proxy at 10.0.0.5, an application guarding HOST, a user 'bob'
    (in group 'staff', holding nothing), an administrator 'root'."""
    h: Harness = factory("sqlite", trusted_proxies="10.0.0.0/24")
    root = h.administrator("root", "admin")
    made = root.post(
        "/Applications/create",
        data={
            "name": "wiki",
            "forwardAuthHosts": f"{HOST}, other.example.test:8443",
            "forwardAuthRules": "/admin/* wiki-admin\n/admin-open /public-ish",
        },
    )
    assert made.status_code == 200, made.get_data(as_text=True)
    assert (
        root.post(
            "/Applications/addPermission", data={"application": "wiki", "name": "wiki-admin"}
        ).status_code
        == 200
    )
    assert h.register("bob", displayName="Bób Ünïcode").status_code == 200
    assert root.post("/Groups/create", data={"name": "staff"}).status_code == 200
    assert (
        root.post("/Groups/addMember", data={"group": "staff", "username": "bob"}).status_code
        == 200
    )
    bob = h.new_client()
    assert (
        bob.post("/Account/login", data={"username": "bob", "password": STRONG}).status_code == 200
    )
    return {"h": h, "root": root, "bob": bob}


def traefik(
    client: Any, uri: str = "/", host: str = HOST, env: dict[str, str] = PROXY, **extra: str
) -> Any:
    headers = {
        "X-Forwarded-Method": "GET",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": host,
        "X-Forwarded-Uri": uri,
        **extra,
    }
    return client.get("/forward-auth", headers=headers, environ_base=env)


def nginx(client: Any, url: str, env: dict[str, str] = PROXY) -> Any:
    return client.get(
        "/forward-auth",
        headers={"X-Original-URL": url, "X-Original-Method": "GET"},
        environ_base=env,
    )


def test_signed_in_user_gets_identity_headers(site: dict[str, Any]) -> None:
    answer = traefik(site["bob"], "/page?x=1")
    assert answer.status_code == 200
    assert answer.headers["Remote-User"] == "bob"
    # Non-ASCII goes out per RFC 8187, never raw.
    assert answer.headers["Remote-Name"] == "UTF-8''B%C3%B3b%20%C3%9Cn%C3%AFcode"
    assert answer.headers["Remote-Groups"] == "staff"
    assert answer.headers["Cache-Control"] == "no-store"
    assert nginx(site["bob"], f"https://{HOST}/x").status_code == 200


def test_registered_host_with_port_and_bare_host_any_port(site: dict[str, Any]) -> None:
    assert traefik(site["bob"], host=f"{HOST}:8080").status_code == 200
    assert traefik(site["bob"], host="other.example.test:8443").status_code == 200
    assert traefik(site["bob"], host="other.example.test:9999").status_code == 403


def test_no_session_nginx_401_traefik_redirect_to_login(site: dict[str, Any]) -> None:
    anonymous = site["h"].new_client()
    refused = nginx(anonymous, f"https://{HOST}/a")
    assert refused.status_code == 401
    assert urlsplit(refused.headers["Location"]).path == "/login"
    answer = traefik(anonymous, "/deep/page?q=1")
    assert answer.status_code == 302
    location = urlsplit(answer.headers["Location"])
    assert location.path == "/login"
    next_path = parse_qs(location.query)["next"][0]
    assert next_path.startswith("/forward-auth/return?rd=")
    # The way back leads to the page asked for, once signed in.
    back = site["bob"].get(next_path)
    assert back.status_code == 302
    assert back.headers["Location"] == f"https://{HOST}/deep/page?q=1"
    # Not signed in, the way back goes through the login page.
    again = anonymous.get(next_path)
    assert again.status_code == 302 and again.headers["Location"].startswith("/login?next=")


def test_identity_headers_never_come_from_the_client(site: dict[str, Any]) -> None:
    anonymous = site["h"].new_client()
    answer = traefik(anonymous, **{"Remote-User": "root"})
    assert answer.status_code == 302 and "Remote-User" not in answer.headers
    answer = traefik(site["bob"], **{"Remote-User": "root", "Remote-Groups": "admins"})
    assert answer.headers["Remote-User"] == "bob"
    assert answer.headers["Remote-Groups"] == "staff"


def test_only_trusted_proxies_are_answered(site: dict[str, Any]) -> None:
    assert traefik(site["bob"], env=STRANGER).status_code == 400
    assert nginx(site["bob"], f"https://{HOST}/", env=STRANGER).status_code == 400
    assert site["bob"].get("/forward-auth", environ_base=STRANGER).status_code == 400


ENCODED_ADMIN_PATHS = (
    "/%61dmin/x",
    "/admin%2fx",
    "/admin%2Fx",
    "/%2e/admin/x",
    "/./admin/x",
    "/x/../admin/x",
    "/.%2e/admin/x",
    "/%2561dmin/x",
    "/ADMIN/x",
    "/Admin/X",
    "/admin;jsessionid=1/x",
    "//admin/x",
    "/admin\\x",
    # Second review: what trimming, Windows and Unicode-normalising upstreams route to
    # /admin as well.
    "/admin%20",
    "/admin%20/x",
    "/%20admin/x",
    "/admin./",
    "/admin.",
    "/admin%2e/x",
    "/admin.%20./x",
    "/%ef%bd%81dmin/",
    "/%ef%bc%8fadmin/x",
    # Third review: what Java's equalsIgnoreCase and routers that drop format
    # characters read as /admin.
    "/adm%C4%B1n/x",
    "/adm%C4%B0n/x",
    "/ADM%C4%B0N/x",
    "/ad%C2%ADmin/x",
    "/%E2%80%8Badmin/x",
    "/%EF%BB%BFadmin/x",
)

# No rule can say what these name: refused on a site with rules, whoever asks.
UNREADABLE_PATHS = ("/%ff/x", "/admin%00", "/admin%09/x", "/x%0d%0a/y", "/.../x", "/%20./x")


@pytest.mark.parametrize("uri", ENCODED_ADMIN_PATHS)
def test_a_path_rule_holds_however_the_path_is_spelt(site: dict[str, Any], uri: str) -> None:
    """Review: the rule compared the raw request URI, which the proxies pass on and the
    application decodes — ``/%61dmin/x`` reached ``/admin/x`` past ``/admin/*``."""
    assert forward_auth.rule_for(["/admin/* wiki-admin"], forward_auth.canonical_path(uri) or "")
    answer = traefik(site["bob"], uri)
    assert answer.status_code in (400, 403), (uri, answer.status_code)
    assert "Remote-User" not in answer.headers


@pytest.mark.parametrize("uri", UNREADABLE_PATHS)
def test_a_path_no_one_can_read_is_refused_where_rules_apply(
    site: dict[str, Any], uri: str
) -> None:
    assert forward_auth.canonical_path(uri) is None
    assert traefik(site["bob"], uri).status_code == 403


def test_paths_of_other_pages_stay_as_they_are() -> None:
    """The canonical form maps more spellings onto a guarded name, never a page's own
    name away: Unicode, inner spaces and dots stay."""
    assert forward_auth.canonical_path("/wiki/Z%C3%BCrich") == "/wiki/zürich"
    assert forward_auth.canonical_path("/my%20files/a.b.txt") == "/my files/a.b.txt"
    assert forward_auth.canonical_path("/v1.2/") == "/v1.2/"


@pytest.mark.parametrize("uri", ["/x#/../admin/", "/public#x", "/admin#"])
def test_a_fragment_in_the_request_is_refused(site: dict[str, Any], uri: str) -> None:
    """Second review: nginx passes ``#`` on as it came; the check read ``/x#/../admin/``
    as ``/x`` while an upstream that keeps it routed ``/admin/``."""
    assert traefik(site["bob"], uri).status_code == 403
    assert nginx(site["bob"], f"https://{HOST}{uri}").status_code == 403


def test_path_rule_needs_its_permission_first_match_wins(site: dict[str, Any]) -> None:
    bob, root = site["bob"], site["root"]
    assert traefik(bob, "/admin/users").status_code == 403
    # "/admin/*" guards "/admin" itself too (review: an upstream routes both alike).
    assert traefik(bob, "/admin").status_code == 403
    assert traefik(bob, "/adminx").status_code == 200
    granted = root.post(
        "/Grants/grant", data={"application": "wiki", "permission": "wiki-admin", "username": "bob"}
    )
    assert granted.status_code == 200
    assert traefik(bob, "/admin/users?x=/y").status_code == 200
    # The query is not the path: "/admin-open" matches its rule exactly only.
    assert traefik(bob, "/admin-open?x").status_code == 403


def test_sign_in_policy_groups_is_admission(site: dict[str, Any]) -> None:
    h, bob = site["h"], site["bob"]
    with h.app.services.db.session(write=True) as db, db.begin():
        app = db.query(Application).filter_by(name="wiki").one()
        app.sign_in_policy = "groups"
    assert traefik(bob).status_code == 403  # no group listed: nobody
    from passport.storage.models import ApplicationSignInGroup
    from passport.storage.models import Group

    with h.app.services.db.session(write=True) as db, db.begin():
        app = db.query(Application).filter_by(name="wiki").one()
        staff = db.query(Group).filter_by(name="staff").one()
        db.add(ApplicationSignInGroup(application_id=app.id, group_id=staff.id))
    assert traefik(bob).status_code == 200
    assert (
        site["root"]
        .post("/Groups/removeMember", data={"group": "staff", "username": "bob"})
        .status_code
        == 200
    )
    assert traefik(bob).status_code == 403  # at once: nothing cached


def test_disabled_user_or_application_and_signed_out(site: dict[str, Any]) -> None:
    h, bob, root = site["h"], site["bob"], site["root"]
    assert (
        root.post(
            "/Applications/setEnabled", data={"application": "wiki", "enabled": "false"}
        ).status_code
        == 200
    )
    assert traefik(bob).status_code == 403
    assert (
        root.post(
            "/Applications/setEnabled", data={"application": "wiki", "enabled": "true"}
        ).status_code
        == 200
    )
    assert (
        root.post("/Users/setDisabled", data={"username": "bob", "disabled": "true"}).status_code
        == 200
    )
    assert traefik(bob).status_code == 302
    assert (
        root.post("/Users/setDisabled", data={"username": "bob", "disabled": "false"}).status_code
        == 200
    )
    carol = h.new_client()
    assert h.register("carol").status_code == 200
    assert (
        carol.post("/Account/login", data={"username": "carol", "password": STRONG}).status_code
        == 200
    )
    assert traefik(carol).status_code == 200
    assert carol.post("/Account/logout").status_code == 200
    assert traefik(carol).status_code == 302


def test_mfa_policy_is_honoured(site: dict[str, Any]) -> None:
    assert (
        site["root"]
        .post("/Applications/update", data={"application": "wiki", "mfaPolicy": "mfa"})
        .status_code
        == 200
    )
    answer = traefik(site["bob"])
    assert answer.status_code == 403
    assert "second factor" in answer.get_data(as_text=True)


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Forwarded-Host": "evil.example"},
        {"X-Forwarded-Host": f"{HOST}, evil.example"},
        {"X-Forwarded-Host": f"{HOST}\tX: y"},
        {"X-Forwarded-Host": "[::1]:80"},
        {"X-Forwarded-Host": "*.example.test"},
        {"X-Forwarded-Host": "é" * 300},
        {"X-Forwarded-Proto": "javascript"},
        {"X-Forwarded-Proto": ""},
        {"X-Forwarded-Uri": "//evil.example/"},
        {"X-Forwarded-Uri": "http://evil.example/"},
        {"X-Forwarded-Uri": "/a b"},
        {"X-Forwarded-Uri": "/" + "a" * 5000},
        {"X-Forwarded-Method": "G(E)T"},
        {"X-Forwarded-Method": ""},
    ],
)
def test_hostile_forwarded_headers_refused(site: dict[str, Any], headers: dict[str, str]) -> None:
    base = {
        "X-Forwarded-Method": "GET",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": HOST,
        "X-Forwarded-Uri": "/",
    }
    answer = site["bob"].get("/forward-auth", headers={**base, **headers}, environ_base=PROXY)
    assert answer.status_code == 403
    assert "Remote-User" not in answer.headers


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "//evil.example/",
        "https://evil.example/",
        f"https://user@{HOST}/",
        f"https://{HOST}:99999/",
        "https://[::1]/",
        "",
        "https://" + "a" * 300 + ".test/",
    ],
)
def test_hostile_original_url_refused(site: dict[str, Any], url: str) -> None:
    answer = nginx(site["bob"], url)
    assert answer.status_code == 403
    assert "Remote-User" not in answer.headers


@pytest.mark.parametrize(
    "rd",
    [
        "https://evil.example/",
        f"https://{HOST}.evil.example/",
        f"https://evil.example/?{HOST}",
        f"//{HOST}/",
        f"javascript://{HOST}/%0aalert(1)",
        f"https://{HOST}@evil.example/",
        f"https://evil.example\\@{HOST}/",
        "/account",
        "",
    ],
)
def test_open_redirect_attempts_refused(site: dict[str, Any], rd: str) -> None:
    answer = site["bob"].get("/forward-auth/return", query_string={"rd": rd})
    assert answer.status_code == 400
    assert "Location" not in answer.headers


def test_login_next_is_still_a_passport_path(site: dict[str, Any]) -> None:
    from passport.pages.login import safe_next

    assert safe_next(f"https://{HOST}/") == "/account"


@hsettings(
    max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)
@given(
    host=st.text(HEADER_CHARS, max_size=80),
    uri=st.text(HEADER_CHARS, max_size=80),
    proto=st.text(HEADER_CHARS, max_size=10),
    rd=st.text(max_size=80),
)
def test_property_never_500_never_identity_for_strangers(
    site: dict[str, Any], host: str, uri: str, proto: str, rd: str
) -> None:
    headers = {
        "X-Forwarded-Method": "GET",
        "X-Forwarded-Proto": proto,
        "X-Forwarded-Host": host,
        "X-Forwarded-Uri": uri,
    }
    answer = site["bob"].get("/forward-auth", headers=headers, environ_base=PROXY)
    assert answer.status_code in (200, 403)
    if answer.status_code == 200:
        assert forward_auth.normalise_host(headers["X-Forwarded-Host"]).split(":")[0] in (
            HOST,
            "other.example.test",
        )
    back = site["bob"].get("/forward-auth/return", query_string={"rd": rd})
    assert back.status_code in (302, 400)
    if back.status_code == 302:
        assert urlsplit(back.headers["Location"]).hostname in (HOST, "other.example.test")


# -- registration ------------------------------------------------------------------------
def test_registration_normalises_and_shows(site: dict[str, Any]) -> None:
    root = site["root"]
    answer = root.post(
        "/Applications/update",
        data={
            "application": "wiki",
            "forwardAuthHosts": "Bücher.Example.TEST, APP.example.test:0443",
        },
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    shown = root.get("/Applications/get", query_string={"application": "wiki"}).get_json()
    assert shown["Data"]["Application"]["ForwardAuthHosts"] == [
        "app.example.test:443",
        "xn--bcher-kva.example.test",
    ]
    assert shown["Data"]["Application"]["ForwardAuthRules"] == [
        "/admin/* wiki-admin",
        "/admin-open /public-ish",
    ]


@pytest.mark.parametrize(
    "hosts", [HOST, f"{HOST}:8443", "other.example.test", "other.example.test:9000"]
)
def test_a_host_is_one_applications(site: dict[str, Any], hosts: str) -> None:
    """Second review: one host name, one application, whatever the ports (Caddy and
    Traefik match a site without its port, so the client's Host header picked the rules
    of ``site:8443``'s application)."""
    root = site["root"]
    answer = root.post("/Applications/create", data={"name": "other", "forwardAuthHosts": hosts})
    assert answer.status_code == 409
    assert "another application" in answer.get_data(as_text=True)
    assert root.get("/Applications/get", query_string={"application": "other"}).status_code == 404


def test_the_nginx_form_answers_no_cookie(site: dict[str, Any]) -> None:
    """Third review: nginx ignores the answer's Cookie, and a copy of big cookies made its
    16 KiB buffer overflow (a 500)."""
    site["bob"].set_cookie("theme", "dark")
    answer = nginx(site["bob"], f"https://{HOST}/x")
    assert answer.status_code == 200
    assert "Cookie" not in answer.headers
    assert traefik(site["bob"], "/x").headers["Cookie"] == "theme=dark"


def test_two_port_registrations_of_one_name_admit_no_one(site: dict[str, Any]) -> None:
    """Third review: the wiki has other.example.test:8443; rows from before the rule give
    another application :9000 of the same name — neither port is then believed."""
    h, root = site["h"], site["root"]
    assert traefik(site["bob"], "/", host="other.example.test:8443").status_code == 200
    assert root.post("/Applications/create", data={"name": "other"}).status_code == 200
    with h.app.services.db.session(write=True) as db, db.begin():
        other = db.scalars(select(Application).where(Application.name == "other")).one()
        db.add(ForwardAuthHost(application_id=other.id, host="other.example.test:9000"))
    for port in (8443, 9000):
        answer = traefik(site["bob"], "/", host=f"other.example.test:{port}")
        assert answer.status_code == 403, port


def test_two_applications_for_one_host_name_admit_no_one(site: dict[str, Any]) -> None:
    """Rows registered before the rule above: neither application's rules can be told
    to hold, so the check lets no one in."""
    h, root = site["h"], site["root"]
    made = root.post("/Applications/create", data={"name": "other"})
    assert made.status_code == 200
    with h.app.services.db.session(write=True) as db, db.begin():
        other = db.scalars(select(Application).where(Application.name == "other")).one()
        db.add(ForwardAuthHost(application_id=other.id, host=f"{HOST}:9000"))
    assert traefik(site["bob"], "/", host=f"{HOST}:9000").status_code == 403
    assert traefik(site["bob"], "/", host=HOST).status_code == 200  # the wiki's alone


@pytest.mark.parametrize(
    "field,value",
    [
        ("forwardAuthHosts", "*.example.test"),
        ("forwardAuthHosts", "https://app.example.test/"),
        ("forwardAuthHosts", "app.example.test:0"),
        ("forwardAuthHosts", "a..b"),
        ("forwardAuthHosts", "x" * 70 + ".test"),
        ("forwardAuthHosts", "app.example.test/<script>"),
        ("forwardAuthRules", "admin/* admin"),
        ("forwardAuthRules", "/admin/*"),
        ("forwardAuthRules", "/a*b admin"),
        ("forwardAuthRules", "/admin/* admin extra"),
        ("forwardAuthRules", "/é admin"),
        # Third review: rules as no decoded path is written never matched.
        ("forwardAuthRules", "/%61dmin/* admin"),
        ("forwardAuthRules", "/admin./* admin"),
        ("forwardAuthRules", "/a//b admin"),
        ("forwardAuthRules", "/a/../admin/* admin"),
    ],
)
def test_bad_registration_is_400_nothing_changed(
    site: dict[str, Any], field: str, value: str
) -> None:
    root = site["root"]
    before = root.get("/Applications/get", query_string={"application": "wiki"}).get_json()
    answer = root.post("/Applications/update", data={"application": "wiki", field: value})
    assert answer.status_code == 400, answer.get_data(as_text=True)
    after = root.get("/Applications/get", query_string={"application": "wiki"}).get_json()
    assert before == after


def test_registration_needs_apps_write(site: dict[str, Any]) -> None:
    answer = site["bob"].post(
        "/Applications/update", data={"application": "wiki", "forwardAuthHosts": "x.test"}
    )
    assert answer.status_code in (401, 403)


SITE_COOKIES = [
    # (the request's Cookie with the session as {s}, what the application may get)
    ("passport_session={s}", None),
    ("a=1; passport_session={s}; b=2", "a=1; b=2"),
    ("passport_session={s};a=1;b=2", "a=1; b=2"),
    ("a=1;passport_session={s}", "a=1"),
    ("a=1; passport_session={s}; passport_session=old", "a=1"),
    (" passport_session = {s} ; my_passport_session=x; passport_session2=y", None),
    ('theme=dark; q="x=passport_session"; passport_session={s}', None),
    # Passport's host-only cookies, which a script on its origin could send here to read
    # (a third review): never in the answer either.
    ("passport_csrf=c; a=1; passport_step=t; passport_session={s}; passport_authz=z", "a=1"),
]


@pytest.mark.parametrize(("sent", "kept"), SITE_COOKIES)
def test_the_answer_carries_the_sites_cookies_without_the_session(
    site: dict[str, Any], sent: str, kept: str | None
) -> None:
    """For Traefik, whose ``authResponseHeaders: [Cookie]`` puts the answer's ``Cookie`` in
    place of the request's (it deletes the request's first): the application gets the
    site's cookies, never Passport's session — what nginx and Caddy do with patterns."""
    token = site["bob"].get_cookie("passport_session").value
    header = sent.format(s=token)
    answer = _with_cookie_header(site["h"], "/page", header)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    expected = kept if kept is not None else _others(header)
    assert answer.headers.get("Cookie") == (expected or None)
    assert token not in str(answer.headers)
    # What Traefik then sends on (pkg/middlewares/auth/forward.go: Del, then the answer's).
    upstream = {"Cookie": header}
    del upstream["Cookie"]
    if answer.headers.get("Cookie"):
        upstream["Cookie"] = answer.headers["Cookie"]
    assert token not in str(upstream)


def _with_cookie_header(h: Harness, uri: str, cookie: str) -> Any:
    """Traefik's check with this exact ``Cookie`` header (a test client writes its own
    cookie jar's over any given)."""
    builder = EnvironBuilder(
        path="/forward-auth",
        headers={
            "X-Forwarded-Method": "GET",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": HOST,
            "X-Forwarded-Uri": uri,
            "Cookie": cookie,
        },
        environ_base=PROXY,
    )
    try:
        return Response.from_app(h.app, builder.get_environ())
    finally:
        builder.close()


def _others(header: str) -> str:
    """The pairs of ``header`` not named passport_session, as they came."""
    pairs = [p.strip() for p in header.split(";") if p.strip()]
    return "; ".join(p for p in pairs if p.split("=", 1)[0].strip() != "passport_session")


@hsettings(max_examples=300, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(
            st.sampled_from(["passport_session", " passport_session ", "a", "passport_session2"])
            | st.text(
                st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=";="),
                min_size=1,
                max_size=8,
            ),
            st.text(
                st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters=";"),
                max_size=12,
            ),
        ),
        max_size=6,
    ),
    separator=st.sampled_from([";", "; ", " ;  "]),
)
def test_site_cookies_never_keep_the_session_and_keep_the_rest(
    pairs: list[tuple[str, str]], separator: str
) -> None:
    header = separator.join(f"{name}={value}" for name, value in pairs)
    kept = forward_auth.site_cookies(header, frozenset({"passport_session"}))
    names = [p.split("=", 1)[0].strip() for p in kept.split("; ") if p]
    assert "passport_session" not in names
    wanted = [f"{n}={v}".strip() for n, v in pairs if n.strip() != "passport_session"]
    assert (kept.split("; ") if kept else []) == [w for w in wanted if w]
    assert "\r" not in kept and "\n" not in kept


def test_header_value_is_header_safe() -> None:
    assert forward_auth.header_value("plain") == "plain"
    assert forward_auth.header_value("a\r\nX-Evil: 1") == "UTF-8''a%0D%0AX-Evil%3A%201"
    assert forward_auth.header_value("UTF-8''x") == "UTF-8''UTF-8%27%27x"
    assert forward_auth.header_value("a,b", list_item=True) == "UTF-8''a%2Cb"


def test_rule_for_first_match_wins() -> None:
    rules = ["/a/* one", "/a/b two", "/ three"]
    assert forward_auth.rule_for(rules, "/a/b") == "one"
    assert forward_auth.rule_for(rules, "/") == "three"
    assert forward_auth.rule_for(rules, "/x") is None


def test_both_forms_at_once_are_refused(site: dict[str, Any]) -> None:
    """A client of Caddy or Traefik could add X-Original-URL naming another page: a check
    with both forms is refused, whoever is signed in."""
    answer = traefik(site["bob"], "/admin/users", **{"X-Original-URL": f"https://{HOST}/"})
    assert answer.status_code == 403 and "Remote-User" not in answer.headers
    answer = site["bob"].get(
        "/forward-auth",
        headers={"X-Original-URL": f"https://{HOST}/", "X-Forwarded-Method": "GET"},
        environ_base=PROXY,
    )
    assert answer.status_code == 403
