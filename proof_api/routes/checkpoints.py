"""Checkpoints and anchors."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request

from ..access import Principal
from ..deps import EvidenceRoute, LedgerId, ledger_for, principal
from ..errors import ApiError

router = APIRouter(route_class=EvidenceRoute)


@router.get("/v1/ledgers/{ledger_id}/checkpoints", tags=["checkpoints"], summary="Checkpoints by size (auditor)")
async def list_checkpoints(request: Request, ledger_id: str = LedgerId, who: Principal = Depends(principal),
                           after: int = Query(0, ge=0, le=2**63 - 2), limit: int = Query(100, ge=1, le=1000)):
    ledger = ledger_for(request, ledger_id, who, ("auditor",))
    return {"checkpoints": ledger.checkpoints(after_size=after, limit=limit),
            "verifier_keys": ledger.verifier_keys()}


@router.get("/v1/ledgers/{ledger_id}/checkpoints/latest", tags=["checkpoints"], summary="The latest checkpoint")
async def latest_checkpoint(request: Request, ledger_id: str = LedgerId, who: Principal = Depends(principal)):
    ledger = ledger_for(request, ledger_id, who, ("auditor", "verifier"))
    checkpoint = ledger.latest_checkpoint()
    if checkpoint is None:
        raise ApiError(404, "not_found", f"ledger {ledger_id!r} has no checkpoint yet")
    return {**checkpoint, "verifier_key": ledger.verifier_keys()[checkpoint["key_id"]],
            "anchor": ledger.anchor(checkpoint["size"])}


@router.get("/v1/ledgers/{ledger_id}/checkpoints/{size}", tags=["checkpoints"], summary="The checkpoint at a size")
async def checkpoint_at(request: Request, size: int = Path(ge=1, le=2**63 - 1), ledger_id: str = LedgerId,
                        who: Principal = Depends(principal)):
    ledger = ledger_for(request, ledger_id, who, ("auditor", "verifier"))
    checkpoint = ledger.checkpoint(size)
    if checkpoint is None:
        raise ApiError(404, "not_found", f"ledger {ledger_id!r} has no checkpoint at size {size}", "size")
    return {**checkpoint, "verifier_key": ledger.verifier_keys()[checkpoint["key_id"]],
            "anchor": ledger.anchor(size)}


@router.get("/v1/ledgers/{ledger_id}/anchors", tags=["checkpoints"],
         summary="Every anchor of the ledger's checkpoints and its state (submitted, confirmed, failed)")
async def list_anchors(request: Request, ledger_id: str = LedgerId, who: Principal = Depends(principal)):
    ledger = ledger_for(request, ledger_id, who, ("auditor",))
    return {"anchors": ledger.anchors()}
