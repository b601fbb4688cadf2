"""First run: schema, first signing key, and (on embedded defaults only) a
demo account and client to try the provider with.

The demo exists so that ``make run`` on a fresh clone shows a working
sign-in at once; it is never created when a configuration file is named,
so a production deployment cannot end up with a known password."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from idp import accounts, clients, otp, schema
from idp.config import Settings
from idp.db import service
from idp.errors import ConflictError
from idp.keys import KeyRing

__all__ = ["Demo", "ensure_demo", "init", "seal_stored_secrets"]

DEMO_USERNAME = "demo"
DEMO_CALLBACK_PATH = "/demo/callback"


@dataclass(frozen=True, slots=True)
class Demo:
    username: str
    password: str
    client_id: str
    client_secret: str
    redirect_uri: str
    code_verifier: str
    authorize_url: str


def init(settings: Settings, keys: KeyRing) -> bool:
    """Create or upgrade the schema and create the first key; safe to repeat.

    Returns True if a signing key was created."""
    schema.upgrade(settings.database.url)
    return keys.ensure()


@service
def seal_stored_secrets() -> int:
    """Seal the TOTP seeds stored before sealing (``idp.sealing``); returns
    how many.  Needs an application context; safe to repeat."""
    return otp.seal_stored_seeds()


def ensure_demo(settings: Settings) -> Demo | None:
    """Create the demo account and client once; returns them when created now.

    Needs an application context.  The credentials are also kept in
    ``var/demo.json`` (mode 0600) so that later runs can print them again."""
    if not settings.embedded_defaults:
        return None
    record = Path("var/demo.json")
    if record.exists():
        try:
            return Demo(**json.loads(record.read_text()))
        except (ValueError, TypeError):
            return None
    password = secrets.token_urlsafe(9)
    try:
        accounts.create(
            username=DEMO_USERNAME,
            email="demo@localhost",
            password=password,
            name="Demo Member",
            email_verified=True,
        )
    except ConflictError:
        return None
    redirect_uri = settings.url(DEMO_CALLBACK_PATH)
    registered = clients.create(
        name="Demo service",
        redirect_uris=[redirect_uri],
        post_logout_redirect_uris=[settings.url("/login")],
        scope="openid profile email offline_access",
    )
    secret = registered.client_secret or ""  # a confidential client always has one
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    authorize_url = settings.url(
        "/authorize?response_type=code&scope=openid%20profile%20email"
        f"&client_id={registered.client.client_id}&redirect_uri={redirect_uri}&state=demo"
        f"&code_challenge={challenge.decode()}&code_challenge_method=S256"
    )
    demo = Demo(
        username=DEMO_USERNAME,
        password=password,
        client_id=registered.client.client_id,
        client_secret=secret,
        redirect_uri=redirect_uri,
        code_verifier=verifier,
        authorize_url=authorize_url,
    )
    record.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(record, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(dataclasses.asdict(demo), fh, indent=2)
    return demo
