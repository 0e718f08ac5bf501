"""Reading records and stored files (auditor; a verifier only where it names the record)."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import FileResponse

from ..access import Principal
from ..deps import EvidenceRoute, LedgerId, Services, ledger_for, principal, services
from ..errors import ApiError, ORJSONResponse
from .views import find_seqs, record_view, status_of

router = APIRouter(route_class=EvidenceRoute)


@router.get("/v1/ledgers/{ledger_id}/files/{content_hash}", tags=["records"],
         response_class=FileResponse, responses={200: {"content": {"application/octet-stream": {}}}},
         summary="A stored file by its SM3 (auditor): only with a file store, and only a file a record names")
async def get_file(request: Request, content_hash: str = Path(pattern="^[0-9a-fA-F]{64}$"),
                   ledger_id: str = LedgerId, who: Principal = Depends(principal), svc: Services = Depends(services)):
    ledger = ledger_for(request, ledger_id, who, ("auditor",))
    content_hash = content_hash.lower()
    if not ledger.seqs_by_content_hash(content_hash, limit=1):
        raise ApiError(404, "not_found", f"no record of ledger {ledger_id!r} has content_hash {content_hash}")
    if svc.runtime.files is None:
        raise ApiError(404, "not_stored", "this service keeps no files (start it with --file-store DIR)")
    path = svc.runtime.files.find(ledger_id, content_hash)
    if path is None:
        raise ApiError(404, "not_stored", f"the file of {content_hash} was not uploaded to this service's "
                                          "file store (only its hash was recorded)")
    return FileResponse(path, media_type="application/octet-stream", filename=content_hash,
                        headers={"X-Content-SM3": content_hash})


@router.get("/v1/ledgers/{ledger_id}/records/{seq}", tags=["records"], summary="A record and its status (auditor)")
async def get_record(request: Request, seq: int = Path(ge=0, le=2**63 - 1), ledger_id: str = LedgerId,
                     who: Principal = Depends(principal)):
    ledger = ledger_for(request, ledger_id, who, ("auditor",))
    find_seqs(ledger, who, seq, None, None)
    return ORJSONResponse(record_view(ledger, seq, who))


@router.get("/v1/ledgers/{ledger_id}/records", tags=["records"],
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
