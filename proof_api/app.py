"""The HTTP API (FastAPI), version 1: composes the routers (proof_api/routes/), the error
handlers (proof_api/errors.py) and the body limits (proof_api/bodies.py). State lives in the
Runtime (ledgers, anchor worker, access store); errors are one JSON shape,
{"error": {"code", "field", "message"}} (docs/api.md)."""
from __future__ import annotations

from fastapi import FastAPI

from .access import ROLES
from .bodies import MAX_BATCH_BYTES, BodyLimits, BodyTimeouts, InFlight
from .deps import EvidenceRoute, Services, body_limit
from .errors import ORJSONResponse, error_body, error_response, install_error_handlers
from .routes import checkpoints, ingest, ledgers, operations, proofs, records, tiles, verify
from .routes.ingest import MAX_BATCH_ITEMS
from .runtime import Runtime

API_VERSION = "v1"

# Routes whose body is one JSON object: anything else is a 415, not a confusing 422.
_JSON_BODY_SUFFIXES = ("/records", "/v1/ledgers", "/api-keys", "/ip-rules", "/v1/verify")


class CountingAndMediaType:
    """Counts every answer the app gives by status class (a 500 for an exception included), and refuses a JSON route's body of another media type
    with 415 before it is read. Plain ASGI: starlette's BaseHTTPMiddleware (what
    @app.middleware("http") makes) runs each request through a task and memory streams, a cost
    every request paid."""

    def __init__(self, app, metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["method"] in ("POST", "PUT") and scope["path"].endswith(_JSON_BODY_SUFFIXES):
            raw = next((value for name, value in scope["headers"] if name == b"content-type"), b"application/json")
            ctype = raw.decode("latin-1").split(";")[0].strip().lower()
            if ctype != "application/json":
                self.metrics.requests.labels("4xx").inc()
                self.metrics.errors.labels("unsupported_media_type").inc()
                # Closed after the answer: the body was not read, and must not be (nor read as a head).
                refused = ORJSONResponse(error_body("unsupported_media_type", f"send application/json, not {ctype}"),
                                         status_code=415, headers={"Connection": "close"})
                return await refused(scope, receive, send)
        requests = self.metrics.requests
        started = False

        async def counted(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                requests.labels(f"{message['status'] // 100}xx").inc()
            await send(message)

        try:
            await self.app(scope, receive, counted)
        except Exception:
            if not started:  # answered 500 outside this middleware (starlette's ServerErrorMiddleware)
                requests.labels("5xx").inc()
            raise


def create_app(runtime: Runtime, in_flight: InFlight | None = None,
               body_timeouts: BodyTimeouts = BodyTimeouts()) -> FastAPI:
    # strict_content_type off: a JSON body without a Content-Type is read as JSON on every route
    # (as /records/batch always did), rather than refused by some routes and not others.
    # redirect_slashes off: "/v1/verify/" is not a route; a 307 to "/v1/verify" would make a client
    # send its body twice (or, for most clients, not follow a POST redirect at all).
    app = FastAPI(title="evidence-ledger", version="1", default_response_class=ORJSONResponse, strict_content_type=False,
                  redirect_slashes=False,
                  description="Records in an event-sourced log, SM3 Merkle trees, SM2-signed checkpoints anchored "
                              "on a consortium chain, witnesses' SM2 cosignatures, offline-verifiable proof bundles "
                              "(evledger-proof/2; /1 is still verified). "
                              "Authenticate with `Authorization: Bearer evk_...`.")
    app.state.services = Services(runtime, in_flight or InFlight())
    app.router.route_class = EvidenceRoute  # routes added to the app itself (a benchmark's) read bodies alike
    metrics = runtime.metrics
    install_error_handlers(app, metrics)

    def refuse(status: int, code: str, message: str) -> ORJSONResponse:
        return error_response(metrics, status, code, message, headers={"Connection": "close"})

    app.add_middleware(BodyLimits, limit_for=lambda method, path: body_limit(runtime, method, path), refuse=refuse,
                       timeouts=body_timeouts)
    app.add_middleware(CountingAndMediaType, metrics=metrics)

    for routes in (ledgers, ingest, records, proofs, checkpoints, verify, operations, tiles):
        app.include_router(routes.router)
    return app


__all__ = ["create_app", "ROLES", "MAX_BATCH_ITEMS", "MAX_BATCH_BYTES"]
