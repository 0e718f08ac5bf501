"""MerkleLog over both node stores: roots and proofs against the RFC 9162 definitions, any
batch split, past sizes, the RocksDB chunk boundaries, every way a proof can be wrong, and bad
arguments."""
import random
import re
import tempfile

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import merkle
from merkle import MemoryStore, MerkleLog, ProofError, RocksDBStore, verify_consistency, verify_inclusion
from naive_merkle import NaiveTree, distinct_leaves

ALGS = ["sm3", "sha256"]
MAX_SIZE = 300
FEW = max(5, settings.default.max_examples // 3)  # for the tests that open RocksDB each example

# The checks a ProofError message names (evledger_verify/proof.py).
INDEX_CHECK = r"index \d+ >= size \d+"
LENGTH_CHECK = r"proof has \d+ hashes, want \d+"
ANY_CHECK = "|".join([INDEX_CHECK, LENGTH_CHECK, r"root mismatch: computed [0-9a-f]{64}, expected [0-9a-f]{64}",
                      r"root1 mismatch", r"root2 mismatch", r"size2 \d+ < size1 \d+",
                      r"must be a non-negative integer"])


def build(store, alg: str, leaves: list[bytes], cuts=()) -> MerkleLog:
    """A log with `leaves` appended in batches split at `cuts`."""
    log = MerkleLog(store, alg)
    bounds = [0, *sorted(set(cuts)), len(leaves)]
    for lo, hi in zip(bounds, bounds[1:]):
        if hi > lo:
            assert log.append(leaves[lo:hi]) == lo
    assert log.size == len(leaves)
    return log


@st.composite
def trees(draw, max_size=MAX_SIZE, min_size=1):
    """(leaves, cut points) of a random size and a random split into batches."""
    n = draw(st.integers(min_size, max_size))
    cuts = draw(st.lists(st.integers(1, n - 1), max_size=8)) if n > 1 else []
    return distinct_leaves(n, seed=draw(st.integers(0, 2**16))), cuts


def raises_check(pattern: str):
    return pytest.raises(ProofError, match=pattern)


# -- roots and proofs equal RFC 9162's definitions -------------------------------------------
@pytest.mark.parametrize("alg", ALGS)
@given(case=trees(), data=st.data())
def test_roots_and_proofs_equal_the_rfc_definitions(alg, case, data):
    leaves, cuts = case
    n = len(leaves)
    log = build(MemoryStore(), alg, leaves, cuts)
    ref = NaiveTree(leaves, alg)
    for size in range(n + 1):
        assert log.root(size) == ref.root(size), f"root at size {size}"
    assert log.root() == ref.root(n)
    for index in range(n):
        assert log.leaf_hash(index) == ref.leaf_hashes[index]
        proof = log.inclusion_proof(index)
        assert proof == ref.inclusion_proof(index, n), f"inclusion proof {index} of {n}"
        verify_inclusion(alg, index, n, ref.leaf_hashes[index], proof, ref.root(n))
    for size1 in range(n + 1):
        proof = log.consistency_proof(size1)
        assert proof == ref.consistency_proof(size1, n), f"consistency proof {size1} -> {n}"
        verify_consistency(alg, size1, n, proof, ref.root(size1), ref.root(n))
    # and at past sizes, drawn at random
    for _ in range(10):
        size2 = data.draw(st.integers(1, n), label="size2")
        index = data.draw(st.integers(0, size2 - 1), label="index")
        size1 = data.draw(st.integers(0, size2), label="size1")
        proof = log.inclusion_proof(index, size2)
        assert proof == ref.inclusion_proof(index, size2)
        verify_inclusion(alg, index, size2, ref.leaf_hashes[index], proof, ref.root(size2))
        proof = log.consistency_proof(size1, size2)
        assert proof == ref.consistency_proof(size1, size2)
        verify_consistency(alg, size1, size2, proof, ref.root(size1), ref.root(size2))


@pytest.mark.parametrize("alg", ALGS)
@given(case=trees(), seed=st.integers(0, 2**16))
def test_any_batch_split_gives_the_same_tree(alg, case, seed):
    leaves, cuts = case
    n = len(leaves)
    whole = build(MemoryStore(), alg, leaves)
    split = build(MemoryStore(), alg, leaves, cuts)
    singles = build(MemoryStore(), alg, leaves, range(1, n))
    for size in range(n + 1):
        assert whole.root(size) == split.root(size) == singles.root(size), f"size {size}"
    for level in range(n.bit_length()):
        count = n >> level
        assert whole.store.read_nodes(level, 0, count) == split.store.read_nodes(level, 0, count) \
            == singles.store.read_nodes(level, 0, count), f"level {level}"
    index = random.Random(seed).randrange(n)
    assert whole.inclusion_proof(index) == split.inclusion_proof(index) == singles.inclusion_proof(index)


def test_append_leaf_hashes_equals_append():
    leaves = distinct_leaves(70, seed=3)
    a = build(MemoryStore(), "sm3", leaves)
    b = MerkleLog(MemoryStore(), "sm3")
    assert b.append_leaf_hashes(merkle.hash_leaves(leaves[:33])) == 0
    assert b.append_leaf_hashes([b.hasher.hash_leaf(x) for x in leaves[33:]]) == 33
    assert [a.root(n) for n in range(71)] == [b.root(n) for n in range(71)]


def test_empty_log():
    for alg in ALGS:
        log = MerkleLog(MemoryStore(), alg)
        assert log.size == 0
        assert log.root() == log.root(0) == merkle.get_hasher(alg).empty_root()
        assert log.consistency_proof(0) == []
        with pytest.raises(ValueError, match=r"index 0 >= size 0"):
            log.inclusion_proof(0)


# -- past sizes stay answerable after further appends ----------------------------------------
@pytest.mark.parametrize("alg", ALGS)
@given(first=trees(max_size=150), more=trees(max_size=150), seed=st.integers(0, 2**16))
def test_past_roots_and_proofs_survive_appends(alg, first, more, seed):
    leaves1, cuts1 = first
    leaves2 = [b"later " + x for x in more[0]]
    n1 = len(leaves1)
    log = build(MemoryStore(), alg, leaves1, cuts1)
    rnd = random.Random(seed)
    before = {size: log.root(size) for size in range(n1 + 1)}
    samples = [(i, s) for s in range(1, n1 + 1) for i in {0, s - 1, rnd.randrange(s)}]
    proofs = {(i, s): log.inclusion_proof(i, s) for i, s in samples}
    consistency = {s: log.consistency_proof(s, n1) for s in range(n1 + 1)}
    for lo, hi in zip([0, *sorted(set(more[1]))], [*sorted(set(more[1])), len(leaves2)]):
        log.append(leaves2[lo:hi])
    n2 = log.size
    assert n2 == n1 + len(leaves2)
    assert {size: log.root(size) for size in range(n1 + 1)} == before
    assert {(i, s): log.inclusion_proof(i, s) for i, s in samples} == proofs
    assert {s: log.consistency_proof(s, n1) for s in range(n1 + 1)} == consistency
    # the old root is provably a prefix of the new tree
    verify_consistency(alg, n1, n2, log.consistency_proof(n1), before[n1], log.root())
    for size1 in range(0, n1 + 1, max(1, n1 // 10)):
        verify_consistency(alg, size1, n2, log.consistency_proof(size1), before[size1], log.root())


# -- every way a proof can be wrong ----------------------------------------------------------
@pytest.fixture(scope="module", params=ALGS)
def big_log(request):
    """One log of MAX_SIZE distinct leaves per alg; any smaller size is one of its past sizes."""
    return build(MemoryStore(), request.param, distinct_leaves(MAX_SIZE, seed=1), [7, 100, 101, 256])


sizes = st.integers(1, MAX_SIZE)


@st.composite
def inclusion_cases(draw, min_size=1):
    n = draw(st.integers(min_size, MAX_SIZE))
    return draw(st.integers(0, n - 1)), n


def inclusion(log, index, size):
    return log.leaf_hash(index), log.inclusion_proof(index, size), log.root(size)


@given(inclusion_cases(min_size=2), st.data())
def test_inclusion_flipped_bit_fails(big_log, case, data):
    index, size = case
    leaf, proof, root = inclusion(big_log, index, size)
    k = data.draw(st.integers(0, len(proof) - 1), label="element")
    bit = data.draw(st.integers(0, 255), label="bit")
    bad = list(proof)
    bad[k] = (int.from_bytes(bad[k], "big") ^ (1 << bit)).to_bytes(32, "big")
    with raises_check("root mismatch: computed"):
        verify_inclusion(big_log.alg, index, size, leaf, bad, root)


@given(inclusion_cases(min_size=2), st.integers(0, MAX_SIZE + 5))
def test_inclusion_wrong_index_fails(big_log, case, other):
    index, size = case
    assume(other != index)
    leaf, proof, root = inclusion(big_log, index, size)
    with raises_check(ANY_CHECK):
        verify_inclusion(big_log.alg, other, size, leaf, proof, root)


@given(inclusion_cases(), sizes)
def test_inclusion_wrong_size_fails(big_log, case, other):
    # Against the true root of the claimed size. (Against the original root a proof can
    # verify at another size of the same shape, e.g. index 0 at sizes 3 and 4: an inclusion
    # proof binds the root, and the checkpoint binds root and size together.)
    index, size = case
    assume(other != size)
    leaf, proof, _ = inclusion(big_log, index, size)
    with raises_check(ANY_CHECK):
        verify_inclusion(big_log.alg, index, other, leaf, proof, big_log.root(other))


@given(inclusion_cases(), sizes)
def test_inclusion_wrong_size_with_other_proof_length_fails_on_length(big_log, case, other):
    index, size = case
    leaf, proof, root = inclusion(big_log, index, size)
    assume(other > index and len(big_log.inclusion_proof(index, other)) != len(proof))
    with raises_check(LENGTH_CHECK):
        verify_inclusion(big_log.alg, index, other, leaf, proof, root)


@given(inclusion_cases(), st.data())
def test_inclusion_truncated_or_extended_path_fails_on_length(big_log, case, data):
    index, size = case
    leaf, proof, root = inclusion(big_log, index, size)
    extra = data.draw(st.sampled_from([root, leaf, bytes(32), *proof]), label="extra hash")
    where = data.draw(st.integers(0, len(proof)), label="insert at")
    bad_paths = [proof[:where] + [extra] + proof[where:]]
    if proof:
        bad_paths += [proof[:-1], proof[1:]]
    for bad in bad_paths:
        with raises_check(LENGTH_CHECK):
            verify_inclusion(big_log.alg, index, size, leaf, bad, root)


@given(inclusion_cases(), sizes, st.binary(min_size=32, max_size=32))
def test_inclusion_wrong_root_or_leaf_fails(big_log, case, other, random_root):
    index, size = case
    leaf, proof, root = inclusion(big_log, index, size)
    wrong_roots = [random_root, big_log.hasher.empty_root()] + ([big_log.root(other)] if other != size else [])
    for wrong in wrong_roots:
        assume(wrong != root)
        with raises_check("root mismatch"):
            verify_inclusion(big_log.alg, index, size, leaf, proof, wrong)
    other_leaf = big_log.leaf_hash((index + 1) % MAX_SIZE)
    with raises_check("root mismatch"):
        verify_inclusion(big_log.alg, index, size, other_leaf, proof, root)


@st.composite
def consistency_cases(draw):
    """(size1, size2) with 0 < size1 < size2: proofs that are not empty."""
    size2 = draw(st.integers(2, MAX_SIZE))
    return draw(st.integers(1, size2 - 1)), size2


def consistency(log, size1, size2):
    return log.consistency_proof(size1, size2), log.root(size1), log.root(size2)


@given(consistency_cases(), st.data())
def test_consistency_flipped_bit_fails(big_log, case, data):
    size1, size2 = case
    proof, root1, root2 = consistency(big_log, size1, size2)
    k = data.draw(st.integers(0, len(proof) - 1), label="element")
    bit = data.draw(st.integers(0, 255), label="bit")
    bad = list(proof)
    bad[k] = (int.from_bytes(bad[k], "big") ^ (1 << bit)).to_bytes(32, "big")
    with raises_check(r"root[12] mismatch: computed"):
        verify_consistency(big_log.alg, size1, size2, bad, root1, root2)


@given(consistency_cases(), st.integers(0, MAX_SIZE))
def test_consistency_wrong_size1_fails(big_log, case, other):
    size1, size2 = case
    assume(other != size1)
    proof, _, root2 = consistency(big_log, size1, size2)
    root1 = big_log.root(other)  # the true root of the claimed size
    with raises_check(ANY_CHECK):
        verify_consistency(big_log.alg, other, size2, proof, root1, root2)


@given(consistency_cases(), st.integers(0, MAX_SIZE))
def test_consistency_wrong_size2_fails(big_log, case, other):
    size1, size2 = case
    assume(other != size2)
    proof, root1, _ = consistency(big_log, size1, size2)
    with raises_check(ANY_CHECK):
        verify_consistency(big_log.alg, size1, other, proof, root1, big_log.root(other))


@given(consistency_cases(), st.data())
def test_consistency_truncated_or_extended_path_fails_on_length(big_log, case, data):
    size1, size2 = case
    proof, root1, root2 = consistency(big_log, size1, size2)
    extra = data.draw(st.sampled_from([root1, root2, bytes(32), *proof]), label="extra hash")
    where = data.draw(st.integers(0, len(proof)), label="insert at")
    for bad in [proof[:-1], proof[1:], [], proof[:where] + [extra] + proof[where:]]:
        with raises_check(LENGTH_CHECK):
            verify_consistency(big_log.alg, size1, size2, bad, root1, root2)


@given(consistency_cases(), st.binary(min_size=32, max_size=32))
def test_consistency_wrong_roots_fail(big_log, case, random_root):
    size1, size2 = case
    proof, root1, root2 = consistency(big_log, size1, size2)
    assume(random_root not in (root1, root2))
    # When size1 is a power of two, root1 itself seeds the walk (RFC 9162 §2.1.4.2 step 2),
    # so a wrong root1 shows up as a wrong root2.
    seeded = size1 & (size1 - 1) == 0
    with raises_check("root2 mismatch" if seeded else "root1 mismatch"):
        verify_consistency(big_log.alg, size1, size2, proof, random_root, root2)
    with raises_check("root2 mismatch"):
        verify_consistency(big_log.alg, size1, size2, proof, root1, random_root)
    with raises_check(r"root[12] mismatch"):
        verify_consistency(big_log.alg, size1, size2, proof, root2, root1)


def test_consistency_at_equal_and_zero_sizes(big_log):
    alg, root5, root9 = big_log.alg, big_log.root(5), big_log.root(9)
    verify_consistency(alg, 5, 5, [], root5, root5)
    with raises_check("root mismatch at equal sizes"):
        verify_consistency(alg, 5, 5, [], root5, root9)
    with raises_check(LENGTH_CHECK):
        verify_consistency(alg, 5, 5, [root5], root5, root5)
    verify_consistency(alg, 0, 9, [], big_log.root(0), root9)
    with raises_check(LENGTH_CHECK):
        verify_consistency(alg, 0, 9, [root9], big_log.root(0), root9)
    with raises_check(r"size2 5 < size1 9"):
        verify_consistency(alg, 9, 5, [], root9, root5)


def test_inclusion_at_size_one_and_out_of_range(big_log):
    alg, leaf = big_log.alg, big_log.leaf_hash(0)
    verify_inclusion(alg, 0, 1, leaf, [], leaf)
    with raises_check(r"index 1 >= size 1"):
        verify_inclusion(alg, 1, 1, leaf, [], leaf)
    with raises_check(r"index 0 >= size 0"):
        verify_inclusion(alg, 0, 0, leaf, [], leaf)


# -- the verifier's own argument checks ------------------------------------------------------
@pytest.mark.parametrize("bad,name", [(-1, "index"), (1.0, "index"), ("1", "index"), (True, "index"),
                                      (None, "index")])
def test_verify_inclusion_rejects_bad_index(big_log, bad, name):
    leaf, proof, root = inclusion(big_log, 1, 8)
    with raises_check(name):
        verify_inclusion(big_log.alg, bad, 8, leaf, proof, root)
    with raises_check("size"):
        verify_inclusion(big_log.alg, 1, bad, leaf, proof, root)


@pytest.mark.parametrize("field", ["leaf_hash", "root", "proof[1]"])
@pytest.mark.parametrize("bad", [b"", b"x" * 31, b"x" * 33, "x" * 32, None], ids=["empty", "31", "33", "str", "None"])
def test_verify_inclusion_rejects_bad_digests(big_log, field, bad):
    leaf, proof, root = inclusion(big_log, 1, 8)
    args = {"leaf_hash": leaf, "root": root, "proof": list(proof)}
    if field == "proof[1]":
        args["proof"][1] = bad
    else:
        args[field] = bad
    with raises_check(re.escape(field)):
        verify_inclusion(big_log.alg, 1, 8, args["leaf_hash"], args["proof"], args["root"])


@pytest.mark.parametrize("field", ["root1", "root2", "proof[0]"])
def test_verify_consistency_rejects_bad_digests(big_log, field):
    proof, root1, root2 = consistency(big_log, 3, 8)
    args = {"root1": root1, "root2": root2, "proof": list(proof)}
    if field == "proof[0]":
        args["proof"][0] = b"short"
    else:
        args[field] = b"short"
    with raises_check(re.escape(field)):
        verify_consistency(big_log.alg, 3, 8, args["proof"], args["root1"], args["root2"])


def test_verify_rejects_proof_that_is_not_a_list(big_log):
    leaf, proof, root = inclusion(big_log, 1, 8)
    with raises_check("proof must be a list"):
        verify_inclusion(big_log.alg, 1, 8, leaf, b"".join(proof), root)
    with raises_check("proof must be a list"):
        verify_consistency(big_log.alg, 3, 8, None, big_log.root(3), big_log.root(8))
    with raises_check("size1"):
        verify_consistency(big_log.alg, -3, 8, [], big_log.root(3), big_log.root(8))


def test_verify_rejects_unknown_alg(big_log):
    leaf, proof, root = inclusion(big_log, 1, 8)
    with pytest.raises(ValueError, match="alg"):
        verify_inclusion("md5", 1, 8, leaf, proof, root)
    with pytest.raises(ValueError, match="alg"):
        verify_consistency("SHA256", 3, 8, [], root, root)


def test_proofs_do_not_verify_under_the_other_alg():
    leaves = distinct_leaves(20, seed=5)
    sm3_log, sha_log = build(MemoryStore(), "sm3", leaves), build(MemoryStore(), "sha256", leaves)
    with raises_check("root mismatch"):
        verify_inclusion("sha256", 3, 20, sm3_log.leaf_hash(3), sm3_log.inclusion_proof(3), sm3_log.root())
    with raises_check(r"root[12] mismatch"):
        verify_consistency("sm3", 7, 20, sha_log.consistency_proof(7), sha_log.root(7), sha_log.root())


# -- the RocksDB store against the memory store ----------------------------------------------
def assert_same_log(a: MerkleLog, b: MerkleLog, rnd: random.Random, samples: int = 40) -> None:
    n = a.size
    assert b.size == n
    for size in {0, 1, n, *(rnd.randint(0, n) for _ in range(samples))}:
        if size <= n:
            assert a.root(size) == b.root(size), f"root at {size}"
    if n == 0:
        return
    for _ in range(samples):
        size = rnd.randint(1, n)
        index = rnd.randrange(size)
        size1 = rnd.randint(0, size)
        assert a.leaf_hash(index) == b.leaf_hash(index)
        assert a.inclusion_proof(index, size) == b.inclusion_proof(index, size), (index, size)
        assert a.consistency_proof(size1, size) == b.consistency_proof(size1, size), (size1, size)


@given(case=trees(max_size=700), more=st.lists(st.integers(1, 300), max_size=3), seed=st.integers(0, 2**16))
@settings(max_examples=FEW)
def test_rocksdb_store_equals_memory_store(case, more, seed):
    leaves, cuts = case
    rnd = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        mem = build(MemoryStore(), "sm3", leaves, cuts)
        disk = build(RocksDBStore(tmp), "sm3", leaves, cuts)
        assert_same_log(mem, disk, rnd)
        # closed and reopened: nothing cached survives, everything is read back
        disk.store.close()
        disk = MerkleLog(RocksDBStore(tmp), "sm3")
        assert_same_log(mem, disk, rnd)
        # appends after reopening rewrite the partial last chunk of each level from disk
        for k, count in enumerate(more):
            batch = [b"more %d %d" % (k, j) for j in range(count)]
            assert mem.append(batch) == disk.append(batch)
        assert_same_log(mem, disk, rnd)
        disk.store.close()
        assert_same_log(mem, MerkleLog(RocksDBStore(tmp), "sm3"), rnd)


CHUNK = RocksDBStore.CHUNK
BATCH_PATTERNS = {
    "one-batch": lambda n: [n],
    "singles": lambda n: [1] * n,
    "batches-of-100": lambda n: [100] * (n // 100) + [n % 100],
    "chunk-minus-1-then-rest": lambda n: [CHUNK - 1, n - CHUNK + 1],
    "fibonacci": lambda n: [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377],
}


def batches(pattern: str, n: int) -> list[int]:
    sizes, total = [], 0
    for b in BATCH_PATTERNS[pattern](n) + [n]:
        b = min(b, n - total)
        if b > 0:
            sizes.append(b)
            total += b
    assert total == n
    return sizes


def cuts_of(sizes: list[int]) -> list[int]:
    return list(np.cumsum(sizes)[:-1])


@pytest.mark.parametrize("pattern", BATCH_PATTERNS)
@pytest.mark.parametrize("n", [CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 1])
def test_rocksdb_chunk_boundaries(n, pattern, tmp_path):
    leaves = distinct_leaves(n, seed=n)
    cuts = cuts_of(batches(pattern, n))
    ref = NaiveTree(leaves, "sm3")
    mem = build(MemoryStore(), "sm3", leaves, cuts)
    disk = build(RocksDBStore(tmp_path), "sm3", leaves, cuts)
    for log in (mem, disk):
        assert [log.root(s) for s in range(n + 1)] == [ref.root(s) for s in range(n + 1)]
    disk.store.close()
    disk = MerkleLog(RocksDBStore(tmp_path), "sm3")
    for level in range(n.bit_length()):
        count = n >> level
        assert disk.store.read_nodes(level, 0, count) == mem.store.read_nodes(level, 0, count), f"level {level}"
    for index in range(n):
        assert disk.inclusion_proof(index) == mem.inclusion_proof(index) == ref.inclusion_proof(index, n)
    for size1 in range(n + 1):
        assert disk.consistency_proof(size1) == ref.consistency_proof(size1, n)
    disk.store.close()


def test_rocksdb_70000_leaves_in_batches(tmp_path):
    # 70000 leaves cross the 256-node chunk at every level up to 8 and 2**16 at level 0.
    n = 70000
    leaves = [b"record %d" % i for i in range(n)]
    sizes = [1, CHUNK - 2, 1, CHUNK, CHUNK + 1, 3000, 2**16 - 3000 - 3 * CHUNK - 1, 1, 1, 1]
    sizes.append(n - sum(sizes))
    assert min(sizes) > 0
    cuts = cuts_of(sizes)
    mem = build(MemoryStore(), "sm3", leaves, cuts)
    disk = build(RocksDBStore(tmp_path), "sm3", leaves, cuts)
    ref = NaiveTree(leaves, "sm3")
    rnd = random.Random(70000)
    boundaries = [0, 1, 255, 256, 257, 511, 512, 513, 65535, 65536, 65537, 65538, 69999, 70000]
    for size in boundaries + [rnd.randint(1, n) for _ in range(20)]:
        assert mem.root(size) == disk.root(size) == ref.root(size), f"root at {size}"
    assert_same_log(mem, disk, rnd, samples=100)
    disk.store.close()
    disk = MerkleLog(RocksDBStore(tmp_path), "sm3")
    assert_same_log(mem, disk, rnd, samples=100)
    for size in boundaries:
        assert disk.root(size) == ref.root(size)
    more = [b"after reopen %d" % i for i in range(700)]
    mem.append(more[:300])
    disk.append(more[:300])
    mem.append(more[300:])
    disk.append(more[300:])
    assert_same_log(mem, disk, rnd, samples=100)
    assert disk.root() == NaiveTree(leaves + more, "sm3").root(n + 700)
    index = 65537
    verify_inclusion("sm3", index, disk.size, disk.leaf_hash(index), disk.inclusion_proof(index), disk.root())
    verify_consistency("sm3", n, disk.size, disk.consistency_proof(n), ref.root(n), disk.root())
    disk.store.close()


# -- bad arguments: the error names the argument ---------------------------------------------
@pytest.fixture
def log5():
    return build(MemoryStore(), "sm3", distinct_leaves(5))


def test_append_rejects_empty_batches(log5):
    with pytest.raises(ValueError, match="leaves"):
        log5.append([])
    with pytest.raises(ValueError, match="leaves"):
        log5.append(())
    with pytest.raises(ValueError, match="empty batch"):
        log5.append((np.zeros(0, np.uint8), np.zeros(1, np.int64)))
    with pytest.raises(ValueError, match="leaf_hashes"):
        log5.append_leaf_hashes([])
    with pytest.raises(ValueError, match="leaf_hashes"):
        log5.append_leaf_hashes(np.zeros((0, 32), np.uint8))
    assert log5.size == 5


def test_append_rejects_bad_leaves(log5):
    root = log5.root()
    with pytest.raises(TypeError, match="leaves"):
        log5.append(b"one leaf, not a list")
    with pytest.raises(TypeError, match="leaves"):
        log5.append("text")
    with pytest.raises(TypeError, match=r"leaves\[1\]"):
        log5.append([b"ok", "not bytes"])
    with pytest.raises(ValueError, match=r"leaf_hashes\[0\]"):
        log5.append_leaf_hashes([b"x" * 31])
    with pytest.raises(ValueError, match="leaf_hashes"):
        log5.append_leaf_hashes(np.zeros((2, 31), np.uint8))
    assert log5.size == 5 and log5.root() == root  # nothing half-appended


@pytest.mark.parametrize("bad,exc", [(-1, ValueError), (6, ValueError), (1.0, TypeError), ("2", TypeError),
                                     (True, TypeError)])
def test_root_rejects_bad_size(log5, bad, exc):
    with pytest.raises(exc, match="size"):
        log5.root(bad)


@pytest.mark.parametrize("bad,exc", [(-1, ValueError), (5, ValueError), (9, ValueError), (1.0, TypeError),
                                     ("2", TypeError), (None, TypeError), (False, TypeError)])
def test_leaf_hash_and_inclusion_proof_reject_bad_index(log5, bad, exc):
    with pytest.raises(exc, match="index"):
        log5.leaf_hash(bad)
    with pytest.raises(exc, match="index"):
        log5.inclusion_proof(bad)


def test_inclusion_proof_rejects_bad_size(log5):
    with pytest.raises(ValueError, match=r"index 3 >= size 3"):
        log5.inclusion_proof(3, 3)
    with pytest.raises(ValueError, match=r"size 6 > tree size 5"):
        log5.inclusion_proof(0, 6)
    with pytest.raises(ValueError, match="size"):
        log5.inclusion_proof(0, -1)
    with pytest.raises(TypeError, match="size"):
        log5.inclusion_proof(0, 2.0)


def test_consistency_proof_rejects_bad_sizes(log5):
    with pytest.raises(ValueError, match=r"size1 4 > size2 3"):
        log5.consistency_proof(4, 3)
    with pytest.raises(ValueError, match=r"size2 6 > tree size 5"):
        log5.consistency_proof(1, 6)
    with pytest.raises(ValueError, match="size1"):
        log5.consistency_proof(-1)
    with pytest.raises(ValueError, match="size2"):
        log5.consistency_proof(0, -1)
    with pytest.raises(TypeError, match="size1"):
        log5.consistency_proof("1")
    with pytest.raises(TypeError, match="size2"):
        log5.consistency_proof(1, 4.0)


def test_numpy_integers_are_accepted(log5):
    assert log5.root(np.int64(3)) == log5.root(3)
    assert log5.inclusion_proof(np.int32(1), np.uint64(4)) == log5.inclusion_proof(1, 4)
    assert log5.consistency_proof(np.int64(2), np.int64(5)) == log5.consistency_proof(2, 5)


def test_unknown_alg():
    with pytest.raises(ValueError, match="alg"):
        MerkleLog(MemoryStore(), "sha1")


def test_store_rejects_reads_past_its_size(log5):
    with pytest.raises(IndexError):
        log5.store.read_nodes(0, 4, 6)
    with pytest.raises(IndexError):
        log5.store.read_node(1, 2)  # 5 leaves: only 2 complete pairs
