"""The append-only Merkle log of RFC 9162 §2.1 over a node store.

Appending B leaves to a tree of n hashes the B leaves, then each level's new parents, level
by level (each level one batch call to the hasher), reading at most one stored left sibling
per level: O(B + log n) hashes and writes, never a rebuild. Roots and proofs at any past
size are computed from stored complete subtrees.
"""
from __future__ import annotations

import numpy as np

from evledger_verify.proof import consistency_path, inclusion_path, split_point

from .hashing import DIGEST_SIZE, LogHasher, as_digest_array, get_hasher
from .store import NodeStore


def _check_count(name: str, value) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return int(value)


class MerkleLog:
    def __init__(self, store: NodeStore, alg: str = "sm3"):
        self.store = store
        self.hasher: LogHasher = get_hasher(alg)
        self.alg = alg

    @property
    def size(self) -> int:
        return self.store.tree_size()

    # -- writing -----------------------------------------------------------------------
    def append(self, leaves) -> int:
        """Append leaves (a list of bytes, or (data, offsets)); returns the first new index."""
        hashes = self.hasher.hash_leaves(leaves)
        if hashes.shape[0] == 0:
            raise ValueError("leaves is an empty batch")
        return self.append_leaf_hashes(hashes)

    def append_leaf_hashes(self, leaf_hashes) -> int:
        """Append already hashed leaves (n x 32 uint8, or a list of 32-byte digests)."""
        hashes = as_digest_array(leaf_hashes, "leaf_hashes")
        b = hashes.shape[0]
        if b == 0:
            raise ValueError("leaf_hashes is an empty batch")
        n = self.size
        new_size = n + b
        updates: dict[int, tuple[int, bytes]] = {}
        level, start, current = 0, n, hashes
        while True:
            updates[level] = (start, current.tobytes())
            parent_start, parent_end = start >> 1, new_size >> (level + 1)
            if parent_end <= parent_start:
                break  # no new complete subtree one level up, so none above either
            children = current
            if start & 1:  # the first new parent's left child was stored earlier
                left = np.frombuffer(self.store.read_node(level, start - 1), dtype=np.uint8)
                children = np.vstack([left[None, :], current])
            pairs = children[: 2 * (parent_end - parent_start)].reshape(-1, 2, DIGEST_SIZE)
            current = self.hasher.hash_nodes(np.ascontiguousarray(pairs[:, 0]), np.ascontiguousarray(pairs[:, 1]))
            level, start = level + 1, parent_start
        self.store.commit(updates, new_size)
        return n

    # -- reading -----------------------------------------------------------------------
    def leaf_hash(self, index: int) -> bytes:
        index = _check_count("index", index)
        if index >= self.size:
            raise ValueError(f"index {index} >= size {self.size}")
        return self.store.read_node(0, index)

    def _size_arg(self, size, name: str = "size") -> int:
        current = self.size
        if size is None:
            return current
        size = _check_count(name, size)
        if size > current:
            raise ValueError(f"{name} {size} > tree size {current}")
        return size

    def _subtree_hash(self, lo: int, hi: int, memo: dict) -> bytes:
        """MTH(D[lo:hi]) (RFC 9162 §2.1.1): a stored node when the range is a complete
        aligned subtree, else split at the largest power of two."""
        n = hi - lo
        if n & (n - 1) == 0 and lo % n == 0:
            level = n.bit_length() - 1
            return self.store.read_node(level, lo >> level)
        key = (lo, hi)
        if key not in memo:
            k = split_point(n)
            memo[key] = self.hasher.hash_children(self._subtree_hash(lo, lo + k, memo),
                                                  self._subtree_hash(lo + k, hi, memo))
        return memo[key]

    def root(self, size: int | None = None) -> bytes:
        size = self._size_arg(size)
        if size == 0:
            return self.hasher.empty_root()
        return self._subtree_hash(0, size, {})

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[0:size]) of RFC 9162 §2.1.3.1, leaf to root."""
        size = self._size_arg(size)
        index = _check_count("index", index)
        if index >= size:
            raise ValueError(f"index {index} >= size {size}")
        memo: dict = {}
        return inclusion_path(index, size, lambda lo, hi: self._subtree_hash(lo, hi, memo))

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """PROOF(size1, D[0:size2]) of RFC 9162 §2.1.4.1."""
        size2 = self._size_arg(size2, "size2")
        size1 = _check_count("size1", size1)
        if size1 > size2:
            raise ValueError(f"size1 {size1} > size2 {size2}")
        memo: dict = {}
        return consistency_path(size1, size2, lambda lo, hi: self._subtree_hash(lo, hi, memo))
