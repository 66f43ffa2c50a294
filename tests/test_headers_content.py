"""Content decisions for columns whose header says little
(tasks/merge/headers/content.py, kinds.py): LinkedIn URLs, phone numbers,
web addresses in a company list, and the file's kind (Google Maps,
Crunchbase lists). Each decision is reported (how "content", a note and a
warning with the share of values that matched) and overridable."""

from __future__ import annotations

from tasks.merge import inspect_file
from tasks.merge.headers import map_headers


def one(header, values, table_type="people", **kw):
    (m,), warnings = map_headers([header], table_type, sample=[[v] for v in values], **kw)
    return m, warnings


def test_linkedin_profiles_under_a_generic_header():
    m, warnings = one("URL", ["https://www.linkedin.com/in/ann", "linkedin.com/in/bob/", "http://uk.linkedin.com/in/c"])
    assert (m.field, m.how) == ("LinkedIn Profile", "content")
    assert m.note == "values are LinkedIn profiles (3 of 3 sampled values, 100%)"
    assert warnings == ["column 1 'URL' holds LinkedIn profiles (3 of 3 sampled values, 100%): mapped to LinkedIn Profile"]


def test_linkedin_company_pages_under_a_generic_or_domain_header():
    m, _ = one("CompanyProfile", ["https://www.linkedin.com/company/acme", "https://www.linkedin.com/company/beta/"])
    assert (m.field, m.how) == ("Company LinkedIn", "content")
    m, _ = one("companyUrl", ["https://www.linkedin.com/company/123/", "https://www.linkedin.com/company/456/"])
    assert (m.field, m.how) == ("Company LinkedIn", "content")  # "company url" is a domain header
    m, _ = one("Profile", ["https://www.linkedin.com/company/acme"], "company")
    assert m.field == "Company LinkedIn"


def test_below_the_share_a_column_stays_unmapped():
    m, warnings = one("Links", ["https://www.linkedin.com/in/ann", "https://twitter.com/ann", "n/a", "blog.ann.dev"])
    assert (m.field, m.how, warnings) == (None, "unmapped", [])


def test_phone_numbers_under_a_generic_header_but_not_ids_or_dates():
    m, warnings = one("Numero", ["+1 415 555 0134", "(415) 555-0135", "+44 20 7946 0958"])
    assert (m.field, m.how) == ("Phone Number", "content") and "phone numbers (3 of 3" in warnings[0]
    assert one("Numero", ["+33 1 42 68 53 00"], "company")[0].field == "Company Phone"
    for values in (["4155550134", "4155550135"], ["2024-03-01", "2024-03-02"], ["02134", "10001"]):
        assert one("Ref", values)[0].field is None, values


def test_web_addresses_map_in_company_lists_only():
    values = ["https://acme.com", "www.beta.io/about", "gamma.co.uk"]
    m, _ = one("Link", values, "company")
    assert (m.field, m.how) == ("Company Domain", "content")
    assert one("Link", values, "people")[0].field is None  # a person's link may be anything
    social = ["https://facebook.com/acme", "https://twitter.com/beta", "https://www.google.com/maps/place/x"]
    assert one("Link", social, "company")[0].field is None


def test_content_decisions_are_overridable_and_protected_headers_stay():
    values = ["https://www.linkedin.com/in/ann", "https://www.linkedin.com/in/bob"]
    kept = one("URL", values, overrides={"URL": "keep"})[0]
    assert (kept.field, kept.how) == (None, "override")
    assert one("URL", values, overrides={"URL": "ignore"})[0].how == "ignored"
    assert one("Sales Navigator URL", values)[0].field is None  # a header known to be something else


def test_google_maps_list_names_the_company_by_title_and_keeps_the_map_link():
    headers = ["title", "url", "website", "placeId", "totalScore", "phone"]
    mappings, warnings = map_headers(headers, "company")
    got = {m.header: (m.field, m.how) for m in mappings}
    assert got["title"] == ("Company Name", "content") and got["url"] == (None, "unmapped")
    assert got["website"] == ("Company Domain", "synonym")
    assert any("Google Maps place list" in w and "'title'" in w for w in warnings)
    plain = {m.header: m.field for m in map_headers(["title", "url", "website"], "company")[0]}
    assert plain == {"title": None, "url": "Company Domain", "website": "Company Domain"}
    overridden = map_headers(headers, "company", overrides={"title": "keep"})[0]
    assert (overridden[0].field, overridden[0].how) == (None, "override")


def test_outscraper_name_and_site(tmp_path):
    path = tmp_path / "outscraper.csv"
    path.write_text("name,site,phone,full_address,place_id,google_id,reviews_per_score\n"
                    "Blue Bottle,https://bluebottlecoffee.com/,+1 510-653-3394,x,ChIJ1,0x1,{}\n", encoding="utf-8")
    report = inspect_file(path, "company")
    assert report.mapping["name"] == "Company Name" and report.mapping["site"] == "Company Domain"
    assert report.mapping_how["site"] == "content" and report.mapping["full_address"] is None


def test_report_says_content_with_the_share(tmp_path):
    path = tmp_path / "connections.csv"
    path.write_text("First Name,Last Name,URL,Position\n"
                    "Ann,Lee,https://www.linkedin.com/in/annlee,Sales Manager\n"
                    "Bob,Ray,https://www.linkedin.com/in/bobray,Software Engineer\n", encoding="utf-8")
    report = inspect_file(path)
    assert report.mapping["URL"] == "LinkedIn Profile" and report.mapping_how["URL"] == "content"
    assert any("'URL' holds LinkedIn profiles (2 of 2 sampled values, 100%)" in w for w in report.warnings)
