"""Tables, a file per owning service.  Import from here, not the files."""

from idp.models.alerts import Sighting
from idp.models.clients import Client
from idp.models.codes import AuthorizationCode
from idp.models.consents import Consent
from idp.models.events import AuditEvent, SignInAttempt
from idp.models.interactions import Interaction
from idp.models.links import EmailLink
from idp.models.otp import RecoveryCode, TotpCredential
from idp.models.outbox import OutboxMessage
from idp.models.passkeys import Passkey, WebauthnChallenge
from idp.models.qr import QrRequest
from idp.models.sessions import SessionClient, SignInSession
from idp.models.step_ups import StepUp
from idp.models.tokens import AccessToken, RefreshToken
from idp.models.tombstones import Tombstone
from idp.models.users import User

__all__ = [
    "AccessToken",
    "AuditEvent",
    "AuthorizationCode",
    "Client",
    "Consent",
    "EmailLink",
    "Interaction",
    "OutboxMessage",
    "Passkey",
    "QrRequest",
    "RecoveryCode",
    "RefreshToken",
    "SessionClient",
    "Sighting",
    "SignInAttempt",
    "SignInSession",
    "StepUp",
    "Tombstone",
    "TotpCredential",
    "User",
    "WebauthnChallenge",
]
