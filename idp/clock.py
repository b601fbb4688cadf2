"""The provider's idea of now.

Every rule with a time in it (expiry, idle timeout, key retirement, purges)
asks :func:`now`, so that tests move time instead of sleeping or rewriting
rows.  Two ways, both for tests only:

* :func:`freeze` / :func:`advance` stop and move the clock of this process
  (unit tests with an in-process app).
* :func:`follow_file` moves the clock by the seconds written in a file, so a
  test can move the clock of a live server, which is another process (and
  of its worker, a third): ``create_app`` follows ``IDP_TEST_CLOCK_FILE``
  when the test suite sets it.  The file is read again only when it is
  replaced, so a moved clock takes effect on the next request.

Production never does either."""

from __future__ import annotations

import datetime as dt
import os
import threading
from pathlib import Path

__all__ = ["advance", "follow_file", "freeze", "now", "now_ts", "set_offset_file", "unfreeze"]

_frozen_at: dt.datetime | None = None


class _OffsetFile:
    """Seconds to add to the real time, re-read when the file is replaced."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._version: tuple[int, int] | None = None
        self._seconds = 0.0
        self._lock = threading.Lock()

    def seconds(self) -> float:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return 0.0
        version = (st.st_ino, st.st_mtime_ns)
        if version != self._version:
            with self._lock:
                try:
                    self._seconds = float(self.path.read_text().strip() or 0)
                except (OSError, ValueError):
                    self._seconds = 0.0
                self._version = version
        return self._seconds


_offset: _OffsetFile | None = None


def now() -> dt.datetime:
    """The current time, timezone-aware UTC."""
    if _frozen_at is not None:
        return _frozen_at
    real = dt.datetime.now(dt.UTC)
    if _offset is not None:
        return real + dt.timedelta(seconds=_offset.seconds())
    return real


def now_ts() -> int:
    """The current time as integer seconds since the epoch (JWT NumericDate)."""
    return int(now().timestamp())


def freeze(at: dt.datetime | None = None) -> dt.datetime:
    global _frozen_at
    _frozen_at = at or dt.datetime.now(dt.UTC)
    return _frozen_at


def advance(**delta: float) -> dt.datetime:
    global _frozen_at
    _frozen_at = now() + dt.timedelta(**delta)
    return _frozen_at


def unfreeze() -> None:
    global _frozen_at
    _frozen_at = None


def follow_file(path: str | Path | None) -> None:
    """Move this process's clock by the seconds in ``path`` (None: stop)."""
    global _offset
    _offset = _OffsetFile(Path(path)) if path else None


def set_offset_file(path: str | Path, seconds: float) -> None:
    """Write an offset for :func:`follow_file` readers, atomically (a new
    file each time, so readers notice the change even within one tick)."""
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temporary.write_text(repr(float(seconds)))
    os.replace(temporary, target)
