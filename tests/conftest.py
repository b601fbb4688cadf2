"""Fixtures: the database backend of this run, a live provider, an in-process app.

``IDP_TEST_DATABASE`` picks the backend (``make test`` runs the suite once
with ``sqlite`` and once with ``postgresql``).  On PostgreSQL the run owns a
throw-away cluster and a Redis server on free loopback ports, removed after.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.harness import (
    Backend,
    LiveIdp,
    MigratedCopies,
    app_for,
    make_settings,
    sqlite_files,
    start_live_idp,
)
from tests.support.services import PostgresCluster, RedisServer
from tests.support.smtp import SmtpServer


@pytest.fixture(scope="session")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    kind = os.environ.get("IDP_TEST_DATABASE", "sqlite")
    if kind == "sqlite":
        url, copy = sqlite_files(tmp_path_factory.mktemp("sqlite"))
        yield Backend(
            kind="sqlite",
            make_url=url,
            redis_url="",
            make_migrated_url=MigratedCopies(url, copy),
        )
        return
    if kind != "postgresql":
        raise pytest.UsageError(f"IDP_TEST_DATABASE={kind!r}: expected sqlite or postgresql")
    with PostgresCluster() as pg, RedisServer() as redis:
        yield Backend(
            kind="postgresql",
            make_url=pg.create_database,
            redis_url=redis.url,
            make_migrated_url=MigratedCopies(
                pg.create_database,
                lambda template, name: pg.create_database(name, template=template),
            ),
        )


@pytest.fixture(scope="session")
def live_idp(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveIdp]:
    """A real server (granian, ``idp serve``) on a free loopback port."""
    root = tmp_path_factory.mktemp("live")
    with start_live_idp(root, backend, name="live") as idp:
        yield idp


@pytest.fixture(scope="session")
def smtp() -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) on loopback, for the members' provider."""
    with SmtpServer() as server:
        yield server


@pytest.fixture(scope="session")
def member_idp(
    backend: Backend, tmp_path_factory: pytest.TempPathFactory, smtp: SmtpServer
) -> Iterator[LiveIdp]:
    """A live provider that mails over SMTP to ``smtp``, with a brand prefix."""
    root = tmp_path_factory.mktemp("members")
    with start_live_idp(
        root,
        backend,
        name="members",
        smtp_port=smtp.port,
        extra_config='[alerts]\nbrand_prefix = "[Family] "\n',
    ) as idp:
        yield idp


@pytest.fixture
def live_clock(live_idp: LiveIdp) -> Iterator[LiveIdp]:
    """The live server, whose clock the test may move; set back afterwards."""
    yield live_idp
    live_idp.reset_clock()


@pytest.fixture
def app_settings(backend: Backend, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Settings for an in-process app on a fresh database of its own."""
    name = "unit_" + os.urandom(4).hex()
    settings = make_settings(
        tmp_path,
        database_url=backend.migrated_url(name),
        redis_url=backend.redis_url,
        issuer="http://localhost:5999",
    )
    yield settings
    shutil.rmtree(tmp_path / "keys", ignore_errors=True)


@pytest.fixture
def app(app_settings):  # type: ignore[no-untyped-def]
    with app_for(app_settings) as application:
        yield application
