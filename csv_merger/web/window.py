"""The off-hours delivery window: when does the next one start?

Pure time arithmetic, no Prefect import. The window is ``settings.delivery_window``
("HH:MM-HH:MM", may wrap past midnight, e.g. "22:00-06:00") in the IANA timezone
``settings.timezone``.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from csv_merger.errors import ConfigError


def parse_window(window: str) -> tuple[time, time]:
    """``"22:00-06:00"`` -> (start, end). Raises ConfigError naming the value."""
    try:
        start, end = (time.fromisoformat(part.strip()) for part in window.split("-"))
    except ValueError:
        raise ConfigError(
            f"delivery_window {window!r} is not HH:MM-HH:MM (CSV_MERGER_DELIVERY_WINDOW)"
        ) from None
    return start, end


def in_window(moment: datetime, window: str, tz: str) -> bool:
    """True when the aware datetime ``moment`` falls inside the window."""
    start, end = parse_window(window)
    local = moment.astimezone(_zone(tz)).time()
    if start <= end:
        return start <= local < end
    return local >= start or local < end


def next_window_start(now: datetime, window: str, tz: str) -> datetime:
    """When a job started at aware ``now`` may deliver, as an aware UTC datetime.

    ``now`` itself when it is already inside the window, else the next start.
    Raises ConfigError for a bad window or timezone.
    """
    if in_window(now, window, tz):
        return now.astimezone(ZoneInfo("UTC"))
    start, _ = parse_window(window)
    zone = _zone(tz)
    local = now.astimezone(zone)
    candidate = datetime.combine(local.date(), start, tzinfo=zone)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), start, tzinfo=zone)
    return candidate.astimezone(ZoneInfo("UTC"))


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"timezone {tz!r} is not an IANA timezone (CSV_MERGER_TIMEZONE)") from None
