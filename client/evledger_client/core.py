"""What the sync and the async client share, with no I/O of their own: where to connect and
with which key, the requests each call makes and how their answers read, evidence ids, how
records are cut into batches, a file's upload body, and when to try again."""
from __future__ import annotations

import functools
import hashlib
import os
import re
import ssl
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, NamedTuple

import orjson
from tenacity import retry_if_exception, stop_after_delay, wait_random_exponential

from .errors import (RETRYABLE, BadAnswer, ConnectionFailed, EvledgerError, InvalidRecord, PayloadTooLarge,
                     error_from_answer, record_refusal)

# The server's documented limits on POST /records/batch (docs/api.md): a batch is cut before either.
MAX_BATCH_RECORDS = 10_000
MAX_BATCH_BYTES = 16 << 20
# Defaults well under them: four batches in flight stay inside a ledger's default in-flight
# budget (64 MiB of declared bodies), and a retried batch resends little.
BATCH_RECORDS = 2_000
BATCH_BYTES = 4 << 20
MAX_FILE_BYTES = 1 << 30
FILE_CHUNK = 1 << 20
PROBE_OVER = 1 << 20  # a body larger than this is preceded by a probe of the key, ledger and fields
RETRY_AFTER_CAP = 60.0  # a Retry-After longer than this is waited this long, then asked again


@dataclass(frozen=True)
class Settings:
    url: str
    ledger: str | None
    api_key: str | None
    verify: ssl.SSLContext | bool
    timeout: float
    retry_for: float


def settings(url: str | None = None, ledger: str | None = None, api_key: str | None = None, *,
             ca_file: str | None = None, verify: bool = True, timeout: float = 60.0,
             retry_for: float = 300.0) -> Settings:
    """Arguments first, then EVLEDGER_URL, EVLEDGER_LEDGER, EVLEDGER_API_KEY and EVLEDGER_CA_FILE
    (a PEM file of the certificates to trust, e.g. a self-signed server's)."""
    url = url or os.environ.get("EVLEDGER_URL")
    if not url:
        raise ValueError("no service URL: pass url= or set EVLEDGER_URL")
    check_url(url)
    ca_file = ca_file or os.environ.get("EVLEDGER_CA_FILE")
    context: ssl.SSLContext | bool = verify
    if verify and ca_file:
        try:
            context = ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot read the CA file {ca_file}: {exc}") from None
    if not timeout > 0 or not retry_for >= 0:
        raise ValueError("timeout must be over 0 seconds and retry_for at least 0")
    api_key = (api_key or os.environ.get("EVLEDGER_API_KEY") or "").strip() or None
    if api_key is not None and not API_KEY.fullmatch(api_key):
        raise ValueError("the API key holds a character an HTTP header cannot carry (a line end from the file it "
                         "was read from?)")  # the key itself is never printed
    return Settings(url.rstrip("/"), ledger or os.environ.get("EVLEDGER_LEDGER") or None, api_key, context,
                    timeout, retry_for)


def check_url(url: str) -> None:
    """A service URL: http(s), a host, a port in range; ValueError naming what is wrong."""
    import httpx

    if not url.startswith(("http://", "https://")):
        raise ValueError(f"the service URL must start with http:// or https://, not {url!r}")
    try:
        parsed = httpx.URL(url)
        port = parsed.port
    except (httpx.InvalidURL, ValueError) as exc:
        raise ValueError(f"the service URL {url!r} cannot be read: {exc}") from None
    if not parsed.host:
        raise ValueError(f"the service URL {url!r} names no host")
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"the service URL {url!r} names port {port}, outside 1-65535")


LEDGER_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")  # docs/api.md: a ledger id is a short slug
API_KEY = re.compile(r"[\x21-\x7e]{1,1024}")  # what a header value can carry as it is


@dataclass(frozen=True, slots=True)
class Receipt:
    """The service's receipt for one record: durable in its log when this exists.
    `duplicate` is True for a record it already had under this evidence_id (the original's
    receipt). Uploads also carry `content_hash`, `bytes` and `stored`."""

    evidence_id: str | None
    business_id: str | None
    seq: int
    leaf_hash: str
    received_at: str
    status: str
    duplicate: bool
    content_hash: str | None = None
    bytes: int | None = None
    stored: bool | None = None

    @classmethod
    def from_answer(cls, body) -> "Receipt":
        """The receipt in an answer (its bytes, or one item of a batch's results)."""
        body = answer_object(body) if isinstance(body, bytes) else body
        if not is_receipt(body):
            raise BadAnswer(f"the service's answer is not a receipt: {orjson.dumps(body)[:200].decode()}")
        return cls(body.get("evidence_id"), body.get("business_id"), body["seq"], body["leaf_hash"],
                   body["received_at"], body.get("status", "recorded"), bool(body.get("duplicate")),
                   body.get("content_hash"), body.get("bytes"), body.get("stored"))


def is_receipt(item) -> bool:
    return (type(item) is dict and type(item.get("seq")) is int and type(item.get("leaf_hash")) is str
            and type(item.get("received_at")) is str)


def answer_object(body: bytes) -> dict:
    """A success answer's JSON object; BadAnswer for anything else."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        text = body[:200].decode("utf-8", "replace")
        raise BadAnswer(f"the service's answer is not a JSON object: {text!r}")
    return parsed


class SubmitResult(list):
    """One item per record submitted, in order: its Receipt, or the InvalidRecord that refused it."""

    @property
    def receipts(self) -> list[Receipt]:
        return [r for r in self if isinstance(r, Receipt)]

    @property
    def refused(self) -> list[InvalidRecord]:
        return [r for r in self if isinstance(r, InvalidRecord)]

    @property
    def ok(self) -> bool:
        return not self.refused


# -- evidence ids ------------------------------------------------------------------------------

def derive_evidence_id(record: dict) -> str:
    """The evidence id a record without one is sent with: `auto-` and 32 hex digits of SHA-256
    over the record's fields as sorted compact JSON, `sealed` left out. Sending the same record
    again, after a crash or from another run, gives the same id, so the service answers with its
    first receipt instead of recording it twice. `sealed` is left out because the id is public
    (it is in the leaf): a hash of the plaintext would let anyone test guesses of sealed values.
    Records that differ only in `sealed` therefore need ids of their own."""
    visible = {k: v for k, v in record.items() if k not in ("sealed", "evidence_id") and v is not None}
    if isinstance(visible.get("content_hash"), str):  # the service keeps it in lower case
        visible["content_hash"] = visible["content_hash"].lower()
    return "auto-" + hashlib.sha256(orjson.dumps(visible, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


class Prepared(NamedTuple):
    body: bytes  # the record as it is sent
    evidence_id: object  # the id it is sent with (a string, unless the caller gave something else)


def prepare(record) -> Prepared | InvalidRecord:
    """The record as it is sent (JSON, an evidence id given to it if it had none), or why it
    cannot be sent at all: not an object, a value JSON cannot hold, nesting deeper than orjson
    writes (254; the service reads 1,024, so a batch of them always parses), too large."""
    if not isinstance(record, dict):
        return InvalidRecord(f"a record is a JSON object, not {type(record).__name__}", code="invalid_record",
                             field="record", rule="type")
    try:
        if record.get("evidence_id") is None:
            record = {**record, "evidence_id": derive_evidence_id(record)}
        sent = orjson.dumps(record)
    except TypeError as exc:  # a set, bytes, too deep (a float NaN is written as null)
        return InvalidRecord(f"the record cannot be written as JSON: {exc}", code="invalid_record",
                             field="record", rule="type")
    return Prepared(sent, record["evidence_id"]) if len(sent) <= MAX_RECORD_BYTES else too_large(len(sent))


# A record this long cannot go even in a batch of its own: refused here, so that one record never
# stops the others (the service refuses any record over 16 KiB of JSON anyway, docs/records.md).
MAX_RECORD_BYTES = MAX_BATCH_BYTES - 2


def too_large(size: int) -> InvalidRecord:
    return InvalidRecord(f"{size:,} bytes of JSON cannot be sent: a batch is at most {MAX_BATCH_BYTES:,} bytes (and "
                         f"the service takes a record of at most 16 KiB)", code="limit_exceeded", field="record",
                         rule="max_record_bytes")


class Batch(NamedTuple):
    indexes: list[int] | range  # the places of its records in what was submitted
    body: bytes  # a JSON array of them


def batches(prepared: list, max_records: int = BATCH_RECORDS, max_bytes: int = BATCH_BYTES):
    """Cut prepared records (Prepared; other items are skipped) into Batches of at most
    `max_records` records and `max_bytes` of body, in order. A record alone over `max_bytes`
    goes in a batch of its own (the server refuses it if it is over its own limit)."""
    check_batch_limits(max_records, max_bytes)
    indexes: list[int] = []
    parts: list[bytes] = []
    size = 2
    for i, item in enumerate(prepared):
        if not isinstance(item, Prepared):
            continue
        item = item.body
        if batch_full(len(parts), size, len(item), max_records, max_bytes):
            yield Batch(indexes, array(parts))
            indexes, parts, size = [], [], 2
        indexes.append(i)
        parts.append(item)
        size += len(item) + 1
    if parts:
        yield Batch(indexes, array(parts))


def array(parts: list[bytes]) -> bytes:
    """A batch's body: the records' JSON as one array."""
    return b"[" + b",".join(parts) + b"]"


def batch_full(records: int, size: int, adding: int, max_records: int, max_bytes: int) -> bool:
    """Whether a batch of `records` records and `size` bytes must be sent before one of `adding`
    bytes joins it (a record alone over `max_bytes` still goes in a batch of its own)."""
    return records > 0 and (records == max_records or size + adding + 1 > max_bytes)


def plan(records, batch_records: int, batch_bytes: int) -> tuple[list, list[Batch], bool]:
    """What `submit` sends: each record prepared, the batches, and whether a probe goes first
    (a batch over PROBE_OVER: see probe_call)."""
    prepared = [prepare(r) for r in records]
    cut = list(batches(prepared, batch_records, batch_bytes))
    return prepared, cut, any(len(b.body) > PROBE_OVER for b in cut)


def check_batch_limits(max_records: int, max_bytes: int) -> None:
    if not 1 <= max_records <= MAX_BATCH_RECORDS:
        raise ValueError(f"a batch holds 1 to {MAX_BATCH_RECORDS:,} records (the server's limit), not {max_records}")
    if not 1024 <= max_bytes <= MAX_BATCH_BYTES:
        raise ValueError(f"a batch is 1 KiB to {MAX_BATCH_BYTES >> 20} MiB (the server's limit), not {max_bytes}")


def matching(receipt, evidence_id):
    """The receipt, if it is for the evidence id sent (a receipt or a batch result's dict)."""
    said = receipt.get("evidence_id") if isinstance(receipt, dict) else receipt.evidence_id
    if said != evidence_id:
        raise BadAnswer(f"the service answered with a receipt for evidence id {said!r} where {evidence_id!r} was sent")
    return receipt


def batch_results(body: bytes, count: int) -> list[dict]:
    """The `results` of a batch's answer: one dict per record sent, a receipt or {"error"}."""
    results = answer_object(body).get("results")
    if not isinstance(results, list) or len(results) != count or not all(
            is_receipt(r) or (isinstance(r, dict) and isinstance(r.get("error"), dict)) for r in results):
        raise BadAnswer(f"the batch's answer does not hold a receipt or an error for each of the {count} records sent")
    return results


def merge(prepared: list, sent: list[tuple[Batch, list[dict]]]) -> SubmitResult:
    """SubmitResult in the submitted order, from the refusals `prepare` made and the batches' results."""
    out = SubmitResult(item if isinstance(item, InvalidRecord) else None for item in prepared)
    for batch, results in sent:
        for i, result in zip(batch.indexes, results):
            error = result.get("error")
            out[i] = record_refusal(i, error) if isinstance(error, dict) else \
                matching(Receipt.from_answer(result), prepared[i].evidence_id)
    for i, item in enumerate(out):
        if isinstance(item, InvalidRecord) and item.index is None:
            item.index = i
    return out


# -- requests ----------------------------------------------------------------------------------

class Call(NamedTuple):
    """One request of the API: method, path, query parameters, body (bytes, a FileBody or None),
    its content type, the statuses that are success."""

    method: str
    path: str
    params: dict | None = None
    body: object = None
    content_type: str | None = None
    ok: tuple[int, ...] = (200,)


def ledger_path(s: Settings, ledger: str | None, tail: str) -> str:
    ledger = ledger or s.ledger
    if not ledger:
        raise ValueError("no ledger: pass ledger= or set EVLEDGER_LEDGER")
    if not LEDGER_ID.fullmatch(ledger):
        raise ValueError(f"{ledger!r} is not a ledger id (lower-case letters, digits and -, at most 63)")
    return f"/v1/ledgers/{ledger}/{tail}"


def selector(seq=None, evidence_id=None, content_hash=None, file=None, business_id=None) -> dict:
    """Exactly one way of naming a record, as query parameters; a file is named by its SM3."""
    named = {k: v for k, v in (("seq", seq), ("evidence_id", evidence_id), ("content_hash", content_hash),
                                ("business_id", business_id), ("file", file)) if v is not None}
    if len(named) != 1:
        raise ValueError("name the record with exactly one of seq, evidence_id, content_hash or file")
    if file is not None:
        return {"content_hash": file_sm3(file)[0]}
    return named


def record_call(s: Settings, ledger: str | None, fields: dict) -> tuple[Call, Prepared]:
    prepared = prepare(fields)
    if isinstance(prepared, InvalidRecord):
        raise prepared
    return Call("POST", ledger_path(s, ledger, "records"), None, prepared.body, "application/json", (200, 201)), prepared


def probe_call(s: Settings, ledger: str | None) -> Call:
    """An empty batch: checks the key and the ledger before a large body is sent. A service that
    refuses a request before reading its body closes the connection, and a client still sending
    a large body may then see only the reset, not the answer (it would retry a refused key)."""
    return Call("POST", ledger_path(s, ledger, "records/batch"), None, b"[]", "application/json")


def batch_call(s: Settings, ledger: str | None, batch: Batch) -> Call:
    return Call("POST", ledger_path(s, ledger, "records/batch"), None, batch.body, "application/json")


def find_call(s: Settings, ledger: str | None, named: dict) -> Call:
    if "seq" in named:
        return Call("GET", ledger_path(s, ledger, f"records/{int(named['seq'])}"))
    return Call("GET", ledger_path(s, ledger, "records"), named)


def found(call: Call, answer: bytes) -> list[dict]:
    body = answer_object(answer)
    records = [body] if call.params is None else body.get("records")
    if not isinstance(records, list):
        raise BadAnswer("the service's answer holds no list of records")
    return records


def proof_call(s: Settings, ledger: str | None, named: dict, checkpoint: int | None = None,
               require_anchor: bool = True, what: str = "proof") -> Call:
    params = dict(named)
    if checkpoint is not None:
        params["checkpoint"] = int(checkpoint)
    if not require_anchor:
        params["require_anchor"] = "false"
    return Call("GET", ledger_path(s, ledger, what), params)


def bundle(answer: bytes) -> dict:
    """A proof bundle answer, if it has a bundle's shape (docs/proof-bundle.md)."""
    body = answer_object(answer)
    leaf, checkpoint = body.get("leaf"), body.get("checkpoint")
    if not (str(body.get("format", "")).startswith("evledger-proof/") and isinstance(leaf, dict)
            and isinstance(leaf.get("index"), int) and isinstance(checkpoint, dict)
            and isinstance(checkpoint.get("size"), int)):
        raise BadAnswer(f"the service's answer is not a proof bundle: {answer[:200]!r}")
    return body


def certificate_text(answer: bytes) -> str:
    """A certificate answer (HTML that embeds its bundle)."""
    text = answer.decode("utf-8", "replace")
    if "evledger-proof/" not in text:
        raise BadAnswer(f"the service's answer is not a certificate (no proof bundle in it): {answer[:200]!r}")
    return text


def checkpoint_call(s: Settings, ledger: str | None, size: int | None) -> Call:
    return Call("GET", ledger_path(s, ledger, "checkpoints/" + ("latest" if size is None else str(int(size)))))


def request_of(s: Settings, call: Call, streaming: bool) -> dict:
    """httpx's keyword arguments for `call`: a file's body as chunks (`streaming`: async ones)."""
    head = {"user-agent": "evledger-client/0.1"}
    if s.api_key:
        head["authorization"] = f"Bearer {s.api_key}"
    if call.content_type:
        head["content-type"] = call.content_type
    content = call.body
    if isinstance(content, FileBody):
        head["content-length"] = str(content.size)
        content = content.achunks() if streaming else content.chunks()
    return {"method": call.method, "url": call.path, "params": call.params, "content": content, "headers": head}


def check_answer(status: int, content: bytes, retry_after: str | None, ok: tuple[int, ...]) -> None:
    if status not in ok:
        raise error_from_answer(status, content, retry_after)


def request_error(exc: Exception, url: str) -> EvledgerError:
    """The client's error for what httpx raised: ConnectionFailed for the transport, BadAnswer
    for an answer it could not read (a body that does not decode, endless redirects)."""
    import httpx

    if isinstance(exc, httpx.TransportError):
        return transport_error(exc, url)
    return BadAnswer(f"{type(exc).__name__} reading the answer of {url}: {exc}")


def transport_error(exc: Exception, url: str) -> ConnectionFailed:
    """A ConnectionFailed for what httpx raised: not retryable when a certificate or the TLS
    handshake was refused, or the request could not be written at all (trying again cannot help)."""
    import httpx

    if isinstance(exc, (httpx.LocalProtocolError, httpx.UnsupportedProtocol)):  # its text may hold a header
        return ConnectionFailed(f"the request to {url} could not be written ({type(exc).__name__})", retryable=False)
    cause = exc
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, ssl.SSLError):
        return ConnectionFailed(f"TLS with {url} failed: {cause.reason or cause} (give the server's CA with "
                                f"ca_file= / --ca-file / EVLEDGER_CA_FILE if it is self-signed)", retryable=False)
    return ConnectionFailed(f"{type(exc).__name__} talking to {url}: {exc or 'no detail'}")


# -- retries -----------------------------------------------------------------------------------

def retryable(exc: BaseException) -> bool:
    """Safe to send again: every record carries its evidence id, so a repeat is answered with
    the first receipt, never recorded twice."""
    return isinstance(exc, RETRYABLE) or (isinstance(exc, ConnectionFailed) and exc.retryable)


_backoff = wait_random_exponential(multiplier=0.2, max=10.0)  # "full jitter": 0 to 0.2 * 2**n s


def wait_before_retry(state, retry_for: float = float("inf")) -> float:
    """The server's Retry-After when it gave one (at most RETRY_AFTER_CAP), else exponential
    backoff with full jitter, at most 10 s; never past the end of the retry time."""
    exc = state.outcome.exception()
    if isinstance(exc, EvledgerError) and exc.retry_after is not None:
        wait = min(exc.retry_after, RETRY_AFTER_CAP)
    else:
        wait = _backoff(state)
    return max(0.0, min(wait, retry_for - (state.seconds_since_start or 0.0)))


def retry_policy(s: Settings, on_retry: Callable | None = None) -> dict:
    """Keyword arguments of tenacity's Retrying / AsyncRetrying for these settings."""
    return {"retry": retry_if_exception(retryable), "wait": functools.partial(wait_before_retry, retry_for=s.retry_for),
            "stop": stop_after_delay(s.retry_for),
            "reraise": True, "before_sleep": on_retry}


# -- files -------------------------------------------------------------------------------------

def new_sm3():
    try:
        return hashlib.new("sm3")
    except ValueError:
        raise ValueError("this Python's OpenSSL has no SM3 (hashlib.new('sm3')), which uploads need: use a Python "
                         "linked with OpenSSL 1.1.1 or later with SM3 enabled") from None


def file_sm3(path) -> tuple[str, int]:
    """The SM3 (hex) and size of a file, read a MiB at a time."""
    digest = new_sm3()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(FILE_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def mtime_text(path) -> str:
    """The file's modification time as RFC 3339 in UTC: an upload's default occurred_at (UTC so
    that the evidence id derived from it is the same whatever the local time zone)."""
    return datetime.fromtimestamp(os.stat(path).st_mtime, timezone.utc).isoformat(timespec="seconds")


class FileBody:
    """A file as an upload's body, read a MiB at a time, its SM3 computed as it goes; each
    attempt reads it again from the start. `expected` is the SM3 it had when it was read before
    (to derive its evidence id), if it was."""

    def __init__(self, path, size: int, expected: str | None = None, evidence_id: str | None = None):
        self.path, self.size, self.expected, self.evidence_id = path, size, expected, evidence_id
        self.sm3 = new_sm3()

    def chunks(self):
        """The file's bytes; the last chunk is held back until the whole file is read and is as it
        was (size, and SM3 when known), so a file that changed is never recorded: the upload
        stops short and the service records nothing."""
        self.sm3 = new_sm3()
        left, held = self.size, None
        with open(self.path, "rb") as f:
            before = _identity(os.fstat(f.fileno()))
            while left and (chunk := f.read(min(FILE_CHUNK, left))):
                left -= len(chunk)
                self.sm3.update(chunk)
                if held is not None:
                    yield held
                held = chunk
            if left or f.read(1):  # raised into the upload: it stops, and is not tried again
                raise self.changed("changed size")
            if _identity(os.fstat(f.fileno())) != before or _identity(os.stat(self.path)) != before:
                raise self.changed("was written to or replaced")
        if self.expected is not None and self.sm3.hexdigest() != self.expected:
            raise self.changed(f"changed (SM3 {self.expected} when first read, {self.sm3.hexdigest()} now)")
        if held is not None:
            yield held

    async def achunks(self):
        for chunk in self.chunks():  # a local file: a MiB read does not hold the loop for long
            yield chunk

    def changed(self, how: str) -> InvalidRecord:
        return InvalidRecord(f"{self.path} {how} while it was uploaded, so it was not recorded: upload it again "
                             f"once it is complete", code="file_changed", field="file")


def _identity(st: os.stat_result) -> tuple:
    """What changes when a file is written to or replaced."""
    return st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns


def fields_call(s: Settings, ledger: str | None, fields: dict, body=b"") -> Call:
    """An upload with the record's fields as parameters; with the default empty body it is a
    probe: the service checks the key, the ledger and the fields, then refuses it as `empty_file`,
    recording nothing (see probe_call). Its 422 is the answer it expects (check_probe)."""
    return Call("POST", ledger_path(s, ledger, "files"), fields, body, "application/octet-stream",
                (200, 201) if body else (422,))


def check_probe(answer: bytes) -> None:
    """A probe's 422 must be `empty_file`: any other (a field refused) is the real request's fate too."""
    error = error_from_answer(422, answer)
    if error.code != "empty_file":
        raise error


def file_call(s: Settings, ledger: str | None, path, business_type: str, occurred_at: str | None,
              evidence_id: str | None, business_id: str | None) -> tuple[Call, FileBody]:
    """The upload of `path`: its record's fields as parameters, an evidence id derived (as for any
    record, from the fields and the file's SM3, read once before) unless one is given."""
    fields = {"business_type": business_type, "occurred_at": occurred_at or mtime_text(path)}
    if business_id is not None:
        fields["business_id"] = business_id
    expected = None
    if os.stat(path).st_size > MAX_FILE_BYTES:
        raise PayloadTooLarge(f"{path} is over the service's {MAX_FILE_BYTES >> 30} GiB limit on an upload",
                              code="file_too_large", field="file")
    if evidence_id is None:
        expected, size = file_sm3(path)
        evidence_id = derive_evidence_id({"content_hash": expected, **fields})
    else:
        size = os.stat(path).st_size
    body = FileBody(path, size, expected, evidence_id)
    return fields_call(s, ledger, {**fields, "evidence_id": evidence_id}, body), body


def file_receipt(answer: bytes, body: FileBody) -> Receipt:
    """The upload's receipt, once it is for the evidence id sent and the SM3 the service
    recorded is the one computed here as the file was sent."""
    receipt = matching(Receipt.from_answer(answer), body.evidence_id)
    if receipt.content_hash != body.sm3.hexdigest():
        raise BadAnswer(f"the service recorded SM3 {receipt.content_hash} for an upload that hashes to "
                        f"{body.sm3.hexdigest()} here")
    return receipt
