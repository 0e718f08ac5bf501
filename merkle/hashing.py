"""Hash functions of the Merkle log: SM3 (default) and SHA-256, batch and single.

A `LogHasher` is passed to the tree code (RFC 9162 §2.1: leaf = H(0x00 || leaf),
node = H(0x01 || left || right)); only the SM3 hasher knows numba exists.
"""
from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from evledger_verify.proof import DIGEST_SIZE
from evledger_verify.sm3 import sm3_reference
ALGORITHMS = ("sm3", "sha256")
LEAF_PREFIX = 0x00
NODE_PREFIX = 0x01

try:  # OpenSSL's SM3 when this Python's OpenSSL has it; the pure reference otherwise
    hashlib.new("sm3")
    _HAVE_OPENSSL_SM3 = True
except ValueError:  # pragma: no cover - depends on the OpenSSL build
    _HAVE_OPENSSL_SM3 = False


def sm3(data: bytes) -> bytes:
    """SM3 digest of one message (OpenSSL when available, else the pure reference)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, not {type(data).__name__}")
    if _HAVE_OPENSSL_SM3:
        return hashlib.new("sm3", data).digest()
    return sm3_reference(bytes(data))


def check_algorithm(alg: str) -> str:
    if alg not in ALGORITHMS:
        raise ValueError(f"alg must be one of {', '.join(ALGORITHMS)}, not {alg!r}")
    return alg


def pack_messages(messages: Sequence[bytes] | tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(data, offsets) for a list of bytes; a (data, offsets) pair passes through checked."""
    if isinstance(messages, tuple) and len(messages) == 2 and isinstance(messages[0], np.ndarray):
        data, offsets = messages
        data = _writable(np.ascontiguousarray(data, dtype=np.uint8).reshape(-1))
        offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        if offsets.ndim != 1 or offsets.size < 1 or offsets[0] != 0 or offsets[-1] != data.size \
                or np.any(np.diff(offsets) < 0):
            raise ValueError("offsets must start at 0, never decrease and end at len(data)")
        return data, offsets
    if isinstance(messages, (bytes, bytearray, str)):
        raise TypeError("leaves must be a sequence of bytes, not a single bytes/str value")
    try:  # C-level loops (join, map(len)): no Python code runs per message
        joined = b"".join(messages)
    except TypeError:
        for n, m in enumerate(messages):
            if not isinstance(m, (bytes, bytearray, memoryview)):
                raise TypeError(f"leaves[{n}] must be bytes, not {type(m).__name__}") from None
        raise
    offsets = np.zeros(len(messages) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, messages), dtype=np.int64, count=len(messages)), out=offsets[1:])
    data = np.frombuffer(bytearray(joined), dtype=np.uint8)  # writable: see _writable
    return data, offsets


def _writable(arr: np.ndarray) -> np.ndarray:
    # numba compiles a separate (slow to build) specialization for read-only arrays; one
    # copy keeps every call on the same compiled kernel.
    return arr if arr.flags.writeable else arr.copy()


def check_prefix(prefix: int) -> int:
    if not isinstance(prefix, (int, np.integer)) or isinstance(prefix, bool) or not -1 <= prefix <= 255:
        raise ValueError(f"prefix must be a byte value 0..255, or -1 for none; got {prefix!r}")
    return int(prefix)


def as_digest_array(digests, name: str) -> np.ndarray:
    """An (n, 32) uint8 array from such an array or a sequence of 32-byte values."""
    if isinstance(digests, np.ndarray):
        arr = digests
    else:
        items = list(digests)
        for n, d in enumerate(items):
            if not isinstance(d, (bytes, bytearray)) or len(d) != DIGEST_SIZE:
                raise ValueError(f"{name}[{n}] must be a {DIGEST_SIZE}-byte digest")
        arr = np.frombuffer(bytearray(b"".join(items)), dtype=np.uint8).reshape(len(items), DIGEST_SIZE)
    if arr.dtype != np.uint8 or arr.ndim != 2 or arr.shape[1] != DIGEST_SIZE:
        raise ValueError(f"{name} must be an (n, {DIGEST_SIZE}) uint8 array, got {arr.dtype} {arr.shape}")
    return _writable(np.ascontiguousarray(arr))


# Below this many messages one thread hashes them: a batch of a few thousand takes well under a
# millisecond, and handing it to the pool costs more when the other core is busy.
PARALLEL_MIN_MESSAGES = 8192


def _sm3_batch(data: np.ndarray, offsets: np.ndarray, prefix: int) -> np.ndarray:
    from . import sm3_numba  # imported here so plain verification never loads numba

    n = offsets.size - 1
    out = np.empty((n, DIGEST_SIZE), dtype=np.uint8)
    if n == 0:
        return out
    lengths = np.diff(offsets)
    if lengths.min() == lengths.max():
        order = np.arange(n, dtype=np.int64)
    else:  # group messages of equal block count into the same 16 lanes
        order = np.argsort((lengths + 9) // 64, kind="stable").astype(np.int64)
    if n < PARALLEL_MIN_MESSAGES:
        sm3_numba.sm3_multibuffer_serial(data, offsets, order, prefix, out)
    else:
        sm3_numba.sm3_multibuffer(data, offsets, order, prefix, out)
    return out


def _hashlib_batch(alg: str, data: np.ndarray, offsets: np.ndarray, prefix: int) -> np.ndarray:
    n = offsets.size - 1
    out = np.empty((n, DIGEST_SIZE), dtype=np.uint8)
    raw = data.tobytes()
    pre = bytes([prefix]) if prefix >= 0 else b""
    for i in range(n):
        out[i] = np.frombuffer(hashlib.new(alg, pre + raw[offsets[i]:offsets[i + 1]]).digest(), dtype=np.uint8)
    return out


def hash_messages(messages, alg: str = "sm3", prefix: int = -1) -> np.ndarray:
    """Digests (n x 32 uint8) of many messages, each optionally preceded by one prefix byte."""
    check_algorithm(alg)
    prefix = check_prefix(prefix)
    data, offsets = pack_messages(messages)
    if alg == "sm3":
        return _sm3_batch(data, offsets, prefix)
    return _hashlib_batch(alg, data, offsets, prefix)


def hash_leaves(leaves, alg: str = "sm3") -> np.ndarray:
    """RFC 9162 leaf hashes H(0x00 || leaf) of a batch: a list of bytes or (data, offsets)."""
    return hash_messages(leaves, alg, LEAF_PREFIX)


def digest_pairs(lefts, rights) -> tuple[np.ndarray, np.ndarray]:
    """Checked (n x 32) arrays of the left and right children of n interior nodes."""
    lefts = as_digest_array(lefts, "lefts")
    rights = as_digest_array(rights, "rights")
    if lefts.shape != rights.shape:
        raise ValueError(f"lefts and rights differ in length: {lefts.shape[0]} != {rights.shape[0]}")
    return lefts, rights


def hash_nodes(lefts, rights, alg: str = "sm3") -> np.ndarray:
    """RFC 9162 interior hashes H(0x01 || left || right) of pairs of (n x 32) digests."""
    check_algorithm(alg)
    lefts, rights = digest_pairs(lefts, rights)
    n = lefts.shape[0]
    if alg == "sm3":
        from . import sm3_numba

        out = np.empty((n, DIGEST_SIZE), dtype=np.uint8)
        if n >= PARALLEL_MIN_MESSAGES:
            sm3_numba.sm3_node_pairs(lefts, rights, out)
        elif n:
            sm3_numba.sm3_node_pairs_serial(lefts, rights, out)
        return out
    data = np.concatenate([lefts, rights], axis=1).reshape(-1)
    offsets = np.arange(n + 1, dtype=np.int64) * (2 * DIGEST_SIZE)
    return _hashlib_batch(alg, data, offsets, NODE_PREFIX)


def warm_up() -> None:
    """Compile, or load from numba's on-disk cache, the four SM3 kernels the service calls
    (serial and parallel batches of leaves and of node pairs), with the argument types of
    real calls. On a
    fresh machine that takes tens of seconds; from the cache, a fraction of one."""
    hash_leaves([b"warm-up"] * 4)
    hash_leaves([b"warm-up"] * PARALLEL_MIN_MESSAGES)
    digests = np.zeros((2, DIGEST_SIZE), dtype=np.uint8)
    hash_nodes(digests, digests)
    digests = np.zeros((PARALLEL_MIN_MESSAGES, DIGEST_SIZE), dtype=np.uint8)
    hash_nodes(digests, digests)


class LogHasher:
    """RFC 9162 hashing with one hash function; batch methods use the fastest kernel."""

    def __init__(self, alg: str = "sm3"):
        self.alg = check_algorithm(alg)
        self.digest_size = DIGEST_SIZE
        if alg == "sm3":
            self._h = sm3
        else:
            self._h = lambda data: hashlib.sha256(data).digest()

    def hash(self, data: bytes) -> bytes:
        return self._h(data)

    def empty_root(self) -> bytes:
        return self._h(b"")

    def hash_leaf(self, leaf: bytes) -> bytes:
        return self._h(b"\x00" + leaf)

    def hash_children(self, left: bytes, right: bytes) -> bytes:
        return self._h(b"\x01" + left + right)

    def hash_leaves(self, leaves) -> np.ndarray:
        return hash_leaves(leaves, self.alg)

    def hash_nodes(self, lefts, rights) -> np.ndarray:
        lefts, rights = digest_pairs(lefts, rights)
        # Small batches go through hashlib: a kernel call costs more than a few hashes.
        if lefts.shape[0] < 64:
            return np.array([np.frombuffer(self.hash_children(bytes(a), bytes(b)), np.uint8)
                             for a, b in zip(lefts, rights)], dtype=np.uint8).reshape(-1, DIGEST_SIZE)
        return hash_nodes(lefts, rights, self.alg)


_HASHERS: dict[str, LogHasher] = {}


def get_hasher(alg: str = "sm3") -> LogHasher:
    check_algorithm(alg)
    if alg not in _HASHERS:
        _HASHERS[alg] = LogHasher(alg)
    return _HASHERS[alg]
