"""`evledger capacity`: what a target load costs, from the latest benchmark figures of this machine.

    python -m bench.capacity --sustained 20000 --peak 60000 --record-bytes 400 --retention-years 10 \\
        --proof-rps 50 --anchor-interval 10 --chain fisco-bcos [--headroom 0.7] [--ledgers N]
        [--ingest-path http|direct|stream] [--node-cores N] [--results DIR] [--out FILE]

Reads the newest results in bench/results/ (a suite run's report.json or raw module JSONs,
<name>-<UTC stamp>.json, also inside suite folders), preferring full runs of this machine over
quick runs and other machines, and says which file each figure came from. Prints the plan and,
with --out, writes it as FILE.md and FILE.json. Every figure comes with how it was obtained;
every assumption is listed. Input that makes no sense is refused with a message naming it.

The arithmetic is in `plan()`, a pure function of the target and the results dict, so it can
be tested on fixed figures (tests/test_capacity.py works examples by hand).
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench import figures as F

RESULTS = Path(__file__).parent / "results"
MODULE_NAMES = ("merkle", "ingest", "api", "stream", "anchor")
SECONDS_PER_YEAR = F.SECONDS_PER_DAY * F.DAYS_PER_YEAR  # 31,536,000

# -- sizes (bytes). Where each comes from is stated next to it and printed with the plan. ----------
MIN_RECORD_BYTES = 100  # a 64-hex-digit content_hash with business_type and occurred_at is ~110 bytes of JSON
MAX_RECORD_BYTES = 16384  # ingest.records LIMITS max_record_bytes (docs/records.md)
LEAF_WRAPPER_BYTES = 98  # docs/leaf.md: {"ledger":"<8-char id>","received_at":"<27>","record":...,"seq":<10 digits>,"v":1}
LOG_KEY_BYTES = 28  # RocksDBLog key b"e"+len+stream+position(8) for an 8-char ledger id (18) + ~10 of RocksDB entry overhead
MERKLE_BYTES_PER_LEAF = 64  # ~2 nodes per leaf (n leaf hashes + n-1 interior) x 32 bytes; 256 nodes per RocksDB value
INDEX_FIXED_BYTES = 130  # per record: e-entry 1+40, b-entry 1+1+8, c-entry 1+32+8, p-run 8, ~10 RocksDB overhead x 3
CHECKPOINT_BYTES = 700  # CheckpointSealed in the log (~370 measured on a sample ledger) + its copy in the index
ANCHOR_BYTES = 1300  # AnchorSubmitted (~380) + AnchorConfirmed (~460) in the log + the index's anchor entry
KURRENT_EVENT_OVERHEAD = 150  # assumed: KurrentDB record framing (event id, stream, type, positions, timestamps)
KURRENT_INDEX_BYTES = 24  # KurrentDB PTable entry: stream hash 8 + version 8 + position 8
KURRENT_REPLICAS = 3  # a 3-node cluster: each node keeps a full copy of the log
KAFKA_RECORD_OVERHEAD = 70  # assumed: per-record headers, key (the ledger id) and batch framing, amortized
KAFKA_PARTITION_BYTES_PER_S = 10e6  # assumed: one partition's leader with acks=all, conservatively
KAFKA_REPLICATION = 3
KAFKA_RETENTION_DAYS = 7  # Kafka is a buffer in front of the ledger log, not the record of truth
KAFKA_ASSUMPTION = (f"Kafka: a partition's leader takes {KAFKA_PARTITION_BYTES_PER_S / 1e6:g} MB/s (assumed, not measured), "
                    f"{KAFKA_RECORD_OVERHEAD} bytes of overhead per record; one worker consumes each partition; records "
                    f"are keyed by ledger, so a ledger's records stay in one partition and keep one writer; "
                    f"{KAFKA_RETENTION_DAYS} days of retention x {KAFKA_REPLICATION} replicas.")
KURRENT_ASSUMPTION = (f"KurrentDB (not measured: no server on these machines): ~{KURRENT_EVENT_OVERHEAD} bytes of record "
                      f"framing and a {KURRENT_INDEX_BYTES}-byte index entry per event, no compression, "
                      f"{KURRENT_REPLICAS} replicas.")

CHAINS = {
    "fisco-bcos": {"name": "FISCO BCOS 3.x, PBFT", "block_time_s": 1.0, "confirmations": 1,
                   "why": "PBFT blocks are final once committed (docs/anchor.md); ~1 s blocks assumed",
                   "gas_note": "gas metered by the EVM schedule measured on anvil; a permissioned FISCO BCOS chain "
                               "charges no fee by default, so gas is a capacity figure, not a cost"},
    "besu": {"name": "Hyperledger Besu, QBFT / IBFT 2.0", "block_time_s": 2.0, "confirmations": 1,
             "why": "BFT consensus gives immediate finality (docs/anchor.md); 2 s block period assumed",
             "gas_note": "the same EVM as anvil, so the measured gas applies; fees are zero on a free-gas network "
                         "(--min-gas-price=0)"},
    "anvil": {"name": "anvil, a block per transaction (tests)", "block_time_s": 0.0, "confirmations": 1,
              "why": "mines each transaction at once", "gas_note": "measured here"},
    "in-process": {"name": "in-process py-evm (demo: its anchors prove nothing to anyone else)", "block_time_s": 0.0,
                   "confirmations": 1, "why": "mines each transaction at once", "gas_note": "as on anvil"},
}
INGEST_PATHS = ("http", "direct", "stream")


class PlanError(ValueError):
    """Input that makes no sense; the message names the input."""


@dataclass
class Target:
    sustained: float  # records/s, averaged over the year
    peak: float  # records/s
    record_bytes: float  # the submitted record as compact JSON
    retention_years: float
    proof_rps: float
    anchor_interval_s: float
    chain: str
    headroom: float = 0.7  # plan each process at this share of its measured rate
    ledgers: int | None = None  # None: the fewest the single-writer bound allows
    ingest_path: str = "http"
    node_cores: int | None = None  # None: the benchmarked machine's cores
    id_bytes: int = 36  # evidence_id and business_id length (a UUID's text)
    block_time_s: float | None = None  # None: the chain's assumed block time
    confirmations: int | None = None

    def validate(self) -> None:
        def finite(name, v):
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                raise PlanError(f"{name} must be a finite number, got {v!r}")

        for name, v in (("--sustained", self.sustained), ("--peak", self.peak)):
            finite(name, v)
            if v <= 0:
                raise PlanError(f"{name} must be a positive rate in records/s, got {v:g}")
        if self.peak < self.sustained:
            raise PlanError(f"--peak ({self.peak:g} records/s) is below --sustained ({self.sustained:g}): the peak is "
                            "the highest rate the system must take, so it is at least the sustained one")
        finite("--record-bytes", self.record_bytes)
        if not MIN_RECORD_BYTES <= self.record_bytes <= MAX_RECORD_BYTES:
            raise PlanError(f"--record-bytes must be between {MIN_RECORD_BYTES} and {MAX_RECORD_BYTES:,} (a record holds at "
                            f"least a 64-hex-digit content_hash, its business_type and occurred_at; the ledger refuses "
                            f"records over max_record_bytes = {MAX_RECORD_BYTES:,}), got {self.record_bytes:g}")
        finite("--retention-years", self.retention_years)
        if not 0 < self.retention_years <= 100:
            raise PlanError(f"--retention-years must be more than 0 and at most 100, got {self.retention_years:g}")
        finite("--proof-rps", self.proof_rps)
        if self.proof_rps <= 0:
            raise PlanError(f"--proof-rps must be a positive rate in proof requests/s, got {self.proof_rps:g}")
        finite("--anchor-interval", self.anchor_interval_s)
        if self.anchor_interval_s <= 0:
            raise PlanError(f"--anchor-interval must be a positive number of seconds, got {self.anchor_interval_s:g}")
        if self.chain not in CHAINS:
            raise PlanError(f"--chain must be one of {', '.join(CHAINS)}, got {self.chain!r}")
        finite("--headroom", self.headroom)
        if not 0 < self.headroom <= 1:
            raise PlanError(f"--headroom is the utilisation to plan for, more than 0 and at most 1 (0.7 = 70%), "
                            f"got {self.headroom:g}")
        if self.ledgers is not None and (not isinstance(self.ledgers, int) or self.ledgers < 1):
            raise PlanError(f"--ledgers must be a whole number of at least 1, got {self.ledgers!r}")
        if self.ingest_path not in INGEST_PATHS:
            raise PlanError(f"--ingest-path must be one of {', '.join(INGEST_PATHS)}, got {self.ingest_path!r}")
        if self.node_cores is not None and (not isinstance(self.node_cores, int) or self.node_cores < 1):
            raise PlanError(f"--node-cores must be a whole number of at least 1, got {self.node_cores!r}")
        if not isinstance(self.id_bytes, int) or not 1 <= self.id_bytes <= 128:
            raise PlanError(f"--id-bytes must be between 1 and 128 (the ledger's id_max_length), got {self.id_bytes!r}")
        if self.block_time_s is not None:
            finite("--block-time", self.block_time_s)
            if self.block_time_s < 0:
                raise PlanError(f"--block-time must be 0 (a block per transaction) or more seconds, got {self.block_time_s:g}")
        if self.confirmations is not None and (not isinstance(self.confirmations, int) or self.confirmations < 1):
            raise PlanError(f"--confirmations must be a whole number of at least 1, got {self.confirmations!r}")


# -- finding the latest results ----------------------------------------------------------------------

_STAMP = re.compile(r"(\d{8}T\d{6}Z)")


def _this_machine() -> dict:
    from bench.machine import _cpu_model

    return {"cpu": _cpu_model(), "cores": os.cpu_count()}


def latest_results(results_dir: str | Path, machine: dict | None = None) -> tuple[dict, dict]:
    """({module: result}, {module: where it came from}) for the newest usable result of each
    module under results_dir: raw `<name>-<stamp>.json` files at the top or one folder down (a
    suite run's folder), and suite `report.json` files. Preference: this machine (same CPU model
    and core count) over others, full runs over quick ones, then the newest."""
    results_dir = Path(results_dir)
    machine = machine if machine is not None else _this_machine()
    candidates: dict[str, list] = {name: [] for name in MODULE_NAMES}
    for name in MODULE_NAMES:
        for path in glob.glob(str(results_dir / f"{name}-*.json")) + glob.glob(str(results_dir / "*" / f"{name}-*.json")):
            m = _STAMP.search(Path(path).name)
            try:
                data = json.loads(Path(path).read_text())
            except (OSError, ValueError):
                continue
            if isinstance(data, dict):
                candidates[name].append((m.group(1) if m else "", data, str(path)))
    for path in glob.glob(str(results_dir / "*" / "report.json")) + glob.glob(str(results_dir / "report.json")):
        try:
            report = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            continue
        for name, data in (report.get("results") or {}).items():
            if name in candidates and isinstance(data, dict):
                js = ((report.get("modules") or {}).get(name) or {}).get("json") or ""
                m = _STAMP.search(js) or _STAMP.search(report.get("stamp", ""))
                candidates[name].append((m.group(1) if m else "", data, f"{path} ({name})"))
    chosen, sources = {}, {}
    for name, cands in candidates.items():
        if not cands:
            continue

        def score(c):
            mach = c[1].get("machine") or {}
            same = mach.get("cpu") == machine.get("cpu") and mach.get("cores") == machine.get("cores")
            return (same, not c[1].get("quick", False), c[0])

        stamp, data, path = max(cands, key=score)
        mach = data.get("machine") or {}
        same = mach.get("cpu") == machine.get("cpu") and mach.get("cores") == machine.get("cores")
        chosen[name] = data
        sources[name] = {"file": path, "stamp": stamp, "quick": bool(data.get("quick")), "this_machine": same,
                         "machine": f"{mach.get('cpu', '?')}, {mach.get('cores', '?')} cores"}
    return chosen, sources


# -- the plan ---------------------------------------------------------------------------------------

def _ceil(x: float) -> int:
    return int(math.ceil(x - 1e-9))


def _pack(processes: int, cores_each: float, node_cores: int) -> tuple[int, int]:
    """(processes per node, nodes): whole processes per node, at least one."""
    per_node = max(1, int(math.floor(node_cores / cores_each + 1e-9)))
    return per_node, _ceil(processes / per_node)


def ingest_rates(results: dict) -> dict:
    """Per-process ingest figures by path: {path: {rate, cores, source, measured}}."""
    out = {}
    peak = F.durable_peak(results.get("ingest"))
    if peak:
        out["direct"] = {"rate": peak["records_per_s"], "cores": peak.get("cpu_cores") or 1.0, "measured": True,
                         "source": f"ingest_bench durable peak (Ledger.submit in one process, {peak['threads']} thread(s), "
                                   f"G={peak['group']:,}), bound: {peak.get('bound', '?')}"}
    b = F.best_row((results.get("api") or {}).get("batch"))
    if b:
        out["http"] = {"rate": b["items_per_s"], "cores": b.get("server_cores") or 1.0, "measured": True,
                       "source": f"api_bench best POST /records/batch (batch {b['batch']:,}, C={b['concurrency']}; one "
                                 f"uvicorn worker doing the durable writes too), bound: {b.get('bound', '?')}"}
    stream = results.get("stream")
    # Per worker: the rows carry how many workers made each rate, so divide (the best rate of
    # two workers is not one worker's rate).
    per_worker = [(row["records_per_s"] / row["workers"], row) for row in (stream or {}).get("throughput", [])
                  if row.get("workers") and row.get("records_per_s")]
    rates = F.find_rates(stream) if stream else []
    if per_worker:
        best, row = max(per_worker, key=lambda pr: pr[0])
        cores = (row.get("worker_cores") or row["workers"]) / row["workers"]
        out["stream"] = {"rate": best, "cores": cores, "measured": True,
                         "source": f"stream_bench: {row['records_per_s']:,.0f} records/s with {row['workers']} worker(s) "
                                   f"= {best:,.0f} per worker at {cores:.2f} cores each"}
    elif rates:
        path, best = max(rates, key=lambda pv: pv[1])
        out["stream"] = {"rate": best, "cores": 1.0, "measured": True,
                         "source": f"stream_bench best rate ({path}); 1 core per worker assumed"}
    elif "direct" in out:
        out["stream"] = {**out["direct"], "measured": False,
                         "source": "ASSUMED: the stream benchmark has not run; a worker consuming a partition is taken to "
                                   "write as fast as Ledger.submit in one process (broker and consumer CPU not included)"}
    return out


def anchor_latency(results: dict, chain: str, block_time: float, confirmations: int) -> dict | None:
    """Checkpoint sealed -> AnchorConfirmed, p50/p99 ms, for the chain: the measured row of a chain
    that mines at once with the worker's default poll, plus the wait for the next block (T/2 at
    p50, T at p99) and (confirmations - 1) more blocks."""
    anchor = results.get("anchor")
    s = F.settings(results)
    poll = s["poll_interval_s"]
    prefix = "in-process" if chain == "in-process" else "anvil, a block per transaction"
    row = F.anchor_row(anchor, chain_prefix=prefix, block_time=None, poll=poll)
    extra50 = extra99 = 0.0
    how = f"measured: {prefix}, 1 confirmation, worker poll {poll:g} s (the default)"
    if row is None:
        row = F.anchor_row(anchor, chain_prefix=prefix, block_time=None)
        if row is None:
            return None
        p = row["poll_interval_s"]
        extra50, extra99 = 1.5 * (poll - p) * 1000, 2 * (poll - p) * 1000
        how = (f"measured at worker poll {p:g} s ({prefix}), plus the default poll's {poll:g} s: +1.5 x poll at p50 (half a "
               f"pass to see the checkpoint, one to read the receipt), +2 x poll at p99")
    lat = row["latency"]
    blocks50 = block_time / 2 + (confirmations - 1) * block_time
    blocks99 = block_time + (confirmations - 1) * block_time
    if block_time or confirmations > 1:
        how += (f"; plus the chain's blocks: the next block (T/2 at p50, T at p99) and {confirmations - 1} more on top, "
                f"T = {block_time:g} s")
    out = {"p50_ms": lat["p50_ms"] + extra50 + 1000 * blocks50, "p99_ms": lat["p99_ms"] + extra99 + 1000 * blocks99,
           "how": how, "row": f"{row['chain']}, poll {row['poll_interval_s']:g} s, {lat['n']} anchors"}
    # The same model against a measured row with blocks, where the benchmark has one.
    fast = F.anchor_row(anchor, chain_prefix="anvil, a block per transaction", block_time=None)
    check = F.anchor_row(anchor, chain_prefix="anvil, 1", block_time=1.0, poll=fast["poll_interval_s"] if fast else None)
    if fast and check:
        model = fast["latency"]["p50_ms"] + 500
        out["check"] = (f"the model against the measured 1 s-block row (poll {check['poll_interval_s']:g} s): "
                        f"{model:,.0f} ms predicted, {check['latency']['p50_ms']:,.0f} ms measured at p50")
    return out


@dataclass
class PlanNotes:
    """What a plan states besides its figures, each list in the order the phases of `plan()`
    find them (the Markdown prints them in that order)."""
    assumptions: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def _processes_for(rate: dict, t: Target, node_cores: int) -> dict:
    """Processes, cores and nodes one ingest path needs to take the target's peak."""
    usable = rate["rate"] * t.headroom
    procs = _ceil(t.peak / usable)
    per_node, nodes = _pack(procs, rate["cores"], node_cores)
    return {"rate_per_process": rate["rate"], "cores_per_process": rate["cores"],
            "usable_per_process": usable, "processes": procs, "cores": procs * rate["cores"],
            "processes_per_node": per_node, "nodes": nodes, "measured": rate["measured"],
            "source": rate["source"]}


def plan_ingest(t: Target, rates: dict, node_cores: int, notes: PlanNotes) -> tuple[dict, int]:
    """(the ingest figures, the ledgers): every measured path sized for the peak, the chosen one
    in full, and the fewest ledgers its single writer per ledger allows (or those given)."""
    ing = rates.get(t.ingest_path)
    ingest = {"path": t.ingest_path, "by_path": {}}
    for path, r in rates.items():
        ingest["by_path"][path] = _processes_for(r, t, node_cores)
    if ing is None:
        notes.missing.append(f"ingest rate for --ingest-path {t.ingest_path}: run `make bench` (or the module behind it)")
        return ingest, t.ledgers or 1
    if not ing["measured"]:
        notes.assumptions.append(ing["source"])
    row = ingest["by_path"][t.ingest_path]
    min_ledgers = row["processes"]
    ledgers = t.ledgers or min_ledgers
    ingest.update(row, min_ledgers=min_ledgers, ledgers=ledgers,
                  utilisation_sustained=t.sustained / (row["processes"] * ing["rate"]),
                  utilisation_peak=t.peak / (row["processes"] * ing["rate"]))
    if ledgers < min_ledgers:
        notes.warnings.append(f"{ledgers} ledger(s) cannot take {t.peak:,.0f} records/s: each ledger has one writer (its "
                              f"sequence and expected version), and one process sustains {ing['rate']:,.0f} records/s "
                              f"({row['usable_per_process']:,.0f} at {t.headroom:.0%}); shard into at least {min_ledgers} "
                              "ledgers")
    if node_cores < ing["cores"]:
        notes.warnings.append(f"a {node_cores}-core node is smaller than one ingest process ({ing['cores']:.2f} cores "
                              "measured): processes will share cores and run slower than planned")
    notes.assumptions.append(f"The peak is spread evenly over {ledgers} ledger(s), {t.peak / ledgers:,.0f} records/s each; "
                             f"a ledger is written by one process only, which can hold several ledgers.")
    return ingest, ledgers


def _proof_cost_growth(merkle: dict | None, tree_end: float, tree_measured: int) -> tuple[float, float, str]:
    """(extra µs at p50, at p99, how it was read off merkle_bench) of a proof at `tree_end`
    leaves over one at the API benchmark's tree size; 0 where merkle_bench gives no figure."""
    p50_n, how_n = F.proof_latency_at(merkle, tree_end, "p50_us")
    p50_api, _ = F.proof_latency_at(merkle, tree_measured, "p50_us")
    p99_n, _ = F.proof_latency_at(merkle, tree_end, "p99_us")
    p99_api, _ = F.proof_latency_at(merkle, tree_measured, "p99_us")
    d50 = (p50_n - p50_api) if p50_n is not None and p50_api is not None else 0.0
    d99 = (p99_n - p99_api) if p99_n is not None and p99_api is not None else 0.0
    return d50, d99, how_n


def plan_proofs(t: Target, results: dict, per_ledger_rate: float, node_cores: int, notes: PlanNotes) -> dict:
    """Proof server processes for --proof-rps, with a proof's cost at the size each ledger's tree
    reaches by the end of the retention."""
    H = t.headroom
    api = results.get("api") or {}
    merkle = results.get("merkle")
    best = F.best_row(api.get("proof"))
    lat_row = F.lowest_concurrency_row(api.get("proof"))
    tree_end = per_ledger_rate * SECONDS_PER_YEAR * t.retention_years
    proofs = {"tree_size_end": tree_end}
    if not best:
        notes.missing.append("proof bundle rate: run `make bench` (bench.api_bench)")
        return proofs
    n_api = (api.get("proof_ledger") or {}).get("records") or 0
    d50, d99, how_n = _proof_cost_growth(merkle, tree_end, n_api)
    us = best["server_us_per_request"]
    rate_n = best["items_per_s"] * us / (us + d50)
    procs = _ceil(t.proof_rps / (rate_n * H))
    cores_each = best.get("server_cores") or 1.0
    per_node, nodes = _pack(procs, cores_each, node_cores)
    proofs.update(measured_rate=best["items_per_s"], measured_tree=n_api, server_us=us, delta_us_p50=d50,
                  delta_us_p99=d99, rate_per_process=rate_n, usable_per_process=rate_n * H, processes=procs,
                  cores_per_process=cores_each, cores=procs * cores_each, processes_per_node=per_node, nodes=nodes,
                  tree_how=how_n, bound=best.get("bound", "?"),
                  source=f"api_bench best GET /proof (C={best['concurrency']}, {n_api:,}-record ledger)")
    if lat_row:
        proofs.update(p50_ms=lat_row["p50_ms"] + d50 / 1000, p99_ms=lat_row["p99_ms"] + d99 / 1000,
                      latency_source=f"api_bench GET /proof at C={lat_row['concurrency']} (closed loop, at saturation)")
    if merkle is None:
        notes.assumptions.append("No Merkle proof figures: the proof cost is taken as at the API benchmark's tree size.")
    measured = [r["tree_size"] for r in F.proof_rows(merkle)]
    if measured and tree_end > 10 * max(measured):
        notes.warnings.append(
            f"a ledger's tree reaches {tree_end:,.3g} leaves, {math.log10(tree_end / max(measured)):.1f} "
            f"decades beyond the largest tree measured ({max(measured):,}): its proof cost is extrapolated from the "
            "slope of the two largest sizes, and the measured cost grew faster than log(size) past "
            "1e6 leaves (fewer node-store reads hit the cache), so it may be higher; more ledgers "
            "keep trees smaller")
    notes.assumptions.append(f"Each ledger's tree holds {tree_end:,.0f} leaves at the end of the retention "
                             f"({per_ledger_rate:,.0f} records/s per ledger x {SECONDS_PER_YEAR:,} s x "
                             f"{t.retention_years:g} years); a proof's cost grows with log(tree size) as merkle_bench "
                             f"measured ({how_n}).")
    return proofs


def checkpoint_cadence(results: dict, per_ledger_rate: float, anchor_interval_s: float) -> tuple[float, float]:
    """(seconds between a ledger's checkpoints, its chain transactions a day) under the
    benchmarked sequencer and anchor settings."""
    s = F.settings(results)
    ckpt_interval = F.checkpoint_interval_s(per_ledger_rate, s["batch_max_items"], s["batch_max_delay_s"])
    tx_day_ledger = F.chain_tx_per_day(anchor_interval_s, per_ledger_rate, s["batch_max_items"], s["batch_max_delay_s"])
    return ckpt_interval, tx_day_ledger


def plan_disk(t: Target, results: dict, ledgers: int, ckpt_interval: float, tx_day_ledger: float,
              notes: PlanNotes) -> dict:
    """Bytes a year by store, uncompressed, and the measured bytes per record to compare with."""
    ingest_r = results.get("ingest") or {}
    event_bytes, leaf_bytes = ingest_r.get("event_bytes"), ingest_r.get("leaf_bytes")
    envelope = (event_bytes - leaf_bytes) if event_bytes and leaf_bytes else 75
    if not (event_bytes and leaf_bytes):
        notes.assumptions.append("Event envelope (crc, type, fingerprint) taken as 75 bytes: no ingest result to measure it.")
    framing = envelope + LEAF_WRAPPER_BYTES
    log_b = t.record_bytes + framing + LOG_KEY_BYTES
    index_b = INDEX_FIXED_BYTES + 2 * t.id_bytes
    per_record = log_b + MERKLE_BYTES_PER_LEAF + index_b
    records_year = t.sustained * SECONDS_PER_YEAR
    ckpt_year = ledgers * SECONDS_PER_YEAR / ckpt_interval * CHECKPOINT_BYTES
    anchor_year = ledgers * tx_day_ledger * F.DAYS_PER_YEAR * ANCHOR_BYTES
    per_year = {"log": records_year * log_b, "merkle": records_year * MERKLE_BYTES_PER_LEAF,
                "indexes": records_year * index_b, "checkpoints": ckpt_year, "anchors": anchor_year}
    per_year["total"] = sum(per_year.values())
    disk = {"records_per_year": records_year, "framing_bytes": framing, "envelope_bytes": envelope,
            "log_bytes_per_record": log_b, "merkle_bytes_per_record": MERKLE_BYTES_PER_LEAF,
            "index_bytes_per_record": index_b, "bytes_per_record": per_record, "per_year": per_year,
            "total": per_year["total"] * t.retention_years, "checkpoint_interval_s": ckpt_interval}
    rb = ingest_r.get("rebuild") or {}
    if rb.get("disk_bytes_per_record") and event_bytes and leaf_bytes:
        # The benchmark's records: ledger id "bench" and ~5-digit seqs make a 90-byte leaf wrapper; ids of ~8 bytes.
        bench_record = leaf_bytes - 90
        model = event_bytes + LOG_KEY_BYTES + MERKLE_BYTES_PER_LEAF + INDEX_FIXED_BYTES + 2 * 8
        disk["measured_bytes_per_record"] = rb["disk_bytes_per_record"]
        disk["model_at_bench_record"] = model
        disk["bench_record_bytes"] = bench_record
    notes.assumptions.append(
        f"Disk per record, uncompressed: log = record ({t.record_bytes:g}) + framing {framing} (event envelope {envelope}, "
        f"{'measured' if event_bytes else 'assumed'}, + the leaf's JSON wrapper {LEAF_WRAPPER_BYTES}) + key {LOG_KEY_BYTES}; "
        f"Merkle nodes {MERKLE_BYTES_PER_LEAF} (~2 nodes per leaf x 32 bytes, packed 256 to a RocksDB value); indexes "
        f"{index_b} (evidence id, business id, content hash and the position run: {INDEX_FIXED_BYTES} + 2 x {t.id_bytes}-"
        f"byte ids); checkpoints {CHECKPOINT_BYTES} bytes each, anchors {ANCHOR_BYTES} bytes each (log + index). "
        f"--sustained is taken as the year's average. Nothing is deleted within the retention.")
    return disk


def log_backends(t: Target, disk: dict) -> dict:
    """The log on RocksDB (embedded) or on a KurrentDB cluster, bytes a year."""
    per_year = disk["per_year"]
    kurrent_event = t.record_bytes + disk["framing_bytes"] + KURRENT_EVENT_OVERHEAD + KURRENT_INDEX_BYTES
    return {
        "rocksdb_per_year": per_year["total"],
        "kurrent_log_per_year": disk["records_per_year"] * kurrent_event * KURRENT_REPLICAS,
        "kurrent_event_bytes": kurrent_event,
        "projections_per_year": per_year["merkle"] + per_year["indexes"] + per_year["checkpoints"] + per_year["anchors"],
    }


def plan_kafka(t: Target, consumer: dict | None, ledgers: int, notes: PlanNotes) -> dict:
    """Partitions and broker disk when producers go through Kafka (--ingest-path stream)."""
    broker_rate = KAFKA_PARTITION_BYTES_PER_S / (t.record_bytes + KAFKA_RECORD_OVERHEAD)
    kafka = {"broker_rate": broker_rate}
    if consumer:
        if not consumer["measured"] and consumer["source"] not in notes.assumptions:
            notes.assumptions.append(consumer["source"])
        part_rate = min(broker_rate, consumer["rate"])
        parts = max(ledgers, _ceil(t.peak / (part_rate * t.headroom)))
        kafka.update(consumer_rate=consumer["rate"], consumer_measured=consumer["measured"], partition_rate=part_rate,
                     partitions=parts, bound="broker" if broker_rate < consumer["rate"] else "consumer (one worker per partition)",
                     disk=t.sustained * F.SECONDS_PER_DAY * KAFKA_RETENTION_DAYS * (t.record_bytes + KAFKA_RECORD_OVERHEAD)
                     * KAFKA_REPLICATION)
    else:
        notes.missing.append("a per-partition consumer rate (no stream or ingest result)")
    notes.assumptions.append(KAFKA_ASSUMPTION)
    return kafka


def plan_chain(t: Target, results: dict, ledgers: int, ckpt_interval: float, tx_day_ledger: float,
               notes: PlanNotes) -> dict:
    """Anchor transactions and gas a day on the chain, and how long an anchor takes to confirm."""
    c = CHAINS[t.chain]
    block_time = c["block_time_s"] if t.block_time_s is None else t.block_time_s
    confirmations = c["confirmations"] if t.confirmations is None else t.confirmations
    gas = F.anchor_gas(results.get("anchor"))
    chain = {"name": c["name"], "block_time_s": block_time, "confirmations": confirmations,
             "tx_per_day_per_ledger": tx_day_ledger, "tx_per_day": tx_day_ledger * ledgers,
             "anchor_every_s": max(t.anchor_interval_s, ckpt_interval)}
    if gas and gas.get("later"):
        chain.update(gas_per_anchor=gas["later"], gas_first_anchor=gas["first"], gas_per_day=chain["tx_per_day"] * gas["later"],
                     gas_once=ledgers * ((gas["first"] or gas["later"]) - gas["later"]),
                     gas_per_year=chain["tx_per_day"] * gas["later"] * F.DAYS_PER_YEAR,
                     per_record_gas_per_day=t.sustained * F.SECONDS_PER_DAY * (gas["first"] or gas["later"]))
        if block_time and gas.get("block_gas_limit"):
            chain["share_of_chain_gas"] = chain["gas_per_day"] / (gas["block_gas_limit"] * F.SECONDS_PER_DAY / block_time)
            chain["block_gas_limit"] = gas["block_gas_limit"]
    else:
        notes.missing.append("gas per anchor: run `make bench` (bench.anchor_bench)")
    notes.assumptions.append(f"Chain: {c['name']}: {c['why']}; {confirmations} confirmation(s); "
                             f"block time {block_time:g} s{' (--block-time)' if t.block_time_s is not None else ' (assumed)'}. "
                             f"{c['gas_note']}.")
    alat = anchor_latency(results, t.chain, block_time, confirmations)
    if alat:
        chain["anchor_latency"] = alat
        if alat["p50_ms"] / 1000 > t.anchor_interval_s:
            notes.warnings.append(f"an anchor takes ~{alat['p50_ms'] / 1000:.1f} s to confirm, longer than --anchor-interval "
                                  f"{t.anchor_interval_s:g} s: the worker waits for each confirmation, so anchors go out "
                                  "every ~confirmation time and the chain sees fewer transactions than planned")
    return chain


def expected_latency(results: dict, chain: dict, proofs: dict) -> dict:
    """What producers and courts wait, p50/p99 ms, each with where it came from."""
    api = results.get("api") or {}
    lat = {}
    il = F.ingest_latency(results.get("ingest")) or {}
    if (il.get("receipt") or {}).get("n"):
        lat["receipt_direct"] = {"p50_ms": il["receipt"]["p50_ms"], "p99_ms": il["receipt"]["p99_ms"],
                                 "source": f"ingest_bench, Ledger.submit of 50 records at {il['achieved_records_per_s']:,.0f} records/s"}
    single = F.lowest_concurrency_row(api.get("single"))
    if single:
        lat["receipt_http_single"] = {"p50_ms": single["p50_ms"], "p99_ms": single["p99_ms"],
                                      "source": f"api_bench POST /records, C={single['concurrency']} (closed loop, at saturation)"}
    batch = F.lowest_concurrency_row(api.get("batch"))
    if batch:
        lat["receipt_http_batch"] = {"p50_ms": batch["p50_ms"], "p99_ms": batch["p99_ms"],
                                     "source": f"api_bench POST /records/batch of {batch['batch']:,}, C={batch['concurrency']}"}
    alat = chain.get("anchor_latency")
    if (il.get("to_checkpoint") or {}).get("n"):
        lat["checkpoint"] = {"p50_ms": il["to_checkpoint"]["p50_ms"], "p99_ms": il["to_checkpoint"]["p99_ms"],
                             "source": "ingest_bench, receipt -> logged checkpoint (default batching)"}
        if alat:
            every = chain["anchor_every_s"] * 1000
            lat["anchored"] = {"p50_ms": lat["checkpoint"]["p50_ms"] + every / 2 + alat["p50_ms"],
                               "p99_ms": lat["checkpoint"]["p99_ms"] + every * 0.99 + alat["p99_ms"],
                               "source": f"checkpoint + the wait for the next anchor (uniform over {every / 1000:g} s: "
                                         "half at p50, 0.99 at p99) + checkpoint -> anchor confirmed; percentiles "
                                         "added, an overestimate at p99"}
    if proofs.get("p50_ms") is not None:
        lat["proof"] = {"p50_ms": proofs["p50_ms"], "p99_ms": proofs["p99_ms"],
                        "source": f"{proofs['latency_source']}, plus the Merkle proof's extra cost at "
                                  f"{proofs['tree_size_end']:,.0f} leaves ({proofs['delta_us_p50']:+.0f} µs p50, "
                                  f"{proofs['delta_us_p99']:+.0f} µs p99)"}
    return lat


def plan(t: Target, results: dict, sources: dict | None = None) -> dict:
    """The plan: every figure with how it was obtained, the assumptions and the warnings."""
    t.validate()
    sources = sources or {}
    notes = PlanNotes()
    machine = next((r.get("machine") for r in results.values() if r.get("machine")), {}) or {}
    node_cores = t.node_cores or int(machine.get("cores") or os.cpu_count() or 1)
    notes.assumptions.append(f"Headroom: every process is planned at {t.headroom:.0%} of the rate it sustained flat out "
                             f"in the benchmark (--headroom {t.headroom:g}).")
    notes.assumptions.append(f"Nodes have {node_cores} cores (--node-cores; default: the benchmarked machine's) and "
                             "per-core rates like the benchmarked machine's.")
    out: dict = {"target": asdict(t), "node_cores": node_cores, "sources": sources}
    rates = ingest_rates(results)
    out["ingest"], ledgers = plan_ingest(t, rates, node_cores, notes)
    out["ledgers"] = ledgers
    per_ledger_rate = t.sustained / ledgers
    out["proofs"] = plan_proofs(t, results, per_ledger_rate, node_cores, notes)
    ckpt_interval, tx_day_ledger = checkpoint_cadence(results, per_ledger_rate, t.anchor_interval_s)
    out["disk"] = plan_disk(t, results, ledgers, ckpt_interval, tx_day_ledger, notes)
    out["backends"] = log_backends(t, out["disk"])
    out["kafka"] = plan_kafka(t, rates.get("stream"), ledgers, notes)
    notes.assumptions.append(KURRENT_ASSUMPTION)
    out["chain"] = plan_chain(t, results, ledgers, ckpt_interval, tx_day_ledger, notes)
    out["latency"] = expected_latency(results, out["chain"], out["proofs"])
    out["assumptions"] = notes.assumptions
    out["warnings"] = notes.warnings
    out["missing"] = notes.missing
    return out


# -- rendering --------------------------------------------------------------------------------------

def _bytes(n: float) -> str:
    for unit, size in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:,.2f} {unit}"
    return f"{n:,.0f} B"


def _rate(x: float) -> str:
    """A rate as typed: 10,000 / 2.5 / 0.05."""
    return f"{x:,.0f}" if x >= 1 and float(x).is_integer() else f"{x:,.2f}" if x >= 1 else f"{x:g}"


def _ms(x: float) -> str:
    return f"{x:,.2f}" if x < 10 else f"{x:,.1f}" if x < 100 else f"{x:,.0f}"


def section_target(p: dict) -> list[str]:
    """The target, the result files behind the figures, and what is wrong or missing."""
    t = p["target"]
    lines = ["# Capacity plan", "",
             f"Target: **{t['sustained']:,.0f} records/s sustained, {t['peak']:,.0f} at peak**, records of "
             f"{t['record_bytes']:,.0f} bytes, kept {t['retention_years']:g} years; {_rate(t['proof_rps'])} proof requests/s; "
             f"an anchor every {t['anchor_interval_s']:g} s on {p['chain']['name']}; ingest over "
             f"{t['ingest_path']}; planned at {t['headroom']:.0%} utilisation; nodes of {p['node_cores']} cores.", ""]
    if p["sources"]:
        lines += ["Figures from the latest benchmark results:", ""]
        for name, src in sorted(p["sources"].items()):
            lines.append(f"- {name}: `{src['file']}` ({'quick' if src['quick'] else 'full'} run {src['stamp']}, "
                         f"{'this machine' if src['this_machine'] else 'ANOTHER machine: ' + src['machine']})")
        if any(src["quick"] for src in p["sources"].values()):
            lines.append("- Some figures come from a quick run (short windows): run `make bench` for planning figures.")
        lines.append("")
    for w in p["warnings"]:
        lines.append(f"**WARNING:** {w}.")
    for m in p["missing"]:
        lines.append(f"**Not measured:** {m}.")
    if p["warnings"] or p["missing"]:
        lines.append("")
    return lines


def section_ingest(p: dict) -> list[str]:
    t, ing = p["target"], p["ingest"]
    lines = ["## Ingest", ""]
    if "processes" in ing:
        lines += [f"- Per ingest process ({ing['path']}): **{ing['rate_per_process']:,.0f} records/s** measured at "
                  f"{ing['cores_per_process']:.2f} cores; {ing['source']}.",
                  f"- Usable at {t['headroom']:.0%}: {ing['usable_per_process']:,.0f} records/s per process.",
                  f"- **Ingest processes: {ing['processes']}** = ceil({t['peak']:,.0f} / {ing['usable_per_process']:,.0f}); "
                  f"**{ing['cores']:.1f} cores**; **{ing['nodes']} node(s)** of {p['node_cores']} cores "
                  f"({ing['processes_per_node']} process(es) each).",
                  f"- Ledgers: **{p['ledgers']}** ({'given' if t['ledgers'] else 'the fewest the single-writer bound allows'}; "
                  f"at least {ing['min_ledgers']}): one writer per ledger, so one ledger takes at most one process's rate.",
                  f"- Utilisation: {ing['utilisation_sustained']:.0%} at the sustained rate, {ing['utilisation_peak']:.0%} at peak.", ""]
    others = {k: v for k, v in ing["by_path"].items() if k != ing["path"]}
    if others:
        lines += ["Other ingest paths, same target:", ""]
        lines += ["| path | records/s per process | cores each | processes | cores | nodes | source |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
        for k, v in others.items():
            lines.append(f"| {k} | {v['rate_per_process']:,.0f} | {v['cores_per_process']:.2f} | {v['processes']} | "
                         f"{v['cores']:.1f} | {v['nodes']} | {v['source']} |")
        lines.append("")
    return lines


def section_proofs(p: dict) -> list[str]:
    t, pr = p["target"], p["proofs"]
    lines = ["## Proof serving", ""]
    if "processes" in pr:
        lines += [f"- Measured: {pr['measured_rate']:,.0f} bundles/s per server process at {pr['cores_per_process']:.2f} cores, "
                  f"{pr['server_us']:,.0f} µs of server CPU each, on a {pr['measured_tree']:,}-record ledger ({pr['source']}); "
                  f"bound: {pr['bound']}.",
                  f"- At {pr['tree_size_end']:,.0f} leaves per ledger (end of retention) a proof costs {pr['delta_us_p50']:+.0f} µs "
                  f"more ({pr['tree_how']}): {pr['rate_per_process']:,.0f} bundles/s per process, "
                  f"{pr['usable_per_process']:,.0f} at {t['headroom']:.0%}.",
                  f"- **Proof server processes: {pr['processes']}** = ceil({_rate(t['proof_rps'])} / {pr['usable_per_process']:,.0f}); "
                  f"**{pr['cores']:.1f} cores**; **{pr['nodes']} node(s)**. Each needs the Merkle nodes and indexes of "
                  "the ledgers it serves (a copy of their projections).", ""]
    return lines


def section_disk(p: dict) -> list[str]:
    t, d = p["target"], p["disk"]
    py = d["per_year"]
    lines = ["## Disk", "",
             f"{d['records_per_year']:,.0f} records a year; {d['bytes_per_record']:,.0f} bytes each before compression "
             f"(log {d['log_bytes_per_record']:,.0f}, Merkle nodes {d['merkle_bytes_per_record']}, indexes "
             f"{d['index_bytes_per_record']}).", "",
             "| | per year | over the retention |", "| --- | ---: | ---: |"]
    for key, label in (("log", "log (the record of truth)"), ("merkle", "Merkle nodes"), ("indexes", "indexes"),
                       ("checkpoints", f"checkpoints (one per {d['checkpoint_interval_s']:.2f} s per ledger)"),
                       ("anchors", "anchor events"), ("total", "**total**")):
        lines.append(f"| {label} | {_bytes(py[key])} | {_bytes(py[key] * t['retention_years'])} |")
    if d.get("measured_bytes_per_record"):
        ratio = d["measured_bytes_per_record"] / d["model_at_bench_record"]
        lines += ["", f"Measured: {d['measured_bytes_per_record']:,.0f} bytes on disk per record for the benchmark's "
                  f"~{d['bench_record_bytes']}-byte records (log, tree and indexes, with RocksDB's block compression), "
                  f"against {d['model_at_bench_record']:,.0f} by this model: {ratio:.0%}. Compressible records shrink like "
                  "that; hashes, signatures and sealed (encrypted) fields do not, so the table plans uncompressed."]
    lines.append("")
    return lines


def section_backends(p: dict) -> list[str]:
    b = p["backends"]
    return ["## Log backend: RocksDB or KurrentDB", "",
            f"- **RocksDB (embedded, default):** log and projections on each ingest node's own disk, "
            f"{_bytes(b['rocksdb_per_year'])} a year in all, split over the nodes by ledger; one copy, made durable by "
            "fsync (group commit): replicate it with backups or the disk layer. Each proof server keeps its own copy of "
            f"the projections of the ledgers it serves ({_bytes(b['projections_per_year'])} a year for all ledgers).",
            f"- **KurrentDB:** the log moves to the cluster: ~{b['kurrent_event_bytes']:,.0f} bytes per event "
            f"(record + framing + ~{KURRENT_EVENT_OVERHEAD} of KurrentDB record + {KURRENT_INDEX_BYTES} of index), "
            f"uncompressed, x {KURRENT_REPLICAS} replicas = {_bytes(b['kurrent_log_per_year'])} a year; the "
            f"projections ({_bytes(b['projections_per_year'])} a year) stay in RocksDB on the workers and proof servers. "
            "Every write goes through the cluster's leader: shard ledgers over several clusters once one leader's "
            "write rate (not measured here) is reached.", ""]


def section_kafka(p: dict) -> list[str]:
    t, k = p["target"], p["kafka"]
    lines = ["## Kafka", ""]
    if "partitions" in k:
        lines += [f"- Per partition: min(broker {k['broker_rate']:,.0f} records/s, consumer {k['consumer_rate']:,.0f} "
                  f"records/s{'' if k['consumer_measured'] else ' (assumed)'}) = {k['partition_rate']:,.0f}; bound: {k['bound']}.",
                  f"- **Partitions: {k['partitions']}** = max(ledgers {p['ledgers']}, ceil({t['peak']:,.0f} / "
                  f"({k['partition_rate']:,.0f} x {t['headroom']:g}))).",
                  f"- Broker disk for {KAFKA_RETENTION_DAYS} days x {KAFKA_REPLICATION} replicas: {_bytes(k['disk'])}.", ""]
    return lines


def section_chain(p: dict) -> list[str]:
    c = p["chain"]
    lines = ["## Chain", "",
             f"- Anchors every {c['anchor_every_s']:g} s per ledger = {c['tx_per_day_per_ledger']:,.0f} transactions a day per "
             f"ledger; **{c['tx_per_day']:,.0f} a day** for {p['ledgers']} ledger(s)."]
    if c.get("gas_per_day") is not None:
        lines += [f"- Gas: {c['gas_per_anchor']:,.0f} per anchor (measured; a ledger's first {c['gas_first_anchor']:,.0f}) = "
                  f"**{c['gas_per_day']:,.0f} gas a day**, {c['gas_per_year']:,.0f} a year; a one-transaction-per-record "
                  f"design would use {c['per_record_gas_per_day']:,.0f} gas a day."]
        if c.get("share_of_chain_gas") is not None:
            lines.append(f"- Share of the chain: {c['share_of_chain_gas']:.4%} of a {c['block_gas_limit']:,.0f}-gas block "
                         f"(anvil's limit, as measured; set yours) every {c['block_time_s']:g} s.")
    lines.append("")
    return lines


def section_latency(p: dict) -> list[str]:
    t, c, lat = p["target"], p["chain"], p["latency"]
    lines = ["## Latency to expect", "", "| who | what | p50 ms | p99 ms | from |", "| --- | --- | ---: | ---: | --- |"]
    path_key = {"http": "receipt_http_batch", "direct": "receipt_direct", "stream": None}[t["ingest_path"]]
    for key, who, what in (("receipt_http_single", "producer", "receipt, POST /records"),
                           ("receipt_http_batch", "producer", "receipt, POST /records/batch"),
                           ("receipt_direct", "producer", "receipt, Ledger.submit in process"),
                           ("checkpoint", "producer", "record in a signed checkpoint"),
                           ("anchored", "producer", f"record anchored on {c['name']}"),
                           ("proof", "court", "proof bundle, GET /proof")):
        if key in lat:
            mark = " (this plan's path)" if key == path_key else ""
            lines.append(f"| {who} | {what}{mark} | {_ms(lat[key]['p50_ms'])} | {_ms(lat[key]['p99_ms'])} | {lat[key]['source']} |")
    if t["ingest_path"] == "stream":
        lines.append("| producer | Kafka ack | - | - | the broker's, not measured here; the ledger's receipt follows the worker |")
    if c.get("anchor_latency"):
        al = c["anchor_latency"]
        lines += ["", f"Checkpoint -> anchor confirmed on this chain: p50 {_ms(al['p50_ms'])} ms, p99 {_ms(al['p99_ms'])} ms "
                  f"({al['how']}; row: {al['row']})." + (f" Check: {al['check']}." if al.get("check") else "")]
    return lines


def section_assumptions(p: dict) -> list[str]:
    return ["", "## Assumptions", ""] + [f"- {a}" for a in p["assumptions"]]


def render_markdown(p: dict) -> str:
    lines = []
    for section in (section_target, section_ingest, section_proofs, section_disk, section_backends, section_kafka,
                    section_chain, section_latency, section_assumptions):
        lines += section(p)
    return "\n".join(lines) + "\n"


# -- command line ----------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sustained", type=float, required=True, help="records/s, averaged over the year")
    parser.add_argument("--peak", type=float, required=True, help="records/s at the busiest moment (>= --sustained)")
    parser.add_argument("--record-bytes", type=float, required=True, help="one record as submitted (compact JSON), bytes")
    parser.add_argument("--retention-years", type=float, required=True, help="how long records are kept")
    parser.add_argument("--proof-rps", type=float, required=True, help="proof bundle requests/s to serve")
    parser.add_argument("--anchor-interval", type=float, default=10.0, help="seconds between anchors of a ledger (default 10)")
    parser.add_argument("--chain", choices=tuple(CHAINS), default="fisco-bcos", help="the anchoring chain (default fisco-bcos)")
    parser.add_argument("--headroom", type=float, default=0.7,
                        help="utilisation to plan each process at, of its measured rate (default 0.7)")
    parser.add_argument("--ledgers", type=int, default=None, help="ledgers the load is spread over (default: the fewest "
                                                                  "the single-writer-per-ledger bound allows)")
    parser.add_argument("--ingest-path", choices=INGEST_PATHS, default="http",
                        help="how producers submit: http (POST /records/batch), direct (Ledger.submit in process), "
                             "stream (Kafka); default http")
    parser.add_argument("--node-cores", type=int, default=None, help="cores per node (default: the benchmarked machine's)")
    parser.add_argument("--id-bytes", type=int, default=36, help="length of evidence and business ids (default 36, a UUID)")
    parser.add_argument("--block-time", type=float, default=None, help="the chain's block time in s (default: assumed per chain)")
    parser.add_argument("--confirmations", type=int, default=None, help="confirmations per anchor (default: per chain, 1)")
    parser.add_argument("--results", default=str(RESULTS), help="benchmark results folder (default bench/results)")
    parser.add_argument("--out", default=None, help="also write the plan as OUT.md and OUT.json")


def run_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> int:
    target = Target(sustained=args.sustained, peak=args.peak, record_bytes=args.record_bytes,
                    retention_years=args.retention_years, proof_rps=args.proof_rps,
                    anchor_interval_s=args.anchor_interval, chain=args.chain, headroom=args.headroom,
                    ledgers=args.ledgers, ingest_path=args.ingest_path, node_cores=args.node_cores,
                    id_bytes=args.id_bytes, block_time_s=args.block_time, confirmations=args.confirmations)
    try:
        target.validate()
    except PlanError as exc:
        if parser:
            parser.error(str(exc))
        print(f"evledger capacity: error: {exc}", file=sys.stderr)
        return 2
    results, sources = latest_results(args.results)
    if not results:
        print(f"evledger capacity: error: no benchmark results under {args.results}: run `make bench` first",
              file=sys.stderr)
        return 1
    p = plan(target, results, sources)
    md = render_markdown(p)
    print(md)
    if args.out:
        stem = Path(args.out)
        stem = stem.with_suffix("") if stem.suffix in (".md", ".json") else stem
        stem.parent.mkdir(parents=True, exist_ok=True)
        stem.with_suffix(".md").write_text(md)
        stem.with_suffix(".json").write_text(json.dumps(p, indent=2, default=str))
        print(f"wrote {stem.with_suffix('.md')} and {stem.with_suffix('.json')}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv), parser)


if __name__ == "__main__":
    sys.exit(main())
