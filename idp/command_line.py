"""The ``idp`` command's grammar: every command and option, the types that
refuse a bad value before anything runs, and the one-line refusal they
print (``idp: error: ...``, exit status 2).  ``idp.cli`` runs what it parses."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

__all__ = ["build_parser", "fail", "refuse_undecodable"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"idp: error: {message} (see 'idp --help')\n")
        sys.exit(2)


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def _port(value: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number (1-65535)")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="idp", description="An OpenID Connect provider.")
    p.add_argument("--config", metavar="PATH", help="TOML configuration (default: IDP_CONFIG)")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    init = sub.add_parser("init", help="create or migrate the database and the first signing key")
    init.add_argument("--json", action="store_true")

    serve = sub.add_parser("serve", help="serve the provider (granian)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=5000)
    serve.add_argument("--no-worker", action="store_true", help="do not deliver the outbox here")
    serve.add_argument("--debug", action="store_true", help="Werkzeug's reloading dev server")
    serve.add_argument("--workers", type=int, default=1, help="granian worker processes")
    serve.add_argument(
        "--threads",
        type=int,
        default=max(2, 2 * (os.cpu_count() or 1)),
        help="request threads per worker (default: twice the CPUs)",
    )

    users = sub.add_parser("users", help="member accounts").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    uc = users.add_parser("create")
    uc.add_argument("--username", required=True)
    uc.add_argument("--email", required=True)
    uc.add_argument("--password-stdin", action="store_true", required=True)
    uc.add_argument("--name", default="")
    uc.add_argument("--birthdate", type=_date)
    uc.add_argument("--gender")
    uc.add_argument("--admin", action="store_true")
    uc.add_argument("--json", action="store_true")
    for action in ("show", "disable", "enable", "delete", "grant-admin", "revoke-admin"):
        a = users.add_parser(action)
        a.add_argument("user", metavar="U", help="the sub or the username")
        a.add_argument("--json", action="store_true")

    clients = sub.add_parser("clients", help="relying parties").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    cc = clients.add_parser("create")
    cc.add_argument("--name", required=True)
    cc.add_argument("--redirect-uri", action="append", default=[], metavar="URI")
    cc.add_argument("--public", action="store_true")
    cc.add_argument("--scope")
    cc.add_argument("--grant-type", action="append", metavar="G")
    cc.add_argument("--post-logout-redirect-uri", action="append", default=[], metavar="URI")
    cc.add_argument("--backchannel-logout-uri", metavar="URI")
    cc.add_argument("--events-uri", metavar="URI")
    cc.add_argument("--admin", action="store_true")
    cc.add_argument("--no-stay-signed-in", action="store_true")
    cc.add_argument("--first-party", action="store_true", help="skip the consent page")
    cc.add_argument("--json", action="store_true")

    sessions = sub.add_parser("sessions", help="sign-in sessions").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    sl = sessions.add_parser("list")
    sl.add_argument("--user", required=True, metavar="U")
    sl.add_argument("--json", action="store_true")
    sr = sessions.add_parser("revoke", help="forced logout")
    target = sr.add_mutually_exclusive_group(required=True)
    target.add_argument("--user", metavar="U")
    target.add_argument("--session", metavar="SID")
    sr.add_argument("--reason", default="admin", choices=[r.value for r in _reasons()])
    sr.add_argument("--json", action="store_true")

    events = sub.add_parser("events", help="sign-in attempts and security events").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    el = events.add_parser("list")
    el.add_argument("--user", required=True, metavar="U")
    el.add_argument("--json", action="store_true")

    work = sub.add_parser("worker", help="deliver the outbox and purge expired rows until stopped")
    work.add_argument("--quiet", action="store_true", help="no start-up line")
    mail = sub.add_parser("mail", help="the outbox").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    flush = mail.add_parser("flush", help="deliver what waits in the outbox now")
    flush.add_argument("--json", action="store_true")

    keys = sub.add_parser("keys", help="signing keys").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    for action in ("list", "rotate"):
        k = keys.add_parser(action)
        k.add_argument("--json", action="store_true")
    return p


def _reasons() -> list[Any]:
    from idp.logout_reasons import LogoutReason

    return [
        LogoutReason.ADMIN,
        LogoutReason.SUSPICIOUS_ACTIVITY,
        LogoutReason.PASSWORD_RESET,
        LogoutReason.ACCOUNT_DISABLED,
    ]


def fail(message: str) -> NoReturn:
    sys.stderr.write(f"idp: error: {message}\n")
    sys.exit(2)


def refuse_undecodable(argv: Sequence[str]) -> None:
    """An argument that is not UTF-8 text is refused before anything reads it.

    Python hands such bytes on as lone surrogates, which no database driver
    or socket can encode: they ended as a traceback in the first query."""
    for arg in argv:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            fail(f"an argument is not UTF-8 text: {os.fsencode(arg)!r}")
