"""Rate learning benchmark: how close delivery gets to the limit really available.

Run: ``.venv/bin/python bench/adaptive.py [SCENARIO ...]`` (all: about 10 minutes;
needs redis-server). Every scenario starts real processes: a ``csv-merger sink``
whose token bucket is the real limit (burst = its rate), a private
redis-server, and N ``csv-merger deliver`` processes configured at
``--rate 10 --burst 20`` sharing one limit key. The sink's counters are
polled twice a second; the table shows, per scenario:

- utilisation: accepted/s over the measured window / the real limit there,
- 429 share: answers 429 / requests received in that window,
- opening 429s: 429 answers in the first 20 s (a remembered rate avoids them),
- reached: seconds from the limit's change to the first 10 s window at
  >= 95 % utilisation with <= 2 % answered 429;
- stays: seconds from the limit's change until the rest of the run stays
  there (every 10 s window after it: one probing 429 is 2 % of 10 s at
  5/s, so one window with two 429s, or with a pause, moves it later).

The measured window is the last 60 s of the run (after the change, if any).
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.deliver import STARTED, deliver, start_sink, write_rows  # noqa: E402
from csv_merger.testing import RedisServer  # noqa: E402

CONFIGURED = ("--rate", "10", "--burst", "20")
MEASURED_S = 60.0  # steady state: after 30 s or more of learning (several 429 episodes)


@dataclass(frozen=True)
class Scenario:
    name: str
    processes: int
    rate: float  # the sink's rate at the start (requests/s)
    duration_s: float
    rate_after: str | None = None  # sink --rate-after: "N:RATE"
    key: str | None = None  # limit key (default: the scenario's name); the same key reuses the memory


SCENARIOS = {
    s.name: s for s in (
        Scenario("fixed-5-1p", 1, 5, 100),
        Scenario("fixed-5-2p", 2, 5, 100),
        Scenario("fixed-5-4p", 4, 5, 100),
        Scenario("again-5-1p", 1, 5, 80, key="fixed-5-1p"),  # the next job on fixed-5-1p's key
        Scenario("halves-10-5-2p", 2, 10, 110, rate_after="300:5"),
        Scenario("back-5-10-2p", 2, 5, 115, rate_after="200:10"),
    )
}


def poll(sink, until: float) -> list[tuple[float, int, int, int]]:
    """(unix time, accepted, 429, received) about every 0.5 s until ``until`` (unix time)."""
    samples = []
    while time.time() < until:
        s = sink.stats()
        samples.append((time.time(), s["accepted"], s["rejected_429"], s["received"]))
        time.sleep(0.5)
    return samples


def nearest(samples, t: float) -> tuple[float, int, int, int]:
    return min(samples, key=lambda x: abs(x[0] - t))


def between(samples, start: float, end: float) -> tuple[float, float]:
    """(accepted per s, 429 share) between two unix times (nearest samples)."""
    a, b = nearest(samples, start), nearest(samples, end)
    span = b[0] - a[0]
    received = b[3] - a[3]
    return (b[1] - a[1]) / span if span > 0 else 0.0, (b[2] - a[2]) / received if received else 0.0


def reconverged(samples, change: float, limit: float) -> tuple[float | None, float | None]:
    """Seconds after ``change`` to the first 10 s window at >= 95 % of ``limit`` with <= 2 % 429s
    (reached), and from which every 10 s window stays there (stays); None: never."""
    end = samples[-1][0]
    windows = [(t, *between(samples, t, t + 10)) for t in (x[0] for x in samples) if change <= t <= end - 10]
    good = [rate >= 0.95 * limit and share <= 0.02 for _, rate, share in windows]
    reached = next((t - change for (t, _, _), ok in zip(windows, good) if ok), None)
    stays = next((windows[i][0] - change for i in range(len(windows)) if all(good[i:])), None)
    return reached, stays


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.0f} s"


def run(sc: Scenario, tmp: Path, redis_url: str) -> str:
    opts = {"rate": sc.rate, "record": None}
    if sc.rate_after:
        opts["rate_after"] = sc.rate_after
    sink = start_sink(tmp, **opts)
    rows_each = int(10 * sc.duration_s * 1.5 / sc.processes) + 50  # more than they can send in time
    start = time.time()
    procs = [deliver(tmp, write_rows(tmp / f"{sc.name}-{i}.csv", rows_each, start=i * 100_000), sink.url,
                     *CONFIGURED, "--redis-url", redis_url, "--limit-key", sc.key or sc.name, "--quiet")
             for i in range(sc.processes)]
    samples = poll(sink, start + sc.duration_s)
    for p in procs:  # SIGTERM: the job stops as on Ctrl-C and keeps its learned rate
        p.terminate()
    for p in procs:
        p.wait(timeout=30)
    changes = sink.stats()["rate_changes"]
    sink.stop()
    limit = changes[-1][1] if changes else sc.rate
    change_at = changes[-1][0] if changes else None
    end = samples[-1][0]
    rate, share = between(samples, max(end - MEASURED_S, change_at or 0), end)
    opening_429 = nearest(samples, start + 20)[2] - samples[0][2]
    reached, stays = reconverged(samples, change_at, limit) if change_at else (None, None)
    real = f"{sc.rate:g}" + (f" -> {limit:g}" if change_at else "")
    return (f"{sc.name:<16} {sc.processes:>2}  {real:>8}  {'10':>4}  {rate / limit:>7.1%}  {share:>6.2%}  "
            f"{opening_429:>7}  {'-' if change_at is None else _seconds(reached):>8}"
            f"  {'-' if change_at is None else _seconds(stays):>8}")


def main() -> None:
    names = sys.argv[1:] or list(SCENARIOS)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        redis = RedisServer(tmp)
        try:
            print(f"{'scenario':<16} {'N':>2}  {'real/s':>8}  {'cfg':>4}  {'util.':>7}  {'429 %':>6}  "
                  f"{'opening':>7}  {'reached':>8}  {'stays':>8}", flush=True)
            for name in names:
                print(run(SCENARIOS[name], tmp, redis.url), flush=True)
        finally:
            for proc in STARTED:
                (proc.stop if hasattr(proc, "stop") else proc.kill)()
            redis.stop()


if __name__ == "__main__":
    main()
