"""SSRF guard: schemes, internal addresses in every spelling, metadata hosts."""

import pytest

from csv_merger.errors import UnsafeTargetError
from csv_merger.safety import check_target


@pytest.mark.parametrize("url", [
    "ftp://example.com/x", "file:///etc/passwd", "gopher://1.2.3.4/", "javascript:alert(1)", "example.com/hook",
    "http:///nohost",
])
def test_non_http_urls_are_refused_even_when_private_targets_are_allowed(url):
    with pytest.raises(UnsafeTargetError):
        check_target(url, allow_private=True)


@pytest.mark.parametrize("url,why", [
    ("http://127.0.0.1:8787/hook", "loopback"),
    ("http://localhost/hook", "internal name"),
    ("http://LOCALHOST./hook", "internal name"),
    ("http://2130706433/hook", "loopback"),          # decimal 127.0.0.1
    ("http://0x7f.1/hook", "loopback"),              # hex/short form
    ("http://017700000001/hook", "loopback"),        # octal
    ("http://127.1/hook", "loopback"),
    ("http://0.0.0.0/hook", "unspecified"),
    ("http://[::1]/hook", "loopback"),
    ("http://[::ffff:127.0.0.1]/hook", "loopback"),  # IPv4-mapped IPv6
    ("http://10.0.0.5/hook", "private"),
    ("http://172.16.3.4/hook", "private"),
    ("http://192.168.1.1/hook", "private"),
    ("http://[fc00::1]/hook", "private"),
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://[fd00:ec2::254]/latest/meta-data/", "metadata"),
    ("http://100.100.100.200/", "metadata"),
    ("http://169.254.10.10/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://100.64.0.1/", "not a public address"),  # carrier-grade NAT
    ("http://metadata.google.internal/computeMetadata/v1/", "internal name"),
    ("https://anything.internal/", "internal name"),
])
def test_internal_targets_are_refused(url, why):
    with pytest.raises(UnsafeTargetError, match=why):
        check_target(url, allow_private=False)


def test_private_targets_pass_when_allowed():
    check_target("http://127.0.0.1:8787/hook", allow_private=True)
    check_target("http://[::1]:8787/hook", allow_private=True)


def test_public_addresses_pass():
    check_target("https://8.8.8.8/hook", allow_private=False)
    check_target("http://[2606:4700:4700::1111]/hook", allow_private=False)


def test_unresolvable_host_is_refused_with_its_name():
    with pytest.raises(UnsafeTargetError, match="does not resolve"):
        check_target("https://no-such-host.invalid/hook", allow_private=False)


def test_message_does_not_echo_the_url_path():
    with pytest.raises(UnsafeTargetError) as info:
        check_target("http://127.0.0.1/v3/sources/webhook/secret-id", allow_private=False)
    assert "secret-id" not in str(info.value)
