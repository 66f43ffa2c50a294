"""Pipeline stages: plain functions (no Prefect import) plus the Prefect tasks that wrap them."""
