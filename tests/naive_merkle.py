"""The RFC 9162 §2.1 definitions written the slow, obvious way, to hold `merkle.tree` against.

MTH (§2.1.1), PATH (§2.1.3.1) and PROOF/SUBPROOF (§2.1.4.1) over a list of leaf hashes,
recursing exactly as the RFC states them; the only liberty is a memo of MTH per range, so
that every proof of a few hundred leaves stays cheap. Nothing here imports `merkle`.
"""
from __future__ import annotations

import hashlib
from typing import Callable

Hash = Callable[[bytes], bytes]


def hash_function(alg: str) -> Hash:
    if alg == "sha256":
        return lambda data: hashlib.sha256(data).digest()
    return lambda data: hashlib.new("sm3", data).digest()


def split(n: int) -> int:
    """The largest power of two smaller than n (n > 1): RFC 9162 §2.1.1's k."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def distinct_leaves(n: int, seed: int = 0, extra: int = 40) -> list[bytes]:
    """n pairwise distinct leaves of varied lengths (the index is part of every leaf: with
    equal leaves a proof for one index is a true proof for another)."""
    import random

    rnd = random.Random(seed)
    return [i.to_bytes(4, "big") + rnd.randbytes(rnd.randrange(extra + 1)) for i in range(n)]


class NaiveTree:
    def __init__(self, leaves: list[bytes], alg: str):
        self.h = hash_function(alg)
        self.leaf_hashes = [self.h(b"\x00" + leaf) for leaf in leaves]
        self._memo: dict[tuple[int, int], bytes] = {}

    def mth(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi])."""
        n = hi - lo
        if n == 0:
            return self.h(b"")
        if n == 1:
            return self.leaf_hashes[lo]
        key = (lo, hi)
        if key not in self._memo:
            k = split(n)
            self._memo[key] = self.h(b"\x01" + self.mth(lo, lo + k) + self.mth(lo + k, hi))
        return self._memo[key]

    def root(self, size: int) -> bytes:
        return self.mth(0, size)

    def path(self, m: int, lo: int, hi: int) -> list[bytes]:
        """PATH(m, D[lo:hi]), m relative to lo."""
        n = hi - lo
        if n == 1:
            return []
        k = split(n)
        if m < k:
            return self.path(m, lo, lo + k) + [self.mth(lo + k, hi)]
        return self.path(m - k, lo + k, hi) + [self.mth(lo, lo + k)]

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return self.path(index, 0, size)

    def subproof(self, m: int, lo: int, hi: int, complete: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if complete else [self.mth(lo, hi)]
        k = split(n)
        if m <= k:
            return self.subproof(m, lo, lo + k, complete) + [self.mth(lo + k, hi)]
        return self.subproof(m - k, lo + k, hi, False) + [self.mth(lo, lo + k)]

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        if size1 == 0 or size1 == size2:
            return []
        return self.subproof(size1, 0, size2, True)
