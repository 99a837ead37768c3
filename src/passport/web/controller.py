"""Base class of Passport API controllers: gives each call its request context."""

from __future__ import annotations

from passport.errors import ClientError
from passport.services.accounts import Caller
from passport.storage.models import User
from passport.web.context import RequestContext


class Controller:
    """A controller instance lives for one request; exposed methods use ``self.ctx``."""

    def __init__(self, ctx: RequestContext) -> None:
        self.ctx = ctx

    @property
    def caller(self) -> Caller:
        return Caller(ip=self.ctx.client_ip, user_agent=self.ctx.user_agent, now=self.ctx.now)

    def require_user(self) -> User:
        user = self.ctx.user
        if user is None:
            raise ClientError("You must be logged in.", source="session", number=401)
        return user
