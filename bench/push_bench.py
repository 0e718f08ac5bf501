"""`make bench-push`: `evledger push` of 1,000,000 records to a local server, against the
server's batch ingest rate driven by a load generator that is not Python, in the same run.
Writes bench/results/push-<UTC time>.{json,md}.

    python -m bench.push_bench [--quick] [--records N] [--seconds S] [--workdir DIR] [--out DIR]

The server is the API benchmark's (bench/api_bench.py: what `evledger serve` runs, one process,
RocksDB in a data folder on this disk). Two ledgers on it:

1. reference: autocannon (Node.js, bench/load; where it is not installed, api_bench's Python
   driver, whose rate is a lower bound, and the goal is then not judged) posting JSON batches of --batch fresh records
   (api_bench's batch load: only the ids and content hashes change between batches) over
   --concurrency connections for --seconds, before and after the push, each into a fresh
   ledger; their mean is the server's batch ingest rate. Each window is followed by the wait for its checkpoint, so the
   sequencer's work for it does not fall in the next.
2. `evledger push URL LEDGER FILE --receipts R --quiet` as a child process, the real command,
   same batch size and concurrency, over an NDJSON file of records of the same shape: wall
   time from its start to its exit (Python's start-up included), its CPU (RUSAGE_CHILDREN) and
   the server's over the same window. Goal: its records/s >= 0.8 of the reference's.
3. The client's own CPU per record, in this process, with no server: reading a line
   (evledger_client.push.read_line: parse; where there is no evidence id, derive one and write
   the record again as core.prepare writes it), joining a batch's body, reading the answers'
   receipts and writing receipt lines; for lines with and without evidence ids.

Nothing is asserted; the goal is printed next to the figure, met or not.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from bench.api_bench import (PLACEHOLDER, Api, Server, Window, autocannon_ready, batch_load, bound_of,
                             record_template, run_autocannon, run_threads)
from bench.ingest_bench import make_workdir, met
from bench.machine import machine_info, machine_line, write_and_print_result

RESULTS = Path(__file__).parent / "results"
GOAL_RATIO = 0.8  # push records/s over the non-Python generator's, same server, same run


def write_input(path: Path, n: int, batch: int, first: int) -> int:
    """n records as NDJSON, in api_bench's batch shape (fresh ids per batch numbered from
    `first`); its size in bytes."""
    template = record_template(batch)
    with open(path, "wb") as f:
        for k in range(first, first + -(-n // batch)):
            items = orjson.loads(template.replace(PLACEHOLDER, b"%08d" % k))
            f.write(b"".join(orjson.dumps(r) + b"\n" for r in items[:n - (k - first) * batch]))
    return path.stat().st_size


def reference(server: Server, api: Api, ledger: dict, args) -> dict:
    load = batch_load(ledger, args.batch)
    if autocannon_ready():
        r = run_autocannon(server, load, args.concurrency, args.seconds)
    else:  # a Python generator: its rate is a lower bound of the server's, so the goal is not judged
        r = run_threads("transport", server, load, args.concurrency, args.seconds)
    r["driver"] = "autocannon" if autocannon_ready() else "python"
    if r["errors"]:
        raise RuntimeError(f"the reference window had {r['errors']} failed batches: {r['first_error']}")
    r["records_per_s"] = r["items_per_s"]
    r["bound"] = bound_of(r, os.cpu_count() or 1)
    r["sealed_after_s"] = api.wait_sealed(ledger, r["items"])
    return r


def run_push(server: Server, api: Api, ledger: dict, source: Path, args) -> dict:
    receipts = source.with_suffix(".receipts")
    env = {**os.environ, "EVLEDGER_API_KEY": ledger["producer"]["authorization"].split()[1]}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    window = Window(server)
    done = subprocess.run([sys.executable, "-m", "proof_api.cli", "push", server.base, ledger["name"], str(source),
                           "--receipts", str(receipts), "--quiet", "--batch-records", str(args.batch),
                           "--concurrency", str(args.concurrency)], capture_output=True, text=True, env=env,
                          timeout=3600)
    m = window.stop()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise RuntimeError(f"evledger push failed ({done.returncode}): {done.stderr[-2000:]}")
    answered = receipts.read_bytes().count(b"\n")
    m.update(generator_cores=cpu / m["seconds"], requests=-(-args.records // args.batch))
    m["other_cores"] = max(0.0, m["machine_busy_cores"] - m["server_cores"] - m["generator_cores"])
    m["server_us_per_request"] = m["server_cores"] * m["seconds"] / m["requests"] * 1e6
    return {"records": args.records, "receipts": answered, "records_per_s": args.records / m["seconds"],
            "client_cpu_s": cpu, "client_us_per_record": cpu / args.records * 1e6,
            "server_us_per_record": m["server_cores"] * m["seconds"] / args.records * 1e6,
            "summary": done.stderr.strip().splitlines()[-1], "bound": bound_of(m, os.cpu_count() or 1),
            "sealed_after_s": api.wait_sealed(ledger, args.records), **m}


def startup_cpu(server: Server) -> dict:
    """`evledger push` of an empty file: the command's start-up (imports) alone."""
    with tempfile.NamedTemporaryFile(suffix=".ndjson") as empty:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "proof_api.cli", "push", server.base, "none", empty.name, "--quiet"],
                       capture_output=True, env={**os.environ, "EVLEDGER_API_KEY": "evk_x_y"}, timeout=120)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall_s": wall, "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)}


def client_cpu(n: int, batch: int) -> dict:
    """µs of this process's CPU per record for the client's own work, no server: lines read and
    batched, then a batch answer's receipts read and written as receipt lines."""
    from evledger_client.core import array, batch_results
    from evledger_client.push import read_line

    template = orjson.loads(record_template(batch).replace(PLACEHOLDER, b"00000001"))
    with_ids = [orjson.dumps(r) for r in template]
    without_ids = [orjson.dumps({k: v for k, v in r.items() if k != "evidence_id"}) for r in template]
    answer = orjson.dumps({"recorded": batch, "failed": 0, "results": [
        {"evidence_id": r["evidence_id"], "business_id": r["business_id"], "seq": 10_000_000 + i, "leaf_hash": "ab" * 32,
         "received_at": "2026-12-05T10:00:00.123456Z", "status": "recorded", "duplicate": False}
        for i, r in enumerate(template)]})
    out = {}
    for name, lines in (("with_evidence_ids", with_ids), ("without_evidence_ids", without_ids)):
        rounds = max(1, n // batch)
        t0 = time.process_time()
        for _ in range(rounds):  # what push's line_chunks does to each line, and the batch's body
            body = array([read_line(raw)[0] for raw in lines])
            assert body.count(b'"evidence_id"') == batch
        read = time.process_time() - t0
        t0 = time.process_time()
        for _ in range(rounds):
            written = [orjson.dumps({"line": i, **r}) + b"\n" for i, r in enumerate(batch_results(answer, batch))]
        answers = time.process_time() - t0
        assert len(written) == batch
        per = rounds * batch
        out[name] = {"read_and_batch_us": read / per * 1e6, "answers_and_receipts_us": answers / per * 1e6,
                     "total_us": (read + answers) / per * 1e6, "records": per}
    return out


def report(info: dict, args, result: dict) -> str:
    ref, p, c = result["reference"], result["push"], result["client_cpu"]
    driver = ref["before"]["driver"]
    rows = [(f"{driver}, before", ref["before"]), (f"{driver}, after", ref["after"])]
    verdict = met(result["ratio"] >= GOAL_RATIO) if driver == "autocannon" else \
        "not judged: no autocannon here, and a Python generator's rate is a lower bound"
    lines = [f"# `evledger push` against the server's batch ingest rate ({'quick' if args.quick else 'full'} run)", "",
             f"Machine: {machine_line(info)}", "",
             f"Data on {result['filesystem']['device']} ({result['filesystem']['fstype']}). Server (api_bench's: what "
             f"`evledger serve` runs, one process), load generator and push share the machine's {info['cores']} cores. "
             f"Batches of {args.batch:,} records, {args.concurrency} in flight, records of ~{p['bytes_per_record']:.0f} "
             f"bytes.", "",
             "| what | records | records/s | seconds | server cores | server µs/record | client cores | other cores | "
             "bound |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for what, r in rows:
        lines.append(f"| {what} | {r['items']:,} | {r['records_per_s']:,.0f} | {r['seconds']:.1f} | "
                     f"{r['server_cores']:.2f} | {r['server_us_per_request'] / args.batch:.1f} | "
                     f"{r['generator_cores']:.2f} | {r['other_cores']:.2f} | {r['bound']} |")
    lines += [f"| **evledger push** | {p['records']:,} | **{p['records_per_s']:,.0f}** | {p['seconds']:.1f} | "
              f"{p['server_cores']:.2f} | {p['server_us_per_record']:.1f} | {p['generator_cores']:.2f} | "
              f"{p['other_cores']:.2f} | {p['bound']} |", "",
              f"Reference (mean of before and after): **{ref['records_per_s']:,.0f} records/s**. `evledger push`: "
              f"**{p['records_per_s']:,.0f} records/s = {result['ratio']:.2f}x** the reference (goal >= {GOAL_RATIO}: "
              f"**{verdict}**), measured from the command's start to its exit "
              f"({p['receipts']:,} receipt lines written; its own summary: \"{p['summary']}\"). The command's start-up "
              f"alone (an empty file) took {result['startup']['wall_s']:.2f} s and {result['startup']['cpu_s']:.2f} s "
              f"of CPU.", "",
              f"Client CPU: the push process used {p['client_cpu_s']:.1f} s of CPU for {p['records']:,} records = "
              f"**{p['client_us_per_record']:.1f} µs/record** (start-up included; HTTP, the event loop and httpx "
              f"included). Its own per-record work, measured alone in this process ({c['with_evidence_ids']['records']:,} "
              "records, no server):", "",
              "| records | read, parse, batch | answers read, receipt lines written | total |",
              "| --- | ---: | ---: | ---: |"]
    for name, r in c.items():
        lines.append(f"| {name.replace('_', ' ')} | {r['read_and_batch_us']:.2f} µs | "
                     f"{r['answers_and_receipts_us']:.2f} µs | **{r['total_us']:.2f} µs** |")
    lines += ["", "Every line is parsed; one with an evidence id (and no deep nesting) is sent as it is, one without "
              "is given one (SHA-256 over its sorted fields) and written again (core.prepare).", "", f"Whole run: {result['total_seconds']:.0f} s.", ""]
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke check: 10,000 records, 1 s windows")
    parser.add_argument("--records", type=int, default=1_000_000, help="records pushed")
    parser.add_argument("--batch", type=int, default=2000, help="records per batch, push and reference alike")
    parser.add_argument("--concurrency", type=int, default=4, help="batches in flight, push and reference alike")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds per reference window")
    parser.add_argument("--workdir", default=tempfile.gettempdir(), help="where the data folder goes (a real disk)")
    parser.add_argument("--out", default=str(RESULTS), help="results folder")
    args = parser.parse_args(argv)
    if args.quick:
        args.records, args.seconds = 10_000, 1.0
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if not autocannon_ready():
        print("bench.push_bench: autocannon is not installed (make bench-tools): the reference is driven from Python "
              "instead, a lower bound of the server's rate, and the goal is not judged", file=sys.stderr)
    started = time.perf_counter()
    info = machine_info()
    result: dict = {"args": vars(args)}
    workdir = make_workdir(args.workdir, "push", result)
    source = Path(workdir) / "records.ndjson"
    size = write_input(source, args.records, args.batch, first=50_000_000)
    server = Server(workdir)
    try:
        server.wait_ready()
        api = Api(server)
        # A fresh ledger for each window: autocannon numbers its batches from 0 every run.
        before = reference(server, api, api.ledger("reference-before"), args)
        pushed = run_push(server, api, api.ledger("pushed"), source, args)
        after = reference(server, api, api.ledger("reference-after"), args)
        pushed["bytes_per_record"] = size / args.records
        result["startup"] = startup_cpu(server)
        api.close()
    finally:
        server.stop()
    ref = (before["records_per_s"] + after["records_per_s"]) / 2
    result.update(reference={"before": before, "after": after, "records_per_s": ref}, push=pushed,
                  ratio=pushed["records_per_s"] / ref,
                  client_cpu=client_cpu(10_000 if args.quick else 100_000, args.batch),
                  total_seconds=time.perf_counter() - started)
    judged = before["driver"] == "autocannon"
    result["goals"] = {"push_over_batch_ingest": {"goal": GOAL_RATIO, "measured": result["ratio"],
                                                  "met": result["ratio"] >= GOAL_RATIO if judged else None,
                                                  "direction": ">="}}
    write_and_print_result(args.out, "push", {"machine": info, **result}, report(info, args, result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
