"""The HTTP API (FastAPI), version 1: routes and schemas only. State lives in the Runtime
(ledgers, anchor worker, access store); errors are one JSON shape,
{"error": {"code", "field", "message"}} (docs/api.md)."""
from __future__ import annotations

import hashlib
import ipaddress
import re
import time

import orjson
from fastapi import Body, Depends, FastAPI, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ingest.keys import KeyFileError
from ingest.ledger import LEDGER_ID_RE, LedgerError, Receipt
from ingest.records import RECORD_FIELD, RecordError, validate_record
from merkle.proof import ProofError
from merkle.rocks import StorageUnavailable

from .access import ALL_LEDGERS, ROLES, Principal
from .bodies import (MAX_BATCH_BYTES, MAX_RECORD_BODY_BYTES, MAX_SMALL_BODY_BYTES, MAX_VERIFY_BODY_BYTES, MIB,
                     BodyError, BodyLimits, BodyTimeouts, InFlight, parse_json, route_class)
from .bundle import BundleError, build_bundle
from .runtime import Runtime

API_VERSION = "v1"
MAX_BATCH_ITEMS = 10_000

RECORD_EXAMPLE = {
    "content_hash": "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0",
    "business_type": "account-opening",
    "occurred_at": "2026-11-26T09:30:00+08:00",
    "evidence_id": "ACC-2026-000123-video",
    "business_id": "ACC-2026-000123",
    "attributes": {"branch": "sh-001", "channel": "app"},
    "sealed": {"customer_name": "张三"},
}


class ORJSONResponse(JSONResponse):
    """JSON bodies written by orjson (FastAPI's own ORJSONResponse is deprecated)."""

    def render(self, content) -> bytes:
        return orjson.dumps(content)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def _error_body(code: str, message: str, field: str | None = None) -> dict:
    return {"error": {"code": code, "field": field, "message": message}}


_LEDGER_STATUS = {"unknown_ledger": 404, "not_found": 404, "ledger_exists": 409, "invalid_request": 400,
                  "invalid_ledger_id": 400, "ledger_halted": 503, "log_unavailable": 503,
                  "concurrent_writer": 503, "stale_signing_key": 503, "storage_full": 503}
_BUNDLE_STATUS = {"not_found": 404, "invalid_request": 400, "not_anchored": 409, "not_checkpointed": 409}


LEDGER_ID_PATTERN = f"^{LEDGER_ID_RE.pattern}$"  # anchored: pydantic searches, it does not full-match


class LedgerCreate(BaseModel):
    ledger: str = Field(pattern=LEDGER_ID_PATTERN, examples=["acme-brokerage"])
    alg: str = Field(default="sm3", pattern="^(sm3|sha256)$")


class KeyCreate(BaseModel):
    role: str = Field(pattern="^(producer|auditor|verifier|admin)$", examples=["producer"])


class IpRules(BaseModel):
    allow: list[str] = Field(default_factory=list, examples=[["10.0.0.0/8"]])
    deny: list[str] = Field(default_factory=list)


class VerifyRequest(BaseModel):
    """A bundle and, optionally, the SM3 of the file; anything else is refused rather than
    silently left unchecked."""

    model_config = ConfigDict(extra="forbid")
    bundle: dict
    content_hash: str | None = Field(default=None, description="the SM3 hex of the file the court holds")
    verifier_keys: list[str] | None = Field(
        default=None, min_length=1, max_length=100,
        description="the verifier keys the ledger published (name+keyid+base64): the checkpoint must be signed by "
                    "one of them; without them the bundle's own key is used")


def _is_network(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
        return True
    except ValueError:
        return False


# Routes whose body is one JSON object: anything else is a 415, not a confusing 422.
_JSON_BODY_SUFFIXES = ("/records", "/v1/ledgers", "/api-keys", "/ip-rules", "/v1/verify")


_NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl")
_NDJSON_LINE = re.compile(rb"[^\S\n]*\S[^\n]*")  # a line with something on it; blank ones are skipped


def parse_batch(body: bytes, ndjson: bool) -> tuple[list, dict[int, RecordError]]:
    """The items of a batch body and, for NDJSON, the lines that are not JSON; a batch of more
    than MAX_BATCH_ITEMS is refused as soon as its item MAX_BATCH_ITEMS + 1 is seen."""
    too_many = ApiError(413, "batch_too_large", f"more than {MAX_BATCH_ITEMS:,} records; a batch holds at most "
                                                 f"{MAX_BATCH_ITEMS:,}")
    if not ndjson:
        items = parse_json(body)
        if not isinstance(items, list):
            raise ApiError(422, "invalid_request", "a batch is a JSON array of records", RECORD_FIELD)
        if len(items) > MAX_BATCH_ITEMS:
            raise too_many
        return items, {}
    items, errors = [], {}
    for i, line in enumerate(_NDJSON_LINE.finditer(body)):
        if i == MAX_BATCH_ITEMS:
            raise too_many
        try:
            items.append(orjson.loads(line[0]))
        except orjson.JSONDecodeError as exc:
            items.append(None)
            errors[i] = RecordError(RECORD_FIELD, "json", f"line {i + 1} is not JSON: {exc}")
    return items, errors


# Routes that take records: admitted against the ledger's in-flight budget before the body is read.
_INGEST_SUFFIXES = ("/records", "/records/batch", "/files")
_LEDGER_ROUTE_PREFIX = "/v1/ledgers/"


def create_app(runtime: Runtime, in_flight: InFlight | None = None,
               body_timeouts: BodyTimeouts = BodyTimeouts()) -> FastAPI:
    # strict_content_type off: a JSON body without a Content-Type is read as JSON on every route
    # (as /records/batch always did), rather than refused by some routes and not others.
    app = FastAPI(title="evidence-ledger", version="1", default_response_class=ORJSONResponse, strict_content_type=False,
                  description="Records in an event-sourced log, SM3 Merkle trees, SM2-signed checkpoints anchored "
                              "on a consortium chain, offline-verifiable proof bundles (evledger-proof/1). "
                              "Authenticate with `Authorization: Bearer evk_...`.")
    app.state.runtime = runtime
    metrics = runtime.metrics
    in_flight = in_flight or InFlight()

    # -- errors ---------------------------------------------------------------------------

    def error(status: int, code: str, message: str, field: str | None = None, headers=None,
              **extra) -> ORJSONResponse:
        metrics.errors.labels(code).inc()
        body = _error_body(code, message, field)
        body["error"].update(extra)
        return ORJSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(ApiError)
    async def _api_error(request, exc: ApiError):
        return error(exc.status, exc.code, exc.message, exc.field)

    @app.exception_handler(RecordError)
    async def _record_error(request, exc: RecordError):
        return error(422, exc.code, exc.message, exc.field, rule=exc.rule)

    @app.exception_handler(LedgerError)
    async def _ledger_error(request, exc: LedgerError):
        return error(_LEDGER_STATUS.get(exc.code, 400), exc.code, str(exc))

    @app.exception_handler(BundleError)
    async def _bundle_error(request, exc: BundleError):
        return error(_BUNDLE_STATUS.get(exc.code, 400), exc.code, str(exc))

    @app.exception_handler(ProofError)
    async def _proof_error(request, exc: ProofError):
        return error(400, "invalid_request", str(exc))

    @app.exception_handler(StorageUnavailable)
    async def _storage_unavailable(request, exc: StorageUnavailable):
        return error(503, "log_unavailable", f"the data directory cannot be read now: {exc}")

    @app.exception_handler(KeyFileError)
    async def _key_error(request, exc: KeyFileError):
        return error(500, "key_unavailable", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":  # loc is ("body", <char offset>): not a field
            return error(400, "malformed_json", f"the body is not JSON: {first.get('msg', '')}", RECORD_FIELD)
        field = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return error(422, "invalid_request", first.get("msg", "invalid request"), field)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc: StarletteHTTPException):
        if isinstance(exc, BodyError):
            return error(exc.status_code, exc.code, exc.detail, exc.field, exc.headers)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request, exc: Exception):
        return error(500, "internal_error", f"{type(exc).__name__}: {exc}")

    def body_limit(method: str, path: str) -> tuple[int, str]:
        """The most bytes a route's body may have, and the code of the 413 beyond it."""
        if method == "POST" and path.startswith(_LEDGER_ROUTE_PREFIX):
            if path.endswith("/records/batch"):
                return MAX_BATCH_BYTES, "body_too_large"
            if path.endswith("/records"):
                return MAX_RECORD_BODY_BYTES, "body_too_large"
            if path.endswith("/files"):
                return runtime.max_file_bytes, "file_too_large"
        if path == "/v1/verify":
            return MAX_VERIFY_BODY_BYTES, "body_too_large"
        return MAX_SMALL_BODY_BYTES, "body_too_large"

    def refuse(status: int, code: str, message: str) -> ORJSONResponse:
        return error(status, code, message, headers={"Connection": "close"})

    app.add_middleware(BodyLimits, limit_for=body_limit, refuse=refuse, timeouts=body_timeouts)

    @app.middleware("http")
    async def _count(request: Request, call_next):
        if request.method in ("POST", "PUT") and request.url.path.endswith(_JSON_BODY_SUFFIXES):
            ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
            if ctype != "application/json":
                metrics.requests.labels("4xx").inc()
                metrics.errors.labels("unsupported_media_type").inc()
                # Closed after the answer: the body was not read, and must not be (nor read as a head).
                return ORJSONResponse(_error_body("unsupported_media_type", f"send application/json, not {ctype}"),
                                      status_code=415, headers={"Connection": "close"})
        response = await call_next(request)
        metrics.requests.labels(f"{response.status_code // 100}xx").inc()
        return response

    # -- access ---------------------------------------------------------------------------

    def principal(request: Request) -> Principal:
        known = getattr(request.state, "principal", None)
        if known is not None:  # authenticated before the body was read
            return known
        header = request.headers.get("authorization", "")
        key = header[7:].strip() if header.lower().startswith("bearer ") else request.headers.get("x-api-key")
        who = runtime.access.authenticate(key)
        if who is None:
            raise ApiError(401, "unauthorized", "a valid API key is required (Authorization: Bearer evk_...)")
        return who

    def ledger_for(request: Request, ledger_id: str, who: Principal, roles: tuple[str, ...]):
        """The ledger, if this key may act on it in one of `roles`. Another ledger's key learns
        nothing, not even whether the ledger exists: 404 either way."""
        if not who.may_use(ledger_id) or not runtime.access.ip_allowed(ledger_id, request.client.host if request.client else None):
            raise ApiError(404, "unknown_ledger", f"no ledger {ledger_id!r}")
        ledger = runtime.service.ledger(ledger_id)  # LedgerError unknown_ledger -> 404
        if who.role not in roles and not (who.ledger == ALL_LEDGERS and who.role == "admin"):
            raise ApiError(403, "forbidden", f"the {who.role} role may not do this (needs {' or '.join(roles)})")
        return ledger

    def before_body(request: Request):
        """Who sent it, and whether the ledger has room for it, before any of its body is read:
        a refused request costs no body. Returns the release of the ledger's admission."""
        path = request.url.path
        if not path.startswith(_LEDGER_ROUTE_PREFIX) and path != "/v1/ledgers":  # the keyed routes
            return None
        who = request.state.principal = principal(request)
        ledger_id = request.path_params.get("ledger_id")
        if request.method != "POST" or ledger_id is None or not path.endswith(_INGEST_SUFFIXES):
            return None
        ledger_for(request, ledger_id, who, ("producer",))
        if path.endswith("/files"):  # streamed to disk a MiB at a time, never held whole
            charge = MIB
        else:
            limit = body_limit("POST", path)[0]
            declared = request.headers.get("content-length", "")
            charge = min(int(declared), limit) if declared.isdigit() else limit
        return in_flight.admit(ledger_id, charge)

    app.router.route_class = route_class(before_body)

    LedgerId = Path(description="ledger id", pattern=LEDGER_ID_PATTERN, max_length=63)

    def status_of(ledger, seq: int) -> dict:
        checkpoint = ledger.projections.checkpoints(after_size=seq, limit=1)
        first = ledger.projections.first_confirmed_anchor(seq)
        out = {"seq": seq, "status": "recorded", "checkpoint_size": None, "anchor": None}
        if checkpoint:
            out["status"] = "checkpointed"
            out["checkpoint_size"] = checkpoint[0]["size"]
        if first is not None:
            out["status"] = "anchored"
            out["anchor"] = {k: first[k] for k in ("size", "chain_id", "contract", "tx_hash", "block_number",
                                                  "block_hash", "block_time")}
        return out

    def receipt_body(receipt: Receipt, ledger=None) -> dict:
        """A new record is "recorded"; a repeat reports how far the original has come."""
        status = status_of(ledger, receipt.seq)["status"] if receipt.duplicate and ledger is not None else "recorded"
        return {"evidence_id": receipt.evidence_id, "business_id": receipt.business_id, "seq": receipt.seq,
                "leaf_hash": receipt.leaf_hash, "received_at": receipt.received_at, "status": status,
                "duplicate": receipt.duplicate}

    # -- ledgers and keys (admin) ------------------------------------------------------------

    @app.post("/v1/ledgers", status_code=201, tags=["admin"], summary="Create a ledger (service admin)")
    async def create_ledger(body: LedgerCreate, who: Principal = Depends(principal)):
        if not (who.ledger == ALL_LEDGERS and who.role == "admin"):
            raise ApiError(403, "forbidden", "only the service admin creates ledgers")
        ledger = await run_in_threadpool(runtime.service.create_ledger, body.ledger, body.alg)
        return {"ledger": ledger.id, "alg": ledger.alg, "origin": ledger.origin,
                "verifier_key": ledger.created["verifier_key"]}

    @app.get("/v1/ledgers", tags=["admin"], summary="The ledgers this key may see")
    async def list_ledgers(request: Request, who: Principal = Depends(principal)):
        client = request.client.host if request.client else None
        return {"ledgers": [lid for lid in runtime.service.ledgers()
                            if who.may_use(lid) and runtime.access.ip_allowed(lid, client)]}

    @app.post("/v1/ledgers/{ledger_id}/api-keys", status_code=201, tags=["admin"],
              summary="Create an API key for this ledger; the key is returned only once")
    async def create_key(request: Request, body: KeyCreate, ledger_id: str = LedgerId, who: Principal = Depends(principal)):
        ledger_for(request, ledger_id, who, ("admin",))
        key_id, key = runtime.access.create_key(ledger_id, body.role)
        return {"key_id": key_id, "key": key, "ledger": ledger_id, "role": body.role}

    @app.get("/v1/ledgers/{ledger_id}/api-keys", tags=["admin"], summary="The ledger's API keys (never the keys themselves)")
    async def list_keys(request: Request, ledger_id: str = LedgerId, who: Principal = Depends(principal)):
        ledger_for(request, ledger_id, who, ("admin",))
        return {"keys": runtime.access.keys(ledger_id)}

    @app.delete("/v1/ledgers/{ledger_id}/api-keys/{key_id}", tags=["admin"], summary="Revoke an API key")
    async def revoke_key(request: Request, key_id: str, ledger_id: str = LedgerId, who: Principal = Depends(principal)):
        ledger_for(request, ledger_id, who, ("admin",))
        if not any(k["key_id"] == key_id for k in runtime.access.keys(ledger_id)) or not runtime.access.revoke(key_id):
            raise ApiError(404, "not_found", f"ledger {ledger_id!r} has no key {key_id!r}", "key_id")
        return {"revoked": key_id}

    @app.put("/v1/ledgers/{ledger_id}/ip-rules", tags=["admin"], summary="Allow/deny lists of addresses or networks")
    async def set_ip_rules(request: Request, body: IpRules, ledger_id: str = LedgerId, who: Principal = Depends(principal)):
        ledger_for(request, ledger_id, who, ("admin",))
        for field, networks in (("allow", body.allow), ("deny", body.deny)):
            bad = next((n for n in networks if not _is_network(n)), None)
            if bad is not None:
                raise ApiError(422, "invalid_request", f"{bad!r} is not an IP address or network", field)
        return runtime.access.set_ip_rules(ledger_id, body.allow, body.deny)

    @app.post("/v1/ledgers/{ledger_id}/signing-key/rotate", tags=["admin"],
              summary="Make a new SM2 signing key current (an event in the log)")
    async def rotate(request: Request, ledger_id: str = LedgerId, who: Principal = Depends(principal)):
        ledger = ledger_for(request, ledger_id, who, ("admin",))
        key_id, vkey = await run_in_threadpool(ledger.rotate_signing_key)
        return {"key_id": key_id, "verifier_key": vkey}

    @app.post("/v1/ledgers/{ledger_id}/anchors/now", status_code=202, tags=["admin"],
              summary="Anchor the ledger's latest checkpoint at once")
    async def anchor_now(request: Request, ledger_id: str = LedgerId, who: Principal = Depends(principal)):
        ledger_for(request, ledger_id, who, ("admin",))
        if runtime.worker is None:
            raise ApiError(409, "no_chain", "this service runs without a chain")
        runtime.worker.anchor_now(ledger_id)
        return {"ledger": ledger_id, "anchoring": True}

    # -- ingest (producer) -----------------------------------------------------------------------

    @app.post("/v1/ledgers/{ledger_id}/records", tags=["ingest"], status_code=201,
              summary="Submit one evidence record; the receipt comes once it is durable",
              responses={200: {"description": "a repeat of an already recorded evidence_id (duplicate: true)"}})
    async def submit_record(request: Request, ledger_id: str = LedgerId, who: Principal = Depends(principal),
                            record: dict = Body(..., examples=[RECORD_EXAMPLE])):
        ledger = ledger_for(request, ledger_id, who, ("producer",))
        [result] = await run_in_threadpool(ledger.submit, [record])
        if isinstance(result, RecordError):
            metrics.rejected.labels(ledger_id).inc()
            raise result
        metrics.records.labels(ledger_id).inc(0 if result.duplicate else 1)
        return ORJSONResponse(receipt_body(result, ledger), status_code=200 if result.duplicate else 201)

    @app.post("/v1/ledgers/{ledger_id}/records/batch", tags=["ingest"],
              summary=f"Submit up to {MAX_BATCH_ITEMS:,} records ({MAX_BATCH_BYTES >> 20} MiB): a JSON array or "
                      f"NDJSON (application/x-ndjson); one result per item, in order",
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": {"type": "array", "items": {"type": "object"},
                                                   "maxItems": MAX_BATCH_ITEMS}, "example": [RECORD_EXAMPLE]},
                  "application/x-ndjson": {"schema": {"type": "string"}}}}})
    async def submit_batch(request: Request, ledger_id: str = LedgerId, who: Principal = Depends(principal)):
        ledger = ledger_for(request, ledger_id, who, ("producer",))
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in _NDJSON_TYPES and ctype not in ("application/json", ""):
            raise ApiError(415, "unsupported_media_type", f"send application/json or application/x-ndjson, not {ctype}")
        body = await request.body()  # counted against MAX_BATCH_BYTES as it streams (BodyLimits)
        # Off the event loop: 16 MiB of JSON takes a while to parse, and /healthz must not wait.
        items, parse_errors = await run_in_threadpool(parse_batch, body, ctype in _NDJSON_TYPES)
        good = [r for i, r in enumerate(items) if i not in parse_errors]
        submitted = iter(await run_in_threadpool(ledger.submit, good) if good else [])
        results, recorded, failed = [], 0, 0
        for i in range(len(items)):
            result = parse_errors[i] if i in parse_errors else next(submitted)
            if isinstance(result, RecordError):
                failed += 1
                results.append({"error": result.as_dict()})
            else:
                recorded += 0 if result.duplicate else 1
                results.append(receipt_body(result, ledger))
        metrics.records.labels(ledger_id).inc(recorded)
        metrics.rejected.labels(ledger_id).inc(failed)
        # A Response as it is: FastAPI would otherwise walk every receipt through jsonable_encoder
        # (about a tenth of the server's time on batches of 1,000).
        return ORJSONResponse({"recorded": recorded, "failed": failed, "results": results})

    @app.post("/v1/ledgers/{ledger_id}/files", tags=["ingest"], status_code=201,
              summary="Upload a file (the raw body, streamed): the service computes its SM3 and records it; "
                      "the file itself is kept only when the service runs with a file store (--file-store)",
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
    async def submit_file(request: Request, ledger_id: str = LedgerId, who: Principal = Depends(principal),
                          business_type: str = Query(..., examples=["contract-signing"]),
                          occurred_at: str = Query(..., examples=["2026-11-26T09:30:00+08:00"]),
                          evidence_id: str | None = Query(None), business_id: str | None = Query(None)):
        ledger = ledger_for(request, ledger_id, who, ("producer",))
        fields = {"business_type": business_type, "occurred_at": occurred_at, "evidence_id": evidence_id,
                  "business_id": business_id}
        # The record's own fields first, so a bad one costs no upload (and leaves no stored file).
        validate_record({"content_hash": "0" * 64, **fields})
        upload = await run_in_threadpool(runtime.files.begin, ledger_id) if runtime.files is not None else None
        try:
            sm3 = hashlib.new("sm3")
            size = 0
            pending = bytearray()  # written in the thread pool a MiB at a time, off the event loop
            async for chunk in request.stream():
                size += len(chunk)  # at most runtime.max_file_bytes: BodyLimits refuses more
                sm3.update(chunk)
                if upload is not None:
                    pending += chunk
                    if len(pending) >= 1 << 20:
                        await run_in_threadpool(upload.write, bytes(pending))
                        pending.clear()
            if upload is not None and pending:
                await run_in_threadpool(upload.write, bytes(pending))
            if size == 0:
                raise ApiError(422, "empty_file", "the upload is empty", "file")
            record = {"content_hash": sm3.hexdigest(), **fields}
            if upload is not None:  # durable before the receipt says the record is
                await run_in_threadpool(upload.keep, record["content_hash"])
        finally:
            if upload is not None:
                upload.discard()
        [result] = await run_in_threadpool(ledger.submit, [record])
        if isinstance(result, RecordError):
            raise result
        metrics.records.labels(ledger_id).inc(0 if result.duplicate else 1)
        return ORJSONResponse({**receipt_body(result, ledger), "content_hash": record["content_hash"], "bytes": size,
                               "stored": upload is not None}, status_code=200 if result.duplicate else 201)

    @app.get("/v1/ledgers/{ledger_id}/files/{content_hash}", tags=["records"],
             response_class=FileResponse, responses={200: {"content": {"application/octet-stream": {}}}},
             summary="A stored file by its SM3 (auditor): only with a file store, and only a file a record names")
    async def get_file(request: Request, content_hash: str = Path(pattern="^[0-9a-fA-F]{64}$"),
                       ledger_id: str = LedgerId, who: Principal = Depends(principal)):
        ledger = ledger_for(request, ledger_id, who, ("auditor",))
        content_hash = content_hash.lower()
        if not ledger.projections.seqs_by_content_hash(content_hash, limit=1):
            raise ApiError(404, "not_found", f"no record of ledger {ledger_id!r} has content_hash {content_hash}")
        if runtime.files is None:
            raise ApiError(404, "not_stored", "this service keeps no files (start it with --file-store DIR)")
        path = runtime.files.find(ledger_id, content_hash)
        if path is None:
            raise ApiError(404, "not_stored", f"the file of {content_hash} was not uploaded to this service's "
                                              "file store (only its hash was recorded)")
        return FileResponse(path, media_type="application/octet-stream", filename=content_hash,
                            headers={"X-Content-SM3": content_hash})

    # -- reading (auditor; verifier where it names the record) --------------------------------------

    def find_seqs(ledger, who: Principal, seq: int | None, evidence_id: str | None, content_hash: str | None,
                  business_id: str | None = None, selectors: str = "seq, evidence_id or content_hash") -> list[int]:
        named = [n for n, v in (("seq", seq), ("evidence_id", evidence_id), ("content_hash", content_hash),
                                ("business_id", business_id)) if v is not None]
        if len(named) != 1:
            raise ApiError(400, "invalid_request", f"name exactly one of {selectors}")
        if who.role == "verifier" and named[0] in ("seq", "business_id"):
            raise ApiError(403, "forbidden", "a verifier names records by evidence_id or content_hash")
        if seq is not None:
            if seq >= ledger.projections.record_count:
                raise ApiError(404, "not_found", f"ledger {ledger.id!r} has no record {seq} (yet)", "seq")
            return [seq]
        if evidence_id is not None:
            hit = ledger.projections.evidence(evidence_id)
            return [] if hit is None else [hit[0]]
        if content_hash is not None:
            text = content_hash.lower()
            if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
                raise ApiError(422, "invalid_request", "content_hash must be 64 hex digits", "content_hash")
            return ledger.projections.seqs_by_content_hash(text, limit=1000)
        return ledger.projections.seqs_by_business_id(business_id, limit=1000)

    def record_view(ledger, seq: int, who: Principal) -> dict:
        event = ledger.record(seq)
        out = {**status_of(ledger, seq), "leaf_hash": ledger.projections.tree.leaf_hash(seq).hex(),
               "received_at": event["received_at"], "record": event["record"]}
        if who.role in ("auditor", "admin") and "sealed" in event["record"]:
            out["sealed_fields"] = ledger.open_sealed(event["record"])
        return out

    @app.get("/v1/ledgers/{ledger_id}/records/{seq}", tags=["records"], summary="A record and its status (auditor)")
    async def get_record(request: Request, seq: int = Path(ge=0, le=2**63 - 1), ledger_id: str = LedgerId,
                         who: Principal = Depends(principal)):
        ledger = ledger_for(request, ledger_id, who, ("auditor",))
        find_seqs(ledger, who, seq, None, None)
        return ORJSONResponse(record_view(ledger, seq, who))

    @app.get("/v1/ledgers/{ledger_id}/records", tags=["records"],
             summary="Find records by evidence_id or content_hash (auditor, verifier) or list a business flow "
                     "by business_id (auditor)")
    async def find_records(request: Request, ledger_id: str = LedgerId, who: Principal = Depends(principal),
                           evidence_id: str | None = Query(None, max_length=128),
                           content_hash: str | None = Query(None, max_length=64),
                           business_id: str | None = Query(None, max_length=128)):
        ledger = ledger_for(request, ledger_id, who, ("auditor", "verifier"))
        seqs = find_seqs(ledger, who, None, evidence_id, content_hash, business_id,
                         "evidence_id, content_hash" + (" or business_id" if who.role != "verifier" else ""))
        if who.role == "verifier":  # status only: no record contents without the auditor role
            return ORJSONResponse({"records": [status_of(ledger, s) for s in seqs]})
        return ORJSONResponse({"records": [record_view(ledger, s, who) for s in seqs]})

    async def bundle_for(request, ledger_id, who, seq, evidence_id, content_hash, checkpoint, require_anchor):
        ledger = ledger_for(request, ledger_id, who, ("auditor", "verifier"))
        seqs = find_seqs(ledger, who, seq, evidence_id, content_hash)
        if not seqs:
            raise ApiError(404, "not_found", f"ledger {ledger_id!r} has no such record")
        # Inline, not in the thread pool: a bundle takes ~70 µs of reads and hashing, less than
        # the hand-off to a worker thread and back.
        return build_bundle(ledger, seqs[0], checkpoint, require_anchor)

    @app.get("/v1/ledgers/{ledger_id}/proof", tags=["proofs"],
             summary="The evledger-proof/1 bundle of a record, against its first anchored checkpoint (or `checkpoint`)")
    async def get_proof(request: Request, ledger_id: str = LedgerId, who: Principal = Depends(principal),
                        seq: int | None = Query(None, ge=0, le=2**63 - 1),
                        evidence_id: str | None = Query(None, max_length=128),
                        content_hash: str | None = Query(None, max_length=64),
                        checkpoint: int | None = Query(None, ge=1, le=2**63 - 1),
                        require_anchor: bool = Query(True, description="refuse a proof whose checkpoint is not anchored")):
        return ORJSONResponse(await bundle_for(request, ledger_id, who, seq, evidence_id, content_hash, checkpoint,
                                               require_anchor))

    @app.get("/v1/ledgers/{ledger_id}/certificate", tags=["proofs"], response_class=HTMLResponse,
             summary="The data preservation certificate (HTML, with the proof bundle embedded)")
    async def get_certificate(request: Request, ledger_id: str = LedgerId, who: Principal = Depends(principal),
                              seq: int | None = Query(None, ge=0, le=2**63 - 1),
                              evidence_id: str | None = Query(None, max_length=128),
                              content_hash: str | None = Query(None, max_length=64)):
        from .certificate import render_certificate

        bundle = await bundle_for(request, ledger_id, who, seq, evidence_id, content_hash, None, True)
        return HTMLResponse(render_certificate(bundle))

    @app.get("/v1/ledgers/{ledger_id}/consistency", tags=["proofs"],
             summary="RFC 9162 consistency proof between two checkpoint sizes")
    async def consistency(request: Request, ledger_id: str = LedgerId, who: Principal = Depends(principal),
                          first: int = Query(..., ge=1, le=2**63 - 1), second: int = Query(..., ge=1, le=2**63 - 1)):
        ledger = ledger_for(request, ledger_id, who, ("auditor", "verifier"))
        a, b = ledger.projections.checkpoint(first), ledger.projections.checkpoint(second)
        if a is None or b is None:
            raise ApiError(404, "not_found", f"ledger {ledger_id!r} has no checkpoint at size "
                           f"{first if a is None else second}", "first" if a is None else "second")
        if first > second:
            raise ApiError(400, "invalid_request", "first must not be larger than second", "first")
        proof = await run_in_threadpool(ledger.projections.tree.consistency_proof, first, second)
        return {"first": a, "second": b, "hash_alg": ledger.alg, "proof": [p.hex() for p in proof]}

    @app.get("/v1/ledgers/{ledger_id}/checkpoints", tags=["checkpoints"], summary="Checkpoints by size (auditor)")
    async def list_checkpoints(request: Request, ledger_id: str = LedgerId, who: Principal = Depends(principal),
                               after: int = Query(0, ge=0, le=2**63 - 2), limit: int = Query(100, ge=1, le=1000)):
        ledger = ledger_for(request, ledger_id, who, ("auditor",))
        return {"checkpoints": ledger.projections.checkpoints(after_size=after, limit=limit),
                "verifier_keys": ledger.verifier_keys()}

    @app.get("/v1/ledgers/{ledger_id}/checkpoints/latest", tags=["checkpoints"], summary="The latest checkpoint")
    async def latest_checkpoint(request: Request, ledger_id: str = LedgerId, who: Principal = Depends(principal)):
        ledger = ledger_for(request, ledger_id, who, ("auditor", "verifier"))
        checkpoint = ledger.projections.latest_checkpoint()
        if checkpoint is None:
            raise ApiError(404, "not_found", f"ledger {ledger_id!r} has no checkpoint yet")
        return {**checkpoint, "verifier_key": ledger.verifier_keys()[checkpoint["key_id"]],
                "anchor": ledger.projections.anchor(checkpoint["size"])}

    @app.get("/v1/ledgers/{ledger_id}/checkpoints/{size}", tags=["checkpoints"], summary="The checkpoint at a size")
    async def checkpoint_at(request: Request, size: int = Path(ge=1, le=2**63 - 1), ledger_id: str = LedgerId,
                            who: Principal = Depends(principal)):
        ledger = ledger_for(request, ledger_id, who, ("auditor", "verifier"))
        checkpoint = ledger.projections.checkpoint(size)
        if checkpoint is None:
            raise ApiError(404, "not_found", f"ledger {ledger_id!r} has no checkpoint at size {size}", "size")
        return {**checkpoint, "verifier_key": ledger.verifier_keys()[checkpoint["key_id"]],
                "anchor": ledger.projections.anchor(size)}

    @app.get("/v1/ledgers/{ledger_id}/anchors", tags=["checkpoints"],
             summary="Every anchor of the ledger's checkpoints and its state (submitted, confirmed, failed)")
    async def list_anchors(request: Request, ledger_id: str = LedgerId, who: Principal = Depends(principal)):
        ledger = ledger_for(request, ledger_id, who, ("auditor",))
        return {"anchors": ledger.projections.anchors()}

    # -- verification (public: the same code a court runs offline) -----------------------------------

    @app.post("/v1/verify", tags=["proofs"], summary="Verify a proof bundle (and optionally the file's SM3): "
                                                    "verdict 1 (in the anchored tree, unaltered) or 2",
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": VerifyRequest.model_json_schema()}}}})
    async def verify(request: Request):
        from .strict_json import StrictJSONError, loads_strict
        from .verify import MAX_BUNDLE_DEPTH, load_trusted_keys, unreadable_report, verify_bundle

        def read_and_verify(text: bytes):
            # The bundle as `evledger verify` reads it: JSON that strict reading refuses (a key
            # twice, a non-canonical number) is verdict 2 here as it is there, never a second
            # reading of the same text; text that is not JSON at all is a malformed request.
            try:
                given = loads_strict(text, max_bytes=MAX_VERIFY_BODY_BYTES, max_depth=MAX_BUNDLE_DEPTH + 1)
            except StrictJSONError as exc:
                parse_json(text)  # BodyError malformed_json when no JSON parser reads it either
                return unreadable_report(exc)
            try:
                body = VerifyRequest.model_validate(given)
            except ValidationError as exc:
                raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None
            trusted_keys = None
            if body.verifier_keys is not None:
                try:
                    trusted_keys = load_trusted_keys(body.verifier_keys, [], named="verifier_keys")
                except ValueError as exc:
                    raise ApiError(422, "invalid_request", str(exc), "verifier_keys") from None
            # Never a chain URL from the client: the server would fetch whatever it was told.
            return verify_bundle(given["bundle"], None, body.content_hash, None, trusted_keys)

        text = await request.body()
        # The body is in (so a slow client holds no slot) but not yet parsed: a refused request
        # costs no parsing, and the reading (pure Python, up to a second for 1 MiB) runs inside
        # the slot, off the event loop.
        release = in_flight.admit_verification()
        try:
            report = await run_in_threadpool(read_and_verify, text)
        finally:
            release()
        return report.as_dict()

    # -- operations -------------------------------------------------------------------------

    @app.get("/healthz", tags=["operations"], summary="The process is up")
    async def healthz():
        return {"status": "ok", "uptime_s": round(time.time() - runtime.started, 1)}

    @app.get("/readyz", tags=["operations"], summary="The SM3 kernels are compiled and every ledger is sealing "
                                                      "checkpoints")
    async def readyz():
        problems = runtime.problems()
        if problems:
            return ORJSONResponse({"status": "not ready", "problems": problems}, status_code=503)
        return {"status": "ready", "ledgers": len(runtime.service.ledgers())}

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse, summary="Prometheus metrics")
    async def prometheus():
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        runtime.refresh_gauges()
        return PlainTextResponse(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


__all__ = ["create_app", "ROLES", "MAX_BATCH_ITEMS", "MAX_BATCH_BYTES"]
