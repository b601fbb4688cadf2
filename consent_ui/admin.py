"""``/admin``: find a member, see their sessions, devices, passkeys and recent
sign-ins, end one session or all, disable or enable the account.

Only accounts with the admin role see these pages (others get 404, as if
there were none), and only within 10 minutes of proving more than a
password: a passkey sign-in, or a one-time code, which the step-up page asks
for otherwise.  Every action goes through the same services as the admin
API and the command line, and is audited with the admin's ``sub``."""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

from flask import abort, redirect, request
from werkzeug.wrappers import Response

from consent_ui import bp
from consent_ui.account import local_time, require_signed_in, session_row
from consent_ui.context import SignedIn, client_ip, page, settings, signed_in
from consent_ui.i18n import language
from idp import (
    accounts,
    clock,
    devices,
    events,
    forced_logout,
    geo,
    members,
    passkeys,
    sessions,
    step_up,
)
from idp.errors import NotFoundError

FRESH = dt.timedelta(minutes=10)
"""How recent the admin's passkey or one-time code must be."""


def _admin() -> SignedIn | Response:
    """The signed-in admin with a fresh strong proof, or where to go first."""
    if (to_login := require_signed_in()) is not None:
        return to_login
    me = signed_in()
    assert me is not None  # noqa: S101 - require_signed_in() returned None
    if not me.member.is_admin:
        abort(404)
    proved = me.session.strong_auth_at
    if proved is None or clock.now() - proved > FRESH:
        step_up.require(me.session, ("admin",))
        here = quote(request.full_path.rstrip("?"), safe="/")
        return redirect(settings().url(f"/login/step-up?next={here}"), 303)
    return me


def _member(user_id: str) -> members.Member:
    try:
        return members.get(user_id)
    except NotFoundError:
        abort(404)


@bp.get("/admin")
def admin_home() -> Response:
    me = _admin()
    if isinstance(me, Response):
        return me
    query = request.args.get("q", "").strip()[:254]
    results = accounts.search(query) if query else []
    return page("admin.html", query=query, results=results, searched=bool(query))


@bp.get("/admin/users/<user_id>")
def admin_user(user_id: str) -> Response:
    me = _admin()
    if isinstance(me, Response):
        return me
    member = _member(user_id)
    rows = [session_row(s) for s in sessions.list_for_user(member.id)]
    attempts = [
        {
            "when": local_time(a.at),
            "method": a.method,
            "result": a.result,
            "reason": a.reason or "",
            "ip": a.ip,
            "country": geo.country_name(a.country, language()),
            "device": devices.describe(a.user_agent),
        }
        for a in events.attempts_for_user(member.id, limit=30)
    ]
    audit = [
        {"when": local_time(e.at), "kind": e.kind, "ip": e.ip or ""}
        for e in events.list_for_user(member.id, limit=30)
    ]
    return page(
        "admin_user.html",
        member=member,
        sessions=rows,
        passkeys=passkeys.list_for_user(member.id),
        attempts=attempts,
        audit=audit,
        ended=request.args.get("ended", ""),
    )


def _back(member: members.Member, note: str) -> Response:
    return redirect(settings().url(f"/admin/users/{member.id}?ended={quote(note)}"), 303)


@bp.post("/admin/users/<user_id>/sessions/<sid>/revoke")
def admin_revoke_session(user_id: str, sid: str) -> Response:
    me = _admin()
    if isinstance(me, Response):
        return me
    member = _member(user_id)
    report = forced_logout.force_logout(
        session_ids=[sid],
        user_id=member.id,  # scopes the call: another person's sid matches nothing
        reason=forced_logout.LogoutReason.ADMIN,
        actor=f"admin:{me.member.id}",
        ip=client_ip(),
    )
    return _back(member, str(len(report.session_ids)))


@bp.post("/admin/users/<user_id>/logout")
def admin_revoke_all(user_id: str) -> Response:
    me = _admin()
    if isinstance(me, Response):
        return me
    member = _member(user_id)
    report = forced_logout.force_logout(
        user_id=member.id,
        reason=forced_logout.LogoutReason.ADMIN,
        actor=f"admin:{me.member.id}",
        ip=client_ip(),
    )
    return _back(member, str(len(report.session_ids)))


@bp.post("/admin/users/<user_id>/disable")
def admin_disable(user_id: str) -> Response:
    me = _admin()
    if isinstance(me, Response):
        return me
    member = _member(user_id)
    disable = request.form.get("action", "disable") != "enable"
    _, ended = accounts.set_disabled(member.id, disable, actor=f"admin:{me.member.id}")
    return _back(member, str(ended) if disable else "enabled")
