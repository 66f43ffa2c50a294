"""Delivery benchmark: our engine next to the old system's method and Prefect's rate_limit().

Run: ``.venv/bin/python bench/deliver.py [a] [b] [c]`` (all parts: about 3 minutes;
needs redis-server).
Every part starts real processes: ``csv-merger sink`` targets, a private
redis-server, ``csv-merger deliver`` processes. Figures are printed side by side:

(a) raw throughput against an unlimited sink: one ``deliver`` process, next
    to the old method (sequential requests, sleep 1/rate) and a plain
    sequential httpx loop; the sink's own capacity shows it is not the limit.
(b) a strict Clay-like target (10/s, burst 20): four ``deliver`` processes
    sharing Redis (utilisation = accepted/s after the burst / 10, 429s),
    next to the old per-worker method (each worker at 10/s, exponential
    back-off per record on 429). Utilisation = accepted/s after the first
    burst / 10.
(c) Prefect's ``rate_limit()`` (global concurrency limit with
    slot_decay_per_second, on a temporary Prefect server) next to our
    limiter: pacing accuracy at 10/s and time per acquisition.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from csv_merger.testing import RedisServer, Sink, write_merged_csv  # noqa: E402
from tasks.deliver.ratelimit import LimitPolicy, make_limiter  # noqa: E402

STARTED: list = []  # every process this run started, ended in main() whatever happens
ROW = "{:>28}  {:>12}  {}"


def write_rows(path: Path, count: int, start: int = 0) -> Path:
    """A merged CSV of ``count`` people."""
    return write_merged_csv(path, ({"First Name": f"Ann{i}", "Last Name": f"Lee{i}", "Job Title": "Head of Sales",
                                    "Work Email": f"ann{i}@acme{i % 97}.com", "Company Name": f"Acme {i % 97}",
                                    "Source": "bench.csv"} for i in range(start, start + count)))


def deliver(tmp: Path, csv_path: Path, url: str, *extra: str) -> subprocess.Popen:
    summary = csv_path.with_suffix(".summary.json")
    args = [sys.executable, "-m", "csv_merger", "deliver", str(csv_path), "--webhook-url", url, "--allow-private-targets",
            "--summary", str(summary), "--job-id", f"bench-{csv_path.stem}-{time.time_ns()}",
            "--resend", *extra]  # the same rows again on purpose: the lead index would skip them all
    env = {**os.environ, "CSV_MERGER_DATA_DIR": str(tmp)}
    STARTED.append(subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    return STARTED[-1]


def start_sink(tmp: Path, **opts) -> Sink:
    STARTED.append(Sink(tmp, **opts))
    return STARTED[-1]


def finish(proc: subprocess.Popen, csv_path: Path, timeout: float = 90) -> dict:
    """Wait for a ``deliver`` process; its summary. Killed past ``timeout`` s."""
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise SystemExit(f"deliver {csv_path.name} did not finish within {timeout:g} s (killed)") from None
    if proc.returncode != 0:
        raise SystemExit(f"deliver failed ({proc.returncode}): {err.strip()}")
    return json.loads(csv_path.with_suffix(".summary.json").read_text())


def steady_rate(sink: Sink, skip: int) -> float:
    """Accepted requests/s after the first ``skip`` (the burst), from the record."""
    times = sorted(r["t"] for r in sink.records())
    return (len(times) - skip) / (times[-1] - times[skip - 1])


async def raw_load(url: str, seconds: float, connections: int = 16) -> float:
    """Sink capacity: keep-alive HTTP/1.1 POSTs on raw sockets (no client
    library in the way); returns requests/s."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    body = b'{"First Name": "Ann"}'
    request = (b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    done = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection(host, int(port))
        while time.perf_counter() < stop:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            done += 1
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return done / (time.perf_counter() - start)


def sequential(url: str, seconds: float, sleep_s: float) -> float:
    """The old system's loop (sleep_s = 1/rate) or a plain one (0): rows/s."""
    import httpx

    sent = 0
    with httpx.Client(timeout=10) as client:
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            client.post(url, json={"First Name": "Ann", "n": sent}).raise_for_status()
            sent += 1
            if sleep_s:
                time.sleep(sleep_s)
        return sent / (time.perf_counter() - start)


def part_a(tmp: Path) -> None:
    print("\n(a) raw throughput, unlimited sink in its own process")
    sink = start_sink(tmp)
    capacity = asyncio.run(raw_load(sink.url, 3.0))
    print(ROW.format("method", "rows/s", "notes"))
    print(ROW.format("sink capacity (raw client)", f"{capacity:,.0f}", "16 keep-alive connections"))
    for concurrency in (4, 8, 32):
        rows = write_rows(tmp / f"raw{concurrency}.csv", 8_000)
        start = time.perf_counter()
        summary = finish(deliver(tmp, rows, sink.url, "--rate", "1000000", "--burst", "1000000",
                                 "--concurrency", str(concurrency)), rows)
        wall = time.perf_counter() - start
        print(ROW.format(f"deliver --concurrency {concurrency}", f"{summary['delivered'] / summary['elapsed_s']:,.0f}",
                         f"{summary['delivered']} rows in {summary['elapsed_s']:.1f} s "
                         f"({wall:.1f} s with process start); target >= 1,500"))
    old = sequential(sink.url, 8.0, 1 / 10)
    plain = sequential(sink.url, 5.0, 0)
    sink.stop()
    print(ROW.format("old: sequential + sleep", f"{old:,.1f}", "sleep 1/10 s after each request"))
    print(ROW.format("plain sequential httpx", f"{plain:,.0f}", "one keep-alive connection, no limiter"))

    slow = start_sink(tmp, latency_ms=150)
    rows = write_rows(tmp / "slow.csv", 150)
    summary = finish(deliver(tmp, rows, slow.url, "--rate", "10", "--burst", "20"), rows)
    ours = steady_rate(slow, LimitPolicy(10, 20).effective_burst)
    old = sequential(slow.url, 8.0, 1 / 10)
    slow.stop()
    print(ROW.format("deliver, 150 ms target", f"{ours:.2f}", "--rate 10: rows/s after the burst"))
    print(ROW.format("old, 150 ms target", f"{old:.2f}", "sequential + sleep 1/10"))


async def old_workers(url: str, workers: int, seconds: float, rate: float) -> tuple[int, int]:
    """The old per-worker method: each worker sleeps 1/rate after a request
    and backs off 2**n s per record on 429. Returns (accepted, 429s)."""
    import httpx

    accepted = throttled = 0
    stop = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal accepted, throttled
        attempt = 0
        while time.perf_counter() < stop:
            answer = await client.post(url, json={"First Name": "Ann"})
            if answer.status_code == 429:
                throttled += 1
                attempt += 1
                await asyncio.sleep(min(2**attempt, max(0.0, stop - time.perf_counter())))
                continue
            accepted, attempt = accepted + 1, 0
            await asyncio.sleep(1 / rate)

    async with httpx.AsyncClient(timeout=10) as client:
        await asyncio.gather(*(worker(client) for _ in range(workers)))
    return accepted, throttled


def part_b(tmp: Path, redis_url: str) -> None:
    print("\n(b) strict target 10/s burst 20, four processes")
    sink = start_sink(tmp, rate=10, burst=20)
    quarters = [write_rows(tmp / f"q{i}.csv", 80, start=80 * i) for i in range(4)]
    start = time.perf_counter()
    procs = [deliver(tmp, q, sink.url, "--rate", "10", "--burst", "20", "--redis-url", redis_url) for q in quarters]
    summaries = [finish(p, q) for p, q in zip(procs, quarters)]
    wall = time.perf_counter() - start
    stats = sink.stats()
    utilisation = steady_rate(sink, LimitPolicy(10, 20).effective_burst) / 10
    sink.stop()
    delivered = sum(s["delivered"] for s in summaries)

    old_sink = start_sink(tmp, rate=10, burst=20)
    old_accepted, old_429 = asyncio.run(old_workers(old_sink.url, 4, 20.0, 10))
    old_utilisation = steady_rate(old_sink, 20) / 10  # its first 20 go at once: the target's burst
    old_sink.stop()
    print(ROW.format("method", "utilisation", "notes"))
    print(ROW.format("4 x csv-merger deliver", f"{utilisation:.3f}",
                     f"{delivered} rows in {wall:.1f} s (ideal {(320 - 20) / 10:.0f}-{320 / 10:.0f} s), "
                     f"{stats['rejected_429']} answered 429 of {stats['received']}; target >= 0.98"))
    print(ROW.format("old: 4 workers x 10/s", f"{old_utilisation:.3f}",
                     f"{old_accepted} accepted in 20 s, {old_429} answered 429 "
                     f"({old_429 / (old_accepted + old_429):.1%})"))


async def pace_and_cost(acquire, paced: int, cheap_acquire, cheap: int) -> tuple[float, int, float]:
    """(achieved rate of ``paced`` sequential acquisitions after a burst of
    10, most acquisitions within any 1 s, mean seconds per acquisition that
    never has to wait)."""
    stamps = []
    for _ in range(paced):
        await acquire()
        stamps.append(time.perf_counter())
    rate = (len(stamps) - 10) / (stamps[-1] - stamps[9])
    most = max(sum(1 for t in stamps[i:] if t < s + 1.0) for i, s in enumerate(stamps))
    start = time.perf_counter()
    for _ in range(cheap):
        await cheap_acquire()
    return rate, most, (time.perf_counter() - start) / cheap


def part_c(tmp: Path, redis_url: str) -> None:
    print("\n(c) Prefect rate_limit() next to our limiter (sequential callers)")
    os.environ["PREFECT_HOME"] = str(tmp / "prefect")
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.concurrency.asyncio import rate_limit
    from prefect.testing.utilities import prefect_test_harness

    async def prefect_figures() -> tuple[float, int, float]:
        async with get_client() as client:
            for name, rate in (("bench-10", 10), ("bench-fast", 100_000)):
                await client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=int(rate), slot_decay_per_second=rate))
        return await pace_and_cost(lambda: rate_limit("bench-10", strict=True), 50,
                                   lambda: rate_limit("bench-fast", strict=True), 100)

    async def our_figures(url: str | None) -> tuple[float, int, float]:
        # burst 15 -> effective burst 10, the same start as Prefect's limit of 10 slots
        paced, fast = make_limiter(f"bench-10-{url}", 10, 15, url), make_limiter(f"bench-fast-{url}", 1e6, 10**6, url)
        figures = await pace_and_cost(paced.acquire, 50, fast.acquire, 2000)
        await paced.aclose()
        await fast.aclose()
        return figures

    with prefect_test_harness(server_startup_timeout=90):
        figures = [("Prefect rate_limit()", asyncio.run(prefect_figures()))]
    for label, url in (("ours, Redis (GCRA in Lua)", redis_url), ("ours, in-process", None)):
        figures.append((label, asyncio.run(our_figures(url))))
    print(ROW.format("limiter", "rate at 10/s", "most in any 1 s (burst 10 + 10/s: 20); time per acquisition"))
    for label, (rate, most, cost) in figures:
        print(ROW.format(label, f"{rate:.2f}", f"{most}; {cost * 1000:.3f} ms"))


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-deliver-") as name:
        tmp = Path(name)
        redis = RedisServer(tmp)
        try:
            parts = sys.argv[1:] or ["a", "b", "c"]  # e.g. `bench/deliver.py c` runs part (c) only
            if "a" in parts:
                part_a(tmp)
            if "b" in parts:
                part_b(tmp, redis.url)
            if "c" in parts:
                part_c(tmp, redis.url)
        finally:
            for proc in STARTED:
                proc.stop() if isinstance(proc, Sink) else proc.kill()
            redis.stop()


if __name__ == "__main__":
    main()
