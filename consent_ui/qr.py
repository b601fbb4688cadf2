"""QR sign-in pages: the device that wants to sign in, and the approving phone.

``/login/qr`` (the "PC") starts a request, binds it to this browser with the
``idp_qr`` cookie and shows the QR code, its link and the number; its
script polls ``/login/qr/<id>/status`` and collects the approval.  ``/qr/<token>``
(the link in the QR) shows the phone who asks and offers three numbers.
Both send ``Referrer-Policy: no-referrer`` (the token must not leak to
another site) and ``Cache-Control: no-store``.
"""

from __future__ import annotations

from urllib.parse import quote

from flask import jsonify, request
from werkzeug.wrappers import Response

from consent_ui import bp
from consent_ui.context import (
    client_ip,
    json_object,
    page,
    refusal,
    safe_next,
    settings,
    signed_in,
)
from consent_ui.i18n import N_, language
from consent_ui.signin import browser, set_signed_in
from idp import devices, geo, interactions, qr, remote, signin
from idp.errors import InteractionError, PasskeyError, QrError, SignInError
from idp.ratelimit import ceremony_key, ceremony_limit, limiter

BINDING_COOKIE = "idp_qr"


def _private(response: Response) -> Response:
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


def _json_error(message: str, status: int = 400) -> Response:
    return _private(refusal(message, status))


# --- the device that wants to sign in ------------------------------------------------


@bp.get("/login/qr")
@limiter.limit(ceremony_limit, key_func=ceremony_key)
def qr_show() -> Response:
    interaction = request.args.get("interaction", "")
    if interaction:
        me = signed_in()
        interactions.next_step(interaction, session=me.session if me else None)  # unusable: a page
        return_to = f"interaction:{interaction}"
    else:
        return_to = safe_next(request.args.get("next"))
    started = qr.start(ip=client_ip(), user_agent=remote.user_agent(request), return_to=return_to)
    s = settings()
    response = page(
        "qr_show.html",
        public_id=started.public_id,
        url=started.url,
        # The svg element itself is #qr-code (CONTRACT: "the QR image").
        svg=qr.svg(started.url).replace(
            "<svg",
            '<svg id="qr-code" class="qr" role="img" aria-label="QR code of the sign-in link"',
            1,
        ),
        match_code=started.match_code,
        ttl_seconds=s.qr.ttl_seconds,
        back=s.url(f"/login?interaction={quote(interaction)}" if interaction else "/login"),
    )
    response.set_cookie(
        BINDING_COOKIE,
        started.binding,
        max_age=s.qr.ttl_seconds + 60,
        path="/login/qr",
        secure=s.issuer_is_https,
        httponly=True,
        samesite="Lax",
    )
    return _private(response)


@bp.get("/login/qr/<public_id>/status")
def qr_status(public_id: str) -> Response:
    try:
        status = qr.status(public_id, request.cookies.get(BINDING_COOKIE))
    except QrError as e:
        return _json_error(e.description, 404)
    return _private(jsonify({"state": status.state}))


@bp.post("/login/qr/<public_id>/collect")
def qr_collect(public_id: str) -> Response:
    response = jsonify({})
    try:
        completed = signin.with_qr(
            public_id=public_id,
            binding=request.cookies.get(BINDING_COOKIE),
            browser=browser(response),
        )
    except (QrError, InteractionError, SignInError) as e:
        return _json_error(e.description)
    set_signed_in(response, completed)
    response.set_data(jsonify({"redirect": completed.next_url}).get_data())
    response.delete_cookie(BINDING_COOKIE, path="/login/qr")
    return _private(response)


# --- the registered device that approves -----------------------------------------------


def _approval_page(token: str, *, error: str | None = None, done: bool = False) -> Response:
    try:
        status = qr.describe(token)
    except QrError as e:
        return _private(page("qr_approve.html", 404, ask=None, error=e.description, token=token))
    s = settings()
    from zoneinfo import ZoneInfo

    when = status.created_at.astimezone(ZoneInfo(s.alerts.timezone)).strftime("%Y/%m/%d %H:%M %Z")
    if error is None and not done and status.state != "pending":
        error = {
            "denied": N_("This sign-in request was denied."),
            "expired": N_("This sign-in request has expired."),
        }.get(status.state, N_("This sign-in request was already used."))
    return _private(
        page(
            "qr_approve.html",
            200 if error is None else 400,
            ask=status,
            token=token,
            error=error,
            done=done,
            device=devices.describe(status.requester_user_agent),
            country=geo.country_name(status.requester_country, language()),
            when=when,
        )
    )


@bp.get("/qr/<token>")
def qr_approve_page(token: str) -> Response:
    """Opening the link is not a use: previews by mail and chat apps are harmless."""
    return _approval_page(token)


@bp.post("/qr/<token>/match")
@limiter.limit(ceremony_limit, key_func=ceremony_key)
def qr_match(token: str) -> Response:
    number = str(json_object().get("match") or request.form.get("match", ""))
    try:
        options = qr.pick(token, number, ip=client_ip())
    except QrError as e:
        if request.is_json:
            return _json_error(e.description)
        return _approval_page(token, error=e.description)
    if request.is_json:
        return _private(jsonify({"publicKey": options}))
    return _approval_page(
        token, error=N_("Your browser must run this page's script to confirm with a passkey.")
    )


@bp.post("/qr/<token>/approve")
@limiter.limit(ceremony_limit, key_func=ceremony_key)
def qr_approve(token: str) -> Response:
    credential = json_object().get("credential")
    if not isinstance(credential, dict):
        return _json_error(N_("The passkey answer is missing."))
    try:
        qr.approve(token, credential, ip=client_ip())
    except (QrError, PasskeyError) as e:
        return _json_error(e.description)
    return _private(jsonify({"approved": True}))


@bp.post("/qr/<token>/deny")
def qr_deny(token: str) -> Response:
    try:
        qr.deny(token, ip=client_ip())
    except QrError as e:
        return _approval_page(token, error=e.description)
    return _approval_page(token, error=N_("You denied this sign-in request. Nobody was signed in."))
