"""A ledger's projections: everything derived from its log, kept where reads are cheap.

Two RocksDB databases under <data dir>/ledgers/<ledger>/projections/: `tree` (the Merkle
log's nodes, merkle.RocksDBStore) and `index` (raw keys, integers big-endian):

    b"e" + evidence_id                      ->  seq (8) + fingerprint (32 hex digits)
    b"b" + business_id + 0x00 + seq (8)     ->  b""
    b"c" + content hash (32) + seq (8)      ->  b""
    b"p" + first seq (8)                    ->  log positions of that run of records (8 each)
    b"k" + tree size (8)                    ->  the CheckpointSealed payload (JSON)
    b"K" + key id (4)                       ->  key id, verifier key, log position of its event (JSON)
    b"a" + tree size (8)                    ->  the anchor of that checkpoint: its latest event's payload + status (JSON)
    b"w" + tree size (8) + witness key id (4) ->  a witness's cosignature of that checkpoint: the event's payload (JSON)
    b"P"                                    ->  next log position to project (8)

Applying is idempotent: a record whose seq is below the tree size is already in the tree and
only its (identical) index entries are written again. So a crash between the tree's write and
the index's write only means replaying a little, and everything here can be deleted and
rebuilt from the log (`ingest.rebuild`). For the same reason a write that fails (a full disk)
only means trying again: `recover()` reopens the databases once there is room (merkle.rocks).
"""
from __future__ import annotations

import logging
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import orjson

from merkle import MerkleLog, RocksDBStore
from merkle.checkpoint import CheckpointError, verify_checkpoint
from evledger_verify.proof import DIGEST_SIZE
from merkle.rocks import StorageUnavailable

from .log import LogError
from .log_rocksdb import open_rocksdb

log = logging.getLogger("evledger.projections")
_U64 = struct.Struct(">Q")
_POSITION_KEY = b"P"


class CheckpointMismatch(RuntimeError):
    """A logged checkpoint does not hold against the projections (its root differs from the
    rebuilt tree's, its signature fails, its size goes backwards), or the projections have a
    gap: the log and the tree disagree, and nothing built on this ledger can be trusted until
    it is explained."""

    def __init__(self, ledger: str, size: int, logged: bytes, computed: bytes, why: str = ""):
        why = why or (f"logged root {logged.hex()}, rebuilt root {computed.hex()}" if logged
                      else "the tree is missing records before it")
        super().__init__(f"ledger {ledger!r}: checkpoint at size {size} does not reproduce: {why}")
        self.size = size
        self.logged = logged
        self.computed = computed


class Projections:
    def __init__(self, directory: str | os.PathLike, ledger: str, alg: str):
        self.directory = Path(directory)
        self.ledger = ledger
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            self.store = RocksDBStore(self.directory / "tree")
        except Exception as exc:  # rocksdict raises plain Exception (most often: the LOCK is held)
            raise LogError(f"cannot open ledger {ledger!r}'s tree at {self.directory / 'tree'}: {exc} "
                           f"(is another evledger process using this data directory?)") from None
        self.tree = MerkleLog(self.store, alg)
        self.index = open_rocksdb(str(self.directory / "index"), self._index_options, f"ledger {ledger!r}'s index")
        self._load_position()
        self._reconcile()

    @staticmethod
    def _index_options():
        from rocksdict import Options

        opts = Options(raw_mode=True)
        opts.create_if_missing(True)
        return opts

    def _load_position(self) -> None:
        raw = self.index.get(_POSITION_KEY)
        self.position = _U64.unpack(raw)[0] if raw is not None else 0

    @property
    def unavailable(self) -> str | None:
        """Why the projections take no writes (a write failed, e.g. on a full disk), or None."""
        return self.store.unavailable or self.index.failure

    def recover(self) -> bool:
        """After a failed write: reopen whichever database failed, once it can be. True if one
        was reopened just now: the position is read again, and the caller carries on from it
        as a restart would. Raises StorageUnavailable while one cannot be reopened yet."""
        reopened, errors = False, []
        for database in (self.store, self.index):
            try:
                reopened = database.recover() or reopened
            except StorageUnavailable as exc:
                errors.append(exc)
        if reopened:
            self._load_position()
            self._reconcile()
        if errors:
            raise errors[0]
        return reopened

    def _reconcile(self) -> None:
        """The tree and the index are two databases written one after the other without fsync:
        an OS crash can leave the index's position past records the tree lost. Then rewind
        the position to the tree's first missing record, so replaying fills the tree first."""
        last = next(iter(self.index.items(backwards=True, from_key=b"p" + b"\xff" * 8)), None)
        if last is None or not last[0].startswith(b"p"):
            return
        indexed = _U64.unpack_from(last[0], 1)[0] + len(last[1]) // 8
        if self.tree.size >= indexed:
            return
        position = self._position_in_runs(self.tree.size)
        if position is None:
            raise CheckpointMismatch(self.ledger, self.tree.size, b"", b"")
        log.warning("ledger %r: the tree holds %d records but the index %d; replaying from log position %d",
                    self.ledger, self.tree.size, indexed, position)
        self._put(None, None, position)

    @staticmethod
    def destroy(directory: str | os.PathLike) -> None:
        shutil.rmtree(directory, ignore_errors=True)

    def close(self) -> None:
        self.store.close()
        self.index.close()

    # -- applying events ------------------------------------------------------------------

    def apply_records(self, leaves: list[bytes], records: list[tuple[int, int, dict, bytes | None]],
                      next_position: int, leaf_hashes: bytes | None = None) -> None:
        """Add a run of EvidenceRecorded events: `leaves` in seq order and, for each,
        (log position, seq, record, fingerprint). Only leaves with seq >= the tree size are
        appended to the tree; the index entries are (re)written for all. `leaf_hashes`: the
        leaves' hashes, 32 bytes each, when the caller has them already."""
        first_seq = records[0][1]
        if first_seq > self.tree.size:
            raise CheckpointMismatch(self.ledger, first_seq, b"", b"",
                                     f"record {first_seq} would follow a tree of {self.tree.size}: records are missing")
        skip = self.tree.size - first_seq
        if skip < len(leaves):
            if leaf_hashes is None:
                self.tree.append(leaves[skip:])
            else:
                self.tree.append_leaf_hashes(np.frombuffer(leaf_hashes, dtype=np.uint8).reshape(-1, DIGEST_SIZE)[skip:])
        self.write_index(records, next_position)

    def write_index(self, records: list[tuple[int, int, dict, bytes | None]], next_position: int) -> None:
        """The index entries of a run of records, in one write batch (apply_records' second half)."""
        from rocksdict import WriteBatch

        first_seq = records[0][1]
        batch = WriteBatch(raw_mode=True)
        positions = bytearray()
        for position, seq, record, fingerprint in records:
            seq_bytes = _U64.pack(seq)
            positions += _U64.pack(position)
            evidence_id = record.get("evidence_id")
            if evidence_id is not None:
                batch.put(b"e" + evidence_id.encode(), seq_bytes + (fingerprint or b""))
            batch.put(b"b" + record["business_id"].encode() + b"\0" + seq_bytes, b"")
            batch.put(b"c" + bytes.fromhex(record["content_hash"]) + seq_bytes, b"")
        batch.put(b"p" + _U64.pack(first_seq), bytes(positions))
        batch.put(_POSITION_KEY, _U64.pack(next_position))
        self.index.write(batch)
        self.position = next_position

    def apply_checkpoint(self, payload: dict, next_position: int) -> None:
        """Check a logged checkpoint against the tree and its signed note, then store it.
        Sizes must increase (re-applying the same checkpoint after a crash is fine)."""
        size = payload["size"]
        logged = bytes.fromhex(payload["root"])
        if size > self.tree.size:
            raise CheckpointMismatch(self.ledger, size, logged, b"", f"the tree has only {self.tree.size} records")
        computed = self.tree.root(size)
        if computed != logged:
            raise CheckpointMismatch(self.ledger, size, logged, computed)
        stored = self.checkpoint(size)
        if stored is not None:  # replaying after a rewind: the very same checkpoint, or a forgery
            if stored != payload:
                raise CheckpointMismatch(self.ledger, size, logged, computed,
                                         "a different checkpoint at this size was logged earlier")
        else:
            latest = self.latest_checkpoint()
            if latest is not None and size < latest["size"]:
                raise CheckpointMismatch(self.ledger, size, logged, computed,
                                         f"it follows a checkpoint at size {latest['size']}: sizes must increase")
        key = self.index.get(b"K" + bytes.fromhex(payload["key_id"]))
        if key is None:
            raise CheckpointMismatch(self.ledger, size, logged, computed, f"signing key {payload['key_id']} is unknown")
        try:
            signed = verify_checkpoint(payload["note"], orjson.loads(key)["verifier_key"])
        except CheckpointError as exc:
            raise CheckpointMismatch(self.ledger, size, logged, computed, f"its note does not verify: {exc}") from None
        if (signed.size, signed.root) != (size, logged):
            raise CheckpointMismatch(self.ledger, size, logged, computed,
                                     f"its signed note says size {signed.size}, root {signed.root.hex()}")
        self._put(b"k" + _U64.pack(size), orjson.dumps(payload), next_position)

    def apply_signing_key(self, payload: dict, next_position: int) -> None:
        """LedgerCreated or SigningKeyRotated: its key id, verifier key and log position."""
        entry = {"key_id": payload["key_id"], "verifier_key": payload["verifier_key"],
                 "position": next_position - 1}
        self._put(b"K" + bytes.fromhex(payload["key_id"]), orjson.dumps(entry), next_position)

    def _put(self, key: bytes | None, value: bytes | None, next_position: int) -> None:
        from rocksdict import WriteBatch

        batch = WriteBatch(raw_mode=True)
        if key is not None:
            batch.put(key, value)
        batch.put(_POSITION_KEY, _U64.pack(next_position))
        self.index.write(batch)
        self.position = next_position

    # -- reading ------------------------------------------------------------------------

    @property
    def record_count(self) -> int:
        return self.tree.size

    def evidence(self, evidence_id: str) -> tuple[int, bytes] | None:
        """(seq, fingerprint) of the record with this evidence id, if projected."""
        raw = self.index.get(b"e" + evidence_id.encode())
        return None if raw is None else (_U64.unpack_from(raw)[0], raw[8:])

    def evidence_many(self, evidence_ids: list[str]) -> list[tuple[int, bytes] | None]:
        if not evidence_ids:
            return []
        raws = self.index.get([b"e" + e.encode() for e in evidence_ids])
        return [None if r is None else (_U64.unpack_from(r)[0], r[8:]) for r in raws]

    def _seqs_with_prefix(self, prefix: bytes, limit: int | None) -> list[int]:
        seqs = []
        for key in self.index.keys(from_key=prefix):
            if not key.startswith(prefix) or len(key) != len(prefix) + 8:
                if not key.startswith(prefix):
                    break
                continue
            seqs.append(_U64.unpack_from(key, len(prefix))[0])
            if limit is not None and len(seqs) >= limit:
                break
        return seqs

    def seqs_by_business_id(self, business_id: str, limit: int | None = None) -> list[int]:
        return self._seqs_with_prefix(b"b" + business_id.encode() + b"\0", limit)

    def seqs_by_content_hash(self, content_hash: str, limit: int | None = None) -> list[int]:
        return self._seqs_with_prefix(b"c" + bytes.fromhex(content_hash), limit)

    def position_of(self, seq: int) -> int | None:
        """The log position of record `seq`, if projected."""
        if seq >= self.tree.size:
            return None
        return self._position_in_runs(seq)

    def _position_in_runs(self, seq: int) -> int | None:
        for key, value in self.index.items(backwards=True, from_key=b"p" + _U64.pack(seq)):
            if not key.startswith(b"p"):
                return None
            first = _U64.unpack_from(key, 1)[0]
            i = seq - first
            if 0 <= i < len(value) // 8:
                return _U64.unpack_from(value, i * 8)[0]
            return None
        return None

    def checkpoint(self, size: int) -> dict | None:
        raw = self.index.get(b"k" + _U64.pack(size))
        return None if raw is None else orjson.loads(raw)

    def checkpoints(self, after_size: int = -1, limit: int | None = None) -> list[dict]:
        out = []
        for key, value in self.index.items(from_key=b"k" + _U64.pack(after_size + 1)):
            if not key.startswith(b"k"):
                break
            out.append(orjson.loads(value))
            if limit is not None and len(out) >= limit:
                break
        return out

    def latest_checkpoint(self) -> dict | None:
        for key, value in self.index.items(backwards=True, from_key=b"k" + b"\xff" * 8):
            return orjson.loads(value) if key.startswith(b"k") else None
        return None

    def apply_anchor(self, event_type: str, payload: dict, next_position: int) -> None:
        """AnchorSubmitted / AnchorConfirmed / AnchorFailed: the anchor of a checkpoint size, as
        its latest event says (a re-anchor after a failure overwrites the failure)."""
        status = {"AnchorSubmitted": "submitted", "AnchorConfirmed": "confirmed", "AnchorFailed": "failed"}[event_type]
        key = b"a" + _U64.pack(payload["size"])
        previous = self.index.get(key)
        entry = {**(orjson.loads(previous) if previous else {}), **payload, "status": status}
        self._put(key, orjson.dumps(entry), next_position)

    def anchor(self, size: int) -> dict | None:
        raw = self.index.get(b"a" + _U64.pack(size))
        return None if raw is None else orjson.loads(raw)

    def _json_values(self, prefix: bytes) -> list[dict]:
        out = []
        for key, value in self.index.items(from_key=prefix):
            if not key.startswith(prefix):
                break
            out.append(orjson.loads(value))
        return out

    def anchors(self) -> list[dict]:
        return self._json_values(b"a")

    def first_confirmed_anchor(self, seq: int) -> dict | None:
        """The confirmed anchor of the smallest size above `seq`: the first that covers record
        `seq` (a seek from that size, not a scan of every anchor)."""
        for key, value in self.index.items(from_key=b"a" + _U64.pack(seq + 1)):
            if not key.startswith(b"a"):
                return None
            entry = orjson.loads(value)
            if entry["status"] == "confirmed":
                return entry
        return None

    def latest_anchor(self, status: str | None = None) -> dict | None:
        """The anchor of the largest size (with that status, if given)."""
        for key, value in self.index.items(backwards=True, from_key=b"a" + b"\xff" * 8):
            if not key.startswith(b"a"):
                return None
            entry = orjson.loads(value)
            if status is None or entry["status"] == status:
                return entry
        return None

    def apply_cosignature(self, payload: dict, next_position: int) -> None:
        """CheckpointCosigned: the latest cosignature of a checkpoint by one witness."""
        key = b"w" + _U64.pack(payload["size"]) + bytes.fromhex(payload["key_id"])
        self._put(key, orjson.dumps(payload), next_position)

    def cosignatures(self, size: int) -> list[dict]:
        """The witnesses' cosignatures of the checkpoint at `size`, by key id."""
        return self._json_values(b"w" + _U64.pack(size))

    def latest_cosignature(self, witness_key_id: str) -> dict | None:
        """The cosignature of the largest size by this witness (seeks down the sizes: a witness
        that keeps up has cosigned the latest checkpoints)."""
        kid = bytes.fromhex(witness_key_id)
        for key, value in self.index.items(backwards=True, from_key=b"w" + b"\xff" * 12):
            if not key.startswith(b"w"):
                return None
            if key[9:] == kid:
                return orjson.loads(value)
        return None

    def current_key_id(self) -> str | None:
        """The key id named by the last key event projected."""
        keys = self.signing_keys()
        return max(keys, key=lambda k: k["position"])["key_id"] if keys else None

    def signing_keys(self) -> list[dict]:
        return self._json_values(b"K")
