"""Payload shapes, template rendering, size check and idempotency keys."""

import csv
import json

import pytest

from csv_merger.errors import ConfigError
from tasks.payloads import (
    PayloadError,
    TemplatePayload,
    flat_payload,
    idempotency_key,
    make_body_builder,
    oversize_reason,
    seed_payload,
)

PERSON = {
    "First Name": "Ada", "Last Name": "Lovelace", "Work Email": "ada@ibm.com", "Work Email 2": "a@ibm.com",
    "Phone Number": "", "Company Name": "IBM", "Company Domain": "ibm.com", "Source": "a.csv; b.csv",
    "Favourite Colour": "green", "Empty Extra": "",
}


def test_flat_keeps_every_non_empty_cell_as_text_and_omits_empty_ones():
    body = json.loads(make_body_builder("flat", "people")(1, PERSON))
    assert body == {"First Name": "Ada", "Last Name": "Lovelace", "Work Email": "ada@ibm.com",
                    "Work Email 2": "a@ibm.com", "Company Name": "IBM", "Company Domain": "ibm.com",
                    "Source": "a.csv; b.csv", "Favourite Colour": "green"}
    assert list(body) == [k for k, v in PERSON.items() if v]  # column order kept


def test_seed_people_shape_matches_the_old_system():
    body = seed_payload(PERSON, 7, "people", timestamp="2026-01-01T00:00:00+00:00")
    assert set(body) == {"person", "company", "Source", "additional_fields", "_metadata"}
    assert body["person"]["First Name"] == "Ada" and body["person"]["Phone Number"] == ""
    assert body["person"]["Work Email 2"] == "a@ibm.com"  # extra value column stays with its field
    assert body["company"]["Company Name"] == "IBM" and "Company Industry" in body["company"]
    assert "First Name" not in body["company"] and "Company Name" not in body["person"]
    assert body["Source"] == "a.csv; b.csv"
    assert body["additional_fields"] == {"Favourite Colour": "green"}
    assert body["_metadata"] == {"record_number": 7, "timestamp": "2026-01-01T00:00:00+00:00",
                                 "source": "csv-merger"}


def test_seed_company_numbers_company_emails():
    rec = {"Company Name": "Acme", "Company Email": "info@acme.com", "Company Email 2": "sales@acme.com",
           "Company Email 3": "", "Company Phone": "+1 555", "Rating": "4.5", "Source": "x.csv"}
    body = seed_payload(rec, 3, "company")
    assert body["Company Email 1"] == "info@acme.com" and body["Company Email 2"] == "sales@acme.com"
    assert "Company Email" not in body and "Company Email 3" not in body
    assert body["Company Phone"] == "+1 555" and body["Source"] == "x.csv"
    assert body["additional_fields"] == {"Rating": "4.5"}
    assert body["_metadata"]["record_number"] == 3


def test_json_inside_a_cell_is_sent_as_an_escaped_string(corpus_dir):
    with open(corpus_dir / "spectrum_json.csv", newline="") as f:
        (record,) = list(csv.DictReader(f))
    for mode in ("flat", "seed"):
        body = json.loads(make_body_builder(mode, "people")(1, record))
        val = body["val"] if mode == "flat" else body["additional_fields"]["val"]
        assert val == '{"type": "Point", "coordinates": [102.0, 0.5]}'


def test_nul_bytes_never_reach_the_json(corpus_dir):
    with open(corpus_dir / "csvkit_null_byte.csv", newline="") as f:
        (record,) = list(csv.DictReader(f))
    assert record["a"] == "\x00"
    for mode in ("flat", "seed"):
        raw = make_body_builder(mode, "people")(1, record | {"b": "x\x00y"})
        assert b"\\u0000" not in raw and b"\x00" not in raw
        body = json.loads(raw)
        flat = body if mode == "flat" else body["additional_fields"]
        assert "a" not in flat and flat["b"] == "xy"  # a NUL-only cell is empty


def test_template_renders_json_with_tojson(tmp_path):
    tpl = tmp_path / "t.j2"
    tpl.write_text('{"email": {{ row["Work Email"] | tojson }}, "n": {{ row_number }}, "job": {{ job_id | tojson }},'
                   ' "note": {{ row["Note"] | tojson }}}')
    body = json.loads(TemplatePayload(tpl, job_id="j1")(5, {"Work Email": "a@b.c", "Note": 'say "hi"\n'}))
    assert body == {"email": "a@b.c", "n": 5, "job": "j1", "note": 'say "hi"\n'}


def test_template_error_names_the_row(tmp_path):
    tpl = tmp_path / "t.j2"
    tpl.write_text('{"x": {{ row["Missing"] | tojson }}}')
    with pytest.raises(PayloadError, match=r"row 12: .*Missing"):
        TemplatePayload(tpl)(12, {"Work Email": "a@b.c"})
    tpl.write_text('{"x": "{{ row["Note"] }}"}')  # no tojson: a quote breaks the JSON
    with pytest.raises(PayloadError, match=r"row 3: .*did not render JSON"):
        TemplatePayload(tpl)(3, {"Note": 'a "quoted" word'})


def test_template_is_sandboxed(tmp_path):
    tpl = tmp_path / "t.j2"
    tpl.write_text('{"x": {{ row.__class__.__mro__ | tojson }}}')
    with pytest.raises(PayloadError, match="row 1"):
        TemplatePayload(tpl)(1, {"a": "b"})


def test_bad_template_or_mode_is_a_config_error(tmp_path):
    tpl = tmp_path / "t.j2"
    tpl.write_text("{{ row[ }}")
    with pytest.raises(ConfigError, match="t.j2"):
        make_body_builder(str(tpl), "people")
    with pytest.raises(ConfigError, match="missing.j2"):
        make_body_builder(str(tmp_path / "missing.j2"), "people")
    with pytest.raises(ConfigError, match="'nested'"):
        make_body_builder("nested", "people")


def test_size_check_against_the_limit():
    assert oversize_reason(b"x" * 100, 100) is None
    assert "101 bytes, above the payload limit of 100 bytes" in oversize_reason(b"x" * 101, 100)


def test_idempotency_key_is_stable_per_job_and_row():
    assert idempotency_key("job1", 5) == idempotency_key("job1", 5)
    assert len({idempotency_key("job1", 5), idempotency_key("job1", 6), idempotency_key("job2", 5)}) == 3
