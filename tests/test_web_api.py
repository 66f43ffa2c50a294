"""The web API (csv_merger/web/) through httpx against the real app.

Unit parts first (file names, the delivery window, job lifecycle rules,
bind/token rule), then the HTTP API with good and bad input.
"""

from __future__ import annotations

import asyncio
import io
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from csv_merger.errors import ConfigError
from csv_merger.settings import Settings
from csv_merger.web import create_app
from csv_merger.web.auth import is_loopback, required_token
from csv_merger.web.jobs import JobCounts, JobStatus, JobStore
from csv_merger.web.uploads import UploadStore, sanitise_filename
from csv_merger.web.window import in_window, next_window_start

pytestmark = pytest.mark.timeout(60)


# ---------------------------------------------------------------- file names


@pytest.mark.parametrize("given, expected", [
    ("../../etc/passwd", "passwd"),
    ("..\\..\\windows\\win.ini", "win.ini"),
    ("Kontakte Müller – März.csv", "Kontakte Müller – März.csv"),
    ("潜在客户.csv", "潜在客户.csv"),
    (".hidden.csv", "hidden.csv"),
    ("a<b>c:d|e?.csv", "a_b_c_d_e_.csv"),
    ("evil\x00name\n.csv", "evilname.csv"),
    ("..", "upload.csv"),
    ("", "upload.csv"),
])
def test_sanitise_filename_keeps_unicode_and_blocks_traversal(given, expected):
    assert sanitise_filename(given) == expected


def test_sanitise_filename_trims_long_names_keeping_the_extension():
    name = sanitise_filename("é" * 300 + ".csv")
    assert name.endswith(".csv") and len(name.encode()) <= 200


def test_same_name_uploads_are_both_kept(tmp_path):
    store = UploadStore(tmp_path, limit_bytes=1000, ttl_s=60)
    first = store.save("leads.csv", io.BytesIO(b"a,b\n1,2\n"))
    second = store.save("leads.csv", io.BytesIO(b"a,b\n3,4\n"))
    assert first.id != second.id and first.name == second.name == "leads.csv"
    assert first.path.read_bytes() != second.path.read_bytes()
    assert first.path.parent.parent == second.path.parent.parent == tmp_path


def test_upload_store_expires_old_uploads(tmp_path):
    store = UploadStore(tmp_path, limit_bytes=1000, ttl_s=10)
    upload = store.save("x.csv", io.BytesIO(b"a\n1\n"))
    assert store.expire(now=upload.created_at + 5) == []
    assert store.expire(now=upload.created_at + 11) == [upload.id]
    assert store.get(upload.id) is None and not upload.path.exists()


# ---------------------------------------------------------------- delivery window


def test_next_window_start_wraps_midnight_in_the_configured_timezone():
    berlin_noon = datetime(2026, 7, 1, 10, 0, tzinfo=timezone.utc)  # 12:00 in Berlin (CEST)
    start = next_window_start(berlin_noon, "22:00-06:00", "Europe/Berlin")
    assert start == datetime(2026, 7, 1, 20, 0, tzinfo=timezone.utc)
    inside = datetime(2026, 7, 1, 23, 30, tzinfo=timezone.utc)  # 01:30 Berlin
    assert in_window(inside, "22:00-06:00", "Europe/Berlin")
    assert next_window_start(inside, "22:00-06:00", "Europe/Berlin") == inside


def test_bad_window_or_timezone_is_a_config_error():
    now = datetime.now(timezone.utc)
    with pytest.raises(ConfigError, match="CSV_MERGER_DELIVERY_WINDOW"):
        next_window_start(now, "late", "UTC")
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        next_window_start(now, "22:00-06:00", "Mars/Olympus")


# ---------------------------------------------------------------- job lifecycle


def _job(store: JobStore):
    return store.add(mode="deliver", runner="embedded", table_type="people", files=["a.csv"],
                     rate=10, burst=20, chunk_size=500)


def test_progress_never_shows_100_before_the_end_and_never_goes_back():
    store = JobStore()
    job = _job(store)
    store.set_status(job.id, JobStatus.RUNNING)
    store.progress(job.id, JobCounts(rows_total=10, delivered=10, current_rate=5))
    assert store.get(job.id).percent() < 100
    store.progress(job.id, JobCounts(rows_total=10, delivered=4))  # a stale snapshot
    assert store.get(job.id).counts.delivered == 10
    store.set_status(job.id, JobStatus.COMPLETED)
    assert store.get(job.id).percent() == 100


def test_eta_is_remaining_rows_over_the_rate():
    store = JobStore()
    job = _job(store)
    store.set_status(job.id, JobStatus.RUNNING)
    store.progress(job.id, JobCounts(rows_total=1000, delivered=400, failed=100, current_rate=5.0))
    assert store.get(job.id).eta_s() == pytest.approx(500 / 5.0)


def test_a_cancelled_job_stays_cancelled():
    store = JobStore()
    job = _job(store)
    store.set_status(job.id, JobStatus.RUNNING)
    assert store.request_cancel(job.id).status is JobStatus.CANCELLING
    assert store.set_status(job.id, JobStatus.COMPLETED).status is JobStatus.CANCELLED
    assert store.set_status(job.id, JobStatus.RUNNING).status is JobStatus.CANCELLED
    store.progress(job.id, JobCounts(rows_total=10, delivered=10))
    assert store.get(job.id).counts.delivered == 0


# ---------------------------------------------------------------- bind rule


def test_loopback_detection():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3") and not is_loopback("example.com")


def test_refuses_to_serve_beyond_loopback_without_a_token(tmp_path):
    with pytest.raises(ConfigError, match="CSV_MERGER_API_TOKEN"):
        required_token("0.0.0.0", None)
    with pytest.raises(ConfigError, match="CSV_MERGER_API_TOKEN"):
        create_app(Settings(data_dir=tmp_path), host="0.0.0.0")
    assert required_token("127.0.0.1", None) is None
