"""``/device``: where a user allows a device (RFC 8628 §3.3) — the page that the device
authorization response's ``verification_uri`` names (:mod:`passport.oidc.device`).

The steps, each a form with its CSRF token, none needing JavaScript:

1. signed in (else through ``/login``, which comes back here), the user types the code
   the device shows — prefilled from ``verification_uri_complete``, but still to be
   confirmed: §5.4 warns that a code in a link may be an attacker's;
2. Passport shows which application asks and for what (only what Passport knows: the
   registered name, the scopes), and the user allows or denies;
3. a page that says the device may go on (or was refused).

Guessing a code is throttled (§5.1: "the authorization server should rate-limit
user code attempts") per account and per client address
(:func:`passport.services.throttle.device_code_keys`), without letting one guesser
lock out everyone behind the same address (OWASP ASVS 5 §6.3.1: anti-automation
"without ... malicious account lockout"):

* the account's counter is reserved before the code is checked (parallel guesses
  count each), on its own and whatever the address's state, a right code takes it
  back: a signed-in guesser is held back whatever address it comes from, and once over
  its limit gets 429 for every code, a live one too;
* the address's counter counts only codes that are not live (known by a look-up by
  hash, cheap): once it is over its limit, wrong codes from the address are answered 429,
  while a real, live code still goes through — the user behind a shared NAT whom the
  device sent here is not the one guessing.  A wrong code the address refuses still
  costs the account its attempt, so 429-or-confirm is no oracle beyond the account's
  own limit.  How many accounts one address may create is bounded by the registration
  throttle.

A wrong code, an expired one, one already decided and one of a disabled application
all get the same message, so no entry tells which applications exist.
"""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlencode

from werkzeug import Request
from werkzeug import Response

from passport.oidc import device
from passport.oidc.authorization import SCOPES
from passport.oidc.base import redirect
from passport.pages import render
from passport.services import access
from passport.services.audit import AuditRecord
from passport.services.factors import Level
from passport.services.factors import level_of
from passport.services.factors import reading
from passport.services.throttle import device_code_keys
from passport.storage.models import Application
from passport.web.context import RequestContext

TEMPLATE = "device.html"
WRONG_CODE = (
    "That code is not valid or has expired. Check the code your device shows, or start "
    "again on the device."
)
STRONGER = (
    "{application} asks for a sign-in with {what}. Sign out and sign in with it (add one "
    "on your account page if you have none), then enter the code again."
)
NOT_ADMITTED = (
    "Your account may not sign in to {application}. Sign out and sign in with an account "
    "that may, or ask the application's administrator."
)
TOO_MANY = "Too many wrong codes. Wait {seconds} seconds before you try again."


class DevicePage(render.Page):
    def device(self, request: Request) -> Response:
        params = self.parsed(request)
        if isinstance(params, Response):
            return params
        ctx = self.context(request, write=request.method == "POST")
        return ctx.respond(lambda: self._step(request, ctx, params))

    def _step(self, request: Request, ctx: RequestContext, params: dict[str, str]) -> Response:
        code = device.canonical(params.get("user_code"))
        session, identity = ctx.login_session, ctx.identity
        if session is None or identity is None:
            # The session rules of every page: signed in (and not expired) here, or
            # through /login first; only a well-formed code goes along in the URL.
            back = device.VERIFICATION_PATH
            if code is not None:
                back += "?" + urlencode({"user_code": device.display(code)})
            return redirect("/login?" + urlencode({"next": back}))
        shown = device.display(code) if code is not None else ""
        if request.method != "POST":
            return self.form(request, TEMPLATE, username=identity.username, user_code=shown)
        decision = params.get("decision")
        if decision not in (None, "allow", "deny"):
            return render.error_page("The decision must be allow or deny.", "invalid_request")
        record = AuditRecord(
            "device_authorization",
            "",
            ctx.now,
            user_id=identity.id,
            username=identity.username,
            ip=ctx.client_ip,
            user_agent=ctx.user_agent,
        )
        throttle = self.services.throttle
        account, address = device_code_keys(ctx.client_ip, identity.id)
        # Counted before the look-up, atomically (parallel guesses count each): on the
        # account always, on the address only when the code is not a live one — so a
        # guesser sharing the user's address holds back only wrong codes.  The look-up
        # is by hash in a read session, before this request's transaction takes
        # SQLite's write lock, which the counters' own transaction would wait for.
        with self.services.db.session() as read:
            live = code is not None and device.find_pending(read, code, ctx.now) is not None
        # The account first, on its own, whatever the address's state: were both
        # reserved together, an address over its limit would count nothing on the
        # account, and 429 (wrong) against the confirm page (live) would be a free
        # oracle for every account behind it (RFC 8628 §5.1: user code attempts are
        # rate-limited; OWASP ASVS 5 §6.3.1).  Over the account's limit, a live code
        # waits too.
        attempt = throttle.reserve([account], ctx.now)
        if attempt.wait:
            return self._too_many(request, ctx, record, identity.username, attempt.wait)
        if not live:
            # The address only adds a refusal of wrong codes; the account's attempt
            # stays counted when the address refuses it.
            attempt = throttle.reserve([address], ctx.now)
            if attempt.wait:
                return self._too_many(request, ctx, record, identity.username, attempt.wait)
        db = ctx.db
        row = device.find_pending(db, code, ctx.now) if code is not None else None
        app = db.get(Application, row.application_id) if row is not None else None
        if row is None or app is None or not app.enabled or not app.device_grant:
            ctx.audit(_with(record, outcome="wrong_code"), durable=True)
            ctx.refuse()
            return self.form(
                request, TEMPLATE, 400, username=identity.username, user_code="", error=WRONG_CODE
            )
        # A right code is not a guess: its attempt is taken back once this request's
        # transaction is over (on SQLite the counters' writer would wait for ours).
        ctx.after(lambda: throttle.release([account]))
        needed = reading(self.settings, throttle, db).required_level(
            identity.id, app.mfa_policy, None
        )
        if level_of(session.amr) < needed:
            # The application (or this user's own rule) asks for more than this session
            # proved: a second factor is asked here and the user comes back (the same
            # step-up as at the authorization endpoint); a passkey, which /login/verify
            # cannot be told to insist on without a pending authorization, is refused
            # with what to do — a weaker session neither sees the confirmation nor decides.
            if needed < Level.PASSKEY:
                back = device.VERIFICATION_PATH + "?" + urlencode({"user_code": shown})
                return redirect("/login/verify?" + urlencode({"next": back}))
            return self.form(
                request,
                TEMPLATE,
                403,
                username=identity.username,
                user_code=shown,
                error=STRONGER.format(application=app.name, what="a passkey"),
            )
        user = ctx.user
        admitted = access.admission(db, app, user) if user is not None else access.NOT_ALLOWED
        if not admitted.allowed:
            # Who may sign in to the application (services/access.py): this account may
            # not, so it neither sees the confirmation nor decides; the device's request
            # stays pending (another account may approve it) and gets no tokens from this.
            if user is not None:
                ctx.audit(
                    access.refusal_record(
                        app,
                        user,
                        admitted,
                        door="device",
                        at=ctx.now,
                        ip=ctx.client_ip,
                        user_agent=ctx.user_agent,
                    ),
                    durable=True,
                )
            ctx.refuse()
            return self.form(
                request,
                TEMPLATE,
                403,
                username=identity.username,
                user_code="",
                error=NOT_ADMITTED.format(application=app.name),
            )
        if decision is None:
            return self.form(
                request,
                "device_confirm.html",
                application=app.name,
                username=identity.username,
                scopes=[SCOPES[s] for s in row.scope.split() if s in SCOPES],
                user_code=shown,
            )
        allow = decision == "allow"
        if not device.decide(
            db,
            row,
            allow=allow,
            user_id=identity.id,
            auth_time=session.created_at,
            sid=session.sid,
            amr=session.amr,
        ):
            ctx.refuse()
            return self.form(
                request, TEMPLATE, 400, username=identity.username, user_code="", error=WRONG_CODE
            )
        ctx.audit(
            _with(record, outcome="allowed" if allow else "denied", application=app.name[:100])
        )
        return render.page("device_done.html", allowed=allow, application=app.name)

    def _too_many(
        self, request: Request, ctx: RequestContext, record: AuditRecord, username: str, wait: int
    ) -> Response:
        """429 with ``Retry-After`` (RFC 6585 §4, RFC 9110 §10.2.3): wait, then try again."""
        ctx.audit(_with(record, outcome="throttled"), durable=True)
        ctx.refuse()
        response = self.form(
            request,
            TEMPLATE,
            429,
            username=username,
            user_code="",
            error=TOO_MANY.format(seconds=wait),
        )
        response.headers["Retry-After"] = str(wait)
        return response


def _with(record: AuditRecord, **changes: object) -> AuditRecord:
    return replace(record, **changes)  # type: ignore[arg-type]
