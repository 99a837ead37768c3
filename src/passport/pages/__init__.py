"""Passport's hosted HTML pages: sign in (``/login``), allow an application
(``/consent``), sign out (``/logout``) and the user's own page (``/account``).

The OpenID Connect steps of these pages (which pending authorization a form
continues, when a code is issued) are :mod:`passport.oidc.authorization`'s; this
package holds the forms, their CSRF defence, the templates and the page headers
(:mod:`passport.pages.render`).  ``/account`` has nothing to do with OpenID Connect.
"""
