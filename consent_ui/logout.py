"""Sign-out: the person's own button, and RP-initiated logout (``/logout``).

``/logout`` with an ``id_token_hint`` naming this browser's session signs out
at once; otherwise it asks (``form#logout-form``), so that a link on another
site cannot sign anyone out.  The confirmation POST carries a CSRF token;
a relying party's own POST (which cannot) is treated like its GET."""

from __future__ import annotations

from flask import redirect, request
from werkzeug.wrappers import Response

from consent_ui import bp
from consent_ui.context import client_ip, page, settings, signed_in
from consent_ui.i18n import N_
from idp import cookies, forced_logout, logout
from idp.csrf import protection
from idp.errors import InvalidRequestError


def _signed_out(target: str | None) -> Response:
    response = redirect(target, 303) if target else page("signed_out.html")
    cookies.clear_session(response, settings())
    return response


def _end_current(reason: forced_logout.LogoutReason) -> None:
    me = signed_in()
    if me is not None:
        forced_logout.force_logout(
            session_ids=[me.session.id],
            reason=reason,
            actor=f"user:{me.member.id}",
            ip=client_ip(),
        )


@bp.route("/logout", methods=["GET", "POST"])
def end_session() -> Response:
    params = {k: v for k, v in request.values.items() if isinstance(v, str)}
    for name in request.values:
        if len(request.values.getlist(name)) > 1:
            return page(
                "error.html",
                400,
                title=N_("Sign-out failed"),
                message=N_("A sign-out request parameter is repeated."),
            )
    try:
        req = logout.validate(params)
    except InvalidRequestError as e:
        return page("error.html", 400, title=N_("Sign-out failed"), message=e.description)
    me = signed_in()
    if request.method == "POST" and "confirm" in request.form:
        protection.protect()
        _end_current(forced_logout.LogoutReason.RP_LOGOUT)
        return _signed_out(req.redirect_to)
    if me is None:
        return _signed_out(req.redirect_to)
    if req.hint_matches(me.session.id):
        _end_current(forced_logout.LogoutReason.RP_LOGOUT)
        return _signed_out(req.redirect_to)
    return page("logout_confirm.html", params=req.params, client_name=req.client_name)


@bp.post("/signout")
def signout() -> Response:
    _end_current(forced_logout.LogoutReason.SIGNOUT)
    response = redirect(settings().url("/login"), 303)
    cookies.clear_session(response, settings())
    return response
