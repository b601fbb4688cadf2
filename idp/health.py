"""``/health/live`` and ``/health/ready``: what a load balancer, or
Kubernetes's probes, ask a node before sending it requests.

* ``/health/live``: the process answers HTTP.  It needs neither the
  database nor Redis, so that a database outage does not get every node
  restarted (restarting would not bring the database back).
* ``/health/ready``: the database answers now (``SELECT 1``).  200, else
  503 with ``Retry-After``: take the node out of rotation until it answers,
  rather than let it answer 503 to people.  Redis is reported, but a node
  without it still serves (each process counts failures alone meanwhile,
  ``idp.ratelimit``), so it does not make the node unready.

Both answer JSON with ``Cache-Control: no-store`` to any address (a load
balancer's checks come from addresses of its own), and say nothing but
``ok``, ``unavailable`` or ``none`` -- no version, no error text."""

from __future__ import annotations

from flask import Flask, Response, jsonify

from idp import db as database
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


def install(app: Flask) -> None:
    @app.get("/health/live")
    def live() -> Response:
        return _answer(200, {"status": "ok"})

    @app.get("/health/ready")
    def ready() -> Response:
        database_state = "ok" if database.answers() else "unavailable"
        serving = database_state == "ok"
        return _answer(
            200 if serving else 503,
            {
                "status": "ok" if serving else "unavailable",
                "database": database_state,
                "redis": failures().shared_state(),
            },
        )
