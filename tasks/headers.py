"""Header mapping: which canonical field (``tasks.schema``) each input column feeds.

``map_headers`` decides once per file, column by column, in this order:

1. ``override``/``ignored``: the user's mapping (``--mapping``), matched on the
   exact header first, then on the normalised header; "ignore" drops the
   column, "keep" keeps it under its own header, a field name maps it.
2. ``synonym``: the normalised header equals a normalised synonym of
   ``tasks/synonyms.yaml`` (whole names, never substrings: "age" does not match
   "Homepage"). A column number is dropped when only the unnumbered form is
   listed ("Email 2" -> "Email"). Headers listed under ``not_fields`` (e.g.
   "Source", "Email Status") are known to be something else: unmapped.
3. ``fuzzy``: a typo of a listed header (``FIRSNAME``, ``Emial``), see
   ``_within_typo_budget``. A typo as close to two different fields, or closer
   to a ``not_fields`` header, stays unmapped.
4. ``content``, from the ``sample`` rows (null-like cells, ``tasks.cleaning.
   is_null``, are ignored; "share" = share of the other sampled cells):
   - a column not mapped to an e-mail field whose cells are e-mail addresses
     (share >= 0.8), e.g. "PHONE1" full of addresses, is mapped to the generic
     e-mail field (Work Email / Company Email), with a warning;
   - an e-mail column with no address at all: holding verification statuses
     ("verified", "guessed") it is unmapped; holding phone numbers
     (share >= 0.8) it is mapped to the phone field; otherwise it stays and a
     warning says it holds no address (e.g. only "N/A");
   - a phone column holding a few addresses (below the share) is reported;
   - a LinkedIn column of the wrong kind (``linkedin.com/company/...`` URLs
     under "LinkedIn" in a people list, ``/in/...`` profiles under "Company
     LinkedIn") moves to the other LinkedIn field; people's profiles in a
     company list are unmapped;
   - an ambiguous "Title"/"Position" header is a job title unless the file has
     a separate job-title column (then it is the courtesy title, as in
     Outlook), or its values are courtesy titles (Mr, Ms), or fewer than 30% of
     them contain a job-title word (atomic-crm's Faker "title" holds
     "Ubiquitous", "Cutting-edge"): unmapped.
   Columns under ``not_fields`` headers and overridden columns are left alone.

Every other column is ``unmapped`` (``field`` None): the merge keeps it under
its original header. Nothing is dropped except by an explicit "ignore".
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import yaml
from rapidfuzz import process
from rapidfuzz.distance import DamerauLevenshtein, Levenshtein

from csv_merger.errors import ConfigError
from tasks.cleaning import is_null, split_emails
from tasks.schema import COMPANY_FIELDS, PEOPLE_FIELDS, TableType, fields_for

SYNONYMS_PATH = Path(__file__).with_name("synonyms.yaml")

IGNORE = "ignore"
"""Override target that drops a column on purpose (``how="ignored"``)."""
KEEP = "keep"
"""Override target that keeps a column under its own header even when it would
map automatically (``field`` None, ``how="override"``)."""

CONTENT_SHARE = 0.8
"""Share of sampled non-null cells that must be e-mail addresses, phones or
LinkedIn URLs of the other kind for a column's content to overrule its header."""
HONORIFIC_SHARE = 0.5
"""Share of courtesy titles (Mr, Ms) that makes a "Title" column not a job title."""
JOB_TITLE_SHARE = 0.3
"""Share of values with a job-title word below which a "Title" column is unmapped."""

_MERGE_OWNED = "Source"  # filled by the merge with the input file names
_EMAIL_FIELD = {"people": "Work Email", "company": "Company Email"}
_PHONE_FIELD = {"people": "Phone Number", "company": "Company Phone"}
_EMAIL_FIELDS = frozenset({"Work Email", "Personal Email", "Company Email"})
_LINKEDIN_FIELDS = {"person": "LinkedIn Profile", "company": "Company LinkedIn"}
_PHONE_FIELDS = frozenset(_PHONE_FIELD.values())


@dataclass(frozen=True)
class ColumnMapping:
    """How one input column is used.

    ``index``: position in the file's header (0-based); ``header``: the header
    as read; ``field``: canonical field name, or None = kept as an extra column
    under ``header``; ``how``: "synonym" | "fuzzy" | "content" | "override" |
    "ignored" | "unmapped"; ``note``: a human-readable reason, if any.
    """

    index: int
    header: str
    field: str | None
    how: str
    note: str | None = None


# --- normalisation --------------------------------------------------------

_HINT = re.compile(r"\([^()]*\)|\[[^\[\]]*\]")
_DIGITS = re.compile(r"\d+")


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if ch.isalnum() and not unicodedata.combining(ch))


def normalise_header(header: str) -> str:
    """The comparison key of a header: ``"Email *"``, ``"E-mail"`` and
    ``"\\ufeffemail"`` all give ``"email"``.

    Unicode NFKC, parenthesised/bracketed hints removed (``"Active (0/1)"`` ->
    ``"active"``, unless nothing else is left), case-folded, accents dropped,
    and every character that is not a letter or digit removed (spaces, ``_``,
    ``-``, ``*``, punctuation, BOM, control characters), so camelCase,
    snake_case, kebab-case and spaced forms are equal (``"LinkedinUrl"``,
    ``"linkedin_url"``, ``"LinkedIn URL"`` -> ``"linkedinurl"``).
    Pure, idempotent, never raises.
    """
    text = unicodedata.normalize("NFKC", str(header))
    without_hints = text
    while (shorter := _HINT.sub(" ", without_hints)) != without_hints:
        without_hints = shorter
    return _fold(without_hints) or _fold(text)


def _unnumbered(key: str) -> str:
    return _DIGITS.sub("", key)


# --- the synonym table ----------------------------------------------------


@dataclass(frozen=True)
class _Known:
    """A listed header: ``field`` None means "known to be something else"."""

    header: str
    field: str | None
    reason: str | None = None


@dataclass(frozen=True)
class _Table:
    keys: dict[str, _Known]          # normalised (and unnumbered) header -> entry
    fuzzy_keys: tuple[str, ...]      # keys long enough for typo matching
    email_statuses: frozenset[str]
    honorifics: frozenset[str]
    ambiguous_titles: frozenset[str]
    job_title_words: frozenset[str]


def _entries(data: dict, table_type: TableType) -> Iterable[_Known]:
    fields = fields_for(table_type)
    for name in fields:
        if name != _MERGE_OWNED:
            yield _Known(name, name)
    for section, field in (("contact_email", _EMAIL_FIELD), ("contact_phone", _PHONE_FIELD)):
        yield from (_Known(str(h), field[table_type]) for h in data[section])
    for section in ("both", table_type):
        for field, headers in (data.get(section) or {}).items():
            if field not in fields or field == _MERGE_OWNED:
                raise ConfigError(f"{SYNONYMS_PATH}: section {section!r} lists {field!r}, "
                                  f"not a {table_type} field")
            yield from (_Known(str(h), field) for h in headers)
    not_fields = data.get("not_fields") or {}
    for section in ("both", table_type):
        for reason, headers in (not_fields.get(section) or {}).items():
            yield from (_Known(str(h), None, reason) for h in headers)


@cache
def _table(table_type: TableType) -> _Table:
    """The lookup table of ``table_type``; ConfigError if synonyms.yaml lists
    one normalised header for two different meanings."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built with it
    data = yaml.load(SYNONYMS_PATH.read_text(encoding="utf-8"), Loader=loader)
    entries = list(_entries(data, table_type))
    keys: dict[str, _Known] = {}
    for entry in entries:
        key = normalise_header(entry.header)
        seen = keys.setdefault(key, entry)
        if seen.field != entry.field:
            raise ConfigError(f"{SYNONYMS_PATH}: {entry.header!r} ({entry.field}) and "
                              f"{seen.header!r} ({seen.field}) normalise alike ({table_type})")
    unnumbered: dict[str, _Known] = {}
    for key, entry in list(keys.items()):
        plain = _unnumbered(key)
        if plain and plain not in keys:
            seen = unnumbered.setdefault(plain, entry)
            if seen.field != entry.field:
                raise ConfigError(f"{SYNONYMS_PATH}: {entry.header!r} and {seen.header!r} "
                                  f"differ only by a number but mean different things")
    keys.update(unnumbered)
    content = data["content"]
    return _Table(
        keys=keys,
        fuzzy_keys=tuple(k for k in keys if len(k) >= 5),
        email_statuses=frozenset(map(normalise_header, content["email_statuses"])),
        honorifics=frozenset(map(normalise_header, content["honorifics"])),
        ambiguous_titles=frozenset(map(normalise_header, content["ambiguous_job_title_headers"])),
        job_title_words=frozenset(map(normalise_header, content["job_title_words"])),
    )


def synonym_counts(table_type: TableType) -> dict[str, int]:
    """Number of distinct normalised headers that map to each canonical field
    of ``table_type`` (the field's own name included)."""
    counts = dict.fromkeys(fields_for(table_type), 0)
    for entry in _table(table_type).keys.values():
        if entry.field is not None:
            counts[entry.field] += 1
    return counts


# --- header decisions -----------------------------------------------------


def _within_typo_budget(query: str, candidate: str) -> bool:
    """Conservative typo rule: keys of 5-6 characters allow one swap of two
    adjacent letters ("emial"), 7-11 characters one edit ("firsname"), 12 or
    more two edits. Shorter keys never match fuzzily."""
    distance = DamerauLevenshtein.distance(query, candidate)
    if len(query) <= 6:
        return distance == 1 and Levenshtein.distance(query, candidate) == 2
    return distance <= (1 if len(query) < 12 else 2)


def _fuzzy(key: str, table: _Table) -> _Known | None:
    """The listed header ``key`` is a typo of, if exactly one meaning is
    closest; a ``_Known`` with field None when the closest headers disagree."""
    query = _unnumbered(key) or key
    if len(query) < 5:
        return None
    found = process.extract(query, table.fuzzy_keys, scorer=DamerauLevenshtein.distance,
                            score_cutoff=2, limit=None)
    close = [(dist, cand) for cand, dist, _ in found if _within_typo_budget(query, cand)]
    if not close:
        return None
    best = min(dist for dist, _ in close)
    entries = {table.keys[cand].field: table.keys[cand] for dist, cand in close if dist == best}
    if len(entries) > 1:
        names = ", ".join(sorted(repr(e.header) for e in entries.values()))
        return _Known(key, None, f"close to known headers of different meaning ({names})")
    return next(iter(entries.values()))


def _from_header(index: int, header: str, table: _Table) -> tuple[ColumnMapping, _Known | None]:
    """Mapping by header alone, and the table entry it came from (None when
    nothing is close)."""
    key = normalise_header(header)
    entry = table.keys.get(key) or table.keys.get(_unnumbered(key))
    if entry is not None:
        if entry.field is None:
            return ColumnMapping(index, header, None, "unmapped", entry.reason), entry
        return ColumnMapping(index, header, entry.field, "synonym"), entry
    entry = _fuzzy(key, table)
    if entry is None:
        return ColumnMapping(index, header, None, "unmapped"), None
    if entry.field is None:
        note = entry.reason if entry.header == key else f"close to {entry.header!r}: {entry.reason}"
        return ColumnMapping(index, header, None, "unmapped", note), entry
    return ColumnMapping(index, header, entry.field, "fuzzy", f"taken as a typo of {entry.header!r}"), entry


# --- overrides ------------------------------------------------------------

_ALL_FIELDS = tuple(dict.fromkeys(f for f in PEOPLE_FIELDS + COMPANY_FIELDS if f != _MERGE_OWNED))
_TARGETS = {normalise_header(f): f for f in _ALL_FIELDS} | {IGNORE: IGNORE, KEEP: KEEP}


def _canonical_target(source: str, target: object) -> str:
    """The canonical spelling of an override target ("work email" ->
    "Work Email"); ConfigError naming the entry otherwise."""
    if not isinstance(target, str):
        raise ConfigError(f"mapping entry {source!r}: target must be a field name, not {target!r}")
    key = normalise_header(target)
    if key == normalise_header(_MERGE_OWNED):
        raise ConfigError(f"mapping entry {source!r}: 'Source' is filled by the merge with the "
                          "input file names and cannot be a mapping target")
    if key not in _TARGETS:
        valid = ", ".join(_ALL_FIELDS)
        raise ConfigError(f"mapping entry {source!r}: {target!r} is not a canonical field "
                          f"(valid: {valid}; or {IGNORE!r} or {KEEP!r})")
    return _TARGETS[key]


def _check_overrides(overrides: Mapping[str, str]) -> dict[str, str]:
    checked = {}
    for source, target in overrides.items():
        if not isinstance(source, str):
            raise ConfigError(f"mapping entry {source!r}: the source header must be text")
        checked[source] = _canonical_target(source, target)
    return checked


def _from_override(index: int, header: str, target: str, table_type: TableType,
                   warnings: list[str]) -> ColumnMapping:
    if target == IGNORE:
        return ColumnMapping(index, header, None, "ignored", "ignored by the mapping")
    if target == KEEP:
        return ColumnMapping(index, header, None, "override", "kept under its own header by the mapping")
    if target not in fields_for(table_type):
        warnings.append(f"column {index + 1} {header!r}: mapping target {target!r} is not a "
                        f"{table_type} field; the column is kept under its own header")
        return ColumnMapping(index, header, None, "unmapped",
                             f"mapping target {target!r} is not a {table_type} field")
    return ColumnMapping(index, header, target, "override", "set by the mapping")


# --- content decisions ----------------------------------------------------

_LINKEDIN_PATH = re.compile(r"linkedin\.com/(in|pub|company|school|showcase)/", re.IGNORECASE)
_PHONE = re.compile(r"\+?[\d\s().\-/]+(?:\s*(?:x|ext\.?|#)\s*\d{1,6})?", re.IGNORECASE)


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


def _check_email_column(m: ColumnMapping, cells: _Cells, table: _Table, table_type: TableType,
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
        field = _PHONE_FIELD[table_type]
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
        field = _EMAIL_FIELD[table_type]
        was = f"its header says {m.field}" if m.field else "its header is not known"
        warnings.append(f"{where} holds e-mail addresses ({len(emails)} of {len(cells.values)} "
                        f"sampled values) although {was}: mapped to {field}")
        return replace(m, field=field, how="content",
                       note=f"column holds e-mail addresses although {was}")
    if emails and m.field in _PHONE_FIELDS:
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
    kind = "company" if m.field == _LINKEDIN_FIELDS["person"] else "person"
    other = cells.rows_where(lambda v: _linkedin_kind(v) == kind)
    if not other or cells.share(other) < CONTENT_SHARE:
        return m
    what = "company pages" if kind == "company" else "people's profiles"
    where = (f"column {m.index + 1} {m.header!r} holds LinkedIn {what} "
             f"({len(other)} of {len(cells.values)} sampled values)")
    if _LINKEDIN_FIELDS[kind] not in fields_for(table_type):
        warnings.append(f"{where}: left unmapped in a {table_type} list")
        return replace(m, field=None, how="unmapped", note=f"holds LinkedIn {what}")
    warnings.append(f"{where}: mapped to {_LINKEDIN_FIELDS[kind]}")
    return replace(m, field=_LINKEDIN_FIELDS[kind], how="content",
                   note=f"column holds LinkedIn {what} although its header says {m.field}")


def _check_title_column(m: ColumnMapping, cells: _Cells, table: _Table, has_job_title: bool,
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


def _apply_content(mappings: list[ColumnMapping], matched: dict[int, _Known], sample: list[list[str]],
                   table_type: TableType, warnings: list[str]) -> list[ColumnMapping]:
    """The content rules of the module docstring; ``matched``: the table entry
    behind each header-decided column."""
    table = _table(table_type)
    columns = _columns(sample, len(mappings))
    protected = {i for i, entry in matched.items() if entry.field is None}
    ambiguous = {i for i, entry in matched.items() if entry.field == "Job Title"
                 and normalise_header(entry.header) in table.ambiguous_titles}
    has_job_title = any(m.field == "Job Title" and m.index not in ambiguous for m in mappings)
    result = []
    for m, cells in zip(mappings, columns):
        if m.index in protected or m.how in ("override", "ignored"):
            pass
        elif m.field in _EMAIL_FIELDS:
            m = _check_email_column(m, cells, table, table_type, warnings)
        elif m.index in ambiguous:
            m = _check_title_column(m, cells, table, has_job_title, warnings)
        else:
            if m.field in _LINKEDIN_FIELDS.values():
                m = _check_linkedin_column(m, cells, table_type, warnings)
            m = _check_other_column(m, cells, table_type, warnings)
        result.append(m)
    return result


# --- public API -----------------------------------------------------------


def map_headers(headers: list[str], table_type: TableType, *,
                overrides: dict[str, str] | None = None,
                sample: list[list[str]] | None = None) -> tuple[list[ColumnMapping], list[str]]:
    """Map each header of one file to a canonical field of ``table_type``.

    ``overrides``: {source header: canonical field | "ignore" | "keep"} (see
    ``load_mapping_file``). ``sample``: the first rows' cells (as
    ``CsvSource.sample()`` gives them) for the content rules of the module
    docstring; without it only headers decide (a "Title" beside a "Job Title"
    is still the courtesy title).

    Returns one ``ColumnMapping`` per header, in order, and warnings (each
    naming the column by 1-based position and header). Several columns may map
    to one field. Raises ConfigError for an override whose target is not a
    canonical field (or is "Source"), ValueError for an unknown table type.
    Runs in a few milliseconds for 80 columns and 200 sampled rows.
    """
    table = _table(table_type)
    checked = _check_overrides(overrides or {})
    by_key = {}
    for source in checked:
        by_key.setdefault(normalise_header(source), source)
    warnings: list[str] = []
    used: set[str] = set()
    mappings: list[ColumnMapping] = []
    matched: dict[int, _Known] = {}
    for index, header in enumerate(headers):
        source = header if header in checked else by_key.get(normalise_header(header))
        if source is not None:
            used.add(source)
            mappings.append(_from_override(index, header, checked[source], table_type, warnings))
            continue
        mapping, entry = _from_header(index, header, table)
        if entry is not None:
            matched[index] = entry
        mappings.append(mapping)
    mappings = _apply_content(mappings, matched, sample or [], table_type, warnings)
    warnings.extend(f"mapping entry {source!r} names no column of this file"
                    for source in checked if source not in used)
    return mappings, warnings


def load_mapping_file(path: str | Path) -> dict[str, str]:
    """Read a mapping file: YAML (``.yaml``/``.yml``, or any other name) or
    JSON (``.json``), one object {source header: canonical field | "ignore" |
    "keep"}: "ignore" drops the column, "keep" keeps it under its own header.

    Targets are matched like headers ("work email" is "Work Email") and
    returned in canonical spelling. Raises ConfigError naming the file and the
    bad entry, with the list of valid names, for an unreadable or malformed
    file or a target that is not a canonical field of either schema.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the mapping file ({exc})") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}"
                          f" ({' '.join(str(exc).split())})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected an object {{source header: canonical field | "
                          f"{IGNORE!r}}}, got {type(data).__name__}")
    # YAML reads a header such as 2024 as a number: it is still a header.
    data = {str(k) if isinstance(k, (int, float)) and not isinstance(k, bool) else k: v
            for k, v in data.items()}
    try:
        return _check_overrides(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
