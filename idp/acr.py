"""Authentication context classes (``acr``): how strongly a sign-in proved
who it is, from the methods it used (``amr``, RFC 8176).

Two levels, advertised in discovery (``acr_values_supported``) and asked
for by a relying service with ``acr_values``: a password alone is
:data:`SINGLE_FACTOR`; a passkey, or a password with a one-time code, is
:data:`STRONG`, which a bank may require (``idp.prompts`` then asks for the
step-up)."""

from __future__ import annotations

__all__ = ["SINGLE_FACTOR", "STRONG", "STRONG_FACTORS", "VALUES", "for_methods"]

SINGLE_FACTOR = "urn:idp:acr:1"
"""One factor: a password."""
STRONG = "urn:idp:acr:2"
"""Phishing-resistant or multi-factor: a passkey, or a password plus a one-time code."""
VALUES = (SINGLE_FACTOR, STRONG)
STRONG_FACTORS = frozenset({"hwk", "otp"})
"""Proofs beyond a password: a passkey (on this device or the phone that
approved a QR sign-in) or a one-time code."""


def for_methods(amr: list[str]) -> str:
    """The level a set of authentication methods reaches."""
    return STRONG if {"hwk", "mfa"} & set(amr) else SINGLE_FACTOR
