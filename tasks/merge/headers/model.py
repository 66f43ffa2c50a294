"""What a header decision produces, and the fields the decisions treat alike."""

from __future__ import annotations

from dataclasses import dataclass

MERGE_OWNED = "Source"  # filled by the merge with the input file names
EMAIL_FIELD = {"people": "Work Email", "company": "Company Email"}
PHONE_FIELD = {"people": "Phone Number", "company": "Company Phone"}
EMAIL_FIELDS = frozenset({"Work Email", "Personal Email", "Company Email"})
LINKEDIN_FIELDS = {"person": "LinkedIn Profile", "company": "Company LinkedIn"}
PHONE_FIELDS = frozenset(PHONE_FIELD.values())


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
