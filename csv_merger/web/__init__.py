"""The web service: upload page and job API (``csv-merger web``)."""

from csv_merger.web.app import create_app

__all__ = ["create_app"]
