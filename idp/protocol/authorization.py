"""The authorization endpoint (OIDC Core 3.1.2) and its resume URL.

Browser-facing, so its failures that cannot go back to a client are pages
(the composition root renders this blueprint's errors as pages).  Authlib
validates the request; ``idp.interactions`` decides what happens next and
issues the code.  An error is redirected only to a redirect URI that was
verified against the client's registration, with the request's ``state``;
anything else is an :class:`~idp.errors.AuthorizationPageError`.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, request
from werkzeug.wrappers import Response

from idp import cookies, errors, interactions, runtime
from idp.authorization_requests import client_redirect, error_redirect
from idp.errors import AuthorizationPageError, OAuthError
from idp.protocol.server import validate_authorization

__all__ = ["bp", "reject_repeated"]

bp = Blueprint("authorization", __name__)

_SINGLE_VALUED = ("response_type", "client_id", "redirect_uri", "scope", "state")


def reject_repeated(values: Any, names: tuple[str, ...] | None = None) -> None:
    """RFC 6749 §3.1: request and response parameters MUST NOT be repeated."""
    for name in values:
        if (names is None or name in names) and len(values.getlist(name)) > 1:
            raise errors.InvalidRequestError("A request parameter is repeated.")


def _answer(e: OAuthError) -> Response:
    if e.redirect_uri and e.redirectable:
        return redirect(client_redirect(e.redirect_uri, e.state, e.to_json()), 303)
    raise AuthorizationPageError(e)


@bp.route("/authorize", methods=["GET", "POST"])
def authorize() -> Response:
    values = request.values
    try:
        reject_repeated(values, _SINGLE_VALUED)
        validated = validate_authorization()
    except OAuthError as e:
        return _answer(e)
    try:
        reject_repeated(values)
        if "request" in values:
            raise errors.RequestNotSupportedError("Request objects are not supported.")
        if "request_uri" in values:
            raise errors.RequestUriNotSupportedError("request_uri is not supported.")
        session = cookies.current_session(request, runtime.current().settings)
        target = interactions.start(validated, session=session)
    except OAuthError as e:
        if e.redirect_uri is None:
            e = error_redirect(validated, e)
        return _answer(e)
    return redirect(target, 303)


@bp.get("/authorize/resume/<uid>")
def resume(uid: str) -> Response:
    """Where the pages send the browser once a step is done: the code (or
    the error) goes to the client, or the browser to the step still to do."""
    session = cookies.current_session(request, runtime.current().settings)
    target = interactions.resume(uid, session=session)
    return redirect(target, 303)
