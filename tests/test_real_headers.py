"""The real-header test set (tests/data/real_headers.yaml): export header rows
of the tools agencies use, each with the canonical field every key column
must map to. Every key column is placed; every other column stays unmapped
(kept under its own header), so nothing is lost.

``python tests/test_real_headers.py`` prints the mapping score: the share of
key columns placed, per tool and overall.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks.merge.headers import map_headers  # noqa: E402

REAL_HEADERS = Path(__file__).with_name("data") / "real_headers.yaml"
ROWS = yaml.safe_load(REAL_HEADERS.read_text(encoding="utf-8"))


def row_id(row: dict) -> str:
    return f"{row['tool']}: {row['export']}"


def mapped(row: dict) -> dict[str, str | None]:
    """{header: field} as the merge maps this row (with its sample rows)."""
    mappings, _ = map_headers(row["header"], row["table_type"], sample=row.get("sample"))
    return {m.header: m.field for m in mappings}


def test_the_set_covers_enough_tools_with_sources():
    assert len(ROWS) >= 40
    assert len({row["tool"].split(" (")[0] for row in ROWS}) >= 15
    for row in ROWS:
        assert row["source"] and row["checked"] in ("search", "kept", "corpus", "recalled"), row_id(row)
        assert set(row["expected"]) <= set(row["header"]), row_id(row)
        assert all(len(sample) == len(row["header"]) for sample in row.get("sample", [])), row_id(row)


@pytest.mark.parametrize("row", ROWS, ids=[row_id(r) for r in ROWS])
def test_every_key_column_is_placed_and_nothing_else_is(row):
    got = mapped(row)
    expected = {header: row["expected"].get(header) for header in row["header"]}
    wrong = {h: (got[h], expected[h]) for h in row["header"] if got[h] != expected[h]}
    assert not wrong, f"{row_id(row)}: (mapped, expected) {wrong}"


def score() -> tuple[int, int, dict[str, list[int]]]:
    """(placed, key columns, {tool: [placed, key]}) over the whole set."""
    per_tool: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in ROWS:
        got = mapped(row)
        for header, field in row["expected"].items():
            per_tool[row["tool"]][1] += 1
            per_tool[row["tool"]][0] += got[header] == field
    placed = sum(p for p, _ in per_tool.values())
    total = sum(t for _, t in per_tool.values())
    return placed, total, dict(per_tool)


if __name__ == "__main__":
    placed, total, per_tool = score()
    for tool, (p, t) in sorted(per_tool.items()):
        print(f"{tool:34} {p:3}/{t:3}")
    print(f"{'all':34} {placed:3}/{total:3} = {placed / total:.1%} of key columns placed "
          f"({len(ROWS)} header rows)")
