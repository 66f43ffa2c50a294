"""The record model of a merge: value slots, compact packed rows, and the
rules that merge several rows into one record.

A record holds, per *slot*, an ordered list of distinct values (first-seen
first). Slots are, in this order (``Layout``):

1. the canonical fields of the table type (``csv_merger.schema``), schema order;
2. ``"Invalid Email"``: tokens of e-mail cells that are not valid addresses
   (kept as written, never dropped);
3. ``"Extra Fields"``: a ragged row's surplus cells, joined with ``" | "``;
   then, with ``Layout(e164_column=True)``, ``"Phone Number (E.164)"``
   (``"Company Phone (E.164)"``): the E.164 form of each phone that has one;
4. kept columns: every input column that maps to no canonical field, under
   its original header (union across files, first-seen order). A kept header
   equal to a reserved name (a canonical field, "Invalid Email", "Extra
   Fields") becomes ``"<header> (input)"``.

Several columns mapping to one field (``Email 1``, ``Email 2``) add values to
the same slot. Two values are "the same" when their comparison keys match
(``COMPARE``): e-mails exactly (already lower-cased), phones by digits,
LinkedIn URLs by canonical key, other text case- and whitespace-insensitively;
the first-seen spelling is kept.

To hold a million rows in little memory a row is stored as one string: slots
joined with ``SLOT_SEP`` (unit separator), the values of a slot joined with
``VALUE_SEP`` (record separator); its slot positions are those of its file
(``RecordBuilder.slot_ids``). Input cells containing either control character have it
replaced by a space (counted in the file's warnings).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from csv_merger.schema import TableType, fields_for
from tasks.merge.cleaning import (
    EMAIL_RE,
    FORMULA_CELL,
    FORMULA_PREFIXES,
    NULL_TOKENS,
    build_full_name,
    clean_domain,
    clean_linkedin,
    e164,
    email_domain,
    is_personal_domain,
    linkedin_key,
    neutralise_formula,
    phone_key,
    split_emails,
    split_full_name,
    text_key,
)

SLOT_SEP = "\x1f"
VALUE_SEP = "\x1e"
INVALID_EMAIL = "Invalid Email"
EXTRA_FIELDS = "Extra Fields"
EXTRA_FIELDS_JOIN = " | "
SOURCE = "Source"

TEXT, EMAIL, PHONE, DOMAIN, LINKEDIN = "text", "email", "phone", "domain", "linkedin"
"""Slot kinds: they choose the cleaner and the comparison key."""

FIELD_KINDS: dict[str, str] = {
    "Work Email": EMAIL, "Personal Email": EMAIL, "Company Email": EMAIL,
    "Phone Number": PHONE, "Company Phone": PHONE,
    "Company Domain": DOMAIN,
    "LinkedIn Profile": LINKEDIN, "Company LinkedIn": LINKEDIN,
}


PHONE_FIELD_OF = {"people": "Phone Number", "company": "Company Phone"}


def _linkedin_compare(value: str) -> str:
    return linkedin_key(value) or text_key(value)


COMPARE: dict[str, Callable[[str], str]] = {
    TEXT: text_key, EMAIL: str, PHONE: phone_key, DOMAIN: text_key, LINKEDIN: _linkedin_compare,
}


class Layout:
    """Every slot of one merge: names, kinds and the largest number of values
    one output record holds in each (which sizes the numbered columns).

    Slot ids: ``0..F-1`` canonical fields, ``F`` Invalid Email, ``F+1`` Extra
    Fields, ``F+2`` the E.164 column when ``e164_column``, then kept columns
    in first-seen order.
    """

    def __init__(self, table_type: TableType, *, e164_column: bool = False):
        self.table_type = table_type
        self.fields: tuple[str, ...] = fields_for(table_type)
        self.names: list[str] = [*self.fields, INVALID_EMAIL, EXTRA_FIELDS]
        self.kinds: list[str] = [FIELD_KINDS.get(f, TEXT) for f in self.fields] + [TEXT, TEXT]
        self.e164: int | None = None  # slot of the E.164 column, when asked for
        if e164_column:
            self.e164 = len(self.names)
            self.names.append(f"{PHONE_FIELD_OF[table_type]} (E.164)")
            self.kinds.append(PHONE)
        self.max_values: list[int] = [0] * len(self.names)
        self._index = {name: i for i, name in enumerate(self.names)}
        self.invalid_email = self._index[INVALID_EMAIL]
        self.extra_fields = self._index[EXTRA_FIELDS]
        self.kept_start = len(self.names)

    def slot(self, field: str) -> int:
        """Slot id of a canonical field; KeyError if not in this schema."""
        i = self._index[field]
        if i >= self.invalid_email:
            raise KeyError(field)
        return i

    def kept_slot(self, header: str) -> tuple[int, str | None]:
        """Slot id for a kept column, and a warning when its header had to be
        renamed to ``"<header> (input)"`` because the name is reserved."""
        warning = None
        name = header
        i = self._index.get(name)
        if i is not None and i < self.kept_start:
            name = f"{header} (input)"
            warning = f"column {header!r} is not mapped to the canonical field; kept as {name!r}"
            i = self._index.get(name)
        if i is None:
            i = len(self.names)
            self.names.append(name)
            self.kinds.append(TEXT)
            self.max_values.append(0)
            self._index[name] = i
        return i, warning

    def note_count(self, slot: int, count: int) -> None:
        """Record that some output record holds ``count`` values in ``slot``."""
        if count > self.max_values[slot]:
            self.max_values[slot] = count


def add_value(values: list[str], pos: int, value: str, kind: str) -> int:
    """Add ``value`` to the packed slot ``values[pos]`` unless an equal value
    (by ``COMPARE[kind]``) is there; return the slot's value count."""
    current = values[pos]
    if not current:
        values[pos] = value
        return 1
    existing = current.split(VALUE_SEP)
    key = COMPARE[kind]
    new_key = key(value)
    if all(key(v) != new_key for v in existing):
        values[pos] = current + VALUE_SEP + value
        return len(existing) + 1
    return len(existing)


def unpack(packed: str, slot_ids: list[int]) -> list[tuple[int, list[str]]]:
    """``[(slot id, values), ...]`` for the non-empty slots of a packed row."""
    out = []
    for pos, part in enumerate(packed.split(SLOT_SEP)):
        if part:
            out.append((slot_ids[pos], part.split(VALUE_SEP)))
    return out


def merge_records(records: Iterable[list[tuple[int, list[str]]]], layout: Layout) -> dict[int, list[str]]:
    """Merge unpacked rows (in first-seen order) into one record.

    Returns ``{slot id: distinct values}``: every distinct value is kept, the
    first-seen one first; ``layout.max_values`` is updated.
    """
    merged: dict[int, list[str]] = {}
    for record in records:
        for slot, values in record:
            bucket = merged.get(slot)
            if bucket is None:
                merged[slot] = list(values)
            else:
                bucket.extend(values)
    kinds = layout.kinds
    for slot, bucket in merged.items():
        if len(bucket) > 1 and bucket.count(bucket[0]) != len(bucket):
            key = COMPARE[kinds[slot]]
            seen: set[str] = set()
            distinct = []
            for value in bucket:
                k = key(value)
                if k not in seen:
                    seen.add(k)
                    distinct.append(value)
            bucket[:] = distinct
        elif len(bucket) > 1:
            del bucket[1:]
        layout.note_count(slot, len(bucket))
    return merged


def _clean_phone(cell: str) -> str:
    value = cell.strip()
    return "" if value.lower() in NULL_TOKENS else value


LOCATION_FIELDS = ("Person Location", "Company Location")
LOCATION_JOIN = ", "
"""Several columns of one row mapping to a location field (City, State,
Country) form one location, joined in column order; distinct locations of
merged records still become numbered values ("Person Location 2")."""


class RecordBuilder:
    """Turns one file's rows into packed records (see module docstring).

    ``columns``: ``(cell index, canonical field or None, header)`` for every
    column the merge keeps (ignored columns are not passed). Cleaning rules
    (tasks.merge.cleaning): e-mail cells are split and each address is routed by
    its domain, for people to "Personal Email" (free mail providers) or
    "Work Email" whatever column it came from, for companies to "Company
    Email"; invalid tokens go to "Invalid Email". Phones, domains and
    LinkedIn URLs drop null-like tokens; domains and LinkedIn URLs are
    cleaned. Names: a Full Name alone is split into First/Last, First/Last
    alone build Full Name. Location parts of one row (``LOCATION_FIELDS``)
    are joined into one value. A missing Company Domain is taken from the first
    non-personal e-mail address. Other text is only trimmed. With
    ``neutralise_formulas`` every value goes through
    ``tasks.merge.cleaning.neutralise_formula`` last (counted in ``neutralised``).

    Attributes: ``slot_ids`` (file position -> layout slot id), ``warnings``,
    ``invalid_emails`` (count of invalid tokens seen), ``domain_derived``
    (the last built row's Company Domain came from an e-mail address),
    ``values`` (the last built row's slot list, before packing).
    """

    def __init__(self, layout: Layout, columns: list[tuple[int, str | None, str]], *,
                 neutralise_formulas: bool = False):
        self.layout = layout
        self._neutralise = neutralise_formulas
        self.neutralised = 0
        self.warnings: list[str] = []
        self.invalid_emails = 0
        self.slot_ids: list[int] = list(range(layout.kept_start))
        self._plan: dict[str, list[tuple[int, int]]] = {kind: [] for kind in COMPARE}
        for index, field, header in columns:
            if field is not None and field != SOURCE:
                try:
                    pos = layout.slot(field)
                except KeyError:
                    self.warnings.append(f"column {header!r}: {field!r} is not a {layout.table_type} field; kept")
                    field = None
                else:
                    self._plan[layout.kinds[pos]].append((index, pos))
                    continue
            slot, warning = layout.kept_slot(header or f"(unnamed column {index + 1})")
            if warning:
                self.warnings.append(warning)
            if slot not in self.slot_ids:
                self.slot_ids.append(slot)
            self._plan[TEXT].append((index, self.slot_ids.index(slot)))
        self.width = len(self.slot_ids)
        f = layout.fields
        self._people = layout.table_type == "people"
        self._work = layout.slot("Work Email") if self._people else layout.slot("Company Email")
        self._personal = layout.slot("Personal Email") if self._people else self._work
        self._domain = layout.slot("Company Domain")
        self._phone = layout.slot(PHONE_FIELD_OF[layout.table_type])
        self._joined = {layout.slot(f) for f in LOCATION_FIELDS if f in layout.fields}
        self._names = (f.index("First Name"), f.index("Last Name"), f.index("Full Name")) if self._people else None
        self._control_chars = 0
        self.domain_derived = False
        self.values: list[str] = []
        self._cleaners = tuple((kind, clean, self._plan[kind]) for kind, clean in (
            (TEXT, str.strip), (PHONE, _clean_phone), (DOMAIN, clean_domain), (LINKEDIN, clean_linkedin))
            if self._plan[kind])
        self._email_cells = [index for index, _ in self._plan[EMAIL]]

    def build(self, cells: list[str], surplus: list[str]) -> str:
        """The packed record of one row: always ``width`` slots, or ``""``
        when every kept cell is empty."""
        values = [""] * self.width
        invalid_before = self.invalid_emails
        multi = 0  # how many VALUE_SEP the row should hold (for the control-character check)
        layout = self.layout
        # one loop per kind; the order of columns within a slot stays the file's
        add = self._add
        joined = self._joined
        for kind, clean, plan in self._cleaners:
            for index, pos in plan:
                value = clean(cells[index])
                if value:
                    if not values[pos]:
                        values[pos] = value
                    elif pos in joined:  # City, State, Country of one row: one location
                        values[pos] += LOCATION_JOIN + value
                    else:
                        multi += add(values, pos, value, kind)
        for index in self._email_cells:
            cell = cells[index]
            if not cell or cell.isspace():
                continue
            address = cell.strip().lower()
            if EMAIL_RE.fullmatch(address):  # fast path for the usual one-address cell
                pos = self._personal if is_personal_domain(address.rpartition("@")[2]) else self._work
                if values[pos]:
                    multi += add(values, pos, address, EMAIL)
                else:
                    values[pos] = address
            else:
                multi += self._emails(values, cell)
        if surplus:
            extra = EXTRA_FIELDS_JOIN.join(s.strip() for s in surplus if s.strip())
            if extra:
                multi += self._add(values, layout.extra_fields, extra, TEXT)
                layout.note_count(layout.extra_fields, 1)
        if self._names is not None:
            first_pos, last_pos, full_pos = self._names
            if values[full_pos]:
                if not values[first_pos] and not values[last_pos]:
                    values[first_pos], values[last_pos] = split_full_name(values[full_pos].split(VALUE_SEP)[0])
            elif values[first_pos] or values[last_pos]:
                values[full_pos] = build_full_name(values[first_pos].split(VALUE_SEP)[0],
                                                   values[last_pos].split(VALUE_SEP)[0])
        if layout.e164 is not None and values[self._phone]:
            for phone in values[self._phone].split(VALUE_SEP):
                number = e164(phone)
                if number:
                    multi += self._add(values, layout.e164, number, PHONE)
        self.domain_derived = False
        if not values[self._domain] and values[self._work]:
            for address in values[self._work].split(VALUE_SEP):
                domain = email_domain(address)
                if not is_personal_domain(domain):
                    values[self._domain] = domain
                    self.domain_derived = True
                    break
        self.values = values
        packed = SLOT_SEP.join(values)
        if packed.count(VALUE_SEP) != multi or packed.count(SLOT_SEP) != self.width - 1:
            self._control_chars += 1
            self.invalid_emails = invalid_before
            return self.build([c.replace(SLOT_SEP, " ").replace(VALUE_SEP, " ") for c in cells],
                              [c.replace(SLOT_SEP, " ").replace(VALUE_SEP, " ") for c in surplus])
        if len(packed) == self.width - 1:
            return ""  # only separators: an empty row
        if self._neutralise and (FORMULA_CELL.search(packed) or packed[:1] in FORMULA_PREFIXES):
            packed = self._neutralised(values)
        return packed

    def _neutralised(self, values: list[str]) -> str:
        """Neutralise formula values in place; return the packed row."""
        for pos, slot in enumerate(values):
            parts = slot.split(VALUE_SEP)
            safe = [neutralise_formula(v) for v in parts]
            changed = sum(a is not b for a, b in zip(parts, safe))
            if changed:
                self.neutralised += changed
                values[pos] = VALUE_SEP.join(safe)
        return SLOT_SEP.join(values)

    def _add(self, values: list[str], pos: int, value: str, kind: str) -> int:
        """Add a value; return how many VALUE_SEP it added (0 or 1)."""
        if not values[pos]:
            values[pos] = value
            return 0
        before = values[pos]
        count = add_value(values, pos, value, kind)
        self.layout.note_count(self.slot_ids[pos], count)
        return 0 if values[pos] is before else 1

    def _emails(self, values: list[str], cell: str) -> int:
        if not cell or cell.isspace():
            return 0
        valid, invalid = split_emails(cell)
        added = 0
        for address in valid:
            pos = self._personal if is_personal_domain(email_domain(address)) else self._work
            added += self._add(values, pos, address, EMAIL)
        for token in invalid:
            self.invalid_emails += 1
            added += self._add(values, self.layout.invalid_email, token, TEXT)
            self.layout.note_count(self.layout.invalid_email, 1)
        return added

    def finish(self) -> None:
        """Add the control-character warning once the file has been read."""
        if self._control_chars:
            self.warnings.append(
                f"{self._control_chars} rows held ASCII control characters 0x1E/0x1F; replaced by spaces"
            )
