"""The canonical lead schema (BRIEF.md, 'Canonical lead schema').

Column names are what users see in CSVs and Clay tables, so they are Title
Case with spaces, kept from the old system for compatibility. Any input
column mapping to none of these is kept under its original header.
"""

from __future__ import annotations

from typing import Literal

TableType = Literal["people", "company"]

PEOPLE_FIELDS: tuple[str, ...] = (
    "First Name", "Last Name", "Full Name", "Job Title", "Work Email",
    "Personal Email", "Phone Number", "LinkedIn Profile", "Person Location",
    "Company Name", "Company Domain", "Company LinkedIn", "Company Industry",
    "Company Employee Count", "Company Location", "Company Description",
    "Year Founded", "Source",
)

COMPANY_FIELDS: tuple[str, ...] = (
    "Company Name", "Company Domain", "Company LinkedIn", "Company Industry",
    "Company Employee Count", "Company Location", "Company Description",
    "Year Founded", "Company Phone", "Company Email", "Source",
)

PERSON_PART: frozenset[str] = frozenset(PEOPLE_FIELDS[:9])
"""People fields describing the person (the rest describe the company)."""


def fields_for(table_type: TableType) -> tuple[str, ...]:
    """Canonical field names, in output order, for ``table_type``.

    Raises ValueError for an unknown table type.
    """
    if table_type == "people":
        return PEOPLE_FIELDS
    if table_type == "company":
        return COMPANY_FIELDS
    raise ValueError(f"unknown table type {table_type!r} (expected 'people' or 'company')")
