"""The synonym table (``synonyms.yaml`` beside this module), header
normalisation, and typo matching against the table."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml
from rapidfuzz import process
from rapidfuzz.distance import DamerauLevenshtein, Levenshtein

from csv_merger.errors import ConfigError
from csv_merger.schema import TableType, fields_for
from tasks.merge.headers.model import EMAIL_FIELD, MERGE_OWNED, PHONE_FIELD

SYNONYMS_PATH = Path(__file__).with_name("synonyms.yaml")
LANGUAGES_DIR = Path(__file__).with_name("languages")

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


def unnumbered(key: str) -> str:
    return _DIGITS.sub("", key)


# --- the synonym table ----------------------------------------------------

@dataclass(frozen=True)
class Known:
    """A listed header: ``field`` None means "known to be something else"."""

    header: str
    field: str | None
    reason: str | None = None


@dataclass(frozen=True)
class SynonymTable:
    keys: dict[str, Known]          # normalised (and unnumbered) header -> entry
    fuzzy_keys: tuple[str, ...]      # keys long enough for typo matching
    email_statuses: frozenset[str]
    honorifics: frozenset[str]
    ambiguous_titles: frozenset[str]
    job_title_words: frozenset[str]


def _entries(data: dict, path: Path, table_type: TableType) -> Iterable[Known]:
    """Entries of one table file (synonyms.yaml or a language file)."""
    fields = fields_for(table_type)
    for section, field in (("contact_email", EMAIL_FIELD), ("contact_phone", PHONE_FIELD)):
        yield from (Known(str(h), field[table_type]) for h in data.get(section) or ())
    for section in ("both", table_type):
        for field, headers in (data.get(section) or {}).items():
            if field not in fields or field == MERGE_OWNED:
                raise ConfigError(f"{path}: section {section!r} lists {field!r}, "
                                  f"not a {table_type} field")
            yield from (Known(str(h), field) for h in headers)
    not_fields = data.get("not_fields") or {}
    for section in ("both", table_type):
        for reason, headers in (not_fields.get(section) or {}).items():
            yield from (Known(str(h), None, reason) for h in headers)


@cache
def load_table_data() -> dict:
    """synonyms.yaml as parsed (read once)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built with it
    return yaml.load(SYNONYMS_PATH.read_text(encoding="utf-8"), Loader=loader)


@cache
def language_tables() -> tuple[tuple[Path, dict], ...]:
    """``(path, parsed file)`` of every ``languages/<code>.yaml``, by name."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return tuple((path, yaml.load(path.read_text(encoding="utf-8"), Loader=loader))
                 for path in sorted(LANGUAGES_DIR.glob("*.yaml")))


@cache
def synonym_table(table_type: TableType) -> SynonymTable:
    """The lookup table of ``table_type`` (synonyms.yaml and the language
    files); ConfigError if they list one normalised header for two different
    meanings."""
    data = load_table_data()
    entries = [Known(name, name) for name in fields_for(table_type) if name != MERGE_OWNED]
    for path, table in ((SYNONYMS_PATH, data), *language_tables()):
        entries.extend(_entries(table, path, table_type))
    keys: dict[str, Known] = {}
    for entry in entries:
        key = normalise_header(entry.header)
        seen = keys.setdefault(key, entry)
        if seen.field != entry.field:
            raise ConfigError(f"{SYNONYMS_PATH.parent}: {entry.header!r} ({entry.field}) and "
                              f"{seen.header!r} ({seen.field}) normalise alike ({table_type})")
    by_plain: dict[str, Known] = {}
    for key, entry in list(keys.items()):
        plain = unnumbered(key)
        if plain and plain not in keys:
            seen = by_plain.setdefault(plain, entry)
            if seen.field != entry.field:
                raise ConfigError(f"{SYNONYMS_PATH.parent}: {entry.header!r} and {seen.header!r} "
                                  f"differ only by a number but mean different things")
    keys.update(by_plain)
    content = data["content"]
    return SynonymTable(
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
    for entry in synonym_table(table_type).keys.values():
        if entry.field is not None:
            counts[entry.field] += 1
    return counts


# --- typos ---------------------------------------------------------------


def _within_typo_budget(query: str, candidate: str) -> bool:
    """Conservative typo rule: keys of 5-6 characters allow one swap of two
    adjacent letters ("emial"), 7-11 characters one edit ("firsname"), 12 or
    more two edits. Shorter keys never match fuzzily."""
    distance = DamerauLevenshtein.distance(query, candidate)
    if len(query) <= 6:
        return distance == 1 and Levenshtein.distance(query, candidate) == 2
    return distance <= (1 if len(query) < 12 else 2)


def fuzzy_match(key: str, table: SynonymTable) -> Known | None:
    """The listed header ``key`` is a typo of, if exactly one meaning is
    closest; a ``Known`` with field None when the closest headers disagree."""
    query = unnumbered(key) or key
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
        return Known(key, None, f"close to known headers of different meaning ({names})")
    return next(iter(entries.values()))
