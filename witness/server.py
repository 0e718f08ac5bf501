"""The witness's HTTP service: c2sp.org/tlog-witness `add-checkpoint` with SM2 cosignatures
(docs/witness.md).

    POST <prefix>/add-checkpoint     old <size>\\n [<base64 consistency hash>\\n]... \\n <signed checkpoint>

Answers, as the protocol says: 200 with the cosignature line; 404 for a log it does not
witness; 403 when no signature by the log's configured key verifies; 400 for a malformed
request or an old size above the new; 409 with the size it last cosigned (text/x.tlog.size)
when the old size is not that; 422 when the consistency proof fails or one size has two roots.
It never cosigns two roots for one size: the stored checkpoint only grows along consistency
proofs from it. Refused checkpoints that carry the log's valid signature are kept (once each):
a second root for a size it cosigned, with the note it cosigned, proves a fork by itself; a
proof that fails may be anyone's bad proof of an honest checkpoint, so it is kept, not alarmed.
"""
from __future__ import annotations

import base64
import binascii
import logging
import re
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from evledger_verify.note import Checkpoint, CheckpointError, parse_note, parse_verifier_key, sm2_verify
from evledger_verify.proof import ProofError, hash_function, verify_consistency

from .state import WitnessState

log = logging.getLogger("evledger.witness")

MAX_REQUEST_BYTES = 64 * 1024  # 63 proof lines and a checkpoint with its signatures: a few KB
MAX_PROOF_LINES = 63
SIZE_CONTENT_TYPE = "text/x.tlog.size"
_OLD_LINE = re.compile(r"old (0|[1-9][0-9]{0,19})")  # a tree size below 2**64


@dataclass
class WitnessedLog:
    """A log this witness follows: its origin, its tree hash, the verifier keys it signs with."""
    origin: str
    alg: str
    keys: list[tuple[str, bytes, bytes]] = field(default_factory=list)  # (name, key ID, public key)


def witnessed_logs(sm3_keys: list[str], sha256_keys: list[str]) -> dict[str, WitnessedLog]:
    """The logs named by their verifier keys (a key's name is its log's origin); ValueError for
    a key that is not one, or one origin given with both hashes."""
    logs: dict[str, WitnessedLog] = {}
    for alg, keys in (("sm3", sm3_keys), ("sha256", sha256_keys)):
        for vkey in keys:
            try:
                name, kid, public_key = parse_verifier_key(vkey.strip())
            except CheckpointError as exc:
                raise ValueError(f"{vkey.strip()[:60]!r} is not a ledger verifier key: {exc}") from None
            entry = logs.setdefault(name, WitnessedLog(name, alg))
            if entry.alg != alg:
                raise ValueError(f"log {name!r} is given as both an SM3 and a SHA-256 log")
            entry.keys.append((name, kid, public_key))
    return logs


class Refused(Exception):
    def __init__(self, status: int, reason: str, body: str | None = None, evidence: str | None = None):
        super().__init__(reason)
        self.status, self.reason, self.evidence = status, reason, evidence  # evidence: None, "fork", "refused"
        self.body = body if body is not None else reason + "\n"


def parse_request(text: str) -> tuple[int, list[bytes], str]:
    """(old size, consistency proof, signed checkpoint note) of an add-checkpoint body."""
    head, blank, note = text.partition("\n\n")
    if not blank:
        raise Refused(400, "the request has no empty line between its old size and proof lines and the checkpoint")
    lines = head.split("\n")
    match = _OLD_LINE.fullmatch(lines[0])
    if not match or int(match.group(1)) >= 2**64:
        raise Refused(400, f"the first line must be 'old <size>' (decimal, no leading zeros, below 2**64), "
                           f"not {lines[0][:40]!r}")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise Refused(400, f"{len(lines) - 1} consistency proof lines, at most {MAX_PROOF_LINES}")
    proof = []
    for i, line in enumerate(lines[1:], 2):
        try:
            digest = base64.b64decode(line, validate=True)
        except binascii.Error:
            raise Refused(400, f"line {i} is not a base64 hash") from None
        if len(digest) != 32 or base64.b64encode(digest).decode() != line:
            raise Refused(400, f"line {i} is not the base64 of a 32-byte hash")
        proof.append(digest)
    return int(match.group(1)), proof, note


class Witness:
    """What the HTTP route calls: checks a request and cosigns, or says why not."""

    def __init__(self, state: WitnessState, logs: dict[str, WitnessedLog], registry: CollectorRegistry | None = None):
        self.state = state
        self.identity = state.identity()
        if self.identity.name in logs:  # a verifier tells the log's lines from its witnesses' by name
            raise ValueError(f"the witness's name {self.identity.name!r} is the origin of a log it witnesses")
        self.logs = logs
        self.registry = registry if registry is not None else CollectorRegistry()
        self.cosigned_total = Counter("evledger_witness_cosigned", "Checkpoints cosigned", ["origin"],
                                      registry=self.registry)
        self.refused_total = Counter("evledger_witness_refused", "Requests refused, by HTTP status",
                                     ["status"], registry=self.registry)

    def add_checkpoint(self, text: str) -> tuple[int, str, str]:
        """(HTTP status, content type, body) for an add-checkpoint request body."""
        origin = note = None
        try:
            old, proof, note = parse_request(text)
            try:
                body, signatures = parse_note(note)
                checkpoint = Checkpoint.parse_body(body)
            except CheckpointError as exc:
                raise Refused(400, f"the checkpoint is malformed: {exc}") from None
            origin = checkpoint.origin
            wlog = self.logs.get(origin)
            if wlog is None:
                raise Refused(404, f"this witness does not witness a log with origin {origin!r}")
            self._check_signature(wlog, body, signatures)
            cosignature = self._cosign(wlog, old, proof, checkpoint, body, note)
        except Refused as refusal:
            self.refused_total.labels(str(refusal.status)).inc()
            if refusal.evidence:
                self._keep(origin, refusal, note)
            content_type = SIZE_CONTENT_TYPE if refusal.status == 409 else "text/plain; charset=utf-8"
            return refusal.status, content_type, refusal.body
        self.cosigned_total.labels(origin).inc()
        return 200, "text/plain; charset=utf-8", cosignature

    def _keep(self, origin: str, refusal: Refused, note: str) -> None:
        """Keep a refused signed checkpoint as evidence, and say so: a fork is an ALERT unless
        the same one was seen before, even when it cannot be kept (the refusal goes out anyway)."""
        latest = self.state.latest(origin)
        try:
            kept = self.state.record_refusal(origin, refusal.status, refusal.evidence, refusal.reason,
                                             self._logs_own(note), latest.note if latest is not None else None)
        except OSError as exc:
            kept = f"not kept: {exc}"
        if kept == "again":
            return
        if refusal.evidence == "fork":
            log.error("ALERT witness: log %r signed two roots for one size: %s (%s)", origin, refusal.reason, kept)
        else:
            log.warning("witness refused a signed checkpoint of %r: %s (%s)", origin, refusal.reason, kept)

    def _logs_own(self, note: str) -> str:
        """The note with only the log's own signature lines: what proves what the log signed
        (lines by other keys are anyone's, and would let one checkpoint be kept many times)."""
        body, signatures = parse_note(note)
        keys = {(name, kid) for name, kid, _ in self.logs[Checkpoint.parse_body(body).origin].keys}
        return body + "\n" + "".join(f"\u2014 {n} {base64.b64encode(k + sig).decode()}\n"
                                      for n, k, sig in signatures if (n, k) in keys)

    def _check_signature(self, wlog: WitnessedLog, body: str, signatures) -> None:
        known = [(sig, pub) for n, k, sig in signatures for name, kid, pub in wlog.keys if (n, k) == (name, kid)]
        if not known:
            raise Refused(403, f"the checkpoint carries no signature by a key this witness trusts for {wlog.origin!r}")
        if len(known) > len(wlog.keys):  # one line per trusted key at most: bounds the SM2 work
            raise Refused(403, "the checkpoint carries more signature lines by the log's keys than it has keys")
        for sig, public_key in known:  # signed-note: a known key's line that fails makes the note malformed
            if not sm2_verify(public_key, body.encode(), sig):
                raise Refused(403, f"a signature by a key of {wlog.origin!r} does not verify")

    def _cosign(self, wlog: WitnessedLog, old: int, proof: list[bytes], checkpoint: Checkpoint, body: str,
                note: str) -> str:
        size, root = checkpoint.size, checkpoint.root
        if old > size:
            raise Refused(400, f"old size {old} is above the checkpoint's size {size}")
        with self.state.log_lock(wlog.origin):  # the check and the store are one step
            latest = self.state.latest(wlog.origin)
            stored_size = latest.size if latest is not None else 0
            if old != stored_size:
                raise Refused(409, f"old size {old} is not the size last cosigned, {stored_size}", f"{stored_size}\n")
            if size == 0 and root != hash_function(wlog.alg)(b""):
                raise Refused(422, "a checkpoint of size 0 must have the empty tree's root", evidence="refused")
            if old == 0:
                if proof:
                    raise Refused(422, "old size 0 takes no consistency proof")
            else:
                try:
                    verify_consistency(wlog.alg, old, size, proof, latest.root, root)
                except ProofError as exc:
                    why = (f"size {size} has root {root.hex()}, but this witness cosigned root {latest.root.hex()} "
                           f"for it" if old == size and latest.root != root else
                           f"not consistent with the cosigned checkpoint at size {old}: {exc}")
                    fork = old == size and latest.root != root
                    raise Refused(422, why, evidence="fork" if fork else "refused") from None
            line = self.identity.cosign(body)  # the bytes the log signed, as received
            if latest is None or size != latest.size:
                self.state.store(wlog.origin, size, root, self._logs_own(note))
        return line


def create_app(witness: Witness, prefix: str = "") -> Starlette:
    prefix = prefix.rstrip("/")

    async def add_checkpoint(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_REQUEST_BYTES):
            return PlainTextResponse(f"the request body is over {MAX_REQUEST_BYTES} bytes\n", 413)
        data = b""
        async for chunk in request.stream():
            data += chunk
            if len(data) > MAX_REQUEST_BYTES:
                return PlainTextResponse(f"the request body is over {MAX_REQUEST_BYTES} bytes\n", 413)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return PlainTextResponse("the request body is not UTF-8 text\n", 400)
        status, content_type, body = await run_in_threadpool(witness.add_checkpoint, text)
        return Response(body, status, media_type=content_type)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse(f"ok {witness.identity.name}\n")

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(witness.registry), media_type="text/plain; version=0.0.4")

    async def key(request: Request) -> Response:
        return PlainTextResponse(witness.identity.verifier_key + "\n")

    return Starlette(routes=[
        Route(f"{prefix}/add-checkpoint", add_checkpoint, methods=["POST"]),
        Route(f"{prefix}/healthz", healthz, methods=["GET"]),
        Route(f"{prefix}/metrics", metrics, methods=["GET"]),
        Route(f"{prefix}/key", key, methods=["GET"]),
    ])
