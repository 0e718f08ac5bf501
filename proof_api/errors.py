"""The API's one error shape, {"error": {"code", "field", "message"}} (docs/api.md, "Errors"),
and the handlers that turn every domain error into it."""
from __future__ import annotations

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ingest.keys import KeyFileError
from ingest.ledger import LedgerError
from ingest.records import RecordError
from evledger_verify.proof import ProofError
from merkle.rocks import StorageUnavailable

from .bodies import BodyError
from .bundle import BundleError

_LEDGER_STATUS = {"unknown_ledger": 404, "not_found": 404, "ledger_exists": 409, "invalid_request": 400,
                  "invalid_ledger_id": 400, "ledger_halted": 503, "log_unavailable": 503,
                  "concurrent_writer": 503, "stale_signing_key": 503, "storage_full": 503}
_BUNDLE_STATUS = {"not_found": 404, "invalid_request": 400, "not_anchored": 409, "not_checkpointed": 409}


class ORJSONResponse(JSONResponse):
    """JSON bodies written by orjson (FastAPI's own ORJSONResponse is deprecated)."""

    def render(self, content) -> bytes:
        return orjson.dumps(content)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def error_body(code: str, message: str, field: str | None = None) -> dict:
    return {"error": {"code": code, "field": field, "message": message}}


def error_response(metrics, status: int, code: str, message: str, field: str | None = None, headers=None,
                   **extra) -> ORJSONResponse:
    """The error, counted by code in the metrics."""
    metrics.errors.labels(code).inc()
    body = error_body(code, message, field)
    body["error"].update(extra)
    return ORJSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI, metrics) -> None:
    def handles(kind, answer):
        async def handler(request: Request, exc):
            return error_response(metrics, *answer(exc))
        app.add_exception_handler(kind, handler)

    handles(ApiError, lambda e: (e.status, e.code, e.message, e.field))
    handles(LedgerError, lambda e: (_LEDGER_STATUS.get(e.code, 400), e.code, str(e)))
    handles(BundleError, lambda e: (_BUNDLE_STATUS.get(e.code, 400), e.code, str(e)))
    handles(ProofError, lambda e: (400, "invalid_request", str(e)))
    handles(StorageUnavailable, lambda e: (503, "log_unavailable", f"the data directory cannot be read now: {e}"))
    handles(KeyFileError, lambda e: (500, "key_unavailable", str(e)))
    handles(Exception, lambda e: (500, "internal_error", f"{type(e).__name__}: {e}"))

    @app.exception_handler(RecordError)
    async def _record_error(request, exc: RecordError):
        return error_response(metrics, 422, exc.code, exc.message, exc.field, rule=exc.rule)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, exc: RequestValidationError):
        # Bodies that are not JSON never get here: JSONRequest answers them (malformed_json).
        first = exc.errors()[0] if exc.errors() else {}
        field = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return error_response(metrics, 422, "invalid_request", first.get("msg", "invalid request"), field)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc: StarletteHTTPException):
        if isinstance(exc, BodyError):
            return error_response(metrics, exc.status_code, exc.code, exc.detail, exc.field, exc.headers)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(metrics, exc.status_code, code, str(exc.detail))
