"""SSRF guard: schemes, internal addresses in every spelling (IPv6 transition forms too), metadata
hosts; connections pinned to the checked address (real HTTP and TLS servers on 127.0.0.1)."""

import http.server
import ipaddress
import ssl
import subprocess
import threading

import httpx
import pytest

from csv_merger.errors import UnsafeTargetError
from csv_merger.safety import CheckedTarget, PinnedTransport, check_input_url, check_target


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
    ("http://[2002:7f00:1::]/hook", "6to4"),                       # 6to4 of 127.0.0.1
    ("http://[2002:a9fe:a9fe::]/hook", "6to4"),                    # 6to4 of 169.254.169.254
    ("http://[64:ff9b::7f00:1]/hook", "NAT64"),                    # NAT64 of 127.0.0.1
    ("http://[64:ff9b:1::a00:5]/hook", "NAT64"),                   # local-use NAT64 of 10.0.0.5
    ("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/hook", "Teredo"),
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


def test_checked_addresses_are_returned_for_pinning():
    assert check_target("https://8.8.8.8/hook", allow_private=False) == CheckedTarget(
        "8.8.8.8", (ipaddress.ip_address("8.8.8.8"),))
    assert check_target("http://127.0.0.1:8787/hook", allow_private=True) == CheckedTarget("127.0.0.1")


@pytest.mark.parametrize("url, why", [
    ("ftp://127.0.0.1/leads.csv", "input URL scheme 'ftp' refused"),
    ("simplecache::http://127.0.0.1/leads.csv", "input URL scheme 'simplecache' refused"),
    ("s3://bucket/leads.csv::http://127.0.0.1/x", "chained URLs"),
    ("http://127.0.0.1/leads.csv", "input URL host '127.0.0.1' resolves to 127.0.0.1, a loopback address"),
    ("https://[2002:7f00:1::]/leads.csv", "input URL host '2002:7f00:1::' resolves to 2002:7f00:1::, a 6to4"),
])
def test_input_urls_outside_the_allow_list_or_internal_are_refused(url, why):
    with pytest.raises(UnsafeTargetError, match=why.replace("(", r"\(")) as info:
        check_input_url(url, allow_private=False)
    assert "webhook" not in str(info.value)


def test_allowed_input_urls_pass():
    assert check_input_url("s3://bucket/leads.csv", allow_private=False) is None
    assert check_input_url("https://8.8.8.8/leads.csv", allow_private=False).addresses


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers 200 and records the Host header of every request."""

    hosts: list[str] = []

    def do_GET(self):
        self.hosts.append(self.headers["Host"])
        body = b"email\na@x.com\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder():
    """A real HTTP server on 127.0.0.1: (server, port); ``server.tls(cert, key)`` wraps it in TLS and
    records the SNI names clients send in ``server.sni``."""
    _Recorder.hosts = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.sni = []

    def tls(cert, key):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        ctx.sni_callback = lambda sock, name, _ctx: server.sni.append(name)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)

    server.tls = tls
    yield server
    server.shutdown()
    server.server_close()


def _serve(server):
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def test_connection_goes_to_the_checked_address_not_a_fresh_dns_answer(recorder):
    """Issue 9 item 11: the request reaches the address the check approved although the name does
    not resolve at all now (the extreme of DNS rebinding); Host stays the name."""
    port = _serve(recorder)
    target = CheckedTarget("webhook.test", (ipaddress.ip_address("127.0.0.1"),))
    with httpx.Client(transport=PinnedTransport(target)) as client:
        r = client.get(f"http://webhook.test:{port}/leads.csv")
    assert r.status_code == 200 and r.text == "email\na@x.com\n"
    assert _Recorder.hosts == [f"webhook.test:{port}"]
    assert str(r.request.url) == f"http://webhook.test:{port}/leads.csv"  # the caller sees its own URL
    with httpx.Client(transport=PinnedTransport(target)) as client, pytest.raises(UnsafeTargetError):
        client.get(f"http://other.test:{port}/")  # only the checked host is pinned


def test_tls_to_the_pinned_address_checks_the_certificate_against_the_name(recorder, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=webhook.test",
                    "-addext", "subjectAltName=DNS:webhook.test"], check=True, capture_output=True, timeout=60)
    recorder.tls(cert, key)
    port = _serve(recorder)
    verify = ssl.create_default_context(cafile=str(cert))
    target = CheckedTarget("webhook.test", (ipaddress.ip_address("127.0.0.1"),))
    with httpx.Client(transport=PinnedTransport(target, verify=verify)) as client:
        assert client.get(f"https://webhook.test:{port}/x").status_code == 200
    assert recorder.sni == ["webhook.test"] and _Recorder.hosts == [f"webhook.test:{port}"]
    other = CheckedTarget("evil.test", (ipaddress.ip_address("127.0.0.1"),))
    with httpx.Client(transport=PinnedTransport(other, verify=verify)) as client, pytest.raises(httpx.ConnectError):
        client.get(f"https://evil.test:{port}/x")  # the certificate is for webhook.test: refused


async def test_delivery_transport_posts_to_the_checked_address(sink_factory):
    """The webhook client (tasks/deliver/transport.py) pins the same way: the real sink on
    127.0.0.1 gets the POST for a name that does not resolve."""
    from tasks.deliver.transport import WorkerPools

    sink = sink_factory()
    target = CheckedTarget("webhook.test", (ipaddress.ip_address("127.0.0.1"),))
    async with httpx.AsyncClient(transport=WorkerPools(2, [target])) as client:
        r = await client.post(f"http://webhook.test:{sink.port}/hook", json={"email": "a@x.com"},
                              headers={"Idempotency-Key": "k-1"})
    assert r.status_code < 300, r.text
    assert sink.stats()["accepted"] == 1
