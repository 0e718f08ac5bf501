"""Kafka's default partitioner for many keys at once: murmur2 of each key (as the Java client
and aiokafka compute it), its low 31 bits modulo the partition count.

The worker publishes one receipt per record, keyed by evidence id; aiokafka's partitioner
runs its pure-Python murmur2 for every message, which was a sixth of the worker's CPU. Here
the keys of a whole batch go through one compiled loop (numba, compiled on first use and
cached on disk like the SM3 kernels), and the receipts are sent in one batch per partition.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=1)
def _kernel():
    from numba import njit

    @njit(cache=True, nogil=True)
    def murmur2_partitions(data, offsets, partitions, out):  # pragma: no cover - compiled
        # numba does integer arithmetic at 64 bits: every step is masked back to 32.
        mask = np.uint64(0xFFFFFFFF)
        m = np.uint64(0x5BD1E995)
        for i in range(offsets.shape[0] - 1):
            start = offsets[i]
            length = offsets[i + 1] - start
            h = (np.uint64(0x9747B28C) ^ np.uint64(length)) & mask
            for j in range(length // 4):
                p = start + 4 * j
                k = (np.uint64(data[p]) | (np.uint64(data[p + 1]) << np.uint64(8))
                     | (np.uint64(data[p + 2]) << np.uint64(16)) | (np.uint64(data[p + 3]) << np.uint64(24)))
                k = (k * m) & mask
                k ^= k >> np.uint64(24)
                k = (k * m) & mask
                h = ((h * m) & mask) ^ k
            tail = start + (length & ~3)
            extra = length % 4
            if extra >= 3:
                h ^= np.uint64(data[tail + 2]) << np.uint64(16)
            if extra >= 2:
                h ^= np.uint64(data[tail + 1]) << np.uint64(8)
            if extra >= 1:
                h ^= np.uint64(data[tail])
                h = (h * m) & mask
            h ^= h >> np.uint64(13)
            h = (h * m) & mask
            h ^= h >> np.uint64(15)
            out[i] = (h & np.uint64(0x7FFFFFFF)) % np.uint64(partitions)

    return murmur2_partitions


def kafka_partitions(keys: list[bytes], partitions: int) -> np.ndarray:
    """For each key, the index (0 .. partitions-1) of the partition Kafka's default
    partitioner picks among the topic's partitions sorted by id."""
    if partitions < 1:
        raise ValueError(f"a topic has at least one partition, got {partitions}")
    out = np.zeros(len(keys), dtype=np.uint32)
    if not keys:
        return out
    data = np.frombuffer(b"".join(keys) or b"\0", dtype=np.uint8)
    offsets = np.zeros(len(keys) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, keys), dtype=np.int64, count=len(keys)), out=offsets[1:])
    _kernel()(data, offsets, partitions, out)
    return out
