"""Passport's settings: one typed dataclass, filled from four layers.

Precedence, lowest to highest: built-in defaults, an optional TOML file
(``--config`` or ``PASSPORT_CONFIG``), ``PASSPORT_*`` environment variables,
command-line flags.  Every value is converted and checked here, once, so that
a bad setting stops start-up with one clear line (:class:`ConfigError`)
instead of failing later inside a request.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# The JWS algorithms Passport signs with (RFC 7518 §3.1), a key of each always kept:
# OpenID Connect Core §15.1 makes RS256 mandatory for an OP, ES256 is the default.
SIGNING_ALGS = ("ES256", "RS256")

ENV_PREFIX = "PASSPORT_"
# Threads per process kept for requests that hash no password (status, healthz, sessions).
CHEAP_REQUEST_THREADS = 8


class ConfigError(Exception):
    """A setting is missing or malformed; the message is one line for the operator."""


def _setting(default: Any, help: str, *, secret: bool = False) -> Any:
    return field(default=default, metadata={"help": help, "secret": secret})


@dataclass(frozen=True)
class Settings:
    """Effective configuration of one Passport process."""

    database_url: str = _setting(
        "sqlite:///passport.sqlite3",
        "SQLAlchemy URL: sqlite:///file, mysql+pymysql://..., postgresql+psycopg://...",
        secret=True,
    )
    host: str = _setting("127.0.0.1", "Address to listen on.")
    port: int = _setting(8000, "TCP port to listen on.")
    workers: int = _setting(1, "Number of worker processes.")
    public_url: str = _setting(
        "",
        "External base URL (e.g. https://sso.example.com); https here makes cookies Secure.",
    )
    redis_url: str = _setting(
        "", "redis://host:port/db; when set, sessions and throttling live in Redis.", secret=True
    )
    log_level: str = _setting("INFO", "Logging level: DEBUG, INFO, WARNING, ERROR.")
    max_body_bytes: int = _setting(65536, "Largest request body accepted (413 above).")
    max_query_bytes: int = _setting(8192, "Largest query string accepted (414 above).")
    db_pool_size: int = _setting(5, "Database connections kept per process.")
    db_pool_timeout: float = _setting(5.0, "Seconds to wait for a pooled connection (503 after).")
    db_connect_timeout: int = _setting(5, "Seconds to wait when connecting to the database.")
    auto_migrate: bool = _setting(
        False, "Apply migrations at start-up on MariaDB/PostgreSQL too (SQLite always does)."
    )

    session_cookie_name: str = _setting("passport_session", "Name of the session cookie.")
    session_idle_timeout: int = _setting(1800, "Seconds of inactivity that end a session.")
    session_absolute_lifetime: int = _setting(43200, "Seconds after which any session ends.")
    remember_me_lifetime: int = _setting(
        2592000, "Lifetime in seconds of a 'remember me' session (idle timeout too)."
    )
    registration_enabled: bool = _setting(True, "Allow self-registration via Account/register.")
    password_min_length: int = _setting(12, "Shortest password accepted (NIST: at least 8).")
    argon2_memory_kib: int = _setting(19456, "argon2id memory cost in KiB (OWASP: >= 19456).")
    argon2_time_cost: int = _setting(2, "argon2id iterations (OWASP: >= 2).")
    argon2_parallelism: int = _setting(1, "argon2id lanes.")
    max_concurrent_hashes: int = _setting(
        0, "Password hashes computed at once per process (0 = number of CPUs)."
    )
    throttle_window: int = _setting(900, "Seconds over which failed logins are counted.")
    throttle_account_limit: int = _setting(5, "Failures per account before delays start.")
    throttle_ip_limit: int = _setting(
        50, "Failures per client IP (IPv6: per /64) before delays start."
    )
    throttle_base_delay: int = _setting(30, "First delay in seconds; doubles per failure.")
    throttle_device_code_limit: int = _setting(
        10,
        "Wrong /device user codes per account and per client IP (IPv6: per /64) before "
        "delays start.",
    )
    throttle_client_request_limit: int = _setting(
        300,
        "Pushed authorization requests and device authorizations that do not prove a "
        "confidential client's secret, per client IP (IPv6: per /64), before delays start.",
    )
    throttle_registration_limit: int = _setting(
        20, "Self-registrations per client IP (IPv6: per /64) before delays start."
    )
    device_code_lifetime: int = _setting(
        600, "Seconds a device authorization (RFC 8628 device_code, user_code) is valid."
    )
    max_pushed_requests_per_client: int = _setting(
        300, "Live (unused, unexpired) pushed authorization requests per application."
    )
    max_device_authorizations_per_client: int = _setting(
        300, "Live (pending, unexpired) device authorizations per application."
    )
    max_live_requests_per_client_address: int = _setting(
        10,
        "Live pushed authorization requests, and pending device authorizations, a public "
        "application may have from one client address (IPv6: one /64).",
    )
    metrics_token: str = _setting(
        "", "Bearer token for GET /metrics (empty: loopback clients only).", secret=True
    )
    key_encryption_key: str = _setting(
        "",
        "32 random bytes, base64url: encrypts OIDC signing keys at rest "
        "(SQLite: generated into <database>.key when empty).",
        secret=True,
    )
    signing_alg: str = _setting(
        "ES256",
        "Default signature of ID, access and logout tokens: ES256 or RS256 (an application "
        "may choose its own; a key of each is always kept and published).",
    )
    key_rotation_delay: int = _setting(
        3600, "Seconds between `passport keys rotate` publishing a key and signing with it."
    )
    access_token_lifetime: int = _setting(900, "Seconds an access token is valid.")
    id_token_lifetime: int = _setting(900, "Seconds an ID token is valid.")
    refresh_token_lifetime: int = _setting(2592000, "Seconds a refresh token family lives.")
    refresh_grace_seconds: int = _setting(
        5, "Seconds in which a rotated refresh token still gets the same new pair."
    )
    consent_skip_first_party: bool = _setting(
        True, "Skip the consent page for applications marked first-party."
    )
    require_par: bool = _setting(
        False,
        "Accept authorization requests only through the PAR endpoint /oauth2/par "
        "(RFC 9126 require_pushed_authorization_requests, for every application).",
    )
    backchannel_allow_private: bool = _setting(
        False,
        "Allow back-channel logout URIs on http and on loopback, link-local or private "
        "addresses (development, e.g. the example application on 127.0.0.1); by default "
        "Passport posts logout tokens only to https on public addresses.",
    )
    mfa_policy: str = _setting(
        "optional",
        "Second factor an application asks of its users unless it sets its own: optional, "
        "mfa (any second factor) or passkey (a passkey).",
    )
    admin_mfa: bool = _setting(
        False,
        "Users holding any of Passport's own rights (admin, users:write…) must sign in "
        "with a second factor.",
    )
    webauthn_rp_id: str = _setting(
        "", "WebAuthn relying party id (a domain); empty: the host of the issuer."
    )
    webauthn_origins: tuple[str, ...] = _setting(
        (),
        "Comma-separated origins passkey ceremonies may come from; empty: the issuer's origin.",
    )
    reauthentication_window: int = _setting(
        900,
        "Seconds after signing in during which a user may add or remove second factors "
        "without signing in again.",
    )
    trusted_proxies: tuple[str, ...] = _setting(
        (),
        "Comma-separated proxy IPs whose X-Forwarded-For/-Proto are honoured (and the "
        "only peers /forward-auth answers).",
    )
    cookie_domain: str = _setting(
        "",
        "Domain of the session cookie (e.g. example.com: sso.example.com and "
        "app.example.com share it, for forward-auth); empty: Passport's host only.",
    )
    forward_auth_user_header: str = _setting(
        "Remote-User", "Header of /forward-auth's answer naming the user's username."
    )
    forward_auth_name_header: str = _setting(
        "Remote-Name", "Header of /forward-auth's answer with the user's display name."
    )
    forward_auth_email_header: str = _setting(
        "Remote-Email", "Header of /forward-auth's answer with the user's email address."
    )
    forward_auth_groups_header: str = _setting(
        "Remote-Groups", "Header of /forward-auth's answer listing the user's groups (commas)."
    )
    smtp_url: str = _setting(
        "",
        "Mail relay: smtp://user:pass@host:587?starttls=true, smtps://host:465 (implicit "
        "TLS) or smtp://host:25; empty: no mail (no password reset by email, no "
        "invitations, addresses stay unverified).",
        secret=True,
    )
    mail_from: str = _setting(
        "", "From address of Passport's mail; empty: noreply@ the public URL's host."
    )
    mail_templates: str = _setting(
        "",
        "Directory of mail templates overriding the built-in ones (same file names: "
        "password_reset.txt, password_reset.html…).",
    )
    smtp_timeout: int = _setting(20, "Seconds to wait for the SMTP server at each step.")
    smtp_ca_file: str = _setting(
        "", "PEM file of the CA that signs the SMTP server's certificate; empty: the system's."
    )
    require_verified_email: bool = _setting(
        False, "Users must verify their email address before they can sign in (needs SMTP)."
    )
    email_verification_lifetime: int = _setting(
        86400, "Seconds an email verification link stays valid."
    )
    password_reset_lifetime: int = _setting(1800, "Seconds a password reset link stays valid.")
    invitation_lifetime: int = _setting(604800, "Seconds an invitation link stays valid.")
    throttle_mail_limit: int = _setting(
        3, "Mails asked for per address (password reset, verification) per throttle window."
    )
    mail_address_limit: int = _setting(
        5,
        "Messages sent to one address per throttle window, whatever caused them; more "
        "are not sent.",
    )
    throttle_mail_ip_limit: int = _setting(
        20, "Mails asked for per client address per throttle window."
    )

    @property
    def mail_enabled(self) -> bool:
        """Whether Passport can send mail (an SMTP server is configured)."""
        return bool(self.smtp_url)

    @property
    def smtp(self) -> SmtpTarget | None:
        """The parsed :attr:`smtp_url` (checked at start-up), or None without one."""
        return parse_smtp_url(self.smtp_url) if self.smtp_url else None

    @property
    def sender(self) -> str:
        """The From address: configured, else ``noreply@`` the issuer's host name."""
        if self.mail_from:
            return self.mail_from
        host = urlsplit(self.issuer).hostname if self.issuer else None
        if not host or _is_ip_address(host):
            host = "localhost"
        return f"noreply@{host}"

    @property
    def hash_slots(self) -> int:
        """Password hashes computed at once per process (each takes a CPU and ~19 MiB)."""
        return self.max_concurrent_hashes or os.cpu_count() or 1

    @property
    def hash_queue_limit(self) -> int:
        """Sign-ins that may wait for a hashing slot; any more are answered 503 at once."""
        return self.hash_slots

    @property
    def server_threads(self) -> int:
        """Request threads per process: one per hashing slot and per place in the hashing
        queue, plus :data:`CHEAP_REQUEST_THREADS` that password hashing can never occupy."""
        return self.hash_slots + self.hash_queue_limit + CHEAP_REQUEST_THREADS

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")

    @property
    def public_origin(self) -> str | None:
        """``scheme://host[:port]`` of :attr:`public_url`, or None when not configured."""
        if not self.public_url:
            return None
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}".lower()

    @property
    def issuer(self) -> str | None:
        """Passport's own origin: the OpenID Connect issuer and the base of every absolute URL.

        It comes from configuration, never from a request's ``Host`` header (OpenID Connect
        Core §2 and Discovery §4.3: ``iss`` is exactly the configured issuer).  Without
        ``public_url``, a SQLite set-up (a developer's machine) is its served address;
        MariaDB/PostgreSQL deployments must configure it (None here).
        """
        if self.public_origin:
            return self.public_origin
        if not self.is_sqlite:
            return None
        host = "127.0.0.1" if self.host in ("", "0.0.0.0", "::") else self.host.lower()
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    @property
    def relying_party_id(self) -> str | None:
        """The WebAuthn RP ID (L3 §5.1.2: a registrable domain suffix of the origins'
        host): configured, else the issuer's host; None when there is no issuer."""
        if self.webauthn_rp_id:
            return self.webauthn_rp_id.lower()
        host = urlsplit(self.issuer).hostname if self.issuer else None
        if host is None or _is_ip_address(host):
            # An RP ID is a domain (L3 §5.1.2 "valid domain string"); browsers refuse an
            # address: no passkeys on http://127.0.0.1 (use http://localhost).
            return None
        return host

    @property
    def relying_party_origins(self) -> list[str]:
        """The origins a WebAuthn ceremony's ``clientDataJSON.origin`` may name (L3 §7.1
        step 9: exactly, never a prefix): configured, else the issuer."""
        if self.webauthn_origins:
            return [o.rstrip("/").lower() for o in self.webauthn_origins]
        return [self.issuer] if self.issuer else []


FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


@dataclass(frozen=True)
class SmtpTarget:
    """Where and how mail is handed over: ``implicit_tls`` (SMTPS, RFC 8314 §3.3) or
    ``starttls`` (RFC 3207); credentials for AUTH only over TLS."""

    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    username: str
    password: str = field(repr=False)


def parse_smtp_url(url: str) -> SmtpTarget:
    """``smtp://[user:pass@]host[:port][?starttls=true]`` or ``smtps://...``: ports 25 and
    465 by default; the user name and password are percent-decoded.  A password is
    refused without TLS: it would cross the network in the clear (RFC 4954 §4)."""
    from urllib.parse import parse_qs
    from urllib.parse import unquote

    if "#" in url:
        # An unescaped "#" in a password would cut it: say so without echoing it.
        raise ConfigError("setting smtp_url has a '#': percent-encode it (%23)")
    try:
        parts = urlsplit(url)
        parts.hostname  # noqa: B018 - an unclosed "[" raises here
    except ValueError:
        raise ConfigError("setting smtp_url is not a URL like smtp://host:587") from None
    if parts.scheme not in ("smtp", "smtps"):
        raise ConfigError("setting smtp_url must start with smtp:// or smtps://")
    try:
        port = parts.port
    except ValueError:
        raise ConfigError("setting smtp_url has an invalid port") from None
    if not parts.hostname:
        raise ConfigError("setting smtp_url must name a host")
    query = parse_qs(parts.query, keep_blank_values=True)
    if set(query) - {"starttls"}:
        # Not echoed: an unescaped "?" in a password puts the rest of it here.
        raise ConfigError(
            "setting smtp_url: the only option is ?starttls=true (percent-encode a '?' "
            "in a password as %3F)"
        )
    flag = (query.get("starttls") or ["false"])[-1].lower()
    if flag not in ("true", "false", "1", "0", "yes", "no"):
        raise ConfigError("setting smtp_url: starttls must be true or false")
    implicit = parts.scheme == "smtps"
    starttls = flag in ("true", "1", "yes") and not implicit
    username = unquote(parts.username or "")
    password = unquote(parts.password or "")
    if password and not (implicit or starttls):
        raise ConfigError("setting smtp_url: a password needs TLS (smtps:// or ?starttls=true)")
    return SmtpTarget(
        parts.hostname, port or (465 if implicit else 25), implicit, starttls, username, password
    )


def _convert(name: str, raw: Any) -> Any:
    """Turn a raw value (TOML value, env string, flag) into the field's type."""
    kind = FIELDS[name].type
    try:
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise ValueError
        if kind == "int":
            if isinstance(raw, bool):
                raise ValueError
            return int(str(raw).strip(), 10)
        if kind == "float":
            if isinstance(raw, bool):
                raise ValueError
            return float(str(raw).strip())
        if kind == "tuple[str, ...]":
            items = raw if isinstance(raw, list) else str(raw).split(",")
            return tuple(str(i).strip() for i in items if str(i).strip())
        if not isinstance(raw, str | int | float):
            raise ValueError
        return str(raw)
    except ValueError:
        shown = "***" if FIELDS[name].metadata["secret"] else repr(raw)
        raise ConfigError(f"setting {name}: {shown} is not a valid {kind}") from None


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_address(value: str) -> bool:
    """A bare address ``local@domain`` with no display name, spaces or line breaks (it
    goes into a header as it is)."""
    local, at, domain = value.partition("@")
    return bool(at and local and "." in domain.strip(".") and value.isprintable()) and not any(
        c in value for c in ' <>,;"\\\r\n'
    )


def _is_header_name(value: str) -> bool:
    """An HTTP field name (RFC 9110 §5.1 token), kept to letters, digits and '-'."""
    return (
        bool(value)
        and len(value) <= 64
        and all(c.isascii() and (c.isalnum() or c == "-") for c in value)
    )


def _is_32_bytes_base64url(value: str) -> bool:
    """The form of the key-encryption key (checked with the other settings, so a wrong
    one stops start-up and every command with the settings' own message)."""
    try:
        return len(base64.urlsafe_b64decode(value + "==")) == 32
    except (binascii.Error, ValueError):
        return False


def _validate(settings: Settings) -> None:
    def need(ok: bool, message: str) -> None:
        if not ok:
            raise ConfigError(message)

    need(bool(settings.database_url), "setting database_url must not be empty")
    scheme = settings.database_url.split(":", 1)[0]
    need(
        scheme in {"sqlite", "mysql+pymysql", "mariadb+pymysql", "postgresql+psycopg"},
        f"setting database_url: unsupported scheme '{scheme}' "
        "(use sqlite, mysql+pymysql or postgresql+psycopg)",
    )
    need(
        settings.key_encryption_key == "" or _is_32_bytes_base64url(settings.key_encryption_key),
        "setting key_encryption_key must be 32 random bytes, base64url "
        "(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')",
    )
    need(1 <= settings.port <= 65535, "setting port must be between 1 and 65535")
    need(1 <= settings.workers <= 512, "setting workers must be between 1 and 512")
    need(
        settings.public_url == "" or settings.public_url.startswith(("http://", "https://")),
        "setting public_url must start with http:// or https://",
    )
    need(
        settings.redis_url == "" or settings.redis_url.startswith(("redis://", "rediss://")),
        "setting redis_url must start with redis:// or rediss://",
    )
    need(
        settings.log_level.upper() in {"DEBUG", "INFO", "WARNING", "ERROR"},
        "setting log_level must be one of DEBUG, INFO, WARNING, ERROR",
    )
    need(settings.password_min_length >= 8, "setting password_min_length must be at least 8")
    need(settings.password_min_length <= 64, "setting password_min_length must be at most 64")
    need(settings.argon2_memory_kib >= 19456, "setting argon2_memory_kib must be >= 19456")
    need(settings.argon2_time_cost >= 2, "setting argon2_time_cost must be >= 2")
    need(settings.argon2_parallelism >= 1, "setting argon2_parallelism must be >= 1")
    for name in (
        "session_idle_timeout",
        "session_absolute_lifetime",
        "remember_me_lifetime",
        "throttle_window",
        "throttle_account_limit",
        "throttle_ip_limit",
        "throttle_device_code_limit",
        "throttle_client_request_limit",
        "throttle_registration_limit",
        "throttle_mail_limit",
        "throttle_mail_ip_limit",
        "mail_address_limit",
        "email_verification_lifetime",
        "password_reset_lifetime",
        "invitation_lifetime",
        "smtp_timeout",
        "device_code_lifetime",
        "max_pushed_requests_per_client",
        "max_device_authorizations_per_client",
        "max_live_requests_per_client_address",
        "max_body_bytes",
        "max_query_bytes",
        "db_pool_size",
    ):
        need(getattr(settings, name) > 0, f"setting {name} must be positive")
    need(
        settings.mfa_policy in ("optional", "mfa", "passkey"),
        "setting mfa_policy must be optional, mfa or passkey",
    )
    need(settings.reauthentication_window > 0, "setting reauthentication_window must be positive")
    for origin in settings.webauthn_origins:
        need(
            origin.startswith(("https://", "http://")) and urlsplit(origin).path == "",
            f"setting webauthn_origins: {origin!r} is not an origin like https://sso.example.com",
        )
    need(settings.signing_alg in SIGNING_ALGS, "setting signing_alg must be ES256 or RS256")
    need(settings.key_rotation_delay >= 0, "setting key_rotation_delay must be >= 0")
    for name in ("access_token_lifetime", "id_token_lifetime", "refresh_token_lifetime"):
        need(getattr(settings, name) > 0, f"setting {name} must be positive")
    need(settings.refresh_grace_seconds >= 0, "setting refresh_grace_seconds must be >= 0")
    need(settings.max_concurrent_hashes >= 0, "setting max_concurrent_hashes must be >= 0")
    need(settings.db_pool_timeout > 0, "setting db_pool_timeout must be positive")
    if settings.smtp_url:
        parse_smtp_url(settings.smtp_url)  # raises ConfigError with its own message
        need(
            settings.is_sqlite or bool(settings.key_encryption_key),
            "setting smtp_url needs key_encryption_key (queued mail holds links, sealed "
            "at rest with it)",
        )
        need(
            settings.issuer is not None,
            "setting smtp_url needs public_url (the links in mail are built from it)",
        )
    need(
        settings.mail_from == "" or _is_address(settings.mail_from),
        "setting mail_from must be an email address like passport@example.com",
    )
    need(
        not settings.require_verified_email or bool(settings.smtp_url),
        "setting require_verified_email needs smtp_url (the links go out by mail)",
    )
    need(
        settings.smtp_ca_file == "" or Path(settings.smtp_ca_file).is_file(),
        "setting smtp_ca_file must be a readable PEM file",
    )
    need(
        settings.mail_templates == "" or Path(settings.mail_templates).is_dir(),
        "setting mail_templates must be a directory",
    )
    for name in (
        "forward_auth_user_header",
        "forward_auth_name_header",
        "forward_auth_email_header",
        "forward_auth_groups_header",
    ):
        need(
            _is_header_name(getattr(settings, name)),
            f"setting {name} must be a header name (letters, digits and '-')",
        )
    if settings.cookie_domain:
        domain = settings.cookie_domain.lower().lstrip(".")
        host = (urlsplit(settings.issuer).hostname or "") if settings.issuer else ""
        need(
            "." in domain and not _is_ip_address(domain),
            "setting cookie_domain must be a domain name like example.com",
        )
        # RFC 6265 §5.3 step 6: a browser drops a cookie whose Domain does not
        # domain-match the host that set it.
        need(
            host == domain or host.endswith("." + domain),
            "setting cookie_domain must be Passport's own host or a parent of it (public_url)",
        )


def load_settings(
    *,
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build :class:`Settings` from defaults, TOML file, environment and overrides."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}

    path = config_file or env.get(ENV_PREFIX + "CONFIG")
    if path:
        try:
            with Path(path).open("rb") as fh:
                document = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"config file {path}: {exc.strerror or 'cannot be read'}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path}: invalid TOML ({exc})") from None
        section = document.get("passport", document)
        if not isinstance(section, dict):
            raise ConfigError(f"config file {path}: [passport] must be a table")
        for key, raw in section.items():
            name = key.replace("-", "_").lower()
            if name not in FIELDS:
                raise ConfigError(f"config file {path}: unknown setting '{key}'")
            values[name] = _convert(name, raw)

    for name in FIELDS:
        raw_env = env.get(ENV_PREFIX + name.upper())
        if raw_env is not None:
            values[name] = _convert(name, raw_env)

    for name, raw in (overrides or {}).items():
        if raw is None:
            continue
        if name not in FIELDS:
            raise ConfigError(f"unknown setting '{name}'")
        values[name] = _convert(name, raw)

    settings = Settings(**values)
    settings = dataclasses.replace(settings, log_level=settings.log_level.upper())
    _validate(settings)
    return settings


def mask_url(url: str) -> str:
    """Hide the password of a URL like ``scheme://user:pw@host/db``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def describe(settings: Settings) -> list[tuple[str, str, str]]:
    """``(name, shown value, help)`` for every setting, secrets masked."""
    rows = []
    for name, spec in FIELDS.items():
        value = getattr(settings, name)
        if isinstance(value, tuple):
            shown = ",".join(value)
        else:
            shown = str(value)
        if spec.metadata["secret"] and shown:
            shown = mask_url(shown) if "://" in shown else "***"
            if name == "smtp_url":  # a relay's user name may be a token too
                parts = urlsplit(shown)
                if parts.username:
                    shown = parts._replace(
                        netloc="***" + parts.netloc[parts.netloc.rfind("@") :]
                    ).geturl()
        rows.append((name, shown, spec.metadata["help"]))
    return rows
