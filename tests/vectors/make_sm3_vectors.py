"""Write tests/vectors/sm3/: SM3 digests and SM3 Merkle tree vectors, generated once.

Nothing here uses `merkle`: digests come from OpenSSL's SM3 through hashlib (the pure-Python
reference of evledger_verify/sm3.py is only the fallback when this OpenSSL lacks SM3), and the
tree hashes from the recursive definitions of RFC 9162 written out below (§2.1.1 MTH,
§2.1.3.1 PATH, §2.1.4.1 PROOF/SUBPROOF). The tests then hold the numba kernels, the tree and
the verifier against these files, and the files against the pure reference. Run from the
repository root and commit the output:

    .venv/bin/python tests/vectors/make_sm3_vectors.py
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from casefiles import case_files, write_folder
from corruptions import corrupt_consistency, corrupt_inclusion

FOLDER = Path(__file__).resolve().parent / "sm3"
SOURCE = "tests/vectors/make_sm3_vectors.py (OpenSSL SM3, RFC 9162 recursive definitions)"


def sm3(data: bytes) -> bytes:
    try:
        return hashlib.new("sm3", data).digest()
    except ValueError:  # this OpenSSL lacks SM3
        sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "verifier"))
        from evledger_verify.sm3 import sm3_reference

        return sm3_reference(data)


def pattern(length: int, seed: int) -> bytes:
    return bytes((seed * 31 + j * 7 + 3) & 0xFF for j in range(length))


# Lengths around the SM3 block boundaries (55 bytes + 0x80 + 8-byte length fill one block;
# the leaf/node prefix byte moves every boundary by one).
BOUNDARY_LENGTHS = [0, 1, 54, 55, 56, 57, 63, 64, 65, 118, 119, 120, 127, 128, 129, 1000]
PREFIXES = [None, 0x00, 0x01]

# 21 leaves whose lengths straddle the block boundaries, so the tree exercises both.
LEAF_LENGTHS = [0, 1, 54, 55, 56, 63, 64, 65, 119, 120, 127, 128, 129, 3, 17, 200, 31, 32, 33,
                1000, 7]
LEAVES = [pattern(length, i) for i, length in enumerate(LEAF_LENGTHS)]

INCLUSION = [(0, 1), (0, 2), (1, 2), (2, 3), (1, 5), (0, 8), (5, 8), (15, 16), (16, 17),
             (7, 21), (12, 21), (20, 21)]
CONSISTENCY = [(0, 21), (7, 7), (1, 2), (3, 4), (1, 8), (6, 8), (2, 5), (6, 7), (16, 17),
               (4, 21), (8, 21), (13, 21), (20, 21)]


# -- RFC 9162 §2.1, written as the RFC states it ------------------------------------------
def split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def leaf_hash(leaf: bytes) -> bytes:
    return sm3(b"\x00" + leaf)


def mth(leaves: list[bytes]) -> bytes:
    n = len(leaves)
    if n == 0:
        return sm3(b"")
    if n == 1:
        return leaf_hash(leaves[0])
    k = split(n)
    return sm3(b"\x01" + mth(leaves[:k]) + mth(leaves[k:]))


def path(m: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n == 1:
        return []
    k = split(n)
    if m < k:
        return path(m, leaves[:k]) + [mth(leaves[k:])]
    return path(m - k, leaves[k:]) + [mth(leaves[:k])]


def subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [mth(leaves)]
    k = split(n)
    if m <= k:
        return subproof(m, leaves[:k], complete) + [mth(leaves[k:])]
    return subproof(m - k, leaves[k:], False) + [mth(leaves[:k])]


def proof(m: int, leaves: list[bytes]) -> list[bytes]:
    if m == 0 or m == len(leaves):
        return []
    return subproof(m, leaves, True)


# -- the files ---------------------------------------------------------------------------
def build() -> dict[str, dict]:
    """{path relative to sm3/: case} for every file of the folder."""
    gbt = [("abc", b"abc"), ("abcd * 16", b"abcd" * 16)]
    messages = [{"desc": f"GB/T 32905-2016 Annex A example: {name}", "prefix": None,
                 "message": m.hex(), "digest": sm3(m).hex()} for name, m in gbt]
    for length in BOUNDARY_LENGTHS:
        for prefix in PREFIXES:
            m = pattern(length, length)
            pre = b"" if prefix is None else bytes([prefix])
            messages.append({"desc": f"{length} bytes, prefix {prefix}", "prefix": prefix,
                             "message": m.hex(), "digest": sm3(pre + m).hex()})
    roots = [mth(LEAVES[:n]).hex() for n in range(len(LEAVES) + 1)]
    files = {
        "messages.json": {"desc": "SM3 digests of prefix || message", "source": SOURCE,
                          "cases": messages},
        "tree.json": {"desc": "21 leaves and the root at every size 0..21", "source": SOURCE,
                      "alg": "sm3", "leaves": [leaf.hex() for leaf in LEAVES],
                      "leaf_hashes": [leaf_hash(leaf).hex() for leaf in LEAVES], "roots": roots},
    }
    for index, size in INCLUSION:
        happy = {"desc": "happy path", "source": SOURCE, "alg": "sm3", "index": index,
                 "size": size, "leaf_hash": leaf_hash(LEAVES[index]).hex(), "root": roots[size],
                 "proof": [h.hex() for h in path(index, LEAVES[:size])], "want_error": False}
        files.update(case_files("inclusion", f"index{index}-size{size}", happy,
                                corrupt_inclusion(happy, roots[0])))
    for size1, size2 in CONSISTENCY:
        happy = {"desc": "happy path", "source": SOURCE, "alg": "sm3", "size1": size1,
                 "size2": size2, "root1": roots[size1], "root2": roots[size2],
                 "proof": [h.hex() for h in proof(size1, LEAVES[:size2])], "want_error": False}
        files.update(case_files("consistency", f"size{size1}-size{size2}", happy,
                                corrupt_consistency(happy)))
    return files


if __name__ == "__main__":
    built = build()
    write_folder(FOLDER, built)
    print(f"wrote {len(built)} files under {FOLDER}")
