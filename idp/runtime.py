"""What the running application was built with: settings, signing keys and
the data key that seals secrets at rest.

``create_app`` stores one :class:`Runtime` in ``app.extensions``; services
that sign or need a setting ask :func:`current` instead of reading files or
the environment again, so keys are parsed once per process."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from idp.config import Settings
from idp.keys import KeyRing
from idp.sealing import Sealer

__all__ = ["Runtime", "current"]

EXTENSION = "idp.runtime"


@dataclass(frozen=True, slots=True)
class Runtime:
    settings: Settings
    keys: KeyRing
    sealer: Sealer


def current() -> Runtime:
    runtime: Runtime = current_app.extensions[EXTENSION]
    return runtime


def current_from(app: object) -> Runtime:
    runtime: Runtime = app.extensions[EXTENSION]  # type: ignore[attr-defined]
    return runtime
