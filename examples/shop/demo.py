"""``make demo``: the provider on :5000 and the demo shop on :5001, on loopback.

On first run the shop is registered with the provider (``idp clients
create``; its credentials are kept in ``var/shop-client.json``, mode 0600);
then both are started, what to try is printed, and Ctrl-C stops both."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

IDP_URL = "http://localhost:5000"
SHOP_URL = "http://localhost:5001"
CLIENT_FILE = Path("var/shop-client.json")
BIN = Path(sys.executable).parent


def _register() -> None:
    if CLIENT_FILE.exists():
        return
    subprocess.run([BIN / "idp", "init"], check=True, capture_output=True)
    done = subprocess.run(
        [
            BIN / "idp", "clients", "create", "--name", "Family Shop",
            "--redirect-uri", f"{SHOP_URL}/callback",
            "--post-logout-redirect-uri", f"{SHOP_URL}/",
            "--backchannel-logout-uri", f"{SHOP_URL}/backchannel-logout",
            "--events-uri", f"{SHOP_URL}/events",
            "--first-party", "--json",
        ],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    CLIENT_FILE.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(CLIENT_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(done.stdout)
    json.loads(done.stdout)  # it is the client's JSON, or this run says why not


def _wait(url: str, what: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"demo: the {what} stopped (exit {process.returncode})")
        try:
            if requests.get(url, timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    sys.exit(f"demo: the {what} did not answer within 60 s")


def main() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IDP_", "SHOP_"))}
    subprocess.run([BIN / "idp", "init"], check=True, capture_output=True, env=env)
    _register()
    idp = subprocess.Popen([BIN / "idp", "serve", "--host", "127.0.0.1", "--port", "5000"], env=env)
    shop_env = {
        **env,
        "SHOP_ISSUER": IDP_URL,
        "SHOP_URL": SHOP_URL,
        "SHOP_CLIENT": str(CLIENT_FILE.resolve()),
        "SHOP_DATA": str(Path("var/shop.sqlite3").resolve()),
    }
    shop = subprocess.Popen(
        [BIN / "granian", "--interface", "wsgi", "--factory", "--host", "127.0.0.1",
         "--port", "5001", "--log-level", "warning", "examples.shop.app:create_app"],
        env=shop_env,
    )  # fmt: skip
    try:
        _wait(IDP_URL + "/.well-known/openid-configuration", "provider", idp)
        _wait(SHOP_URL + "/", "shop", shop)
        print(
            f"""
demo: the provider is on {IDP_URL}, the Family Shop on {SHOP_URL}

  1. Open {SHOP_URL} and sign in: register a new account at the provider
     (the confirmation mail is a file in var/mail/), or use the demo account
     printed above. Buy something: one point per 100 JPY.
  2. Add a passkey at {IDP_URL}/account/passkeys, sign out of the shop and
     sign in again with Easy Login: the shop shows "passkey".
  3. In a second browser, choose "Sign in with a registered phone" and
     approve the QR code from the first: the shop shows the QR sign-in.
  4. At {IDP_URL}/account/sessions, sign out everywhere: the shop is
     signed out at its next page load (back-channel logout).
  5. Cancel the membership at {IDP_URL}/account/cancel: the shop forgets
     the points (a security event).

Ctrl-C stops both.""",
            flush=True,
        )
        while idp.poll() is None and shop.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for process in (shop, idp):
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in (shop, idp):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    main()
