"""How long work shows its progress on the command line.

``DeliveryMeter`` draws a rich progress bar on stderr when stderr is a
terminal (rows handled of total, rows/s, the limiter's current rate, 429s,
ETA), prints a plain line every ``every_s`` seconds otherwise (logs, CI,
pipes), and nothing when ``quiet`` (warnings and errors still print: they do
not go through the meter). The rate excludes the opening burst: it is
measured from the moment this run had sent ``burst`` rows (``after_burst``),
so the first seconds do not promise a speed the target's limit will not keep.
"""

from __future__ import annotations

import sys
import time

PLAIN_EVERY_S = 5.0
MIN_EVIDENCE_S = 1.0
"""Seconds of sending after the burst before a rate is shown."""


def after_burst(mark: tuple[float, int] | None, sent: int, now: float,
                burst: int) -> tuple[tuple[float, int] | None, float | None]:
    """The rate to show, decided from counts alone: returns ``(mark, rows/s)``.

    ``sent``: rows this run sent so far (delivered or dead-lettered), never
    rows found delivered by an earlier run: those cost no request, so after
    a resume they would start the clock before this run's own burst, and a
    chunk that starts with them would add a jump (a rate above the limit).
    ``mark``: (``now``, ``sent``) at the first call once ``sent >= burst``
    (None before; pass back what this returned). Rows/s: rows sent since
    the mark per second since it; None before the mark or before
    ``MIN_EVIDENCE_S`` seconds of it. ``now`` in monotonic seconds.
    """
    if mark is None:
        return ((now, sent) if sent >= burst else None), None
    t0, n0 = mark
    return mark, ((sent - n0) / (now - t0) if now - t0 >= MIN_EVIDENCE_S else None)


class DeliveryMeter:
    """``update(handled, total, sent=...)`` as often as convenient; ``close()`` once.

    ``handled``: rows delivered, dead-lettered or found already delivered;
    ``sent``: the rows of those this run sent (delivered or dead-lettered),
    the rows its rate counts (``after_burst``);
    ``delivered``/``failed``/``http_429`` counts when known (None: not shown);
    ``limit``: the limiter's current rate in requests/s (None: not shown);
    ``learned``: the rate it learned the target grants (None: not shown), of
    ``configured`` requests/s;
    ``destinations``: ``DestinationUse`` counts, shown as "dest 1,234 of 50,000"
    (numbered "dest 1", "dest 2" ... when the job has several).
    """

    def __init__(self, *, burst: int = 0, configured: float = 0.0, quiet: bool = False, every_s: float = PLAIN_EVERY_S):
        from rich.console import Console

        self.burst, self.configured, self.quiet, self.every_s = burst, configured, quiet, every_s
        self._console = Console(stderr=True)
        self._bar = None
        self._task = None
        self._after_burst: tuple[float, int] | None = None  # (time, rows sent) once the burst is spent
        self._last_line = time.monotonic()

    def update(self, handled: int, total: int, *, sent: int, delivered: int | None = None, failed: int | None = None,
               http_429: int | None = None, limit: float | None = None, learned: float | None = None,
               destinations=()) -> None:
        now = time.monotonic()
        self._after_burst, rate = after_burst(self._after_burst, sent, now, self.burst)
        if self.quiet or not total:
            return
        eta = f"{(total - handled) / rate:.0f} s" if rate else "?"
        parts = [f"{rate:.1f} rows/s" if rate is not None else "rate after the burst: ?"]
        if limit is not None:
            parts.append(f"limit {limit:.1f}/s" + (f" (learned {learned:.1f}/s of {self.configured:g}/s)"
                                                   if learned is not None else ""))
        if http_429 is not None:
            parts.append(f"{http_429} x 429")
        if delivered is not None:
            parts.append(f"{delivered} delivered, {failed or 0} failed")
        parts += destination_parts(destinations)
        if self._console.is_terminal:
            self._draw(handled, total, ", ".join(parts), eta)
        elif now - self._last_line >= self.every_s:
            self._last_line = now
            print(f"csv-merger: {handled}/{total} rows ({100 * handled / total:.0f}%), {', '.join(parts)}, ETA {eta}",
                  file=sys.stderr, flush=True)

    def _draw(self, handled: int, total: int, text: str, eta: str) -> None:
        if self._bar is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._bar = Progress(TextColumn("delivering"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"),
                                 TextColumn("{task.fields[text]}, ETA {task.fields[eta]}"),
                                 console=self._console, transient=False)
            self._task = self._bar.add_task("deliver", total=total, text=text, eta=eta)
            self._bar.start()
        self._bar.update(self._task, completed=handled, total=total, text=text, eta=eta)

    def close(self) -> None:
        """Stop the bar (its last state stays on screen)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def destination_parts(destinations) -> list[str]:
    """``["dest 1,234 of 50,000"]``, or ``["dest 1 50,000 of 50,000", "dest 2 10 of 50,000"]`` for
    several destinations (``DestinationUse``: used, ceiling; no ceiling: ``"dest 1,234 used"``)."""
    many = len(destinations) > 1
    return [f"dest{f' {i}' if many else ''} {d.used:,}" + (f" of {d.ceiling:,}" if d.ceiling else " used")
            for i, d in enumerate(destinations, 1)]
