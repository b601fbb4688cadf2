"""The ``idp`` command: thin, every action is a service call.

A bad argument or a refused action prints one line on stderr and exits 2;
``--json`` prints exactly one JSON object on stdout.  No traceback reaches
the operator for anything we can explain."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from idp import config
from idp.command_line import build_parser, fail, refuse_undecodable
from idp.config import Settings
from idp.errors import ConfigError, ConflictError, IdpError, NotFoundError, UsageError

__all__ = ["main"]


def _print(args: argparse.Namespace, obj: dict[str, Any], text: str) -> None:
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(obj, default=str) + "\n")
    else:
        sys.stdout.write(text + "\n")


@contextmanager
def _app(settings: Settings) -> Iterator[Any]:
    """The application, on this version's schema only: a command on a
    database without it (or behind it) says to run ``idp init``."""
    from idp import schema

    schema.check_current(settings.database)
    with _app_on_a_checked_schema(settings) as app:
        yield app


@contextmanager
def _app_on_a_checked_schema(settings: Settings) -> Iterator[Any]:
    """The application, its schema checked by the caller.  Making it asks
    nothing of the database."""
    from idp import create_app

    app = create_app(settings)
    with app.app_context():
        yield app


def cmd_init(args: argparse.Namespace, settings: Settings) -> None:
    from idp import bootstrap
    from idp.keys import keyring_for

    created = bootstrap.init(settings, keyring_for(settings))
    with _app(settings):
        sealed = bootstrap.seal_stored_secrets()
    _print(
        args,
        {"database": "ready", "key_created": created, "totp_seeds_sealed": sealed},
        "database ready"
        + ("; first signing key created" if created else "")
        + (f"; {sealed} TOTP seeds sealed under the data key" if sealed else ""),
    )


def cmd_serve(args: argparse.Namespace, settings: Settings) -> None:
    from idp import bootstrap, schema, serving
    from idp.keys import keyring_for

    serving.check_port_free(args.host, args.port)
    if settings.embedded_defaults:
        bootstrap.init(settings, keyring_for(settings))
        with _app(settings):
            demo = bootstrap.ensure_demo(settings)
        serving.announce(settings, demo)
    else:
        schema.check_current(settings.database)
    if not args.no_worker:
        serving.start_worker_process(args.config)
    if args.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker process counts for itself; /metrics sums their files.
        import tempfile

        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="idp-metrics-")
    if args.debug:
        from idp import create_app

        create_app(settings).run(host=args.host, port=args.port, debug=True, use_reloader=False)
        return
    serving.serve(args.host, args.port, workers=args.workers, threads=args.threads)


def _member_json(m: Any) -> dict[str, Any]:
    return {
        "id": m.id,
        "username": m.username,
        "email": m.email,
        "email_verified": m.email_verified,
        "name": m.name,
        "gender": m.gender,
        "birthdate": m.birthdate.isoformat() if m.birthdate else None,
        "admin": m.is_admin,
        "disabled": m.disabled,
        "created_at": m.created_at.isoformat(),
    }


def cmd_users(args: argparse.Namespace, settings: Settings) -> None:
    from idp import accounts, membership

    with _app(settings):
        if args.action == "create":
            password = _read_password()
            m = accounts.create(
                username=args.username,
                email=args.email,
                password=password,
                name=args.name,
                birthdate=args.birthdate,
                gender=args.gender,
                is_admin=args.admin,
                email_verified=True,
            )
            _print(
                args, {"id": m.id, "username": m.username}, f"created user {m.username} ({m.id})"
            )
        elif args.action == "show":
            m = accounts.find(args.user)
            data = _member_json(m)
            _print(args, data, "\n".join(f"{k}: {v}" for k, v in data.items()))
        elif args.action in ("disable", "enable"):
            disabled = args.action == "disable"
            m, ended = accounts.set_disabled(args.user, disabled)
            _print(
                args,
                {"id": m.id, "disabled": disabled, "sessions_ended": ended},
                f"{args.action}d {m.username}"
                + (f"; {ended} session(s) ended" if disabled else ""),
            )
        elif args.action in ("grant-admin", "revoke-admin"):
            m = accounts.set_admin(args.user, args.action == "grant-admin")
            _print(args, {"id": m.id, "admin": m.is_admin}, f"{m.username}: admin={m.is_admin}")
        elif args.action == "delete":
            m, ended = membership.delete(args.user)
            _print(
                args,
                {"id": m.id, "deleted": True, "sessions_ended": ended},
                f"deleted {m.username}; {ended} session(s) ended",
            )


def cmd_clients(args: argparse.Namespace, settings: Settings) -> None:
    from idp import clients

    with _app(settings):
        r = clients.create(
            name=args.name,
            redirect_uris=args.redirect_uri,
            public=args.public,
            scope=args.scope,
            grant_types=args.grant_type,
            post_logout_redirect_uris=args.post_logout_redirect_uri,
            backchannel_logout_uri=args.backchannel_logout_uri,
            events_uri=args.events_uri,
            admin=args.admin,
            stay_signed_in=not args.no_stay_signed_in,
            first_party=args.first_party,
            allow_private_uris=settings.allow_private_logout_uris,
        )
        _print(
            args,
            {"client_id": r.client.client_id, "client_secret": r.client_secret},
            f"client_id: {r.client.client_id}\n"
            f"client_secret: {r.client_secret or '(public client)'}",
        )


def cmd_sessions(args: argparse.Namespace, settings: Settings) -> None:
    from idp import accounts, forced_logout, sessions

    with _app(settings):
        if args.action == "list":
            m = accounts.find(args.user)
            rows = [s.to_json() for s in sessions.list_for_user(m.id)]
            text = "\n".join(
                f"{r['id']}  {r['device']}  {r['ip']}  {r['country'] or '-'}  "
                f"created {r['created_at']}  last seen {r['last_seen_at']}  "
                f"{'stay signed in' if r['stay_signed_in'] else 'browser session'}"
                for r in rows
            )
            _print(args, {"sessions": rows}, text or "no sessions")
            return
        reason = forced_logout.LogoutReason(args.reason)
        if args.session:
            sessions.get(args.session)  # NotFoundError: a one-line error
            report = forced_logout.force_logout(
                session_ids=[args.session], reason=reason, actor="admin:cli"
            )
        else:
            m = accounts.find(args.user)
            report = forced_logout.force_logout(user_id=m.id, reason=reason, actor="admin:cli")
        _print(
            args,
            {"ended": list(report.session_ids), "notified": list(report.notified_client_ids)},
            f"{len(report.session_ids)} session(s) ended; "
            f"{len(report.notified_client_ids)} client(s) will be told",
        )


def cmd_events(args: argparse.Namespace, settings: Settings) -> None:
    from idp import accounts, devices, events

    with _app(settings):
        m = accounts.find(args.user)
        rows: list[dict[str, Any]] = [
            {
                "at": a.at.isoformat(),
                "kind": f"signin.{a.result}",
                "method": a.method,
                "result": a.result,
                "reason": a.reason,
                "ip": a.ip,
                "country": a.country,
                "device_id": a.device_id,
                "device": devices.describe(a.user_agent),
            }
            for a in events.attempts_for_user(m.id, limit=200)
        ]
        rows += [
            {
                "at": e.at.isoformat(),
                "kind": e.kind,
                "client_id": e.client_id,
                "session_id": e.session_id,
                "ip": e.ip,
                "detail": e.detail,
            }
            for e in events.list_for_user(m.id)
        ]
        rows.sort(key=lambda r: r["at"], reverse=True)
        text = "\n".join(
            f"{r['at']}  {r['kind']}  {r['ip'] or '-'}  "
            + (
                f"{r['method']} {r['reason'] or ''} {r['country'] or ''} {r['device']}".strip()
                if "method" in r
                else str(r["detail"])
            )
            for r in rows
        )
        _print(args, {"events": rows}, text or "no events")


def cmd_worker(args: argparse.Namespace, settings: Settings) -> None:
    import signal
    import threading

    from idp import worker

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    _wait_for_the_database(settings, stop)
    if stop.is_set():  # stopped while it waited
        return
    # Not _app(): a second schema check, with the database gone since the
    # first, would end the worker; from here on an outage is waited out.
    with _app_on_a_checked_schema(settings):
        if not args.quiet:
            sys.stderr.write("idp: worker delivering the outbox (Ctrl-C stops)\n")
        worker.run_forever(stop)


def _first_line(e: SQLAlchemyError) -> str:
    """The driver's own words, without SQLAlchemy's statement and links."""
    return str(getattr(e, "orig", None) or e).splitlines()[0]


def _wait_for_the_database(settings: Settings, stop: Any) -> None:
    """A worker started while the database does not answer (both restarted
    at once, the database still starting) waits for it instead of exiting:
    ``idp serve`` would not start its worker again.  A schema that is wrong
    still ends it at once, in one line."""
    from idp import schema
    from idp.db import unavailable

    said = False
    while not stop.is_set():
        try:
            schema.check_current(settings.database)
            return
        except SQLAlchemyError as e:
            if not unavailable(e):
                raise
            if not said:
                sys.stderr.write(f"idp: worker waiting for the database: {_first_line(e)}\n")
                said = True
            stop.wait(2)


def cmd_mail(args: argparse.Namespace, settings: Settings) -> None:
    from idp import worker

    with _app(settings):
        total = 0
        while True:
            done = worker.run_once()
            total += done
            if done == 0:
                break
        _print(args, {"attempted": total}, f"{total} message(s) attempted")


def cmd_keys(args: argparse.Namespace, settings: Settings) -> None:
    from idp.keys import keyring_for

    ring = keyring_for(settings)
    if args.action == "rotate":
        info = ring.rotate()
        _print(args, {"kid": info.kid, "alg": info.alg}, f"new active key {info.kid} ({info.alg})")
        return
    rows = [
        {
            "kid": k.kid,
            "alg": k.alg,
            "active": k.active,
            "created_at": k.created_at.isoformat(),
            "retired_at": k.retired_at.isoformat() if k.retired_at else None,
            "published_until": k.published_until.isoformat() if k.published_until else None,
        }
        for k in ring.list()
    ]
    text = "\n".join(
        f"{r['kid']}  {r['alg']}  "
        + ("active" if r["active"] else f"retired, published until {r['published_until']}")
        for r in rows
    )
    _print(args, {"keys": rows}, text)


COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], None]] = {
    "init": cmd_init,
    "serve": cmd_serve,
    "users": cmd_users,
    "clients": cmd_clients,
    "keys": cmd_keys,
    "sessions": cmd_sessions,
    "events": cmd_events,
    "worker": cmd_worker,
    "mail": cmd_mail,
}


def _read_password() -> str:
    """The first line of standard input, as ``--password-stdin`` promises."""
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise UsageError("no password on standard input")
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError("the password on standard input is not UTF-8 text") from None
    return password


def main(argv: Sequence[str] | None = None) -> None:
    refuse_undecodable(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        settings = config.load(args.config, os.environ)
        if args.config:
            # granian workers load the app by import: hand the file down.
            os.environ["IDP_CONFIG"] = args.config
        COMMANDS[args.command](args, settings)
    except ConfigError as e:
        fail(f"configuration: {e}")
    except (UsageError, ConflictError, NotFoundError) as e:
        fail(str(e))
    except IdpError as e:
        fail(str(e))
    except SQLAlchemyError as e:
        detail = _first_line(e)
        fail(f"database ({settings.database.url.split('://')[0]}): {detail}")
    except OSError as e:
        fail(f"{e.strerror or e}: {e.filename or ''}".rstrip(": "))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
