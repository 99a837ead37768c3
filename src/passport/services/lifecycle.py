"""The account lifecycle by email: verifying an address, resetting a forgotten
password, changing one's address, accepting an invitation.  One home for each.

Every operation here works through a **single-use link** (``email_links``): a 256-bit
random token in the URL, kept only as the SHA-256 of its purpose and value — so a link
made for one purpose is unknown to every other — with an expiry (``*_lifetime``
settings).  A link is checked without being used when its page is opened (a GET, which
mail scanners also make), and used up by the POST that acts, in one ``DELETE`` whose
row count says whether this request was first.  Links are built from the configured
public URL only (``Settings.issuer``), never from a request's ``Host``.

The messages go through the durable outbox (:mod:`passport.services.mail`) in the
transaction of the operation: a refusal or a failure sends nothing.

**No enumeration** (OWASP ASVS 5 §6.3.8, NIST SP 800-63B §5.1.1.2 on recovery): asking
for a reset or a verification link answers the same whatever the address — an
account, none, a disabled one — and does comparable work in each case (the message is
composed every time; only its row is left out), throttled per address and per client
address before anything is looked up, every request counted.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete
from sqlalchemy import select
from sqlalchemy.orm import Session

from passport.errors import Forbidden
from passport.errors import Invalid
from passport.errors import Throttled
from passport.errors import required
from passport.services.accounts import Caller
from passport.services.accounts import email_key
from passport.services.accounts import same_address
from passport.services.accounts import user_record
from passport.services.accounts import validate_email
from passport.services.identity import identity_of
from passport.services.mail import Letter
from passport.services.passwords import check_policy
from passport.services.policy import Actor
from passport.services.policy import ensure_may_invite
from passport.services.signout import end_user_access
from passport.services.throttle import mail_address_key
from passport.services.throttle import mail_ip_key
from passport.services.throttle import user_account_key
from passport.storage.models import EmailLink
from passport.storage.models import Group
from passport.storage.models import Invitation
from passport.storage.models import InvitationGroup
from passport.storage.models import User

if TYPE_CHECKING:
    from passport.services.accounts import Accounts

VERIFY = "verify"
RESET = "reset"
INVITE = "invite"
STALE_INVITATION = (
    "This invitation is no longer valid: whoever sent it may no longer invite you into "
    "its groups. Ask for a new one."
)
BAD_LINK = "This link is not valid: it was used already, replaced by a newer one, or it expired."
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")


def link_hash(purpose: str, token: str) -> str:
    return hashlib.sha256(f"{purpose}:{token}".encode()).hexdigest()


def valid_for(seconds: int) -> str:
    """ "30 minutes", "24 hours", "7 days": how long a link works, for its message."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


class Lifecycle:
    """The email-driven operations over one transaction (``accounts.db``)."""

    def __init__(self, accounts: Accounts) -> None:
        self.accounts = accounts
        self.db = accounts.db
        self.settings = accounts.settings
        self.outbox = accounts.outbox

    # -- links ---------------------------------------------------------------------------------
    def _ensure_public_url(self) -> None:
        """Links need Passport's public URL: refused before anything is looked up, so the
        refusal is the same for every address."""
        if not self.settings.issuer:
            raise Invalid("Passport's public URL (PASSPORT_PUBLIC_URL) is not set.", source="url")

    def _new_link(
        self,
        purpose: str,
        now: datetime,
        lifetime: int,
        address: str,
        *,
        user_id: int | None = None,
        invitation_id: int | None = None,
    ) -> str:
        """A new link's URL; the link is kept as its hash only."""
        if not self.settings.issuer:
            raise Invalid("Passport's public URL (PASSPORT_PUBLIC_URL) is not set.", source="url")
        token = secrets.token_urlsafe(32)
        self.db.add(
            EmailLink(
                id_hash=link_hash(purpose, token),
                purpose=purpose,
                user_id=user_id,
                invitation_id=invitation_id,
                address=address,
                created_at=now,
                expires_at=now + timedelta(seconds=lifetime),
            )
        )
        page = {VERIFY: "/email/verify", RESET: "/password/reset", INVITE: "/invite"}[purpose]
        return f"{self.settings.issuer}{page}?token={token}"

    def _link(self, purpose: str, token: str | None, now: datetime) -> EmailLink:
        """The live link of ``purpose`` that ``token`` names, or :data:`BAD_LINK`."""
        if token is None or token == "":
            raise required("token", "The link has no token; open the link from the message.")
        if not _TOKEN.fullmatch(token):
            raise Invalid(BAD_LINK, source="token")
        link = self.db.get(EmailLink, link_hash(purpose, token))
        if link is None or link.purpose != purpose or link.expires_at <= now:
            raise Invalid(BAD_LINK, source="token")
        return link

    def _use(self, link: EmailLink) -> None:
        """Use the link up; only the first of two simultaneous requests gets here."""
        gone = self.db.execute(delete(EmailLink).where(EmailLink.id_hash == link.id_hash))
        if getattr(gone, "rowcount", 0) != 1:
            raise Invalid(BAD_LINK, source="token")

    def _drop_links(self, purpose: str, user_id: int) -> None:
        self.db.execute(
            delete(EmailLink).where(EmailLink.user_id == user_id, EmailLink.purpose == purpose)
        )

    def _reserve(self, caller: Caller, address: str, source: str) -> None:
        """Count a request for mail on the address's and the client address's counters;
        every request counts (nothing is "released"), whatever the address."""
        keys = [mail_address_key(address), mail_ip_key(caller.ip)]
        attempt = self.accounts.throttle.reserve(keys, caller.now)
        if attempt.wait:
            raise Throttled(
                "Too many messages were asked for; try again later.",
                source=source,
                retry_after=attempt.wait,
            )

    def _record(
        self,
        event: str,
        outcome: str,
        caller: Caller,
        user: User | None = None,
        detail: str = "",
        *,
        durable: bool = False,
    ) -> None:
        self.accounts.audit(
            user_record(event, outcome, caller, user, detail=detail), durable=durable
        )

    def _address(self, raw: str | None, source: str) -> str:
        """A typed address, checked as registration checks it."""
        if raw is None or raw.strip() == "":
            raise required(source, "Email must be specified.")
        mail = validate_email(raw)
        assert mail is not None
        return mail

    # -- verifying an address ----------------------------------------------------------------
    def _mail_link(
        self,
        purpose: str,
        template: str,
        user: User | None,
        address: str,
        lifetime: int,
        now: datetime,
    ) -> bool:
        """Mail ``user`` a new link of ``purpose`` to ``address`` (their earlier links of
        it die) — or, for no user, do the very same work and keep none of it.

        Both run the same statements: a DELETE of earlier links, a link and a message
        INSERTed, in a savepoint that is released for a user and rolled back otherwise;
        the message is composed and sealed either way.  So the time of the answer does
        not tell whether an account has the address (the answer itself never does)."""
        with self.db.begin_nested() as savepoint:
            self._drop_links(purpose, user.id if user is not None else -1)
            link = self._new_link(
                purpose, now, lifetime, address, user_id=user.id if user is not None else None
            )
            values = {
                "username": user.username if user is not None else "",
                "email": address,
                "link": link,
                "valid_for": valid_for(lifetime),
            }
            queued = self.outbox.queue(
                self.db,
                Letter(template, address, values),
                now,
                user_id=user.id if user is not None else None,
            )
            self.db.flush()
            if user is None or queued is None:  # no account, or its address had its share
                savepoint.rollback()
        return user is not None and queued is not None

    def send_verification(self, user: User, now: datetime) -> bool:
        """Send ``user`` a link proving their current address (earlier links die);
        False when there is nothing to send (no address, no mail)."""
        if not user.email or user.email_verified or not self.outbox.enabled:
            return False
        lifetime = self.settings.email_verification_lifetime
        return self._mail_link(VERIFY, "verify_email", user, user.email, lifetime, now)

    def request_verification(self, caller: Caller, address: str | None) -> None:
        """A new verification link for the account with this unverified address — the
        same answer, and the same work, whether there is one or not."""
        self.outbox.ensure_enabled("email")
        self._ensure_public_url()
        mail = self._address(address, "email")
        self._reserve(caller, email_key(mail), "email")
        user = self.db.scalars(select(User).where(User.email_key == email_key(mail))).first()
        owner = (
            user
            if user is not None and not user.disabled and user.email and not user.email_verified
            else None
        )
        lifetime = self.settings.email_verification_lifetime
        address_used = owner.email if owner is not None and owner.email else mail
        sent = self._mail_link(VERIFY, "verify_email", owner, address_used, lifetime, caller.now)
        self._record("email_verification_request", "sent" if sent else "nothing", caller, user)

    def verify_email(self, caller: Caller, token: str | None) -> User:
        """Mark the address a verification link was sent to as verified, if it is still
        the account's address."""
        link = self._link(VERIFY, token, caller.now)
        user = self.db.get(User, link.user_id) if link.user_id is not None else None
        if user is None or user.disabled or user.email != link.address:
            raise Invalid(BAD_LINK, source="token")
        self._use(link)
        user.email_verified = True
        self.accounts.sessions.refresh_identity(identity_of(user))
        self._record("email_verify", "success", caller, user)
        return user

    def check_verification(self, token: str | None, now: datetime) -> User:
        """The user a verification link is for (the page that confirms it), unused."""
        link = self._link(VERIFY, token, now)
        user = self.db.get(User, link.user_id) if link.user_id is not None else None
        if user is None or user.disabled or user.email != link.address:
            raise Invalid(BAD_LINK, source="token")
        return user

    # -- changing an address ---------------------------------------------------------------------
    def address_changed(self, user: User, old: str | None, now: datetime) -> None:
        """After ``user``'s address changed from ``old``: unverified, a verification link to
        the new address, a notice to the old one (its owner must hear of it — past the
        address's share of mail when it was confirmed: someone who never proved an
        address cannot make Passport write to it beyond the share)."""
        confirmed = user.email_verified
        user.email_verified = False
        self._drop_links(VERIFY, user.id)
        self._drop_links(RESET, user.id)  # they were sent to the old address
        self.accounts.sessions.refresh_identity(identity_of(user))
        if not self.outbox.enabled:
            return
        self.send_verification(user, now)
        if old and old != user.email:
            self.outbox.queue(
                self.db,
                Letter(
                    "email_changed",
                    old,
                    {
                        "username": user.username,
                        "new_email": user.email or "(none)",
                    },
                ),
                now,
                user_id=user.id,
                notice=confirmed,
            )

    def change_email(
        self, caller: Caller, user_id: int, password: str | None, address: str | None
    ) -> User:
        """The signed-in user changes their own address, proving their password."""
        mail = self._address(address, "email")
        # Each change mails the new address and the old one: counted like any request
        # for mail, so that an account cannot be used to bomb addresses (first: the
        # counters' own transactions come before this request's reads, for SQLite).
        self._reserve(caller, email_key(mail), "email")
        user = self.accounts.prove_password(caller, user_id, password, event="email_change")
        if same_address(user.email, mail):
            raise Invalid("This is already your email address.", source="email", value=mail)
        self.accounts.refuse_invited_address(mail, caller.now)
        old = user.email
        from passport.services import directory

        with directory.unique(self.db, "This email address is already registered.", "email", mail):
            user.email, user.email_key = mail, email_key(mail)
        # Any other text is another address to prove, even one of the same key (a
        # change of letter case may be a change of mailbox on some hosts).
        self.address_changed(user, old, caller.now)
        self._record("email_change", "success", caller, user)
        return user

    # -- a forgotten password --------------------------------------------------------------------
    def request_password_reset(self, caller: Caller, address: str | None) -> None:
        """Mail a reset link to the account with this address, if there is one, active.
        The caller learns nothing either way: the same answer, the same work
        (:meth:`_mail_link`)."""
        self.outbox.ensure_enabled("email")
        self._ensure_public_url()
        mail = self._address(address, "email")
        key = email_key(mail)
        self._reserve(caller, key, "email")
        user = self.db.scalars(select(User).where(User.email_key == key)).first()
        owner = user if user is not None and not user.disabled and user.email else None
        lifetime = self.settings.password_reset_lifetime
        address_used = owner.email if owner is not None and owner.email else mail
        sent = self._mail_link(RESET, "password_reset", owner, address_used, lifetime, caller.now)
        self._record("password_reset_request", "sent" if sent else "nothing", caller, user)

    def check_reset(self, token: str | None, now: datetime) -> User:
        """The user a reset link is for (the page that asks for the new password)."""
        link = self._link(RESET, token, now)
        user = self.db.get(User, link.user_id) if link.user_id is not None else None
        if user is None or user.disabled:
            raise Invalid(BAD_LINK, source="token")
        return user

    def reset_password(self, caller: Caller, token: str | None, password: str | None) -> User:
        """Set a new password through a reset link: the policy applies, the link is used
        up, every session and token family of the user ends (their applications are
        told), the user's address counts as verified (the link reached it), and the
        address hears that the password changed.  A second factor is still asked at the
        next sign-in: the link replaces the password only."""
        link = self._link(RESET, token, caller.now)
        user = self.db.get(User, link.user_id) if link.user_id is not None else None
        if user is None or user.disabled:
            raise Invalid(BAD_LINK, source="token")
        if password is None or password == "":
            raise required("newPassword", "The new password must be specified.")
        text = check_policy(
            password,
            username=user.username,
            min_length=self.settings.password_min_length,
            source="newPassword",
        )
        # Hashed before the link is used up: a busy hasher (503) leaves the link working,
        # and on SQLite the write lock is not held while the hash is computed.
        hashed = self.accounts.passwords.hash(text)
        self._use(link)
        self._drop_links(RESET, user.id)
        user.password_hash = hashed
        user.password_changed_at = caller.now
        if user.email is not None and hmac.compare_digest(link.address, user.email):
            user.email_verified = True
        ended = end_user_access(
            self.db, self.accounts.sessions, self.accounts.notify_logout, user, caller.now
        )
        # The account may sign in at once, even after the failures that made them ask.
        self.accounts.after(lambda: self.accounts.throttle.store.reset(user_account_key(user.id)))
        if user.email:
            self.outbox.queue(
                self.db,
                Letter(
                    "password_changed",
                    user.email,
                    {"username": user.username},
                ),
                caller.now,
                user_id=user.id,
                notice=True,
            )
        self._record("password_reset", "success", caller, user, f"sessions ended: {ended}")
        return user

    # -- invitations ---------------------------------------------------------------------------
    def send_invitation(self, invitation: Invitation, inviter: str, now: datetime) -> None:
        """A (new) link for ``invitation`` by mail; earlier links of it die."""
        self.db.execute(delete(EmailLink).where(EmailLink.invitation_id == invitation.id))
        lifetime = self.settings.invitation_lifetime
        invitation.sent_at = now
        invitation.expires_at = now + timedelta(seconds=lifetime)
        link = self._new_link(INVITE, now, lifetime, invitation.email, invitation_id=invitation.id)
        queued = self.outbox.queue(
            self.db,
            Letter(
                "invitation",
                invitation.email,
                {"inviter": inviter, "link": link, "valid_for": valid_for(lifetime)},
            ),
            now,
        )
        if queued is None:
            raise Throttled(
                "This address was sent enough messages for now; try again later.",
                source="email",
                retry_after=self.settings.throttle_window,
            )

    def check_invitation(self, token: str | None, now: datetime) -> Invitation:
        """The live invitation a link is for (the page that makes the account)."""
        link = self._link(INVITE, token, now)
        invitation = (
            self.db.get(Invitation, link.invitation_id) if link.invitation_id is not None else None
        )
        if (
            invitation is None
            or invitation.accepted_at is not None
            or invitation.revoked_at is not None
            or invitation.expires_at <= now
        ):
            raise Invalid(BAD_LINK, source="token")
        self._inviter_may_still(invitation, invited_groups(self.db, invitation.id))
        return invitation

    def _inviter_may_still(self, invitation: Invitation, groups: list[Group]) -> None:
        """The invitation holds only while its inviter could still make it: enabled,
        holding the rights, and under the escalation rule for its groups as they are now
        (a group granted more rights since, an inviter disabled, deleted or stripped of
        a right — the invitation is dead).  The operator (``cli:``) holds every right."""
        if invitation.inviter.startswith("cli:") and invitation.invited_by is None:
            return
        inviter = (
            self.db.get(User, invitation.invited_by) if invitation.invited_by is not None else None
        )
        if inviter is None or inviter.disabled:
            raise Invalid(STALE_INVITATION, source="token")
        try:
            ensure_may_invite(self.db, Actor.administrator(self.db, inviter), groups)
        except Forbidden:
            raise Invalid(STALE_INVITATION, source="token") from None

    def accept_invitation(
        self,
        caller: Caller,
        token: str | None,
        username: str | None,
        password: str | None,
        display_name: str | None,
    ) -> User:
        """Make the invited person's account: their username and password, the invited
        address (verified: the link reached it), the invitation's groups."""
        invitation = self.check_invitation(token, caller.now)
        groups = invited_groups(self.db, invitation.id)
        user = self.accounts.create_account(
            caller, username, password, invitation.email, display_name, verified=True
        )
        self._use(self._link(INVITE, token, caller.now))
        from passport.services import directory

        for group in groups:
            directory.add_member(self.db, group, user)
        invitation.accepted_at = caller.now
        invitation.user_id = user.id
        self._record(
            "invitation_accept",
            "success",
            caller,
            user,
            f"invitation {invitation.id}; groups: {', '.join(g.name for g in groups) or '-'}",
        )
        return user


def invitation_state(invitation: Invitation, now: datetime) -> str:
    """``accepted``, ``revoked``, ``expired`` or ``pending``."""
    if invitation.accepted_at is not None:
        return "accepted"
    if invitation.revoked_at is not None:
        return "revoked"
    return "expired" if invitation.expires_at <= now else "pending"


def invited_groups(db: Session, invitation_id: int) -> list[Group]:
    """The groups an invitation makes its person join, by name."""
    return list(
        db.scalars(
            select(Group)
            .join(InvitationGroup, InvitationGroup.group_id == Group.id)
            .where(InvitationGroup.invitation_id == invitation_id)
            .order_by(Group.name)
        )
    )
