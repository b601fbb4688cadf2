"""``/consent``: the person allows or denies a client the scopes it asked for.

The page shows what the interaction says is due; a browser that is not the
one signed in for it is sent to sign in first (the interaction decides)."""

from __future__ import annotations

from urllib.parse import quote

from flask import redirect, request
from werkzeug.wrappers import Response

from consent_ui import bp
from consent_ui.context import page, settings, signed_in
from consent_ui.i18n import N_
from idp import interactions
from idp.interactions import Step

SCOPE_TEXT = {
    "openid": N_("Know who you are (your member ID)"),
    "profile": N_("Your name, user ID, gender and birth date"),
    "email": N_("Your email address"),
    "offline_access": N_("Stay connected while you are away"),
}


@bp.get("/consent")
def consent_form() -> Response:
    uid = request.args.get("interaction", "")
    me = signed_in()
    pending = interactions.next_step(uid, session=me.session if me else None)
    if pending.step is not Step.CONSENT:
        return redirect(pending.url, 303)
    return page(
        "consent.html",
        interaction=uid,
        client_name=pending.client_name,
        scopes=[(s, SCOPE_TEXT[s]) for s in pending.scopes if s in SCOPE_TEXT],
    )


@bp.post("/consent")
def consent_submit() -> Response:
    uid = request.form.get("interaction", "")
    decision = request.form.get("decision")
    if decision not in ("allow", "deny"):
        return redirect(settings().url("/consent?interaction=" + quote(uid, safe="")), 303)
    me = signed_in()
    target = interactions.finish_consent(
        uid, session=me.session if me else None, allow=decision == "allow"
    )
    return redirect(target, 303)
