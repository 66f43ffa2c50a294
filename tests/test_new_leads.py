"""Leads already in the table are not sent again: a second job that overlaps
an earlier one sends only the new leads; --resend sends all; a suppression
list is never sent to; the index holds keyed hashes, never addresses.
Real sink, real CLI processes (deliver and the flow's run), real Redis."""

from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from csv_merger.testing import write_merged_csv

REPO = Path(__file__).resolve().parent.parent


def _merged(path: Path, numbers, *more: dict[str, str]) -> Path:
    return write_merged_csv(path, [*({"First Name": f"Ann{i}", "Work Email": f"ann{i}@acme.example",
                                      "LinkedIn Profile": f"https://www.linkedin.com/in/ann-{i}"} for i in numbers),
                                   *more])


def _deliver(env: dict, path: Path, url: str, job: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "csv_merger", "deliver", str(path), "--webhook-url", url,
                           "--allow-private-targets", "--job-id", job, "--rate", "100", "--burst", "100",
                           "--dead-letter", str(path.with_name(f"dead-letter-{job}.csv")), *extra],
                          env=env, capture_output=True, text=True, timeout=180)


def test_a_second_job_sends_only_new_leads(store_env, tmp_path, sink_factory):
    sink = sink_factory()
    assert _deliver(store_env, _merged(tmp_path / "week1.csv", range(1, 11)), sink.url, "week1").returncode == 0
    second = _deliver(store_env, _merged(tmp_path / "week2.csv", range(8, 18)), sink.url, "week2")  # 30 % overlap
    assert second.returncode == 0, second.stderr
    assert "delivered 7/10 rows" in second.stdout and "skipped 3 already at the destination" in second.stdout
    assert sorted(r["body"]["First Name"] for r in sink.records()[10:]) == [f"Ann{i}" for i in range(11, 18)]
    with open(tmp_path / "dead-letter-week2.skipped.csv", newline="", encoding="utf-8") as f:
        skipped = list(csv.DictReader(f))
    assert [s["First Name"] for s in skipped] == ["Ann8", "Ann9", "Ann10"]
    assert {s["_status"] for s in skipped} == {"skipped"}

    again = _deliver(store_env, tmp_path / "week2.csv", sink.url, "week2-resend", "--resend")
    assert again.returncode == 0 and "delivered 10/10 rows" in again.stdout  # on purpose: all of them


def test_a_lead_matched_by_linkedin_only_is_known(tmp_path, sink_factory):
    env = {**os.environ, "CSV_MERGER_DATA_DIR": str(tmp_path / "data")}
    sink = sink_factory()
    assert _deliver(env, _merged(tmp_path / "a.csv", [1]), sink.url, "a").returncode == 0
    changed = tmp_path / "b.csv"  # same person, new address, LinkedIn URL written differently
    write_merged_csv(changed, [{"First Name": "Ann", "Work Email": "ann.new@other.example",
                                "LinkedIn Profile": "linkedin.com/in/ann-1/"}])
    done = _deliver(env, changed, sink.url, "b")
    assert done.returncode == 0 and "delivered 0/1 rows" in done.stdout and len(sink.records()) == 1


def test_a_suppression_list_is_never_sent_to(tmp_path, sink_factory):
    env = {**os.environ, "CSV_MERGER_DATA_DIR": str(tmp_path / "data")}
    sink = sink_factory()
    path = _merged(tmp_path / "leads.csv", range(1, 6), {"First Name": "Bob", "Work Email": "bob@blocked.example"})
    suppress = tmp_path / "do-not-contact.csv"
    suppress.write_text("email\nANN2@acme.example\nhttps://www.blocked.example/\n", encoding="utf-8")
    done = _deliver(env, path, sink.url, "s", "--suppress", str(suppress))
    assert done.returncode == 0, done.stderr
    assert "0 already at the destination, 2 suppressed" in done.stdout
    assert sorted(r["body"]["First Name"] for r in sink.records()) == ["Ann1", "Ann3", "Ann4", "Ann5"]
    assert "delivered 4/6 rows" in done.stdout


def test_a_suppression_list_saved_by_excel_on_windows_is_read(tmp_path):
    """A do-not-contact list in cp1252 (Excel's "CSV" on Windows) was refused with a raw codec error;
    merge reads that encoding, so the list is read the same way (charset-normalizer)."""
    from tasks.deliver.new_leads import read_suppression

    listed = tmp_path / "dnc.csv"
    listed.write_bytes("Email;Note\nrené@café.example;ne pas contacter\nbob@x.com;\n".encode("cp1252"))
    assert read_suppression(listed) == {"erené@café.example", "ebob@x.com"}
    quoted = tmp_path / "quoted.csv"  # Excel quotes every cell when asked to; a pipe-separated export; <address>
    quoted.write_text('"Name";"Email"\r\n"Ann";"ann@acme.example"\r\nBob\t<BOB@acme.example>\nc@x.com|2\n"www.blocked.example"\n')
    assert read_suppression(quoted) == {"eann@acme.example", "ebob@acme.example", "ec@x.com", "dblocked.example"}
    binary = tmp_path / "dnc.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(Exception) as refused:
        read_suppression(binary)
    assert str(refused.value).startswith(f"{binary}: ")


def test_the_index_holds_no_address(tmp_path, sink_factory):
    env = {**os.environ, "CSV_MERGER_DATA_DIR": str(tmp_path / "data")}
    sink = sink_factory()
    assert _deliver(env, _merged(tmp_path / "a.csv", range(1, 4)), sink.url, "a").returncode == 0
    with sqlite3.connect(tmp_path / "data" / "leads.sqlite3") as db:
        digests = [d for (d,) in db.execute("SELECT digest FROM leads")]
    assert len(digests) == 6  # an e-mail and a LinkedIn key per lead
    assert all(len(d) == 32 and all(c in "0123456789abcdef" for c in d) for d in digests)
    assert oct((tmp_path / "data" / "index.key").stat().st_mode)[-3:] == "600"


@pytest.mark.slow
def test_the_flow_skips_leads_an_earlier_run_sent(tmp_path, sink_factory):
    env = {**os.environ, "CSV_MERGER_DATA_DIR": str(tmp_path / "data")}
    sink = sink_factory()
    args = [sys.executable, "-m", "csv_merger", "run", "--webhook-url", sink.url, "--allow-private-targets",
            "--rate", "100", "--burst", "100"]
    apollo = str(REPO / "examples" / "apollo_export.csv")
    first = subprocess.run([*args, apollo, "--output-dir", str(tmp_path / "one")], env=env, capture_output=True,
                           text=True, timeout=240)
    assert first.returncode == 0, first.stderr
    sent_first = len(sink.records())
    every = sorted(str(p) for p in (REPO / "examples").glob("*.csv"))
    second = subprocess.run([*args, *every, "--output-dir", str(tmp_path / "two")], env=env, capture_output=True,
                            text=True, timeout=240)
    assert second.returncode == 0, second.stderr
    with open(tmp_path / "two" / "skipped.csv", newline="", encoding="utf-8") as f:
        skipped = len(list(csv.DictReader(f)))
    assert skipped > 0 and f"{skipped} already at the destination" in second.stdout
    assert len(sink.records()) == sent_first + 80 - skipped  # the examples merge to 80 leads
