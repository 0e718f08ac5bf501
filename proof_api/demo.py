"""The main job on the embedded defaults. For now: the Merkle engine end to end."""
from __future__ import annotations

import hashlib
import random
import tempfile
import time

import orjson
from tqdm import tqdm

from merkle import MerkleLog, ProofError, RocksDBStore, get_hasher, hash_leaves, verify_consistency, verify_inclusion
from merkle.checkpoint import Checkpoint, SM2PrivateKey, sign_checkpoint, verifier_key, verify_checkpoint

BUSINESS_TYPES = ("account-opening-video", "risk-disclosure", "suitability-confirmation", "signed-contract")


def generate_records(count: int, seed: int = 2026) -> list[bytes]:
    """Evidence-like records: canonical JSON of what a brokerage would submit."""
    rng = random.Random(seed)
    records = []
    for seq in range(count):
        record = {
            "seq": seq,
            "ledger": "demo",
            "content_hash": rng.randbytes(32).hex(),
            "business_type": rng.choice(BUSINESS_TYPES),
            "business_id": f"BF-{rng.randrange(10**8):08d}",
            "occurred_at": f"2026-11-{1 + seq % 28:02d}T09:{seq % 60:02d}:00+08:00",
        }
        records.append(orjson.dumps(record, option=orjson.OPT_SORT_KEYS))
    return records


def _short(digest: bytes) -> str:
    return digest.hex()


def run_demo(records: int = 5000, batch: int = 512, alg: str = "sm3") -> int:
    if records < 2:
        raise ValueError("--records must be at least 2")
    if batch < 1:
        raise ValueError("--batch must be at least 1")
    leaves = generate_records(records)
    hasher = get_hasher(alg)
    print(f"evledger demo: {records} evidence records -> {alg.upper()} Merkle log (RFC 9162) in RocksDB")
    hash_leaves(leaves[:16], alg)  # compile or load the cached kernels before timing
    with tempfile.TemporaryDirectory(prefix="evledger-demo-") as tmp:
        store = RocksDBStore(tmp)
        log = MerkleLog(store, alg)
        started = time.perf_counter()
        with tqdm(total=records, unit="rec", desc="appending") as bar:
            for i in range(0, records, batch):
                log.append(leaves[i:i + batch])
                bar.update(min(batch, records - i))
        elapsed = time.perf_counter() - started
        size = log.size
        root = log.root()
        print(f"tree size {size}, root {_short(root)} ({size / elapsed:,.0f} leaves/s appended)")

        key = SM2PrivateKey.generate()
        note = sign_checkpoint(Checkpoint("evledger.demo/ledger/demo", size, root), "evledger.demo", key)
        vkey = verifier_key("evledger.demo", key.public_key)
        verify_checkpoint(note, vkey)
        print("signed checkpoint (SM2), verified:\n" + "".join("  " + line + "\n" for line in note.splitlines()))

        index = size // 3
        proof = log.inclusion_proof(index)
        leaf_hash = hasher.hash_leaf(leaves[index])
        verify_inclusion(alg, index, size, leaf_hash, proof, root)
        print(f"inclusion proof for leaf {index} ({len(proof)} hashes): verified")
        for n, p in enumerate(proof):
            print(f"  [{n}] {_short(p)}")

        old_size = size // 2
        cproof = log.consistency_proof(old_size)
        verify_consistency(alg, old_size, size, cproof, log.root(old_size), root)
        print(f"consistency proof {old_size} -> {size} ({len(cproof)} hashes): verified")

        tampered = bytearray(leaves[index])
        tampered[len(tampered) // 2] ^= 0x01
        try:
            verify_inclusion(alg, index, size, hasher.hash_leaf(bytes(tampered)), proof, root)
            print("ERROR: a tampered leaf verified")
            return 1
        except ProofError as exc:
            print(f"leaf {index} with one byte changed: rejected ({exc})")
        store.close()

    # Hashing rate: the numba kernel against a per-call OpenSSL loop, same data, same run.
    n = 200_000
    data = [bytes([i % 251]) * 200 for i in range(n)]
    hash_leaves(data[:1024], alg)
    t0 = time.perf_counter()
    hash_leaves(data, alg)
    kernel = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for d in data:
        hashlib.new(alg, b"\x00" + d).digest()
    loop = n / (time.perf_counter() - t0)
    impl = "numba" if alg == "sm3" else "batch"  # SHA-256 goes through hashlib either way
    print(f"leaf hashing, {n} x 200 B: {kernel:,.0f} leaves/s ({impl}) vs {loop:,.0f}/s "
          f"(hashlib loop) = {kernel / loop:.1f}x")
    return 0
