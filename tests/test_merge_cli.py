"""``csv-merger merge`` as a user runs it: a real subprocess, exit codes,
one-line errors, no output on error, globs, --skip-bad-files, --report."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "csv_merger", "merge", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "leads.csv").write_text("First Name,Last Name,Email\nAnn,Lee,ann@acme.com\n")
    (tmp_path / "b" / "leads.csv").write_text("Full Name;E-mail;Notes\nAnn Lee;ANN@acme.com;met at fair\n"
                                              "Bob Ray;bob@ray.io;=1+2\n")
    return tmp_path


def test_merge_with_glob_report_and_same_base_names(inputs):
    out, report = inputs / "out.csv", inputs / "report.json"
    proc = run(str(inputs / "*" / "leads.csv"), "-o", str(out), "--report", str(report))
    assert proc.returncode == 0, proc.stderr
    assert "reading" in proc.stderr and "a/leads.csv" in proc.stderr      # progress on stderr
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["Source"] for r in rows] == ["a/leads.csv | b/leads.csv", "b/leads.csv"]
    assert rows[0]["Notes"] == "met at fair" and rows[1]["Notes"] == "'=1+2"
    data = json.loads(report.read_text())
    assert (data["rows_in"], data["rows_out"], data["duplicates_merged"]) == (3, 2, 1)
    first, second = data["files"]
    assert first["delimiter"] == "," and second["delimiter"] == ";"
    assert {"path", "encoding", "delimiter", "rows", "bad_rows", "warnings", "mapping"} <= set(first)
    assert second["mapping"]["Notes"] is None and second["mapping"]["E-mail"] == "Work Email"
    assert second["rows"] == 2



def test_a_file_given_twice_is_read_once_with_a_warning(inputs):
    """The same file by its name, another spelling and an overlapping glob: read once, and said so."""
    out, report = inputs / "out.csv", inputs / "report.json"
    proc = run("a/leads.csv", "./a/leads.csv", str(inputs / "a" / "leads.csv"), "*/leads.csv", "-o", str(out),
               "--report", str(report), cwd=inputs)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("csv-merger: warning: ")]
    assert warnings == [f"csv-merger: warning: a/leads.csv: given 4 times (also as {inputs / 'a' / 'leads.csv'}): "
                        "read once"]
    data = json.loads(report.read_text())
    assert [(f["path"], f["rows"]) for f in data["files"]] == [("a/leads.csv", 1), ("b/leads.csv", 2)]
    assert data["rows_in"] == 3 and data["warnings"] == [warnings[0].removeprefix("csv-merger: warning: ")]

def test_no_neutralise_formulas_flag(inputs):
    out = inputs / "out.csv"
    proc = run(str(inputs / "b" / "leads.csv"), "-o", str(out), "--no-neutralise-formulas", "-q")
    assert proc.returncode == 0 and proc.stderr == ""
    assert "\n=1+2" not in out.read_text() and ",=1+2" in out.read_text()


def test_unreadable_input_is_one_line_and_writes_nothing(inputs):
    out = inputs / "out.csv"
    missing = inputs / "missing.csv"
    proc = run(str(inputs / "a" / "leads.csv"), str(missing), "-o", str(out), "-q")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(missing) in lines[0] and "Traceback" not in proc.stderr
    assert not out.exists()

    binary = inputs / "photo.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    proc = run(str(binary), "-o", str(out), "-q")
    assert proc.returncode == 1 and "photo.csv" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()



def test_a_named_pipe_is_refused_as_run_refuses_it(inputs):
    """``merge fifo.csv`` waited for ever: looking for a workbook's first bytes, it opened the pipe. Now the
    line ``run`` gives, exit 1, no output; with --skip-bad-files the pipe is skipped and the rest merged."""
    import os

    out, pipe = inputs / "out.csv", inputs / "fifo.csv"
    os.mkfifo(pipe)
    proc = run(str(inputs / "a" / "leads.csv"), str(pipe), "-o", str(out), "-q")
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines() == [f"csv-merger: error: {pipe}: not a regular file (a pipe or device?)"]
    assert not out.exists()
    proc = run(str(inputs / "a" / "leads.csv"), str(pipe), "-o", str(out), "-q", "--skip-bad-files")
    assert proc.returncode == 0 and "fifo.csv: skipped (not a regular file" in proc.stderr, proc.stderr
    assert out.exists()


@pytest.mark.parametrize("name, data, hint", [
    ("photo.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4, "give the CSV file itself"),
    ("dump.csv", bytes(range(256)) * 40, "give a CSV text file"),
])
def test_a_binary_input_is_refused_in_command_line_words(tmp_path, name, data, hint):
    """The hint asks to give a file, as a command line does; "upload" is the web page's word."""
    (tmp_path / name).write_bytes(data)
    proc = run(str(tmp_path / name), "-o", str(tmp_path / "out.csv"), "-q")
    assert proc.returncode == 1
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith(f"csv-merger: error: {tmp_path / name}: looks like ") and line.endswith(f": {hint}"), line
    assert "upload" not in line

def test_an_output_that_cannot_be_written_or_is_not_a_regular_file_is_refused_first(inputs):
    """The output is written as a new file renamed over the old one: a link, device or pipe would be
    replaced (``-o /dev/null`` as root), and a folder that cannot be written to failed with a
    traceback only after the work (for ``run``: after every row was sent). Now one line, exit 2."""
    src = str(inputs / "a" / "leads.csv")
    (inputs / "link.csv").symlink_to(inputs / "a" / "leads.csv")
    cases = [(inputs / "link.csv", "is a link, device or pipe"), (Path("/dev/null"), "is a link, device or pipe"),
             (Path("/proc/out.csv"), "cannot write in /proc")]
    for out, reason in cases:
        proc = run(src, "-o", str(out), "-q")
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr
        assert lines[0].startswith(f"csv-merger: error: --output {out}: {reason}"), proc.stderr
    assert (inputs / "link.csv").is_symlink() and Path("/dev/null").is_char_device()
    proc = run(src, "-o", str(inputs / "ok.csv"), "--report", "/proc/r.json", "-q")
    assert proc.returncode == 2 and "--report /proc/r.json: cannot write in /proc" in proc.stderr
    assert not (inputs / "ok.csv").exists() and "Traceback" not in proc.stderr


def test_skip_bad_files_merges_the_rest(inputs):
    out, report = inputs / "out.csv", inputs / "r.json"
    proc = run(str(inputs / "a" / "leads.csv"), str(inputs / "missing.csv"), "-o", str(out),
               "--report", str(report), "--skip-bad-files")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(report.read_text())
    assert data["rows_out"] == 1
    [skipped] = [f for f in data["files"] if f["skipped"]]
    assert skipped["path"].endswith("missing.csv") and skipped["error"]


def test_usage_errors(inputs):
    proc = run(str(inputs / "a" / "leads.csv"), "-o", str(inputs / "out.csv"), "--type", "widgets")
    assert proc.returncode == 2 and "widgets" in proc.stderr and "Traceback" not in proc.stderr
    proc = run(str(inputs / "nope*.csv"), "-o", str(inputs / "out.csv"))
    assert proc.returncode == 1 and "no file matches" in proc.stderr


def test_mapping_file_overrides(inputs):
    mapping = inputs / "map.yaml"
    mapping.write_text("Notes: Job Title\nE-mail: ignore\n")
    out = inputs / "out.csv"
    proc = run(str(inputs / "b" / "leads.csv"), "-o", str(out), "--mapping", str(mapping), "-q")
    assert proc.returncode == 0, proc.stderr
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["Job Title"] == "met at fair" and rows[0]["Work Email"] == ""


def test_file_warnings_and_ragged_rows_reach_the_terminal(corpus_dir, tmp_path):
    out = tmp_path / "out.csv"
    proc = run(str(corpus_dir / "csvkit_no_header_row.csv"), str(corpus_dir / "csvkit_bad.csv"), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("csv-merger: warning: ")]
    assert any("csvkit_no_header_row.csv: first row looks like data" in w for w in warnings)
    assert any("csvkit_bad.csv: 2 ragged rows kept (lines 2, 3" in w for w in warnings)
    quiet = run(str(corpus_dir / "csvkit_bad.csv"), "-o", str(out), "-q")  # -q hides progress, never warnings
    assert [line for line in quiet.stderr.splitlines() if not line.startswith("csv-merger: warning: ")] == []
    assert any("csvkit_bad.csv: 2 ragged rows kept (lines 2, 3" in line for line in quiet.stderr.splitlines())


def test_a_quote_never_closed_refuses_the_file_naming_its_lines(tmp_path):
    """A quote never closed read the rest of the file as one record (Bob, Cid and Dan in Ann's
    First Name): merging it would deliver garbage for rows it swallowed, so the file is refused."""
    src, out, report = tmp_path / "unclosed.csv", tmp_path / "out.csv", tmp_path / "report.json"
    src.write_text('Name,Email,Company\n"Ann,ann@x.com,Acme\nBob,bob@x.com,Beta\nCid,cid@x.com,Gamma\n'
                   "Dan,dan@x.com\n")
    proc = run(str(src), "-o", str(out), "--report", str(report), "-q")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"csv-merger: error: {src}, line 2: a quote opened on this line is never closed: lines 2-5 (to the end "
        "of the file) were read as one record; close that quote or remove it, then try again"]
    assert not out.exists() and not report.exists() and proc.stdout == ""
    ok = tmp_path / "ok.csv"
    ok.write_text("Name,Email\nZed,zed@x.com\n")
    proc = run(str(src), str(ok), "-o", str(out), "--report", str(report), "--skip-bad-files", "-q")
    assert proc.returncode == 0, proc.stderr
    [skip_line] = proc.stderr.strip().splitlines()  # once, not once per list it is in
    assert skip_line.startswith(f"csv-merger: warning: {src}: skipped (line 2: a quote opened"), skip_line
    skipped, merged = json.loads(report.read_text())["files"]
    assert skipped["skipped"] and skipped["error"].startswith("line 2: a quote opened on this line is never closed")
    assert merged["rows"] == 1 and "Ann" not in out.read_text()


@pytest.mark.parametrize("data, what", [
    ('[{"name": "Ann", "email": "ann@x.com"}, {"name": "Bob", "email": "bob@x.com"}]\n', "a JSON array"),
    ('{"name": "Ann", "email": "ann@x.com"}\n{"name": "Bob", "email": "bob@x.com"}\n', "JSON Lines"),
    ("<head><title>Error</title></head><body>502 Bad Gateway</body>\n", "an HTML page"),
    ("<rows><row><name>Ann</name><email>ann@x.com</email></row></rows>\n", "an XML document"),
])
def test_json_html_or_xml_saved_as_csv_is_an_error_naming_the_file(tmp_path, data, what):
    """Issue 9 item 13: these merged as junk with exit 0 (a JSON array gave 'header only')."""
    src, out = tmp_path / "leads.csv", tmp_path / "out.csv"
    src.write_text(data)
    proc = run(str(src), "-o", str(out))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith(f"csv-merger: error: {src}: looks like {what}, not CSV")
    assert not out.exists()


def test_spreadsheet_input_and_e164_column(tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    book.active.title = "Leads"
    book.active.append(["Email", "Phone"])
    book.active.append(["ann@acme.com", 4155550134])
    book.create_sheet("More").append(["Email", "Phone"])
    book["More"].append(["bob@beta.io", "+44 20 7946 0958"])
    book.save(tmp_path / "leads.xlsx")
    out = tmp_path / "out.csv"
    proc = run(str(tmp_path / "leads.xlsx"), "-o", str(out), "--e164-column", "-q")
    assert proc.returncode == 0, proc.stderr
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["Source"], r["Phone Number"], r["Phone Number (E.164)"]) for r in rows] == [
        ("leads.xlsx#Leads", "4155550134", "+14155550134"), ("leads.xlsx#More", "+44 20 7946 0958", "+442079460958")]


def test_inputs_without_data_rows_are_an_error_unless_another_input_has_rows(tmp_path):
    """An empty, BOM-only or header-only input alone (or with only more of them) is an input error naming
    each file and why, exit 1, no output; beside a file with rows it is that file's warning (0 rows)."""
    empty, bom, header = tmp_path / "empty.csv", tmp_path / "bom.csv", tmp_path / "header.csv"
    empty.write_bytes(b"")
    bom.write_bytes(b"\xef\xbb\xbf\r\n")
    header.write_text("First Name,Email\n")
    out = tmp_path / "out.csv"
    for files, line in (
            ([header], f"{header}: no data rows: only a header: nothing to merge"),
            ([empty], f"{empty}: empty file: nothing to merge"),
            ([empty, bom, header], f"{empty}, {bom}, {header}: no input holds a record ({empty}: empty file; "
                                   f"{bom}: empty file; {header}: no data rows: only a header): nothing to merge")):
        proc = run(*map(str, files), "-o", str(out))
        assert proc.returncode == 1
        assert proc.stderr.strip().splitlines()[-1] == f"csv-merger: error: {line}"
        assert "Traceback" not in proc.stderr and not out.exists()
    people = tmp_path / "people.csv"
    people.write_text("First Name,Email\nAnn,ann@acme.com\n")
    report = tmp_path / "report.json"
    proc = run(str(header), str(people), str(empty), "-o", str(out), "--report", str(report))
    assert proc.returncode == 0, proc.stderr
    assert f"csv-merger: warning: {header}: no data rows: only a header" in proc.stderr.splitlines()
    assert f"csv-merger: warning: {empty}: empty file" in proc.stderr.splitlines()
    files = json.loads(report.read_text())["files"]
    assert [(f["rows"], f["skipped"], f["warnings"]) for f in files] == [
        (0, False, ["no data rows: only a header"]), (1, False, []), (0, False, ["empty file"])]
    with open(out, newline="", encoding="utf-8") as f:
        assert [(r["First Name"], r["Work Email"]) for r in csv.DictReader(f)] == [("Ann", "ann@acme.com")]
