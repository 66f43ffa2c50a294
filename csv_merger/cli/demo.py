"""``csv-merger demo``: the main job on the bundled examples, against a local sink.

Starts ``csv-merger sink`` (Clay-like: 10 requests/s, burst 20, 429 above
that) on a free port for the run, runs the ``merge-and-deliver`` flow on
``examples/*.csv`` with Prefect's ephemeral API and the in-process limiter,
prints the summary and what the sink received, and stops the sink. Nothing
to install beyond the package: no server, no Redis.

Ctrl-C and SIGTERM stop it as they stop ``csv-merger run`` (exit 130 / 143, one
line). The sink runs in its own session, tied to this process (as Prefect's
ephemeral API, ``csv_merger.prefect_api``): a signal to the terminal's process
group does not stop it before the demo has asked it what it received, and it
never outlives the demo.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import typer

from csv_merger.cli.app import app
from csv_merger.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SINK_RATE, SINK_BURST = 10, 20  # Clay's webhook limits (BRIEF.md, "Clay facts")


def _start_sink(record: Path) -> tuple[subprocess.Popen, str]:
    """Start ``csv-merger sink`` on a free port (``tied_popen``); return it and its base URL.
    Raises ConfigError when it does not start."""
    from csv_merger.prefect_api import tied_popen

    proc = tied_popen(
        [sys.executable, "-m", "csv_merger", "sink", "--port", "0", "--rate", str(SINK_RATE),
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
    from csv_merger.prefect_api import kill_tied_children

    # First, as in `run`: a stop while the sink and Prefect start ends the demo at once, the sink killed first.
    with GracefulStop(message=STOPPING, interrupt=True, on_early=kill_tied_children) as stop:
        files = sorted(str(p) for p in EXAMPLES.glob("*.csv"))
        if not files:
            raise ConfigError(f"no example CSVs in {EXAMPLES} (run the demo from a clone of the repository)")
        output_dir.mkdir(parents=True, exist_ok=True)
        record = output_dir / "sink-received.jsonl"
        record.unlink(missing_ok=True)
        sink, base = _start_sink(record)
        try:
            print(f"csv-merger demo: {len(files)} example exports -> local sink {base} ({SINK_RATE}/s, "
                  f"burst {SINK_BURST})", flush=True)
            summary, _ = run_pipeline(files, webhook_url=f"{base}/v3/sources/webhook/demo", output=None, stop=stop,
                                      resumable=False, output_dir=str(output_dir.resolve()),
                                      rate_limit=float(SINK_RATE), burst=SINK_BURST, chunk_size=25,
                                      allow_private_targets=True)
            import httpx

            stats = httpx.get(f"{base}/stats", timeout=5).json()
        finally:
            sink.terminate()
            sink.wait(timeout=10)
        print_summary(summary, resumable=False)
        print(f"  sink:         received {stats['accepted']} rows ({stats['distinct_keys']} distinct idempotency "
              f"keys, {stats['rejected_429']} x 429), bodies in {record}")
        if summary.delivery is not None:
            first = json.loads(record.read_text(encoding="utf-8").splitlines()[0])["body"] if stats["accepted"] else {}
            print("  first body:   " + json.dumps(first, ensure_ascii=False)[:300])
        exit_for(summary, stop.signum)
        if stop.signum is not None:  # the stop came as the run ended, too late to cancel it: a script stops too
            raise typer.Exit(stop.exit_code)
