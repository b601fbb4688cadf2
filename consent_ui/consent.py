"""``/consent``: the person allows or denies a client the scopes it asked for."""

from __future__ import annotations

from flask import redirect, request
from werkzeug.wrappers import Response

from consent_ui import bp
from consent_ui.context import page, settings, signed_in
from idp import clients, interactions
from idp.errors import InteractionError

SCOPE_TEXT = {
    "openid": "Know who you are (your member ID)",
    "profile": "Your name, user ID, gender and birth date",
    "email": "Your email address",
    "offline_access": "Stay connected while you are away",
}


@bp.get("/consent")
def consent_form() -> Response:
    uid = request.args.get("interaction", "")
    info = interactions.load(uid)
    me = signed_in()
    if me is None or me.session.id != info.session_id:
        return redirect(settings().url(f"/login?interaction={uid}"), 303)
    rp = clients.get(info.client_id)
    return page(
        "consent.html",
        interaction=uid,
        client_name=rp.name,
        scopes=[(s, SCOPE_TEXT.get(s, s)) for s in info.scopes if s in SCOPE_TEXT],
    )


@bp.post("/consent")
def consent_submit() -> Response:
    uid = request.form.get("interaction", "")
    me = signed_in()
    if me is None:
        raise InteractionError("Your sign-in ended. Go back to the service and start again.")
    decision = request.form.get("decision")
    if decision not in ("allow", "deny"):
        return redirect(settings().url(f"/consent?interaction={uid}"), 303)
    interactions.finish_consent(uid, session_id=me.session.id, allow=decision == "allow")
    return redirect(settings().url(f"/authorize/resume/{uid}"), 303)
