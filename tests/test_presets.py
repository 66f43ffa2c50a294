"""Mapping presets (tasks/merge/headers/presets.py, ``csv-merger mappings``):
saved once for a tool's export, applied by themselves to later files with
the same header fingerprint, overridable, and refused clearly when broken."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest

from csv_merger.errors import ConfigError
from tasks.merge import inspect_file, merge_files
from tasks.merge.headers.presets import PresetStore, header_fingerprint

EXPORT = "Rep,Handle,Mail,Org\n"


def test_fingerprint_ignores_order_and_spelling_but_not_the_column_set():
    assert header_fingerprint(["First Name", "Email"]) == header_fingerprint(["email", "first_name"])
    assert header_fingerprint(["First Name", "Email"]) != header_fingerprint(["First Name", "Email", "Phone"])


def test_store_save_find_get_all_delete(tmp_path):
    store = PresetStore(tmp_path / "presets")
    assert store.all() == [] and store.find(["Rep"]) is None
    saved = store.save("acme-crm", ["Rep", "Handle", "Mail"], {"Handle": "linkedin profile", "Rep": "ignore"},
                       "people")
    assert saved.mapping == {"Handle": "LinkedIn Profile", "Rep": "ignore"}  # canonical spelling
    assert store.find(["mail", "handle", "rep"]) == saved == store.get("acme-crm")
    assert [p.name for p in store.all()] == ["acme-crm"]
    with pytest.raises(ConfigError, match="preset 'acme-crm' already covers files with these headers"):
        store.save("other", ["Mail", "Handle", "Rep"], {})
    store.save("acme-crm", ["Rep", "Handle", "Mail"], {"Handle": "keep"})  # replaced under its own name
    assert store.get("acme-crm").mapping == {"Handle": "keep"}
    store.delete("acme-crm")
    assert store.all() == []
    with pytest.raises(ConfigError, match="no mapping preset 'acme-crm'"):
        store.delete("acme-crm")


def test_bad_names_targets_and_files_are_clear_errors(tmp_path):
    store = PresetStore(tmp_path)
    with pytest.raises(ConfigError, match="preset name '../x'"):
        store.save("../x", ["A"], {})
    with pytest.raises(ConfigError, match="'Nope' is not a canonical field"):
        store.save("x", ["A"], {"A": "Nope"})
    (tmp_path / "broken.yaml").write_text("just text\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="broken.yaml: not a mapping preset"):
        store.all()


def test_merge_applies_the_preset_of_matching_files_only(tmp_path):
    presets = tmp_path / "presets"
    PresetStore(presets).save("acme-crm", ["Rep", "Handle", "Mail", "Org"],
                              {"Rep": "ignore", "Handle": "LinkedIn Profile", "Org": "Company Name"})
    a = tmp_path / "a.csv"
    a.write_text(EXPORT + "Zoe,https://www.linkedin.com/in/ann,ann@acme.com,Acme\n", encoding="utf-8")
    b = tmp_path / "b.csv"
    b.write_text("Rep,Handle,Mail\nZoe,@ann,bob@beta.io\n", encoding="utf-8")  # another column set
    out = tmp_path / "out.csv"
    report = merge_files([a, b], out, presets_dir=presets)
    first, second = report.files
    assert first.preset == "acme-crm" and first.warnings[0].startswith("mapping preset 'acme-crm' applied")
    assert first.mapping == {"Rep": None, "Handle": "LinkedIn Profile", "Mail": "Work Email", "Org": "Company Name"}
    assert first.ignored == ["Rep"] and first.mapping_how["Handle"] == "override"
    assert second.preset is None and second.mapping["Handle"] is None
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["LinkedIn Profile"] == "https://www.linkedin.com/in/ann" and rows[0]["Rep"] == ""
    # the user's mapping of this run wins over the preset
    report = merge_files([a], out, presets_dir=presets, mapping={"Rep": "keep"})
    assert report.files[0].mapping_how["Rep"] == "override" and report.files[0].ignored == []
    assert inspect_file(a, presets_dir=presets).preset == "acme-crm"
    assert inspect_file(a, presets_dir=tmp_path / "none").preset is None


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "csv_merger", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_cli_save_list_show_merge_delete(tmp_path):
    presets = tmp_path / "presets"
    export = tmp_path / "export.csv"
    export.write_text(EXPORT + "Zoe,https://www.linkedin.com/in/ann,ann@acme.com,Acme\n", encoding="utf-8")
    mapping = tmp_path / "m.yaml"
    mapping.write_text("Rep: ignore\nHandle: LinkedIn Profile\nOrg: company name\n", encoding="utf-8")
    proc = cli("mappings", "save", "acme-crm", str(export), "--mapping", str(mapping), "--dir", str(presets))
    assert proc.returncode == 0, proc.stderr
    assert "saved mapping preset 'acme-crm' (3 entries" in proc.stdout
    proc = cli("mappings", "list", "--dir", str(presets))
    assert proc.stdout.startswith("acme-crm\tpeople\t4 columns\t")
    proc = cli("mappings", "show", "acme-crm", "--dir", str(presets))
    assert proc.stdout == "Rep: ignore\nHandle: LinkedIn Profile\nOrg: Company Name\n"
    later = tmp_path / "later.csv"
    later.write_text("Org,Mail,Handle,Rep\nBeta,bob@beta.io,https://www.linkedin.com/in/bob,Zed\n", encoding="utf-8")
    out = tmp_path / "out.csv"
    proc = cli("merge", str(later), "-o", str(out), env={"CSV_MERGER_MAPPINGS_DIR": str(presets)})
    assert proc.returncode == 0, proc.stderr
    assert "mapping preset 'acme-crm' applied" in proc.stderr
    with open(out, newline="", encoding="utf-8") as f:
        (row,) = list(csv.DictReader(f))
    assert (row["Company Name"], row["LinkedIn Profile"], "Rep" in row) == ("Beta", "https://www.linkedin.com/in/bob",
                                                                             False)
    proc = cli("mappings", "save", "frozen", str(tmp_path / "missing.csv"), "--dir", str(presets))
    assert proc.returncode != 0 and "missing.csv" in proc.stderr and "Traceback" not in proc.stderr
    assert cli("mappings", "delete", "acme-crm", "--dir", str(presets)).returncode == 0
    assert cli("mappings", "list", "--dir", str(presets)).stdout == "no mapping presets saved\n"


def test_cli_save_without_mapping_freezes_todays_decisions(tmp_path):
    presets = tmp_path / "presets"
    export = tmp_path / "export.csv"
    export.write_text("Full Name,Email,Profile,Notes\nAnn Lee,ann@acme.com,https://www.linkedin.com/in/ann,x\n",
                      encoding="utf-8")
    assert cli("mappings", "save", "frozen", str(export), "--dir", str(presets)).returncode == 0
    assert PresetStore(presets).get("frozen").mapping == {
        "Full Name": "Full Name", "Email": "Work Email", "Profile": "LinkedIn Profile", "Notes": "keep"}
