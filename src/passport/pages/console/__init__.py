"""``/admin``: the admin console — Passport administered in a browser.

One more adapter over the same operations as the API and the CLI
(:class:`passport.services.administration.Administration`, the read-only listings of
:mod:`passport.services.listings`): every rule — who may act on whom, what ends when a
user is disabled, what is audited — is theirs; the console parses a form, calls one
operation and shows the result.

Who may use it: a signed-in user holding any of Passport's own rights (``admin``,
``users:read``, ``users:write``, ``groups:write``, ``apps:write``, ``audit:read``), with a
session that proved what their sign-ins owe now (the step-up of the API's Number 8: sent
to ``/login/verify`` and back).  Each screen needs its read right, each action its write
right — checked by the operation itself, so a forged POST from a reader is refused (403)
whatever the page showed.  Pages have the hosted pages' CSP, CSRF defence on every POST
and no caching; the one script is the audit log's live tail (its page alone allows it).

The screens live one module each (:mod:`.home`, :mod:`.users`, :mod:`.groups`,
:mod:`.applications`, :mod:`.audit`, :mod:`.keys`, :mod:`.health`) over
:class:`.base.ConsoleBase`, the guard they share; :class:`ConsolePages` gathers them and
:meth:`ConsolePages.routes` says their URLs.
"""

from __future__ import annotations

from collections.abc import Callable

from werkzeug import Request
from werkzeug import Response

from passport.pages import render
from passport.pages.console.applications import ApplicationScreens
from passport.pages.console.audit import AuditScreens
from passport.pages.console.groups import GroupScreens
from passport.pages.console.health import HealthScreens
from passport.pages.console.home import HomeScreens
from passport.pages.console.keys import KeyScreens
from passport.pages.console.users import UserScreens

GET = frozenset({"GET"})
GET_POST = frozenset({"GET", "POST"})


class ConsolePages(
    HomeScreens,
    UserScreens,
    GroupScreens,
    ApplicationScreens,
    AuditScreens,
    KeyScreens,
    HealthScreens,
):
    """Every screen of ``/admin``."""

    def routes(self) -> list[tuple[str, frozenset[str], Callable[[Request], Response]]]:
        """Each URL of the console, the methods it answers and its screen."""
        return [
            ("/admin", GET, self.home),
            ("/admin/users", GET_POST, self.users),
            ("/admin/user", GET_POST, self.user),
            ("/admin/groups", GET_POST, self.groups),
            ("/admin/group", GET_POST, self.group),
            ("/admin/applications", GET_POST, self.applications),
            ("/admin/application", GET_POST, self.application),
            ("/admin/audit", GET, self.audit),
            ("/admin/audit/tail", GET, self.audit_tail),
            # The audit page's live tail, a script at a URL naming its hash (no guard:
            # it holds nothing but code, like the passkey script).
            (render.CONSOLE_JS_URL, GET, render.console_script),
            ("/admin/keys", GET_POST, self.keys),
            ("/admin/health", GET, self.health),
        ]
