"""The SM3 Merkle log engine: hashing (numba batch kernels + pure reference), RFC 9162
trees over a node store, inclusion/consistency proofs and signed checkpoints.

The names below are loaded on first use (PEP 562), so that `merkle.proof` and
`merkle.checkpoint`, which the offline verifier imports, never load numpy, numba or rocksdict."""
import importlib

_WHERE = {
    "ALGORITHMS": "hashing", "DIGEST_SIZE": "proof", "LogHasher": "hashing", "get_hasher": "hashing",
    "hash_leaves": "hashing", "hash_nodes": "hashing", "sm3": "hashing",
    "ProofError": "proof", "verify_consistency": "proof", "verify_inclusion": "proof",
    "sm3_reference": "sm3_ref",
    "MemoryStore": "store", "NodeStore": "store", "RocksDBStore": "store",
    "MerkleLog": "tree",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__():
    return sorted(set(globals()) | set(_WHERE))
