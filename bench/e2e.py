"""End-to-end benchmark: the merge-and-deliver flow (delivery consumers) against the engines it orchestrates.

Prints, side by side in one run (parts chosen with ``--parts``):

overhead  Unlimited local sink, 20,000 and 100,000 generated rows (chunks of
          500): the flow on Prefect's ephemeral API next to the plain engines
          on the same input (``merge_files``, then one delivery of every row with
          the lead index, as ``csv-merger deliver`` does: one engine, no chunks). Ratio = flow wall time / engines' wall time (target
          <= 1.10); the flow's task-run count, which no longer grows with chunks.
fanout    A local ``prefect server`` (SQLite), Redis, two ``prefect worker``
          processes, a strict sink at 10/s burst 20 (429 above it), 600 rows
          fanned out (chunks of 50): accepted rate after the burst / 10
          (target >= 0.98), 429s, duplicates, consumer runs.
million   1,000,000 rows x 12 columns against an unlimited sink, once on the
          ephemeral API (the flow in this process) and once fanned out on a
          ``prefect server`` with two workers: wall time split merge / chunk /
          deliver, every row once, "database is locked" in any log, and the
          peak memory (RSS) of every process of the run (target <= 1.5 GB).

Usage: ``.venv/bin/python bench/e2e.py [--parts overhead,fanout] [--rows 20000,100000] [--million-rows N]
[--million-modes ephemeral,server]``.
``million`` is not in the default parts (about an hour on a 2-core machine). Needs redis-server
for ``fanout`` and ``million``. Each run uses a fresh job id, so nothing is skipped as delivered.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from csv_merger.testing import PrefectServer, RedisServer, Sink  # noqa: E402

UNLIMITED_RATE, UNLIMITED_BURST = 1_000_000.0, 10_000  # the limiter never waits
HEADER = ["First Name", "Last Name", "Title", "Company", "Email", "Person Linkedin Url", "City", "State", "Country",
          "Phone", "Industry", "Zip"]


def generate(path: Path, rows: int, seed: int = 1) -> None:
    """``rows`` distinct people in an Apollo-like export (UTF-8, comma, 12 columns)."""
    rnd = random.Random(seed)
    titles = ["VP of Sales", "CTO", "Account Executive", "Head of Growth", "SDR"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for i in range(rows):
            company = f"company{i % 997}"
            w.writerow([f"First{i}", f"Last{i}", rnd.choice(titles), company.title(), f"p{i}@{company}.com",
                        f"https://www.linkedin.com/in/person-{i}", "Boston", "MA", "US", f"+1 617 555 {i % 10000:04d}",
                        "Software", f"{rnd.randint(0, 99999):05d}"])


class PeakMemory:
    """Samples the RSS of this process and every process below it (workers' flow runs included)
    twice a second; ``peaks`` maps "name pid" -> the largest RSS seen, in bytes."""

    def __init__(self, extra_pids: list[int] = ()):
        import psutil

        self.psutil, self.extra = psutil, list(extra_pids)
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = self.psutil.Process()
        while not self._stop.wait(0.5):
            procs = [me, *me.children(recursive=True)]
            for pid in self.extra:
                try:
                    extra = self.psutil.Process(pid)
                    procs += [extra, *extra.children(recursive=True)]
                except self.psutil.NoSuchProcess:
                    pass
            for p in procs:
                try:
                    name = " ".join(p.cmdline()[1:4])[-60:] or p.name() or "(no name)"
                    key = f"{name} [{p.pid}, parent {p.ppid()}]"  # a fork shows its parent's pages as its own
                    self.peaks[key] = max(self.peaks.get(key, 0), p.memory_info().rss)
                except (self.psutil.NoSuchProcess, self.psutil.AccessDenied):
                    pass

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def report(self, top: int = 6) -> str:
        rows = sorted(self.peaks.items(), key=lambda kv: -kv[1])[:top]
        return "\n".join(f"     {rss / 2**20:8.0f} MiB  {name}" for name, rss in rows)


def task_times(flow_run_id: str) -> dict[str, float]:
    """Seconds per task name of a flow run (summed over runs of the same task), from the API in use."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def read():
        async with get_client() as client:
            return await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))

    times: dict[str, float] = {}
    for run in asyncio.run(read()):
        name = run.name.split("-")[0] if run.name.startswith("consumer-") else run.task_key.split("-")[0]
        if run.start_time and run.end_time:
            times[name] = times.get(name, 0.0) + (run.end_time - run.start_time).total_seconds()
    return times


def task_run_count(flow_run_id: str) -> int:
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def read():
        async with get_client() as client:
            return len(await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))))
    return asyncio.run(read())


def flow_run(files: list[str], url: str, out: Path, chunk: int, rate: float = UNLIMITED_RATE,
             burst: int = UNLIMITED_BURST):
    from flows.merge_and_deliver import merge_and_deliver

    started = time.perf_counter()
    summary = merge_and_deliver(files, webhook_url=url, rate_limit=rate, burst=burst, chunk_size=chunk,
                                output_dir=str(out), allow_private_targets=True, job_id=f"bench-{time.time_ns()}")
    return time.perf_counter() - started, summary


def engines_run(files: list[str], url: str, out: Path):
    """The engines alone: ``merge_files``, then one ``NewLeadDelivery`` over every row (what
    ``csv-merger deliver`` runs: the lead index included, no chunks, no Prefect)."""
    import asyncio
    import functools

    from tasks.deliver import DeliveryConfig, read_merged_csv
    from tasks.deliver.new_leads import deliver_new_leads
    from tasks.merge import merge_files
    from tasks.merge.dedupe import lead_identities

    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    merge_files(files, out / "merged.csv", neutralise_formulas=False)
    config = DeliveryConfig(webhook_url=url, rate=UNLIMITED_RATE, burst=UNLIMITED_BURST, row_ceiling=0,
                            job_id=f"bench-engine-{time.time_ns()}", allow_private_targets=True)
    rows = list(read_merged_csv(out / "merged.csv"))
    summary = asyncio.run(deliver_new_leads(rows, config, functools.partial(lead_identities, table_type="people")))
    return time.perf_counter() - started, summary


def part_overhead(tmp: Path, sizes: list[int], chunk: int) -> None:
    print(f"overhead: unlimited sink, chunks of {chunk}, ephemeral API")
    print(f"   {'rows':>9}{'chunks':>8}{'task runs':>11}{'flow s':>9}{'engines s':>11}{'flow/engines':>14}"
          f"{'dups':>6}")
    for rows in sizes:
        src = tmp / f"leads-{rows}.csv"
        generate(src, rows)
        sink = Sink(tmp, record=None)
        try:
            flow_s, fs = flow_run([str(src)], sink.base + "/flow", tmp / f"flow-{rows}", chunk)
            eng_s, es = engines_run([str(src)], sink.base + "/engine", tmp / f"engine-{rows}")
            stats = sink.stats()
        finally:
            sink.stop()
        assert fs.delivery.delivered == es.delivered == rows, (fs.delivery, es)
        print(f"   {rows:>9,}{fs.chunks:>8}{task_run_count(fs.flow_run_id):>11}{flow_s:>9.1f}{eng_s:>11.1f}"
              f"{flow_s / eng_s:>14.2f}{stats['duplicate_keys']:>6}")
    print("   target: flow/engines <= 1.10\n")


def _server_with_workers(tmp: Path, redis_url: str, workers: int = 2):
    server = PrefectServer(tmp)
    env = {**server.env, "WORKER_COUNT": str(workers), "WORK_POOL": "bench", "REDIS_URL": redis_url}
    subprocess.run([sys.executable, "-m", "deployments.setup"], env=env, cwd=REPO, check=True, capture_output=True)
    procs = [subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool", "bench", "--type",
                               "process", "--name", f"w{n}", "--limit", "1"], env=env, cwd=tmp,
                              stdout=open(tmp / f"worker{n}.log", "w"), stderr=subprocess.STDOUT)
             for n in range(1, workers + 1)]
    return server, env, procs


def _stop(server, procs) -> None:
    """Stop the workers (SIGKILL, with their flow runs, one still there after 30 s: Prefect's worker sometimes
    hangs in its own shutdown), then the server."""
    import psutil

    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            for proc in [*psutil.Process(p.pid).children(recursive=True), psutil.Process(p.pid)]:
                proc.kill()
            p.wait(timeout=30)
    server.stop()


def _cli_run(env: dict, tmp: Path, src: Path, url: str, name: str, rate: float, burst: int, chunk: int,
             redis_url: str) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "csv_merger", "run", str(src), "--webhook-url", url,
                           "--allow-private-targets", "--rate", str(rate), "--burst", str(burst), "--chunk-size",
                           str(chunk), "--fan-out", "--redis-url", redis_url, "--output-dir", str(tmp / name), "-q"],
                          env=env, cwd=tmp, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"run --fan-out failed ({proc.returncode}): {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return time.perf_counter() - started, proc.stdout


def part_fanout(tmp: Path, rows: int) -> None:
    rate, burst = 10, 20
    src = tmp / "fanout.csv"
    generate(src, rows, seed=3)
    redis = RedisServer(tmp)
    server, env, workers = _server_with_workers(tmp, redis.url)
    sink = Sink(tmp, rate=rate, burst=burst)
    try:
        wall, _ = _cli_run(env, tmp, src, sink.url, "fanout", rate, burst, 50, redis.url)
        stats, times = sink.stats(), sorted(r["t"] for r in sink.records())
    finally:
        sink.stop()
        _stop(server, workers)
        redis.stop()
    after_burst = (len(times) - burst) / (times[-1] - times[0])
    print(f"fanout: {rows} rows, 2 workers (one consumer run each), strict sink {rate}/s burst {burst}")
    print(f"   accepted {stats['accepted']}, distinct {stats['distinct_keys']}, duplicates {stats['duplicate_keys']},"
          f" 429s {stats['rejected_429']}; whole run {wall:.1f} s")
    print(f"   accepted rate after the burst {after_burst:.2f}/s = {after_burst / rate:.3f} of {rate}/s "
          f"(target >= 0.98)\n")


def _locked(*logs: Path) -> int:
    return sum(p.read_text(errors="replace").count("database is locked") for p in logs if p.exists())


def part_million(tmp: Path, rows: int, chunk: int, modes: list[str]) -> None:
    src = tmp / "million.csv"
    t0 = time.perf_counter()
    generate(src, rows, seed=4)
    print(f"million: {rows:,} rows x {len(HEADER)} columns generated in {time.perf_counter() - t0:.0f} s "
          f"({src.stat().st_size / 2**20:.0f} MiB); chunks of {chunk}, unlimited sink")
    if "ephemeral" in modes:
        _million_ephemeral(tmp, src, chunk)
    if "server" in modes:
        _million_server(tmp, src, chunk)
    print("   target: every row once, no 'database is locked', peak RSS of any process <= 1.5 GB\n")


def _million_ephemeral(tmp: Path, src: Path, chunk: int) -> None:
    sink = Sink(tmp, record=None)
    try:
        with PeakMemory([sink.proc.pid]) as mem:
            wall, fs = flow_run([str(src)], sink.base + "/ephemeral", tmp / "m-ephemeral", chunk)
        split = task_times(fs.flow_run_id)
        stats = sink.stats()
    finally:
        sink.stop()
    d = fs.delivery
    print(f"   ephemeral API: {wall:.0f} s = merge {split.get('merge', 0):.0f} + chunk "
          f"{split.get('chunk', 0) + split.get('queue', 0):.0f} + deliver {d.elapsed_s:.0f} (+ Prefect);"
          f" {fs.chunks} chunks, {task_run_count(fs.flow_run_id)} task runs")
    print(f"   delivered {d.delivered:,}, failed {d.failed}, sink distinct {stats['distinct_keys']:,}, "
          f"duplicates {stats['duplicate_keys']}; peak RSS per process:")
    print(mem.report())


def _million_server(tmp: Path, src: Path, chunk: int) -> None:
    redis = RedisServer(tmp)
    server, env, workers = _server_with_workers(tmp, redis.url)
    sink = Sink(tmp, record=None)
    try:
        with PeakMemory([sink.proc.pid, server.proc.pid, *(w.pid for w in workers)]) as mem:
            wall, out = _cli_run(env, tmp, src, sink.base + "/server", "m-server", UNLIMITED_RATE, UNLIMITED_BURST,
                                 chunk, redis.url)
        stats = sink.stats()
    finally:
        sink.stop()
        _stop(server, workers)
        redis.stop()
    import json

    summary = json.loads((tmp / "m-server" / "summary.json").read_text())
    locked = _locked(server.log, *tmp.glob("worker*.log"))
    print(f"   prefect server (SQLite) + 2 workers: {wall:.0f} s = merge {summary['report']['elapsed_s']:.0f} + "
          f"deliver {summary['delivery']['elapsed_s']:.0f} (+ chunk, Prefect); {summary['chunks']} chunks")
    print(f"   delivered {summary['delivery']['delivered']:,}, failed {summary['delivery']['failed']}, sink distinct "
          f"{stats['distinct_keys']:,}, duplicates {stats['duplicate_keys']}; 'database is locked': {locked}")
    print(f"   {out.strip().splitlines()[-1] if out.strip() else ''}")
    print(mem.report())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="overhead,fanout", help="comma-separated: overhead, fanout, million")
    ap.add_argument("--rows", default="20000,100000", help="row counts for the overhead part")
    ap.add_argument("--fanout-rows", type=int, default=600)
    ap.add_argument("--million-rows", type=int, default=1_000_000)
    ap.add_argument("--million-modes", default="ephemeral,server",
                    help="comma-separated: ephemeral (the flow in this process), server (prefect server + 2 workers)")
    ap.add_argument("--chunk-size", type=int, default=500)
    args = ap.parse_args()
    parts = args.parts.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    os.environ["CSV_MERGER_DATA_DIR"] = str(tmp / "data")
    os.environ["CSV_MERGER_ROW_CEILING"] = "0"  # a passthrough table: no 50,000-submission ceiling per webhook

    from flows.merge_and_deliver import merge_and_deliver

    warm = tmp / "warm.csv"
    generate(warm, 10)
    t0 = time.perf_counter()
    merge_and_deliver([str(warm)], output_dir=str(tmp / "warmup"))  # starts the ephemeral API once
    print(f"warm-up (ephemeral Prefect API start + one merge-only run): {time.perf_counter() - t0:.1f} s\n")
    if "overhead" in parts:
        part_overhead(tmp, [int(n) for n in args.rows.split(",")], args.chunk_size)
    if "fanout" in parts:
        part_fanout(tmp, args.fanout_rows)
    if "million" in parts:
        part_million(tmp, args.million_rows, args.chunk_size, args.million_modes.split(","))


if __name__ == "__main__":
    main()
