# One image for every Railway service (Prefect server, workers, web); each service sets its start command
# (railway/*.json). Build: docker build -t csv-merger .
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DO_NOT_TRACK=1 \
    PREFECT_SERVER_ANALYTICS_ENABLED=false \
    PREFECT_HOME=/data/prefect \
    CSV_MERGER_DATA_DIR=/data/csv-merger \
    CSV_MERGER_INBOX_DIR=/data/inbox

WORKDIR /app
# Dependencies first (cached while only the code changes).
COPY pyproject.toml README.md ./
RUN mkdir -p csv_merger tasks flows deployments && touch csv_merger/__init__.py tasks/__init__.py \
        flows/__init__.py deployments/__init__.py \
    && pip install . && pip uninstall -y csv-merger
COPY csv_merger csv_merger
COPY tasks tasks
COPY flows flows
COPY deployments deployments
COPY ui_static ui_static
COPY examples examples
COPY prefect.yaml ./
# Editable: deployments point workers at /app/flows/*.py, the same files the package imports.
RUN pip install --no-deps -e . \
    && useradd --create-home app && mkdir -p /data && chown app /data
USER app

EXPOSE 8000
CMD ["csv-merger", "web", "--host", "0.0.0.0"]
