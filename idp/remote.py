"""Who is on the other end of a request: client IP and browser.

``X-Forwarded-For`` is trusted only as far as ``server.trusted_proxies``
says: the client is the Nth entry from the right, because every entry left
of the proxies we run could have been written by the client itself."""

from __future__ import annotations

import ipaddress

from flask import Request

__all__ = ["client_ip", "user_agent"]


def client_ip(request: Request, trusted_proxies: int) -> str:
    peer = request.remote_addr or "0.0.0.0"  # noqa: S104 - a placeholder, never bound
    if trusted_proxies <= 0:
        return peer
    header = request.headers.get("X-Forwarded-For", "")
    hops = [h.strip() for h in header.split(",") if h.strip()]
    if len(hops) < trusted_proxies:
        return peer
    candidate = hops[-trusted_proxies]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return peer


def user_agent(request: Request) -> str:
    return (request.headers.get("User-Agent") or "")[:400]
