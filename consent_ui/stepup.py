"""``/login/step-up``: the extra check of a sign-in (a one-time code, then the
birth date if the provider asks it).

The interaction says when it is due (``acr_values=urn:idp:acr:2`` with a
password-only session, or a risk rule) and checks every answer; this page
only shows ``form#otp-form`` or ``form#birthdate-form`` and their refusals.
A member without TOTP gets the code by mail when the page is first shown."""

from __future__ import annotations

from flask import redirect, request
from werkzeug.wrappers import Response

from consent_ui import bp
from consent_ui.context import page, signed_in
from idp import interactions
from idp.errors import OtpError
from idp.interactions import Step

REFUSED = "Too many wrong answers: this sign-in was refused. Start again from the service."


def _step_up_page(uid: str, status: int = 200, *, error: str | None = None) -> Response:
    me = signed_in()
    session = me.session if me else None
    pending = interactions.next_step(uid, session=session)
    if pending.step is not Step.STEP_UP:
        if "refused" in pending.reasons:
            return page(
                "step_up.html",
                403,
                refused=True,
                error=REFUSED,
                back=pending.url,
                client_name=pending.client_name,
            )
        return redirect(pending.url, 303)
    step = interactions.prepare_step_up(uid, session=session)
    return page(
        "step_up.html",
        status,
        interaction=uid,
        step=step,
        error=error,
        client_name=pending.client_name,
        refused=False,
    )


@bp.get("/login/step-up")
def step_up_form() -> Response:
    return _step_up_page(request.args.get("interaction", ""))


@bp.post("/login/step-up")
def step_up_submit() -> Response:
    uid = request.form.get("interaction", "")
    me = signed_in()
    answer = request.form.get("otp") or request.form.get("birthdate") or ""
    try:
        target = interactions.finish_step_up(uid, session=me.session if me else None, answer=answer)
    except OtpError as e:
        return _step_up_page(uid, 400, error=e.description)
    return redirect(target, 303)
