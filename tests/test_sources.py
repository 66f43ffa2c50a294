"""Input resolution: local paths, globs, file:// and http:// URLs (a real local HTTP server)."""

from __future__ import annotations

import functools
import http.server
import threading

import pytest

from csv_merger.errors import ConfigError, InputError, UnsafeTargetError
from tasks.merge import resolve_inputs


@pytest.fixture
def http_dir(tmp_path):
    root = tmp_path / "www"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "a" / "leads.csv").write_text("email\na@x.com\n")
    (root / "b" / "leads.csv").write_text("email\nb@y.com\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_paths_globs_and_file_urls(tmp_path):
    for name in ("b.csv", "a.csv", "notes.txt"):
        (tmp_path / name).write_text("email\nx@y.com\n")
    got = resolve_inputs([str(tmp_path / "*.csv"), (tmp_path / "notes.txt").as_uri(), str(tmp_path / "a.csv")],
                         tmp_path / "dl")
    # glob sorted; a.csv named twice is listed twice: the merge reads it once and warns (test_merge_cli)
    assert got == [tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "notes.txt", tmp_path / "a.csv"]


def test_http_downloads_keep_same_named_files_apart(http_dir, tmp_path):
    got = resolve_inputs([f"{http_dir}/a/leads.csv", f"{http_dir}/b/leads.csv"], tmp_path / "dl",
                         allow_private=True)
    assert [p.name for p in got] == ["leads.csv", "leads.csv"]
    assert [p.read_text() for p in got] == ["email\na@x.com\n", "email\nb@y.com\n"]


def test_errors_name_the_input(http_dir, tmp_path):
    with pytest.raises(InputError, match=r"missing\.csv: no such file"):
        resolve_inputs([str(tmp_path / "missing.csv")], tmp_path / "dl")
    with pytest.raises(InputError, match=r"nope-\*\.csv: the pattern matches no file"):
        resolve_inputs([str(tmp_path / "nope-*.csv")], tmp_path / "dl")
    with pytest.raises(InputError, match="gone.csv: cannot download: HTTP 404"):
        resolve_inputs([f"{http_dir}/gone.csv"], tmp_path / "dl", allow_private=True)
    with pytest.raises(UnsafeTargetError):
        resolve_inputs([f"{http_dir}/a/leads.csv"], tmp_path / "dl")  # loopback refused by default
    with pytest.raises(ConfigError, match="no input files"):
        resolve_inputs([], tmp_path / "dl")


@pytest.fixture
def listener():
    """A TCP listener on 127.0.0.1 that counts the connections made to it: (port, accepted list)."""
    import socket

    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    accepted, stop = [], threading.Event()

    def accept():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            accepted.append(conn)
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1], accepted
    stop.set()
    server.close()


@pytest.mark.parametrize("allow_private", [False, True])
def test_input_schemes_outside_the_allow_list_are_refused_before_any_connection(
        http_dir, listener, tmp_path, allow_private):
    """Issue 9 item 10: ftp:// reached 127.0.0.1 and fsspec's chained simplecache::http:// fetched
    from it, both without the SSRF check; now refused as input URLs, nothing connects."""
    port, accepted = listener
    for url, why in ((f"ftp://127.0.0.1:{port}/leads.csv", "input URL scheme 'ftp' refused"),
                     (f"simplecache::{http_dir}/a/leads.csv", "input URL scheme 'simplecache' refused")):
        with pytest.raises(UnsafeTargetError, match=why):
            resolve_inputs([url], tmp_path / "dl", allow_private=allow_private)
    assert accepted == [] and not (tmp_path / "dl").exists()


def test_refused_input_host_is_named_as_an_input_url(http_dir, tmp_path):
    with pytest.raises(UnsafeTargetError, match="^input URL host '127.0.0.1' resolves to 127.0.0.1, a loopback"):
        resolve_inputs([f"{http_dir}/a/leads.csv"], tmp_path / "dl")


def test_a_named_sheet_of_a_workbook_is_an_input_run_accepts(tmp_path):
    """``run book.xlsx#Leads`` was refused as "no such file" before Prefect started: the workbook is
    the file, the sheet is read later (merge always took it)."""
    import openpyxl

    from tasks.merge.sources import check_local_inputs

    book = openpyxl.Workbook()
    book.active.title = "Leads"
    book.active.append(["Email"])
    book.save(tmp_path / "book.xlsx")
    spec = f"{tmp_path / 'book.xlsx'}#Leads"
    check_local_inputs([spec])
    assert resolve_inputs([spec], tmp_path / "dl") == [tmp_path / "book.xlsx#Leads"]
    with pytest.raises(InputError, match="no such file"):
        check_local_inputs([f"{tmp_path / 'gone.xlsx'}#Leads"])
