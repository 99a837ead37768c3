"""Mail templates: the words of each message Passport sends, rendered with Jinja2.

Each message has a plain-text template ``<name>.txt`` (its first line is the subject,
the rest the body) and an HTML one ``<name>.html`` (autoescaped), in
``templates/mail/``.  An operator overrides any of them with a file of the same name in
the ``mail_templates`` directory; the built-in ones fill in the rest.  Links in them
are built by the services from the configured public URL only, never from a request.
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment
from jinja2 import FileSystemLoader
from jinja2 import StrictUndefined
from jinja2 import select_autoescape

from passport.config import Settings
from passport.services.mail import Composed
from passport.services.mail import Letter

BUILT_IN = Path(__file__).resolve().parent / "templates" / "mail"


class MailComposer:
    """Renders a :class:`Letter` into its subject, text and HTML parts."""

    def __init__(self, settings: Settings) -> None:
        # A file in the operator's directory (``password_reset.txt``, ``base.html``)
        # replaces the built-in one of that name.
        folders = [Path(settings.mail_templates)] if settings.mail_templates else []
        self._env = Environment(
            loader=FileSystemLoader([*folders, BUILT_IN]),
            autoescape=select_autoescape(["html"]),
            undefined=StrictUndefined,  # a misspelt value fails the test, not the mail
            keep_trailing_newline=True,
        )
        self.site = settings.issuer or ""

    def __call__(self, letter: Letter) -> Composed:
        values = {"product": "Passport", "site": self.site, **letter.context}
        text = self._env.get_template(f"{letter.template}.txt").render(values)
        subject, _, body = text.partition("\n")
        html = self._env.get_template(f"{letter.template}.html").render(
            values, subject=subject.strip()
        )
        return Composed(subject.strip(), body.lstrip("\n"), html)
