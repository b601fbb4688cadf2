"""An authorization request, validated, and the way back to its client.

``idp.protocol`` validates what arrives at the authorization endpoint
(the client exists, the redirect URI is registered exactly, scope and PKCE
are valid) into an :class:`AuthorizationRequest`; ``idp.interactions``
keeps it, as JSON, while the person signs in and consents.  Every answer
goes back to that verified redirect URI with ``state`` and RFC 9207's
``iss`` (:func:`client_redirect`), never to a URI the request did not
register."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlencode

from idp import runtime
from idp.errors import OAuthError

__all__ = ["AuthorizationRequest", "client_redirect", "error_redirect", "to_client"]


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """An authorization request the protocol layer has validated: the client
    exists, the redirect URI is registered exactly, scope and PKCE are valid."""

    client_id: str
    redirect_uri: str
    scope: str
    state: str | None = None
    nonce: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    prompts: frozenset[str] = frozenset()
    max_age: int | None = None
    login_hint: str = ""
    acr_values: tuple[str, ...] = ()

    def to_json(self) -> str:
        data = asdict(self)
        data["prompts"] = sorted(self.prompts)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AuthorizationRequest:
        data: dict[str, Any] = json.loads(text)
        data["prompts"] = frozenset(data.get("prompts") or ())
        data["acr_values"] = tuple(data.get("acr_values") or ())
        return cls(**data)


def client_redirect(redirect_uri: str, state: str | None, params: dict[str, str]) -> str:
    """A verified redirect URI with the response, ``state`` and RFC 9207's ``iss``."""
    params = dict(params)
    if state:
        params["state"] = state
    params["iss"] = runtime.current().settings.server.issuer
    sep = "&" if "?" in redirect_uri else "?"
    return redirect_uri + sep + urlencode(params)


def to_client(request: AuthorizationRequest, params: dict[str, str]) -> str:
    """The response to ``request`` at its verified redirect URI."""
    return client_redirect(request.redirect_uri, request.state, params)


def error_redirect(request: AuthorizationRequest, error: OAuthError) -> OAuthError:
    """``error`` addressed to the request's verified redirect URI."""
    return error.with_redirect(request.redirect_uri, request.state)
