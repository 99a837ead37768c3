"""The Passport API controllers.  Importing this package fills :data:`API`."""

from __future__ import annotations

from passport.web.registry import Registry

API = Registry()

from passport.api import account  # noqa: E402
from passport.api import admin_apps  # noqa: E402
from passport.api import admin_users  # noqa: E402
from passport.api import client  # noqa: E402
from passport.api import permission  # noqa: E402
from passport.api import service  # noqa: E402

__all__ = ["API", "account", "admin_apps", "admin_users", "client", "permission", "service"]
