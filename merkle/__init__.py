"""The SM3 Merkle log engine: hashing (numba batch kernels + pure reference), RFC 9162
trees over a node store, inclusion/consistency proofs and signed checkpoints.

Proof verification and the pure SM3 reference belong to the verifier (evledger_verify.proof,
evledger_verify.sm3), which a court installs alone; they are named here too. The names below
are loaded on first use (PEP 562), so that importing one module never loads numpy, numba or
rocksdict for the others."""
import importlib

_WHERE = {
    "ALGORITHMS": "hashing", "DIGEST_SIZE": "evledger_verify.proof", "LogHasher": "hashing", "get_hasher": "hashing",
    "hash_leaves": "hashing", "hash_nodes": "hashing", "sm3": "hashing",
    "ProofError": "evledger_verify.proof", "verify_consistency": "evledger_verify.proof",
    "verify_inclusion": "evledger_verify.proof", "sm3_reference": "evledger_verify.sm3",
    "MemoryStore": "store", "NodeStore": "store", "RocksDBStore": "store",
    "MerkleLog": "tree",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    where = _WHERE[name]
    module = importlib.import_module(where if "." in where else f".{where}", __name__)
    value = getattr(module, name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__():
    return sorted(set(globals()) | set(_WHERE))
