"""Optional storage of uploaded evidence files (`evledger serve --file-store DIR`).

Without it the service keeps only a file's SM3 (in the record); with it, each file uploaded
through `POST /v1/ledgers/{id}/files` is kept by content, per ledger:

    DIR/<ledger>/<sm3[:2]>/<sm3>

An upload is written to a temporary file in DIR/<ledger>/, fsynced, and renamed into place
(then the directory fsynced) before its record is submitted, so a receipt is never returned
for a file that is not durably kept, and a crash leaves a whole file or none. Files are named
by their SM3: the same content uploaded twice is stored once, and nothing else can hide
behind a name. A file whose record was then refused (a conflicting evidence_id) stays in the
store but is never served: GET serves a file only when a record of that ledger names its hash.
One service writes a store: at start it deletes the temporary files a crash left behind.

A full disk (or quota) while an upload is written fails it with `StorageFull`, code
`storage_full`: the partial file is removed, no record is submitted, and the upload can be
sent again once there is room.
"""
from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from evledger_common.durable import fsync_dir
from ingest.ledger import LedgerError, check_ledger_id

_INCOMING = ".incoming-"
_NO_ROOM = (errno.ENOSPC, errno.EDQUOT)


class StorageFull(LedgerError):
    """The file store has no room for an upload (ENOSPC or EDQUOT); nothing was recorded."""

    def __init__(self, exc: OSError):
        super().__init__("storage_full", f"the file store is full ({exc.strerror}): the upload was not kept and "
                                         f"nothing was recorded; retry once there is room")


@contextlib.contextmanager
def _no_room_is_storage_full():
    try:
        yield
    except OSError as exc:
        if exc.errno in _NO_ROOM:
            raise StorageFull(exc) from None
        raise



def _make_dir(path: Path) -> None:
    """mkdir, and make the new entry durable in its parent (a stored file's path must survive
    a power loss, not only its bytes)."""
    if not path.is_dir():
        if not path.parent.is_dir():
            _make_dir(path.parent)
        path.mkdir(exist_ok=True, mode=0o700)
        fsync_dir(path.parent)


class FileStore:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        _make_dir(self.root)
        # Uploads a crash interrupted: never acknowledged, so never needed.
        for leftover in self.root.glob(f"*/{_INCOMING}*"):
            leftover.unlink(missing_ok=True)

    def path(self, ledger_id: str, content_hash: str) -> Path:
        check_ledger_id(ledger_id)
        if len(content_hash) != 64 or any(c not in "0123456789abcdef" for c in content_hash):
            raise ValueError(f"not an SM3 hex digest: {content_hash!r}")
        return self.root / ledger_id / content_hash[:2] / content_hash

    def find(self, ledger_id: str, content_hash: str) -> Path | None:
        path = self.path(ledger_id, content_hash)
        return path if path.is_file() else None

    def begin(self, ledger_id: str) -> "Upload":
        directory = self.root / check_ledger_id(ledger_id)
        with _no_room_is_storage_full():
            _make_dir(directory)
            return Upload(self, ledger_id, directory)


class Upload:
    """One upload being written: write() its chunks, then keep() it under its hash, or
    discard() it. Once keep() has begun, discard() leaves the file to it: a request cancelled
    while keep() runs in a worker thread must not pull the file from under it."""

    def __init__(self, store: FileStore, ledger_id: str, directory: Path):
        self.store, self.ledger_id = store, ledger_id
        fd, name = tempfile.mkstemp(prefix=_INCOMING, dir=directory)
        self.temp = Path(name)
        self._file = os.fdopen(fd, "wb")
        self._keeping = False

    def write(self, data: bytes) -> None:
        with _no_room_is_storage_full():
            self._file.write(data)

    def keep(self, content_hash: str) -> Path:
        """Durably store the upload as the file of `content_hash` (the caller computed it from
        the same bytes) and return its path."""
        self._keeping = True
        try:
            with _no_room_is_storage_full():
                final = self.store.path(self.ledger_id, content_hash)
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()
                _make_dir(final.parent)
                os.replace(self.temp, final)  # same content if it was there already
                fsync_dir(final.parent)
                return final
        except BaseException:
            self._close_quietly()
            self.temp.unlink(missing_ok=True)
            raise

    def _close_quietly(self) -> None:
        try:
            self._file.close()
        except OSError:  # flushing what is buffered hit the same full disk: the file goes anyway
            pass

    def discard(self) -> None:
        if self._keeping:
            return
        self._close_quietly()
        self.temp.unlink(missing_ok=True)
