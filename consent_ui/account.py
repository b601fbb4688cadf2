"""``/account``: the signed-in person's own pages.

Every page sends a signed-out person to sign in and back; every POST is
CSRF-checked (Flask-WTF) before the view runs, and a signed-out POST
changes nothing."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from flask import redirect, request
from werkzeug.wrappers import Response

from consent_ui import bp
from consent_ui.context import client_ip, page, settings, signed_in
from consent_ui.i18n import N_, language
from idp import accounts, devices, events, forced_logout, geo, registration, sessions
from idp.errors import ConflictError, LinkError, UsageError


def require_signed_in() -> Response | None:
    """A redirect to sign in (and back here afterwards) when signed out."""
    if signed_in() is None:
        return redirect(
            settings().url("/login?next=" + quote(request.full_path.rstrip("?"), safe="/")), 303
        )
    return None


@bp.get("/account")
def account_home() -> Response:
    if (to_login := require_signed_in()) is not None:
        return to_login
    return page(
        "account.html",
        saved=request.args.get("saved") == "1",
        email_sent=request.args.get("email") == "sent",
    )


@bp.post("/account")
def account_save() -> Response:
    """Name and email may change: gender and birth date are fixed at
    registration (a hand-made POST of them is ignored), and a new email
    address is used only once its mailed link is opened."""
    if (to_login := require_signed_in()) is not None:
        return to_login
    me = signed_in()
    assert me is not None  # noqa: S101 - require_signed_in() returned None
    email = request.form.get("email", me.member.email).strip()
    try:
        accounts.update_name(me.member.id, request.form.get("name", ""))
        if email.casefold() != me.member.email.casefold():
            registration.request_email_change(me.member.id, email)
            return redirect(settings().url("/account?email=sent"), 303)
    except UsageError as e:
        return page("account.html", 400, error=e.description)
    return redirect(settings().url("/account?saved=1"), 303)


@bp.get("/account/email/verify/<token>")
def account_email_verify(token: str) -> Response:
    """The link mailed to a new address: opening it (a GET) makes it the account's."""
    try:
        registration.confirm_email_change(token)
    except (LinkError, ConflictError) as e:
        return page("link_error.html", 400, message=e.description, again="/account")
    return page(
        "verified.html",
        message=N_("Your new email address is confirmed and now used for your account."),
        next="/account",
    )


@bp.get("/")
def home() -> Response:
    return redirect(settings().url("/account" if signed_in() else "/login"), 303)


def local_time(when: dt.datetime) -> str:
    """A moment as the pages show it, in ``alerts.timezone`` (as the mail does)."""
    zone = ZoneInfo(settings().alerts.timezone)
    return when.astimezone(zone).strftime("%Y/%m/%d %H:%M %Z")


def session_row(s: sessions.SessionInfo) -> dict[str, Any]:
    """A sign-in session as the pages list it: the member's own list and an admin's."""
    return {
        "id": s.id,
        "device": s.device,
        "ip": s.ip,
        "country": geo.country_name(s.country, language()),
        "last_seen": local_time(s.last_seen_at),
        "last_seen_iso": s.last_seen_at.isoformat(),
        "created": local_time(s.created_at),
        "amr": " ".join(s.amr),
        "remember": s.remember,
        "held": s.held,
    }


@bp.get("/account/sessions")
def session_list() -> Response:
    if (to_login := require_signed_in()) is not None:
        return to_login
    me = signed_in()
    assert me is not None  # noqa: S101 - require_signed_in() returned None
    rows = [
        {**session_row(s), "current": s.id == me.session.id}
        for s in sessions.list_for_user(me.member.id)
    ]
    rows.sort(key=lambda r: not r["current"])
    activity = [
        {
            "when": local_time(a.at),
            "when_iso": a.at.isoformat(),
            "what": ACTIVITY_TEXT.get((a.method, a.result), f"{a.method} {a.result}"),
            "result": a.result,
            "device": devices.describe(a.user_agent),
            "ip": a.ip,
            "country": geo.country_name(a.country, language()),
        }
        for a in events.attempts_for_user(me.member.id, limit=RECENT_ACTIVITY)
    ]
    ended = request.args.get("ended", "")
    count = int(ended) if ended.isascii() and ended.isdigit() and len(ended) < 6 else 0
    return page("sessions.html", rows=rows, activity=activity, ended=count)


RECENT_ACTIVITY = 20
ACTIVITY_TEXT = {
    ("pwd", "success"): N_("Signed in with a password"),
    ("pwd", "failure"): N_("Wrong password"),
    ("pwd", "step_up"): N_("Password right, extra check asked"),
    ("passkey", "success"): N_("Signed in with a passkey"),
    ("passkey", "step_up"): N_("Passkey, extra check asked"),
    ("qr", "success"): N_("Signed in by QR code from your phone"),
    ("step_up", "success"): N_("Extra check passed"),
    ("step_up", "failure"): N_("Extra check answered wrongly"),
    ("step_up", "refused"): N_("Sign-in refused after wrong answers"),
}


@bp.post("/account/sessions/<sid>/revoke")
def revoke_session(sid: str) -> Response:
    if (to_login := require_signed_in()) is not None:
        return to_login
    me = signed_in()
    assert me is not None  # noqa: S101
    ended = 0
    if sid != me.session.id:
        # user_id scopes the call: another person's sid matches nothing.
        ended = len(
            forced_logout.force_logout(
                session_ids=[sid],
                user_id=me.member.id,
                reason=forced_logout.LogoutReason.USER_REVOKED,
                actor=f"user:{me.member.id}",
                ip=client_ip(),
            ).session_ids
        )
    return redirect(settings().url(f"/account/sessions?ended={ended}"), 303)


@bp.post("/account/sessions/revoke-others")
def revoke_other_sessions() -> Response:
    if (to_login := require_signed_in()) is not None:
        return to_login
    me = signed_in()
    assert me is not None  # noqa: S101
    report = forced_logout.force_logout(
        user_id=me.member.id,
        keep=me.session.id,
        reason=forced_logout.LogoutReason.USER_REVOKED,
        actor=f"user:{me.member.id}",
        ip=client_ip(),
    )
    return redirect(settings().url(f"/account/sessions?ended={len(report.session_ids)}"), 303)
