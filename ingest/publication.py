"""Publishing a ledger as static C2SP tlog-tiles (docs/tiles.md) after each checkpoint.

A thread per ledger follows its sealed checkpoints and writes, for each, the hash tiles and
entry bundles the new size adds and then the checkpoint note; the write path never waits for
it. What it has published is what the publication directory's own `checkpoint` says: on start
that size is checked against the ledger's checkpoint of the same size (a directory of another
log, or of a forked history, is republished from nothing) and publication resumes from it,
which repairs a crash at any point (the files of a size are written before its checkpoint).
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from evledger_verify.note import Checkpoint, CheckpointError, parse_note
from evledger_verify.tiles import TILE_WIDTH
from merkle.checkpoint import ed25519_signature_line
from merkle.tiles import TileDirectory

log = logging.getLogger("evledger.tiles")

# Leaves read and published per step when far behind (a backfill, a long outage): bounds the
# memory a step holds; the partial tiles are written only at the checkpoint's size.
STEP_LEAVES = 256 * TILE_WIDTH
HANDED_MAX = 2 * STEP_LEAVES  # leaves held from the sequencer at most (~50 MB of 300-byte leaves)


def publication_paths(root: str | os.PathLike, ledger_id: str) -> tuple[Path, Path]:
    """(publication directory, staging directory) of a ledger under a tiles root; staging is
    a dot directory beside the ledgers' directories, on the same file system for the renames."""
    root = Path(root)
    return root / ledger_id, root / ".staging" / ledger_id


class TilePublisher:
    def __init__(self, ledger, root: str | os.PathLike):
        self.ledger = ledger
        directory, staging = publication_paths(root, ledger.id)
        self.files = TileDirectory(directory, staging)
        self.published = 0  # the size of the checkpoint in the directory
        self._written = 0  # the size whose tiles and bundles are written (its checkpoint may not be yet)
        self.failure: str | None = None  # the last publication error, while it retries
        self.errors = 0
        # Leaves handed over by the sequencer (from seq _handed_first on, contiguous; kept from
        # the start of the partial entry bundle, which the next checkpoint writes again), so
        # that a publication reads none back from the log while it keeps up; bounded (HANDED_MAX).
        self._handed: list[bytes] = []
        self._handed_first = 0
        self._handed_lock = threading.Lock()
        self._recosign = False  # a witness cosigned: the published note is written again
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- where publication stands ---------------------------------------------------------

    def resume(self) -> None:
        """Take up from what the directory's checkpoint says was published, if it is this
        ledger's checkpoint of that size; else take every file down and start over (files of
        another history, or with no checkpoint to say whose they are, are trusted for nothing)."""
        self.files.clear_staging()
        self.files.may_hold_files = True
        note = self.files.read_checkpoint()
        self.published = self._written = 0
        why = None
        if note is None:
            if (self.files.directory / "tile").exists():
                why = "tiles without a checkpoint (a first publication or a rebuild stopped midway)"
        else:
            try:
                published = Checkpoint.parse_body(parse_note(note)[0])
            except CheckpointError as exc:
                why = f"an unreadable checkpoint ({exc})"
            else:
                ours = self.ledger.checkpoint(published.size)
                if ours is None or bytes.fromhex(ours["root"]) != published.root:
                    why = f"the checkpoint of size {published.size} of another history"
                else:
                    self.published = self._written = published.size
        if why is not None:
            log.warning("ledger %r: the publication directory %s holds %s: publishing it again from the start",
                        self.ledger.id, self.files.directory, why)
            self.files.clear()

    # -- publishing -----------------------------------------------------------------------

    def publish_latest(self) -> int:
        """Publish up to the ledger's latest checkpoint; the size published."""
        latest = self.ledger.latest_checkpoint()
        if latest is not None and latest["size"] > self.published:
            self.publish(latest)
        return self.published

    def publish(self, checkpoint: dict) -> None:
        size = checkpoint["size"]
        while self._written < size:
            if self._stop.is_set():  # a long backfill: stop between steps (resumed on the next start)
                return
            step_end = min(size, (self._written // STEP_LEAVES + 1) * STEP_LEAVES)
            self._publish_step(step_end, final=step_end == size)
        self.files.write_checkpoint(self.published_note(checkpoint))
        self.published = size
        self.files.may_hold_files = False  # from here on, only this process writes full tiles

    def published_note(self, checkpoint: dict) -> str:
        """The checkpoint as published: the ledger's note with the witnesses' lines; for a
        SHA-256 ledger an Ed25519 signature too, after the ledger's SM2 line, so that tlog-tiles
        tooling, which verifies Ed25519 notes, reads it (docs/tiles.md)."""
        note, _ = self.ledger.cosigned_note(checkpoint)
        if self.ledger.alg != "sha256":
            return note
        body, _, lines = note.partition("\n\n")
        first, _, witnesses = lines.partition("\n")
        ed25519 = ed25519_signature_line(body + "\n", self.ledger.origin, self.ledger.keys.tiles_key())
        return f"{body}\n\n{first}\n{ed25519}{witnesses}"

    def _hand_over(self, first: int, leaves: list[bytes]) -> None:
        if self._stop.is_set():
            return
        with self._handed_lock:
            if first != self._handed_first + len(self._handed) or len(self._handed) + len(leaves) > HANDED_MAX:
                self._handed, self._handed_first = [], first  # a gap, or far behind: read the log
            self._handed += leaves

    def _leaves(self, first: int, stop: int) -> list[bytes]:
        """Leaves first..stop-1: handed over if they were, else read from the log. Those below
        the start of stop's entry bundle are let go: no later step needs them."""
        keep_from = stop // TILE_WIDTH * TILE_WIDTH
        with self._handed_lock:
            handed_first, handed = self._handed_first, self._handed
            taken = None
            if handed_first <= first and stop <= handed_first + len(handed):
                taken = handed[first - handed_first:stop - handed_first]
            if handed_first < keep_from:
                del handed[:keep_from - handed_first]
                self._handed_first = keep_from
        return taken if taken is not None else self.ledger.leaves(first, stop - first)

    def _publish_step(self, size: int, final: bool) -> None:
        old = self._written
        first_bundle = old // TILE_WIDTH
        leaves = self._leaves(first_bundle * TILE_WIDTH, size)  # the partial bundle at `old` is written again
        store = self.ledger.projections.tree.store
        self.files.write_entry_bundles(first_bundle, leaves, size, partials=final)
        self.files.write_hash_tiles(store, old, size, partials=final)
        self._written = size

    def rebuild(self) -> int:
        """Write the whole publication again from the tree and the log; the size published.
        Readers find nothing until it is done."""
        self.files.clear_staging()
        self.files.clear()
        self.published = self._written = 0
        return self.publish_latest()

    # -- the thread -----------------------------------------------------------------------

    def _cosigned(self, payload: dict) -> None:
        # A witness cosigned: the published checkpoint, if of that size, is written again with
        # the witness's line (as tlog-witness clients read a cosigned checkpoint). The flag is
        # looked at after each publication, so a cosignature that comes while its checkpoint
        # is being published is not missed.
        self._recosign = True
        self._wake.set()

    def start(self) -> None:
        self.ledger.on_leaves(self._hand_over)
        self.ledger.on_sealed(lambda payload: self._wake.set())
        self.ledger.on_cosigned(self._cosigned)
        self._wake.set()  # whatever was sealed before the start (the crash repair)
        self._thread = threading.Thread(target=self._run, name=f"tiles-{self.ledger.id}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        delay, resumed = 0.1, False
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                # On a failure, or when the published checkpoint is gone (the folder deleted by
                # hand), start from what the directory holds again: it is republished if need be.
                if self.failure is not None or not resumed or (self.published and not self.files.has_checkpoint()):
                    self.resume()
                    if not resumed:
                        self._say_tiles_key()
                    resumed = True
                self.publish_latest()
                if self._recosign and self.published:
                    self._recosign = False  # before the note is read: a later one sets it again
                    note = self.published_note(self.ledger.checkpoint(self.published))
                    if note != self.files.read_checkpoint():
                        self.files.write_checkpoint(note)
            except Exception as exc:  # a full disk, a permission: retry, the ledger goes on
                self.errors += 1
                self.failure = f"{type(exc).__name__}: {exc}"
                log.error("ledger %r: publishing tiles failed, retrying in %.1f s: %s", self.ledger.id, delay,
                          self.failure)
                self._stop.wait(delay)
                delay = min(delay * 2, 30.0)
                self._wake.set()
                continue
            if self.failure is not None:
                log.warning("ledger %r: publishing tiles again (size %d)", self.ledger.id, self.published)
            self.failure, delay = None, 0.1

    def _say_tiles_key(self) -> None:
        # In this thread: a key file that cannot be made or read is a publication failure
        # (retried, on the failing metric), never a service that will not start.
        if self.ledger.alg == "sha256":
            from merkle.checkpoint import ed25519_verifier_key

            log.info("ledger %r: its published checkpoints are also signed with the Ed25519 key %s", self.ledger.id,
                     ed25519_verifier_key(self.ledger.origin, self.ledger.keys.tiles_key()))

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)


class TilePublication:
    """A publisher for every ledger of a service, those created later included."""

    def __init__(self, service, root: str | os.PathLike):
        self.root = Path(root)
        self.publishers: dict[str, TilePublisher] = {}
        self._lock = threading.Lock()
        service.each_ledger(self._add)

    def _add(self, ledger) -> None:
        publisher = TilePublisher(ledger, self.root)
        with self._lock:
            self.publishers[ledger.id] = publisher
        publisher.start()

    def directory(self, ledger_id: str) -> Path:
        return publication_paths(self.root, ledger_id)[0]

    def stop(self) -> None:
        with self._lock:
            publishers = list(self.publishers.values())
        for publisher in publishers:
            publisher.stop()
