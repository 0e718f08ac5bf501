"""Node storage for the Merkle log: where the hashes of complete subtrees live.

Only complete ("perfect") subtrees are stored: node (level, index) is the hash of leaves
[index * 2**level, (index + 1) * 2**level). They never change once written, so the root and
every proof at any past tree size can be computed from them (RFC 9162 §2.1), and a proof
reads O(log n) of them. Two implementations: in memory, and RocksDB through rocksdict.
"""
from __future__ import annotations

import os
import struct
from collections import OrderedDict

from evledger_verify.proof import DIGEST_SIZE


class NodeStore:
    """Interface: read stored nodes, and commit a batch of new ones with the new size."""

    def tree_size(self) -> int:
        raise NotImplementedError

    def level_count(self, level: int) -> int:
        """How many nodes are stored at `level` (those of complete subtrees)."""
        return self.tree_size() >> level

    def read_nodes(self, level: int, start: int, stop: int) -> bytes:
        """The concatenated hashes of nodes [start, stop) at `level`."""
        raise NotImplementedError

    def read_node(self, level: int, index: int) -> bytes:
        return self.read_nodes(level, index, index + 1)

    def commit(self, new_nodes: dict[int, tuple[int, bytes]], new_size: int) -> None:
        """Atomically add nodes ({level: (first index, concatenated hashes)}) and set the size.

        The first index at each level must be the level's current count: nodes are only
        ever appended."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def _check_range(self, level: int, start: int, stop: int) -> None:
        count = self.level_count(level)
        if level < 0 or start < 0 or stop > count or start > stop:
            raise IndexError(f"nodes [{start}, {stop}) at level {level} are not stored (level holds {count})")

    def _check_commit(self, new_nodes: dict[int, tuple[int, bytes]], new_size: int) -> None:
        for level, (start, data) in new_nodes.items():
            if start != self.level_count(level):
                raise ValueError(f"level {level}: append at {start}, but the level holds {self.level_count(level)}")
            if len(data) % DIGEST_SIZE or start + len(data) // DIGEST_SIZE != new_size >> level:
                raise ValueError(f"level {level}: {len(data)} bytes do not make the level {new_size >> level} nodes")


class MemoryStore(NodeStore):
    """Every level as one growing bytearray."""

    def __init__(self):
        self._levels: list[bytearray] = []
        self._size = 0

    def tree_size(self) -> int:
        return self._size

    def read_nodes(self, level: int, start: int, stop: int) -> bytes:
        self._check_range(level, start, stop)
        return bytes(self._levels[level][start * DIGEST_SIZE:stop * DIGEST_SIZE])

    def commit(self, new_nodes, new_size) -> None:
        self._check_commit(new_nodes, new_size)
        for level, (_, data) in sorted(new_nodes.items()):
            while len(self._levels) <= level:
                self._levels.append(bytearray())
            self._levels[level] += data
        self._size = new_size


class RocksDBStore(NodeStore):
    """Nodes in RocksDB, 256 consecutive nodes of a level per value (8 KiB).

    Key: b"n" + level (1 byte) + chunk number (8 bytes, big-endian), so a level's chunks are
    contiguous and ordered. Packing a chunk per key makes an append of B leaves about B/128
    writes instead of 2B, all in one WriteBatch together with the new size (atomic). The
    partial last chunk of each level is rewritten as it fills. Held in memory: the last chunk
    of each level (at most 64 levels x 8 KiB) and an LRU of full chunks read for proofs
    (`cache_chunks`, default 4096 = 32 MiB): full chunks never change, and the upper levels'
    few chunks are in every proof, so a proof mostly reads only its lowest levels from RocksDB.
    """

    CHUNK = 256
    _SIZE_KEY = b"m:size"

    def __init__(self, path: str | os.PathLike, sync: bool = False, cache_chunks: int = 4096):
        from rocksdict import WriteOptions

        from .rocks import RocksHandle

        os.makedirs(path, exist_ok=True)
        self._db = RocksHandle(path, self._options, "the Merkle node store")
        self._write_opts = WriteOptions()
        self._write_opts.sync = sync
        self._tail: dict[int, tuple[int, bytes]] = {}  # level -> (chunk number, its bytes)
        self._cache: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._cache_chunks = cache_chunks
        self._load_size()

    @staticmethod
    def _options():
        from rocksdict import Options

        opts = Options(raw_mode=True)
        opts.create_if_missing(True)
        opts.set_max_background_jobs(2)
        return opts

    def _load_size(self) -> None:
        raw = self._db.get(self._SIZE_KEY)
        self._size = struct.unpack(">Q", raw)[0] if raw is not None else 0

    @property
    def unavailable(self) -> str | None:
        """Why the store takes no writes (a write failed, e.g. on a full disk), or None."""
        return self._db.failure

    def recover(self) -> bool:
        """After a failed write: reopen the database once it can be (see merkle.rocks);
        True if it was reopened just now. Raises StorageUnavailable while it cannot be."""
        if not self._db.recover():
            return False
        # Full chunks never change, so the cache stays; the partial tails and the size are
        # read again from what the database holds now.
        self._tail.clear()
        self._load_size()
        return True

    @staticmethod
    def _key(level: int, chunk: int) -> bytes:
        return b"n" + struct.pack(">BQ", level, chunk)

    def tree_size(self) -> int:
        return self._size

    def _chunk(self, level: int, chunk: int) -> bytes:
        tail = self._tail.get(level)
        if tail is not None and tail[0] == chunk:
            return tail[1]
        key = (level, chunk)
        value = self._cache.get(key)
        if value is not None:
            try:
                self._cache.move_to_end(key)
            except KeyError:  # evicted just now by a reader in another thread (proofs, tiles)
                pass
            return value
        value = self._db.get(self._key(level, chunk))
        if value is None:
            return b""
        if len(value) == self.CHUNK * DIGEST_SIZE and self._cache_chunks > 0:
            self._cache[key] = value
            if len(self._cache) > self._cache_chunks:
                self._cache.popitem(last=False)
        return value

    def read_nodes(self, level: int, start: int, stop: int) -> bytes:
        self._check_range(level, start, stop)
        parts = []
        c = self.CHUNK
        for chunk in range(start // c, (stop + c - 1) // c):
            data = self._chunk(level, chunk)
            lo = max(start - chunk * c, 0)
            hi = min(stop - chunk * c, c)
            parts.append(data[lo * DIGEST_SIZE:hi * DIGEST_SIZE])
        return b"".join(parts)

    def commit(self, new_nodes, new_size) -> None:
        from rocksdict import WriteBatch

        self._check_commit(new_nodes, new_size)
        batch = WriteBatch(raw_mode=True)
        c = self.CHUNK
        chunk_bytes = c * DIGEST_SIZE
        tails = {}
        for level, (start, data) in new_nodes.items():
            first_chunk = start // c
            # Bytes of the first touched chunk already stored, then the new ones.
            merged = self._chunk(level, first_chunk)[: (start - first_chunk * c) * DIGEST_SIZE] + data
            for k in range(0, len(merged), chunk_bytes):
                batch.put(self._key(level, first_chunk + k // chunk_bytes), merged[k:k + chunk_bytes])
            last = (len(merged) - 1) // chunk_bytes
            tails[level] = (first_chunk + last, merged[last * chunk_bytes:(last + 1) * chunk_bytes])
        batch.put(self._SIZE_KEY, struct.pack(">Q", new_size))
        self._db.write(batch, self._write_opts)
        self._tail.update(tails)
        self._size = new_size

    def close(self) -> None:
        self._db.close()
