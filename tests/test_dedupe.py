"""Match keys, union-find and record merging (tasks.merge.dedupe, tasks.merge.records)."""

from __future__ import annotations

from tasks.merge.dedupe import KeyMatcher, UnionFind
from tasks.merge.records import Layout, RecordBuilder, merge_records, unpack

PEOPLE = [("Name", "Full Name"), ("Email", "Work Email"), ("LinkedIn", "LinkedIn Profile"),
          ("Website", "Company Domain"), ("Phone", "Phone Number"), ("Title", "Job Title")]


def group(rows, columns=PEOPLE, table_type="people"):
    """Build, key and group rows; return (groups as lists of row numbers, layout, records)."""
    layout = Layout(table_type)
    builder = RecordBuilder(layout, [(i, field, header) for i, (header, field) in enumerate(columns)])
    matcher = KeyMatcher(layout)
    union = UnionFind()
    packed = []
    for cells in rows:
        p = builder.build(list(cells), [])
        packed.append(p)
        union.add(matcher.keys(p, builder.domain_derived))
    found = union.groups()
    members = [found.get(r, [r]) for r in range(len(rows)) if union.find(r) == r]
    records = [merge_records([unpack(packed[r], builder.slot_ids) for r in m], layout) for m in members]
    named = [{layout.names[s]: v for s, v in rec.items()} for rec in records]
    return members, layout, named


def test_email_case_and_whitespace_duplicates_merge():
    members, _, _ = group([["Ann Lee", "Ann.Lee@Acme.com", "", "", "", ""],
                           ["Ann Lee", "  ann.lee@acme.com ", "", "", "", ""]])
    assert members == [[0, 1]]


def test_linkedin_url_forms_merge():
    members, _, records = group([["Ann Lee", "", "https://www.linkedin.com/in/AnnLee/", "", "", ""],
                                 ["Ann Lee", "", "http://uk.linkedin.com/in/annlee?trk=x", "", "", ""]])
    assert members == [[0, 1]]
    assert records[0]["LinkedIn Profile"] == ["https://www.linkedin.com/in/AnnLee"]


def test_matching_is_transitive_and_keeps_first_seen_order():
    members, _, _ = group([
        ["Zed", "z@zed.com", "", "", "", ""],
        ["Ann", "ann@acme.com", "", "", "", ""],                         # A
        ["Bob", "bob@bob.com", "", "", "", ""],
        ["Ann L", "ann@acme.com", "linkedin.com/in/ann", "", "", ""],    # B ~ A by e-mail
        ["A. Lee", "", "https://www.linkedin.com/in/ANN/", "", "", ""],  # C ~ B by LinkedIn
    ])
    assert members == [[0], [1, 3, 4], [2]]


def test_two_people_at_one_company_without_email_stay_two():
    members, _, _ = group([["Ann Lee", "", "", "acme.com", "", ""], ["Bob Ray", "", "", "acme.com", "", ""]])
    assert members == [[0], [1]]


def test_weak_key_needs_name_and_an_input_domain():
    members, _, _ = group([["Ann Lee", "", "", "https://acme.com", "", ""],
                           ["ann  LEE", "", "", "www.acme.com", "", ""],
                           ["Ann Lee", "", "", "", "", ""]])
    assert members == [[0, 1], [2]]
    # a domain derived from the e-mail is no weak key: two Robert Halls at company.com stay two
    members, _, _ = group([["Robert Hall", "rhall@company.com", "", "", "", ""],
                           ["Robert Hall", "robert20@company.com", "", "", "", ""]])
    assert members == [[0], [1]]


def test_merge_keeps_every_distinct_value_first_seen_first():
    # Lesson: merges kept the "longest" value and lost the rest.
    _, layout, records = group([
        ["Jennifer Roberts", "jroberts@business.org", "", "", "+1-555-0100", "CTO"],
        ["Jennifer Roberts", "JRoberts@business.org", "", "", "555 0199", "Chief Technology Officer"],
        ["jennifer roberts", "jroberts@business.org", "", "", "+1 555 0100", "cto"],
    ])
    assert len(records) == 1
    rec = records[0]
    assert rec["Full Name"] == ["Jennifer Roberts"]
    assert rec["Phone Number"] == ["+1-555-0100", "555 0199"]
    assert rec["Job Title"] == ["CTO", "Chief Technology Officer"]
    assert layout.max_values[layout.slot("Job Title")] == 2


def test_companies_match_by_domain_or_linkedin_and_by_name_only_without_either():
    columns = [("Name", "Company Name"), ("Website", "Company Domain"), ("LinkedIn", "Company LinkedIn")]
    members, _, records = group([
        ["Acme", "https://www.acme.com/", ""],
        ["ACME Inc", "acme.com", "https://www.linkedin.com/company/acme"],
        ["Acme Corp", "", "linkedin.com/company/ACME/"],
        ["Globex", "", ""],
        ["globex", "", ""],
        ["Globex", "globex.com", ""],      # has a domain: its name is no key
    ], columns, "company")
    assert members == [[0, 1, 2], [3, 4], [5]]
    assert records[0]["Company Name"] == ["Acme", "ACME Inc", "Acme Corp"]


def test_union_find_roots_are_smallest_rows():
    uf = UnionFind()
    for keys in (["a"], ["b"], ["c"], ["b", "c"], ["a", "c"]):
        uf.add(keys)
    assert {uf.find(r) for r in range(5)} == {0}
    assert uf.groups() == {0: [0, 1, 2, 3, 4]}


def test_weak_key_never_links_two_records_with_strong_keys():
    # Lesson: same name + input domain merged two people with different addresses.
    members, _, _ = group([["Robert Hall", "rob1@acme.com", "", "acme.com", "", ""],
                           ["Robert  hall", "rob2@acme.com", "", "acme.com", "", ""]])
    assert members == [[0], [1]]


def test_weak_key_links_a_record_without_strong_key():
    members, _, _ = group([["Robert Hall", "rob1@acme.com", "", "acme.com", "", ""],
                           ["robert hall", "", "", "www.acme.com", "", ""]])
    assert members == [[0, 1]]
    members, _, _ = group([["Robert Hall", "", "", "acme.com", "", ""],       # no strong key first
                           ["Robert Hall", "rob1@acme.com", "", "acme.com", "", ""]])
    assert members == [[0, 1]]
    members, _, _ = group([["Robert Hall", "", "", "acme.com", "", ""],
                           ["Robert Hall", "", "", "https://acme.com", "", ""]])
    assert members == [[0, 1]]


def test_weak_key_record_without_strong_key_joins_first_seen_only():
    # A (email1), B (none), C (email2), all Robert Hall @ acme.com: B joins A, C stays apart
    for order, expected in (("ABC", [[0, 1], [2]]), ("BAC", [[0, 1], [2]]), ("ACB", [[0, 2], [1]])):
        rows = {"A": ["Robert Hall", "rob1@acme.com", "", "acme.com", "", ""],
                "B": ["Robert Hall", "", "", "acme.com", "", ""],
                "C": ["Robert Hall", "rob2@acme.com", "", "acme.com", "", ""]}
        members, _, _ = group([rows[c] for c in order])
        assert members == expected, order
    # a LinkedIn key is strong too
    members, _, _ = group([["Robert Hall", "", "linkedin.com/in/rob1", "acme.com", "", ""],
                           ["Robert Hall", "", "", "acme.com", "", ""],
                           ["Robert Hall", "", "linkedin.com/in/rob2", "acme.com", "", ""]])
    assert members == [[0, 1], [2]]


def test_merge_explains_its_duplicate_groups_only_when_asked(tmp_path):
    from tasks.merge import merge_files

    (tmp_path / "orgs.csv").write_text("Company Name,Website\nAcme,https://acme.example/\nACME Inc,acme.example\n"
                                       "Nameless Co,\nnameless co,\nOther,other.example\n", encoding="utf-8")
    out = tmp_path / "merged.csv"
    report = merge_files([tmp_path / "orgs.csv"], out, table_type="company", explain=5)
    assert report.rows_out == 3
    assert [(g.sources, g.reasons) for g in report.duplicate_groups] == [
        (["orgs.csv", "orgs.csv"], ["same company domain: acme.example"]),
        (["orgs.csv", "orgs.csv"], ["same company name: nameless co"])]
    assert merge_files([tmp_path / "orgs.csv"], out, table_type="company").duplicate_groups == []
    assert len(merge_files([tmp_path / "orgs.csv"], out, table_type="company", explain=1).duplicate_groups) == 1
