"""Writing a tree as C2SP tlog-tiles (the layout: evledger_verify/tiles.py, docs/tiles.md).

A tile at level L holds the hashes the node store keeps at height 8*L, so a tile is a slice
of one stored level, read and written as is. Every file goes through a staging directory and
is renamed into place, so a reader (a static server, a CDN pulling from it) sees a whole file
or none: full tiles and full entry bundles are written once and never change; a partial one
is a new path per width; the checkpoint, which names the size a reader may ask for, is
replaced last, after every file it needs is in place and on disk (fsynced, names too).
"""
from __future__ import annotations

import logging
import os
import secrets
import shutil
from pathlib import Path

from evledger_verify.tiles import TILE_HEIGHT, TILE_WIDTH, encode_entry_bundle, entries_path, tile_path

from evledger_common.durable import fsync_dir

from .hashing import DIGEST_SIZE
from .store import NodeStore

log = logging.getLogger("evledger.tiles")


class TileDirectory:
    """One ledger's publication directory, and where its files are staged before the rename."""

    def __init__(self, directory: str | os.PathLike, staging: str | os.PathLike):
        self.directory = Path(directory)
        self.staging = Path(staging)
        self.written = 0  # files written (for metrics and tests)
        self.bytes_written = 0
        self._renamed_in: set[Path] = set()  # directories with renames not yet fsynced
        self._made: set[Path] = set()  # directories known to exist
        self.may_hold_files = True  # files of an interrupted publication may be there: compare first
        umask = os.umask(0)
        os.umask(umask)
        self._umask_narrows = bool(umask & 0o044)

    def clear_staging(self) -> None:
        """Remove what a crash left half-written; none of it was ever visible."""
        shutil.rmtree(self.staging, ignore_errors=True)
        self._made.clear()  # (re)starting: folders are looked at again (one may have been deleted)
        self._renamed_in.clear()

    def _write(self, path: str, data: bytes) -> None:
        # Few system calls: each lets go of the interpreter, which a busy ingest then holds for
        # up to a switch interval (5 ms) before this thread gets it back.
        target = self.directory / path
        for directory in (self.staging, target.parent):
            if directory not in self._made:
                self._make(directory)
        temp = str(self.staging / secrets.token_hex(8))
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)  # a static server reads it as another user
        try:
            if self._umask_narrows:
                os.fchmod(fd, 0o644)
            view = memoryview(data)
            while view:  # a full disk writes what fits and says so only at the next write
                view = view[os.write(fd, view):]
            os.fsync(fd)  # its bytes on disk before its name: a power loss leaves no empty tile
        except BaseException:
            os.close(fd)
            os.unlink(temp)
            raise
        os.close(fd)
        os.replace(temp, target)
        self._renamed_in.add(target.parent)
        self.written += 1
        self.bytes_written += len(data)

    def _make(self, directory: Path) -> None:
        """mkdir -p, the new folders' names made durable with the renames (their parents are
        fsynced before the next checkpoint too)."""
        missing = []
        while not directory.exists():
            missing.append(directory)
            directory = directory.parent
        for new in reversed(missing):
            new.mkdir(exist_ok=True)
            self._renamed_in.add(new.parent)
        self._made.update(missing)
        self._made.add(directory)

    def _sync_names(self) -> None:
        """Make the renames so far durable (their directories fsynced), before a checkpoint
        names the size they belong to: after a power loss, a published checkpoint's files are
        all there."""
        for directory in sorted(self._renamed_in):
            try:
                fsync_dir(directory)
            except FileNotFoundError:  # a partial tile's folder removed since: nothing to keep
                pass
        self._renamed_in.clear()

    def clear(self) -> None:
        """Take every file down (another history's, or to be written again): the checkpoint
        first, then the tiles moved aside at once and deleted."""
        self.remove_checkpoint()
        tiles = self.directory / "tile"
        if tiles.exists():
            self.staging.mkdir(parents=True, exist_ok=True)
            aside = self.staging / f"old-{secrets.token_hex(8)}"
            os.replace(tiles, aside)
            shutil.rmtree(aside, ignore_errors=True)
            self._made.clear()

    def _write_once(self, path: str, data: bytes) -> None:
        """Write `path` unless it already holds exactly `data` (what an interrupted publication
        wrote before a restart); a file that holds something else is replaced, and said."""
        held = None
        # A partial tile of an upper level often has the same width at the next checkpoint: read
        # it rather than write it again. A full one is new unless a publication was interrupted.
        if self.may_hold_files or ".p/" in path:
            try:
                with open(self.directory / path, "rb") as f:
                    held = f.read(len(data) + 1)
            except FileNotFoundError:
                pass
        if held == data:
            return
        if held is not None:
            log.warning("%s: %s held other bytes than the tree's; written again", self.directory, path)
        self._write(path, data)

    def _drop_partials(self, full_path: str) -> None:
        # The full tile answers for every partial one of its index from now on (a client that
        # asks for a partial one and finds it gone falls back to it, as tlog-tiles says).
        shutil.rmtree(self.directory / (full_path + ".p"), ignore_errors=True)

    def read_checkpoint(self) -> str | None:
        try:
            return (self.directory / "checkpoint").read_text(encoding="utf-8")
        except (FileNotFoundError, UnicodeDecodeError):
            return None

    def has_checkpoint(self) -> bool:
        return (self.directory / "checkpoint").exists()

    def write_checkpoint(self, note: str) -> None:
        self._sync_names()
        self._write("checkpoint", note.encode())
        self._sync_names()

    def remove_checkpoint(self) -> None:
        (self.directory / "checkpoint").unlink(missing_ok=True)
        if self.directory.exists():
            fsync_dir(self.directory)

    def _write_row(self, first: int, count: int, partials: bool, path_of, data_of) -> None:
        """The files of one row (a tile level, or the entry bundles) from index `first` up to
        `count` items: the full ones, then (with `partials`) the partial one; a full one takes
        the place of the partial ones of its index."""
        for index in range(first, -(-count // TILE_WIDTH)):
            width = min(TILE_WIDTH, count - index * TILE_WIDTH)
            if width < TILE_WIDTH and not partials:
                continue
            path = path_of(index, width)
            self._write_once(path, data_of(index, width))
            if width == TILE_WIDTH:
                self._drop_partials(path)

    def write_hash_tiles(self, store: NodeStore, old_size: int, new_size: int, partials: bool = True) -> None:
        """The hash tiles that tree size `new_size` has and `old_size` had not: the full ones
        completed in between, and (with `partials`) the partial one of each level."""
        level = 0
        while new_size >> (TILE_HEIGHT * level):
            height = TILE_HEIGHT * level

            def hashes(index: int, width: int, height=height) -> bytes:
                start = index * TILE_WIDTH
                data = store.read_nodes(height, start, start + width)
                if len(data) != width * DIGEST_SIZE:
                    raise RuntimeError(f"node store has {len(data) // DIGEST_SIZE} hashes at height {height} "
                                       f"from {start}, want {width}")
                return data
            self._write_row((old_size >> height) // TILE_WIDTH, new_size >> height, partials,
                            lambda index, width, level=level: tile_path(level, index, width), hashes)
            level += 1

    def write_entry_bundles(self, first_index: int, leaves: list[bytes], new_size: int, partials: bool = True) -> None:
        """The entry bundles from bundle `first_index` up to tree size `new_size`; `leaves` are
        the leaves from the first of those bundles on (first_index * 256 to new_size)."""
        if len(leaves) != new_size - first_index * TILE_WIDTH:
            raise ValueError(f"{len(leaves)} leaves given for entries {first_index * TILE_WIDTH} to {new_size}")

        def bundle(index: int, width: int) -> bytes:
            offset = (index - first_index) * TILE_WIDTH
            return encode_entry_bundle(leaves[offset:offset + width])
        self._write_row(first_index, new_size, partials, entries_path, bundle)


__all__ = ["TileDirectory"]
