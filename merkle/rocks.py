"""One RocksDB database (rocksdict) that can be closed and opened again while it is in use.

Once a write fails in a way RocksDB does not undo by itself (a WAL append on a full disk, a
failed fsync), the database keeps returning that error for every later write until
`DB::Resume()` or a reopen; rocksdict has no Resume. Reads keep working. So a handle
remembers the failure, refuses writes until `recover()` has closed and reopened the database
(the reopen replays the WAL from disk: every write that returned is there, the torn one is
not), makes the reopen wait for the reads in progress, and makes new reads wait for the reopen.
"""
from __future__ import annotations

import gc
import logging
import os
import threading
import time
from typing import Callable

log = logging.getLogger("evledger.storage")


class StorageUnavailable(RuntimeError):
    """The database takes no writes now: a write failed and it has not been reopened yet."""


class RocksHandle:
    # Room a reopen needs beyond the WAL it replays into a table file: a new WAL, MANIFEST,
    # OPTIONS and info log. Not tried with less, so a full disk costs no close/open cycles.
    MIN_FREE = 1 << 20
    DRAIN_TIMEOUT = 5.0  # seconds a reopen waits for reads in progress before trying later
    MAX_BACKOFF = 5.0

    def __init__(self, path: str | os.PathLike, options: Callable[[], object], what: str):
        """`options()` makes the rocksdict Options for each open. Raises what rocksdict
        raises if the database cannot be opened."""
        self.path = str(path)
        self.what = what
        self._options = options
        self._state = threading.Condition(threading.Lock())
        self._readers = 0
        self._reopening = False
        self._local = threading.local()  # this thread's depth of nested reads
        self._recover_lock = threading.Lock()
        self.failure: str | None = None  # why writes are refused, until a reopen
        self.read_only = False  # serving reads from a read-only open after a reopen failed
        self.reopened = 0
        self._backoff = 0.1
        self._next_try = 0.0
        self._db = self._open()

    def _open(self, read_only: bool = False):
        from rocksdict import AccessType, Rdict

        if read_only:
            return Rdict(self.path, self._options(), access_type=AccessType.read_only())
        return Rdict(self.path, self._options())

    # -- reading --------------------------------------------------------------------------

    def _enter(self):
        """Count this thread as a reader (waiting out a reopen); (the rocksdict handle, the depth
        to give back to _exit)."""
        local = self._local
        depth = getattr(local, "depth", 0)
        with self._state:
            if depth == 0:  # a nested read must not wait for a reopen that waits for this thread
                while self._reopening:
                    self._state.wait()
            self._readers += 1
        local.depth = depth + 1
        db = self._db
        if db is None:
            self._exit(depth)
            raise StorageUnavailable(f"{self.what} at {self.path} is closed"
                                     + (f" ({self.failure})" if self.failure else ""))
        return db, depth

    def _exit(self, depth: int) -> None:
        # Set, not decremented: a generator finished by another thread must not break its count.
        self._local.depth = depth
        with self._state:
            self._readers -= 1
            if self._readers == 0 and self._reopening:
                self._state.notify_all()

    def reading(self) -> "_Reading":
        """`with handle.reading() as db:` the rocksdict handle, safe from a reopen until the
        block ends. Keep the block short: a reopen waits for it (and gives up after
        DRAIN_TIMEOUT)."""
        return _Reading(self)

    def get(self, key):
        db, depth = self._enter()
        try:
            return db.get(key)
        finally:
            self._exit(depth)

    def items(self, **kwargs):
        db, depth = self._enter()
        try:
            yield from db.items(**kwargs)
        finally:
            self._exit(depth)

    def keys(self, **kwargs):
        db, depth = self._enter()
        try:
            yield from db.keys(**kwargs)
        finally:
            self._exit(depth)

    # -- writing and recovering -----------------------------------------------------------

    def write(self, batch, options=None, sync_wal: bool = False) -> None:
        """Write `batch`; with `sync_wal`, return only once the WAL holding it is fsynced.

        `sync_wal` writes unsynced and then fsyncs the WAL with FlushWAL(sync=true): the same
        durability as a write with sync=true, but rocksdict holds the GIL through a synced
        write's fsync and lets go of it in FlushWAL, so the process's other threads run while
        the disk syncs. Unlike a synced write, the batch is visible to RocksDB reads before
        the sync: a caller that must not show unsynced data caps its reads itself. And a
        failed FlushWAL leaves the batch in the memtable, so the reopen that recovery does
        writes it out: a write reported as failed can be on disk afterwards (the log's
        recovery reports streams that moved, and a retry finds those records as duplicates)."""
        with self.reading() as db:
            if self.failure is not None:
                raise StorageUnavailable(self.failure)
            try:
                if options is None:
                    db.write(batch)
                else:
                    db.write(batch, options)
                if sync_wal:
                    db.flush_wal(True)
            except Exception as exc:  # rocksdict raises plain Exception with RocksDB's status
                self._failed(f"{self.what} at {self.path}: a write failed: {exc}")
                raise

    def _failed(self, reason: str) -> None:
        with self._state:
            if self.failure is None:
                self.failure = reason
                self._next_try = 0.0
                log.error("%s; it takes no writes until it is reopened (once there is room)", reason)

    def free_bytes(self) -> int:
        st = os.statvfs(self.path)
        # root may use the blocks reserved for it, and RocksDB running as root does
        return (st.f_bfree if os.geteuid() == 0 else st.f_bavail) * st.f_frsize

    def bytes_to_reopen(self) -> int:
        """About what a reopen writes: the WAL replayed into a table file, plus MIN_FREE."""
        wal = 0
        try:
            with os.scandir(self.path) as entries:
                for entry in entries:
                    if entry.name.endswith(".log"):
                        wal += entry.stat().st_size
        except OSError:
            pass
        return wal + self.MIN_FREE

    def recover(self) -> bool:
        """Reopen the database if a write failed. False: nothing to do. True: reopened just
        now, so the owner reloads what it keeps in memory. Raises StorageUnavailable while it
        cannot be reopened yet (too little free space, or the open failed: tried again with
        backoff); reads keep working meanwhile."""
        with self._recover_lock:
            if self.failure is None:
                return False
            free, needed = self.free_bytes(), self.bytes_to_reopen()
            if free < needed:
                raise StorageUnavailable(f"{self.failure}; waiting for free space ({free:,} bytes free, "
                                         f"about {needed:,} needed to reopen)")
            now = time.monotonic()
            if now < self._next_try:
                raise StorageUnavailable(f"{self.failure}; reopening again in {self._next_try - now:.1f} s")
            try:
                self._reopen()
            except Exception as exc:
                self._next_try = now + self._backoff
                self._backoff = min(self._backoff * 2, self.MAX_BACKOFF)
                raise StorageUnavailable(f"{self.failure}; reopening failed: {exc}") from None
            log.warning("%s at %s reopened after a failed write: it takes writes again", self.what, self.path)
            self.failure = None
            self.read_only = False
            self.reopened += 1
            self._backoff = 0.1
            return True

    def _reopen(self) -> None:
        with self._state:
            self._reopening = True
            try:
                if not self._state.wait_for(lambda: self._readers == 0, timeout=self.DRAIN_TIMEOUT):
                    raise StorageUnavailable(f"reads of {self.what} still in progress after {self.DRAIN_TIMEOUT:.0f} s")
                old, self._db = self._db, None
                if old is not None:
                    self._close_quietly(old)
                    del old
                try:
                    self._db = self._open()
                except Exception as exc:
                    if "lock" in str(exc).lower():  # an iterator nobody finished still holds the old one
                        gc.collect()
                        try:
                            self._db = self._open()
                            return
                        except Exception:
                            pass
                    try:  # keep serving reads while it cannot take writes
                        self._db = self._open(read_only=True)
                        self.read_only = True
                    except Exception as ro_exc:
                        log.error("%s at %s: cannot open it even read-only: %s", self.what, self.path, ro_exc)
                    raise
            finally:
                self._reopening = False
                self._state.notify_all()

    def _close_quietly(self, db) -> None:
        try:
            # Stops RocksDB's own error recovery first: without this, close waits for it (a second).
            db.cancel_all_background(True)
        except Exception:
            pass
        try:
            db.close()
        except Exception as exc:  # the error that broke it, again; the handle is released anyway
            log.info("%s at %s: closing after a failed write: %s", self.what, self.path, exc)

    def close(self) -> None:
        with self._state:
            db, self._db = self._db, None
        if db is None:
            return
        if self.failure is not None or self.read_only:
            self._close_quietly(db)
        else:
            db.close()


class _Reading:
    """RocksHandle.reading(): a class, not contextlib's generator, as reads are frequent."""

    __slots__ = ("handle", "depth")

    def __init__(self, handle: RocksHandle):
        self.handle = handle

    def __enter__(self):
        db, self.depth = self.handle._enter()
        return db

    def __exit__(self, *exc) -> None:
        self.handle._exit(self.depth)
