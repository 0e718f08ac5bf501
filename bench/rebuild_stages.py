"""Where a rebuild's time goes, and whether bulk-loading the index as an SST file would help.

    python -m bench.rebuild_stages [--records N]

1. Builds an N-record ledger through Ledger.submit, then rebuilds it (`ingest.rebuild`) with
   the stages timed from outside (the log read, the tree append, the index write, the
   checkpoint checks, closing), in microseconds per record; what is left is the per-record
   Python of the sequencer (parsing each leaf, bookkeeping).
2. The same number of index keys (three per record: evidence id, content hash, business id)
   written two ways into a fresh RocksDB, in the same run: one WriteBatch per 65,536 records
   (what the rebuild does), and sorted in Python then written with SstFileWriter and ingested
   (RocksDB's bulk load). The ratio says whether the bulk load is worth it here.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections import Counter
from contextlib import contextmanager

from bench.ingest_bench import make_records
from ingest.ledger import LedgerService, SequencerSettings
from ingest.log_rocksdb import RocksDBLog
from ingest.projections import Projections
from ingest.rebuild import rebuild_ledger
from merkle.tree import MerkleLog

FLUSH = 65_536  # records per index write batch in a rebuild (the sequencer's batch_max_items)


@contextmanager
def timed(spent: Counter, owner, name: str, label: str):
    """Time every call of owner.name into spent[label] while inside."""
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[label] += time.perf_counter() - started

    setattr(owner, name, wrapper)
    try:
        yield
    finally:
        setattr(owner, name, original)


def build(data_dir: str, n: int) -> None:
    service = LedgerService(data_dir, settings=SequencerSettings())
    ledger = service.create_ledger("bench")
    for start in range(0, n, 10_000):
        ledger.submit(make_records(start, min(10_000, n - start)))
    if ledger.wait_for_checkpoint(ledger.record_count, timeout=300) is None:
        raise RuntimeError("the ledger was not sealed within 300 s")
    service.close()


def rebuild_stages(data_dir: str, n: int) -> dict:
    spent: Counter = Counter()
    log = RocksDBLog(os.path.join(data_dir, "log"))
    try:
        with timed(spent, RocksDBLog, "read", "log read (decode_event)"), \
                timed(spent, MerkleLog, "append", "tree append"), \
                timed(spent, Projections, "write_index", "index write (one WriteBatch per flush)"), \
                timed(spent, Projections, "apply_checkpoint", "checkpoint checks (root, SM2 note)"), \
                timed(spent, Projections, "close", "closing the projections (memtable flush)"):
            started = time.perf_counter()
            report = rebuild_ledger(data_dir, "bench", log, progress=False)
            total = time.perf_counter() - started
    finally:
        log.close()
    if not report.ok:
        raise RuntimeError(f"the rebuild failed: {report.mismatch}")
    # RocksDBLog.read is a generator: its wrapper times only its creation. Time a plain pass.
    log = RocksDBLog(os.path.join(data_dir, "log"))
    try:
        started = time.perf_counter()
        sum(1 for _ in log.read("bench", 0))
        spent["log read (decode_event)"] = time.perf_counter() - started
    finally:
        log.close()
    return {"events": report.events, "seconds": total, "stages": dict(spent)}


def index_keys(n: int) -> list[tuple[bytes, bytes]]:
    """Keys shaped as the index's: evidence id, content hash + seq, business id + seq."""
    keys = []
    for i in range(n):
        seq = i.to_bytes(8, "big")
        keys.append((b"e" + f"ev-{i:012d}".encode(), seq))
        keys.append((b"c" + os.urandom(32) + seq, b""))
        keys.append((b"b" + f"acct/{i // 5}".encode() + b"\0" + seq, b""))
    return keys


def index_load(workdir: str, n: int) -> dict:
    from rocksdict import Options, Rdict, SstFileWriter, WriteBatch

    keys = index_keys(n)
    path = os.path.join(workdir, "index")
    shutil.rmtree(path, ignore_errors=True)
    db = Rdict(path, Options(raw_mode=True))
    started = time.perf_counter()
    for at in range(0, len(keys), 3 * FLUSH):
        batch = WriteBatch(raw_mode=True)
        for key, value in keys[at:at + 3 * FLUSH]:
            batch.put(key, value)
        db.write(batch)
    write_batch = time.perf_counter() - started
    db.close()
    shutil.rmtree(path, ignore_errors=True)

    db = Rdict(path, Options(raw_mode=True))
    started = time.perf_counter()
    ordered = sorted(keys)
    sort = time.perf_counter() - started
    sst = os.path.join(workdir, "index.sst")
    writer = SstFileWriter(options=Options(raw_mode=True))
    writer.open(sst)
    for key, value in ordered:
        writer[key] = value
    writer.finish()
    db.ingest_external_file([sst])
    bulk = time.perf_counter() - started
    db.close()
    return {"keys": len(keys), "write_batch_s": write_batch, "sort_s": sort, "sst_s": bulk}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=300_000, help="records in the ledger (default 300,000)")
    parser.add_argument("--workdir", default=tempfile.gettempdir(), help="where the data folders go (a real disk)")
    args = parser.parse_args(argv)
    workdir = tempfile.mkdtemp(dir=args.workdir, prefix="rebuild-stages-")
    try:
        data_dir = os.path.join(workdir, "data")
        print(f"building a {args.records:,}-record ledger through Ledger.submit ...", flush=True)
        build(data_dir, args.records)
        rb = rebuild_stages(data_dir, args.records)
        per = 1e6 / args.records
        print(f"\n1. rebuild: {rb['events']:,} events in {rb['seconds']:.2f} s = {rb['events'] / rb['seconds']:,.0f} "
              f"events/s\n\n| stage | s | µs/record | share |\n| --- | ---: | ---: | ---: |")
        for label, seconds in rb["stages"].items():
            print(f"| {label} | {seconds:.2f} | {seconds * per:.2f} | {seconds / rb['seconds']:.0%} |")
        rest = rb["seconds"] - sum(rb["stages"].values())
        print(f"| the rest: the sequencer's per-record Python (leaf parse, bookkeeping) | {rest:.2f} | "
              f"{rest * per:.2f} | {rest / rb['seconds']:.0%} |")
        idx = index_load(workdir, args.records)
        print(f"\n2. {idx['keys']:,} index keys: WriteBatch {idx['write_batch_s']:.2f} s; sort {idx['sort_s']:.2f} s + "
              f"SstFileWriter + ingest = {idx['sst_s']:.2f} s in all; the bulk load takes "
              f"{idx['sst_s'] / idx['write_batch_s']:.2f}x the write batches' time")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
