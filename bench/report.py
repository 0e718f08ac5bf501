"""The suite's report: a pure function from the combined results dict (what bench.suite writes
as report.json) to Markdown, and one that draws the PNG plots from the same dict.

    python -m bench.report bench/results/<stamp>     # redraw report.md and the plots from report.json

The combined dict (format "evledger-bench-suite/1"):

    {"format", "stamp", "quick", "started_utc", "total_seconds", "command",
     "machine": {cpu, cores, memory_gib, python, numpy, numba, openssl, commit, date_utc,
                 os, disk: {path, device, fstype, mount, size_gib, free_gib, rotational, model},
                 versions: {package: version}},
     "modules": {name: {module, scenarios, status, argv, seconds, json, log, notes: [..]}},
     "results": {name: the module's own JSON, unchanged}}

A module's JSON may hold "goals", each in one shape (GOAL_FIELDS), shown under "Goals the modules set":

    {key: {"goal": the target, "measured" (or "best", ingest's and api's name for it): the figure or null,
           "met": true / false / null (not measured), "direction": ">=" (the default when absent) | "<=" | "==",
           ...any further figures, not shown}}

`render_markdown` reads nothing but that dict (no clock, no files), so a fixed sample gives
fixed Markdown: tests/test_bench_report.py holds it against a golden file. Plot file names are
fixed (PLOTS), so the Markdown links them whether or not they were drawn.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from bench import figures as F

FORMAT = "evledger-bench-suite/1"

# scenario -> (title, module that measures it, what part of that module's result)
SCENARIOS = (
    ("hasher", "Hasher", "merkle", "SM3 leaf and node hashing, numba kernels next to OpenSSL, hashlib and gmssl"),
    ("tree", "Tree", "merkle", "Merkle log appends, memory and RocksDB stores, next to pymerkle and a hashlib loop"),
    ("durable_ingest", "Durable ingest", "ingest", "Ledger.submit with the sequencer running, next to raw RocksDB synced writes"),
    ("http_ingest", "HTTP ingest", "api", "POST /records/batch and /records, next to a trivial endpoint on the same server"),
    ("stream_ingest", "Stream ingest", "stream", "Kafka -> stream app -> ledger"),
    ("proof_serving", "Proof serving", "merkle+api", "inclusion proofs by tree size, and proof bundles over HTTP"),
    ("rebuild", "Rebuild", "ingest", "replaying a ledger's log into fresh projections"),
    ("anchoring", "Anchoring", "anchor", "checkpoint -> anchor confirmed latency, gas, chain transactions"),
    ("monitoring", "Monitoring", "monitor", "the ledger monitor's checkpoints/s, next to fetching alone and SM2 "
     "alone; a soak counting false alarms"),
    ("witness_cosigning", "Witness cosigning", "witness", "record -> cosigned checkpoint with one local witness, "
     "next to the same load without witnesses"),
    ("static_tiles", "Static tiles", "tiles", "ingest with tiles published next to the same load without; proof bundles "
     "from nginx serving the tiles next to the API's proof route; the publication's bytes per record"),
    ("producer_push", "Producer push", "push", "`evledger push` of records to a local server next to the server's batch "
     "ingest rate driven by autocannon; the client's CPU per record"),
)

# Modules the suite runs: name -> python module. Each runs once; its result feeds the scenarios above.
MODULES = {"merkle": "bench.merkle_bench", "ingest": "bench.ingest_bench", "api": "bench.api_bench",
           "stream": "bench.stream_bench", "anchor": "bench.anchor_bench", "monitor": "bench.monitor_bench",
           "witness": "bench.witness_bench", "tiles": "bench.tiles_bench", "push": "bench.push_bench"}

# Modules added after reports were first written in this format: a report.json that has no entry for
# one in "modules" (written before it existed) is drawn as it was, without it. A suite run lists
# every module, run or not, so its report always has the section.
LATER_MODULES = ("tiles", "push")

GOAL_FIELDS = ("goal", "measured", "met", "direction")  # the goals' shape (module docstring); "best" reads as "measured"

PLOTS = {
    "hasher": ("plot-hasher.png", "SM3 hasher throughput by implementation and thread count"),
    "ingest_batch": ("plot-ingest-batch.png", "Ingest throughput vs batch size"),
    "latency": ("plot-latency.png", "Receipt, checkpoint, anchor and proof latency percentiles"),
    "proof_tree": ("plot-proof-tree-size.png", "Inclusion proof latency vs tree size"),
    "chain_tx": ("plot-chain-tx.png", "Chain transactions per day vs anchor interval"),
}

MERKLE_BOUNDS = {  # merkle_bench states these in its Markdown, not its JSON
    "hasher": "CPU (compute-bound kernels; numba threads, OpenSSL processes)",
    "append_memory": "CPU (hashing)",
    "append_rocksdb": "CPU plus RocksDB writes (no fsync: nodes are a rebuildable projection)",
    "proofs": "CPU (Python per proof, O(log n) RocksDB point reads, mostly in the block cache)",
}

ANCHOR_INTERVALS_S = (0.25, 0.5, 1, 5, 10, 30, 60, 300, 600, 3600)
PLAN_RATES = (1_000, 200_000)  # records/s per ledger shown next to the measured durable peak


# -- formatting -------------------------------------------------------------------------------------

def n0(x) -> str:
    return "-" if x is None else f"{x:,.0f}"


def n1(x) -> str:
    return "-" if x is None else f"{x:,.1f}"


def n2(x) -> str:
    return "-" if x is None else f"{x:,.2f}"


def ms(x) -> str:
    """Milliseconds: three decimals below 1, two below 10, one below 100, none above."""
    if x is None:
        return "-"
    if x < 1:
        return f"{x:.3f}"
    return f"{x:,.2f}" if x < 10 else f"{x:,.1f}" if x < 100 else f"{x:,.0f}"


def cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def table(head: list[str], rows: list[list], align: str | None = None) -> list[str]:
    align = align or "l" + "r" * (len(head) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    return (["| " + " | ".join(head) + " |", "| " + " | ".join(sep) + " |"]
            + ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows])


def _listed(report: dict, name: str) -> bool:
    return name not in LATER_MODULES or name in report.get("modules", {})


def _ok(report: dict, name: str) -> bool:
    return (report.get("modules", {}).get(name) or {}).get("status") == "ok" and name in report.get("results", {})


def _status(report: dict, name: str) -> str:
    m = report.get("modules", {}).get(name)
    return m.get("status", "unknown") if m else "not run"


def _not_run(report: dict, name: str) -> list[str]:
    m = report.get("modules", {}).get(name) or {}
    line = f"Not measured: `{MODULES.get(name, name)}` {_status(report, name)}."
    if m.get("error"):
        line += f" Last output: `{cell(m['error'])[:300]}`"
    return [line, ""]


def _notes(report: dict, name: str) -> list[str]:
    notes = (report.get("modules", {}).get(name) or {}).get("notes") or []
    return [line for n in notes for line in (f"> Note: {n}", "")]  # one quote each, not one run-on paragraph


def _plot(key: str) -> list[str]:
    name, title = PLOTS[key]
    return [f"![{title}]({name})", ""]


# -- sections ---------------------------------------------------------------------------------------

def section_header(report: dict) -> list[str]:
    kind = "quick run (smoke check: short windows and small sizes; not for planning)" if report.get("quick") else "full run"
    lines = [f"# Benchmark suite report: {report.get('stamp', '?')}", "",
             f"{kind.capitalize()}; started {report.get('started_utc', '?')}, "
             f"{n0(report.get('total_seconds'))} s in all. Command: `{report.get('command', 'python -m bench.suite')}`.", ""]
    m = report.get("machine", {})
    d = m.get("disk") or {}
    rot = {True: "rotational as /sys reports it (virtual disks often do)", False: "non-rotational (SSD) as /sys reports it"
           }.get(d.get("rotational"), "rotational: unknown")
    versions = m.get("versions") or {}
    lines += ["## Machine", "",
              f"- CPU: {m.get('cpu', '?')}, {m.get('cores', '?')} cores",
              f"- Memory: {m.get('memory_gib', '?')} GiB",
              f"- Disk (benchmark data): {d.get('device', '?')} ({d.get('fstype', '?')}, mounted at {d.get('mount', '?')}), "
              f"{n0(d.get('size_gib'))} GiB, {n0(d.get('free_gib'))} GiB free, {rot}"
              + (f", model {d['model']}" if d.get("model") else ""),
              f"- OS: {m.get('os', '?')}",
              f"- Versions: Python {m.get('python', '?')}, numpy {m.get('numpy', '?')}, numba {m.get('numba', '?')}, "
              f"{m.get('openssl', 'OpenSSL ?')}"
              + "".join(f", {k} {v}" for k, v in sorted(versions.items())),
              f"- Commit: {m.get('commit', '?')}", ""]
    return lines


def section_runs(report: dict) -> list[str]:
    rows = []
    for name, module in MODULES.items():
        if not _listed(report, name):
            continue
        m = report.get("modules", {}).get(name) or {}
        scen = ", ".join(t for key, t, mod, _ in SCENARIOS if name in mod.split("+"))
        rows.append([f"`{module}`", scen, m.get("status", "not run"),
                     n0(m.get("seconds")) if m.get("seconds") is not None else "-",
                     f"[{m['json']}]({m['json']})" if m.get("json") else "-",
                     " ".join(["`" + " ".join(m["argv"]) + "`"] if m.get("argv") else []) or "-"])
    lines = ["## Scenarios and the runs behind them", ""]
    lines += table(["module", "scenarios", "status", "seconds", "raw result", "arguments"], rows, "lllrll")
    lines += ["", "Each module runs once and measures its figures next to a reference in the same run "
              "(OpenSSL and hashlib for the hasher, pymerkle for the tree, raw RocksDB synced writes for "
              "durable ingest, a trivial endpoint on the same server for HTTP, a plain transfer and a one-slot "
              "write for gas, fetching alone and SM2 alone for the monitor, the same load without witnesses for "
              "cosigning). Every table names what bounded its figures, as the module measured it.", ""]
    for name in MODULES:
        lines += _notes(report, name)
    return lines


def section_hasher(report: dict) -> list[str]:
    lines = ["## 1. Hasher: SM3 throughput by implementation and thread count", ""]
    if not _ok(report, "merkle"):
        return lines + _not_run(report, "merkle")
    r = report["results"]["merkle"]
    for kind, title in (("nodes", "interior nodes (65-byte messages)"), ("leaves", "leaves (200-byte records + prefix)")):
        rows = F.hasher_rows(r, kind)
        if not rows:
            continue
        cores = int(r[kind].get("cores") or 1)
        threads = sorted({1, cores})
        lines += [f"### SM3 {title}, messages/s", ""]
        lines += table(["implementation"] + [f"{t} core" + ("s" if t > 1 else "") for t in threads],
                       [[row["label"]] + [n0(row["rates"].get(t)) for t in threads] for row in rows])
        lines += ["", f"Multi-buffer vs OpenSSL per core: **{n2(r[kind].get('ratio_multibuffer_vs_openssl_per_core'))}x**; "
                  f"scaling 1 -> {cores} cores: **{n2(r[kind].get('multibuffer_scaling'))}x**. "
                  f"Bound: {MERKLE_BOUNDS['hasher']}.", ""]
    return lines + _plot("hasher")


def section_tree(report: dict) -> list[str]:
    lines = ["## 2. Tree: Merkle log appends", ""]
    if not _ok(report, "merkle"):
        return lines + _not_run(report, "merkle")
    a = report["results"]["merkle"].get("append") or {}
    lines += [f"{n0(a.get('leaves'))} leaves of {a.get('leaf_bytes', '?')} bytes in batches of {n0(a.get('batch'))}; "
              f"references on {n0(a.get('reference_leaves'))} leaves.", ""]
    lines += table(["tree", "leaves/s", "bound"], [
        ["MerkleLog, memory store (SM3)", n0(a.get("memory_leaves_per_s")), MERKLE_BOUNDS["append_memory"]],
        ["MerkleLog, RocksDB store (SM3)", n0(a.get("rocksdb_leaves_per_s")), MERKLE_BOUNDS["append_rocksdb"]],
        ["reference: pymerkle InmemoryTree (SHA-256)", n0(a.get("pymerkle_inmemory_sha256_leaves_per_s")), "CPU (pure Python)"],
        ["reference: hashlib SM3 loop, full rebuild of the levels", n0(a.get("hashlib_sm3_loop_leaves_per_s")), "CPU (Python loop)"],
    ], "lrl")
    return lines + [""]


def section_durable(report: dict) -> list[str]:
    lines = ["## 3. Durable ingest: Ledger.submit, sequencer running", ""]
    if not _ok(report, "ingest"):
        return lines + _not_run(report, "ingest")
    r = report["results"]["ingest"]
    fs = r.get("filesystem") or {}
    refs = {x["group"]: x for x in r.get("reference") or []}
    lines += [f"Records of ~{r.get('event_bytes', '?')} bytes in the log (leaf {r.get('leaf_bytes', '?')}); data on "
              f"{fs.get('device', '?')} ({fs.get('fstype', '?')}). Reference: raw RocksDB WriteBatch with sync=True, one "
              "thread, the log's keys and bytes, at the same G (records per write).", ""]
    rows = []
    for d in r.get("durable") or []:
        ref = refs.get(d["group"]) or {}
        rows.append([d["threads"], n0(d["group"]), n0(d["records_per_s"]), n0(ref.get("synced_events_per_s")),
                     f"{d.get('ratio_to_reference', 0):.3f}", n2(d.get("cpu_cores")), d.get("bound", "-")])
    lines += table(["threads", "G", "records/s", "reference events/s (synced)", "vs reference", "CPU cores", "bound"],
                   rows, "rrrrrrl")
    peak = F.durable_peak(r)
    if peak:
        lines += ["", f"Peak: **{n0(peak['records_per_s'])} records/s** per ingest process ({peak['threads']} thread(s), "
                  f"G={n0(peak['group'])}, {n2(peak.get('cpu_cores'))} CPU cores). Reference bounds: "
                  + "; ".join(f"G={n0(g)}: {x.get('bound', '-')}" for g, x in sorted(refs.items())) + "."]
    lat = F.ingest_latency(r)
    if lat:
        lines += ["", f"### Latency at {n0(lat.get('target_records_per_s'))} records/s (half the peak), achieved "
                  f"{n0(lat.get('achieved_records_per_s'))}", ""]
        rows = []
        for key, title in (("receipt", "receipt (submit call to return)"),
                           ("receipt_from_schedule", "receipt from the scheduled send time"),
                           ("to_checkpoint", "receipt to logged checkpoint")):
            p = lat.get(key) or {}
            if p.get("n"):
                rows.append([title, ms(p["p50_ms"]), ms(p["p99_ms"]), ms(p["max_ms"]), n0(p["n"])])
        lines += table(["latency", "p50 ms", "p99 ms", "max ms", "records"], rows)
        lines += ["", f"Bound: receipt: {lat.get('bound_receipt', '-')}; checkpoint: {lat.get('bound_checkpoint', '-')}."]
    return lines + [""] + _plot("ingest_batch")


def section_http(report: dict) -> list[str]:
    lines = ["## 4. HTTP ingest: POST /records/batch and /records", ""]
    if not _ok(report, "api"):
        return lines + _not_run(report, "api")
    r = report["results"]["api"]
    cl = r.get("client") or {}
    lines += [f"One uvicorn worker as `evledger serve` runs it ({(r.get('server') or {}).get('uvicorn', '?')}); load "
              f"generator on the same machine (driver {cl.get('driver', '?')}, httpx {cl.get('httpx', '?')}): both share "
              f"the {report.get('machine', {}).get('cores', '?')} cores.", "",
              "### Batch ingest, records/s", ""]
    lines += table(["batch", "C", "records/s", "p50 ms", "p99 ms", "server cores", "bound"],
                   [[n0(x["batch"]), x["concurrency"], n0(x["items_per_s"]), ms(x.get("p50_ms")), ms(x.get("p99_ms")),
                     n2(x.get("server_cores")), x.get("bound", "-")] for x in r.get("batch") or []], "rrrrrrl")
    lines += ["", "### Single-record submits, and the trivial endpoint (reference) at the same C", ""]
    triv = {t["concurrency"]: t for t in r.get("trivial") or []}
    rows = [[f"POST /records, C={x['concurrency']}", n0(x["items_per_s"]), n2(x.get("ratio_to_trivial")),
             ms(x.get("p50_ms")), ms(x.get("p99_ms")), x.get("bound", "-")] for x in r.get("single") or []]
    rows += [[f"reference: GET /bench/trivial, C={c}", n0(t["requests_per_s"]), "1.00",
              ms((t.get("before") or {}).get("p50_ms")), ms((t.get("before") or {}).get("p99_ms")),
              (t.get("before") or {}).get("bound", "-")] for c, t in sorted(triv.items())]
    lines += table(["what", "requests/s", "of trivial", "p50 ms", "p99 ms", "bound"], rows, "lrrrrl")
    return lines + ["", "Also in the ingest-vs-batch-size plot above (section 3).", ""]


def _generic(result: dict) -> list[str]:
    """A module whose structure this report does not know: every list of rows as a table of
    its scalar columns, every scalar as a line."""
    lines = []
    scalars = []
    for key, v in result.items():
        if key in ("machine",):
            continue
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            cols = [k for k in v[0] if not isinstance(v[0][k], (dict, list))][:9]
            if "bound" in v[0] and "bound" not in cols:
                cols.append("bound")
            lines += [f"### {key}", ""]
            lines += table(cols, [[(n2(x.get(c)) if isinstance(x.get(c), float) else x.get(c, "-")) for c in cols] for x in v],
                           "l" * len(cols))
            lines += [""]
        elif isinstance(v, dict):
            flat = {k: x for k, x in v.items() if not isinstance(x, (dict, list))}
            if flat:
                lines += [f"- {key}: " + "; ".join(f"{k} {n2(x) if isinstance(x, float) else x}" for k, x in flat.items())]
        elif not isinstance(v, list):
            scalars.append(f"{key} {n2(v) if isinstance(v, float) else v}")
    if scalars:
        lines += ["", "Scalars: " + "; ".join(scalars)]
    return lines + [""]


def section_stream(report: dict) -> list[str]:
    lines = ["## 5. Stream ingest: Kafka -> stream app -> ledger", ""]
    if not _ok(report, "stream"):
        return lines + _not_run(report, "stream")
    r = report["results"]["stream"]
    rates = F.find_rates(r)
    if rates:
        path, best = max(rates, key=lambda pv: pv[1])
        lines += [f"Best rate reported: **{n0(best)} records/s** (`{path}`).", ""]
    return lines + _generic(r)


def section_proofs(report: dict) -> list[str]:
    lines = ["## 6. Proof serving", ""]
    if _ok(report, "merkle"):
        rows = F.proof_rows(report["results"]["merkle"])
        lines += ["### Inclusion proofs by tree size (MerkleLog, RocksDB store, SM3)", ""]
        lines += table(["tree size", "proofs/s", "p50 µs", "p99 µs", "hashes in proof"],
                       [[n0(x["tree_size"]), n0(x["proofs_per_s"]), n1(x["p50_us"]), n1(x["p99_us"]), x["proof_hashes"]]
                        for x in rows])
        lines += ["", f"Bound: {MERKLE_BOUNDS['proofs']}.", ""] + _plot("proof_tree")
    else:
        lines += _not_run(report, "merkle")
    lines += ["### Proof bundles over HTTP (GET /proof, auditor key)", ""]
    if not _ok(report, "api"):
        return lines + _not_run(report, "api")
    r = report["results"]["api"]
    pl = r.get("proof_ledger") or {}
    lines += [f"Ledger of {n0(pl.get('records'))} records, bundles of ~{n0(pl.get('bundle_bytes'))} bytes.", ""]
    lines += table(["C", "bundles/s", "of trivial", "p50 ms", "p99 ms", "server cores", "server µs/bundle", "bound"],
                   [[x["concurrency"], n0(x["items_per_s"]), n2(x.get("ratio_to_trivial")), ms(x.get("p50_ms")),
                     ms(x.get("p99_ms")), n2(x.get("server_cores")), n0(x.get("server_us_per_request")),
                     x.get("bound", "-")] for x in r.get("proof") or []], "rrrrrrrl")
    return lines + [""]


def section_rebuild(report: dict) -> list[str]:
    lines = ["## 7. Rebuild: replaying a ledger's log into fresh projections", ""]
    if not _ok(report, "ingest") or not report["results"]["ingest"].get("rebuild"):
        return lines + _not_run(report, "ingest")
    rb = report["results"]["ingest"]["rebuild"]
    lines += table(["ledger", "events", "seconds", "events/s", "checkpoints reproduced", "ok", "bound"],
                   [[f"{n0(rb['records'])} records" + (" (build budget hit)" if rb.get("budget_hit") else ""),
                     n0(rb["events"]), n1(rb["rebuild_seconds"]), n0(rb["events_per_s"]),
                     rb.get("checkpoints_verified"), rb.get("ok"), rb.get("bound", "-")]], "lrrrrll")
    lines += ["", f"The ledger was built through Ledger.submit at {n0(rb.get('build_records_per_s'))} records/s; "
              f"{n0(rb.get('disk_bytes_per_record'))} bytes on disk per record (log, tree and indexes, RocksDB's "
              "compression included).", ""]
    return lines


def chain_rows(report: dict) -> tuple[list[float], list[dict], float | None]:
    """(rates, rows, gas per later anchor): transactions per day per ledger for each anchor
    interval at each rate, from the policy (bench.figures.chain_tx_per_day)."""
    res = report.get("results", {})
    s = F.settings(res)
    peak = F.durable_peak(res.get("ingest"))
    rates = [float(PLAN_RATES[0])] + ([float(peak["records_per_s"])] if peak else []) + [float(PLAN_RATES[1])]
    gas = (F.anchor_gas(res.get("anchor")) or {}).get("later")
    rows = []
    for interval in ANCHOR_INTERVALS_S:
        tx = [F.chain_tx_per_day(interval, r, s["batch_max_items"], s["batch_max_delay_s"]) for r in rates]
        rows.append({"interval_s": interval, "tx_per_day": tx})
    return rates, rows, gas


def section_anchor(report: dict) -> list[str]:
    lines = ["## 8. Anchoring", ""]
    res = report.get("results", {})
    if _ok(report, "anchor"):
        r = res["anchor"]
        lines += [f"Chains: {r.get('anvil_version', '?')}; web3.py {r.get('web3', '?')}, py-evm {r.get('py_evm', '?')}.", "",
                  "### Latency, checkpoint sealed -> AnchorConfirmed logged (worker min_interval 0)", ""]
        lines += table(["chain", "confirmations", "worker poll s", "mode", "anchors", "p50 ms", "p99 ms", "bound"],
                       [[x["chain"], x["confirmations"], f"{x['poll_interval_s']:g}", x["mode"], x["latency"]["n"],
                         ms(x["latency"]["p50_ms"]), ms(x["latency"]["p99_ms"]), x.get("bound", "-")]
                        for x in r.get("latency") or []], "lrrlrrrl")
        g = r.get("gas")
        if g:
            lines += ["", f"### Gas per anchor ({g.get('chain', '?')}, receipt gasUsed, median of {g.get('samples', '?')})", ""]
            lines += table(["transaction", "gasUsed", "bound"], [
                ["anchor, a ledger's first", n0(g["anchor_first_median"]), g.get("bound_first", "-")],
                ["anchor, later ones", n0(g["anchor_later_median"]), g.get("bound_later", "-")],
                ["reference: plain transfer", n0(g["transfer_median"]), "the protocol's fixed cost of any transaction"],
                ["reference: one-slot write (per-record floor)", n0(g["per_record_floor_median"]), g.get("bound_floor", "-")],
            ], "lrl")
        run = (r.get("tx_per_million") or {}).get("run")
        if run:
            lines += ["", f"Checked by a run at the defaults: {n0(run['achieved_records_per_s'])} records/s for "
                      f"{n0(run['seconds'])} s sent {run['anchors_sent']} anchors (mean interval "
                      f"{n2(run.get('mean_anchor_interval_s'))} s)."]
        lines += [""]
    else:
        lines += _not_run(report, "anchor")
    rates, rows, gas = chain_rows(report)
    s = F.settings(res)
    lines += ["### Chain transactions per day vs anchor interval, per ledger (from the policy)", "",
              f"Per ledger: 86400 / max(anchor interval, checkpoint interval), checkpoint interval = "
              f"min({n0(s['batch_max_items'])} / rate, {s['batch_max_delay_s']:g} s). L ledgers make L times as many. "
              "A ceiling: the worker also waits for each anchor's confirmation and for its next pass. Gas per day at "
              + (f"{n0(gas)} gas per later anchor (measured above)." if gas else "the anchor gas, which was not measured.")
              , ""]
    head = ["anchor interval s"] + [f"tx/day at {n0(x)} records/s" for x in rates] + ["gas/day (at the middle rate)"]
    mid = len(rates) // 2
    lines += table(head, [[f"{row['interval_s']:g}"] + [n0(t) for t in row["tx_per_day"]]
                          + [n0(row["tx_per_day"][mid] * gas) if gas else "-"] for row in rows])
    return lines + ["", f"Default anchor interval: {s['anchor_min_interval_s']:g} s."] + [""] + _plot("chain_tx")


def section_monitor(report: dict) -> list[str]:
    lines = ["## 9. Monitoring: the ledger monitor verifying checkpoints", ""]
    if not _ok(report, "monitor"):
        return lines + _not_run(report, "monitor")
    r = report["results"]["monitor"]
    t, s = r.get("throughput") or {}, r.get("soak") or {}
    sm2 = t.get("sm2_only_per_second")
    lines += [f"{n0(t.get('checkpoints'))} checkpoints (about one per record) served by a local `evledger serve`, verified "
              "in pages of 1,000 with their consistency proofs (every SM2 signature and RFC 9162 consistency proof "
              "checked, state written to SQLite). References from the same run: the same pages fetched with nothing "
              "checked, and SM2 verification of the same notes alone.", ""]
    rows = [[what, n0(t.get("checkpoints")), n2(t.get(f"{key}_seconds")), n0(t.get(per_s)),
             n2(t[per_s] / sm2) if sm2 and t.get(per_s) else "-"]
            for what, key, per_s in (
                ("monitor pass, in process (fetch + SM2 + consistency + SQLite)", "monitor", "checkpoints_per_second"),
                ("`evledger monitor` command, process start included", "command", "command_checkpoints_per_second"),
                ("reference: the same pages fetched, nothing checked", "fetch_only", "fetch_only_per_second"),
                ("reference: SM2 verification of the same notes alone", "sm2_only", "sm2_only_per_second"))]
    lines += table(["what", "checkpoints", "seconds", "checkpoints/s", "of SM2 alone"], rows)
    if t.get("monitor_seconds") and t.get("fetch_only_per_second") and t.get("sm2_only_seconds") is not None:
        lines += ["", f"Monitor pass: **{n0(t.get('checkpoints_per_second'))} checkpoints/s**, "
                  f"{n2(t['checkpoints_per_second'] / t['fetch_only_per_second'])} of the fetch-only rate; SM2 verification "
                  f"alone takes {t['sm2_only_seconds'] / t['monitor_seconds']:.0%} of its time."]
    lines += ["", "### Soak: an honest ledger anchoring to anvil every second, followed with `evledger monitor --follow`", ""]
    if "skipped" in s or not s:
        return lines + [f"Not measured: {s.get('skipped', 'no soak in the result')}", ""]
    lines += table(["checkpoints produced", "records", "seconds", "checkpoints verified", "anchors checked",
                    "read errors", "false alarms"],
                   [[f"{n0(s.get('checkpoints_produced'))}+", n0(s.get("records")), n1(s.get("seconds")),
                     n0(s.get("checkpoints_verified")), n0(s.get("anchors_checked")), n0(s.get("errors")),
                     f"**{n0(s.get('false_alarms'))}**"]])
    lines += [""] + [f"- alarm: `{cell(a)}`" for a in s.get("alarm_lines") or []]
    return lines + ([""] if s.get("alarm_lines") else [])


def _dist_row(what: str, d: dict | None) -> list:
    d = d or {}
    return [what, n0(d.get("n")), ms(d.get("p50")), ms(d.get("p90")), ms(d.get("p99")), ms(d.get("max"))]


def section_witness(report: dict) -> list[str]:
    lines = ["## 10. Witness cosigning: record -> checkpoint with one local witness", ""]
    if not _ok(report, "witness"):
        return lines + _not_run(report, "witness")
    r = report["results"]["witness"]
    st, pooled, pieces = r.get("settings") or {}, r.get("pooled") or {}, r.get("pieces") or {}
    ref, wit = pooled.get("reference") or {}, pooled.get("witnessed") or {}
    interval = st.get("interval")
    lines += [f"{st.get('batch', '?')} records every {n0(interval * 1000) if interval else '?'} ms for "
              f"{n0(st.get('seconds'))} s per run (POST /records/batch, paced), `evledger serve` --batch-max-delay "
              f"{st.get('batch_max_delay', '?')}; reference (no witness) and witnessed runs alternate, "
              f"{st.get('repeats', '?')} of each. Reference from the same run: the same load without witnesses.", ""]
    lines += table(["ms, service clock", "n", "p50", "p90", "p99", "max"], [
        _dist_row("reference (no witness): received -> sealed", ref.get("record_to_sealed_ms")),
        _dist_row("witnessed: received -> cosignature logged", wit.get("record_to_cosigned_ms")),
        _dist_row("witnessed: received -> sealed (sealing alone)", wit.get("record_to_sealed_ms")),
        _dist_row("witnessed, per checkpoint: sealed -> cosigned", wit.get("sealed_to_cosigned_ms"))])
    lines += ["", f"Added by cosigning: p99 **{n1(pooled.get('added_p99_ms'))} ms** (witnessed "
              f"{n1((wit.get('record_to_cosigned_ms') or {}).get('p99'))} - reference "
              f"{n1((ref.get('record_to_sealed_ms') or {}).get('p99'))}), p50 {n1(pooled.get('added_p50_ms'))} ms. "
              f"Checkpoints not cosigned: {n0(pooled.get('not_cosigned'))}; collector errors: "
              f"{n0(pooled.get('errors'))}; witness refusals: {n0(pooled.get('refused'))}.", ""]
    if pieces:
        lines += ["### Where the time goes", ""]
        lines += table(["piece, ms", "n", "p50", "p90", "p99", "max"], [_dist_row(what, pieces.get(key)) for key, what in (
            ("add_checkpoint_new_ms", "witness add-checkpoint over HTTP, new size (verify, proof, fsync'd state, cosign)"),
            ("add_checkpoint_same_size_ms", "witness add-checkpoint over HTTP, the size it holds (no state write)"),
            ("state_write_ms", "the witness's state write alone (write, fsync, rename, dir fsync)"),
            ("sm2_verify_checkpoint_ms", "SM2 verify of the ledger's checkpoint signature"),
            ("cosign_checkpoint_ms", "SM2 cosignature made"),
            ("verify_cosignature_ms", "SM2 cosignature verified (the collector's check)")) if pieces.get(key)])
        lines += [""]
    return lines


def _tiles_overhead(o: dict, st: dict) -> list[str]:
    lag, pub = o.get("sealed_to_published_ms") or {}, o.get("published_after_s") or {}
    lines = ["### Ingest with and without publication (goal <= 10% fewer records/s)", "",
             f"{n0(st.get('records'))} records per run, POST /records/batch of {n0(st.get('batch'))} over "
             f"{st.get('ingest_connections', '?')} connections, a fresh `evledger serve` per run (--batch-max-delay "
             f"{st.get('batch_max_delay', '?')}: a checkpoint, and a publication step, every "
             f"{st.get('batch_max_delay', '?')} s), with and without --publish-tiles, alternating, "
             f"{st.get('repeats', '?')} of each. Reference from the same run: the same load without publication.", ""]
    lines += table(["configuration", "records/s acknowledged (mean)", "server µs per record",
                    "records/s to the last published (sealed)", "server µs per record to then"], [
        ["reference: without --publish-tiles", n0(o.get("reference_records_per_s")),
         n1(o.get("reference_server_us_per_record")), n0(o.get("reference_records_per_s_to_sealed")),
         n1(o.get("reference_server_us_per_record_to_done"))],
        ["with --publish-tiles", n0(o.get("publishing_records_per_s")), n1(o.get("publishing_server_us_per_record")),
         n0(o.get("publishing_records_per_s_to_published")), n1(o.get("publishing_server_us_per_record_to_done"))]])
    lines += ["", f"Overhead: **{n1(o.get('overhead_pct'))}%** of acknowledged records/s (server CPU per record "
              f"{o.get('server_cpu_overhead_pct', 0):+.1f}%); {n1(o.get('to_done_overhead_pct'))}% counted to the last "
              f"record published (a publisher behind ingest works after the last answer). Caught up in every run: "
              f"{'yes' if o.get('all_caught_up') else 'NO'}, {n2(pub.get('mean'))} s after the last answer on average; "
              f"checkpoint sealed -> published p50 {ms(lag.get('p50'))} ms, p99 {ms(lag.get('p99'))} ms "
              f"({n0(lag.get('n'))} checkpoints seen).", ""]
    return lines


TILES_ROWS = (("api_proof", "API: GET /proof (mean of before and after)", None),
              ("nginx_tiles", "nginx: every file of each bundle, no cache (mean of before and after)", "files_per_bundle"),
              ("nginx_tiles_cached", "nginx: the files a caching client fetches", "files_per_bundle_cached"),
              ("nginx_tiles_gzip", "nginx: every file, Accept-Encoding: gzip", "files_per_bundle"),
              ("serve_tiles", "`evledger serve` /tiles: every file of each bundle", "files_per_bundle"),
              ("nginx_trivial", "reference: nginx, a 3-byte static file", None),
              ("api_healthz", "reference: `evledger serve` GET /healthz", None))


def _tiles_proofs(p: dict, st: dict) -> list[str]:
    led, rc = p.get("ledger") or {}, p.get("ratio_by_server_cpu") or {}
    api = (p.get("api_proof") or {}).get("bundles_per_s")
    lines = ["### Proof bundles: nginx serving the tiles vs the API's proof route (goal >= 10x the API's bundles/s)", "",
             f"A published ledger of {n0(led.get('records'))} records; {n0(p.get('sample'))} random records, for each the "
             f"files a tile client fetches with no cache ({n2(p.get('files_per_bundle'))} files, "
             f"{n0(p.get('bytes_per_bundle'))} bytes; the API's bundle: {n0(p.get('api_bundle_bytes'))} bytes) or "
             f"holding the checkpoint and upper tiles ({n2(p.get('files_per_bundle_cached'))} files). {p.get('driver', '?')}, "
             f"C={st.get('concurrency', '?')}, {n0(st.get('seconds'))} s windows, nginx with one worker.", ""]
    rows = []
    for key, what, per_key in TILES_ROWS:
        r, per = p.get(key), p.get(per_key) if per_key else None
        if not r:
            continue
        ratio = "1.00" if key == "api_proof" else n2(r["bundles_per_s"] / api) if api and per else "-"
        rows.append([what, n0(r.get("requests_per_s")), n2(per) if per else "-", n0(r.get("bundles_per_s")), ratio,
                     "1.00" if key == "api_proof" else n2(rc.get(key)) if key in rc else "-",
                     r.get("before", r).get("bound", "-")])
    lines += table(["what", "requests/s", "files per bundle", "bundles/s", "of the API's", "of the API's by server CPU",
                    "bound"], rows, "lrrrrrl")
    lines += ["", f"Tile bundles/s over the API's: **{n2(p.get('ratio'))}x** with no client cache (a lower bound: a "
              f"real client keeps the checkpoint and upper tiles), {n2(p.get('ratio_cached'))}x with that cache; by "
              f"server CPU per bundle {n2(rc.get('nginx_tiles'))}x and {n2(rc.get('nginx_tiles_cached'))}x.", ""]
    return lines


def _tiles_storage(s: dict) -> list[str]:
    per, parts = s.get("per_record") or {}, s.get("parts") or {}
    rows = [[name, n0(part.get("files")), n1(per.get(f"{name}_apparent")), n1(per.get(f"{name}_disk"))]
            for name, part in parts.items()]
    rows += [["**publication directory**", n0(s.get("files")), f"**{n1(per.get('tiles_apparent'))}**",
              f"**{n1(per.get('tiles_disk'))}**"],
             ["reference: the leaves themselves", "-", n1(per.get("leaf")), "-"],
             ["reference: the data directory (log, node store, projections)", "-", n1(per.get("data_dir_apparent")),
              n1(per.get("data_dir_disk"))]]
    lines = ["### Storage per record", "", f"The proof ledger's publication ({n0(s.get('records'))} records), `du -sb` "
             "(apparent) and `du -sB1` (on disk), after the server stopped. No numeric goal.", ""]
    return lines + table(["what", "files", "bytes/record apparent", "bytes/record on disk"], rows) + [""]


def section_tiles(report: dict) -> list[str]:
    if not _listed(report, "tiles"):
        return []
    lines = ["## 11. Static tiles: publication overhead, proofs from a static server, storage", ""]
    if not _ok(report, "tiles"):
        return lines + _not_run(report, "tiles")
    r = report["results"]["tiles"]
    st = r.get("settings") or {}
    if r.get("overhead"):
        lines += _tiles_overhead(r["overhead"], st)
    if r.get("proofs"):
        lines += _tiles_proofs(r["proofs"], st)
    if r.get("storage"):
        lines += _tiles_storage(r["storage"])
    return lines


def section_push(report: dict) -> list[str]:
    if not _listed(report, "push"):
        return []
    lines = ["## 12. Producer push: `evledger push` against the server's batch ingest rate", ""]
    if not _ok(report, "push"):
        return lines + _not_run(report, "push")
    r = report["results"]["push"]
    ref, p, a = r["reference"], r["push"], r.get("args") or {}
    rows = [[f"{x['driver']}: POST /records/batch ({w})", n0(x["records_per_s"]), n2(x["server_cores"]),
             n2(x["generator_cores"]), x.get("bound", "-")] for w, x in (("before", ref["before"]), ("after", ref["after"]))]
    rows.append(["`evledger push` (the command, start to exit)", n0(p["records_per_s"]), n2(p["server_cores"]),
                 n2(p["generator_cores"]), p.get("bound", "-")])
    lines += [f"{n0(p['records'])} records pushed in batches of {n0(a.get('batch'))}, {a.get('concurrency', '?')} in "
              "flight, into one server (api_bench's); the reference's windows before and after, each into a fresh "
              "ledger, at the same batch size and concurrency.", ""]
    lines += table(["what", "records/s", "server cores", "client cores", "bound"], rows)
    cpu = r.get("client_cpu") or {}
    lines += ["", f"Push / reference (mean {n0(ref['records_per_s'])} records/s): **{n2(r['ratio'])}x** (goal >= 0.8). "
              f"Client CPU: {n1(p['client_us_per_record'])} µs/record for the whole command; its own per-record work "
              f"alone {n2((cpu.get('with_evidence_ids') or {}).get('total_us'))} µs with evidence ids, "
              f"{n2((cpu.get('without_evidence_ids') or {}).get('total_us'))} µs deriving them.", ""]
    return lines


def latency_rows(report: dict) -> list[dict]:
    """Every latency percentile the suite measured: {what, p50_ms, p99_ms, source, bound}."""
    res = report.get("results", {})
    out = []
    if _ok(report, "ingest"):
        lat = F.ingest_latency(res["ingest"]) or {}
        for key, what in (("receipt", "receipt: Ledger.submit (in-process)"), ("to_checkpoint", "record -> checkpoint")):
            p = lat.get(key) or {}
            if p.get("n"):
                out.append({"what": what, "p50_ms": p["p50_ms"], "p99_ms": p["p99_ms"],
                            "source": f"ingest, {n0(lat.get('achieved_records_per_s'))} records/s",
                            "bound": lat.get("bound_receipt" if key == "receipt" else "bound_checkpoint", "-")})
    if _ok(report, "api"):
        r = res["api"]
        s = F.lowest_concurrency_row(r.get("single"))
        if s:
            out.append({"what": "receipt: HTTP POST /records", "p50_ms": s["p50_ms"], "p99_ms": s["p99_ms"],
                        "source": f"api, C={s['concurrency']}, closed loop", "bound": s.get("bound", "-")})
        b = F.lowest_concurrency_row(r.get("batch"))
        if b:
            out.append({"what": f"receipt: HTTP POST /records/batch of {n0(b['batch'])}", "p50_ms": b["p50_ms"],
                        "p99_ms": b["p99_ms"], "source": f"api, C={b['concurrency']}, closed loop", "bound": b.get("bound", "-")})
    if _ok(report, "anchor"):
        for x in res["anchor"].get("latency") or []:
            if x["latency"]["n"] and x["mode"] == "one at a time":
                out.append({"what": f"checkpoint -> anchor: {x['chain']}, conf {x['confirmations']}, poll {x['poll_interval_s']:g} s",
                            "p50_ms": x["latency"]["p50_ms"], "p99_ms": x["latency"]["p99_ms"],
                            "source": f"anchor, {x['latency']['n']} anchors", "bound": x.get("bound", "-")})
    out += witness_latency_rows(report)
    out += tiles_latency_rows(report)
    if _ok(report, "api"):
        p = F.lowest_concurrency_row(res["api"].get("proof"))
        if p:
            out.append({"what": "proof bundle: HTTP GET /proof", "p50_ms": p["p50_ms"], "p99_ms": p["p99_ms"],
                        "source": f"api, C={p['concurrency']}, closed loop", "bound": p.get("bound", "-")})
    if _ok(report, "merkle"):
        rows = F.proof_rows(res["merkle"])
        if rows:
            x = rows[-1]
            out.append({"what": f"inclusion proof, tree of {n0(x['tree_size'])}", "p50_ms": x["p50_us"] / 1000,
                        "p99_ms": x["p99_us"] / 1000, "source": "merkle", "bound": MERKLE_BOUNDS["proofs"]})
    return out


def tiles_latency_rows(report: dict) -> list[dict]:
    """checkpoint sealed -> published as static tiles (tiles bench), for latency_rows."""
    if not _ok(report, "tiles"):
        return []
    r = report["results"]["tiles"]
    lag = (r.get("overhead") or {}).get("sealed_to_published_ms") or {}
    if not lag.get("n"):
        return []
    st = r.get("settings") or {}
    return [{"what": "checkpoint sealed -> published as static tiles", "p50_ms": lag["p50"], "p99_ms": lag["p99"],
             "source": f"tiles, HTTP batch ingest of {n0(st.get('batch'))}-record batches",
             "bound": "the publisher thread: the checkpoint's leaves read back from the log, files staged and renamed; "
                      "it shares the GIL with ingest"}]


def witness_latency_rows(report: dict) -> list[dict]:
    """record -> checkpoint without and with one witness (witness bench), for latency_rows."""
    if not _ok(report, "witness"):
        return []
    r = report["results"]["witness"]
    st, pooled = r.get("settings") or {}, r.get("pooled") or {}
    ref = (pooled.get("reference") or {}).get("record_to_sealed_ms") or {}
    wit = (pooled.get("witnessed") or {}).get("record_to_cosigned_ms") or {}
    s2c = (pooled.get("witnessed") or {}).get("sealed_to_cosigned_ms") or {}
    source = f"witness, {st.get('batch', '?')} records every {n0((st.get('interval') or 0) * 1000)} ms"
    delay = f"the sealer's batch delay ({st.get('batch_max_delay', '?')} s)"
    out = []
    if ref.get("n"):
        out.append({"what": "record -> checkpoint, no witness (HTTP batch)", "p50_ms": ref["p50"],
                    "p99_ms": ref["p99"], "source": source, "bound": delay})
    if wit.get("n"):
        out.append({"what": "record -> cosigned checkpoint, one local witness", "p50_ms": wit["p50"],
                    "p99_ms": wit["p99"], "source": source,
                    "bound": f"{delay}, then sealed -> cosigned (p99 {ms(s2c.get('p99'))} ms)"})
    return out


def section_latency(report: dict) -> list[str]:
    rows = latency_rows(report)
    lines = ["## Latency percentiles: receipt, checkpoint, anchor, proof", ""]
    if not rows:
        return lines + ["No latency was measured.", ""]
    lines += table(["latency", "p50 ms", "p99 ms", "measured in", "bound"],
                   [[r["what"], ms(r["p50_ms"]), ms(r["p99_ms"]), r["source"], r["bound"]] for r in rows], "lrrll")
    lines += ["", "Closed-loop HTTP latencies are taken at saturation (C concurrent requests, each resent at once): "
              "they include queueing, so a server below saturation answers faster.", ""]
    return lines + _plot("latency")


def goal_line(name: str, key: str, g: dict) -> str:
    """One goal in the shape of GOAL_FIELDS: `- module: key >= goal: met (measured x)`."""
    def fmt(x):
        if x is None:
            return "-"
        return n0(x) if isinstance(x, int) or x >= 100 else n2(x)

    measured = g.get("measured", g.get("best"))
    met = g.get("met")
    verdict = "not measured" if met is None else "met" if met else "NOT met"
    return f"- {name}: {key} {g.get('direction', '>=')} {fmt(g.get('goal'))}: {verdict} (measured {fmt(measured)})"


def section_goals(report: dict) -> list[str]:
    lines = []
    for name in MODULES:
        goals = (report.get("results", {}).get(name) or {}).get("goals") if _ok(report, name) else None
        lines += [goal_line(name, key, g) for key, g in (goals or {}).items() if isinstance(g, dict)]
    return (["## Goals the modules set", ""] + lines + [""]) if lines else []


def monitor_witness_bounds(report: dict) -> list[str]:
    """The monitor's and the witness's lines of "What bounded each figure", from their same-run references."""
    res, out = report.get("results", {}), []
    t = (res.get("monitor") or {}).get("throughput") or {} if _ok(report, "monitor") else {}
    if t.get("monitor_seconds") and t.get("sm2_only_seconds") is not None:
        out.append(f"- Monitor: SM2 verification (verifying the same notes alone took "
                   f"{t['sm2_only_seconds'] / t['monitor_seconds']:.0%} of the pass; fetching them alone "
                   f"{t.get('fetch_only_seconds', 0) / t['monitor_seconds']:.0%}).")
    if _ok(report, "witness"):
        r = res["witness"]
        s2c = ((r.get("pooled") or {}).get("witnessed") or {}).get("sealed_to_cosigned_ms") or {}
        rt = (r.get("pieces") or {}).get("add_checkpoint_new_ms") or {}
        ref = ((r.get("pooled") or {}).get("reference") or {}).get("record_to_sealed_ms") or {}
        out.append(f"- Witness cosigning: record -> checkpoint follows the sealer's batch delay "
                   f"({(r.get('settings') or {}).get('batch_max_delay', '?')} s; reference p99 {ms(ref.get('p99'))} ms); "
                   f"cosigning adds sealed -> cosigned (p50 {ms(s2c.get('p50'))} ms), of which the witness's round "
                   f"trip is p50 {ms(rt.get('p50'))} ms.")
    return out


def tiles_bounds(report: dict) -> list[str]:
    """The tiles bench's lines of "What bounded each figure", from its rows' own bounds."""
    if not _ok(report, "tiles"):
        return []
    p = report["results"]["tiles"].get("proofs") or {}
    out = []
    for key, what in (("api_proof", "the API's proof route"), ("nginx_tiles", "nginx serving the tiles")):
        bound = ((p.get(key) or {}).get("before") or {}).get("bound")
        if bound:
            out.append(f"- Static tiles, {what}: {bound}.")
    return out


def section_bounds(report: dict) -> list[str]:
    res = report.get("results", {})
    out = []
    if _ok(report, "merkle"):
        out += [f"- Hasher: {MERKLE_BOUNDS['hasher']}.",
                f"- Tree: memory store {MERKLE_BOUNDS['append_memory']}; RocksDB store {MERKLE_BOUNDS['append_rocksdb']}.",
                f"- Inclusion proofs: {MERKLE_BOUNDS['proofs']}."]
    peak = F.durable_peak(res.get("ingest")) if _ok(report, "ingest") else None
    if peak:
        out.append(f"- Durable ingest peak: {peak.get('bound', '-')}.")
    if _ok(report, "api"):
        b = F.best_row(res["api"].get("batch"))
        p = F.best_row(res["api"].get("proof"))
        if b:
            out.append(f"- HTTP batch ingest peak: {b.get('bound', '-')}.")
        if p:
            out.append(f"- Proof bundles peak: {p.get('bound', '-')}.")
    if _ok(report, "stream"):
        bounds = sorted({x.get("bound") for v in res["stream"].values() if isinstance(v, list)
                         for x in v if isinstance(x, dict) and x.get("bound")} |
                        ({res["stream"]["bound"]} if isinstance(res["stream"].get("bound"), str) else set()))
        out.append("- Stream ingest: " + ("; ".join(bounds) if bounds else "the module states no bound") + ".")
    if _ok(report, "ingest") and res["ingest"].get("rebuild"):
        out.append(f"- Rebuild: {res['ingest']['rebuild'].get('bound', '-')}.")
    if _ok(report, "anchor"):
        out.append("- Anchor latency: block time, confirmations and the worker's poll interval (per row above); "
                   "chain transactions: anchor_min_interval (the policy).")
    out += monitor_witness_bounds(report)
    out += tiles_bounds(report)
    return (["## What bounded each figure", ""] + out + [""]) if out else []


def render_markdown(report: dict) -> str:
    lines = []
    for part in (section_header, section_runs, section_hasher, section_tree, section_durable, section_http,
                 section_stream, section_proofs, section_rebuild, section_anchor, section_monitor, section_witness,
                 section_tiles, section_push, section_latency, section_goals, section_bounds):
        lines += part(report)
    return "\n".join(lines).rstrip() + "\n"


# -- plots ------------------------------------------------------------------------------------------

def draw_hasher(plt, report: dict):
    """SM3 throughput bars by implementation, one panel per message kind; None without figures."""
    if not _ok(report, "merkle"):
        return None
    merkle = report["results"]["merkle"]
    kinds = [k for k in ("nodes", "leaves") if F.hasher_rows(merkle, k)]
    if not kinds:
        return None
    fig, axes = plt.subplots(1, len(kinds), figsize=(6 * len(kinds), 4.8), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        rows = F.hasher_rows(merkle, kind)
        threads = sorted({t for row in rows for t in row["rates"]})
        width = 0.8 / len(threads)
        for j, t in enumerate(threads):
            xs = [i + j * width for i in range(len(rows))]
            ax.bar(xs, [row["rates"].get(t, 0) for row in rows], width, label=f"{t} core" + ("s" if t > 1 else ""))
        ax.set_xticks([i + width * (len(threads) - 1) / 2 for i in range(len(rows))])
        ax.set_xticklabels([row["label"].split(" (")[0] for row in rows], rotation=25, ha="right", fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("messages/s")
        ax.set_title(f"{kind} ({merkle[kind].get('message_bytes_hashed', '?')}-byte messages)", fontsize=9)
        ax.legend(fontsize=8)
        ax.grid(axis="y", which="both", alpha=0.3)
    return fig


def draw_proof_tree(plt, report: dict):
    """Inclusion proof p50/p99 against tree size; None without figures."""
    rows = F.proof_rows(report["results"]["merkle"]) if _ok(report, "merkle") else []
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = [x["tree_size"] for x in rows]
    ax.plot(xs, [x["p50_us"] for x in rows], "o-", label="p50")
    ax.plot(xs, [x["p99_us"] for x in rows], "s--", label="p99")
    ax.set_xscale("log")
    ax.set_xlim(5e2, 2e8)
    ax.set_xlabel("tree size (leaves)")
    ax.set_ylabel("µs per inclusion proof (RocksDB store)")
    ax.grid(which="both", alpha=0.3)
    ax.legend()
    return fig


def ingest_batch_series(report: dict) -> list[tuple[str, list, str]]:
    """(label, [(batch size, records/s)], line style) for every ingest figure measured by batch size."""
    res = report.get("results", {})
    series = []
    if _ok(report, "ingest"):
        r = res["ingest"]
        for threads in sorted({d["threads"] for d in r.get("durable") or []}):
            pts = sorted((d["group"], d["records_per_s"]) for d in r["durable"] if d["threads"] == threads)
            series.append((f"durable Ledger.submit, {threads} thread(s)", pts, "o-"))
        for threads in sorted({d["threads"] for d in r.get("log_layer") or []}):
            pts = sorted((d["group"], d["events_per_s"]) for d in r["log_layer"] if d["threads"] == threads)
            series.append((f"the log alone (RocksDBLog.append), {threads} thread(s)", pts, "^:"))
        pts = sorted((x["group"], x["synced_events_per_s"]) for x in r.get("reference") or [])
        if pts:
            series.append(("reference: raw RocksDB, sync=True", pts, "k--"))
    if _ok(report, "api"):
        batch = res["api"].get("batch") or []
        for c in sorted({b["concurrency"] for b in batch}):
            pts = sorted((b["batch"], b["items_per_s"]) for b in batch if b["concurrency"] == c)
            series.append((f"HTTP POST /records/batch, C={c}", pts, "s-"))
    return series


def draw_ingest_batch(plt, report: dict):
    """Ingest throughput against batch size, durable, log-only, raw RocksDB and HTTP; None without figures."""
    series = ingest_batch_series(report)
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(8, 5))
    for label, pts, style in series:
        ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("batch size (records per submit / per request)")
    ax.set_ylabel("records/s")
    ax.grid(which="both", alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def draw_latency(plt, report: dict):
    """Every latency percentile the suite measured, as horizontal bars; None without figures."""
    import textwrap

    rows = latency_rows(report)
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(10, 0.5 * len(rows) + 1.8))
    ys = list(range(len(rows)))
    ax.barh([y + 0.2 for y in ys], [r["p50_ms"] for r in rows], 0.4, label="p50")
    ax.barh([y - 0.2 for y in ys], [r["p99_ms"] for r in rows], 0.4, label="p99")
    ax.set_yticks(ys)
    ax.set_yticklabels([textwrap.fill(r["what"], 42) for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("ms")
    ax.grid(axis="x", which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def draw_chain_tx(plt, report: dict):
    """Chain transactions a day against the anchor interval, from the policy: always drawn."""
    rates, _, gas = chain_rows(report)
    s = F.settings(report.get("results", {}))
    fig, ax = plt.subplots(figsize=(8, 5))
    intervals = [0.1 * 1.2 ** k for k in range(60) if 0.1 * 1.2 ** k <= 7200]
    for rate in rates:
        ax.plot(intervals, [F.chain_tx_per_day(i, rate, s["batch_max_items"], s["batch_max_delay_s"]) for i in intervals],
                label=f"1 ledger at {rate:,.0f} records/s")
    mid = rates[len(rates) // 2]
    for ledgers in (10, 100):
        ax.plot(intervals, [ledgers * F.chain_tx_per_day(i, mid, s["batch_max_items"], s["batch_max_delay_s"])
                            for i in intervals], "--", label=f"{ledgers} ledgers at {mid:,.0f} records/s each")
    ax.axvline(s["anchor_min_interval_s"], color="grey", lw=0.8)
    ax.text(s["anchor_min_interval_s"] * 1.05, 0.02, f"default interval ({s['anchor_min_interval_s']:g} s)", fontsize=7,
            color="grey", transform=ax.get_xaxis_transform())
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("anchor interval (s)")
    ax.set_ylabel("chain transactions per day")
    if gas:
        sec = ax.secondary_yaxis("right", functions=(lambda y, g=gas: y * g, lambda y, g=gas: y / g))
        sec.set_ylabel(f"gas per day ({gas:,.0f} per anchor)")
    ax.grid(which="both", alpha=0.3)
    ax.legend(fontsize=7)
    return fig


# PLOTS key -> what draws it, in the order they are drawn
DRAWERS = (("hasher", draw_hasher), ("proof_tree", draw_proof_tree), ("ingest_batch", draw_ingest_batch),
           ("latency", draw_latency), ("chain_tx", draw_chain_tx))


def render_plots(report: dict, outdir: str | Path) -> list[str]:
    """Draw every plot the results allow into outdir (Agg backend); the file names drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    drawn = []
    subtitle = f"{report.get('machine', {}).get('cpu', '?')}, {report.get('machine', {}).get('cores', '?')} cores" + (
        " - quick run" if report.get("quick") else "")
    for key, draw in DRAWERS:
        fig = draw(plt, report)
        if fig is None:
            continue
        name = PLOTS[key][0]
        fig.suptitle(PLOTS[key][1] + "\n" + subtitle, fontsize=10)
        fig.tight_layout()
        fig.savefig(outdir / name, dpi=110)
        plt.close(fig)
        drawn.append(name)
    return drawn


def write(report: dict, outdir: str | Path) -> tuple[Path, list[str]]:
    """report.md and the plots into outdir."""
    outdir = Path(outdir)
    drawn = render_plots(report, outdir)
    md = outdir / "report.md"
    md.write_text(render_markdown(report))
    return md, drawn


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Redraw a suite run's report.md and plots from its report.json.")
    parser.add_argument("run_dir", help="bench/results/<stamp> (holding report.json)")
    args = parser.parse_args(argv)
    path = Path(args.run_dir) / "report.json"
    if not path.exists():
        parser.error(f"{path} does not exist")
    md, drawn = write(json.loads(path.read_text()), args.run_dir)
    print(f"wrote {md} and {len(drawn)} plots: {', '.join(drawn)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
