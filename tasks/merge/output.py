"""Writing merged records as one UTF-8 CSV.

Columns (``OutputPlan``): the canonical fields in schema order; then the
numbered columns holding further distinct values of canonical fields
(``"Work Email 2"``, ``"Phone Number 2"``, ... in schema order of their
field); then ``"Phone Number (E.164)"`` (``"Company Phone (E.164)"``) and
its numbered columns when asked for; then ``"Invalid Email"`` (and ``"Invalid Email 2"``...) when any
e-mail cell held an invalid token; then every kept input column under its
original header, each followed by its own numbered columns; last
``"Extra Fields"`` when a ragged row had surplus cells. For companies the
several addresses of "Company Email" are written as ``"Company Email 1".."N"``
in the field's place (BRIEF.md). A generated name that collides with
another column gets a ``" (2)"``-style suffix. Every cell is text.

Formula neutralisation (on by default): see ``tasks.merge.cleaning.neutralise_formula``;
values are neutralised when records are built, the header and Source here.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from operator import itemgetter
from typing import TextIO

from tasks.merge.cleaning import neutralise_formula
from tasks.merge.records import SLOT_SEP, SOURCE, VALUE_SEP, Layout


def iter_neutralised_csv(path: str, chunk_rows: int = 1000) -> Iterator[str]:
    """Stream the UTF-8 CSV at ``path`` back as text with every cell through
    ``neutralise_formula`` (idempotent), e.g. for a human download of a merged
    file written with ``neutralise_formulas=False``. Yields text blocks of
    about ``chunk_rows`` rows; memory stays bounded.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    with open(path, encoding="utf-8", newline="") as stream:
        for number, row in enumerate(csv.reader(stream), 1):
            writer.writerow([neutralise_formula(cell) for cell in row])
            if number % chunk_rows == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue()


class OutputPlan:
    """Column names and, per layout slot, the columns of its 1st..Nth value.

    Build it after every record is known (``layout.max_values`` final).
    Attributes: ``names`` (list[str]), ``positions`` (list per slot id),
    ``source_column`` (int).
    """

    def __init__(self, layout: Layout):
        self.names: list[str] = []
        self.positions: list[list[int]] = [[] for _ in layout.names]
        counts = [max(1, n) for n in layout.max_values]
        numbered_company_email = layout.table_type == "company" and counts[layout.slot("Company Email")] > 1
        fields = range(len(layout.fields))
        for slot in fields:
            name = layout.names[slot]
            if numbered_company_email and name == "Company Email":
                for k in range(1, counts[slot] + 1):
                    self._add(slot, f"{name} {k}")
            else:
                self._add(slot, name)
        for slot in fields:
            if not (numbered_company_email and layout.names[slot] == "Company Email"):
                self._add_numbered(slot, layout.names[slot], counts[slot])
        if layout.e164 is not None:  # asked for: always written, even empty
            self._add(layout.e164, layout.names[layout.e164])
            self._add_numbered(layout.e164, layout.names[layout.e164], counts[layout.e164])
        self._add_all(layout.invalid_email, layout.names[layout.invalid_email], layout.max_values[layout.invalid_email])
        for slot in range(layout.kept_start, len(layout.names)):
            self._add_all(slot, layout.names[slot], counts[slot])
        self._add_all(layout.extra_fields, layout.names[layout.extra_fields], layout.max_values[layout.extra_fields])
        self.source_column = self.positions[layout.slot(SOURCE)][0]
        self._make_unique()

    def _add(self, slot: int, name: str) -> None:
        self.positions[slot].append(len(self.names))
        self.names.append(name)

    def _add_numbered(self, slot: int, name: str, count: int) -> None:
        for k in range(2, count + 1):
            self._add(slot, f"{name} {k}")

    def _add_all(self, slot: int, name: str, count: int) -> None:
        if count:
            self._add(slot, name)
            self._add_numbered(slot, name, count)

    def _make_unique(self) -> None:
        seen: set[str] = set()
        for i, name in enumerate(self.names):
            unique, n = name, 2
            while unique in seen:
                unique, n = f"{name} ({n})", n + 1
            seen.add(unique)
            self.names[i] = unique


class CsvOutput:
    """Writes rows of an ``OutputPlan`` to an open text file.

    Values arrive already neutralised (``RecordBuilder(neutralise_formulas=)``);
    with ``neutralise_formulas`` this class neutralises what it adds itself:
    the header row and the Source labels. ``write(values, source)`` writes a
    merged record (``[(slot id, [value, ...]), ...]``);
    ``packed_writer(slot_ids, source)`` returns a fast writer for one file's
    packed records. ``neutralised`` counts cells given a ``'`` here;
    ``header`` is the header row as written; ``rows`` counts records written.
    """

    def __init__(self, stream: TextIO, plan: OutputPlan, *, neutralise_formulas: bool = True):
        self._writer = csv.writer(stream)
        self._plan = plan
        self._width = len(plan.names)
        self._neutralise = neutralise_formulas
        self.neutralised = 0
        self.rows = 0
        self.header = [self._safe(name) for name in plan.names]
        self._writer.writerow(self.header)

    def _safe(self, cell: str) -> str:
        if not self._neutralise:
            return cell
        safe = neutralise_formula(cell)
        if safe is not cell:
            self.neutralised += 1
        return safe

    def write(self, values: Iterable[tuple[int, list[str]]], source: str) -> None:
        """Write one record."""
        cells = [""] * self._width
        positions = self._plan.positions
        for slot, slot_values in values:
            for column, value in zip(positions[slot], slot_values):
                cells[column] = value
        cells[self._plan.source_column] = self._safe(source)
        self._writer.writerow(cells)
        self.rows += 1

    def packed_writer(self, slot_ids: list[int], source: str) -> Callable[[str], None]:
        """A writer for packed records (tasks.merge.records) of one file, each with
        exactly ``len(slot_ids)`` slots.

        One ``itemgetter`` builds the row (each output column picks a packed
        position, an empty cell or the Source cell); further values of a
        slot are then put in their numbered columns.
        """
        width = len(slot_ids)
        empty, source_at = width, width + 1
        first = {self._plan.positions[slot][0]: pos for pos, slot in enumerate(slot_ids)
                 if self._plan.positions[slot]}
        gather = [first.get(column, empty) for column in range(self._width)]
        gather[self._plan.source_column] = source_at
        pick = itemgetter(*gather)
        safe_source = neutralise_formula(source) if self._neutralise else source
        tail = ["", safe_source]
        writerow = self._writer.writerow
        positions = [self._plan.positions[slot] for slot in slot_ids]
        several = [pos for pos in range(width) if len(positions[pos]) > 1]  # slots that may hold 2+ values

        def write_packed(packed: str) -> None:
            parts = packed.split(SLOT_SEP)
            parts += tail
            if VALUE_SEP in packed:
                more = []
                for pos in several:
                    if VALUE_SEP in parts[pos]:
                        values = parts[pos].split(VALUE_SEP)
                        parts[pos] = values[0]
                        more.append((positions[pos], values))
                cells = list(pick(parts))
                for columns, values in more:
                    for column, value in zip(columns[1:], values[1:]):
                        cells[column] = value
                writerow(cells)
            else:
                writerow(pick(parts))
            if safe_source is not source:
                self.neutralised += 1
            self.rows += 1

        return write_packed
