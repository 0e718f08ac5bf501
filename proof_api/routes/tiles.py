"""The ledgers' static tiles (C2SP tlog-tiles), read-only, when `serve --publish-tiles` writes
them: `/tiles/<ledger>/checkpoint`, `/tiles/<ledger>/tile/...` (docs/tiles.md). The files are
the publication directory's, served as any static server would: no key (a tile is public by
nature once published; the ledger's IP rules still apply), the caching headers of tlog-tiles."""
from __future__ import annotations

import gzip

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from evledger_verify.tiles import TILE_WIDTH, parse_path

from ..deps import services_of
from ..errors import ApiError

router = APIRouter()

# Full tiles and bundles never change; a partial one may be deleted once its full one is out;
# the checkpoint moves with every batch (tlog-tiles: no caching beyond a few seconds).
IMMUTABLE = "public, max-age=31536000, immutable"
PARTIAL = "public, max-age=60"
CHECKPOINT = "public, max-age=5"


def cache_control(parsed: tuple) -> tuple[str, str]:
    """(Content-Type, Cache-Control) of a publication path, as parse_path reads it."""
    kind, _, width = parsed
    if kind == "checkpoint":
        return "text/plain; charset=utf-8", CHECKPOINT
    return "application/octet-stream", IMMUTABLE if width == TILE_WIDTH else PARTIAL


def accepts_gzip(header: str) -> bool:
    """Whether an Accept-Encoding header takes gzip: by name, else by `*`, with a q-value above 0
    (RFC 9110 §12.5.3)."""
    q = {}
    for item in header.lower().split(","):
        name, *params = (p.strip() for p in item.split(";"))
        weight = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    weight = float(param[2:])
                except ValueError:
                    weight = 0.0
        if name:
            q[name] = weight
    return q.get("gzip", q.get("*", 0.0)) > 0


def _read(path) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:  # not there (or taken down just now): as a static server, not found
        return None


@router.api_route("/tiles/{ledger_id}/{path:path}", methods=["GET", "HEAD"], tags=["tiles"],
                  summary="A file of the ledger's static tiles publication (C2SP tlog-tiles)")
async def get_tile(request: Request, ledger_id: str, path: str):
    runtime = services_of(request).runtime
    publication = runtime.tiles
    found, parsed = None, parse_path(path)
    if (publication is not None and ledger_id in publication.publishers and parsed is not None
            and runtime.access.ip_allowed(ledger_id, request.client.host if request.client else None)):
        found = await run_in_threadpool(_read, publication.directory(ledger_id) / path)
    if found is None:
        raise ApiError(404, "not_found", f"no published file {path[:200]!r} for ledger {ledger_id[:80]!r}"
                       + ("" if publication is not None else " (this service publishes no tiles)"))
    media_type, cache = cache_control(parsed)
    headers = {"Cache-Control": cache}
    if path.startswith("tile/entries/"):  # leaves compress well (tlog-tiles asks for it); hashes do not
        headers["Vary"] = "Accept-Encoding"
        if accepts_gzip(request.headers.get("accept-encoding", "")):  # HEAD too: the same headers as GET
            found = await run_in_threadpool(gzip.compress, found, 6)
            headers["Content-Encoding"] = "gzip"
    headers["Content-Length"] = str(len(found))
    return Response(found if request.method == "GET" else b"", media_type=media_type, headers=headers)
