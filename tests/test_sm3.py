"""SM3 and the batch hashers: GB/T 32905 examples, every kernel against OpenSSL, block
boundaries, lane grouping, RFC 9162 leaf/node prefixes, and bad input."""
import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import merkle
from merkle import hashing
from merkle import sm3_numba
from merkle.sm3_numba import sm3_multibuffer, sm3_node_pairs, sm3_node_pairs_serial, sm3_scalar

# GB/T 32905-2016 Annex A: example 1 ("abc") and example 2 ("abcd" repeated 16 times).
GBT_EXAMPLES = [
    (b"abc", "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"),
    (b"abcd" * 16, "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"),
]
# Where the padded length changes: 55 bytes + 0x80 + the 8-byte length fill one 64-byte block;
# the leaf/node prefix byte moves each boundary down by one.
BOUNDARY_LENGTHS = [0, 1, 54, 55, 56, 57, 63, 64, 65, 118, 119, 120, 127, 128, 129]
KERNELS = {"multibuffer": sm3_multibuffer, "scalar": sm3_scalar}
LANES = sm3_numba.LANES  # messages per multi-buffer group
# Batch sizes around one lane group and around the groups one parallel task takes.
BATCH_SIZES = sorted({1, 2, 15, 16, 17, 33, 1025, LANES - 1, LANES, LANES + 1, 2 * LANES + 1})
TASK = LANES * getattr(sm3_numba, "_GROUPS_PER_TASK", 64)  # messages per parallel task
FEW = max(5, settings.default.max_examples // 3)  # for the property tests that hash megabytes
MANY = 4 * settings.default.max_examples  # for those that take a millisecond


def openssl_sm3(data: bytes) -> bytes:
    return hashlib.new("sm3", data).digest()


def expected(messages, alg="sm3", prefix=-1) -> list[bytes]:
    pre = b"" if prefix < 0 else bytes([prefix])
    return [hashlib.new(alg, pre + m).digest() for m in messages]


def rows(digests: np.ndarray) -> list[bytes]:
    assert digests.dtype == np.uint8 and digests.ndim == 2 and digests.shape[1] == 32
    return [r.tobytes() for r in digests]


def run_kernel(kernel, messages, prefix=-1, order=None) -> np.ndarray:
    """Call a numba kernel directly: (data, offsets, order, prefix, out)."""
    data, offsets = hashing.pack_messages(list(messages))
    n = len(messages)
    order = np.arange(n, dtype=np.int64) if order is None else np.ascontiguousarray(order, dtype=np.int64)
    out = np.zeros((n, 32), dtype=np.uint8)
    kernel(data, offsets, order, prefix, out)
    return out


def random_messages(seed: int, lengths) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=int(n), dtype=np.uint8).tobytes() for n in lengths]


# -- the standard's examples, through every implementation -----------------------------------
@pytest.mark.parametrize("message,digest", GBT_EXAMPLES, ids=["abc", "abcd*16"])
def test_gbt32905_examples_pure_reference(message, digest):
    assert merkle.sm3_reference(message).hex() == digest


@pytest.mark.parametrize("message,digest", GBT_EXAMPLES, ids=["abc", "abcd*16"])
def test_gbt32905_examples_sm3(message, digest):
    assert merkle.sm3(message).hex() == digest
    assert merkle.sm3(bytearray(message)).hex() == digest
    assert merkle.sm3(memoryview(message)).hex() == digest


@pytest.mark.parametrize("kernel", KERNELS.values(), ids=KERNELS.keys())
def test_gbt32905_examples_numba_kernels(kernel):
    messages = [m for m, _ in GBT_EXAMPLES]
    got = rows(run_kernel(kernel, messages))
    assert [g.hex() for g in got] == [d for _, d in GBT_EXAMPLES]


def test_gbt32905_examples_batch_api():
    messages = [m for m, _ in GBT_EXAMPLES]
    assert [g.hex() for g in rows(hashing.hash_messages(messages, "sm3"))] == [d for _, d in GBT_EXAMPLES]


def test_gbt32905_examples_as_leaf_and_node_prefixes():
    # With the RFC 9162 prefixes the kernels must hash 0x00 || m and 0x01 || m.
    messages = [m for m, _ in GBT_EXAMPLES]
    for prefix in (0, 1):
        want = [merkle.sm3_reference(bytes([prefix]) + m) for m in messages]
        assert rows(hashing.hash_messages(messages, "sm3", prefix)) == want
        for kernel in KERNELS.values():
            assert rows(run_kernel(kernel, messages, prefix)) == want
    assert rows(merkle.hash_leaves(messages)) == [merkle.sm3_reference(b"\x00" + m) for m in messages]


# -- the pure reference against OpenSSL ------------------------------------------------------
@given(st.binary(max_size=300))
@settings(max_examples=FEW)
def test_pure_reference_matches_openssl(message):
    assert merkle.sm3_reference(message) == openssl_sm3(message)


@pytest.mark.parametrize("length", BOUNDARY_LENGTHS)
def test_pure_reference_matches_openssl_at_block_boundaries(length):
    message = bytes(range(256)) * 2
    assert merkle.sm3_reference(message[:length]) == openssl_sm3(message[:length])


# -- batch hashers against OpenSSL, random messages ------------------------------------------
message_lists = st.one_of(
    st.lists(st.binary(max_size=200), max_size=24),
    # long messages: lengths from hypothesis, bytes from a seeded generator (hypothesis would
    # otherwise have to draw megabytes)
    st.builds(random_messages, st.integers(0, 2**32), st.lists(st.integers(0, 2000), max_size=40)),
)
prefixes = st.sampled_from([-1, 0, 1, 0x5A, 0xFF])


@given(message_lists)
@settings(max_examples=MANY)
def test_hash_leaves_matches_openssl(messages):
    assert rows(merkle.hash_leaves(messages)) == expected(messages, prefix=0)


@given(message_lists, prefixes)
@settings(max_examples=MANY)
def test_hash_messages_matches_openssl(messages, prefix):
    assert rows(hashing.hash_messages(messages, "sm3", prefix)) == expected(messages, prefix=prefix)


@given(message_lists, prefixes)
@settings(max_examples=FEW)
def test_scalar_kernel_matches_openssl(messages, prefix):
    assert rows(run_kernel(sm3_scalar, messages, prefix)) == expected(messages, prefix=prefix)


@given(message_lists, prefixes, st.randoms(use_true_random=False))
@settings(max_examples=FEW)
def test_multibuffer_kernel_any_order(messages, prefix, rnd):
    # The kernel hashes in the given order, 16 lanes at a time, but writes out[i] for
    # message i: any permutation must give the same rows.
    order = list(range(len(messages)))
    rnd.shuffle(order)
    assert rows(run_kernel(sm3_multibuffer, messages, prefix, order)) == expected(messages, prefix=prefix)


def test_kernels_write_only_the_rows_in_order():
    messages = random_messages(7, [0, 5, 64, 100, 3, 200, 55])
    order = [5, 1, 3]
    for kernel in KERNELS.values():
        out = run_kernel(kernel, messages, 0, order)
        want = expected(messages, prefix=0)
        for i in range(len(messages)):
            if i in order:
                assert out[i].tobytes() == want[i]
            else:
                assert not out[i].any(), f"row {i} not in order was written"


@given(message_lists)
@settings(max_examples=FEW)
def test_data_offsets_form_equals_list_form(messages):
    data, offsets = hashing.pack_messages(messages)
    assert rows(merkle.hash_leaves((data, offsets))) == rows(merkle.hash_leaves(messages))


# -- explicit block boundaries ---------------------------------------------------------------
@pytest.mark.parametrize("prefix", [-1, 0, 1])
@pytest.mark.parametrize("length", BOUNDARY_LENGTHS)
def test_block_boundary_lengths_alone(length, prefix):
    messages = random_messages(length, [length])
    want = expected(messages, prefix=prefix)
    assert rows(hashing.hash_messages(messages, "sm3", prefix)) == want
    for name, kernel in KERNELS.items():
        assert rows(run_kernel(kernel, messages, prefix)) == want, name


@pytest.mark.parametrize("prefix", [-1, 0, 1])
def test_block_boundary_lengths_mixed_in_one_batch(prefix):
    # Every boundary length three times, shuffled: lanes of one 16-lane group then need
    # different block counts and must stop updating at their own last block.
    lengths = BOUNDARY_LENGTHS * 3
    np.random.default_rng(1).shuffle(lengths)
    messages = random_messages(2, lengths)
    want = expected(messages, prefix=prefix)
    assert rows(hashing.hash_messages(messages, "sm3", prefix)) == want
    for name, kernel in KERNELS.items():
        assert rows(run_kernel(kernel, messages, prefix)) == want, name
    # unsorted through the multi-buffer kernel too: a group of 16 lanes with 1..3 blocks
    assert rows(run_kernel(sm3_multibuffer, messages, prefix, np.arange(len(messages)))) == want


# -- batch sizes around the 16 lanes and the 64-group tasks ----------------------------------
@pytest.mark.parametrize("n", BATCH_SIZES)
def test_batch_sizes_mixed_lengths(n):
    rng = np.random.default_rng(n)
    messages = random_messages(n, rng.integers(0, 2001, size=n))
    for prefix in (-1, 0):
        want = expected(messages, prefix=prefix)
        assert rows(hashing.hash_messages(messages, "sm3", prefix)) == want
        assert rows(run_kernel(sm3_scalar, messages, prefix)) == want
        assert rows(run_kernel(sm3_multibuffer, messages, prefix)) == want


@pytest.mark.parametrize("n", BATCH_SIZES)
@pytest.mark.parametrize("length", [0, 55, 64, 119])
def test_batch_sizes_equal_lengths(n, length):
    # Equal lengths skip the sort (order = 0..n-1).
    messages = random_messages(n * 1000 + length, [length] * n)
    assert rows(merkle.hash_leaves(messages)) == expected(messages, prefix=0)


def test_long_messages():
    # A megabyte message alone and among short ones: the 64-bit bit length and many blocks
    # while the other lanes of its group have long finished.
    big = random_messages(99, [1_000_003])[0]
    for messages in ([big], [b"x", big, b""] + random_messages(5, range(0, 200, 7))):
        for prefix in (-1, 0):
            want = expected(messages, prefix=prefix)
            assert rows(hashing.hash_messages(messages, "sm3", prefix)) == want
            assert rows(run_kernel(sm3_scalar, messages, prefix)) == want
            assert rows(run_kernel(sm3_multibuffer, messages, prefix)) == want


def test_empty_batch():
    assert merkle.hash_leaves([]).shape == (0, 32)
    assert hashing.hash_messages([], "sm3").shape == (0, 32)
    assert merkle.hash_nodes(np.empty((0, 32), np.uint8), np.empty((0, 32), np.uint8)).shape == (0, 32)


def test_memoryview_and_bytearray_leaves():
    messages = [bytearray(b"abc"), memoryview(b"abcd" * 16), b""]
    assert rows(merkle.hash_leaves(messages)) == expected([bytes(m) for m in messages], prefix=0)


# -- interior nodes --------------------------------------------------------------------------
def random_digests(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 32), dtype=np.uint8)


@pytest.mark.parametrize("n", sorted({0, 1, 15, 16, 17, 63, 64, 65, 200, LANES + 1, TASK + 1}))
@pytest.mark.parametrize("alg", ["sm3", "sha256"])
def test_hash_nodes_is_prefix_1_left_right(n, alg):
    lefts, rights = random_digests(n, n), random_digests(n + 1000, n)
    want = [hashlib.new(alg, b"\x01" + l.tobytes() + r.tobytes()).digest() for l, r in zip(lefts, rights)]
    assert rows(merkle.hash_nodes(lefts, rights, alg)) == want
    # and through the hasher object the tree uses (hashlib below 64 pairs, a kernel above)
    assert rows(merkle.get_hasher(alg).hash_nodes(lefts, rights)) == want


@pytest.mark.parametrize("n", [1, 5])
@pytest.mark.parametrize("alg", ["sm3", "sha256"])
def test_hash_nodes_from_lists_of_digests(n, alg):
    # (For SM3 only through the hasher object's hashlib path: a list becomes a read-only
    # array, which numba compiles a second time, for 20 s on a slow machine.)
    lefts, rights = rows(random_digests(n, n)), rows(random_digests(n + 1, n))
    want = [hashlib.new(alg, b"\x01" + l + r).digest() for l, r in zip(lefts, rights)]
    if alg == "sha256":
        assert rows(merkle.hash_nodes(lefts, rights, alg)) == want
    assert rows(merkle.get_hasher(alg).hash_nodes(np.array([list(l) for l in lefts], np.uint8),
                                                  np.array([list(r) for r in rights], np.uint8))) == want


@pytest.mark.parametrize("kernel", [sm3_node_pairs, sm3_node_pairs_serial])
def test_node_pairs_kernel_directly(kernel):
    # The two-block node kernels (parallel, and serial for batches below PARALLEL_MIN_MESSAGES):
    # idle lanes of the last group repeat a real pair and must not be stored; rows of `out`
    # past n stay as they were.
    for n in (1, LANES - 1, LANES, LANES + 1, 3 * LANES + 7):
        lefts, rights = random_digests(2 * n, n), random_digests(2 * n + 1, n)
        out = np.zeros((n, 32), np.uint8)
        kernel(lefts, rights, out)
        assert rows(out) == [openssl_sm3(b"\x01" + l.tobytes() + r.tobytes()) for l, r in zip(lefts, rights)]


def test_hash_nodes_agrees_across_the_parallel_threshold():
    from merkle.hashing import PARALLEL_MIN_MESSAGES

    n = PARALLEL_MIN_MESSAGES + 3
    lefts, rights = random_digests(7, n), random_digests(8, n)
    serial = np.zeros((n, 32), np.uint8)
    sm3_node_pairs_serial(lefts, rights, serial)
    assert np.array_equal(merkle.hash_nodes(lefts, rights), serial)
    assert rows(merkle.hash_nodes(lefts[:5], rights[:5])) == [openssl_sm3(b"\x01" + l.tobytes() + r.tobytes())
                                                              for l, r in zip(lefts[:5], rights[:5])]


@given(st.integers(0, 300), st.integers(0, 2**32))
@settings(max_examples=MANY)
def test_hash_nodes_random_batches(n, seed):
    lefts, rights = random_digests(seed, n), random_digests(seed + 1, n)
    assert rows(merkle.hash_nodes(lefts, rights)) == [openssl_sm3(b"\x01" + l.tobytes() + r.tobytes())
                                                      for l, r in zip(lefts, rights)]


@given(st.integers(0, 130), st.integers(0, 2**32))
@settings(max_examples=FEW)
def test_log_hasher_batch_equals_single(n, seed):
    # LogHasher's batch methods and its one-at-a-time methods must agree, for both algs.
    lefts, rights = random_digests(seed, n), random_digests(seed + 1, n)
    leaves = random_messages(seed, np.random.default_rng(seed).integers(0, 150, size=n))
    for alg in merkle.ALGORITHMS:
        h = merkle.get_hasher(alg)
        assert rows(h.hash_nodes(lefts, rights)) == [h.hash_children(l.tobytes(), r.tobytes())
                                                     for l, r in zip(lefts, rights)]
        assert rows(h.hash_leaves(leaves)) == [h.hash_leaf(m) for m in leaves]


def test_log_hasher_primitives():
    for alg in merkle.ALGORITHMS:
        h = merkle.LogHasher(alg)
        assert h.digest_size == 32
        assert h.empty_root() == hashlib.new(alg, b"").digest()
        assert h.hash_leaf(b"x") == hashlib.new(alg, b"\x00x").digest()
        assert h.hash_children(b"a" * 32, b"b" * 32) == hashlib.new(alg, b"\x01" + b"a" * 32 + b"b" * 32).digest()
    assert merkle.get_hasher("sm3") is merkle.get_hasher("sm3")


# -- SHA-256 -----------------------------------------------------------------------------
@given(message_lists)
@settings(max_examples=FEW)
def test_sha256_alg_matches_hashlib(messages):
    assert rows(merkle.hash_leaves(messages, "sha256")) == expected(messages, "sha256", prefix=0)
    assert rows(hashing.hash_messages(messages, "sha256")) == expected(messages, "sha256")


# -- bad input: the error names the argument -----------------------------------------------
def test_sm3_rejects_non_bytes():
    with pytest.raises(TypeError, match="data"):
        merkle.sm3("abc")


@pytest.mark.parametrize("leaves", [b"abc", "abc", bytearray(b"abc")], ids=["bytes", "str", "bytearray"])
def test_hash_leaves_rejects_a_single_value(leaves):
    with pytest.raises(TypeError, match="leaves"):
        merkle.hash_leaves(leaves)


@pytest.mark.parametrize("bad", ["text", 5, None, [b"nested"]], ids=["str", "int", "None", "list"])
def test_hash_leaves_rejects_non_bytes_leaf(bad):
    with pytest.raises(TypeError, match=r"leaves\[1\]"):
        merkle.hash_leaves([b"ok", bad, b"ok"])


@pytest.mark.parametrize("alg", ["md5", "SM3", "", None])
def test_unknown_alg(alg):
    with pytest.raises(ValueError, match="alg"):
        merkle.hash_leaves([b"x"], alg)
    with pytest.raises(ValueError, match="alg"):
        merkle.hash_nodes([b"a" * 32], [b"b" * 32], alg)
    with pytest.raises(ValueError, match="alg"):
        merkle.get_hasher(alg)
    with pytest.raises(ValueError, match="alg"):
        merkle.LogHasher(alg)


@pytest.mark.parametrize("which", ["lefts", "rights"])
@pytest.mark.parametrize("bad", [b"a" * 31, b"a" * 33, b"", "a" * 32, 7], ids=["31", "33", "empty", "str", "int"])
def test_hash_nodes_rejects_wrong_digest(which, bad):
    good = [b"g" * 32, b"h" * 32]
    args = {"lefts": list(good), "rights": list(good)}
    args[which][1] = bad
    with pytest.raises((ValueError, TypeError), match=rf"{which}\[1\]"):
        merkle.hash_nodes(args["lefts"], args["rights"])


@pytest.mark.parametrize("which", ["lefts", "rights"])
@pytest.mark.parametrize("shape,dtype", [((3, 31), np.uint8), ((3, 32), np.int64), ((96,), np.uint8)])
def test_hash_nodes_rejects_wrong_arrays(which, shape, dtype):
    good = np.zeros((3, 32), np.uint8)
    args = {"lefts": good, "rights": good, which: np.zeros(shape, dtype)}
    with pytest.raises(ValueError, match=which):
        merkle.hash_nodes(args["lefts"], args["rights"])


def test_hash_nodes_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="lefts and rights"):
        merkle.hash_nodes(random_digests(0, 3), random_digests(1, 2))
    with pytest.raises(ValueError, match="lefts and rights"):
        merkle.hash_nodes([b"a" * 32], [])


@pytest.mark.parametrize("alg", ["sm3", "sha256"])
def test_log_hasher_hash_nodes_rejects_mismatched_lengths(alg):
    # BUG: LogHasher.hash_nodes answers batches of fewer than 64 ndarray pairs itself with
    # zip(), which silently drops the unpaired digests (and takes rights of any width),
    # where the module's hash_nodes raises. The hasher object is what the tree is given.
    h = merkle.get_hasher(alg)
    with pytest.raises(ValueError, match="lefts and rights"):
        h.hash_nodes(random_digests(0, 3), random_digests(1, 2))
    with pytest.raises(ValueError, match="rights"):
        h.hash_nodes(random_digests(0, 3), np.zeros((3, 16), np.uint8))


@pytest.mark.parametrize("offsets", [[1, 3], [0, 2], [0, 3, 2, 3], [[0, 3]]], ids=["start", "end", "decreasing", "2d"])
def test_data_offsets_rejects_bad_offsets(offsets):
    data = np.frombuffer(b"abc", np.uint8)
    with pytest.raises(ValueError, match="offsets"):
        merkle.hash_leaves((data, np.array(offsets, dtype=np.int64)))


@pytest.mark.parametrize("prefix", [256, 0x101, 1000])
def test_hash_messages_rejects_prefix_that_is_not_a_byte(prefix):
    # BUG: the SHA-256 path refuses a prefix > 255 (bytes([prefix]) raises ValueError), the
    # SM3 path silently uses prefix & 0xFF: the kernels shift the whole int into a uint32
    # word, so hash_messages([b"abc"], "sm3", 256) is SM3(0x00 || "abc"), a leaf hash.
    with pytest.raises(ValueError):
        hashing.hash_messages([b"abc"], "sha256", prefix)
    with pytest.raises(ValueError, match="prefix"):
        hashing.hash_messages([b"abc"], "sm3", prefix)


def test_warm_up_compiles_every_kernel_the_service_calls():
    """In a fresh process nothing is compiled; warm_up() must leave each kernel with the
    signature real calls use, so no record waits for numba (proof_api/runtime.py)."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "from merkle import hashing, sm3_numba\n"
        "kernels = (sm3_numba.sm3_multibuffer_serial, sm3_numba.sm3_multibuffer, sm3_numba.sm3_node_pairs)\n"
        "assert not any(k.signatures for k in kernels)\n"
        "hashing.warm_up()\n"
        "before = [list(k.signatures) for k in kernels]\n"
        "assert all(before), before\n"
        "import numpy as np\n"
        "hashing.hash_leaves([b'x' * n for n in range(1, 9000)])\n"  # the parallel kernel, mixed lengths
        "hashing.hash_leaves([b'abc'])\n"
        "hashing.hash_nodes(np.ones((100, 32), np.uint8), np.ones((100, 32), np.uint8))\n"
        "assert [list(k.signatures) for k in kernels] == before, 'a real call compiled a new signature'\n"
        "print('ok')\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]
