"""Value normalisers and the row -> record builder (tasks.merge.cleaning, tasks.merge.records)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.merge.cleaning import (
    build_full_name,
    clean_domain,
    clean_linkedin,
    is_null,
    is_personal_email,
    linkedin_key,
    neutralise_formula,
    phone_key,
    split_emails,
    split_full_name,
)
from tasks.merge.records import VALUE_SEP, Layout, RecordBuilder, unpack

# --- e-mails ---------------------------------------------------------------


def test_email_is_trimmed_and_lower_cased():
    assert split_emails("  John.Doe@Example.COM ") == (["john.doe@example.com"], [])


@pytest.mark.parametrize("cell", [
    "a@x.com:b@x.com", "a@x.com;b@x.com", "a@x.com, b@x.com", "a@x.com | b@x.com", "a@x.com b@x.com",
    "A <a@x.com>, B <b@x.com>", "mailto:a@x.com; mailto:b@x.com",
])
def test_several_addresses_in_one_cell_are_split(cell):
    # Lesson: "a@x.com:b@x.com" used to give the corrupt domain "x.com:b".
    assert split_emails(cell) == (["a@x.com", "b@x.com"], [])


def test_display_name_form_keeps_the_address():
    assert split_emails('"Doe, John" <John@Doe.example>') == (["john@doe.example"], [])


@pytest.mark.parametrize("cell", ["N/A", "null", "NONE", "-", ".", "", "   "])
def test_null_tokens_are_empty_in_email_cells(cell):
    assert split_emails(cell) == ([], [])


def test_invalid_tokens_are_returned_as_written_not_dropped():
    assert split_emails("jane@acme.com; Jane AT acme") == (["jane@acme.com"], ["Jane", "AT", "acme"])
    assert split_emails("x.com:b") == ([], ["x.com", "b"])
    assert split_emails("555-0100") == ([], ["555-0100"])


@pytest.mark.parametrize("address,personal", [
    ("a@gmail.com", True), ("a@googlemail.com", True), ("a@yahoo.co.uk", True), ("a@hotmail.fr", True),
    ("a@outlook.com", True), ("a@icloud.com", True), ("a@me.com", True), ("a@aol.com", True),
    ("a@protonmail.com", True), ("a@pm.me", True), ("a@gmx.de", True), ("a@web.de", True),
    ("a@yandex.ru", True), ("a@mail.com", True), ("a@qq.com", True), ("a@zoho.com", True),
    ("a@acme.com", False), ("a@mail.acme.com", False), ("a@gmail.acme.com", False), ("a@business.org", False),
])
def test_personal_or_work_classification(address, personal):
    assert is_personal_email(address) is personal


# --- domains ----------------------------------------------------------------


@pytest.mark.parametrize("raw,clean", [
    ("https://www.Example.com:8080/path?q=1#top", "example.com"),
    ("http://www.rosales-molina.com/", "rosales-molina.com"),
    ("www.www.acme.io", "acme.io"),
    ("ACME.COM.", "acme.com"),
    ("//cdn.acme.com/x", "cdn.acme.com"),
    ("info@acme.com", "acme.com"),
    ("N/A", ""),
    ("Acme Inc", "Acme Inc"),          # not a host name: kept as written
    ("localhost:8080", "localhost:8080"),
])
def test_clean_domain(raw, clean):
    assert clean_domain(raw) == clean


# --- LinkedIn ---------------------------------------------------------------


@pytest.mark.parametrize("raw", [
    "https://www.linkedin.com/in/JohnDoe/", "http://linkedin.com/in/johndoe?trk=abc",
    "uk.linkedin.com/in/johndoe", "HTTPS://WWW.LINKEDIN.COM/in/JOHNDOE#x", "www.linkedin.com/in/johndoe//",
])
def test_linkedin_forms_share_one_key(raw):
    assert linkedin_key(raw) == "linkedin.com/in/johndoe"


def test_linkedin_output_form_keeps_slug_case():
    assert clean_linkedin("http://uk.linkedin.com/in/JohnDoe/?trk=1") == "https://www.linkedin.com/in/JohnDoe"
    assert clean_linkedin("johndoe") == "johndoe"       # not a URL: as written, no key
    assert linkedin_key("johndoe") is None
    assert linkedin_key("https://www.linkedin.com/in/j%C3%A9r%C3%B4me") == linkedin_key("linkedin.com/in/Jérôme")


# --- names, phones, null tokens ------------------------------------------------


@pytest.mark.parametrize("full,first,last", [
    ("Ronald McDonald", "Ronald", "McDonald"),
    ("Mary Ann van der Berg", "Mary", "Ann van der Berg"),
    ("Dr. Jane Doe PhD", "Jane", "Doe"),
    ("Cher", "Cher", ""),
    ("McDonald, Ronald", "Ronald", "McDonald"),
    ("van der Berg, Mary Ann, Jr.", "Mary Ann", "van der Berg"),
    (", ,", "", ""),
])
def test_split_full_name_keeps_case(full, first, last):
    assert split_full_name(full) == (first, last)


def test_full_name_is_built_with_case_kept():
    assert build_full_name("eBay", "IBM ") == "eBay IBM"
    assert build_full_name("", "McDonald") == "McDonald"


def test_phone_key_compares_digits_only():
    assert phone_key("+1 (555) 010-2030") == phone_key("1-555-010-2030")
    assert phone_key("+1 (555) 010-2030") != phone_key("555-010-2031")


def test_null_tokens():
    assert all(is_null(t) for t in ["N/A", "na", "NULL", "none", "-", ".", "n/a", " "])
    assert not is_null("Nancy") and not is_null("0")


# --- formula neutralisation ---------------------------------------------------


@pytest.mark.parametrize("cell,out", [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
    ("@SUM(A1)", "'@SUM(A1)"),
    ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
    ("-2+3+cmd", "'-2+3+cmd"),
    ("+1 (555) 010-2030", "+1 (555) 010-2030"),   # phone: cannot call a function
    ("-12.5", "-12.5"),
    ("plain", "plain"),
    ("", ""),
])
def test_neutralise_formula(cell, out):
    assert neutralise_formula(cell) == out


# --- property tests -------------------------------------------------------------

texts = st.text(max_size=80)
fast = settings(max_examples=300, deadline=None)


@fast
@given(texts)
def test_normalisers_never_raise_and_are_idempotent(text):
    assert clean_domain(clean_domain(text)) == clean_domain(text)
    assert clean_linkedin(clean_linkedin(text)) == clean_linkedin(text)
    assert linkedin_key(clean_linkedin(text)) == linkedin_key(text)
    assert neutralise_formula(neutralise_formula(text)) == neutralise_formula(text)
    first, last = split_full_name(text)
    assert all(word in text for word in (first + " " + last).split())   # case and spelling kept
    phone_key(text)


@fast
@given(st.lists(st.one_of(st.emails(), texts), max_size=4), st.sampled_from([",", ";", ":", " | ", " "]))
def test_split_emails_never_raises_and_its_addresses_are_fixed_points(parts, sep):
    valid, invalid = split_emails(sep.join(parts))
    for address in valid:
        assert split_emails(address) == ([address], [])
        assert address == address.strip().lower()
    assert len(set(valid)) == len(valid)


# --- record builder -----------------------------------------------------------------


def build(columns, cells, surplus=(), table_type="people"):
    layout = Layout(table_type)
    builder = RecordBuilder(layout, [(i, field, header) for i, (header, field) in enumerate(columns)])
    packed = builder.build(list(cells), list(surplus))
    return {layout.names[slot]: values for slot, values in unpack(packed, builder.slot_ids)}, builder, layout


def test_emails_are_routed_by_domain_whatever_their_column():
    record, builder, _ = build([("Email", "Work Email"), ("Home", "Personal Email")],
                               ["Jo@Gmail.com; jo@acme.com", "jo@acme.io, oops@"])
    assert record["Work Email"] == ["jo@acme.com", "jo@acme.io"]
    assert record["Personal Email"] == ["jo@gmail.com"]
    assert record["Invalid Email"] == ["oops@"]
    assert builder.invalid_emails == 1


def test_several_columns_for_one_field_keep_every_value():
    record, _, layout = build([("Email 1", "Work Email"), ("Email 2", "Work Email"),
                               ("Phone 1", "Phone Number"), ("Phone 2", "Phone Number")],
                              ["a@acme.com", "b@acme.com", "+1 555 0100", "1-555-0100"])
    assert record["Work Email"] == ["a@acme.com", "b@acme.com"]
    assert record["Phone Number"] == ["+1 555 0100"]   # same digits: one phone
    assert layout.max_values[layout.slot("Work Email")] == 2


def test_company_domain_is_derived_from_a_work_email_never_a_personal_one():
    record, builder, _ = build([("Email", "Work Email")], ["jo@gmail.com, jo@acme.com"])
    assert record["Company Domain"] == ["acme.com"] and builder.domain_derived
    record, _, _ = build([("Email", "Work Email")], ["jo@gmail.com"])
    assert "Company Domain" not in record


def test_names_split_and_built_with_source_case():
    record, _, _ = build([("Name", "Full Name"), ("Title", "Job Title"), ("Co", "Company Name")],
                         ["Ronald McDonald", "VP of Sales", "eBay"])
    assert (record["First Name"], record["Last Name"]) == (["Ronald"], ["McDonald"])
    assert record["Job Title"] == ["VP of Sales"] and record["Company Name"] == ["eBay"]
    record, _, _ = build([("First", "First Name"), ("Last", "Last Name"), ("Co", "Company Name")],
                         ["Jim", "McDonald", "IBM"])
    assert record["Full Name"] == ["Jim McDonald"] and record["Company Name"] == ["IBM"]


def test_null_tokens_only_in_documented_fields():
    record, _, _ = build([("Email", "Work Email"), ("Phone", "Phone Number"), ("Site", "Company Domain"),
                          ("LI", "LinkedIn Profile"), ("Title", "Job Title"), ("Notes", None)],
                         ["N/A", "NULL", "-", "none", "NA", "N/A"])
    assert record == {"Job Title": ["NA"], "Notes": ["N/A"]}


def test_text_is_never_type_converted():
    cells = ["May 2021", "10-12", "02134", "15551234567", "250", "2010"]
    record, _, _ = build([("Title", "Job Title"), ("Range", None), ("Zip", None), ("Phone", "Phone Number"),
                          ("Employees", "Company Employee Count"), ("Founded", "Year Founded")], cells)
    assert [record[k][0] for k in ("Job Title", "Range", "Zip", "Phone Number",
                                   "Company Employee Count", "Year Founded")] == cells


def test_surplus_cells_go_to_extra_fields_and_source_column_is_renamed():
    record, builder, _ = build([("Source", "Source"), ("Website Category", None)],
                               ["LinkedIn Ads", " https://www.Shop.com/ "], surplus=["x", "", " y "])
    assert record["Extra Fields"] == ["x | y"]
    assert record["Source (input)"] == ["LinkedIn Ads"]
    assert record["Website Category"] == ["https://www.Shop.com/"]   # not a domain field: only trimmed
    assert any("Source (input)" in w for w in builder.warnings)


def test_control_separators_in_cells_cannot_corrupt_a_record():
    record, builder, _ = build([("Notes", None), ("Email", "Work Email")], ["a\x1fb\x1ec", "a@acme.com"])
    assert record["Notes"] == ["a b c"] and record["Work Email"] == ["a@acme.com"]
    builder.finish()
    assert "0x1E/0x1F" in builder.warnings[0]


def test_company_emails_are_not_routed():
    record, _, _ = build([("Email", "Company Email"), ("Name", "Company Name")],
                         ["info@acme.com; acme@gmail.com", "Acme"], table_type="company")
    assert record["Company Email"] == ["info@acme.com", "acme@gmail.com"]
    assert record["Company Domain"] == ["acme.com"]


def test_empty_row_gives_empty_record():
    _, builder, _ = build([("a", None), ("Email", "Work Email")], ["  ", "N/A"])
    assert builder.build(["", ""], []) == ""
    assert VALUE_SEP not in builder.build(["x", "a@b.com"], [])


@fast
@given(st.lists(st.text(alphabet=st.sampled_from("=+-@ 0123456789().x/abc'"), max_size=6), min_size=1, max_size=5))
def test_fast_formula_scan_agrees_with_neutralise_formula(cells):
    from tasks.merge.cleaning import FORMULA_CELL

    cells = [c.strip() for c in cells]
    risky = any(neutralise_formula(c) != c for c in cells)
    assert bool(FORMULA_CELL.search("\x1f" + "\x1f".join(cells))) == risky


def test_phone_key_is_e164_with_the_default_region():
    from tasks.merge.cleaning import e164, is_phone_number

    assert {phone_key(v) for v in ("+1 415 555 0134", "(415) 555-0134", "4155550134", "415.555.0134",
                                   "+1 (415) 555-0134 ext. 12")} == {"14155550134"}
    assert phone_key("+44 20 7946 0958") == phone_key("+442079460958") != phone_key("(415) 555-0134")
    assert phone_key("4155550135") != phone_key("4155550134")
    assert e164("020 7946 0958", "GB") == "+442079460958" and e164("020 7946 0958", "US") is None
    assert e164("12") is None and e164("call me") is None and phone_key("call me") == "call me"
    assert is_phone_number("(415) 555-0134") and is_phone_number("+49 30 901820")
    assert not is_phone_number("4155550134")  # a bare run of digits may be an id
    assert not is_phone_number("2024-03-01") and not is_phone_number("02134")


def test_phone_region_setting(monkeypatch):
    from csv_merger.settings import get_settings
    from tasks.merge.cleaning import e164, is_phone_number, phone_region

    monkeypatch.setenv("CSV_MERGER_PHONE_REGION", "gb")
    get_settings.cache_clear(), phone_region.cache_clear(), e164.cache_clear()
    try:
        assert phone_region() == "GB" and phone_key("020 7946 0958") == "442079460958"
        monkeypatch.setenv("CSV_MERGER_PHONE_REGION", "DE")  # 8-digit numbers are possible there
        get_settings.cache_clear(), phone_region.cache_clear(), e164.cache_clear()
        assert is_phone_number("030 901820") and is_phone_number("+49 30 901820")
        for not_a_phone in ("2024-03-01", "01.03.2024", "1.3.24", "12345678.90", "1234,5678"):
            assert not is_phone_number(not_a_phone), not_a_phone
    finally:
        monkeypatch.undo()
        get_settings.cache_clear(), phone_region.cache_clear(), e164.cache_clear()
    assert phone_region() == "US"


@pytest.mark.parametrize(("host", "registrable"), [
    ("app.acme.com", "acme.com"), ("acme.com", "acme.com"), ("a.b.acme.com", "acme.com"),
    ("shop.acme.co.uk", "acme.co.uk"), ("shop-a.myshopify.com", "shop-a.myshopify.com"),
    ("x.github.io", "x.github.io"), ("co.uk", "co.uk"), ("not a host", "not a host"), ("acme", "acme"),
])
def test_registrable_domain(host, registrable):
    from tasks.merge.cleaning import registrable_domain

    assert registrable_domain(host) == registrable
