"""Liveness, readiness and metrics."""
from __future__ import annotations

import time

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse

from ..deps import EvidenceRoute, Services, services
from ..errors import ORJSONResponse

router = APIRouter(route_class=EvidenceRoute)


# HEAD too: load balancers and uptime checkers probe with it.
@router.api_route("/healthz", methods=["GET", "HEAD"], tags=["operations"], summary="The process is up")
async def healthz(svc: Services = Depends(services)):
    return {"status": "ok", "uptime_s": round(time.time() - svc.runtime.started, 1)}


@router.api_route("/readyz", methods=["GET", "HEAD"], tags=["operations"], summary="The SM3 kernels are compiled and every ledger is sealing "
                                                  "checkpoints")
async def readyz(svc: Services = Depends(services)):
    problems = svc.runtime.problems()
    if problems:
        return ORJSONResponse({"status": "not ready", "problems": problems}, status_code=503)
    return {"status": "ready", "ledgers": len(svc.runtime.service.ledgers())}


@router.get("/metrics", tags=["operations"], response_class=PlainTextResponse, summary="Prometheus metrics")
async def prometheus(svc: Services = Depends(services)):
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    svc.runtime.refresh_gauges()
    return PlainTextResponse(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)
