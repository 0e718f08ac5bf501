"""`make bench-monitor`: the ledger monitor, verifying checkpoints from a local `evledger serve`,
next to what bounds it. Writes bench/results/monitor-<UTC time>.{json,md}.

    python -m bench.monitor_bench [--quick] [--checkpoints N] [--soak-checkpoints N] [--out DIR]

1. Throughput: N checkpoints (one per record, posted over HTTP) served by `evledger serve`; the
   monitor's pass over all of them (pages of 1,000 with their consistency proofs, every SM2
   signature and RFC 9162 consistency proof checked, state written to SQLite), in process, and
   `evledger monitor` end to end as a command (process start included). References from the same
   run: fetching the same pages with no checking, and SM2 verification of the same notes alone.
2. Soak: an honest ledger anchoring to anvil every second while records stream in, producing
   >= the soak count of checkpoints, followed by `evledger monitor --follow` (pass every 0.5 s,
   --max-anchor-delay 30); the checkpoints and anchors it followed, and its alarms (goal: zero).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench.machine import machine_info, machine_line, write_and_print_result
from evledger_common.stopping import terminate
from evledger_dev.devbroker import free_port

RESULTS = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parents[1]
GOAL_PER_SECOND = 1_000


@contextlib.contextmanager
def served(data_dir: Path, *serve_args: str, env: dict | None = None):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with open(f"{data_dir}.stderr", "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "proof_api.cli", "--data-dir", str(data_dir),
                                 "--batch-max-items", "1", "--batch-max-delay", "0.001", "serve", "--port", str(port),
                                 *serve_args], cwd=REPO, stdout=subprocess.DEVNULL, stderr=err,
                                env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})})
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"evledger serve exited: {Path(f'{data_dir}.stderr').read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("evledger serve did not start within 60 s")
            time.sleep(0.1)
        yield base
    finally:
        terminate(proc, 60)


def create_ledger(http: httpx.Client, data_dir: Path, name: str) -> dict:
    admin = {"Authorization": f"Bearer {(data_dir / 'admin.key').read_text().strip()}"}
    vkey = http.post("/v1/ledgers", json={"ledger": name}, headers=admin).json()["verifier_key"]
    keys = {role: http.post(f"/v1/ledgers/{name}/api-keys", json={"role": role}, headers=admin).json()["key"]
            for role in ("producer", "auditor")}
    return {"name": name, "vkey": vkey, **keys}


def latest_size(http: httpx.Client, ledger: dict) -> int:
    r = http.get(f"/v1/ledgers/{ledger['name']}/checkpoints/latest",
                 headers={"Authorization": f"Bearer {ledger['auditor']}"})
    return r.json()["size"] if r.status_code == 200 else 0


def checkpoint_count(http: httpx.Client, ledger: dict) -> int:
    count, after = 0, 0
    while True:
        page = http.get(f"/v1/ledgers/{ledger['name']}/checkpoints", params={"after": after, "limit": 1000},
                        headers={"Authorization": f"Bearer {ledger['auditor']}"}).json()["checkpoints"]
        count += len(page)
        if len(page) < 1000:
            return count
        after = page[-1]["size"]


def produce(http: httpx.Client, ledger: dict, checkpoints: int, stop: threading.Event | None = None,
            pause: float = 0.0) -> int:
    """Post one record at a time until the ledger has `checkpoints` checkpoints (the sequencer
    seals after each record, or after the few that came while it sealed)."""
    n = 0
    headers = {"Authorization": f"Bearer {ledger['producer']}"}
    while stop is None or not stop.is_set():
        for _ in range(100):
            r = http.post(f"/v1/ledgers/{ledger['name']}/records",
                          json={"content_hash": f"{n:064x}", "business_type": "bench.monitor",
                                "occurred_at": "2026-01-01T00:00:00Z"}, headers=headers)
            assert r.status_code == 201, r.text
            n += 1
            if pause:
                time.sleep(pause)
        if checkpoint_count(http, ledger) >= checkpoints:
            break
    return n


def throughput(workdir: Path, checkpoints: int) -> dict:
    from evledger_verify.note import verify_checkpoint
    from monitor import LedgerApi, Monitor, MonitorSettings, MonitorState

    data = workdir / "throughput"
    with served(data, "--anchor-min-interval", "3600") as base, httpx.Client(base_url=base, timeout=30) as http:
        ledger = create_ledger(http, data, "bench")
        started = time.perf_counter()
        produce(http, ledger, checkpoints)
        while latest_size(http, ledger) == 0:
            time.sleep(0.05)
        count = checkpoint_count(http, ledger)
        produced_s = time.perf_counter() - started

        # Reference 1: the same pages (with their consistency proofs), fetched and parsed, nothing checked.
        pages, after = [], 0
        t = time.perf_counter()
        with httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {ledger['auditor']}"}) as raw:
            while True:
                page = raw.get("/v1/ledgers/bench/checkpoints",
                               params={"after": after, "limit": 1000, "consistency": "true"}).json()["checkpoints"]
                pages.extend(page)
                if len(page) < 1000:
                    break
                after = page[-1]["size"]
        fetch_s = time.perf_counter() - t
        # Reference 2: SM2 verification of the same notes, nothing fetched.
        t = time.perf_counter()
        for item in pages:
            verify_checkpoint(item["note"], ledger["vkey"])
        sm2_s = time.perf_counter() - t

        # The monitor, in process: one pass from an empty state.
        state = MonitorState(workdir / "throughput.sqlite")
        api = LedgerApi(base, "bench", ledger["auditor"])
        watcher = Monitor(MonitorSettings("bench", "evledger/bench", [ledger["vkey"]]), api, state, report=print)
        t = time.perf_counter()
        result = watcher.check_once()
        monitor_s = time.perf_counter() - t
        api.close()
        state.close()
        assert result.verified == count and not result.alarms, (result.verified, count, result.alarms)

        # The command, end to end (process start, imports, a fresh state file).
        t = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "proof_api.cli", "monitor", "bench", "--url", base,
                               "--api-key", ledger["auditor"], "--key", ledger["vkey"],
                               "--state", str(workdir / "command.sqlite")], cwd=REPO, capture_output=True,
                              text=True, timeout=600)
        command_s = time.perf_counter() - t
        assert done.returncode == 0, done.stdout + done.stderr
    return {"checkpoints": count, "produce_seconds": produced_s,
            "monitor_seconds": monitor_s, "checkpoints_per_second": count / monitor_s,
            "command_seconds": command_s, "command_checkpoints_per_second": count / command_s,
            "fetch_only_seconds": fetch_s, "fetch_only_per_second": count / fetch_s,
            "sm2_only_seconds": sm2_s, "sm2_only_per_second": count / sm2_s}


def metric(port: int, name: str) -> float:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.TransportError:
        return float("nan")
    return sum(float(v) for v in re.findall(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def soak(workdir: Path, checkpoints: int) -> dict:
    from eth_account import Account
    from web3 import HTTPProvider, Web3

    from anchor.chain import deploy_registry
    from evledger_dev.devchain import ANVIL, DEV_KEYS, Anvil

    if not ANVIL.exists():
        return {"skipped": f"anvil is missing at {ANVIL}: run `make npm-tools`"}
    data = workdir / "soak"
    with Anvil() as chain:
        contract = deploy_registry(Web3(HTTPProvider(chain.url)), account=Account.from_key(DEV_KEYS[0]))
        with served(data, "--rpc", chain.url, "--contract", contract, "--anchor-min-interval", "1",
                    env={"EVLEDGER_ANCHOR_KEY": DEV_KEYS[0]}) as base, \
                httpx.Client(base_url=base, timeout=30) as http:
            ledger = create_ledger(http, data, "soak")
            port = free_port()
            follower = subprocess.Popen(
                [sys.executable, "-m", "proof_api.cli", "monitor", "soak", "--url", base, "--api-key",
                 ledger["auditor"], "--key", ledger["vkey"], "--state", str(workdir / "soak.sqlite"), "--rpc",
                 chain.url, "--contract", contract, "--max-anchor-delay", "30", "--follow", "--interval", "0.5",
                 "--metrics-port", str(port)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env={**os.environ, "PYTHONWARNINGS": "ignore"})
            try:
                started = time.perf_counter()
                records = produce(http, ledger, checkpoints, pause=0.002)
                produce_s = time.perf_counter() - started
                final = latest_size(http, ledger)
                # The last checkpoint anchored and followed: then every check has had its chance.
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and metric(port, "evledger_monitor_last_verified_size") < final:
                    time.sleep(0.2)
                time.sleep(3)  # a few passes more: the anchor of the last checkpoint, its delay check
                followed = {"checkpoints_verified": metric(port, "evledger_monitor_checkpoints_verified_total"),
                            "last_verified_size": metric(port, "evledger_monitor_last_verified_size"),
                            "anchors_checked": metric(port, "evledger_monitor_anchors_checked_total"),
                            "alert_gauge_sum": metric(port, "evledger_monitor_alert"),
                            "errors": metric(port, "evledger_monitor_errors_total")}
            finally:
                follower.send_signal(signal.SIGTERM)
                out, err = follower.communicate(timeout=60)
    false_alarms = [line for line in out.splitlines() if line.startswith("ALERT ")]
    return {"checkpoints_produced": checkpoints, "records": records, "final_size": final, "seconds": produce_s,
            **followed, "false_alarms": len(false_alarms), "alarm_lines": false_alarms[:10],
            "follower_exit": follower.returncode, "follower_stderr_tail": err[-1000:]}


def report(info: dict, t: dict, s: dict) -> str:
    lines = ["# Ledger monitor", "", f"Machine: {machine_line(info)}", "",
             "## Throughput: checkpoints verified from a local `evledger serve`", "",
             "| what | checkpoints | seconds | checkpoints/s |", "| --- | ---: | ---: | ---: |",
             f"| monitor pass, in process (fetch + SM2 + consistency + SQLite) | {t['checkpoints']:,} | "
             f"{t['monitor_seconds']:.2f} | {t['checkpoints_per_second']:,.0f} |",
             f"| `evledger monitor` command, process start included | {t['checkpoints']:,} | "
             f"{t['command_seconds']:.2f} | {t['command_checkpoints_per_second']:,.0f} |",
             f"| reference: the same pages fetched, nothing checked | {t['checkpoints']:,} | "
             f"{t['fetch_only_seconds']:.2f} | {t['fetch_only_per_second']:,.0f} |",
             f"| reference: SM2 verification of the same notes alone | {t['checkpoints']:,} | "
             f"{t['sm2_only_seconds']:.2f} | {t['sm2_only_per_second']:,.0f} |", "",
             f"Monitor / fetch-only: {t['checkpoints_per_second'] / t['fetch_only_per_second']:.2f}. "
             f"Goal: checkpoints_per_second >= {GOAL_PER_SECOND:,}: "
             f"{'met' if t['checkpoints_per_second'] >= GOAL_PER_SECOND else 'NOT met'} "
             f"({t['checkpoints_per_second']:,.0f}).", ""]
    lines += ["## Soak: an honest ledger anchoring to anvil, followed with --follow", ""]
    if "skipped" in s:
        lines += [f"Skipped: {s['skipped']}", ""]
    else:
        lines += [f"{s['checkpoints_produced']:,}+ checkpoints ({s['records']:,} records, final size {s['final_size']:,}) "
                  f"in {s['seconds']:.1f} s, anchored every second; the follower verified "
                  f"{s['checkpoints_verified']:,.0f} checkpoints up to size {s['last_verified_size']:,.0f}, checked "
                  f"{s['anchors_checked']:,.0f} anchors, {s['errors']:,.0f} pass(es) failed to read.",
                  f"Goal: false alarms == 0: {'met' if s['false_alarms'] == 0 else 'NOT met'} ({s['false_alarms']}).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 checkpoints and a 300-checkpoint soak")
    parser.add_argument("--checkpoints", type=int, default=3000)
    parser.add_argument("--soak-checkpoints", type=int, default=1000)
    parser.add_argument("--workdir", help="where the data directories go (default: a temporary one)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    if args.quick:
        args.checkpoints, args.soak_checkpoints = 1000, 300
    info = machine_info()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        workdir = Path(tmp)
        print(f"throughput: producing {args.checkpoints:,} checkpoints ...", file=sys.stderr)
        t = throughput(workdir, args.checkpoints)
        print(f"soak: {args.soak_checkpoints:,} checkpoints with anchoring, followed ...", file=sys.stderr)
        s = soak(workdir, args.soak_checkpoints)
    result = {"machine": info, "throughput": t, "soak": s, "goals": goals_of(t, s)}
    write_and_print_result(args.out, "monitor", result, report(info, t, s))
    return 0 if all(g["met"] is not False for g in result["goals"].values()) else 1


def goals_of(t: dict, s: dict) -> dict:
    """The goals in bench.report's shape: {key: {goal, measured, met, direction}}; a skipped soak
    leaves its goal unmeasured (met None)."""
    alarms = None if "skipped" in s else s["false_alarms"]
    return {"checkpoints_per_second": {"goal": GOAL_PER_SECOND, "measured": t["checkpoints_per_second"],
                                       "met": t["checkpoints_per_second"] >= GOAL_PER_SECOND, "direction": ">="},
            "false_alarms": {"goal": 0, "measured": alarms, "met": None if alarms is None else alarms == 0,
                             "direction": "=="}}


if __name__ == "__main__":
    sys.exit(main())
