"""csv-merger: merge lead-list CSV exports and deliver them to a webhook at the target's rate."""

__version__ = "0.1.0"
