"""WSGI entry point: ``passport.wsgi:app`` for Granian, gunicorn or any WSGI server.

Settings come from ``PASSPORT_*`` environment variables (and ``PASSPORT_CONFIG``).
"""

from __future__ import annotations

from passport.app import PassportApp
from passport.config import load_settings
from passport.logsetup import configure

settings = load_settings()
configure(settings.log_level)
app: PassportApp = PassportApp(settings)
app.services.start_background()  # deliver logout notifications left by earlier processes
