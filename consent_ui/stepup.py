"""``/login/step-up``: the extra check of a sign-in (a one-time code, then the
birth date if the provider asks it).

Reached with ``?interaction=`` when an authorization request needs it
(``acr_values=urn:idp:acr:2`` with a password-only session, or a sign-in
the risk rules held), or with ``?next=`` when a sign-in with no request
behind it was held.  ``idp.step_up`` decides and checks every answer; this
page only shows ``form#otp-form`` or ``form#birthdate-form`` and their
refusals.  A member without TOTP gets the code by mail when the page is
first shown."""

from __future__ import annotations

from urllib.parse import quote

from flask import redirect, request
from werkzeug.wrappers import Response

from consent_ui import bp
from consent_ui.context import page, safe_next, settings, signed_in
from idp import cookies, interactions, step_up
from idp.errors import OtpError, StepUpRefusedError
from idp.interactions import Step
from idp.sessions import SessionInfo


def _session() -> SessionInfo | None:
    """The browser's session, or the one held for this very check."""
    me = signed_in()
    return me.session if me else cookies.held_session(request, settings())


def _refused_page(back: str, client_name: str | None = None) -> Response:
    response = page(
        "step_up.html",
        403,
        refused=True,
        error=StepUpRefusedError.default_description,
        back=back,
        client_name=client_name,
    )
    cookies.clear_session(response, settings())
    return response


def _interaction_page(uid: str, status: int = 200, *, error: str | None = None) -> Response:
    session = _session()
    pending = interactions.next_step(uid, session=session)
    if pending.step is not Step.STEP_UP:
        if "refused" in pending.reasons:
            return _refused_page(pending.url, pending.client_name)
        return redirect(pending.url, 303)
    question = interactions.step_up_question(uid, session=session)
    return page(
        "step_up.html",
        status,
        interaction=uid,
        next="",
        step=question,
        error=error,
        client_name=pending.client_name,
        refused=False,
    )


def _own_page(next_path: str, status: int = 200, *, error: str | None = None) -> Response:
    """A held sign-in with no authorization request behind it."""
    session = _session()
    if session is None:
        return redirect(settings().url(f"/login?next={quote(next_path, safe='/')}"), 303)
    reasons = step_up.reasons_of(session.id)
    if not reasons:
        return redirect(settings().url(next_path), 303)
    question = step_up.prepare(session, reasons=reasons)
    return page(
        "step_up.html",
        status,
        interaction="",
        next=next_path,
        step=question,
        error=error,
        client_name=None,
        refused=False,
    )


@bp.get("/login/step-up")
def step_up_form() -> Response:
    uid = request.args.get("interaction", "")
    if uid:
        return _interaction_page(uid)
    return _own_page(safe_next(request.args.get("next")))


@bp.post("/login/step-up")
def step_up_submit() -> Response:
    uid = request.form.get("interaction", "")
    next_path = safe_next(request.form.get("next"))
    answer = request.form.get("otp") or request.form.get("birthdate") or ""
    session = _session()
    try:
        if uid:
            return redirect(interactions.finish_step_up(uid, session=session, answer=answer), 303)
        if session is None:
            return _own_page(next_path)
        stepped = step_up.answer(session, answer)
    except StepUpRefusedError:
        if uid:
            return _interaction_page(uid)
        return _refused_page(settings().url("/login"))
    except OtpError as e:
        if uid:
            return _interaction_page(uid, 400, error=e.description)
        return _own_page(next_path, 400, error=e.description)
    if stepped is None:  # the birth date comes next
        return _own_page(next_path)
    return redirect(settings().url(next_path), 303)
