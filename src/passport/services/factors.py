"""Second factors: passkeys (WebAuthn), authenticator apps (TOTP), recovery codes, and
the policy that says when a sign-in needs one.  Where multi-factor sign-in is decided.

The hosted pages, the Passport API and the CLI only parse, call and format; every
enrolment, removal, verification and reset is a method of :class:`Factors`, which
checks, writes, throttles and audits (never a secret in an audit record).

**How strong a sign-in was** is its ``amr`` (RFC 8176 §2: ``pwd`` a password, ``otp``
an authenticator app's code, ``hwk``/``swk`` a key held in hardware / a synced passkey,
``mfa`` more than one factor), kept with the login session and copied into codes and
token families, so that ID tokens say it.  Its *level* orders the three classes that
Passport publishes as ``acr`` values (OIDC Core §2 ``acr``, Discovery
``acr_values_supported``):

=====  =============================  =====================================================
level  ``acr``                        reached by
=====  =============================  =====================================================
1      ``urn:passport:acr:password``  a password alone
2      ``urn:passport:acr:mfa``       a password and a second factor (code, recovery code)
3      ``phr``                        a passkey with user verification (OpenID EAP ACR
                                      Values 1.0 §2 "phishing-resistant"), alone or second
=====  =============================  =====================================================

A passkey with user verification is multi-factor by itself (NIST SP 800-63B §5.1.8:
a multi-factor cryptographic authenticator), so a passkey sign-in is ``hwk mfa``.

**When a second factor is owed** (:meth:`Factors.sign_in_level`, :func:`needed`):

* at every sign-in, by a user who has enrolled one (enrolling protects the account);
  by members of a group with ``require_mfa``; by holders of Passport's own rights when
  ``admin_mfa`` is set; and at the server's ``mfa_policy``;
* at an application's sign-in, by its ``mfa_policy`` (else the server's), and by the
  ``acr_values`` its request asks for (step-up, :func:`requested_level`).

A user who owes a factor they do not have is sent to enrol one before the session
starts.  Failed second factors count on the account's and the address's throttle
counters, as failed passwords do (:mod:`passport.services.throttle`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from enum import IntEnum
from typing import Any
from typing import Protocol

import pyotp
import segno
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import delete
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from webauthn import generate_authentication_options
from webauthn import generate_registration_options
from webauthn import options_to_json
from webauthn import verify_authentication_response
from webauthn import verify_registration_response
from webauthn.helpers import base64url_to_bytes
from webauthn.helpers import bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import AttestationConveyancePreference
from webauthn.helpers.structs import AuthenticatorSelectionCriteria
from webauthn.helpers.structs import AuthenticatorTransport
from webauthn.helpers.structs import PublicKeyCredentialDescriptor
from webauthn.helpers.structs import ResidentKeyRequirement
from webauthn.helpers.structs import UserVerificationRequirement

from passport.config import Settings
from passport.errors import FeatureDisabled
from passport.errors import Forbidden
from passport.errors import Invalid
from passport.errors import NotFound
from passport.errors import NotSignedIn
from passport.errors import Taken
from passport.errors import Throttled
from passport.errors import WrongLength
from passport.errors import required
from passport.services.audit import AuditRecord
from passport.services.kek import derived_key
from passport.services.kek import key_encryption_key
from passport.services.permissions import PASSPORT_APP_ID
from passport.services.policy import rights_of_user
from passport.services.sessions import LoginSessionInfo
from passport.services.text import check_text
from passport.services.throttle import Throttle
from passport.services.throttle import ip_key
from passport.services.throttle import user_account_key
from passport.storage.models import Application
from passport.storage.models import Group
from passport.storage.models import GroupMember
from passport.storage.models import RecoveryCode
from passport.storage.models import SignInStep
from passport.storage.models import TotpCredential
from passport.storage.models import User
from passport.storage.models import WebAuthnCredential


class Level(IntEnum):
    """How strong a sign-in is (the module's table)."""

    PASSWORD = 1
    MFA = 2
    PASSKEY = 3


ACR = {
    Level.PASSWORD: "urn:passport:acr:password",
    Level.MFA: "urn:passport:acr:mfa",
    Level.PASSKEY: "phr",
}
ACR_VALUES_SUPPORTED = [ACR[level] for level in Level]
POLICIES = {"optional": Level.PASSWORD, "mfa": Level.MFA, "passkey": Level.PASSKEY}
APPLICATION_POLICIES = ("default", *POLICIES)
# RFC 8176 §2 values in the order Passport writes them.
_AMR_ORDER = ("pwd", "otp", "hwk", "swk", "mfa")

STEP_COOKIE = "passport_step"
# What the account page may ask of :class:`Factors` (its ``action`` values).
FACTOR_ACTIONS = frozenset(
    {
        "passkey-add",
        "passkey-rename",
        "passkey-remove",
        "totp-start",
        "totp-confirm",
        "totp-remove",
        "recovery-new",
    }
)
STEP_LIFETIME = 300  # seconds to answer a challenge or finish a sign-in's second step
_STEP_COOKIE_LENGTH = 43  # secrets.token_urlsafe(32)
# WebAuthn responses are a few KiB; anything far larger is not one (nothing parsed).
MAX_CREDENTIAL_JSON = 16384
MAX_PASSKEYS = 20
RECOVERY_CODE_COUNT = 10
# 16 symbols of 31 (no 0/o, 1/l/i): 79 bits, shown as four groups of four.
_RECOVERY_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
_RECOVERY_LENGTH = 16
TOTP_PERIOD = 30
TOTP_DIGITS = 6
_TOTP_WINDOW = 1  # RFC 6238 §5.2: one step either side for clock drift and typing
WRONG_CODE = "That code is not correct."
WRONG_PASSKEY = "That passkey could not be verified; try again."
NEEDS_KEY = (
    "Authenticator apps and recovery codes need PASSPORT_KEY_ENCRYPTION_KEY "
    "(32 random bytes, base64url) to keep their secrets encrypted."
)


class Audit(Protocol):
    def __call__(self, record: AuditRecord, *, durable: bool = False) -> None: ...


# -- what a sign-in proved ----------------------------------------------------------
def amr_list(amr: str | None) -> list[str]:
    """The RFC 8176 values of a stored ``amr`` (None, from before migration 0021: a
    password)."""
    return (amr or "pwd").split()


def combine_amr(*parts: str) -> str:
    """The union of ``amr`` values, in Passport's order, with ``mfa`` when more than one
    factor is in it (RFC 8176 §2 ``mfa``: "multiple-factor authentication")."""
    values = {v for part in parts for v in part.split()} & set(_AMR_ORDER)
    factors = values - {"mfa"}
    if len(factors) > 1:
        values.add("mfa")
    return " ".join(v for v in _AMR_ORDER if v in values)


def level_of(amr: str | None) -> Level:
    values = set(amr_list(amr))
    if values & {"hwk", "swk"}:
        return Level.PASSKEY
    if "mfa" in values:
        return Level.MFA
    return Level.PASSWORD


def acr_of(amr: str | None) -> str:
    """The ``acr`` claim of a sign-in (OIDC Core §2)."""
    return ACR[level_of(amr)]


def requested_level(acr_values: str | None) -> Level | None:
    """The level an ``acr_values`` request asks for (OIDC Core §3.1.2.1: "space-separated
    string that specifies the acr values ... in order of preference"): its first value
    Passport knows; None when it names none (then the request is as without it —
    §15.1: unsupported values must not be an error)."""
    for value in (acr_values or "").split():
        for level, name in ACR.items():
            if value == name:
                return level
    return None


def policy_level(settings: Settings, policy: str) -> Level:
    """An application's ``mfa_policy`` (``default``: the server's ``mfa_policy``)."""
    if policy not in POLICIES:
        policy = settings.mfa_policy
    return POLICIES.get(policy, Level.PASSWORD)


def application_level(settings: Settings, policy: str, acr_values: str | None) -> Level:
    """What an application asks of every sign-in to it: its ``mfa_policy`` (else the
    server's), raised by the request's ``acr_values``."""
    level = policy_level(settings, policy)
    asked = requested_level(acr_values)
    return max(level, asked) if asked is not None else level


def owed_level(
    settings: Settings,
    *,
    own_policy: str | None,
    has_factor: bool,
    in_mfa_group: bool,
    holds_rights: Callable[[], bool],
) -> Level:
    """The rule of :meth:`Factors.sign_in_level` over facts read by the caller (the
    module's list): Passport's own application's policy (else the server's); MFA for a
    user with a passkey or an authenticator app, for a member of a group that requires it,
    and — with ``admin_mfa`` — for a holder of any Passport right (asked lazily).
    Forward-auth's hot path reads the facts in the statement that finds the site."""
    level = policy_level(settings, own_policy or "default")
    if has_factor or in_mfa_group:
        level = max(level, Level.MFA)
    if level < Level.MFA and settings.admin_mfa and holds_rights():
        level = Level.MFA
    return level


def reading(settings: Settings, throttle: Throttle, db: Session) -> Factors:
    """The factor rules over a session only read from (what a page shows, who must do
    what): no audit records, no after-actions."""
    return Factors(settings, throttle, db, _no_audit, _no_after)


def _no_audit(record: AuditRecord, *, durable: bool = False) -> None:
    """Reading writes no audit record."""


def _no_after(action: Callable[[], None]) -> None:
    """Reading queues nothing."""


def validate_policy(raw: str | None) -> str:
    """An application's ``mfa_policy`` as given by an administrator."""
    value = (raw or "").strip().lower()
    if value not in APPLICATION_POLICIES:
        raise Invalid(
            "mfa_policy must be one of " + ", ".join(APPLICATION_POLICIES) + ".",
            source="mfaPolicy",
            value=(raw or "")[:32],
        )
    return value


# -- what a user has ------------------------------------------------------------------
@dataclass(frozen=True)
class PasskeyView:
    id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None
    synced: bool
    aaguid: str


@dataclass(frozen=True)
class FactorSummary:
    passkeys: list[PasskeyView]
    totp: bool
    totp_created_at: datetime | None
    recovery_codes: int

    @property
    def any(self) -> bool:
        return bool(self.passkeys) or self.totp

    def reaches(self, level: Level) -> bool:
        """Whether these factors can prove ``level`` (a recovery code is a second factor,
        never a passkey)."""
        if level >= Level.PASSKEY:
            return bool(self.passkeys)
        if level >= Level.MFA:
            return self.any
        return True

    def methods(self) -> list[str]:
        """The factors by name, for the API and the CLI."""
        names = ["passkey"] if self.passkeys else []
        if self.totp:
            names.append("totp")
        if self.recovery_codes:
            names.append("recovery")
        return names


def needed(summary: FactorSummary, amr: str | None, level: Level) -> str:
    """What a sign-in with ``amr`` must still do to reach ``level``: ``""`` nothing,
    ``verify`` prove a factor the user has, ``enrol`` first get one.

    A user who has a factor proves it before enrolling anything else: whoever knows
    only the password must not add their own passkey to the account (and take over its
    recovery codes) by asking for a level the user's factors do not reach (a request's
    ``acr_values=phr``).  Enrolling on the strength of a password alone is left to a
    user with no factor at all — their first one."""
    if level_of(amr) >= level:
        return ""
    if summary.reaches(level):
        return "verify"
    if summary.any and level_of(amr) < Level.MFA:
        return "verify"  # the factor they have first, then (at MFA) the enrolment
    return "enrol"


@dataclass(frozen=True)
class TotpEnrolment:
    """What the page shows to enrol an authenticator app: the secret (base32, to type),
    the ``otpauth://`` URI and the same as an inline SVG QR code."""

    secret: str
    uri: str
    qr_svg: str


@dataclass(frozen=True)
class Verified:
    """A second factor proved: who, what to add to the session's ``amr``, and what the
    user must be told (recovery codes left)."""

    user: User
    amr: str
    recovery_left: int | None = None


# -- sealing with the key-encryption key ------------------------------------------------
def step_key(cookie: str, purpose: str) -> str:
    return hashlib.sha256(f"{purpose}:{cookie}".encode()).hexdigest()


def valid_step_cookie(value: str | None) -> bool:
    return value is not None and len(value) == _STEP_COOKIE_LENGTH


def new_step_cookie() -> str:
    return secrets.token_urlsafe(32)


def normalise_recovery_code(raw: str) -> str:
    """A typed recovery code as stored: NFKC, lower case, without spaces or hyphens."""
    text = unicodedata.normalize("NFKC", raw).lower()
    # White space of any kind (a pasted line break) and any dash (U+2010…) are layout.
    return "".join(c for c in text if not c.isspace() and unicodedata.category(c) != "Pd")


def normalise_otp(raw: str) -> str:
    """A typed six-digit code: NFKC (full-width digits), without spaces."""
    return "".join(unicodedata.normalize("NFKC", raw).split())


class Factors:
    """The second-factor operations over one request's (or command's) transaction."""

    def __init__(
        self,
        settings: Settings,
        throttle: Throttle,
        db: Session,
        audit: Audit,
        after: Callable[[Callable[[], None]], None],
    ) -> None:
        self.settings = settings
        self.throttle = throttle
        self.db = db
        self.audit = audit
        self.after = after

    # -- reading ----------------------------------------------------------------------
    def summary(self, user_id: int) -> FactorSummary:
        passkeys = [
            PasskeyView(
                row.id,
                row.name,
                row.created_at,
                row.last_used_at,
                row.backup_eligible,
                row.aaguid,
            )
            for row in self.db.scalars(
                select(WebAuthnCredential)
                .where(WebAuthnCredential.user_id == user_id)
                .order_by(WebAuthnCredential.id)
            )
        ]
        totp = self.db.get(TotpCredential, user_id)
        codes = self.db.scalar(
            select(func.count()).select_from(RecoveryCode).where(RecoveryCode.user_id == user_id)
        )
        return FactorSummary(
            passkeys, totp is not None, totp.created_at if totp else None, codes or 0
        )

    def sign_in_level(self, user_id: int) -> Level:
        """The level every sign-in of the user must reach (the module's list) — and so
        every session of theirs that administers Passport or signs in to an application,
        however old: a right granted, a group joined or a factor enrolled since the
        session began counts at once."""
        # Passport's own application's policy (the hosted pages and the administration
        # are its sign-ins), else the server's.
        own = self.db.scalar(
            select(Application.mfa_policy).where(Application.id == PASSPORT_APP_ID)
        )
        group_rule = self.db.scalar(
            select(func.count())
            .select_from(GroupMember)
            .join(Group, Group.id == GroupMember.group_id)
            .where(GroupMember.user_id == user_id, Group.require_mfa.is_(True))
        )
        return owed_level(
            self.settings,
            own_policy=own,
            has_factor=self.summary(user_id).any,
            in_mfa_group=bool(group_rule),
            holds_rights=lambda: bool(rights_of_user(self.db, user_id)),
        )

    def required_level(self, user_id: int, policy: str, acr_values: str | None) -> Level:
        """The level a sign-in of the user to an application (its ``mfa_policy``, the
        request's ``acr_values``) must reach."""
        return max(
            self.sign_in_level(user_id), application_level(self.settings, policy, acr_values)
        )

    # -- the half-way state and challenges ---------------------------------------------
    def put_step(
        self,
        cookie: str,
        purpose: str,
        now: datetime,
        *,
        user_id: int | None = None,
        challenge: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> None:
        """Keep a step for this browser (replacing its previous one of ``purpose``)."""
        key = step_key(cookie, purpose)
        self.db.execute(
            delete(SignInStep).where((SignInStep.id_hash == key) | (SignInStep.expires_at <= now))
        )
        self.db.add(
            SignInStep(
                id_hash=key,
                purpose=purpose,
                user_id=user_id,
                challenge=challenge,
                payload=json.dumps(payload or {}),
                created_at=now,
                expires_at=now + timedelta(seconds=STEP_LIFETIME),
            )
        )
        self.db.flush()

    def find_step(self, cookie: str | None, purpose: str, now: datetime) -> SignInStep | None:
        if not valid_step_cookie(cookie):
            return None
        assert cookie is not None
        row = self.db.get(SignInStep, step_key(cookie, purpose))
        if row is None or row.expires_at <= now:
            return None
        return row

    def take_step(self, cookie: str | None, purpose: str, now: datetime) -> SignInStep | None:
        """The step, deleted: only the request whose delete wins uses it (single use)."""
        row = self.find_step(cookie, purpose, now)
        if row is None:
            return None
        result = self.db.execute(
            delete(SignInStep)
            .where(SignInStep.id_hash == row.id_hash)
            .execution_options(synchronize_session=False)
        )
        self.db.expunge(row)
        return row if getattr(result, "rowcount", 0) == 1 else None

    @staticmethod
    def payload(row: SignInStep) -> dict[str, Any]:
        data = json.loads(row.payload or "{}")
        return data if isinstance(data, dict) else {}

    # -- WebAuthn ---------------------------------------------------------------------
    def _relying_party(self) -> tuple[str, list[str]]:
        rp_id, origins = self.settings.relying_party_id, self.settings.relying_party_origins
        if not rp_id or not origins:
            raise FeatureDisabled(
                "Passkeys need PASSPORT_PUBLIC_URL (or webauthn_rp_id and webauthn_origins).",
                source="credential",
            )
        return rp_id, origins

    def registration_options(
        self,
        cookie: str,
        user: User,
        now: datetime,
        *,
        via: str,
        session: LoginSessionInfo | None,
    ) -> str:
        """PublicKeyCredentialCreationOptions (WebAuthn L3 §5.4) for a new passkey of
        ``user``, as JSON for ``navigator.credentials.create``; the challenge is kept
        with where it was asked for (``via``: ``account``, the account page; ``enrol``, a
        sign-in's enrolment), and only that page may use it.  With a session, the
        sign-in must be recent (:meth:`ensure_recent`)."""
        if session is not None:
            self.ensure_recent(session, now)
        rp_id, _ = self._relying_party()
        loaded = self.db.get(User, user.id)  # the handle is written in this transaction
        if loaded is None or loaded.disabled:
            raise NotSignedIn("You must sign in again.", source="session")
        user = loaded
        if user.webauthn_handle is None:
            user.webauthn_handle = bytes_to_base64url(os.urandom(32))
        existing = self.db.scalars(
            select(WebAuthnCredential).where(WebAuthnCredential.user_id == user.id)
        ).all()
        if len(existing) >= MAX_PASSKEYS:
            raise Invalid(
                f"You have {MAX_PASSKEYS} passkeys; remove one before adding another.",
                source="credential",
            )
        options = generate_registration_options(
            rp_id=rp_id,
            rp_name="Passport",
            user_id=base64url_to_bytes(user.webauthn_handle),
            user_name=user.username,
            user_display_name=user.display_name or user.username,
            timeout=STEP_LIFETIME * 1000,
            attestation=AttestationConveyancePreference.NONE,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.PREFERRED,
                user_verification=UserVerificationRequirement.REQUIRED,
            ),
            # §5.4.3 excludeCredentials: the same authenticator is not registered twice.
            exclude_credentials=[_descriptor(row) for row in existing],
        )
        self.put_step(
            cookie,
            "register",
            now,
            user_id=user.id,
            challenge=bytes_to_base64url(options.challenge),
            payload={"via": via},
        )
        return options_to_json(options)

    def add_passkey(
        self,
        cookie: str | None,
        user: User,
        response: str | None,
        name: str | None,
        *,
        via: str,
        session: LoginSessionInfo | None,
        ip: str,
        user_agent: str,
        now: datetime,
    ) -> WebAuthnCredential:
        """Register the passkey that answers this browser's registration challenge
        (WebAuthn L3 §7.1, by the ``webauthn`` library: challenge, origin, RP ID hash,
        user presence and verification, the attestation's form) — a challenge asked for
        on the same page (``via``), and with a session a recent sign-in."""
        label = validate_passkey_name(name)
        parsed = _credential_json(response)
        if session is not None:
            self.ensure_recent(session, now)
        step = self.take_step(cookie, "register", now)
        if (
            step is None
            or step.user_id != user.id
            or step.challenge is None
            or self.payload(step).get("via") != via
        ):
            raise Invalid("This passkey request expired; please try again.", source="credential")
        rp_id, origins = self._relying_party()
        record = AuditRecord(
            "mfa.passkey.add", "", now, user.id, user.username, ip=ip, user_agent=user_agent
        )
        try:
            verified = verify_registration_response(
                credential=parsed,
                expected_challenge=base64url_to_bytes(step.challenge),
                expected_rp_id=rp_id,
                expected_origin=origins,
                require_user_verification=True,
            )
        except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
            self.audit(
                _with(record, outcome="failure", detail=_reason(exc)),
                durable=True,
            )
            raise Invalid(
                "The passkey could not be registered: " + _reason(exc) + ".",
                source="credential",
            ) from None
        given = parsed.get("response", {}).get("transports")
        transports = [t for t in given if isinstance(t, str)] if isinstance(given, list) else []
        # The limit again: challenges fetched in several browsers before it was reached.
        held = self.db.scalar(
            select(func.count())
            .select_from(WebAuthnCredential)
            .where(WebAuthnCredential.user_id == user.id)
        )
        if (held or 0) >= MAX_PASSKEYS:
            raise Invalid(
                f"You have {MAX_PASSKEYS} passkeys; remove one before adding another.",
                source="credential",
            )
        row = WebAuthnCredential(
            user_id=user.id,
            credential_id_hash=hashlib.sha256(verified.credential_id).hexdigest(),
            credential_id=bytes_to_base64url(verified.credential_id),
            public_key=bytes_to_base64url(verified.credential_public_key),
            sign_count=verified.sign_count,
            transports=" ".join(
                str(t) for t in transports if t in {m.value for m in AuthenticatorTransport}
            )[:255],
            aaguid=verified.aaguid[:36],
            backup_eligible=verified.credential_device_type.value == "multi_device",
            name=label,
            created_at=now,
        )
        try:
            with self.db.begin_nested():
                self.db.add(row)
                self.db.flush()
        except IntegrityError:
            raise Taken("This passkey is already registered.", source="credential") from None
        self.audit(_with(record, outcome="success", detail=f"passkey {row.id}: {label}"))
        return row

    def authentication_options(
        self, cookie: str, now: datetime, *, user_id: int | None = None
    ) -> str:
        """PublicKeyCredentialRequestOptions (§5.5) as JSON: for ``user_id``'s passkeys
        (a second factor, a step-up), or for any discoverable one (a sign-in without a
        username, §5.5 ``allowCredentials`` empty)."""
        rp_id, _ = self._relying_party()
        allowed: list[PublicKeyCredentialDescriptor] = []
        if user_id is not None:
            allowed = [
                _descriptor(row)
                for row in self.db.scalars(
                    select(WebAuthnCredential).where(WebAuthnCredential.user_id == user_id)
                )
            ]
        options = generate_authentication_options(
            rp_id=rp_id,
            timeout=STEP_LIFETIME * 1000,
            allow_credentials=allowed,
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        self.put_step(
            cookie,
            "passkey",
            now,
            user_id=user_id,
            challenge=bytes_to_base64url(options.challenge),
        )
        return options_to_json(options)

    def verify_passkey(
        self,
        cookie: str | None,
        response: str | None,
        *,
        ip: str,
        user_agent: str,
        now: datetime,
        application: str = "",
    ) -> Verified:
        """The user whose passkey answered this browser's challenge (WebAuthn L3 §7.2):
        the credential is one Passport registered; with a discoverable credential its
        ``userHandle`` is that user's (step 6); the challenge is used up; a signature
        counter that did not grow where it counts means a cloned authenticator (step
        22): refused and audited.

        Throttled by the address only: an assertion is a signature, which no number of
        tries guesses, so the account's counter (of wrong passwords and codes) neither
        holds a passkey back — else anyone who knows a username could lock its owner
        out of the one phishing-resistant way in — nor counts its failures."""
        parsed = _credential_json(response)
        # Counted before this transaction touches the database (on SQLite its write lock
        # would hold the counters' own transaction up).
        address = [ip_key(ip)]
        attempt = self.throttle.reserve(address, now)
        record = AuditRecord(
            "mfa.passkey.use", "", now, application=application, ip=ip, user_agent=user_agent
        )
        if attempt.wait:
            self.audit(_with(record, outcome="throttled"), durable=True)
            raise Throttled(
                "Too many failed attempts; try again later.",
                source="credential",
                retry_after=attempt.wait,
            )
        step = self.take_step(cookie, "passkey", now)
        if step is None or step.challenge is None:
            self.after(lambda: self.throttle.release(address))
            raise NotSignedIn(
                "This passkey request expired; please try again.", source="credential"
            )
        raw_id = parsed.get("rawId") or parsed.get("id")
        try:
            credential_id = base64url_to_bytes(raw_id) if isinstance(raw_id, str) else b""
        except ValueError:
            credential_id = b""
        row = self.db.scalar(
            select(WebAuthnCredential).where(
                WebAuthnCredential.credential_id_hash == hashlib.sha256(credential_id).hexdigest()
            )
        )
        record = _with(record, user_id=row.user_id if row is not None else None)
        user = self.db.get(User, row.user_id) if row is not None else None
        problem = None
        if row is None or user is None or user.disabled:
            problem = "not a passkey of an enabled account"
        elif step.user_id is not None and step.user_id != row.user_id:
            problem = "a passkey of another account"
        else:
            handle = (parsed.get("response") or {}).get("userHandle")
            if not handle and step.user_id is None:
                problem = "no userHandle for a sign-in without a username"
            elif handle and not (
                user.webauthn_handle
                and hmac.compare_digest(str(handle).encode(), user.webauthn_handle.encode())
            ):
                problem = "userHandle is not the credential's user"
        if problem is None:
            assert row is not None and user is not None
            rp_id, origins = self._relying_party()
            try:
                verified = verify_authentication_response(
                    credential=parsed,
                    expected_challenge=base64url_to_bytes(step.challenge),
                    expected_rp_id=rp_id,
                    expected_origin=origins,
                    credential_public_key=base64url_to_bytes(row.public_key),
                    credential_current_sign_count=row.sign_count,
                    require_user_verification=True,
                )
            except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
                problem = _reason(exc)
                if "sign count" in problem.lower():
                    problem = "signature counter did not grow: a cloned authenticator?"
        if problem is not None:
            self.audit(
                _with(
                    record,
                    outcome="failure",
                    username=user.username if user is not None else "",
                    detail=problem,
                ),
                durable=True,
            )
            raise NotSignedIn(WRONG_PASSKEY, source="credential")
        assert row is not None and user is not None
        row.sign_count = verified.new_sign_count
        row.last_used_at = now
        self.after(lambda: self.throttle.release(address))  # not a failure
        self.audit(
            _with(record, outcome="success", username=user.username, detail=f"passkey {row.id}")
        )
        return Verified(user, "swk" if row.backup_eligible else "hwk")

    def rename_passkey(
        self, user: User, passkey_id: str | int | None, name: str | None, now: datetime
    ) -> WebAuthnCredential:
        row = self._own_passkey(user, passkey_id)
        row.name = validate_passkey_name(name)
        return row

    def remove_passkey(
        self,
        user: User,
        passkey_id: str | int | None,
        session: LoginSessionInfo,
        *,
        ip: str,
        user_agent: str,
        now: datetime,
    ) -> None:
        self.ensure_recent(session, now)
        row = self._own_passkey(user, passkey_id)
        detail = f"passkey {row.id}: {row.name}"
        self._remove(row, user, "mfa.passkey.remove", detail, ip, user_agent, now)

    def _own_passkey(self, user: User, passkey_id: str | int | None) -> WebAuthnCredential:
        if passkey_id is None or passkey_id == "":
            raise required("id", "Passkey id must be specified.")
        try:
            number = int(str(passkey_id), 10)
        except ValueError:
            number = -1
        row = self.db.get(WebAuthnCredential, number) if 0 < number < 2**31 else None
        if row is None or row.user_id != user.id:
            raise NotFound(
                "You have no passkey with this id.", source="id", value=str(passkey_id)[:32]
            )
        return row

    # -- TOTP (RFC 6238) --------------------------------------------------------------
    def _sealer(self) -> AESGCM:
        key = derived_key(self.settings, b"passport totp secret")
        if key is None:
            raise FeatureDisabled(NEEDS_KEY, source="code")
        return AESGCM(key)

    def _seal(self, user_id: int, secret: str) -> str:
        nonce = os.urandom(12)
        sealed = self._sealer().encrypt(nonce, secret.encode(), f"totp:{user_id}".encode())
        return base64.b64encode(nonce + sealed).decode()

    def _open(self, user_id: int, sealed: str) -> str:
        blob = base64.b64decode(sealed)
        try:
            return self._sealer().decrypt(blob[:12], blob[12:], f"totp:{user_id}".encode()).decode()
        except InvalidTag:
            raise FeatureDisabled(
                "This authenticator app's secret cannot be read with the configured "
                "key-encryption key.",
                source="code",
            ) from None

    def totp_start(
        self,
        cookie: str,
        user: User,
        session: LoginSessionInfo | None,
        now: datetime,
        *,
        via: str,
    ) -> TotpEnrolment:
        """A new secret (160 bits, RFC 4226 §4 R6) shown to be scanned; kept sealed with
        this browser's step, and the page it was shown on (``via``), until the first
        code confirms it there."""
        if session is not None:
            self.ensure_recent(session, now)
        secret = pyotp.random_base32()
        self.put_step(
            cookie,
            "totp",
            now,
            user_id=user.id,
            payload={"secret": self._seal(user.id, secret), "via": via},
        )
        uri = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD).provisioning_uri(
            name=user.username, issuer_name=self.issuer_label()
        )
        svg = segno.make(uri, error="m").svg_inline(scale=4, dark="#111", light="#fff")
        return TotpEnrolment(secret, uri, svg)

    def issuer_label(self) -> str:
        """The account's label in authenticator apps: Passport's host."""
        issuer = self.settings.issuer or ""
        host = issuer.split("://", 1)[-1]
        return f"Passport ({host})" if host else "Passport"

    def totp_confirm(
        self,
        cookie: str | None,
        user: User,
        code: str | None,
        *,
        via: str,
        session: LoginSessionInfo | None,
        ip: str,
        user_agent: str,
        now: datetime,
    ) -> None:
        """Keep the authenticator app whose secret this browser was shown on the same page
        (``via``), once its first code is right (that code is then used: it cannot sign
        in); with a session, a recent sign-in."""
        typed = _otp_text(code)
        keys = [user_account_key(user.id), ip_key(ip)]
        attempt = self.throttle.reserve(keys, now)  # before the transaction writes
        if session is not None:
            try:
                self.ensure_recent(session, now)
            except Forbidden:
                self.after(lambda: self.throttle.release(keys))
                raise
        record = AuditRecord(
            "mfa.totp.add", "", now, user.id, user.username, ip=ip, user_agent=user_agent
        )
        step = self.find_step(cookie, "totp", now)
        if step is None or step.user_id != user.id or self.payload(step).get("via") != via:
            self.after(lambda: self.throttle.release(keys))
            raise Invalid("This enrolment expired; scan the new code.", source="code")
        secret = self._open(user.id, str(self.payload(step).get("secret", "")))
        if attempt.wait:
            self.audit(_with(record, outcome="throttled"), durable=True)
            raise Throttled(
                "Too many failed attempts; try again later.",
                source="code",
                retry_after=attempt.wait,
            )
        matched = _totp_step(secret, typed, now, after=0)
        if matched is None:
            self.audit(_with(record, outcome="failure"), durable=True)
            raise NotSignedIn(WRONG_CODE, source="code")
        self.after(lambda: self.throttle.succeeded(keys[0], keys[1]))
        self.take_step(cookie, "totp", now)
        self.db.execute(delete(TotpCredential).where(TotpCredential.user_id == user.id))
        self.db.add(
            TotpCredential(
                user_id=user.id,
                secret=self._seal(user.id, secret),
                last_step=matched,
                created_at=now,
                last_used_at=now,
            )
        )
        self.db.flush()
        self.audit(_with(record, outcome="success"))

    def remove_totp(
        self,
        user: User,
        session: LoginSessionInfo,
        *,
        ip: str,
        user_agent: str,
        now: datetime,
    ) -> None:
        self.ensure_recent(session, now)
        row = self.db.get(TotpCredential, user.id)
        if row is None:
            raise NotFound("You have no authenticator app.", source="totp")
        self._remove(row, user, "mfa.totp.remove", "", ip, user_agent, now)

    def _remove(
        self,
        row: WebAuthnCredential | TotpCredential,
        user: User,
        event: str,
        detail: str,
        ip: str,
        user_agent: str,
        now: datetime,
    ) -> None:
        """One factor of the user's goes (their recovery codes too when it was the last),
        audited."""
        self.db.delete(row)
        self.db.flush()
        self._drop_codes_without_factor(user.id)
        self.audit(
            AuditRecord(
                event,
                "success",
                now,
                user.id,
                user.username,
                ip=ip,
                user_agent=user_agent,
                detail=detail,
            )
        )

    def _verify_totp(self, user_id: int, typed: str, now: datetime) -> bool:
        """Accept a code of the current step or one either side, once: the step is
        recorded by a conditional UPDATE, so a replay — even a parallel one — finds
        the step already taken (RFC 6238 §5.2: "the verifier MUST NOT accept the second
        attempt of the OTP after the successful validation")."""
        row = self.db.get(TotpCredential, user_id)
        if row is None:
            return False
        secret = self._open(user_id, row.secret)
        matched = _totp_step(secret, typed, now, after=row.last_step)
        if matched is None:
            return False
        result = self.db.execute(
            update(TotpCredential)
            .where(TotpCredential.user_id == user_id, TotpCredential.last_step < matched)
            .values(last_step=matched, last_used_at=now)
            .execution_options(synchronize_session=False)
        )
        return getattr(result, "rowcount", 0) == 1

    # -- recovery codes ---------------------------------------------------------------
    def _recovery_digest(self, code: str) -> str:
        """A recovery code at rest: HMAC-SHA256 under a key derived from the
        key-encryption key.  79 random bits are too few for a plain hash to resist an
        offline search of a stolen database (SP 800-63B §5.1.2.2 asks 112 for that);
        the key, which is not in the database, makes one useless."""
        key = derived_key(self.settings, b"passport recovery code")
        if key is None:
            raise FeatureDisabled(NEEDS_KEY, source="code")
        return hmac.new(key, normalise_recovery_code(code).encode(), hashlib.sha256).hexdigest()

    def new_recovery_codes(
        self,
        user: User,
        *,
        ip: str,
        user_agent: str,
        now: datetime,
        session: LoginSessionInfo | None,
    ) -> list[str]:
        """Ten new single-use codes, shown once; the previous set no longer works."""
        if session is not None:
            self.ensure_recent(session, now)
        if not self.summary(user.id).any:
            raise Invalid(
                "Add a passkey or an authenticator app first: recovery codes stand in for them.",
                source="code",
            )
        codes = [
            "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LENGTH))
            for _ in range(RECOVERY_CODE_COUNT)
        ]
        digests = [self._recovery_digest(c) for c in codes]
        self.db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
        for digest in digests:
            self.db.add(RecoveryCode(code_hash=digest, user_id=user.id, created_at=now))
        self.db.flush()
        self.audit(
            AuditRecord(
                "mfa.recovery.new",
                "success",
                now,
                user.id,
                user.username,
                ip=ip,
                user_agent=user_agent,
            )
        )
        return ["-".join(c[i : i + 4] for i in range(0, _RECOVERY_LENGTH, 4)) for c in codes]

    def _use_recovery_code(self, user_id: int, typed: str) -> int | None:
        """Use up ``typed`` if it is one of the user's codes (one DELETE: a code used
        twice at once is deleted once); the codes left, or None."""
        normalised = normalise_recovery_code(typed)
        if len(normalised) != _RECOVERY_LENGTH:
            return None
        result = self.db.execute(
            delete(RecoveryCode)
            .where(
                RecoveryCode.user_id == user_id,
                RecoveryCode.code_hash == self._recovery_digest(normalised),
            )
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) != 1:
            return None
        left = self.db.scalar(
            select(func.count()).select_from(RecoveryCode).where(RecoveryCode.user_id == user_id)
        )
        return int(left or 0)

    def _drop_codes_without_factor(self, user_id: int) -> None:
        """Recovery codes stand in for a factor; with none left, they go too."""
        if not self.summary(user_id).any:
            self.db.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))

    # -- a second factor at sign-in ---------------------------------------------------
    def verify_code(
        self,
        user_id: int,
        method: str | None,
        code: str | None,
        *,
        ip: str,
        user_agent: str,
        now: datetime,
        application: str = "",
    ) -> Verified:
        """Prove a second factor by a code: ``totp`` (an authenticator app's) or
        ``recovery``.  Counted first on the account's and the address's throttle
        counters (a failed second factor is a failed sign-in attempt)."""
        if method not in ("totp", "recovery"):
            raise Invalid(
                "method must be totp or recovery.", source="method", value=(method or "")[:16]
            )
        typed = _otp_text(code) if method == "totp" else _recovery_text(code)
        if key_encryption_key(self.settings) is None:  # a misconfiguration is no attempt
            raise FeatureDisabled(NEEDS_KEY, source="code")
        keys = [user_account_key(user_id), ip_key(ip)]
        # Counted before this transaction touches the database (SQLite's write lock).
        attempt = self.throttle.reserve(keys, now)
        user = self.db.get(User, user_id)
        if user is None or user.disabled:
            self.after(lambda: self.throttle.release(keys))
            raise NotSignedIn("You must sign in again.", source="session")
        event = "mfa.totp.use" if method == "totp" else "mfa.recovery.use"
        record = AuditRecord(
            event,
            "",
            now,
            user.id,
            user.username,
            application=application,
            ip=ip,
            user_agent=user_agent,
        )
        if attempt.wait:
            self.audit(_with(record, outcome="throttled"), durable=True)
            raise Throttled(
                "Too many failed attempts; try again later.",
                source="code",
                retry_after=attempt.wait,
            )
        left: int | None = None
        if method == "totp":
            ok = self._verify_totp(user_id, typed, now)
        else:
            left = self._use_recovery_code(user_id, typed)
            ok = left is not None
        if not ok:
            self.audit(_with(record, outcome="failure"), durable=True)
            if attempt.over:
                self.audit(_with(record, event="lockout", outcome="throttled"), durable=True)
            raise NotSignedIn(WRONG_CODE, source="code")
        self.after(lambda: self.throttle.succeeded(keys[0], keys[1]))
        self.audit(
            _with(
                record,
                outcome="success",
                detail=f"{left} recovery codes left" if left is not None else "",
            )
        )
        # A recovery code is a second factor (SP 800-63B §5.1.2 look-up secret) but has
        # no RFC 8176 method value of its own: it adds only "mfa".
        return Verified(user, "otp" if method == "totp" else "mfa", left)

    # -- administration ---------------------------------------------------------------
    def reset(self, user_id: int) -> int:
        """Remove every factor of the user (an administrator's reset: the caller checks
        the right, the escalation rule, ends the user's access and audits).  Returns how
        many factors were removed."""
        removed = 0
        for model in (WebAuthnCredential, TotpCredential, RecoveryCode, SignInStep):
            result = self.db.execute(delete(model).where(model.user_id == user_id))
            if model in (WebAuthnCredential, TotpCredential):
                removed += int(getattr(result, "rowcount", 0) or 0)
        return removed

    # -- policy helpers ---------------------------------------------------------------
    def is_recent(self, session: LoginSessionInfo, now: datetime) -> bool:
        return now - session.created_at <= timedelta(seconds=self.settings.reauthentication_window)

    def ensure_recent(self, session: LoginSessionInfo, now: datetime) -> None:
        """Adding or removing a factor needs a recent sign-in (OWASP ASVS 5.0 §6.4.4 /
        §7.5.1: re-authentication before a change of authentication factors), not only
        a session cookie, which may have been stolen — and a sign-in that proved what
        the user's sign-ins owe now (up to a second factor): a password session from
        before the user's first factor, or from before a rule that asks one, changes
        nothing (it would add the attacker's passkey, or take the recovery codes)."""
        if not self.is_recent(session, now):
            raise Forbidden(
                "Sign in again to change how you sign in.", source="session", value="reauthenticate"
            )
        if level_of(session.amr) < min(self.sign_in_level(session.user_id), Level.MFA):
            raise Forbidden(
                "Sign in again with your second factor to change how you sign in.",
                source="session",
                value="reauthenticate",
            )


def validate_passkey_name(raw: str | None) -> str:
    # Stripped once normalised: NFKC makes spaces of some characters ("¯" is " ̄").
    name = unicodedata.normalize("NFKC", raw or "").strip()
    if not name:
        return "Passkey"
    if len(name) > 64:
        raise WrongLength("A passkey's name must be at most 64 characters long.", source="name")
    return check_text(name, field="Name", source="name")


def _descriptor(row: WebAuthnCredential) -> PublicKeyCredentialDescriptor:
    transports = []
    for value in row.transports.split():
        try:
            transports.append(AuthenticatorTransport(value))
        except ValueError:
            continue
    return PublicKeyCredentialDescriptor(
        id=base64url_to_bytes(row.credential_id), transports=transports or None
    )


def _credential_json(raw: str | None) -> dict[str, Any]:
    """A WebAuthn response (``PublicKeyCredential.toJSON()``) as a dictionary, or a
    ClientError: bounded, JSON, an object."""
    if raw is None or raw == "":
        raise required("credential", "The passkey's answer must be specified.")
    if len(raw) > MAX_CREDENTIAL_JSON:
        raise WrongLength("The passkey's answer is too large.", source="credential")
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the decoder goes
        parsed = None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("response"), dict):
        raise Invalid("The passkey's answer is not a WebAuthn credential.", source="credential")
    return parsed


def _otp_text(code: str | None) -> str:
    if code is None or code == "":
        raise required("code", "The code must be specified.")
    typed = normalise_otp(code)
    if not (len(typed) == TOTP_DIGITS and typed.isascii() and typed.isdigit()):
        raise Invalid(f"The code is {TOTP_DIGITS} digits.", source="code")
    return typed


def _recovery_text(code: str | None) -> str:
    if code is None or code == "":
        raise required("code", "The code must be specified.")
    if len(code) > 64:
        raise WrongLength("A recovery code is 16 letters and digits.", source="code")
    return code


def _totp_step(secret: str, typed: str, now: datetime, *, after: int) -> int | None:
    """The time step (RFC 6238 §4.2 ``T``) among the current one and one either side
    whose code is ``typed`` and which is later than ``after``; None if none is.  Each
    candidate is compared in constant time."""
    totp = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD)
    current = int(now.timestamp()) // TOTP_PERIOD
    found = None
    for step in range(current - _TOTP_WINDOW, current + _TOTP_WINDOW + 1):
        expected = totp.generate_otp(step)
        if hmac.compare_digest(expected.encode(), typed.encode()) and step > after:
            found = step
    return found


def _reason(exc: Exception) -> str:
    """A WebAuthn failure in a few words, for the person and the audit log (the
    library's messages name what failed, never a secret); bounded."""
    text = str(exc).strip().rstrip(".") or type(exc).__name__
    return text[:200]


def _with(record: AuditRecord, **changes: Any) -> AuditRecord:
    from dataclasses import replace

    return replace(record, **changes)
