"""Settings of the django-oauth-toolkit peer: production-style, only what DOT needs.

serve.py passes everything that varies per start through the environment:
BENCH_DATABASE_URL, BENCH_ISSUER, BENCH_SECRET_KEY, BENCH_OIDC_RSA_PRIVATE_KEY,
BENCH_CLIENT_SECRET_HASHER (pbkdf2, the default, or sha256).
Without them (``manage.py check`` by hand) a throwaway SQLite file and fresh keys are used.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import unquote
from urllib.parse import urlsplit

from django.conf import global_settings
from django.core.exceptions import ImproperlyConfigured

from benchsite.keys import rsa_private_key_pem

BASE_DIR = Path(__file__).resolve().parent.parent


def database_from_url(url: str) -> dict[str, Any]:
    """postgresql://USER:PASS@HOST:PORT/NAME or sqlite:///PATH as a Django DATABASES entry."""
    if url.startswith("sqlite:///"):
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": url.removeprefix("sqlite:///"),
            "CONN_MAX_AGE": None,
            "OPTIONS": {
                # As Passport runs SQLite: WAL, synchronous=FULL, writers queue on a busy
                # timeout and open BEGIN IMMEDIATE (no failure on a stale read snapshot).
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"unsupported database URL {url!r}: postgresql://… or sqlite:///…")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        "CONN_MAX_AGE": None,  # persistent: one connection per server thread, kept
    }


SECRET_KEY = os.environ.get("BENCH_SECRET_KEY") or secrets.token_urlsafe(50)
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "oauth2_provider",
]

# What DOT's own flows need: the authorization endpoint (not benchmarked) asks for a
# signed-in user behind CSRF protection. The benchmarked endpoints are csrf_exempt and
# never touch the session or request.user, which both middlewares load lazily.
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

ROOT_URLCONF = "benchsite.urls"
WSGI_APPLICATION = "benchsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
            ]
        },
    }
]

DATABASES = {
    "default": database_from_url(
        os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{BASE_DIR / 'dot-bench.sqlite3'}"
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Django's default hashers, plus one SHA-256 for generated client secrets (benchsite/hashers.py).
# It is last, so it is never the "default" hasher; it is always listed, so a stored
# unsalted_sha256 secret can be checked whichever CLIENT_SECRET_HASHER is selected.
PASSWORD_HASHERS = [
    *global_settings.PASSWORD_HASHERS,
    "benchsite.hashers.UnsaltedSHA256PasswordHasher",
]

# DOT hashes client secrets on save with make_password(secret, hasher=CLIENT_SECRET_HASHER)
# (a PASSWORD_HASHERS algorithm name; "default" is the first one, PBKDF2) and checks them
# with check_password on every client authentication.
CLIENT_SECRET_HASHERS = {"pbkdf2": "default", "sha256": "unsalted_sha256"}
_client_secret_hasher = os.environ.get("BENCH_CLIENT_SECRET_HASHER") or "pbkdf2"
if _client_secret_hasher not in CLIENT_SECRET_HASHERS:
    raise ImproperlyConfigured(
        f"BENCH_CLIENT_SECRET_HASHER={_client_secret_hasher!r}: "
        f"one of {', '.join(CLIENT_SECRET_HASHERS)}"
    )

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

OAUTH2_PROVIDER = {
    "OIDC_ENABLED": True,
    # RS256: DOT signs ID tokens with RSA (or HS256 with the client secret); no ES256.
    "OIDC_RSA_PRIVATE_KEY": os.environ.get("BENCH_OIDC_RSA_PRIVATE_KEY") or rsa_private_key_pem(),
    # The runner's contract: issuer http://127.0.0.1:PORT, discovery at the root.
    "OIDC_ISS_ENDPOINT": os.environ.get("BENCH_ISSUER", ""),
    "ACCESS_TOKEN_EXPIRE_SECONDS": 3600,
    "SCOPES": {
        "read": "Read",
        "write": "Write",
        "openid": "OpenID Connect",
        "profile": "Profile",
        "email": "Email address",
    },
    "DEFAULT_SCOPES": ["read"],
    "OAUTH2_VALIDATOR_CLASS": "benchsite.validators.ClaimsValidator",
    # "default" (Django's PBKDF2, as shipped) or "unsalted_sha256" (serve.py's option).
    "CLIENT_SECRET_HASHER": CLIENT_SECRET_HASHERS[_client_secret_hasher],
    # Everything else as shipped: access tokens stored in plaintext plus a SHA-256
    # checksum for look-ups.
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}
