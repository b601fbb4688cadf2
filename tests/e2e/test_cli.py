"""The ``idp`` command: JSON out, one-line errors with exit status 2."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from idp import config, schema
from idp.db import absolute_url, configure_engine
from idp.sealing import is_sealed
from tests.support.flows import sign_in
from tests.support.harness import IDP, Backend, LiveIdp, make_settings
from tests.support.ports import free_port
from tests.unit.test_migrations import upgrade_to

SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


@pytest.fixture(scope="module")
def config_path(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    make_settings(
        root, database_url=backend.make_url("cli"), redis_url="", issuer="http://localhost:5998"
    )
    path = root / "idp.toml"
    assert _idp(path, "init").returncode == 0
    return path


@pytest.fixture
def live_idp_cli(live_idp: LiveIdp) -> tuple[LiveIdp, Path]:
    """The live server and its configuration file, for commands on its data."""
    return live_idp, live_idp.config_path


def _env() -> dict[str, str]:
    """This environment without the caller's ``IDP_*`` settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}


def _idp(config: Path | None, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = _env()
    argv = [IDP, *(["--config", str(config)] if config else []), *args]
    return subprocess.run(
        argv, input=stdin, capture_output=True, text=True, env=env, timeout=60, check=False
    )


def _json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


def _one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("idp: error: ")
    return lines[0]


def test_init_is_safe_to_run_again(config_path: Path) -> None:
    assert _json(_idp(config_path, "init", "--json")) == {
        "database": "ready",
        "key_created": False,
        "totp_seeds_sealed": 0,
    }


def test_init_seals_the_totp_seeds_stored_before_sealing(config_path: Path) -> None:
    """A release before 0011 kept TOTP seeds as they are; the migration
    cannot seal them (the data key is not in the database), ``idp init``
    does, after it migrates."""
    created = _json(
        _idp(
            config_path,
            *("users", "create", "--username", "seeded", "--email", "seeded@example.com"),
            *("--password-stdin", "--json"),
            stdin="a long passphrase\n",
        )
    )
    url = absolute_url(config.load(config_path, {}).database.url)
    engine = create_engine(url, **configure_engine(url))
    insert = text(
        "insert into totp_credentials (user_id, secret, created_at, confirmed_at)"
        " values (:user, :seed, :now, :now)"
    )
    try:
        with engine.begin() as connection:
            connection.execute(
                insert, {"user": created["id"], "seed": SEED, "now": "2026-12-07 00:00:00"}
            )

        assert _json(_idp(config_path, "init", "--json"))["totp_seeds_sealed"] == 1
        assert _json(_idp(config_path, "init", "--json"))["totp_seeds_sealed"] == 0

        with engine.connect() as connection:
            stored = connection.execute(
                text("select secret from totp_credentials where user_id = :user"),
                {"user": created["id"]},
            ).scalar_one()
    finally:
        engine.dispose()
    assert is_sealed(stored)
    assert SEED not in stored


def test_users_create_prints_the_id_and_username(config_path: Path) -> None:
    created = _json(
        _idp(
            config_path,
            "users",
            "create",
            "--username",
            "hanako",
            "--email",
            "hanako@example.com",
            "--password-stdin",
            "--birthdate",
            "1990-04-01",
            "--gender",
            "female",
            "--json",
            stdin="a long passphrase\n",
        )
    )
    assert set(created) == {"id", "username"}
    assert created["username"] == "hanako"
    shown = _json(_idp(config_path, "users", "show", "hanako", "--json"))
    assert shown["id"] == created["id"]
    assert shown["email_verified"] is True
    assert shown["birthdate"] == "1990-04-01"


def test_a_taken_username_is_a_one_line_error(config_path: Path) -> None:
    args = (
        "users",
        "create",
        "--username",
        "taro",
        "--email",
        "taro@example.com",
        "--password-stdin",
    )
    assert _idp(config_path, *args, stdin="a long passphrase\n").returncode == 0
    line = _one_line_error(_idp(config_path, *args, stdin="a long passphrase\n"))
    assert line == "idp: error: That user ID is taken. Choose another."


LONG_URI = "https://shop.example/" + "a" * 481  # 501 characters: one past the columns


@pytest.mark.parametrize(
    "args",
    [
        (
            "users",
            "create",
            "--username",
            "x1",
            "--email",
            "x1@example.com",
            "--password-stdin",
            "--birthdate",
            "soon",
        ),
        ("users", "create", "--username", "x2", "--email", "not-an-email", "--password-stdin"),
        (
            "users",
            "create",
            "--username",
            "x3",
            "--email",
            "x3@example.com",
            "--password-stdin",
            "--birthdate",
            "0001-01-01",
        ),
        (
            "users",
            "create",
            "--username",
            "x4",
            "--email",
            "x4@example.com",
            "--password-stdin",
            "--name",
            "Hanako\x1b[2J",
        ),
        ("users", "show", "nobody"),
        ("clients", "create", "--name", "Shop", "--redirect-uri", "http://shop.example/cb"),
        ("clients", "create", "--name", "Shop\x07", "--redirect-uri", "https://shop.example/cb"),
        (
            "clients",
            "create",
            "--name",
            "Shop",
            "--redirect-uri",
            "https://x/cb",
            "--grant-type",
            "password",
        ),
        ("frobnicate",),
        ("serve", "--port", "http"),
        ("clients", "create", "--name", "Shop", "--redirect-uri", "https://[::1/cb"),
        ("clients", "create", "--name", "Shop", "--redirect-uri", "https://shop.example:99999/"),
        ("clients", "create", "--name", "Shop", "--redirect-uri", LONG_URI),
        (
            "clients",
            "create",
            "--name",
            "Shop",
            "--redirect-uri",
            "https://shop.example/cb",
            "--backchannel-logout-uri",
            LONG_URI,
        ),
    ],
    ids=[
        "bad-date",
        "bad-email",
        "year-one",
        "escape-in-name",
        "unknown-user",
        "http-redirect",
        "bell-in-client-name",
        "bad-grant",
        "unknown-command",
        "bad-port",
        "unclosed-ipv6",
        "uri-port-out-of-range",
        "long-redirect-uri",
        "long-backchannel-uri",
    ],
)
def test_a_bad_argument_is_a_one_line_error_with_status_2(
    config_path: Path, args: tuple[str, ...]
) -> None:
    _one_line_error(_idp(config_path, *args, stdin="a long passphrase\n"))


def test_a_bad_configuration_file_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[session]\nidle_minutes = 'ten'\n")
    line = _one_line_error(_idp(bad, "init"))
    assert "session.idle_minutes" in line
    missing = tmp_path / "missing.toml"
    assert str(missing) in _one_line_error(_idp(missing, "init"))
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(b'[mail]\nsender = "caf\xe9@example.com"\n')
    assert _one_line_error(_idp(latin1, "init")).endswith(f"{latin1} is not UTF-8 text (byte 21)")


NOT_UTF8 = os.fsdecode(b"\xff\xfe")  # what Python makes of bytes that are not UTF-8


@pytest.mark.parametrize(
    "args",
    [
        ("users", "show", NOT_UTF8),
        ("users", "disable", "a" + NOT_UTF8),
        ("sessions", "list", "--user", NOT_UTF8),
        ("sessions", "revoke", "--session", "s1", "--reason", NOT_UTF8),
        ("events", "list", "--user", NOT_UTF8),
        ("clients", "create", "--name", NOT_UTF8, "--redirect-uri", "https://shop.example/cb"),
        ("serve", "--host", NOT_UTF8, "--port", "5999"),
    ],
    ids=["users-show", "users-disable", "sessions-list", "reason", "events", "client", "host"],
)
def test_an_argument_that_is_not_utf8_is_a_one_line_error(
    config_path: Path, args: tuple[str, ...]
) -> None:
    line = _one_line_error(_idp(config_path, *args))

    bad = next(arg for arg in args if NOT_UTF8 in arg)
    assert line == f"idp: error: an argument is not UTF-8 text: {os.fsencode(bad)!r}"


def test_a_password_on_stdin_that_is_not_utf8_is_a_one_line_error(config_path: Path) -> None:
    env = _env()
    argv = [IDP, "--config", str(config_path), "users", "create", "--username", "ume"]
    done = subprocess.run(
        [*argv, "--email", "ume@example.com", "--password-stdin"],
        input=b"a long pass\xff\xfephrase\n",
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )

    assert (done.returncode, done.stdout) == (2, b"")
    assert done.stderr == b"idp: error: the password on standard input is not UTF-8 text\n"
    _one_line_error(_idp(config_path, "users", "show", "ume"))


def test_a_password_with_a_nul_character_is_refused(config_path: Path) -> None:
    args = ("users", "create", "--username", "momo", "--email", "momo@example.com")

    line = _one_line_error(_idp(config_path, *args, "--password-stdin", stdin="a long\0phrase\n"))

    assert line == "idp: error: The password must not contain a NUL character."


def test_an_unsupported_database_is_a_one_line_error_without_its_password() -> None:
    env = _env()
    env["IDP_DATABASE_URL"] = "mysql://idp:hunter22@db.example/idp"
    done = subprocess.run(
        [IDP, "users", "show", "taro"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )

    line = _one_line_error(done)
    assert line.startswith("idp: error: configuration: database.url: mysql:// is not supported")
    assert "hunter22" not in done.stderr


def test_a_relative_sqlite_path_is_the_working_directorys(tmp_path: Path, backend: Backend) -> None:
    if backend.kind != "sqlite":
        pytest.skip("a SQLite URL; checked on the SQLite run")
    env = _env()
    env["IDP_KEYS_DIR"] = str(tmp_path / "keys")
    create = ["users", "create", "--username", "hana", "--email", "hana@example.com"]
    for url in ("sqlite:///plain.sqlite3", "sqlite+pysqlite:///named.sqlite3"):
        env["IDP_DATABASE_URL"] = url
        for args, stdin in ((["init"], ""), ([*create, "--password-stdin"], "a long phrase\n")):
            done = subprocess.run(
                [IDP, *args], input=stdin, capture_output=True, text=True, env=env,
                cwd=tmp_path, timeout=120, check=False,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr  # the schema init made, where init made it
    assert (tmp_path / "plain.sqlite3").is_file()
    assert (tmp_path / "named.sqlite3").is_file()


def test_commands_run_only_on_this_versions_schema(backend: Backend, tmp_path: Path) -> None:
    url = backend.make_url("behind_" + os.urandom(4).hex())
    make_settings(tmp_path, database_url=url, redis_url="", issuer="http://localhost:5997")
    path = tmp_path / "idp.toml"
    commands = [
        ("serve", "--port", str(free_port())),
        ("worker",),
        ("users", "show", "hanako"),
        ("sessions", "list", "--user", "hanako"),
        ("mail", "flush"),
    ]

    for args in commands:
        line = _one_line_error(_idp(path, *args))
        assert line == "idp: error: the database has no schema yet: run 'idp init' first"
    upgrade_to(absolute_url(url), "0009")
    for args in commands:
        line = _one_line_error(_idp(path, *args))
        assert line == (
            f"idp: error: the database schema is at revision 0009 and this version needs "
            f"{schema.head_revision()}: run 'idp init' (it migrates)"
        )
    assert _idp(path, "init").returncode == 0
    assert _one_line_error(_idp(path, "users", "show", "hanako")) == "idp: error: no user 'hanako'"


def test_a_worker_started_while_the_database_is_down_waits_for_it(
    backend: Backend, tmp_path: Path
) -> None:
    """``idp serve`` does not start its worker again: it must not exit."""
    if backend.kind != "postgresql":
        pytest.skip("a database server that is down; checked on the PostgreSQL run")
    url = f"postgresql+psycopg://idp@127.0.0.1:{free_port()}/idp"  # nothing listens there
    make_settings(tmp_path, database_url=url, redis_url="", issuer="http://localhost:5996")
    env = _env()
    with subprocess.Popen(
        [IDP, "--config", str(tmp_path / "idp.toml"), "worker"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as worker:
        try:
            assert worker.stderr is not None
            line = worker.stderr.readline()

            assert line.startswith("idp: worker waiting for the database: "), line
            assert worker.poll() is None
        finally:
            worker.terminate()
        assert worker.wait(timeout=30) == 0


def _one_connection_to(port: int) -> int:
    """A loopback port that forwards its first connection to ``port`` and
    then refuses every other: a database gone right after one answer."""
    listener = socket.create_server(("127.0.0.1", 0))

    def pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def forward_once() -> None:
        with listener:
            client, _ = listener.accept()
        with client, socket.create_connection(("127.0.0.1", port)) as upstream:
            back = threading.Thread(target=pipe, args=(upstream, client), daemon=True)
            back.start()
            pipe(client, upstream)
            back.join()

    threading.Thread(target=forward_once, daemon=True).start()
    forwarding_port: int = listener.getsockname()[1]
    return forwarding_port


def test_a_worker_whose_database_goes_away_as_it_starts_waits_it_out(
    backend: Backend, tmp_path: Path
) -> None:
    """Its schema check answered, then the database went away: the worker
    reports the outage and keeps running (it exited on a second check)."""
    if backend.kind != "postgresql":
        pytest.skip("a database server that goes away; checked on the PostgreSQL run")
    url = make_url(backend.migrated_url("gone_" + os.urandom(4).hex()))
    assert url.port is not None
    forwarded = url.set(port=_one_connection_to(url.port))
    make_settings(
        tmp_path,
        database_url=forwarded.render_as_string(hide_password=False),
        issuer="http://localhost:5995",
    )
    with subprocess.Popen(
        [IDP, "--config", str(tmp_path / "idp.toml"), "worker"],
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    ) as worker:
        try:
            assert worker.stderr is not None
            lines = [worker.stderr.readline(), worker.stderr.readline()]

            assert lines[0] == "idp: worker delivering the outbox (Ctrl-C stops)\n", lines
            assert lines[1].startswith("database unavailable: "), lines
            assert worker.poll() is None
        finally:
            worker.terminate()
        assert worker.wait(timeout=30) == 0


def test_clients_create_prints_the_id_and_secret_once(config_path: Path) -> None:
    created = _json(
        _idp(
            config_path,
            "clients",
            "create",
            "--name",
            "Shop",
            "--redirect-uri",
            "https://shop.example/cb",
            "--json",
        )
    )
    assert set(created) == {"client_id", "client_secret"}
    assert len(created["client_secret"]) >= 43
    public = _json(
        _idp(
            config_path,
            "clients",
            "create",
            "--name",
            "App",
            "--redirect-uri",
            "https://app.example/cb",
            "--public",
            "--json",
        )
    )
    assert public["client_secret"] is None


def test_keys_rotate_adds_an_active_key_and_keeps_the_old_one(config_path: Path) -> None:
    before = _json(_idp(config_path, "keys", "list", "--json"))["keys"]
    rotated = _json(_idp(config_path, "keys", "rotate", "--json"))
    after = _json(_idp(config_path, "keys", "list", "--json"))["keys"]
    assert len(after) == len(before) + 1
    assert [k["kid"] for k in after if k["active"]] == [rotated["kid"]]
    assert all(k["published_until"] for k in after if not k["active"])


def test_users_disable_and_delete(config_path: Path) -> None:
    _idp(
        config_path,
        "users",
        "create",
        "--username",
        "jiro",
        "--email",
        "jiro@example.com",
        "--password-stdin",
        stdin="a long passphrase\n",
    )
    disabled = _json(_idp(config_path, "users", "disable", "jiro", "--json"))
    assert disabled["disabled"] is True
    assert _json(_idp(config_path, "users", "delete", "jiro", "--json"))["deleted"] is True
    _one_line_error(_idp(config_path, "users", "show", "jiro"))


def test_sessions_list_and_revoke_through_the_cli(live_idp_cli: tuple[Any, Path]) -> None:
    idp, config = live_idp_cli
    signed = sign_in(idp)
    listed = _json(_idp(config, "sessions", "list", "--user", signed.member.username, "--json"))
    (session,) = listed["sessions"]
    assert set(session) >= {
        "id",
        "device",
        "ip",
        "country",
        "created_at",
        "last_seen_at",
        "stay_signed_in",
    }
    assert session["ip"] == "127.0.0.1"
    revoked = _json(
        _idp(
            config,
            "sessions",
            "revoke",
            "--session",
            session["id"],
            "--reason",
            "suspicious_activity",
            "--json",
        )
    )
    assert revoked["ended"] == [session["id"]]
    assert signed.browser.get("/account").status_code == 303
    assert _json(_idp(config, "sessions", "list", "--user", signed.member.id, "--json")) == {
        "sessions": []
    }
    kinds = [
        e["kind"]
        for e in _json(_idp(config, "events", "list", "--user", signed.member.id, "--json"))[
            "events"
        ]
    ]
    assert "session.ended" in kinds
    assert "session.started" in kinds


def test_sessions_revoke_by_user_ends_every_session(live_idp_cli: tuple[Any, Path]) -> None:
    idp, config = live_idp_cli
    member = idp.create_user()
    first, second = sign_in(idp, member=member), sign_in(idp, member=member)
    revoked = _json(_idp(config, "sessions", "revoke", "--user", member.username, "--json"))
    assert len(revoked["ended"]) == 2
    for signed in (first, second):
        assert signed.browser.get("/account").status_code == 303


def test_sessions_revoke_of_an_unknown_session_is_a_one_line_error(
    live_idp_cli: tuple[Any, Path],
) -> None:
    _, config = live_idp_cli
    assert "no such session" in _one_line_error(
        _idp(config, "sessions", "revoke", "--session", "nope")
    )


def test_mail_flush_delivers_what_waits_now(live_idp_cli: tuple[Any, Path]) -> None:
    _, config = live_idp_cli
    assert _json(_idp(config, "mail", "flush", "--json"))["attempted"] >= 0
