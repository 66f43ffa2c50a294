"""API token for the web service.

When the server binds to anything but loopback, every API endpoint (and
``/health``) needs the token from ``settings.api_token``; the server refuses
to start without one. When a token is configured it is enforced on loopback
too. Clients send ``Authorization: Bearer <token>``; the page exchanges the
token once for an HttpOnly cookie (so plain download links work).
"""

from __future__ import annotations

import hmac
import ipaddress

from fastapi import Request

from csv_merger.errors import ConfigError

COOKIE = "csv_merger_token"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IPs (127.0.0.0/8, ::1)."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name or wildcard: treat as reachable from outside


def required_token(host: str, api_token: str | None) -> str | None:
    """The token the API must demand for this bind address, or None.

    Raises ConfigError when ``host`` is beyond loopback and no token is set.
    """
    if not api_token and not is_loopback(host):
        raise ConfigError(
            f"refusing to serve on {host}: set CSV_MERGER_API_TOKEN (the API needs a token beyond loopback)"
        )
    return api_token or None


def presented_token(request: Request) -> str | None:
    """The token a request carries (Bearer header first, then the cookie)."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    return request.cookies.get(COOKIE)


def token_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison of the expected and the presented token."""
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())
