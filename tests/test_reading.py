"""tasks/merge/reading/: every corpus file read as checked by hand, then one
generated-bytes test per reading rule, then round-trip property tests.

Corpus expectations were taken from the files themselves (hexdumps, wc -l,
pandas as an independent parser for the row counts), not from open_csv.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csv_merger.errors import InputError
from tasks.merge.reading import BLOCK_BYTES, MIXED_FALLBACK, BadRow, open_csv

DATABLIST_CUSTOMERS = ["Index", "Customer Id", "First Name", "Last Name", "Company", "City", "Country",
                       "Phone 1", "Phone 2", "Email", "Subscription Date", "Website"]
ANNRCH_CAPS = ["INDEX", "CUSTOMERID", "FIRSNAME", "LASTNAME", "COMPANY", "CITY", "COUNTRY", "PHONE1",
               "PHONE2", "EMAIL", "SUBSCRIPTIONDATE", "WEBSITE"]

# file -> expected: encoding, delimiter, rows, header (full list, or (width, first names)),
# header_line, bad (line -> reason fragment), values ((row index, column) -> text),
# lines (row index -> physical line), warnings (fragments; no other warning allowed).
CORPUS: dict[str, dict] = {
    "annrch_customers-10000_renamed_headers.csv": dict(
        encoding="utf-8", delimiter=",", rows=10001, header=ANNRCH_CAPS,
        values={(1, "COMPANY"): "Horn; Shepard and Watson", (0, "PHONE1"): "043-797-5229",
                (10000, "PHONE1"): "sample.person@example.com", (10000, "EMAIL"): "000-000-00-02"},
        lines={1: 3, 10000: 10002}),
    "annrch_customers-1000_misaligned_cols.csv": dict(
        encoding="utf-8", delimiter=",", rows=101, header=ANNRCH_CAPS,
        values={(0, "PHONE1"): "zunigavanessa@smith.info", (0, "EMAIL"): "397.884.0519x718",
                (99, "COMPANY"): "Le; Nash and Cross"}),
    "annrch_customers_extra_rating_col.csv": dict(
        encoding="utf-8", delimiter=",", rows=101, header=DATABLIST_CUSTOMERS + ["Rating"],
        values={(0, "Rating"): "73.96539487735198", (100, "Rating"): "88.9",
                (0, "Phone 1"): "229.077.5154"}),
    "atomiccrm_contacts_export.csv": dict(
        encoding="utf-8", delimiter=",", rows=2, header=(18, ["first_name", "last_name", "gender"]),
        values={(0, "tags"): "influencer, developer", (0, "linkedin_url"): "https://www.linkedin.com/in/johndoe",
                (1, "email_other"): "jane@doe.example", (1, "phone_other"): "", (0, "background"): ""}),
    "atomiccrm_test-data_contacts.csv": dict(
        encoding="utf-8", delimiter=",", rows=500, header=(24, ["id", "first_name", "last_name"]),
        values={(0, "email_other"): "Shelley_Kerluke47@hotmail.com", (0, "phone_home"): "1-955-371-0847 x371",
                (2, "phone_work"): "1-365-756-9410 x4781", (499, "company_name"): "Mitchell, Kirlin and Lind"}),
    "chatwoot_spec_contacts.csv": dict(
        encoding="utf-8", delimiter=",", rows=25,
        header=["id", "first_name", "last_name", "email", "gender", "ip_address", "identifier"],
        values={(4, "last_name"): "O'Lunney"}, lines={4: 6}),
    "csvkit_bad.csv": dict(
        encoding="utf-8", delimiter=",", rows=3, header=["column_a", "column_b", "column_c"],
        bad={2: "4 fields, expected 3", 3: "2 fields, expected 3 (padded"},
        values={(0, "column_c"): "", (1, "column_b"): "I'm too short!", (1, "column_c"): "",
                (2, "column_b"): "mixed types.... uh oh"},
        surplus={0: ["I'm too long!"]}),
    "csvkit_bad_skip_lines.csv": dict(
        encoding="utf-8", delimiter=",", rows=3, header=["column_a", "column_b", "column_c"], header_line=4,
        bad={5: "4 fields, expected 3", 6: "2 fields, expected 3"}, values={(2, "column_c"): "17"},
        lines={0: 5, 2: 7}, surplus={0: ["I'm too long!"]}, warnings=["3 line(s) before the header on line 4"]),
    "csvkit_blanks.csv": dict(
        encoding="utf-8", delimiter=",", rows=1, header=["a", "b", "c", "d", "e", "f"],
        values={(0, "a"): "", (0, "b"): "NA", (0, "c"): "N/A", (0, "e"): "NULL", (0, "f"): "."}),
    "csvkit_dummy.tsv": dict(
        encoding="utf-8", delimiter="\t", rows=1, header=["a", "b", "c"], values={(0, "c"): "3"}),
    "csvkit_mac_newlines.csv": dict(
        encoding="utf-8", delimiter=",", rows=2, header=["a", "b", "c"],
        values={(1, "a"): "Once upon\ra time", (1, "c"): "6"}, lines={0: 2, 1: 3}),
    "csvkit_no_header_row.csv": dict(
        encoding="utf-8", delimiter=",", rows=0, header=["1", "2", "3"],
        warnings=["first row looks like data", "only a header"]),
    "csvkit_null_byte.csv": dict(
        encoding="utf-8", delimiter=",", rows=1, header=["a", "b", "c"],
        values={(0, "a"): "", (0, "b"): "2"}, warnings=["1 NUL character(s) removed"]),
    "csvkit_test_header_newline.csv": dict(
        encoding="utf-8", delimiter=",", rows=1, header=["start end", "b", "c"],
        values={(0, "start end"): "d"}, lines={0: 8}),  # CR and LF each end a line: 7 breaks before "d"
    "csvkit_test_latin1.csv": dict(
        encoding="cp1252", delimiter=",", rows=2, header=["a", "b", "c"], values={(1, "c"): "\u00a9"}),
    "csvkit_test_utf16_little.csv": dict(
        encoding="utf-16", delimiter=",", rows=2, header=["a", "b", "c"], values={(1, "c"): "\u02a4"}),
    "csvkit_test_utf8_bom.csv": dict(
        encoding="utf-8-sig", delimiter=",", rows=2, header=["foo", "bar", "baz"], values={(1, "baz"): "\u02a4"}),
    "csvparser_comment.csv": dict(
        encoding="utf-8", delimiter=",", rows=1, header=["a", "b", "c"], header_line=2,
        values={(0, "a"): "1"}, lines={0: 3}, warnings=["1 line(s) before the header on line 2 skipped as preamble: first '# comment'"]),
    "csvparser_option-escape.csv": dict(
        encoding="utf-8", delimiter=",", rows=3, header=["a", "b", "c"],
        values={(0, "b"): 'some "escaped" value', (1, "b"): '""', (2, "c"): "7"},
        warnings=["escaped with backslashes"]),
    "csvtojson_dataDiffDelimiter.csv": dict(
        encoding="utf-8", delimiter=";", rows=2, header=["annee", "jour", "date", "b_1", "b_2", "devise"],
        values={(0, "jour"): "LUNDI   ", (1, "date"): "07/03/2015", (1, "devise"): "eur"},
        warnings=["header ends with a delimiter"]),
    "datablist_customers-100.csv": dict(
        encoding="utf-8", delimiter=",", rows=100, header=DATABLIST_CUSTOMERS,
        values={(99, "Company"): "Le, Nash and Cross", (1, "Phone 1"): "5153435776",
                (0, "Website"): "http://www.stephenson.com/"}, lines={99: 101}),
    "datablist_leads-100.csv": dict(
        encoding="utf-8", delimiter=",", rows=100, header=(14, ["Index", "Account Id", "Lead Owner"]),
        values={(0, "Company"): "Grimes, Madden and Huff", (1, "Email 2"): "hunter84@jefferson.com",
                (1, "Notes"): "Consumer environment still."}),
    "datablist_organizations-100.csv": dict(
        encoding="utf-8", delimiter=",", rows=100,
        header=["Index", "Organization Id", "Name", "Website", "Country", "Description", "Founded",
                "Industry", "Number of employees"],
        values={(0, "Founded"): "1990", (0, "Number of employees"): "3498",
                (1, "Name"): "Mckinney, Riley and Day"}),
    "datablist_people-1000.csv": dict(
        encoding="utf-8", delimiter=",", rows=1000, header=(9, ["Index", "User Id", "First Name"]),
        values={(0, "Job Title"): "Probation officer", (999, "Job Title"): "Nurse, learning disability",
                (999, "Phone"): "079.752.5424x67259"}),
    "prestashop_customers_import.csv": dict(
        encoding="utf-8", delimiter=";", rows=9,
        header=(13, ["Customer ID", "Active (0/1)", "Titles ID (Mr = 1, Ms = 2, else 0)", "Email *"]),
        values={(3, "Groups (x,y,z...)"): "Customer, Carribean", (0, "Email *"): "Peter.Pan@prestashop.com",
                (1, "First Name *"): "Wendy Moira"}),
    "relaticle_fixture_companies.csv": dict(
        encoding="utf-8", delimiter=",", rows=5, header=["name", "account_owner_email"],
        values={(4, "account_owner_email"): "enterprise@example.com"}),
    "relaticle_people-10000.csv": dict(
        encoding="utf-8", delimiter=",", rows=10000, header=["name", "company_name", "custom_fields_emails"],
        values={(1, "name"): "Donnie Swaniawski", (9999, "custom_fields_emails"): "otho.flatley10000@advancedgroup.com"}),
    "relaticle_people_3453.csv": dict(
        encoding="utf-8", delimiter=",", rows=3453, header=["name", "email", "phone", "company_name", "job_title"],
        values={(4, "company_name"): "Stellar Networks", (3145, "company_name"): "Pinnacle Partners",
                (3145, "email"): "jroberts@business.org"}, lines={3145: 3147}),
    "roundcube_all.csv": dict(
        encoding="utf-8-sig", delimiter=",", rows=1, header=(61, ["Display Name", "Title", "First Name"]),
        values={(0, "Email Work"): "work@example.com", (0, "Home Phone"): "100", (0, "Birthday"): "20/01/1991"}),
    "roundcube_email.csv": dict(
        encoding="utf-8", delimiter=",", rows=4, header=["Primary Email"],
        values={(0, "Primary Email"): "test1@domain.tld", (3, "Primary Email"): "test4@domain.tld"}),
    "roundcube_gmail.csv": dict(
        encoding="utf-8", delimiter=",", rows=1, header=(81, ["Name", "Given Name", "Additional Name"]),
        values={(0, "Notes"): 'note"note', (0, "E-mail 2 - Value"): "work@email.pl",
                (0, "Address 1 - Formatted"): "home_street\nhome_pobox\nhome_city, home_state home_zip\nhome_country",
                (0, "Website 2 - Value"): "home.page.com"}),
    "roundcube_tb_plain.csv": dict(
        encoding="utf-8", delimiter=",", rows=1, header=(37, ["First Name", "Last Name", "Display Name"]),
        values={(0, "Primary Email"): "test@domain.tld", (0, "Notes"): "", (0, "Birth Day"): "15"},
        warnings=["header ends with a delimiter"]),
    "shopware5_NewsletterRecipientImport.csv": dict(
        encoding="utf-8", delimiter=";", rows=6, header=(11, ["email", "group", "salutation"]),
        values={(0, "group"): "Newsletter-Empf\u00e4nger", (3, "email"): "test4@exmaple.com", (5, "userID"): ""}),
    "spectrum_comma_in_quotes.csv": dict(
        encoding="utf-8", delimiter=",", rows=1, header=["first", "last", "address", "city", "zip"],
        values={(0, "city"): "Anytown, WW", (0, "zip"): "08123"}),
    "spectrum_escaped_quotes.csv": dict(
        encoding="utf-8", delimiter=",", rows=2, header=["a", "b"], values={(0, "b"): 'ha "ha" ha'}),
    "spectrum_json.csv": dict(
        encoding="utf-8", delimiter=",", rows=1, header=["key", "val"],
        values={(0, "val"): '{"type": "Point", "coordinates": [102.0, 0.5]}'}),
    "spectrum_quotes_and_newlines.csv": dict(
        encoding="utf-8", delimiter=",", rows=2, header=["a", "b"],
        values={(0, "b"): 'ha \n"ha" \nha', (1, "a"): "3"}, lines={0: 2, 1: 5}),
    "taps3_duplicate_headers.csv": dict(
        encoding="utf-8", delimiter=",", rows=6,
        header=["a0", "b0", "c0", "a0", "d0", "b0", "e0", "f0", "b0", "b0", "c0"],
        bad={3: "8 fields, expected 11", 4: "4 fields", 5: "1 field, expected 11", 6: "5 fields",
             7: "14 fields, expected 11 (3 extra"},
        values={(0, 3): "a11", (0, 10): "c11", (1, 7): "f2", (1, 8): "", (3, 0): "a4", (4, 0): "a5", (4, 4): "d5"},
        surplus={5: ["g0", "h0", "i0"]}, warnings=["duplicate header names"]),
    "taps3_problematic_header_characters.csv": dict(
        encoding="utf-8", delimiter=",", rows=1,
        header=["has space", "has-dash", "has_underscore", "has,comma", "has'tick", 'has"quote'],
        values={(0, 'has"quote'): "5"}),
    "taps3_test_csv_with_empty_lines.csv": dict(
        encoding="utf-8", delimiter=",", rows=4, header=["id", "name", "name"],
        bad={4: "2 fields", 6: "1 field", 8: "5 fields, expected 3 (2 extra"},
        values={(0, 2): "carl", (1, 1): "Bob", (1, 2): "", (3, 2): "Barak"}, lines={1: 4, 3: 8},
        surplus={3: ["Ben", "5"]}, warnings=["duplicate header names"]),
}


def test_corpus_table_covers_every_file(corpus_dir):
    on_disk = {p.name for p in corpus_dir.iterdir() if p.name != "MANIFEST.md"}
    assert on_disk == set(CORPUS)
    assert len(on_disk) == 40


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_file(corpus_dir, name):
    want = CORPUS[name]
    source = open_csv(corpus_dir / name)
    rows = list(source.rows())

    assert (source.encoding, source.delimiter, len(rows)) == (want["encoding"], want["delimiter"], want["rows"])
    if isinstance(want["header"], tuple):
        width, first = want["header"]
        assert len(source.header) == width and source.header[:len(first)] == first
    else:
        assert source.header == want["header"]
    assert source.header_line == want.get("header_line", 1)
    assert all(len(row.cells) == len(source.header) for row in rows)
    assert all("\ufeff" not in name and name == name.strip() and name for name in source.header)

    bad = {b.line: b.reason for b in source.bad_rows}
    assert sorted(bad) == sorted(want.get("bad", {}))
    for line, fragment in want.get("bad", {}).items():
        assert fragment in bad[line]
    for (index, column), value in want.get("values", {}).items():
        position = column if isinstance(column, int) else source.header.index(column)
        assert rows[index].cells[position] == value
    for index, line in want.get("lines", {}).items():
        assert rows[index].line == line
    surplus = want.get("surplus", {})
    assert {i: row.surplus for i, row in enumerate(rows) if row.surplus} == surplus

    assert len(source.warnings) == len(want.get("warnings", [])), source.warnings
    for fragment in want.get("warnings", []):
        assert any(fragment in warning for warning in source.warnings), (fragment, source.warnings)
    assert not any("\0" in cell for row in rows for cell in row.cells)


# --- generated bytes, one rule each ---------------------------------------------------


def write(tmp_path, data: bytes, name: str = "in.csv"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def read(path) -> tuple:
    source = open_csv(path)
    return source, [row.cells for row in source.rows()]


def test_cp1252_excel_export(tmp_path):
    source, rows = read(write(tmp_path, "Name;Stadt;Preis\r\nMüller;Köln;5 €\r\nRenée;Zürich;\r\n".encode("cp1252")))
    assert (source.encoding, source.delimiter) == ("cp1252", ";")
    assert rows == [["Müller", "Köln", "5 €"], ["Renée", "Zürich", ""]]
    assert source.warnings == []


@pytest.mark.parametrize("text, codec", [
    ("imie,miasto\nŁukasz Żółć,Łódź\nŚwiętosław,Kraków\nGrzegorz Brzęczyszczykiewicz,Chrząszczyrzewoszyce\n", "cp1250"),
    ("имя,город\nИван Петров,Москва\nСергей,Санкт-Петербург\n", "cp1251"),
])
def test_other_code_pages_recognised_by_language(tmp_path, text, codec):
    source, rows = read(write(tmp_path, text.encode(codec)))
    assert source.encoding == codec
    assert [source.header] + rows == [line.split(",") for line in text.splitlines()]


@pytest.mark.parametrize("bom, codec", [(codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")])
def test_utf16_with_bom(tmp_path, bom, codec):
    source, rows = read(write(tmp_path, bom + "Email\tName\r\nrenée@x.fr\tRenée\r\n".encode(codec)))
    assert (source.encoding, source.delimiter, source.header) == ("utf-16", "\t", ["Email", "Name"])
    assert rows == [["renée@x.fr", "Renée"]]


def test_utf16_without_bom_is_recognised(tmp_path):
    source, rows = read(write(tmp_path, "a,b\n1,é\n".encode("utf-16-le")))
    assert (source.encoding, source.header, rows) == ("utf-16-le", ["a", "b"], [["1", "é"]])
    assert "without a byte-order mark" in source.warnings[0]


def test_utf8_bom_never_in_header(tmp_path):
    source, rows = read(write(tmp_path, codecs.BOM_UTF8 + b"email,name\nx@y.com,Z\n"))
    assert (source.encoding, source.header, rows) == ("utf-8-sig", ["email", "name"], [["x@y.com", "Z"]])


def test_valid_utf8_start_then_cp1252_byte_after_first_block(tmp_path):
    """Two exports concatenated: UTF-8 for over a block, then cp1252. Both
    halves decode right, up front, with a warning; nothing crashes mid-read."""
    utf8_part = "name,city\n" + "José,Zürich\n" * (BLOCK_BYTES // 10)
    data = utf8_part.encode() + "Müller,Köln\n".encode("cp1252")
    assert len(data) > BLOCK_BYTES
    source = open_csv(write(tmp_path, data))
    assert source.decode_errors == MIXED_FALLBACK and source.encoding == "utf-8"
    assert "not valid UTF-8" in source.warnings[0] and "cp1252" in source.warnings[0]
    rows = list(source.rows())
    assert rows[0].cells == ["José", "Zürich"]
    assert rows[-1].cells == ["Müller", "Köln"] and len(rows) == BLOCK_BYTES // 10 + 1


def test_mixed_encodings_with_a_bom_count_only_the_invalid_bytes(tmp_path):
    data = codecs.BOM_UTF8 + "name\nJosé\n".encode() + "Müller\n".encode("cp1252")
    source, rows = read(write(tmp_path, data))
    assert (source.encoding, source.header, rows) == ("utf-8-sig", ["name"], [["José"], ["Müller"]])
    assert "1 byte(s) that are not valid UTF-8" in source.warnings[0]


def test_ascii_first_block_then_cp1252_reads_whole_file_as_cp1252(tmp_path):
    data = b"name,city\n" + b"Joe,Paris\n" * (BLOCK_BYTES // 10 + 5) + "Müller,Köln\n".encode("cp1252")
    source, rows = read(write(tmp_path, data))
    assert source.encoding == "cp1252" and rows[-1] == ["Müller", "Köln"]


def test_invalid_utf16_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not valid UTF-16"):
        open_csv(write(tmp_path, codecs.BOM_UTF16_LE + "a,b\n".encode("utf-16-le") + b"\x00\xdc"))


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_each_delimiter_with_quoted_other_delimiters(tmp_path, delimiter):
    others = "a,b;c\td|e"
    text = f'id{delimiter}note\n1{delimiter}"{others}"\n2{delimiter}plain\n'
    source, rows = read(write(tmp_path, text.encode()))
    assert source.delimiter == delimiter
    assert rows == [["1", others], ["2", "plain"]]


def test_semicolon_file_with_commas_in_unquoted_header_cells(tmp_path):
    text = "Email *;Groups (x,y,z...);Titles (Mr = 1, Ms = 2)\na@x.com;Customer, VIP;1\nb@x.com;Kids;2\n"
    source, rows = read(write(tmp_path, text.encode()))
    assert source.delimiter == ";" and source.header[1] == "Groups (x,y,z...)"
    assert rows[0] == ["a@x.com", "Customer, VIP", "1"]


def test_tab_file_with_one_comma_per_line_stays_tab(tmp_path):
    source, rows = read(write(tmp_path, b"Name\tCity, State\nJohn\tAustin, TX\nJane\tDallas, TX\n"))
    assert (source.delimiter, source.header) == ("\t", ["Name", "City, State"])
    assert rows == [["John", "Austin, TX"], ["Jane", "Dallas, TX"]]


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_one_column_file_is_never_split_on_a_letter(tmp_path, newline):
    text = newline.join(["email", "lilly@mail.com", "molly@mail.com", "lola@l.com"]) + newline
    source, rows = read(write(tmp_path, text.encode()))
    assert (source.delimiter, source.header) == (",", ["email"])
    assert rows == [["lilly@mail.com"], ["molly@mail.com"], ["lola@l.com"]]


def test_crlf_with_quoted_newlines_and_physical_line_numbers(tmp_path):
    data = b'id,notes,city\r\n1,"line one\r\nline two\r\nline three",Paris\r\n\r\n2,"say ""hi""",Lyon\r\n'
    source = open_csv(write(tmp_path, data))
    rows = list(source.rows())
    assert [(r.line, r.cells) for r in rows] == [
        (2, ["1", "line one\r\nline two\r\nline three", "Paris"]),
        (6, ["2", 'say "hi"', "Lyon"]),
    ]
    assert source.bad_rows == []


def test_bare_cr_line_endings(tmp_path):
    source = open_csv(write(tmp_path, b'a,b\r1,2\r"x\ry",3\r'))
    assert [(r.line, r.cells) for r in source.rows()] == [(2, ["1", "2"]), (3, ["x\ry", "3"])]


def test_blank_lines_and_empty_records_are_skipped_silently(tmp_path):
    source = open_csv(write(tmp_path, b"a,b,c\n\n1,2,3\n   \n,,\n\r\n4,5,6\n\n"))
    assert [(r.line, r.cells) for r in source.rows()] == [(3, ["1", "2", "3"]), (7, ["4", "5", "6"])]
    assert source.bad_rows == [] and source.warnings == []


@pytest.mark.parametrize("preamble, skipped", [
    ("# exported by CRM v2\n# 2024-05-01\n", 2),
    ("\n\n\n", 3),
    ('Notes:\n"When exporting your connection data, you may notice that some of the email addresses '
     'are missing. You will only see email addresses for connections who have allowed it."\n\n', 3),
    ("Leads export May 2024\n", 1),
])
def test_preamble_lines_are_skipped_with_a_warning(tmp_path, preamble, skipped):
    table = "First Name,Last Name,Email Address\nJane,Doe,jane@x.com\nJohn,Roe,john@x.com\n"
    source, rows = read(write(tmp_path, (preamble + table).encode()))
    assert source.header == ["First Name", "Last Name", "Email Address"]
    assert source.header_line == skipped + 1
    assert rows == [["Jane", "Doe", "jane@x.com"], ["John", "Roe", "john@x.com"]]
    assert [w for w in source.warnings if f"{skipped} line(s) before the header" in w]


def test_excel_sep_line_names_the_delimiter(tmp_path):
    source, rows = read(write(tmp_path, b"sep=;\nname;price\nWidget;1,50\n"))
    assert (source.delimiter, source.header, rows) == (";", ["name", "price"], [["Widget", "1,50"]])
    assert "sep=;" in source.warnings[0]


def test_hash_in_a_real_header_is_not_a_comment(tmp_path):
    source, rows = read(write(tmp_path, b"#,Name\n1,Ann\n2,Bob\n"))
    assert (source.header, source.header_line, rows) == (["#", "Name"], 1, [["1", "Ann"], ["2", "Bob"]])


def test_backslash_escaped_quotes(tmp_path):
    source, rows = read(write(tmp_path, b'id,quote\n1,"she said \\"hi\\", then left"\n2,"plain"\n'))
    assert rows == [["1", 'she said "hi", then left'], ["2", "plain"]]
    assert "backslash" in source.warnings[0]


def test_rfc_quotes_with_backslashes_stay_rfc(tmp_path):
    source, rows = read(write(tmp_path, b'id,path\n1,"C:\\dir\\""quoted"""\n2,C:\\x\n'))
    assert rows == [["1", 'C:\\dir\\"quoted"'], ["2", "C:\\x"]] and source.warnings == []


def test_trailing_delimiters_add_no_column_and_no_bad_rows(tmp_path):
    source, rows = read(write(tmp_path, b"a;b;\n1;2;\n3;4;\n"))
    assert (source.header, rows, source.bad_rows) == (["a", "b"], [["1", "2"], ["3", "4"]], [])


def test_value_under_a_trailing_empty_header_is_kept_as_surplus(tmp_path):
    source = open_csv(write(tmp_path, b"a,b,\n1,2,3\n"))
    rows = list(source.rows())
    assert (rows[0].cells, rows[0].surplus) == (["1", "2"], ["3"])
    assert source.bad_rows == [BadRow(2, "3 fields, expected 2 (1 extra kept as surplus)")]


def test_empty_header_name_in_the_middle_gets_a_stable_name(tmp_path):
    source, rows = read(write(tmp_path, b"a,,c,\n1,2,3,\n"))
    assert (source.header, rows) == (["a", "Column 2", "c"], [["1", "2", "3"]])
    assert any("Column 2" in w for w in source.warnings)


def test_header_of_blank_names_keeps_every_column(tmp_path):
    source, rows = read(write(tmp_path, b" , \n1,2\n"))
    assert (source.header, rows) == (["Column 1", "Column 2"], [["1", "2"]])


def test_header_cells_are_cleaned_but_otherwise_kept(tmp_path):
    data = codecs.BOM_UTF8 + b'"  First\tName ","Email *",\xef\xbb\xbfPhone (mobile)\n1,2,3\n'
    source = open_csv(write(tmp_path, data))
    assert source.header == ["First Name", "Email *", "Phone (mobile)"]


def test_ragged_rows_never_shift_values(tmp_path):
    source = open_csv(write(tmp_path, b"a,b,c,d,e\n1,2,3\n1,2,3,4,5,6,7\n1,2,3,4,5,,\n"))
    rows = list(source.rows())
    assert [(r.cells, r.surplus) for r in rows] == [
        (["1", "2", "3", "", ""], []),
        (["1", "2", "3", "4", "5"], ["6", "7"]),
        (["1", "2", "3", "4", "5"], []),
    ]
    assert source.bad_rows == [BadRow(2, "3 fields, expected 5 (padded with empty cells)"),
                               BadRow(3, "7 fields, expected 5 (2 extra kept as surplus)")]


def test_unclosed_quote_is_reported(tmp_path):
    """One entry for the record that swallowed the file, not also its field count (the merge refuses it)."""
    source = open_csv(write(tmp_path, b'a,b,c\n1,"oops,3\n4,5,6\n7,8,9\n'))
    rows = list(source.rows())
    assert len(rows) == 1 and rows[0].cells[1] == "oops,3\n4,5,6\n7,8,9\n"
    assert source.bad_rows == [BadRow(2, "a quote opened on this line is never closed: lines 2-4 (to the end of "
                                         "the file) were read as one record", unclosed_quote=True)]


def test_no_type_inference(tmp_path):
    values = ["02134", "15551234567", "May 2021", "10-12", "250", "2010", "1.50", " padded ", "TRUE", "1e5", "N/A"]
    header = ",".join(f"c{i}" for i in range(len(values)))
    source, rows = read(write(tmp_path, f"{header}\n{','.join(values)}\n".encode()))
    assert rows == [values]


def test_nul_bytes_are_removed_with_a_warning(tmp_path):
    source, rows = read(write(tmp_path, b"a,b\nx\x00y,\x002\n3,4\n"))
    assert rows == [["xy", "2"], ["3", "4"]]
    assert source.warnings == ["2 NUL character(s) removed"]


@pytest.mark.parametrize("data, name, what", [
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "leads.csv", "a PDF document"),
    (b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 22 + b"[Content_Types].xml..xl/workbook.xml", "leads.csv",
     "an Excel workbook (.xlsx), not CSV: export it as CSV"),
    (b"PK\x03\x04\x14\x00\x00\x00" + b"\x00" * 22 + b"leads.csv", "leads.zip", "a ZIP archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "leads.xls", "Excel 97-2003 workbook"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "leads.csv", "a PNG image"),
    (b"\x1f\x8b\x08\x00" + b"\x00" * 20, "leads.csv.gz", "a gzip archive"),
    (b"<!DOCTYPE html>\n<html><body>Sign in</body></html>", "leads.csv", "an HTML page"),
    (b'[{"name": "Ann", "email": "ann@x.com"}, {"name": "Bob"}]\n', "leads.csv", "a JSON array"),
    (b'[\n  {\n    "name": "Ann"\n  }\n]\n', "leads.csv", "a JSON array"),
    (b'\xef\xbb\xbf[{"name": "Ann"}]', "leads.csv", "a JSON array"),
    (b'{"name": "Ann"}\n{"name": "Bob"}\n{"name": "Cid"}\n', "leads.csv", "JSON Lines"),
    (b'{\n  "data": [{"name": "Ann"}]\n}\n', "leads.csv", "a JSON document"),
    (b"<head><title>502 Bad Gateway</title></head><body>nginx</body>\n", "leads.csv", "an HTML page"),
    (b"<!-- proxy -->\n<html><body>Sign in</body></html>", "leads.csv", "an HTML page"),
    (b"<rows><row><name>Ann</name></row></rows>\n", "leads.csv", "an XML document"),
    (b'<?xml version="1.0"?>\n<rows/>', "leads.csv", "an XML document"),
    (b"a,b\n" + b"\x00" * 4000, "leads.csv", "binary"),
    (bytes(range(256)) * 4, "leads.csv", "binary"),
])
def test_binary_and_non_csv_files_are_input_errors(tmp_path, data, name, what):
    path = write(tmp_path, data, name)
    with pytest.raises(InputError) as info:
        open_csv(path)
    assert what in info.value.reason and info.value.path == str(path)


@pytest.mark.parametrize("data, rows", [
    (b'{"a": 1},x\n1,2\n', [["1", "2"]]),          # a cell that is JSON, then more cells
    (b"<b>Title</b>,x\n1,2\n", [["1", "2"]]),      # a header cell with markup
    (b'a,b\n[1],{"x": 1}\n', [["[1]", '{"x": 1}']]),
])
def test_csv_that_merely_starts_like_json_or_markup_is_read(tmp_path, data, rows):
    assert read(write(tmp_path, data))[1] == rows


def test_mostly_nul_after_a_clean_first_block_is_an_input_error(tmp_path):
    data = b"a,b\n" + b"1,2\n" * (BLOCK_BYTES // 4) + b"\x00" * BLOCK_BYTES
    with pytest.raises(InputError, match="NUL bytes"):
        open_csv(write(tmp_path, data))


def test_missing_file_directory_and_pipe_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        open_csv(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="directory"):
        open_csv(tmp_path)
    os.mkfifo(tmp_path / "pipe.csv")
    with pytest.raises(InputError, match="not a regular file"):
        open_csv(tmp_path / "pipe.csv")


@pytest.mark.parametrize("data", [b"", b"\n\n  \r\n", codecs.BOM_UTF8])
def test_empty_file_is_a_warning_not_an_error(tmp_path, data):
    source, rows = read(write(tmp_path, data))
    assert (source.header, rows, source.warnings, source.sample()) == ([], [], ["empty file"], [])


def test_header_only_file_is_a_warning(tmp_path):
    source, rows = read(write(tmp_path, b"email,name\r\n"))
    assert (source.header, rows, source.warnings) == (["email", "name"], [], ["no data rows: only a header"])


@pytest.mark.parametrize("first", [b"1,2,3", b"ann@x.com,Ann,Lee"])
def test_header_that_looks_like_data_is_kept_with_a_warning(tmp_path, first):
    source, rows = read(write(tmp_path, first + b"\n4,5,6\n"))
    assert source.header == first.decode().split(",") and rows == [["4", "5", "6"]]
    assert source.warnings == ["first row looks like data, not a header: kept as the header, "
                               "so its values are column names, not a record"]


def test_sample_does_not_consume_rows_or_touch_bad_rows(tmp_path):
    source = open_csv(write(tmp_path, b"a,b\n1,2\n3\n5,6\n"))
    assert source.sample(2) == [["1", "2"], ["3", ""]]
    assert source.bad_rows == []
    first = [(r.line, r.cells) for r in source.rows()]
    again = [(r.line, r.cells) for r in source.rows()]
    assert first == again == [(2, ["1", "2"]), (3, ["3", ""]), (4, ["5", "6"])]
    assert source.bad_rows == [BadRow(3, "1 field, expected 2 (padded with empty cells)")]


# --- properties -------------------------------------------------------------------------

NAMES = st.from_regex(r"[A-Za-z][A-Za-z0-9 _-]{0,10}[A-Za-z0-9]", fullmatch=True)
# Text as people type it: any printable character plus TAB, CR, LF (other
# control bytes in bulk make a file binary by design).
CELLS = st.text(st.characters(exclude_categories=("Cs", "Cc"), include_characters="\t\r\n"), max_size=12)


@st.composite
def tables(draw):
    width = draw(st.integers(2, 6))
    header = draw(st.lists(NAMES, min_size=width, max_size=width))
    body = draw(st.lists(st.lists(CELLS, min_size=width, max_size=width), max_size=12))
    return header, body


@settings(max_examples=150, deadline=None)
@given(table=tables(), delimiter=st.sampled_from([",", ";", "\t", "|"]),
       newline=st.sampled_from(["\n", "\r\n", "\r"]), codec=st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]))
def test_any_written_table_reads_back_cell_identical(tmp_path_factory, table, delimiter, newline, codec):
    header, body = table
    buffer = io.StringIO(newline="")
    # csv.writer quotes only its own line terminator's characters, so a cell
    # holding the other one needs QUOTE_ALL to stay one record.
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator=newline,
                        quoting=csv.QUOTE_MINIMAL if newline == "\r\n" else csv.QUOTE_ALL)
    writer.writerow(header)
    starts = []
    for row in body:
        starts.append(len(re.findall(r"\r\n|\r|\n", buffer.getvalue())) + 1)
        writer.writerow(row)
    path = tmp_path_factory.mktemp("prop") / "t.csv"
    path.write_bytes(buffer.getvalue().encode(codec))

    source = open_csv(path)
    got = [(r.line, r.cells, r.surplus) for r in source.rows()]
    expected = [(line, row, []) for line, row in zip(starts, body) if any(row)]
    assert (source.delimiter, source.header) == (delimiter, header)
    assert got == expected
    assert source.bad_rows == []


@settings(max_examples=300, deadline=None)
@given(data=st.one_of(
    st.binary(max_size=400),
    st.lists(st.sampled_from([b"a", b",", b";", b"\t", b"|", b'"', b"\\", b"\n", b"\r", b"#", b" ", b"\x00",
                              b"\xc3\xa9", b"\xe9", b"\xef\xbb\xbf", b"sep=", b"1"]), max_size=60).map(b"".join),
))
def test_any_bytes_give_rows_or_an_input_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "f.csv"
    path.write_bytes(data)
    try:
        source = open_csv(path)
    except InputError as exc:
        assert exc.reason
        return
    rows = list(source.rows())
    assert all(len(row.cells) == len(source.header) and "\0" not in "".join(row.cells) for row in rows)
    assert [row.line for row in rows] == sorted({row.line for row in rows})
    assert all(row.line > source.header_line for row in rows)


def test_a_cell_larger_than_csv_default_limit_is_read_whole(tmp_path):
    notes = "long note " * 30_000  # 300,000 characters: csv's default limit is 131,072
    path = tmp_path / "notes.csv"
    path.write_text(f'Email,Notes\na@b.com,"{notes}"\n', encoding="utf-8")
    source = open_csv(path)
    [row] = list(source.rows())
    assert row.cells == ["a@b.com", notes] and source.bad_rows == []
