"""Prefect flows: the pipeline read aloud (merge -> chunk -> consumers deliver the chunks -> summarise)."""

import os

# Called from Python (not the CLI), Prefect's ephemeral server would try to send
# telemetry from machines that often have no internet: an error on every start.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
