"""Ending what a user is signed in with: one function for every reason to do it.

A password change or reset, disabling, deleting and an administrator's "log out
everywhere" all end the user's Passport sessions *and* their OAuth refresh and
access tokens, and tell the applications by back-channel logout (security
checklist items 18 and 41; OpenID Connect Back-Channel Logout 1.0 §2: the OP
sends a logout token when the user's session at the OP ends).  All of it in
the caller's transaction: the tokens die with the change that ends them, or not
at all.

Ending *one* session (sign-out, RP-Initiated Logout, ending a session from the account
page) tells only the applications that were signed in through that session, naming
its ``sid`` (:func:`end_session_access`).  Ending *all* of them sends each application
one token with ``sub`` and no ``sid`` (§2.4: "all sessions at the RP" of that user):
one per application rather than one per session, because it also covers sessions
whose tokens predate ``sid`` (migration 0010) or whose session already expired while
its refresh tokens live on.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any
from typing import Protocol

from sqlalchemy import delete
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from passport.services.sessions import SessionStore
from passport.storage.models import AuthorizationCode
from passport.storage.models import Consent
from passport.storage.models import DeviceAuthorization
from passport.storage.models import EmailLink
from passport.storage.models import OAuthToken
from passport.storage.models import PendingAuthorization
from passport.storage.models import SignInStep
from passport.storage.models import User


class NotifyLogout(Protocol):
    """Queues back-channel logout tokens for a user in a transaction: for the session
    named by its ``sid``, or (None) for all of the user's sessions; ``application_id``:
    only that application is told (:meth:`passport.composition.Services.notify_logout`:
    the durable outbox)."""

    def __call__(
        self, db: Session, user: User, sid: str | None, *, application_id: int | None = None
    ) -> None: ...


def end_user_access(
    db: Session,
    sessions: SessionStore,
    notify_logout: NotifyLogout,
    user: User,
    now: datetime,
    *,
    keep_session: str | None = None,
) -> int:
    """End ``user``'s sessions (but ``keep_session``, an id hash) and their sign-ins in
    progress, revoke every OAuth
    token of theirs (RFC 7009 §2.1: a refresh token's access tokens go with it), drop
    their unused authorization codes, and queue logout tokens for the applications
    that hold tokens for them.  Returns the number of sessions ended."""
    # First, while their tokens still name the applications that must be told.
    notify_logout(db, user, None)
    db.execute(
        update(OAuthToken)
        .where(OAuthToken.user_id == user.id, OAuthToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    db.execute(delete(AuthorizationCode).where(AuthorizationCode.user_id == user.id))
    # Devices the user allowed and that have not redeemed yet (RFC 8628): as unused codes.
    db.execute(delete(DeviceAuthorization).where(DeviceAuthorization.user_id == user.id))
    # Sign-ins half-way (the password given, the second factor owed) and challenges or
    # enrolments in progress: what the password or the factors were a moment ago is no
    # longer enough (a reset password, a disabled account).
    db.execute(delete(SignInStep).where(SignInStep.user_id == user.id))
    # A password reset link asked for earlier dies too: whoever reset, disabled or
    # signed the user out everywhere means to shut every way in.
    db.execute(delete(EmailLink).where(EmailLink.user_id == user.id, EmailLink.purpose == "reset"))
    return sessions.remove_for_user(user.id, db, keep=keep_session)


def end_session_access(db: Session, notify_logout: NotifyLogout, user: User, sid: str) -> None:
    """One of ``user``'s sessions ended (its store entry is the caller's to remove): queue
    logout tokens naming its ``sid`` for the applications signed in through it
    (Back-Channel Logout 1.0 §2.3-§2.4), and drop the codes issued in it and not yet
    redeemed, so that no application is signed in through the session after it was
    told.  Its tokens live on: a refresh token (``offline_access``) outlives the
    browser session it came from (OpenID Connect Core 1.0 §11)."""
    notify_logout(db, user, sid)
    db.execute(
        delete(AuthorizationCode).where(
            AuthorizationCode.user_id == user.id,
            AuthorizationCode.sid == sid,
            # A used code stays until it expires: used again, it revokes what it issued
            # (RFC 6749 §4.1.2), which those tokens, alive after the sign-out, still need.
            AuthorizationCode.used_at.is_(None),
        )
    )
    db.execute(
        delete(DeviceAuthorization).where(
            DeviceAuthorization.user_id == user.id, DeviceAuthorization.sid == sid
        )
    )


def end_user_application_access(
    db: Session, notify_logout: NotifyLogout, user: User, application_id: int, now: datetime
) -> int:
    """``user``'s access to one application ends (an administrator's "revoke" on the
    user's page), the rest of their access untouched: the application is told first, while
    the user's tokens still name it (Back-Channel Logout 1.0 §2.4: ``sub`` alone, every
    session of the user at that RP), then every token of the user for it is revoked
    (RFC 7009 §2.1: a refresh token's access tokens go with it), their codes and device
    approvals for it dropped, and the consent forgotten, so that the next sign-in there
    asks again (OpenID Connect Core 1.0 §3.1.2.4).  Their Passport sessions stay.  Returns
    the number of live tokens revoked."""
    notify_logout(db, user, None, application_id=application_id)
    revoked = db.execute(
        update(OAuthToken)
        .where(
            OAuthToken.user_id == user.id,
            OAuthToken.application_id == application_id,
            OAuthToken.revoked_at.is_(None),
        )
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    db.execute(
        delete(AuthorizationCode).where(
            AuthorizationCode.user_id == user.id,
            AuthorizationCode.application_id == application_id,
        )
    )
    db.execute(
        delete(DeviceAuthorization).where(
            DeviceAuthorization.user_id == user.id,
            DeviceAuthorization.application_id == application_id,
        )
    )
    db.execute(
        delete(Consent).where(Consent.user_id == user.id, Consent.application_id == application_id)
    )
    return int(getattr(revoked, "rowcount", 0) or 0)


def end_client_resource_access(
    db: Session, client_ids: Collection[int], uris: Collection[str], now: datetime
) -> int:
    """Clients taken off a resource server's list (``resource_clients``) lose the client
    credentials tokens they hold for its identifiers, at once: the administrator who
    removes a client means that it stops reaching the API (RFC 8707 §2: the server
    decides which client may access the resource), not in an hour.  Only tokens without
    a user (the client credentials grant, RFC 6749 §4.4) whose audience names one of
    ``uris``; a user's tokens for the API came with that user's consent and stay.
    Returns how many were revoked."""
    gone = {uri for uri in uris if uri}
    if not client_ids or not gone:
        return 0
    rows = db.execute(
        select(OAuthToken.id, OAuthToken.audience).where(
            OAuthToken.application_id.in_(list(client_ids)),
            OAuthToken.user_id.is_(None),
            OAuthToken.revoked_at.is_(None),
            OAuthToken.audience.is_not(None),
        )
    ).all()
    ids = [row.id for row in rows if gone & set((row.audience or "").split())]
    if ids:
        db.execute(
            update(OAuthToken)
            .where(OAuthToken.id.in_(ids))
            .values(revoked_at=now)
            .execution_options(synchronize_session=False)
        )
    return len(ids)


def end_application_access(db: Session, application_id: int, now: datetime) -> None:
    """Revoke every token an application holds and drop its unused codes: a disabled
    application's tokens stay dead when it is enabled again (an application is disabled
    when it is compromised or retired; its holders must sign in again)."""
    db.execute(
        update(OAuthToken)
        .where(OAuthToken.application_id == application_id, OAuthToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    db.execute(delete(AuthorizationCode).where(AuthorizationCode.application_id == application_id))
    db.execute(
        delete(DeviceAuthorization).where(DeviceAuthorization.application_id == application_id)
    )


def _naming(column: Any, gone: Collection[str]) -> Any:
    """A coarse SQL filter for a space-separated column that may hold one of ``gone``
    (LIKE, escaped; a case-folding collation may match more): the caller checks each row
    exactly."""
    return or_(*(column.contains(uri, autoescape=True) for uri in gone))


def _names(stored: str | None, gone: Collection[str]) -> bool:
    return bool(set((stored or "").split()) & set(gone))


def end_resource_access(db: Session, uris: Collection[str], now: datetime) -> None:
    """RFC 8707 resource identifiers stop being an application's (removed from it, or the
    application deleted): end everything that was granted *for them*, in the caller's
    transaction, so that nothing granted for the old resource server passes to whoever
    registers the identifier next.

    Tokens, codes, pending authorizations and consents keep only the identifier (RFC 8707
    §2: the audience is the URI); who serves it is looked up when they are used
    (introspection, refresh, consent).  So here, the one place an identifier leaves an
    application: revoke the access tokens whose audience names one and the whole refresh
    family whose grant does (RFC 7009 §2.1: a refresh token's access tokens go with it),
    drop the unused codes and the pending authorizations that name one (the consent page
    named the old application), and take the identifiers out of the consents that name
    them (the user allowed the old application, not a later one: OIDC Core §3.1.2.4 asks
    again; the scopes they allowed stay allowed).

    Disabling an application is not this: its identifiers stay its own, and every use
    checks that their application is enabled (:func:`passport.oidc.tokens.resources_asked`)."""
    gone = {uri for uri in uris if uri}
    if not gone:
        return
    tokens = db.execute(
        select(OAuthToken.id, OAuthToken.kind, OAuthToken.family, OAuthToken.audience).where(
            OAuthToken.revoked_at.is_(None), _naming(OAuthToken.audience, gone)
        )
    ).all()
    ids = [row.id for row in tokens if _names(row.audience, gone)]
    families = {
        row.family for row in tokens if row.kind == "refresh" and _names(row.audience, gone)
    }
    if ids or families:
        db.execute(
            update(OAuthToken)
            .where(
                OAuthToken.revoked_at.is_(None),
                or_(OAuthToken.id.in_(ids), OAuthToken.family.in_(families)),
            )
            .values(revoked_at=now)
            .execution_options(synchronize_session=False)
        )
    for model, key in (
        (AuthorizationCode, AuthorizationCode.code_hash),
        (PendingAuthorization, PendingAuthorization.handle_hash),
    ):
        condition = [_naming(model.resource, gone)]
        if model is AuthorizationCode:
            # A used code stays: used again, it revokes what it issued (RFC 6749 §4.1.2).
            condition.append(AuthorizationCode.used_at.is_(None))
        found = db.execute(select(key, model.resource).where(*condition)).all()
        doomed = [row[0] for row in found if _names(row[1], gone)]
        if doomed:
            db.execute(
                delete(model).where(key.in_(doomed)).execution_options(synchronize_session=False)
            )
    for consent in db.scalars(select(Consent).where(_naming(Consent.resource, gone))).all():
        kept = [uri for uri in (consent.resource or "").split() if uri not in gone]
        consent.resource = " ".join(kept) or None
