"""Prefect flows: the pipeline read aloud (merge -> chunk -> consumers deliver the chunks -> summarise)."""

from csv_merger.settings import set_prefect_defaults

# Called from Python (not the CLI): no telemetry, and time for the ephemeral API to start.
set_prefect_defaults()
