"""Sentences people read, marked for translation where they are written.

The provider's refusals and mail are written in English here and put in
the reader's language where they are shown: the pages (``consent_ui``) and
the mail (``idp.mail``) look them up in ``idp/translations``.  ``make
translations`` finds them by this marker and by the error classes whose
first argument is such a sentence."""

from __future__ import annotations

__all__ = ["N_"]


def N_(text: str) -> str:  # noqa: N802 - gettext's name for the no-op marker
    """Mark ``text`` for translation; it is translated where it is shown."""
    return text
