"""The upload page end to end in headless Chromium (Debian's ``chromium``,
driven by Playwright through ``executable_path``; never ``playwright install``).

A real ``csv-merger web`` process (uvicorn, embedded Prefect runs) and a real
sink: upload two corpus files, check the mapping, deliver, watch progress
reach 100 %, download the merged CSV; then a binary file shows its error.
Screenshots go to ``test-output/screenshots/`` (git-ignored) for review.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from csv_merger.testing import find_free_port, wait_for_port
from tests.conftest import REPO
from tests.test_web_api import LEADS_A, LEADS_B

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(os.environ.get("CSV_MERGER_TEST_OUTPUT", REPO / "test-output")) / "screenshots"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00\x1f\xf3\xffa" * 20

pytestmark = pytest.mark.timeout(300)
# A job's first state changes wait for Prefect's ephemeral API to start (up to 90 s on a loaded machine).
JOB_STATE_MS = 150_000


@contextlib.contextmanager
def _serve(tmp_path: Path, **extra_env: str):
    """``csv-merger web --allow-private-targets`` on a free port, own data folder and Prefect home."""
    port = find_free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "CSV_MERGER_API_TOKEN"))}
    env.update(CSV_MERGER_DATA_DIR=str(tmp_path / "data"), PREFECT_HOME=str(tmp_path / "prefect"),
               DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false", **extra_env)
    binary = REPO / ".venv" / "bin" / "csv-merger"
    command = [str(binary) if binary.exists() else shutil.which("csv-merger"), "web", "--port", str(port),
               "--allow-private-targets"]
    log = open(tmp_path / "web.log", "w")
    # Own process group: the ephemeral Prefect API it starts is stopped with it.
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port(port, timeout=90)  # a cold start on a loaded 2-core machine took 33 s
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@pytest.fixture
def web_server(tmp_path):
    with _serve(tmp_path) as url:
        yield url


@pytest.fixture
def page():
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=20_000)  # a busy CI machine: the server shares 2 cores with other tests

    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium package to enable (.ci/run does)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        context.set_default_timeout(20_000)
        yield context.new_page()
        browser.close()


def _open(page, url: str) -> None:
    """Load the page and wait until it has its configuration (the form shows only then)."""
    from playwright.sync_api import expect

    violations = []
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    page.goto(url)
    expect(page.locator("#app")).to_be_visible()
    page.violations = violations


def _shot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


@pytest.mark.slow
def test_upload_map_deliver_watch_download(web_server, page, sink_factory, corpus_dir, tmp_path):
    from playwright.sync_api import expect

    sink = sink_factory(throttle_at=300, throttle_for=3)  # 429s mid-run, shown while it runs
    people, thunderbird = corpus_dir / "datablist_people-1000.csv", corpus_dir / "roundcube_tb_plain.csv"
    _open(page, web_server)
    page.set_input_files("#file-input", [str(people), str(thunderbird)])

    card = page.locator("article.file-card[data-file='datablist_people-1000.csv']")
    expect(card.locator("table.mapping-table")).to_be_visible()
    expect(card.locator(".facts")).to_contain_text("Rows 1,000")
    expect(card.locator(".facts")).to_contain_text("comma")
    expect(card.locator("select[data-header='Email']")).to_have_value("Work Email")
    tb_card = page.locator("article.file-card[data-file='roundcube_tb_plain.csv']")
    expect(tb_card.locator("select[data-header='Primary Email']")).to_have_value("Work Email")

    # Change two mappings: keep "Phone" under its own name, drop "Sex".
    phone = card.locator("tr", has=page.locator("select[data-header='Phone']"))
    phone.locator("select").select_option("keep")
    expect(phone.locator(".how")).to_have_text("override")
    expect(phone.locator("select")).to_have_value("keep")
    card.locator("select[data-header='Sex']").select_option("ignore")
    expect(card.locator("tr", has=page.locator("select[data-header='Sex']")).locator(".how")).to_have_text("ignored")
    _shot(page, "web-mapping.png")

    page.fill("#webhook-url", sink.url)
    page.fill("#rate", "150")
    page.fill("#burst", "50")
    page.fill("#chunk-size", "400")
    page.click("#start-btn")

    detail = page.locator("#job-detail")
    # While it runs: live counts, an ETA, and never 100 %.
    expect(detail).to_have_attribute("data-status", "Running", timeout=JOB_STATE_MS)
    expect(detail.locator(".stat", has_text="Delivered").locator("dd")).not_to_have_text("0")
    running_percent = float(detail.locator(".percent").get_attribute("data-percent"))
    assert 0 < running_percent < 100
    # Live, not only at the end: the 429s, the limiter's rate and a chart of both rates over time.
    expect(detail.locator(".stat", has_text="429s").locator("dd")).not_to_have_text(re.compile(r"^(0|–)$"))
    assert detail.get_attribute("data-status") == "Running"
    expect(detail.locator(".stat", has_text="Limit").locator("dd")).to_have_text(re.compile(r"^\d+\.\d/s$"))
    chart = detail.locator("svg.rate-chart")
    expect(chart).to_be_visible()
    assert int(chart.get_attribute("data-points")) >= 2
    assert chart.locator("path.line-accepted").get_attribute("d").startswith("M")
    _shot(page, "web-job-running.png")
    # Issue 9 item 8: Start stays disabled while the job it started runs (a second press sent every row twice).
    expect(page.locator("#start-btn")).to_be_disabled()
    expect(page.locator("#start-note")).to_contain_text("is running")
    expect(detail).to_have_attribute("data-status", "Completed", timeout=JOB_STATE_MS)
    expect(detail.locator(".percent")).to_have_text("100%")
    expect(detail.locator(".stat", has_text="Delivered").locator("dd")).to_have_text("1,001")
    expect(detail.locator(".stat", has_text="Failed").locator("dd")).to_have_text("0")
    expect(page.locator("#job-rows .badge")).to_have_text("Completed")
    expect(page.locator("#start-btn")).to_be_enabled()
    _shot(page, "web-job-finished.png")

    with page.expect_download() as info:
        detail.get_by_text("Download merged CSV").click()
    merged = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text(encoding="utf-8"))))
    assert len(merged) == 1001
    assert "Sex" not in merged[0]  # the ignored column is gone, the rest kept
    assert "Date of birth" in merged[0]
    people_rows = [row for row in merged if row["Source"] == "datablist_people-1000.csv"]
    assert len(people_rows) == 1000 and all(row["Phone"] for row in people_rows)  # kept as is
    source_emails = {row["Email"] for row in csv.DictReader(people.open(encoding="utf-8"))}
    assert source_emails <= {row["Work Email"] for row in merged}
    assert sink.stats()["accepted"] == 1001
    expect(detail.locator(".stat", has_text="429s").locator("dd")).to_have_text(f"{sink.stats()['rejected_429']:,}")
    assert page.violations == []  # the page works under its Content-Security-Policy


def test_binary_or_json_file_shows_its_error(web_server, page, tmp_path):
    from playwright.sync_api import expect

    fake, json_file, good = tmp_path / "photo.csv", tmp_path / "export.csv", tmp_path / "leads.csv"
    fake.write_bytes(PNG)
    json_file.write_text('[{"name": "Ann", "email": "ann@x.com"}, {"name": "Bob", "email": "bob@x.com"}]')
    good.write_text("Name,Email\nAnn,ann@x.com\n", encoding="utf-8")
    _open(page, web_server)
    page.set_input_files("#file-input", [str(fake), str(json_file)])
    for name, what in (("photo.csv", "PNG image, not CSV"), ("export.csv", "a JSON array, not CSV")):
        error = page.locator(f"article.file-card.error[data-file='{name}']")
        expect(error).to_contain_text(name)
        expect(error).to_contain_text(what)
        expect(error).to_contain_text("Left out: this file is not merged or sent.")
    expect(page.locator("#start-btn")).to_be_disabled()
    page.set_input_files("#file-input", [str(good)])  # the good file goes ahead, the bad ones stay named
    expect(page.locator("#start-btn")).to_be_enabled()
    expect(page.locator("#start-note")).to_have_text(
        "1 file, 1 rows ready (left out, see the errors above: photo.csv, export.csv)")
    _shot(page, "web-binary-error.png")


@pytest.mark.slow
def test_page_asks_for_the_api_token(tmp_path, page):
    from playwright.sync_api import expect

    with _serve(tmp_path, CSV_MERGER_API_TOKEN="page-token-1") as url:
        page.goto(url)
        expect(page.locator("#token-panel")).to_be_visible()
        expect(page.locator("#app")).to_be_hidden()
        page.fill("#token-input", "wrong")
        page.click("#token-form button")
        expect(page.locator("#token-error")).to_contain_text("wrong API token")
        page.fill("#token-input", "page-token-1")
        page.click("#token-form button")
        expect(page.locator("#app")).to_be_visible()
        expect(page.locator("#health-badge")).to_have_text("All services up")
        assert "page-token-1" not in page.content()


def test_workbook_upload_and_saving_a_mapping_preset(web_server, page, tmp_path):
    import openpyxl
    from playwright.sync_api import expect

    book = openpyxl.Workbook()
    book.active.append(["Rep", "Handle", "Mail"])
    book.active.append(["Zoe", "https://www.linkedin.com/in/ann", "ann@acme.com"])
    book.save(tmp_path / "crm.xlsx")
    later = tmp_path / "crm-later.csv"
    later.write_text("Mail,Handle,Rep\nbob@beta.io,@bob,Zed\n", encoding="utf-8")
    _open(page, web_server)
    page.set_input_files("#file-input", [str(tmp_path / "crm.xlsx")])
    card = page.locator("article.file-card[data-file='crm.xlsx']")
    expect(card.locator(".facts")).to_contain_text("Encoding xlsx")
    expect(card.locator("select[data-header='Handle']")).to_have_value("LinkedIn Profile")
    card.locator("select[data-header='Rep']").select_option("ignore")
    expect(card.locator("tr", has=page.locator("select[data-header='Rep']")).locator(".how")).to_have_text("ignored")
    card.locator("input.preset-name").fill("acme-crm")
    card.get_by_role("button", name="Save preset").click()
    expect(card.locator(".file-notice")).to_contain_text('Mapping saved as preset "acme-crm"')
    expect(card.locator(".facts")).to_contain_text("Preset acme-crm")
    page.set_input_files("#file-input", [str(later)])
    second = page.locator("article.file-card[data-file='crm-later.csv']")
    expect(second.locator(".facts")).to_contain_text("Preset acme-crm")
    expect(second.locator("select[data-header='Handle']")).to_have_value("LinkedIn Profile")
    expect(second.locator("select[data-header='Rep']")).to_have_value("ignore")
    _shot(page, "web-mapping-preset.png")

def test_merge_preview_and_payload_shape_before_start(web_server, page, tmp_path):
    from playwright.sync_api import expect

    (tmp_path / "a.csv").write_text(LEADS_A, encoding="utf-8")
    (tmp_path / "b.csv").write_text(LEADS_B, encoding="utf-8")
    _open(page, web_server)
    page.set_input_files("#file-input", [str(tmp_path / "a.csv"), str(tmp_path / "b.csv")])
    box = page.locator("#merge-preview")
    expect(box).to_have_attribute("data-state", "ready")
    expect(box.locator(".stat", has_text="Records after de-duplication").locator("dd")).to_have_text("3")
    expect(box.locator(".stat", has_text="Duplicates merged").locator("dd")).to_have_text("2")
    expect(box.locator(".dup-list li")).to_have_text([
        "a.csv + b.csv: same e-mail address: ada@analytical.example",
        "a.csv + b.csv: same LinkedIn URL: linkedin.com/in/aturing"])
    expect(box.locator(".sample-table tbody tr")).to_have_count(3)
    expect(box.locator(".stat", has_text="Destination")).to_have_count(0)  # capacity unknown: nothing shown
    body = box.locator(".json-body")
    assert json.loads(body.inner_text()) == {
        "First Name": "Ada", "Last Name": "Lovelace", "Full Name": "Ada Lovelace", "Work Email": "ada@analytical.example",
        "Phone Number": "+44 20 7946 0000", "Company Domain": "analytical.example", "Source": "a.csv | b.csv",
        "Title": "Countess"}
    _shot(page, "web-merge-preview.png")

    page.check("input[name=payload][value=seed]")
    expect(body).to_contain_text('"person"')
    assert json.loads(body.inner_text())["person"]["Work Email"] == "ada@analytical.example"
    page.check("input[name=payload][value=template]")
    expect(page.locator("#template-field")).to_be_visible()
    expect(box.locator("[role=alert]")).to_contain_text("upload a jinja2 template")
    template = tmp_path / "clay.j2"
    template.write_text('{"email": {{ row["Work Email"] | tojson }}, "row": {{ row_number }}}', encoding="utf-8")
    page.set_input_files("#template-input", str(template))
    expect(page.locator("#template-note")).to_contain_text("clay.j2")
    expect(body).to_contain_text('"row": 1')
    assert json.loads(body.inner_text()) == {"email": "ada@analytical.example", "row": 1}
    assert page.violations == []


@pytest.mark.slow
def test_usable_at_390_px(web_server, page, corpus_dir):
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 390, "height": 844})
    _open(page, web_server)
    page.set_input_files("#file-input", [str(corpus_dir / "datablist_people-1000.csv"),
                                         str(corpus_dir / "roundcube_tb_plain.csv")])
    expect(page.locator("#merge-preview")).to_have_attribute("data-state", "ready")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # The mapping table scrolls inside its box, and the box says so until its end is reached.
    frame = page.locator("article.file-card[data-file='roundcube_tb_plain.csv'] .mapping-wrap")
    expect(frame).to_have_attribute("data-more", "right down")
    expect(frame.locator(".scroll-hint")).to_be_visible()
    _shot(page, "web-390-files.png")
    frame.locator(".scroll-box").evaluate("box => { box.scrollLeft = box.scrollWidth; box.scrollTop = box.scrollHeight; }")
    expect(frame).to_have_attribute("data-more", "")
    expect(frame.locator(".scroll-hint")).to_be_hidden()
    page.check("input[name=mode][value=merge_only]")
    page.click("#start-btn")
    expect(page.locator("#job-detail")).to_have_attribute("data-status", "Completed", timeout=JOB_STATE_MS)
    expect(page.locator("#job-rows tr")).to_have_count(1)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    _shot(page, "web-390-job.png")
    assert page.violations == []


@pytest.mark.slow
def test_dry_run_two_webhooks_rollover_and_retry_failed_rows(tmp_path, page, sink_factory):
    """Issue 13 on the page: two webhook URLs (the first 5 short of its ceiling), the preview shows their
    room, a dry run sends nothing and shows its plan, the real run rolls over, and "Retry failed rows"
    sends the refused rows again (the second sink refuses every 5th request once)."""
    from playwright.sync_api import expect

    full, spare = sink_factory(), sink_factory(fail_every=5, fail_status=400)
    leads = tmp_path / "leads.csv"
    leads.write_text("First Name,Email\n" + "".join(f"Ann{i},ann{i}@acme.example\n" for i in range(20)),
                     encoding="utf-8")
    with _serve(tmp_path) as url:
        env = {**os.environ, "CSV_MERGER_DATA_DIR": str(tmp_path / "data")}
        env.pop("REDIS_URL", None)
        binary = REPO / ".venv" / "bin" / "csv-merger"
        subprocess.run([str(binary), "destinations", "set", full.url, "49995"], env=env, check=True, timeout=60)
        _open(page, url)
        page.set_input_files("#file-input", [str(leads)])
        page.fill("#webhook-url", f"{full.url}\n{spare.url}")
        preview = page.locator("#merge-preview")
        expect(preview.locator(".stat", has_text="Destinations can take").locator("dd")).to_have_text("50,005")

        page.check("#dry-run")
        page.click("#start-btn")
        detail = page.locator("#job-detail")
        expect(detail).to_have_attribute("data-status", "Completed", timeout=JOB_STATE_MS)
        expect(detail.locator(".plan")).to_contain_text("Dry run: nothing was sent")
        expect(detail.locator(".plan .stat", has_text="Would send").locator("dd")).to_have_text("20")
        expect(detail.locator(".plan .destinations")).to_contain_text("49,995 of 50,000 used, 5 left")
        assert full.stats()["accepted"] == spare.stats()["accepted"] == 0
        _shot(page, "web-dry-run.png")

        page.uncheck("#dry-run")
        expect(page.locator("#start-btn")).to_be_enabled()
        page.click("#start-btn")
        expect(detail).to_have_attribute("data-status", "Failed", timeout=JOB_STATE_MS)  # 3 rows refused
        expect(detail.locator(".destinations")).to_contain_text("50,000 of 50,000 used")
        assert full.stats()["accepted"] == 5 and spare.stats()["accepted"] == 12
        detail.locator("#retry-btn").click()
        expect(detail).to_have_attribute("data-status", "Completed", timeout=JOB_STATE_MS)
        expect(detail.locator(".stat", has_text="Delivered").locator("dd")).to_have_text("3")
        _shot(page, "web-retry.png")
        assert spare.stats()["accepted"] == 15 and full.stats()["accepted"] == 5
        keys = [r["key"] for r in full.records() + spare.records()]
        assert len(set(keys)) == 20  # every row once, the retried ones under their original keys
        assert page.violations == []
