"""Throw-away PostgreSQL and Redis servers for the test run.

Each server listens only on 127.0.0.1 at a free port, keeps all of its state
(data, sockets, log) in a private temporary directory, and is stopped and
removed again when its context manager exits::

    with PostgresCluster() as pg, RedisServer() as redis:
        ...  # use pg.url / redis.url

Only the standard library is used. Missing binaries are installed by
``scripts/install-test-deps``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from tests.support.ports import free_port

__all__ = ["PostgresCluster", "RedisServer"]

_HOST = "127.0.0.1"
_LOG_TAIL_LINES = 20
_PG_LIB_DIR = Path("/usr/lib/postgresql")
_PG_USER = "idp"
_PG_DATABASE = "idp_test"
_PG_SYSTEM_USER = "postgres"
_PG_START_TIMEOUT = 30.0
_REDIS_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 15.0
_INSTALL_HINT = "run scripts/install-test-deps"
_DB_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def _log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"<log {path} unreadable: {exc}>"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else "<log empty>"


def _clean_env() -> dict[str, str]:
    """Environment for child processes without libpq/psql variables that could
    redirect client tools to some other server."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PG") and key != "PSQLRC"
    }


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.name)) or (-1,)


def _find_pg_bindir() -> Path:
    required = ("initdb", "postgres", "pg_ctl", "pg_isready", "psql")
    candidates = sorted(
        (d / "bin" for d in _PG_LIB_DIR.glob("*") if (d / "bin").is_dir()),
        key=lambda bindir: _version_key(bindir.parent),
        reverse=True,
    )
    for bindir in candidates:
        if all(os.access(bindir / name, os.X_OK) for name in required):
            return bindir
    raise RuntimeError(
        f"PostgreSQL server binaries not found under {_PG_LIB_DIR}/<version>/bin; {_INSTALL_HINT}"
    )


def _as_user_prefix(user: str) -> list[str]:
    """Command prefix running a program as ``user`` (we are root here)."""
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", user, "--"]
    setpriv = shutil.which("setpriv")
    if setpriv:
        return [setpriv, f"--reuid={user}", f"--regid={user}", "--init-groups", "--"]
    raise RuntimeError("neither runuser nor setpriv found; cannot drop root")


def _wrap_as_user(user: str | None, argv: Sequence[str]) -> list[str]:
    if user is None:
        return list(argv)
    try:
        return [*_as_user_prefix(user), *argv]
    except RuntimeError:
        su = shutil.which("su")
        if su is None:
            raise
        return [su, "-s", "/bin/sh", user, "-c", shlex.join(argv)]


def _remove_in_the_background(directory: Path) -> None:
    """Remove ``directory`` without waiting for it.

    A test cluster's data directory holds a database for each in-process
    app of the run (some 200, tens of thousands of files): removing it took
    11-15 s at the end of every PostgreSQL run, the suite's longer one.
    Nothing reads it once the server has stopped.  The shell puts ``rm`` in
    the background and exits at once: no child of ours is left to reap."""
    subprocess.run(
        ["sh", "-c", 'rm -rf -- "$0" &', str(directory)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        check=False,
    )


class PostgresCluster:
    """A private PostgreSQL cluster on 127.0.0.1 with database ``idp_test``.

    The role ``idp`` is the superuser and authentication is ``trust``.
    When running as root, the server runs as the Debian ``postgres`` system
    user, because PostgreSQL refuses to run as root.
    """

    def __init__(self, *, durable: bool = False, cpu: int | None = None) -> None:
        """``durable``: fsync and synchronous commits as in production (the
        tests turn them off for speed; the benchmark keeps them).  ``cpu``:
        pin the server's processes to this CPU."""
        self._durable = durable
        self._cpu = cpu
        self._tmpdir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._port: int | None = None
        self._run_as: str | None = None
        self._bindir: Path | None = None

    # -- public API ---------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("PostgresCluster is not running")
        return self._port

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the ``idp_test`` database."""
        return self._url_for(_PG_DATABASE)

    @property
    def log_path(self) -> Path:
        return self._dir / "postgres.log"

    @property
    def process_group(self) -> int:
        """The server's process group (every backend is in it)."""
        if self._proc is None:
            raise RuntimeError("PostgresCluster is not running")
        return self._proc.pid

    def pause(self) -> None:
        """Stop every process of the server (SIGSTOP), connections left open:
        the kernel still acknowledges, nothing answers -- a paused VM, hung
        storage.  Each backend is in a session of its own (PostgreSQL calls
        ``setsid``), so the process group alone would miss them.  Listed
        again until no new one appeared (one forked while stopping)."""
        stopped: set[int] = set()
        while new := [pid for pid in self._server_pids() if pid not in stopped]:
            for pid in new:
                with contextlib.suppress(ProcessLookupError):  # exited meanwhile
                    os.kill(pid, signal.SIGSTOP)
                stopped.add(pid)

    def resume(self) -> None:
        for pid in self._server_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def _server_pids(self) -> list[int]:
        """The started process and its descendants, parents first."""
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rpartition(")")[2].split()
            except OSError:  # gone meanwhile
                continue
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        found, queue = [], [self.process_group]
        while queue:
            pid = queue.pop(0)
            found.append(pid)
            queue.extend(children.get(pid, []))
        return found

    def create_database(self, name: str, *, template: str | None = None) -> str:
        """Create database ``name`` (a plain SQL identifier), empty or as a
        copy of database ``template`` (which nobody may be connected to);
        return its URL."""
        for identifier in (name, template or name):
            if not _DB_NAME_RE.fullmatch(identifier):
                raise ValueError(f"invalid database name: {identifier!r}")
        if template is None:
            self._psql(f'CREATE DATABASE "{name}"')
        else:  # a file copy: the default (WAL_LOG) writes every page through the WAL
            self._psql(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
        return self._url_for(name)

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
            raise RuntimeError("PostgresCluster is not running")
        return self._tmpdir

    @property
    def _data_dir(self) -> Path:
        return self._dir / "data"

    @property
    def _socket_dir(self) -> Path:
        return self._dir / "sock"

    def _url_for(self, database: str) -> str:
        return f"postgresql+psycopg://{_PG_USER}@{_HOST}:{self.port}/{database}"

    def _bin(self, name: str) -> str:
        if self._bindir is None:
            raise RuntimeError("PostgresCluster is not running")
        return str(self._bindir / name)

    def _start(self) -> None:
        if self._tmpdir is not None:
            raise RuntimeError("PostgresCluster is already running")
        self._bindir = _find_pg_bindir()
        self._tmpdir = Path(tempfile.mkdtemp(prefix="idp-test-pg-"))
        self._socket_dir.mkdir()
        self._log = self.log_path.open("ab")
        if os.geteuid() == 0:
            self._prepare_for_system_user()

        self._run_logged(
            [
                self._bin("initdb"),
                "-D",
                str(self._data_dir),
                "-U",
                _PG_USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            what="initdb",
        )

        self._port = free_port()
        argv = [
            self._bin("postgres"),
            "-D",
            str(self._data_dir),
            "-p",
            str(self._port),
            "-c",
            f"listen_addresses={_HOST}",
            "-c",
            f"unix_socket_directories={self._socket_dir}",
        ]
        if not self._durable:
            argv += ["-c", "fsync=off", "-c", "synchronous_commit=off"]
            argv += ["-c", "full_page_writes=off"]
        wrapped = _wrap_as_user(self._run_as, argv)
        if self._cpu is not None:
            wrapped = ["taskset", "-c", str(self._cpu), *wrapped]
        # Own session: a Ctrl-C on the test runner must not race __exit__.
        self._proc = subprocess.Popen(  # S603 ok: fixed argv, our own binaries
            wrapped,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self._dir,
            env=_clean_env(),
            start_new_session=True,
        )
        self._wait_until_ready()
        self._psql(f'CREATE DATABASE "{_PG_DATABASE}"')

    def _prepare_for_system_user(self) -> None:
        try:
            entry = pwd.getpwnam(_PG_SYSTEM_USER)
        except KeyError:
            raise RuntimeError(
                f"running as root but there is no '{_PG_SYSTEM_USER}' system user "
                f"to run PostgreSQL as; {_INSTALL_HINT}"
            ) from None
        self._run_as = _PG_SYSTEM_USER
        for path in (self._dir, self._socket_dir, self.log_path):
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _run_logged(self, argv: list[str], *, what: str) -> None:
        """Run a server-side tool (as the server user), output to the log."""
        result = subprocess.run(  # S603 ok: fixed argv, our own binaries
            _wrap_as_user(self._run_as, argv),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self._dir,
            env=_clean_env(),
            check=False,
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(self._failure(f"{what} failed (exit {result.returncode})"))

    def _client(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a client tool over TCP. Clients do not mind running as root."""
        return subprocess.run(  # S603 ok: fixed argv, our own binaries
            [
                self._bin(tool),
                "-h",
                _HOST,
                "-p",
                str(self.port),
                "-U",
                _PG_USER,
                *args,
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            cwd=self._dir,
            env={**_clean_env(), "PGCONNECT_TIMEOUT": "5"},
            check=False,
            timeout=60,
        )

    def _psql(self, sql: str) -> None:
        result = self._client(
            "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-c", sql
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"psql {sql!r} failed (exit {result.returncode}): {result.stderr.strip()}"
            )

    def _wait_until_ready(self) -> None:
        proc = self._proc
        if proc is None:
            raise RuntimeError("postgres was not started")
        deadline = time.monotonic() + _PG_START_TIMEOUT
        while True:
            code = proc.poll()
            if code is not None:
                raise RuntimeError(self._failure(f"postgres exited with {code}"))
            if self._client("pg_isready", "-d", "postgres", "-q").returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    self._failure(
                        f"postgres not ready after {_PG_START_TIMEOUT:.0f}s on port {self._port}"
                    )
                )
            time.sleep(0.1)

    def _failure(self, message: str) -> str:
        if self._log is not None:
            self._log.flush()
        tail = _log_tail(self.log_path)
        return f"{message}; last log lines ({self.log_path}):\n{tail}"

    def _postmaster_pid(self) -> int | None:
        try:
            first = (self._data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
            return int(first)
        except (OSError, ValueError):
            return None

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            # Signal the postmaster itself: with runuser/su, ``proc`` is only the
            # wrapper, which would turn signals into SIGTERM plus a late SIGKILL.
            # SIGQUIT is PostgreSQL's "immediate" shutdown; the data is thrown
            # away anyway.
            pid = self._postmaster_pid()
            with contextlib.suppress(ProcessLookupError):
                if pid is not None:
                    os.kill(pid, signal.SIGQUIT)
                elif proc.poll() is None:
                    proc.send_signal(signal.SIGQUIT)
            try:
                proc.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    if pid is not None:
                        os.kill(pid, signal.SIGKILL)
                proc.kill()
                proc.wait(timeout=_STOP_TIMEOUT)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._tmpdir is not None:
            _remove_in_the_background(self._tmpdir)
            self._tmpdir = None
        self._port = None
        self._run_as = None


class RedisServer:
    """A private ``redis-server`` on 127.0.0.1 without persistence."""

    def __init__(self, *, durable: bool = False, cpu: int | None = None) -> None:
        """``durable``: fsync and synchronous commits as in production (the
        tests turn them off for speed; the benchmark keeps them).  ``cpu``:
        pin the server's processes to this CPU."""
        self._durable = durable
        self._cpu = cpu
        self._tmpdir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("RedisServer is not running")
        return self._port

    @property
    def url(self) -> str:
        return f"redis://{_HOST}:{self.port}/0"

    def pause(self) -> None:
        """Stop answering, connections left open (SIGSTOP): as behind a dead
        network path, where a client waits rather than being refused."""
        if self._proc is None:
            raise RuntimeError("RedisServer is not running")
        self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._proc is None:
            raise RuntimeError("RedisServer is not running")
        self._proc.send_signal(signal.SIGCONT)

    @property
    def log_path(self) -> Path:
        if self._tmpdir is None:
            raise RuntimeError("RedisServer is not running")
        return self._tmpdir / "redis.log"

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

    def _start(self) -> None:
        if self._tmpdir is not None:
            raise RuntimeError("RedisServer is already running")
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(f"redis-server not found; {_INSTALL_HINT}")
        self._tmpdir = Path(tempfile.mkdtemp(prefix="idp-test-redis-"))
        self._log = self.log_path.open("ab")
        self._port = free_port()
        argv = [
            binary,
            "--port",
            str(self._port),
            "--bind",
            _HOST,
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            str(self._tmpdir),
        ]
        self._proc = subprocess.Popen(  # S603 ok: fixed argv, binary from PATH
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self._tmpdir,
            start_new_session=True,
        )
        self._wait_until_ready(self._proc)

    def _wait_until_ready(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + _REDIS_START_TIMEOUT
        while True:
            code = proc.poll()
            if code is not None:
                raise RuntimeError(self._failure(f"redis-server exited with {code}"))
            if self._ping():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    self._failure(
                        f"redis-server not answering PING after "
                        f"{_REDIS_START_TIMEOUT:.0f}s on port {self._port}"
                    )
                )
            time.sleep(0.05)

    def _ping(self) -> bool:
        try:
            with socket.create_connection((_HOST, self.port), timeout=1.0) as sock:
                sock.sendall(b"*1\r\n$4\r\nPING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def _failure(self, message: str) -> str:
        if self._log is not None:
            self._log.flush()
        tail = _log_tail(self.log_path)
        return f"{message}; last log lines ({self.log_path}):\n{tail}"

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=_STOP_TIMEOUT)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
        self._port = None
