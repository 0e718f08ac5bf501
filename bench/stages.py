"""Where a record's time goes on the durable write path: each stage timed alone, in the same
process and on the same records as the end-to-end figure, in microseconds per record.

Each stage runs the ledger's own code on whole groups of G records, one thread, best of three
passes (the machine is shared): the HTTP decode of a JSON array, validation, the keyed
idempotency fingerprint, the leaf bytes, the log events, the synced log append, the leaf hashes
(numba SM3), the tree append and the index write, and the bulk look-up of evidence ids. Their
sum is set beside the end-to-end cost of Ledger.submit at the same G, one thread: what the sum
leaves out is the group-commit hand-offs, receipts and the sequencer thread's share of the GIL.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time

import orjson

from ingest import events as ev
from ingest.keys import idempotency_fingerprint
from ingest.leaf import LEAF_TAIL, leaf_prefix, record_json, utc_now_text
from ingest.log_rocksdb import RocksDBLog
from ingest.projections import Projections
from ingest.records import validate_records
from merkle import hash_leaves

STAGES = (
    ("decode", "decode: orjson.loads of the group's JSON array (the HTTP batch body; not in the sum)"),
    ("validate", "validate: ingest.records.validate_records"),
    ("lookup", "idempotency look-up: one multi-get of the group's new evidence ids (misses)"),
    ("fingerprint", "fingerprint: keyed BLAKE2b of the record's canonical JSON"),
    ("leaf", "leaf: the version-1 leaf bytes"),
    ("event", "event: EvidenceRecorded objects (leaf + fingerprint metadata)"),
    ("append", "append + fsync: RocksDBLog.append of the group (event encoding included)"),
    ("hash", "leaf hash: SM3 of the group's leaves (numba)"),
    ("tree", "tree: MerkleLog.append_leaf_hashes (interior nodes hashed, node store written)"),
    ("index", "index: the evidence, business-id, content-hash and position entries (one write batch)"),
)


def _best_of(passes: int, run) -> float:
    best = float("inf")
    for _ in range(passes):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def measure_stages(workdir: str, records: list[dict], group: int, passes: int = 3) -> dict:
    """Seconds per record of each stage over `records` in groups of `group`."""
    groups = [records[i:i + group] for i in range(0, len(records), group)]
    bodies = [orjson.dumps(g) for g in groups]
    valid = [validate_records(g) for g in groups]
    fingerprint = idempotency_fingerprint(os.urandom(16))
    received_at = utc_now_text()
    head = leaf_prefix("stages", received_at)
    n = sum(len(g) for g in groups)

    def fingerprints():
        return [[fingerprint(record_json(r)) for r in g] for g in valid]

    def leaves():
        seq, out = 0, []
        for g in valid:
            out.append([head + record_json(r) + b',"seq":' + str(seq + i).encode() + LEAF_TAIL for i, r in enumerate(g)])
            seq += len(g)
        return out

    made_fingerprints, made_leaves = fingerprints(), leaves()
    events = [[ev.evidence_recorded(leaf, fp) for leaf, fp in zip(ls, fs)] for ls, fs in zip(made_leaves, made_fingerprints)]
    hash_leaves(made_leaves[0], "sm3")  # compiles the numba kernels outside the clocks
    digests = [hash_leaves(ls, "sha256") for ls in made_leaves]
    seconds = {
        "decode": _best_of(passes, lambda: [orjson.loads(b) for b in bodies]),
        "validate": _best_of(passes, lambda: [validate_records(g) for g in groups]),
        "fingerprint": _best_of(passes, fingerprints),
        "leaf": _best_of(passes, leaves),
        "event": _best_of(passes, lambda: [[ev.evidence_recorded(leaf, fp) for leaf, fp in zip(ls, fs)]
                                             for ls, fs in zip(made_leaves, made_fingerprints)]),
        "hash": _best_of(passes, lambda: [hash_leaves(ls, "sm3") for ls in made_leaves]),
    }
    seconds.update(_storage_stages(workdir, groups, valid, made_leaves, made_fingerprints, events, digests))
    per_record = {name: seconds[name] / n for name, _ in STAGES}
    # Ledger.submit takes decoded records: the decode is the HTTP path's, outside the sum
    return {"group": group, "records": n, "us_per_record": {k: v * 1e6 for k, v in per_record.items()},
            "sum_us_per_record": sum(v for k, v in per_record.items() if k != "decode") * 1e6}


def _storage_stages(workdir, groups, valid, leaves, fingerprints, events, digests) -> dict:
    """The stages that write: each pass on fresh stores, timed around the writes alone."""
    took = {"append": [], "tree": [], "index": [], "lookup": []}
    for _ in range(3):
        folder = tempfile.mkdtemp(dir=workdir, prefix="stages-")
        try:
            log = RocksDBLog(os.path.join(folder, "log"))
            started = time.perf_counter()
            version = 0
            for g in events:
                version = log.append("stages", g, version)
            took["append"].append(time.perf_counter() - started)
            log.close()
            projections = Projections(os.path.join(folder, "projections"), "stages", "sm3")
            started = time.perf_counter()
            for d in digests:
                projections.tree.append_leaf_hashes(d)
            took["tree"].append(time.perf_counter() - started)
            index_took, lookup_took, seq = 0.0, 0.0, 0
            for g, fs in zip(valid, fingerprints):
                # As on the write path: the group's new ids are looked up (and missed) in an index
                # that holds the groups before it, then its entries are written.
                ids = [r["evidence_id"] for r in g if "evidence_id" in r]
                started = time.perf_counter()
                projections.evidence_many(ids)
                lookup_took += time.perf_counter() - started
                entries = [(seq + i, seq + i, r, f) for i, (r, f) in enumerate(zip(g, fs))]
                seq += len(g)
                started = time.perf_counter()
                projections.write_index(entries, seq)
                index_took += time.perf_counter() - started
            took["index"].append(index_took)
            took["lookup"].append(lookup_took)
            projections.close()
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return {name: min(values) for name, values in took.items()}


def stages_markdown(stages: dict, end_to_end_us: float | None) -> list[str]:
    lines = [f"## Per-stage cost, µs per record (G = {stages['group']:,}, {stages['records']:,} records, one thread)", "",
             "| stage | µs/record | share of the sum |", "| --- | ---: | ---: |"]
    total = stages["sum_us_per_record"]
    for name, title in STAGES:
        us = stages["us_per_record"][name]
        lines.append(f"| {title} | {us:.2f} | {'' if name == 'decode' else f'{us / total:.0%}'} |")
    lines.append(f"| **sum of the stages but decode** | **{total:.2f}** | |")
    if end_to_end_us is not None:
        lines += [f"| end to end: Ledger.submit at this G, one thread | {end_to_end_us:.2f} | |", "",
                  "What the end-to-end cost holds beyond the sum: the group-commit hand-off, receipts, and the "
                  "sequencer thread (tree and index) taking the GIL from the writer."]
    lines.append("")
    return lines


def measure_write_overlap(workdir: str, records: list[dict], group: int) -> dict:
    """Whether a RocksDB write lets another thread run: prepared index batches (unsynced) written
    by one thread, then the same again by two threads into two databases at once; only the
    writes are timed. About the time of one means the write releases the GIL; twice the time or
    more means it holds it, and the sequencer's tree and index writes then take turns with the
    write path instead of using the second core."""
    import threading

    from rocksdict import Options, Rdict

    from bench.ingest_bench import CpuClock  # here: ingest_bench imports this module

    valid = validate_records(records)
    batches = [valid[i:i + group] for i in range(0, len(valid), group)]

    def make_batches(base: int) -> list:
        from rocksdict import WriteBatch

        out = []
        for k, g in enumerate(batches):
            batch = WriteBatch(raw_mode=True)
            for i, r in enumerate(g):
                seq = (base + k * group + i).to_bytes(8, "big")
                batch.put(b"b" + r["business_id"].encode() + b"\0" + seq, b"")
                batch.put(b"c" + bytes.fromhex(r["content_hash"]) + seq, b"")
            out.append(batch)
        return out

    def write_all(db, prepared: list) -> None:
        for batch in prepared:
            db.write(batch)

    folder = tempfile.mkdtemp(dir=workdir, prefix="overlap-")
    try:
        opts = Options(raw_mode=True)
        opts.create_if_missing(True)
        dbs = [Rdict(os.path.join(folder, str(k)), opts) for k in range(2)]
        prepared = make_batches(0)  # built outside the clocks: only the writes are timed
        clock = CpuClock()
        started = time.perf_counter()
        write_all(dbs[0], prepared)
        one = time.perf_counter() - started
        threads = [threading.Thread(target=write_all, args=(db, make_batches(1 << 40))) for db in dbs]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        two = time.perf_counter() - started
        run = clock.stop()
        for db in dbs:
            db.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return {"one_thread_s": one, "two_threads_s": two, "two_over_one": two / one, "process_cores": run["cpu_cores"],
            "machine_busy_cores": run["busy_cores"]}


def overlap_markdown(overlap: dict) -> list[str]:
    ratio = overlap["two_over_one"]
    verdict = ("the write releases the GIL: the two threads overlapped" if ratio < 1.5 else
               "the write holds the GIL: the two threads took turns, so the sequencer's tree and index writes "
               "cannot use the second core while the write path runs (it needs a second process)")
    return [f"RocksDB writes and the GIL: writing the same prepared index batches took "
            f"{overlap['one_thread_s'] * 1000:.0f} ms in one thread and {overlap['two_threads_s'] * 1000:.0f} ms for "
            f"two threads each writing as much at once ({ratio:.2f}x): {verdict}. Over both, this process used "
            f"{overlap['process_cores']:.2f} cores and the machine {overlap['machine_busy_cores']:.2f} of "
            f"{os.cpu_count()}: where the machine is much busier than this process, rerun before trusting the verdict.",
            ""]
