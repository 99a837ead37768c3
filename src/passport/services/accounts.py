"""Accounts: registration, sign-in, password change.  Where login is decided.

Nothing here knows about HTTP: callers pass who is asking (:class:`Caller`)
and receive domain objects or a :class:`~passport.errors.ClientError`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import replace
from datetime import datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from passport.config import Settings
from passport.errors import DISABLED_FEATURE
from passport.errors import INVALID
from passport.errors import LENGTH
from passport.errors import TAKEN
from passport.errors import ClientError
from passport.errors import required
from passport.metrics import LOGINS
from passport.services import applications
from passport.services.audit import AuditRecord
from passport.services.identity import identity_of
from passport.services.passwords import Passwords
from passport.services.passwords import check_policy
from passport.services.passwords import normalise
from passport.services.sessions import LoginSessionInfo
from passport.services.sessions import SessionStore
from passport.services.sessions import new_session_info
from passport.services.signout import NotifyLogout
from passport.services.signout import end_user_access
from passport.services.throttle import Throttle
from passport.services.throttle import account_key
from passport.services.throttle import ip_key
from passport.storage.models import User

GENERIC_LOGIN_FAILURE = "Invalid username or password."
_EMAIL_RE = re.compile(
    r"^[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f.]+(\.[^@\s\x00-\x1f\x7f.]+)+$"
)
_USERNAME_EXTRA = set("._-")


class Audit(Protocol):
    def __call__(self, record: AuditRecord, *, durable: bool = False) -> None: ...


@dataclass(frozen=True)
class Caller:
    """Who is asking: address and browser, and the time of the request (UTC)."""

    ip: str
    user_agent: str
    now: datetime


def canonical(text: str) -> str:
    return applications.name_key(text)


def validate_username(raw: str | None) -> str:
    if raw is None or raw == "":
        raise required("username", "Username must be specified.")
    name = unicodedata.normalize("NFKC", raw)
    if not 3 <= len(name) <= 64:
        raise ClientError(
            "Username must be 3 to 64 characters long.", source="username", number=LENGTH
        )
    for char in name:
        category = unicodedata.category(char)
        if not (category[0] in "LNM" or char in _USERNAME_EXTRA):
            raise ClientError(
                "Username may contain letters, digits, '.', '_' and '-' only.",
                source="username",
                value=raw[:64],
                number=INVALID,
            )
    return name


def validate_email(raw: str | None) -> str | None:
    if raw is None or raw.strip() == "":
        return None
    email = unicodedata.normalize("NFKC", raw.strip())
    if len(email) > 254 or not _EMAIL_RE.fullmatch(email):
        raise ClientError(
            "Email must be a valid address like name@example.com.",
            source="email",
            value=raw[:100],
            number=INVALID,
        )
    return email


def validate_display_name(raw: str | None) -> str:
    if raw is None:
        return ""
    name = unicodedata.normalize("NFKC", raw.strip())
    if len(name) > 128:
        raise ClientError(
            "Display name must be at most 128 characters long.", source="displayName", number=LENGTH
        )
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise ClientError(
            "Display name must not contain control characters.",
            source="displayName",
            number=INVALID,
        )
    return name


class UserLike(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def username(self) -> str: ...

    @property
    def email(self) -> str | None: ...

    @property
    def display_name(self) -> str: ...


def public_user(user: UserLike) -> dict[str, object]:
    return {
        "ID": user.id,
        "Username": user.username,
        "Email": user.email,
        "DisplayName": user.display_name,
    }


@dataclass(frozen=True)
class LoginResult:
    user: User
    token: str
    session: LoginSessionInfo


class Accounts:
    """The account rules, over one request's database session."""

    def __init__(
        self,
        settings: Settings,
        passwords: Passwords,
        sessions: SessionStore,
        throttle: Throttle,
        db: Session,
        audit: Audit,
        read_session: Session,
        after: Callable[[Callable[[], None]], None],
        notify_logout: NotifyLogout,
    ) -> None:
        self.settings = settings
        self.passwords = passwords
        self.sessions = sessions
        self.throttle = throttle
        self.db = db
        self.audit = audit
        self.read_session = read_session
        self.after = after
        self.notify_logout = notify_logout

    # -- registration -------------------------------------------------------
    def register(
        self,
        caller: Caller,
        username: str | None,
        password: str | None,
        email: str | None,
        display_name: str | None,
        *,
        by_admin: bool = False,
    ) -> User:
        if not self.settings.registration_enabled and not by_admin:
            raise ClientError(
                "Registration is switched off; ask an administrator for an account.",
                source="url",
                number=DISABLED_FEATURE,
            )
        name = validate_username(username)
        mail = validate_email(email)
        shown = validate_display_name(display_name)
        if password is None or password == "":
            raise required("password", "Password must be specified.")
        text = check_policy(
            password,
            username=name,
            min_length=self.settings.password_min_length,
            source="password",
        )
        user = User(
            username=name,
            username_key=canonical(name),
            email=mail,
            email_key=mail.casefold() if mail else None,
            display_name=shown,
            password_hash=self.passwords.hash(text),
            disabled=False,
            created_at=caller.now,
            password_changed_at=caller.now,
        )
        try:
            with self.db.begin_nested():
                self.db.add(user)
                self.db.flush()
        except IntegrityError as exc:
            if "email" in str(exc.orig).lower():
                raise ClientError(
                    "This email address is already registered.",
                    source="email",
                    value=mail,
                    number=TAKEN,
                ) from None
            raise ClientError(
                f"The username '{name}' is already taken.",
                source="username",
                value=name,
                number=TAKEN,
            ) from None
        self.audit(
            AuditRecord(
                "register",
                "success",
                caller.now,
                user.id,
                user.username,
                ip=caller.ip,
                user_agent=caller.user_agent,
            )
        )
        return user

    # -- sign-in --------------------------------------------------------------
    def _find(self, identifier: str) -> User | None:
        """The user named by username or email, detached from the read session."""
        if "@" in identifier:
            condition = (
                User.email_key == unicodedata.normalize("NFKC", identifier.strip()).casefold()
            )
        else:
            condition = User.username_key == canonical(identifier)
        try:
            user = self.read_session.scalars(select(User).where(condition)).first()
            if user is not None:
                self.read_session.expunge(user)
            return user
        finally:
            self.read_session.close()

    def login(
        self,
        caller: Caller,
        identifier: str | None,
        password: str | None,
        *,
        remember: bool = False,
        application: str = "",
    ) -> LoginResult:
        if identifier is None or identifier == "":
            raise required("username", "Username must be specified.")
        if password is None or password == "":
            raise required("password", "Password must be specified.")
        attempted = unicodedata.normalize("NFKC", identifier)[:64]
        keys = [account_key(canonical(identifier)), ip_key(caller.ip)]
        wait, counted = self.throttle.check(keys, caller.now)
        record = AuditRecord(
            "login",
            "",
            caller.now,
            username=attempted,
            application=application,
            ip=caller.ip,
            user_agent=caller.user_agent,
        )
        if wait:
            self.audit(_with(record, outcome="throttled"), durable=True)
            LOGINS.labels("throttled").inc()
            raise ClientError(
                "Too many failed attempts; try again later.",
                source="username",
                number=429,
                headers={"Retry-After": str(wait)},
            )

        user = self._find(identifier)
        if user is None:
            self.passwords.verify_dummy(password)
            ok = False
        else:
            ok = self.passwords.verify(user.password_hash, password) and not user.disabled
        if not ok or user is None:
            over = self.throttle.failure(keys, caller.now)
            uid = user.id if user is not None else None
            self.audit(_with(record, outcome="failure", user_id=uid), durable=True)
            LOGINS.labels("failure").inc()
            if over:
                self.audit(
                    _with(record, event="lockout", outcome="throttled", user_id=uid),
                    durable=True,
                )
            raise ClientError(GENERIC_LOGIN_FAILURE, source="username", number=401)

        user = self.db.merge(user, load=False)
        if self.passwords.needs_rehash(user.password_hash):
            user.password_hash = self.passwords.hash(normalise(password))
        if keys[0] in counted:  # a success resets the account's count; no write if none
            self.throttle.success(keys[0])
        token, info = new_session_info(
            self.settings,
            user.id,
            caller.now,
            remember=remember,
            ip=caller.ip,
            user_agent=caller.user_agent,
        )
        self.sessions.add(info, self.db, identity_of(user))
        self.audit(_with(record, outcome="success", user_id=user.id, username=user.username))
        LOGINS.labels("success").inc()
        return LoginResult(user, token, info)

    def logout(self, caller: Caller, user: User | None, session: LoginSessionInfo | None) -> None:
        if session is None:
            return
        self.sessions.remove(session.id_hash, self.db)
        self.audit(
            AuditRecord(
                "logout",
                "success",
                caller.now,
                session.user_id,
                user.username if user else "",
                ip=caller.ip,
                user_agent=caller.user_agent,
            )
        )

    # -- password change ------------------------------------------------------
    def change_password(
        self,
        caller: Caller,
        user: User,
        current: LoginSessionInfo,
        old_password: str | None,
        new_password: str | None,
    ) -> tuple[str, LoginSessionInfo]:
        if old_password is None or old_password == "":
            raise required("oldPassword", "The current password must be specified.")
        if new_password is None or new_password == "":
            raise required("newPassword", "The new password must be specified.")
        keys = [account_key(user.username_key), ip_key(caller.ip)]
        wait = self.throttle.retry_after(keys, caller.now)
        if wait:
            raise ClientError(
                "Too many failed attempts; try again later.",
                source="oldPassword",
                number=429,
                headers={"Retry-After": str(wait)},
            )
        record = AuditRecord(
            "password_change",
            "",
            caller.now,
            user.id,
            user.username,
            ip=caller.ip,
            user_agent=caller.user_agent,
        )
        if not self.passwords.verify(user.password_hash, old_password):
            # Counted once this request's transaction is over: on SQLite it holds the
            # write lock, which the counter's own transaction would wait for.
            self.after(lambda: self.throttle.count_failure(keys, caller.now))
            self.audit(_with(record, outcome="failure"), durable=True)
            raise ClientError(
                "The current password is not correct.", source="oldPassword", number=401
            )
        text = check_policy(
            new_password,
            username=user.username,
            min_length=self.settings.password_min_length,
            source="newPassword",
        )
        user.password_hash = self.passwords.hash(text)
        user.password_changed_at = caller.now
        # Every other way in ends: sessions, OAuth tokens; applications are told.
        end_user_access(
            self.db,
            self.sessions,
            self.notify_logout,
            user,
            caller.now,
            keep_session=current.id_hash,
        )
        self.sessions.remove(current.id_hash, self.db)
        token, info = new_session_info(
            self.settings,
            user.id,
            caller.now,
            remember=current.remember,
            ip=caller.ip,
            user_agent=caller.user_agent,
        )
        self.sessions.add(info, self.db, identity_of(user))
        self.audit(_with(record, outcome="success"))
        return token, info


def _with(record: AuditRecord, **changes: object) -> AuditRecord:
    return replace(record, **changes)  # type: ignore[arg-type]
