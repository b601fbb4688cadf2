"""``/health/live`` and ``/health/ready``: what a load balancer, or
Kubernetes's probes, ask a node before sending it requests.

* ``/health/live``: the process answers HTTP.  It needs neither the
  database nor Redis, so that a database outage does not get every node
  restarted (restarting would not bring the database back).
* ``/health/ready``: the database answers now (``SELECT 1``) and holds
  this version's schema.  200, else 503 with ``Retry-After``: take the node
  out of rotation until it answers, rather than let it answer 503 to
  people -- and keep a new release that started before ``idp init``
  migrated (``granian ... idp:create_app`` does not check, ``idp serve``
  does) from serving on the old schema.  Redis is reported, but a node
  without it still serves (each process counts failures alone meanwhile,
  ``idp.ratelimit``), so it does not make the node unready.

Both answer JSON with ``Cache-Control: no-store`` to any address (a load
balancer's checks come from addresses of its own), and say nothing but
``ok``, ``unavailable``, ``behind``, ``unknown`` or ``none`` -- no
version, no error text."""

from __future__ import annotations

from flask import Flask, Response, jsonify

from idp import db as database
from idp import runtime, schema
from idp.errors import UsageError
from idp.ratelimit import failures

__all__ = ["RETRY_AFTER_SECONDS", "install"]

RETRY_AFTER_SECONDS = 5
"""What an unready node tells its callers, as a 503 from a request would."""


def _answer(status: int, body: dict[str, str]) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    if status == 503:
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class _SchemaWatch:
    """Whether the database holds this version's schema.  Once this
    application saw it, no probe asks again: a schema does not go back
    while the node runs."""

    def __init__(self) -> None:
        self.seen_current = False

    def state(self) -> str:
        if not self.seen_current:
            try:
                schema.check_current(runtime.current().settings.database)
            except UsageError:
                return "behind"
            except Exception as e:
                if database.unavailable(e):  # gone since it answered a moment ago
                    return "unknown"
                raise
            self.seen_current = True
        return "ok"


def install(app: Flask) -> None:
    schema_watch = _SchemaWatch()

    @app.get("/health/live")
    def live() -> Response:
        return _answer(200, {"status": "ok"})

    @app.get("/health/ready")
    def ready() -> Response:
        database_state = "ok" if database.answers() else "unavailable"
        schema_state = schema_watch.state() if database_state == "ok" else "unknown"
        serving = database_state == schema_state == "ok"
        return _answer(
            200 if serving else 503,
            {
                "status": "ok" if serving else "unavailable",
                "database": database_state,
                "schema": schema_state,
                "redis": failures().shared_state(),
            },
        )
