"""Typed merge report (what ``csv-merger merge --report`` writes as JSON)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class BadRowReport(BaseModel):
    """One row the reader had to repair (``line``: 1-based physical line).
    A quote never closed is not repaired: the merge refuses the file."""

    line: int
    reason: str


class FileReport(BaseModel):
    """What happened to one input file.

    ``rows``: data rows read (blank lines excluded). ``mapping``: original
    header -> canonical field, or null when the column is kept under its own
    header or ignored (``ignored`` lists the columns a mapping override
    dropped on purpose; ``preset``: the mapping preset applied, if any). ``empty_rows``: rows whose kept cells were all empty
    (they produce no record). ``invalid_emails``: e-mail tokens that were not
    valid addresses (kept in "Invalid Email"). ``skipped``/``error``: set when
    ``--skip-bad-files`` skipped the file.
    """

    path: str
    source: str = ""
    encoding: str | None = None
    delimiter: str | None = None
    rows: int = 0
    empty_rows: int = 0
    invalid_emails: int = 0
    bad_rows: list[BadRowReport] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    mapping: dict[str, str | None] = Field(default_factory=dict)
    mapping_how: dict[str, str] = Field(default_factory=dict)
    ignored: list[str] = Field(default_factory=list)
    preset: str | None = None
    skipped: bool = False
    error: str | None = None


class DuplicateGroup(BaseModel):
    """Rows the merge folded into one record, and why.

    ``sources``: the file label of each row, in reading order (a label
    repeats for duplicates within one file); ``reasons``: each match key two
    or more of the rows share, e.g. ``same e-mail address: ann@x.com``.
    """

    sources: list[str]
    reasons: list[str]


class MergeReport(BaseModel):
    """Totals of one merge.

    ``rows_in``: data rows read from every merged file; ``rows_out``: records
    written; ``duplicates_merged``: rows folded into an earlier record
    (``rows_in = rows_out + duplicates_merged + empty_rows``);
    ``formulas_neutralised``: cells given a leading ``'``; ``elapsed_s``:
    wall time in seconds. ``duplicate_groups``: the first groups of merged
    rows and why they matched (only when ``merge_files(explain=N)``).
    """

    rows_in: int = 0
    rows_out: int = 0
    duplicates_merged: int = 0
    empty_rows: int = 0
    invalid_emails: int = 0
    formulas_neutralised: int = 0
    files: list[FileReport] = Field(default_factory=list)
    output_path: str = ""
    columns: list[str] = Field(default_factory=list)
    table_type: str = "people"
    warnings: list[str] = Field(default_factory=list)
    elapsed_s: float = 0.0
    duplicate_groups: list[DuplicateGroup] = Field(default_factory=list)

    def to_json(self) -> str:
        """The report as indented JSON text."""
        return self.model_dump_json(indent=2)
