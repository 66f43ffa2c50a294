"""The web service: the upload page (``ui_static/``) and its JSON API.

``create_app(settings, host=..., allow_private_targets=...)`` builds the
FastAPI application; ``csv-merger web`` serves it with uvicorn. Endpoints
(all JSON; errors are ``{"error": message, "file"?: name, "field"?: name}``):

- ``POST /api/session`` exchange the API token for an HttpOnly cookie
- ``GET  /api/config`` canonical fields, defaults, limits, delivery window
- ``POST /api/uploads`` multipart ``files`` (+ ``table_type``): store and inspect
- ``POST /api/uploads/{id}/preview`` ``{table_type, mapping}``: inspect again
- ``DELETE /api/uploads/{id}``
- ``POST /api/jobs`` start (or schedule) a merge-and-deliver job
- ``GET  /api/jobs``, ``GET /api/jobs/{id}``, ``POST /api/jobs/{id}/cancel``
- ``GET  /api/jobs/{id}/merged.csv``, ``GET /api/jobs/{id}/dead-letter.csv``
- ``GET  /health`` 200 or 503 naming the dependency that is down
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, SecretStr
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from csv_merger.errors import ConfigError, CsvMergerError, RedisUnavailableError
from csv_merger.settings import Settings, get_settings
from csv_merger.web import auth
from csv_merger.web.api import build_api
from csv_merger.web.errors import OWN_WORDS, ApiError
from csv_merger.web.bodylimit import BodyLimitMiddleware
from csv_merger.web.health import health
from csv_merger.web.runners import DEPLOYMENT
from csv_merger.web.service import WebService

log = logging.getLogger("csv_merger.web")

UI_DIR = Path(__file__).resolve().parents[2] / "ui_static"
MULTIPART_OVERHEAD_BYTES = 64 * 1024  # boundaries and part headers around one file
SECURITY_HEADERS = {
    # Only our own files: no inline script, no other origin, never inside a frame.
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class SessionRequest(BaseModel):
    """Body of ``POST /api/session``."""

    token: SecretStr = SecretStr("")


def create_app(
    settings: Settings | None = None,
    *,
    host: str | None = None,
    allow_private_targets: bool = False,
    prefect_api_url: str | None = None,
    embedded: bool = False,
    deployment: str = DEPLOYMENT,
    cleanup_interval_s: float | None = None,
) -> FastAPI:
    """The FastAPI application.

    host: the bind address (default ``settings.host``); beyond loopback a
    token (``settings.api_token``) is required, else ConfigError.
    allow_private_targets: let webhook URLs point at private/loopback hosts
    (tests and a local sink only). prefect_api_url: run jobs as flow runs of
    the ``merge-and-deliver`` deployment on that API (default: Prefect's
    ``PREFECT_API_URL`` setting; unset = embedded mode). embedded: run flows
    in this process even when an API is configured (it then only tracks
    them). deployment: "flow/deployment" whose runs jobs are. cleanup_interval_s:
    seconds between expiry sweeps (default a quarter of the TTL, 0.2-300 s).
    """
    settings = settings or get_settings()
    token_secret = settings.api_token.get_secret_value() if settings.api_token else None
    token = auth.required_token(host or settings.host, token_secret)
    if not UI_DIR.is_dir():
        raise ConfigError(f"page files not found at {UI_DIR}")
    service = WebService(settings, allow_private_targets=allow_private_targets, prefect_api_url=prefect_api_url,
                         embedded=embedded, deployment=deployment)
    interval = cleanup_interval_s or min(max(settings.chunk_ttl_s / 4, 0.2), 300.0)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        sweeper = asyncio.create_task(_sweep_forever(service, interval))
        try:
            yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            await run_in_threadpool(service.close)

    app = FastAPI(title="csv-merger", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = service
    app.add_middleware(BodyLimitMiddleware, limit_bytes=settings.upload_limit_bytes + MULTIPART_OVERHEAD_BYTES,
                       file_limit_bytes=settings.upload_limit_bytes)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    _add_error_handlers(app)

    async def require_token(request: Request) -> None:
        if token and not auth.token_matches(token, auth.presented_token(request)):
            raise ApiError(401, "missing or wrong API token (send 'Authorization: Bearer <token>')")

    @app.post("/api/session")
    async def session(request: Request, body: SessionRequest) -> JSONResponse:
        """Check a token and keep it in an HttpOnly cookie for the page."""
        given = body.token.get_secret_value()
        if token and not auth.token_matches(token, given):
            raise ApiError(401, "wrong API token", field="token")
        response = JSONResponse({"auth_required": bool(token)})
        if token:
            response.set_cookie(auth.COOKIE, given, httponly=True, samesite="strict",
                                secure=request.url.scheme == "https")
        return response

    protected = APIRouter(dependencies=[Depends(require_token)])

    @protected.get("/health")
    async def get_health() -> JSONResponse:
        ok, body = await health(settings.redis_url, service.prefect_api_url)
        return JSONResponse(body, status_code=200 if ok else 503)

    protected.include_router(build_api(service), prefix="/api")
    app.include_router(protected)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        # The page shell holds no data; it asks for the token when the API wants one.
        return FileResponse(UI_DIR / "index.html", headers={"Cache-Control": "no-store"})

    app.mount("/static", StaticFiles(directory=UI_DIR), name="static")
    return app


async def _sweep_forever(service: WebService, interval_s: float) -> None:
    """Expire uploads and job outputs every ``interval_s`` seconds."""
    while True:
        try:
            await run_in_threadpool(service.expire)
        except OSError as exc:  # a full or read-only disk must not stop later sweeps
            log.warning("expiry sweep failed: %s", exc)
        await asyncio.sleep(interval_s)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(CsvMergerError)
    async def _tool_error(request: Request, exc: CsvMergerError) -> JSONResponse:
        status = 503 if isinstance(exc, RedisUnavailableError) else 422
        return JSONResponse({"error": str(exc)}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        field = ".".join(str(part) for part in first["loc"] if part not in ("body", "query", "path"))
        message = f"{field}: {first['msg']}" if field and first.get("type") != OWN_WORDS else first["msg"]
        return JSONResponse({"error": message, "field": field or None}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)
