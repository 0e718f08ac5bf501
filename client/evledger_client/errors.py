"""The errors the client raises: one class per kind of answer, each carrying what the server
said (its `code`, `field`, `rule` and `message`, docs/api.md "Errors") and the HTTP status."""
from __future__ import annotations

import email.utils
import time

import orjson


class EvledgerError(Exception):
    """An answer other than success, or none. `status` is None when no answer came."""

    status: int | None = None

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 field: str | None = None, rule: str | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.code, self.field, self.rule, self.retry_after = code, field, rule, retry_after

    def __str__(self) -> str:
        where = f" {self.field}" + (f" ({self.rule})" if self.rule else "") if self.field else ""
        said = f"{self.code}{where}: " if self.code else ""
        status = f"HTTP {self.status} " if self.status else ""
        return f"{status}{said}{self.message}"

    def as_dict(self) -> dict:
        """The error as the server words it (the shape of a receipts file's `error`)."""
        return {k: v for k, v in (("code", self.code), ("field", self.field), ("rule", self.rule),
                                  ("message", self.message)) if v is not None}


class ConnectionFailed(EvledgerError):
    """No answer: the server could not be reached, the connection broke, or it timed out.
    `retryable` is False where trying again cannot help (a certificate that does not verify)."""

    def __init__(self, message: str, *, retryable: bool = True):
        super().__init__(message, code="connection_failed")
        self.retryable = retryable


class BadRequest(EvledgerError):
    """400, 415 or a 422 about the request's parameters: the call is wrong, not the record."""


class Unauthorized(EvledgerError):
    status = 401


class Forbidden(EvledgerError):
    status = 403


class NotFound(EvledgerError):
    """404: `unknown_ledger` (a ledger this key may not see is answered as one that does not
    exist), `not_found` or `not_stored`."""

    status = 404


class Conflict(EvledgerError):
    """409: e.g. `not_anchored`, a proof asked for before an anchor covers the record."""

    status = 409


class PayloadTooLarge(EvledgerError):
    status = 413


class InvalidRecord(EvledgerError):
    """A record the server (or the client, before sending) refused: `invalid_record` or
    `limit_exceeded` with its field and rule (docs/records.md), or `conflict` for an
    evidence_id recorded with other content. In a batch's results, `index` is its place."""

    status = 422

    def __init__(self, message: str, *, index: int | None = None, **kw):
        super().__init__(message, **kw)
        self.index = index


class TooManyRequests(EvledgerError):
    """429: the ledger has too much in flight; retried after `Retry-After` until the client's
    retry time runs out."""

    status = 429


class Unavailable(EvledgerError):
    """503 (the log takes no writes now, a halted ledger), or 502/504 from a proxy in front."""

    status = 503


class ServerError(EvledgerError):
    """Any other answer the client does not expect (a 5xx from something in between)."""


class BadAnswer(EvledgerError):
    """A success status with a body that is not what the API answers (not JSON, a receipt
    without its fields): something else is listening, or a proxy rewrote it. Not retried."""

    def __init__(self, message: str):
        super().__init__(message, code="bad_answer")


_BY_STATUS = {400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict,
              413: PayloadTooLarge, 415: BadRequest, 429: TooManyRequests, 502: Unavailable, 503: Unavailable,
              504: Unavailable}
RECORD_CODES = ("invalid_record", "limit_exceeded", "conflict")
RETRYABLE = (TooManyRequests, Unavailable)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """`Retry-After` (RFC 9110 10.2.3): delay-seconds or an HTTP-date; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def error_from_answer(status: int, body: bytes, retry_after: str | None = None) -> EvledgerError:
    """The typed error for an answer with `status`, from the API's error shape when it has one."""
    said: dict = {}
    try:
        parsed = orjson.loads(body)
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
            said = parsed["error"]
    except orjson.JSONDecodeError:
        pass
    code = said.get("code") if isinstance(said.get("code"), str) else None
    message = said.get("message") if isinstance(said.get("message"), str) else None
    if message is None:
        text = body[:200].decode("utf-8", "replace").strip()
        message = f"the server answered {status}" + (f": {text}" if text else "")
    kind = _BY_STATUS.get(status)
    if status == 422:
        kind = InvalidRecord if code in RECORD_CODES else BadRequest
    elif kind is None:
        kind = ServerError
    return kind(message, status=status, code=code, field=_text(said.get("field")), rule=_text(said.get("rule")),
                retry_after=retry_after_seconds(retry_after))


def record_refusal(index: int, said: dict) -> InvalidRecord:
    """A batch's result item `{"error": {...}}` as an InvalidRecord at `index`."""
    return InvalidRecord(_text(said.get("message")) or "refused", index=index, status=422,
                         code=_text(said.get("code")), field=_text(said.get("field")), rule=_text(said.get("rule")))


def _text(value) -> str | None:
    return value if isinstance(value, str) else None
