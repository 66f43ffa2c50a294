"""What the web API does, without HTTP: uploads, previews, jobs, expiry.

``WebService`` owns the upload store, the job store and the runner (embedded
flow or Prefect deployment). Every expected failure is an ``ApiError`` that
names the file or field; server paths never appear in a message.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Literal
from urllib.parse import urlsplit


from csv_merger.errors import ConfigError, CsvMergerError, InputError, RedisUnavailableError
from csv_merger.schema import TableType, fields_for
from csv_merger.settings import Settings
from csv_merger.web.errors import ApiError
from csv_merger.web.jobs import Job, JobActive, JobStatus, JobStore
from csv_merger.web.merge_preview import merge_preview
from csv_merger.web.preview import preview_file
from csv_merger.web.requests import JobRequest, MergePreviewRequest
from csv_merger.web.flow_request import FlowRequest
from csv_merger.web.runners import DEPLOYMENT, make_runner, prefect_api_url_setting
from csv_merger.web.retry import start_retry
from csv_merger.web.targets import checked_webhooks, destination_capacity
from csv_merger.web.uploads import Upload, UploadStore, UploadTooLarge, link_input
from csv_merger.web.window import next_window_start
from tasks.merge import IGNORE, KEEP
from tasks.merge.reading import EMPTY_FILE, no_rows_reason
from tasks.merge.headers import ColumnMapping
from tasks.merge.headers.presets import Preset, PresetStore, frozen_mapping


def mappable_fields(table_type: TableType) -> list[str]:
    """Canonical fields a column may be mapped to ("Source" is written by the merge itself)."""
    return [f for f in fields_for(table_type) if f != "Source"]


def _preset_view(preset: Preset) -> dict:
    return {"name": preset.name, "table_type": preset.table_type, "headers": preset.headers,
            "fingerprint": preset.fingerprint, "mapping": preset.mapping}


class WebService:
    """Uploads, previews and jobs for one server process."""

    def __init__(self, settings: Settings, *, allow_private_targets: bool = False,
                 prefect_api_url: str | None = None, embedded: bool = False, deployment: str = DEPLOYMENT):
        self.settings = settings
        self.allow_private_targets = allow_private_targets
        self.root = Path(settings.data_dir).resolve() / "web"
        self.uploads = UploadStore(self.root / "uploads", settings.upload_limit_bytes, settings.chunk_ttl_s)
        self.presets = PresetStore(settings.mappings_dir or settings.data_dir / "mappings")
        self.jobs_root = self.root / "jobs"
        self.jobs_root.mkdir(parents=True, exist_ok=True)
        self.jobs = JobStore()
        self.requests: dict[str, FlowRequest] = {}  # each job's flow request, token removed: for "retry failed rows"
        self.prefect_api_url = prefect_api_url or prefect_api_url_setting()
        self.runner = make_runner(self.jobs, None if embedded else self.prefect_api_url, deployment)

    # Uploads -----------------------------------------------------------------

    def _save(self, filename: str, data: BinaryIO, field: str) -> Upload:
        try:
            return self.uploads.save(filename, data)
        except UploadTooLarge as exc:
            raise ApiError(413, f"{exc.name}: file is larger than the upload limit of {exc.limit:,} bytes "
                                "(CSV_MERGER_UPLOAD_LIMIT_BYTES)", file=exc.name, field=field) from None

    def add_upload(self, filename: str, data: BinaryIO, table_type: TableType) -> dict:
        """Store one uploaded file and return its preview; a file that cannot be read is not kept."""
        upload = self._save(filename, data, "files")
        try:
            preview = self._preview(upload, table_type, {})
            if not preview["columns"]:
                raise ApiError(422, f"{upload.name}: {EMPTY_FILE} (no header, no rows): nothing to merge",
                               file=upload.name)
        except ApiError:
            self.uploads.delete(upload.id)
            raise
        return preview

    def add_template(self, filename: str, data: BinaryIO, table_type: TableType) -> dict:
        """Store a jinja2 payload template (``{id, name, size}``); one that does not compile is not kept."""
        upload = self._save(filename, data, "template")
        try:
            _check_template(upload, table_type)
        except ApiError:
            self.uploads.delete(upload.id)
            raise
        return {"id": upload.id, "name": upload.name, "size": upload.size}

    def merge_preview(self, request: MergePreviewRequest) -> dict:
        """What the job would merge and send (``merge_preview.merge_preview``), without sending anything."""
        uploads = [self._upload(upload_id) for upload_id in request.uploads]
        mapping = self.check_mapping(request.mapping, request.table_type)
        payload = self._payload(request)
        settings = self.settings
        with self._named_errors(*uploads):
            preview = merge_preview([u.path for u in uploads], request.table_type, mapping,
                                    str(payload.path) if isinstance(payload, Upload) else payload,
                                    self.root / "previews", settings.payload_limit_bytes, settings.row_ceiling)
        with contextlib.suppress(ApiError, ConfigError, RedisUnavailableError):  # no usable URL yet: capacity unknown
            capacity = destination_capacity(checked_webhooks(request.webhook_url, self.allow_private_targets), settings)
            preview.update(destination_capacity=capacity["left"], destinations=capacity["destinations"])
        return preview

    def _payload(self, request: MergePreviewRequest) -> str | Upload:
        """"flat", "seed", or the template upload (422 on ``template`` when missing)."""
        if request.payload != "template":
            return request.payload
        if not request.template:
            raise ApiError(422, "template: upload a jinja2 template (.j2) for the 'template' payload",
                           field="template")
        template = self.uploads.get(request.template)
        if template is None:
            raise ApiError(404, f"template {request.template!r} not found (it may have expired)", field="template")
        _check_template(template, request.table_type)  # the id may name any upload, not only a template
        return template

    def preview(self, upload_id: str, table_type: TableType, mapping: dict[str, str]) -> dict:
        """The upload's preview with the mapping overrides applied."""
        return self._preview(self._upload(upload_id), table_type, self.check_mapping(mapping, table_type))

    def delete_upload(self, upload_id: str) -> None:
        """Remove an upload; 404 when it is unknown or expired."""
        if not self.uploads.delete(upload_id):
            raise ApiError(404, f"upload {upload_id!r} not found (it may have expired)", field="uploads")

    # Mapping presets --------------------------------------------------------

    def save_preset(self, name: str, upload_id: str, table_type: TableType, mapping: dict[str, str]) -> dict:
        """Save the upload's mapping as it is now shown (``mapping`` applied)
        as preset ``name`` for files with its headers; 422 for a bad name or
        headers another preset already covers."""
        preview = self.preview(upload_id, table_type, mapping)
        columns = [ColumnMapping(c["index"], c["header"], c["field"], c["how"]) for c in preview["columns"]]
        try:
            preset = self.presets.save(name, [c.header for c in columns], frozen_mapping(columns), table_type)
        except ConfigError as exc:
            raise ApiError(422, str(exc).replace(str(self.presets.root), "the preset folder"), field="name") from None
        return _preset_view(preset)

    def list_presets(self) -> list[dict]:
        """Every saved preset (name, table type, headers, fingerprint)."""
        try:
            return [_preset_view(p) for p in self.presets.all()]
        except ConfigError as exc:
            raise ApiError(500, str(exc).replace(str(self.presets.root), "the preset folder")) from None

    def delete_preset(self, name: str) -> None:
        """Delete preset ``name``; 404 when there is none."""
        try:
            self.presets.delete(name)
        except ConfigError as exc:
            raise ApiError(404, str(exc).replace(str(self.presets.root), "the preset folder"), field="name") from None

    def check_mapping(self, mapping: dict[str, str], table_type: TableType) -> dict[str, str]:
        """Validate overrides: each value is a mappable field of ``table_type``, ``ignore`` or ``keep``."""
        fields = mappable_fields(table_type)
        for header, target in mapping.items():
            if target not in fields and target not in (IGNORE, KEEP):
                raise ApiError(
                    422,
                    f"mapping for column {header!r}: {target!r} is not a canonical {table_type} field "
                    f"(choose one of {', '.join(fields)}, or '{IGNORE}' or '{KEEP}')",
                    field=f"mapping.{header}",
                )
        return dict(mapping)

    def _upload(self, upload_id: str) -> Upload:
        upload = self.uploads.get(upload_id)
        if upload is None:
            raise ApiError(404, f"upload {upload_id!r} not found (it may have expired)", field="uploads")
        return upload

    def _preview(self, upload: Upload, table_type: TableType, mapping: dict[str, str]) -> dict:
        with self._named_errors(upload):
            preview = preview_file(upload.path, table_type, mapping, self.presets.root)
        return {"id": upload.id, "name": upload.name, "size": upload.size, **preview}

    @contextlib.contextmanager
    def _named_errors(self, *uploads: Upload) -> Iterator[None]:
        """Turn reader/mapper errors into a 422 naming the upload (never its server path)."""
        def scrub(text: str) -> str:
            for upload in uploads:
                text = text.replace(str(upload.path), upload.name)
            return text

        try:
            yield
        except InputError as exc:
            name = next((u.name for u in uploads if str(u.path) == exc.path), uploads[0].name)
            shown = scrub(exc.path) if scrub(exc.path) != exc.path else name  # several uploads: every name
            where = f", line {exc.line}" if exc.line else ""
            raise ApiError(422, f"{shown}{where}: {scrub(exc.reason)}", file=name) from None
        except ConfigError as exc:
            prefix = f"{uploads[0].name}: " if len(uploads) == 1 else ""
            raise ApiError(422, prefix + scrub(str(exc)), file=uploads[0].name if prefix else None,
                           field="mapping") from None

    # Jobs --------------------------------------------------------------------

    def start_job(self, request: JobRequest) -> Job:
        """Validate a job request, then start or schedule its flow run.

        The same uploads + target + mapping (see ``job_key``) are the same
        job: 409 while such a job has not ended; started again after it
        ended, it resumes on the same ledger (rows delivered are skipped).
        Uploads with no data row at all are refused (422 naming them).
        """
        settings = self.settings
        uploads = [self._upload(upload_id) for upload_id in request.uploads]
        mapping = self.check_mapping(request.mapping, request.table_type)
        payload = self._payload(request) if request.mode == "deliver" else "flat"
        urls = checked_webhooks(request.webhook_url, self.allow_private_targets) if request.mode == "deliver" else []
        webhook_url = (urls[0] if len(urls) == 1 else urls) or None  # one URL: the job key it always had
        self._check_has_rows(uploads)
        scheduled_for = self._window_start() if request.schedule == "off_hours" else None
        key = job_key(request, mapping, webhook_url)
        try:
            job = self.jobs.add(
                key=key, mode=request.mode, runner=self.runner.name, table_type=request.table_type,
                files=[u.name for u in uploads], target=urlsplit(urls[0]).hostname if urls else None,
                dry_run=request.dry_run and bool(urls),
                rate=request.rate or settings.rate_limit, burst=request.burst or settings.burst,
                chunk_size=request.chunk_size or settings.chunk_size, scheduled_for=scheduled_for,
                payload=payload.name if isinstance(payload, Upload) else payload,
                status=JobStatus.SCHEDULED if scheduled_for else JobStatus.PENDING,
            )
        except JobActive as exc:
            raise ApiError(409, f"job {exc.job.id} with the same files, target and mapping is "
                                f"{exc.job.status.value.lower()}: wait for it to end or cancel it "
                                "(started again after it ended, it resumes: delivered rows are not sent twice)",
                           field="job") from None
        job_dir = self.jobs_root / job.id
        flow_request = FlowRequest(
            job_id=job.id,
            ledger_id=key,
            files=[str(link_input(u, job_dir / "inputs")) for u in uploads],
            output_dir=str(job_dir / "out"),
            webhook_url=webhook_url,
            table_type=request.table_type,
            rate_limit=job.rate, burst=job.burst, chunk_size=job.chunk_size,
            mapping=mapping or None,
            payload=str(link_input(payload, job_dir / "template")) if isinstance(payload, Upload) else payload,
            redis_url=settings.redis_url,
            allow_private_targets=self.allow_private_targets,
            data_dir=str(settings.data_dir),
            auth_token=request.auth_token.get_secret_value() if request.auth_token else None,
            scheduled_for=scheduled_for, dry_run=request.dry_run,
        )
        self.requests[job.id] = dataclasses.replace(flow_request, auth_token=None)
        try:
            self.runner.start(flow_request)
        except CsvMergerError as exc:
            self.jobs.set_status(job.id, JobStatus.FAILED, error=str(exc))
            raise ApiError(503, f"job {job.id} not started: {exc}") from None
        return self.jobs.get(job.id)

    def _check_has_rows(self, uploads: list[Upload]) -> None:
        """422 when no upload has a single data row (a job of 0 rows would end "Completed 100 %")."""
        from tasks.merge import no_records_error, open_csv

        reasons = []
        for upload in uploads:
            with self._named_errors(upload):
                reason = no_rows_reason(open_csv(upload.path))
            if reason is None:
                return
            reasons.append(reason)
        error = no_records_error([(u.name, r) for u, r in zip(uploads, reasons)], "nothing to merge or deliver")
        raise ApiError(422, str(error), file=uploads[0].name, field="uploads")

    def _window_start(self) -> float | None:
        """Unix time of the next delivery-window start, or None when the window is open now."""
        settings = self.settings
        try:
            start = next_window_start(datetime.now(timezone.utc), settings.delivery_window, settings.timezone)
        except CsvMergerError as exc:
            raise ApiError(422, str(exc), field="schedule") from None
        return start.timestamp() if start.timestamp() > time.time() + 1 else None

    def job(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise ApiError(404, f"job {job_id!r} not found", field="job")
        return job

    def retry_job(self, job_id: str, auth_token: str | None) -> Job:
        """Send a finished job's dead-letter rows again with their original Idempotency-Keys (web.retry)."""
        retry = start_retry(self.jobs, self.job(job_id), self.requests.get(job_id),
                            self.jobs_root / f"retry-{job_id}", auth_token)
        self.requests[retry.id] = self.requests[job_id]  # a retry's own failed rows can be retried in turn
        return retry

    def cancel_job(self, job_id: str) -> Job:
        """Ask a job to stop; it ends Cancelled (never Completed)."""
        job = self.job(job_id)
        if job.status.terminal:
            return job
        self.jobs.request_cancel(job_id)
        self.runner.cancel(job_id)
        return self.job(job_id)

    def output(self, job_id: str, kind: Literal["merged", "dead_letter"]) -> Path:
        """Path of a job's merged or dead-letter CSV. 404 when there is none, 410 after expiry."""
        job = self.job(job_id)
        label = "merged CSV" if kind == "merged" else "dead-letter CSV"
        if job.expired:
            raise ApiError(410, f"job {job_id}: the {label} expired (kept {self.settings.chunk_ttl_s} s)")
        path = job.merged_csv if kind == "merged" else job.dead_letter_csv
        if not path or not Path(path).is_file():
            raise ApiError(404, f"job {job_id} has no {label} (yet)")
        return Path(path)

    # Expiry ------------------------------------------------------------------

    def expire(self, now: float | None = None) -> None:
        """Delete uploads and job folders older than the TTL (settings.chunk_ttl_s)."""
        now = time.time() if now is None else now
        ttl = self.settings.chunk_ttl_s
        self.uploads.expire(now)
        for job in self.jobs.expire(ttl, now):
            shutil.rmtree(self.jobs_root / job.id, ignore_errors=True)
        for folder in self.jobs_root.iterdir():
            if self.jobs.get(folder.name) is None and now - _mtime(folder) >= ttl:
                shutil.rmtree(folder, ignore_errors=True)  # left by an earlier server process

    def close(self) -> None:
        self.runner.close()


def _check_template(upload: Upload, table_type: TableType) -> None:
    """422 on ``template``, naming the file, when ``upload`` is not a jinja2 template that compiles."""
    from tasks.deliver.payloads import make_body_builder

    try:
        make_body_builder(str(upload.path), table_type)
    except ConfigError as exc:
        raise ApiError(422, str(exc).replace(str(upload.path), upload.name), file=upload.name,
                       field="template") from None


def job_key(request: JobRequest, mapping: dict[str, str], webhook_url: str | list[str] | None) -> str:
    """The key that makes two Start requests the same job, and the delivery
    ledger's key: a hash of the upload ids (in order), table type, mapping,
    mode, payload shape (template upload id) and webhook URL (the URL itself is not readable from it). Rate,
    burst, chunk size, schedule and token are left out: they change how, not
    which rows go where, so a different rate must not send rows twice."""
    what = [request.uploads, request.table_type, sorted(mapping.items()), request.mode, request.payload,
            request.template if request.payload == "template" else None, webhook_url]
    return "web-" + hashlib.sha256(json.dumps(what).encode()).hexdigest()[:24]


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return time.time()
