"""A small web shop that signs its visitors in through the provider.

It is what a relying service of the family does, written with Authlib's
Flask client as an integrator would write it:

* ``/login`` sends the visitor to the provider (authorization code flow,
  PKCE S256, ``nonce``), asking ``offline_access`` too, so that "Stay signed
  in" at the provider keeps the shop signed in; ``/callback`` redeems the
  code and validates the ID token (signature from the JWKS, ``iss``, ``aud``,
  ``exp``, ``nonce``);
* the page shows who is signed in (``#shop-user``) and how (``#shop-amr``:
  password, passkey, QR, one-time code), and a points balance: one point per
  100 JPY of a (pretend) purchase, as the membership help page describes;
* ``/backchannel-logout`` receives the provider's logout token (OIDC
  Back-Channel Logout 1.0) and ends every shop session of that ``sid``, so
  a forced logout at the provider signs the shop out at its next page;
* ``/events`` receives Security Event Tokens (RFC 8417/8935): on
  ``account-purged`` (a cancelled membership) the member's points go.

Configured by environment: ``SHOP_ISSUER`` (the provider), ``SHOP_CLIENT``
(a JSON file with ``client_id`` and ``client_secret``), ``SHOP_URL`` (its
own base URL), ``SHOP_DATA`` (its SQLite file).  ``make demo`` sets them."""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from authlib.integrations.flask_client import OAuth
from authlib.jose import JsonWebKey, JsonWebToken
from authlib.jose.errors import JoseError
from flask import Flask, abort, redirect, render_template, request, session, url_for

AMR_TEXT = {
    "pwd": "password",
    "hwk": "passkey",
    "user": "biometrics or PIN",
    "mca": "QR code from a registered phone",
    "otp": "one-time code",
    "mfa": "two factors",
}
LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
PURGED_EVENT = "https://schemas.openid.net/secevent/risc/event-type/account-purged"


class Store:
    """Shop sessions (by the provider's ``sid``) and points (by ``sub``), in SQLite."""

    def __init__(self, path: str) -> None:
        self.path = path
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.executescript(
                """
                CREATE TABLE IF NOT EXISTS sessions (
                    id TEXT PRIMARY KEY, sub TEXT NOT NULL, sid TEXT, name TEXT, amr TEXT,
                    id_token TEXT, created REAL NOT NULL);
                CREATE INDEX IF NOT EXISTS sessions_sid ON sessions (sid);
                CREATE TABLE IF NOT EXISTS points (sub TEXT PRIMARY KEY, balance INTEGER NOT NULL);
                """
            )

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=10)
        db.row_factory = sqlite3.Row
        try:
            with db:
                yield db
        finally:
            db.close()

    def open(self, claims: dict[str, Any], id_token: str) -> str:
        shop_session = secrets.token_urlsafe(32)
        with self._db() as db:
            db.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    shop_session,
                    claims["sub"],
                    claims.get("sid"),
                    claims.get("name") or claims.get("preferred_username") or claims["sub"],
                    " ".join(claims.get("amr", [])),
                    id_token,
                    time.time(),
                ),
            )
        return shop_session

    def get(self, shop_session: str | None) -> sqlite3.Row | None:
        if not shop_session:
            return None
        with self._db() as db:
            row: sqlite3.Row | None = db.execute(
                "SELECT * FROM sessions WHERE id = ?", (shop_session,)
            ).fetchone()
            return row

    def end(self, shop_session: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM sessions WHERE id = ?", (shop_session,))

    def end_sid(self, sid: str | None, sub: str | None) -> int:
        with self._db() as db:
            if sid:
                return db.execute("DELETE FROM sessions WHERE sid = ?", (sid,)).rowcount
            return db.execute("DELETE FROM sessions WHERE sub = ?", (sub,)).rowcount

    def points(self, sub: str) -> int:
        with self._db() as db:
            row = db.execute("SELECT balance FROM points WHERE sub = ?", (sub,)).fetchone()
            return int(row["balance"]) if row else 0

    def earn(self, sub: str, points: int) -> None:
        with self._db() as db:
            db.execute(
                "INSERT INTO points VALUES (?, ?) "
                "ON CONFLICT (sub) DO UPDATE SET balance = balance + excluded.balance",
                (sub, points),
            )

    def forget(self, sub: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM points WHERE sub = ?", (sub,))
            db.execute("DELETE FROM sessions WHERE sub = ?", (sub,))


def _config() -> dict[str, str]:
    client = json.loads(Path(os.environ["SHOP_CLIENT"]).read_text())
    return {
        "issuer": os.environ.get("SHOP_ISSUER", "http://localhost:5000"),
        "url": os.environ.get("SHOP_URL", "http://localhost:5001"),
        "data": os.environ.get("SHOP_DATA", "var/shop.sqlite3"),
        "client_id": client["client_id"],
        "client_secret": client["client_secret"],
    }


def create_app() -> Flask:
    config = _config()
    app = Flask("shop", root_path=str(Path(__file__).parent))
    app.config.update(
        SECRET_KEY=secrets.token_urlsafe(32),
        SESSION_COOKIE_NAME="shop_session",
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
    )
    store = Store(config["data"])
    oauth = OAuth(app)
    idp = oauth.register(
        "idp",
        client_id=config["client_id"],
        client_secret=config["client_secret"],
        server_metadata_url=config["issuer"] + "/.well-known/openid-configuration",
        client_kwargs={
            "scope": "openid profile email offline_access",
            "code_challenge_method": "S256",
        },
    )
    jwt = JsonWebToken(["RS256", "ES256"])

    def verified(token: str, *, typ: str | None = None) -> dict[str, Any]:
        """A token the provider signed for us, else 400."""
        metadata = idp.load_server_metadata()
        keys = JsonWebKey.import_key_set(requests.get(metadata["jwks_uri"], timeout=5).json())
        try:
            claims = jwt.decode(token, keys)
            claims.validate(leeway=60)
        except (JoseError, ValueError) as e:
            abort(400, f"invalid token: {e}")
        if typ is not None and claims.header.get("typ") != typ:
            abort(400, "unexpected token type")
        aud = claims.get("aud")
        if claims.get("iss") != metadata["issuer"] or config["client_id"] not in (
            aud if isinstance(aud, list) else [aud]
        ):
            abort(400, "not for us")
        return dict(claims)

    def current() -> sqlite3.Row | None:
        row = store.get(session.get("shop"))
        if row is None:
            session.pop("shop", None)
        return row

    @app.get("/")
    def home() -> str:
        row = current()
        user = None
        if row is not None:
            amr = row["amr"].split()
            user = {
                "name": row["name"],
                "amr": amr,
                "amr_text": ", ".join(AMR_TEXT.get(a, a) for a in amr) or "an unknown method",
            }
        return render_template(
            "shop.html",
            user=user,
            points=store.points(row["sub"]) if row else 0,
            ended=request.args.get("ended") == "1",
        )

    @app.get("/login")
    def login() -> Any:
        return idp.authorize_redirect(config["url"] + "/callback")

    @app.get("/callback")
    def callback() -> Any:
        token = idp.authorize_access_token()  # checks state, exchanges the code with PKCE
        claims = token.get("userinfo") or {}  # Authlib validated the ID token and nonce
        session["shop"] = store.open(dict(claims), token.get("id_token", ""))
        return redirect(url_for("home"))

    @app.post("/purchase")
    def purchase() -> Any:
        row = current()
        if row is None:
            return redirect(url_for("home"))
        try:
            amount = int(request.form.get("amount", "0"))
        except ValueError:
            amount = 0
        if 0 < amount <= 1_000_000:
            store.earn(row["sub"], amount // 100)
        return redirect(url_for("home"))

    @app.post("/logout")
    def logout() -> Any:
        row = current()
        session.pop("shop", None)
        if row is None:
            return redirect(url_for("home"))
        store.end(row["id"])
        metadata = idp.load_server_metadata()
        return redirect(
            metadata["end_session_endpoint"]
            + "?"
            + requests.compat.urlencode(
                {"id_token_hint": row["id_token"], "post_logout_redirect_uri": config["url"] + "/"}
            )
        )

    @app.post("/backchannel-logout")
    def backchannel_logout() -> Any:
        claims = verified(request.form.get("logout_token", ""), typ="logout+jwt")
        if LOGOUT_EVENT not in (claims.get("events") or {}) or "nonce" in claims:
            abort(400, "not a logout token")
        store.end_sid(claims.get("sid"), claims.get("sub"))
        return "", 200, {"Cache-Control": "no-store"}

    @app.post("/events")
    def security_events() -> Any:
        claims = verified(request.get_data(as_text=True), typ="secevent+jwt")
        events = claims.get("events") or {}
        if PURGED_EVENT in events:
            subject = events[PURGED_EVENT].get("subject") or claims.get("sub_id") or {}
            if subject.get("sub"):
                store.forget(subject["sub"])
        return "", 202

    return app
