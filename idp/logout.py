"""RP-initiated logout 1.0: which session to end and where to go after.

An ``id_token_hint`` is checked for our signature, issuer and type (an ID
token, ``typ: JWT``: a logout or access token is no hint) but may be
expired (the spec allows it: a person often signs out long after the ID
token's ``exp``).  ``post_logout_redirect_uri`` is honoured only when it is
registered, exactly, for the client the hint or ``client_id`` names; anything
else is an error page, never a redirect."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from idp import clients, runtime
from idp.errors import InvalidRequestError, InvalidTokenError

__all__ = ["LogoutRequest", "validate"]


@dataclass(frozen=True, slots=True)
class LogoutRequest:
    client_id: str | None
    client_name: str | None
    redirect_to: str | None
    """The registered post-logout URI with ``state``, or None."""
    hint_session_id: str | None
    hint_user_id: str | None
    params: dict[str, str]
    """What a confirmation form must carry to validate again on POST."""

    def hint_matches(self, session_id: str | None) -> bool:
        return session_id is not None and self.hint_session_id == session_id


def validate(params: dict[str, str]) -> LogoutRequest:
    """Check a logout request.  Raises InvalidRequestError (shown as a page)."""
    rt = runtime.current()
    hint = params.get("id_token_hint") or ""
    client_id = params.get("client_id") or None
    hint_sid = hint_sub = None
    if hint:
        try:
            # Only an ID token (typ JWT): never a logout or access token of ours.
            _, claims = rt.keys.verify(hint, typ="JWT")
        except InvalidTokenError:
            raise InvalidRequestError(
                "The id_token_hint is not a valid ID token of this provider."
            ) from None
        if claims.get("iss") != rt.settings.server.issuer:
            raise InvalidRequestError("The id_token_hint was issued by another provider.")
        aud = claims.get("aud")
        hinted_client = (
            aud if isinstance(aud, str) else (aud[0] if isinstance(aud, list) and aud else None)
        )
        if client_id and hinted_client != client_id:
            raise InvalidRequestError("client_id does not match the id_token_hint.")
        client_id = hinted_client
        hint_sid = claims.get("sid") if isinstance(claims.get("sid"), str) else None
        hint_sub = claims.get("sub") if isinstance(claims.get("sub"), str) else None
    rp = clients.lookup(client_id) if client_id else None
    if client_id and rp is None:
        raise InvalidRequestError("The client is unknown.")
    redirect_to = None
    target = params.get("post_logout_redirect_uri")
    if target:
        if rp is None:
            raise InvalidRequestError(
                "post_logout_redirect_uri needs an id_token_hint or client_id."
            )
        if target not in rp.post_logout_redirect_uris:
            raise InvalidRequestError("post_logout_redirect_uri is not registered for this client.")
        redirect_to = target
        if params.get("state"):
            sep = "&" if "?" in target else "?"
            redirect_to = target + sep + urlencode({"state": params["state"]})
    keep = {
        k: v
        for k, v in params.items()
        if k in ("id_token_hint", "client_id", "post_logout_redirect_uri", "state")
    }
    return LogoutRequest(
        client_id=rp.client_id if rp else None,
        client_name=rp.name if rp else None,
        redirect_to=redirect_to,
        hint_session_id=hint_sid,
        hint_user_id=hint_sub,
        params=keep,
    )
