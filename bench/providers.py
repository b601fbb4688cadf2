"""The two providers the benchmark measures, each on ``SERVER_CPU``.

* :class:`Ours` -- ``idp serve`` (granian, one worker, and the outbox
  worker beside it, as a deployment runs) in a scratch directory, on SQLite
  or on a PostgreSQL server that the caller started; rate limits off, as
  the load would otherwise be limited.
* :class:`Peer` -- node-oidc-provider (``bench/peer/``, pinned by its lock
  file), configured alike: RS256, PKCE, JWT access tokens for
  ``client_credentials``, rotating refresh tokens, argon2id passwords at the
  cost we ship, consent remembered, an unbounded in-memory store.

Both give the same accounts and clients and the same calls: the paths of
their discovery documents, and one sign-in (:meth:`Provider.sign_in`) that
the preparation uses for tokens and the sign-in scenario repeats."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

from bench.load import SERVER_CPU
from idp.config import PasswordSettings

__all__ = ["BenchError", "Ours", "Peer", "Provider", "free_port"]

HOST = "127.0.0.1"
PEER_DIR = Path(__file__).parent / "peer"
PASSWORD = "load-test passphrase 7"  # noqa: S105 - a throw-away account in a scratch database
USERNAME = "benchuser"
REDIRECT_URI = "http://127.0.0.1:9/cb"
TIMEOUT = 120
"""Per request: 64 sign-ins at once queue for tens of seconds behind their argon2 hashes."""


class BenchError(Exception):
    """The benchmark cannot go on (a provider did not start, a check failed)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class Provider:
    """What a scenario needs of a running provider."""

    name: str
    port: int
    groups: set[int] = field(default_factory=set)
    """Process groups whose CPU time is the provider's."""
    admin: tuple[str, str] = ("", "")
    web: tuple[str, str] = ("", "")
    admin_scope: str = ""
    paths: dict[str, str] = field(default_factory=dict)
    session_cookies: tuple[str, ...] = ()
    """Cookies a new sign-in starts without (a device cookie stays)."""
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def issuer(self) -> str:
        return f"http://localhost:{self.port}"

    def local(self, location: str) -> str:
        """A redirect on the provider, as a path (it says localhost, we use 127.0.0.1)."""
        for origin in (self.issuer, self.base):
            if location.startswith(origin + "/"):
                return location[len(origin) :]
        if location.startswith("/"):
            return location
        raise BenchError(f"{self.name}: unexpected redirect off the provider: {location}")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise BenchError(f"{self.name} exited: {self.log_tail()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.base + self.paths["discovery"], timeout=2).ok:
                    return
            time.sleep(0.2)
        raise BenchError(f"{self.name} did not answer within 60 s: {self.log_tail()}")

    def log_tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        return self.log_path.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    # --- one sign-in, as a person's browser and the relying service do it ----------------

    def _authorize_query(self, challenge: str, scope: str) -> str:
        return urlencode(
            {
                "response_type": "code",
                "client_id": self.web[0],
                "redirect_uri": REDIRECT_URI,
                "scope": scope,
                "state": "bench",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )

    def sign_in(
        self, http: requests.Session, scope: str = "openid profile email"
    ) -> dict[str, Any]:
        """A whole sign-in: the tokens the relying service gets.  Raises
        BenchError on any answer that is not what a working provider says."""
        for name in self.session_cookies:
            http.cookies.pop(name, None)
        verifier, challenge = pkce()
        location = self._sign_in_steps(http, self._authorize_query(challenge, scope))
        params = parse_qs(urlsplit(location).query)
        if params.get("state") != ["bench"] or "code" not in params:
            raise BenchError(f"{self.name}: back to the client without a code: {location}")
        reply = http.post(
            self.base + self.paths["token"],
            data={
                "grant_type": "authorization_code",
                "code": params["code"][0],
                "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier,
            },
            headers={"Authorization": basic(*self.web)},
            timeout=TIMEOUT,
        )
        if reply.status_code != 200 or "refresh_token" not in reply.text:
            raise BenchError(f"{self.name}: code exchange {reply.status_code}: {reply.text[:200]}")
        tokens: dict[str, Any] = reply.json()
        return tokens

    def _sign_in_steps(self, http: requests.Session, query: str) -> str:
        raise NotImplementedError

    def _follow(self, http: requests.Session, reply: requests.Response, step: str) -> str:
        """Follow the provider's redirects to the client's redirect URI."""
        for _ in range(6):
            if reply.status_code not in (302, 303):
                raise BenchError(f"{self.name}: {step}: {reply.status_code} {reply.text[:200]}")
            location = reply.headers["Location"]
            if location.startswith(REDIRECT_URI):
                return location
            reply = http.get(
                self.base + self.local(location), allow_redirects=False, timeout=TIMEOUT
            )
        raise BenchError(f"{self.name}: {step}: too many redirects")


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Ours(Provider):
    def __init__(
        self,
        workdir: Path,
        database_url: str,
        threads: int | None = None,
        algorithm: str = "RS256",
    ) -> None:
        super().__init__(
            name="idp",
            port=free_port(),
            admin_scope="admin",
            paths={
                "discovery": "/.well-known/openid-configuration",
                "jwks": "/jwks.json",
                "token": "/token",
                "introspect": "/introspect",
                "userinfo": "/userinfo",
                "authorize": "/authorize",
            },
            session_cookies=("idp_session",),
        )
        self.workdir = workdir
        self.database_url = database_url
        self.threads = threads
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
        self.env.update(
            IDP_SERVER_ISSUER=self.issuer,
            IDP_DATABASE_URL=database_url,
            IDP_KEYS_DIR=str(workdir / "keys"),
            IDP_MAIL_FILE_DIR=str(workdir / "mail"),
            IDP_RATELIMIT_ENABLED="false",
            IDP_KEYS_ALGORITHM=algorithm,
        )
        self.idp = str(Path(sys.executable).parent / "idp")

    def cli(self, *args: str, stdin: str = "") -> dict[str, Any]:
        done = subprocess.run(
            [self.idp, *args, "--json"],
            cwd=self.workdir,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise BenchError(f"idp {' '.join(args)}: {done.stderr.strip()}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return result

    def start(self) -> None:
        self.cli("init")
        admin = self.cli(
            "clients", "create", "--name", "bench-admin", "--redirect-uri", REDIRECT_URI,
            "--grant-type", "client_credentials", "--scope", "admin", "--admin",
        )  # fmt: skip
        self.admin = (admin["client_id"], admin["client_secret"])
        web = self.cli("clients", "create", "--name", "bench-shop", "--redirect-uri", REDIRECT_URI)
        self.web = (web["client_id"], web["client_secret"])
        self.cli(
            "users", "create", "--username", USERNAME, "--email", "bench@example.com",
            "--password-stdin", stdin=PASSWORD + "\n",
        )  # fmt: skip
        self.log_path = self.workdir / "server.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                ["taskset", "-c", str(SERVER_CPU), self.idp, "serve",
                 "--host", HOST, "--port", str(self.port),
                 *(["--threads", str(self.threads)] if self.threads else [])],
                cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.groups = {self.process.pid}
        self.wait_ready()
        # Consent, once: every later sign-in finds it remembered.
        http = requests.Session()
        _, challenge = pkce()
        location = self._sign_in_steps(
            http, self._authorize_query(challenge, "openid profile email"), consent=True
        )
        if "code=" not in location:
            raise BenchError(f"idp: the first sign-in ended at {location}")

    def _sign_in_steps(self, http: requests.Session, query: str, *, consent: bool = False) -> str:
        reply = http.get(self.base + "/authorize?" + query, allow_redirects=False, timeout=TIMEOUT)
        location = reply.headers.get("Location", "")
        if reply.status_code != 303 or "/login?interaction=" not in location:
            raise BenchError(f"idp: GET /authorize: {reply.status_code} {location}")
        page = http.get(self.base + self.local(location), allow_redirects=False, timeout=TIMEOUT)
        token = _CSRF.search(page.text)
        if page.status_code != 200 or token is None:
            raise BenchError(f"idp: GET /login: {page.status_code}")
        uid = parse_qs(urlsplit(location).query)["interaction"][0]
        reply = http.post(
            self.base + "/login",
            data={
                "csrf_token": token.group(1),
                "interaction": uid,
                "username": USERNAME,
                "password": PASSWORD,
            },
            allow_redirects=False,
            timeout=TIMEOUT,
        )
        if consent:
            location = reply.headers.get("Location", "")
            page = http.get(self.base + self.local(location), timeout=TIMEOUT)
            token = _CSRF.search(page.text)
            if token is None:
                raise BenchError(f"idp: no consent page: {page.status_code}")
            reply = http.post(
                self.base + "/consent",
                data={"csrf_token": token.group(1), "interaction": uid, "decision": "allow"},
                allow_redirects=False,
                timeout=TIMEOUT,
            )
        return self._follow(http, reply, "POST /login")


def _shipped_password_cost() -> dict[str, int]:
    """The argon2id cost this project ships, for the peer's password check:
    the sign-in's hash counts on both sides, at the same cost."""
    shipped = PasswordSettings()
    return {
        "timeCost": shipped.hash_iterations,
        "memoryCost": shipped.hash_memory_kib,
        "parallelism": shipped.hash_parallelism,
    }


class Peer(Provider):
    def __init__(self, workdir: Path, algorithm: str = "RS256") -> None:
        super().__init__(
            name="oidc-provider",
            port=free_port(),
            admin_scope="api",
            paths={
                "discovery": "/.well-known/openid-configuration",
                "jwks": "/jwks",
                "token": "/token",
                "introspect": "/token/introspection",
                "userinfo": "/me",
                "authorize": "/auth",
            },
            session_cookies=("_session", "_session.sig", "_session.legacy", "_session.legacy.sig"),
        )
        self.workdir = workdir
        self.algorithm = algorithm
        self.admin = ("bench-admin", secrets.token_urlsafe(32))
        self.web = ("bench-shop", secrets.token_urlsafe(32))

    def start(self) -> None:
        if not (PEER_DIR / "node_modules").is_dir():
            subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=PEER_DIR,
                check=True,
            )
        setup = self.workdir / "peer-setup.json"
        setup.write_text(
            json.dumps(
                {
                    "algorithm": self.algorithm,
                    "password_cost": _shipped_password_cost(),
                    "admin": {"client_id": self.admin[0], "client_secret": self.admin[1]},
                    "web": {
                        "client_id": self.web[0],
                        "client_secret": self.web[1],
                        "redirect_uri": REDIRECT_URI,
                    },
                    "member": {
                        "sub": "bench-member",
                        "username": USERNAME,
                        "password": PASSWORD,
                        "email": "bench@example.com",
                        "name": "Bench Member",
                    },
                }
            )
        )
        self.log_path = self.workdir / "peer.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                ["taskset", "-c", str(SERVER_CPU), "node", "provider.mjs",
                 str(self.port), self.issuer, str(setup)],
                cwd=PEER_DIR, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "NODE_ENV": "production"},
            )  # fmt: skip
        self.groups = {self.process.pid}
        self.wait_ready()

    def _sign_in_steps(self, http: requests.Session, query: str) -> str:
        reply = http.get(self.base + "/auth?" + query, allow_redirects=False, timeout=TIMEOUT)
        location = reply.headers.get("Location", "")
        if reply.status_code != 303 or "/interaction/" not in location:
            raise BenchError(f"oidc-provider: GET /auth: {reply.status_code} {location}")
        path = self.local(location)
        page = http.get(self.base + path, allow_redirects=False, timeout=TIMEOUT)
        if page.status_code != 200 or 'id="login-form"' not in page.text:
            raise BenchError(f"oidc-provider: GET {path}: {page.status_code}")
        reply = http.post(
            self.base + path + "/login",
            data={"username": USERNAME, "password": PASSWORD},
            allow_redirects=False,
            timeout=TIMEOUT,
        )
        return self._follow(http, reply, "POST /login")
