"""The nightly-inbox flow: new files processed once, unreadable ones to failed/, failed runs retryable."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flows.nightly_inbox import nightly_inbox

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.usefixtures("prefect_harness", "data_dir")

NEW_PEOPLE = "Email,First Name,Last Name,Company\nines.rivera@newco.io,Ines,Rivera,NewCo\nbo.lind@newco.io,Bo,Lind,NewCo\n"


def _inbox(sink, inbox: Path, **kw):
    return nightly_inbox(inbox=str(inbox), webhook_url=sink.url, rate_limit=200.0, burst=50, chunk_size=50,
                         allow_private_targets=True, **kw)


def test_new_files_are_processed_exactly_once(sink_factory, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for p in (REPO / "examples").glob("*.csv"):
        shutil.copy(p, inbox)
    (inbox / "junk.csv").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    sink = sink_factory(rate=400, burst=100)

    first = _inbox(sink, inbox)
    assert sorted(Path(p).name for p in first.processed) == ["apollo_export.csv", "hubspot_contacts.csv",
                                                              "salesnav_scrape.csv"]
    assert all(Path(p).parent.parent == inbox / "processed" and Path(p).is_file() for p in first.processed)
    (junk,) = first.failed
    assert Path(junk).parent.parent == inbox / "failed" and Path(junk).name == "junk.csv"
    assert "junk.csv" in Path(junk + ".error.txt").read_text()
    assert list(inbox.glob("*.csv")) == []
    assert first.job.delivery.delivered == 80 and sink.stats()["accepted"] == 80

    second = _inbox(sink, inbox)  # nothing new: nothing sent, nothing moved
    assert (second.processed, second.failed, second.job) == ([], [], None)
    assert sink.stats()["accepted"] == 80

    (inbox / "apollo_export.csv").write_text(NEW_PEOPLE, encoding="utf-8")  # same name as a processed file
    third = _inbox(sink, inbox)
    (moved,) = third.processed
    assert Path(moved).name == "apollo_export-1.csv"  # the earlier file is not overwritten
    assert third.job.delivery.delivered == 2 and sink.stats()["accepted"] == 82


def test_a_failed_run_leaves_its_files_retryable(sink_factory, tmp_path, free_port):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "new.csv").write_text(NEW_PEOPLE, encoding="utf-8")
    sink = sink_factory(rate=400, burst=100)

    state = _inbox(sink, inbox, redis_url=f"redis://127.0.0.1:{free_port}/0", return_state=True)  # Redis down
    assert state.is_failed()
    assert [p.name for p in inbox.glob("*.csv")] == ["new.csv"]
    assert not (inbox / "processed").exists() and sink.stats()["accepted"] == 0

    retry = _inbox(sink, inbox)
    assert [Path(p).name for p in retry.processed] == ["new.csv"] and sink.stats()["accepted"] == 2


def test_files_none_of_which_has_a_data_row_move_to_failed_once(sink_factory, tmp_path):
    """The merge refuses them; left in the inbox they would fail every night. One such file beside a file
    with rows is merged (a warning), as ``csv-merger merge`` does."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "header.csv").write_text("Email,First Name\n", encoding="utf-8")
    (inbox / "blank.csv").write_bytes(b"")
    sink = sink_factory()

    result = _inbox(sink, inbox)
    assert sorted(Path(p).name for p in result.failed) == ["blank.csv", "header.csv"] and result.job is None
    assert all(Path(p).parent.parent == inbox / "failed" for p in result.failed)
    assert (Path(result.failed[0] + ".error.txt").read_text()
            == "blank.csv, header.csv: no input holds a record (blank.csv: empty file; "
               "header.csv: no data rows: only a header): nothing to merge\n")
    assert list(inbox.glob("*.csv")) == [] and sink.stats()["received"] == 0

    (inbox / "header.csv").write_text("Email,First Name\n", encoding="utf-8")
    (inbox / "new.csv").write_text(NEW_PEOPLE, encoding="utf-8")
    mixed = _inbox(sink, inbox)
    assert sorted(Path(p).name for p in mixed.processed) == ["header.csv", "new.csv"] and mixed.failed == []
    assert mixed.job.delivery.delivered == 2
