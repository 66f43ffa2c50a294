"""How long work shows its progress on the command line.

``DeliveryMeter`` draws a rich progress bar on stderr when stderr is a
terminal (rows handled of total, rows/s, the limiter's current rate, 429s,
ETA), prints a plain line every ``every_s`` seconds otherwise (logs, CI,
pipes), and nothing when ``quiet`` (warnings and errors still print: they do
not go through the meter). The rate excludes the opening burst: it is
measured from the moment ``burst`` rows were handled, so the first seconds
do not promise a speed the target's limit will not keep.
"""

from __future__ import annotations

import sys
import time

PLAIN_EVERY_S = 5.0


class DeliveryMeter:
    """``update(handled, total, ...)`` as often as convenient; ``close()`` once.

    ``handled``: rows delivered, dead-lettered or found already delivered;
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
        self._after_burst: tuple[float, int] | None = None  # (time, handled) once the burst is spent
        self._last_line = time.monotonic()

    def rate(self, handled: int, now: float) -> float | None:
        """Rows/s since the opening burst was spent; None until then (or before 1 s of it)."""
        if self._after_burst is None:
            if handled >= self.burst:
                self._after_burst = (now, handled)
            return None
        t0, n0 = self._after_burst
        return (handled - n0) / (now - t0) if now - t0 >= 1.0 else None

    def update(self, handled: int, total: int, *, delivered: int | None = None, failed: int | None = None,
               http_429: int | None = None, limit: float | None = None, learned: float | None = None,
               destinations=()) -> None:
        now = time.monotonic()
        rate = self.rate(handled, now)
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
