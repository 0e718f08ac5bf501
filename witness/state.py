"""A witness's durable state: for each log (by origin) the latest checkpoint it cosigned, and a
record of the signed checkpoints it refused (evidence that a log misbehaved).

One JSON file per log under <dir>/logs/, replaced atomically (written, fsynced, renamed, the
directory fsynced) before the cosignature leaves, so a witness killed at any moment restarts at
a size it answered for, never behind it. Checking a request against the stored size and
storing the new one happen under one lock per log (c2sp.org/tlog-witness: otherwise two
requests could roll the log back). An exclusive lock on <dir>/witness.lock keeps a second
witness process off the same state.
"""
from __future__ import annotations

import base64
import fcntl
import hashlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from evledger_common.durable import fsync_dir
from ingest.keys import KeyFileError, read_secret, write_secret
from ingest.leaf import format_received_at
from merkle.checkpoint import SM2PrivateKey, check_key_name

from .cosigning import WitnessIdentity


class WitnessStateError(RuntimeError):
    """The witness's directory cannot be used: no key, a bad state file, another witness on it."""


@dataclass(frozen=True)
class Cosigned:
    size: int
    root: bytes
    note: str = ""

MAX_REFUSALS = 10_000  # refused checkpoints kept; past that they are counted, not written



class WitnessState:
    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self._logs = self.directory / "logs"
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._lock_file = None
        self._refused: set[str] | None = None  # note digests kept in refused.ndjson

    # -- the identity ---------------------------------------------------------------------

    @property
    def _key_path(self) -> Path:
        return self.directory / "witness.key"

    @property
    def _name_path(self) -> Path:
        return self.directory / "witness.json"

    def create(self, name: str) -> WitnessIdentity:
        """A new witness: its name and a new SM2 key, written once (never overwritten): the key
        first, then the name, each durably, so a crash between leaves no usable half."""
        check_key_name(name, "witness name")
        if self._key_path.exists():
            raise WitnessStateError(f"{self.directory} already holds a witness; its key is never replaced")
        identity = WitnessIdentity(name, SM2PrivateKey.generate())
        self.directory.mkdir(parents=True, exist_ok=True)
        write_secret(self._key_path, identity.key.private_hex + "\n")
        tmp = self._name_path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps({"name": name}))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, self._name_path)
        fsync_dir(self.directory)
        return identity

    def identity(self) -> WitnessIdentity:
        try:
            name = orjson.loads(self._name_path.read_bytes())["name"]
            key = SM2PrivateKey.from_hex(read_secret(self._key_path))
        except FileNotFoundError:
            raise WitnessStateError(f"{self.directory} holds no witness: run `evledger witness init` first") from None
        except (KeyFileError, ValueError, KeyError, TypeError) as exc:
            raise WitnessStateError(f"{self.directory}: the witness's name or key cannot be read: {exc}") from None
        try:
            check_key_name(name, "witness name")
        except ValueError as exc:
            raise WitnessStateError(f"{self.directory}: {exc}") from None
        return WitnessIdentity(name, key)

    def lock(self) -> None:
        """Hold the directory for this process; WitnessStateError if another witness holds it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        handle = open(self.directory / "witness.lock", "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise WitnessStateError(f"another witness process uses {self.directory}") from None
        self._lock_file = handle

    def close(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    # -- the latest cosigned checkpoint of each log -----------------------------------------

    def log_lock(self, origin: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(origin, threading.Lock())

    def _path(self, origin: str) -> Path:
        return self._logs / (hashlib.sha256(origin.encode()).hexdigest()[:32] + ".json")

    def latest(self, origin: str) -> Cosigned | None:
        try:
            stored = orjson.loads(self._path(origin).read_bytes())
        except FileNotFoundError:
            return None
        except orjson.JSONDecodeError as exc:
            raise WitnessStateError(f"state file {self._path(origin)} is not JSON: {exc}") from None
        if stored.get("origin") != origin:
            raise WitnessStateError(f"state file {self._path(origin)} is for {stored.get('origin')!r}, not {origin!r}")
        return Cosigned(stored["size"], base64.b64decode(stored["root"]), stored.get("note", ""))

    def store(self, origin: str, size: int, root: bytes, note: str) -> None:
        """Make (size, root) the latest cosigned checkpoint of `origin`, durably."""
        if not self._logs.is_dir():
            self._logs.mkdir(parents=True, exist_ok=True)
            fsync_dir(self.directory)  # the new folder's entry, or a power loss could take it all
        path = self._path(origin)
        tmp = path.with_suffix(".tmp")
        data = orjson.dumps({"origin": origin, "size": size, "root": base64.b64encode(root).decode(), "note": note,
                             "cosigned_at": format_received_at(time.time_ns() // 1000)})
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(self._logs)

    def record_refusal(self, origin: str, status: int, kind: str, reason: str, note: str,
                       cosigned_note: str | None) -> str:
        """Keep a signed checkpoint the witness refused, once per (kind, note, note it had
        cosigned) (c2sp.org/tlog-witness allows keeping them): one JSON line each in
        <dir>/refused.ndjson, fsynced. `kind` is "fork" (a second root for a cosigned size:
        the two notes prove it) or "refused" (a failed proof, which anyone can send). At most
        MAX_REFUSALS of each kind per log, so refusals anyone can cause never crowd out forks.
        "kept", "again" (kept before) or "full"; OSError when it cannot be written."""
        key = (origin, kind, hashlib.sha256(note.encode()).hexdigest(),
               hashlib.sha256((cosigned_note or "").encode()).hexdigest())
        with self._locks_guard:
            if self._refused is None:
                self._drop_torn_tail()
                self._refused = {(r.get("origin"), r.get("kind"), r.get("note_sha256"), r.get("cosigned_note_sha256"))
                                 for r in self.refusals()}
            if key in self._refused:
                return "again"
            if sum(1 for k in self._refused if k[:2] == key[:2]) >= MAX_REFUSALS:
                return "full"
            line = orjson.dumps({"at": format_received_at(time.time_ns() // 1000), "origin": origin, "status": status,
                                 "kind": kind, "reason": reason, "note_sha256": key[2], "note": note,
                                 "cosigned_note_sha256": key[3], "cosigned_note": cosigned_note}) + b"\n"
            fd = os.open(self.directory / "refused.ndjson", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            self._refused.add(key)
        return "kept"

    def _drop_torn_tail(self) -> None:
        """Cut a last line a crash left without its newline, so the next record starts a line."""
        path = self.directory / "refused.ndjson"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return
        if data and not data.endswith(b"\n"):
            with open(path, "rb+") as f:
                f.truncate(data.rfind(b"\n") + 1)
                os.fsync(f.fileno())

    def refusals(self) -> list[dict]:
        """The refusals kept; a line a crash cut short (or any line that is not JSON) is skipped."""
        try:
            lines = (self.directory / "refused.ndjson").read_bytes().splitlines()
        except FileNotFoundError:
            return []
        kept = []
        for line in lines:
            try:
                kept.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
        return kept
