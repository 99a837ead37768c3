"""Forward-auth: may the person behind this browser see this page of a site Passport
guards at a reverse proxy (nginx ``auth_request``, Caddy ``forward_auth``, Traefik
ForwardAuth)?  The rules of registering a site and the one decision of every request.

A site is an application (migration 0024) with host names (``forward_auth_hosts``: lower
case, IDNA A-labels — RFC 5890 §2.3.2.1 —, an optional port; one application per host;
no wildcards) and optional path rules (``forward_auth_rules``), each ``"<pattern>
<permission>"``: a pattern is a path starting with ``/``, exact, or ending in ``*`` for a
prefix (``/admin/*``); the **first** rule whose pattern matches the request's path (its
query left out) names the permission the user must also hold there
(:func:`passport.services.permissions.granted`); no rule matching: admission alone.

:func:`decide` is the decision.  Who may sign in at all is
:func:`passport.services.access.admission` — the same as every other door of the
application —; the second factor its sign-ins need is the application's ``mfa_policy``
and the user's own rule, as ``Client/validateSession`` reads them
(:func:`passport.services.factors.owed_level`).  Nothing is cached: the session was read
by the caller from its store, the rest is read here fresh on every request — in one
statement in the common case, to cost no more than ``Account/status`` —, so a user
signed out, disabled or removed from a group is refused on the very next request.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from dataclasses import field
from enum import Enum
from typing import TYPE_CHECKING
from urllib.parse import quote
from urllib.parse import unquote
from urllib.parse import urlsplit

from sqlalchemy import BindParameter
from sqlalchemy import Connection
from sqlalchemy import Integer
from sqlalchemy import and_
from sqlalchemy import bindparam
from sqlalchemy import distinct
from sqlalchemy import exists
from sqlalchemy import func
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm import aliased

from passport.errors import Invalid
from passport.errors import Taken
from passport.errors import WrongLength
from passport.services import permissions
from passport.services.access import admission_rule
from passport.services.factors import Level
from passport.services.factors import application_level
from passport.services.factors import level_of
from passport.services.factors import owed_level
from passport.services.permissions import PASSPORT_APP_ID
from passport.services.policy import rights_of_user
from passport.storage.models import Application
from passport.storage.models import ApplicationSignInGroup
from passport.storage.models import ForwardAuthHost
from passport.storage.models import Group
from passport.storage.models import GroupMember
from passport.storage.models import TotpCredential
from passport.storage.models import User
from passport.storage.models import WebAuthnCredential

if TYPE_CHECKING:
    from passport.config import Settings
    from passport.services.sessions import LoginSessionInfo

MAX_HOSTS = 20  # host names of one application
MAX_RULES = 50  # path rules of one application
MAX_PATH = 2048  # longest path a rule may name, and the longest URI a request may carry


# -- registration ----------------------------------------------------------------------
# Dot-separated labels of 1 to 63 letters, digits and '-', none starting or ending with
# '-' (RFC 1123 §2.1; an IDNA name is checked in its A-label form).
_HOST = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)(?:\.(?!-)[a-z0-9-]{1,63}(?<!-))*")


def normalise_host(value: str, source: str = "forwardAuthHosts") -> str:
    """A host name as registered and as compared: lower case, IDNA A-labels (``bücher.example``
    is ``xn--bcher-kva.example``), an optional ``:port``; no scheme, path, user info,
    address literal of IPv6 or wildcard.  Raises :class:`Invalid` with the reason."""

    def bad(reason: str) -> Invalid:
        return Invalid(
            f"'{value[:100]}' is not a host name ({reason}).", source=source, value=value[:100]
        )

    text = value.strip().lower().rstrip(".") if isinstance(value, str) else ""
    if not text:
        raise bad("empty")
    if len(text) > 260:
        raise bad("too long")
    host, colon, port = text.partition(":")
    if colon:
        if not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
            raise bad("the port must be a number from 1 to 65535")
        port = str(int(port))
    if "*" in host:
        raise bad("wildcards are not supported: register each host")
    try:
        # An ASCII name is its own A-label form (the label rules below hold it); the
        # IDNA codec only for the others (it is most of a check's cost otherwise).
        ascii_host = host if host.isascii() else host.encode("idna").decode("ascii")
    except UnicodeError:
        raise bad("not a valid internationalised domain name") from None
    if len(ascii_host) > 253 or _HOST.fullmatch(ascii_host) is None:
        raise bad("letters, digits and '-' in dot-separated labels")
    return f"{ascii_host}:{port}" if colon else ascii_host


def validate_hosts(values: list[str]) -> list[str]:
    """Host names of one application, normalised, once each."""
    result: list[str] = []
    for value in values:
        host = normalise_host(value)
        if host not in result:
            result.append(host)
    if len(result) > MAX_HOSTS:
        raise WrongLength(f"At most {MAX_HOSTS} forwardAuthHosts.", source="forwardAuthHosts")
    return result


def validate_rules(values: list[str]) -> list[str]:
    """Path rules ``"<pattern> <permission>"`` (the module's description), in their order,
    spaces normalised."""
    result: list[str] = []
    for value in values:
        parts = value.split() if isinstance(value, str) else []
        if len(parts) != 2:
            raise Invalid(
                f"'{str(value)[:100]}' is not a rule '<path pattern> <permission>', "
                "e.g. '/admin/* admin'.",
                source="forwardAuthRules",
                value=str(value)[:100],
            )
        pattern, permission = parts
        if (
            not pattern.startswith("/")
            or len(pattern) > MAX_PATH
            or "*" in pattern[:-1]
            or not all(32 < ord(c) < 127 for c in pattern)
        ):
            raise Invalid(
                f"'{pattern[:100]}' is not a path pattern: a path starting with '/' in "
                "printable ASCII, ending in '*' for a prefix (no other '*').",
                source="forwardAuthRules",
                value=pattern[:100],
            )
        if len(permission) > 100 or any(not c.isprintable() for c in permission):
            raise Invalid(
                f"'{permission[:100]}' is not a permission name.",
                source="forwardAuthRules",
                value=permission[:100],
            )
        base = pattern[:-1] if pattern.endswith("*") else pattern
        if canonical_path(base) != base.casefold():
            # A rule is compared with the path as decoded and normalised: one written
            # otherwise (``/%61dmin/*``, ``/admin./*``, ``/a//b``) would never match and
            # guard nothing (a third review).
            raise Invalid(
                f"'{pattern[:100]}' is not a path as the application sees it: write it "
                f"decoded and normalised, e.g. '{(canonical_path(base) or '/')[:100]}"
                f"{'*' if pattern.endswith('*') else ''}'.",
                source="forwardAuthRules",
                value=pattern[:100],
            )
        result.append(f"{pattern} {permission}")
    if len(result) > MAX_RULES:
        raise WrongLength(f"At most {MAX_RULES} forwardAuthRules.", source="forwardAuthRules")
    return result


def set_hosts(db: Session, app: Application, values: list[str]) -> None:
    """Make ``values`` the host names of ``app`` (replacing the list).  One host, one
    application: a host another application has is 409 (:class:`Taken`), nothing changed."""
    wanted = validate_hosts(values)
    # One host name, one application, whatever the ports: ``wiki.example`` and
    # ``wiki.example:8443`` for two applications would let a client's Host header pick
    # either one's rules through a proxy that ignores the port when it matches the site
    # (Caddy, Traefik: an outside review).  Names hold only letters, digits, '.' and '-',
    # none of them special to LIKE.
    names = {_bare(host) for host in wanted}
    taken = db.scalars(
        select(ForwardAuthHost.host).where(
            ForwardAuthHost.application_id != app.id,
            or_(
                ForwardAuthHost.host.in_(names),
                *(ForwardAuthHost.host.like(f"{name}:%") for name in names),
            ),
        )
    ).first()
    if taken is not None:
        raise Taken(
            f"The host '{taken}' is guarded for another application (a host name belongs "
            "to one application, whatever its ports).",
            source="forwardAuthHosts",
            value=taken,
        )
    # Through the collection (kept rows stay, others go, new ones come): the application
    # read afterwards, even outside its transaction (the CLI's --json), shows them.
    app.forward_auth_host_rows = [r for r in app.forward_auth_host_rows if r.host in wanted]
    db.flush()
    kept = {r.host for r in app.forward_auth_host_rows}
    for host in wanted:
        if host not in kept:
            app.forward_auth_host_rows.append(ForwardAuthHost(host=host))
    db.flush()


def _bare(host: str) -> str:
    """A registered host without its port."""
    return host.rsplit(":", 1)[0] if ":" in host else host


def hosts_of(app: Application) -> list[str]:
    return [row.host for row in app.forward_auth_host_rows]


# -- the request -----------------------------------------------------------------------
@dataclass(frozen=True)
class Original:
    """The request the proxy asks about, as the proxy said it."""

    method: str
    scheme: str
    host: str
    uri: str

    @property
    def path(self) -> str:
        return self.uri.split("?", 1)[0]

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}{self.uri}"


def original_from_url(method: str, url: str) -> Original | None:
    """nginx's ``X-Original-URL`` (absolute) and method; None when it is not a plain
    ``http``/``https`` URL of a host name."""
    if not _plain(url) or not _plain(method) or "#" in url:
        return None  # a request line never carries a fragment (RFC 9112 §3.2)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.username is not None:
        return None
    uri = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return original(method, parts.scheme, parts.netloc, uri)


def original(method: str, scheme: str, host: str, uri: str) -> Original | None:
    """Traefik's and Caddy's ``X-Forwarded-Method/-Proto/-Host/-Uri``; None when any is
    missing or malformed (a URI must be a path, in printable ASCII: RFC 3986 §2)."""
    scheme = scheme.strip().lower()
    if not all(_plain(v) for v in (method, scheme, host, uri)):
        return None
    if scheme not in ("http", "https") or not uri.startswith("/") or uri.startswith("//"):
        return None
    if "#" in uri:
        # A request line never carries a fragment (RFC 9112 §3.2): nginx passes one on
        # as it came, and a check that read it as one saw another path than an upstream
        # that keeps it (an outside review).
        return None
    if len(uri) > MAX_PATH or not method.isalpha() or len(method) > 16:
        return None
    try:
        host = normalise_host(host)
    except Invalid:
        return None
    return Original(method.upper(), scheme, host, uri)


_PLAIN = re.compile(r"[\x21-\x7e]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_PRINTABLE = re.compile(r"[\x20-\x7e]*")


def _plain(value: str) -> bool:
    """Printable ASCII, no space (a header value a proxy built, not text)."""
    return _PLAIN.fullmatch(value) is not None


def _fold(c: str) -> str:
    """One character of a path as a case-insensitive router may compare it: a format
    character (soft hyphen, zero-width space, BOM: Unicode category Cf) dropped, a letter
    whose upper or lower case is an ASCII letter taken as that letter (Java's
    ``equalsIgnoreCase`` reads the dotless and the dotted i (U+0131, U+0130) as ``i``: a third
    review).  Rules are ASCII, so folding only ever makes more paths match them (a
    character casefold already makes ASCII stays so)."""
    if c.isascii():
        return c
    if unicodedata.category(c) == "Cf":
        return ""
    folded = c.casefold()
    if folded.isascii():
        return folded  # ß is ss, as before
    for other in (c.upper(), c.lower()):
        if other[:1].isascii() and other[:1].isalpha():
            return other[0].lower()
    return c


def canonical_path(path: str) -> str | None:
    """The path as the guarded application may route it, for the path rules: percent-
    decoded (again while that changes it: ``%2561`` is ``a`` to an upstream that decodes
    twice), ``\\`` read as ``/``, each segment's ``;parameters`` dropped (Tomcat routes
    ``/admin;x/y`` as ``/admin/y``), empty and dot segments removed (RFC 3986 §5.2.4), in
    lower case (an upstream that ignores case routes ``/ADMIN`` as ``/admin``).  The
    proxies pass the raw request URI on and the application decodes it: a rule compared
    with the raw bytes was passed by ``/%61dmin/x`` (an outside review).  Then NFKC,
    trailing dots and spaces dropped per segment (below).  None when the path cannot be
    decoded (invalid UTF-8) or holds a control character or a segment of dots and spaces
    only: no rule can say what it names.  Every step maps more spellings onto a guarded
    name, never fewer: a rule holds for each, and a path no rule names stays admitted."""
    text = path
    for _ in range(4):
        try:
            decoded = unquote(text, errors="strict")
        except UnicodeDecodeError:
            return None
        if decoded == text:
            break
        text = decoded
    else:
        return None
    if _CONTROL.search(text):
        return None  # NUL, tab, CR…: upstreams disagree on where such a path ends
    # Compatibility forms as an upstream that normalises Unicode reads them (the
    # fullwidth ``%EF%BC%8F%EF%BD%81dmin`` is ``/admin``): a rule then guards every
    # spelling that reaches its pages.
    text = unicodedata.normalize("NFKC", text)
    if not text.isascii():
        text = "".join(_fold(c) for c in text)
    segments: list[str] = []
    for segment in text.replace("\\", "/").split("/"):
        segment = segment.split(";", 1)[0]
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        # Windows and trimming routers drop trailing dots and spaces and leading spaces
        # (``/admin./``, ``/admin%20`` reach ``/admin`` there: an outside review).
        trimmed = segment.strip(" ").rstrip(". ")
        if not trimmed:
            return None  # only dots and spaces: no two servers agree on what it names
        segments.append(trimmed)
    trailing = "/" if text.endswith("/") and segments else ""
    return ("/" + "/".join(segments) + trailing).casefold()


def rule_for(rules: list[str], path: str) -> str | None:
    """The permission named by the first rule whose pattern matches ``path`` (a
    :func:`canonical_path`), if any.  Patterns are compared in lower case; ``/admin/*``
    guards ``/admin`` itself too, and every path below it."""
    for rule in rules:
        pattern, _, permission = rule.partition(" ")
        pattern = pattern.casefold()
        if pattern.endswith("/*"):
            base = pattern[:-2]
            if path == base or path.startswith(base + "/"):
                return permission
        elif pattern.endswith("*"):
            if path.startswith(pattern[:-1]):
                return permission
        elif path.rstrip("/") == pattern.rstrip("/"):
            return permission
    return None


# -- the decision ----------------------------------------------------------------------
class Verdict(Enum):
    ALLOW = "allow"
    SIGN_IN = "sign-in"  # no live session: 401 (nginx) or to the login page
    FORBIDDEN = "forbidden"  # admission or a path rule says no
    STEP_UP = "step-up"  # signed in less strongly than the site needs
    UNKNOWN_SITE = "unknown-site"  # a host no application registered


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str = ""
    application: str = ""
    username: str = ""
    display_name: str = ""
    email: str = ""
    groups: list[str] = field(default_factory=list)


UNKNOWN_SITE = Decision(Verdict.UNKNOWN_SITE, "This site is not guarded by Passport.")
NOT_HERE = "Your account may not open this page."


def site(db: Session | Connection, host: str) -> Application | None:
    """The application guarding ``host`` (exactly as registered, with its port; else the
    host name registered without one, which stands for any port)."""
    bare = _bare(host)
    rows = db.execute(
        select(ForwardAuthHost.host, Application)
        .join(Application, Application.id == ForwardAuthHost.application_id)
        .where(ForwardAuthHost.host.in_({host, bare}))
    ).all()
    for wanted in (host, bare):
        for found, app in rows:
            if found == wanted:
                return app
    return None


# Everything one check needs, in one statement (the endpoint is asked on every request
# to every guarded site, so it is held to the cost of ``Account/status``): the site's
# application by its host (exact, and the bare host name), the user as the database has
# them now (enabled only: a disabled user is no user here; their names), the facts of
# the second-factor rule (:func:`passport.services.factors.owed_level`) and one row per
# group of the user, with whether the group lets them sign in here and requires MFA.
# No user (no session, or one whose user is gone): the groups and users columns are NULL.
_PASSPORT = aliased(Application)
_SIGN_IN_GROUP = aliased(ApplicationSignInGroup)
_USER_ID: BindParameter[int] = bindparam("user_id", type_=Integer)
_CHECK = (
    select(
        ForwardAuthHost.host,
        Application.id,
        Application.name,
        Application.enabled,
        Application.sign_in_policy,
        Application.sign_in_permission,
        Application.forward_auth_rules,
        Application.mfa_policy,
        select(_PASSPORT.mfa_policy)
        .where(_PASSPORT.id == PASSPORT_APP_ID)
        .scalar_subquery()
        .label("own_policy"),
        User.id.label("user_id"),
        User.username,
        User.display_name,
        User.email,
        or_(
            exists().where(WebAuthnCredential.user_id == _USER_ID),
            exists().where(TotpCredential.user_id == _USER_ID),
        ).label("has_factor"),
        Group.name.label("group_name"),
        Group.require_mfa,
        _SIGN_IN_GROUP.group_id.label("sign_in_group"),
    )
    .select_from(ForwardAuthHost)
    .join(Application, Application.id == ForwardAuthHost.application_id)
    .outerjoin(User, and_(User.id == _USER_ID, User.disabled.is_(False)))
    .outerjoin(GroupMember, GroupMember.user_id == User.id)
    .outerjoin(Group, Group.id == GroupMember.group_id)
    .outerjoin(
        _SIGN_IN_GROUP,
        and_(
            _SIGN_IN_GROUP.application_id == Application.id,
            _SIGN_IN_GROUP.group_id == GroupMember.group_id,
        ),
    )
    .where(ForwardAuthHost.host.in_([bindparam("host"), bindparam("bare")]))
    .order_by(Group.name)
)


def _shared_name(db: Session | Connection, name: str) -> bool:
    """Whether more than one application has the host name ``name``, with any port."""
    count = db.scalar(
        select(func.count(distinct(ForwardAuthHost.application_id))).where(
            or_(ForwardAuthHost.host == name, ForwardAuthHost.host.like(f"{name}:%"))
        )
    )
    return bool(count and count > 1)


def decide(
    db: Session | Connection,
    settings: Settings,
    request: Original,
    session: LoginSessionInfo | None,
) -> Decision:
    """May the owner of ``session`` (None: no live session) open ``request``?

    One statement (``_CHECK``) in the common case; a permission (the ``permission``
    sign-in policy, a path rule that matches) and, with ``admin_mfa``, Passport's rights
    are asked in one more each, only when the rule comes to them.  The rules are those
    of every other door: :func:`passport.services.access.admission_rule` and
    :func:`passport.services.factors.owed_level`."""
    host = request.host
    bare = _bare(host)
    user_id = session.user_id if session is not None else 0
    found = db.execute(_CHECK, {"host": host, "bare": bare, "user_id": user_id}).all()
    if len({r.id for r in found}) > 1:
        # Two applications for one host name (registered before set_hosts refused it):
        # which one's rules hold cannot be told, so none lets anyone in.
        return UNKNOWN_SITE
    rows = [r for r in found if r.host == host] or [r for r in found if r.host == bare]
    if not rows:
        return UNKNOWN_SITE
    if rows[0].host != bare and _shared_name(db, bare):
        # Guarded for this port only, while another application has the name with
        # another port (rows from before set_hosts refused it): which one the client's
        # Host header should pick cannot be told (a third review).  Asked only of
        # port-specific registrations, which are rare.
        return UNKNOWN_SITE
    first = rows[0]
    app_id, name = first.id, first.name
    if session is None or first.user_id is None:  # no session, or its user gone or disabled
        return Decision(Verdict.SIGN_IN, application=name)
    admitted = admission_rule(
        app_enabled=first.enabled,
        user_disabled=False,  # the statement finds enabled users only
        policy=first.sign_in_policy,
        permission=first.sign_in_permission,
        in_sign_in_group=lambda: any(r.sign_in_group is not None for r in rows),
        holds=lambda wanted: permissions.granted(db, user_id, app_id, wanted),
    )
    if not admitted.allowed:
        return Decision(Verdict.FORBIDDEN, admitted.reason, name)
    rules = first.forward_auth_rules or []
    if rules:
        path = canonical_path(request.path)
        needed = rule_for(rules, path) if path is not None else None
        if path is None or (
            needed is not None and not permissions.granted(db, user_id, app_id, needed)
        ):
            return Decision(Verdict.FORBIDDEN, NOT_HERE, name)
    level = level_of(session.amr)
    if level < Level.PASSKEY:  # the strongest sign-in owes nothing more
        owed = max(
            owed_level(
                settings,
                own_policy=first.own_policy,
                has_factor=bool(first.has_factor),
                in_mfa_group=any(bool(r.require_mfa) for r in rows),
                holds_rights=lambda: bool(rights_of_user(db, user_id)),
            ),
            application_level(settings, first.mfa_policy, None),
        )
        if level < owed:
            return Decision(
                Verdict.STEP_UP,
                "This site needs a sign-in with a second factor: sign out of Passport "
                "and sign in again with it.",
                name,
            )
    return Decision(
        Verdict.ALLOW,
        application=name,
        username=first.username,
        display_name=first.display_name,
        email=first.email or "",
        groups=[r.group_name for r in rows if r.group_name is not None],
    )


def return_target(db: Session, url: str | None) -> str | None:
    """Where a sign-in for a guarded site may send the browser back: ``url`` when it is a
    plain ``http``/``https`` URL of a host some application registered for forward-auth
    (never any other host: no open redirect), else None."""
    if not url or len(url) > MAX_PATH + 300:
        return None
    found = original_from_url("GET", url)
    if found is None or site(db, found.host) is None:
        return None
    return found.url


# -- the answer's headers ----------------------------------------------------------------
def site_cookies(cookie_header: str, passport_cookies: frozenset[str]) -> str:
    """The ``Cookie`` header a guarded application may receive: the request's, without
    Passport's cookies (``passport_cookies``: the session — every one of that name, a
    browser keeps one per domain and path — and the host-only ones of Passport's own
    pages, which a guarded site never gets from a browser but a script on Passport's
    origin could send here to read them back: a third review), compared as Passport
    reads names: surrounding spaces stripped).  The other pairs stay as they came, in
    their order, joined with ``"; "`` (RFC 6265 §4.2.1); a pair that is not printable
    ASCII is dropped (the value goes into a header of the answer).  Empty: nothing left,
    send no ``Cookie`` at all.

    Traefik's ForwardAuth puts a header of the answer named in ``authResponseHeaders`` in
    place of the request's (it deletes the request's first): ``Cookie`` there keeps the
    session from the application, which Traefik cannot do by itself."""
    kept = []
    for pair in cookie_header.split(";"):
        pair = pair.strip()
        if not pair or _PRINTABLE.fullmatch(pair) is None:
            continue
        if pair.split("=", 1)[0].strip() in passport_cookies:
            continue
        kept.append(pair)
    return "; ".join(kept)


_ATTR_CHAR = "!#$&+-.^_`|~"  # RFC 8187 §3.2.1 attr-char, besides ALPHA / DIGIT


def header_value(value: str, *, list_item: bool = False) -> str:
    """A value safe in a header: printable ASCII as it is; anything else (non-ASCII, a
    control character — never a CR or LF through —, or text that would read as an
    encoded value) as RFC 8187's ``ext-value``, ``UTF-8''`` and percent-encoded UTF-8.
    ``list_item``: a ``,`` is encoded too (the groups header is a comma-separated list)."""
    if (
        _PRINTABLE.fullmatch(value) is not None
        and not value.startswith("UTF-8''")
        and not (list_item and "," in value)
    ):
        return value
    return "UTF-8''" + quote(value.encode("utf-8", "surrogatepass"), safe=_ATTR_CHAR)
