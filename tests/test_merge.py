"""End-to-end merges (tasks.merge.engine) on real corpus files and on small files
that each reproduce a lesson of BRIEF.md. Counts were checked by hand
against the files (see the comments)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from csv_merger.errors import InputError
from csv_merger.schema import COMPANY_FIELDS, PEOPLE_FIELDS
from tasks.merge import inspect_file, merge_files, source_labels


def read_out(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], [dict(zip(rows[0], r)) for r in rows[1:]]


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def values_of(row: dict[str, str], field: str) -> list[str]:
    """A field's values: ``field``, ``field 2``, ``field 3``... (non-empty)."""
    out, k = [row.get(field, "")], 2
    while f"{field} {k}" in row:
        out.append(row[f"{field} {k}"])
        k += 1
    return [v for v in out if v]


# --- corpus ---------------------------------------------------------------------


def test_same_email_different_people_merge_but_keep_everything(corpus_dir, tmp_path):
    # relaticle_people_3453: 164 e-mails shared by 2+ rows, 182 surplus rows (MANIFEST).
    out = tmp_path / "out.csv"
    report = merge_files([corpus_dir / "relaticle_people_3453.csv"], out)
    assert (report.rows_in, report.duplicates_merged, report.rows_out) == (3453, 182, 3271)
    _, rows = read_out(out)
    assert len(rows) == 3271
    [jr] = [r for r in rows if r["Work Email"] == "jroberts@business.org"]   # lines 6 and 3147
    assert values_of(jr, "Company Name") == ["Stellar Networks", "Pinnacle Partners"]
    assert values_of(jr, "Phone Number") == ["+1-288-551-3573", "+1-364-741-4612"]
    assert values_of(jr, "Job Title") == ["Project Manager", "Director of Operations"]
    [kp] = [r for r in rows if r["Work Email"] == "kperez@business.org"]     # lines 10 and 370
    assert values_of(kp, "Full Name") == ["Kenneth Perez", "Kevin Perez"]
    assert values_of(kp, "First Name") == ["Kenneth", "Kevin"]
    assert kp["Company Domain"] == "business.org"
    # personal addresses are routed to Personal Email, never used for Company Domain
    [karen] = [r for r in rows if r["Personal Email"] == "kperez@gmail.com"]
    assert karen["Work Email"] == "" and karen["Company Domain"] == ""


def test_two_exports_of_one_customer_list_merge_and_the_odd_row_loses_nothing(corpus_dir, tmp_path):
    # datablist_customers-100 and annrch_customers_extra_rating_col share 100 customers;
    # the annrch file adds one hand-typed row (101) with an e-mail in "Phone 1".
    out = tmp_path / "out.csv"
    report = merge_files([corpus_dir / "datablist_customers-100.csv",
                          corpus_dir / "annrch_customers_extra_rating_col.csv"], out)
    assert (report.rows_in, report.duplicates_merged, report.rows_out) == (201, 100, 101)
    header, rows = read_out(out)
    assert "Rating" in header and "Customer Id" in header
    first = rows[0]
    assert first["Source"] == "datablist_customers-100.csv | annrch_customers_extra_rating_col.csv"
    assert first["Work Email"] == "zunigavanessa@smith.info"
    assert first["Company Domain"] == "stephenson.com"
    assert first["Rating"] == "73.96539487735198"
    odd = rows[-1]
    assert odd["Customer Id"] == "sample0001"
    assert "sample.person@example.com" in odd.values()
    assert odd["Invalid Email"] == "000-000-00-02"     # never silently dropped
    assert report.invalid_emails == 1


def test_wide_google_contacts_export_keeps_every_column(corpus_dir, tmp_path):
    # Lesson: 80 columns in, 10 out. roundcube_gmail has 81 columns.
    src = corpus_dir / "roundcube_gmail.csv"
    out = tmp_path / "out.csv"
    report = merge_files([src], out, neutralise_formulas=False)
    header, rows = read_out(out)
    mapping = report.files[0].mapping
    kept = [h for h, field in mapping.items() if field is None]
    assert all(h in header for h in kept)
    with open(src, newline="", encoding="utf-8-sig") as f:
        source_rows = list(csv.DictReader(f))
    out_values = {v for row in rows for v in row.values()}
    for row in source_rows:
        for h in kept:
            if (row[h] or "").strip():
                assert row[h].strip() in out_values, h


def test_every_corpus_file_merges_or_is_reported(corpus_dir, tmp_path):
    out = tmp_path / "out.csv"
    report = merge_files([str(corpus_dir / "*.csv"), str(corpus_dir / "*.tsv")], out, skip_bad_files=True)
    files = {Path(f.path).name: f for f in report.files}
    assert len(files) == 40
    for f in report.files:
        assert f.skipped == (f.error is not None)
    merged = [f for f in report.files if not f.skipped]
    assert report.rows_in == sum(f.rows for f in merged)
    assert report.rows_in == report.rows_out + report.duplicates_merged + report.empty_rows
    assert files["datablist_people-1000.csv"].rows == 1000
    assert files["relaticle_people-10000.csv"].rows == 10000
    assert files["annrch_customers-10000_renamed_headers.csv"].rows == 10001
    _, rows = read_out(out)
    assert len(rows) == report.rows_out
    assert all(r["Source"] for r in rows)


def test_company_list_dedupes_by_domain(corpus_dir, tmp_path):
    out = tmp_path / "out.csv"
    report = merge_files([corpus_dir / "datablist_organizations-100.csv"], out, table_type="company")
    header, rows = read_out(out)
    assert header[:len(COMPANY_FIELDS)] == list(COMPANY_FIELDS)
    # Faker gave two organisations the website turner.com: one company by the domain rule, both names kept
    assert (report.rows_in, report.rows_out, report.table_type) == (100, 99, "company")
    [turner] = [r for r in rows if r["Company Domain"] == "turner.com"]
    assert (turner["Company Name"], turner["Company Name 2"]) == ("Arroyo Inc", "Miles-Dominguez")
    assert rows[0]["Company Name"] == "Ferrell LLC" and rows[0]["Company Domain"] == "price.net"
    assert rows[1]["Company Name"] == "Mckinney, Riley and Day"
    assert rows[1]["Company Domain"] == "hall-buchanan.info"


def test_ragged_rows_keep_surplus_cells_and_are_reported(corpus_dir, tmp_path):
    out = tmp_path / "out.csv"
    report = merge_files([corpus_dir / "csvkit_bad.csv"], out)
    header, rows = read_out(out)
    assert header[-1] == "Extra Fields"
    assert [r["Extra Fields"] for r in rows] == ["I'm too long!", "", ""]
    assert rows[1]["column_b"] == "I'm too short!"
    assert len(report.files[0].bad_rows) == 2


# --- lessons and rules on small files ----------------------------------------------


def test_values_are_never_type_converted_and_case_is_kept(tmp_path):
    src = write(tmp_path / "in.csv",
                "First Name,Last Name,Title,Company,Zip,Phone,Employees,Founded,Range\n"
                "Ronald,McDonald,May 2021,IBM,02134,15551234567,250,2010,10-12\n"
                "jim,o'neil,VP of Sales,eBay,00501,+1 555 010 2030,1.5e3,1999,N/A\n")
    out = tmp_path / "out.csv"
    merge_files([src], out)
    _, rows = read_out(out)
    r = rows[0]
    assert (r["First Name"], r["Last Name"], r["Full Name"]) == ("Ronald", "McDonald", "Ronald McDonald")
    assert (r["Job Title"], r["Company Name"], r["Zip"]) == ("May 2021", "IBM", "02134")
    assert (r["Phone Number"], r["Company Employee Count"], r["Year Founded"]) == ("15551234567", "250", "2010")
    assert r["Range"] == "10-12"
    r = rows[1]
    assert (r["Full Name"], r["Company Name"], r["Zip"]) == ("jim o'neil", "eBay", "00501")
    assert (r["Phone Number"], r["Company Employee Count"]) == ("+1 555 010 2030", "1.5e3")
    assert r["Range"] == "N/A"       # null tokens are empty only in e-mail/phone/domain/LinkedIn fields


def test_several_emails_in_one_cell(tmp_path):
    src = write(tmp_path / "in.csv", "Name,Email\nAnn Lee,a@x.com:b@x.com\nBob Ray,Bob <BOB@Y.COM>; bob@gmail.com\n")
    out = tmp_path / "out.csv"
    merge_files([src], out)
    _, rows = read_out(out)
    assert values_of(rows[0], "Work Email") == ["a@x.com", "b@x.com"]
    assert rows[0]["Company Domain"] == "x.com"          # not "x.com:b"
    assert rows[1]["Work Email"] == "bob@y.com" and rows[1]["Personal Email"] == "bob@gmail.com"


def test_case_whitespace_and_linkedin_form_duplicates_merge_across_files(tmp_path):
    a = write(tmp_path / "apollo.csv",
              "First Name,Last Name,Email,Person Linkedin Url,Phone\n"
              "Ann,Lee,Ann.Lee@Acme.com,https://www.linkedin.com/in/annlee/,+1 555 0100\n"
              "Bob,Ray,bob@ray.io,,\n")
    b = write(tmp_path / "salesnav.csv",
              "Full Name,E-mail,LinkedIn URL,Mobile Phone\n"
              "Ann Lee,  ann.lee@acme.com ,,555 0199\n"
              "Robert Ray,,http://uk.linkedin.com/in/bobray?trk=x,\n")
    c = write(tmp_path / "hubspot.csv",
              "firstname,lastname,email,linkedin\n"
              "Bob,Ray,bob@ray.io,linkedin.com/in/BobRay\n")
    out = tmp_path / "out.csv"
    report = merge_files([a, b, c], out)
    # Bob (apollo) ~ Bob (hubspot) by e-mail ~ Robert (salesnav) by LinkedIn: transitive
    assert (report.rows_in, report.rows_out, report.duplicates_merged) == (5, 2, 3)
    _, rows = read_out(out)
    ann, bob = rows
    assert ann["Source"] == "apollo.csv | salesnav.csv"
    assert values_of(ann, "Phone Number") == ["+1 555 0100", "555 0199"]
    assert bob["Source"] == "apollo.csv | salesnav.csv | hubspot.csv"
    assert values_of(bob, "Full Name") == ["Bob Ray", "Robert Ray"]
    assert bob["LinkedIn Profile"] == "https://www.linkedin.com/in/bobray"


def test_substring_lookalike_headers_are_kept(tmp_path):
    # Lesson: "age" matched "Homepage", "status" matched "Email Status".
    src = write(tmp_path / "in.csv", "Email,Email Status,age,Homepage,Website Category\n"
                                     "ann@acme.com,verified,41,https://www.acme.com/home,https://Shop.example/\n")
    out = tmp_path / "out.csv"
    merge_files([src], out)
    header, rows = read_out(out)
    r = rows[0]
    assert r["Email Status"] == "verified" and r["age"] == "41"
    assert "Invalid Email" not in header
    assert "https://www.acme.com/home" in r.values() or r["Company Domain"] == "acme.com"
    assert r["Website Category"] == "https://Shop.example/"   # not a domain field: left alone


def test_same_base_name_in_two_folders(tmp_path):
    a = write(tmp_path / "a" / "leads.csv", "Email\nann@acme.com\n")
    b = write(tmp_path / "b" / "leads.csv", "Email\nbob@acme.com\nann@acme.com\n")
    out = tmp_path / "out.csv"
    report = merge_files([a, b], out)
    _, rows = read_out(out)
    assert [r["Source"] for r in rows] == ["a/leads.csv | b/leads.csv", "b/leads.csv"]
    assert [f.source for f in report.files] == ["a/leads.csv", "b/leads.csv"]
    assert source_labels([Path("x/y/z.csv"), Path("x/w/z.csv"), Path("k.csv")]) == ["y/z.csv", "w/z.csv", "k.csv"]


def test_unmapped_column_named_like_a_field_and_ignored_columns(tmp_path):
    src = write(tmp_path / "in.csv", "Email,Source,Secret,Notes\nann@acme.com,Webinar,hunter2,hi\n")
    out = tmp_path / "out.csv"
    report = merge_files([src], out, mapping={"Secret": "ignore"})
    header, rows = read_out(out)
    assert "Secret" not in header and "hunter2" not in rows[0].values()
    assert report.files[0].ignored == ["Secret"]
    assert rows[0]["Source"] == "in.csv"
    assert rows[0]["Source (input)"] == "Webinar"
    assert any("Source (input)" in w for w in report.files[0].warnings)


def test_formulas_are_neutralised_unless_switched_off(tmp_path):
    src = write(tmp_path / "in.csv", 'Email,Notes,Phone\nann@acme.com,"=HYPERLINK(""http://x"")",+1 555 0100\n')
    out = tmp_path / "out.csv"
    report = merge_files([src], out)
    _, rows = read_out(out)
    assert rows[0]["Notes"] == "'=HYPERLINK(\"http://x\")"
    assert rows[0]["Phone Number"] == "+1 555 0100"
    assert report.formulas_neutralised == 1
    merge_files([src], out, neutralise_formulas=False)
    assert read_out(out)[1][0]["Notes"] == "=HYPERLINK(\"http://x\")"


def test_output_column_order(tmp_path):
    a = write(tmp_path / "a.csv", "Email 1,Email 2,Zeta,Name\na@acme.com,b@acme.com,z,Ann Lee\n")
    b = write(tmp_path / "b.csv", "Email,Alpha,Zeta\nc@acme.com,al,z2\n")
    out = tmp_path / "out.csv"
    report = merge_files([a, b], out)
    header, _ = read_out(out)
    n = len(PEOPLE_FIELDS)
    assert header[:n] == list(PEOPLE_FIELDS)
    assert header[n:] == ["Work Email 2", "Zeta", "Alpha"]
    assert report.columns == header


def test_bad_file_stops_the_merge_and_writes_nothing(tmp_path):
    good = write(tmp_path / "good.csv", "Email\nann@acme.com\n")
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    out = tmp_path / "out.csv"
    with pytest.raises(InputError) as err:
        merge_files([good, bad], out)
    assert err.value.path == str(bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "good.csv"]   # no output, no temp file

    report = merge_files([good, bad, str(tmp_path / "nothing*.csv")], out, skip_bad_files=True)
    assert report.rows_out == 1
    skipped = [f for f in report.files if f.skipped]
    assert [Path(f.path).name for f in skipped] == ["nothing*.csv", "bad.csv"]   # globs first, then input order
    assert all(f.error for f in skipped)


def test_inspect_file_reports_without_merging(corpus_dir):
    report = inspect_file(corpus_dir / "datablist_leads-100.csv")
    assert report.rows == 100 and report.delimiter == ","
    assert report.mapping["Email 1"] == report.mapping["Email 2"] is not None


PARALLEL_MERGE = """
import json, sys
import tasks.merge.engine as merging
merging.PARALLEL_MIN_BYTES = 0
lines = []
report = merging.merge_files(sys.argv[2:], sys.argv[1], skip_bad_files=True, progress=lines.append)
print(json.dumps({"lines": lines, "report": report.model_dump(mode="json", exclude={"elapsed_s", "output_path"})}))
"""


def test_worker_processes_give_the_same_output(corpus_dir, tmp_path):
    # A fresh interpreter: the merge only forks workers when no other thread runs,
    # and earlier tests in this process may have left threads behind.
    files = [corpus_dir / "datablist_customers-100.csv", corpus_dir / "annrch_customers_extra_rating_col.csv",
             corpus_dir / "csvkit_bad.csv", tmp_path / "missing.csv"]
    serial, parallel = tmp_path / "serial.csv", tmp_path / "parallel.csv"
    first = merge_files(files, serial, skip_bad_files=True)
    proc = subprocess.run([sys.executable, "-c", PARALLEL_MERGE, str(parallel), *map(str, files)],
                          capture_output=True, text=True, check=True)
    second = json.loads(proc.stdout)
    assert any("worker processes" in line for line in second["lines"])
    assert parallel.read_bytes() == serial.read_bytes()
    assert second["report"] == first.model_dump(mode="json", exclude={"elapsed_s", "output_path"})


def test_company_emails_are_numbered_1_to_n(tmp_path):
    src = write(tmp_path / "shops.csv", "Company,Website,Email\nAcme,acme.com,info@acme.com; sales@acme.com\n"
                                        "ACME,https://www.acme.com/shop,support@acme.com\nGlobex,globex.com,\n")
    out = tmp_path / "out.csv"
    report = merge_files([src], out, table_type="company")
    header, rows = read_out(out)
    position = header.index("Company Email 1")
    assert header[position:position + 3] == ["Company Email 1", "Company Email 2", "Company Email 3"]
    assert "Company Email" not in header
    assert [rows[0][f"Company Email {k}"] for k in (1, 2, 3)] == ["info@acme.com", "sales@acme.com",
                                                                  "support@acme.com"]
    assert (report.rows_out, report.duplicates_merged) == (2, 1)


def test_generated_column_names_never_collide(tmp_path):
    # "Notes" needs a second column ("Notes 2") and the input already has one called "Notes 2"
    a = write(tmp_path / "a.csv", "Email,Notes,Notes 2\nann@acme.com,first,other\n")
    b = write(tmp_path / "b.csv", "Email,Notes\nann@acme.com,second\n")
    out = tmp_path / "out.csv"
    merge_files([a, b], out)
    header, rows = read_out(out)
    assert len(header) == len(set(header))
    assert [h for h in header if h.startswith("Notes")] == ["Notes", "Notes 2", "Notes 2 (2)"]
    assert {rows[0]["Notes"], rows[0]["Notes 2"], rows[0]["Notes 2 (2)"]} == {"first", "second", "other"}


def test_empty_and_header_only_files_are_reported_and_the_job_goes_on(tmp_path):
    empty = write(tmp_path / "empty.csv", "")
    header_only = write(tmp_path / "header.csv", "Email,Name\n")
    good = write(tmp_path / "good.csv", "Email\nann@acme.com\n")
    out = tmp_path / "out.csv"
    report = merge_files([empty, header_only, good], out)
    files = {Path(f.path).name: f for f in report.files}
    assert files["empty.csv"].rows == 0 and files["empty.csv"].warnings
    assert files["header.csv"].rows == 0 and files["header.csv"].warnings
    assert report.rows_out == 1


def test_a_people_list_merged_as_companies_is_flagged(corpus_dir, tmp_path):
    # relaticle_people-10000 holds 10,000 people: as companies they collapse by the domain of their
    # (work) address, or by company name for free-mail addresses: 435 distinct keys (counted with a
    # separate script over the file), and a record keeps every person's address.
    report = merge_files([corpus_dir / "relaticle_people-10000.csv"], tmp_path / "out.csv", table_type="company")
    assert (report.rows_in, report.rows_out) == (10000, 435)
    assert any("is --type right?" in w for w in report.warnings)


def test_location_parts_of_one_row_form_one_location(tmp_path):
    apollo = write(tmp_path / "apollo.csv", "Email,City,State,Country,Company,Company City,Company Country\n"
                                            "ada@acme.com,Portland,OR,USA,Acme,Boston,USA\n"
                                            "bob@acme.com,,,Chile,Acme,,\n")
    other = write(tmp_path / "crm.csv", "Email,Location\nada@acme.com,\"London, UK\"\n")
    out = tmp_path / "out.csv"
    merge_files([apollo, other], out)
    header, rows = read_out(out)
    ada, bob = rows
    assert (ada["Person Location"], ada["Company Location"]) == ("Portland, OR, USA", "Boston, USA")
    assert ada["Person Location 2"] == "London, UK"  # another record's location: kept as a further value
    assert (bob["Person Location"], bob["Person Location 2"]) == ("Chile", "")
    assert "Company Location 2" not in header


def test_merging_a_file_onto_itself_is_refused_and_the_input_kept(tmp_path):
    from csv_merger.errors import ConfigError

    src = write(tmp_path / "same.csv", "Email\nada@analytical.example\n")
    with pytest.raises(ConfigError, match="also an input"):
        merge_files([src], src)
    assert src.read_text(encoding="utf-8") == "Email\nada@analytical.example\n"


def test_phones_merge_by_e164_and_the_optional_e164_column(tmp_path):
    a = write(tmp_path / "a.csv", "Email,Phone,Mobile\nann@acme.com,+1 415 555 0134,\nbob@beta.io,n/a,\n"
                                  "cy@gamma.io,call me,+44 20 7946 0958\n")
    b = write(tmp_path / "b.csv", "Email,Phone\nann@acme.com,(415) 555-0134\nann@acme.com,4155550134\n"
                                  "ann@acme.com,+1 415 555 0199\n")
    out = tmp_path / "out.csv"
    merge_files([a, b], out)
    header, rows = read_out(out)
    assert "Phone Number (E.164)" not in header  # off by default
    assert values_of(rows[0], "Phone Number") == ["+1 415 555 0134", "+1 415 555 0199"]
    merge_files([a, b], out, e164_column=True)
    header, rows = read_out(out)
    assert header.index("Phone Number (E.164)") > header.index("Phone Number 2")
    assert values_of(rows[0], "Phone Number (E.164)") == ["+14155550134", "+14155550199"]
    assert values_of(rows[1], "Phone Number (E.164)") == []  # n/a: no phone
    assert values_of(rows[2], "Phone Number") == ["call me", "+44 20 7946 0958"]
    assert values_of(rows[2], "Phone Number (E.164)") == ["+442079460958"]


def test_company_e164_column_and_registrable_domains(tmp_path):
    rows_in = ["Acme,https://app.acme.com,(415) 555-0134", "Shop A,shop-a.myshopify.com,",
               "ACME Inc.,www.acme.com,+1 415 555 0134", "Shop B,shop-b.myshopify.com,"]
    companies = write(tmp_path / "companies.csv", "\n".join(["Company,Website,Phone", *rows_in, ""]))
    report = merge_files([companies], tmp_path / "out.csv", table_type="company", e164_column=True)
    _, rows = read_out(tmp_path / "out.csv")
    assert (report.rows_in, report.rows_out) == (4, 3)
    assert values_of(rows[0], "Company Domain") == ["app.acme.com", "acme.com"]
    assert values_of(rows[0], "Company Phone") == ["(415) 555-0134"]
    assert values_of(rows[0], "Company Phone (E.164)") == ["+14155550134"]
    assert [r["Company Name"] for r in rows] == ["Acme", "Shop A", "Shop B"]
