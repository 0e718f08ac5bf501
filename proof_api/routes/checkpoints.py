"""Checkpoints and anchors."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool

from ..access import Principal
from ..deps import EvidenceRoute, LedgerId, ledger_for, principal, services_of
from ..errors import ApiError

router = APIRouter(route_class=EvidenceRoute)


def _served(request: Request, ledger, checkpoint: dict) -> dict:
    """A checkpoint as served: its note, its verifier key, its anchor, the witnesses'
    cosignatures (each its line, the witness, its key id and time) with the note they make,
    and whether enough of the ledger's configured witnesses cosigned (null: none configured)."""
    cosigned_note, cosignatures = ledger.cosigned_note(checkpoint)
    collector = services_of(request).runtime.witnesses
    witnessed = None
    if collector is not None and collector.config.witnesses_of(ledger.id):
        configured = {w.key for w in collector.config.witnesses_of(ledger.id)}
        count = sum(c["witness_key"] in configured for c in cosignatures)
        witnessed = count >= collector.config.threshold_of(ledger.id)
    return {**checkpoint, "verifier_key": ledger.verifier_keys()[checkpoint["key_id"]],
            "anchor": ledger.anchor(checkpoint["size"]), "cosignatures": cosignatures, "cosigned_note": cosigned_note,
            "witnessed": witnessed}


@router.get("/v1/ledgers/{ledger_id}/checkpoints", tags=["checkpoints"], summary="Checkpoints by size (auditor)")
async def list_checkpoints(request: Request, ledger_id: str = LedgerId, who: Principal = Depends(principal),
                           after: int = Query(0, ge=0, le=2**63 - 2), limit: int = Query(100, ge=1, le=1000),
                           consistency: bool = Query(False, description="add to each checkpoint the RFC 9162 "
                                                     "consistency proof from the one before it (the first: from "
                                                     "size `after`)")):
    ledger = ledger_for(request, ledger_id, who, ("auditor",))
    checkpoints = ledger.checkpoints(after_size=after, limit=limit)
    if consistency and checkpoints:
        # A monitor follows the log a page at a time: proofs in the page spare it a round trip
        # per checkpoint. Sizes past the tree are impossible here (every size listed is sealed).
        def with_proofs() -> list[dict]:
            first = after
            for checkpoint in checkpoints:
                proof = ledger.consistency_proof(first, checkpoint["size"]) if first else []
                checkpoint["consistency"] = {"first": first, "proof": [p.hex() for p in proof]}
                first = checkpoint["size"]
            return checkpoints
        checkpoints = await run_in_threadpool(with_proofs)
    return {"checkpoints": checkpoints, "hash_alg": ledger.alg, "verifier_keys": ledger.verifier_keys()}


@router.get("/v1/ledgers/{ledger_id}/checkpoints/latest", tags=["checkpoints"], summary="The latest checkpoint")
async def latest_checkpoint(request: Request, ledger_id: str = LedgerId, who: Principal = Depends(principal)):
    ledger = ledger_for(request, ledger_id, who, ("auditor", "verifier"))
    checkpoint = ledger.latest_checkpoint()
    if checkpoint is None:
        raise ApiError(404, "not_found", f"ledger {ledger_id!r} has no checkpoint yet")
    return _served(request, ledger, checkpoint)


@router.get("/v1/ledgers/{ledger_id}/checkpoints/{size}", tags=["checkpoints"], summary="The checkpoint at a size")
async def checkpoint_at(request: Request, size: int = Path(ge=1, le=2**63 - 1), ledger_id: str = LedgerId,
                        who: Principal = Depends(principal)):
    ledger = ledger_for(request, ledger_id, who, ("auditor", "verifier"))
    checkpoint = ledger.checkpoint(size)
    if checkpoint is None:
        raise ApiError(404, "not_found", f"ledger {ledger_id!r} has no checkpoint at size {size}", "size")
    return _served(request, ledger, checkpoint)


@router.get("/v1/ledgers/{ledger_id}/anchors", tags=["checkpoints"],
         summary="Every anchor of the ledger's checkpoints and its state (submitted, confirmed, failed)")
async def list_anchors(request: Request, ledger_id: str = LedgerId, who: Principal = Depends(principal)):
    ledger = ledger_for(request, ledger_id, who, ("auditor",))
    return {"anchors": ledger.anchors()}
