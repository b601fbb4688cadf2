"""A live provider for end-to-end tests, and a browser that speaks HTTP.

``start_live_idp`` writes a TOML configuration, runs ``idp init`` and
``idp serve`` (granian) on a free loopback port and polls discovery until it
answers.  Test data (users, clients) is created through the services in an
app context on the same database and keys, as an operator's CLI would.

Time is the live server's own clock, moved by the test: ``idp.advance(days=31)``
writes the offset to the file the server (and its worker) follows through
``IDP_TEST_CLOCK_FILE``; the test's own service calls follow it too.

``Browser`` follows the provider's redirects and fills its forms (with the
CSRF token the page carries), like a person with cookies enabled would.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import os
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import requests

from idp import config
from idp.config import PasswordSettings, Settings
from tests.support.ports import free_port

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
IDP = str(Path(sys.executable).with_name("idp"))


@contextlib.contextmanager
def app_for(settings: Settings) -> Iterator[Any]:
    """An in-process app on ``settings`` (schema and keys created), in its context."""
    from idp import bootstrap, create_app
    from idp.db import db
    from idp.keys import keyring_for

    bootstrap.init(settings, keyring_for(settings))
    application = create_app(settings)
    with application.app_context():
        yield application
        db.session.remove()
        db.engine.dispose()


@dataclass(frozen=True)
class Backend:
    kind: str
    make_url: Callable[[str], str]
    """A fresh, empty database."""
    redis_url: str
    make_migrated_url: Callable[[str], str] | None = None
    """A fresh database already at this version's schema (:class:`MigratedCopies`);
    None: an empty one, which ``idp init`` migrates."""

    def migrated_url(self, name: str) -> str:
        return (self.make_migrated_url or self.make_url)(name)


class MigratedCopies:
    """Fresh databases at this version's schema, each a copy of one database
    migrated at first use.  Every in-process app (200 a run) had a database
    of its own taken through every migration, ~0.5 s each on PostgreSQL.
    Migrating from empty is still tested: ``test_migrations`` and every live
    provider's ``idp init`` start from an empty database, and the copies'
    ``idp init`` finds nothing to do."""

    TEMPLATE = "migrated_template"

    def __init__(self, make_url: Callable[[str], str], copy: Callable[[str, str], str]) -> None:
        """``copy(template, name)`` makes database ``name`` as a copy of
        database ``template`` and returns its URL."""
        self._make_url = make_url
        self._copy = copy
        self._migrated = False

    def __call__(self, name: str) -> str:
        if not self._migrated:
            from idp import schema

            schema.upgrade(self._make_url(self.TEMPLATE))  # disposes its connections
            self._migrated = True
        return self._copy(self.TEMPLATE, name)


def sqlite_files(root: Path) -> tuple[Callable[[str], str], Callable[[str, str], str]]:
    """New SQLite databases under ``root``: an empty one, and a copy of another
    (SQLite's online backup, whatever its write-ahead log still holds)."""

    def url(name: str) -> str:
        return f"sqlite:///{root / name}.sqlite3"

    def copy(template: str, name: str) -> str:
        source = sqlite3.connect(root / f"{template}.sqlite3")
        target = sqlite3.connect(root / f"{name}.sqlite3")
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
        return url(name)

    return url, copy


TEST_PASSWORD_COST = PasswordSettings(hash_memory_kib=7168, hash_iterations=5, hash_parallelism=1)
"""OWASP's least argon2id cost, which the settings allow: a hash takes ~26 ms
of a core here, the shipped cost ~280 ms (its four lanes are threads).  A run
hashes some 700 passwords per database; at the shipped cost that was a third
of the suite's CPU time.  The shipped cost is tested in ``test_passwords``."""


def make_settings(
    root: Path,
    *,
    database_url: str,
    redis_url: str = "",
    issuer: str,
    extra: str = "",
    database_options: str = "",
    smtp_port: int | None = None,
    trusted_proxies: int = 0,
    password_cost: PasswordSettings = TEST_PASSWORD_COST,
) -> Settings:
    """Write ``root/idp.toml`` and load it as the provider would.  Mail goes
    to files under ``root/mail``, or to an SMTP server on ``smtp_port``;
    ``database_options`` are more lines of ``[database]``; ``password_cost``
    is written as ``[passwords]``."""
    root.mkdir(parents=True, exist_ok=True)
    mail = (
        f'backend = "smtp"\nsmtp_host = "127.0.0.1"\nsmtp_port = {smtp_port}'
        if smtp_port
        else f'backend = "file"\nfile_dir = "{root / "mail"}"'
    )
    text = f"""
[server]
issuer = "{issuer}"
trusted_proxies = {trusted_proxies}

[database]
url = "{database_url}"
{database_options}

[redis]
url = "{redis_url}"

[keys]
dir = "{root / "keys"}"

[passwords]
hash_memory_kib = {password_cost.hash_memory_kib}
hash_iterations = {password_cost.hash_iterations}
hash_parallelism = {password_cost.hash_parallelism}

[mail]
{mail}

[ratelimit]
signin = "1000/minute"
token = "100000/minute"
{extra}
"""
    path = root / "idp.toml"
    path.write_text(text)
    return config.load(path, {})


@dataclass
class LiveIdp:
    url: str
    settings: Settings
    config_path: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    clock_path: Path
    _app: Any = field(default=None, repr=False)
    _offset_seconds: float = 0.0

    def advance(self, **delta: float) -> None:
        """Move the server's clock (and this test's service calls) forward."""
        from idp import clock

        self._offset_seconds += dt.timedelta(**delta).total_seconds()
        clock.set_offset_file(self.clock_path, self._offset_seconds)

    def reset_clock(self) -> None:
        from idp import clock

        self._offset_seconds = 0.0
        clock.set_offset_file(self.clock_path, 0.0)

    @property
    def app(self) -> Any:
        if self._app is None:
            from idp import create_app

            self._app = create_app(self.settings)
        return self._app

    @contextlib.contextmanager
    def services(self) -> Iterator[None]:
        """An app context on the server's database, keys and clock."""
        from idp import clock

        clock.follow_file(self.clock_path)
        try:
            with self.app.app_context():
                yield
        finally:
            clock.follow_file(None)

    def create_user(self, password: str = "correct horse 1", **kw: Any) -> Any:
        from idp import accounts

        suffix = secrets.token_hex(4)
        with self.services():
            return accounts.create(
                username=kw.pop("username", f"user{suffix}"),
                email=kw.pop("email", f"user{suffix}@example.com"),
                password=password,
                email_verified=True,
                **kw,
            )

    def create_client(self, **kw: Any) -> Any:
        from idp import clients

        kw.setdefault("name", "Test shop")
        kw.setdefault("redirect_uris", ["http://shop.localhost/cb/" + secrets.token_hex(4)])
        kw.setdefault("allow_private_uris", True)
        with self.services():
            return clients.create(**kw)

    def outbox(self, sid: str) -> list[tuple[int, bool, str | None]]:
        """(attempts, delivered, last error) of each logout queued for ``sid``."""
        import json

        from sqlalchemy import select

        from idp.db import db
        from idp.models import OutboxMessage

        with self.services():
            rows = db.session.execute(
                select(
                    OutboxMessage.payload,
                    OutboxMessage.attempts,
                    OutboxMessage.delivered_at,
                    OutboxMessage.last_error,
                )
            ).all()
        return [
            (attempts, delivered_at is not None, error)
            for payload, attempts, delivered_at, error in rows
            if json.loads(payload).get("sid") == sid
        ]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


@contextlib.contextmanager
def start_live_idp(
    root: Path,
    backend: Backend,
    *,
    name: str,
    extra_config: str = "",
    database_options: str = "",
    smtp_port: int | None = None,
    trusted_proxies: int = 0,
) -> Iterator[LiveIdp]:
    port = free_port()
    url = f"http://localhost:{port}"
    settings = make_settings(
        root,
        database_url=backend.make_url(name),
        redis_url=backend.redis_url,
        issuer=url,
        extra=extra_config,
        database_options=database_options,
        smtp_port=smtp_port,
        trusted_proxies=trusted_proxies,
    )
    config_path = root / "idp.toml"
    clock_path = root / "clock-offset"
    subprocess.run(
        [IDP, "--config", str(config_path), "init"],
        check=True,
        env=_server_env(clock_path),
        cwd=root,
        capture_output=True,
    )
    with _serve(root, settings, config_path, clock_path, port, log_name="server.log") as idp:
        yield idp


@contextlib.contextmanager
def start_second_node(first: LiveIdp) -> Iterator[LiveIdp]:
    """Another ``idp serve`` on the first one's configuration -- its database,
    Redis, keys and issuer -- on a port of its own, with its own outbox
    worker: two nodes behind one load balancer."""
    root = first.config_path.parent
    port = free_port()
    with _serve(
        root, first.settings, first.config_path, first.clock_path, port, log_name="node-b.log"
    ) as node:
        yield node


def _server_env(clock_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env["IDP_TEST_CLOCK_FILE"] = str(clock_path)
    return env


@contextlib.contextmanager
def _serve(
    root: Path,
    settings: Settings,
    config_path: Path,
    clock_path: Path,
    port: int,
    *,
    log_name: str,
) -> Iterator[LiveIdp]:
    url = f"http://localhost:{port}"
    log_path = root / log_name
    log = log_path.open("wb")
    process = subprocess.Popen(
        [
            IDP,
            "--config",
            str(config_path),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=_server_env(clock_path),
        cwd=root,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    idp = LiveIdp(
        url=url,
        settings=settings,
        config_path=config_path,
        process=process,
        log_path=log_path,
        clock_path=clock_path,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"idp serve exited: {idp.log()}")
            try:
                if requests.get(url + "/.well-known/openid-configuration", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"idp serve did not answer in 30 s: {idp.log()}")
            time.sleep(0.1)
        yield idp
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
        if idp._app is not None:
            from idp.db import db

            with idp.app.app_context():
                db.engine.dispose()


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    return verifier, challenge.decode()


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "page has no CSRF token"
    return match.group(1)


class Browser:
    """Cookies, redirects and forms, as a person's browser would."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = requests.Session()

    def get(self, url: str, **kw: Any) -> requests.Response:
        return self.http.get(urljoin(self.base, url), allow_redirects=False, timeout=10, **kw)

    def post(self, url: str, data: dict[str, str], **kw: Any) -> requests.Response:
        return self.http.post(
            urljoin(self.base, url), data=data, allow_redirects=False, timeout=10, **kw
        )

    def follow(
        self, response: requests.Response, *, stop_at: str | None = None
    ) -> requests.Response:
        """Follow redirects on the provider; stop at one leaving it (or ``stop_at``)."""
        for _ in range(10):
            if response.status_code not in (301, 302, 303, 307, 308):
                return response
            location = urljoin(response.url, response.headers["Location"])
            if stop_at and location.startswith(stop_at):
                return response
            if not location.startswith(self.base):
                return response
            response = self.get(location)
        raise AssertionError("redirect loop")

    def submit_login(
        self,
        page: requests.Response,
        username: str,
        password: str,
        *,
        remember: bool = False,
        **extra: str,
    ) -> requests.Response:
        """Fill and post the page's ``form#login-form``; the unfollowed reply."""
        assert 'id="login-form"' in page.text, page.text[:500]
        params = parse_qs(urlsplit(page.url).query)
        data = {"csrf_token": csrf_token(page.text), "username": username, "password": password}
        for name in ("interaction", "next"):
            if name in params:
                data[name] = params[name][0]
        if remember:
            data["remember"] = "on"
        data.update(extra)
        return self.post("/login", data)

    def sign_in(
        self, page: requests.Response, username: str, password: str, *, remember: bool = False
    ) -> requests.Response:
        return self.follow(self.submit_login(page, username, password, remember=remember))

    def consent(self, page: requests.Response, decision: str = "allow") -> requests.Response:
        assert 'id="consent-form"' in page.text, page.text[:500]
        interaction = parse_qs(urlsplit(page.url).query)["interaction"][0]
        return self.follow(
            self.post(
                "/consent",
                {
                    "csrf_token": csrf_token(page.text),
                    "interaction": interaction,
                    "decision": decision,
                },
            )
        )

    def authorize(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str = "correct horse 1",
        remember: bool = False,
        consent: str = "allow",
    ) -> requests.Response:
        """Open an authorization URL and do what the pages ask; returns the
        redirect that leaves the provider (or the page it stopped on)."""
        response = self.follow(self.get(url))
        for _ in range(3):
            if response.status_code in (302, 303):
                return response
            if 'id="login-form"' in response.text and username:
                response = self.sign_in(response, username, password, remember=remember)
            elif 'id="consent-form"' in response.text:
                response = self.consent(response, consent)
            else:
                return response
        return response


def authorization_url(idp: LiveIdp, client: Any, **params: str) -> str:
    query = {
        "response_type": "code",
        "client_id": client.client.client_id,
        "redirect_uri": client.client.redirect_uris[0],
        "scope": "openid profile email",
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
    }
    query.update(params)
    return idp.url + "/authorize?" + urlencode(query)


def callback_params(response: requests.Response) -> dict[str, str]:
    assert response.status_code in (302, 303), (response.status_code, response.text[:300])
    location = response.headers["Location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def eventually(
    fn: Callable[[], T],
    timeout: float = 10,
    interval: float = 0.05,
    *,
    detail: Callable[[], str] | None = None,
) -> T:
    """``fn()``'s first truthy value, polled until ``timeout`` seconds pass.

    For what happens on its own time (a delivery, another process): a test
    waits for the outcome, never for a guessed duration.  ``detail``: what
    the failure shows besides (a server's log), read when it fails."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            message = f"still {value!r} after {timeout} s"
            raise AssertionError(f"{message}; {detail()}" if detail else message)
        time.sleep(interval)
