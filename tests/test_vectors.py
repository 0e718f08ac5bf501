"""The vector folders (tests/vectors/, see its README): the RFC 6962 data of
transparency-dev/merkle and our generated SM3 set. Every case file is one test: happy paths
must verify and be reproduced exactly by MerkleLog, every corrupted case must raise
ProofError."""
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import merkle
from merkle import hashing
from merkle.sm3_numba import sm3_multibuffer, sm3_scalar

VECTORS = Path(__file__).resolve().parent / "vectors"
SETS = ["rfc6962", "sm3"]


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def case_paths() -> list[Path]:
    return sorted(p for s in SETS for kind in ("inclusion", "consistency")
                  for p in (VECTORS / s / kind).rglob("*.json"))


def case_id(path: Path) -> str:
    return str(path.relative_to(VECTORS).with_suffix(""))


def h(hex_digest: str) -> bytes:
    return bytes.fromhex(hex_digest)


@pytest.fixture(scope="module")
def logs() -> dict[str, merkle.MerkleLog]:
    """A log over each set's leaves (tree.json), built one leaf at a time."""
    out = {}
    for s in SETS:
        tree = load(VECTORS / s / "tree.json")
        log = merkle.MerkleLog(merkle.MemoryStore(), tree["alg"])
        for leaf in tree["leaves"]:
            log.append([h(leaf)])
        out[s] = log
    return out


def test_folders_hold_the_expected_cases():
    # A missing or emptied folder must fail here, not pass as zero parametrized tests.
    paths = case_paths()
    for s in SETS:
        for kind in ("inclusion", "consistency"):
            dirs = [d for d in (VECTORS / s / kind).iterdir() if d.is_dir()]
            assert len(dirs) >= 5, f"{s}/{kind} has {len(dirs)} cases"
            for d in dirs:
                assert (d / "happy-path.json").is_file(), d
    assert sum(1 for p in paths if p.parts[-3] == "inclusion" and "rfc6962" in p.parts) >= 60
    assert sum(1 for p in paths if p.parts[-3] == "consistency" and "rfc6962" in p.parts) >= 60
    assert sum(1 for p in paths if load(p)["want_error"]) > 400


# -- RFC 6962 (SHA-256) tree data from transparency-dev/merkle -----------------------------
@pytest.mark.parametrize("batches", [[8], [1] * 8, [3, 5], [1, 2, 4, 1]], ids=["one", "singles", "3+5", "1+2+4+1"])
@pytest.mark.parametrize("store_kind", ["memory", "rocksdb"])
def test_rfc6962_roots_and_nodes(batches, store_kind, tmp_path):
    tree = load(VECTORS / "rfc6962" / "tree.json")
    leaves = [h(x) for x in tree["leaves"]]
    store = merkle.MemoryStore() if store_kind == "memory" else merkle.RocksDBStore(tmp_path / "db")
    log = merkle.MerkleLog(store, "sha256")
    assert log.root() == h(tree["roots"][0])  # the empty tree: SHA-256 of nothing
    at = 0
    for b in batches:
        assert log.append(leaves[at:at + b]) == at
        at += b
        assert log.size == at
        for size in range(at + 1):  # past sizes too, after every append
            assert log.root(size) == h(tree["roots"][size]), f"root at size {size} after {at} leaves"
    for level, hashes in enumerate(tree["node_hashes"]):
        for index, want in enumerate(hashes):
            assert store.read_node(level, index) == h(want), f"node ({level}, {index})"
    for index in range(8):
        assert log.leaf_hash(index) == h(tree["node_hashes"][0][index])
    store.close()


# -- SM3 set: the committed files against the pure-Python reference -----------------------
def reference_mth(leaf_hashes: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1 MTH over leaf hashes with the pure-Python SM3."""
    n = len(leaf_hashes)
    if n == 0:
        return merkle.sm3_reference(b"")
    if n == 1:
        return leaf_hashes[0]
    k = 1 << ((n - 1).bit_length() - 1)
    return merkle.sm3_reference(b"\x01" + reference_mth(leaf_hashes[:k]) + reference_mth(leaf_hashes[k:]))


def test_sm3_tree_file_against_pure_reference(logs):
    tree = load(VECTORS / "sm3" / "tree.json")
    leaves = [h(x) for x in tree["leaves"]]
    leaf_hashes = [merkle.sm3_reference(b"\x00" + leaf) for leaf in leaves]
    assert [x.hex() for x in leaf_hashes] == tree["leaf_hashes"]
    for size in range(len(leaves) + 1):
        assert reference_mth(leaf_hashes[:size]).hex() == tree["roots"][size], f"size {size}"
        assert logs["sm3"].root(size).hex() == tree["roots"][size], f"size {size}"
    for index, want in enumerate(tree["leaf_hashes"]):
        assert logs["sm3"].leaf_hash(index).hex() == want


def test_sm3_tree_file_in_one_batch():
    tree = load(VECTORS / "sm3" / "tree.json")
    log = merkle.MerkleLog(merkle.MemoryStore(), "sm3")
    log.append([h(x) for x in tree["leaves"]])
    assert [log.root(n).hex() for n in range(log.size + 1)] == tree["roots"]


def test_sm3_messages_file():
    cases = load(VECTORS / "sm3" / "messages.json")["cases"]
    assert len(cases) >= 40
    for case in cases:
        prefix = case["prefix"]
        raw = (b"" if prefix is None else bytes([prefix])) + h(case["message"])
        assert merkle.sm3_reference(raw).hex() == case["digest"], case["desc"]
        assert merkle.sm3(raw).hex() == case["digest"], case["desc"]
    # each prefix group through the batch API and both kernels, in one batch
    for prefix in (None, 0, 1):
        group = [c for c in cases if c["prefix"] == prefix]
        messages = [h(c["message"]) for c in group]
        want = [c["digest"] for c in group]
        p = -1 if prefix is None else prefix
        assert [r.tobytes().hex() for r in hashing.hash_messages(messages, "sm3", p)] == want
        data, offsets = hashing.pack_messages(messages)
        for kernel in (sm3_multibuffer, sm3_scalar):
            out = np.zeros((len(messages), 32), np.uint8)
            kernel(data, offsets, np.arange(len(messages), dtype=np.int64), p, out)
            assert [r.tobytes().hex() for r in out] == want, kernel


# -- every case file -------------------------------------------------------------------------
def verify(case: dict) -> None:
    if "index" in case:
        merkle.verify_inclusion(case["alg"], case["index"], case["size"], h(case["leaf_hash"]),
                                [h(p) for p in case["proof"]], h(case["root"]))
    else:
        merkle.verify_consistency(case["alg"], case["size1"], case["size2"],
                                  [h(p) for p in case["proof"]], h(case["root1"]), h(case["root2"]))


@pytest.mark.parametrize("path", case_paths(), ids=case_id)
def test_case_file(path, logs):
    case = load(path)
    if case["want_error"]:
        with pytest.raises(merkle.ProofError):
            verify(case)
        return
    verify(case)
    # A published proof must also be exactly what our log serves.
    log = logs[path.relative_to(VECTORS).parts[0]]
    if "index" in case:
        assert log.leaf_hash(case["index"]).hex() == case["leaf_hash"]
        assert log.root(case["size"]).hex() == case["root"]
        assert [p.hex() for p in log.inclusion_proof(case["index"], case["size"])] == case["proof"]
    else:
        assert log.root(case["size1"]).hex() == case["root1"]
        assert log.root(case["size2"]).hex() == case["root2"]
        assert [p.hex() for p in log.consistency_proof(case["size1"], case["size2"])] == case["proof"]


# -- the generators still write exactly the committed files --------------------------------
@pytest.mark.parametrize("name", SETS)
def test_committed_files_are_the_generator_output(name):
    sys.path.insert(0, str(VECTORS))
    try:
        spec = importlib.util.spec_from_file_location(f"make_{name}_vectors", VECTORS / f"make_{name}_vectors.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(VECTORS))
    built = module.build()
    on_disk = {str(p.relative_to(VECTORS / name)): p for p in (VECTORS / name).rglob("*.json")}
    assert sorted(built) == sorted(on_disk), "regenerate: see tests/vectors/README.md"
    for rel, obj in built.items():
        assert load(on_disk[rel]) == obj, rel
