"""Accounts: registration, sign-in, password change.  Where login is decided.

Nothing here knows about HTTP: callers pass who is asking (:class:`Caller`)
and receive domain objects or a :class:`~passport.errors.ClientError`.
"""

from __future__ import annotations

import hmac
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING
from typing import Protocol

import email_validator
from sqlalchemy import delete
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from passport.config import Settings
from passport.errors import ClientError
from passport.errors import EmailNotVerified
from passport.errors import FeatureDisabled
from passport.errors import Invalid
from passport.errors import NotFound
from passport.errors import NotSignedIn
from passport.errors import ServiceUnavailable
from passport.errors import Taken
from passport.errors import Throttled
from passport.errors import WrongLength
from passport.errors import required
from passport.lookalikes import lookalike_key
from passport.lookalikes import username_problem
from passport.lookalikes import without_ignorables
from passport.services import applications
from passport.services.audit import AuditRecord
from passport.services.factors import Factors
from passport.services.factors import Level
from passport.services.factors import needed
from passport.services.identity import identity_of
from passport.services.passwords import BUSY_MESSAGE
from passport.services.passwords import Passwords
from passport.services.passwords import check_policy
from passport.services.passwords import normalise
from passport.services.sessions import LoginSessionInfo
from passport.services.sessions import SessionStore
from passport.services.sessions import new_session_info
from passport.services.signout import NotifyLogout
from passport.services.signout import end_session_access
from passport.services.signout import end_user_access
from passport.services.text import check_text
from passport.services.throttle import Throttle
from passport.services.throttle import account_key
from passport.services.throttle import ip_key
from passport.services.throttle import registration_key
from passport.services.throttle import user_account_key
from passport.storage.models import EmailLink
from passport.storage.models import Invitation
from passport.storage.models import User

if TYPE_CHECKING:
    from passport.services.lifecycle import Lifecycle
    from passport.services.mail import Outbox

GENERIC_LOGIN_FAILURE = "Invalid username or password."
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
    """The username in any letter case and width (``users.username_key``)."""
    return applications.name_key(text)


def sign_in_name(identifier: str) -> str:
    """A typed username or email as the lookup compares it: NFKC, without the white
    space around it or invisible (default-ignorable) characters anywhere in it."""
    text = without_ignorables(unicodedata.normalize("NFKC", identifier)).strip()
    return unicodedata.normalize("NFKC", text)


def validate_username(raw: str | None) -> str:
    """The NFKC username, or a ClientError: 3-64 letters, digits, ``.``, ``_``, ``-``
    that RFC 8265's UsernameCaseMapped profile accepts (nothing invisible)."""
    if raw is None or raw == "":
        raise required("username", "Username must be specified.")
    name = unicodedata.normalize("NFKC", raw)
    if not 3 <= len(name) <= 64:
        raise WrongLength("Username must be 3 to 64 characters long.", source="username")
    problem = username_problem(name)
    if problem is not None:
        raise Invalid(problem, source="username", value=raw[:64])
    for char in name:
        category = unicodedata.category(char)
        if not (category[0] in "LNM" or char in _USERNAME_EXTRA):
            raise Invalid(
                "Username may contain letters, digits, '.', '_' and '-' only.",
                source="username",
                value=raw[:64],
            )
    return name


def _parsed_address(text: str) -> email_validator.ValidatedEmail:
    if len(text) > 254:
        raise email_validator.EmailNotValidError("too long")
    # strict: RFC 5321 §4.5.3.1.1, a local part of at most 64 octets
    return email_validator.validate_email(
        text, check_deliverability=False, allow_smtputf8=True, strict=True
    )


def validate_email(raw: str | None) -> str | None:
    """The address in its normal form, None for none, or a ClientError.

    Nothing invisible or bidirectional in it (:func:`passport.services.text.check_text`,
    no shaping characters); then the form is checked by ``email-validator`` (RFC 5321/5322
    and RFC 6531 for internationalised addresses): one plain ``local@domain`` — no quoted
    local part, no address literal, none of the specials (``, ; : < > ( ) [ ] \\ "``) that
    would make the stored text a group, a list or a comment when read as a header, and
    no ``%`` or ``!`` (old source routes a relay may still follow to another host).  So the
    address a link proves is exactly the one stored and given to applications, and a
    message goes to that one mailbox only.  What is stored is email-validator's normal
    form: the domain in lower case and NFC (``corp。example`` is ``corp.example``), as
    an A-label when the local part is ASCII."""
    if raw is None or raw.strip() == "":
        return None
    email = unicodedata.normalize("NFKC", raw.strip())
    check_text(email, field="Email", source="email", shaping=False)
    try:
        parsed = _parsed_address(email)
        if "%" in parsed.local_part or "!" in parsed.local_part:
            raise email_validator.EmailNotValidError("source route")
    except email_validator.EmailNotValidError:
        raise Invalid(
            "Email must be a valid address like name@example.com.",
            source="email",
            value=raw[:100],
        ) from None
    # The ASCII form when there is one (an ASCII local part: the domain as its A-label),
    # so that no relay needs SMTPUTF8 for it; else the internationalised normal form.
    return str(parsed.ascii_email or parsed.normalized)


def same_address(stored: str | None, typed: str | None) -> bool:
    """Whether ``typed`` (already in normal form) is the address ``stored`` holds, once
    that is in normal form too (rows from before addresses were normalised)."""
    if stored is None or typed is None:
        return stored is typed
    try:
        return validate_email(stored) == typed
    except ClientError:
        return stored == typed


def email_key(address: str) -> str:
    """What makes two addresses one mailbox for Passport (``users.email_key``,
    ``invitations.email_key``, the mail throttle): the local part in lower case (relays
    treat it so in practice) and the domain as its IDNA A-label (``bücher.de`` and
    ``xn--bcher-kva.de`` are one domain).  ``lower``, not ``casefold``: ``ß`` and ``ss``,
    final and medial sigma are different mailboxes (IDNA2008).  Text that is no address (a
    typed sign-in name) is keyed by its NFKC lower case."""
    text = unicodedata.normalize("NFKC", address.strip())
    try:
        parsed = _parsed_address(text)
    except email_validator.EmailNotValidError:
        return text.lower()
    return f"{parsed.local_part.lower()}@{parsed.ascii_domain or parsed.domain}"


def validate_display_name(raw: str | None) -> str:
    """The NFKC display name ("" for none), or a ClientError: at most 128 characters,
    one line of text for people (:func:`passport.services.text.check_text`: no control,
    bidi or invisible characters; ZWJ, ZWNJ, variation selectors and emoji tag
    sequences are kept for scripts and emoji)."""
    if raw is None:
        return ""
    name = unicodedata.normalize("NFKC", raw.strip())
    if len(name) > 128:
        raise WrongLength("Display name must be at most 128 characters long.", source="displayName")
    return check_text(name, field="Display name", source="displayName")


@dataclass(frozen=True)
class LoginResult:
    user: User
    token: str
    session: LoginSessionInfo


@dataclass(frozen=True)
class SecondStep:
    """The password was right, and ``user`` still owes a factor of ``level`` before a
    session starts: ``verify`` one they have, or ``enrol`` one first."""

    user: User
    level: Level
    action: str


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
        outbox: Outbox,
    ) -> None:
        self.outbox = outbox
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
        verified: bool = False,
    ) -> User:
        """A new account, by the person (self-registration) or by an administrator
        (``by_admin``).  ``verified`` (an administrator's only): the address is taken as
        confirmed, no link is sent to it."""
        if verified and not by_admin:
            raise ValueError("only an administrator vouches for an address")
        if not self.settings.registration_enabled and not by_admin:
            raise FeatureDisabled(
                "Registration is switched off; ask an administrator for an account.",
                source="url",
            )
        keys = [] if by_admin else [registration_key(caller.ip)]
        # Self-registration is rate-limited per address (OWASP ASVS 5 §6.3.1, anti-
        # automation): each account brings its own per-account guessing budget (sign-in,
        # /device codes), so accounts must not be free to mass-produce.  Reserved before
        # the work (parallel attempts count each), taken back when nothing was created.
        attempt = self.throttle.reserve(keys, caller.now)
        if attempt.wait:
            self.audit(
                AuditRecord(
                    "register",
                    "throttled",
                    caller.now,
                    username=(username or "")[:64],
                    ip=caller.ip,
                    user_agent=caller.user_agent,
                ),
                durable=True,
            )
            raise Throttled(
                "Too many accounts were registered from your address; try again later.",
                source="username",
                retry_after=attempt.wait,
            )
        try:
            if not by_admin:
                if self.settings.require_verified_email and not (email or "").strip():
                    # Else an account without an address would sign in unconfirmed.
                    raise required(
                        "email", "Email must be specified: addresses are confirmed here."
                    )
                self.refuse_invited_address(email, caller.now)
            user = self.create_account(
                caller, username, password, email, display_name, verified=verified
            )
        except Taken as exc:
            # "This address is registered" tells whether an account has it: each such
            # answer counts, so the form cannot be used to test addresses in bulk.
            if exc.source != "email":
                self.after(lambda: self.throttle.release(keys))
            raise
        except (ClientError, ServiceUnavailable):
            # Nothing was created: not a registration (released once the transaction
            # is over — on SQLite it may hold the write lock the counters need).
            self.after(lambda: self.throttle.release(keys))
            raise
        self.audit(user_record("register", "success", caller, user))
        return user

    def refuse_invited_address(self, email: str | None, now: datetime) -> None:
        """An address with an open invitation is its invited person's to take (by the
        link); registering it would leave the invitation unusable.  The answer is the
        one a registered address gets."""
        mail = validate_email(email)
        if mail is None:
            return
        invited = self.db.scalar(
            select(Invitation.id).where(
                Invitation.email_key == email_key(mail),
                Invitation.accepted_at.is_(None),
                Invitation.revoked_at.is_(None),
                Invitation.expires_at > now,
            )
        )
        if invited is not None:
            raise Taken("This email address is already registered.", source="email", value=mail)

    def create_account(
        self,
        caller: Caller,
        username: str | None,
        password: str | None,
        email: str | None,
        display_name: str | None,
        *,
        verified: bool = False,
    ) -> User:
        """Make an account (no audit record: the caller's operation writes its own).
        ``verified``: the address is known to reach the person (an invitation link
        sent there was used); otherwise a verification link goes to it."""
        user = self._create(caller, username, password, email, display_name)
        user.email_verified = verified and user.email is not None
        if user.email and not verified:
            self.lifecycle().send_verification(user, caller.now)
        return user

    def lifecycle(self) -> Lifecycle:
        """The email-driven operations over the same transaction
        (:mod:`passport.services.lifecycle`)."""
        from passport.services.lifecycle import Lifecycle

        return Lifecycle(self)

    def _create(
        self,
        caller: Caller,
        username: str | None,
        password: str | None,
        email: str | None,
        display_name: str | None,
    ) -> User:
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
            email_key=email_key(mail) if mail else None,
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
                raise Taken(
                    "This email address is already registered.",
                    source="email",
                    value=mail,
                ) from None
            raise Taken(
                f"The username '{name}' is already taken.",
                source="username",
                value=name,
            ) from None
        return user

    # -- sign-in --------------------------------------------------------------
    def _find(self, identifier: str) -> tuple[User | None, str]:
        """The user named by username, email or a look-alike of the username
        (detached from the read session), and the throttle key of the attempt.

        A name that looks like a username (passport.lookalikes) names that account:
        registration refuses look-alikes, so it names no other, and the account's
        password is still needed.  Every form of one account therefore shares the
        counter ``account:user:<id>``; a name that no account has is counted under
        its look-alike key, so its look-alikes share a counter too.
        """
        name = sign_in_name(identifier)
        exact: str | None = None
        if "@" in name:
            email = email_key(name)
            condition = User.email_key == email
            unknown = account_key("email:" + email)
        else:
            exact, similar = canonical(name), lookalike_key(name)
            condition = or_(User.username_key == exact, User.username_skeleton == similar)
            unknown = account_key(similar)
        try:
            found = self.read_session.scalars(select(User).where(condition).limit(2)).all()
            # Users that looked alike before names were compared so (migration 0008)
            # each keep their own exact name.
            user = next((u for u in found if u.username_key == exact), None)
            if user is None and found:
                user = found[0]
            if user is not None:
                self.read_session.expunge(user)
            return user, user_account_key(user.id) if user is not None else unknown
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
        replacing: LoginSessionInfo | None = None,
    ) -> LoginResult | SecondStep:
        """Sign in with a username (or email) and password: a session, or the second
        step that the user still owes (:mod:`passport.services.factors`).

        ``replacing`` is the browser's session before this sign-in, if any: it ends
        when the new one starts (:meth:`finish_sign_in`)."""
        if identifier is None or identifier == "":
            raise required("username", "Username must be specified.")
        if password is None or password == "":
            raise required("password", "Password must be specified.")
        if self.passwords.saturated():  # refused before it costs a lookup or a counter
            raise ServiceUnavailable(BUSY_MESSAGE)
        attempted = unicodedata.normalize("NFKC", identifier)[:64]
        user, account = self._find(identifier)
        keys = [account, ip_key(caller.ip)]
        record = AuditRecord(
            "login",
            "",
            caller.now,
            username=attempted,
            application=application,
            ip=caller.ip,
            user_agent=caller.user_agent,
        )
        # Reserved (counted as a failure) before the password is checked, atomically:
        # parallel attempts cannot all pass a check made before any of them is counted.
        attempt = self.throttle.reserve(keys, caller.now)
        if attempt.wait:
            self.audit(_with(record, outcome="throttled"), durable=True)
            raise Throttled(
                "Too many failed attempts; try again later.",
                source="username",
                retry_after=attempt.wait,
            )

        try:
            if user is None:
                self.passwords.verify_dummy(password)
                ok = False
            else:
                ok = self.passwords.verify(user.password_hash, password) and not user.disabled
        except ServiceUnavailable:
            self.throttle.release(keys)  # no password was checked: not a failure
            raise
        if not ok or user is None:
            uid = user.id if user is not None else None
            self.audit(_with(record, outcome="failure", user_id=uid), durable=True)
            if attempt.over:
                self.audit(
                    _with(record, event="lockout", outcome="throttled", user_id=uid),
                    durable=True,
                )
            raise NotSignedIn(GENERIC_LOGIN_FAILURE, source="username")

        # A second factor owed: no session yet.  The account's counter is not reset by
        # the password (else each right password would buy a fresh budget of code
        # guesses); the attempt reserved is taken back, and the counters start again
        # only when the second factor is right (:meth:`Factors.verify_code`).  Decided
        # on the read session, and the counters settled, before this request's
        # transaction writes (on SQLite the counters' own transaction would wait for it).
        try:
            reader = Factors(
                self.settings, self.throttle, self.read_session, self.audit, self.after
            )
            owed = reader.sign_in_level(user.id)
            action = needed(reader.summary(user.id), "pwd", owed) if owed > Level.PASSWORD else ""
        finally:
            self.read_session.close()
        if owed > Level.PASSWORD:
            self.throttle.release(keys)
        else:
            # The account's count starts again; the address keeps only its failures.
            self.throttle.succeeded(account, keys[1])
        user = self.db.merge(user, load=False)
        if self.passwords.needs_rehash(user.password_hash):
            user.password_hash = self.passwords.hash(normalise(password))
        if owed > Level.PASSWORD:
            self.audit(
                _with(record, outcome="second_factor", user_id=user.id, username=user.username)
            )
            return SecondStep(user, owed, action or "verify")
        return self.finish_sign_in(
            caller, user, amr="pwd", remember=remember, application=application, replacing=replacing
        )

    def factors(self) -> Factors:
        """The second-factor operations over the same transaction, audit and throttle."""
        return Factors(self.settings, self.throttle, self.db, self.audit, self.after)

    def finish_sign_in(
        self,
        caller: Caller,
        user: User,
        *,
        amr: str,
        remember: bool,
        application: str = "",
        replacing: LoginSessionInfo | None = None,
    ) -> LoginResult:
        """Start the session of a sign-in whose every factor is proved (``amr``: how,
        RFC 8176) — after the password alone, after a second factor, with a passkey.

        ``replacing`` is the browser's session before this sign-in, if any: it ends when
        the new one starts (a fresh session id at every sign-in, OWASP ASVS 5 7.2.4: no
        session fixation)."""
        if user.disabled:
            raise NotSignedIn(GENERIC_LOGIN_FAILURE, source="username")
        # An account without an address has none to confirm (an operator's first
        # administrator): the rule is about addresses, not a lock on such accounts.
        if self.settings.require_verified_email and user.email and not user.email_verified:
            self.audit(
                user_record("login", "unverified", caller, user, application=application),
                durable=True,
            )
            raise EmailNotVerified(
                "Confirm your email address before signing in: open the link we sent "
                "you, or ask for a new one.",
                source="username",
            )
        # A reset link asked for and not used dies with a successful sign-in.
        self.db.execute(
            delete(EmailLink).where(EmailLink.user_id == user.id, EmailLink.purpose == "reset")
        )
        # The same user signing in again in this browser (prompt=login, max_age, a
        # step-up) goes on with the same session at the OP: a new cookie, the same
        # ``sid``, so that the applications that know it are still told when it ends.
        # Another user's session ends here, and its applications are told (Back-Channel
        # Logout 1.0 §2).
        same_user = replacing is not None and replacing.user_id == user.id
        token, info = new_session_info(
            self.settings,
            user.id,
            caller.now,
            remember=remember,
            ip=caller.ip,
            user_agent=caller.user_agent,
            sid=replacing.sid if same_user and replacing is not None else None,
            amr=amr,
        )
        self.sessions.add(info, self.db, identity_of(user))
        if replacing is not None:
            self.sessions.remove(replacing.id_hash, self.db)
            previous = None if same_user else self.db.get(User, replacing.user_id)
            if previous is not None:
                end_session_access(self.db, self.notify_logout, previous, replacing.sid)
        self.audit(
            user_record(
                "login",
                "success",
                caller,
                user,
                application=application,
                detail="" if amr == "pwd" else f"amr: {amr}",
            )
        )
        return LoginResult(user, token, info)

    def sign_out(self, caller: Caller, user: User | None, session: LoginSessionInfo | None) -> None:
        """End the browser's session and tell the applications that hold tokens of the
        user (back-channel logout, queued in this transaction)."""
        self.logout(caller, user, session)
        if user is not None and session is not None:
            end_session_access(self.db, self.notify_logout, user, session.sid)

    def sessions_of(self, user_id: int, now: datetime) -> list[LoginSessionInfo]:
        """The user's live sessions, newest first as the store lists them."""
        return self.sessions.list_for_user(user_id, now)

    def end_other_sessions(self, caller: Caller, user: User, keep: str | None) -> int:
        """A user's first second factor: every other session of theirs ends (each told to
        its applications, Back-Channel Logout 1.0 §2.3), as at a password change — one
        signed in with the password alone before, perhaps by whoever learnt it, must not
        go on as if it had proved the factor."""
        ended = 0
        for item in self.sessions.list_for_user(user.id, caller.now):
            if item.id_hash != keep:
                self._end_session(caller, user, item, detail="first second factor")
                ended += 1
        return ended

    def _end_session(
        self, caller: Caller, user: User, item: LoginSessionInfo, *, detail: str = ""
    ) -> None:
        """One of ``user``'s sessions ends (:meth:`close_session`), audited."""
        self.close_session(user, item)
        self.audit(user_record("session.end", "success", caller, user, detail=detail))

    def close_session(self, user: User, item: LoginSessionInfo) -> None:
        """The one way one of ``user``'s sessions ends, whoever ends it (the user, a first
        second factor, an administrator: :meth:`Administration.end_session`, which audits
        it with the actor): removed from the store, the applications signed in through it
        told (Back-Channel Logout 1.0 §2.3), its unused codes dropped."""
        self.sessions.remove(item.id_hash, self.db)
        end_session_access(self.db, self.notify_logout, user, item.sid)

    def end_own_session(
        self, caller: Caller, user: User, session_id: str | None
    ) -> LoginSessionInfo:
        """End one of the user's own sessions, named by the prefix of its hash that
        :meth:`sessions_of` shows (``Account/endSession``, the account page)."""
        if not session_id:
            raise required("id", "Session id must be specified.")
        for item in self.sessions.list_for_user(user.id, caller.now):
            if hmac.compare_digest(item.id_hash[:16].encode(), session_id.lower().encode()):
                self._end_session(caller, user, item)
                return item
        raise NotFound("You have no active session with this id.", source="id", value=session_id)

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

    def prove_password(
        self,
        caller: Caller,
        user_id: int,
        password: str | None,
        *,
        event: str,
        source: str = "password",
    ) -> User:
        """The signed-in user, once they proved their current password (to change their
        password or their address).

        A credential check like a login (security checklist item 40): the attempt is
        reserved on the account's and the address's counters *before* the password is
        checked and before this request's transaction takes SQLite's write lock (so
        ``user_id``, not an entity loaded in that transaction), so parallel guesses by
        someone holding a stolen session count one each.  A wrong password is audited
        as a failed ``event``.
        """
        if password is None or password == "":
            raise required(source, "The current password must be specified.")
        if self.passwords.saturated():  # refused before it costs a counter
            raise ServiceUnavailable(BUSY_MESSAGE)
        keys = [user_account_key(user_id), ip_key(caller.ip)]
        attempt = self.throttle.reserve(keys, caller.now)
        if attempt.wait:
            raise Throttled(
                "Too many failed attempts; try again later.",
                source=source,
                retry_after=attempt.wait,
            )
        user = self.db.get(User, user_id)
        if user is None or user.disabled:
            self.after(lambda: self.throttle.release(keys))
            raise NotSignedIn("You must be logged in.", source="session")
        try:
            correct = self.passwords.verify(user.password_hash, password)
        except ServiceUnavailable:
            self.after(lambda: self.throttle.release(keys))  # nothing was checked
            raise
        if not correct:
            # The reserved attempt stays counted as the failure it was.
            self.audit(user_record(event, "failure", caller, user), durable=True)
            raise NotSignedIn("The current password is not correct.", source=source)
        # Not a failure: the reservation is taken back once the transaction is over (on
        # SQLite it holds the write lock, which the counters' own transaction would wait for).
        self.after(lambda: self.throttle.release(keys))
        return user

    # -- password change ------------------------------------------------------
    def change_password(
        self,
        caller: Caller,
        user_id: int,
        current: LoginSessionInfo,
        old_password: str | None,
        new_password: str | None,
    ) -> tuple[User, str, LoginSessionInfo]:
        """Change the signed-in user's password, proving the current one.

        The current password is a credential check like a login (security checklist
        item 40): the attempt is reserved on the account's and the address's counters
        *before* the password is checked and before this request's transaction takes
        SQLite's write lock (so ``user_id``, not an entity loaded in that transaction),
        so parallel guesses by someone holding a stolen session count one each.
        """
        if old_password is None or old_password == "":
            raise required("oldPassword", "The current password must be specified.")
        if new_password is None or new_password == "":
            raise required("newPassword", "The new password must be specified.")
        user = self.prove_password(
            caller, user_id, old_password, event="password_change", source="oldPassword"
        )
        record = user_record("password_change", "", caller, user)
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
        return user, token, info


def user_record(
    event: str,
    outcome: str,
    caller: Caller,
    user: User | None,
    *,
    application: str = "",
    detail: str = "",
) -> AuditRecord:
    """An audit record of ``user`` (or nobody) doing ``event``, from the caller's address
    and browser at the caller's time."""
    return AuditRecord(
        event,
        outcome,
        caller.now,
        user.id if user is not None else None,
        user.username if user is not None else "",
        application=application,
        ip=caller.ip,
        user_agent=caller.user_agent,
        detail=detail,
    )


def _with(record: AuditRecord, **changes: object) -> AuditRecord:
    return replace(record, **changes)  # type: ignore[arg-type]
