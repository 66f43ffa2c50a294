"""Bodies of the job API's requests (``POST /api/merge-preview``, ``POST /api/jobs``), validated by
pydantic as they arrive; a refusal names the field (``app._invalid``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_core import PydanticCustomError

from csv_merger.schema import TableType
from csv_merger.web.errors import OWN_WORDS
from tasks.deliver.job import rate_problem


class MergePreviewRequest(BaseModel):
    """Body of ``POST /api/merge-preview``: the files, mapping and payload shape of a job to be."""

    uploads: list[str] = Field(min_length=1, description="upload ids, in merge order")
    table_type: TableType = "people"
    mapping: dict[str, str] = Field(default_factory=dict, description="header -> canonical field | ignore | keep")
    payload: Literal["flat", "seed", "template"] = "flat"
    template: str | None = Field(None, description="id of an uploaded jinja2 template (payload 'template')")
    webhook_url: str | list[str] | None = Field(None, description="destination(s) in rollover order (one per line)")


class JobRequest(MergePreviewRequest):
    """Body of ``POST /api/jobs``. Rates in requests/s; ``None`` = the setting's default."""

    mode: Literal["deliver", "merge_only"] = "deliver"
    dry_run: bool = False
    auth_token: SecretStr | None = None
    rate: float | None = Field(None, le=10_000)  # requests/s; its floor: tasks.deliver.job.MIN_RATE says why
    burst: int | None = Field(None, ge=1, le=100_000)
    chunk_size: int | None = Field(None, ge=1, le=1_000_000)
    schedule: Literal["now", "off_hours"] = "now"

    @field_validator("rate")
    @classmethod
    def _rate_as_the_cli_says(cls, rate: float | None) -> float | None:
        """A rate below the floor (or not a number) is refused in the CLI's words (``rate_problem``)."""
        problem = None if rate is None else rate_problem(rate)
        if problem:
            raise PydanticCustomError(OWN_WORDS, problem)
        return rate
