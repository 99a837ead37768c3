"""Forward-auth through real proxies from Debian — nginx ``auth_request`` and Caddy
``forward_auth`` with the configurations of ``docs/forward-auth/`` — in front of a live
``passport serve`` and an upstream that echoes the headers it received.

Traefik has no Debian package and its release binaries (GitHub) are not reachable from
this machine: its contract (``X-Forwarded-*`` in, 302 without a session, identity
headers in the answer) is tested directly in ``tests/web/test_forward_auth.py``.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from argon2 import PasswordHasher
from sqlalchemy import create_engine
from sqlalchemy import text

import forward_auth_support
from browser_support import ARGS
from browser_support import CHROMIUM
from forward_auth_support import CADDY
from forward_auth_support import CADDY_SITE
from forward_auth_support import NGINX
from forward_auth_support import NGINX_SITE
from forward_auth_support import SSO
from forward_auth_support import Proxies

from support import STRONG

OPEN_SITE = "open.passport.test"
pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not (Path(NGINX).exists() and Path(CADDY).exists()),
        reason="Debian's nginx and caddy are not installed",
    ),
]


def _cli(database_url: str, *args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "passport", *args, "--database-url", database_url],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def proxies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxies]:
    """One Passport, upstream, nginx and Caddy for the module's tests (starting them is
    most of each test's time): each test signs its users in afresh and changes nothing
    the others read (the sign-out test ends only its own session)."""
    tmp_path = tmp_path_factory.mktemp("forward-auth")
    database_url = f"sqlite:///{tmp_path}/passport.sqlite3"
    _cli(database_url, "db", "upgrade")
    for started in forward_auth_support.start(tmp_path, database_url):
        # One application guards both sites; members of "staff" may sign in to it.
        _cli(
            database_url,
            "app",
            "add",
            "wiki",
            "--forward-auth-host",
            NGINX_SITE,
            "--forward-auth-host",
            CADDY_SITE,
            "--forward-auth-rule",
            "/admin/* wiki-admin",
        )
        # Another guarded site, open to anyone (served by no proxy here).
        _cli(database_url, "app", "add", "open", "--forward-auth-host", OPEN_SITE)
        for name in ("alice", "mallory"):
            registered = requests.post(
                f"http://127.0.0.1:{started.passport_port}/Account/register",
                data={"username": name, "password": STRONG, "displayName": name.title()},
                headers={"Host": f"{SSO}:{started.passport_port}"},
                timeout=10,
            )
            assert registered.status_code == 200, registered.text
        _cli(database_url, "group", "add", "staff")
        _cli(database_url, "group", "add-member", "staff", "alice")
        # A member of staff in 150 more groups of long names: ~7 KiB of Remote-Groups.
        crowd = {
            "username": "crowd",
            "password_hash": PasswordHasher().hash(STRONG),
            "groups": ["staff", *(f"a-group-with-a-rather-long-name-{n:03}" for n in range(150))],
        }
        import_file = tmp_path / "crowd.jsonl"
        import_file.write_text(json.dumps(crowd) + "\n")
        _cli(database_url, "user", "import", str(import_file), "--on-error", "abort")
        engine = create_engine(database_url)
        with engine.begin() as conn:
            conn.execute(text("UPDATE applications SET sign_in_policy='groups' WHERE name='wiki'"))
            conn.execute(
                text(
                    "INSERT INTO application_sign_in_groups (application_id, group_id) "
                    "SELECT a.id, g.id FROM applications a, groups g "
                    "WHERE a.name='wiki' AND g.name='staff'"
                )
            )
        engine.dispose()
        yield started


def _get(p: Proxies, site: str, path: str = "/", cookie: str | None = None, **headers: str) -> Any:
    """A request to a site through its proxy, as a browser on ``site`` would send it."""
    netloc = urlsplit(site).netloc
    port = urlsplit(site).port
    sent = {"Host": netloc, **headers}
    if cookie:
        sent["Cookie"] = f"passport_session={cookie}"
    return requests.get(
        f"http://127.0.0.1:{port}{path}", headers=sent, allow_redirects=False, timeout=10
    )


def _sign_in(p: Proxies, username: str) -> str:
    answer = requests.post(
        f"http://127.0.0.1:{p.passport_port}/Account/login",
        data={"username": username, "password": STRONG},
        headers={"Host": f"{SSO}:{p.passport_port}", "Origin": p.passport},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    cookie = answer.headers["Set-Cookie"]
    assert "Domain=passport.test" in cookie, cookie
    return str(answer.cookies["passport_session"])


def _sites(p: Proxies) -> list[str]:
    return [p.nginx_site, p.caddy_site]


def test_without_session_both_proxies_send_to_passport_login(proxies: Proxies) -> None:
    for site in _sites(proxies):
        answer = _get(proxies, site, "/deep/page?x=1&y=2")
        assert answer.status_code == 302, (site, answer.status_code, proxies.output())
        location = urlsplit(answer.headers["Location"])
        assert f"{location.scheme}://{location.netloc}" == proxies.passport
        assert location.path == "/login"


def test_signed_in_member_reaches_upstream_with_identity(proxies: Proxies) -> None:
    cookie = _sign_in(proxies, "alice")
    for site in _sites(proxies):
        answer = _get(proxies, site, "/page?q=1", cookie)
        assert answer.status_code == 200, (site, answer.status_code, proxies.output())
        seen = {k.lower(): v for k, v in answer.json()["headers"].items()}
        assert seen["remote-user"] == "alice"
        assert seen["remote-name"] == "Alice"
        assert seen["remote-groups"] == "staff"
        assert answer.json()["path"] == "/page?q=1"


def test_spoofed_identity_never_reaches_upstream(proxies: Proxies) -> None:
    spoof = {"Remote-User": "root", "Remote-Groups": "admins", "Remote-Email": "x@evil"}
    cookie = _sign_in(proxies, "alice")
    for site in _sites(proxies):
        anonymous = _get(proxies, site, "/", **spoof)
        assert anonymous.status_code == 302  # never passed on
        answer = _get(proxies, site, "/", cookie, **spoof)
        assert answer.status_code == 200
        seen = {k.lower(): v for k, v in answer.json()["headers"].items()}
        assert seen["remote-user"] == "alice"
        assert seen["remote-groups"] == "staff"
        assert seen.get("remote-email", "") == ""


def _upstream_cookie(answer: Any) -> str | None:
    """The Cookie header the upstream received (None: none at all)."""
    seen = {k.lower(): v for k, v in answer.json()["headers"].items()}
    return seen.get("cookie")


# {P} is the browser's Passport session cookie: the check needs it, the upstream never
# gets it; the site's own cookies pass as they were sent.
SITE_COOKIES = [
    pytest.param("{P}; site=1; theme=dark", "site=1; theme=dark", id="first"),
    pytest.param("site=1; {P}; theme=dark", "site=1; theme=dark", id="middle"),
    pytest.param("site=1; theme=dark; {P}", "site=1; theme=dark", id="last"),
    pytest.param("site=1;{P};theme=dark", "site=1;theme=dark", id="no-space-middle"),
    pytest.param("{P};site=1", "site=1", id="no-space-first"),
    pytest.param("site=1;{P}", "site=1", id="no-space-last"),
    # Look-alike names are the site's own cookies, and so is a value naming the cookie.
    pytest.param(
        "my_passport_session=a; {P}; passport_session2=b; xpassport_session=c; "
        "passport_session_id=d; note=passport_session=e",
        "my_passport_session=a; passport_session2=b; xpassport_session=c; "
        "passport_session_id=d; note=passport_session=e",
        id="look-alikes",
    ),
    # Two (a browser keeps one per domain and path: after PASSPORT_COOKIE_DOMAIN changed).
    pytest.param("{P}; site=1; {P}", "site=1", id="two-first-and-last"),
    pytest.param(
        "site=1; {P}; theme=dark; {P}; lang=en", "site=1; theme=dark; lang=en", id="two-middle"
    ),
]


@pytest.mark.parametrize(("sent", "expected"), SITE_COOKIES)
def test_upstream_gets_the_sites_cookies_never_passports_session(
    proxies: Proxies, sent: str, expected: str
) -> None:
    """Review: both proxies passed the browser's Cookie header on unchanged, so every
    guarded application received the user's Passport session (a credential it could
    replay at Passport's API as the user).  The check still gets it: the member is let in
    as herself."""
    token = _sign_in(proxies, "alice")
    header = sent.replace("{P}", f"passport_session={token}")
    for site in _sites(proxies):
        answer = _get(proxies, site, "/", Cookie=header)
        assert answer.status_code == 200, (site, answer.status_code, proxies.output())
        seen = {k.lower(): v for k, v in answer.json()["headers"].items()}
        assert seen["remote-user"] == "alice", site
        assert _upstream_cookie(answer) == expected, (site, header)
        assert token not in answer.text, site


def test_only_passports_cookie_reaches_upstream_as_no_cookie_header(proxies: Proxies) -> None:
    """Nothing left of the Cookie header: the upstream gets none at all (not an empty
    one)."""
    token = _sign_in(proxies, "alice")
    for site in _sites(proxies):
        answer = _get(proxies, site, "/", token)
        assert answer.status_code == 200, (site, answer.status_code)
        assert answer.json()["headers"]["Remote-User"] == "alice"
        assert "cookie" not in {k.lower() for k in answer.json()["headers"]}, (site, answer.text)
        assert token not in answer.text


def test_three_passport_cookies_never_reach_upstream(proxies: Proxies) -> None:
    """nginx's maps remove two Passport cookies; with more it sends the upstream no
    cookie at all rather than one of them.  Caddy removes every one."""
    token = _sign_in(proxies, "alice")
    p = f"passport_session={token}"
    answers = {
        site: _get(proxies, site, "/", Cookie=f"a=1; {p}; b=2; {p}; {p}; c=3")
        for site in _sites(proxies)
    }
    for answer in answers.values():
        assert answer.status_code == 200
        assert token not in answer.text
    assert _upstream_cookie(answers[proxies.nginx_site]) is None
    assert _upstream_cookie(answers[proxies.caddy_site]) == "a=1; b=2; c=3"


def test_another_sites_host_header_is_checked_as_the_site_nginx_serves(
    proxies: Proxies,
) -> None:
    """Review: nginx built the check from the client's Host header, so a request to the
    wiki naming the open site's host was checked as the open site and let through."""
    cookie = _sign_in(proxies, "mallory")
    answer = _get(
        proxies, proxies.nginx_site, "/admin/x", cookie, Host=f"{OPEN_SITE}:{proxies.nginx_port}"
    )
    assert answer.status_code == 403, (answer.status_code, answer.text[:200])


def test_user_outside_the_group_gets_403(proxies: Proxies) -> None:
    cookie = _sign_in(proxies, "mallory")
    for site in _sites(proxies):
        answer = _get(proxies, site, "/", cookie)
        assert answer.status_code == 403, (site, answer.status_code)
        assert "remote-user" not in answer.text.lower()


def test_signing_out_of_passport_asks_again(proxies: Proxies) -> None:
    cookie = _sign_in(proxies, "alice")
    assert all(_get(proxies, s, "/", cookie).status_code == 200 for s in _sites(proxies))
    out = requests.post(
        f"http://127.0.0.1:{proxies.passport_port}/Account/logout",
        headers={
            "Host": f"{SSO}:{proxies.passport_port}",
            "Origin": proxies.passport,
            "Cookie": f"passport_session={cookie}",
        },
        timeout=10,
    )
    assert out.status_code == 200
    assert all(_get(proxies, s, "/", cookie).status_code == 302 for s in _sites(proxies))


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Forwarded-Host": "evil.example"},
        {"X-Forwarded-Uri": "//evil.example/"},
        {"X-Forwarded-Proto": "javascript"},
        {"X-Original-URL": "https://evil.example/"},
        {"X-Original-URL": f"http://{NGINX_SITE}/admin"},
        {"X-Forwarded-For": "10.0.0.1"},
    ],
)
def test_hostile_forwarded_headers_from_the_client(
    proxies: Proxies, headers: dict[str, str]
) -> None:
    """The proxies set these themselves: what a client sends changes nothing — a signed-in
    member still gets the page, a stranger still the login page, never a 500."""
    cookie = _sign_in(proxies, "alice")
    for site in _sites(proxies):
        assert _get(proxies, site, "/", None, **headers).status_code == 302
        answer = _get(proxies, site, "/", cookie, **headers)
        assert answer.status_code == 200, (site, headers, answer.status_code)


UNDERSCORED = [
    # Passport (WSGI) reads each as the header with "-": the client's came after the
    # proxy's and won (second outside review, through Caddy).
    {"X_Forwarded_Host": OPEN_SITE},
    {"X_Forwarded_Uri": "/"},
    {"X_Forwarded_Uri": "/public", "X_Forwarded_Host": OPEN_SITE},
    {"X_Original_URL": f"http://{OPEN_SITE}/"},
    # Third review: a name with both "-" and "_" passed Caddy's "-X_*".
    {"X-Forwarded_Uri": "/public"},
    {"X-Forwarded_Host": OPEN_SITE, "X-Forwarded_Uri": "/"},
    {"x-forwarded_uri": "/public", "X-Forwarded_Proto": "https"},
    {"X-Original_URL": f"http://{OPEN_SITE}/"},
]


@pytest.mark.parametrize("headers", UNDERSCORED)
def test_underscored_spellings_of_the_checks_headers_change_nothing(
    proxies: Proxies, headers: dict[str, str]
) -> None:
    """mallory (whom only the open site admits) asking the wiki as the open site, and
    alice (staff, without wiki-admin) asking /admin/ as another path: refused on both."""
    mallory, alice = _sign_in(proxies, "mallory"), _sign_in(proxies, "alice")
    for site in _sites(proxies):
        answer = _get(proxies, site, "/", mallory, **headers)
        assert answer.status_code == 403, (site, headers, answer.status_code)
        answer = _get(proxies, site, "/admin/secret", alice, **headers)
        assert answer.status_code == 403, (site, headers, answer.status_code)
        assert _get(proxies, site, "/page", alice, **headers).status_code == 200


def test_a_user_in_many_groups_gets_through_both_proxies(proxies: Proxies) -> None:
    """Second review: nginx's 4 KiB buffer for the check's answer made a 500 of a user in
    many groups; the shipped configuration gives it 16 KiB."""
    cookie = _sign_in(proxies, "crowd")
    for site in _sites(proxies):
        answer = _get(proxies, site, "/page", cookie)
        assert answer.status_code == 200, (site, answer.status_code, proxies.output())
        seen = {k.lower(): v for k, v in answer.json()["headers"].items()}
        groups = seen["remote-groups"].split(",")
        assert len(groups) == 151 and "staff" in groups


def test_a_fragment_in_the_request_line_is_refused(proxies: Proxies) -> None:
    """Second review: nginx passed ``/x#/../admin/`` on as it came and the check read
    ``/x``; an upstream that keeps ``#`` routes it to /admin/."""
    alice = _sign_in(proxies, "alice")
    for site in _sites(proxies):
        request = (
            f"GET /x#/../admin/ HTTP/1.1\r\nHost: {urlsplit(site).netloc}\r\n"
            f"Cookie: passport_session={alice}\r\nConnection: close\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", urlsplit(site).port or 80), 10) as raw:
            raw.sendall(request.encode())
            status = raw.recv(100).split(b" ")[1]
        assert status in (b"400", b"403"), (site, status)


def test_unregistered_host_refused_never_500(proxies: Proxies) -> None:
    for name in ("alice", "mallory"):
        cookie = _sign_in(proxies, name)
        for site in _sites(proxies):
            port = urlsplit(site).port
            answer = _get(proxies, site, "/", cookie, Host=f"other.passport.test:{port}")
            assert answer.status_code in (200, 403, 404), answer.status_code
            if site == proxies.nginx_site and name == "alice":
                # nginx's one server block is the wiki whatever the Host header says, and
                # the check names the wiki (X-Original-URL from $server_name): the wiki's
                # member is let in as herself.
                assert answer.status_code == 200, (answer.status_code, answer.text[:300])
                seen = {k.lower(): v for k, v in answer.json()["headers"].items()}
                assert seen.get("remote-user") == "alice", answer.text[:400]
            else:
                # Caddy has no site of that name (never the upstream); nginx checks the
                # wiki, which mallory may not enter.
                assert "remote-user" not in answer.text.lower()


def test_open_redirect_on_the_way_back_refused(proxies: Proxies) -> None:
    for rd in ("https://evil.example/", f"http://{NGINX_SITE}.evil.example/", "//evil.example"):
        answer = requests.get(
            f"http://127.0.0.1:{proxies.passport_port}/forward-auth/return",
            params={"rd": rd},
            headers={"Host": f"{SSO}:{proxies.passport_port}"},
            allow_redirects=False,
            timeout=10,
        )
        assert answer.status_code == 400


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_browser_protected_page_login_and_back(proxies: Proxies) -> None:
    """Headless Chromium: the protected page → Passport's login → signed in → back on the
    page, where the upstream saw Remote-User; then signed out, the page asks again; and
    someone outside the site's group, signed in the same way, gets 403 there."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[*ARGS, "--host-resolver-rules=MAP *.passport.test 127.0.0.1"],
        )
        try:
            for site in _sites(proxies):
                context = browser.new_context()
                context.add_cookies([{"name": "site_pref", "value": "dark", "url": site}])
                page = context.new_page()
                page.set_default_timeout(15_000)
                page.goto(f"{site}/deep/page?x=1&y=2")
                assert urlsplit(page.url).path == "/login", page.url
                page.get_by_label("Username or email").fill("alice")
                page.get_by_label("Password").fill(STRONG)
                page.get_by_role("button", name="Sign in", exact=True).click()
                page.wait_for_url(f"{site}/deep/page?x=1&y=2")
                seen = {k.lower(): v for k, v in page.evaluate(
                    "() => JSON.parse(document.body.innerText)")["headers"].items()}  # fmt: skip
                assert seen["remote-user"] == "alice"
                # Chromium sent the site's cookie and Passport's (Domain=passport.test):
                # the upstream got the site's only.
                assert seen.get("cookie") == "site_pref=dark", seen
                page.goto(f"{proxies.passport}/logout")  # Passport's own sign-out page
                page.get_by_role("button", name="Sign out").click()
                page.wait_for_load_state()
                page.goto(f"{site}/deep/page")
                assert urlsplit(page.url).path == "/login", page.url
                # Someone outside the wiki's group signs in there: back on the site, 403.
                page.get_by_label("Username or email").fill("mallory")
                page.get_by_label("Password").fill(STRONG)
                guarded = f"{site}/deep/page"
                with page.expect_response(lambda r, url=guarded: r.url == url) as refused:
                    page.get_by_role("button", name="Sign in", exact=True).click()
                assert refused.value.status == 403, refused.value.status
                page.wait_for_load_state()
                assert "remote-user" not in page.content().lower()
                context.close()
        finally:
            browser.close()
