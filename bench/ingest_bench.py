"""`make bench-ingest`: the durable write path, each figure next to the raw storage engine
measured in the same run, on the same disk. Writes bench/results/ingest-<UTC time>.{json,md}.

    python -m bench.ingest_bench [--quick] [--rebuild-records N] [--build-budget SECONDS]
                                 [--workdir DIR] [--out DIR]

The full run (10M-record rebuild) takes about 12-18 minutes on 2 cores; --quick about 35 s.

1. reference: a Python loop of rocksdict WriteBatch.put + write(sync=True), the log's keys and
   the log's exact event bytes, in groups of G events: what this engine does for a Python
   client on this disk. Also unsynced, so the fsync's share is measured, not guessed.
2. durable ingest: Ledger.submit from T threads in submissions of G records, sequencer
   running (default settings); and RocksDBLog.append of prepared events alone.
3. latency at about half the peak of 2, open loop: receipt latency and record-to-checkpoint
   latency (default batching: 65536 records or 1 s).
4. rebuild: build an N-record ledger through Ledger.submit, then `ingest.rebuild` it.

Data lives in a fresh folder under --workdir (default: the system temp folder), which must be
a real disk: the filesystem is printed, and tmpfs is flagged because its fsync costs nothing.
Nothing is asserted: the issue's goals are printed next to the figures, met or not.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench.machine import machine_info, machine_line, write_and_print_result
from bench.stages import measure_stages, measure_write_overlap, overlap_markdown, stages_markdown
from ingest import events as ev
from ingest.leaf import encode_leaf, utc_now_text
from ingest.ledger import LedgerService, Receipt, SequencerSettings
from ingest.log import NewEvent
from ingest.log_rocksdb import RocksDBLog, _event_key, _stream_prefix, encode_event
from ingest.rebuild import rebuild_ledger
from ingest.records import validate_record

RESULTS = Path(__file__).parent / "results"

GOAL_DURABLE = 300_000  # records/s, durable and acknowledged
GOAL_RATIO = 0.3  # of the raw engine's synced rate at the same G
GOAL_REBUILD = 1_000_000  # events/s
SUSTAINED_RECORDS = 10_000_000  # the sustained run whose memory must stay bounded
BOUNDED_GROWTH = 0.10  # of resident memory at mid-run: the most the second half may add
STAGES_GROUP = 1000
GROUPS = (100, 1000, 5000)
THREADS = (1, 4)
STREAM = "bench"


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


# -- records and events -----------------------------------------------------------------------

def make_records(start: int, n: int) -> list[dict]:
    """n records of the documented shape (~200 bytes of JSON each); business flows of 4."""
    hexes = os.urandom(32 * n).hex()
    return [{"content_hash": hexes[64 * j:64 * j + 64], "business_type": "account-opening",
             "occurred_at": "2026-11-26T09:00:00+08:00", "evidence_id": f"ev-{i}",
             "business_id": f"bf-{i // 4}", "attributes": {"branch": "sh-001", "channel": "app"}}
            for j, i in enumerate(range(start, start + n))]


class RecordPool:
    """Records made once, before any clock starts, and reused (every scenario gets a fresh
    ledger, so evidence ids never repeat within one)."""

    def __init__(self):
        self.records: list[dict] = []

    def take(self, n: int) -> list[dict]:
        if len(self.records) < n:
            self.records += make_records(len(self.records), n - len(self.records))
        return self.records[:n]


def prepared_events(records: list[dict]) -> list[NewEvent]:
    """EvidenceRecorded events as the ledger writes them: canonical leaf + fingerprint."""
    received_at = utc_now_text()
    return [ev.evidence_recorded(encode_leaf(STREAM, seq, received_at, validate_record(r)),
                                 os.urandom(16).hex().encode())
            for seq, r in enumerate(records)]


# -- measuring helpers --------------------------------------------------------------------------

class TimedWrites:
    """Stands in for RocksDBLog's database handle and times its (synced) writes; everything
    else is passed through. Only the log's single group-commit leader calls write()."""

    def __init__(self, db):
        self._db = db
        self.seconds = 0.0
        self.calls = 0

    def write(self, batch, options=None, **kwargs):
        t0 = time.perf_counter()
        try:
            return self._db.write(batch, options, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t0
            self.calls += 1

    def __getattr__(self, name):
        return getattr(self._db, name)


def time_log_writes(log: RocksDBLog) -> TimedWrites | None:
    try:
        log._db = TimedWrites(log._db)  # bench-only instrumentation of a private handle
        return log._db
    except AttributeError:
        return None


def _proc_stat() -> list[int]:
    """System-wide CPU ticks: user nice system idle iowait irq softirq steal (zeros if absent)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:9]
        return [int(x) for x in fields] + [0] * (8 - len(fields))
    except OSError:
        return [0] * 8


class CpuClock:
    """Wall time, this process's CPU time (all threads, RocksDB's included), and the machine's
    iowait and steal over the same window, all in cores."""

    def __init__(self):
        self.stat0 = _proc_stat()
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()

    def stop(self) -> dict:
        wall = time.perf_counter() - self.wall0
        cpu = time.process_time() - self.cpu0
        d = [b - a for a, b in zip(self.stat0, _proc_stat())]
        total = sum(d) or 1
        ncpu = os.cpu_count() or 1
        return {"seconds": wall, "cpu_cores": cpu / wall if wall > 0 else 0.0,
                "busy_cores": (total - d[3] - d[4]) / total * ncpu,
                "iowait_cores": d[4] / total * ncpu, "steal_cores": d[7] / total * ncpu}


def bound_of(m: dict, cores: int, fsync_share: float | None = None, write_share: float | None = None,
             single: bool = False) -> str:
    """What limited a figure, read off the measured shares (which are stored beside it, so a
    reader can disagree)."""
    cpu = m["cpu_cores"]
    if fsync_share is not None and fsync_share >= 0.5:
        return (f"fsync (~{fsync_share:.0%} of the time in fsync"
                + (f", by the reference's per-group cost; {write_share:.0%} inside the synced write"
                   if write_share is not None else "") + ")")
    if write_share is not None and write_share >= 0.6:
        return (f"the log's synced write ({write_share:.0%} of the time inside RocksDB's write + fsync; "
                f"fsync ~{fsync_share or 0:.0%} by the reference's cost; process at {cpu:.2f} cores)")
    if cpu >= 0.85 * cores:
        return f"CPU (all {cores} cores busy: {cpu:.2f})"
    if cpu >= 0.75:
        if single:
            return f"CPU, one thread ({cpu:.2f} cores)"
        return f"CPU/GIL (process at {cpu:.2f} of {cores} cores: its Python threads take turns on the GIL)"
    parts = [f"process at {cpu:.2f} of {cores} cores"]
    if write_share is not None:
        parts.append(f"{write_share:.0%} of the time inside the log's synced write")
    if fsync_share is not None:
        parts.append(f"fsync ~{fsync_share:.0%}")
    if m.get("iowait_cores", 0) >= 0.05:
        parts.append(f"iowait {m['iowait_cores']:.2f} cores")
    if m.get("steal_cores", 0) >= 0.05:
        parts.append(f"steal {m['steal_cores']:.2f} cores")
    if single:
        return f"one Python thread, not saturated ({'; '.join(parts)}): the rest is waiting inside RocksDB or on I/O"
    return (f"serial hand-offs, nothing saturated ({'; '.join(parts)}): work alternates between Python "
            "and RocksDB's write, and threads wait to be woken and to take the GIL")


def percentiles(values_ms, records_each: int = 1) -> dict:
    """p50/p99/max; `n` counts records (each value standing for `records_each` of them)."""
    a = np.asarray(values_ms, dtype=np.float64)
    if a.size == 0:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None, "n": 0}
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
            "max_ms": float(a.max()), "n": int(a.size) * records_each}


def filesystem_of(path: str) -> dict:
    """The mount holding `path` (longest matching mount point in /proc/mounts)."""
    best = {"mount": "?", "device": "?", "fstype": "?"}
    real = os.path.realpath(path)
    try:
        with open("/proc/mounts") as f:
            for line in f:
                device, mount, fstype = line.split()[:3]
                if (real == mount or real.startswith(mount.rstrip("/") + "/")) and len(mount) >= len(best["mount"].replace("?", "")):
                    best = {"mount": mount, "device": device, "fstype": fstype}
    except OSError:
        pass
    return best


def make_workdir(root: str, name: str, result: dict) -> str:
    """A fresh data folder under `root` for one benchmark, its filesystem noted in `result` and
    printed, with a warning where fsync may cost nothing."""
    workdir = tempfile.mkdtemp(dir=root, prefix=f"evledger-{name}-bench-")
    fs = filesystem_of(workdir)
    result.update(workdir=workdir, filesystem=fs)
    print(f"data folder: {workdir} on {fs['device']} ({fs['fstype']}, mounted at {fs['mount']})")
    if fs["fstype"] in ("tmpfs", "ramfs", "overlay"):
        print(f"  WARNING: {fs['fstype']} is not a plain disk: fsync may cost nothing here, so these are not "
              "durable-disk figures; pass --workdir on a real disk")
    return workdir


def warm_up_ledger(data_dir: str, records: list[dict]) -> None:
    """Write `records` through a throwaway ledger until they are checkpointed, so that no clock
    pays for compiling the numba kernels or for the first use of RocksDB and the ledger code."""
    with LedgerService(data_dir) as service:
        ledger = service.create_ledger("warm")
        ledger.submit(records)
        ledger.wait_for_checkpoint(len(records), timeout=10)


def dir_bytes(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


# -- 1. the raw engine ---------------------------------------------------------------------------

def open_raw(path: str):
    from rocksdict import Options, Rdict

    opts = Options(raw_mode=True)  # as RocksDBLog opens its database
    opts.create_if_missing(True)
    opts.set_max_background_jobs(2)
    return Rdict(path, opts)


def raw_rate(workdir: str, values: list[bytes], group: int, sync: bool, seconds: float) -> dict:
    from rocksdict import WriteBatch, WriteOptions

    path = tempfile.mkdtemp(dir=workdir, prefix="raw-")
    db = open_raw(path)
    wo = WriteOptions()
    wo.sync = sync
    prefix = _stream_prefix(STREAM)
    nvals = len(values)
    position = groups = 0
    in_write = 0.0
    clock = CpuClock()
    deadline = time.perf_counter() + seconds
    while groups < 3 or time.perf_counter() < deadline:
        batch = WriteBatch(raw_mode=True)
        for p in range(position, position + group):
            batch.put(_event_key(prefix, p), values[p % nvals])
        t0 = time.perf_counter()
        db.write(batch, wo)
        in_write += time.perf_counter() - t0
        position += group
        groups += 1
    m = clock.stop()
    wall = m["seconds"]
    db.close()
    shutil.rmtree(path, ignore_errors=True)
    return {"events_per_s": position / wall, "groups": groups, **m,
            "write_share": in_write / wall, "ms_per_group": in_write / groups * 1000}


def bench_reference(workdir: str, values: list[bytes], group: int, seconds: float) -> dict:
    """Synced and unsynced rates at one G; `close_reference` measures synced again afterwards,
    so the figures measured in between are compared with the mean of a before and an after
    (the disk's fsync latency drifts on a shared machine: the spread says by how much)."""
    synced = raw_rate(workdir, values, group, True, seconds)
    unsynced = raw_rate(workdir, values, group, False, seconds)
    return {"group": group, "synced_before": synced, "unsynced_events_per_s": unsynced["events_per_s"],
            "cpu_cores": synced["cpu_cores"], "iowait_cores": synced["iowait_cores"],
            "steal_cores": synced["steal_cores"], "synced_ms_per_group": synced["ms_per_group"]}


def close_reference(row: dict, workdir: str, values: list[bytes], seconds: float, cores: int) -> dict:
    g = row["group"]
    before = row.pop("synced_before")["events_per_s"]
    after = raw_rate(workdir, values, g, True, seconds)["events_per_s"]
    synced = (before + after) / 2
    unsynced = row["unsynced_events_per_s"]
    # The fsync's cost per group: the synced group's time minus the same group unsynced.
    fsync_ms = max(0.0, 1000 * g / synced - 1000 * g / unsynced)
    fsync_share = max(0.0, 1 - synced / unsynced)
    row.update({"synced_events_per_s": synced, "synced_events_per_s_before": before,
                "synced_events_per_s_after": after, "spread": abs(after - before) / synced,
                "fsync_ms_per_group": fsync_ms, "fsync_share": fsync_share})
    row["bound"] = (bound_of(row, cores, fsync_share) if fsync_share >= 0.5 else
                    f"CPU, one thread (Python put loop + RocksDB memtable/WAL; fsync ~{fsync_share:.0%})")
    return row


def finish(row: dict, fsync_ms: float, cores: int) -> dict:
    """Estimate the fsync's share of a figure from its group commits and the reference's
    per-group fsync cost, and name what bounded it."""
    row["fsync_share_est"] = min(1.0, row["groups"] * fsync_ms / 1000 / row["seconds"])
    row["bound"] = bound_of(row, cores, row["fsync_share_est"], row["write_share"])
    return row


# -- 2. the log alone, and durable ingest ------------------------------------------------------------

def bench_log_layer(workdir: str, events: list[NewEvent], threads: int, group: int, seconds: float) -> dict:
    """RocksDBLog.append of prepared events; with several threads each appends to its own
    stream (one expected version per stream), so the log's group commit merges them."""
    path = tempfile.mkdtemp(dir=workdir, prefix="log-")
    log = RocksDBLog(path)
    timed = time_log_writes(log)
    batches = [events[i:i + group] for i in range(0, len(events) - group + 1, group)]
    counts = [0] * threads
    start = threading.Barrier(threads + 1)

    def worker(t: int):
        stream, version, k = f"{STREAM}-{t}", 0, t
        start.wait()
        while time.perf_counter() < deadline or k < threads * 3:
            version = log.append(stream, batches[k % len(batches)], version)
            counts[t] += group
            k += threads

    workers = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    deadline = time.perf_counter() + seconds
    g0 = log.groups_written
    start.wait()
    clock = CpuClock()
    for w in workers:
        w.join()
    m = clock.stop()
    wall = m["seconds"]
    groups = log.groups_written - g0
    log.close()
    shutil.rmtree(path, ignore_errors=True)
    return {"threads": threads, "group": group, "events_per_s": sum(counts) / wall, **m, "groups": groups,
            "fsyncs_per_s": groups / wall, "events_per_fsync": sum(counts) / max(groups, 1),
            "write_share": timed.seconds / wall if timed else None}


def bench_durable(workdir: str, pool: RecordPool, threads: int, group: int, seconds: float,
                  pool_records: int) -> dict:
    data_dir = tempfile.mkdtemp(dir=workdir, prefix="durable-")
    service = LedgerService(data_dir, settings=SequencerSettings())
    ledger = service.create_ledger("bench")
    timed = time_log_writes(service.log)
    records = pool.take(max(pool_records, group * threads * 3))
    batches = [records[i:i + group] for i in range(0, len(records) - group + 1, group)]
    lock = threading.Lock()
    next_batch = [0]
    acked = [0] * threads
    errors = [0] * threads
    start = threading.Barrier(threads + 1)

    def worker(t: int):
        start.wait()
        while True:
            with lock:
                k = next_batch[0]
                if k >= len(batches) or (time.perf_counter() >= deadline and k >= threads * 3):
                    return
                next_batch[0] = k + 1
            for r in ledger.submit(batches[k]):
                if isinstance(r, Receipt):
                    acked[t] += 1
                else:
                    errors[t] += 1

    workers = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    deadline = time.perf_counter() + seconds
    g0 = service.log.groups_written
    start.wait()
    clock = CpuClock()
    for w in workers:
        w.join()
    m = clock.stop()
    wall = m["seconds"]
    groups = service.log.groups_written - g0
    total = sum(acked)
    behind = total - ledger.projected_count
    t0 = time.perf_counter()
    caught_up = ledger.wait_for_checkpoint(total, timeout=120) is not None
    catch_up = time.perf_counter() - t0
    service.close()
    shutil.rmtree(data_dir, ignore_errors=True)
    return {"threads": threads, "group": group, "records_per_s": total / wall, "records": total,
            "errors": sum(errors), **m, "groups": groups, "pool_exhausted": next_batch[0] >= len(batches),
            "fsyncs_per_s": groups / wall, "records_per_fsync": total / max(groups, 1),
            "write_share": timed.seconds / wall if timed else None, "sequencer_behind_at_end": behind,
            "sealed_after_s": catch_up if caught_up else None}


# -- 3. latency -------------------------------------------------------------------------------------

def bench_latency(workdir: str, pool: RecordPool, target: float, seconds: float, pacers: int = 4,
                  batch: int = 50) -> dict:
    data_dir = tempfile.mkdtemp(dir=workdir, prefix="latency-")
    service = LedgerService(data_dir, settings=SequencerSettings())
    ledger = service.create_ledger("bench")
    sealed: list[tuple[int, float]] = []
    ledger.on_sealed(lambda payload: sealed.append((payload["size"], time.monotonic())))
    interval = batch * pacers / target  # each pacer's period
    n_batches = int(target * seconds / batch) + pacers
    records = pool.take(n_batches * batch)
    batches = [records[i * batch:(i + 1) * batch] for i in range(n_batches)]
    # per batch: scheduled time, call time, return time, first seq, last seq
    rows: list[list[tuple[float, float, float, int, int]]] = [[] for _ in range(pacers)]
    errors = [0]
    start = threading.Barrier(pacers + 1)

    def pacer(p: int):
        start.wait()
        k = 0
        while True:
            i = k * pacers + p
            scheduled = t0 + p * interval / pacers + k * interval
            if i >= n_batches or scheduled >= t0 + seconds:
                return
            now = time.monotonic()
            if scheduled > now:
                time.sleep(scheduled - now)
            called = time.monotonic()
            results = ledger.submit(batches[i])
            returned = time.monotonic()
            receipts = [r for r in results if isinstance(r, Receipt)]
            errors[0] += len(results) - len(receipts)
            if receipts:
                rows[p].append((scheduled, called, returned, receipts[0].seq, receipts[-1].seq))
            k += 1

    workers = [threading.Thread(target=pacer, args=(p,)) for p in range(pacers)]
    for w in workers:
        w.start()
    t0 = time.monotonic() + 0.05
    start.wait()
    clock = CpuClock()
    for w in workers:
        w.join()
    m = clock.stop()
    done = [r for rs in rows for r in rs]
    total = sum(last - first + 1 for *_, first, last in done)
    last_return = max(r[2] for r in done)
    covered = ledger.wait_for_checkpoint(ledger.record_count, timeout=30) is not None
    service.close()
    shutil.rmtree(data_dir, ignore_errors=True)

    # Every record of a batch shares the batch's call and return, so per-batch percentiles are
    # per-record ones (batches are all the same size).
    submit_ms = [(r[2] - r[1]) * 1000 for r in done]
    from_schedule_ms = [(r[2] - r[0]) * 1000 for r in done]
    sizes = np.array([s for s, _ in sealed], dtype=np.int64)
    times = np.array([t for _, t in sealed], dtype=np.float64)
    order = np.argsort(sizes, kind="stable")
    sizes, times = sizes[order], times[order]
    to_ckpt = []
    for _, _, returned, first, last in done:
        seqs = np.arange(first, last + 1, dtype=np.int64)
        idx = np.searchsorted(sizes, seqs, side="right")  # first checkpoint with size > seq
        ok = idx < len(sizes)
        to_ckpt.append((times[idx[ok]] - returned) * 1000)
    to_ckpt_ms = np.concatenate(to_ckpt) if to_ckpt else np.array([])
    rate = total / (last_return - t0)
    return {"target_records_per_s": target, "achieved_records_per_s": rate, "records": total,
            "errors": errors[0], "pacers": pacers, "batch": batch, "seconds": seconds,
            "submits": len(done), **m,
            "receipt": percentiles(submit_ms, batch), "receipt_from_schedule": percentiles(from_schedule_ms, batch),
            "to_checkpoint": percentiles(to_ckpt_ms), "checkpoints": len(sealed),
            "records_without_checkpoint": total - int(to_ckpt_ms.size), "all_covered": covered,
            "batch_max_items": SequencerSettings().batch_max_items,
            "batch_max_delay_s": SequencerSettings().batch_max_delay}


def current_rss_mib() -> float:
    """Resident memory of this process now (ru_maxrss is only the peak)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def memory_growth(samples: list[tuple[int, float]]) -> dict:
    """Resident memory while a ledger grows: bounded when the second half of the run added
    less than BOUNDED_GROWTH of what was resident at its middle (caches and memtables fill
    early and then stay; a leak keeps growing with the records)."""
    records, rss = samples[-1]
    half = min(samples, key=lambda s: abs(s[0] - records / 2))
    growth = rss - half[1]
    per_million = growth / max(records - half[0], 1) * 1e6
    return {"samples": samples, "final_mib": rss, "half_records": half[0], "half_mib": half[1],
            "second_half_growth_mib": growth, "second_half_mib_per_million": per_million,
            "bounded": records >= 2 * 100_000 and growth <= BOUNDED_GROWTH * half[1]}


# -- 4. rebuild ------------------------------------------------------------------------------------------

def bench_rebuild(workdir: str, n: int, budget: float, cores: int, chunk: int = 10_000, threads: int = 2) -> dict:
    data_dir = tempfile.mkdtemp(dir=workdir, prefix="rebuild-")
    free = shutil.disk_usage(data_dir).free
    worst = 2_000  # bytes per record on disk, generous (log + tree + indexes)
    wanted = n
    if n * worst > free * 0.8:
        n = max(chunk, int(free * 0.8 / worst) // chunk * chunk)
        print(f"  only {free / 2**30:.1f} GiB free under {workdir}: building {n:,} records, not {wanted:,}")
    service = LedgerService(data_dir, settings=SequencerSettings())
    ledger = service.create_ledger("bench")
    lock = threading.Lock()
    next_start = [0]
    deadline = time.perf_counter() + budget
    bar = tqdm(total=n, unit="rec", unit_scale=True, desc="  building ledger (Ledger.submit)")
    rss_every = max(chunk, n // 20 // chunk * chunk)
    rss_samples = [(0, current_rss_mib())]  # (records built, resident MiB): is memory bounded?

    def worker():
        while True:
            with lock:
                start = next_start[0]
                if start >= n or time.perf_counter() >= deadline:
                    return
                count = min(chunk, n - start)
                next_start[0] = start + count
            results = ledger.submit(make_records(start, count))
            bad = sum(not isinstance(r, Receipt) for r in results)
            if bad:
                raise RuntimeError(f"{bad} records of a build batch were rejected")
            with lock:
                bar.update(count)
                done = bar.n
                if done // rss_every > rss_samples[-1][0] // rss_every:
                    rss_samples.append((done, current_rss_mib()))

    clock = CpuClock()
    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    build = clock.stop()
    build_wall = build["seconds"]
    bar.close()
    built = ledger.record_count
    rss_samples.append((built, current_rss_mib()))
    t0 = time.perf_counter()
    sealed = ledger.wait_for_checkpoint(built, timeout=max(60.0, budget / 2)) is not None
    catch_up = time.perf_counter() - t0
    service.close()
    disk = dir_bytes(data_dir)

    log = RocksDBLog(os.path.join(data_dir, "log"))
    clock = CpuClock()
    report = rebuild_ledger(data_dir, "bench", log, progress=True)
    m = clock.stop()
    log.close()
    shutil.rmtree(data_dir, ignore_errors=True)
    return {"records_wanted": wanted, "records": built, "budget_s": budget, "budget_hit": built < wanted,
            "build_records_per_s": built / build_wall, "build_seconds": build_wall,
            "build_cpu_cores": build["cpu_cores"], "build_iowait_cores": build["iowait_cores"],
            "build_threads": threads, "build_chunk": chunk, "sealed_after_s": catch_up if sealed else None,
            "disk_bytes": disk, "disk_bytes_per_record": disk / max(built, 1),
            "build_rss": memory_growth(rss_samples),
            "events": report.events, "rebuild_seconds": report.seconds,
            "events_per_s": report.events_per_second, "ok": report.ok,
            "checkpoints_verified": report.checkpoints_verified, "rebuild_cpu_cores": m["cpu_cores"],
            "rebuild_iowait_cores": m["iowait_cores"], "rebuild_steal_cores": m["steal_cores"],
            "bound": bound_of(m, cores, single=True) + "; the log was read from a warm page cache (written just before)"}


# -- report ----------------------------------------------------------------------------------------------

def markdown(result: dict) -> str:
    fs = result["filesystem"]
    lines = ["# Ingest benchmark", "", f"Machine: {machine_line(result['machine'])}", "",
             f"Data folder: `{result['workdir']}` on {fs['device']} ({fs['fstype']}, mounted at {fs['mount']}). "
             f"Event size in the log: {result['event_bytes']} bytes (leaf {result['leaf_bytes']}).", "",
             "## 1. Reference: raw RocksDB (rocksdict WriteBatch, sync=True), one thread, events/s", "",
             "Measured before and after the figures of 2 at the same G; they are compared with the mean.", "",
             "| G (events per write) | synced (mean) | before | after | unsynced | fsync ms/group | bound |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in result["reference"]:
        lines.append(f"| {r['group']:,} | {r['synced_events_per_s']:,.0f} | {r['synced_events_per_s_before']:,.0f} | "
                     f"{r['synced_events_per_s_after']:,.0f} | {r['unsynced_events_per_s']:,.0f} | "
                     f"{r['fsync_ms_per_group']:.2f} | {r['bound']} |")
    lines += ["", "## 2a. The log alone: RocksDBLog.append of prepared events, events/s", "",
              "| threads | G | events/s | vs reference | fsyncs/s | events/fsync | CPU cores | bound |",
              "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in result["log_layer"]:
        lines.append(f"| {r['threads']} | {r['group']:,} | {r['events_per_s']:,.0f} | {r['ratio_to_reference']:.2f} | "
                     f"{r['fsyncs_per_s']:,.0f} | {r['events_per_fsync']:,.0f} | {r['cpu_cores']:.2f} | {r['bound']} |")
    lines += ["", "Several threads append to one stream each (an append names its stream's version).", "",
              f"## 2b. Durable ingest: Ledger.submit, sequencer running, records/s "
              f"(goal >= {GOAL_DURABLE:,} and >= {GOAL_RATIO} of the reference)", "",
              "| threads | G | records/s | vs reference | fsyncs/s | records/fsync | CPU cores | sequencer behind | goal | bound |",
              "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for r in result["durable"]:
        goal = f"{met(r['records_per_s'] >= GOAL_DURABLE)} / {met(r['ratio_to_reference'] >= GOAL_RATIO)}"
        lines.append(f"| {r['threads']} | {r['group']:,} | {r['records_per_s']:,.0f} | {r['ratio_to_reference']:.3f} | "
                     f"{r['fsyncs_per_s']:,.0f} | {r['records_per_fsync']:,.0f} | {r['cpu_cores']:.2f} | "
                     f"{r['sequencer_behind_at_end']:,} | {goal} | {r['bound']} |")
    lat = result["latency"]
    if "stages" in result:
        one = [r for r in result["durable"] if r["threads"] == 1 and r["group"] == result["stages"]["group"]]
        lines += [""] + stages_markdown(result["stages"], 1e6 / one[0]["records_per_s"] if one else None)
        lines += overlap_markdown(result["write_overlap"])
    lines += ["", "fsyncs counts the log's group commits (checkpoints included); 'sequencer behind' is how "
              "many acknowledged records were not yet in the tree when the submitters stopped.", "",
              f"## 3. Latency at {lat['target_records_per_s']:,.0f} records/s target (half the peak of 2b), "
              f"achieved {lat['achieved_records_per_s']:,.0f}", "",
              f"{lat['pacers']} open-loop pacers, {lat['batch']} records per submit, {lat['seconds']:.0f} s; "
              f"sequencer defaults ({lat['batch_max_items']:,} records / {lat['batch_max_delay_s']} s).", "",
              "| latency | p50 ms | p99 ms | max ms | records |", "| --- | ---: | ---: | ---: | ---: |"]
    for key, title in (("receipt", "receipt (submit call to return)"),
                       ("receipt_from_schedule", "receipt from the scheduled send time"),
                       ("to_checkpoint", "receipt to logged checkpoint")):
        p = lat[key]
        if p["n"]:
            lines.append(f"| {title} | {p['p50_ms']:.2f} | {p['p99_ms']:.2f} | {p['max_ms']:.2f} | {p['n']:,} |")
    lines += ["", f"Bound: {lat['bound_receipt']}; checkpoint: {lat['bound_checkpoint']}.", ""]
    rb = result["rebuild"]
    lines += [f"## 4. Rebuild of a {rb['records']:,}-record ledger (goal >= {GOAL_REBUILD:,} events/s)", "",
              f"Built through Ledger.submit ({rb['build_threads']} threads, {rb['build_chunk']:,} records per submit, "
              f"records generated in the same process) at {rb['build_records_per_s']:,.0f} records/s in "
              f"{rb['build_seconds']:.0f} s" + (f" (stopped by the {rb['budget_s']:.0f} s budget; "
                                               f"{rb['records_wanted']:,} were asked for)" if rb["budget_hit"] else "")
              + f"; {rb['disk_bytes_per_record']:,.0f} bytes on disk per record.", "",
              memory_line(rb), "",
              f"Rebuild: {rb['events']:,} events in {rb['rebuild_seconds']:.1f} s = **{rb['events_per_s']:,.0f} events/s** "
              f"({met(rb['events_per_s'] >= GOAL_REBUILD)}); {rb['checkpoints_verified']} checkpoints "
              f"reproduced, ok={rb['ok']}. Bound: {rb['bound']}.", ""]
    g, run = result["goals"], result["run"]
    lines += ["## Goals (issue)", "",
              f"- durable >= {GOAL_DURABLE:,} records/s: {met(g['durable_records_per_s']['met'])} "
              f"(best {g['durable_records_per_s']['best']:,.0f})",
              f"- durable >= {GOAL_RATIO} of the raw engine at the same G: {met(g['ratio_to_reference']['met'])} "
              f"(best {g['ratio_to_reference']['best']:.3f})",
              f"- rebuild >= {GOAL_REBUILD:,} events/s: {met(g['rebuild_events_per_s']['met'])} "
              f"({g['rebuild_events_per_s']['measured']:,.0f})",
              f"- memory bounded over a sustained run of {SUSTAINED_RECORDS:,} records: "
              f"{met(g['records_with_bounded_memory']['met'])} ({rb['records']:,} records, "
              f"{g['records_with_bounded_memory']['growth_mib']:+,.0f} MiB over the second half)", "",
              f"Whole run: {result['total_seconds']:.0f} s; process CPU {run['cpu_cores']:.2f} cores, machine iowait "
              f"{run['iowait_cores']:.2f} cores, steal {run['steal_cores']:.2f} cores; peak RSS of this process "
              f"(records, ledgers and the rebuild together) {result.get('peak_rss_mib', 0):,.0f} MiB.", ""]
    return "\n".join(lines)


@dataclass(frozen=True)
class RunSizes:
    """How long each figure is measured and how large the ledgers are, for --quick or a full run."""
    seconds: float  # per reference and log-layer figure
    durable_seconds: float
    latency_seconds: float
    pool_records: int
    stage_records: int
    rebuild_records: int
    build_budget: float

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "RunSizes":
        quick = args.quick
        return cls(seconds=0.3 if quick else 3.0, durable_seconds=0.6 if quick else 5.0,
                   latency_seconds=2.0 if quick else 15.0, pool_records=30_000 if quick else 400_000,
                   stage_records=20_000 if quick else 200_000,
                   rebuild_records=args.rebuild_records or (200_000 if quick else 10_000_000),
                   build_budget=args.build_budget or (60.0 if quick else 660.0))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke check (under a minute)")
    parser.add_argument("--rebuild-records", type=int, default=None,
                        help="records in the rebuilt ledger (default 10,000,000; --quick 200,000)")
    parser.add_argument("--build-budget", type=float, default=None,
                        help="seconds allowed for building that ledger; it stops early and says so "
                             "(default 660; --quick 60)")
    parser.add_argument("--workdir", default=tempfile.gettempdir(), help="where data folders go (a real disk)")
    parser.add_argument("--out", default=str(RESULTS), help="results folder")
    return parser.parse_args(argv)


def measure_event_sizes(pool: RecordPool, result: dict) -> tuple[list[NewEvent], list[bytes]]:
    """Prepared events and their bytes in the log, for the reference and the log-layer figures;
    their mean sizes go into `result`."""
    events = prepared_events(pool.take(20_000))
    values = [encode_event(e) for e in events]
    result["event_bytes"] = int(np.mean([len(v) for v in values]))
    result["leaf_bytes"] = int(np.mean([len(e.data) for e in events]))
    print(f"events: {result['event_bytes']} bytes in the log each (leaf {result['leaf_bytes']} bytes)")
    return events, values


def reference_line(ref: dict) -> str:
    return (f"  1.  reference   G={ref['group']:>5}: {ref['synced_events_per_s']:>11,.0f} events/s synced (before "
            f"{ref['synced_events_per_s_before']:,.0f}, after {ref['synced_events_per_s_after']:,.0f}"
            + (": NOISY, disk latency drifted" if ref["spread"] > 0.2 else "")
            + f"; unsynced {ref['unsynced_events_per_s']:,.0f}; fsync {ref['fsync_ms_per_group']:.2f} ms/group)"
            f" - bound: {ref['bound']}")


def log_layer_line(r: dict) -> str:
    return (f"  2a. log     T={r['threads']} G={r['group']:>5}: {r['events_per_s']:>11,.0f} events/s = "
            f"{r['ratio_to_reference']:.2f} of reference; {r['fsyncs_per_s']:,.0f} fsyncs/s, "
            f"{r['events_per_fsync']:,.0f} events/fsync; CPU {r['cpu_cores']:.2f} cores - bound: {r['bound']}")


def durable_line(r: dict) -> str:
    return (f"  2b. durable T={r['threads']} G={r['group']:>5}: {r['records_per_s']:>11,.0f} records/s "
            f"[goal {GOAL_DURABLE:,}: {met(r['records_per_s'] >= GOAL_DURABLE)}] = "
            f"{r['ratio_to_reference']:.3f} of reference [goal {GOAL_RATIO}: "
            f"{met(r['ratio_to_reference'] >= GOAL_RATIO)}]; {r['fsyncs_per_s']:,.0f} fsyncs/s, "
            f"{r['records_per_fsync']:,.0f} records/fsync; CPU {r['cpu_cores']:.2f} cores; "
            f"sequencer {r['sequencer_behind_at_end']:,} behind, sealed "
            + (f"{r['sealed_after_s']:.1f} s after" if r["sealed_after_s"] is not None else "NOT within 120 s")
            + (" (pool used up)" if r["pool_exhausted"] else "")
            + f" - bound: {r['bound']}")


def measure_groups(workdir: str, pool: RecordPool, events: list[NewEvent], values: list[bytes], sizes: RunSizes,
                   cores: int) -> dict:
    """Sections 1, 2a and 2b at every G: {"reference", "log_layer", "durable"} rows. The
    reference is measured before and after the others, so they are compared with its mean."""
    out = {"reference": [], "log_layer": [], "durable": []}
    print("Per G: 1. reference (raw RocksDB WriteBatch, sync=True, one thread; measured before and after "
          "the others, mean used), 2a. the log alone (RocksDBLog.append of prepared events), 2b. durable "
          f"ingest (Ledger.submit, sequencer running; goal >= {GOAL_DURABLE:,} records/s and >= {GOAL_RATIO} "
          "of the reference)", flush=True)
    for g in GROUPS:
        print(f"G={g}: measuring ...", flush=True)
        ref = bench_reference(workdir, values, g, sizes.seconds)
        logs = [bench_log_layer(workdir, events, t, g, sizes.seconds) for t in THREADS]
        durables = [bench_durable(workdir, pool, t, g, sizes.durable_seconds, sizes.pool_records) for t in THREADS]
        ref = close_reference(ref, workdir, values, sizes.seconds, cores)
        out["reference"].append(ref)
        print(reference_line(ref))
        for r in logs:
            finish(r, ref["fsync_ms_per_group"], cores)
            r["ratio_to_reference"] = r["events_per_s"] / ref["synced_events_per_s"]
            out["log_layer"].append(r)
            print(log_layer_line(r))
        for r in durables:
            finish(r, ref["fsync_ms_per_group"], cores)
            r["ratio_to_reference"] = r["records_per_s"] / ref["synced_events_per_s"]
            out["durable"].append(r)
            print(durable_line(r), flush=True)
    return out


def measure_latency(workdir: str, pool: RecordPool, peak: dict, seconds: float) -> dict:
    """Section 3 at half the durable peak, with what bounded the receipt and the checkpoint."""
    target = 0.5 * peak["records_per_s"]
    print(f"3. latency at {target:,.0f} records/s (half the peak {peak['records_per_s']:,.0f}) ...", flush=True)
    lat = bench_latency(workdir, pool, target, seconds)
    lat["bound_receipt"] = ("one group commit per submit (validate + encode + synced write + leaf hashes), "
                            "plus queueing behind other pacers' groups; process at "
                            f"{lat['cpu_cores']:.2f} cores")
    if lat["achieved_records_per_s"] < 0.9 * target:
        lat["bound_receipt"] += (f"; the target was NOT sustained ({lat['achieved_records_per_s']:,.0f}/s): "
                                 "pacers fell behind schedule, see 'from the scheduled send time'")
    fill = lat["batch_max_items"] / max(lat["achieved_records_per_s"], 1)
    lat["bound_checkpoint"] = (f"batch_max_delay ({lat['batch_max_delay_s']} s): at this rate "
                               f"{lat['batch_max_items']:,} records take {fill:.1f} s to gather"
                               if fill > lat["batch_max_delay_s"] else
                               f"batch_max_items ({lat['batch_max_items']:,} records gather in {fill:.2f} s)")
    for key, title in (("receipt", "receipt"), ("receipt_from_schedule", "receipt from schedule"),
                       ("to_checkpoint", "to checkpoint")):
        p = lat[key]
        if p["n"]:
            print(f"  {title:<22} p50 {p['p50_ms']:8.2f} ms  p99 {p['p99_ms']:8.2f} ms  max {p['max_ms']:8.2f} ms "
                  f"({p['n']:,})")
    print(f"  achieved {lat['achieved_records_per_s']:,.0f} records/s of {target:,.0f}; "
          f"{lat['checkpoints']} checkpoints; bound: receipt - {lat['bound_receipt']}; "
          f"checkpoint - {lat['bound_checkpoint']}", flush=True)
    return lat


def measure_rebuild(workdir: str, sizes: RunSizes, cores: int) -> dict:
    """Section 4: build a ledger through Ledger.submit within the budget, then rebuild it."""
    budget = sizes.build_budget
    print(f"4. rebuild of a {sizes.rebuild_records:,}-record ledger (goal >= {GOAL_REBUILD:,} events/s; "
          f"build budget {budget:.0f} s) ...", flush=True)
    rb = bench_rebuild(workdir, sizes.rebuild_records, budget, cores)
    if rb["budget_hit"]:
        print(f"  building {rb['records_wanted']:,} records through Ledger.submit did not fit the "
              f"{budget:.0f} s budget: built {rb['records']:,}, and that is what was rebuilt")
    print(f"  build: {rb['records']:,} records at {rb['build_records_per_s']:,.0f} records/s "
          f"(CPU {rb['build_cpu_cores']:.2f} cores; sealed {rb['sealed_after_s'] or 0:.1f} s after); "
          f"{rb['disk_bytes_per_record']:,.0f} bytes/record on disk")
    print("  " + memory_line(rb))
    print(f"  rebuild: {rb['events']:,} events in {rb['rebuild_seconds']:.1f} s = {rb['events_per_s']:,.0f} events/s "
          f"[goal {GOAL_REBUILD:,}: {met(rb['events_per_s'] >= GOAL_REBUILD)}]; ok={rb['ok']}, "
          f"{rb['checkpoints_verified']} checkpoints reproduced - bound: {rb['bound']}", flush=True)
    return rb


def memory_line(rb: dict) -> str:
    m = rb["build_rss"]
    sustained = rb["records"] >= SUSTAINED_RECORDS
    return (f"Memory while building: {m['half_mib']:,.0f} MiB resident at {m['half_records']:,} records, "
            f"{m['final_mib']:,.0f} MiB at {rb['records']:,} ({m['second_half_growth_mib']:+,.0f} MiB over the second "
            f"half, {m['second_half_mib_per_million']:+,.1f} MiB per million records): "
            + ("bounded" if m["bounded"] else f"NOT bounded (more than {BOUNDED_GROWTH:.0%} growth)")
            + ("" if sustained else f"; a shorter run than the {SUSTAINED_RECORDS:,}-record sustained one the goal asks"))


def goals_of(result: dict) -> dict:
    peak, rb = result["durable_peak"], result["rebuild"]
    best_ratio = max(r["ratio_to_reference"] for r in result["durable"])
    return {
        "durable_records_per_s": {"goal": GOAL_DURABLE, "best": peak["records_per_s"],
                                  "met": peak["records_per_s"] >= GOAL_DURABLE},
        "ratio_to_reference": {"goal": GOAL_RATIO, "best": best_ratio, "met": best_ratio >= GOAL_RATIO},
        "rebuild_events_per_s": {"goal": GOAL_REBUILD, "measured": rb["events_per_s"],
                                 "met": rb["events_per_s"] >= GOAL_REBUILD},
        # Records built while memory stayed bounded (second half adding <= BOUNDED_GROWTH); 0 when it was not.
        "records_with_bounded_memory": {"goal": SUSTAINED_RECORDS,
                                        "measured": rb["records"] if rb["build_rss"]["bounded"] else 0,
                                        "growth_mib": rb["build_rss"]["second_half_growth_mib"],
                                        "met": rb["build_rss"]["bounded"] and rb["records"] >= SUSTAINED_RECORDS},
    }


def print_summary(result: dict, written: Path) -> None:
    g = result["goals"]
    print(f"goals: durable >= {GOAL_DURABLE:,} records/s: {met(g['durable_records_per_s']['met'])} "
          f"(best {g['durable_records_per_s']['best']:,.0f}); >= {GOAL_RATIO} of the raw engine: "
          f"{met(g['ratio_to_reference']['met'])} (best {g['ratio_to_reference']['best']:.3f}); rebuild >= "
          f"{GOAL_REBUILD:,} events/s: {met(g['rebuild_events_per_s']['met'])} "
          f"({g['rebuild_events_per_s']['measured']:,.0f}); memory bounded over {SUSTAINED_RECORDS:,} records: "
          f"{met(g['records_with_bounded_memory']['met'])}")
    run = result["run"]
    print(f"over the whole run: process CPU {run['cpu_cores']:.2f} cores, machine iowait {run['iowait_cores']:.2f} "
          f"cores, steal {run['steal_cores']:.2f} cores (steal above ~0.1 means a noisy neighbour: rerun)")
    print(f"total {result['total_seconds']:.0f} s; wrote {written} and .md")


def main(argv=None) -> int:
    args = parse_args(argv)
    sizes = RunSizes.from_args(args)
    cores = os.cpu_count() or 1
    result = {"machine": machine_info(), "quick": args.quick}
    print("machine:", machine_line(result["machine"]))
    workdir = make_workdir(args.workdir, "ingest", result)
    started = time.perf_counter()
    run_clock = CpuClock()
    try:
        pool = RecordPool()
        pool.take(sizes.pool_records)
        events, values = measure_event_sizes(pool, result)
        warm_dir = tempfile.mkdtemp(dir=workdir, prefix="warm-")
        warm_up_ledger(warm_dir, pool.take(2000))
        shutil.rmtree(warm_dir, ignore_errors=True)
        result.update(measure_groups(workdir, pool, events, values, sizes, cores))
        peak = max(result["durable"], key=lambda r: r["records_per_s"])
        result["durable_peak"] = {"threads": peak["threads"], "group": peak["group"],
                                  "records_per_s": peak["records_per_s"],
                                  "ratio_to_reference": peak["ratio_to_reference"]}
        result["stages"] = measure_stages(workdir, pool.take(sizes.stage_records), STAGES_GROUP)
        result["write_overlap"] = measure_write_overlap(workdir, pool.take(sizes.stage_records), STAGES_GROUP)
        result["latency"] = measure_latency(workdir, pool, peak, sizes.latency_seconds)
        result["rebuild"] = measure_rebuild(workdir, sizes, cores)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["total_seconds"] = time.perf_counter() - started
    result["run"] = run_clock.stop()
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    result["goals"] = goals_of(result)
    written = write_and_print_result(args.out, "ingest", result, markdown(result))
    print_summary(result, written)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
