"""SSRF guard for webhook URLs and input URLs.

A webhook URL comes from a user (or a web form), and the engine POSTs
records to it from inside our network, so a URL pointing at a loopback,
private, link-local or cloud-metadata address could read or change internal
services; an input URL is fetched from inside our network too. ``check_target``
refuses such URLs unless the caller opts in (``--allow-private-targets``,
needed for a local sink) and returns the addresses it checked; the HTTP
clients then connect to exactly those (``pinned_request``), so a DNS
answer that changes after the check (rebinding) is never used.
``check_input_url`` allows only local paths, ``file://``, ``http(s)://``
(checked as above) and ``s3://`` as inputs. Redirects are never followed
(``follow_redirects=False``): a 3xx answer is dead-lettered with its
``Location`` instead, so a public URL cannot bounce a request to an internal
one.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import httpx

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


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

TRANSITION_NETWORKS = (
    (ipaddress.ip_network("2002::/16"), "a 6to4 address"),                 # RFC 3056
    (ipaddress.ip_network("2001::/32"), "a Teredo address"),               # RFC 4380
    (ipaddress.ip_network("64:ff9b::/96"), "a NAT64 address"),             # RFC 6052
    (ipaddress.ip_network("64:ff9b:1::/48"), "a local-use NAT64 address"),  # RFC 8215
)
"""IPv6 ranges that carry an IPv4 address a relay or gateway forwards to (so
``2002:7f00:1::`` can reach 127.0.0.1): refused whatever IPv4 they embed."""

INPUT_SCHEMES = frozenset({"http", "https", "s3", "file"})
"""URL schemes an input may use (besides a plain local path)."""

_LABELS = {"webhook": ("webhook URL", "webhook host"), "input": ("input URL", "input URL host")}


@dataclass(frozen=True)
class CheckedTarget:
    """A URL's host that passed ``check_target``: ``host`` as in the URL
    (lower case, no trailing dot) and the ``addresses`` it resolved to and
    was checked at. ``addresses`` is empty when private targets were allowed
    (nothing resolved, nothing to pin)."""

    host: str
    addresses: tuple[IPAddress, ...] = ()


def unsafe_address_reason(ip: IPAddress) -> str | None:
    """Why an address must not be a webhook or input target, or None if it is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        for network, label in TRANSITION_NETWORKS:
            if ip in network:
                return f"{label}, which can reach an IPv4 address behind it"
        if ip.ipv4_mapped is not None:
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


def _resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to, in the resolver's order (IP
    literals in any form the C resolver accepts, e.g. "2130706433" or
    "0x7f.1", resolve to themselves)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos))


def check_target(url: str, allow_private: bool, *, what: Literal["webhook", "input"] = "webhook") -> CheckedTarget:
    """Refuse a URL that is not http(s) or whose host resolves to a
    loopback, private, link-local, reserved, IPv6-transition or
    cloud-metadata address; return the host and the addresses checked
    (connect to those: ``pinned_request``).

    With ``allow_private`` only the scheme and host presence are checked.
    ``what`` names the URL in messages ("webhook URL", "input URL").
    Raises UnsafeTargetError naming the URL's host and the reason (the URL
    itself is not echoed: it may carry a secret path).
    """
    url_label, host_label = _LABELS[what]
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise UnsafeTargetError(f"{url_label} is malformed: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise UnsafeTargetError(f"{url_label} scheme {parts.scheme or '(none)'!r} refused: only http and https")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise UnsafeTargetError(f"{url_label} has no host")
    if allow_private:
        return CheckedTarget(host)
    if host in METADATA_HOSTS or host.endswith(".internal") or host == "localhost" or host.endswith(".localhost"):
        raise UnsafeTargetError(f"{host_label} {host!r} is an internal name (use --allow-private-targets to allow it)")
    try:
        addresses = _resolve(host, port or (443 if parts.scheme.lower() == "https" else 80))
    except (OSError, UnicodeError) as exc:
        raise UnsafeTargetError(f"{host_label} {host!r} does not resolve ({exc})") from None
    for ip in addresses:
        reason = unsafe_address_reason(ip)
        if reason:
            raise UnsafeTargetError(
                f"{host_label} {host!r} resolves to {ip}, {reason} (use --allow-private-targets to allow it)")
    return CheckedTarget(host, tuple(addresses))


def check_input_url(url: str, allow_private: bool) -> CheckedTarget | None:
    """Refuse an input URL outside the allow-list: ``http(s)://`` (checked
    by ``check_target``, whose result is returned), ``s3://`` and
    ``file://`` (None returned). Any other scheme (``ftp://``, ``sftp://``,
    ``github://``, ...) and fsspec's chained URLs (``simplecache::http://...``,
    which would fetch without this check) raise UnsafeTargetError.
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme not in INPUT_SCHEMES:
        raise UnsafeTargetError(f"input URL scheme {scheme or '(none)'!r} refused: an input is a local path "
                                "or a file://, http(s):// or s3:// URL")
    if scheme == "s3" and "::" in url:  # fsspec reads "a::b" as a chain of file systems
        raise UnsafeTargetError("input URL refused: chained URLs ('::') are not allowed")
    if scheme in ("http", "https"):
        return check_target(url, allow_private, what="input")
    return None


def pinned_request(request: httpx.Request, target: CheckedTarget | None) -> httpx.Request:
    """The request to put on the wire: the URL's host replaced by the first
    address ``check_target`` approved, so the connection goes where the
    check looked even if DNS now answers otherwise (rebinding). The Host
    header stays the hostname, and so do TLS SNI and certificate checking,
    through httpcore's ``sni_hostname`` request extension (httpx docs,
    "Request extensions"; httpcore 1.0 ``_async/connection.py`` passes it as
    ``server_hostname``). Unchanged when ``target`` is None or has no
    addresses (private targets allowed). Raises UnsafeTargetError when the
    request's host is not the checked one.
    """
    if target is None or not target.addresses:
        return request
    host = request.url.host
    if host.rstrip(".").lower() != target.host:
        raise UnsafeTargetError(f"request to host {host!r}, but only {target.host!r} was checked")
    return httpx.Request(request.method, request.url.copy_with(host=str(target.addresses[0])),
                         headers=request.headers, stream=request.stream,
                         extensions={**request.extensions, "sni_hostname": host})


class PinnedTransport(httpx.HTTPTransport):
    """A synchronous httpx transport that sends every request through
    ``pinned_request`` (``target`` from ``check_target``); other keyword
    arguments as ``httpx.HTTPTransport``."""

    def __init__(self, target: CheckedTarget | None, **kwargs):
        super().__init__(**kwargs)
        self.target = target

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return super().handle_request(pinned_request(request, self.target))


def shareable_redis_url(url: str | None) -> str | None:
    """``url`` when it holds no password (it may go into flow-run parameters, which Prefect
    stores and shows in clear), else None: the run then resolves it itself (``resolve_redis_url``)."""
    if not url:
        return None
    from urllib.parse import urlsplit

    return None if urlsplit(url).password else url
