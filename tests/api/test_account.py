"""Accounts, login sessions and their defences, on every database and both session stores."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import timedelta
from http.cookies import SimpleCookie
from typing import Any

import pytest
from sqlalchemy import select

from passport.services.applications import find_by_name
from passport.services.passwords import Passwords
from passport.services.throttle import user_account_key
from passport.storage.models import AuditEvent
from passport.storage.models import User

from support import ORIGIN
from support import STRONG
from support import Harness

COOKIE = "passport_session"


def data(response: Any) -> dict[str, Any]:
    return json.loads(response.get_data(as_text=True))  # type: ignore[no-any-return]


def error(response: Any) -> dict[str, Any]:
    (first,) = data(response)["ClientExceptions"]
    return first  # type: ignore[no-any-return]


def set_cookie(response: Any) -> SimpleCookie:
    cookie: SimpleCookie = SimpleCookie()
    for header in response.headers.getlist("Set-Cookie"):
        cookie.load(header)
    return cookie


def status(h: Harness, client: Any = None) -> dict[str, Any]:
    return data((client or h.client).get("/Account/status"))


def audit_events(h: Harness) -> list[tuple[str, str, str]]:
    with h.app.services.db.session() as db:
        rows = db.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        return [(r.event, r.outcome, r.username) for r in rows]


def register_origin(h: Harness, origin: str) -> None:
    with h.app.services.db.session(write=True) as db, db.begin():
        app = find_by_name(db, "Passport")
        assert app is not None
        app.allowed_origins = [*app.allowed_origins, origin]
    h.app.forget_origins()


# -- registration ------------------------------------------------------------------------


def test_register_returns_the_user(accounts: Harness) -> None:
    response = accounts.register("alice", email="Alice@Example.com", displayName="Alice A.")
    assert response.status_code == 200
    assert data(response)["Data"] == {
        "User": {
            "ID": data(response)["Data"]["User"]["ID"],
            "Username": "alice",
            "Email": "Alice@example.com",  # the domain in its normal form
            "EmailVerified": False,  # until a link sent there is used (no SMTP here)
            "DisplayName": "Alice A.",
        }
    }
    with accounts.app.services.db.session() as db:
        user = db.scalars(select(User)).one()
        assert user.password_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
        assert STRONG not in user.password_hash
    assert audit_events(accounts) == [("register", "success", "alice")]


@pytest.mark.parametrize("second", ["alice", "ALICE", "\uff21\uff4c\uff49\uff43\uff45", "AlIcE"])
def test_usernames_are_unique_in_any_case(accounts: Harness, second: str) -> None:
    assert accounts.register("Alice").status_code == 200
    response = accounts.register(second)
    assert response.status_code == 409
    assert error(response)["Number"] == "5"
    assert error(response)["Source"] == "username"


def test_email_is_validated_and_unique(accounts: Harness) -> None:
    bad = accounts.register("alice", email="not-an-email")
    assert bad.status_code == 400 and error(bad)["Source"] == "email"
    assert accounts.register("alice", email="a@example.com").status_code == 200
    taken = accounts.register("bob", email="A@EXAMPLE.com")
    assert taken.status_code == 409 and error(taken)["Source"] == "email"


@pytest.mark.parametrize(
    ("password", "number", "words"),
    [
        ("short", "4", "at least 12"),
        ("x" * 1025, "4", "at most 1024"),
        ("password1234", "6", "commonly used"),
        ("Alice-Wonder", "6", "username"),
        ("PASSPORT", "4", "at least 12"),
        ("passwordpassword", "6", "commonly used"),
        ("aaaaaaaaaaaaaaa", "6", "too few characters"),
        ("ababababababab", "6", "too few characters"),
    ],
)
def test_password_policy(accounts: Harness, password: str, number: str, words: str) -> None:
    response = accounts.register("Alice-Wonder", password=password)
    assert response.status_code == 400
    assert error(response)["Number"] == number
    assert words in error(response)["Message"]
    assert error(response)["Value"] is None


@pytest.mark.parametrize(
    "password", ["   spaces   are fine   ", "😀🎉🔑🌍😀🎉🔑🌍😀🎉🔑🌍", "ﬁﬁﬁ long unicode"]
)
def test_any_characters_are_accepted(accounts: Harness, password: str) -> None:
    assert accounts.register("alice", password=password).status_code == 200
    assert accounts.login("alice", password).status_code == 200


def test_composed_and_decomposed_passwords_are_the_same(accounts: Harness) -> None:
    composed = "caf\u00e9 au lait tous les jours"
    decomposed = "cafe\u0301 au lait tous les jours"
    assert accounts.register("alice", password=composed).status_code == 200
    assert accounts.login("alice", decomposed).status_code == 200


def test_registration_can_be_switched_off(factory: Any) -> None:
    h = factory("sqlite", registration_enabled=False)
    response = h.register()
    assert response.status_code == 403
    assert error(response)["Number"] == "7"


def test_password_in_query_string_is_refused(accounts: Harness) -> None:
    response = accounts.client.post(f"/Account/register?username=alice&password={STRONG}", data={})
    assert response.status_code == 400
    assert error(response)["Source"] == "password"
    assert STRONG not in response.get_data(as_text=True)
    login = accounts.client.post(f"/Account/login?password={STRONG}", data={"username": "alice"})
    assert login.status_code == 400


def test_twenty_concurrent_registrations_make_one_user(accounts: Harness) -> None:
    # Room for all twenty hashes at once, so that every registration reaches the insert.
    accounts.app.services.passwords = Passwords(
        replace(accounts.settings, max_concurrent_hashes=20)
    )
    names = ["alice", "Alice", "ALICE", "\uff21\uff2c\uff29\uff23\uff25"] * 5
    results: list[Any] = [None] * len(names)

    def attempt(i: int) -> None:
        results[i] = accounts.new_client().post(
            "/Account/register",
            data={"username": names[i], "password": STRONG},
            headers={"Origin": ORIGIN},
        )

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(len(names))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    codes = sorted(r.status_code for r in results)
    assert codes == [200] + [409] * 19
    for response in results:
        if response.status_code == 409:
            assert "already taken" in error(response)["Message"]
    with accounts.app.services.db.session() as db:
        assert len(db.scalars(select(User)).all()) == 1


# -- login, status, logout ------------------------------------------------------------------


def test_login_sets_a_safe_cookie(accounts: Harness) -> None:
    accounts.register()
    response = accounts.login()
    assert response.status_code == 200
    body = data(response)
    assert body["LoggedIn"] is True and body["Data"]["User"]["Username"] == "alice"
    morsel = set_cookie(response)[COOKIE]
    assert len(morsel.value) >= 43  # 256 bits, base64url
    assert morsel["httponly"] and morsel["samesite"] == "Lax" and morsel["path"] == "/"
    assert not morsel["secure"] and not morsel["domain"] and not morsel["max-age"]
    assert morsel.value not in response.get_data(as_text=True)
    assert status(accounts)["LoggedIn"] is True
    assert status(accounts)["Data"]["User"]["Username"] == "alice"


def test_cookie_is_secure_behind_https(factory: Any) -> None:
    h = factory("sqlite", public_url="https://sso.example.com")
    h.register(headers={"Origin": "https://sso.example.com"})
    response = h.client.post(
        "/Account/login",
        data={"username": "alice", "password": STRONG},
        headers={"Origin": "https://sso.example.com"},
    )
    assert set_cookie(response)[COOKIE]["secure"]


def test_login_by_email(accounts: Harness) -> None:
    accounts.register(email="alice@example.com")
    assert accounts.login("ALICE@example.com").status_code == 200


def test_failures_are_generic_and_unknown_users_cost_a_hash(accounts: Harness) -> None:
    accounts.register()
    accounts.register("bob")
    with accounts.app.services.db.session(write=True) as db, db.begin():
        bob = db.scalars(select(User).where(User.username == "bob")).one()
        bob.disabled = True
    before = accounts.app.services.passwords.dummy_verifications
    answers = [
        accounts.login("alice", "wrong password here"),
        accounts.login("nobody", STRONG),
        accounts.login("bob", STRONG),
    ]
    assert accounts.app.services.passwords.dummy_verifications == before + 1
    for response in answers:
        assert response.status_code == 401
        assert data(response)["ClientExceptions"] == [
            {
                "Message": "Invalid username or password.",
                "Source": "username",
                "Value": None,
                "Number": "401",
            }
        ]
        assert "Set-Cookie" not in response.headers
    assert [e[1] for e in audit_events(accounts) if e[0] == "login"] == ["failure"] * 3


def test_logout_kills_the_session_everywhere(accounts: Harness) -> None:
    accounts.register()
    token = set_cookie(accounts.login())[COOKIE].value
    response = accounts.client.post("/Account/logout")
    assert response.status_code == 200 and data(response)["LoggedIn"] is False
    cleared = set_cookie(response)[COOKIE]
    assert cleared.value == "" and cleared["expires"]
    replay = accounts.new_client()
    replay.set_cookie(COOKIE, token)
    assert status(accounts, replay)["LoggedIn"] is False


def test_login_rotates_the_session_id(accounts: Harness) -> None:
    accounts.register()
    first = set_cookie(accounts.login())[COOKIE].value
    second = set_cookie(accounts.login())[COOKIE].value
    assert first != second
    old = accounts.new_client()
    old.set_cookie(COOKIE, first)
    assert status(accounts, old)["LoggedIn"] is False


def test_unknown_session_ids_are_never_adopted(accounts: Harness) -> None:
    accounts.register()
    accounts.client.set_cookie(COOKIE, "attacker-chosen-value")
    assert status(accounts)["LoggedIn"] is False
    response = accounts.login()
    assert set_cookie(response)[COOKIE].value != "attacker-chosen-value"


def test_idle_timeout(accounts: Harness) -> None:
    accounts.register()
    accounts.login()
    accounts.clock.advance(minutes=29)
    assert status(accounts)["LoggedIn"] is True  # activity renews the idle timer
    accounts.clock.advance(minutes=29)
    assert status(accounts)["LoggedIn"] is True
    accounts.clock.advance(minutes=31)
    assert status(accounts)["LoggedIn"] is False


def test_absolute_lifetime(accounts: Harness) -> None:
    """Activity keeps a session from going idle, but not past its absolute lifetime."""
    accounts.register()
    accounts.login()
    login = accounts.clock.now
    end = login + timedelta(seconds=accounts.settings.session_absolute_lifetime)
    assert accounts.settings.session_idle_timeout < accounts.settings.session_absolute_lifetime
    while accounts.clock.now + timedelta(minutes=20) < end:
        accounts.clock.advance(minutes=20)  # well within the idle timeout: never idle
        assert status(accounts)["LoggedIn"] is True, accounts.clock.now
    accounts.clock.now = end - timedelta(seconds=1)
    assert status(accounts)["LoggedIn"] is True  # seen a second ago: not idle
    accounts.clock.now = end
    assert status(accounts)["LoggedIn"] is False  # ended by the absolute lifetime alone


def test_remember_me(accounts: Harness) -> None:
    accounts.register()
    response = accounts.login(remember="true")
    assert int(set_cookie(response)[COOKIE]["max-age"]) == 30 * 24 * 3600
    accounts.clock.advance(days=29)
    assert status(accounts)["LoggedIn"] is True
    accounts.clock.advance(days=2)
    assert status(accounts)["LoggedIn"] is False


def test_login_for_an_unknown_application_is_404(accounts: Harness) -> None:
    accounts.register()
    response = accounts.login(application="Nope")
    assert response.status_code == 404 and error(response)["Source"] == "application"
    assert accounts.login(application="passport").status_code == 200


# -- password change and the sessions list ---------------------------------------------------


def test_change_password_ends_other_sessions_and_rotates_this_one(accounts: Harness) -> None:
    accounts.register()
    other = accounts.new_client()
    other.post(
        "/Account/login", data={"username": "alice", "password": STRONG}, headers={"Origin": ORIGIN}
    )
    old_token = set_cookie(accounts.login())[COOKIE].value
    new_password = "a brand new long passphrase"
    response = accounts.client.post(
        "/Account/changePassword", data={"oldPassword": STRONG, "newPassword": new_password}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert set_cookie(response)[COOKIE].value != old_token
    assert status(accounts)["LoggedIn"] is True
    assert status(accounts, other)["LoggedIn"] is False
    stale = accounts.new_client()
    stale.set_cookie(COOKIE, old_token)
    assert status(accounts, stale)["LoggedIn"] is False
    assert accounts.login("alice", STRONG).status_code == 401
    assert accounts.login("alice", new_password).status_code == 200


def test_change_password_needs_the_current_one(accounts: Harness) -> None:
    accounts.register()
    accounts.login()
    wrong = accounts.client.post(
        "/Account/changePassword",
        data={"oldPassword": "not my password", "newPassword": "a brand new long passphrase"},
    )
    assert wrong.status_code == 401 and error(wrong)["Source"] == "oldPassword"
    weak = accounts.client.post(
        "/Account/changePassword", data={"oldPassword": STRONG, "newPassword": "1q2w3e4r5t6y"}
    )
    assert weak.status_code == 400 and error(weak)["Number"] == "6"
    anonymous = accounts.new_client().post(
        "/Account/changePassword",
        data={"oldPassword": STRONG, "newPassword": "x" * 20},
        headers={"Origin": ORIGIN},
    )
    assert anonymous.status_code == 401


def test_list_and_end_own_sessions(accounts: Harness) -> None:
    accounts.register()
    accounts.register("bob")
    phone = accounts.new_client()
    phone.post(
        "/Account/login",
        data={"username": "alice", "password": STRONG},
        headers={"Origin": ORIGIN, "User-Agent": "Phone/1.0"},
    )
    accounts.clock.advance(seconds=1)
    accounts.login()
    listed = data(accounts.client.get("/Account/sessions"))["Data"]["Sessions"]
    assert len(listed) == 2
    assert [s["Current"] for s in listed] == [False, True]
    assert listed[0]["UserAgent"] == "Phone/1.0"
    ended = accounts.client.post("/Account/endSession", data={"id": listed[0]["ID"]})
    assert ended.status_code == 200
    assert status(accounts, phone)["LoggedIn"] is False
    assert status(accounts)["LoggedIn"] is True
    missing = accounts.client.post("/Account/endSession", data={"id": listed[0]["ID"]})
    assert missing.status_code == 404
    assert accounts.new_client().get("/Account/sessions").status_code == 401


def test_users_cannot_end_other_users_sessions(accounts: Harness) -> None:
    accounts.register()
    accounts.register("bob")
    bob = accounts.new_client()
    bob.post(
        "/Account/login", data={"username": "bob", "password": STRONG}, headers={"Origin": ORIGIN}
    )
    bobs = data(bob.get("/Account/sessions"))["Data"]["Sessions"][0]["ID"]
    accounts.login()
    response = accounts.client.post("/Account/endSession", data={"id": bobs})
    assert response.status_code == 404
    assert status(accounts, bob)["LoggedIn"] is True


# -- throttling --------------------------------------------------------------------------------


def test_account_throttle_grows_and_hides_the_right_password(accounts: Harness) -> None:
    accounts.register()
    for _ in range(5):
        assert accounts.login("alice", "wrong password!!").status_code == 401
    locked = accounts.login("alice", STRONG)
    assert locked.status_code == 429
    assert locked.headers["Retry-After"] == "30"
    assert "Set-Cookie" not in locked.headers
    accounts.clock.advance(seconds=31)
    assert accounts.login("alice", "wrong password!!").status_code == 401
    again = accounts.login("alice", STRONG)
    assert again.status_code == 429 and again.headers["Retry-After"] == "60"
    accounts.clock.advance(seconds=61)
    assert accounts.login("alice", STRONG).status_code == 200
    # success resets the account counter
    for _ in range(4):
        assert accounts.login("alice", "wrong password!!").status_code == 401
    assert accounts.login("alice", STRONG).status_code == 200
    events = [e[:2] for e in audit_events(accounts)]
    assert ("lockout", "throttled") in events and ("login", "throttled") in events


def test_unknown_accounts_are_throttled_alike(accounts: Harness) -> None:
    for _ in range(5):
        assert accounts.login("ghost", "wrong password!!").status_code == 401
    assert accounts.login("ghost", "wrong password!!").status_code == 429


def test_ip_throttle(factory: Any) -> None:
    h = factory("postgresql", "redis", throttle_ip_limit=8)
    for i in range(8):
        assert h.login(f"user{i}", "wrong password!!").status_code == 401
    assert h.login("someone-else", "wrong password!!").status_code == 429


def post_from(h: Harness, ip: str, path: str, **fields: str) -> Any:
    return h.client.post(
        path, data=fields, headers={"Origin": ORIGIN}, environ_base={"REMOTE_ADDR": ip}
    )


def test_ip_throttle_counts_an_ipv6_client_by_its_64(factory: Any) -> None:
    """F3: a client may use any address of its /64 (RFC 6177 §3); each must not bring a
    fresh counter.  An IPv4-mapped IPv6 address is its IPv4 client."""
    h = factory("sqlite", "db", throttle_ip_limit=3)
    for n in range(3):
        answer = post_from(
            h, f"2001:db8:a:b::{n + 1}", "/Account/login", username=f"u{n}", password="wrong!"
        )
        assert answer.status_code == 401
    limited = post_from(h, "2001:db8:a:b:1:2:3:4", "/Account/login", username="x", password="p")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    other = post_from(h, "2001:db8:a:c::1", "/Account/login", username="x", password="p")
    assert other.status_code == 401
    for n in range(3):
        answer = post_from(h, "192.0.2.7", "/Account/login", username=f"v{n}", password="wrong!")
        assert answer.status_code == 401
    mapped = post_from(h, "::ffff:192.0.2.7", "/Account/login", username="x", password="p")
    assert mapped.status_code == 429


def test_self_registration_is_rate_limited_per_address(factory: Any) -> None:
    """F3: accounts are not free to mass-produce from one address (each brings its own
    per-account guessing budget); the limit is the service's, the API maps it to 429
    with Retry-After.  A refused registration creates nothing and is not counted."""
    h = factory("sqlite", "db", throttle_registration_limit=3)
    for n in range(3):
        made = post_from(
            h, "2001:db8:1:1::1", "/Account/register", username=f"user{n}", password=STRONG
        )
        assert made.status_code == 200, made.get_data(as_text=True)
    weak = post_from(h, "198.51.100.1", "/Account/register", username="weak", password="short")
    assert weak.status_code == 400
    taken = post_from(h, "198.51.100.1", "/Account/register", username="user0", password=STRONG)
    assert taken.status_code == 409
    limited = post_from(
        h, "2001:db8:1:1::99", "/Account/register", username="user3", password=STRONG
    )
    assert limited.status_code == 429
    wait = int(limited.headers["Retry-After"])
    assert wait > 0
    assert data(limited)["ClientExceptions"][0]["Number"] == "429"
    with h.app.services.db.session() as db:
        assert db.scalars(select(User).where(User.username == "user3")).first() is None
    # The failed attempts above were not counted: that address still has its three.
    for n in range(3):
        made = post_from(
            h, "198.51.100.1", "/Account/register", username=f"walker{n}", password=STRONG
        )
        assert made.status_code == 200
    h.clock.advance(seconds=wait + 1)
    again = post_from(h, "2001:db8:1:1::99", "/Account/register", username="user3", password=STRONG)
    assert again.status_code == 200


def test_parallel_failures_all_count(accounts: Harness) -> None:
    """Below the limit nothing is refused, so four parallel failures must count four."""
    alice = data(accounts.register())["Data"]["User"]["ID"]
    threads = [
        threading.Thread(
            target=lambda: accounts.new_client().post(
                "/Account/login",
                data={"username": "alice", "password": "wrong password!!"},
                headers={"Origin": ORIGIN},
            )
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    count = accounts.app.services.throttle.store.peek(user_account_key(alice))
    assert count is not None and count.failures == 4


# Every way of naming alice's account: username, email in another case, white space around
# it (and MariaDB compares 'alice ' equal to 'alice'), letter case, a Cyrillic look-alike and
# an invisible combining grapheme joiner.
ALICE_FORMS = [
    "alice",
    "ALICE@EXAMPLE.COM",
    " alice ",
    "ALICE",
    "alice ",
    "\u0430lice",
    "alice\u034f",
]
THROTTLE_COMBOS = ["sqlite-db", "mariadb-db", "postgresql-db", "postgresql-redis"]


def count_verifications(h: Harness) -> list[str]:
    """Spy on the real password check: each stored hash it was asked to compare."""
    checked: list[str] = []
    verify = h.app.services.passwords.verify

    def counting(stored_hash: str, password: str) -> bool:
        checked.append(stored_hash)
        return verify(stored_hash, password)

    h.app.services.passwords.verify = counting  # type: ignore[method-assign]
    return checked


@pytest.mark.parametrize("combo", THROTTLE_COMBOS)
def test_parallel_attempts_in_every_form_check_at_most_the_limit(factory: Any, combo: str) -> None:
    # Room for every attempt to hash at once: only the throttle may hold them back.
    h = factory(*combo.split("-"), max_concurrent_hashes=32)
    h.register(email="alice@example.com")
    with h.app.services.db.session() as db:
        alice_hash = db.scalars(select(User.password_hash)).one()
    checked = count_verifications(h)
    answers: list[Any] = [None] * 20

    def attempt(i: int) -> None:
        answers[i] = h.new_client().post(
            "/Account/login",
            data={"username": ALICE_FORMS[i % len(ALICE_FORMS)], "password": "wrong password!!"},
            headers={"Origin": ORIGIN},
        )

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    limit = h.settings.throttle_account_limit
    codes = [a.status_code for a in answers]
    assert set(codes) <= {401, 429}, codes
    assert checked.count(alice_hash) <= limit
    assert codes.count(401) == len(checked) <= limit
    failures = [e for e in audit_events(h) if e[:2] == ("login", "failure")]
    assert len(failures) <= limit
    for form in ALICE_FORMS:  # now locked in every form, even with the right password
        locked = h.login(form, STRONG)
        assert locked.status_code == 429, form
        assert int(locked.headers["Retry-After"]) > 0
    assert checked.count(alice_hash) <= limit


@pytest.mark.parametrize("combo", ["sqlite-db", "postgresql-redis"])
@pytest.mark.parametrize("path", ["/Account/changePassword", "/account"])
def test_parallel_password_change_guesses_check_at_most_the_limit(
    factory: Any, combo: str, path: str
) -> None:
    """Someone holding a stolen session guesses the current password in parallel: each
    guess is counted before it is checked, on the account's login counter too."""
    h = factory(*combo.split("-"), max_concurrent_hashes=32)
    h.register()
    assert h.login().status_code == 200
    cookie = h.client.get_cookie(h.settings.session_cookie_name)
    assert cookie is not None
    checked = count_verifications(h)
    answers: list[Any] = [None] * 16

    def guess(i: int) -> None:
        client = h.new_client()
        client.set_cookie(h.settings.session_cookie_name, cookie.value)
        if path == "/account":  # the hosted page: its form's CSRF token, then the POST
            client.set_cookie("passport_csrf", "c" * 43)
            form = {"csrf": "c" * 43, "action": "password"}
            fields = {
                "oldpassword": f"wrong guess {i:02d}!",
                "newpassword": "a new long passphrase",
            }
        else:
            form = {}
            fields = {
                "oldPassword": f"wrong guess {i:02d}!",
                "newPassword": "a new long passphrase",
            }
        answers[i] = client.post(path, data={**form, **fields}, headers={"Origin": ORIGIN})

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    limit = h.settings.throttle_account_limit
    codes = [a.status_code for a in answers]
    assert 500 not in codes and 503 not in codes, codes
    assert 0 < len(checked) <= limit, codes
    # The account is now throttled for sign-in as well, even with the right password.
    assert (
        h.new_client()
        .post("/Account/login", data={"username": "alice", "password": STRONG})
        .status_code
        == 429
    )
    assert len(checked) <= limit


@pytest.mark.parametrize("combo", THROTTLE_COMBOS)
def test_unknown_names_are_throttled_in_their_normalised_form(factory: Any, combo: str) -> None:
    h = factory(*combo.split("-"))
    for form in ["ghost", "GHOST", " ghost", "gh\u043est", "\uff47host\u200d"]:
        assert h.login(form, "wrong password!!").status_code == 401
    for form in ["ghost", "Ghost ", "gh\u043est"]:
        assert h.login(form, "wrong password!!").status_code == 429
    assert h.login("ghostly", "wrong password!!").status_code == 401  # another name


def test_a_success_resets_the_account_in_every_form(accounts: Harness) -> None:
    accounts.register(email="alice@example.com")
    for form in ALICE_FORMS[:4]:
        assert accounts.login(form, "wrong password!!").status_code == 401
    assert accounts.login("ALICE@example.com", STRONG).status_code == 200
    for form in ALICE_FORMS[:4]:
        assert accounts.login(form, "wrong password!!").status_code == 401
    assert accounts.login("\u0430lice", STRONG).status_code == 200


# -- cross-site defences -----------------------------------------------------------------------


def test_cookie_authenticated_writes_need_a_trusted_origin(accounts: Harness) -> None:
    accounts.register()
    accounts.login()
    for headers in (
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "", "Referer": "https://evil.example/x"},
    ):
        refused = accounts.client.post("/Account/logout", headers=headers)
        assert refused.status_code == 403, headers
        assert error(refused)["Number"] == "403"
    bare = accounts.client.open("/Account/logout", method="POST")
    assert bare.status_code == 403
    assert status(accounts)["LoggedIn"] is True
    register_origin(accounts, "https://app.example.com")
    ok = accounts.client.post("/Account/logout", headers={"Origin": "https://app.example.com"})
    assert ok.status_code == 200


def test_login_from_a_foreign_origin_is_refused(accounts: Harness) -> None:
    accounts.register()
    response = accounts.login(headers={"Origin": "https://evil.example"})
    assert response.status_code == 403


def test_cors_only_for_registered_origins(accounts: Harness) -> None:
    register_origin(accounts, "https://app.example.com")
    ok = accounts.client.get("/Account/status", headers={"Origin": "https://app.example.com"})
    assert ok.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert ok.headers["Access-Control-Allow-Credentials"] == "true"
    assert "Origin" in ok.headers["Vary"]
    for origin in ("https://evil.example", "null", "https://app.example.com.evil.example"):
        other = accounts.client.get("/Account/status", headers={"Origin": origin})
        assert "Access-Control-Allow-Origin" not in other.headers
    preflight = accounts.client.options(
        "/Account/login",
        headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 204
    assert preflight.headers["Access-Control-Allow-Methods"] == "POST"
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    refused = accounts.client.options(
        "/Account/login",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert refused.status_code == 403
    assert "Access-Control-Allow-Origin" not in refused.headers


def test_password_hash_is_upgraded_at_login(factory: Any) -> None:
    weak = factory("sqlite")
    weak.register()
    row = _copy_user(weak)
    strong = factory("sqlite", argon2_time_cost=3)
    with strong.app.services.db.session(write=True) as db, db.begin():
        db.add(User(**{**row, "id": None}))
    assert strong.login().status_code == 200
    with strong.app.services.db.session() as db:
        assert "t=3" in db.scalars(select(User)).one().password_hash


def _copy_user(h: Harness) -> dict[str, Any]:
    with h.app.services.db.session() as db:
        user = db.scalars(select(User)).one()
        return {c.name: getattr(user, c.name) for c in User.__table__.columns}


def test_status_follows_profile_changes_and_costs_no_query_on_redis(accounts: Harness) -> None:
    from passport.services import directory
    from passport.services.identity import identity_of

    from support import QueryCounter

    accounts.register(email="alice@example.com")
    accounts.login()
    counter = QueryCounter(accounts.app.services.db.engine)
    assert status(accounts)["Data"]["User"]["Email"] == "alice@example.com"
    assert counter.count == (0 if accounts.store == "redis" else 1)
    with accounts.app.services.db.session(write=True) as db, db.begin():
        user = directory.find_user(db, "alice")
        assert user is not None
        user.display_name = "Alice Liddell"
        accounts.app.services.sessions.refresh_identity(identity_of(user))
    assert status(accounts)["Data"]["User"]["DisplayName"] == "Alice Liddell"
