"""Verification of RFC 9162 inclusion and consistency proofs, in plain Python.

This is the code a court's expert reads: no numba, no numpy, no I/O, no state. It follows
RFC 9162 §2.1.3.2 and §2.1.4.2 step by step; the expected length of a proof is derived first
(as transparency-dev/merkle does), so a malformed proof is rejected before any hashing, and
every failure raises one `ProofError` whose message names the check that failed.
"""
from __future__ import annotations

import hashlib

from .sm3 import sm3_reference

# The one definition; hashing and store import it from here, the module without numpy that
# the offline verifier loads.
DIGEST_SIZE = 32


class ProofError(ValueError):
    """A proof did not verify; the message says which check failed."""


def hash_function(alg: str):
    """The tree hash H of RFC 9162 for `alg` as a plain function of bytes (no numba): SHA-256, or
    SM3 from OpenSSL when it has it, else the pure reference (the same bytes)."""
    if alg == "sha256":
        return lambda data: hashlib.sha256(data).digest()
    if alg == "sm3":
        try:
            hashlib.new("sm3")
            return lambda data: hashlib.new("sm3", data).digest()
        except ValueError:  # this OpenSSL lacks SM3: the pure reference gives the same bytes
            return sm3_reference
    raise ValueError(f"alg must be 'sm3' or 'sha256', not {alg!r}")


def _check_digest(name: str, value) -> None:
    if not isinstance(value, (bytes, bytearray)) or len(value) != DIGEST_SIZE:
        got = f"{len(value)} bytes" if isinstance(value, (bytes, bytearray)) else type(value).__name__
        raise ProofError(f"{name} must be a {DIGEST_SIZE}-byte digest, got {got}")


def _check_int(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProofError(f"{name} must be a non-negative integer, got {value!r}")


def _check_path(proof) -> None:
    if not isinstance(proof, (list, tuple)):
        raise ProofError(f"proof must be a list of digests, got {type(proof).__name__}")
    for n, p in enumerate(proof):
        _check_digest(f"proof[{n}]", p)


def inclusion_proof_length(index: int, size: int) -> int:
    """Hashes in an inclusion proof: the levels below where the paths to `index` and to
    `size - 1` diverge, plus one per left border subtree above."""
    inner = (index ^ (size - 1)).bit_length()
    border = bin(index >> inner).count("1")
    return inner + border


def consistency_proof_length(size1: int, size2: int) -> int:
    if size1 == 0 or size1 == size2:
        return 0
    level = (size1 & -size1).bit_length() - 1  # trailing zeros: size1 is a full subtree up to here
    index = (size1 - 1) >> level
    length = inclusion_proof_length(index, ((size2 - 1) >> level) + 1)
    return length if index == 0 else length + 1  # + the seed when size1 is not a power of two


def verify_inclusion(alg: str, index: int, size: int, leaf_hash: bytes, proof, root: bytes) -> None:
    """RFC 9162 §2.1.3.2: check that `leaf_hash` is leaf `index` of the tree of `size` with `root`."""
    h = hash_function(alg)
    _check_int("index", index)
    _check_int("size", size)
    _check_digest("leaf_hash", leaf_hash)
    _check_digest("root", root)
    _check_path(proof)
    if index >= size:
        raise ProofError(f"index {index} >= size {size}")
    want = inclusion_proof_length(index, size)
    if len(proof) != want:
        raise ProofError(f"wrong proof size: proof has {len(proof)} hashes, want {want}")
    fn, sn, r = index, size - 1, bytes(leaf_hash)
    for p in proof:
        if sn == 0:  # cannot happen after the length check; kept as the RFC states it
            raise ProofError("proof is longer than the path to the root")
        if fn & 1 or fn == sn:
            r = h(b"\x01" + bytes(p) + r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = h(b"\x01" + r + bytes(p))
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("proof is shorter than the path to the root")
    if r != root:
        raise ProofError(f"root mismatch: computed {r.hex()}, expected {bytes(root).hex()}")


def verify_consistency(alg: str, size1: int, size2: int, proof, root1: bytes, root2: bytes) -> None:
    """RFC 9162 §2.1.4.2: check that the tree of `size2` with `root2` extends the tree of
    `size1` with `root1` (every leaf of the first is in the second, unchanged, in place)."""
    h = hash_function(alg)
    _check_int("size1", size1)
    _check_int("size2", size2)
    _check_digest("root1", root1)
    _check_digest("root2", root2)
    _check_path(proof)
    if size2 < size1:
        raise ProofError(f"size2 {size2} < size1 {size1}")
    want = consistency_proof_length(size1, size2)
    if len(proof) != want:
        raise ProofError(f"wrong proof size: proof has {len(proof)} hashes, want {want}")
    if size1 == size2:
        if root1 != root2:
            raise ProofError(f"root mismatch at equal sizes: {bytes(root1).hex()} != {bytes(root2).hex()}")
        return
    if size1 == 0:  # the empty tree is a prefix of every tree
        return
    path = [bytes(p) for p in proof]
    if size1 & (size1 - 1) == 0:  # step 2: size1 is a power of two, its root is the seed
        path.insert(0, bytes(root1))
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("proof is longer than the path to root2")
        if fn & 1 or fn == sn:
            fr = h(b"\x01" + c + fr)
            sr = h(b"\x01" + c + sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = h(b"\x01" + sr + c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("proof is shorter than the path to root2")
    if fr != root1:
        raise ProofError(f"root1 mismatch: computed {fr.hex()}, expected {bytes(root1).hex()}")
    if sr != root2:
        raise ProofError(f"root2 mismatch: computed {sr.hex()}, expected {bytes(root2).hex()}")


# -- making proofs ------------------------------------------------------------------------
# PATH and PROOF of RFC 9162 §2.1.3.1 and §2.1.4.1 over any source of subtree hashes: the
# ledger's node store, or static tiles fetched by a client (evledger_verify/tiles.py).

def split_point(n: int) -> int:
    """k with k < n <= 2k (RFC 9162 §2.1.1's split point), for n > 1."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_path(index: int, size: int, subtree_hash) -> list[bytes]:
    """PATH(index, D[0:size]), leaf to root; `subtree_hash(lo, hi)` is MTH(D[lo:hi])."""
    if not 0 <= index < size:
        raise ValueError(f"index {index} is not below size {size}")
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = split_point(hi - lo)
        if index < lo + k:
            path.append(subtree_hash(lo + k, hi))
            hi = lo + k
        else:
            path.append(subtree_hash(lo, lo + k))
            lo = lo + k
    path.reverse()
    return path


def consistency_path(size1: int, size2: int, subtree_hash) -> list[bytes]:
    """PROOF(size1, D[0:size2]); `subtree_hash(lo, hi)` is MTH(D[lo:hi])."""
    if not 0 <= size1 <= size2:
        raise ValueError(f"size1 {size1} is not between 0 and size2 {size2}")
    if size1 == 0 or size1 == size2:
        return []
    path: list[bytes] = []
    lo, hi, m, complete = 0, size2, size1, True  # SUBPROOF(m, D[lo:hi], complete)
    while m != hi - lo:
        k = split_point(hi - lo)
        if m <= k:
            path.append(subtree_hash(lo + k, hi))
            hi = lo + k
        else:
            path.append(subtree_hash(lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        path.append(subtree_hash(lo, hi))
    path.reverse()
    return path
