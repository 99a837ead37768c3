"""Per-request state handed to controllers: the request, its DB session, who is logged in.

Everything is lazy: a request that never touches the database never opens a
connection, and the session cookie is only looked up when someone asks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session
from werkzeug import Request
from werkzeug import Response

from passport.metrics import LOGINS
from passport.services.accounts import Accounts
from passport.services.audit import AuditRecord
from passport.services.audit import write as write_audit
from passport.services.identity import Identity
from passport.services.identity import identity_of
from passport.services.identity import load_identity
from passport.services.sessions import LoginSessionInfo
from passport.storage.models import User
from passport.web.origins import scheme

if TYPE_CHECKING:
    from passport.composition import Services


@dataclass
class _CookieChange:
    value: str | None
    max_age: int | None


class RequestContext:
    """What a controller may know about the request it serves."""

    def __init__(
        self,
        services: Services,
        request: Request,
        *,
        client_ip: str,
        write: bool,
        sessions_allowed: bool,
        origins_changed: Callable[[], None],
    ) -> None:
        self.services = services
        self.settings = services.settings
        self.origins_changed = origins_changed
        self.request = request
        self.client_ip = client_ip
        self.user_agent = (request.user_agent.string or "")[:255]
        self._write = write
        self._sessions_allowed = sessions_allowed
        self._db: Session | None = None
        self._session: LoginSessionInfo | None = None
        self._session_loaded = False
        self._user: User | None = None
        self._identity: Identity | None = None
        self._identity_known = False
        self._cookie: _CookieChange | None = None
        self._audit: list[tuple[AuditRecord, bool]] = []
        self._after: list[Callable[[], None]] = []
        self._refused = False

    @property
    def now(self) -> datetime:
        return self.services.clock()

    @property
    def db(self) -> Session:
        if self._db is None:
            self._db = self.services.db.session(write=self._write)
        return self._db

    # -- who is logged in -------------------------------------------------
    @property
    def session_token(self) -> str | None:
        if not self._sessions_allowed:
            return None
        token = self.request.cookies.get(self.settings.session_cookie_name)
        return token or None

    @property
    def login_session(self) -> LoginSessionInfo | None:
        if not self._session_loaded:
            self._session_loaded = True
            token = self.session_token
            if token is not None:
                found = self.services.sessions.lookup(token, self.now)
                info = found[0] if found else None
                if found is not None and found[1] is not None:
                    self._identity, self._identity_known = found[1], True
                if info is not None and info.needs_touch(self.now):
                    now = self.now
                    self.after(lambda: self.services.sessions.touch(info, now))
                self._session = info
        return self._session

    @property
    def identity(self) -> Identity | None:
        """Who is logged in (enabled users only), without loading an ORM entity."""
        info = self.login_session
        if info is None:
            return None
        if not self._identity_known:
            self._identity_known = True
            with self.services.db.hot_read() as conn:
                self._identity = load_identity(conn, info.user_id)
            if self._identity is None:
                self._session = None
        return self._identity

    @property
    def user(self) -> User | None:
        """The logged-in, enabled user as an entity of this request's transaction, or None."""
        identity = self.identity
        if identity is None:
            return None
        if self._user is None or self._user.id != identity.id:
            user = self.db.get(User, identity.id)
            if user is None or user.disabled:
                self._session, self._identity = None, None
                return None
            self._user = user
        return self._user

    @property
    def logged_in(self) -> bool:
        if self._user is not None and self._session is not None:
            return True
        return self.identity is not None

    def start_session(self, info: LoginSessionInfo, token: str, user: User) -> None:
        """Record a fresh login: the cookie goes out with the response."""
        self._session, self._session_loaded, self._user = info, True, user
        self._identity, self._identity_known = identity_of(user), True
        max_age = info.cookie_max_age
        self._cookie = _CookieChange(token, max_age)

    def end_session(self) -> None:
        self._session, self._session_loaded, self._user = None, True, None
        self._identity, self._identity_known = None, True
        self._cookie = _CookieChange(None, None)

    # -- the scope: the one place that commits, writes audit rows, sets the session cookie
    def refuse(self) -> None:
        """End this request's transaction with a rollback: the handler answers a refusal
        itself (an error page, an OAuth error), and nothing it changed is kept — only the
        audit records queued as ``durable`` (a failed sign-in, a throttled attempt)."""
        self._refused = True

    def respond(self, handler: Callable[[], Response]) -> Response:
        """Run ``handler`` inside this request's scope and finish the scope.

        This is the only place where a request's transaction is committed or rolled
        back, its audit records written, its after-actions run (a session's sliding
        expiry among them) and its cookies set.  ``handler`` returns the response; if it
        calls :meth:`refuse` or raises, the transaction is rolled back (durable audit
        records are still written) and no cookie changes; an exception goes on to the
        caller, which answers it in its own format.
        """
        committed = False
        try:
            try:
                response = handler()
            except BaseException:
                self._close(commit=False)
                raise
            if self._refused:
                self._close(commit=False)
            else:
                self._close(commit=True)
                committed = True  # only once the commit went through
        finally:
            self._finish(committed=committed)
        if committed:
            self._apply_cookies(response)
        return response

    def _apply_cookies(self, response: Response) -> None:
        if self._cookie is None:
            return
        name = self.settings.session_cookie_name
        secure = self.settings.secure_cookies or scheme(self.request, self.settings) == "https"
        # The session cookie for a parent domain (``cookie_domain``), so that the sites
        # Passport guards on its subdomains send it to their forward-auth check (RFC 6265
        # §5.2.3); host-only otherwise.  The CSRF and step cookies stay host-only.
        domain = self.settings.cookie_domain.lower().lstrip(".") or None
        if self._cookie.value is None:
            response.delete_cookie(
                name, path="/", domain=domain, secure=secure, httponly=True, samesite="Lax"
            )
        else:
            response.set_cookie(
                name,
                self._cookie.value,
                max_age=self._cookie.max_age,
                path="/",
                domain=domain,
                secure=secure,
                httponly=True,
                samesite="Lax",
            )

    def _close(self, *, commit: bool) -> None:
        if self._db is None and commit and self._audit:
            self._db = self.services.db.session(write=True)
        if self._db is None:
            return
        try:
            if commit:
                for record, _durable in self._audit:
                    write_audit(self._db, record)
                self._db.commit()
            else:
                self._db.rollback()
        finally:
            self._db.close()
            self._db = None

    def accounts(self) -> Accounts:
        """The account rules over this request's transaction, audit and after-actions."""
        return self.services.accounts(self.db, audit=self.audit, after=self.after)

    def audit(self, record: AuditRecord, *, durable: bool = False) -> None:
        """Queue an audit record; ``durable`` ones are kept even if the request fails.
        Sign-ins are counted here for ``/metrics``, from the record that tells them."""
        if record.event == "login":
            LOGINS.labels(record.outcome).inc()
        self._audit.append((record, durable))

    def after(self, action: Callable[[], None]) -> None:
        """Run ``action`` once the request's transaction is over (and its locks released)."""
        self._after.append(action)

    def _finish(self, *, committed: bool) -> None:
        """Write queued audit records in their own transaction, then run after-actions."""
        records = [] if committed else [r for r, durable in self._audit if durable]
        if records:
            with self.services.db.session(write=True) as db, db.begin():
                for record in records:
                    write_audit(db, record)
        for action in self._after:
            action()
