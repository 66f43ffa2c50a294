"""Send only new leads: rows whose lead is already at the destination (its
lead index, see ``lead_index``) or on a suppression list (do-not-contact
e-mails and domains) are skipped, counted and listed, never sent.

``NewLeadDelivery`` wraps a ``DeliverySession``: it filters the rows first,
delivers the rest, then adds the identities of every row the job's ledger
holds as delivered to the index of the destination the row went to (also
when the run stopped early: what was delivered is known). With several
destinations (rollover) a lead already at ANY of them is skipped; a row
delivered by an earlier run of the job (resume) is indexed at the first.
A crash between the two steps leaves
at most those rows out of the index; the job's own ledger still keeps a
resume from re-sending them. ``config.resend`` sends every row regardless
of the index (the suppression list still applies).

Skipped rows go to ``<dead-letter file>.skipped.csv`` in the dead-letter
format (``_status`` "skipped", ``_reason`` why), so ``redeliver --resend``
can send them on purpose.
"""

from __future__ import annotations

import contextlib
import csv
import re
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path

from csv_merger.errors import CsvMergerError, InputError
from csv_merger.settings import get_settings
from tasks.deliver.dead_letter import DeadLetterWriter
from tasks.deliver.destinations import destination_id
from tasks.deliver.job import DeliveryConfig, DeliverySummary
from tasks.deliver.lead_index import LeadIndexes, digest
from tasks.deliver.ledger import open_ledger
from tasks.deliver.session import DeliverySession

Identities = Callable[[dict[str, str]], list[str]]
"""A merged-CSV row -> its identities, prefixed "e" (e-mail), "l" (LinkedIn key), "d" (domain)."""

ALREADY_THERE = "already at the destination (sent by an earlier job); --resend sends it anyway"
SUPPRESSED = "on the suppression list"


def read_suppression(path: str | Path) -> set[str]:
    """Identities to never send to, from a file of e-mail addresses and domains
    (one per line, or any CSV separated by commas, semicolons, tabs or |, quoted or not, in UTF-8 or
    what charset-normalizer finds: every cell is read; a header is ignored when it
    holds neither). Returns {"e"+address, "d"+domain}. Raises InputError naming
    the file when it cannot be read or holds no address or domain at all."""
    entries: set[str] = set()
    try:
        with open(path, newline="", encoding=_encoding(path)) as f:
            for row in csv.reader(f):
                for part in (p for cell in row for p in re.split(r"[;\t|]", cell)):  # Excel's ; and tab too
                    value = part.strip().strip("\"'<>").strip().lower().removeprefix("mailto:")  # "a@b.com", <a@b.com>
                    if "@" in value:
                        entries.add("e" + value)
                    elif "." in value and " " not in value:
                        host = value.split("//")[-1].split("/")[0].removeprefix("www.")
                        entries.add("d" + host)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(str(path), f"cannot read the suppression list: {exc}") from None
    if not entries:
        raise InputError(str(path), "suppression list holds no e-mail address or domain")
    return entries


def _encoding(path: str | Path) -> str:
    """UTF-8 (with or without BOM), else what charset-normalizer finds (a list saved by Excel on
    Windows is cp1252); raises UnicodeDecodeError when it is no text it knows."""
    import charset_normalizer

    data = Path(path).read_bytes()
    try:
        data.decode("utf-8-sig")
        return "utf-8-sig"
    except UnicodeDecodeError as exc:
        best = charset_normalizer.from_bytes(data).best()
        if best is None:
            raise UnicodeDecodeError(exc.encoding, exc.object, exc.start, exc.end, "no known text encoding") from None
        return best.encoding


def _suppressed(identities: Iterable[str], entries: set[str]) -> bool:
    for identity in identities:
        if identity in entries or (identity[0] == "e" and "d" + identity.rsplit("@", 1)[-1] in entries):
            return True
    return False


class NewLeadDelivery:
    """A ``DeliverySession`` with the destination's lead index and the suppression list, opened
    once and used for batch after batch (a consumer's chunks); see the module docstring.

    ``async with NewLeadDelivery(config, identities) as d: summary = await d.deliver(rows)``.
    Opening raises what ``DeliverySession`` raises, and InputError for an unreadable
    suppression list.
    """

    def __init__(self, config: DeliveryConfig, identities: Identities):
        self.config, self.identities = config, identities
        self.suppress = read_suppression(config.suppress_path) if config.suppress_path else None
        self.index = _open_indexes(config)
        self.session = DeliverySession(config)

    async def __aenter__(self) -> NewLeadDelivery:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        try:
            await self.index.aclose()
        finally:
            await self.session.aclose()

    async def deliver(self, rows: list[tuple[int, dict[str, str]]], *, dead_letter_path: str | None = None,
                      **engine) -> DeliverySummary:
        """``DeliverySession.deliver`` for the rows whose lead is at none of the job's destinations
        and not suppressed; ``engine``: ``progress``, ``cancel``. The summary counts every row
        (``rows_total``) and ``skipped_already_at_destination`` / ``skipped_suppressed``."""
        resumed = await self.session.ledger.delivered(n for n, _ in rows)  # a resume skips this job's own rows as such
        send, skipped, sent = await _select(self.index, rows, self.config, self.identities, self.suppress, resumed)
        try:
            summary = await self.session.deliver(send, dead_letter_path=dead_letter_path, delivered=resumed, **engine)
        except BaseException:
            with contextlib.suppress(CsvMergerError, OSError, sqlite3.Error):  # the run's own error is the one to tell
                await self._index_delivered(sent, {})
            raise
        await self._index_delivered(sent, summary.placed)
        summary.rows_total += len(skipped)
        summary.skipped_suppressed = sum(reason == SUPPRESSED for *_, reason in skipped)
        summary.skipped_already_at_destination = len(skipped) - summary.skipped_suppressed
        dead_letter = dead_letter_path or self.config.dead_letter_path
        if skipped and dead_letter:
            summary.skipped_path = _write_skipped(Path(dead_letter), skipped)
        return summary

    async def _index_delivered(self, digests: dict[int, list[str]], placed: dict[int, str]) -> None:
        """Add the digests of the delivered rows to the index of the destination each went to
        (``placed``: row number -> destination id; a row not in it: the first destination)."""
        delivered = await self.session.ledger.delivered(digests)
        await self.index.add((placed.get(n), d) for n, ds in digests.items() if n in delivered for d in ds)


async def deliver_new_leads(rows: list[tuple[int, dict[str, str]]], config: DeliveryConfig, identities: Identities,
                            **engine) -> DeliverySummary:
    """One batch through a ``NewLeadDelivery`` (opened and closed here); ``engine``: ``progress``,
    ``cancel`` as for ``deliver_rows``, whose errors this raises."""
    async with NewLeadDelivery(config, identities) as delivery:
        return await delivery.deliver(rows, **engine)


async def split_new_leads(rows: list[tuple[int, dict[str, str]]], config: DeliveryConfig, identities: Identities
                          ) -> tuple[list[tuple[int, dict[str, str]]], list[tuple[int, dict[str, str], str]]]:
    """(rows a run would send, (number, record, reason) of rows it would skip) without sending (a dry run).
    Raises InputError (suppression list), ConfigError / RedisUnavailableError (index stores)."""
    suppress = read_suppression(config.suppress_path) if config.suppress_path else None
    settings = get_settings()
    ledger = open_ledger(config.job_id, redis_url=config.redis_url, data_dir=settings.data_dir,
                         ttl_s=settings.chunk_ttl_s)
    index = _open_indexes(config)
    try:
        resumed = await ledger.delivered(n for n, _ in rows)
        send, skipped, _ = await _select(index, rows, config, identities, suppress, resumed)
    finally:
        await index.aclose()
        await ledger.aclose()
    return send, skipped


def _open_indexes(config: DeliveryConfig) -> LeadIndexes:
    settings = get_settings()
    key = settings.index_key.get_secret_value() if settings.index_key else None
    return LeadIndexes([destination_id(u) for u in config.webhook_urls], redis_url=config.redis_url,
                       data_dir=settings.data_dir, key=key)


async def _select(index: LeadIndexes, rows: list[tuple[int, dict[str, str]]], config: DeliveryConfig,
                  identities: Identities, suppress: set[str] | None, resumed: set[int]
                  ) -> tuple[list, list, dict[int, list[str]]]:
    """(rows to send, (number, record, reason) skipped, {number: digests} of the rows to send).
    ``resumed``: rows this job's ledger holds (never skipped as already at a destination)."""
    secret = await index.key()
    ids = {number: identities(record) for number, record in rows}
    digests = {number: [digest(secret, i) for i in found] for number, found in ids.items()}
    known = set() if config.resend else await index.known([d for ds in digests.values() for d in ds])
    send, skipped = [], []
    for number, record in rows:
        if suppress and _suppressed(ids[number], suppress):
            skipped.append((number, record, SUPPRESSED))
        elif number not in resumed and any(d in known for d in digests[number]):
            skipped.append((number, record, ALREADY_THERE))
        else:
            send.append((number, record))
    return send, skipped, {n: digests[n] for n, _ in send}


def _write_skipped(dead_letter: Path, skipped: list[tuple[int, dict[str, str], str]]) -> str:
    path = dead_letter.with_name(dead_letter.stem + ".skipped.csv")
    writer = DeadLetterWriter(path, list(skipped[0][1]))
    try:
        for number, record, reason in skipped:
            writer.write(number, record, status="skipped", reason=reason)
    finally:
        writer.close()
    return str(path)


async def forget_destination(webhook_url: str, *, redis_url: str | None, data_dir: str | Path) -> int:
    """Remove the lead index of ``webhook_url``'s destination; return how many identities it held."""
    index = LeadIndexes([destination_id(webhook_url)], redis_url=redis_url, data_dir=data_dir)
    try:
        return await index.forget()
    finally:
        await index.aclose()
