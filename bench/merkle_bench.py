"""`make bench-merkle`: the SM3 hasher, tree appends and inclusion proofs, each figure next to
its reference measured in the same run. Writes bench/results/merkle-<UTC time>.{json,md}.

    python -m bench.merkle_bench [--quick] [--proof-sizes 1000,1000000,10000000]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

from merkle import MemoryStore, MerkleLog, RocksDBStore, hash_leaves, hash_nodes, verify_inclusion
from merkle import sm3_numba
from bench.machine import machine_info, machine_line, write_result

RESULTS = Path(__file__).parent / "results"


def best_rate(fn, items: int, repeat: int = 5) -> float:
    """Items per second of the fastest of `repeat` runs (the machine is noisy)."""
    best = 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = max(best, items / (time.perf_counter() - t0))
    return best


def openssl_speed(nbytes: int, procs: int, seconds: int) -> float:
    """Messages/s of OpenSSL's own C loop (`openssl speed -evp sm3`), `procs` processes."""
    cmd = ["openssl", "speed", "-evp", "sm3", "-bytes", str(nbytes), "-seconds", str(seconds)]
    if procs > 1:
        cmd[2:2] = ["-multi", str(procs)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds * 4 + 30).stdout
    m = re.search(r"^sm3\s+([\d.]+)k", out, re.M)  # with -multi: the sum over processes
    kbytes = float(m.group(1)) if m else None
    if kbytes is None:
        raise RuntimeError(f"could not parse `{' '.join(cmd)}` output:\n{out}")
    return kbytes * 1000 / nbytes


def with_threads(n: int, fn):
    old = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        return fn()
    finally:
        numba.set_num_threads(old)


def bench_hasher(n: int, msg_len: int, prefix: int, seconds: int) -> dict:
    """Messages of msg_len bytes, each hashed with a one-byte prefix (so msg_len + 1 hashed)."""
    from gmssl import func, sm3 as gm_sm3

    rng = np.random.default_rng(7)
    cores = min(2, os.cpu_count() or 1)
    hashed_len = msg_len + 1
    # OpenSSL's C rate for 64-byte messages (the reference for nodes; 64 and 65 bytes
    # are both two SM3 blocks), and for the exact 201 bytes of a prefixed 200-byte leaf.
    ossl_len = 64 if msg_len == 64 else hashed_len
    if msg_len == 64:  # interior nodes: the dedicated node kernel
        lefts = rng.integers(0, 256, (n, 32), dtype=np.uint8)
        rights = rng.integers(0, 256, (n, 32), dtype=np.uint8)
        data = np.concatenate([lefts, rights], axis=1).reshape(-1)
        multibuffer = lambda: hash_nodes(lefts, rights)  # noqa: E731
    else:
        data = rng.integers(0, 256, n * msg_len, dtype=np.uint8)
        offs = np.arange(n + 1, dtype=np.int64) * msg_len
        multibuffer = lambda: hash_leaves((data, offs))  # noqa: E731
    offsets = np.arange(n + 1, dtype=np.int64) * msg_len
    order = np.arange(n, dtype=np.int64)
    out = np.empty((n, 32), dtype=np.uint8)
    scalar = lambda: sm3_numba.sm3_scalar(data, offsets, order, prefix, out)  # noqa: E731
    multibuffer()
    scalar()
    raw = data.tobytes()
    messages = [bytes([prefix]) + raw[i * msg_len:(i + 1) * msg_len] for i in range(min(n, 300_000))]

    def hashlib_loop():
        for m in messages:
            hashlib.new("sm3", m).digest()

    gm_msgs = [func.bytes_to_list(m) for m in messages[:300]]

    def gmssl_loop():
        for m in gm_msgs:
            gm_sm3.sm3_hash(m)

    r = {
        "message_bytes_hashed": hashed_len,
        "numba_multibuffer_1core": with_threads(1, lambda: best_rate(multibuffer, n)),
        f"numba_multibuffer_{cores}core": with_threads(cores, lambda: best_rate(multibuffer, n)),
        "numba_scalar_1core": with_threads(1, lambda: best_rate(scalar, n)),
        f"numba_scalar_{cores}core": with_threads(cores, lambda: best_rate(scalar, n)),
        "openssl_bytes": ossl_len,
        "openssl_speed_1core": openssl_speed(ossl_len, 1, seconds),
        f"openssl_speed_{cores}core": openssl_speed(ossl_len, cores, seconds) if cores > 1 else None,
        "hashlib_loop_1core": best_rate(hashlib_loop, len(messages)),
        "gmssl_1core": best_rate(gmssl_loop, len(gm_msgs), repeat=1),
    }
    r["ratio_multibuffer_vs_openssl_per_core"] = r["numba_multibuffer_1core"] / r["openssl_speed_1core"]
    r["multibuffer_scaling"] = r[f"numba_multibuffer_{cores}core"] / r["numba_multibuffer_1core"]
    r["cores"] = cores
    return r


def bench_append(n: int, batch: int, workdir: str) -> dict:
    rng = np.random.default_rng(11)
    leaf_len = 200
    data = rng.integers(0, 256, n * leaf_len, dtype=np.uint8)

    def append_all(log: MerkleLog):
        for start in range(0, n, batch):
            stop = min(n, start + batch)
            offs = np.arange(stop - start + 1, dtype=np.int64) * leaf_len
            log.append((data[start * leaf_len:stop * leaf_len], offs))
        return log

    append_all(MerkleLog(MemoryStore()))  # warm the kernels
    mem = best_rate(lambda: append_all(MerkleLog(MemoryStore())), n, repeat=2)
    mem_root = append_all(MerkleLog(MemoryStore())).root()

    def rocks():
        path = tempfile.mkdtemp(dir=workdir)
        store = RocksDBStore(path)
        log = append_all(MerkleLog(store))
        root = log.root()
        store.close()
        shutil.rmtree(path)
        return root

    t0 = time.perf_counter()
    rocks_root = rocks()
    rocks_rate = n / (time.perf_counter() - t0)
    assert rocks_root == mem_root, "RocksDB and memory stores disagree"

    # References on a smaller slice (they are 10-100x slower): pymerkle and a hashlib loop.
    from pymerkle import InmemoryTree

    m = min(n, 100_000)
    raw = data.tobytes()
    leaves = [raw[i * leaf_len:(i + 1) * leaf_len] for i in range(m)]

    def pymerkle_run():
        tree = InmemoryTree(algorithm="sha256")
        for leaf in leaves:
            tree.append_entry(leaf)

    def hashlib_run():
        h = lambda b: hashlib.new("sm3", b).digest()  # noqa: E731
        nodes = [h(b"\x00" + x) for x in leaves]
        while len(nodes) > 1:  # a full rebuild of the levels, as a hashlib user writes it
            nodes = [h(b"\x01" + nodes[i] + nodes[i + 1]) if i + 1 < len(nodes) else nodes[i]
                     for i in range(0, len(nodes), 2)]

    return {
        "leaves": n, "leaf_bytes": leaf_len, "batch": batch,
        "memory_leaves_per_s": mem,
        "rocksdb_leaves_per_s": rocks_rate,
        "pymerkle_inmemory_sha256_leaves_per_s": best_rate(pymerkle_run, m, repeat=1),
        "hashlib_sm3_loop_leaves_per_s": best_rate(hashlib_run, m, repeat=1),
        "reference_leaves": m,
    }


def bench_proofs(sizes: list[int], workdir: str, samples: int) -> list[dict]:
    rng = np.random.default_rng(5)
    path = tempfile.mkdtemp(dir=workdir)
    store = RocksDBStore(path)
    log = MerkleLog(store)
    rows = []
    try:
        for size in sorted(sizes):
            while log.size < size:
                chunk = min(1 << 20, size - log.size)
                log.append_leaf_hashes(rng.integers(0, 256, (chunk, 32), dtype=np.uint8))
            root = log.root(size)
            lat = []
            for index in rng.integers(0, size, samples):
                t0 = time.perf_counter()
                log.inclusion_proof(int(index), size)
                lat.append(time.perf_counter() - t0)
            # check a few, so the figure is of correct proofs
            for index in rng.integers(0, size, 20):
                verify_inclusion("sm3", int(index), size, log.leaf_hash(int(index)),
                                 log.inclusion_proof(int(index), size), root)
            lat_us = np.array(lat) * 1e6
            rows.append({"tree_size": size, "proofs_per_s": samples / sum(lat),
                         "p50_us": float(np.percentile(lat_us, 50)), "p99_us": float(np.percentile(lat_us, 99)),
                         "proof_hashes": len(log.inclusion_proof(size // 2, size))})
    finally:
        store.close()
        shutil.rmtree(path, ignore_errors=True)
    return rows


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [f"# Merkle engine benchmark", "", f"Machine: {machine_line(m)}", ""]
    for key, title in (("nodes", "SM3 interior-node hashes (65-byte messages), messages/s"),
                       ("leaves", "SM3 leaf hashes (200-byte records + prefix), messages/s")):
        r = result[key]
        c = r["cores"]
        lines += [f"## {title}", "", "| implementation | 1 core | %d cores |" % c, "| --- | ---: | ---: |"]
        lines.append(f"| numba multi-buffer (64 lanes) | {r['numba_multibuffer_1core']:,.0f} | {r[f'numba_multibuffer_{c}core']:,.0f} |")
        lines.append(f"| numba scalar | {r['numba_scalar_1core']:,.0f} | {r[f'numba_scalar_{c}core']:,.0f} |")
        ossl = r.get(f"openssl_speed_{c}core")
        lines.append(f"| OpenSSL C loop (`openssl speed -evp sm3 -bytes {r['openssl_bytes']}`) | {r['openssl_speed_1core']:,.0f} | {ossl or 0:,.0f} |")
        lines.append(f"| Python loop over `hashlib.new('sm3')` | {r['hashlib_loop_1core']:,.0f} | |")
        lines.append(f"| gmssl (pure Python) | {r['gmssl_1core']:,.0f} | |")
        lines += ["", f"Multi-buffer vs OpenSSL per core: **{r['ratio_multibuffer_vs_openssl_per_core']:.2f}x**; "
                  f"scaling 1 -> {c} cores: **{r['multibuffer_scaling']:.2f}x**. Bound: CPU.", ""]
    a = result["append"]
    lines += ["## Tree append (200-byte leaves, batches of %d, %d leaves), leaves/s" % (a["batch"], a["leaves"]), "",
              "| tree | leaves/s |", "| --- | ---: |",
              f"| MerkleLog, memory store (SM3) | {a['memory_leaves_per_s']:,.0f} |",
              f"| MerkleLog, RocksDB store (SM3) | {a['rocksdb_leaves_per_s']:,.0f} |",
              f"| pymerkle InmemoryTree (SHA-256), {a['reference_leaves']:,} leaves | {a['pymerkle_inmemory_sha256_leaves_per_s']:,.0f} |",
              f"| hashlib SM3 loop, same tree, {a['reference_leaves']:,} leaves | {a['hashlib_sm3_loop_leaves_per_s']:,.0f} |",
              "", "Bound: CPU (hashing) for memory; CPU plus RocksDB writes (no fsync: nodes are a rebuildable projection) for RocksDB.", ""]
    lines += ["## Inclusion proofs, RocksDB store (SM3)", "", "| tree size | proofs/s | p50 µs | p99 µs | hashes in proof |",
              "| ---: | ---: | ---: | ---: | ---: |"]
    for row in result["proofs"]:
        lines.append(f"| {row['tree_size']:,} | {row['proofs_per_s']:,.0f} | {row['p50_us']:.1f} | {row['p99_us']:.1f} | {row['proof_hashes']} |")
    lines += ["", "Bound: CPU (Python per proof, O(log n) RocksDB point reads, mostly in the block cache).", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke check")
    parser.add_argument("--proof-sizes", default=None, help="comma-separated tree sizes (default 1e3,1e6,1e7)")
    parser.add_argument("--out", default=str(RESULTS), help="results folder")
    args = parser.parse_args(argv)
    quick = args.quick
    sizes = [int(float(s)) for s in (args.proof_sizes or ("1000,100000" if quick else "1000,1000000,10000000")).split(",")]
    n_hash = 1 << (16 if quick else 22)
    seconds = 1 if quick else 3
    result = {"machine": machine_info(), "quick": quick}
    print("machine:", machine_line(result["machine"]))
    workdir = tempfile.mkdtemp(prefix="evledger-bench-")
    try:
        print("hashing interior nodes ...", flush=True)
        result["nodes"] = bench_hasher(n_hash, 64, 1, seconds)
        print("hashing 200-byte leaves ...", flush=True)
        result["leaves"] = bench_hasher(n_hash // 2, 200, 0, seconds)
        print("tree appends ...", flush=True)
        result["append"] = bench_append(1 << (17 if quick else 21), 1 << 16, workdir)
        print("inclusion proofs ...", flush=True)
        result["proofs"] = bench_proofs(sizes, workdir, 2000 if quick else 20000)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    md = markdown(result)
    written = write_result(args.out, "merkle", result, md)
    print(md)
    print(f"wrote {written} and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
