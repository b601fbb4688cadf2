"""``idp serve``: granian in front of the application, the outbox worker
beside it, and what the operator is told at start-up.

The command line (``idp.cli``) decides what to start; this module starts
it.  Production may equally run granian (or gunicorn) on ``idp:create_app``
itself and ``idp worker`` as a service of its own (README, "Production")."""

from __future__ import annotations

import sys
from typing import Any

from idp.config import Settings
from idp.errors import UsageError

__all__ = ["announce", "check_port_free", "serve", "start_worker_process"]


def serve(host: str, port: int, *, workers: int, threads: int) -> None:
    """The application under granian, HTTP/1.1, until stopped."""
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings

    Granian(
        "idp:create_app",
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.WSGI,
        workers=max(1, workers),
        blocking_threads=max(1, threads),
        # Connections each worker takes: granian's default (1,024 per worker).
        # A few times the threads, as before, let 16 idle keep-alive
        # connections starve every other client until they timed out.
        http=HTTPModes.http1,
        http1_settings=HTTP1Settings(max_buffer_size=64 * 1024 + 16 * 1024),
        log_access=False,
    ).serve()


def start_worker_process(config_path: str | None) -> None:
    """``idp worker`` beside the server, ended with it.

    A child process rather than a thread: granian forks its workers, and a
    thread holding a database connection across a fork is asking for a
    deadlock.  The child shares the process group, so a signal to the
    group (Ctrl-C, a service manager's stop) reaches both."""
    import atexit
    import subprocess

    argv = [sys.executable, "-m", "idp.cli"]
    if config_path:
        argv += ["--config", config_path]
    child = subprocess.Popen([*argv, "worker", "--quiet"])  # noqa: S603 - our own module
    atexit.register(child.terminate)


def check_port_free(host: str, port: int) -> None:
    """A clear message instead of granian's backtrace when the port is taken."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as e:
            raise UsageError(f"cannot listen on {host}:{port}: {e.strerror}") from None


def announce(settings: Settings, demo: Any) -> None:
    """What ``make run`` prints on the embedded defaults: where to sign in,
    the demo account and client (``demo``, None once it is gone), and where
    mail goes."""
    lines = [f"idp: serving {settings.server.issuer} (embedded defaults)"]
    if demo is not None:
        lines += [
            "",
            f"  Sign in at     {settings.url('/login')}",
            f"  Demo account   {demo.username} / {demo.password}",
            f"  Demo client    client_id={demo.client_id}",
            f"                 client_secret={demo.client_secret}",
            f"                 redirect_uri={demo.redirect_uri}",
            f"                 code_verifier={demo.code_verifier}",
            f"  Try the flow   {demo.authorize_url}",
            _mail_line(settings),
            "",
            "  (kept in var/demo.json; delete var/ to start afresh)",
        ]
    else:
        lines += ["", _mail_line(settings)]
    sys.stderr.write("\n".join(lines) + "\n")
    sys.stderr.flush()


def _mail_line(settings: Settings) -> str:
    """Where mail goes, so that a confirmation link can be found on a laptop."""
    mail = settings.mail
    if mail.backend == "file":
        where = f"written to {mail.file_dir.rstrip('/')}/ (one .eml file per message)"
    elif mail.backend == "smtp":
        where = f"sent through SMTP at {mail.smtp_host}:{mail.smtp_port}"
    else:
        where = "printed by the worker on standard output"
    return f"  Mail           {where}"
