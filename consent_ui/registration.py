"""Sign-up, address confirmation, and recovery of a forgotten user ID or password.

``/register`` refuses a taken user ID at once and otherwise always shows
``#register-sent`` (a registered address is not revealed).  The recovery
pages always show ``#recover-sent``: the services only queue the work, so
the answer is the same, in content and in time, whether or not an account
matched.  Links in mail carry a single-use token in the path; these pages
send no referrer (``idp.headers``)."""

from __future__ import annotations

from typing import Any

from flask import request
from werkzeug.wrappers import Response

from consent_ui import bp, i18n
from consent_ui.context import client_ip, page, settings, signed_in
from consent_ui.i18n import N_
from idp import cookies, links, recovery, registration
from idp.errors import ConflictError, LinkError, UsageError
from idp.links import Purpose

GENDERS = (
    ("unspecified", N_("Prefer not to say")),
    ("female", N_("Female")),
    ("male", N_("Male")),
    ("other", N_("Other")),
)
_FIELDS = ("username", "email", "name", "gender", "birthdate")


def _register_page(status: int = 200, *, error: str | None = None, **form: Any) -> Response:
    values = {name: form.get(name, "") for name in _FIELDS}
    return page("register.html", status, error=error, form=values, genders=GENDERS)


@bp.get("/register")
def register_form() -> Response:
    return _register_page()


@bp.post("/register")
def register_submit() -> Response:
    form = {name: request.form.get(name, "") for name in _FIELDS}
    try:
        registration.register(
            username=form["username"],
            email=form["email"],
            password=request.form.get("password", ""),
            name=form["name"],
            gender=form["gender"],
            birthdate=form["birthdate"],
            ip=client_ip(),
            language=i18n.language(),
        )
    except (UsageError, ConflictError) as e:
        return _register_page(400, error=e.description, **form)
    return page("register_sent.html")


@bp.get("/register/verify/<token>")
def register_verify(token: str) -> Response:
    """Opening the mailed link (a GET) confirms the address."""
    try:
        registration.verify_email(token)
    except LinkError as e:
        return page("link_error.html", 400, message=e.description, again="/register")
    return page(
        "verified.html",
        message=N_("Your email address is confirmed. You can now sign in to our services."),
        next="/account" if signed_in() else "/login",
    )


@bp.get("/recover/user-id")
def recover_user_id_form() -> Response:
    return page("recover_user_id.html")


@bp.post("/recover/user-id")
def recover_user_id_submit() -> Response:
    recovery.request_user_id(request.form.get("email", ""))
    return page("recover_sent.html")


@bp.get("/recover/password")
def recover_password_form() -> Response:
    return page("recover_password.html")


@bp.post("/recover/password")
def recover_password_submit() -> Response:
    recovery.request_password_reset(request.form.get("login", ""))
    return page("recover_sent.html")


def _link_refused(e: LinkError) -> Response:
    return page("link_error.html", 400, message=e.description, again="/recover/password")


@bp.get("/recover/password/<token>")
def reset_password_form(token: str) -> Response:
    """Opening the link shows the form; only setting the password uses it."""
    try:
        links.peek(token, Purpose.RESET_PASSWORD)
    except LinkError as e:
        return _link_refused(e)
    return page("reset_password.html", token=token)


@bp.post("/recover/password/<token>")
def reset_password_submit(token: str) -> Response:
    try:
        recovery.reset_password(token, request.form.get("password", ""))
    except LinkError as e:
        return _link_refused(e)
    except UsageError as e:
        return page("reset_password.html", 400, token=token, error=e.description)
    response = page("reset_done.html")
    cookies.clear_session(response, settings())  # this browser's session ended too
    return response
