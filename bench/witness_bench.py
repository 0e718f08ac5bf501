"""`make bench-witness`: what cosigning by one local witness adds to record -> checkpoint, next to
the same load without witnesses, in the same run. Writes bench/results/witness-<UTC time>.{json,md}.

    python -m bench.witness_bench [--quick] [--seconds S] [--batch N] [--interval S] [--repeats K]
                                  [--workdir DIR] [--out DIR]

Goal: cosigning_added_p99_ms <= 50 (docs/witness.md; the witnessed p99 of record -> checkpoint
minus the reference p99, both measured here).

Every configuration runs real processes on 127.0.0.1: `evledger serve` (in-process chain,
--batch-max-delay 0.1, the default batch size, --anchor-min-interval 3600 so anchoring stays out
of the way of both) on a fresh data directory, and for the witnessed one `evledger witness init`
+ `evledger witness serve --log <the ledger's verifier key>` with `evledger serve
--witness-config` naming it (threshold 1). The ledger is created first (its key is what the
witness is told), then the service starts again with or without the witness: the same steps
for both. A producer posts `--batch` records every `--interval` seconds for `--seconds` (paced on
a fixed schedule) after a warm-up checkpoint; the two configurations alternate, `--repeats`
times each, so the machine's noise falls on both alike.

Per record, in the service's clock:
- reference: sealed_at of the first checkpoint covering it - its received_at;
- witnessed: cosigned_at (the CheckpointCosigned event logged) of the first checkpoint covering
  it that carries the witness's cosignature - its received_at. Its sealed_at figure is shown too.
Per checkpoint of the witnessed runs: cosigned_at - sealed_at, and the service's own histogram
evledger_witness_cosign_latency_seconds.

Where the time goes, measured after the runs: the witness's add-checkpoint round trip over HTTP
(a fresh `evledger witness serve` fed the witnessed run's checkpoints in order with their
consistency proofs, as the collector sends them: SM2 verify, proof, state fsync, SM2 cosign), the
same request at the size it holds (no state write), and in this process the witness's state write
(witness.state's write, fsync, rename, directory fsync, on the same disk) and the SM2 pieces: the
ledger's checkpoint signature verified, a cosignature made, a cosignature verified.

Nothing is asserted (checkpoints left uncosigned, collector errors and refusals are counted); the
exit status is 1 when the goal is not met.
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from bench.machine import machine_info, machine_line, write_and_print_result
from evledger_common.stopping import terminate
from evledger_dev.devbroker import free_port
from ingest.leaf import parse_received_at

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parents[1]
GOAL_ADDED_P99_MS = 50.0
BATCH_MAX_DELAY = 0.1
LEDGER = "bench"
WITNESS_NAME = "bench.example/witness"
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


# -- processes ----------------------------------------------------------------------------------

def _wait_up(proc: subprocess.Popen, url: str, stderr: Path, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited {proc.returncode}: {stderr.read_text()[-2000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start within {timeout:.0f} s")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen) -> None:
    terminate(proc, 60)


@contextlib.contextmanager
def served(data_dir: Path, *serve_args: str):
    """`evledger serve` on 127.0.0.1 (a free port), its stderr in <data dir>.stderr; stopped at the end."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    stderr = Path(f"{data_dir}.stderr")
    with open(stderr, "a") as err:
        proc = subprocess.Popen([sys.executable, "-m", "proof_api.cli", "--data-dir", str(data_dir),
                                 "--batch-max-delay", str(BATCH_MAX_DELAY), "serve", "--host", "127.0.0.1",
                                 "--port", str(port), "--anchor-min-interval", "3600", *serve_args],
                                cwd=REPO, stdout=subprocess.DEVNULL, stderr=err, env=ENV)
    try:
        _wait_up(proc, f"{base}/healthz", stderr, "evledger serve")
        yield base
    finally:
        _stop(proc)


@contextlib.contextmanager
def witness_served(directory: Path, vkey: str):
    """`evledger witness init` (once) and `evledger witness serve --log VKEY`; yields (URL, its key)."""
    if not (directory / "witness.key").exists():
        subprocess.run([sys.executable, "-m", "proof_api.cli", "witness", "init", "--dir", str(directory),
                        "--name", WITNESS_NAME], cwd=REPO, capture_output=True, text=True, check=True, env=ENV)
    wkey = subprocess.run([sys.executable, "-m", "proof_api.cli", "witness", "key", "--dir", str(directory)],
                          cwd=REPO, capture_output=True, text=True, check=True, env=ENV).stdout.strip()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    stderr = Path(f"{directory}.stderr")
    with open(stderr, "a") as err:
        proc = subprocess.Popen([sys.executable, "-m", "proof_api.cli", "witness", "serve", "--dir", str(directory),
                                 "--log", vkey, "--host", "127.0.0.1", "--port", str(port)],
                                cwd=REPO, stdout=subprocess.DEVNULL, stderr=err, env=ENV)
    try:
        _wait_up(proc, f"{url}/healthz", stderr, "evledger witness serve")
        yield url, wkey
    finally:
        _stop(proc)


# -- the ledger over HTTP -------------------------------------------------------------------------

def create_ledger(base: str, data_dir: Path) -> dict:
    admin = {"Authorization": f"Bearer {(data_dir / 'admin.key').read_text().strip()}"}
    with httpx.Client(base_url=base, timeout=30) as http:
        r = http.post("/v1/ledgers", json={"ledger": LEDGER}, headers=admin)
        assert r.status_code == 201, r.text
        keys = {role: http.post(f"/v1/ledgers/{LEDGER}/api-keys", json={"role": role}, headers=admin).json()["key"]
                for role in ("producer", "auditor")}
    return {"vkey": r.json()["verifier_key"], **keys}


def make_batch(start: int, n: int) -> list[dict]:
    return [{"content_hash": f"{i:064x}", "business_type": "bench.witness", "occurred_at": "2026-01-01T00:00:00Z",
             "evidence_id": f"ev-{i}"} for i in range(start, start + n)]


def post_batch(http: httpx.Client, ledger: dict, start: int, n: int) -> list[tuple[int, int]]:
    """(seq, received_at in µs) of each record of a batch."""
    r = http.post(f"/v1/ledgers/{LEDGER}/records/batch", json=make_batch(start, n),
                  headers={"Authorization": f"Bearer {ledger['producer']}"})
    assert r.status_code == 200 and r.json()["failed"] == 0, r.text[:500]
    return [(x["seq"], parse_received_at(x["received_at"])) for x in r.json()["results"]]


def latest(http: httpx.Client, ledger: dict) -> dict:
    r = http.get(f"/v1/ledgers/{LEDGER}/checkpoints/latest", headers={"Authorization": f"Bearer {ledger['auditor']}"})
    return r.json() if r.status_code == 200 else {"size": 0, "cosignatures": []}


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def all_checkpoints(http: httpx.Client, ledger: dict, consistency: bool = False) -> list[dict]:
    out, after = [], 0
    while True:
        page = http.get(f"/v1/ledgers/{LEDGER}/checkpoints",
                        params={"after": after, "limit": 1000, "consistency": str(consistency).lower()},
                        headers={"Authorization": f"Bearer {ledger['auditor']}"}).json()["checkpoints"]
        out.extend(page)
        if len(page) < 1000:
            return out
        after = page[-1]["size"]


def metric_samples(text: str, name: str) -> list[tuple[dict, float]]:
    out = []
    for labels, value in re.findall(rf"^{re.escape(name)}(?:{{([^}}]*)}})? (\S+)$", text, re.M):
        out.append((dict(re.findall(r'(\w+)="([^"]*)"', labels or "")), float(value)))
    return out


# -- one configuration ---------------------------------------------------------------------------

def run_config(workdir: Path, label: str, witnessed: bool, seconds: float, batch: int, interval: float) -> dict:
    data = workdir / f"{label}-data"
    with served(data) as base:  # the ledger first: its key is what the witness is told
        ledger = create_ledger(base, data)
    with contextlib.ExitStack() as stack:
        args: list[str] = []
        wurl = wkey = None
        if witnessed:
            wurl, wkey = stack.enter_context(witness_served(workdir / f"{label}-witness", ledger["vkey"]))
            config = workdir / f"{label}-witnesses.toml"
            config.write_text(f'threshold = 1\ntimeout = 5\n[[witness]]\nurl = "{wurl}"\nkey = "{wkey}"\n')
            args = ["--witness-config", str(config)]
        base = stack.enter_context(served(data, *args))
        http = stack.enter_context(httpx.Client(base_url=base, timeout=30))

        def caught_up(size: int) -> bool:
            cp = latest(http, ledger)
            return cp["size"] >= size and (not witnessed or any(c["witness_key"] == wkey for c in cp["cosignatures"]))

        # Warm-up: a checkpoint (and its cosignature) before the clock starts; left out of the figures.
        warm = post_batch(http, ledger, 0, batch)
        wait_for(lambda: caught_up(len(warm)), 60, "the warm-up checkpoint")
        first = len(warm)
        records, posts_ms, total, k, late, produce_s = produce(http, ledger, first, batch, seconds, interval)
        wait_for(lambda: caught_up(total), 120, f"size {total} sealed" + (" and cosigned" if witnessed else ""))

        checkpoints = all_checkpoints(http, ledger, consistency=witnessed)
        sealed = {c["size"]: parse_received_at(c["sealed_at"]) for c in checkpoints}
        cosigned: dict[int, int] = {}
        if witnessed:
            auditor = {"Authorization": f"Bearer {ledger['auditor']}"}
            for c in checkpoints:
                got = http.get(f"/v1/ledgers/{LEDGER}/checkpoints/{c['size']}", headers=auditor).json()
                mine = [x for x in got["cosignatures"] if x["witness_key"] == wkey]
                if mine:
                    cosigned[c["size"]] = parse_received_at(mine[0]["cosigned_at"])
        metrics = http.get("/metrics").text
        witness_metrics = httpx.get(f"{wurl}/metrics", timeout=5).text if witnessed else ""

    sizes = sorted(sealed)
    seal_ms = covering_latency(records, sizes, sealed)
    result = {"label": label, "witnessed": witnessed, "records": len(records), "first_seq": first,
              "produce_seconds": produce_s, "batches": k, "late_batches": late,
              "checkpoints": sum(1 for s in sizes if s > first), "post_ms": summarize(posts_ms),
              "record_to_sealed_ms": summarize(seal_ms)}
    if witnessed:
        result.update(witness_figures(records, first, sizes, sealed, cosigned, metrics, witness_metrics,
                                      ledger, checkpoints))
    result["_raw_sealed_ms"] = seal_ms
    return result


def produce(http, ledger: dict, first: int, batch: int, seconds: float, interval: float):
    """Post a batch every `interval` seconds for `seconds`: (records as (seq, received_at),
    post times in ms, the size reached, batches, late batches, seconds taken)."""
    records: list[tuple[int, int]] = []
    posts_ms: list[float] = []
    n, k, late = first, 0, 0
    t0 = time.monotonic()
    while True:
        due = t0 + k * interval
        if due - t0 >= seconds:
            break
        now = time.monotonic()
        if now < due:
            time.sleep(due - now)
        elif now - due > interval:
            late += 1
        t = time.perf_counter()
        records += post_batch(http, ledger, n, batch)
        posts_ms.append((time.perf_counter() - t) * 1000)
        n += batch
        k += 1
    return records, posts_ms, n, k, late, time.monotonic() - t0


def witness_figures(records, first: int, sizes: list[int], sealed: dict, cosigned: dict, metrics: str,
                    witness_metrics: str, ledger: dict, checkpoints: list[dict]) -> dict:
    """The witnessed run's figures: record -> cosigned, sealed -> cosigned, the service's histogram."""
    csizes = sorted(cosigned)
    cos_ms = covering_latency(records, csizes, cosigned)
    per_cp = [(cosigned[s] - sealed[s]) / 1000 for s in csizes if s > first and s in sealed]
    hist = {lab.get("le"): v for lab, v in metric_samples(metrics, "evledger_witness_cosign_latency_seconds_bucket")}
    hsum = sum(v for _, v in metric_samples(metrics, "evledger_witness_cosign_latency_seconds_sum"))
    hcount = sum(v for _, v in metric_samples(metrics, "evledger_witness_cosign_latency_seconds_count"))
    out = {
        "record_to_cosigned_ms": summarize(cos_ms),
        "checkpoints_cosigned": sum(1 for s in csizes if s > first),
        "checkpoints_not_cosigned": sum(1 for s in sizes if s > first and s not in cosigned),
        "sealed_to_cosigned_ms": summarize(per_cp),
        "service_histogram": {"count": hcount, "mean_ms": hsum / hcount * 1000 if hcount else None,
                              "buckets_le": hist},
        "service_witness_errors": sum(v for _, v in metric_samples(metrics, "evledger_witness_errors_total")),
        "witness_cosigned_total": sum(v for _, v in metric_samples(witness_metrics, "evledger_witness_cosigned_total")),
        "witness_refused_total": sum(v for _, v in metric_samples(witness_metrics, "evledger_witness_refused_total")),
        "vkey": ledger["vkey"], "checkpoint_list": [
            {"size": c["size"], "note": c["note"], "consistency": c.get("consistency")} for c in checkpoints],
    }
    out["_raw_cosigned_ms"] = cos_ms
    out["_raw_sealed_to_cosigned_ms"] = per_cp
    return out


def covering_latency(records: list[tuple[int, int]], sizes: list[int], at: dict[int, int]) -> list[float]:
    """Per record, ms from received_at to `at` of the first listed checkpoint covering it (size > seq)."""
    import bisect

    out = []
    for seq, received in records:
        i = bisect.bisect_right(sizes, seq)  # first size > seq
        if i == len(sizes):
            raise RuntimeError(f"record {seq} is in no checkpoint listed (largest {sizes[-1] if sizes else None})")
        out.append((at[sizes[i]] - received) / 1000)
    return out


def summarize(values: list[float]) -> dict:
    if not values:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "max": None, "mean": None}
    a = np.asarray(values, dtype=float)
    return {"n": int(a.size), "p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "max": float(a.max()), "mean": float(a.mean())}


# -- where the time goes -------------------------------------------------------------------------

def witness_round_trips(workdir: Path, run: dict, limit: int) -> dict:
    """A fresh witness fed a witnessed run's checkpoints in order, as the collector sends them
    (old size, the consistency proof from it, the note): the round trip over HTTP, each request
    cosigned and stored; then the last one again at the size it holds (cosigned, no state write)."""
    items = run["checkpoint_list"][:limit]
    rtt, same = [], []
    with witness_served(workdir / "rtt-witness", run["vkey"]) as (url, _), httpx.Client(timeout=10) as client:
        old = 0
        for c in items:
            proof = [bytes.fromhex(p) for p in (c["consistency"] or {}).get("proof", [])] if old else []
            if old and (c["consistency"] or {}).get("first") != old:
                raise RuntimeError("the listed consistency proofs do not chain")
            body = f"old {old}\n" + "".join(base64.b64encode(p).decode() + "\n" for p in proof) + "\n" + c["note"]
            t = time.perf_counter()
            r = client.post(url + "/add-checkpoint", content=body.encode())
            rtt.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, (r.status_code, r.text)
            old = c["size"]
        last = items[-1]
        body = f"old {old}\n\n" + last["note"]
        for _ in range(min(200, len(items))):
            t = time.perf_counter()
            r = client.post(url + "/add-checkpoint", content=body.encode())
            same.append((time.perf_counter() - t) * 1000)
            assert r.status_code == 200, (r.status_code, r.text)
    return {"add_checkpoint_new_ms": summarize(rtt), "add_checkpoint_same_size_ms": summarize(same)}


def state_write_cost(workdir: Path, n: int = 200) -> dict:
    """The witness's state write as witness.state.WitnessState.store does it, on the same disk:
    a small file written, fsynced, renamed into place, its directory fsynced."""
    from witness.state import WitnessState

    state = WitnessState(workdir / "fsync-witness")
    state.create(WITNESS_NAME)
    note = "x" * 300
    out = []
    for i in range(n + 1):
        t = time.perf_counter()
        state.store("evledger/fsync", i + 1, bytes(32), note)
        if i:
            out.append((time.perf_counter() - t) * 1000)
    return summarize(out)


def sm2_costs(run: dict, n: int = 300) -> dict:
    from evledger_verify.cosignature import cosigner_verifier_key, verify_cosignature
    from evledger_verify.note import parse_note, parse_verifier_key, sm2_verify
    from merkle.checkpoint import SM2PrivateKey, cosign_checkpoint

    note = run["checkpoint_list"][-1]["note"]
    body, signatures = parse_note(note)
    _, kid, public_key = parse_verifier_key(run["vkey"])
    sig = next(s for name, k, s in signatures if k == kid)
    key = SM2PrivateKey.generate()
    wkey = cosigner_verifier_key(WITNESS_NAME, key.public_key)

    def timed(fn) -> dict:
        fn()
        out = []
        for _ in range(n):
            t = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t) * 1000)
        return summarize(out)

    line = cosign_checkpoint(body, WITNESS_NAME, key, int(time.time()))
    cos_sig = parse_note(body + "\n" + line)[1][0][2]
    assert sm2_verify(public_key, body.encode(), sig)
    return {"sm2_verify_checkpoint_ms": timed(lambda: sm2_verify(public_key, body.encode(), sig)),
            "sm2_sign_raw_ms": timed(lambda: key.sign(body.encode())),
            "cosign_checkpoint_ms": timed(lambda: cosign_checkpoint(body, WITNESS_NAME, key, int(time.time()))),
            "verify_cosignature_ms": timed(lambda: verify_cosignature(body, wkey, cos_sig))}


# -- the report ----------------------------------------------------------------------------------

def f1(x) -> str:
    return "-" if x is None else f"{x:,.1f}"


def f2(x) -> str:
    return "-" if x is None else f"{x:,.2f}"


def row(what: str, s: dict) -> str:
    return f"| {what} | {s['n']:,} | {f1(s['p50'])} | {f1(s['p90'])} | {f1(s['p99'])} | {f1(s['max'])} |"


def report(info: dict, args, runs: list[dict], pooled: dict, pieces: dict) -> str:
    ref, wit = pooled["reference"], pooled["witnessed"]
    added, s2c = pooled["added_p99_ms"], wit["sealed_to_cosigned_ms"]["p99"]
    met = added <= GOAL_ADDED_P99_MS
    lines = ["# Witness cosigning: record -> checkpoint with one local witness", "",
             f"Machine: {machine_line(info)}", "",
             f"Load: {args.batch} records every {args.interval * 1000:.0f} ms for {args.seconds:.0f} s per run "
             f"(POST /records/batch, paced), one ledger; `evledger serve` --batch-max-delay {BATCH_MAX_DELAY}, "
             f"default batch size, in-process chain, --anchor-min-interval 3600. Runs alternate "
             f"(reference, witnessed) x {args.repeats}; each on a fresh data directory (and a fresh witness).", "",
             "## Record -> checkpoint (ms, service clock: received_at to sealed_at / cosigned_at)", "",
             "| what | records | p50 | p90 | p99 | max |", "| --- | ---: | ---: | ---: | ---: | ---: |",
             row("reference (no witness): received -> sealed", ref["record_to_sealed_ms"]),
             row("witnessed: received -> cosignature logged", wit["record_to_cosigned_ms"]),
             row("witnessed: received -> sealed (sealing alone)", wit["record_to_sealed_ms"]), "",
             "Per run:", "", "| run | checkpoints | p50 | p99 | sealed -> cosigned p50 / p99 / max | late batches |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in runs:
        s = r["record_to_cosigned_ms"] if r["witnessed"] else r["record_to_sealed_ms"]
        sc = r.get("sealed_to_cosigned_ms")
        lines.append(f"| {r['label']} | {r['checkpoints']:,} | {f1(s['p50'])} | {f1(s['p99'])} | "
                     + (f"{f1(sc['p50'])} / {f1(sc['p99'])} / {f1(sc['max'])}" if sc else "-")
                     + f" | {r['late_batches']} |")
    h = pooled["histogram"]
    lines += ["", "## Checkpoint sealed -> cosignature logged (witnessed runs)", "",
              "| what | checkpoints | p50 | p90 | p99 | max |", "| --- | ---: | ---: | ---: | ---: | ---: |",
              row("cosigned_at - sealed_at", wit["sealed_to_cosigned_ms"]), "",
              f"The service's histogram evledger_witness_cosign_latency_seconds (monotonic, sealed observer -> "
              f"event logged): {h['count']:,.0f} observations, mean {f2(h['mean_ms'])} ms, "
              f"{h['le_0.05']:,.0f} at or under 50 ms ({h['le_0.025']:,.0f} under 25 ms). Checkpoints not cosigned: "
              f"{pooled['not_cosigned']}; collector errors: {pooled['errors']:,.0f}; witness refusals: "
              f"{pooled['refused']:,.0f}.", "",
              "## Where the time goes", "",
              "| piece | n | p50 | p90 | p99 | max |", "| --- | ---: | ---: | ---: | ---: | ---: |",
              row("witness add-checkpoint over HTTP, new size (verify, proof, fsync'd state, cosign)",
                  pieces["add_checkpoint_new_ms"]),
              row("witness add-checkpoint over HTTP, the size it holds (no state write)",
                  pieces["add_checkpoint_same_size_ms"]),
              row("the witness's state write alone (write, fsync, rename, dir fsync; in process, same disk)",
                  pieces["state_write_ms"]),
              row("SM2 verify of the ledger's checkpoint signature (in process)", pieces["sm2_verify_checkpoint_ms"]),
              row("SM2 cosignature made (cosign_checkpoint)", pieces["cosign_checkpoint_ms"]),
              row("SM2 cosignature verified (the collector's check)", pieces["verify_cosignature_ms"]), "",
              f"sealed -> cosigned p50 {f1(wit['sealed_to_cosigned_ms']['p50'])} ms against the witness round trip "
              f"p50 {f1(pieces['add_checkpoint_new_ms']['p50'])} ms: the rest ("
              f"{f1(wit['sealed_to_cosigned_ms']['p50'] - pieces['add_checkpoint_new_ms']['p50'])} ms, not timed apart) lies on the "
              f"collector's side (wake-up, the consistency proof, its cosignature check, the CheckpointCosigned "
              f"append) and queueing behind the sealer and ingest on {info['cores']} cores. At p99: sealed -> "
              f"cosigned {f1(s2c)} ms, the witness round trip {f1(pieces['add_checkpoint_new_ms']['p99'])} ms "
              f"({f1(pieces['add_checkpoint_same_size_ms']['p99'])} ms without its state write; the write alone "
              f"{f1(pieces['state_write_ms']['p99'])} ms). Sealing itself in the witnessed runs: p99 "
              f"{f1(wit['record_to_sealed_ms']['p99'])} ms against the reference's "
              f"{f1(ref['record_to_sealed_ms']['p99'])} ms (the witness process and the collector thread share the "
              f"cores with the sealer).", "",
              f"Goal: cosigning_added_p99_ms <= {GOAL_ADDED_P99_MS:.0f}: {'met' if met else 'NOT met'} "
              f"(added p99 {f1(added)} ms = witnessed {f1(wit['record_to_cosigned_ms']['p99'])} - reference "
              f"{f1(ref['record_to_sealed_ms']['p99'])}; sealed -> cosigned p99 {f1(s2c)} ms).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 s per run, one repeat")
    parser.add_argument("--seconds", type=float, default=24.0, help="producing time per run")
    parser.add_argument("--batch", type=int, default=20, help="records per POST")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between POSTs")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each configuration, alternating")
    parser.add_argument("--workdir", help="where the data directories go (default: a temporary one)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.repeats = 8.0, 1
    info = machine_info()
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        workdir = Path(tmp)
        for i in range(args.repeats):
            for witnessed in (False, True):
                label = f"{'witnessed' if witnessed else 'reference'}-{i + 1}"
                print(f"{label}: {args.batch} records / {args.interval * 1000:.0f} ms for {args.seconds:.0f} s ...",
                      file=sys.stderr, flush=True)
                r = run_config(workdir, label, witnessed, args.seconds, args.batch, args.interval)
                s = r.get("record_to_cosigned_ms") or r["record_to_sealed_ms"]
                print(f"  {r['checkpoints']} checkpoints, {r['records']:,} records; p50 {f1(s['p50'])} ms, "
                      f"p99 {f1(s['p99'])} ms", file=sys.stderr, flush=True)
                runs.append(r)
        last = [r for r in runs if r["witnessed"]][-1]
        print("where the time goes: witness round trips, SM2 ...", file=sys.stderr, flush=True)
        pieces = witness_round_trips(workdir, last, limit=300)
        pieces["state_write_ms"] = state_write_cost(workdir)
        pieces.update(sm2_costs(last))

    refs, wits = [r for r in runs if not r["witnessed"]], [r for r in runs if r["witnessed"]]
    hist: dict = {"count": 0.0, "sum_ms": 0.0}
    for le in ("0.025", "0.05"):
        hist[f"le_{le}"] = sum(r["service_histogram"]["buckets_le"].get(le, 0.0) for r in wits)
    hist["count"] = sum(r["service_histogram"]["count"] for r in wits)
    hist["mean_ms"] = (sum((r["service_histogram"]["mean_ms"] or 0) * r["service_histogram"]["count"] for r in wits)
                       / hist["count"]) if hist["count"] else None
    pooled = {"reference": {"record_to_sealed_ms": summarize(sum((r["_raw_sealed_ms"] for r in refs), []))},
              "witnessed": {"record_to_cosigned_ms": summarize(sum((r["_raw_cosigned_ms"] for r in wits), [])),
                            "record_to_sealed_ms": summarize(sum((r["_raw_sealed_ms"] for r in wits), [])),
                            "sealed_to_cosigned_ms": summarize(sum((r["_raw_sealed_to_cosigned_ms"] for r in wits), []))},
              "histogram": hist, "not_cosigned": sum(r["checkpoints_not_cosigned"] for r in wits),
              "errors": sum(r["service_witness_errors"] for r in wits),
              "refused": sum(r["witness_refused_total"] for r in wits)}
    pooled["added_p99_ms"] = (pooled["witnessed"]["record_to_cosigned_ms"]["p99"]
                              - pooled["reference"]["record_to_sealed_ms"]["p99"])
    pooled["added_p50_ms"] = (pooled["witnessed"]["record_to_cosigned_ms"]["p50"]
                              - pooled["reference"]["record_to_sealed_ms"]["p50"])
    met = pooled["added_p99_ms"] <= GOAL_ADDED_P99_MS
    clean = [{k: v for k, v in r.items() if not k.startswith("_") and k not in ("checkpoint_list", "vkey")} for r in runs]
    result = {"machine": info, "settings": {"seconds": args.seconds, "batch": args.batch, "interval": args.interval,
                                            "repeats": args.repeats, "batch_max_delay": BATCH_MAX_DELAY},
              "runs": clean, "pooled": pooled, "pieces": pieces,
              "goals": {"cosigning_added_p99_ms": {"goal": GOAL_ADDED_P99_MS, "measured": pooled["added_p99_ms"],
                                                   "sealed_to_cosigned_p99_ms":
                                                       pooled["witnessed"]["sealed_to_cosigned_ms"]["p99"],
                                                   "met": met, "direction": "<="}}}
    written = write_and_print_result(args.out, "witness", result, report(info, args, runs, pooled, pieces))
    print(f"cosigning_added_p99_ms <= {GOAL_ADDED_P99_MS:.0f}: {'met' if met else 'NOT met'} "
          f"({pooled['added_p99_ms']:.1f} ms; sealed -> cosigned p99 "
          f"{pooled['witnessed']['sealed_to_cosigned_ms']['p99']:.1f} ms)")
    print(f"wrote {written} and {written.with_suffix('.md')}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
