"""The JSON routes under ``/api`` (auth is applied by the app around them)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, SecretStr
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from csv_merger.schema import TableType
from csv_merger.web.errors import ApiError
from csv_merger.web.requests import JobRequest, MergePreviewRequest
from csv_merger.web.service import IGNORE, KEEP, WebService, mappable_fields
from csv_merger.web.uploads import sanitise_filename
from csv_merger.web.window import next_window_start
from tasks.merge import iter_neutralised_csv

MAX_FILES_PER_UPLOAD = 20


class PreviewRequest(BaseModel):
    """Body of ``POST /api/uploads/{id}/preview``."""

    table_type: TableType = "people"
    mapping: dict[str, str] = Field(default_factory=dict)


class PresetRequest(BaseModel):
    """Body of ``POST /api/mappings``: save the upload's mapping (with
    ``mapping`` applied) as preset ``name``."""

    name: str
    upload_id: str
    table_type: TableType = "people"
    mapping: dict[str, str] = Field(default_factory=dict)


class RetryRequest(BaseModel):
    """Body of ``POST /api/jobs/{id}/retry`` (optional): the webhook token again (never kept after a job)."""

    auth_token: SecretStr | None = None


def _all_refused(refused: list[ApiError], left_out: list[dict]) -> ApiError:
    """The error for an upload none of whose files could be kept: a single
    file's own error, or one naming every file and its reason (``left_out``)."""
    if len(refused) == 1:
        return refused[0]
    statuses = {exc.status for exc in refused}
    return ApiError(statuses.pop() if len(statuses) == 1 else 422,
                    f"none of the {len(refused)} files can be merged: " + "; ".join(exc.message for exc in refused),
                    field="files", left_out=left_out)


def build_api(service: WebService) -> APIRouter:
    """Routes bound to ``service``."""
    router = APIRouter()
    settings = service.settings

    @router.get("/config")
    async def config() -> dict:
        window_start = next_window_start(datetime.now(timezone.utc), settings.delivery_window, settings.timezone)
        return {
            "fields": {t: mappable_fields(t) for t in ("people", "company")},
            "mapping_choices": {"ignore": IGNORE, "keep": KEEP},
            "defaults": {"rate": settings.rate_limit, "burst": settings.burst, "chunk_size": settings.chunk_size},
            "upload_limit_bytes": settings.upload_limit_bytes,
            "delivery_window": settings.delivery_window,
            "timezone": settings.timezone,
            "next_window_start": window_start.isoformat(),
            "runner": service.runner.name,
            "ttl_s": settings.chunk_ttl_s,
        }

    @router.post("/uploads", status_code=201)
    async def upload(request: Request) -> dict:
        form = await request.form(max_files=MAX_FILES_PER_UPLOAD)
        table_type = str(form.get("table_type") or "people")
        if table_type not in ("people", "company"):
            raise ApiError(422, f"table_type: {table_type!r} is not 'people' or 'company'", field="table_type")
        files = [item for item in form.getlist("files") if isinstance(item, UploadFile)]
        if not files:
            raise ApiError(422, "files: no file in the upload (multipart field 'files')", field="files")
        previews, refused = [], []
        try:
            for item in files:  # a file that cannot be read is left out, named with its reason; the rest is kept
                try:
                    previews.append(await run_in_threadpool(service.add_upload, item.filename or "", item.file,
                                                            table_type))
                except ApiError as exc:
                    exc.file = exc.file or sanitise_filename(item.filename or "")
                    refused.append(exc)
        finally:
            await form.close()
        left_out = [{"file": exc.file, "error": exc.message} for exc in refused]
        if not previews:
            raise _all_refused(refused, left_out)
        return {"files": previews, "left_out": left_out}

    @router.post("/uploads/{upload_id}/preview")
    async def preview(upload_id: str, body: PreviewRequest) -> dict:
        return await run_in_threadpool(service.preview, upload_id, body.table_type, body.mapping)

    @router.post("/templates", status_code=201)
    async def upload_template(request: Request) -> dict:
        form = await request.form(max_files=1)
        try:
            item = form.get("file")
            if not isinstance(item, UploadFile):
                raise ApiError(422, "file: no template in the upload (multipart field 'file')", field="template")
            table_type = str(form.get("table_type") or "people")
            if table_type not in ("people", "company"):
                raise ApiError(422, f"table_type: {table_type!r} is not 'people' or 'company'", field="table_type")
            return await run_in_threadpool(service.add_template, item.filename or "", item.file, table_type)
        finally:
            await form.close()

    @router.post("/merge-preview")
    async def merge_preview(body: MergePreviewRequest) -> dict:
        return await run_in_threadpool(service.merge_preview, body)

    @router.delete("/uploads/{upload_id}", status_code=204)
    async def delete_upload(upload_id: str) -> None:
        service.delete_upload(upload_id)

    @router.get("/mappings")
    async def list_presets() -> dict:
        return {"presets": await run_in_threadpool(service.list_presets)}

    @router.post("/mappings", status_code=201)
    async def save_preset(body: PresetRequest) -> dict:
        return await run_in_threadpool(service.save_preset, body.name, body.upload_id, body.table_type, body.mapping)

    @router.delete("/mappings/{name}", status_code=204)
    async def delete_preset(name: str) -> None:
        await run_in_threadpool(service.delete_preset, name)

    @router.post("/jobs", status_code=201)
    async def start_job(body: JobRequest) -> dict:
        job = await run_in_threadpool(service.start_job, body)
        return job.view()

    @router.get("/jobs")
    async def list_jobs() -> dict:
        return {"jobs": [job.view() for job in service.jobs.list()]}

    @router.get("/jobs/{job_id}")
    async def get_job(job_id: str) -> dict:
        return service.job(job_id).view()

    @router.post("/jobs/{job_id}/retry", status_code=201)
    async def retry_job(job_id: str, body: RetryRequest | None = None) -> dict:
        token = body.auth_token.get_secret_value() if body and body.auth_token else None
        return (await run_in_threadpool(service.retry_job, job_id, token)).view()

    @router.post("/jobs/{job_id}/cancel")
    async def cancel_job(job_id: str) -> dict:
        job = await run_in_threadpool(service.cancel_job, job_id)
        return job.view()

    @router.get("/jobs/{job_id}/{kind}.csv")
    async def download(job_id: str, kind: Literal["merged", "dead-letter"]) -> StreamingResponse:
        path = service.output(job_id, "merged" if kind == "merged" else "dead_letter")
        # Delivered files keep exact values; a download is opened in spreadsheets.
        return StreamingResponse(iter_neutralised_csv(str(path)), media_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": f'attachment; filename="{job_id}-{kind}.csv"'})

    return router
