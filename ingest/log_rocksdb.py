"""The embedded log backend: every ledger's stream in one RocksDB database, group-committed.

Appends from any number of threads are merged by a leader into one WriteBatch, written and
then made durable by an fsync of the WAL (FlushWAL), so a group of appends costs one fsync and
`append` returns only after its events are on disk. Readers are served up to the heads this
process has acknowledged, so an event is never read before it is durable. Layout (raw keys, all integers big-endian):

    b"e" + len(stream) (1 byte) + stream + position (8)  ->  event
    b"h" + stream                                        ->  version (8): number of events
    b"g"                                                 ->  last group: commit number (8) + appends in it (8)

An event value is crc32 (4, of what follows) + len(type) (1) + type + len(metadata) (4) +
metadata + data. Heads and the group record travel in the same WriteBatch as the events, so
RocksDB's WAL makes a group all-or-nothing; `_check_tail` still verifies on open that the
events agree with the heads and the last group, because a torn tail is what a crash mid-write
or a damaged disk leaves, and unacknowledged events past a head must never be served.

A write that fails (a full disk, a failed fsync) acknowledges nothing, and RocksDB then takes
no writes until the database is reopened: the log reopens it, by itself once there is room
(merkle.rocks), and reloads the heads from what is on disk. Until then appends fail with a
LogError and reads go on.
"""
from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from typing import Iterator, Sequence

from merkle.rocks import RocksHandle, StorageUnavailable

from .group import GroupCommitter, Request
from .log import LogBackend, LogError, NewEvent, RecordedEvent, WrongExpectedVersion, check_new_events

log = logging.getLogger("evledger.log")

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_GROUP_KEY = b"g"


def _stream_prefix(stream: str) -> bytes:
    name = stream.encode("ascii")
    return b"e" + bytes((len(name),)) + name


def _event_key(prefix: bytes, position: int) -> bytes:
    return prefix + _U64.pack(position)


def open_rocksdb(path: str, options, what: str) -> RocksHandle:
    """Open a RocksDB database (`options()` makes its Options) as a handle that can be reopened
    after a failed write, turning rocksdict's bare exceptions (most often: another process has
    it open) into a LogError that says so."""
    try:
        return RocksHandle(path, options, what)
    except Exception as exc:  # rocksdict raises plain Exception
        hint = " (is another evledger process using this data directory?)" if "lock" in str(exc).lower() else ""
        raise LogError(f"cannot open {what} at {path}: {exc}{hint}") from None


_TYPE_HEADERS: dict[str, bytes] = {}


def encode_event(ev: NewEvent) -> bytes:
    head = _TYPE_HEADERS.get(ev.type)
    if head is None:
        t = ev.type.encode("ascii")
        head = bytes((len(t),)) + t
        if len(_TYPE_HEADERS) < 256:
            _TYPE_HEADERS[ev.type] = head
    body = b"".join((head, _U32.pack(len(ev.metadata)), ev.metadata, ev.data))
    return _U32.pack(zlib.crc32(body)) + body


def decode_event(stream: str, position: int, value: bytes) -> RecordedEvent:
    if len(value) < 9 or zlib.crc32(memoryview(value)[4:]) != _U32.unpack_from(value)[0]:
        raise LogError(f"stream {stream!r} position {position}: event fails its checksum (corrupt log)")
    tlen = value[4]
    t_end = 5 + tlen
    mlen = _U32.unpack_from(value, t_end)[0]
    m_end = t_end + 4 + mlen
    return RecordedEvent(stream, position, value[5:t_end].decode("ascii"), value[m_end:], value[t_end + 4:m_end])


class RocksDBLog(LogBackend):
    READ_CHUNK = 1024  # events read per iterator: a reopen never waits for a slow consumer

    def __init__(self, path: str | os.PathLike, sync: bool = True):
        from rocksdict import WriteOptions

        os.makedirs(path, exist_ok=True)
        self.path = str(path)
        self._db = open_rocksdb(self.path, self._options, "the event log")
        self._sync_opts = WriteOptions()
        self._sync_opts.sync = sync
        # Appends: written unsynced, then the WAL fsynced (RocksHandle.write's sync_wal), so the
        # other threads run during the fsync; readers never see past `_versions`, which moves
        # only after the sync.
        self._sync = sync
        self._append_opts = WriteOptions()
        self._append_opts.sync = False
        self._lock = threading.Lock()
        self._appended = threading.Condition(self._lock)
        self._committer = GroupCommitter(self._write_group)
        self._write_lock = threading.Lock()  # the group writer or a reopen, one at a time
        self._closed = False
        self._stopping = threading.Event()
        self._recovery: threading.Thread | None = None
        self._versions: dict[str, int] = {}
        self._group = 0
        self.groups_written = 0  # group commits (one fsync each), for benchmarks and tests
        self._load_heads()
        self._check_tail()
        # Says where the log ends, so a WAL tail that RocksDB's recovery dropped (a write torn
        # by a crash, never acknowledged) shows up as an earlier last group than expected.
        log.info("log %s opened: %d streams, %d events, last group commit #%d", self.path,
                 len(self._versions), sum(self._versions.values()), self._group)

    @staticmethod
    def _options():
        from rocksdict import DBRecoveryMode, Options

        opts = Options(raw_mode=True)
        opts.create_if_missing(True)
        opts.set_max_background_jobs(2)
        # Replay the WAL up to the last intact record and stop there: a torn final write is
        # dropped whole instead of failing the open (RocksDB's kPointInTimeRecovery).
        opts.set_wal_recovery_mode(DBRecoveryMode.point_in_time())
        return opts

    # -- opening ------------------------------------------------------------------------

    def _load_heads(self) -> None:
        versions = {}
        for key, value in self._db.items(from_key=b"h"):
            if not key.startswith(b"h"):
                break
            versions[key[1:].decode("ascii")] = _U64.unpack(value)[0]
        raw = self._db.get(_GROUP_KEY)
        self._versions = versions  # one assignment: readers see the old heads or the new
        self._group = _U64.unpack_from(raw)[0] if raw is not None else 0

    def _check_tail(self) -> None:
        """Make the stored events agree with the heads, loudly.

        Events past a stream's head were never acknowledged (the head is written in the same
        batch as its events, and `append` returns after that batch is synced): they are a torn
        batch and are deleted. A head past the stored events means acknowledged events are
        gone, which no repair can undo, so opening fails."""
        torn: list[tuple[str, int, int]] = []
        for stream, version in self._versions.items():
            prefix = _stream_prefix(stream)
            if version and self._db.get(_event_key(prefix, version - 1)) is None:
                raise LogError(f"{self.path}: stream {stream!r} should have {version} events but event "
                               f"{version - 1} is missing: acknowledged events were lost (damaged disk?)")
            if version:
                decode_event(stream, version - 1, self._db.get(_event_key(prefix, version - 1)))
            extra = []
            for key, _ in self._db.items(from_key=_event_key(prefix, version)):
                if not key.startswith(prefix):
                    break
                extra.append(key)
            if extra:
                torn.append((stream, version, len(extra)))
                from rocksdict import WriteBatch
                batch = WriteBatch(raw_mode=True)
                for key in extra:
                    batch.delete(key)
                self._db.write(batch, self._sync_opts)
        # Streams with events but no head at all: every one of their events is torn. Visit one
        # key per stream (seeking past each), not every event.
        from_key = b"e"
        while True:
            key = next(iter(self._db.keys(from_key=from_key)), None)
            if key is None or not key.startswith(b"e"):
                break
            stream = key[2:2 + key[1]].decode("ascii")
            if stream not in self._versions:
                self._discard_stream(stream, torn)
            from_key = _stream_prefix(stream) + b"\xff" * 9
        for stream, version, count in torn:
            log.warning("log %s: discarded a torn batch at the end of stream %r: %d unacknowledged "
                        "event(s) after position %d; every acknowledged event is intact",
                        self.path, stream, count, version - 1)
        self.torn_batches_discarded = torn

    def _discard_stream(self, stream: str, torn: list) -> None:
        from rocksdict import WriteBatch
        prefix = _stream_prefix(stream)
        batch = WriteBatch(raw_mode=True)
        n = 0
        for key, _ in self._db.items(from_key=prefix):
            if not key.startswith(prefix):
                break
            batch.delete(key)
            n += 1
        self._db.write(batch, self._sync_opts)
        torn.append((stream, 0, n))

    # -- appending ----------------------------------------------------------------------

    def append(self, stream: str, events: Sequence[NewEvent], expected_version: int) -> int:
        check_new_events(stream, events)
        if self._closed:
            raise LogError("log is closed")
        return self._committer.submit((stream, events, expected_version))

    def _write_group(self, group: list[Request]) -> None:
        with self._write_lock:
            if self._db.failure is not None:
                try:
                    self._recover_locked()
                except LogError as exc:
                    for req in group:
                        req.error = exc
                    return
            self._write_group_locked(group)

    def _write_group_locked(self, group: list[Request]) -> None:
        """Write every queued append that names the right version as one WriteBatch, then fsync."""
        from rocksdict import WriteBatch

        versions: dict[str, int] = {}
        batch = WriteBatch(raw_mode=True)
        accepted = []  # (request, its new version): results are set only once the write is done
        for req in group:
            stream, events, expected = req.item
            current = versions.get(stream)
            if current is None:
                current = self._versions.get(stream, 0)
            if expected != current:
                req.error = WrongExpectedVersion(stream, expected, current)
                continue
            prefix = _stream_prefix(stream)
            for i, ev in enumerate(events):
                batch.put(_event_key(prefix, current + i), encode_event(ev))
            versions[stream] = current + len(events)
            accepted.append((req, versions[stream]))
        if not accepted:
            return
        for stream, version in versions.items():
            batch.put(b"h" + stream.encode("ascii"), _U64.pack(version))
        self._group += 1
        batch.put(_GROUP_KEY, _U64.pack(self._group) + _U64.pack(len(accepted)))
        try:
            self._db.write(batch, self._append_opts, sync_wal=self._sync)
        except Exception as exc:  # nothing of this group is acknowledged
            self._group -= 1
            for req, _ in accepted:
                req.error = LogError(f"log write failed: {exc}")
            if self._db.failure is not None:
                self._start_recovery()
            return
        for req, version in accepted:
            req.result = version
        with self._lock:
            self._versions.update(versions)
            self.groups_written += 1
            self._appended.notify_all()

    # -- recovering after a failed write -----------------------------------------------------

    @property
    def unavailable(self) -> str | None:
        return self._db.failure

    def recover(self) -> None:
        if self._db.failure is None:
            return
        with self._write_lock:
            self._recover_locked()

    def _recover_locked(self) -> None:
        try:
            reopened = self._db.recover()
        except StorageUnavailable as exc:
            raise LogError(str(exc)) from None
        if not reopened:
            return
        with self._lock:
            before = dict(self._versions)
        self._load_heads()
        self._check_tail()
        moved = {s: (before.get(s, 0), v) for s, v in self._versions.items() if v != before.get(s, 0)}
        if moved:  # a write that reported failure reached the disk after all; it was never acknowledged
            log.warning("log %s: after reopening, streams moved past what was acknowledged: %s", self.path,
                        ", ".join(f"{s!r} {a} -> {b}" for s, (a, b) in sorted(moved.items())))
        with self._lock:
            self._appended.notify_all()

    def _start_recovery(self) -> None:
        """Reopen in the background as soon as there is room, so the log takes writes again
        (and says so on readiness checks) without waiting for the next append."""
        with self._lock:
            if self._closed or (self._recovery is not None and self._recovery.is_alive()):
                return
            self._recovery = threading.Thread(target=self._recover_loop, name="evledger-log-recovery", daemon=True)
            self._recovery.start()

    def _recover_loop(self) -> None:
        delay = 0.1
        while not self._stopping.is_set() and self._db.failure is not None:
            try:
                self.recover()
            except LogError:
                pass
            except Exception as exc:  # never let the thread die silently
                log.error("log %s: reopening failed: %s", self.path, exc)
            if self._db.failure is None:
                return
            self._stopping.wait(delay)
            delay = min(delay * 2, 1.0)

    # -- reading ------------------------------------------------------------------------

    def read(self, stream: str, from_position: int = 0, limit: int | None = None) -> Iterator[RecordedEvent]:
        if self._closed:
            raise LogError("log is closed")
        if from_position < 0:
            raise LogError(f"from_position must be >= 0, got {from_position}")
        end = self.version(stream)  # never serve past the acknowledged head
        if limit is not None:
            end = min(end, from_position + limit)
        prefix = _stream_prefix(stream)
        position = from_position
        while position < end:
            # A chunk at a time, each iterator finished before yielding: a consumer that keeps
            # this generator waiting never holds a RocksDB iterator (or a reopen) up.
            want = min(end - position, self.READ_CHUNK)
            values = []
            with self._db.reading() as db:
                for key, value in db.items(from_key=_event_key(prefix, position)):
                    if len(values) >= want or not key.startswith(prefix):
                        break
                    values.append(value)
            if not values:
                return
            for value in values:
                yield decode_event(stream, position, value)
                position += 1

    def version(self, stream: str) -> int:
        return self._versions.get(stream, 0)

    def streams(self) -> list[str]:
        with self._lock:
            return sorted(s for s, v in self._versions.items() if v)

    def wait_for_append(self, stream: str, version: int, timeout: float) -> bool:
        with self._appended:
            return self._appended.wait_for(lambda: self._versions.get(stream, 0) > version, timeout)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            recovery = self._recovery
        self._stopping.set()
        if recovery is not None:
            recovery.join(10)
        with self._write_lock:  # after the group being written, if any
            self._db.close()
