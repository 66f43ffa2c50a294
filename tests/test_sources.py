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
    assert got == [tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "notes.txt"]  # glob sorted, duplicates once


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
