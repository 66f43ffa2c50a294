"""The local Clay-like sink, run as a real ``csv-merger sink`` process."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from conftest import REPO

from csv_merger.testing import find_free_port

pytestmark = pytest.mark.timeout(60)


def post(sink, body: dict, key: str | None = None, **headers) -> httpx.Response:
    if key is not None:
        headers["Idempotency-Key"] = key
    return httpx.post(sink.url, json=body, headers=headers, timeout=5)


def test_unlimited_sink_accepts_and_records_everything(sink_factory):
    sink = sink_factory()
    for i in range(5):
        assert post(sink, {"Work Email": f"a{i}@x.com", "n": i}, key=f"job-{i}").status_code == 200
    assert post(sink, {"n": 0}, key="job-0").status_code == 200  # same key again
    assert post(sink, {"n": 9}).status_code == 200  # no key
    stats = sink.stats()
    assert (stats["received"], stats["accepted"], stats["rejected_429"]) == (7, 7, 0)
    assert (stats["distinct_keys"], stats["duplicate_keys"], stats["no_key"]) == (5, 1, 1)
    records = sink.records()
    assert [r["key"] for r in records] == [f"job-{i}" for i in range(5)] + ["job-0", None]
    assert records[2]["body"] == {"Work Email": "a2@x.com", "n": 2}
    assert records[0]["path"] == "/hook" and records[0]["auth"] is False


def test_token_bucket_answers_429_with_retry_after_above_the_burst(sink_factory):
    sink = sink_factory(rate=0.5, burst=3)  # a token every 2 s: request timing does not matter
    answers = [post(sink, {"n": i}) for i in range(5)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429, 429]
    assert answers[3].headers["Retry-After"] == "2"  # about 2 s to the next token, rounded up
    time.sleep(2.0)  # one token back
    assert [post(sink, {"n": i}).status_code for i in range(2)] == [200, 429]
    stats = sink.stats()
    assert (stats["accepted"], stats["rejected_429"]) == (4, 3)
    assert stats["max_in_window"] == 3


def test_a_body_cut_off_by_a_dead_client_is_not_a_submission(sink_factory):
    """A client killed mid-request (SIGKILL) leaves the headers and part of the body: nothing is accepted or
    recorded, so a resume's full body under the same Idempotency-Key is the only one the target has."""
    sink = sink_factory()
    host, port = sink.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Idempotency-Key: job-1\r\nContent-Length: 40\r\n\r\n{\"Work Email\": \"a@")
        time.sleep(0.3)  # the sink reads the headers and waits for the rest of the body
    deadline = time.monotonic() + 10
    while sink.stats()["disconnected"] < 1:
        assert time.monotonic() < deadline, sink.stats()
        time.sleep(0.05)
    stats = sink.stats()
    assert (stats["received"], stats["accepted"], stats["distinct_keys"]) == (0, 0, 0)
    assert sink.records() == []
    assert post(sink, {"Work Email": "a@x.com"}, key="job-1").status_code == 200  # the resume's full body
    assert [r["body"] for r in sink.records()] == [{"Work Email": "a@x.com"}]


@pytest.mark.parametrize("status", [202, 204])
def test_configured_success_status(sink_factory, status):
    sink = sink_factory(status=status)
    answer = post(sink, {"n": 1}, key="k")
    assert answer.status_code == status
    assert answer.content == (b"" if status == 204 else b'{"status": "ok"}')
    assert sink.stats()["accepted"] == 1


def test_fail_every_injects_the_failure_status(sink_factory):
    sink = sink_factory(fail_every=3, fail_status=502)
    codes = [post(sink, {"n": i}).status_code for i in range(7)]
    assert codes == [200, 200, 502, 200, 200, 502, 200]
    stats = sink.stats()
    assert (stats["accepted"], stats["failed_injected"]) == (5, 2)
    assert len(sink.records()) == 5


def test_reject_field_matches_one_row_at_any_depth(sink_factory):
    sink = sink_factory(reject_field="Work Email=bad@x.com")
    assert post(sink, {"Work Email": "good@x.com"}).status_code == 200
    assert post(sink, {"person": {"Work Email": "bad@x.com"}}).status_code == 400
    assert post(sink, {"Work Email": "bad@x.com"}).status_code == 400
    stats = sink.stats()
    assert (stats["accepted"], stats["rejected_field"]) == (1, 2)


def test_throttle_window_answers_429_and_counts_arrivals(sink_factory):
    sink = sink_factory(throttle_at=2, throttle_for=2)
    assert [post(sink, {"n": i}).status_code for i in range(2)] == [200, 200]
    first = post(sink, {"n": 2})
    assert first.status_code == 429 and first.headers["Retry-After"] == "2"
    time.sleep(0.2)
    assert post(sink, {"n": 3}).status_code == 429
    time.sleep(2.0)
    assert post(sink, {"n": 4}).status_code == 200  # window over, once only
    stats = sink.stats()
    assert stats["received_during_throttle"] == 1
    assert 0.2 <= stats["throttle_arrival_offsets"][0] < 1.5
    assert (stats["accepted"], stats["rejected_429"]) == (3, 2)


def test_auth_token_is_checked_and_never_recorded(sink_factory):
    sink = sink_factory(auth_token="s3cret-token")
    assert post(sink, {"n": 1}).status_code == 401
    assert post(sink, {"n": 2}, **{"x-clay-webhook-auth": "wrong"}).status_code == 401
    assert post(sink, {"n": 3}, **{"x-clay-webhook-auth": "s3cret-token"}).status_code == 200
    assert sink.stats()["unauthorized"] == 2
    assert [r["auth"] for r in sink.records()] == [True]
    assert "s3cret-token" not in sink.record_path.read_text()


def test_stats_of_non_json_body_and_wrong_method(sink_factory):
    sink = sink_factory()
    assert httpx.post(sink.url, content=b"not json", timeout=5).status_code == 200
    assert httpx.get(sink.url, timeout=5).status_code == 405
    assert sink.records()[0]["body"] == "not json"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stops_cleanly_on_signal(sink_factory, sig):
    sink = sink_factory()
    post(sink, {"n": 1})
    sink.proc.send_signal(sig)
    out, _ = sink.proc.communicate(timeout=10)
    assert sink.proc.returncode == 0
    assert "sink stopped: 1 accepted" in out
    assert "Traceback" not in (sink.record_path.parent / f"sink-{sink.port}.err").read_text()


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "csv_merger", "sink", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=30)


def test_bad_options_give_one_line_errors():
    both = run_cli("--fail-every", "3", "--fail-rate", "0.1")
    assert both.returncode == 2
    assert both.stderr.strip() == "csv-merger: error: --fail-every and --fail-rate exclude each other"
    assert run_cli("--reject-field", "no-equals-sign").stderr.count("\n") == 1


def test_port_in_use_is_a_clear_error():
    port = find_free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        result = run_cli("--port", str(port))
    assert result.returncode == 2
    assert f"sink cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_port_outside_0_to_65535_is_a_usage_error():
    """--port 99999 was an OverflowError traceback from bind(), exit 1."""
    for bad in ("99999", "65536", "-1"):
        result = run_cli("--port", bad)
        assert result.returncode == 2, result.stderr
        assert "Invalid value for '--port'" in result.stderr and "Traceback" not in result.stderr


def test_rate_after_changes_the_bucket_rate_after_n_accepted(sink_factory):
    sink = sink_factory(rate=0.5, burst=2, rate_after="3:1000")  # from the 3rd accepted request on: 1000/s
    assert [post(sink, {"n": i}).status_code for i in range(3)] == [200, 200, 429]  # 0.5/s: bucket empty
    time.sleep(2.1)  # one token at 0.5/s: the 3rd accepted; from then on the rate is 1000/s
    assert post(sink, {"n": 3}).status_code == 200
    time.sleep(0.02)
    assert [post(sink, {"n": i}).status_code for i in range(2)] == [200, 200]
    stats = sink.stats()
    assert [rate for _, rate in stats["rate_changes"]] == [1000]
    assert abs(stats["rate_changes"][0][0] - time.time()) < 5


def test_rate_after_is_checked():
    from csv_merger.errors import ConfigError
    from csv_merger.sink import SinkConfig

    assert SinkConfig(rate=10, rate_after="300:5,600:10").rate_changes() == [(300, 5.0), (600, 10.0)]
    for bad in ("300", "x:5", "300:0"):
        with pytest.raises(ConfigError, match="rate-after"):
            SinkConfig(rate=10, rate_after=bad)
    with pytest.raises(ConfigError, match="needs --rate"):
        SinkConfig(rate_after="3:5")
