"""SSRF guard for webhook URLs.

A webhook URL comes from a user (or a web form), and the engine POSTs
records to it from inside our network, so a URL pointing at a loopback,
private, link-local or cloud-metadata address could read or change internal
services. ``check_target`` refuses such URLs unless the caller opts in
(``--allow-private-targets``, needed for a local sink). Redirects are never
followed by the engine (``follow_redirects=False``): a 3xx answer is
dead-lettered with its ``Location`` instead, so a public URL cannot bounce a
request to an internal one.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from csv_merger.errors import UnsafeTargetError

METADATA_HOSTS = frozenset({
    "metadata.google.internal", "metadata.goog", "metadata", "instance-data",
    "instance-data.ec2.internal", "metadata.azure.internal",
})
"""Cloud metadata service names (GCP, AWS, Azure docs)."""

METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",  # AWS, GCP, Azure, OpenStack
    "fd00:ec2::254",    # AWS IPv6
    "169.254.170.2",    # AWS ECS task metadata
    "100.100.100.200",  # Alibaba Cloud
))


def unsafe_address_reason(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an address must not be a webhook target, or None if it is public."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for label, flag in (("loopback", ip.is_loopback), ("unspecified", ip.is_unspecified),
                        ("link-local", ip.is_link_local), ("multicast", ip.is_multicast),
                        ("reserved", ip.is_reserved), ("private", ip.is_private)):
        if flag:
            return f"a {label} address"
    if not ip.is_global:
        return "not a public address"
    return None


def _resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every address ``host`` resolves to (IP literals in any form the C
    resolver accepts, e.g. "2130706433" or "0x7f.1", resolve to themselves)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]


def check_target(url: str, allow_private: bool) -> None:
    """Refuse a webhook URL that is not http(s) or whose host resolves to a
    loopback, private, link-local, reserved or cloud-metadata address.

    With ``allow_private`` only the scheme and host presence are checked.
    Raises UnsafeTargetError naming the URL's host and the reason (the URL
    itself is not echoed: it may carry a secret path).
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise UnsafeTargetError(f"webhook URL is malformed: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise UnsafeTargetError(f"webhook URL scheme {parts.scheme or '(none)'!r} refused: only http and https")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise UnsafeTargetError("webhook URL has no host")
    if allow_private:
        return
    if host in METADATA_HOSTS or host.endswith(".internal") or host == "localhost" or host.endswith(".localhost"):
        raise UnsafeTargetError(f"webhook host {host!r} is an internal name (use --allow-private-targets to allow it)")
    try:
        addresses = _resolve(host, port or (443 if parts.scheme == "https" else 80))
    except (OSError, UnicodeError) as exc:
        raise UnsafeTargetError(f"webhook host {host!r} does not resolve ({exc})") from None
    for ip in addresses:
        reason = unsafe_address_reason(ip)
        if reason:
            raise UnsafeTargetError(
                f"webhook host {host!r} resolves to {ip}, {reason} (use --allow-private-targets to allow it)")
