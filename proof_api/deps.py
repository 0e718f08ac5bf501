"""What every route depends on: the service's shared objects, who is asking (the API key) and
which ledger they may act on, and the checks run before a body is read (docs/api.md,
"Authentication and roles", "Limits and timeouts")."""
from __future__ import annotations

from dataclasses import dataclass

from fastapi import Path, Request

from ingest.ledger import LEDGER_ID_RE

from .access import ALL_LEDGERS, Principal
from .bodies import (MAX_BATCH_BYTES, MAX_RECORD_BODY_BYTES, MAX_SMALL_BODY_BYTES, MAX_VERIFY_BODY_BYTES, MIB,
                     InFlight, route_class)
from .errors import ApiError
from .runtime import Runtime

LEDGER_ID_PATTERN = f"^{LEDGER_ID_RE.pattern}$"  # anchored: pydantic searches, it does not full-match
LedgerId = Path(description="ledger id", pattern=LEDGER_ID_PATTERN, max_length=63)

# Routes that take records: admitted against the ledger's in-flight budget before the body is read.
_INGEST_SUFFIXES = ("/records", "/records/batch", "/files")
_LEDGER_ROUTE_PREFIX = "/v1/ledgers/"


@dataclass(frozen=True)
class Services:
    """The objects the routes share, kept on app.state."""

    runtime: Runtime
    in_flight: InFlight

    @property
    def metrics(self):
        return self.runtime.metrics


# The dependencies (`Depends(services)`, `Depends(principal)`) are `async def`: FastAPI runs a
# plain `def` dependency in the thread pool, a hop there and back on every request for what is a
# dictionary look-up. The plain functions below them are for code that is not a dependency.

def services_of(request: Request) -> Services:
    return request.app.state.services


async def services(request: Request) -> Services:
    return services_of(request)


def body_limit(runtime: Runtime, method: str, path: str) -> tuple[int, str]:
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


async def principal(request: Request) -> Principal:
    return principal_of(request)


def principal_of(request: Request) -> Principal:
    known = getattr(request.state, "principal", None)
    if known is not None:  # authenticated before the body was read
        return known
    header = request.headers.get("authorization", "")
    key = header[7:].strip() if header.lower().startswith("bearer ") else request.headers.get("x-api-key")
    who = services_of(request).runtime.access.authenticate(key)
    if who is None:
        raise ApiError(401, "unauthorized", "a valid API key is required (Authorization: Bearer evk_...)")
    return who


def ledger_for(request: Request, ledger_id: str, who: Principal, roles: tuple[str, ...]):
    """The ledger, if this key may act on it in one of `roles`. Another ledger's key learns
    nothing, not even whether the ledger exists: 404 either way."""
    runtime = services_of(request).runtime
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
    who = request.state.principal = principal_of(request)
    ledger_id = request.path_params.get("ledger_id")
    if request.method != "POST" or ledger_id is None or not path.endswith(_INGEST_SUFFIXES):
        return None
    ledger_for(request, ledger_id, who, ("producer",))
    svc = services_of(request)
    if path.endswith("/files"):  # streamed to disk a MiB at a time, never held whole
        charge = MIB
    else:
        limit = body_limit(svc.runtime, "POST", path)[0]
        declared = request.headers.get("content-length", "")
        charge = min(int(declared), limit) if declared.isdigit() else limit
    return svc.in_flight.admit(ledger_id, charge)


EvidenceRoute = route_class(before_body)
