"""Content decisions: a column's sampled values overrule its header where
they identify the field beyond doubt (rule 4 of the package docstring)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from csv_merger.schema import TableType, fields_for
from tasks.merge.cleaning import clean_domain, is_domain, is_null, is_phone_number, split_emails
from tasks.merge.headers.model import EMAIL_FIELD, EMAIL_FIELDS, LINKEDIN_FIELDS, PHONE_FIELD, PHONE_FIELDS, ColumnMapping
from tasks.merge.headers.synonyms import Known, SynonymTable, normalise_header, synonym_table

CONTENT_SHARE = 0.8
"""Share of sampled non-null cells that must be e-mail addresses, phones or
LinkedIn URLs of the other kind for a column's content to overrule its header."""
HONORIFIC_SHARE = 0.5
"""Share of courtesy titles (Mr, Ms) that makes a "Title" column not a job title."""
JOB_TITLE_SHARE = 0.3
"""Share of values with a job-title word below which a "Title" column is unmapped."""

_LINKEDIN_PATH = re.compile(r"linkedin\.com/(in|pub|company|school|showcase)/", re.IGNORECASE)
_PHONE = re.compile(r"\+?[\d\s().\-/]+(?:\s*(?:x|ext\.?|#)\s*\d{1,6})?", re.IGNORECASE)
_NOT_COMPANY_SITES = ("linkedin.com", "facebook.com", "twitter.com", "x.com", "instagram.com", "youtube.com",
                      "google.com", "goo.gl", "crunchbase.com", "maps.app.goo.gl")


def _is_email_cell(value: str) -> bool:
    if "@" not in value:
        return False
    valid, invalid = split_emails(value)
    return bool(valid) and not invalid


def _is_phone_cell(value: str) -> bool:
    return bool(_PHONE.fullmatch(value)) and 7 <= sum(ch.isdigit() for ch in value) <= 20


@dataclass
class _Cells:
    """Sampled cells of one column: ``values`` = (data row, text) of non-null
    cells; ``null_like`` = count of non-empty null-like cells."""

    values: list[tuple[int, str]]
    null_like: int

    def rows_where(self, test) -> list[int]:
        return [row for row, value in self.values if test(value)]

    def share(self, rows: list[int]) -> float:
        return len(rows) / len(self.values) if self.values else 0.0


def _columns(sample: list[list[str]], width: int) -> list[_Cells]:
    columns = [_Cells([], 0) for _ in range(width)]
    for row_number, row in enumerate(sample, start=1):
        for cells, value in zip(columns, row):
            text = value.strip() if isinstance(value, str) else ""
            if not text:
                continue
            if is_null(text):
                cells.null_like += 1
            else:
                cells.values.append((row_number, text))
    return columns


def _rows_text(rows: list[int], limit: int = 5) -> str:
    shown = ", ".join(map(str, rows[:limit]))
    return shown + (", ..." if len(rows) > limit else "")


def _check_email_column(m: ColumnMapping, cells: _Cells, table: SynonymTable, table_type: TableType,
                        warnings: list[str]) -> ColumnMapping:
    where = f"column {m.index + 1} {m.header!r}"
    if cells.rows_where(_is_email_cell) or not (cells.values or cells.null_like):
        return m
    if not cells.values:
        warnings.append(f"{where} is mapped to {m.field} but holds no e-mail address in the "
                        f"sampled rows, only null-like values such as N/A")
        return m
    statuses = cells.rows_where(lambda v: normalise_header(v) in table.email_statuses)
    if cells.share(statuses) >= CONTENT_SHARE:
        warnings.append(f"{where} holds e-mail verification statuses, not addresses: left unmapped")
        return replace(m, field=None, how="unmapped",
                       note="holds e-mail verification statuses (verified, guessed...), not addresses")
    phones = cells.rows_where(_is_phone_cell)
    if cells.share(phones) >= CONTENT_SHARE:
        field = PHONE_FIELD[table_type]
        warnings.append(f"{where} holds phone numbers, not e-mail addresses "
                        f"({len(phones)} of {len(cells.values)} sampled values): mapped to {field}")
        return replace(m, field=field, how="content",
                       note=f"column holds phone numbers although its header says {m.field}")
    warnings.append(f"{where} is mapped to {m.field} but none of its {len(cells.values)} "
                    f"sampled values is an e-mail address")
    return m


def _check_other_column(m: ColumnMapping, cells: _Cells, table_type: TableType,
                        warnings: list[str]) -> ColumnMapping:
    where = f"column {m.index + 1} {m.header!r}"
    emails = cells.rows_where(_is_email_cell)
    if emails and cells.share(emails) >= CONTENT_SHARE:
        field = EMAIL_FIELD[table_type]
        was = f"its header says {m.field}" if m.field else "its header is not known"
        warnings.append(f"{where} holds e-mail addresses ({len(emails)} of {len(cells.values)} "
                        f"sampled values) although {was}: mapped to {field}")
        return replace(m, field=field, how="content",
                       note=f"column holds e-mail addresses although {was}")
    if emails and m.field in PHONE_FIELDS:
        warnings.append(f"{where} holds an e-mail address instead of a phone number in "
                        f"sampled data row(s) {_rows_text(emails)}")
    return m


def _linkedin_kind(value: str) -> str | None:
    found = _LINKEDIN_PATH.search(value)
    if found is None:
        return None
    return "person" if found.group(1).lower() in ("in", "pub") else "company"


def _check_linkedin_column(m: ColumnMapping, cells: _Cells, table_type: TableType,
                           warnings: list[str]) -> ColumnMapping:
    """A LinkedIn (or domain) column full of LinkedIn URLs of another kind."""
    for kind in ("person", "company"):
        other = cells.rows_where(lambda v, kind=kind: _linkedin_kind(v) == kind)
        if LINKEDIN_FIELDS[kind] != m.field and other and cells.share(other) >= CONTENT_SHARE:
            break
    else:
        return m
    what = "company pages" if kind == "company" else "people's profiles"
    where = (f"column {m.index + 1} {m.header!r} holds LinkedIn {what} "
             f"({len(other)} of {len(cells.values)} sampled values)")
    if LINKEDIN_FIELDS[kind] not in fields_for(table_type):
        warnings.append(f"{where}: left unmapped in a {table_type} list")
        return replace(m, field=None, how="unmapped", note=f"holds LinkedIn {what}")
    warnings.append(f"{where}: mapped to {LINKEDIN_FIELDS[kind]}")
    return replace(m, field=LINKEDIN_FIELDS[kind], how="content",
                   note=f"column holds LinkedIn {what} although its header says {m.field}")


def _is_web_cell(value: str) -> bool:
    """A web address or bare domain of a company (not a LinkedIn, social or map link)."""
    host = clean_domain(value)
    return is_domain(host) and " " not in value.strip() and "@" not in value \
        and not any(host == s or host.endswith("." + s) for s in _NOT_COMPANY_SITES)


def _check_unmapped_column(m: ColumnMapping, cells: _Cells, table_type: TableType,
                           warnings: list[str]) -> ColumnMapping:
    """An unmapped column (no header entry, or a generic one) whose values
    identify a field beyond doubt: LinkedIn profiles or company pages, phone
    numbers, and, in a company list, web addresses."""
    fields = fields_for(table_type)
    tests = [(LINKEDIN_FIELDS["person"], "LinkedIn profiles", lambda v: _linkedin_kind(v) == "person"),
             (LINKEDIN_FIELDS["company"], "LinkedIn company pages", lambda v: _linkedin_kind(v) == "company"),
             (PHONE_FIELD[table_type], "phone numbers", is_phone_number)]
    if table_type == "company":
        tests.append(("Company Domain", "web addresses", _is_web_cell))
    for field, what, test in tests:
        rows = cells.rows_where(test)
        if field in fields and rows and cells.share(rows) >= CONTENT_SHARE:
            share = f"{len(rows)} of {len(cells.values)} sampled values, {cells.share(rows):.0%}"
            warnings.append(f"column {m.index + 1} {m.header!r} holds {what} ({share}): mapped to {field}")
            return replace(m, field=field, how="content", note=f"values are {what} ({share})")
    return m


def _check_title_column(m: ColumnMapping, cells: _Cells, table: SynonymTable, has_job_title: bool,
                        warnings: list[str]) -> ColumnMapping:
    if has_job_title:
        return replace(m, field=None, how="unmapped",
                       note="the file has a separate job-title column: this is the courtesy title")
    if not cells.values:
        return m
    honorific = cells.rows_where(lambda v: normalise_header(v) in table.honorifics)
    if cells.share(honorific) >= HONORIFIC_SHARE:
        return replace(m, field=None, how="unmapped", note="holds courtesy titles (Mr, Ms...)")

    def has_job_word(value: str) -> bool:
        return any(normalise_header(w) in table.job_title_words for w in re.split(r"\W+", value))

    if cells.share(cells.rows_where(has_job_word)) < JOB_TITLE_SHARE:
        examples = ", ".join(repr(v) for _, v in cells.values[:3])
        warnings.append(f"column {m.index + 1} {m.header!r} left unmapped: its values do not look "
                        f"like job titles (e.g. {examples}); map it with a mapping file if they are")
        return replace(m, field=None, how="unmapped", note="values do not look like job titles")
    return m


def apply_content(mappings: list[ColumnMapping], matched: dict[int, Known], sample: list[list[str]],
                   table_type: TableType, warnings: list[str]) -> list[ColumnMapping]:
    """The content rules of the module docstring; ``matched``: the table entry
    behind each header-decided column."""
    table = synonym_table(table_type)
    columns = _columns(sample, len(mappings))
    protected = {i for i, entry in matched.items() if entry.field is None}
    ambiguous = {i for i, entry in matched.items() if entry.field == "Job Title"
                 and normalise_header(entry.header) in table.ambiguous_titles}
    has_job_title = any(m.field == "Job Title" and m.index not in ambiguous for m in mappings)
    result = []
    for m, cells in zip(mappings, columns):
        if m.index in protected or m.how in ("override", "ignored"):
            pass
        elif m.field in EMAIL_FIELDS:
            m = _check_email_column(m, cells, table, table_type, warnings)
        elif m.index in ambiguous:
            m = _check_title_column(m, cells, table, has_job_title, warnings)
        else:
            if m.field in LINKEDIN_FIELDS.values() or m.field == "Company Domain":
                m = _check_linkedin_column(m, cells, table_type, warnings)
            m = _check_other_column(m, cells, table_type, warnings)
            if m.field is None:
                m = _check_unmapped_column(m, cells, table_type, warnings)
        result.append(m)
    return result
