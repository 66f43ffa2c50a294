"""End-to-end benchmark: the merge-and-deliver flow against the engines it orchestrates.

Prints, side by side in one run:

1. Orchestration overhead. 20,000 generated rows through the flow (chunks of
   500, Prefect's ephemeral API, in-process limiter set far above what the
   machine can send) against an unlimited local sink, next to the plain
   engines on the same input: ``merge_files`` then ``deliver_csv``.
   Overhead ratio = flow wall time / engines' wall time (target <= 1.15).
2. Pacing. 1,500 rows through the flow against a strict sink at 50/s
   (burst 50, 429 above it) with the flow's limiter at 50/s: wall time of
   the delivery against rows / 50 (target <= 1.05 x + 10 s).

Usage: ``.venv/bin/python bench/e2e.py [--rows 20000] [--strict-rows 1500] [--chunk-size 500]``.
Each part uses a fresh job id, so nothing is skipped as already delivered.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from csv_merger.testing import Sink  # noqa: E402

UNLIMITED_RATE, UNLIMITED_BURST = 1_000_000.0, 10_000  # the limiter never waits
STRICT_RATE = 50


def generate(path: Path, rows: int, seed: int = 1) -> None:
    """``rows`` distinct people in an Apollo-like export (UTF-8, comma)."""
    rnd = random.Random(seed)
    titles = ["VP of Sales", "CTO", "Account Executive", "Head of Growth", "SDR"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["First Name", "Last Name", "Title", "Company", "Email", "Person Linkedin Url", "City", "Zip"])
        for i in range(rows):
            company = f"company{i % 997}"
            w.writerow([f"First{i}", f"Last{i}", rnd.choice(titles), company.title(), f"p{i}@{company}.com",
                        f"https://www.linkedin.com/in/person-{i}", "Boston", f"{rnd.randint(0, 99999):05d}"])


def flow_run(files: list[str], url: str, out: Path, rate: float, burst: int, chunk: int):
    from flows.merge_and_deliver import merge_and_deliver

    started = time.perf_counter()
    summary = merge_and_deliver(files, webhook_url=url, rate_limit=rate, burst=burst, chunk_size=chunk,
                                output_dir=str(out), allow_private_targets=True)
    return time.perf_counter() - started, summary


def engines_run(files: list[str], url: str, out: Path, rate: float, burst: int):
    from tasks.deliver import DeliveryConfig, deliver_csv
    from tasks.merge import merge_files

    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    report = merge_files(files, out / "merged.csv")
    merged_s = time.perf_counter() - started
    summary = deliver_csv(out / "merged.csv", DeliveryConfig(webhook_url=url, rate=rate, burst=burst,
                                                             job_id=f"bench-engine-{time.time_ns()}",
                                                             allow_private_targets=True))
    return time.perf_counter() - started, merged_s, report, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--strict-rows", type=int, default=1_500)
    ap.add_argument("--chunk-size", type=int, default=500)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    os.environ["CSV_MERGER_DATA_DIR"] = str(tmp / "data")
    big, small = tmp / "leads.csv", tmp / "strict.csv"
    generate(big, args.rows)
    generate(small, args.strict_rows, seed=2)

    from flows.merge_and_deliver import merge_and_deliver

    t0 = time.perf_counter()
    merge_and_deliver([str(small)], output_dir=str(tmp / "warmup"))  # starts the ephemeral API once
    print(f"warm-up (ephemeral Prefect API start + one merge-only run): {time.perf_counter() - t0:.1f} s\n")

    sink = Sink(tmp, record=None)
    try:
        flow_s, fs = flow_run([str(big)], sink.base + "/flow", tmp / "flow", UNLIMITED_RATE, UNLIMITED_BURST,
                              args.chunk_size)
        eng_s, merge_s, report, es = engines_run([str(big)], sink.base + "/engine", tmp / "engine",
                                                 UNLIMITED_RATE, UNLIMITED_BURST)
        stats = sink.stats()
    finally:
        sink.stop()
    d = fs.delivery
    print(f"1. {args.rows:,} rows, unlimited sink (accepted {stats['accepted']:,}, duplicates {stats['duplicate_keys']})")
    print(f"   {'':34}{'wall s':>8}{'rows/s':>9}{'delivered':>11}")
    label = f"flow ({fs.chunks} chunk tasks of {args.chunk_size})"
    print(f"   {label:34}{flow_s:8.1f}{d.delivered / flow_s:9.0f}{d.delivered:11,}")
    print(f"   {'engines alone (merge + deliver)':34}{eng_s:8.1f}{es.delivered / eng_s:9.0f}{es.delivered:11,}")
    print(f"   of which merge {merge_s:.1f} s ({report.rows_out:,} rows); flow delivery phase {d.elapsed_s:.1f} s "
          f"vs engine {es.elapsed_s:.1f} s")
    print(f"   overhead ratio flow / engines = {flow_s / eng_s:.2f} (target <= 1.15)\n")

    sink = Sink(tmp, record=None, rate=STRICT_RATE, burst=STRICT_RATE)
    try:
        strict_s, ss = flow_run([str(small)], sink.base + "/strict", tmp / "strict", STRICT_RATE, STRICT_RATE,
                                args.chunk_size)
        stats = sink.stats()
    finally:
        sink.stop()
    ideal = args.strict_rows / STRICT_RATE
    d = ss.delivery
    print(f"2. {args.strict_rows:,} rows, strict sink {STRICT_RATE}/s burst {STRICT_RATE}, flow limiter {STRICT_RATE}/s")
    print(f"   rows / rate = {ideal:.1f} s; flow delivery phase {d.elapsed_s:.1f} s = {d.elapsed_s / ideal:.3f} x; "
          f"whole flow run {strict_s:.1f} s (target <= {1.05 * ideal + 10:.1f} s)")
    print(f"   delivered {d.delivered:,}, 429s {stats['rejected_429']}, sink accepted {stats['accepted']:,}")


if __name__ == "__main__":
    main()
