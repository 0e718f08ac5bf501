"""Ledgers, their API keys, IP rules, signing keys and anchoring now (admin)."""
from __future__ import annotations

import ipaddress

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from ..access import ALL_LEDGERS, Principal
from ..deps import LEDGER_ID_PATTERN, EvidenceRoute, LedgerId, Services, ledger_for, principal, services
from ..errors import ApiError

router = APIRouter(route_class=EvidenceRoute)


class LedgerCreate(BaseModel):
    ledger: str = Field(pattern=LEDGER_ID_PATTERN, examples=["acme-brokerage"])
    alg: str = Field(default="sm3", pattern="^(sm3|sha256)$")


class KeyCreate(BaseModel):
    role: str = Field(pattern="^(producer|auditor|verifier|admin)$", examples=["producer"])


class IpRules(BaseModel):
    allow: list[str] = Field(default_factory=list, examples=[["10.0.0.0/8"]])
    deny: list[str] = Field(default_factory=list)


def _is_network(text: str) -> bool:
    try:
        ipaddress.ip_network(text, strict=False)
        return True
    except ValueError:
        return False


@router.post("/v1/ledgers", status_code=201, tags=["admin"], summary="Create a ledger (service admin)")
async def create_ledger(body: LedgerCreate, who: Principal = Depends(principal), svc: Services = Depends(services)):
    if not (who.ledger == ALL_LEDGERS and who.role == "admin"):
        raise ApiError(403, "forbidden", "only the service admin creates ledgers")
    ledger = await run_in_threadpool(svc.runtime.service.create_ledger, body.ledger, body.alg)
    return {"ledger": ledger.id, "alg": ledger.alg, "origin": ledger.origin,
            "verifier_key": ledger.created["verifier_key"]}


@router.get("/v1/ledgers", tags=["admin"], summary="The ledgers this key may see")
async def list_ledgers(request: Request, who: Principal = Depends(principal), svc: Services = Depends(services)):
    client = request.client.host if request.client else None
    return {"ledgers": [lid for lid in svc.runtime.service.ledgers()
                        if who.may_use(lid) and svc.runtime.access.ip_allowed(lid, client)]}


@router.post("/v1/ledgers/{ledger_id}/api-keys", status_code=201, tags=["admin"],
          summary="Create an API key for this ledger; the key is returned only once")
async def create_key(request: Request, body: KeyCreate, ledger_id: str = LedgerId, who: Principal = Depends(principal), svc: Services = Depends(services)):
    ledger_for(request, ledger_id, who, ("admin",))
    key_id, key = svc.runtime.access.create_key(ledger_id, body.role)
    return {"key_id": key_id, "key": key, "ledger": ledger_id, "role": body.role}


@router.get("/v1/ledgers/{ledger_id}/api-keys", tags=["admin"], summary="The ledger's API keys (never the keys themselves)")
async def list_keys(request: Request, ledger_id: str = LedgerId, who: Principal = Depends(principal), svc: Services = Depends(services)):
    ledger_for(request, ledger_id, who, ("admin",))
    return {"keys": svc.runtime.access.keys(ledger_id)}


@router.delete("/v1/ledgers/{ledger_id}/api-keys/{key_id}", tags=["admin"], summary="Revoke an API key")
async def revoke_key(request: Request, key_id: str, ledger_id: str = LedgerId, who: Principal = Depends(principal), svc: Services = Depends(services)):
    ledger_for(request, ledger_id, who, ("admin",))
    if not any(k["key_id"] == key_id for k in svc.runtime.access.keys(ledger_id)) or not svc.runtime.access.revoke(key_id):
        raise ApiError(404, "not_found", f"ledger {ledger_id!r} has no key {key_id!r}", "key_id")
    return {"revoked": key_id}


@router.put("/v1/ledgers/{ledger_id}/ip-rules", tags=["admin"], summary="Allow/deny lists of addresses or networks")
async def set_ip_rules(request: Request, body: IpRules, ledger_id: str = LedgerId, who: Principal = Depends(principal), svc: Services = Depends(services)):
    ledger_for(request, ledger_id, who, ("admin",))
    for field, networks in (("allow", body.allow), ("deny", body.deny)):
        bad = next((n for n in networks if not _is_network(n)), None)
        if bad is not None:
            raise ApiError(422, "invalid_request", f"{bad!r} is not an IP address or network", field)
    return svc.runtime.access.set_ip_rules(ledger_id, body.allow, body.deny)


@router.post("/v1/ledgers/{ledger_id}/signing-key/rotate", tags=["admin"],
          summary="Make a new SM2 signing key current (an event in the log)")
async def rotate(request: Request, ledger_id: str = LedgerId, who: Principal = Depends(principal)):
    ledger = ledger_for(request, ledger_id, who, ("admin",))
    key_id, vkey = await run_in_threadpool(ledger.rotate_signing_key)
    return {"key_id": key_id, "verifier_key": vkey}


@router.post("/v1/ledgers/{ledger_id}/anchors/now", status_code=202, tags=["admin"],
          summary="Anchor the ledger's latest checkpoint at once")
async def anchor_now(request: Request, ledger_id: str = LedgerId, who: Principal = Depends(principal), svc: Services = Depends(services)):
    ledger_for(request, ledger_id, who, ("admin",))
    if svc.runtime.worker is None:
        raise ApiError(409, "no_chain", "this service runs without a chain")
    svc.runtime.worker.anchor_now(ledger_id)
    return {"ledger": ledger_id, "anchoring": True}
