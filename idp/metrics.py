"""``/metrics``: what an operator graphs and alerts on, in Prometheus's format.

* ``idp_http_requests_total{endpoint,method,status}`` and
  ``idp_http_request_duration_seconds{endpoint}``: every request, by its
  route (not its path: a path may hold a token or a session id);
* ``idp_signins_total{method,result}``: sign-in attempts by method
  (``pwd``, ``passkey``, ``qr``, ``step_up``) and outcome (``success``,
  ``failure``, ``step_up``, ``refused``);
* ``idp_outbox_waiting``, ``idp_outbox_retrying``,
  ``idp_outbox_oldest_seconds`` and ``idp_outbox_undelivered`` by kind
  (``mail``, ``backchannel_logout``, ...), read from the database when
  scraped, so they are the same whichever node answers.

Counters live in the process that counts.  With several granian workers,
set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory before start (``idp
serve --workers N`` does), and every worker's counts are summed at scrape.

The endpoint answers only addresses in ``metrics.allowed_networks``
(loopback by default): the figures tell an outsider how busy and how
attacked the provider is."""

from __future__ import annotations

import ipaddress
import os
import time
from typing import Any

from flask import Flask, Response, abort, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from idp import outbox, remote, runtime
from idp.config import Settings

__all__ = ["install", "observe_before_flask", "signin"]

_REQUESTS = Counter("idp_http_requests", "HTTP requests answered", ["endpoint", "method", "status"])
_LATENCY = Histogram(
    "idp_http_request_duration_seconds",
    "Time to answer a request",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
_SIGNINS = Counter("idp_signins", "Sign-in attempts", ["method", "result"])


def signin(method: str, result: str) -> None:
    """Count a sign-in attempt (``idp.events.record_attempt`` calls it)."""
    _SIGNINS.labels(method, result).inc()


def observe_before_flask(path: str, method: str, status: int, seconds: float) -> None:
    """Count a request answered before Flask (``idp.protocol.documents``,
    ``idp.protocol.express``)."""
    _REQUESTS.labels(path, method, str(status)).inc()
    _LATENCY.labels(path).observe(seconds)


class _OutboxCollector(Collector):
    """The outbox's backlog, read from the database at each scrape."""

    def collect(self) -> Any:
        waiting = GaugeMetricFamily(
            "idp_outbox_waiting", "Messages not yet delivered", labels=["kind"]
        )
        retrying = GaugeMetricFamily(
            "idp_outbox_retrying", "Waiting messages that failed at least once", labels=["kind"]
        )
        oldest = GaugeMetricFamily(
            "idp_outbox_oldest_seconds", "Age of the oldest waiting message", labels=["kind"]
        )
        undelivered = GaugeMetricFamily(
            "idp_outbox_undelivered", "Messages given up, not yet purged", labels=["kind"]
        )
        for row in outbox.backlog():
            waiting.add_metric([row.kind], row.waiting)
            retrying.add_metric([row.kind], row.retrying)
            oldest.add_metric([row.kind], row.oldest_seconds)
            undelivered.add_metric([row.kind], row.undelivered)
        yield from (waiting, retrying, oldest, undelivered)


def _allowed(settings: Settings) -> bool:
    try:
        address = ipaddress.ip_address(remote.client_ip(request, settings.server.trusted_proxies))
    except ValueError:
        return False
    return any(
        address in ipaddress.ip_network(network, strict=False)
        for network in settings.metrics.allowed_networks
    )


def _exposition() -> bytes:
    registry = CollectorRegistry()
    # prometheus_client's own switch, read by it at import: several workers
    # write their counts to files there, summed here.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        for metric in (_REQUESTS, _LATENCY, _SIGNINS):
            registry.register(metric)
    registry.register(_OutboxCollector())
    return generate_latest(registry)


def install(app: Flask) -> None:
    """Time and count every request, and serve ``/metrics``."""

    @app.before_request
    def _started() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        started = g.pop("metrics_started", None)
        rule = request.url_rule
        endpoint = rule.rule if rule is not None else "unmatched"
        _REQUESTS.labels(endpoint, request.method, str(response.status_code)).inc()
        if started is not None:
            _LATENCY.labels(endpoint).observe(time.perf_counter() - started)
        return response

    @app.get("/metrics")
    def metrics() -> Response:
        settings = runtime.current().settings
        if not settings.metrics.enabled or not _allowed(settings):
            abort(404)
        return Response(_exposition(), mimetype=CONTENT_TYPE_LATEST)
