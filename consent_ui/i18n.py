"""Japanese and English: which one a page speaks, and how a person changes it.

The language is, in order: the one just chosen on a page (``?lang=ja`` or
``?lang=en``, remembered in the ``idp_lang`` cookie for 400 days), the one
remembered, or the browser's ``Accept-Language`` -- Japanese when it prefers
``ja``, English otherwise.  Every page names it in ``<html lang>`` and
offers the other (``nav#lang-switch``).  A signed-in member who chooses a
language also gets their mail in it from then on (``idp.accounts``).

Catalogs are Flask-Babel's: the pages' strings in
``consent_ui/translations``, and the provider's own sentences that pages
show (refusals, mail) in ``idp/translations``; the two are merged.
``make translations`` extracts, updates and compiles them."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from flask import Flask, g, request
from flask_babel import Babel, get_locale, gettext
from werkzeug.wrappers import Response

from idp import accounts

__all__ = ["COOKIE", "LANGUAGES", "N_", "install", "language"]

LANGUAGES = ("en", "ja")
COOKIE = "idp_lang"
COOKIE_MAX_AGE = 400 * 86400
_DIRECTORIES = (
    Path(__file__).parent / "translations",
    Path(__file__).parent.parent / "idp" / "translations",
)


def N_(text: str) -> str:  # noqa: N802 - gettext's name for the no-op marker
    """Mark a sentence for translation where it is written; it is translated
    where it is shown (``tr()`` in a template)."""
    return text


def _chosen() -> str | None:
    """A language just picked on the page, if any."""
    value = request.args.get("lang", "")
    return value if value in LANGUAGES else None


def _select() -> str:
    if (chosen := _chosen()) is not None:
        return chosen
    remembered = request.cookies.get(COOKIE, "")
    if remembered in LANGUAGES:
        return remembered
    return request.accept_languages.best_match(LANGUAGES, default="en") or "en"


def language() -> str:
    """The language of this request's page (``en`` or ``ja``)."""
    return str(get_locale() or "en")


def _switch_url(code: str) -> str:
    """This page again, in ``code``."""
    args = {k: v for k, v in request.args.items(multi=False) if k != "lang"}
    args["lang"] = code
    return request.path + "?" + urlencode(args)


def install(app: Flask, *, secure: bool) -> None:
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = ";".join(str(d) for d in _DIRECTORIES)
    app.config["BABEL_DEFAULT_LOCALE"] = "en"
    Babel(app, locale_selector=_select)
    # ``_("literal")`` in templates is Jinja's (its %(name)s arguments are
    # escaped); ``tr(text)`` translates a sentence the view passes in, and
    # leaves it to autoescaping like any other value.
    app.jinja_env.globals.update(current_language=language, switch_url=_switch_url, tr=gettext)

    @app.after_request
    def _remember(response: Response) -> Response:
        chosen = _chosen()
        if chosen is None or "text/html" not in (response.mimetype or ""):
            return response
        response.set_cookie(
            COOKIE,
            chosen,
            max_age=COOKIE_MAX_AGE,
            path="/",
            secure=secure,
            httponly=True,
            samesite="Lax",
        )
        me = g.get("signed_in")
        if me is not None and me.member.language != chosen:
            accounts.set_language(me.member.id, chosen)
        return response
