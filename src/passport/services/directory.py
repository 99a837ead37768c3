"""The directory's building blocks: applications, their permissions, groups,
memberships, grants and users — validation, lookup, and the row changes.

The operations that administrators run (with rights, the escalation policy,
audit and what must end) are :mod:`passport.services.administration`, built on
these.  Names are unique in any letter case, decided by unique indexes (no
check-then-insert), and so are look-alikes: a group, application or permission name
whose UTS #39 skeleton (:mod:`passport.lookalikes`) equals an existing one's is
taken too (``name_skeleton`` columns, migration 0009).  Deleting is explicit about
what depends on the deleted object: grants and memberships go with it (database
cascades); Passport itself and its built-in rights cannot be deleted.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from urllib.parse import unquote
from urllib.parse import urlsplit

from sqlalchemy import delete
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from passport.config import SIGNING_ALGS
from passport.errors import ClientError
from passport.errors import Forbidden
from passport.errors import Invalid
from passport.errors import NotFound
from passport.errors import Taken
from passport.errors import WrongLength
from passport.errors import required
from passport.lookalikes import is_default_ignorable
from passport.lookalikes import lookalike_key
from passport.services import clients
from passport.services import outbound
from passport.services import signout
from passport.services.accounts import canonical
from passport.services.applications import name_key
from passport.services.applications import normalise_origin
from passport.services.permissions import PASSPORT_APP_ID
from passport.storage.models import Application
from passport.storage.models import ApplicationResource
from passport.storage.models import ApplicationResourceClient
from passport.storage.models import Group
from passport.storage.models import GroupMember
from passport.storage.models import GroupPermission
from passport.storage.models import Permission
from passport.storage.models import User
from passport.storage.models import UserPermission

MAX_ROW_ID = 2**31 - 1  # the ids of users, groups and applications are 32-bit INTEGERs


def as_id(ref: str) -> int | None:
    """``ref`` as a row id when it is a plain number that fits one (a 32-bit INTEGER:
    PostgreSQL refuses a larger parameter outright), else None (a name)."""
    if ref.isascii() and ref.isdigit() and len(ref) <= 10 and int(ref) <= MAX_ROW_ID:
        return int(ref)
    return None


def validate_name(value: str | None, source: str, kind: str, max_length: int = 100) -> str:
    if value is None or value.strip() == "":
        raise required(source, f"{kind} name must be specified.")
    name = unicodedata.normalize("NFKC", value.strip())
    if len(name) > max_length:
        raise WrongLength(
            f"{kind} name must be at most {max_length} characters long.",
            source=source,
        )
    if as_id(name) is not None or name.lstrip("-").isdigit():
        raise Invalid(
            f"{kind} name must not be a number (numbers refer to ids).",
            source=source,
            value=value[:100],
        )
    if any(unicodedata.category(c)[0] == "C" for c in name):
        raise Invalid(
            f"{kind} name must not contain control characters.",
            source=source,
            value=value[:100],
        )
    # RFC 8265 §3.3 / UTS #39 §4: a default-ignorable code point (U+034F, U+200B...) is
    # drawn as nothing, so a name holding one would read like another name.
    if any(is_default_ignorable(c) for c in name):
        raise Invalid(
            f"{kind} name must not contain invisible characters.",
            source=source,
            value=value[:100],
        )
    return name


def _taken(kind: str, name: str) -> str:
    """The 409 message: the same name in any letter case, or a look-alike (UTS #39)."""
    return f"{kind} named '{name}', or one that looks like it, already exists."


# RFC 3986 §2: unreserved, reserved (gen-delims and sub-delims) and percent-encoding only.
# Nothing else — not a backslash, which Python's urlsplit and the HTTP client's parser read
# differently ("https://127.0.0.1:9443\\@8.8.8.8/": the check saw 8.8.8.8, the client
# connected to 127.0.0.1).
_URI_CHARACTERS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#[]@!$&'()*+,;=%"
)


def _uri_text(value: str) -> bool:
    """Only the characters RFC 3986 §2 allows in a URI."""
    return bool(value) and all(c in _URI_CHARACTERS for c in value)


def validate_origins(values: list[str], source: str = "origins") -> list[str]:
    result: list[str] = []
    for value in values:
        origin = normalise_origin(value) if _uri_text(value.strip()) else None
        if origin is None or origin != value.strip().lower().rstrip("/"):
            raise Invalid(
                f"'{value[:100]}' is not an origin like https://app.example.com[:port].",
                source=source,
                value=value[:100],
            )
        if origin not in result:
            result.append(origin)
    return result


def _redirect_uri_ok(value: str) -> bool:
    """Absolute https (http only for loopback), with a host, no fragment: RFC 6749 §3.1.2
    ("MUST NOT include a fragment component" — an empty one, a bare trailing ``#``,
    included: ``urlsplit`` reports it as no fragment, so ``#`` is looked for itself);
    what ``urlsplit`` cannot read (``https://[zz``, a bad port) is not a URI, and port 0
    names no port one can connect to (RFC 6335 §6: reserved)."""
    if len(value) > 500 or not _uri_text(value):
        return False
    try:
        parts = urlsplit(value)
        host = parts.hostname
        port = parts.port  # raises ValueError for a port that is not one
    except ValueError:
        return False
    if port == 0:
        return False
    loopback = host in ("localhost", "127.0.0.1", "::1")
    return (
        parts.scheme in ("https", "http")
        and (parts.scheme == "https" or loopback)
        and bool(host)
        and not parts.fragment
        and "#" not in value
    )


def is_registered_redirect_uri(value: str, registered: list[str]) -> bool:
    """``value`` is one of the ``registered`` (login or post-logout) redirect URIs, by
    exact string comparison (RFC 9700 §4.1.3; RP-Initiated Logout 1.0 §3), and has no
    fragment.  The one run-time check of both lists: a URI stored before the rule of
    :func:`_redirect_uri_ok` held (a bare trailing ``#`` was accepted, and migration 0016
    copied login redirect URIs into the post-logout ones) is not registered — RFC 6749
    §3.1.2: the endpoint URI "MUST NOT include a fragment component", and a response
    appended after a ``#`` would reach the client's script, never its server."""
    return "#" not in value and value in registered


def validate_redirect_uris(
    values: list[str], source: str = "redirectUris", what: str = "redirect URI"
) -> list[str]:
    result: list[str] = []
    for value in values:
        if not _redirect_uri_ok(value):
            raise Invalid(
                f"'{value[:100]}' is not a valid {what} (absolute https, no fragment; "
                "http only for localhost).",
                source=source,
                value=value[:100],
            )
        if value not in result:
            result.append(value)
    return result


def validate_post_logout_redirect_uris(values: list[str]) -> list[str]:
    """OpenID Connect RP-Initiated Logout 1.0 §3 ``post_logout_redirect_uris``: the rules
    of redirect URIs (§3: "the values MUST be absolute URIs", compared exactly as in
    Core §3.1.2.1), so that ``/logout`` never sends a user anywhere a login redirect
    could not go; a separate list (§2: registered for that purpose)."""
    return validate_redirect_uris(
        values, source="postLogoutRedirectUris", what="post-logout redirect URI"
    )


# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
MAX_SCOPES = 500  # characters, space-separated: the width of oauth_tokens.scope


def validate_scopes(values: list[str], source: str = "scopes") -> list[str]:
    """Scope tokens an application may be issued by the client credentials grant
    (RFC 7591 §2 ``scope``), each of RFC 6749 §3.3's syntax, at most 500 characters."""
    result: list[str] = []
    for value in values:
        if not _SCOPE_TOKEN.fullmatch(value):
            raise Invalid(
                f"'{value[:100]}' is not a scope (printable ASCII, no spaces, quotes or '\\').",
                source=source,
                value=value[:100],
            )
        if value not in result:
            result.append(value)
    if len(" ".join(result)) > MAX_SCOPES:
        raise WrongLength(
            f"{source} must be at most {MAX_SCOPES} characters long.",
            source=source,
        )
    return result


@contextmanager
def unique(db: Session, message: str, source: str, value: Any) -> Iterator[None]:
    """Turn a unique-index violation inside the block into a 409 ClientError."""
    try:
        with db.begin_nested():
            yield
            db.flush()
    except IntegrityError:
        raise Taken(message, source=source, value=value) from None


# -- applications ------------------------------------------------------------------------------


def create_application(
    db: Session,
    now: datetime,
    name: str | None,
    *,
    description: str = "",
    origins: list[str] | None = None,
    redirect_uris: list[str] | None = None,
    post_logout_redirect_uris: list[str] | None = None,
    confidential: bool = True,
    first_party: bool = False,
    access_token_format: str = "jwt",
    backchannel_logout_uri: str | None = None,
    allow_private_backchannel: bool = False,
    scopes: list[str] | None = None,
    id_token_signed_response_alg: str | None = None,
    resources: list[str] | None = None,
    own_origin: str | None = None,
) -> tuple[Application, str | None]:
    """A new application; returns it and its client secret (confidential ones only), once.
    ``own_origin``: Passport's effective issuer (:attr:`Settings.issuer`), which no resource
    identifier may name."""
    clean = validate_name(name, "name", "Application")
    resources = validate_resources(resources or [], own_origin=own_origin)
    app = Application(
        name=clean,
        name_key=name_key(clean),
        name_skeleton=lookalike_key(clean),
        description=description,
        allowed_origins=validate_origins(origins or []),
        redirect_uris=validate_redirect_uris(redirect_uris or []),
        post_logout_redirect_uris=validate_post_logout_redirect_uris(
            post_logout_redirect_uris or []
        ),
        confidential=confidential,
        enabled=True,
        created_at=now,
        first_party=first_party,
        access_token_format=validate_token_format(access_token_format),
        backchannel_logout_uri=validate_backchannel_uri(
            backchannel_logout_uri, allow_private=allow_private_backchannel
        ),
        scopes=validate_scopes(scopes or []),
        id_token_signed_response_alg=validate_signing_alg(id_token_signed_response_alg),
    )
    secret: str | None = clients.issue_credentials(app)
    if not confidential:
        app.secret_hash, secret = None, None
    app.resource_rows = []  # loaded: its answer is shown after the session ends (CLI)
    app.resource_client_rows = []
    with unique(db, _taken("An application", clean), "name", clean):
        db.add(app)
    if resources:
        set_resources(db, app, resources, now, own_origin=own_origin)
    return app, secret


def validate_backchannel_uri(value: str | None, *, allow_private: bool) -> str | None:
    """OpenID Connect Back-Channel Logout 1.0 §2.2 ``backchannel_logout_uri``: absolute,
    no fragment.  Passport POSTs to it, so it must be https to a public host
    (:mod:`passport.services.outbound`: no loopback, link-local or private literal
    address, no ``localhost``); names are checked again when resolved, at delivery.
    ``allow_private`` (the operator's ``backchannel_allow_private``) allows what a
    redirect URI may be, http on loopback included."""
    if not value:
        return None
    source = "backchannelLogoutUri"
    uri = validate_redirect_uris([value], source=source)[0]
    if allow_private:
        return uri
    parts = urlsplit(uri)
    problem = (
        "it is not https"
        if parts.scheme != "https"
        else outbound.host_problem(parts.hostname or "")
    )
    if problem is not None:
        raise Invalid(
            f"'{value[:100]}' is not a back-channel logout URI Passport may call ({problem}): "
            "https to a public host only.",
            source=source,
            value=value[:100],
        )
    return uri


def validate_token_format(value: str) -> str:
    if value not in ("jwt", "opaque"):
        raise Invalid(
            "accessTokenFormat must be jwt or opaque.",
            source="accessTokenFormat",
            value=value[:20],
        )
    return value


def validate_signing_alg(value: str | None) -> str | None:
    """OpenID Connect Dynamic Client Registration 1.0 §2 ``id_token_signed_response_alg``:
    one of the algorithms Passport keeps a key of (:data:`passport.config.SIGNING_ALGS`),
    or empty for the server's ``signing_alg`` (None).  ``none`` is refused: Passport
    never issues an unsigned ID token (Core §2 allows it only with no token endpoint
    use, and RFC 8725 §3.1 advises against it)."""
    if not value:
        return None
    if value not in SIGNING_ALGS:
        raise Invalid(
            f"idTokenSignedResponseAlg must be one of {', '.join(SIGNING_ALGS)}.",
            source="idTokenSignedResponseAlg",
            value=value[:20],
        )
    return value


MAX_RESOURCES = 20  # resource identifiers of one application
MAX_RESOURCE_LENGTH = 500  # characters of one, as a redirect URI


def resource_uri_problem(value: str) -> str | None:
    """Why ``value`` is no resource identifier Passport accepts, or None.

    RFC 8707 §2: "an absolute URI, as specified by Section 4.3 of [RFC3986]", which
    "MUST NOT include a fragment component"; as every other URI Passport keeps, https (http
    only on loopback), RFC 3986 §2 characters only, at most 500 of them.  Its scheme and
    host must be in lower case: identifiers are compared exactly (RFC 8707 §2 gives no
    normalisation), so ``https://API.example`` must not sit beside ``https://api.example``
    as a second resource."""
    if not _redirect_uri_ok(value):
        return "absolute https, no fragment; http only for localhost; at most 500 characters"
    parts = urlsplit(value)
    authority = f"{parts.scheme}://{parts.netloc}"
    if not value.startswith(authority) or authority != authority.lower():
        return "scheme and host in lower case"
    if "#" in value:  # an empty fragment is a fragment component too (RFC 3986 §3.5)
        return "no fragment"
    return None


_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def _server_of(uri: str) -> tuple[str, int] | None:
    """The server ``uri`` names, as ``(host, port)``, or None when it names none.

    The host in lower case (RFC 3986 §3.2.2: case-insensitive), percent-decoded (§2.1),
    without a trailing dot (RFC 1034 §3.1: ``sso.example.com.`` is the same absolute
    name), the port its scheme's default when none is given (§3.2.3: ``:443`` on https is
    no other server); the loopback names, ``localhost``, ``127.0.0.1`` and ``::1``, are
    one host (Passport serving on one of them is reached by the others).  The scheme
    does not count: one port serves one protocol."""
    try:
        parts = urlsplit(uri.strip())
        port = parts.port
    except ValueError:
        return None
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    host = unquote(parts.hostname or "").lower().rstrip(".")
    if default is None or not host:
        return None
    if host in _LOOPBACK_NAMES:
        host = "loopback"
    return host, port if port is not None else default


def registration_problem(value: str, own_origin: str | None) -> str | None:
    """Why ``value`` may not be registered as a resource identifier, or None: what
    :func:`resource_uri_problem` refuses, and, stricter than a request is read (an
    identifier registered before these rules keeps working):

    * a userinfo part (``https://u@host``, ``https://api.example@evil.example``): RFC 3986
      §3.2.1 deprecates it and RFC 9700 §4.1.1 warns of it; an administrator reading
      ``https://api-a.example.com@evil.example`` sees the wrong host;
    * a query component: RFC 8707 §2, the identifier "SHOULD NOT include a query
      component";
    * Passport's own address (``own_origin``, its effective issuer: the public URL, or the
      served address of a SQLite set-up without one — :attr:`Settings.issuer`): Passport
      is no API for which another application could serve tokens, and its userinfo
      refuses tokens with an audience.  Compared as :func:`_server_of` reads hosts, so
      that ``https://sso.example.com.:443/`` is Passport too."""
    problem = resource_uri_problem(value)
    if problem is not None:
        return problem
    parts = urlsplit(value)
    if "@" in parts.netloc:
        return "no user information before the host"
    if "?" in value:  # an empty query is a query component too (RFC 3986 §3.4)
        return "no query component"
    own = _server_of(own_origin) if own_origin else None
    if own is not None and _server_of(value) == own:
        return "not Passport's own address"
    return None


def validate_resources(
    values: list[str], source: str = "resources", *, own_origin: str | None = None
) -> list[str]:
    """RFC 8707 §2 resource identifiers (:func:`registration_problem`; ``own_origin``:
    Passport's effective issuer), once each."""
    result: list[str] = []
    for value in values:
        problem = registration_problem(value, own_origin)
        if problem is not None:
            raise Invalid(
                f"'{value[:100]}' is not a resource identifier ({problem}).",
                source=source,
                value=value[:100],
            )
        if value not in result:
            result.append(value)
    if len(result) > MAX_RESOURCES:
        raise WrongLength(f"At most {MAX_RESOURCES} {source}.", source=source)
    return result


def resource_key(uri: str) -> str:
    """The key of ``application_resources``: the SHA-256 of the exact URI."""
    return hashlib.sha256(uri.encode("utf-8", "surrogatepass")).hexdigest()


def set_resources(
    db: Session,
    app: Application,
    values: list[str],
    now: datetime,
    *,
    own_origin: str | None = None,
) -> None:
    """Make ``values`` the resource identifiers of ``app`` (replacing the list).  One
    identifier, one application: the primary key decides, atomically — an identifier
    that another application serves is 409 Taken.  An identifier taken away ends what
    was granted for it (:func:`passport.services.signout.end_resource_access`): the next
    application to register it inherits nothing."""
    wanted = validate_resources(values, own_origin=own_origin)
    signout.end_resource_access(db, [uri for uri in app.resources if uri not in wanted], now)
    with unique(
        db, "A resource identifier is registered by another application.", "resources", wanted
    ):
        app.resource_rows = [r for r in app.resource_rows if r.uri in wanted]
        kept = set(app.resources)
        db.flush()
        for uri in wanted:
            if uri not in kept:
                app.resource_rows.append(ApplicationResource(uri_hash=resource_key(uri), uri=uri))


def resource_server(db: Session, uri: str) -> Application | None:
    """The application that registered resource identifier ``uri``, if any."""
    row = db.get(ApplicationResource, resource_key(uri))
    return db.get(Application, row.application_id) if row is not None else None


MAX_RESOURCE_CLIENTS = 100  # client applications listed on one resource server


def resource_client_apps(
    db: Session, values: list[str], source: str = "resourceClients"
) -> list[Application]:
    """The applications named by ``client_id`` in ``values`` (once each, in order) that
    a resource server may list as clients of its resource identifiers.

    Refused: an unknown ``client_id`` (404, also for any text that is not one — no
    lookup by name or id, so that a list means exactly what the token endpoint will
    compare), a public client (RFC 6749 §4.4: the grant is for confidential clients only,
    listing one would grant nothing), and the Passport application (its credentials are
    the administration's own, never a machine client of an API).  The resource server
    itself may be listed: one that calls its own API gets tokens for it only when
    an administrator lists it, as any other client."""
    wanted = list(dict.fromkeys(values))
    if len(wanted) > MAX_RESOURCE_CLIENTS:
        raise WrongLength(f"At most {MAX_RESOURCE_CLIENTS} {source}.", source=source)
    found: list[Application] = []
    for value in wanted:
        client = (
            db.scalars(select(Application).where(Application.client_id == value)).first()
            if 0 < len(value) <= 64
            else None
        )
        if client is None:
            raise missing("client application", source, value[:100])
        if client.id == PASSPORT_APP_ID:
            raise Invalid(
                "The Passport application cannot be a client of another application's API.",
                source=source,
                value=value,
            )
        if not client.confidential:
            raise Invalid(
                f"'{client.name}' is a public client: it cannot use the client credentials "
                "grant (RFC 6749 §4.4).",
                source=source,
                value=value,
            )
        found.append(client)
    return found


def set_resource_clients(db: Session, app: Application, clients: list[Application]) -> None:
    """Make ``clients`` (from :func:`resource_client_apps`) the applications that may get
    client credentials tokens for the resource identifiers of ``app`` (replacing the
    list)."""
    wanted = {c.id for c in clients}
    app.resource_client_rows = [r for r in app.resource_client_rows if r.client_app_id in wanted]
    kept = {r.client_app_id for r in app.resource_client_rows}
    db.flush()
    for client in clients:
        if client.id not in kept:
            app.resource_client_rows.append(
                ApplicationResourceClient(api_id=app.id, client_app_id=client.id, client=client)
            )
    db.flush()


def may_get_client_credentials(db: Session, server: Application, client: Application) -> bool:
    """Whether ``server`` lists ``client`` among the clients that may get client
    credentials tokens for its resource identifiers (RFC 8707 §2)."""
    return db.get(ApplicationResourceClient, (server.id, client.id)) is not None


def rename_application(db: Session, app: Application, name: str) -> None:
    clean = validate_name(name, "name", "Application")
    with unique(db, _taken("An application", clean), "name", clean):
        app.name, app.name_key = clean, name_key(clean)
        app.name_skeleton = _renamed_key(app.name_skeleton, clean, app.id)


def _renamed_key(current: str, name: str, row_id: int) -> str:
    """The look-alike key after a rename.  A row that migration 0009 kept apart from an
    earlier look-alike (``<key>:<id>``) keeps its key while its name still looks the
    same (a change of letter case), so that such a rename is not refused as taken."""
    key = lookalike_key(name)
    return current if current == f"{key}:{row_id}" else key


def delete_application(db: Session, app: Application, now: datetime) -> None:
    """Delete ``app``; what was granted for its resource identifiers ends with it
    (:func:`passport.services.signout.end_resource_access`), its own tokens go by the
    foreign keys."""
    if app.id == PASSPORT_APP_ID:
        raise Forbidden("The Passport application cannot be deleted.", source="id", value=app.id)
    signout.end_resource_access(db, app.resources, now)
    db.delete(app)
    db.flush()


# -- permissions ---------------------------------------------------------------------------------

BUILT_IN = {
    "admin",
    "users:read",
    "users:write",
    "groups:write",
    "apps:read",
    "apps:write",
    "audit:read",
}


def create_permission(
    db: Session, app: Application, name: str | None, description: str = ""
) -> Permission:
    clean = validate_name(name, "name", "Permission")
    permission = Permission(
        application_id=app.id,
        name=clean,
        name_key=name_key(clean),
        name_skeleton=lookalike_key(clean),
        description=description,
    )
    message = f"'{app.name}' already has a permission '{clean}' or one that looks like it."
    with unique(db, message, "name", clean):
        db.add(permission)
    return permission


def find_permission(db: Session, app: Application, name: str | None) -> Permission | None:
    if not name:
        raise required("permission", "Permission name must be specified.")
    return db.scalars(
        select(Permission).where(
            Permission.application_id == app.id, Permission.name_key == name_key(name)
        )
    ).first()


def delete_permission(db: Session, permission: Permission) -> None:
    if permission.application_id == PASSPORT_APP_ID and permission.name_key in BUILT_IN:
        raise Forbidden(
            f"'{permission.name}' is built into Passport and cannot be deleted.",
            source="permission",
            value=permission.name,
        )
    db.delete(permission)
    db.flush()


# -- groups --------------------------------------------------------------------------------------


def create_group(db: Session, name: str | None, description: str = "") -> Group:
    clean = validate_name(name, "name", "Group")
    group = Group(
        name=clean,
        name_key=name_key(clean),
        name_skeleton=lookalike_key(clean),
        description=description,
    )
    with unique(db, _taken("A group", clean), "name", clean):
        db.add(group)
    return group


def rename_group(db: Session, group: Group, name: str) -> None:
    clean = validate_name(name, "name", "Group")
    with unique(db, _taken("A group", clean), "name", clean):
        group.name, group.name_key = clean, name_key(clean)
        group.name_skeleton = _renamed_key(group.name_skeleton, clean, group.id)


def find_group(db: Session, name: str | None, source: str = "group") -> Group | None:
    if not name:
        raise required(source, "Group name must be specified.")
    row_id = as_id(name)
    if row_id is not None:
        return db.get(Group, row_id)
    return db.scalars(select(Group).where(Group.name_key == name_key(name))).first()


def add_member(db: Session, group: Group, user: User) -> bool:
    """True when added, False when the user already was a member."""
    exists = db.get(GroupMember, (group.id, user.id))
    if exists is not None:
        return False
    with unique(db, "Already a member.", "username", user.username):
        db.add(GroupMember(group_id=group.id, user_id=user.id))
    return True


def remove_member(db: Session, group: Group, user: User) -> bool:
    result = db.execute(
        delete(GroupMember).where(GroupMember.group_id == group.id, GroupMember.user_id == user.id)
    )
    return bool(getattr(result, "rowcount", 0))


# -- grants --------------------------------------------------------------------------------------


def grant(
    db: Session, permission: Permission, *, user: User | None = None, group: Group | None = None
) -> bool:
    """Grant to exactly one of ``user``/``group``; True when new."""
    if user is not None:
        if db.get(UserPermission, (user.id, permission.id)) is not None:
            return False
        with unique(db, "Already granted.", "username", user.username):
            db.add(UserPermission(user_id=user.id, permission_id=permission.id))
        return True
    assert group is not None
    if db.get(GroupPermission, (group.id, permission.id)) is not None:
        return False
    with unique(db, "Already granted.", "group", group.name):
        db.add(GroupPermission(group_id=group.id, permission_id=permission.id))
    return True


def revoke(
    db: Session, permission: Permission, *, user: User | None = None, group: Group | None = None
) -> bool:
    if user is not None:
        stmt = delete(UserPermission).where(
            UserPermission.user_id == user.id, UserPermission.permission_id == permission.id
        )
    else:
        assert group is not None
        stmt = delete(GroupPermission).where(
            GroupPermission.group_id == group.id, GroupPermission.permission_id == permission.id
        )
    return bool(getattr(db.execute(stmt), "rowcount", 0))


# -- users ---------------------------------------------------------------------------------------


def find_application(db: Session, ref: str) -> Application | None:
    """By id (digits) or name (any letter case)."""
    row_id = as_id(ref)
    if row_id is not None:
        return db.get(Application, row_id)
    return db.scalars(select(Application).where(Application.name_key == name_key(ref))).first()


def find_user(db: Session, ref: str | None, source: str = "username") -> User | None:
    """By id (digits) or username (any letter case)."""
    if not ref:
        raise required(source, "Username must be specified.")
    row_id = as_id(ref)
    if row_id is not None:
        return db.get(User, row_id)
    return db.scalars(select(User).where(User.username_key == canonical(ref))).first()


def find_user_by_username(db: Session, name: str | None, source: str = "username") -> User:
    """The user of this username (any letter case) — never read as a row id — or a
    ClientError (missing: 400, unknown: 404)."""
    if not name:
        raise required(source, "Username must be specified.")
    user = db.scalars(select(User).where(User.username_key == canonical(name))).first()
    if user is None:
        raise missing("user", source, name)
    return user


def get_group_by_name(db: Session, name: str | None, source: str = "group") -> Group:
    """The group of this name (any letter case) — a typed name, never read as a row id
    ("2024" is a name) — or a ClientError (missing: 400, unknown: 404)."""
    if not name:
        raise required(source, "Group name must be specified.")
    group = db.scalars(select(Group).where(Group.name_key == name_key(name))).first()
    if group is None:
        raise missing("group", source, name)
    return group


def get_application_by_name(
    db: Session, name: str | None, source: str = "application"
) -> Application:
    """The application of this name (any letter case), never read as a row id, or a
    ClientError (missing: 400, unknown: 404)."""
    if not name:
        raise required(source, "Application name must be specified.")
    app = db.scalars(select(Application).where(Application.name_key == name_key(name))).first()
    if app is None:
        raise missing("application", source, name)
    return app


def missing(kind: str, source: str, value: Any) -> ClientError:
    """The 404 ClientError for an object that does not exist."""
    return NotFound(f"Could not find {kind} '{value}'.", source=source, value=value)


def get_user(db: Session, ref: str | None, source: str = "username") -> User:
    """The user named by id or username, or a ClientError (missing: 400, unknown: 404)."""
    user = find_user(db, ref, source)
    if user is None:
        raise missing("user", source, ref)
    return user


def get_group(db: Session, ref: str | None, source: str = "group") -> Group:
    group = find_group(db, ref, source)
    if group is None:
        raise missing("group", source, ref)
    return group


def get_application(db: Session, ref: str | None, source: str = "application") -> Application:
    if not ref:
        raise required(source, "Application must be specified.")
    app = find_application(db, ref)
    if app is None:
        raise missing("application", source, ref)
    return app
