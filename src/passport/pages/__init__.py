"""Passport's hosted HTML pages: sign in (``/login``), allow an application
(``/consent``), sign out (``/logout``), the user's own page (``/account``) and allow a
device (``/device``, RFC 8628 §3.3).

The OpenID Connect steps of these pages (which pending authorization a form
continues, when a code is issued) are :mod:`passport.oidc.authorization`'s; this
package holds the forms, their CSRF defence, the templates and the page headers
(:mod:`passport.pages.render`).  ``/account`` has nothing to do with OpenID Connect.
"""
