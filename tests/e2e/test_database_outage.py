"""The database going away is answered 503 with ``Retry-After``, not 500.

A provider's own PostgreSQL is killed under it: the protocol endpoints
answer ``temporarily_unavailable`` as JSON, the pages a readable 503 page,
both with ``Retry-After`` (a load balancer and a client try again instead
of taking it as a fault); what needs no database (discovery) still
answers; the log says so in one line, with no traceback per request, and so does
the outbox worker beside the server, which keeps running.

A database that is there but does not answer (its processes stopped: the
kernel still acknowledges, as for a paused VM or hung storage) gets the
same answer once ``database.answer_timeout_seconds`` has passed, the worker
says so rather than waiting, and both carry on when it answers again."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.support.flows import sign_in, token_request
from tests.support.harness import Backend, eventually, start_live_idp
from tests.support.services import PostgresCluster


def test_a_database_that_is_gone_is_a_503_with_retry_after(
    backend: Backend, tmp_path: Path
) -> None:
    if backend.kind != "postgresql":
        pytest.skip("a database server to lose; checked on the PostgreSQL run")
    with PostgresCluster() as pg:
        own = Backend(kind="postgresql", make_url=pg.create_database, redis_url="")
        with start_live_idp(tmp_path, own, name="outage") as idp:
            client = idp.create_client()
            signed = sign_in(idp, client=client)
            bearer = {"Authorization": f"Bearer {signed.tokens['access_token']}"}
            ready = requests.get(idp.url + "/health/ready", timeout=10)
            assert ready.status_code == 200
            assert ready.json() == {
                "status": "ok",
                "database": "ok",
                "schema": "ok",
                "redis": "none",
            }
            os.killpg(pg.process_group, signal.SIGKILL)
            # The signal is sent, not yet acted on: a backend still alive a
            # moment longer answers.  From when one request meets it gone:
            eventually(
                lambda: (
                    requests.get(idp.url + "/userinfo", headers=bearer, timeout=10).status_code
                    != 200
                ),
                timeout=15,
            )

            userinfo = requests.get(idp.url + "/userinfo", headers=bearer, timeout=10)
            refreshed = token_request(
                idp,
                client,
                grant_type="refresh_token",
                refresh_token=signed.tokens["refresh_token"],
            )
            account = signed.browser.get("/account")
            discovery = requests.get(idp.url + "/.well-known/openid-configuration", timeout=10)
            ready = requests.get(idp.url + "/health/ready", timeout=10)
            live = requests.get(idp.url + "/health/live", timeout=10)

            for reply in (userinfo, refreshed):
                assert reply.status_code == 503
                assert reply.headers["Retry-After"] == "5"
                assert reply.json()["error"] == "temporarily_unavailable"
            assert account.status_code == 503
            assert account.headers["Retry-After"] == "5"
            assert 'role="alert"' in account.text
            assert "unavailable for a moment" in account.text
            assert discovery.status_code == 200
            # Out of the load balancer's rotation, but not restarted.
            assert ready.status_code == 503
            assert ready.headers["Retry-After"] == "5"
            assert ready.json() == {
                "status": "unavailable",
                "database": "unavailable",
                "schema": "unknown",
                "redis": "none",
            }
            assert live.status_code == 200
            # The outbox worker beside the server says so too, in one line,
            # whether it was running or still starting (then it waits).
            eventually(
                lambda: (
                    "\ndatabase unavailable: " in idp.log()
                    or "idp: worker waiting for the database: " in idp.log()
                ),
                timeout=15,
                detail=idp.log,
            )
            assert "idp: error" not in idp.log()  # the worker did not exit
            assert "Traceback" not in idp.log(), idp.log()


def test_a_database_that_does_not_answer_is_a_503_once_the_answer_timeout_passes(
    backend: Backend, tmp_path: Path
) -> None:
    if backend.kind != "postgresql":
        pytest.skip("a database server to stop; checked on the PostgreSQL run")
    with PostgresCluster() as pg:
        own = Backend(
            kind="postgresql",
            make_url=lambda name: pg.create_database(name) + "?connect_timeout=2",
            redis_url="",
        )
        with start_live_idp(
            tmp_path, own, name="frozen", database_options="answer_timeout_seconds = 2"
        ) as idp:
            client = idp.create_client()
            signed = sign_in(idp, client=client)
            bearer = {"Authorization": f"Bearer {signed.tokens['access_token']}"}

            def userinfo() -> tuple[int, str | None, float]:
                started = time.monotonic()
                reply = requests.get(idp.url + "/userinfo", headers=bearer, timeout=60)
                return (
                    reply.status_code,
                    reply.headers.get("Retry-After"),
                    time.monotonic() - started,
                )

            assert userinfo()[0] == 200
            pg.pause()
            try:
                with ThreadPoolExecutor(4) as pool:
                    waiting = [pool.submit(userinfo) for _ in range(4)]
                    live = requests.get(idp.url + "/health/live", timeout=10)
                    answers = [future.result() for future in waiting]
                # Two seconds for the statement, or for the ping of a
                # connection that sat idle; a request that needs a new
                # connection waits connect_timeout for it, twice: libpq's
                # sslmode=prefer tries with TLS, then without.
                for status, retry_after, seconds in answers:
                    assert (status, retry_after) == (503, "5")
                    assert seconds < 2 + 2 * 2 + 5
                assert live.status_code == 200
                assert "database unavailable: " in idp.log()
                # The outbox worker beside the server waits no longer: it
                # reports the outage -- or, if it was still starting (a busy
                # machine), that it waits for the database.
                worker_reported = eventually(
                    lambda: (
                        "\ndatabase unavailable: " in idp.log()
                        or "idp: worker waiting for the database: " in idp.log()
                    ),
                    timeout=30,
                    detail=idp.log,
                )
            finally:
                pg.resume()
            eventually(lambda: userinfo()[0] == 200, timeout=30)
            assert worker_reported
            if "\ndatabase unavailable: " in idp.log():  # and carries on
                eventually(lambda: "\ndatabase answers again" in idp.log(), timeout=30)
            assert "Traceback" not in idp.log(), idp.log()
