"""Submitting records (producer): one, a batch (JSON array or NDJSON), or a file."""
from __future__ import annotations

import hashlib
import re

import orjson
from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool

from ingest.records import RECORD_FIELD, RecordError, validate_record

from ..access import Principal
from ..bodies import MAX_BATCH_BYTES, parse_json
from ..deps import EvidenceRoute, LedgerId, Services, ledger_for, principal, services
from ..errors import ApiError, ORJSONResponse
from .views import receipt_body

router = APIRouter(route_class=EvidenceRoute)

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
    line_number, counted_to = 1, 0  # blank lines are skipped, so the item's index is not its line
    for i, line in enumerate(_NDJSON_LINE.finditer(body)):
        if i == MAX_BATCH_ITEMS:
            raise too_many
        try:
            items.append(orjson.loads(line[0]))
        except orjson.JSONDecodeError as exc:
            line_number += body.count(b"\n", counted_to, line.start())
            counted_to = line.start()
            items.append(None)
            errors[i] = RecordError(RECORD_FIELD, "json", f"line {line_number} is not JSON: {exc}")
    return items, errors


@router.post("/v1/ledgers/{ledger_id}/records", tags=["ingest"], status_code=201,
          summary="Submit one evidence record; the receipt comes once it is durable",
          responses={200: {"description": "a repeat of an already recorded evidence_id (duplicate: true)"}})
async def submit_record(request: Request, ledger_id: str = LedgerId, who: Principal = Depends(principal),
                        record: dict = Body(..., examples=[RECORD_EXAMPLE]), svc: Services = Depends(services)):
    ledger = ledger_for(request, ledger_id, who, ("producer",))
    [result] = await run_in_threadpool(ledger.submit, [record])
    if isinstance(result, RecordError):
        svc.metrics.rejected.labels(ledger_id).inc()
        raise result
    svc.metrics.records.labels(ledger_id).inc(0 if result.duplicate else 1)
    return ORJSONResponse(receipt_body(result, ledger), status_code=200 if result.duplicate else 201)


@router.post("/v1/ledgers/{ledger_id}/records/batch", tags=["ingest"],
          summary=f"Submit up to {MAX_BATCH_ITEMS:,} records ({MAX_BATCH_BYTES >> 20} MiB): a JSON array or "
                  f"NDJSON (application/x-ndjson); one result per item, in order",
          openapi_extra={"requestBody": {"required": True, "content": {
              "application/json": {"schema": {"type": "array", "items": {"type": "object"},
                                               "maxItems": MAX_BATCH_ITEMS}, "example": [RECORD_EXAMPLE]},
              "application/x-ndjson": {"schema": {"type": "string"}}}}})
async def submit_batch(request: Request, ledger_id: str = LedgerId, who: Principal = Depends(principal), svc: Services = Depends(services)):
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
    svc.metrics.records.labels(ledger_id).inc(recorded)
    svc.metrics.rejected.labels(ledger_id).inc(failed)
    # A Response as it is: FastAPI would otherwise walk every receipt through jsonable_encoder
    # (about a tenth of the server's time on batches of 1,000).
    return ORJSONResponse({"recorded": recorded, "failed": failed, "results": results})


@router.post("/v1/ledgers/{ledger_id}/files", tags=["ingest"], status_code=201,
          summary="Upload a file (the raw body, streamed): the service computes its SM3 and records it; "
                  "the file itself is kept only when the service runs with a file store (--file-store)",
          openapi_extra={"requestBody": {"required": True, "content": {
              "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
async def submit_file(request: Request, ledger_id: str = LedgerId, who: Principal = Depends(principal),
                      business_type: str = Query(..., examples=["contract-signing"]),
                      occurred_at: str = Query(..., examples=["2026-11-26T09:30:00+08:00"]),
                      evidence_id: str | None = Query(None), business_id: str | None = Query(None), svc: Services = Depends(services)):
    ledger = ledger_for(request, ledger_id, who, ("producer",))
    fields = {"business_type": business_type, "occurred_at": occurred_at, "evidence_id": evidence_id,
              "business_id": business_id}
    # The record's own fields first, so a bad one costs no upload (and leaves no stored file).
    validate_record({"content_hash": "0" * 64, **fields})
    upload = await run_in_threadpool(svc.runtime.files.begin, ledger_id) if svc.runtime.files is not None else None
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
    svc.metrics.records.labels(ledger_id).inc(0 if result.duplicate else 1)
    return ORJSONResponse({**receipt_body(result, ledger), "content_hash": record["content_hash"], "bytes": size,
                           "stored": upload is not None}, status_code=200 if result.duplicate else 201)
