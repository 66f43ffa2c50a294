"""``csv-merger demo``: the main job on the bundled examples, against a local sink.

Starts ``csv-merger sink`` (Clay-like: 10 requests/s, burst 20, 429 above
that) on a free port for the run, runs the ``merge-and-deliver`` flow on
``examples/*.csv`` with Prefect's ephemeral API and the in-process limiter,
prints the summary and what the sink received, and stops the sink. Nothing
to install beyond the package: no server, no Redis.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import typer

from csv_merger.cli.app import app
from csv_merger.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SINK_RATE, SINK_BURST = 10, 20  # Clay's webhook limits (BRIEF.md, "Clay facts")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_sink(record: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "csv_merger", "sink", "--port", str(_free_port()), "--rate", str(SINK_RATE),
         "--burst", str(SINK_BURST), "--record", str(record)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # "sink listening on URL"
    if not line.startswith("sink listening on "):
        proc.kill()
        raise ConfigError(f"the local sink did not start: {line.strip() or proc.stderr.read().strip()}")
    return proc, line.split()[-1]


@app.command()
def demo(
    output_dir: Path = typer.Option(Path(".csv-merger/demo"), "--output-dir", help="Where the merged CSV and reports go."),
) -> None:
    """Merge the bundled example exports and deliver them to a local Clay-like sink (10/s, burst 20)."""
    from csv_merger.cli.run import STOPPING, exit_for, print_summary, run_pipeline
    from csv_merger.cli.stopping import GracefulStop

    files = sorted(str(p) for p in EXAMPLES.glob("*.csv"))
    if not files:
        raise ConfigError(f"no example CSVs in {EXAMPLES} (run the demo from a clone of the repository)")
    output_dir.mkdir(parents=True, exist_ok=True)
    record = output_dir / "sink-received.jsonl"
    record.unlink(missing_ok=True)
    sink, base = _start_sink(record)
    try:
        print(f"csv-merger demo: {len(files)} example exports -> local sink {base} ({SINK_RATE}/s, burst {SINK_BURST})",
              flush=True)
        with GracefulStop(message=STOPPING) as stop:
            summary, signum = run_pipeline(files, webhook_url=f"{base}/v3/sources/webhook/demo", output=None,
                                           stop=stop, output_dir=str(output_dir.resolve()), rate_limit=float(SINK_RATE),
                                           burst=SINK_BURST, chunk_size=25, allow_private_targets=True)
        import httpx

        stats = httpx.get(f"{base}/stats", timeout=5).json()
    finally:
        sink.terminate()
        sink.wait(timeout=10)
    print_summary(summary)
    print(f"  sink:         received {stats['accepted']} rows ({stats['distinct_keys']} distinct idempotency keys, "
          f"{stats['rejected_429']} x 429), bodies in {record}")
    if summary.delivery is not None:
        first = json.loads(record.read_text(encoding="utf-8").splitlines()[0])["body"] if stats["accepted"] else {}
        print("  first body:   " + json.dumps(first, ensure_ascii=False)[:300])
    exit_for(summary, signum)
