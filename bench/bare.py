"""The ceiling: a bare Flask view returning small JSON, under granian as we serve.

``make bench`` measures it on the same core, so that the table shows how
much of a request's cost is the framework and the server, and how much is
the provider's own work."""

from __future__ import annotations

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue


def create_app() -> Flask:
    app = Flask("bare")

    @app.get("/")
    def hello() -> ResponseReturnValue:
        return jsonify(issuer="http://localhost", ok=True)

    return app
