"""The main job on the embedded defaults. For now: the write path end to end (records ->
durable receipts -> SM2-signed checkpoints over the SM3 Merkle log -> an anchor on the
in-process chain), proofs and a rebuild."""
from __future__ import annotations

import hashlib
import random
import tempfile
import time

from tqdm import tqdm

from anchor.chain import Web3Chain
from anchor.worker import AnchorSettings, AnchorWorker
from ingest.ledger import LedgerService
from ingest.log_rocksdb import RocksDBLog
from ingest.rebuild import rebuild_ledger
from ingest.sequencer import SequencerSettings
from merkle import ProofError, get_hasher, hash_leaves, verify_consistency, verify_inclusion
from merkle.checkpoint import verify_checkpoint

BUSINESS_TYPES = ("account-opening-video", "risk-disclosure", "suitability-confirmation", "signed-contract")


def generate_records(count: int, seed: int = 2026) -> list[dict]:
    """Evidence records as a brokerage would submit them: flows of several records each."""
    rng = random.Random(seed)
    records = []
    for n in range(count):
        flow = n // 4
        records.append({
            "content_hash": rng.randbytes(32).hex(),
            "business_type": BUSINESS_TYPES[n % 4],
            "business_id": f"BF-{flow:08d}",
            "evidence_id": f"demo-{n}",
            "occurred_at": f"2026-11-{1 + flow % 28:02d}T09:{n % 60:02d}:00+08:00",
            "attributes": {"branch": f"sh-{flow % 17:03d}", "channel": "app" if flow % 3 else "counter"},
        })
    return records


def _short(digest: bytes) -> str:
    return digest.hex()


def run_demo(records: int = 5000, batch: int = 512, alg: str = "sm3") -> int:
    if records < 2:
        raise ValueError("--records must be at least 2")
    if batch < 1:
        raise ValueError("--batch must be at least 1")
    submitted = generate_records(records)
    hasher = get_hasher(alg)
    print(f"evledger demo: {records} evidence records -> a ledger's durable log -> {alg.upper()} Merkle log "
          f"(RFC 9162) -> SM2-signed checkpoints, in RocksDB")
    hash_leaves([b"warm-up"] * 16, alg)  # compile or load the cached kernels before timing
    with tempfile.TemporaryDirectory(prefix="evledger-demo-") as tmp:
        service = LedgerService(tmp, settings=SequencerSettings(batch_max_delay=0.2))
        ledger = service.create_ledger("demo", alg=alg)
        started = time.perf_counter()
        with tqdm(total=records, unit="rec", desc="recording") as bar:
            for i in range(0, records, batch):
                receipts = ledger.submit(submitted[i:i + batch])
                bar.update(len(receipts))
        elapsed = time.perf_counter() - started
        print(f"{records} receipts, each after its group's fsync ({records / elapsed:,.0f} records/s); "
              f"last: seq {receipts[-1].seq}, leaf hash {receipts[-1].leaf_hash}")
        again = ledger.submit([submitted[0]])[0]
        print(f"the same evidence id again: duplicate={again.duplicate}, seq {again.seq} (recorded once)")
        checkpoint = ledger.wait_for_checkpoint(records, timeout=60)
        if checkpoint is None:
            print("ERROR: no checkpoint covered the records within 60 s")
            return 1
        tree = ledger.projections.tree
        size = checkpoint["size"]
        root = bytes.fromhex(checkpoint["root"])
        print(f"tree size {size}, root {_short(root)}")
        verify_checkpoint(checkpoint["note"], ledger.verifier_keys()[checkpoint["key_id"]])
        print("signed checkpoint (SM2), verified:\n" + "".join("  " + line + "\n" for line in checkpoint["note"].splitlines()))

        chain = Web3Chain.in_process()
        worker = AnchorWorker(service, chain, AnchorSettings(min_interval=0.0, poll_interval=0.05))
        worker.anchor_now(ledger.id)
        anchor = worker.wait_confirmed(ledger.id, size, timeout=60)
        if anchor is None:
            print(f"ERROR: the anchor was not confirmed ({worker.metrics.last_error})")
            return 1
        print(f"anchored on the in-process chain (py-evm; it ends with this process): tx {anchor['tx_hash']}, "
              f"block {anchor['block_number']}; the contract returns root "
              f"{chain.read_anchor(ledger.origin, size).root.hex()}")

        index = size // 3
        leaf = ledger.leaf(index)
        proof = tree.inclusion_proof(index, size)
        verify_inclusion(alg, index, size, hasher.hash_leaf(leaf), proof, root)
        print(f"inclusion proof for leaf {index} ({len(proof)} hashes): verified")
        for n, p in enumerate(proof):
            print(f"  [{n}] {_short(p)}")

        old_size = size // 2
        cproof = tree.consistency_proof(old_size, size)
        verify_consistency(alg, old_size, size, cproof, tree.root(old_size), root)
        print(f"consistency proof {old_size} -> {size} ({len(cproof)} hashes): verified")

        tampered = bytearray(leaf)
        tampered[len(tampered) // 2] ^= 0x01
        try:
            verify_inclusion(alg, index, size, hasher.hash_leaf(bytes(tampered)), proof, root)
            print("ERROR: a tampered leaf verified")
            return 1
        except ProofError as exc:
            print(f"leaf {index} with one byte changed: rejected ({exc})")
        service.close()

        log = RocksDBLog(f"{tmp}/log")
        report = rebuild_ledger(tmp, "demo", log, progress=False)
        log.close()
        print(f"rebuild from the log: {report.events:,} events, {report.checkpoints_verified} checkpoint roots "
              f"reproduced bit for bit: {'ok' if report.ok else 'FAILED'}")
        if not report.ok:
            return 1

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
