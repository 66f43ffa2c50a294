"""Header mapping (tasks/merge/headers/, synonyms.yaml).

Every corpus file's header (read by tasks.merge.reading.open_csv, as the
merge reads it) with hand-checked expectations (real export headers of each
tool: tests/test_real_headers.py), the traps of the old system, the content rules,
overrides and mapping files, and hypothesis properties of the normaliser.
"""

from __future__ import annotations

import json
import re
import string
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csv_merger.errors import ConfigError
from csv_merger.schema import fields_for
from tasks.merge.headers import ColumnMapping, load_mapping_file, map_headers, normalise_header, synonym_counts
from tasks.merge import open_csv


def fields(headers, table_type="people", **kw):
    mappings, _ = map_headers(headers, table_type, **kw)
    return {m.header: m.field for m in mappings}


# --- normalise_header -----------------------------------------------------


@pytest.mark.parametrize("variants", [
    ["linkedin_url", "LinkedIn URL", "LinkedinUrl", "LINKEDIN-URL", "linkedIn url"],
    ["Email *", "email", "E-mail", "\ufeffEmail", "EMAIL:", " e_mail "],
    ["First Name *", "first_name", "firstName", "FIRSTNAME", "first-name"],
    ["Active (0/1)", "active", "ACTIVE"],
    ["Titles ID (Mr = 1, Ms = 2, else 0)", "titles_id", "TitlesId"],
    ["Groups (x,y,z...)", "groups"],
    ["# Employees", "employees", "Employees:"],
])
def test_spellings_of_one_header_normalise_alike(variants):
    assert len({normalise_header(v) for v in variants}) == 1


def test_normalise_header_examples():
    assert normalise_header("Email *") == "email"
    assert normalise_header("\t\n\x0b\x0c\r start \t\n end\r") == "startend"
    assert normalise_header("Prénom") == "prenom"
    assert normalise_header("Straße") == "strasse"
    assert normalise_header("(Email)") == "email"  # only a hint: its words are kept
    assert normalise_header("has\"quote") == "hasquote"
    assert normalise_header("") == ""


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_normalise_header_never_raises_and_is_idempotent(text):
    once = normalise_header(text)
    assert normalise_header(once) == once
    assert all(ch.isalnum() for ch in once)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(string.ascii_letters, min_size=1, max_size=8), min_size=1, max_size=4))
def test_snake_kebab_camel_and_spaces_are_equivalent(words):
    spaced = " ".join(words)
    forms = ["_".join(words), "-".join(words), words[0] + "".join(w.title() for w in words[1:]),
             spaced.upper(), f"{spaced} *", f"{spaced} (hint)"]
    assert {normalise_header(f) for f in forms} == {normalise_header(spaced)}


# --- real export headers of each tool --------------------------------------
# The header rows of each tool (Apollo, Sales Navigator scrapers, HubSpot, Salesforce,
# Pipedrive, Mailchimp, Google Contacts, Outlook, Store Leads, Datablist, Clay and more),
# with their sources, are tests/data/real_headers.yaml, checked by tests/test_real_headers.py.


# --- every corpus file -------------------------------------------------------

def read_head(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and sampled rows as the merge gets them from the reader."""
    source = open_csv(path)
    return source.header, source.sample()


def map_file(path: Path, table_type: str = "people"):
    header, sample = read_head(path)
    return map_headers(header, table_type, sample=sample)


def test_every_corpus_file_maps_every_column(corpus_dir):
    paths = sorted(p for p in corpus_dir.iterdir() if p.suffix in (".csv", ".tsv"))
    assert len(paths) == 40
    for path in paths:
        header, sample = read_head(path)
        for table_type in ("people", "company"):
            mappings, warnings = map_headers(header, table_type, sample=sample)
            assert [m.header for m in mappings] == header, path.name
            assert [m.index for m in mappings] == list(range(len(header)))
            assert all(m.field is None or m.field in fields_for(table_type) for m in mappings)
            assert all(m.field != "Source" for m in mappings)
            assert all(isinstance(w, str) and w for w in warnings)


_FIRST_LAST = {"First Name": "First Name", "Last Name": "Last Name"}
_DATABLIST_CUSTOMERS = {
    "Index": None, "Customer Id": None, **_FIRST_LAST, "Company": "Company Name",
    "City": "Person Location", "Country": "Person Location", "Phone 1": "Phone Number",
    "Phone 2": "Phone Number", "Email": "Work Email", "Subscription Date": None,
    "Website": "Company Domain",
}
_ANNRCH_CAPS = {
    "INDEX": None, "CUSTOMERID": None, "FIRSNAME": "First Name", "LASTNAME": "Last Name",
    "COMPANY": "Company Name", "CITY": "Person Location", "COUNTRY": "Person Location",
    "PHONE1": "Phone Number", "PHONE2": "Phone Number", "EMAIL": "Work Email",
    "SUBSCRIPTIONDATE": None, "WEBSITE": "Company Domain",
}

# file -> (table type, {header: expected field} for the columns that matter)
CORPUS = {
    "annrch_customers-10000_renamed_headers.csv": ("people", _ANNRCH_CAPS),
    "annrch_customers-1000_misaligned_cols.csv": ("people", {
        **_ANNRCH_CAPS, "PHONE1": "Work Email", "EMAIL": "Phone Number"}),
    "annrch_customers_extra_rating_col.csv": ("people", {**_DATABLIST_CUSTOMERS, "Rating": None}),
    "atomiccrm_contacts_export.csv": ("people", {
        "first_name": "First Name", "last_name": "Last Name", "title": "Job Title", "status": None,
        "linkedin_url": "LinkedIn Profile", "company": "Company Name", "email_work": "Work Email",
        "email_home": "Personal Email", "email_other": "Work Email", "phone_work": "Phone Number",
        "phone_home": "Phone Number", "phone_other": "Phone Number", "background": None}),
    "atomiccrm_test-data_contacts.csv": ("people", {
        "id": None, "title": None, "company_id": None, "sales_id": None, "sales": None,
        "company_name": "Company Name", "company": "Company Name", "email_other": "Work Email",
        "linkedin_url": "LinkedIn Profile"}),
    "chatwoot_spec_contacts.csv": ("people", {
        "id": None, "first_name": "First Name", "last_name": "Last Name", "email": "Work Email",
        "gender": None, "ip_address": None, "identifier": None}),
    "datablist_customers-100.csv": ("people", _DATABLIST_CUSTOMERS),
    "datablist_leads-100.csv": ("people", {
        "Account Id": None, "Lead Owner": None, **_FIRST_LAST, "Company": "Company Name",
        "Phone 1": "Phone Number", "Phone 2": "Phone Number", "Email 1": "Work Email",
        "Email 2": "Work Email", "Website": "Company Domain", "Source": None, "Deal Stage": None,
        "Notes": None}),
    "datablist_organizations-100.csv": ("company", {
        "Index": None, "Organization Id": None, "Name": "Company Name", "Website": "Company Domain",
        "Country": "Company Location", "Description": "Company Description",
        "Founded": "Year Founded", "Industry": "Company Industry",
        "Number of employees": "Company Employee Count"}),
    "datablist_people-1000.csv": ("people", {
        "User Id": None, **_FIRST_LAST, "Sex": None, "Email": "Work Email", "Phone": "Phone Number",
        "Date of birth": None, "Job Title": "Job Title"}),
    "prestashop_customers_import.csv": ("people", {
        "Customer ID": None, "Active (0/1)": None, "Titles ID (Mr = 1, Ms = 2, else 0)": None,
        "Email *": "Work Email", "Password *": None, "Last Name *": "Last Name",
        "First Name *": "First Name", "Groups (x,y,z...)": None}),
    "relaticle_fixture_companies.csv": ("company", {
        "name": "Company Name", "account_owner_email": None}),
    "relaticle_people-10000.csv": ("people", {
        "name": "Full Name", "company_name": "Company Name", "custom_fields_emails": "Work Email"}),
    "relaticle_people_3453.csv": ("people", {
        "name": "Full Name", "email": "Work Email", "phone": "Phone Number",
        "company_name": "Company Name", "job_title": "Job Title"}),
    "roundcube_all.csv": ("people", {
        "Display Name": "Full Name", "Title": None, **_FIRST_LAST, "Company": "Company Name",
        "Job Title": "Job Title", "Email Home": "Personal Email", "Email Work": "Work Email",
        "Email Other": "Work Email", "Home Phone 2": "Phone Number", "Business Phone": "Phone Number",
        "Home Fax": None, "Pager": None, "Home City": "Person Location", "Home Zip": None,
        "Website Home Page": None, "Website Work": "Company Domain", "Categories": None}),
    "roundcube_email.csv": ("people", {"Primary Email": "Work Email"}),
    "roundcube_gmail.csv": ("people", {
        "Name": "Full Name", "Given Name": "First Name", "Family Name": "Last Name",
        "E-mail 1 - Type": None, "E-mail 1 - Value": "Work Email", "E-mail 4 - Value": "Work Email",
        "Phone 1 - Type": None, "Phone 7 - Value": "Phone Number",
        "Organization 1 - Name": "Company Name", "Organization 1 - Title": "Job Title",
        "Website 1 - Value": None, "Group Membership": None}),
    "roundcube_tb_plain.csv": ("people", {
        **_FIRST_LAST, "Display Name": "Full Name", "Primary Email": "Work Email",
        "Secondary Email": "Work Email", "Work Phone": "Phone Number", "Mobile Number": "Phone Number",
        "Fax Number": None, "Job Title": "Job Title", "Organization": "Company Name",
        "Web Page 1": "Company Domain", "Web Page 2": None}),
    "shopware5_NewsletterRecipientImport.csv": ("people", {
        "email": "Work Email", "group": None, "salutation": None, "firstname": "First Name",
        "lastname": "Last Name", "street": None, "zipcode": None, "city": "Person Location",
        "userID": None}),
    "spectrum_comma_in_quotes.csv": ("people", {
        "first": "First Name", "last": "Last Name", "address": None, "city": "Person Location",
        "zip": None}),
    "taps3_test_csv_with_empty_lines.csv": ("people", {"id": None, "name": "Full Name"}),
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_file_mapping(corpus_dir, name):
    table_type, expected = CORPUS[name]
    mappings, _ = map_file(corpus_dir / name, table_type)
    got = {m.header: m.field for m in mappings}
    assert {h: got[h] for h in expected} == expected


@pytest.mark.parametrize("name", [
    "csvkit_bad.csv", "csvkit_blanks.csv", "csvkit_dummy.tsv", "csvkit_test_latin1.csv",
    "csvkit_test_utf16_little.csv", "csvkit_test_utf8_bom.csv", "csvkit_test_header_newline.csv",
    "csvtojson_dataDiffDelimiter.csv", "spectrum_json.csv", "taps3_duplicate_headers.csv",
    "taps3_problematic_header_characters.csv", "csvparser_comment.csv",
])
def test_corpus_files_without_lead_columns_stay_unmapped(corpus_dir, name):
    mappings, warnings = map_file(corpus_dir / name)
    assert [m.field for m in mappings] == [None] * len(mappings)
    assert {m.how for m in mappings} == {"unmapped"} and warnings == []


def test_duplicate_headers_both_map(corpus_dir):
    mappings, _ = map_file(corpus_dir / "taps3_test_csv_with_empty_lines.csv")
    assert [(m.index, m.field) for m in mappings] == [(0, None), (1, "Full Name"), (2, "Full Name")]


# --- the traps of the old system -------------------------------------------


def test_whole_names_never_substrings():
    got = fields(["Homepage", "Age", "Email Status", "Status", "Website Category",
                  "Company Size", "Company Site"])
    assert got == {"Homepage": None, "Age": None, "Email Status": None, "Status": None,
                   "Website Category": None, "Company Size": "Company Employee Count",
                   "Company Site": "Company Domain"}
    assert fields(["Homepage"], "company") == {"Homepage": "Company Domain"}


def test_input_source_is_not_the_canonical_source():
    mappings, _ = map_headers(["Source", "Lead Source", "source"], "people")
    assert [m.field for m in mappings] == [None, None, None]
    assert "lists the input files" in mappings[0].note


def test_name_depends_on_table_type():
    assert fields(["Name", "Phone", "Email"], "people") == {
        "Name": "Full Name", "Phone": "Phone Number", "Email": "Work Email"}
    assert fields(["Name", "Phone", "Email"], "company") == {
        "Name": "Company Name", "Phone": "Company Phone", "Email": "Company Email"}


def test_company_synonyms_and_website_forms():
    got = fields(["Organization", "Company", "Account Name", "Website", "Domain", "Company Website"])
    assert got == {"Organization": "Company Name", "Company": "Company Name",
                   "Account Name": "Company Name", "Website": "Company Domain",
                   "Domain": "Company Domain", "Company Website": "Company Domain"}


def test_email_kinds():
    assert fields(["Email", "E-mail Address", "Email 1", "Email 2", "Personal Email",
                   "Email Home", "Work Email"]) == {
        "Email": "Work Email", "E-mail Address": "Work Email", "Email 1": "Work Email",
        "Email 2": "Work Email", "Personal Email": "Personal Email",
        "Email Home": "Personal Email", "Work Email": "Work Email"}
    # a person's private address is not the company's address
    assert fields(["Personal Email"], "company") == {"Personal Email": None}


# --- typos ----------------------------------------------------------------


@pytest.mark.parametrize(("header", "field"), [
    ("FIRSNAME", "First Name"), ("Emial", "Work Email"), ("Emial Address", "Work Email"),
    ("Compnay Name", "Company Name"), ("Phnoe", "Phone Number"), ("Job Titel", "Job Title"),
    ("Linkedin Proflie", "LinkedIn Profile"), ("Industy", "Company Industry"),
])
def test_typos_are_caught(header, field):
    (m,), _ = map_headers([header], "people")
    assert (m.field, m.how) == (field, "fuzzy")
    assert "typo" in m.note


@pytest.mark.parametrize("header", [
    "Stage", "Status", "State Code", "Funded", "Founder", "County", "Employers", "Titles",
    "Emails Sent", "Last Seen", "First Seen", "Gmail", "Mobil", "Emal", "Company Type",
    "Contact Date", "Lead Score", "Username", "Phone Type", "Allocation", "Latest Funding Amount",
])
def test_near_misses_of_other_fields_are_not_caught(header):
    (m,), _ = map_headers([header], "people")
    assert (m.field, m.how) == (None, "unmapped"), m


def test_typo_never_takes_a_column_from_another():
    # both columns kept; the typo column maps beside the correct one
    mappings, _ = map_headers(["First Name", "FIRSNAME"], "people")
    assert [(m.field, m.how) for m in mappings] == [("First Name", "synonym"),
                                                    ("First Name", "fuzzy")]


# --- content rules --------------------------------------------------------


def test_email_status_column_is_a_status_not_an_email():
    headers = ["Email", "Email Status"]
    sample = [["a@acme.com", "Verified"], ["b@beta.io", "guessed"], ["", "Unavailable"]]
    mappings, warnings = map_headers(headers, "people", sample=sample)
    assert [m.field for m in mappings] == ["Work Email", None]
    assert warnings == []


def test_email_header_holding_statuses_is_unmapped_with_a_warning():
    (m,), warnings = map_headers(["Email"], "people", sample=[["verified"], ["Guessed"], ["bounced"]])
    assert (m.field, m.how) == (None, "unmapped")
    assert "statuses" in m.note
    assert len(warnings) == 1 and "'Email'" in warnings[0]


def test_phone_column_full_of_emails_is_noticed():
    headers = ["Name", "PHONE1", "PHONE2"]
    sample = [["Ann", "ann@acme.com", "555-010-2030"], ["Bob", "bob@beta.io", "+1 555 010 2040"],
              ["Cy", "N/A", ""]]
    mappings, warnings = map_headers(headers, "people", sample=sample)
    assert mappings[1] == ColumnMapping(1, "PHONE1", "Work Email", "content", mappings[1].note)
    assert "e-mail addresses" in mappings[1].note
    assert mappings[2].field == "Phone Number"
    assert len(warnings) == 1 and "column 2 'PHONE1'" in warnings[0] and "Work Email" in warnings[0]
    company, _ = map_headers(headers, "company", sample=sample)
    assert company[1].field == "Company Email"


def test_unknown_header_full_of_emails_is_mapped_by_content():
    (m,), warnings = map_headers(["contact"], "people", sample=[["a@x.com"], ["Bo <b@y.org>"]])
    assert (m.field, m.how) == ("Work Email", "content")
    assert "'contact'" in warnings[0]


def test_owner_email_column_is_not_taken_for_the_lead_email(corpus_dir):
    mappings, warnings = map_file(corpus_dir / "relaticle_fixture_companies.csv", "company")
    assert [(m.field, m.how) for m in mappings] == [("Company Name", "synonym"), (None, "unmapped")]
    assert warnings == []


def test_email_column_with_only_null_tokens_gets_a_warning():
    (m,), warnings = map_headers(["Email"], "people", sample=[["N/A"], ["NULL"], [""], ["-"]])
    assert (m.field, m.how) == ("Work Email", "synonym")
    assert len(warnings) == 1 and "'Email'" in warnings[0] and "no e-mail address" in warnings[0]


def test_empty_email_column_is_not_reported():
    _, warnings = map_headers(["Email", "Name"], "people", sample=[["", "Ann"], ["", "Bob"]])
    assert warnings == []


def test_email_column_of_other_text_keeps_its_mapping_with_a_warning():
    (m,), warnings = map_headers(["Email"], "people", sample=[["ask reception"], ["see notes"]])
    assert m.field == "Work Email"
    assert "none of its 2 sampled values is an e-mail address" in warnings[0]


def test_misaligned_annrch_file_is_read_by_content(corpus_dir):
    mappings, warnings = map_file(corpus_dir / "annrch_customers-1000_misaligned_cols.csv")
    by_header = {m.header: m for m in mappings}
    assert (by_header["PHONE1"].field, by_header["PHONE1"].how) == ("Work Email", "content")
    assert (by_header["EMAIL"].field, by_header["EMAIL"].how) == ("Phone Number", "content")
    assert by_header["PHONE2"].how == "synonym"
    assert sorted(w.split(" holds")[0] for w in warnings) == ["column 10 'EMAIL'", "column 8 'PHONE1'"]


def test_stray_email_in_a_phone_column_is_reported(corpus_dir):
    mappings, warnings = map_file(corpus_dir / "annrch_customers_extra_rating_col.csv")
    assert {m.header: m.field for m in mappings}["Phone 1"] == "Phone Number"
    assert warnings == ["column 8 'Phone 1' holds an e-mail address instead of a phone number "
                        "in sampled data row(s) 101"]


def test_large_annrch_file_maps_by_header_within_its_sample(corpus_dir):
    # its shifted row is row 10,001, beyond the 200 sampled rows: headers decide
    mappings, warnings = map_file(corpus_dir / "annrch_customers-10000_renamed_headers.csv")
    assert {m.header: m.how for m in mappings}["FIRSNAME"] == "fuzzy"
    assert warnings == []


def test_title_with_real_job_titles_is_a_job_title(corpus_dir):
    mappings, warnings = map_file(corpus_dir / "atomiccrm_contacts_export.csv")
    assert {m.header: m.field for m in mappings}["title"] == "Job Title"
    assert warnings == []


def test_title_with_faker_buzzwords_is_left_unmapped(corpus_dir):
    mappings, warnings = map_file(corpus_dir / "atomiccrm_test-data_contacts.csv")
    title = next(m for m in mappings if m.header == "title")
    assert (title.field, title.how) == (None, "unmapped")
    assert [w for w in warnings if "'title'" in w and "do not look like job titles" in w]


def test_courtesy_title_is_not_a_job_title():
    (m,), _ = map_headers(["Title"], "people", sample=[["Mr"], ["Ms."], ["Dr"]])
    assert m.field is None and "courtesy" in m.note
    mappings, _ = map_headers(["Title", "Job Title"], "people")  # Outlook layout, no sample
    assert [m.field for m in mappings] == [None, "Job Title"]
    (m,), _ = map_headers(["Title"], "people")  # Apollo/Salesforce layout
    assert m.field == "Job Title"
    (m,), _ = map_headers(["Titel"], "people", sample=[["Mr"], ["Mrs"]])  # a typo is checked too
    assert (m.field, m.how) == (None, "unmapped")


# --- overrides and mapping files --------------------------------------------


def test_overrides_exact_then_normalised_and_ignore():
    headers = ["Lead Source", "PHONE1", "notes", "Email"]
    sample = [["ads", "a@x.com", "hi", "b@y.com"]]
    overrides = {"Lead Source": "ignore", "phone_1": "Phone Number", "Notes": "company description",
                 "Missing Column": "Full Name"}
    mappings, warnings = map_headers(headers, "people", overrides=overrides, sample=sample)
    assert [(m.field, m.how) for m in mappings] == [
        (None, "ignored"), ("Phone Number", "override"), ("Company Description", "override"),
        ("Work Email", "synonym")]
    assert warnings == ["mapping entry 'Missing Column' names no column of this file"]


def test_keep_override_keeps_a_column_that_would_map():
    sample = [["a@x.com", "b@y.com"]]
    mappings, warnings = map_headers(["Email", "PHONE1"], "people", sample=sample,
                                     overrides={"email": "keep", "PHONE1": "Keep"})
    assert [(m.field, m.how) for m in mappings] == [(None, "override"), (None, "override")]
    assert "kept under its own header" in mappings[0].note and warnings == []


def test_exact_override_beats_normalised_one():
    overrides = {"e-mail": "Personal Email", "E-Mail": "Work Email"}
    mappings, _ = map_headers(["E-Mail", "e-mail"], "people", overrides=overrides)
    assert [m.field for m in mappings] == ["Work Email", "Personal Email"]


def test_override_to_a_field_of_the_other_table_type_is_reported():
    (m,), warnings = map_headers(["HQ"], "people", overrides={"HQ": "Company Phone"})
    assert (m.field, m.how) == (None, "unmapped")
    assert "'Company Phone' is not a people field" in warnings[0]


@pytest.mark.parametrize("target", ["Emial", "Source", 3, None])
def test_override_to_an_unknown_field_raises(target):
    with pytest.raises(ConfigError, match="mapping entry 'X'"):
        map_headers(["X"], "people", overrides={"X": target})


def test_load_mapping_file_yaml_and_json(tmp_path):
    yml = tmp_path / "map.yaml"
    yml.write_text("PHONE1: work email\nLead Source: IGNORE\n2024: Year Founded\n", encoding="utf-8")
    assert load_mapping_file(yml) == {"PHONE1": "Work Email", "Lead Source": "ignore",
                                      "2024": "Year Founded"}
    js = tmp_path / "map.json"
    js.write_text(json.dumps({"Org": "Company Name", "Tel.": "Company Phone"}), encoding="utf-8")
    assert load_mapping_file(str(js)) == {"Org": "Company Name", "Tel.": "Company Phone"}
    empty = tmp_path / "empty.yml"
    empty.write_text("", encoding="utf-8")
    assert load_mapping_file(empty) == {}


def test_load_mapping_file_names_the_file_and_the_bad_entry(tmp_path):
    path = tmp_path / "map.yaml"
    path.write_text("Email: Work Email\nPhone: Telephone\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_mapping_file(path)
    message = str(info.value)
    assert str(path) in message and "'Phone'" in message and "'Telephone'" in message
    assert all(name in message for name in ("Work Email", "Company Phone", "Year Founded", "'ignore'",
                                            "'keep'"))
    assert info.value.exit_code == 2


@pytest.mark.parametrize(("name", "text", "reason"), [
    ("bad.yaml", "a: [unclosed\n", "not valid YAML"),
    ("bad.json", "{'a': 1}", "not valid JSON"),
    ("list.yaml", "- Email\n- Phone\n", "expected an object"),
    ("src.yaml", "Lead Source: Source\n", "filled by the merge"),
])
def test_load_mapping_file_rejects_malformed_files(tmp_path, name, text, reason):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(reason)) as info:
        load_mapping_file(path)
    assert str(path) in str(info.value)


def test_load_mapping_file_missing(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the mapping file"):
        load_mapping_file(tmp_path / "nope.yaml")


# --- the table itself and robustness -----------------------------------------


@pytest.mark.parametrize("table_type", ["people", "company"])
def test_every_field_but_source_has_synonyms(table_type):
    counts = synonym_counts(table_type)
    assert counts.pop("Source") == 0
    assert min(counts.values()) >= 4, counts


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=20), max_size=8),
       st.lists(st.lists(st.text(max_size=15), max_size=8), max_size=5),
       st.sampled_from(["people", "company"]))
def test_map_headers_never_raises(headers, sample, table_type):
    mappings, warnings = map_headers(headers, table_type, sample=sample)
    assert [m.header for m in mappings] == headers
    assert all(m.how in {"synonym", "fuzzy", "content", "unmapped"} for m in mappings)
    assert all(isinstance(w, str) for w in warnings)


def test_linkedin_column_of_the_other_kind_moves():
    sample = [["https://www.linkedin.com/company/acme", "https://linkedin.com/in/ann-lee"],
              ["linkedin.com/company/beta-io/", "https://www.linkedin.com/in/bob"]]
    mappings, warnings = map_headers(["LinkedIn", "Company LinkedIn"], "people", sample=sample)
    assert [(m.field, m.how) for m in mappings] == [("Company LinkedIn", "content"),
                                                    ("LinkedIn Profile", "content")]
    assert len(warnings) == 2 and "column 1 'LinkedIn' holds LinkedIn company pages" in warnings[0]
    company, warnings = map_headers(["LinkedIn", "Company LinkedIn"], "company", sample=sample)
    assert [(m.field, m.how) for m in company] == [("Company LinkedIn", "synonym"), (None, "unmapped")]
    assert "left unmapped in a company list" in warnings[0]


def test_linkedin_column_of_the_right_kind_stays():
    sample = [["https://www.linkedin.com/in/johndoe"], ["N/A"]]
    (m,), warnings = map_headers(["linkedin_url"], "people", sample=sample)
    assert (m.field, m.how, warnings) == ("LinkedIn Profile", "synonym", [])
