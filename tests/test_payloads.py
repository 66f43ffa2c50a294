"""Payload shapes, template rendering, size check and idempotency keys."""

import csv
import json

import pytest

from csv_merger.errors import ConfigError
from tasks.deliver.payloads import (
    PayloadError,
    TemplatePayload,
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


# Runtime failures of a template: every one is a PayloadError naming the row
# (never a crash), with a short one-line reason naming the error.
BROKEN_TEMPLATES = {
    "zero-division": ('{"x": {{ 1 // 0 }}}', "ZeroDivisionError"),
    "sandbox-range": ("{% for x in range(100000000) %}{% endfor %}{}", "OverflowError"),
    "recursion": ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", "RecursionError"),
    "int-above-64-bits": ('{"x": 99999999999999999999999}', "64-bit"),
    "huge-constant": ("{{ 10 ** 10000 }}", "ValueError"),
    "nan": ('{"x": NaN}', "NaN is not valid JSON"),
    "infinity": ("-Infinity", "-Infinity is not valid JSON"),
}


@pytest.mark.parametrize("name", sorted(BROKEN_TEMPLATES))
def test_template_runtime_failures_are_payload_errors_naming_the_row(tmp_path, name):
    source, error = BROKEN_TEMPLATES[name]
    tpl = tmp_path / "t.j2"
    tpl.write_text(source)
    with pytest.raises(PayloadError, match=r"^row 7: ") as info:
        TemplatePayload(tpl)(7, {"a": "b"})
    assert info.value.row_number == 7 and error in info.value.reason
    assert "\n" not in info.value.reason and len(info.value.reason) <= 260


@pytest.mark.parametrize("name", sorted(BROKEN_TEMPLATES))
def test_a_template_failing_only_on_a_later_row_fails_only_that_row(tmp_path, name):
    source, error = BROKEN_TEMPLATES[name]
    tpl = tmp_path / "t.j2"
    tpl.write_text("{% if row_number == 3 %}" + source + '{% else %}{"n": {{ row_number }}}{% endif %}')
    build = make_body_builder(str(tpl), "people")  # loads: nothing is folded at compile time
    assert json.loads(build(1, {})) == {"n": 1} and json.loads(build(4, {})) == {"n": 4}
    with pytest.raises(PayloadError, match=r"^row 3: ") as info:
        build(3, {})
    assert error in info.value.reason


def test_template_failing_while_compiled_is_a_config_error_naming_the_file(tmp_path):
    tpl = tmp_path / "deep.j2"
    tpl.write_text("{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}")  # RecursionError in the parser
    with pytest.raises(ConfigError, match=r"deep\.j2: payload template error: RecursionError") as info:
        make_body_builder(str(tpl), "people")
    assert "\n" not in str(info.value) and len(str(info.value)) < len(str(tpl)) + 260


def test_deliver_dead_letters_only_the_row_a_template_cannot_render(tmp_path, sink_factory):
    """End to end: a template failing on row 3 only dead-letters row 3 (exit
    3, no traceback); failing on row 1, a one-line config error (exit 2)."""
    from test_delivery import _one_line_error, deliver_args, read_csv, run, write_rows

    sink = sink_factory()
    rows = write_rows(tmp_path / "rows.csv", 5)
    template, dead = tmp_path / "t.j2", tmp_path / "dead.csv"
    template.write_text('{% if row_number == 3 %}{"x": {{ 1 // 0 }}}{% else %}'
                        '{"email": {{ row["Work Email"] | tojson }}}{% endif %}')
    proc = run(deliver_args(rows, sink.url, "--rate", 100, "--payload", template, "--dead-letter", dead), tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    (row,) = read_csv(dead)
    assert row["_row_number"] == "3" and row["_status"] == "not-sent"
    assert row["_reason"].startswith("row 3: template error: ZeroDivisionError")
    assert sorted(r["body"]["email"] for r in sink.records()) == [f"p{i}@example.com" for i in (1, 2, 4, 5)]

    template.write_text('{"x": {{ 1 // 0 }}}')
    first = run(deliver_args(rows, sink.url, "--payload", template, "--job-id", "other", "--resend"), tmp_path)
    assert first.returncode == 2 and "row 1" in _one_line_error(first) and "ZeroDivisionError" in first.stderr
    assert sink.stats()["received"] == 4
