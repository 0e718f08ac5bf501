"""Request bodies, read one way for every route: counted against the route's limit as they
stream in (chunked or not), cut off when they trickle, and parsed by one JSON parser whose
depth is bounded by the parser itself, never by the process's recursion limit (web3's
dependencies raise that to 100,000, deep enough for the standard library's parser to overflow
the C stack). The limits and timeouts are documented in docs/api.md, "Limits and timeouts"."""
from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from fastapi import Request
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

KIB, MIB = 1 << 10, 1 << 20
MAX_BATCH_BYTES = 16 * MIB
MAX_RECORD_BODY_BYTES = 256 * KIB  # a valid record encodes to at most 16 KiB; escapes may grow its text 6x
# The offline verifier's bundle limit (1 MiB) and room for the request's other fields; the route
# holds the bundle's own text to that limit, as the offline verifier holds a bundle file.
MAX_VERIFY_BODY_BYTES = 1 * MIB + 64 * KIB
MAX_SMALL_BODY_BYTES = 64 * KIB  # ledgers, API keys, IP rules, and routes that take no body



@dataclass(frozen=True)
class BodyTimeouts:
    """Modelled on Apache's mod_reqtimeout (body=30,MinRate=...): a body must arrive within
    `grace_s` plus one second per `min_rate` bytes, and never pause longer than `idle_s`."""

    grace_s: float = 30.0
    min_rate: int = 64 * KIB
    idle_s: float = 15.0

    @classmethod
    def scaled(cls, grace_s: float) -> "BodyTimeouts":
        """`evledger serve --body-timeout`: the idle timeout is half the grace period."""
        return cls(grace_s=grace_s, idle_s=grace_s / 2)


class BodyError(HTTPException):
    """A body refused before the route sees it; `code` is one of docs/api.md's error codes.
    An HTTPException so that FastAPI hands it to the error handlers as it is."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(status_code=status, detail=message, headers=headers)
        self.code, self.field = code, field


def parse_json(body: bytes, field: str | None = None):
    """The one JSON parser of request bodies: orjson, strict UTF-8 (no lone surrogates), depth
    at most 1,024, numbers that fit a double."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BodyError(400, "malformed_json", f"the body is not JSON: {exc}", field) from None


class BodyLimits:
    """ASGI middleware: each request's body is counted against `limit_for(method, path)` as it
    arrives; a declared Content-Length over the limit is refused before any byte is read."""

    def __init__(self, app, limit_for: Callable[[str, str], tuple[int, str]],
                 refuse: Callable[[int, str, str], object], timeouts: BodyTimeouts = BodyTimeouts()):
        self.app = app
        self.timeouts = timeouts
        self.limit_for = limit_for
        self.refuse = refuse  # (status, code, message) -> the one error shape, as a Response

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit, code = self.limit_for(scope["method"], scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            response = self.refuse(413, code, f"the body is {declared:,} bytes; the limit is {limit:,}")
            return await response(scope, receive, send)
        t = self.timeouts
        started = None  # the body's clock starts when the route first reads it, not at the head
        received = 0
        done = not (declared or _header(scope, b"transfer-encoding"))  # a request with no body

        async def limited_receive():
            nonlocal started, received, done
            if done:  # the body is in: what follows (a disconnect) may take as long as it takes
                return await receive()
            started = started or time.monotonic()
            allowed = t.grace_s + received / t.min_rate - (time.monotonic() - started)
            try:
                message = await asyncio.wait_for(receive(), timeout=max(0.0, min(allowed, t.idle_s)))
            except TimeoutError:
                raise BodyError(408, "body_timeout",
                                f"the body came too slowly: {received:,} bytes in {time.monotonic() - started:.1f} s "
                                f"(a body must arrive within {t.grace_s:g} s plus one second per {t.min_rate:,} "
                                f"bytes, without a pause of {t.idle_s:g} s)") from None
            if message["type"] != "http.request":
                # Gone mid-body: no one reads an answer, but the route must stop, not log a traceback.
                raise BodyError(400, "client_disconnected", f"the client went away after {received:,} bytes of the body")
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyError(413, code, f"the body exceeds the limit of {limit:,} bytes")
            done = not message.get("more_body", False)
            return message

        async def send_closing_early(message):
            # An answer given before the whole body came in (a 401, 404, 413, 429, 408): the rest
            # of the body would be read as the next request's head, so close the connection.
            if message["type"] == "http.response.start" and not done:
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, limited_receive, send_closing_early)


class InFlight:
    """Back-pressure: the body bytes admitted and not yet answered, per ledger and in all. A
    request that would go over either budget is refused at once (429, Retry-After) instead of
    queueing, so a flood of one ledger holds bounded memory and leaves the others their share.
    A body without a Content-Length is charged its route's limit."""

    def __init__(self, per_ledger: int = 64 * MIB, total: int = 256 * MIB, retry_after_s: int = 1,
                 verifications: int = 2 * (os.cpu_count() or 1)):
        self.per_ledger, self.total, self.retry_after_s = per_ledger, total, retry_after_s
        self.verifications = verifications
        self._by_ledger: dict[str, int] = {}
        self._all = 0
        self._verifying = 0

    def _busy(self, message: str) -> BodyError:
        return BodyError(429, "too_many_requests", f"{message}; retry after {self.retry_after_s} s",
                         headers={"Retry-After": str(self.retry_after_s)})

    def admit_verification(self) -> Callable[[], None]:
        """The CPU-heavy answers: the public verifier (unauthenticated, an SM2 check in pure
        Python) and certificates (the CJK font subset for the page's characters, seconds for
        thousands of them): at most `verifications` run at once, so that they never starve ingest."""
        if self._verifying >= self.verifications:
            raise self._busy(f"{self._verifying} verifications are running")
        self._verifying += 1

        def release() -> None:
            self._verifying -= 1

        return release

    def admit(self, ledger_id: str, nbytes: int) -> Callable[[], None]:
        """Charge `nbytes` to the ledger (event-loop only: no lock); the release to call once
        the request is answered. BodyError 429 when a budget is spent."""
        held = self._by_ledger.get(ledger_id, 0)
        if held + nbytes > self.per_ledger or self._all + nbytes > self.total:
            whose, held = ((f"ledger {ledger_id!r}", held) if held + nbytes > self.per_ledger
                           else ("this service", self._all))
            raise self._busy(f"{whose} has {held / MIB:.0f} MiB of submissions in flight")
        self._by_ledger[ledger_id] = held + nbytes
        self._all += nbytes

        def release() -> None:
            left = self._by_ledger[ledger_id] - nbytes
            if left:
                self._by_ledger[ledger_id] = left
            else:
                del self._by_ledger[ledger_id]
            self._all -= nbytes

        return release


def _header(scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


def _content_length(scope) -> int | None:
    value = _header(scope, b"content-length")
    return int(value) if value is not None and value.isdigit() else None


class JSONRequest(Request):
    """A request whose JSON body is read by `parse_json` (FastAPI's Body parameters use this)."""

    async def json(self):
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


def route_class(before_body: Callable[[Request], None]) -> type[APIRoute]:
    """Routes that run `before_body(request)` (authentication, admission) before their body is
    read, so that a request refused for who sent it costs no body, and read JSON bodies with
    `parse_json`."""

    class EvidenceRoute(APIRoute):
        def get_route_handler(self):
            handler = super().get_route_handler()

            async def read_after_checks(request: Request):
                request = JSONRequest(request.scope, request.receive)
                release = before_body(request)
                try:
                    return await handler(request)
                finally:
                    if release is not None:
                        release()

            return read_after_checks

    return EvidenceRoute
