"""Ledgers: the write path (records -> durable EvidenceRecorded events -> receipts), the
sequencer that follows each ledger's stream, and `LedgerService`, which holds many ledgers.

Data directory layout:
    <data dir>/log/                                the RocksDB log (all ledgers; another backend may replace it)
    <data dir>/ledgers/<ledger>/keys/              SM2 signing keys and the SM4 data key (0600)
    <data dir>/ledgers/<ledger>/projections/       tree and indexes, rebuildable from the log

One writer per ledger: submissions from any number of threads are group-committed, so records
arriving together share one log append (and the log's fsync). A receipt is returned only after
its event is durable.
"""
from __future__ import annotations

import gc
import logging
import os
import threading
from collections import deque
import secrets
from typing import NamedTuple
from pathlib import Path

import orjson

from merkle import hash_leaves
from merkle.checkpoint import Checkpoint, sign_checkpoint, verifier_key
from merkle.hashing import check_algorithm
from evledger_verify.proof import DIGEST_SIZE

from . import events as ev
from .group import GroupCommitter, Request
from .keys import LedgerKeys, idempotency_fingerprint, open_sealed, seal_fields
from .leaf import LEAF_TAIL, LEDGER_ID_RE, decode_leaf, leaf_prefix, record_json, utc_now_text
from .log import LogBackend, NewEvent, WrongExpectedVersion
from .projections import CheckpointMismatch, Projections
from .records import RecordError, validate_records
from .sequencer import LogCorruption, PreparedRecord, Sequencer, SequencerSettings

# What the layers above use of the sequencer and projections (settings, the errors that need a
# rebuild), named here so that they depend on the ledger alone.
__all__ = ["CheckpointMismatch", "Ledger", "LedgerError", "LedgerService", "LogCorruption", "Receipt",
           "SequencerSettings", "check_ledger_id"]

log = logging.getLogger("evledger.ledger")


class LedgerError(ValueError):
    """A request about a ledger that cannot be served; `code` is stable for API errors."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def check_ledger_id(ledger_id) -> str:
    if not isinstance(ledger_id, str) or not LEDGER_ID_RE.fullmatch(ledger_id):
        # Cut before quoting: the id may be a Kafka key or a URL of any length, and the error
        # travels in receipts and dead-letter headers that must stay small.
        shown = repr(ledger_id[:80]) + "..." if isinstance(ledger_id, str) and len(ledger_id) > 80 else repr(ledger_id)
        if len(shown) > 400:  # not a str: its repr may be long too
            shown = shown[:397] + "..."
        raise LedgerError("invalid_ledger_id", f"ledger id {shown} must match {LEDGER_ID_RE.pattern}")
    return ledger_id


class Receipt(NamedTuple):
    """What a producer gets back once its record is durable. `duplicate` is true when the
    evidence id was recorded before with the same content: this is that original receipt."""

    ledger: str
    seq: int
    leaf_hash: str
    received_at: str
    business_id: str
    evidence_id: str | None = None
    duplicate: bool = False

    def as_dict(self) -> dict:
        return self._asdict()


class _New(NamedTuple):
    index: int
    seq: int
    business_id: str
    evidence_id: str | None


class _Same(NamedTuple):
    evidence_id: str


def _conflict(evidence_id: str, seq: int | None) -> RecordError:
    where = f" (seq {seq})" if seq is not None else " in this batch"
    return RecordError("evidence_id", "conflict",
                       f"evidence_id {evidence_id!r} was already recorded{where} with different content")


class Ledger:
    def __init__(self, ledger_id: str, directory: Path, log_backend: LogBackend, created: dict,
                 settings: SequencerSettings):
        self.id = ledger_id
        self.directory = directory
        self.log = log_backend
        self.alg = created["alg"]
        self.origin = created["origin"]
        self.created = created
        self.keys = LedgerKeys(directory / "keys", self.origin)
        self._fingerprint_of_json = idempotency_fingerprint(self.keys.data_key())
        self.projections = Projections(directory / "projections", ledger_id, self.alg)
        # Evidence ids written but maybe not projected yet: id -> (fingerprint, seq, receipt),
        # the receipt None while its group is being written; and (seq, id) in seq order.
        self._recent: dict[str, tuple[bytes, int, Receipt | None]] = {}
        self._recent_order: deque[tuple[int, str]] = deque()
        self._recent_lock = threading.Lock()
        self._writer = GroupCommitter(self._write_group)
        self._log_unsure = False  # an append failed: the log may have moved (or reopened) since
        self.sequencer = Sequencer(ledger_id, log_backend, self.projections, settings, origin=self.origin,
                                   sign=self._sign, append=self.append_events)
        self.sequencer.on_projected.append(self._forget_projected)
        # Project whatever a crash or stop left unprojected before taking writes, so the index
        # answers idempotency checks for everything in the log (in bounded memory).
        self.sequencer.catch_up()
        self.current_key_id = self.projections.current_key_id()
        self._version = log_backend.version(ledger_id)
        self._next_seq = self.sequencer.record_count

    def _absorb_log_from(self, position: int) -> None:
        """After an append whose outcome is unknown: take the log's word for what is in it
        from `position` on. Records found there answer retries as duplicates."""
        tail = list(self.log.read(self.id, position))
        self._version = position + len(tail)
        records = [e for e in tail if e.type == ev.EVIDENCE_RECORDED]
        for e in tail:
            if e.type in (ev.LEDGER_CREATED, ev.SIGNING_KEY_ROTATED):
                self.current_key_id = orjson.loads(e.data)["key_id"]
        if not records:
            return
        digests = hash_leaves([e.data for e in records], self.alg)
        with self._recent_lock:
            for e, digest in zip(records, digests):
                body = orjson.loads(e.data)
                record = body["record"]
                self._next_seq = body["seq"] + 1
                if e.metadata:
                    receipt = Receipt(self.id, body["seq"], digest.tobytes().hex(), body["received_at"],
                                      record["business_id"], record["evidence_id"])
                    self._recent[record["evidence_id"]] = (ev.fingerprint_of(e.metadata), body["seq"], receipt)
                    self._recent_order.append((body["seq"], record["evidence_id"]))

    # -- the write path -------------------------------------------------------------------

    def submit(self, records: list) -> list[Receipt | RecordError]:
        """Validate and durably record `records`; one result per item, in order. A bad item
        gets its RecordError and never holds back the good ones."""
        if not isinstance(records, (list, tuple)):
            raise LedgerError("invalid_request", f"submit takes a list of records, got {type(records).__name__}")
        if self.sequencer.failure is not None:
            raise LedgerError("ledger_halted", f"ledger {self.id!r} stopped sealing checkpoints "
                              f"({self.sequencer.failure}); run `evledger rebuild {self.id}`")
        results = validate_records(records)
        good = [(i, r) for i, r in enumerate(results) if not isinstance(r, RecordError)]
        if good:
            written = self._writer.submit(("records", [r for _, r in good]))
            for (i, _), result in zip(good, written):
                results[i] = result
        return results

    def submit_one(self, record) -> Receipt:
        result = self.submit([record])[0]
        if isinstance(result, RecordError):
            raise result
        return result

    def append_events(self, new_events: list[NewEvent]) -> int:
        """Append non-record events (checkpoints, key rotations, anchors) in the write order."""
        return self._writer.submit(("events", new_events))

    def _write_group(self, group: list[Request]) -> None:
        """Turn every queued submission into events and append them all at once.

        A record's result is, until the append succeeds: a _New (its leaf index and receipt
        fields but the leaf hash), a _Same for a repeat of a record earlier in this group,
        a Receipt (a repeat of an earlier durable record) or a RecordError (a conflict)."""
        if self._log_unsure:
            # Before numbering anything: let the log reopen if a failed write left it refusing
            # writes (a full disk), then take its word for what it holds from our version on.
            try:
                self.log.recover()
                self._absorb_log_from(self._version)
            except Exception as exc:
                raise LedgerError("log_unavailable", f"ledger {self.id!r}: the log takes no writes now ({exc}); "
                                  f"nothing of this submission was recorded: retry later") from None
            self._log_unsure = False
        new_events: list[NewEvent] = []
        prepared: list = []  # what the sequencer is handed: a PreparedRecord or the event itself
        new_records: list[tuple] = []
        outcomes: list[list | None] = []
        leaves: list[bytes] = []
        in_group: dict[str, tuple] = {}  # evidence ids first written by this group -> (fingerprint, seq)
        recent_get = self._recent.get
        fingerprint_of_json = self._fingerprint_of_json
        evidence_recorded = ev.evidence_recorded
        received_at = utc_now_text()
        leaf_head = leaf_prefix(self.id, received_at)
        stem = None
        pending_key_id = None
        seq = self._next_seq
        for request in group:
            kind, items = request.item
            if kind == "events":
                stale = [e for e in items if e.type == ev.CHECKPOINT_SEALED
                         and orjson.loads(e.data)["key_id"] != self.current_key_id]
                if stale:  # signed just before a key rotation landed: the sequencer signs again
                    request.error = LedgerError("stale_signing_key", "checkpoint signed with a key that was "
                                                f"rotated out (current {self.current_key_id})")
                    outcomes.append(None)
                    continue
                new_events.extend(items)
                prepared.extend(items)
                for e in items:
                    if e.type == ev.SIGNING_KEY_ROTATED:
                        pending_key_id = orjson.loads(e.data)["key_id"]
                outcomes.append(None)
                continue
            results = []
            ids = [r.get("evidence_id") for r in items]
            # Unprojected ids first, then the index: the sequencer writes the index before it
            # forgets an id, so an id cannot slip between the two looks.
            recent = [recent_get(i) if i is not None else None for i in ids]
            stored = iter(self.projections.evidence_many([i for i in ids if i is not None]))
            for record, evidence_id, earlier in zip(items, ids, recent):
                fingerprint = encoded = None
                if evidence_id is not None:
                    encoded = record_json(record)  # the leaf's too, unless the record is filled in below
                    fingerprint = fingerprint_of_json(encoded)
                    hit = next(stored)
                    if evidence_id in in_group:
                        earlier = in_group[evidence_id]
                    if earlier is not None:
                        if earlier[0] != fingerprint:
                            results.append(_conflict(evidence_id, earlier[1]))
                        elif evidence_id in in_group:
                            results.append(_Same(evidence_id))
                        else:
                            results.append(earlier[2]._replace(duplicate=True))
                        continue
                    if hit is not None:
                        results.append(self._original_receipt(hit[0]) if hit[1] == fingerprint
                                       else _conflict(evidence_id, hit[0]))
                        continue
                # `record` is validate_record's own new dict, so it is filled in place (after
                # the fingerprint, which covers the record as submitted).
                if "business_id" not in record:
                    # Unique without a syscall per record: a random stem per group, then seq.
                    stem = stem or secrets.token_hex(6)
                    record["business_id"] = f"bf-{stem}-{seq}"
                    encoded = None
                if "sealed" in record:
                    record["sealed"] = seal_fields(self.keys.data_key(), self.id, record["sealed"])
                    encoded = None
                leaf = leaf_head + (encoded or record_json(record)) + b',"seq":' + str(seq).encode() + LEAF_TAIL
                results.append(_New(len(leaves), seq, record["business_id"], evidence_id))
                leaves.append(leaf)
                new_events.append(evidence_recorded(leaf, fingerprint))
                prepared.append(None)  # its PreparedRecord, once the leaf is hashed
                new_records.append((leaf, seq, record, fingerprint))
                if evidence_id is not None:
                    in_group[evidence_id] = (fingerprint, seq, None)
                seq += 1
            outcomes.append(results)
        # Everything that can fail happens before the append: after it, the group is durable
        # and must be acknowledged.
        flat = hash_leaves(leaves, self.alg).tobytes() if leaves else b""
        hexes = flat.hex()  # the receipts' leaf hashes, sliced: one conversion for the group
        if new_records:  # the sequencer appends these hashes to the tree rather than hashing again
            made = iter([PreparedRecord(*fields, flat[DIGEST_SIZE * i:DIGEST_SIZE * (i + 1)]) for i, fields in enumerate(new_records)])
            prepared = [next(made) if item is None else item for item in prepared]
        first_position = self._version
        try:
            if in_group:  # visible to the next groups before the append; a failure takes them back
                with self._recent_lock:
                    self._recent.update(in_group)
                    self._recent_order.extend((entry[1], evidence_id) for evidence_id, entry in in_group.items())
            if new_events:
                self._version = self.log.append(self.id, new_events, self._version)
        except WrongExpectedVersion as exc:
            self._drop_recent(in_group)
            self._absorb_log_from(first_position)
            raise LedgerError("concurrent_writer", f"ledger {self.id!r} has another writer (its stream "
                              f"moved to version {exc.actual}); nothing of this group was recorded") from None
        except BaseException as exc:
            # The append may or may not have reached the log (a timeout after the server
            # committed): believe the log, so a retry finds what did get in as duplicates.
            self._log_unsure = True
            self._drop_recent(in_group)
            try:
                self._absorb_log_from(first_position)
            except Exception:
                pass
            raise LedgerError("log_unavailable", f"ledger {self.id!r}: appending to the log failed ({exc}); "
                              f"retry: records that did reach the log come back as duplicates") from None
        self._next_seq = seq
        if pending_key_id is not None:
            self.current_key_id = pending_key_id
        if new_events:
            self.sequencer.offer(first_position, prepared)
        final: dict[str, Receipt] = {}
        for results in outcomes:
            for i, r in enumerate(results or ()):
                if type(r) is _New:
                    index, seq, business_id, evidence_id = r
                    results[i] = Receipt(self.id, seq, hexes[2 * DIGEST_SIZE * index:2 * DIGEST_SIZE * (index + 1)],
                                         received_at, business_id, evidence_id)
                    if evidence_id is not None:
                        final[evidence_id] = results[i]
        with self._recent_lock:
            for evidence_id, receipt in final.items():
                entry = self._recent.get(evidence_id)
                if entry is not None:  # else the sequencer projected it already
                    self._recent[evidence_id] = (entry[0], entry[1], receipt)
        for request, results in zip(group, outcomes):
            if results is None:
                if request.error is None:
                    request.result = self._version
            else:
                request.result = [final[r.evidence_id]._replace(duplicate=True) if type(r) is _Same else r
                                  for r in results]

    def _drop_recent(self, evidence_ids) -> None:
        with self._recent_lock:
            for evidence_id in evidence_ids:
                self._recent.pop(evidence_id, None)

    def _forget_projected(self, record_count: int) -> None:
        """The index now answers for every record below `record_count`."""
        with self._recent_lock:
            order = self._recent_order
            while order and order[0][0] < record_count:
                seq, evidence_id = order.popleft()
                entry = self._recent.get(evidence_id)
                if entry is not None and entry[1] == seq:  # not a later retry of a failed write
                    del self._recent[evidence_id]

    def _original_receipt(self, seq: int) -> Receipt:
        event = self.record(seq)
        record = event["record"]
        return Receipt(self.id, seq, self.projections.tree.leaf_hash(seq).hex(), event["received_at"],
                       record["business_id"], record.get("evidence_id"), duplicate=True)

    # -- signing ----------------------------------------------------------------------

    def _sign(self, checkpoint: Checkpoint, kid_hex: str) -> str:
        return sign_checkpoint(checkpoint, self.origin, self.keys.signing_key(kid_hex))

    def rotate_signing_key(self) -> tuple[str, str]:
        """Make a new SM2 key current; (its key id, its verifier key). Checkpoints signed
        before keep verifying with their own key id, which stays in the ledger's key list."""
        key = self.keys.new_signing_key()
        kid = self.keys.key_id_hex(key.public_key)
        vkey = verifier_key(self.origin, key.public_key)
        self.append_events([ev.json_event(ev.SIGNING_KEY_ROTATED, {
            "key_id": kid, "verifier_key": vkey, "previous_key_id": self.current_key_id,
            "rotated_at": utc_now_text()})])
        return kid, vkey

    # -- reading ------------------------------------------------------------------------

    def _check_seq(self, seq) -> None:
        if type(seq) is not int or seq < 0:
            raise LedgerError("invalid_request", f"a record's seq is a non-negative integer, got {seq!r}")

    def record(self, seq: int) -> dict:
        """The decoded leaf of record `seq` (it must be projected)."""
        self._check_seq(seq)
        position = self.projections.position_of(seq)
        if position is None:
            raise LedgerError("not_found", f"ledger {self.id!r} has no projected record {seq}")
        return decode_leaf(self._read_leaf(seq, position))

    def _read_leaf(self, seq: int, position: int) -> bytes:
        event = next(iter(self.log.read(self.id, position, 1)), None)
        if event is None or event.type != ev.EVIDENCE_RECORDED:
            raise LedgerError("not_found", f"ledger {self.id!r}: record {seq} is not at log position {position}; "
                              f"the projections are stale (run `evledger rebuild {self.id}`)")
        return event.data

    def leaf(self, seq: int) -> bytes:
        self._check_seq(seq)
        position = self.projections.position_of(seq)
        if position is None:
            raise LedgerError("not_found", f"ledger {self.id!r} has no projected record {seq}")
        return self._read_leaf(seq, position)

    def leaves(self, first: int, count: int) -> list[bytes]:
        """The leaves of records `first` to `first + count - 1` (projected), read from the log
        in one forward pass: the records are in seq order there, between other events."""
        if count <= 0:
            return []
        position = self.projections.position_of(first)
        if position is None:
            raise LedgerError("not_found", f"ledger {self.id!r} has no projected record {first}")
        out: list[bytes] = []
        while len(out) < count:
            # The records still wanted, and room for the few other events between them (checkpoints,
            # anchors, cosignatures); a second read takes what that room did not hold.
            events = list(self.log.read(self.id, position, min(8192, count - len(out) + 64)))
            if not events:
                raise LedgerError("not_found", f"ledger {self.id!r}: the log ends before record {first + count - 1}")
            out += [e.data for e in events if e.type == ev.EVIDENCE_RECORDED]
            position = events[-1].position + 1
        return out[:count]

    def open_sealed(self, record: dict) -> dict | None:
        sealed = record.get("sealed")
        return None if sealed is None else open_sealed(self.keys.data_key(), self.id, sealed)

    # -- the read façade: what the layers above (API, CLI, anchor worker) read, so that none of
    # them reaches into the projections or the sequencer --------------------------------------

    def checkpoint(self, size: int) -> dict | None:
        return self.projections.checkpoint(size)

    def checkpoints(self, after_size: int = -1, limit: int | None = None) -> list[dict]:
        return self.projections.checkpoints(after_size=after_size, limit=limit)

    def latest_checkpoint(self) -> dict | None:
        return self.projections.latest_checkpoint()

    def anchor(self, size: int) -> dict | None:
        return self.projections.anchor(size)

    def anchors(self) -> list[dict]:
        return self.projections.anchors()

    def latest_anchor(self, status: str | None = None) -> dict | None:
        return self.projections.latest_anchor(status=status)

    def cosignatures(self, size: int) -> list[dict]:
        return self.projections.cosignatures(size)

    def latest_cosignature(self, witness_key_id: str) -> dict | None:
        return self.projections.latest_cosignature(witness_key_id)

    def cosigned_note(self, checkpoint: dict) -> tuple[str, list[dict]]:
        """The checkpoint's note with its witnesses' cosignature lines after the ledger's own
        (c2sp.org/tlog-witness: the lines are concatenated to the note), and those cosignatures."""
        cosignatures = self.cosignatures(checkpoint["size"])
        return checkpoint["note"] + "".join(c["line"] for c in cosignatures), cosignatures

    def first_confirmed_anchor(self, seq: int) -> dict | None:
        """The first confirmed anchor that covers record `seq`."""
        return self.projections.first_confirmed_anchor(seq)

    def find_evidence(self, evidence_id: str) -> int | None:
        """The seq of the projected record with this evidence id."""
        hit = self.projections.evidence(evidence_id)
        return None if hit is None else hit[0]

    def seqs_by_content_hash(self, content_hash: str, limit: int | None = None) -> list[int]:
        return self.projections.seqs_by_content_hash(content_hash, limit=limit)

    def seqs_by_business_id(self, business_id: str, limit: int | None = None) -> list[int]:
        return self.projections.seqs_by_business_id(business_id, limit=limit)

    @property
    def projected_count(self) -> int:
        """Records the indexes and the tree answer for (record_count may be ahead of it)."""
        return self.projections.record_count

    def leaf_hash(self, seq: int) -> bytes:
        return self.projections.tree.leaf_hash(seq)

    def inclusion_proof(self, seq: int, size: int) -> list[bytes]:
        return self.projections.tree.inclusion_proof(seq, size)

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        return self.projections.tree.consistency_proof(first, second)

    def on_sealed(self, callback) -> None:
        """Call `callback` after each checkpoint is sealed (the anchor worker's wake-up)."""
        self.sequencer.on_sealed.append(callback)

    def on_leaves(self, callback) -> None:
        """Call `callback(first_seq, leaves)` with each run of leaves as it enters the tree."""
        self.sequencer.on_leaves.append(callback)

    def on_cosigned(self, callback) -> None:
        """Call `callback` with each witness cosignature logged (after the checkpoint's seal)."""
        self.sequencer.on_cosigned.append(callback)

    def problem(self) -> str | None:
        """Why the ledger is not sealing checkpoints now, if it is not."""
        if self.sequencer.failure is not None:
            return f"sequencer stopped: {self.sequencer.failure}"
        if self.sequencer.stalled is not None:
            return f"sequencer retrying (no checkpoints meanwhile): {self.sequencer.stalled}"
        if self.projections.unavailable:
            return f"projections take no writes: {self.projections.unavailable}"
        return None

    def verifier_keys(self) -> dict[str, str]:
        """Key id (hex) -> verifier key, for every signing key the ledger ever used."""
        return {k["key_id"]: k["verifier_key"] for k in self.projections.signing_keys()}

    def wait_for_checkpoint(self, size: int, timeout: float = 30.0) -> dict | None:
        """The first logged checkpoint covering `size` records, waiting for it to be sealed."""
        if self.sequencer.wait(lambda: self.sequencer.sealed_size >= size
                               and self.projections.latest_checkpoint() is not None
                               and self.projections.latest_checkpoint()["size"] >= size, timeout):
            return self.projections.checkpoints(after_size=size - 1, limit=1)[0]
        return None

    @property
    def record_count(self) -> int:
        return self._next_seq

    def close(self) -> None:
        self.sequencer.stop()
        if self.sequencer._thread is not None:  # did not stop in time: it still uses them
            log.error("ledger %r: sequencer did not stop; its projections are left open", self.id)
            return
        try:
            self.sequencer.flush()
        finally:
            self.projections.close()


def tune_gc() -> None:
    """Make the cyclic garbage collector run less often in a process that ingests.

    Every record allocates a dozen short-lived objects, so with the default threshold (700
    allocations) the collector runs every few dozen records and walks the young generation
    each time; measured on the write path, that cost more than a third of its throughput.
    Nothing on the write path makes reference cycles, so collecting every 50,000 allocations
    loses nothing."""
    if gc.get_threshold()[0] < 50_000:
        gc.set_threshold(50_000, 20, 100)


class LedgerService:
    """Every ledger in one data directory, over one log backend."""

    def __init__(self, data_dir: str | os.PathLike, log_backend: LogBackend | None = None,
                 settings: SequencerSettings = SequencerSettings(), start: bool = True):
        self.data_dir = Path(data_dir)
        tune_gc()
        if log_backend is None:
            from .log_rocksdb import RocksDBLog
            log_backend = RocksDBLog(self.data_dir / "log")
        self.log = log_backend
        self.settings = settings
        self._start = start
        self._ledgers: dict[str, Ledger] = {}
        self._lock = threading.Lock()
        self._on_opened: list = []  # called with each ledger opened from now on
        try:
            for stream in self.log.streams():
                if LEDGER_ID_RE.fullmatch(stream):
                    self._open(stream)
        except BaseException:
            self.close()
            raise

    def _open(self, ledger_id: str) -> Ledger:
        first = next(iter(self.log.read(ledger_id, 0, 1)), None)
        if first is None or first.type != ev.LEDGER_CREATED:
            raise LedgerError("not_found", f"no ledger {ledger_id!r}")
        ledger = Ledger(ledger_id, self.data_dir / "ledgers" / ledger_id, self.log, orjson.loads(first.data),
                        self.settings)
        self._ledgers[ledger_id] = ledger
        if self._start:
            ledger.sequencer.start()
        for callback in self._on_opened:
            callback(ledger)
        return ledger

    def each_ledger(self, callback) -> None:
        """Call `callback(ledger)` for every ledger open now and every one created later."""
        with self._lock:
            self._on_opened.append(callback)
            for ledger in list(self._ledgers.values()):
                callback(ledger)

    def create_ledger(self, ledger_id: str, alg: str = "sm3", origin: str | None = None) -> Ledger:
        check_ledger_id(ledger_id)
        check_algorithm(alg)
        origin = origin or f"evledger/{ledger_id}"
        with self._lock:
            if ledger_id in self._ledgers or self.log.version(ledger_id):
                raise LedgerError("ledger_exists", f"ledger {ledger_id!r} already exists")
            stale = self.data_dir / "ledgers" / ledger_id / "projections"
            if stale.exists():  # left from a log that no longer has this ledger: not ours
                log.warning("ledger %r: removing projections left from an earlier log at %s", ledger_id, stale)
                Projections.destroy(stale)
            keys = LedgerKeys(self.data_dir / "ledgers" / ledger_id / "keys", origin)
            key = keys.new_signing_key()
            if not keys._data_path.exists():
                keys.create_data_key()
            created = {"ledger": ledger_id, "alg": alg, "origin": origin,
                       "key_id": keys.key_id_hex(key.public_key),
                       "verifier_key": verifier_key(origin, key.public_key),
                       "created_at": utc_now_text()}
            try:
                self.log.append(ledger_id, [ev.json_event(ev.LEDGER_CREATED, created)], 0)
            except WrongExpectedVersion:
                raise LedgerError("ledger_exists", f"ledger {ledger_id!r} already exists") from None
            return self._open(ledger_id)

    def ledger(self, ledger_id: str) -> Ledger:
        ledger = self._ledgers.get(ledger_id)
        if ledger is None:
            raise LedgerError("unknown_ledger", f"no ledger {ledger_id!r}")
        return ledger

    def ledgers(self) -> list[str]:
        return sorted(self._ledgers)

    def close(self) -> None:
        try:
            for ledger in list(self._ledgers.values()):
                try:
                    ledger.close()
                except Exception as exc:
                    log.error("ledger %r did not close cleanly: %s", ledger.id, exc)
        finally:
            self._ledgers.clear()
            self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
