"""The web API (csv_merger/web/) through httpx against the real app.

Unit parts first (file names, the delivery window, job lifecycle rules,
bind/token rule), then the HTTP API with good and bad input.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from csv_merger.errors import ConfigError
from csv_merger.schema import fields_for
from csv_merger.settings import Settings
from csv_merger.web import create_app
from csv_merger.web.auth import is_loopback, required_token
from csv_merger.web.jobs import JobCounts, JobStatus, JobStore
from csv_merger.web.uploads import UploadStore, sanitise_filename
from csv_merger.web.window import in_window, next_window_start

pytestmark = pytest.mark.timeout(180)  # setup may start the session's Prefect API on a loaded machine


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


def test_rate_history_for_the_chart_stays_bounded_and_keeps_its_span():
    from csv_merger.web.jobs import HISTORY_POINTS

    store = JobStore()
    job = _job(store)
    store.set_status(job.id, JobStatus.RUNNING)
    for n in range(3 * HISTORY_POINTS):
        store.progress(job.id, JobCounts(rows_total=10_000, delivered=n, current_rate=float(n), limit_rate=10.0))
    history = store.get(job.id).history
    assert len(history) <= HISTORY_POINTS
    accepted = [rate for _, rate, _ in history]
    assert accepted[0] == 0.0 and accepted[-1] == 3 * HISTORY_POINTS - 1 and accepted == sorted(accepted)
    assert accepted[-HISTORY_POINTS // 2:] == [float(n) for n in range(int(accepted[-1]) - HISTORY_POINTS // 2 + 1,
                                                                       int(accepted[-1]) + 1)]  # latest: every one
    assert {limit for _, _, limit in history} == {10.0}
    store.set_status(job.id, JobStatus.COMPLETED)
    assert store.get(job.id).counts.limit_rate is None  # no limiter once the job ended


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


# ---------------------------------------------------------------- HTTP API

PEOPLE_CSV = "First Name,Last Name,Email,Title\nAda,Lovelace,ada@analytical.example,Countess\n"


@pytest.fixture
def web_settings(data_dir):
    """Settings for an in-process app; the flow (same process) reads the same fresh data folder."""
    from csv_merger.settings import get_settings

    return get_settings()


@pytest.fixture
async def make_client(web_settings):
    """``await make_client(settings_overrides, **create_app_kwargs)`` -> an httpx client on a running app
    (lifespan entered, so the expiry sweep runs); ``client.app`` is the app."""
    opened = []

    async def make(overrides: dict | None = None, **kwargs) -> httpx.AsyncClient:
        settings = web_settings.model_copy(update=overrides or {})
        kwargs.setdefault("host", "127.0.0.1")
        kwargs.setdefault("embedded", True)
        app = create_app(settings, **kwargs)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://web", timeout=30)
        client.app = app
        opened.append((lifespan, client))
        return client

    yield make
    for lifespan, client in reversed(opened):
        await client.aclose()
        await lifespan.__aexit__(None, None, None)


def _files(*items: tuple[str, bytes]) -> list:
    return [("files", (name, data, "text/csv")) for name, data in items]


async def test_upload_shows_encoding_delimiter_rows_and_mapping(make_client, corpus_dir):
    client = await make_client()
    data = (corpus_dir / "datablist_people-1000.csv").read_bytes()
    r = await client.post("/api/uploads", files=_files(("datablist_people-1000.csv", data)))
    assert r.status_code == 201, r.text
    (preview,) = r.json()["files"]
    assert (preview["encoding"], preview["delimiter"], preview["rows"]) == ("utf-8", ",", 1000)
    mapping = {c["header"]: c["field"] for c in preview["columns"]}
    assert mapping["Email"] == "Work Email" and mapping["Sex"] is None
    assert "path" not in r.text and str(corpus_dir) not in r.text


async def test_company_preview_uses_company_fields(make_client, corpus_dir):
    client = await make_client()
    data = (corpus_dir / "datablist_organizations-100.csv").read_bytes()
    r = await client.post("/api/uploads", files=_files(("orgs.csv", data)), data={"table_type": "company"})
    (preview,) = r.json()["files"]
    fields = {c["field"] for c in preview["columns"]} - {None}
    assert {"Company Name", "Company Domain"} <= fields and fields <= set(fields_for("company"))
    r = await client.post(f"/api/uploads/{preview['id']}/preview", json={"table_type": "people"})
    assert {c["field"] for c in r.json()["columns"]} - {None} <= set(fields_for("people"))


async def test_spreadsheet_upload_is_previewed_like_a_csv(make_client, tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["Vorname", "E-Mail-Adresse", "Mobiltelefon"])
    book.active.append(["Anna", "anna@firma.de", 4915112345678])
    book.save(tmp_path / "kontakte.xlsx")
    client = await make_client()
    r = await client.post("/api/uploads", files=_files(("kontakte.xlsx", (tmp_path / "kontakte.xlsx").read_bytes())))
    assert r.status_code == 201, r.text
    (preview,) = r.json()["files"]
    assert (preview["encoding"], preview["rows"]) == ("xlsx", 1)
    assert {c["header"]: c["field"] for c in preview["columns"]} == {
        "Vorname": "First Name", "E-Mail-Adresse": "Work Email", "Mobiltelefon": "Phone Number"}


async def test_mapping_preset_saved_on_the_page_applies_to_later_uploads(make_client):
    client = await make_client()
    export = b"Rep,Handle,Mail\nZoe,https://www.linkedin.com/in/ann,ann@acme.com\n"
    (first,) = (await client.post("/api/uploads", files=_files(("crm.csv", export)))).json()["files"]
    assert first["preset"] is None
    r = await client.post("/api/mappings", json={"name": "acme-crm", "upload_id": first["id"],
                                                 "mapping": {"Rep": "ignore"}})
    assert r.status_code == 201, r.text
    assert r.json()["mapping"] == {"Rep": "ignore", "Handle": "LinkedIn Profile", "Mail": "Work Email"}
    later = b"Mail,Rep,Handle\nbob@beta.io,Zed,@bob\n"  # same export, columns reordered, handle not a URL
    (second,) = (await client.post("/api/uploads", files=_files(("crm2.csv", later)))).json()["files"]
    assert second["preset"] == "acme-crm"
    assert {c["header"]: (c["field"], c["how"]) for c in second["columns"]} == {
        "Mail": ("Work Email", "override"), "Rep": (None, "ignored"), "Handle": ("LinkedIn Profile", "override")}
    assert [p["name"] for p in (await client.get("/api/mappings")).json()["presets"]] == ["acme-crm"]
    r = await client.post("/api/mappings", json={"name": "../x", "upload_id": first["id"]})
    assert r.status_code == 422 and "preset name" in r.json()["error"]
    assert (await client.delete("/api/mappings/acme-crm")).status_code == 204
    assert (await client.delete("/api/mappings/acme-crm")).status_code == 404
    assert (await client.get("/api/mappings")).json() == {"presets": []}


async def test_binary_and_empty_files_are_refused_naming_the_file(make_client):
    client = await make_client()
    r = await client.post("/api/uploads", files=_files(("logo.csv", bytes(range(256)) * 40)))
    assert r.status_code == 422
    assert r.json()["file"] == "logo.csv" and "not CSV" in r.json()["error"]
    assert r.json()["error"].endswith(": upload a CSV text file")  # the page's words; the CLI says "give"
    r = await client.post("/api/uploads", files=_files(("empty.csv", b"")))
    assert r.status_code == 422
    assert r.json() == {"error": "empty.csv: empty file (no header, no rows): nothing to merge",
                        "file": "empty.csv"}
    uploads = client.app.state.service.uploads
    assert list(uploads.root.iterdir()) == []  # nothing kept


@pytest.mark.parametrize("data, what", [
    (b'[{"name": "Ann", "email": "ann@x.com"}, {"name": "Bob"}]', "a JSON array"),
    (b'{"name": "Ann"}\n{"name": "Bob"}\n', "JSON Lines"),
    (b"<head><title>Error</title></head><body>502</body>", "an HTML page"),
])
async def test_json_or_html_saved_as_csv_is_refused_like_a_binary_file(make_client, data, what):
    """Issue 9 item 13: the page shows the same error card as for a binary file."""
    client = await make_client()
    r = await client.post("/api/uploads", files=_files(("leads.csv", data)))
    assert r.status_code == 422
    assert r.json() == {"error": f"leads.csv: looks like {what}, not CSV: " + r.json()["error"].split(": ", 2)[2],
                        "file": "leads.csv"}
    assert list(client.app.state.service.uploads.root.iterdir()) == []


async def test_a_quote_never_closed_is_refused_like_an_unreadable_file(make_client):
    client = await make_client()
    data = b'Name,Email,Company\n"Ann,ann@x.com,Acme\nBob,bob@x.com,Beta\nCid,cid@x.com,Gamma\n'
    r = await client.post("/api/uploads", files=_files(("leads.csv", data)))
    assert r.status_code == 422
    assert r.json() == {"error": "leads.csv, line 2: a quote opened on this line is never closed: lines 2-4 (to "
                                 "the end of the file) were read as one record; close that quote or remove it, "
                                 "then try again", "file": "leads.csv"}
    assert list(client.app.state.service.uploads.root.iterdir()) == []


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)
UNCLOSED_QUOTE = b'Name,Email\n"Ann,ann@x.com\nBob,bob@x.com\n'
BROKEN_XLSX = b"PK\x03\x04 a zip that is not really one" * 8


@pytest.mark.usefixtures("prefect_harness")
async def test_a_bad_file_in_a_batch_is_left_out_named_and_the_rest_delivered(make_client, sink_factory):
    """README: a file that is not CSV "shows its error and is left out"; it used to refuse the whole batch."""
    sink = sink_factory()
    client = await make_client(allow_private_targets=True)
    other = b"Email,Company\ngrace@navy.example,Navy\n"
    r = await client.post("/api/uploads", files=_files(("people.csv", PEOPLE_CSV.encode()), ("logo.csv", PNG),
                                                      ("quote.csv", UNCLOSED_QUOTE), ("utf16.csv", b"\xff\xfeA\x00B"),
                                                      ("more.csv", other), ("sheet.csv", BROKEN_XLSX)))
    assert r.status_code == 201, r.text
    kept, left_out = r.json()["files"], r.json()["left_out"]
    assert [(f["name"], f["rows"]) for f in kept] == [("people.csv", 1), ("more.csv", 1)]
    assert [f["file"] for f in left_out] == ["logo.csv", "quote.csv", "utf16.csv", "sheet.csv"]
    reasons = [f["error"] for f in left_out]
    assert reasons[0].startswith("logo.csv: ") and "PNG image, not CSV" in reasons[0]
    assert reasons[1].startswith("quote.csv, line 2: a quote opened on this line is never closed")
    assert reasons[2].startswith("utf16.csv: ") and "UTF-16" in reasons[2]
    assert reasons[3].startswith("sheet.csv: ") and "not CSV" in reasons[3]
    assert len(list(client.app.state.service.uploads.root.iterdir())) == 2  # the left-out files are not kept
    r = await client.post("/api/jobs", json={"uploads": [f["id"] for f in kept], "webhook_url": sink.url})
    assert r.status_code == 201, r.text
    ended = await _wait_job(client, r.json()["id"], lambda j: j["status"] in ("Completed", "Failed", "Cancelled"))
    assert (ended["status"], ended["files"], ended["counts"]["delivered"]) == (
        "Completed", ["people.csv", "more.csv"], 2)
    assert sorted(rec["body"]["Work Email"] for rec in sink.records()) == [
        "ada@analytical.example", "grace@navy.example"]


async def test_a_batch_of_only_bad_files_is_refused_with_each_files_reason(make_client):
    client = await make_client()
    r = await client.post("/api/uploads", files=_files(("logo.csv", PNG), ("quote.csv", UNCLOSED_QUOTE)))
    assert r.status_code == 422
    body = r.json()
    assert [f["file"] for f in body["left_out"]] == ["logo.csv", "quote.csv"] and body["field"] == "files"
    assert body["error"] == "none of the 2 files can be merged: " + "; ".join(f["error"] for f in body["left_out"])
    assert "PNG image" in body["left_out"][0]["error"] and "never closed" in body["left_out"][1]["error"]
    assert list(client.app.state.service.uploads.root.iterdir()) == []


async def test_oversized_upload_is_413_with_the_limit(make_client):
    client = await make_client({"upload_limit_bytes": 1000})
    r = await client.post("/api/uploads", files=_files(("big.csv", PEOPLE_CSV.encode() * 200)))
    assert r.status_code == 413
    assert "1,000 bytes" in r.json()["error"] and "CSV_MERGER_UPLOAD_LIMIT_BYTES" in r.json()["error"]

    async def chunked():  # no Content-Length: the body is counted as it streams
        yield b'--x\r\nContent-Disposition: form-data; name="files"; filename="big.csv"\r\n\r\n'
        for _ in range(2000):
            yield PEOPLE_CSV.encode()
        yield b"\r\n--x--\r\n"

    r = await client.post("/api/uploads", content=chunked(),
                          headers={"content-type": "multipart/form-data; boundary=x"})
    assert r.status_code == 413  # refused as it streams, quoting the setting, not the framing allowance
    assert "the limit is 1,000 bytes per file (CSV_MERGER_UPLOAD_LIMIT_BYTES)" in r.json()["error"]


async def test_same_names_kept_unicode_kept_traversal_removed(make_client):
    client = await make_client()
    r = await client.post("/api/uploads", files=_files(("../../Kontakte März.csv", PEOPLE_CSV.encode()),
                                                      ("Kontakte März.csv", PEOPLE_CSV.encode())))
    assert r.status_code == 201
    first, second = r.json()["files"]
    assert first["name"] == second["name"] == "Kontakte März.csv" and first["id"] != second["id"]
    root = client.app.state.service.uploads.root
    stored = sorted(p.relative_to(root).parts[1] for p in root.glob("*/*.csv"))
    assert stored == ["Kontakte März.csv", "Kontakte März.csv"]


@pytest.mark.usefixtures("prefect_harness")
async def test_an_upload_named_like_server_metadata_keeps_its_rows_and_no_path_leaks(make_client, data_dir):
    """Issue 9 item 12: a file named upload.json overwrote the upload's metadata (rows lost) and the
    preview showed the metadata, absolute server path included."""
    client = await make_client()
    responses = [await client.post("/api/uploads", files=_files(("upload.json", PEOPLE_CSV.encode())))]
    assert responses[0].status_code == 201, responses[0].text
    (upload,) = responses[0].json()["files"]
    assert upload["name"] == "upload.json" and upload["rows"] == 1
    assert [c["header"] for c in upload["columns"]] == ["First Name", "Last Name", "Email", "Title"]
    responses.append(await client.post(f"/api/uploads/{upload['id']}/preview", json={}))
    assert responses[-1].json()["rows"] == 1
    responses.append(await client.post("/api/jobs", json={"uploads": [upload["id"]], "mode": "merge_only"}))
    job_id = responses[-1].json()["id"]
    await _wait_job(client, job_id, lambda j: j["status"] == "Completed")
    responses += [await client.get(f"/api/jobs/{job_id}"), await client.get("/api/jobs"),
                  await client.get(f"/api/jobs/{job_id}/merged.csv"), await client.get("/api/config")]
    assert "ada@analytical.example" in responses[-2].text and responses[-3].json()["jobs"][0]["rows_out"] == 1
    for r in responses:
        assert str(data_dir) not in r.text and str(data_dir.resolve()) not in r.text, r.request.url


async def test_mapping_override_must_name_a_canonical_field(make_client):
    client = await make_client()
    upload = (await client.post("/api/uploads", files=_files(("a.csv", PEOPLE_CSV.encode())))).json()["files"][0]
    r = await client.post(f"/api/uploads/{upload['id']}/preview",
                          json={"table_type": "people", "mapping": {"Title": "Job Titel"}})
    assert r.status_code == 422
    assert r.json()["field"] == "mapping.Title"
    assert "'Job Titel' is not a canonical people field" in r.json()["error"]
    r = await client.post("/api/jobs", json={"uploads": [upload["id"]], "mode": "merge_only",
                                             "mapping": {"Title": "Company Phone"}})  # a company field
    assert r.status_code == 422 and r.json()["field"] == "mapping.Title"
    r = await client.post(f"/api/uploads/{upload['id']}/preview",
                          json={"table_type": "people",
                                "mapping": {"Title": "ignore", "Email": "Personal Email", "First Name": "keep"}})
    columns = {c["header"]: (c["field"], c["how"]) for c in r.json()["columns"]}
    assert columns["Title"] == (None, "ignored") and columns["Email"] == ("Personal Email", "override")
    assert columns["First Name"] == (None, "override")


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hook", "http://169.254.169.254/latest/meta-data",
                                 "file:///etc/passwd", "http://10.0.0.5/hook"])
async def test_unsafe_webhook_url_is_refused(make_client, url):
    client = await make_client()  # started without --allow-private-targets
    upload = (await client.post("/api/uploads", files=_files(("a.csv", PEOPLE_CSV.encode())))).json()["files"][0]
    r = await client.post("/api/jobs", json={"uploads": [upload["id"]], "webhook_url": url})
    assert r.status_code == 422
    assert r.json()["field"] == "webhook_url" and "webhook" in r.json()["error"]
    assert (await client.get("/api/jobs")).json()["jobs"] == []


async def test_bad_numbers_and_unknown_uploads_name_the_field(make_client):
    client = await make_client()
    for rate in (-1, 1e-9):  # 1e-9: below the floor of 0.01 requests/s (tasks.deliver.job.MIN_RATE)
        r = await client.post("/api/jobs", json={"uploads": ["abc"], "rate": rate})
        assert r.status_code == 422 and r.json()["field"] == "rate"
        # the CLI's words (test_cli.py), not pydantic's "Input should be greater than or equal to 0.01"
        assert r.json()["error"] == (f"rate {rate:g} requests/s is below the floor of 0.01 requests/s "
                                     "(one request every 100 s)")
    r = await client.post("/api/jobs", json={"uploads": ["abc"], "rate": 20_000})
    assert r.status_code == 422 and r.json()["error"] == "rate: Input should be less than or equal to 10000"
    r = await client.post("/api/jobs", json={"uploads": ["0123456789abcdef"], "mode": "merge_only"})
    assert r.status_code == 404 and "0123456789abcdef" in r.json()["error"]


async def test_token_required_beyond_loopback(make_client):
    from pydantic import SecretStr

    client = await make_client({"api_token": SecretStr("s3cret-token")}, host="0.0.0.0")
    for path in ("/api/config", "/api/jobs", "/health"):
        r = await client.get(path)
        assert r.status_code == 401 and "API token" in r.json()["error"], path
    r = await client.post("/api/uploads", files=_files(("a.csv", PEOPLE_CSV.encode())))
    assert r.status_code == 401
    assert (await client.get("/api/config", headers={"Authorization": "Bearer wrong"})).status_code == 401
    assert (await client.get("/api/config", headers={"Authorization": "Bearer s3cret-token"})).status_code == 200
    shell = await client.get("/")  # the page shell, which then asks for the token
    assert shell.status_code == 200 and "default-src 'self'" in shell.headers["content-security-policy"]
    assert (await client.post("/api/session", content=b"{not json")).status_code == 422
    assert (await client.post("/api/session", json={"token": "nope"})).status_code == 401
    r = await client.post("/api/session", json={"token": "s3cret-token"})
    assert r.status_code == 200 and "httponly" in r.headers["set-cookie"].lower()
    assert (await client.get("/api/jobs")).status_code == 200  # the cookie now carries it
    assert "s3cret-token" not in (await client.get("/api/config")).text


async def test_uploads_expire_on_schedule(make_client):
    client = await make_client({"chunk_ttl_s": 1}, cleanup_interval_s=0.2)
    upload = (await client.post("/api/uploads", files=_files(("a.csv", PEOPLE_CSV.encode())))).json()["files"][0]
    folder = client.app.state.service.uploads.root / upload["id"]
    assert folder.is_dir()
    deadline = time.monotonic() + 5
    while folder.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert not folder.exists()
    r = await client.post(f"/api/uploads/{upload['id']}/preview", json={})
    assert r.status_code == 404 and "expired" in r.json()["error"]


async def test_health_names_the_part_that_is_down(make_client, redis_url):
    client = await make_client({"redis_url": redis_url})
    r = await client.get("/health")
    assert r.status_code == 200 and r.json()["checks"]["redis"] == "ok"
    from csv_merger.testing import find_free_port

    dead = f"redis://127.0.0.1:{find_free_port()}/0"
    client = await make_client({"redis_url": dead}, prefect_api_url=f"http://127.0.0.1:{find_free_port()}/api")
    r = await client.get("/health")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "down" and sorted(body["down"]) == ["prefect_api", "redis"]
    assert "does not answer" in body["checks"]["redis"] and "does not answer" in body["checks"]["prefect_api"]


# ---------------------------------------------------------------- jobs on the real flow


async def _wait_job(client, job_id: str, until, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = (await client.get(f"/api/jobs/{job_id}")).json()
        if until(job):
            return job
        assert time.monotonic() < deadline, f"job never reached the expected state: {job}"
        await asyncio.sleep(0.2)


@pytest.mark.usefixtures("prefect_harness")
async def test_cancel_mid_delivery_stays_cancelled(make_client, sink_factory, corpus_dir):
    sink = sink_factory(auth_token="tok-123")  # answers 401 without the token
    client = await make_client(allow_private_targets=True)
    data = (corpus_dir / "datablist_people-1000.csv").read_bytes()
    upload = (await client.post("/api/uploads", files=_files(("people.csv", data)))).json()["files"][0]
    r = await client.post("/api/jobs", json={"uploads": [upload["id"]], "webhook_url": sink.url,
                                             "rate": 25, "burst": 5, "chunk_size": 200, "auth_token": "tok-123"})
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    assert "tok-123" not in r.text
    running = await _wait_job(client, job_id, lambda j: j["counts"]["delivered"] >= 10)
    assert running["status"] == "Running" and 0 < running["percent"] < 100
    assert running["counts"]["rows_total"] == 1000 and running["eta_s"] > 0

    r = await client.post(f"/api/jobs/{job_id}/cancel")
    assert r.json()["status"] in ("Cancelling", "Cancelled")
    ended = await _wait_job(client, job_id, lambda j: j["status"] not in ("Running", "Cancelling"), timeout=20)
    assert ended["status"] == "Cancelled" and ended["percent"] < 100
    accepted = sink.stats()["accepted"]
    assert 10 <= accepted < 1000
    assert ended["counts"]["delivered"] == accepted
    await asyncio.sleep(2)
    later = (await client.get(f"/api/jobs/{job_id}")).json()
    assert later["status"] == "Cancelled" and sink.stats()["accepted"] == accepted
    listed = (await client.get("/api/jobs")).json()["jobs"]
    assert [(j["id"], j["status"]) for j in listed] == [(job_id, "Cancelled")]
    assert len(sink.records()) == accepted and all(r["auth"] for r in sink.records())
    assert "tok-123" not in (await client.get("/api/jobs")).text
    from prefect.blocks.system import Secret

    with pytest.raises(ValueError):  # the job's Secret block is gone once the job ended
        await Secret.aload(f"csv-merger-web-auth-{job_id}")


@pytest.mark.usefixtures("prefect_harness")
async def test_start_pressed_twice_is_one_job_and_a_restart_resumes(make_client, sink_factory):
    """Issue 9 item 8: a second Start with the same upload, target and settings started a second job
    that sent every row again under other Idempotency-Keys. Now: 409 naming the running job; started
    again after it ended, it resumes on the same ledger and every row reaches the sink once."""
    sink = sink_factory()
    client = await make_client(allow_private_targets=True)
    rows = "".join(f"P{i},Q{i},p{i}@example.com,Title {i}\n" for i in range(60))
    upload = (await client.post("/api/uploads", files=_files(("p.csv", (PEOPLE_CSV + rows).encode()))))
    upload = upload.json()["files"][0]
    body = {"uploads": [upload["id"]], "webhook_url": sink.url, "rate": 10, "burst": 2, "chunk_size": 20}
    first = await client.post("/api/jobs", json=body)
    assert first.status_code == 201, first.text
    first_id = first.json()["id"]
    again = await client.post("/api/jobs", json={**body, "rate": 20})  # another rate: still the same rows
    assert again.status_code == 409
    assert again.json()["field"] == "job" and f"job {first_id} with the same files" in again.json()["error"]
    await _wait_job(client, first_id, lambda j: j["counts"]["delivered"] >= 5)
    await client.post(f"/api/jobs/{first_id}/cancel")
    await _wait_job(client, first_id, lambda j: j["status"] == "Cancelled", timeout=30)
    assert 5 <= sink.stats()["accepted"] < 61
    second = await client.post("/api/jobs", json=body)
    assert second.status_code == 201, second.text
    done = await _wait_job(client, second.json()["id"], lambda j: j["status"] in ("Completed", "Failed"),
                           timeout=90)
    assert done["status"] == "Completed" and done["percent"] == 100
    keys = [r["key"] for r in sink.records()]
    assert len(keys) == 61 and len(set(keys)) == 61 and sink.stats()["duplicate_keys"] == 0
    assert [j["id"] for j in (await client.get("/api/jobs")).json()["jobs"]] == [second.json()["id"], first_id]


@pytest.mark.usefixtures("prefect_harness")
async def test_a_job_with_no_rows_is_refused(make_client):
    """Issue 9 item 8: a header-only upload made a job that ended 'Completed 100 %'."""
    client = await make_client()
    upload = (await client.post("/api/uploads", files=_files(("empty.csv", b"First Name,Email\n"))))
    assert upload.status_code == 201  # the preview shows it, with its warning
    upload = upload.json()["files"][0]
    r = await client.post("/api/jobs", json={"uploads": [upload["id"]], "mode": "merge_only"})
    assert r.status_code == 422
    assert r.json() == {"error": "empty.csv: no data rows: only a header: nothing to merge or deliver",
                        "file": "empty.csv", "field": "uploads"}
    assert (await client.get("/api/jobs")).json()["jobs"] == []
    more = (await client.post("/api/uploads", files=_files(("more.csv", b"\xef\xbb\xbfFirst Name;Email\r\n\r\n"))))
    ids = [upload["id"], more.json()["files"][0]["id"]]
    error = "empty.csv, more.csv: no input holds a record (empty.csv: no data rows: only a header; " \
            "more.csv: no data rows: only a header): nothing to merge"
    r = await client.post("/api/jobs", json={"uploads": ids, "mode": "merge_only"})
    assert (r.status_code, r.json()["error"]) == (422, error + " or deliver")  # as `csv-merger merge` says it
    r = await client.post("/api/merge-preview", json={"uploads": ids})
    assert (r.status_code, r.json()["error"]) == (422, error)


@pytest.mark.usefixtures("prefect_harness")
async def test_off_hours_job_waits_for_the_window(make_client):
    now = datetime.now(timezone.utc)
    start = (now.hour + 2) % 24
    client = await make_client({"delivery_window": f"{start:02d}:00-{(start + 1) % 24:02d}:00", "timezone": "UTC"})
    upload = (await client.post("/api/uploads", files=_files(("a.csv", PEOPLE_CSV.encode())))).json()["files"][0]
    r = await client.post("/api/jobs", json={"uploads": [upload["id"]], "mode": "merge_only",
                                             "schedule": "off_hours"})
    job = r.json()
    assert r.status_code == 201 and job["status"] == "Scheduled"
    expected = next_window_start(now, f"{start:02d}:00-{(start + 1) % 24:02d}:00", "UTC").timestamp()
    assert job["scheduled_for"] == pytest.approx(expected, abs=1)
    await asyncio.sleep(1)
    assert (await client.get(f"/api/jobs/{job['id']}")).json()["status"] == "Scheduled"
    r = await client.post(f"/api/jobs/{job['id']}/cancel")
    assert r.json()["status"] == "Cancelled"
    await asyncio.sleep(1)
    job = (await client.get(f"/api/jobs/{job['id']}")).json()
    assert job["status"] == "Cancelled" and not job["has_merged_csv"]
    r = await client.get(f"/api/jobs/{job['id']}/merged.csv")
    assert r.status_code == 404


@pytest.mark.usefixtures("prefect_harness")
async def test_with_a_prefect_api_jobs_are_deployment_runs(make_client, sink_factory):
    """Start creates a flow run of the merge-and-deliver deployment; a worker-style process
    (``python -m prefect.engine``, as a process worker runs it) executes it; the page follows it."""
    import json
    import os
    import subprocess
    import sys

    from prefect.client.orchestration import get_client
    from prefect.settings import get_current_settings

    from tests.conftest import REPO

    api = get_current_settings().api.url
    async with get_client() as prefect:
        flow_id = await prefect.create_flow_from_name("merge-and-deliver")
        await prefect.create_deployment(flow_id=flow_id, name="merge-and-deliver", path=str(REPO),
                                        entrypoint="flows/merge_and_deliver.py:merge_and_deliver")
    sink = sink_factory(auth_token="tok-456")
    client = await make_client(allow_private_targets=True, embedded=False, prefect_api_url=api)
    upload = (await client.post("/api/uploads", files=_files(("a.csv", PEOPLE_CSV.encode())))).json()["files"][0]
    r = await client.post("/api/jobs", json={"uploads": [upload["id"]], "webhook_url": sink.url,
                                             "auth_token": "tok-456"})
    job = r.json()
    assert r.status_code == 201 and job["runner"] == "prefect" and job["status"] == "Pending"
    assert job["flow_run_url"].endswith(f"/runs/flow-run/{job['flow_run_id']}")  # the Prefect UI link
    async with get_client() as prefect:
        flow_run = await prefect.read_flow_run(job["flow_run_id"])
    assert flow_run.parameters["auth_token_block"] == f"csv-merger-web-auth-{job['id']}"
    assert "tok-456" not in json.dumps(flow_run.parameters)

    env = {**os.environ, "PREFECT__FLOW_RUN_ID": job["flow_run_id"], "PREFECT_API_URL": api}
    worker = subprocess.run([sys.executable, "-m", "prefect.engine"], cwd=REPO, env=env, timeout=90,
                            capture_output=True, text=True)
    assert worker.returncode == 0, worker.stderr[-2000:]
    ended = await _wait_job(client, job["id"], lambda j: j["status"] in ("Completed", "Failed", "Cancelled"))
    assert ended["status"] == "Completed" and ended["percent"] == 100
    assert ended["counts"]["delivered"] == 1 and ended["has_merged_csv"]
    assert [rec["body"]["Work Email"] for rec in sink.records()] == ["ada@analytical.example"]


async def test_job_outputs_expire_and_downloads_then_answer_410(make_client):
    client = await make_client({"chunk_ttl_s": 60})
    service = client.app.state.service
    job = service.jobs.add(mode="merge_only", runner="embedded", table_type="people", files=["a.csv"],
                           rate=10, burst=20, chunk_size=500)
    merged = service.jobs_root / job.id / "out" / "merged.csv"
    merged.parent.mkdir(parents=True)
    merged.write_text(PEOPLE_CSV + 'Eve,=cmd(),@eve,+1 555 0100\n', encoding="utf-8")
    service.jobs.update(job.id, merged_csv=str(merged))
    service.jobs.set_status(job.id, JobStatus.COMPLETED)
    r = await client.get(f"/api/jobs/{job.id}/merged.csv")
    # a download is for spreadsheets: formula-like cells neutralised, phones left alone
    assert r.status_code == 200
    assert r.text == PEOPLE_CSV.replace("\n", "\r\n") + "Eve,'=cmd(),'@eve,+1 555 0100\r\n"
    service.expire(now=time.time() + 30)
    assert merged.exists()
    service.expire(now=time.time() + 61)
    assert not (service.jobs_root / job.id).exists()
    r = await client.get(f"/api/jobs/{job.id}/merged.csv")
    assert r.status_code == 410 and "expired" in r.json()["error"]
    assert (await client.get(f"/api/jobs/{job.id}")).json()["expired"] is True


def test_cli_refuses_a_public_bind_without_token(capsys, monkeypatch, data_dir):
    from csv_merger.cli import main

    monkeypatch.delenv("CSV_MERGER_API_TOKEN", raising=False)
    assert main(["web", "--host", "0.0.0.0", "--port", "9"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == ("csv-merger: error: refusing to serve on 0.0.0.0: set CSV_MERGER_API_TOKEN "
                           "(the API needs a token beyond loopback)")


@pytest.mark.usefixtures("prefect_harness")
async def test_missing_deployment_is_a_clear_503(make_client):
    from prefect.settings import get_current_settings

    client = await make_client(embedded=False, prefect_api_url=get_current_settings().api.url,
                               deployment="merge-and-deliver/not-applied")
    upload = (await client.post("/api/uploads", files=_files(("a.csv", PEOPLE_CSV.encode())))).json()["files"][0]
    r = await client.post("/api/jobs", json={"uploads": [upload["id"]], "mode": "merge_only"})
    assert r.status_code == 503
    assert "deployment 'merge-and-deliver/not-applied' not found" in r.json()["error"]
    (job,) = (await client.get("/api/jobs")).json()["jobs"]
    assert job["status"] == "Failed" and "csv-merger setup" in job["error"]


@pytest.mark.usefixtures("prefect_harness")
def test_embedded_scheduled_job_waits_then_runs(web_settings, tmp_path):
    from csv_merger.web.flow_request import FlowRequest
    from csv_merger.web.runners import EmbeddedRunner

    source = tmp_path / "in.csv"
    source.write_text(PEOPLE_CSV, encoding="utf-8")
    store = JobStore()
    job = store.add(mode="merge_only", runner="embedded", table_type="people", files=["in.csv"], rate=10,
                    burst=20, chunk_size=500, status=JobStatus.SCHEDULED)
    start_at = time.time() + 3
    runner = EmbeddedRunner(store)
    runner.start(FlowRequest(job_id=job.id, ledger_id=f"web-{job.id}", files=[str(source)],
                             output_dir=str(tmp_path / "out"), webhook_url=None, table_type="people",
                             rate_limit=10, burst=20, chunk_size=500, mapping=None,
                             redis_url=None, allow_private_targets=False, data_dir=str(web_settings.data_dir),
                             scheduled_for=start_at))
    try:
        while time.time() < start_at - 0.5:
            assert store.get(job.id).status is JobStatus.SCHEDULED
            assert not (tmp_path / "out" / "merged.csv").exists()
            time.sleep(0.2)
        deadline = time.monotonic() + 60
        while not store.get(job.id).status.terminal and time.monotonic() < deadline:
            time.sleep(0.2)
        ended = store.get(job.id)
        assert ended.status is JobStatus.COMPLETED and ended.started_at >= start_at
        assert ended.rows_out == 1 and Path(ended.merged_csv).read_text(encoding="utf-8").count("\n") == 2
    finally:
        runner.close()


@pytest.mark.timeout(240)
@pytest.mark.slow
def test_sigterm_to_the_server_cancels_its_job_gracefully_and_stops_its_prefect_api(tmp_path, sink_factory):
    """SIGTERM to ``csv-merger web`` (docker stop) while a job delivers: no request 2 s after the signal,
    the job's summary says Cancelled with the sink's exact count, exit by SIGTERM (143), and Prefect's
    ephemeral API does not outlive the server (uvicorn re-raises the signal, which skips atexit)."""
    import json

    import psutil

    from csv_merger.testing import find_free_port, wait_for_port

    port = find_free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "CSV_MERGER_API_TOKEN"))}
    env.update(CSV_MERGER_DATA_DIR=str(tmp_path / "data"), PREFECT_HOME=str(tmp_path / "prefect"))
    proc = subprocess.Popen([sys.executable, "-m", "csv_merger", "web", "--port", str(port),
                             "--allow-private-targets"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sink = sink_factory(rate=1000, burst=1000)
    try:
        wait_for_port(port, timeout=30)
        deadline, api = time.monotonic() + 60, []
        while not api and time.monotonic() < deadline:  # the warm-up starts the API in the background
            api = [p for p in psutil.Process(proc.pid).children(recursive=True)
                   if "prefect.server.api.server" in " ".join(p.cmdline())]
            time.sleep(0.2)
        assert api, "the embedded server never started Prefect's API"
        base = f"http://127.0.0.1:{port}"
        rows = "Email,First Name\n" + "".join(f"p{i}@lead{i}.example,P{i}\n" for i in range(300))
        upload = httpx.post(f"{base}/api/uploads", files=_files(("people.csv", rows.encode())), timeout=30)
        job = httpx.post(f"{base}/api/jobs", json={"uploads": [upload.json()["files"][0]["id"]],
                                                   "webhook_url": sink.url, "rate": 10, "burst": 5}, timeout=30)
        assert job.status_code == 201, job.text
        while sink.stats()["accepted"] < 10:
            assert time.monotonic() < deadline + 60, "the job never delivered"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        signalled_at = time.time()
        proc.wait(timeout=60)
        assert proc.returncode in (-signal.SIGTERM, 143)  # killed by SIGTERM, as the shell's 143
        records = sink.records()
        late = max(r["t"] for r in records) - signalled_at
        print(f"web, SIGTERM: {len(records)} rows accepted, last request {late:+.2f} s after the signal")
        assert late <= 2.0
        (summary_path,) = (tmp_path / "data").rglob("summary.json")
        summary = json.loads(summary_path.read_text())
        assert summary["state"] == "Cancelled" and summary["delivery"]["delivered"] == len(records) < 300
        gone, alive = psutil.wait_procs(api, timeout=15)
        assert not alive, f"Prefect API still running after the server stopped: {[p.pid for p in alive]}"
    finally:
        if proc.poll() is None:
            proc.kill()


# ---------------------------------------------------------------- merge preview (before Start)

LEADS_A = ("First Name,Last Name,Email,LinkedIn,Title\n"
           "Ada,Lovelace,ada@analytical.example,,Countess\n"
           "Alan,Turing,,https://www.linkedin.com/in/aturing/,Mathematician\n"
           "Grace,Hopper,grace@navy.example,,Admiral\n")
LEADS_B = ("Email,Full Name,LinkedIn Profile,Phone\n"
           " ADA@Analytical.example ,Ada Lovelace,,+44 20 7946 0000\n"
           "alan@bletchley.example,Alan Turing,http://linkedin.com/in/aturing,\n")


async def _upload_two(client) -> list[str]:
    r = await client.post("/api/uploads", files=_files(("a.csv", LEADS_A.encode()), ("b.csv", LEADS_B.encode())))
    assert r.status_code == 201, r.text
    return [f["id"] for f in r.json()["files"]]


async def test_merge_preview_shows_records_duplicates_and_why_rows_and_the_body(make_client):
    client = await make_client()
    ids = await _upload_two(client)
    r = await client.post("/api/merge-preview", json={"uploads": ids})
    assert r.status_code == 200, r.text
    preview = r.json()
    assert (preview["rows_in"], preview["rows_out"], preview["duplicates_merged"]) == (5, 3, 2)
    # Ada matched on her e-mail (case and spaces aside), Alan on his LinkedIn URL (http vs https, "www.")
    assert sorted((g["sources"], g["reasons"]) for g in preview["duplicate_groups"]) == [
        (["a.csv", "b.csv"], ["same LinkedIn URL: linkedin.com/in/aturing"]),
        (["a.csv", "b.csv"], ["same e-mail address: ada@analytical.example"])]
    first = preview["sample_rows"][0]
    assert (first["Work Email"], first["Phone Number"], first["Source"]) == (
        "ada@analytical.example", "+44 20 7946 0000", "a.csv | b.csv")
    assert len(preview["sample_rows"]) == 3
    # flat: the body is row 1's non-empty cells, exactly what the sink would receive
    assert preview["body"] == {k: v for k, v in first.items() if v}
    assert preview["body_bytes"] > 0 and preview["body_error"] is None
    assert preview["destination_capacity"] is None  # unknown until a destination ledger exists
    assert str(client.app.state.service.root) not in r.text
    assert list((client.app.state.service.root / "previews").iterdir()) == []  # the temporary merge is gone

    seed = (await client.post("/api/merge-preview", json={"uploads": ids, "payload": "seed"})).json()
    assert seed["body"]["person"]["Work Email"] == "ada@analytical.example"
    assert seed["body"]["_metadata"]["record_number"] == 1 and seed["rows_out"] == 3


async def test_merge_preview_with_an_uploaded_template(make_client):
    client = await make_client()
    ids = await _upload_two(client)
    r = await client.post("/api/merge-preview", json={"uploads": ids, "payload": "template"})
    assert r.status_code == 422 and r.json()["field"] == "template"
    bad = await client.post("/api/templates", files={"file": ("bad.j2", b'{"email": {{ row["Work Email"] | tojson }')})
    assert bad.status_code == 422 and bad.json()["field"] == "template"
    assert bad.json()["error"].startswith("bad.j2: payload template error")
    assert str(client.app.state.service.root) not in bad.text
    template = b'{"email": {{ row["Work Email"] | tojson }}, "n": {{ row_number }}}'
    r = await client.post("/api/templates", files={"file": ("body.j2", template)})
    assert r.status_code == 201, r.text
    tid = r.json()["id"]
    preview = (await client.post("/api/merge-preview", json={"uploads": ids, "payload": "template",
                                                             "template": tid})).json()
    assert preview["body"] == {"email": "ada@analytical.example", "n": 1}
    broken = b'{"missing": {{ row["No Such Column"] | tojson }}}'
    tid = (await client.post("/api/templates", files={"file": ("t.j2", broken)})).json()["id"]
    preview = (await client.post("/api/merge-preview", json={"uploads": ids, "payload": "template",
                                                             "template": tid})).json()
    assert preview["body"] is None and "template error" in preview["body_error"]


async def test_merge_preview_names_a_file_that_cannot_be_merged(make_client):
    client = await make_client()
    ids = await _upload_two(client)
    r = await client.post("/api/merge-preview", json={"uploads": ids, "mapping": {"Title": "Job Titel"}})
    assert r.status_code == 422 and r.json()["field"] == "mapping.Title"
    r = await client.post("/api/merge-preview", json={"uploads": [ids[0], "0123456789abcdef"]})
    assert r.status_code == 404 and "0123456789abcdef" in r.json()["error"]


# ---------------------------------------------------------------- live 429s and limiter rate (while running)


@pytest.mark.usefixtures("prefect_harness")
async def test_running_job_shows_live_429s_and_the_limiters_rate(make_client, sink_factory):
    sink = sink_factory(throttle_at=40, throttle_for=2)  # after 40 rows: 429 with Retry-After for 2 s
    client = await make_client(allow_private_targets=True)
    rows = "".join(f"Lead,{n},lead{n}@example.com,Buyer\n" for n in range(200))
    upload = (await client.post("/api/uploads", files=_files(("leads.csv", ("First Name,Last Name,Email,Title\n"
                                                                           + rows).encode())))).json()["files"][0]
    r = await client.post("/api/jobs", json={"uploads": [upload["id"]], "webhook_url": sink.url, "rate": 30,
                                             "burst": 5, "chunk_size": 100})
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    running = await _wait_job(client, job_id, lambda j: j["counts"]["http_429"] > 0
                              or j["status"] in ("Completed", "Failed", "Cancelled"))
    assert running["status"] == "Running", "the 429s were only shown once the job ended"
    assert running["counts"]["http_429"] <= sink.stats()["rejected_429"]
    limits = [limit for _, _, limit in running["history"] if limit is not None]
    assert limits and max(limits) <= 30  # the limiter's rate, requests/s, never above the job's rate
    ended = await _wait_job(client, job_id, lambda j: j["status"] in ("Completed", "Failed", "Cancelled"))
    assert ended["status"] == "Completed" and ended["counts"]["delivered"] == 200 == sink.stats()["accepted"]
    assert ended["counts"]["http_429"] == sink.stats()["rejected_429"] >= 1
    assert ended["counts"]["limit_rate"] is None  # no limiter once the job ended
    assert any(accepted > 0 for _, accepted, _ in ended["history"])


@pytest.mark.usefixtures("prefect_harness")
async def test_job_delivers_the_chosen_payload_shape(make_client, sink_factory):
    sink = sink_factory()
    client = await make_client(allow_private_targets=True)
    ids = await _upload_two(client)
    template = b'{"email": {{ row["Work Email"] | tojson }}, "n": {{ row_number }}}'
    tid = (await client.post("/api/templates", files={"file": ("clay.j2", template)})).json()["id"]
    r = await client.post("/api/jobs", json={"uploads": ids, "webhook_url": sink.url, "payload": "template"})
    assert r.status_code == 422 and r.json()["field"] == "template"  # the template shape needs its file
    r = await client.post("/api/jobs", json={"uploads": ids, "webhook_url": sink.url, "payload": "template",
                                             "template": tid})
    assert r.status_code == 201, r.text
    assert r.json()["payload"] == "clay.j2" and str(client.app.state.service.root) not in r.text
    ended = await _wait_job(client, r.json()["id"], lambda j: j["status"] in ("Completed", "Failed", "Cancelled"))
    assert ended["status"] == "Completed"
    preview = (await client.post("/api/merge-preview", json={"uploads": ids, "payload": "template",
                                                             "template": tid})).json()
    bodies = sorted((rec["body"] for rec in sink.records()), key=lambda b: b["n"])
    assert bodies[0] == preview["body"]  # the preview showed exactly what the target received for row 1
    assert bodies == [{"email": "ada@analytical.example", "n": 1}, {"email": "alan@bletchley.example", "n": 2},
                      {"email": "grace@navy.example", "n": 3}]


@pytest.mark.usefixtures("prefect_harness")
async def test_no_redis_password_in_the_prefect_database_after_a_web_job(make_client, sink_factory, tmp_path,
                                                                        monkeypatch):
    """Issue 9 item 9: the Redis password is resolved inside the run, never stored as a parameter."""
    import secrets

    from conftest import prefect_database_text
    from csv_merger.settings import get_settings
    from csv_merger.testing import RedisServer

    password = "pw-" + secrets.token_hex(8)
    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis", password=password)
    try:
        monkeypatch.setenv("REDIS_URL", server.url)  # the web server's and the run's environment
        get_settings.cache_clear()
        sink = sink_factory()
        client = await make_client({"redis_url": server.url}, allow_private_targets=True)
        upload = (await client.post("/api/uploads", files=_files(("people.csv", PEOPLE_CSV.encode())))).json()
        r = await client.post("/api/jobs", json={"uploads": [upload["files"][0]["id"]], "webhook_url": sink.url,
                                                 "rate": 50, "burst": 10})
        assert r.status_code == 201, r.text
        job = await _wait_job(client, r.json()["id"], lambda j: j["status"] not in ("Pending", "Running"), timeout=120)
        assert job["status"] == "Completed", job
        assert sink.stats()["accepted"] == 1
        import redis

        assert redis.Redis.from_url(server.url).keys("csv-merger:ledger:*"), "the job used the Redis ledger"
        await asyncio.sleep(2)  # logs reach the API in batches
        stored = prefect_database_text()
        assert "people.csv" in stored or "merge-and-deliver" in stored  # the database read is the right one
        assert password not in stored
        assert password not in (await client.get(f"/api/jobs/{job['id']}")).text
    finally:
        server.stop()
        get_settings.cache_clear()


# ---------------------------------------------------------------- destinations (issue 13)


async def test_merge_preview_shows_each_destinations_capacity(make_client, sink_factory):
    from tasks.deliver.destinations import destination_id, destination_label, open_destinations

    full, spare = sink_factory(), sink_factory()
    client = await make_client(allow_private_targets=True)
    settings = client.app.state.service.settings
    store = open_destinations(redis_url=settings.redis_url, data_dir=settings.data_dir)
    await store.set_used(destination_id(full.url), destination_label(full.url), 49_999)
    await store.aclose()
    ids = await _upload_two(client)
    r = await client.post("/api/merge-preview", json={"uploads": ids, "webhook_url": [full.url, spare.url]})
    preview = r.json()
    assert preview["destination_capacity"] == 1 + 50_000
    assert [(d["used"], d["left"]) for d in preview["destinations"]] == [(49_999, 1), (0, 50_000)]
    assert full.url not in r.text and "/hook" not in r.text  # labels only: a webhook URL is a credential


@pytest.mark.usefixtures("prefect_harness")
async def test_a_web_dry_run_sends_nothing_and_keeps_its_plan(make_client, sink_factory):
    sink = sink_factory()
    client = await make_client(allow_private_targets=True)
    upload = (await client.post("/api/uploads", files=_files(("p.csv", PEOPLE_CSV.encode())))).json()["files"][0]
    r = await client.post("/api/jobs", json={"uploads": [upload["id"]], "webhook_url": sink.url, "dry_run": True})
    assert r.status_code == 201, r.text
    job = await _wait_job(client, r.json()["id"], lambda j: j["status"] in ("Completed", "Failed"))
    assert job["status"] == "Completed" and job["dry_run"], job
    assert job["plan"]["to_send"] == 1 and job["plan"]["destinations"][0]["used"] == 0
    assert sink.stats()["accepted"] == 0


@pytest.mark.usefixtures("prefect_harness")
async def test_a_web_job_rolls_over_to_its_next_webhook(make_client, sink_factory):
    from tasks.deliver.destinations import destination_id, destination_label, open_destinations

    full, spare = sink_factory(), sink_factory()
    client = await make_client(allow_private_targets=True)
    settings = client.app.state.service.settings
    store = open_destinations(redis_url=settings.redis_url, data_dir=settings.data_dir)
    await store.set_used(destination_id(full.url), destination_label(full.url), 49_995)
    await store.aclose()
    rows = "".join(f"P{i},Q{i},p{i}@example.com,Title {i}\n" for i in range(20))
    upload = (await client.post("/api/uploads", files=_files(("p.csv", (PEOPLE_CSV + rows).encode()))))
    r = await client.post("/api/jobs", json={"uploads": [upload.json()["files"][0]["id"]], "rate": 50,
                                             "webhook_url": f"{full.url}\n{spare.url}\n"})
    assert r.status_code == 201, r.text
    job = await _wait_job(client, r.json()["id"], lambda j: j["status"] in ("Completed", "Failed"))
    assert job["status"] == "Completed", job
    assert full.stats()["accepted"] == 5 and spare.stats()["accepted"] == 16
    assert [d["used"] for d in job["destinations"]] == [50_000, 16]


async def test_the_same_webhook_twice_is_refused(make_client, sink_factory):
    sink = sink_factory()
    client = await make_client(allow_private_targets=True)
    upload = (await client.post("/api/uploads", files=_files(("p.csv", PEOPLE_CSV.encode())))).json()["files"][0]
    r = await client.post("/api/jobs", json={"uploads": [upload["id"]], "webhook_url": [sink.url, sink.url]})
    assert r.status_code == 422 and r.json()["field"] == "webhook_url" and "twice" in r.json()["error"]


@pytest.mark.usefixtures("prefect_harness")
async def test_retry_failed_rows_resends_them_with_their_original_keys(make_client, sink_factory):
    """A job whose rows failed (every 3rd request refused with 400) offers "retry failed rows": the retry
    sends the dead-letter rows again under the original job id and row numbers (same Idempotency-Keys)."""
    sink = sink_factory(fail_every=3, fail_status=400)
    client = await make_client(allow_private_targets=True)
    rows = "".join(f"P{i},Q{i},p{i}@example.com,Title {i}\n" for i in range(5))
    upload = (await client.post("/api/uploads", files=_files(("p.csv", (PEOPLE_CSV + rows).encode()))))
    r = await client.post("/api/jobs", json={"uploads": [upload.json()["files"][0]["id"]], "webhook_url": sink.url,
                                             "rate": 50, "burst": 1})
    job = await _wait_job(client, r.json()["id"], lambda j: j["status"] in ("Completed", "Failed"))
    assert job["status"] == "Failed" and job["has_dead_letter"] and job["counts"]["failed"] == 2, job
    first_keys = {rec["key"] for rec in sink.records()}
    retry = await client.post(f"/api/jobs/{job['id']}/retry", json={})
    assert retry.status_code == 201, retry.text
    done = await _wait_job(client, retry.json()["id"], lambda j: j["status"] in ("Completed", "Failed"))
    assert done["mode"] == "retry" and done["status"] == "Completed" and done["counts"]["delivered"] == 2, done
    keys = [rec["key"] for rec in sink.records()]
    prefix = keys[0].rsplit("-", 1)[0]
    assert sorted(keys) == sorted(f"{prefix}-{n}" for n in range(1, 7))  # every row once, original keys
    assert set(keys) - first_keys and len(set(keys)) == 6
    again = await client.post(f"/api/jobs/{done['id']}/retry")
    assert again.status_code == 409 and "no failed rows" in again.json()["error"]
    assert (await client.post("/api/jobs/nope/retry")).status_code == 404
