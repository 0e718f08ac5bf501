"""The SM3 Merkle log engine: hashing (numba batch kernels + pure reference), RFC 9162
trees over a node store, inclusion/consistency proofs and signed checkpoints."""
from .hashing import ALGORITHMS, DIGEST_SIZE, LogHasher, get_hasher, hash_leaves, hash_nodes, sm3
from .proof import ProofError, verify_consistency, verify_inclusion
from .sm3_ref import sm3_reference
from .store import MemoryStore, NodeStore, RocksDBStore
from .tree import MerkleLog

__all__ = [
    "ALGORITHMS", "DIGEST_SIZE", "LogHasher", "MemoryStore", "MerkleLog", "NodeStore", "ProofError",
    "RocksDBStore", "get_hasher", "hash_leaves", "hash_nodes", "sm3", "sm3_reference",
    "verify_consistency", "verify_inclusion",
]
