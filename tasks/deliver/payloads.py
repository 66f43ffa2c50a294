"""JSON bodies for the webhook: one per merged-CSV row, serialised once.

Three shapes (``--payload``):

- ``flat`` (default): every non-empty cell as a top-level key, under its
  merged-CSV header (canonical fields, extra value columns such as
  ``Work Email 2``, kept unmapped columns). Empty cells are omitted so a
  Clay column is never overwritten with "".
- ``seed``: the old system's nested shape, so Clay tables built on it keep
  working (see ``seed_payload``).
- a path to a jinja2 template (``*.j2``): rendered in a sandbox per row, the
  output must be JSON.

Every value is text (cells are never type-converted). NUL characters are
removed from keys and values: JSON could escape them, but Clay and most
databases reject them, and a NUL is never meaningful in a lead record.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path

import orjson

from csv_merger.errors import ConfigError
from csv_merger.schema import COMPANY_FIELDS, PEOPLE_FIELDS, PERSON_PART, TableType

PAYLOAD_MODES = ("flat", "seed")
SEED_SOURCE = "csv-merger"
"""``_metadata.source`` in the seed shape."""

_NUMBERED = re.compile(r"^(?P<field>.+) (?P<n>[1-9][0-9]*)$")

BuildBody = Callable[[int, Mapping[str, str]], bytes]
"""(row_number, record) -> JSON body bytes. Raises PayloadError."""


class PayloadError(Exception):
    """One row cannot be turned into a body (template error, not JSON).

    ``row_number`` is the 1-based data row; ``reason`` says why. The engine
    dead-letters the row with this reason; it is not a CLI error by itself.
    """

    def __init__(self, row_number: int, reason: str):
        self.row_number, self.reason = row_number, reason
        super().__init__(f"row {row_number}: {reason}")


def _clean(text: str) -> str:
    return text.replace("\x00", "")


def flat_payload(record: Mapping[str, str]) -> dict[str, str]:
    """``{header: value}`` for every non-empty cell, NULs removed, order kept."""
    return {_clean(k): _clean(v) for k, v in record.items() if v and v.replace("\x00", "")}


def _base_field(header: str, fields: frozenset[str]) -> str | None:
    """Canonical field a header holds: itself, or ``Work Email 2`` -> ``Work Email``."""
    if header in fields:
        return header
    m = _NUMBERED.match(header)
    if m and m["field"] in fields:
        return m["field"]
    return None


def seed_payload(record: Mapping[str, str], row_number: int, table_type: TableType,
                 timestamp: str | None = None) -> dict:
    """The old system's shape.

    People: ``{"person": {person fields}, "company": {company fields},
    "Source": str, "additional_fields": {kept columns}, "_metadata":
    {"record_number": int, "timestamp": ISO-8601 UTC, "source": "csv-merger"}}``;
    ``person``/``company`` carry every canonical field ("" when empty, so
    the shape is stable) plus their extra value columns (``Work Email 2``).

    Company: the canonical company fields at top level, the e-mails numbered
    ``Company Email 1..N``, plus ``additional_fields`` and ``_metadata``.
    """
    rec = {_clean(k): _clean(v) for k, v in record.items()}
    meta = {"record_number": row_number,
            "timestamp": timestamp or datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "source": SEED_SOURCE}
    extra: dict[str, str] = {}
    if table_type == "people":
        canon = frozenset(PEOPLE_FIELDS) - {"Source"}
        person = {f: rec.get(f, "") for f in PEOPLE_FIELDS if f in PERSON_PART}
        company = {f: rec.get(f, "") for f in PEOPLE_FIELDS if f not in PERSON_PART and f != "Source"}
        for header, value in rec.items():
            base = _base_field(header, canon)
            if base is None:
                if header != "Source" and value:
                    extra[header] = value
            elif header != base and value:
                (person if base in PERSON_PART else company)[header] = value
        return {"person": person, "company": company, "Source": rec.get("Source", ""),
                "additional_fields": extra, "_metadata": meta}
    canon = frozenset(COMPANY_FIELDS)
    out: dict = {f: rec.get(f, "") for f in COMPANY_FIELDS if f != "Company Email"}
    emails = []
    for header, value in rec.items():
        base = _base_field(header, canon)
        if base == "Company Email":
            if value:
                emails.append(value)
        elif base is None:
            if value:
                extra[header] = value
        elif header != base and value:
            out[header] = value
    for n, email in enumerate(emails, 1):
        out[f"Company Email {n}"] = email
    out["additional_fields"] = extra
    out["_metadata"] = meta
    return out


_REASON_CHARS = 200
"""Template error messages are cut to this many characters (one short line)."""


def _short(exc: object) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= _REASON_CHARS else text[:_REASON_CHARS - 1] + "\u2026"


def _describe(exc: BaseException) -> str:
    """``"TypeName: message"``, on one line, truncated."""
    return _short(type(exc).__name__ + (f": {exc}" if str(exc) else ""))


def _refuse_constant(name: str):
    """``parse_constant`` for json.loads: NaN/Infinity are not JSON."""
    raise ValueError(f"{name} is not valid JSON")


def _tojson(value) -> str:
    """Quote a value as JSON; an undefined value raises UndefinedError."""
    from jinja2 import Undefined

    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    return json.dumps(value, ensure_ascii=False)


class TemplatePayload:
    """A jinja2 template rendering one JSON body per row, in a sandbox.

    The template sees ``row`` (header -> text, NULs removed),
    ``row_number`` (int) and ``job_id`` (str), and has a ``tojson`` filter
    (``{{ row["Work Email"] | tojson }}``) that quotes and escapes a value.
    Undefined names are errors (StrictUndefined). Raises ConfigError naming
    the file for a missing file or a syntax error; ``__call__`` raises
    PayloadError naming the row for a render error or non-JSON output.
    """

    def __init__(self, path: str | Path, job_id: str = ""):
        from jinja2 import StrictUndefined, TemplateError
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        self.path, self.job_id = str(path), job_id
        try:
            source = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read payload template ({exc})") from None
        # optimized=False: no constant folding at load time, so an expression
        # such as ``10 ** 10000`` fails when (and only for the rows where) it
        # is rendered, not while the template is compiled.
        env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False, optimized=False)
        env.filters["tojson"] = _tojson
        try:
            self.template = env.from_string(source)
        except TemplateError as exc:
            raise ConfigError(f"{path}: payload template error: {_short(exc)}") from None
        except Exception as exc:  # compiler errors outside jinja2's own (recursion, value limits)
            raise ConfigError(f"{path}: payload template error: {_describe(exc)}") from None

    def __call__(self, row_number: int, record: Mapping[str, str]) -> bytes:
        row = {_clean(k): _clean(v) for k, v in record.items()}
        try:
            text = self.template.render(row=row, row_number=row_number, job_id=self.job_id)
        except Exception as exc:  # any runtime error (1 // 0, recursion, sandbox range limit)
            raise PayloadError(row_number, f"template error: {_describe(exc)}") from None
        try:
            value = json.loads(text, parse_constant=_refuse_constant)
        except json.JSONDecodeError as exc:
            raise PayloadError(row_number, f"template did not render JSON: {_short(exc)}") from None
        except Exception as exc:  # NaN/Infinity, nesting too deep, ...
            raise PayloadError(row_number, f"template did not render JSON: {_describe(exc)}") from None
        try:
            return orjson.dumps(value)
        except Exception as exc:  # e.g. an integer above 64 bits
            raise PayloadError(row_number, f"template output cannot be sent as JSON: {_describe(exc)}") from None


def make_body_builder(payload: str, table_type: TableType, job_id: str = "") -> BuildBody:
    """The ``BuildBody`` for ``--payload`` = "flat", "seed" or a template path.

    Raises ConfigError for an unknown mode / unreadable or invalid template.
    """
    if payload == "flat":
        return lambda n, rec: orjson.dumps(flat_payload(rec))
    if payload == "seed":
        return lambda n, rec: orjson.dumps(seed_payload(rec, n, table_type))
    if payload.endswith((".j2", ".jinja", ".jinja2")) or Path(payload).is_file():
        return TemplatePayload(payload, job_id)
    raise ConfigError(f"--payload {payload!r}: expected 'flat', 'seed' or a jinja2 template file (.j2)")


def check_template(build: BuildBody, payload: str, row_number: int, record: dict[str, str]) -> None:
    """A template that fails on the first row to send fails the job before anything is sent (the
    real run and ``--dry-run`` alike): ConfigError naming the template and the row's reason.
    Any other body builder, or a template that renders the row, passes."""
    if isinstance(build, TemplatePayload):
        try:
            build(row_number, record)
        except PayloadError as exc:
            raise ConfigError(f"payload template {payload}: {exc}") from None


def idempotency_key(job_id: str, row_number: int) -> str:
    """``Idempotency-Key`` header value: ``"<job_id>-<row_number>"``.

    Stable for a job and row: identical on every retry and after a resume,
    so a target that de-duplicates by key never stores a row twice.
    """
    return f"{job_id}-{row_number}"


def oversize_reason(body: bytes, limit_bytes: int) -> str | None:
    """Why ``body`` may not be sent (larger than ``limit_bytes``), or None."""
    if len(body) > limit_bytes:
        return f"body is {len(body):,} bytes, above the payload limit of {limit_bytes:,} bytes"
    return None
