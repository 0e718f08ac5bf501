"""Named ways to corrupt a good proof, shared by the vector generators.

Each function takes one happy-path case (a dict as written to JSON, hashes in hex) and returns
{file stem: corrupted case}; every corrupted case must be rejected by a verifier. The list and
the names follow transparency-dev/merkle proof/verify_test.go (`corruptInclusionProof`,
`corruptConsistencyProof`), with file names free of shell metacharacters. Sizes and indices
wrap modulo 2**64 as they do there (uint64), so "index-minus-1" of index 0 is 2**64 - 1.
"""
from __future__ import annotations

U64 = 1 << 64
# sha256SomeHash of verify_test.go: a well-formed digest that is no node of any tree here.
SOME_HASH = "abacaba000000000000000000000000000000000000000000060061e00123456"
WRONG_LEAF = b"WrongLeaf".hex()  # 9 bytes: not even a digest
WRONG_ROOT = b"WrongRoot".hex()


def _flip(hex_digest: str, mask: int) -> str:
    raw = bytearray.fromhex(hex_digest)
    raw[0] ^= mask
    return raw.hex()


def _bad(case: dict, desc: str, **changes) -> dict:
    out = dict(case, **changes)
    out["desc"] = desc
    out["want_error"] = True
    return out


def corrupt_inclusion(case: dict, empty_root: str) -> dict[str, dict]:
    """Corruptions of an inclusion case {index, size, leaf_hash, root, proof}."""
    i, n, proof, root = case["index"], case["size"], case["proof"], case["root"]
    out = {
        "index-minus-1": _bad(case, "leaf index - 1", index=(i - 1) % U64),
        "index-plus-1": _bad(case, "leaf index + 1", index=(i + 1) % U64),
        "index-xor-2": _bad(case, "leaf index ^ 2", index=i ^ 2),
        "size-times-2": _bad(case, "tree size * 2", size=(n * 2) % U64),
        "size-div-2": _bad(case, "tree size / 2", size=n // 2),
        "wrong-leaf": _bad(case, "wrong leaf hash (not a digest)", leaf_hash=WRONG_LEAF),
        "empty-root": _bad(case, "root of the empty tree", root=empty_root),
        "random-root": _bad(case, "an unrelated root", root=SOME_HASH),
        "trailing-garbage": _bad(case, "empty hash appended", proof=proof + [""]),
        "trailing-root": _bad(case, "root appended", proof=proof + [root]),
        "preceding-garbage": _bad(case, "empty hash prepended", proof=[""] + proof),
        "preceding-root": _bad(case, "root prepended", proof=[root] + proof),
    }
    for k in range(len(proof)):
        bad = list(proof)
        bad[k] = _flip(bad[k], 8)
        out[f"modified-proof-{k}-bit-3"] = _bad(case, f"bit 3 of proof[{k}] flipped", proof=bad)
    if proof:
        out["removed-component"] = _bad(case, "last hash removed (truncated path)", proof=proof[:-1])
    if len(proof) > 1:
        out["inserted-component"] = _bad(case, "extra hash after proof[0]",
                                         proof=[proof[0], SOME_HASH] + proof[1:])
    return out


def corrupt_consistency(case: dict) -> dict[str, dict]:
    """Corruptions of a consistency case {size1, size2, root1, root2, proof}; only for proofs
    that are not empty (size1 != 0 and size1 != size2), as in verify_test.go."""
    m, n, proof, r1, r2 = case["size1"], case["size2"], case["proof"], case["root1"], case["root2"]
    if not proof:
        return {}
    out = {
        "size1-minus-1": _bad(case, "size1 - 1", size1=(m - 1) % U64),
        "size1-plus-1": _bad(case, "size1 + 1", size1=(m + 1) % U64),
        "size1-xor-2": _bad(case, "size1 ^ 2", size1=m ^ 2),
        "size2-times-2": _bad(case, "size2 * 2", size2=(n * 2) % U64),
        "size2-div-2": _bad(case, "size2 / 2", size2=n // 2),
        "wrong-root1": _bad(case, "root1 is not a digest", root1=WRONG_ROOT),
        "wrong-root2": _bad(case, "root2 is not a digest", root2=WRONG_ROOT),
        "swapped-roots": _bad(case, "root1 and root2 swapped", root1=r2, root2=r1),
        "empty-proof": _bad(case, "empty proof", proof=[]),
        "trailing-garbage": _bad(case, "empty hash appended", proof=proof + [""]),
        "trailing-root1": _bad(case, "root1 appended", proof=proof + [r1]),
        "trailing-root2": _bad(case, "root2 appended", proof=proof + [r2]),
        "preceding-garbage": _bad(case, "empty hash prepended", proof=[""] + proof),
        "preceding-root1": _bad(case, "root1 prepended", proof=[r1] + proof),
        "preceding-root2": _bad(case, "root2 prepended", proof=[r2] + proof),
        "preceding-proof-0": _bad(case, "proof[0] prepended again", proof=[proof[0]] + proof),
        "truncated-proof": _bad(case, "last hash removed (truncated path)", proof=proof[:-1]),
    }
    for k in range(len(proof)):
        bad = list(proof)
        bad[k] = _flip(bad[k], 16)
        out[f"modified-proof-{k}-bit-4"] = _bad(case, f"bit 4 of proof[{k}] flipped", proof=bad)
    return out

