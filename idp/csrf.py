"""CSRF protection of every form and script POST (Flask-WTF).

One ``CSRFProtect`` for the application: ``create_app`` installs it, and the
pages exempt the one view that checks itself (RP-initiated logout accepts a
relying party's POST, which cannot carry our token).  The token travels in
the form's ``csrf_token`` field or, from the pages' own scripts, in the
``X-CSRFToken`` header."""

from __future__ import annotations

from flask_wtf.csrf import CSRFError, CSRFProtect

__all__ = ["CSRFError", "protection"]

protection = CSRFProtect()
