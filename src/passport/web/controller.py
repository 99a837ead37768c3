"""Base class of Passport API controllers: request context, rights, lists, administration."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select

from passport.errors import ClientError
from passport.errors import NotFound
from passport.errors import NotSignedIn
from passport.errors import SecondFactorRequired
from passport.services.accounts import Accounts
from passport.services.accounts import Caller
from passport.services.administration import Administration
from passport.services.factors import level_of
from passport.services.factors import reading
from passport.services.listings import page_of
from passport.services.policy import Actor
from passport.services.policy import ensure_right
from passport.storage.models import User
from passport.web.context import RequestContext


class Controller:
    """A controller instance lives for one request; exposed methods use ``self.ctx``."""

    def __init__(self, ctx: RequestContext) -> None:
        self.ctx = ctx

    @property
    def caller(self) -> Caller:
        return Caller(ip=self.ctx.client_ip, user_agent=self.ctx.user_agent, now=self.ctx.now)

    def accounts(self) -> Accounts:
        """The account rules over this request's transaction, audit and after-actions."""
        return self.ctx.accounts()

    def require_user(self) -> User:
        user = self.ctx.user
        if user is None:
            raise NotSignedIn("You must be logged in.", source="session")
        return user

    def authorize(self, right: str) -> None:
        """Check the right an endpoint declares (``@expose(right=...)``) before it runs:
        the caller is signed in (401), holds ``right`` or ``admin`` (403), and this
        session proved what a sign-in of theirs must prove now (Number 8, 401): a right
        granted, a group's rule or a factor enrolled since it began counts at once
        (services/factors.py ``sign_in_level``)."""
        user = self.require_user()
        actor = Actor.administrator(self.ctx.db, user)
        ensure_right(actor, right)
        session = self.ctx.login_session
        owed = reading(self.ctx.settings, self.ctx.services.throttle, self.ctx.db).sign_in_level(
            user.id
        )
        if session is None or level_of(session.amr) < owed:
            raise SecondFactorRequired(
                "Sign in again with your second factor to administer Passport.",
                source="session",
            )
        self._actor = actor

    def administration(self) -> Administration:
        """The administrative operations, acted by the signed-in user whose right the
        endpoint declared and :meth:`authorize` checked."""
        actor = getattr(self, "_actor", None)
        if actor is None:
            raise TypeError("administration() needs @expose(right=...) on the endpoint")
        return Administration(
            self.accounts(), actor, self.caller, origins_changed=self.ctx.origins_changed
        )

    def page(
        self,
        query: Select[Any],
        offset: int | None,
        limit: int | None,
        sort: str | None,
        sortable: dict[str, Any],
    ) -> tuple[list[Any], dict[str, Any]]:
        """Apply ``offset``/``limit``/``sort`` (``name`` or ``-name``) and count the total
        (:func:`passport.services.listings.page_of`)."""
        found = page_of(self.ctx.db, query, offset, limit, sort, sortable)
        return found.items, found.meta


def not_found(kind: str, source: str, value: Any) -> ClientError:
    return NotFound(f"Could not find {kind} '{value}'.", source=source, value=value)


def split_list(value: str | None) -> list[str]:
    """``"a, b\\nc"`` → ``["a", "b", "c"]``: lists travel as one separated string."""
    if not value:
        return []
    return [item for item in value.replace(",", " ").split() if item]
