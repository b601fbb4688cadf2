"""Apache httpd with mod_auth_openidc: a real web-server relying party.

Many services sign people in not with a library of their own but with the
web server in front of them; on Debian that is ``libapache2-mod-auth-openidc``.
It discovers the provider, sends the browser to the authorization endpoint
with PKCE, redeems the code with its client secret, keeps the tokens in a
server-side session and refreshes them on its own schedule, in whichever
worker thread a request lands.  ``ApacheRelyingParty`` runs one such server
from ``tests/interop/apache/httpd.conf.template``::

    port = free_port()
    client = live_idp.create_client(redirect_uris=[redirect_uri_for(port)])
    with ApacheRelyingParty(
        issuer=live_idp.url,
        client_id=client.client.client_id,
        client_secret=client.client_secret,
        port=port,
    ) as rp:
        ...  # rp.protected_url is behind the IdP's sign-in

The server is ``/usr/sbin/apache2 -f <conf> -DFOREGROUND`` with its own
ServerRoot, pid file, logs and mutexes in a private temporary directory,
listening on 127.0.0.1 only.  Started as root it serves as ``www-data`` (or
``nobody``), as a packaged Apache would.  ``scripts/install-test-deps``
installs the packages.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from string import Template
from types import TracebackType
from typing import IO, Self

import requests

from tests.support.ports import free_port

__all__ = ["PAGE_TEXT", "ApacheRelyingParty", "redirect_uri_for"]

APACHE = Path("/usr/sbin/apache2")
MODULES = Path("/usr/lib/apache2/modules")
TEMPLATE = Path(__file__).resolve().parents[1] / "interop" / "apache" / "httpd.conf.template"
PROTECTED_PAGE = "protected/page"
PAGE_TEXT = "signed in\n"  # what the protected page says
_START_TIMEOUT = 20.0
_STOP_TIMEOUT = 10.0
_LOG_TAIL_LINES = 40
_RUN_AS = (("www-data", "www-data"), ("nobody", "nogroup"))
_INSTALL_HINT = (
    "Apache httpd and mod_auth_openidc are required: run scripts/install-test-deps "
    "(`make test` does) to install apache2 and libapache2-mod-auth-openidc"
)


def redirect_uri_for(port: int) -> str:
    """The redirect URI Apache on ``port`` registers (a loopback ``http`` URI)."""
    return f"http://localhost:{port}/protected/redirect_uri"


def _log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"<{path.name} unreadable: {exc}>"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else f"<{path.name} empty>"


def _unprivileged_account() -> tuple[str, str, int, int]:
    for user, group in _RUN_AS:
        try:
            uid = pwd.getpwnam(user).pw_uid
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            continue
        return user, group, uid, gid
    raise RuntimeError("running as root, but there is no www-data or nobody user to serve as")


class ApacheRelyingParty:
    """A running Apache httpd protecting ``/protected`` with mod_auth_openidc.

    ``refresh_before_expiry_seconds`` sets ``OIDCRefreshAccessTokenBeforeExpiry``
    (with ``logout_on_error``); longer than the IdP's access-token life, it
    makes every authenticated request refresh the tokens first.
    ``oidc_log_level`` is the module's LogLevel (``debug`` logs each call it
    makes to the provider)."""

    def __init__(
        self,
        *,
        issuer: str,
        client_id: str,
        client_secret: str,
        port: int | None = None,
        refresh_before_expiry_seconds: int | None = None,
        oidc_log_level: str = "info",
    ) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self.client_secret = client_secret
        self.port = port or free_port()
        self.refresh_before_expiry_seconds = refresh_before_expiry_seconds
        self.oidc_log_level = oidc_log_level
        self._tmpdir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._console: IO[bytes] | None = None

    # -- public API ---------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    @property
    def redirect_uri(self) -> str:
        return redirect_uri_for(self.port)

    @property
    def protected_url(self) -> str:
        """A static page that only a signed-in person gets; its response
        headers echo the claims Apache hands the application."""
        return f"{self.url}/{PROTECTED_PAGE}"

    @property
    def info_url(self) -> str:
        """mod_auth_openidc's session info hook, as JSON."""
        return f"{self.redirect_uri}?info=json"

    @property
    def error_log_path(self) -> Path:
        return self._dir / "logs" / "error.log"

    @property
    def access_log_path(self) -> Path:
        return self._dir / "logs" / "access.log"

    def error_log(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The tail of Apache's error log (and of what it printed before opening it)."""
        console = _log_tail(self._dir / "logs" / "console.log", lines)
        return f"{_log_tail(self.error_log_path, lines)}\n--- console ---\n{console}"

    def __enter__(self) -> Self:
        try:
            self._start()
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    # -- internals ----------------------------------------------------------

    @property
    def _dir(self) -> Path:
        if self._tmpdir is None:
            raise RuntimeError("ApacheRelyingParty is not running")
        return self._tmpdir

    def _start(self) -> None:
        if self._tmpdir is not None:
            raise RuntimeError("ApacheRelyingParty is already running")
        if not os.access(APACHE, os.X_OK) or not (MODULES / "mod_auth_openidc.so").is_file():
            raise RuntimeError(
                f"{APACHE} or {MODULES}/mod_auth_openidc.so missing; {_INSTALL_HINT}"
            )
        self._tmpdir = Path(tempfile.mkdtemp(prefix="idp-test-apache-"))
        for sub in ("logs", "run", "htdocs/protected"):
            (self._dir / sub).mkdir(parents=True)
        (self._dir / "htdocs" / PROTECTED_PAGE).write_text(PAGE_TEXT)
        conf = self._dir / "httpd.conf"
        conf.write_text(self._config())
        self._console = (self._dir / "logs" / "console.log").open("ab")
        self._proc = subprocess.Popen(  # fixed argv, Debian's binary
            [str(APACHE), "-d", str(self._dir), "-f", str(conf), "-DFOREGROUND"],
            stdin=subprocess.DEVNULL,
            stdout=self._console,
            stderr=subprocess.STDOUT,
            cwd=self._dir,
            env={"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LANG": "C"},
            start_new_session=True,
        )
        self._wait_until_ready(self._proc)

    def _config(self) -> str:
        user_directives = ""
        if os.geteuid() == 0:
            user, group, uid, gid = _unprivileged_account()
            user_directives = f"User {user}\nGroup {group}"
            self._hand_runtime_dirs_to(uid, gid)
        refresh = ""
        if self.refresh_before_expiry_seconds is not None:
            refresh = (
                f"OIDCRefreshAccessTokenBeforeExpiry {self.refresh_before_expiry_seconds} "
                "logout_on_error"
            )
        return Template(TEMPLATE.read_text()).substitute(
            root=self._dir,
            port=self.port,
            issuer=self.issuer,
            client_id=self.client_id,
            client_secret=self.client_secret,
            passphrase=secrets.token_urlsafe(32),
            oidc_log_level=self.oidc_log_level,
            user_directives=user_directives,
            refresh_directive=refresh,
        )

    def _hand_runtime_dirs_to(self, uid: int, gid: int) -> None:
        """Children serve as ``uid``: they must reach the tree, read the pages
        and write the run directory (mutex files, scoreboard)."""
        self._dir.chmod(0o755)
        for path in (self._dir / "htdocs", self._dir / "htdocs" / "protected"):
            path.chmod(0o755)
        run = self._dir / "run"
        os.chown(run, uid, gid)
        run.chmod(0o750)
        for ancestor in self._dir.parents:
            if not ancestor.stat().st_mode & stat.S_IXOTH:
                raise RuntimeError(
                    f"{ancestor} is not searchable by others; Apache's workers (uid {uid}) "
                    f"could not reach {self._dir}"
                )
        info = run.stat()
        if info.st_uid != uid or not info.st_mode & stat.S_IWUSR:
            raise RuntimeError(f"{run} is not writable by uid {uid}")

    def _wait_until_ready(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            code = proc.poll()
            if code is not None:
                raise RuntimeError(self._failure(f"apache2 exited with {code}"))
            with contextlib.suppress(requests.RequestException):
                # Any HTTP answer will do: the page itself is behind sign-in.
                requests.get(f"{self.url}/ready", timeout=1, allow_redirects=False)
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    self._failure(f"apache2 not answering after {_START_TIMEOUT:.0f} s")
                )
            time.sleep(0.05)

    def _failure(self, message: str) -> str:
        if self._console is not None:
            self._console.flush()
        return f"{message} on port {self.port}; Apache's logs ({self._dir / 'logs'}):\n" + (
            self.error_log()
        )

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            # SIGTERM to the parent: it stops its children and removes the pid file.
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=_STOP_TIMEOUT)
        if self._console is not None:
            self._console.close()
            self._console = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
