"""Proof bundles, certificates and consistency proofs (auditor, verifier)."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from ..access import Principal
from ..bundle import build_bundle
from ..deps import EvidenceRoute, LedgerId, ledger_for, principal, services_of
from ..errors import ApiError, ORJSONResponse
from .views import find_seqs

router = APIRouter(route_class=EvidenceRoute)


async def bundle_for(request, ledger_id, who, seq, evidence_id, content_hash, checkpoint, require_anchor):
    ledger = ledger_for(request, ledger_id, who, ("auditor", "verifier"))
    seqs = find_seqs(ledger, who, seq, evidence_id, content_hash)
    if not seqs:
        raise ApiError(404, "not_found", f"ledger {ledger_id!r} has no such record")
    # Inline, not in the thread pool: a bundle takes ~70 µs of reads and hashing, less than
    # the hand-off to a worker thread and back.
    return build_bundle(ledger, seqs[0], checkpoint, require_anchor)


@router.get("/v1/ledgers/{ledger_id}/proof", tags=["proofs"],
         summary="The evledger-proof/1 bundle of a record, against its first anchored checkpoint (or `checkpoint`)")
async def get_proof(request: Request, ledger_id: str = LedgerId, who: Principal = Depends(principal),
                    seq: int | None = Query(None, ge=0, le=2**63 - 1),
                    evidence_id: str | None = Query(None, max_length=128),
                    content_hash: str | None = Query(None, max_length=64),
                    checkpoint: int | None = Query(None, ge=1, le=2**63 - 1),
                    require_anchor: bool = Query(True, description="refuse a proof whose checkpoint is not anchored")):
    return ORJSONResponse(await bundle_for(request, ledger_id, who, seq, evidence_id, content_hash, checkpoint,
                                           require_anchor))


@router.get("/v1/ledgers/{ledger_id}/certificate", tags=["proofs"], response_class=HTMLResponse,
         summary="The data preservation certificate (HTML, with the proof bundle embedded)")
async def get_certificate(request: Request, ledger_id: str = LedgerId, who: Principal = Depends(principal),
                          seq: int | None = Query(None, ge=0, le=2**63 - 1),
                          evidence_id: str | None = Query(None, max_length=128),
                          content_hash: str | None = Query(None, max_length=64)):
    from ..certificate import certificate_csp, render_certificate

    bundle = await bundle_for(request, ledger_id, who, seq, evidence_id, content_hash, None, True)
    # Off the event loop, and counted with the verifications: subsetting the embedded CJK font
    # takes a good fraction of a second, and seconds for a record of thousands of characters.
    release = services_of(request).in_flight.admit_verification()
    try:
        html = await run_in_threadpool(render_certificate, bundle)
    finally:
        release()
    return HTMLResponse(html, headers={"Content-Security-Policy": certificate_csp()})


@router.get("/v1/ledgers/{ledger_id}/consistency", tags=["proofs"],
         summary="RFC 9162 consistency proof between two checkpoint sizes")
async def consistency(request: Request, ledger_id: str = LedgerId, who: Principal = Depends(principal),
                      first: int = Query(..., ge=1, le=2**63 - 1), second: int = Query(..., ge=1, le=2**63 - 1)):
    ledger = ledger_for(request, ledger_id, who, ("auditor", "verifier"))
    a, b = ledger.checkpoint(first), ledger.checkpoint(second)
    if a is None or b is None:
        raise ApiError(404, "not_found", f"ledger {ledger_id!r} has no checkpoint at size "
                       f"{first if a is None else second}", "first" if a is None else "second")
    if first > second:
        raise ApiError(400, "invalid_request", "first must not be larger than second", "first")
    proof = await run_in_threadpool(ledger.consistency_proof, first, second)
    return {"first": a, "second": b, "hash_alg": ledger.alg, "proof": [p.hex() for p in proof]}
