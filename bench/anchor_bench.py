"""`make bench-anchor`: anchoring checkpoints to a chain, each figure next to what bounds it.
Writes bench/results/anchor-<UTC time>.{json,md}.

    python -m bench.anchor_bench [--quick] [--anchors N] [--tx-seconds S] [--tx-rate R]
                                 [--workdir DIR] [--out DIR]

The full run takes about 6-7 minutes; --quick about 75 s. Needs anvil (`make npm-tools`).

1. Anchor latency, checkpoint sealed -> AnchorConfirmed logged, p50/p99, on the in-process
   chain (py-evm, a block per transaction), on anvil mining a block per transaction, and on
   anvil with 1 s blocks and 1 or 2 confirmations. The AnchorWorker runs in its own thread
   with min_interval 0, so every checkpoint is anchored as soon as the worker sees it. One
   checkpoint at a time: a burst of records is sealed at once, the bench waits until its
   anchor is confirmed, sleeps a random fraction of a block/poll period (so the phase against
   the chain's and the worker's clocks is sampled, not fixed) and goes on; the first anchor of
   each ledger is a warm-up and left out. One row streams records instead (a checkpoint every
   0.2 s while anchors are in flight): there a checkpoint may wait behind the anchor before
   it, and its "covered" latency is sealed -> the first confirmed anchor of a size >= its own.
2. Gas per anchor on anvil (receipt gasUsed): a ledger's first anchor and later ones, next to
   a plain 21,000-gas transfer and a per-record write, measured the same way.
3. Chain transactions per million records at the default settings (65,536 records / 1 s per
   checkpoint, anchor_min_interval 10 s), from the policy for a few sustained rates, checked
   by a run at a paced rate with every default unchanged that counts the anchors actually
   sent; next to the one-transaction-per-record design of a typical on-chain evidence
   contract, with gas per million records for both.

Nothing is asserted: the figures are printed with what bounds each.
"""
from __future__ import annotations

import argparse
import glob
import json
import logging
import os
import random
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from anchor.chain import Web3Chain, deploy_registry
from anchor.worker import AnchorSettings, AnchorWorker
from bench.ingest_bench import warm_up_ledger
from bench.machine import machine_info, machine_line, write_and_print_result
from evledger_dev.devchain import ANVIL, Anvil, DEV_KEYS
from ingest import events as ev
from ingest.ledger import LedgerService, Receipt, SequencerSettings

RESULTS = Path(__file__).parent / "results"

BURST = 64  # records per checkpoint in the one-at-a-time latency rounds
STREAM_DELAY = 0.2  # batch_max_delay of the streaming latency row
PER_RECORD = 1_000_000  # one transaction per record: per million records
# A one-slot "evidence write" contract, the floor of a per-record design: its runtime stores 1
# at the slot named by the calldata's first word (PUSH1 1, PUSH1 0, CALLDATALOAD, SSTORE, STOP),
# behind an init code that returns it (CODECOPY of 7 bytes at offset 12, RETURN).
FLOOR_RUNTIME = "60016000355500"
FLOOR_INITCODE = "0x6007600c60003960076000f3" + FLOOR_RUNTIME


# -- records ------------------------------------------------------------------------------------

_HASHES = [os.urandom(32).hex() for _ in range(4096)]


def make_records(start: int, n: int) -> list[dict]:
    """n records of the documented shape (as bench.ingest_bench makes them); evidence ids
    unique within a ledger, content hashes drawn from a pool made before any clock starts."""
    return [{"content_hash": _HASHES[i % len(_HASHES)], "business_type": "account-opening",
             "occurred_at": "2026-11-26T09:00:00+08:00", "evidence_id": f"ev-{i}",
             "business_id": f"bf-{i // 4}", "attributes": {"branch": "sh-001", "channel": "app"}}
            for i in range(start, start + n)]


# -- instrumentation ------------------------------------------------------------------------------

class TimedChain:
    """Stands in for a ChainBackend and passes everything through; remembers when the worker
    first saw each transaction mined and its gasUsed, and how long submit_anchor took."""

    def __init__(self, inner):
        self._inner = inner
        self.mined_seen: dict[str, float] = {}
        self.gas: dict[str, int] = {}
        self.submit_seconds: list[float] = []

    def submit_anchor(self, *args, **kwargs):
        t0 = time.monotonic()
        try:
            return self._inner.submit_anchor(*args, **kwargs)
        finally:
            self.submit_seconds.append(time.monotonic() - t0)

    def tx_status(self, tx_hash):
        status = self._inner.tx_status(tx_hash)
        if status.state == "mined":
            self.mined_seen.setdefault(tx_hash, time.monotonic())
            self.gas[tx_hash] = status.gas_used
        return status

    def __getattr__(self, name):
        return getattr(self._inner, name)


class TimedWorker(AnchorWorker):
    """The AnchorWorker, unchanged but for a note of when each lifecycle event was logged
    (after the append returned, so the event is durable)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.logged: list[tuple[str, int, str | None, float]] = []  # (type, size, tx hash, monotonic)
        self.changed = threading.Condition()

    def _log_event(self, ledger, event_type: str, payload: dict) -> None:
        super()._log_event(ledger, event_type, payload)
        with self.changed:
            self.logged.append((event_type, payload["size"], payload.get("tx_hash"), time.monotonic()))
            self.changed.notify_all()

    def times(self, event_type: str) -> dict[int, float]:
        """size -> when that event was first logged for it."""
        out: dict[int, float] = {}
        for kind, size, _, t in list(self.logged):
            if kind == event_type:
                out.setdefault(size, t)
        return out

    def tx_of(self, size: int) -> str | None:
        for kind, s, tx_hash, _ in list(self.logged):
            if kind == ev.ANCHOR_SUBMITTED and s == size:
                return tx_hash
        return None

    def wait_anchor_confirmed(self, size: int, timeout: float) -> bool:
        """Until an anchor of a size >= `size` is confirmed (logged), or the timeout."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not any(k == ev.ANCHOR_CONFIRMED and s >= size for k, s, _, _ in self.logged):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(min(left, 0.5))
        return True


def percentiles(values_s) -> dict:
    """p50/p99/max in ms (with tens of samples, p99 is close to the max: read it so)."""
    a = np.asarray(values_s, dtype=np.float64) * 1000
    if a.size == 0:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None, "mean_ms": None, "n": 0}
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)),
            "max_ms": float(a.max()), "mean_ms": float(a.mean()), "n": int(a.size)}


# -- chains ---------------------------------------------------------------------------------------

class InProcess:
    """Context manager giving a fresh in-process chain (py-evm) with the registry deployed."""

    name = "in-process (py-evm)"
    block_time = None

    def __enter__(self):
        self.chain = Web3Chain.in_process()
        return self.chain

    def __exit__(self, *exc):
        return None


class AnvilChain:
    """A fresh anvil with the registry deployed by DEV_KEYS[0], which also anchors."""

    def __init__(self, block_time: float | None = None):
        self.block_time = block_time
        self.name = "anvil, " + (f"{block_time:g} s blocks" if block_time else "a block per transaction")

    def __enter__(self):
        from eth_account import Account
        from web3 import HTTPProvider, Web3

        self.anvil = Anvil(block_time=self.block_time).start()
        try:
            w3 = Web3(HTTPProvider(self.anvil.url))
            address = deploy_registry(w3, account=Account.from_key(DEV_KEYS[0]))
            self.chain = Web3Chain.from_rpc(self.anvil.url, address, DEV_KEYS[0])
        except BaseException:
            self.anvil.stop()
            raise
        return self.chain

    def __exit__(self, *exc):
        self.anvil.stop()


# -- 1. latency ------------------------------------------------------------------------------------

def latency_bound(row: dict) -> str:
    """Name what the latency is made of: the block time where there is one, else the worker's
    passes; with the largest measured part and its share of the summed medians."""
    parts = row["parts_p50_ms"]
    total = sum(v for v in parts.values() if v is not None) or 1.0
    name, value = max(parts.items(), key=lambda kv: kv[1] or 0)
    largest = f"largest part {name}, {value / total:.0%} of the summed medians"
    poll, bt, conf = row["poll_interval_s"], row["block_time_s"], row["confirmations"]
    rpc = row["submit_rpc_p50_ms"]
    if bt and conf > 1 and name == "burying":
        return (f"block time x (confirmations - 1) = {bt * (conf - 1):g} s: the anchoring block must have "
                f"{conf - 1} more on top, after waiting for the anchoring block itself (~{bt / 2:g} s on average) "
                f"({largest})")
    if bt:
        return (f"block time ({bt:g} s): the transaction waits for the next block (~{bt / 2:g} s on average), "
                f"then up to one worker pass ({poll:g} s) until its receipt is read ({largest})")
    return (f"the worker's poll interval ({poll:g} s): ~{poll / 2:g} s until a pass sees the checkpoint, then one "
            f"full pass before it reads the receipt (~{1.5 * poll * 1000:,.0f} ms together); the chain mines at "
            f"once; the rest is submit_anchor's RPCs (p50 {rpc:.0f} ms: call, estimateGas, nonce, fees, sign, send) "
            f"and two log appends ({largest})")


def anchor_while_streaming(ledger, worker: TimedWorker, n: int, timeout: float, failures: list[str]) -> float:
    """Records at 1,000/s in submits of 20 (a checkpoint every ~STREAM_DELAY s) until n anchors
    after the warm-up one are confirmed; when the warm-up anchor was."""
    stop_pacer = threading.Event()

    def pacer():
        k, t0 = 0, time.monotonic()
        while not stop_pacer.is_set():
            ledger.submit(make_records(k * 20, 20))
            k += 1
            delay = t0 + k * 0.02 - time.monotonic()
            if delay > 0:
                stop_pacer.wait(delay)

    thread = threading.Thread(target=pacer, daemon=True)
    thread.start()
    try:
        if not worker.wait_anchor_confirmed(1, timeout):
            failures.append("the warm-up anchor was not confirmed in time")
        warm_done = time.monotonic()
        deadline = time.monotonic() + timeout * (n + 1)
        while time.monotonic() < deadline:
            confirmed = worker.times(ev.ANCHOR_CONFIRMED)
            if sum(1 for t in confirmed.values() if t > warm_done) >= n:
                break
            with worker.changed:
                worker.changed.wait(0.5)
    finally:
        stop_pacer.set()
    thread.join()
    return warm_done


def anchor_bursts(ledger, worker: TimedWorker, n: int, timeout: float, jitter: float,
                  failures: list[str]) -> float | None:
    """n + 1 bursts of BURST records, one at a time: each waits until its anchor is confirmed,
    then a random pause of up to `jitter` s so the phase against the chain's and the worker's
    clocks is sampled; when the warm-up anchor was confirmed (None: it was not)."""
    warm_done = None
    for i in range(n + 1):
        ledger.submit(make_records(i * BURST, BURST))
        if not worker.wait_anchor_confirmed((i + 1) * BURST, timeout):
            failures.append(f"round {i}: size {(i + 1) * BURST} not confirmed within {timeout:.0f} s")
            break
        if i == 0:
            warm_done = time.monotonic()
        time.sleep(random.uniform(0, jitter))
    return warm_done


def anchor_timings(worker: TimedWorker, chain: TimedChain, sealed: dict[int, float]) -> list[dict]:
    """One row per confirmed anchor: its gas and its latency split into pickup, inclusion and burying."""
    submitted = worker.times(ev.ANCHOR_SUBMITTED)
    confirmed = worker.times(ev.ANCHOR_CONFIRMED)
    first_size = min(confirmed) if confirmed else None
    rows = []
    for size, t_conf in sorted(confirmed.items()):
        tx = worker.tx_of(size)
        seen = chain.mined_seen.get(tx)
        t_sealed, t_sub = sealed.get(size), submitted.get(size)
        rows.append({"size": size, "warmup": size == first_size, "gas_used": chain.gas.get(tx),
                     "total": t_conf - t_sealed if t_sealed is not None else None,
                     "pickup": t_sub - t_sealed if t_sealed is not None and t_sub is not None else None,
                     "inclusion": seen - t_sub if seen is not None and t_sub is not None else None,
                     "burying": t_conf - seen if seen is not None else None})
    return rows


def covered_latency(sealed: dict[int, float], confirmed: dict[int, float], warm_done: float | None) -> list[float]:
    """Streaming: for every checkpoint sealed after the warm-up, seconds until the first
    confirmed anchor of a size >= its own."""
    conf_sorted = sorted(confirmed.items())
    covered = []
    for size, t_sealed in sealed.items():
        if warm_done is None or t_sealed <= warm_done:
            continue
        t_cover = next((t for s, t in conf_sorted if s >= size), None)
        if t_cover is not None:
            covered.append(t_cover - t_sealed)
    return covered


def bench_latency(workdir: str, source, confirmations: int, poll: float, n: int, stream: bool,
                  tag: str) -> dict:
    """n anchors after one warm-up anchor; see the module docstring for the two modes."""
    data_dir = tempfile.mkdtemp(dir=workdir, prefix=f"lat-{tag}-")
    settings = (SequencerSettings(batch_max_delay=STREAM_DELAY) if stream else
                SequencerSettings(batch_max_items=BURST, batch_max_delay=STREAM_DELAY))
    service = LedgerService(data_dir, settings=settings)
    ledger = service.create_ledger("bench")
    sealed: dict[int, float] = {}
    ledger.on_sealed(lambda p: sealed.setdefault(p["size"], time.monotonic()))
    bt = source.block_time
    timeout = 30 + (bt or 0) * (confirmations + 2) * 3 + poll * 4
    failures: list[str] = []
    t_start = time.monotonic()
    with source as inner:
        chain = TimedChain(inner)
        worker = TimedWorker(service, chain, AnchorSettings(min_interval=0.0, confirmations=confirmations,
                                                            poll_interval=poll))
        worker.start()
        try:
            if stream:
                warm_done = anchor_while_streaming(ledger, worker, n, timeout, failures)
            else:
                warm_done = anchor_bursts(ledger, worker, n, timeout, max(poll, bt or 0), failures)
        finally:
            worker.stop()
        head = chain.head()
    service.close()
    shutil.rmtree(data_dir, ignore_errors=True)

    rows = anchor_timings(worker, chain, sealed)
    measured = [r for r in rows if not r["warmup"]]
    row = {"chain": source.name, "block_time_s": bt, "confirmations": confirmations, "poll_interval_s": poll,
           "mode": "stream" if stream else "one at a time", "anchors": len(measured),
           "latency": percentiles([r["total"] for r in measured if r["total"] is not None]),
           "parts_p50_ms": {k: percentiles([r[k] for r in measured if r[k] is not None])["p50_ms"]
                            for k in ("pickup", "inclusion", "burying")},
           "submit_rpc_p50_ms": float(np.median(chain.submit_seconds) * 1000) if chain.submit_seconds else 0.0,
           "worker_metric": percentiles(worker.metrics.confirm_latency[1:]),
           "gas_first": next((r["gas_used"] for r in rows if r["warmup"]), None),
           "gas_later": sorted({r["gas_used"] for r in measured if r["gas_used"] is not None}),
           "failed_events": worker.metrics.failed, "chain_errors": worker.metrics.chain_errors,
           "failures": failures, "chain_head": head, "seconds": time.monotonic() - t_start, "rows": rows}
    confirmed = worker.times(ev.ANCHOR_CONFIRMED)
    if stream and confirmed:
        covered = covered_latency(sealed, confirmed, warm_done)
        row["covered"] = percentiles(covered)
        row["checkpoints_sealed"] = len(covered)
    row["bound"] = latency_bound(row) if measured else "no anchor measured"
    if stream and row.get("covered", {}).get("n"):
        row["bound"] += ("; streaming, a checkpoint sealed while an anchor is in flight waits for it to be "
                         "confirmed, then goes in the next one (or is covered by a later, larger one)")
    return row


# -- 2. gas -----------------------------------------------------------------------------------------

def send_raw(w3, account, tx: dict) -> dict:
    """Sign and send with fees as the chain backend sets them; the receipt."""
    base = w3.eth.get_block("latest").get("baseFeePerGas")
    fees = ({"gasPrice": w3.eth.gas_price} if base is None else
            {"maxFeePerGas": 2 * base + 10**9, "maxPriorityFeePerGas": 10**9})
    tx = {"from": account.address, "nonce": w3.eth.get_transaction_count(account.address, "pending"),
          "chainId": w3.eth.chain_id, **fees, **tx}
    if "gas" not in tx:
        tx["gas"] = int(w3.eth.estimate_gas(tx) * 1.25) + 10_000
    receipt = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(
        account.sign_transaction(tx).raw_transaction), timeout=60)
    if receipt["status"] != 1:
        raise RuntimeError(f"reference transaction failed: {receipt}")
    return receipt


def bench_gas(k: int) -> dict:
    """On one fresh anvil (a block per transaction), all read from receipts' gasUsed."""
    from eth_account import Account
    from web3 import HTTPProvider, Web3

    source = AnvilChain()
    with source as chain:
        w3 = Web3(HTTPProvider(source.anvil.url))
        me, other = Account.from_key(DEV_KEYS[0]), Account.from_key(DEV_KEYS[1])
        block = w3.eth.get_block("latest")
        try:
            hardfork = source.anvil.rpc("anvil_nodeInfo").get("hardFork")
        except Exception:  # older anvils: not worth failing the bench over
            hardfork = None
        first, later = [], []
        for i in range(k):  # k ledgers, a first anchor and three later ones each
            origin = f"evledger/gas-{i}"
            for size in (1000, 2000, 3000, 4000):
                tx = chain.submit_anchor(origin, size, os.urandom(32))
                status = chain.tx_status(tx.tx_hash)
                while status.state == "pending":  # sent; its receipt comes with the block
                    time.sleep(0.01)
                    status = chain.tx_status(tx.tx_hash)
                (first if size == 1000 else later).append(status.gas_used)
        transfer = [send_raw(w3, me, {"to": other.address, "value": 1, "gas": 21_000})["gasUsed"] for _ in range(k)]
        floor_addr = send_raw(w3, me, {"data": FLOOR_INITCODE})["contractAddress"]
        floor = [send_raw(w3, me, {"to": floor_addr, "data": "0x" + os.urandom(32).hex()})["gasUsed"]
                 for _ in range(k)]
    return {"chain": source.name, "hardfork": hardfork, "block_gas_limit": block["gasLimit"],
            "base_fee_per_gas": block.get("baseFeePerGas"), "samples": k,
            "anchor_first": first, "anchor_later": later, "transfer": transfer, "per_record_floor": floor,
            "anchor_first_median": float(np.median(first)), "anchor_later_median": float(np.median(later)),
            "transfer_median": float(np.median(transfer)), "per_record_floor_median": float(np.median(floor)),
            "bound_first": ("21,000 base + calldata + the writes: root and block/time in two new slots (2 x 22,100), "
                            "latestSize zero -> non-zero (22,100), authorization read, Anchored event (3 topics)"),
            "bound_later": ("as the first, but latestSize is non-zero -> non-zero (5,000 instead of 22,100): "
                            "17,100 less"),
            "bound_floor": "21,000 base + 32 bytes of calldata + one new storage slot (22,100); no event, no check"}


# -- 3. transactions per million records ---------------------------------------------------------

def durable_peak() -> tuple[float | None, str | None]:
    """This machine's measured durable ingest peak, from the newest ingest benchmark result."""
    files = sorted(glob.glob(str(RESULTS / "ingest-*.json")))
    for path in reversed(files):
        try:
            peak = json.loads(Path(path).read_text()).get("durable_peak", {}).get("records_per_s")
        except (OSError, ValueError):
            continue
        if peak:
            return float(peak), Path(path).name
    return None, None


def policy(rate: float, seq: SequencerSettings, anchor: AnchorSettings) -> dict:
    """What the policy allows at a sustained `rate` into one ledger: a checkpoint every
    min(batch_max_items / rate, batch_max_delay) s, an anchor at most every min_interval s
    (and never more often than checkpoints), so at most 1e6 / (rate x interval) anchors per
    million records. The worker looks every poll_interval, so the real interval is min_interval
    rounded up to a pass (10-11 s at the defaults): this is a ceiling."""
    checkpoint_interval = min(seq.batch_max_items / rate, seq.batch_max_delay)
    anchor_interval = max(anchor.min_interval, checkpoint_interval)
    tx_per_m = PER_RECORD / (rate * anchor_interval)
    bound = (f"anchor_min_interval ({anchor.min_interval:g} s)" if anchor.min_interval >= checkpoint_interval
             else f"checkpoint interval ({checkpoint_interval:.2f} s)")
    return {"rate": rate, "checkpoint_interval_s": checkpoint_interval,
            "checkpoints_per_million": PER_RECORD / (rate * checkpoint_interval),
            "anchor_interval_s": anchor_interval, "tx_per_million": tx_per_m,
            "records_per_anchor": rate * anchor_interval, "ratio_vs_per_record": PER_RECORD / tx_per_m,
            "bound": bound}


def settings_of(seq: SequencerSettings, anchor: AnchorSettings) -> dict:
    """The settings section 3's figures depend on, as the result records them."""
    return {"batch_max_items": seq.batch_max_items, "batch_max_delay_s": seq.batch_max_delay,
            "anchor_min_interval_s": anchor.min_interval, "confirmations": anchor.confirmations,
            "poll_interval_s": anchor.poll_interval}


def bench_tx_run(workdir: str, rate: float, seconds: float, submit_size: int = 200) -> dict:
    """Every default unchanged (sequencer and anchor settings), anvil mining a block per
    transaction; one open-loop pacer submits `submit_size` records every submit_size/rate s
    for `seconds`; the anchors the worker actually sends in that window are counted."""
    data_dir = tempfile.mkdtemp(dir=workdir, prefix="txrun-")
    seq, anchor = SequencerSettings(), AnchorSettings()
    service = LedgerService(data_dir, settings=seq)
    ledger = service.create_ledger("bench")
    sealed: list[float] = []
    ledger.on_sealed(lambda p: sealed.append(time.monotonic()))
    source = AnvilChain()
    acked = errors = late = 0
    with source as inner:
        chain = TimedChain(inner)
        worker = TimedWorker(service, chain, anchor)
        worker.start()
        period = submit_size / rate
        t0 = time.monotonic()
        k = 0
        try:
            while True:
                scheduled = t0 + k * period
                if scheduled >= t0 + seconds:
                    break
                now = time.monotonic()
                if scheduled > now:
                    time.sleep(scheduled - now)
                elif now - scheduled > 0.1:
                    late += 1
                for r in ledger.submit(make_records(k * submit_size, submit_size)):
                    if isinstance(r, Receipt):
                        acked += 1
                    else:
                        errors += 1
                k += 1
            t_end = time.monotonic()
        finally:
            worker.stop()
        wall = t_end - t0
        sends = sorted(t for kind, _, _, t in worker.logged if kind == ev.ANCHOR_SUBMITTED and t0 <= t <= t_end)
        gas = sorted(chain.gas.values())
    service.close()
    shutil.rmtree(data_dir, ignore_errors=True)
    achieved = acked / wall
    intervals = np.diff(sends) if len(sends) > 1 else np.array([])
    mean_interval = float(intervals.mean()) if intervals.size else None
    return {"target_records_per_s": rate, "achieved_records_per_s": achieved, "seconds": wall, "records": acked,
            "errors": errors, "late_submits": late, "checkpoints": sum(1 for t in sealed if t0 <= t <= t_end),
            "anchors_sent": len(sends), "anchor_send_offsets_s": [t - t0 for t in sends],
            "anchor_intervals_s": intervals.tolist(), "mean_anchor_interval_s": mean_interval,
            "tx_per_million_measured": len(sends) / acked * PER_RECORD if acked else None,
            "tx_per_million_steady": PER_RECORD / (achieved * mean_interval) if mean_interval else None,
            "policy_at_achieved": policy(achieved, seq, anchor), "gas_used": gas,
            "settings": settings_of(seq, anchor)}


# -- report -----------------------------------------------------------------------------------------

def fmt_ms(v) -> str:
    return "-" if v is None else f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def latency_line(r: dict) -> str:
    lat, parts = r["latency"], r["parts_p50_ms"]
    text = (f"  {r['chain']:<32} conf {r['confirmations']} poll {r['poll_interval_s']:<4g} {r['mode']:<13} "
            f"n={lat['n']:>3}: p50 {fmt_ms(lat['p50_ms']):>6} ms  p99 {fmt_ms(lat['p99_ms']):>6} ms  "
            f"(pickup {fmt_ms(parts['pickup'])} + inclusion {fmt_ms(parts['inclusion'])} + burying "
            f"{fmt_ms(parts['burying'])} ms, p50s)")
    if r.get("covered", {}).get("n"):
        c = r["covered"]
        text += (f"\n  {'':<32} every checkpoint, sealed -> covered by a confirmed anchor: n={c['n']} "
                 f"p50 {fmt_ms(c['p50_ms'])} ms  p99 {fmt_ms(c['p99_ms'])} ms")
    text += f"\n  {'':<32} bound: {r['bound']}"
    if r["failures"] or r["failed_events"] or r["chain_errors"]:
        text += (f"\n  {'':<32} PROBLEMS: {'; '.join(r['failures']) or '-'}; AnchorFailed {r['failed_events']}, "
                 f"chain errors {r['chain_errors']}")
    return text


def section_latency(result: dict) -> list[str]:
    """Section 1: a row per chain and setting, the streaming row's coverage, and what the latency includes."""
    lines = ["## 1. Anchor latency: checkpoint sealed -> AnchorConfirmed logged", "",
             "| chain | confirmations | worker poll | mode | anchors | p50 ms | p99 ms | max ms | pickup p50 | "
             "inclusion p50 | burying p50 | bound |",
             "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in result["latency"]:
        lat, p = r["latency"], r["parts_p50_ms"]
        lines.append(f"| {r['chain']} | {r['confirmations']} | {r['poll_interval_s']:g} s | {r['mode']} | {lat['n']} | "
                     f"{fmt_ms(lat['p50_ms'])} | {fmt_ms(lat['p99_ms'])} | {fmt_ms(lat['max_ms'])} | "
                     f"{fmt_ms(p['pickup'])} | {fmt_ms(p['inclusion'])} | {fmt_ms(p['burying'])} | {r['bound']} |")
    streams = [r for r in result["latency"] if r.get("covered", {}).get("n")]
    for r in streams:
        c = r["covered"]
        lines += ["", f"Streaming row ({r['chain']}, {r['confirmations']} confirmation(s)): every checkpoint sealed "
                  f"(one each ~{STREAM_DELAY} s, {r['checkpoints_sealed']} of them), sealed -> first confirmed anchor "
                  f"covering it: p50 {fmt_ms(c['p50_ms'])} ms, p99 {fmt_ms(c['p99_ms'])} ms, max "
                  f"{fmt_ms(c['max_ms'])} ms."]
    lines += ["", "What the latency includes. It starts when the sequencer projects the logged, signed "
              "`CheckpointSealed` (its `on_sealed` observers run; the worker cannot see a checkpoint earlier) "
              "and ends when `AnchorConfirmed` has been appended to the ledger's log (durable). Parts: "
              "**pickup** = sealed -> `AnchorSubmitted` logged: waiting for the worker's next pass (its poll "
              "interval), reading the contract's latest anchor, simulating the call, estimating gas, fetching "
              "the nonce and fees, signing, and the log append (the event is logged before the transaction "
              "leaves); **inclusion** = then until the worker first reads a receipt: sending, mining (at once "
              "with a block per transaction; the next block otherwise) and the wait for the worker's next "
              "pass; **burying** = then until `AnchorConfirmed` is logged: waiting for `confirmations` blocks "
              "(counting the anchoring one), re-checking the block hash, reading the anchor back from the "
              "contract, and the log append. One at a time: a burst of "
              f"{BURST} records is sealed at once, the bench waits for its anchor, then sleeps a random "
              "fraction of max(block time, poll) so the phase is sampled; each ledger's first anchor is a warm-up "
              "and left out. The worker runs with min_interval 0; at the default (10 s) an anchor waits for the "
              "interval instead, which is section 3's business. Not included: a record's wait for its "
              "checkpoint (up to batch_max_delay, 1 s by default, see the ingest benchmark).", "",
              "Cross-check, the worker's own `metrics.confirm_latency` p50 (ms): "
              + "; ".join(f"{r['chain']} conf {r['confirmations']} poll {r['poll_interval_s']:g}: "
                          f"{fmt_ms(r['worker_metric']['p50_ms'])}" for r in result["latency"]) + ".", ""]
    return lines


def section_gas(result: dict) -> list[str]:
    """Section 2: gas per anchor next to a plain transfer and a one-slot write."""
    g = result["gas"]
    lines = [f"## 2. Gas per anchor ({g['chain']}, hardfork {g['hardfork'] or '?'}, receipt gasUsed, "
             f"{g['samples']} samples each)", "",
             "| transaction | gasUsed (median) | min | max | bound |", "| --- | ---: | ---: | ---: | --- |",
             f"| anchor, a ledger's first | {g['anchor_first_median']:,.0f} | {min(g['anchor_first']):,} | "
             f"{max(g['anchor_first']):,} | {g['bound_first']} |",
             f"| anchor, later ones | {g['anchor_later_median']:,.0f} | {min(g['anchor_later']):,} | "
             f"{max(g['anchor_later']):,} | {g['bound_later']} |",
             f"| reference: plain transfer of 1 wei | {g['transfer_median']:,.0f} | {min(g['transfer']):,} | "
             f"{max(g['transfer']):,} | the protocol's fixed cost of any transaction |",
             f"| reference: one-slot write (floor of a per-record design) | {g['per_record_floor_median']:,.0f} | "
             f"{min(g['per_record_floor']):,} | {max(g['per_record_floor']):,} | {g['bound_floor']} |", "",
             "Anchors the worker sent in section 1 (gasUsed, first / later): "
             + "; ".join(f"{r['chain']}: {r['gas_first'] or 0:,} / {', '.join(f'{x:,}' for x in r['gas_later']) or '-'}"
                         for r in result["latency"] if r["mode"] == "one at a time" and r["confirmations"] == 1
                         and r["poll_interval_s"] < 0.5) + ". Later anchors vary by a few hundred gas with "
             "the zero bytes in their calldata (16 gas a non-zero byte, 4 a zero one).", ""]
    return lines


def section_tx_per_million(result: dict) -> list[str]:
    """Section 3: chain transactions per million records by ingest rate, checked by a run at the
    defaults, and what the chain could carry of a per-record design."""
    tx = result["tx_per_million"]
    per_rec = tx["per_record_gas"]
    lines = ["## 3. Chain transactions per million records, defaults "
             f"({tx['settings']['batch_max_items']:,} records / {tx['settings']['batch_max_delay_s']:g} s per "
             f"checkpoint, anchor_min_interval {tx['settings']['anchor_min_interval_s']:g} s), one ledger", "",
             f"Per-record design: one transaction per record = {PER_RECORD:,} per million records. Its gas per "
             f"record is assumed to be a fresh-key anchor() of this registry ({per_rec['typical']:,.0f}: stores the "
             "hash, block number and time, updates a per-key index, checks the caller, emits an event, which is "
             f"what a typical on-chain evidence contract does per record), with a floor of {per_rec['floor']:,.0f} "
             "(one storage slot, no event, no check: nothing cheaper stores a record on chain). Anchor gas: "
             f"{tx['gas_later']:,.0f} (later anchors, section 2).", "",
             "| ingest rate (records/s) | checkpoint every | anchor every | records per anchor | chain tx per "
             "million records | ratio (per-record / ours) | gas per million records (ours) | gas per million "
             "records (per-record: typical / floor) | gas ratio (typical / floor) | bound |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for row in tx["policy"]:
        lines.append(f"| {row['rate']:,.0f} ({row['label']}) | {row['checkpoint_interval_s']:.2f} s | "
                     f"{row['anchor_interval_s']:g} s | {row['records_per_anchor']:,.0f} | {row['tx_per_million']:,.2f} | "
                     f"{row['ratio_vs_per_record']:,.0f}x | {row['gas_per_million']:,.0f} | "
                     f"{per_rec['typical'] * PER_RECORD:,.0f} / {per_rec['floor'] * PER_RECORD:,.0f} | "
                     f"{row['gas_ratio_typical']:,.0f}x / {row['gas_ratio_floor']:,.0f}x | {row['bound']} |")
    run = tx["run"]
    steady = run["tx_per_million_steady"]
    lines += ["", "The rows are the policy's ceiling: anchors per million records = 10^6 / (rate x "
              "max(anchor_min_interval, checkpoint interval)); the worker also waits for each anchor's confirmation "
              "before the next, so a chain slower to confirm than anchor_min_interval stretches the interval "
              "further. The ratio is rate x interval: the number of records one anchor covers. Per ledger: L "
              "ledgers sharing the rate make L times the transactions.", "",
              f"Checked by a run with every default unchanged (anvil, a block per transaction; worker poll "
              f"{run['settings']['poll_interval_s']:g} s): {run['seconds']:.0f} s at {run['achieved_records_per_s']:,.0f} "
              f"records/s (target {run['target_records_per_s']:,.0f}; {run['late_submits']} submits over 100 ms late), "
              f"{run['records']:,} records, {run['checkpoints']} checkpoints, **{run['anchors_sent']} anchors sent** "
              f"(at {', '.join(f'{t:.1f}' for t in run['anchor_send_offsets_s'])} s) = "
              f"{run['tx_per_million_measured']:,.2f} per million records over the run"
              + (f"; from the mean interval between sends ({run['mean_anchor_interval_s']:.2f} s), "
                 f"{steady:,.2f} per million in steady state" if steady else "")
              + f", against the policy's {run['policy_at_achieved']['tx_per_million']:,.2f} at that rate. "
              "A short run counts the first anchor, which goes out at the worker's first pass after the first "
              "checkpoint (1-2 s in), on top of the steady state.", ""]
    cap = tx["capacity"]
    lines += [f"Chain capacity (inference, not measured): with a {cap['block_gas_limit']:,}-gas block every "
              f"{cap['block_time_s']:g} s, the per-record design fits at most {cap['per_record_typical_per_s']:,.0f} "
              f"records/s ({cap['per_record_floor_per_s']:,.0f} at the floor's gas), the whole chain given to it; "
              f"anchoring uses {cap['anchor_share_per_ledger']:.4%} of that chain's gas per ledger, whatever the ingest rate.", ""]
    return lines


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = ["# Anchor benchmark", "", f"Machine: {machine_line(m)}", "",
             f"Chains: {result['anvil_version']}; web3.py {result['web3']}, eth-tester {result['eth_tester']} "
             f"(py-evm {result['py_evm']}). {'Quick run (--quick): few samples.' if result['quick'] else ''}", ""]
    lines += section_latency(result) + section_gas(result) + section_tx_per_million(result)
    lines += [f"Whole run: {result['total_seconds']:.0f} s.", ""]
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few samples, for a smoke check (about 80 s)")
    parser.add_argument("--anchors", type=int, default=None,
                        help="anchors measured per fast latency row (default 40; --quick 10)")
    parser.add_argument("--tx-seconds", type=float, default=None,
                        help="length of the default-settings run of section 3 (default 60; --quick 20)")
    parser.add_argument("--tx-rate", type=float, default=20_000, help="its paced ingest rate, records/s")
    parser.add_argument("--workdir", default=tempfile.gettempdir(), help="where data folders go")
    parser.add_argument("--out", default=str(RESULTS), help="results folder")
    args = parser.parse_args(argv)
    if not ANVIL.exists():
        parser.error(f"{ANVIL} is missing: run `make npm-tools`")
    return args


def chain_versions() -> dict:
    """The versions of what the anchors go through: web3.py, eth-tester, py-evm and anvil."""
    from importlib.metadata import version

    return {"web3": version("web3"), "eth_tester": version("eth-tester"), "py_evm": version("py-evm"),
            "anvil_version": subprocess.run([str(ANVIL), "--version"], capture_output=True,
                                            text=True).stdout.splitlines()[0].strip()}


def latency_scenarios(quick: bool, anchors: int | None) -> list[tuple]:
    """Section 1's rows: (chain source, confirmations, worker poll, anchors, stream)."""
    n_fast = anchors or (10 if quick else 40)
    n_slow = max(3, n_fast // 3) if quick else n_fast // 2  # rows with the default 1 s poll
    n_block = max(5, n_fast // 2) if quick else n_fast  # rows with 1 s blocks
    return [
        (InProcess(), 1, 0.05, n_fast, False),
        (InProcess(), 1, 1.0, n_slow, False),
        (AnvilChain(), 1, 0.05, n_fast, False),
        (AnvilChain(), 1, 1.0, n_slow, False),
        (AnvilChain(1), 1, 0.05, n_block, False),
        (AnvilChain(1), 2, 0.05, n_block, False),
        (AnvilChain(1), 1, 0.05, n_block, True),
    ]


def measure_latency_rows(workdir: str, scenarios: list[tuple]) -> list[dict]:
    """bench_latency for each (chain source, confirmations, poll, anchors, stream), each row printed."""
    rows = []
    for i, (source, conf, poll, n, stream) in enumerate(scenarios):
        r = bench_latency(workdir, source, conf, poll, n, stream, str(i))
        rows.append(r)
        print(latency_line(r), flush=True)
    return rows


def print_gas(gas: dict) -> None:
    print(f"  anchor, first of a ledger: {gas['anchor_first_median']:,.0f} gas - bound: {gas['bound_first']}")
    print(f"  anchor, later:             {gas['anchor_later_median']:,.0f} gas - bound: {gas['bound_later']}")
    print(f"  reference, plain transfer: {gas['transfer_median']:,.0f} gas - the fixed cost of any transaction")
    print(f"  reference, one-slot write: {gas['per_record_floor_median']:,.0f} gas - bound: {gas['bound_floor']}",
          flush=True)


def policy_rates(checking_rate: float | None = None) -> list[tuple[float, str]]:
    """(records/s, what that rate is) for section 3's rows: low, medium, the checking run's
    target where there is one, this machine's durable peak, and the ingest goal."""
    peak, peak_file = durable_peak()
    rates = [(1_000, "low"), (10_000, "medium")]
    if checking_rate is not None:
        rates.append((checking_rate, "the checking run's target"))
    rates.append((peak, f"this machine's measured durable peak, {peak_file}") if peak else
                 (60_000, "about this machine's durable peak (no ingest result found)"))
    rates.append((200_000, "the ingest goal"))
    return rates


def policy_rows(rates: list[tuple[float, str]], gas: dict, seq: SequencerSettings, anchor: AnchorSettings) -> list[dict]:
    """The policy at each rate, with gas per million records next to the per-record design's."""
    g_later, g_typical, g_floor = gas["anchor_later_median"], gas["anchor_first_median"], gas["per_record_floor_median"]
    rows = []
    for rate, label in rates:
        row = policy(rate, seq, anchor)
        row.update(label=label, gas_per_million=row["tx_per_million"] * g_later,
                   gas_ratio_typical=g_typical * PER_RECORD / (row["tx_per_million"] * g_later),
                   gas_ratio_floor=g_floor * PER_RECORD / (row["tx_per_million"] * g_later))
        rows.append(row)
    return rows


def tx_per_million(run: dict, rows: list[dict], gas: dict, anchor: AnchorSettings) -> dict:
    """Section 3's result: the policy rows, the checking run, and the chain capacity inferred from the gas."""
    g_later, g_typical, g_floor = gas["anchor_later_median"], gas["anchor_first_median"], gas["per_record_floor_median"]
    block_time = 1.0
    return {
        "settings": run["settings"], "policy": rows, "run": run, "gas_later": g_later,
        "per_record_gas": {"typical": g_typical, "floor": g_floor,
                           "assumption": "typical = this registry's anchor() under a fresh ledger key per record; "
                                         "floor = a contract storing one slot per record"},
        "capacity": {"block_gas_limit": gas["block_gas_limit"], "block_time_s": block_time,
                     "per_record_typical_per_s": gas["block_gas_limit"] / g_typical / block_time,
                     "per_record_floor_per_s": gas["block_gas_limit"] / g_floor / block_time,
                     "anchor_share_per_ledger": g_later / (anchor.min_interval / block_time) / gas["block_gas_limit"]}}


def print_tx_per_million(tx: dict, anchor: AnchorSettings) -> None:
    per_rec, run = tx["per_record_gas"], tx["run"]
    g_typical, g_floor = per_rec["typical"], per_rec["floor"]
    for row in tx["policy"]:
        print(f"  {row['rate']:>9,.0f} records/s ({row['label']}): checkpoint every {row['checkpoint_interval_s']:.2f} s, "
              f"anchor every {row['anchor_interval_s']:g} s -> {row['tx_per_million']:8,.2f} tx per million records "
              f"vs {PER_RECORD:,} one-per-record = 1/{row['ratio_vs_per_record']:,.0f}; gas per million "
              f"{row['gas_per_million']:,.0f} vs {g_typical * PER_RECORD:,.0f} (floor {g_floor * PER_RECORD:,.0f}) "
              f"= 1/{row['gas_ratio_typical']:,.0f} (floor 1/{row['gas_ratio_floor']:,.0f}) - bound: {row['bound']}")
    steady = run["tx_per_million_steady"]
    print(f"  checking run: {run['seconds']:.0f} s at {run['achieved_records_per_s']:,.0f} records/s "
          f"({run['records']:,} records, {run['late_submits']} submits >100 ms late), {run['checkpoints']} checkpoints, "
          f"{run['anchors_sent']} anchors sent at "
          f"[{', '.join(f'{t:.1f}' for t in run['anchor_send_offsets_s'])}] s -> "
          f"{run['tx_per_million_measured']:,.2f} tx per million over the run"
          + (f", {steady:,.2f} steady (mean interval {run['mean_anchor_interval_s']:.2f} s)" if steady else "")
          + f"; policy at that rate {run['policy_at_achieved']['tx_per_million']:,.2f} - bound: anchor_min_interval "
          f"({anchor.min_interval:g} s) rounded up to a worker pass ({anchor.poll_interval:g} s)", flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    quick = args.quick
    tx_seconds = args.tx_seconds or (20.0 if quick else 60.0)
    random.seed(1)
    # The chain module warns that the in-process chain is ephemeral, once per fresh chain: say it
    # once, indented under the figures, and keep the worker's info lines out.
    logging.basicConfig(level=logging.WARNING, format="  [%(name)s] %(message)s")
    result = {"machine": machine_info(), "quick": quick, **chain_versions()}
    print("machine:", machine_line(result["machine"]))
    print(f"chains: {result['anvil_version']}; web3.py {result['web3']}, eth-tester {result['eth_tester']} "
          f"(py-evm {result['py_evm']})", flush=True)
    started = time.perf_counter()
    workdir = tempfile.mkdtemp(dir=args.workdir, prefix="evledger-anchor-bench-")
    try:
        warm_up_ledger(os.path.join(workdir, "warm"), make_records(0, 2000))
        print("1. anchor latency, checkpoint sealed -> AnchorConfirmed logged (worker min_interval 0; first anchor "
              "of each ledger left out as a warm-up; pickup = sealed -> AnchorSubmitted logged, inclusion = -> "
              "receipt first read, burying = -> AnchorConfirmed logged)", flush=True)
        result["latency"] = measure_latency_rows(workdir, latency_scenarios(quick, args.anchors))
        print("2. gas per anchor (anvil, receipt gasUsed) ...", flush=True)
        gas = result["gas"] = bench_gas(3 if quick else 5)
        print_gas(gas)
        print(f"3. chain transactions per million records at the defaults; checking run: {tx_seconds:.0f} s at "
              f"{args.tx_rate:,.0f} records/s, every default unchanged, anvil ...", flush=True)
        run = bench_tx_run(workdir, args.tx_rate, tx_seconds)
        seq, anchor = SequencerSettings(), AnchorSettings()
        rows = policy_rows(policy_rates(args.tx_rate), gas, seq, anchor)
        result["tx_per_million"] = tx_per_million(run, rows, gas, anchor)
        print_tx_per_million(result["tx_per_million"], anchor)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["total_seconds"] = time.perf_counter() - started
    written = write_and_print_result(args.out, "anchor", result, markdown(result))
    print(f"total {result['total_seconds']:.0f} s; wrote {written} and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
