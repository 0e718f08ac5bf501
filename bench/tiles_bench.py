"""`make bench-tiles`: what publishing every ledger as static C2SP tlog-tiles costs and gives,
each figure next to a reference measured in the same run. Writes
bench/results/tiles-<UTC time>.{json,md}.

    python -m bench.tiles_bench [--quick] [--records N] [--batch N] [--repeats K] [--proof-records N]
                                [--seconds S] [--concurrency C] [--sample K] [--workdir DIR] [--out DIR]

The full run takes about 3 minutes on 2 quiet cores (4 on a busy machine); --quick about 40 s.

Goals (the tiles issue):
1. publication_overhead_pct <= 10: HTTP batch ingest into `evledger serve --publish-tiles`
   loses at most 10% of its records/s against the same load into `evledger serve` without it.
   Every run is a fresh `evledger serve` (bench.witness_bench.served: --batch-max-delay 0.1, so a
   checkpoint, and a publication step, every 0.1 s, ten times the default's; in-process chain,
   --anchor-min-interval 3600) on a fresh data directory. After a 2,000-record warm-up (sealed,
   and published where on), --records records go in as POST /records/batch of --batch records
   over 2 keep-alive connections (bench.api_bench's threads+transport driver, the one its full
   runs chose; the same record template), a fixed count, clocked from the first request to the
   last answer. The two configurations alternate, --repeats times each (3), the order flipped
   every repeat (off, on, on, off, ...). Then: seconds from the last answer until a checkpoint covers
   every record, and (publishing) until the publication's `checkpoint` file names that size with
   the ledger's root (caught up); and for every checkpoint the file was seen at while polling it
   every 25 ms (in both configurations, so the poller costs both alike), sealed_at -> the file's
   mtime (time to publish).
2. tile_bundles_per_api_bundle >= 10: one `evledger serve --publish-tiles` holding a ledger of
   --proof-records records, published; Debian's nginx (evledger_dev.devnginx, one worker, the
   operators' configuration) serving its tiles root. For --sample random records, the exact
   files a tile client fetches for one proof bundle with no cache are recorded: proof_api.bundle's
   bundle_from_tiles itself (evledger_verify.tiles.TileReader underneath: the checkpoint; the
   tiles check_root reads to tie them to the signed root; the entry bundle; the level-0 tile its
   leaf hash is checked against, the tiles above each full tile is checked against, the
   inclusion path's; whatever else it reads) run on the local publication directory with a
   recording fetch function, and timed (the client's own CPU per bundle), the ledger's hash
   given (a client finds it once, from entry bundle 0). The load generator, not Python: wrk
   (Debian's, one thread, bench.api_bench.run_wrk), else autocannon (Node.js, bench/load), then
   drives, at the same concurrency C and for the same --seconds:
   (a) the API's GET /v1/ledgers/<id>/proof?seq=N&require_anchor=false for the same records, an
   auditor key: requests/s = bundles/s; (b) nginx over the concatenated file lists: tile
   requests/s, and bundles/s = requests/s / mean files per bundle. That is a lower bound: a real
   client keeps the checkpoint and the upper tiles it fetched, so (c) the same with only the
   files such a client still fetches per bundle (the entry bundle and the level-0 tile, unless
   check_root already read them). (a) and (b) run before and after the others, their means used.
   Also (d) list (b) asking for gzip, as evledger_verify's fetcher does (nginx then compresses
   each entry bundle on the fly). References, same run: nginx serving a 3-byte static file;
   `evledger serve`'s own /tiles route over list (b); its /healthz. Without wrk or autocannon,
   bench.api_bench's Python threads+transport driver runs the windows; without
   nginx its windows are left out and the goal reads "not measured".
3. Storage: the publication directory of the proof ledger after the server stopped, `du -sB1`
   (blocks on disk) and `du -sb` (apparent bytes) per record, hash tiles and entry bundles
   apart, next to the leaves' own bytes per record and the data directory (log and node store)
   per record. No numeric goal was given for it; the figures are reported.

Server, nginx and load generator share the machine's cores; the CPU each took over every window
is measured (/proc/<pid>/stat of the server, of nginx's master and worker; the generator's own
count) and printed with each figure. Nothing is asserted; the exit status is 1 when a goal is
not met.
"""
from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from bench.api_bench import (_RECORDED, DRIVERS, PLACEHOLDER, Load, Window, autocannon_ready, bound_of,
                             record_template, run_autocannon, run_wrk, sync_sender, wrk_ready)
from bench.ingest_bench import filesystem_of, met
from bench.machine import machine_info, machine_line, write_and_print_result
from bench.report import n0, n1, n2
from bench.witness_bench import BATCH_MAX_DELAY, LEDGER, all_checkpoints, create_ledger, latest, served, wait_for
from ingest.leaf import parse_received_at

RESULTS = Path(__file__).parent / "results"
GOAL_OVERHEAD_PCT = 10.0
GOAL_BUNDLE_RATIO = 10.0
WARM_BATCHES = 2  # the warm-up: 2 batches before the clock
INGEST_CONNECTIONS = 2
POLL_S = 0.025


# -- processes and their CPU ---------------------------------------------------------------------

def _ppid_and_cmdline(pid: str) -> tuple[int, str]:
    with open(f"/proc/{pid}/stat") as f:
        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
    return ppid, Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


def children(parent: int, marker: str = "") -> list[int]:
    """The processes whose parent is `parent` (and whose command line holds `marker`)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid, cmd = _ppid_and_cmdline(entry)
            except (OSError, ValueError, IndexError):
                continue
            if ppid == parent and marker in cmd:
                out.append(int(entry))
    return out


class Target:
    """An HTTP server for bench.api_bench's Window and run_autocannon: its base URL, and the CPU
    its processes have used (utime + stime, all threads)."""

    def __init__(self, base: str, pids: list[int], name: str):
        self.base, self.pids, self.name = base, pids, name
        self.clk = os.sysconf("SC_CLK_TCK")

    def cpu_seconds(self) -> float:
        total = 0
        for pid in self.pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            except (OSError, IndexError, ValueError):
                pass
        return total / self.clk


@contextlib.contextmanager
def evledger_serve(data: Path, *serve_args: str):
    """`evledger serve` (bench.witness_bench.served), ready (its SM3 kernels compiled, so none of
    that falls in a window); yields a Target."""
    with served(data, *serve_args) as base:
        wait_for(lambda: httpx.get(base + "/readyz", timeout=5).status_code == 200, 120, "/readyz")
        pids = children(os.getpid(), str(data))
        if len(pids) != 1:
            raise RuntimeError(f"found {len(pids)} `evledger serve` processes for {data}")
        yield Target(base, pids, "evledger serve")


# -- ingest, a fixed count ------------------------------------------------------------------------------

def ingest(target: Target, ledger: dict, first_batch: int, batches: int, batch: int,
           connections: int = INGEST_CONNECTIONS) -> dict:
    """POST /records/batch of `batch` fresh records, batches first_batch.. first_batch+batches-1,
    over `connections` keep-alive connections (bench.api_bench's threads+transport): records/s
    from the first request to the last answer, and the CPU split over that window."""
    template = record_template(batch)
    path = f"/v1/ledgers/{LEDGER}/records/batch"
    headers = {"authorization": f"Bearer {ledger['producer']}", "content-type": "application/json"}
    send, close = sync_sender("transport", target.base, connections)
    counter, lock, end = itertools.count(first_batch), threading.Lock(), first_batch + batches
    recorded, errors = [0] * connections, []
    start = threading.Barrier(connections + 1)

    def worker(w: int) -> None:
        send("GET", "/healthz", None, None)  # its connection open before the clock starts
        start.wait()
        while True:
            with lock:
                k = next(counter)
            if k >= end:
                return
            status, body = send("POST", path, template.replace(PLACEHOLDER, b"%08d" % k), headers)
            m = _RECORDED.search(body[:100]) if status == 200 else None
            if m and m.group(2) == b"0":
                recorded[w] += int(m.group(1))
            else:
                errors.append(f"{status} {bytes(body[:300]).decode(errors='replace')}")

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(connections)]
    try:
        for t in threads:
            t.start()
        start.wait()
        window = Window(target)
        for t in threads:
            t.join()
        m = window.stop()
    finally:
        close()
    if errors:
        raise RuntimeError(f"{len(errors)} batches refused; first: {errors[0]}")
    n = sum(recorded)
    return {"records": n, "records_per_s": n / m["seconds"],
            "server_us_per_record": m["server_cores"] * m["seconds"] / max(n, 1) * 1e6, **m}


def published_size(directory: Path) -> tuple[int, int] | None:
    """(tree size, mtime in µs) of a publication directory's checkpoint file, read through one
    open file so both are of the same file; None while there is none."""
    try:
        with open(directory / "checkpoint", "rb") as f:
            text, mtime_ns = f.read(4096), os.fstat(f.fileno()).st_mtime_ns
        return int(text.split(b"\n")[1]), mtime_ns // 1000
    except (FileNotFoundError, IndexError, ValueError):
        return None


class Poller:
    """Polls a publication's checkpoint file every POLL_S s in a thread: {size: mtime µs} of
    every checkpoint seen there."""

    def __init__(self, directory: Path):
        self.directory, self.seen = directory, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            got = published_size(self.directory)
            if got is not None:
                self.seen.setdefault(got[0], got[1])

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def summarize(values) -> dict:
    a = np.asarray(list(values), dtype=float)
    if a.size == 0:
        return {"n": 0, "p50": None, "p99": None, "max": None, "mean": None}
    return {"n": int(a.size), "p50": float(np.percentile(a, 50)), "p99": float(np.percentile(a, 99)),
            "max": float(a.max()), "mean": float(a.mean())}


# -- goal 1: publication overhead on ingest ------------------------------------------------------------

def catch_up(target: Target, ledger: dict, tiles: Path | None, total: int) -> dict:
    """Seconds from now (the last answer) until a checkpoint covers `total` records, and until
    the publication's checkpoint names it (with the ledger's root: caught up exactly)."""
    from evledger_verify.note import Checkpoint, parse_note

    t0 = time.monotonic()
    with httpx.Client(base_url=target.base, timeout=30) as http:
        wait_for(lambda: latest(http, ledger)["size"] >= total, 180, f"a checkpoint of {total} records")
        sealed = time.monotonic() - t0
        cp = latest(http, ledger)
    out = {"sealed_after_s": sealed, "final_size": cp["size"], "published_after_s": None}
    if tiles is not None:
        wait_for(lambda: (published_size(tiles) or (0, 0))[0] >= cp["size"], 180, f"tiles published at {total}")
        out["published_after_s"] = time.monotonic() - t0
        note = Checkpoint.parse_body(parse_note((tiles / "checkpoint").read_text())[0])
        out["caught_up"] = note.size == cp["size"] and note.root.hex() == cp["root"]
        if not out["caught_up"]:
            raise RuntimeError(f"the published checkpoint (size {note.size}) is not the ledger's latest ({cp['size']})")
    return out


def ingest_run(workdir: Path, label: str, publish: bool, args) -> dict:
    """One fresh `evledger serve` (publishing or not): a warm-up, then --records records, timed."""
    data, root = workdir / f"{label}-data", workdir / f"{label}-tiles"
    serve_args = ["--publish-tiles", "--tiles-dir", str(root)] if publish else []
    tiles = root / LEDGER
    with evledger_serve(data, *serve_args) as target:
        ledger = create_ledger(target.base, data)
        ingest(target, ledger, 0, WARM_BATCHES, args.batch)
        catch_up(target, ledger, tiles if publish else None, WARM_BATCHES * args.batch)
        batches = args.records // args.batch
        with Poller(tiles) as poller:  # in both configurations: it costs both alike
            cpu0 = target.cpu_seconds()
            r = ingest(target, ledger, WARM_BATCHES, batches, args.batch)
            r.update(catch_up(target, ledger, tiles if publish else None, (WARM_BATCHES + batches) * args.batch))
            # To the end of the work the load caused: the last record published (sealed without
            # publication), so a publisher that lags behind ingest is charged for it too.
            r["seconds_to_done"] = r["seconds"] + (r["published_after_s"] if publish else r["sealed_after_s"])
            r["records_per_s_to_done"] = r["records"] / r["seconds_to_done"]
            r["server_us_per_record_to_done"] = (target.cpu_seconds() - cpu0) / r["records"] * 1e6
        with httpx.Client(base_url=target.base, timeout=30) as http:
            sealed = {c["size"]: parse_received_at(c["sealed_at"]) for c in all_checkpoints(http, ledger)}
            metrics = http.get("/metrics").text
    first = WARM_BATCHES * args.batch
    r.update(label=label, publish=publish, checkpoints=sum(1 for s in sealed if s > first))
    if publish:
        lags = [(poller.seen[s] - sealed[s]) / 1000 for s in sorted(poller.seen) if s > first and s in sealed]
        r["sealed_to_published_ms"], r["_lags_ms"] = summarize(lags), lags
        r["tiles_failing"] = sum(float(v) for v in re.findall(r"^evledger_tiles_failing\{[^}]*\} (\S+)$", metrics, re.M))
    return r


def measure_overhead(workdir: Path, args) -> dict:
    runs = []
    for i in range(args.repeats):
        for publish in ((False, True) if i % 2 == 0 else (True, False)):
            label = f"{'publishing' if publish else 'reference'}-{i + 1}"
            r = ingest_run(workdir, label, publish, args)
            runs.append(r)
            extra = (f"; published {r['published_after_s']:.2f} s after the last answer, sealed -> published p50 "
                     f"{r['sealed_to_published_ms']['p50'] or 0:.0f} ms over {r['sealed_to_published_ms']['n']} "
                     f"checkpoints seen" if publish else "")
            print(f"  {label}: {r['records']:,} records in {r['seconds']:.2f} s = {r['records_per_s']:,.0f} records/s "
                  f"(server {r['server_us_per_record']:.1f} µs/record, {r['server_cores']:.2f} cores, generator {r['generator_cores']:.2f}, other "
                  f"{r['other_cores']:.2f}); sealed {r['sealed_after_s']:.2f} s after{extra}", flush=True)
    def mean(key: str) -> dict:
        return {p: float(np.mean([r[key] for r in runs if r["publish"] == p])) for p in (False, True)}

    rate, cpu, done, cpu_done = (mean("records_per_s"), mean("server_us_per_record"), mean("records_per_s_to_done"),
                                 mean("server_us_per_record_to_done"))
    overhead = (rate[False] - rate[True]) / rate[False] * 100
    pub = [r for r in runs if r["publish"]]
    return {"runs": runs, "reference_records_per_s": rate[False], "publishing_records_per_s": rate[True],
            "overhead_pct": overhead, "reference_server_us_per_record": cpu[False],
            "publishing_server_us_per_record": cpu[True], "server_cpu_overhead_pct": (cpu[True] - cpu[False]) / cpu[False] * 100,
            "reference_records_per_s_to_sealed": done[False], "publishing_records_per_s_to_published": done[True],
            "to_done_overhead_pct": (done[False] - done[True]) / done[False] * 100,
            "reference_server_us_per_record_to_done": cpu_done[False],
            "publishing_server_us_per_record_to_done": cpu_done[True],
            "server_cpu_to_done_overhead_pct": (cpu_done[True] - cpu_done[False]) / cpu_done[False] * 100,
            "published_after_s": summarize(r["published_after_s"] for r in pub),
            "sealed_after_s": {"reference": summarize(r["sealed_after_s"] for r in runs if not r["publish"]),
                               "publishing": summarize(r["sealed_after_s"] for r in pub)},
            "sealed_to_published_ms": summarize(x for r in pub for x in r.pop("_lags_ms")),
            "all_caught_up": all(r.get("caught_up") for r in pub),
            "tiles_failing": sum(r.get("tiles_failing", 0) for r in pub)}


# -- goal 2: proof bundles from static tiles --------------------------------------------------------------

def bundle_files(tiles: Path, vkey: str, seqs: list[int]) -> dict:
    """For each record, the files a tile client fetches for its bundle with no cache, in order:
    proof_api.bundle.bundle_from_tiles itself (evledger_verify.tiles' TileReader underneath) run
    on the local publication directory with a recording fetch function, timed (the client's own
    work: reads, the SM2 signature, SM3 over every tile it checks). And of those, the files a
    client that keeps everything else still fetches: the record's own entry bundle and level-0
    tile."""
    import evledger_verify.tiles as T
    from proof_api.bundle import bundle_from_tiles

    real, sizes, full, cached, took, log, missing = T.fetcher, {}, [], [], [], [], 0

    def recording(location, timeout=10.0):
        inner = real(location, timeout)

        def fetch(path: str, limit: int) -> bytes | None:
            data = inner(path, limit)
            log.append(path)
            sizes[path] = len(data) if data is not None else None
            return data
        return fetch

    T.fetcher = recording
    try:
        for seq in seqs:
            log.clear()
            t0 = time.perf_counter()
            # A client assembling many bundles knows the ledger's hash after the first (found
            # from entry bundle 0 and its tiles): what each further bundle costs.
            bundle = bundle_from_tiles(str(tiles), LEDGER, [vkey], seq=seq, alg="sm3")
            took.append((time.perf_counter() - t0) * 1000)
            if bundle["leaf"]["index"] != seq:
                raise RuntimeError(f"bundle_from_tiles gave record {bundle['leaf']['index']}, not {seq}")
            full.append([p for p in log if sizes[p] is not None])  # a 404 (a partial tile gone) is not load
            missing += len(log) - len(full[-1])
            own = seq // T.TILE_WIDTH
            mine = (("entries", own), (0, own))
            cached.append([p for p in dict.fromkeys(full[-1]) if (T.parse_path(p) or ("", -1))[:2] in mine])
    finally:
        T.fetcher = real
    return {"size": bundle["checkpoint"]["size"], "full": full, "cached": cached, "sizes": sizes,
            "client_ms_per_bundle": summarize(took), "not_found": missing}


def nginx_bound(m: dict, cores: int) -> str:
    s, g, o, busy = m["server_cores"], m["generator_cores"], m["other_cores"], m["machine_busy_cores"]
    if g >= 0.85:
        main = f"the load generator ({driver()[0]}, one thread) at {g:.2f} cores; nginx {s:.2f}"
    elif s >= 0.85:
        main = f"nginx's one worker at {s:.2f} cores; generator {g:.2f}"
    elif busy >= 0.9 * cores:
        main = f"CPU: all {cores} cores busy (nginx {s:.2f}, generator {g:.2f}, other {o:.2f})"
    else:
        main = f"nothing saturated (nginx {s:.2f}, generator {g:.2f}, machine busy {busy:.2f} of {cores} cores)"
    return main + (f"; other processes took {o:.2f} cores" if o >= 0.2 else "")


def python_load(spec: dict) -> Load:
    """The same requests for bench.api_bench's Python driver (when autocannon is not installed)."""
    paths, headers = spec.get("paths") or [spec["path"]], spec.get("headers") or None
    return Load(lambda i: ("GET", paths[i % len(paths)], None, headers),
                lambda status, body: 1 if status == spec["ok_status"] else 0, spec)


def driver():
    """(name, drive(target, load, C, seconds)): wrk (C, one thread: the lightest), else autocannon,
    else bench.api_bench's threads+transport (a Python generator: its own CPU then bounds every
    rate)."""
    if wrk_ready():
        return "wrk", run_wrk
    if autocannon_ready():
        return "autocannon", run_autocannon
    return "threads+transport", DRIVERS["threads+transport"]


def window(title: str, target: Target | None, spec: dict, args, cores: int, per_bundle: float = 1.0) -> dict | None:
    """One window of the load generator at C connections (None without a target: nginx missing);
    bundles/s = requests/s / files per bundle."""
    if target is None:
        return None
    name, drive = driver()
    load = Load(None, None, spec) if name in ("wrk", "autocannon") else python_load(spec)
    r = drive(target, load, args.concurrency, args.seconds)
    r["bundles_per_s"] = r["requests_per_s"] / per_bundle
    r["bound"] = nginx_bound(r, cores) if target.name == "nginx" else bound_of(r, cores)
    err = f"; {r['errors']} errors (first: {r['first_error']})" if r["errors"] else ""
    per = f" = {r['bundles_per_s']:,.0f} bundles/s" if per_bundle != 1.0 else ""
    print(f"  {title:<48} {r['requests_per_s']:>9,.0f} requests/s{per}; p50 {r['p50_ms']:.1f} ms, p99 "
          f"{r['p99_ms']:.1f} ms; {target.name} {r['server_cores']:.2f} cores, generator {r['generator_cores']:.2f}, "
          f"other {r['other_cores']:.2f}{err}", flush=True)
    return r


def mean_of(a: dict | None, b: dict | None) -> dict | None:
    if a is None or b is None:
        return None
    return {"before": a, "after": b, "requests_per_s": (a["requests_per_s"] + b["requests_per_s"]) / 2,
            "bundles_per_s": (a["bundles_per_s"] + b["bundles_per_s"]) / 2,
            "server_us_per_request": (a["server_us_per_request"] + b["server_us_per_request"]) / 2,
            "spread": abs(a["requests_per_s"] - b["requests_per_s"]) / max(a["requests_per_s"], b["requests_per_s"], 1)}


def build_proof_ledger(target: Target, ledger: dict, tiles: Path, args) -> dict:
    t0 = time.perf_counter()
    r = ingest(target, ledger, 0, args.proof_records // args.batch, args.batch)
    caught = catch_up(target, ledger, tiles, r["records"])
    print(f"  ledger of {caught['final_size']:,} records: ingested at {r['records_per_s']:,.0f} records/s, sealed "
          f"{caught['sealed_after_s']:.2f} s and published {caught['published_after_s']:.2f} s after the last answer "
          f"({time.perf_counter() - t0:.0f} s in all)", flush=True)
    return {"records": caught["final_size"], "ingest_records_per_s": r["records_per_s"], **caught}


@contextlib.contextmanager
def nginx_serving(root: Path):
    """Debian's nginx serving the tiles root (evledger_dev.devnginx), and a 3-byte file at /trivial
    beside it; yields a Target, or None where nginx is not installed."""
    from evledger_dev.devnginx import Nginx, nginx_binary

    if nginx_binary() is None:
        print("  nginx is not installed (Debian: nginx-light): no static server figures", flush=True)
        yield None
        return
    with Nginx(root) as ngx:
        (ngx.run_dir / "www" / "trivial").write_bytes(b"ok\n")
        yield Target(ngx.url, [ngx.process.pid, *children(ngx.process.pid)], "nginx")


def measure_proofs(workdir: Path, args, cores: int) -> tuple[dict, dict]:
    """(the proof figures, the storage figures) of one publishing server and nginx beside it."""
    data, root = workdir / "proofs-data", workdir / "proofs-tiles"
    tiles = root / LEDGER
    with evledger_serve(data, "--publish-tiles", "--tiles-dir", str(root)) as api:
        ledger = create_ledger(api.base, data)
        out = {"ledger": build_proof_ledger(api, ledger, tiles, args), "driver": driver()[0]}
        auditor = {"authorization": f"Bearer {ledger['auditor']}"}
        seqs = np.random.default_rng(2026).integers(0, out["ledger"]["records"], args.sample).tolist()
        bundle = httpx.get(f"{api.base}/v1/ledgers/{LEDGER}/proof", params={"seq": seqs[0], "require_anchor": "false"},
                           headers=auditor, timeout=30)
        files = bundle_files(tiles, ledger["vkey"], seqs)
        out.update(describe_files(files, args.sample), api_bundle_bytes=len(bundle.content))
        with nginx_serving(root) as nginx:
            out.update(proof_windows(api, nginx, auditor, seqs, files, out, args, cores))
    return out, storage(tiles, data, out["ledger"]["records"])


def describe_files(files: dict, sample: int) -> dict:
    full, cached, sizes = files["full"], files["cached"], files["sizes"]
    kinds = (("checkpoint", lambda p: p == "checkpoint"), ("entry bundles", lambda p: p.startswith("tile/entries/")),
             ("level-0 tiles", lambda p: p.startswith("tile/0/")),
             ("tiles above level 0", lambda p: p.startswith("tile/") and not p.startswith(("tile/0/", "tile/entries/"))))
    return {"tree_size": files["size"], "sample": sample, "client_ms_per_bundle": files["client_ms_per_bundle"],
            "not_found_per_bundle": files["not_found"] / len(full),
            "files_per_bundle": sum(map(len, full)) / len(full),
            "files_per_bundle_cached": sum(map(len, cached)) / len(cached),
            "distinct_files": len(sizes),
            "bytes_per_bundle": sum(sizes[p] for lst in full for p in lst) / len(full),
            "bytes_per_bundle_cached": sum(sizes[p] for lst in cached for p in lst) / len(cached),
            "files_per_bundle_by_kind": {kind: sum(1 for lst in full for p in lst if test(p)) / len(full)
                                         for kind, test in kinds},
            "example": {"files": full[0], "cached": cached[0]}}


def proof_windows(api: Target, nginx: Target | None, auditor: dict, seqs: list[int], files: dict, info: dict, args,
                  cores: int) -> dict:
    prefix = f"/tiles/{LEDGER}/"
    tile_spec = {"method": "GET", "paths": [prefix + p for lst in files["full"] for p in lst], "headers": {},
                 "ok_status": 200}
    cached_spec = {**tile_spec, "paths": [prefix + p for lst in files["cached"] for p in lst]}
    gzip_spec = {**tile_spec, "headers": {"accept-encoding": "gzip, identity"}}  # as evledger_verify's fetcher asks
    api_spec = {"method": "GET", "headers": auditor, "ok_status": 200,
                "paths": [f"/v1/ledgers/{LEDGER}/proof?seq={s}&require_anchor=false" for s in seqs]}
    per, per_cached = info["files_per_bundle"], info["files_per_bundle_cached"]
    print(f"  {args.sample} bundles: {per:.2f} files each with no cache ({info['bytes_per_bundle']:,.0f} bytes), "
          f"{per_cached:.2f} with the checkpoint and upper tiles cached; {info['driver']}, C={args.concurrency}, "
          f"{args.seconds:.0f} s windows", flush=True)
    tiles_before = window("nginx: the files of each bundle (before)", nginx, tile_spec, args, cores, per)
    api_before = window("API: GET /proof (before)", api, api_spec, args, cores)
    out = {"nginx_trivial": window("nginx: a 3-byte static file (reference)", nginx, {
               "method": "GET", "path": "/trivial", "headers": {}, "ok_status": 200}, args, cores),
           "nginx_tiles_cached": window("nginx: the files a caching client fetches", nginx, cached_spec, args, cores,
                                        per_cached),
           "nginx_tiles_gzip": window("nginx: the same, Accept-Encoding: gzip", nginx, gzip_spec, args, cores, per),
           "serve_tiles": window("evledger serve /tiles: the files of each bundle", api, tile_spec, args, cores, per),
           "api_healthz": window("API: GET /healthz (reference)", api, {"method": "GET", "path": "/healthz",
                                                                       "headers": {}, "ok_status": 200}, args, cores)}
    out["api_proof"] = mean_of(api_before, window("API: GET /proof (after)", api, api_spec, args, cores))
    out["nginx_tiles"] = mean_of(tiles_before, window("nginx: the files of each bundle (after)", nginx, tile_spec, args,
                                                      cores, per))
    return {**out, **ratios(out, per, per_cached)}


def ratios(out: dict, per: float, per_cached: float) -> dict:
    """Each way of serving bundles against the API's proof route: by bundles/s, and by server CPU
    per bundle (the ratio if the server alone set both rates)."""
    for key, files_each in (("api_proof", 1.0), ("nginx_tiles", per), ("nginx_tiles_cached", per_cached),
                            ("nginx_tiles_gzip", per), ("serve_tiles", per)):
        if out[key] is not None:
            out[key]["server_us_per_bundle"] = out[key]["server_us_per_request"] * files_each
    api = out["api_proof"]
    keys = [k for k in ("nginx_tiles", "nginx_tiles_cached", "nginx_tiles_gzip", "serve_tiles") if out[k] is not None]
    by_rate = {k: out[k]["bundles_per_s"] / api["bundles_per_s"] for k in keys}
    return {"ratio": by_rate.get("nginx_tiles"), "ratio_cached": by_rate.get("nginx_tiles_cached"),
            "ratio_gzip": by_rate.get("nginx_tiles_gzip"), "ratio_serve_tiles": by_rate.get("serve_tiles"),
            "ratio_by_server_cpu": {k: api["server_us_per_bundle"] / out[k]["server_us_per_bundle"] for k in keys}}


# -- goal 3: storage -----------------------------------------------------------------------------------

def du(path: Path, apparent: bool) -> int:
    """`du -sB1` (blocks on disk) or `du -sb` (apparent bytes) of a path, in bytes."""
    flags = ["-sb"] if apparent else ["-sB1"]
    out = subprocess.run(["du", *flags, str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


def storage(tiles: Path, data: Path, records: int) -> dict:
    """Bytes per record of the publication directory, its parts, the leaves themselves, and the
    data directory (log, node store, projections), read after the server stopped."""
    from evledger_verify.tiles import decode_entry_bundle, parse_path

    parts = {"entry bundles": [tiles / "tile" / "entries"],
             "hash tiles": [p for p in (tiles / "tile").iterdir() if p.name != "entries"],
             "checkpoint": [tiles / "checkpoint"]}
    out = {"records": records, "parts": {}}
    for name, paths in parts.items():
        out["parts"][name] = {"apparent": sum(du(p, True) for p in paths), "disk": sum(du(p, False) for p in paths),
                              "files": sum(1 if p.is_file() else sum(len(f) for _, _, f in os.walk(p)) for p in paths)}
    out["apparent"], out["disk"] = du(tiles, True), du(tiles, False)
    out["files"] = sum(len(f) for _, _, f in os.walk(tiles))
    leaf_bytes = 0
    for dirpath, _, names in os.walk(tiles / "tile" / "entries"):
        for name in names:
            rel = (Path(dirpath) / name).relative_to(tiles).as_posix()
            _, _, width = parse_path(rel)
            leaf_bytes += sum(map(len, decode_entry_bundle((tiles / rel).read_bytes(), width)))
    out["leaf_bytes"] = leaf_bytes
    partials = [Path(d) / f for d, _, names in os.walk(tiles) for f in names if ".p/" in (Path(d) / f).as_posix()]
    out["partials"] = {"files": len(partials), "apparent": sum(p.stat().st_size for p in partials)}
    out["data_dir"] = {"apparent": du(data, True), "disk": du(data, False),
                       "parts": {p.name: du(p, False) for p in sorted(data.iterdir()) if p.is_dir()}}
    out["per_record"] = {"tiles_apparent": out["apparent"] / records, "tiles_disk": out["disk"] / records,
                         "leaf": leaf_bytes / records, "data_dir_disk": out["data_dir"]["disk"] / records,
                         "data_dir_apparent": out["data_dir"]["apparent"] / records,
                         **{f"{k}_apparent": v["apparent"] / records for k, v in out["parts"].items()},
                         **{f"{k}_disk": v["disk"] / records for k, v in out["parts"].items()}}
    return out


# -- the report --------------------------------------------------------------------------------------

def report_overhead(o: dict, args) -> list[str]:
    lines = ["## 1. Publication overhead on HTTP batch ingest (goal <= 10%)", "",
             f"{args.records:,} records per run as POST /records/batch of {args.batch:,} over {INGEST_CONNECTIONS} "
             f"connections (bench.api_bench's threads+transport driver), after a {WARM_BATCHES * args.batch:,}-record "
             f"warm-up; each run a fresh `evledger serve` (--batch-max-delay {BATCH_MAX_DELAY}, in-process chain, "
             f"--anchor-min-interval 3600), with and without --publish-tiles, alternating, order flipped each repeat.",
             "", "| run | records/s | seconds | server µs per record | server cores | generator cores | other cores | "
             "checkpoints | sealed after s | published after s | records/s to the last published (sealed) | server µs per "
             "record to then | sealed -> published p50 / p99 / max ms (checkpoints seen) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in o["runs"]:
        lag = r.get("sealed_to_published_ms")
        lines.append(f"| {r['label']} | {n0(r['records_per_s'])} | {r['seconds']:.2f} | {r['server_us_per_record']:.1f} | "
                     f"{r['server_cores']:.2f} | "
                     f"{r['generator_cores']:.2f} | {r['other_cores']:.2f} | {r['checkpoints']} | "
                     f"{r['sealed_after_s']:.2f} | {n2(r['published_after_s'])} | {n0(r['records_per_s_to_done'])} | "
                     f"{r['server_us_per_record_to_done']:.1f} | "
                     + (f"{n0(lag['p50'])} / {n0(lag['p99'])} / {n0(lag['max'])} ({lag['n']})" if lag else "-") + " |")
    lag = o["sealed_to_published_ms"]
    lines += ["", f"Mean records/s: without publication **{n0(o['reference_records_per_s'])}**, with it "
              f"**{n0(o['publishing_records_per_s'])}**: overhead **{o['overhead_pct']:.1f}%** "
              f"(goal <= {GOAL_OVERHEAD_PCT:.0f}%: {met(o['overhead_pct'] <= GOAL_OVERHEAD_PCT)}). The server's CPU per "
              f"record: {o['reference_server_us_per_record']:.1f} µs without, {o['publishing_server_us_per_record']:.1f} µs "
              f"with ({o['server_cpu_overhead_pct']:+.1f}%; the publisher is a thread of the same process). Counting "
              f"to the last record published (sealed, without publication), since a publisher that falls behind does "
              f"its work after the last answer: {n0(o['reference_records_per_s_to_sealed'])} against "
              f"{n0(o['publishing_records_per_s_to_published'])} records/s, **{o['to_done_overhead_pct']:.1f}%** fewer; "
              f"server CPU {o['reference_server_us_per_record_to_done']:.1f} against "
              f"{o['publishing_server_us_per_record_to_done']:.1f} µs per record "
              f"({o['server_cpu_to_done_overhead_pct']:+.1f}%). The goal is judged on the acknowledged records/s. "
              f"Publication caught up "
              f"in every run (the `checkpoint` file names the ledger's latest size and root): "
              f"{'yes' if o['all_caught_up'] else 'NO'}; {n2(o['published_after_s']['mean'])} s after the last answer on "
              f"average (sealing alone: {n2(o['sealed_after_s']['publishing']['mean'])} s with publication, "
              f"{n2(o['sealed_after_s']['reference']['mean'])} s without). Sealed -> published over every checkpoint "
              f"seen: p50 {n0(lag['p50'])} ms, p99 {n0(lag['p99'])} ms, max {n0(lag['max'])} ms ({lag['n']} checkpoints); "
              f"publication errors (evledger_tiles_failing): {n0(o['tiles_failing'])}.", ""]
    return lines


def _rate_row(what: str, r: dict | None, per: float | None) -> str:
    """A window's row; for a mean of two (before, after) the latencies and CPU split are the first's."""
    if r is None:
        return f"| {what} | not measured (nginx is not installed) | | | | | | | | | | |"
    w = r.get("before", r)
    us = r.get("server_us_per_bundle", w["server_us_per_request"] * (per or 1))
    return (f"| {what} | {n0(r['requests_per_s'])} | {n2(per) if per else '-'} | **{n0(r['bundles_per_s'])}** | "
            f"{n0(us)} | {n1(w['p50_ms'])} | {n1(w['p99_ms'])} | {w['server_cores']:.2f} | {w['generator_cores']:.2f} | "
            f"{w['other_cores']:.2f} | {w['errors'] + (r['after']['errors'] if 'after' in r else 0)} | {w['bound']} |")


def x2(x) -> str:
    return "-" if x is None else f"{x:.2f}x"


PROOF_ROWS = (("api_proof", "API: GET /proof?seq=N&require_anchor=false (mean of before and after)", None),
              ("nginx_tiles", "nginx: every file of each bundle, no cache (mean of before and after)", "files_per_bundle"),
              ("nginx_tiles_cached", "nginx: the files a caching client fetches", "files_per_bundle_cached"),
              ("nginx_tiles_gzip", "nginx: every file, Accept-Encoding: gzip (as evledger_verify's fetcher asks)",
               "files_per_bundle"),
              ("serve_tiles", "`evledger serve` /tiles route: every file of each bundle", "files_per_bundle"),
              ("nginx_trivial", "reference: nginx, a 3-byte static file", None),
              ("api_healthz", "reference: `evledger serve` GET /healthz", None))


def report_proofs(p: dict, args) -> list[str]:
    led, kinds, rc = p["ledger"], p["files_per_bundle_by_kind"], p["ratio_by_server_cpu"]
    cl = p["client_ms_per_bundle"]
    generator = {"wrk": "wrk (Debian's, C, one thread)", "autocannon": "autocannon (bench/load, Node.js)"}.get(
        p["driver"], "bench.api_bench's threads+transport (Python: neither wrk nor autocannon is installed, so the "
                     "generator's own CPU bounds these rates)")
    lines = [f"## 2. Proof bundles from static tiles vs the API (goal >= {GOAL_BUNDLE_RATIO:.0f}x the API's bundles/s)",
             "", f"A ledger of {led['records']:,} records, published (ingested at {n0(led['ingest_records_per_s'])} "
             f"records/s; published {n2(led['published_after_s'])} s after the last answer). {p['sample']:,} random "
             f"records; for each, the files a tile client fetches with no cache, as bundle_from_tiles does: "
             f"**{p['files_per_bundle']:.2f} files** ({kinds['checkpoint']:.2f} checkpoint, {kinds['entry bundles']:.2f} "
             f"entry bundles, {kinds['level-0 tiles']:.2f} level-0 tiles, {kinds['tiles above level 0']:.2f} tiles above), "
             f"{n0(p['bytes_per_bundle'])} bytes, against {n0(p['api_bundle_bytes'])} bytes of JSON from the API. A "
             f"client that keeps the checkpoint and the tiles above level 0 fetches {p['files_per_bundle_cached']:.2f} "
             f"files ({n0(p['bytes_per_bundle_cached'])} bytes) per bundle. Load generator: {generator}, "
             f"C={args.concurrency}, {args.seconds:.0f} s windows; nginx with one worker "
             f"(evledger_dev.devnginx, the operators' configuration).", "",
             "| what | requests/s | files per bundle | bundles/s | server µs per bundle | p50 ms | p99 ms | server cores "
             "| generator cores | other cores | errors | bound |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    lines += [_rate_row(what, p[key], p[per] if per else None) for key, what, per in PROOF_ROWS]
    lines += ["", "Latency and CPU columns of the two mean rows are the 'before' window's; server µs per bundle is the "
              "server's CPU per request (nginx's master and worker, or `evledger serve`'s process) times the files per "
              "bundle, the mean of both windows there. Before / after: API "
              f"{n0(p['api_proof']['before']['bundles_per_s'])} / {n0(p['api_proof']['after']['bundles_per_s'])} "
              "bundles/s" + (f", nginx {n0(p['nginx_tiles']['before']['requests_per_s'])} / "
                             f"{n0(p['nginx_tiles']['after']['requests_per_s'])} requests/s" if p["nginx_tiles"] else "")
              + ".", "",
              f"Tile bundles/s / API bundles/s: **{x2(p['ratio'])}** with no client cache (a lower bound: every file "
              f"of every bundle fetched again, the checkpoint and upper tiles included), **{x2(p['ratio_cached'])}** for "
              f"a client that keeps the checkpoint and upper tiles; gzip-asking clients {x2(p['ratio_gzip'])}; "
              f"`evledger serve`'s own /tiles route {x2(p['ratio_serve_tiles'])} (goal >= {GOAL_BUNDLE_RATIO:.0f}x, "
              "judged on the lower bound: "
              + ("not measured" if p["ratio"] is None else met(p["ratio"] >= GOAL_BUNDLE_RATIO)) + ").", "",
              "By server CPU per bundle (the ratio if the server alone set both rates; the load generator took a core "
              f"of its own here): nginx **{x2(rc.get('nginx_tiles'))}** the API with no client cache, "
              f"{x2(rc.get('nginx_tiles_cached'))} for a caching client, {x2(rc.get('nginx_tiles_gzip'))} with gzip; "
              f"`evledger serve`'s /tiles route {x2(rc.get('serve_tiles'))}. A client also checks what it fetched on its "
              f"own CPU: bundle_from_tiles (the SM2 signature, check_root, each full tile against the tile above, the "
              f"entry against its leaf hash, the inclusion proof) took p50 {n1(cl['p50'])} ms, max {n1(cl['max'])} ms "
              f"per bundle from the local directory here ({cl['n']:,} bundles).", "",
              "Files fetched for the first sampled record: " + ", ".join(f"`{f}`" for f in p["example"]["files"])
              + "; cached client: " + (", ".join(f"`{f}`" for f in p["example"]["cached"]) or "none") + ".", ""]
    return lines


def report_storage(s: dict) -> list[str]:
    per, r = s["per_record"], s["records"]
    rows = [(name, part["files"], part["apparent"], part["disk"]) for name, part in s["parts"].items()]
    lines = ["## 3. Storage of the publication per record", "",
             f"The proof ledger's publication directory ({r:,} records) after the server stopped; `du -sb` (apparent) "
             "and `du -sB1` (blocks on disk).", "",
             "| what | files | apparent bytes | bytes/record | on disk | bytes/record |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, files, apparent, disk in rows:
        lines.append(f"| {name} | {files:,} | {apparent:,} | {apparent / r:.1f} | {disk:,} | {disk / r:.1f} |")
    lines += [f"| **publication directory** | {s['files']:,} | {s['apparent']:,} | **{per['tiles_apparent']:.1f}** | "
              f"{s['disk']:,} | **{per['tiles_disk']:.1f}** |",
              f"| reference: the leaves themselves | - | {s['leaf_bytes']:,} | {per['leaf']:.1f} | - | - |",
              f"| reference: the data directory (log, node store, projections) | - | {s['data_dir']['apparent']:,} | "
              f"{per['data_dir_apparent']:.1f} | {s['data_dir']['disk']:,} | {per['data_dir_disk']:.1f} |", "",
              f"Of these, {s['partials']['files']:,} partial tiles and bundles (`.p/<W>`: each width a checkpoint "
              f"published stays until the full tile exists): {s['partials']['apparent']:,} bytes "
              f"({s['partials']['apparent'] / r:.1f} bytes/record).", "",
              "Data directory on disk by folder: " + ", ".join(f"{k} {v / r:.1f} bytes/record"
                                                               for k, v in s["data_dir"]["parts"].items()) + ".", "",
              f"The publication takes {per['tiles_apparent'] / per['leaf']:.2f}x the leaves' bytes (apparent; "
              f"{per['tiles_disk'] / per['leaf']:.2f}x on disk) and {per['tiles_disk'] / per['data_dir_disk']:.2f}x the "
              "data directory's blocks. No numeric goal was given for storage.", ""]
    return lines


def report(info: dict, args, result: dict) -> str:
    lines = [f"# Static tiles: publication overhead, proofs from a static server, storage "
             f"({'quick' if args.quick else 'full'} run)", "", f"Machine: {machine_line(info)}", "",
             f"Data on {result['filesystem']['device']} ({result['filesystem']['fstype']}). Server, nginx and the load "
             f"generators share the machine's {info['cores']} cores; each window's CPU split is in its row.", ""]
    lines += report_overhead(result["overhead"], args)
    lines += report_proofs(result["proofs"], args)
    lines += report_storage(result["storage"])
    lines += ["## Goals", "", *goal_lines(result["goals"]),
              f"- storage: {result['storage']['per_record']['tiles_disk']:.1f} bytes/record on disk "
              f"({result['storage']['per_record']['tiles_apparent']:.1f} apparent), no numeric goal", "",
              f"Whole run: {result['total_seconds']:.0f} s.", ""]
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke check: 20,000 records, one run of each, 2 s "
                                                             "windows, a 20,000-record proof ledger")
    parser.add_argument("--records", type=int, default=200_000, help="records per ingest run (goal 1)")
    parser.add_argument("--batch", type=int, default=1000, help="records per POST /records/batch")
    parser.add_argument("--repeats", type=int, default=3, help="ingest runs of each configuration, alternating")
    parser.add_argument("--proof-records", type=int, default=200_000, help="records of the proof ledger (goals 2, 3)")
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds per load generator window")
    parser.add_argument("--concurrency", type=int, default=16, help="load generator connections")
    parser.add_argument("--sample", type=int, default=1000, help="random records whose bundles are fetched")
    parser.add_argument("--workdir", default=tempfile.gettempdir(), help="where the data folders go (a real disk)")
    parser.add_argument("--out", default=str(RESULTS), help="results folder")
    args = parser.parse_args(argv)
    if args.quick:
        args.records, args.repeats, args.proof_records, args.seconds, args.sample = 20_000, 1, 20_000, 2.0, 200
    return args


def goals_of(result: dict) -> dict:
    """In bench.report's goal shape; the ratio's "met" is null where nginx was not there to measure it."""
    o, p = result["overhead"], result["proofs"]
    return {"publication_overhead_pct": {"goal": GOAL_OVERHEAD_PCT, "measured": o["overhead_pct"],
                                         "met": o["overhead_pct"] <= GOAL_OVERHEAD_PCT, "direction": "<=",
                                         "reference_records_per_s": o["reference_records_per_s"],
                                         "publishing_records_per_s": o["publishing_records_per_s"]},
            "tile_bundles_per_api_bundle": {"goal": GOAL_BUNDLE_RATIO, "measured": p["ratio"],
                                            "met": None if p["ratio"] is None else p["ratio"] >= GOAL_BUNDLE_RATIO,
                                            "direction": ">=", "with_client_cache": p["ratio_cached"],
                                            "by_server_cpu": p["ratio_by_server_cpu"].get("nginx_tiles"),
                                            "api_bundles_per_s": p["api_proof"]["bundles_per_s"],
                                            "tile_bundles_per_s": (p["nginx_tiles"] or {}).get("bundles_per_s")}}


def goal_lines(g: dict) -> list[str]:
    o, t = g["publication_overhead_pct"], g["tile_bundles_per_api_bundle"]
    verdict = "not measured (nginx is not installed)" if t["met"] is None else met(t["met"])
    return [f"- publication_overhead_pct <= {GOAL_OVERHEAD_PCT:.0f}: {met(o['met'])} (measured {o['measured']:.1f}%)",
            f"- tile_bundles_per_api_bundle >= {GOAL_BUNDLE_RATIO:.0f}: {verdict}"
            + ("" if t["met"] is None else f" (measured {t['measured']:.2f}x with no client cache; "
               f"{t['with_client_cache']:.2f}x with one; {t['by_server_cpu']:.2f}x by server CPU per bundle)")]


def main(argv=None) -> int:
    args = parse_args(argv)
    if not wrk_ready() and not autocannon_ready():
        print("neither wrk nor autocannon is installed (make bench-tools): the proof windows use bench.api_bench's Python "
              "threads+transport driver, whose own CPU then bounds their rates", flush=True)
    cores = os.cpu_count() or 1
    info = machine_info()
    print("machine:", machine_line(info), flush=True)
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(dir=args.workdir, prefix="evledger-tiles-bench-"))
    result: dict = {"machine": info, "quick": args.quick, "filesystem": filesystem_of(str(workdir)),
                    "settings": {k: getattr(args, k) for k in ("records", "batch", "repeats", "proof_records", "seconds",
                                                               "concurrency", "sample")}
                    | {"batch_max_delay": BATCH_MAX_DELAY, "ingest_connections": INGEST_CONNECTIONS}}
    try:
        print(f"1. publication overhead: {args.records:,} records per run, {args.repeats} run(s) of each", flush=True)
        result["overhead"] = measure_overhead(workdir, args)
        print(f"2. proof bundles: a published ledger of {args.proof_records:,} records", flush=True)
        result["proofs"], result["storage"] = measure_proofs(workdir, args, cores)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    s = result["storage"]["per_record"]
    print(f"3. storage: publication {s['tiles_disk']:.1f} bytes/record on disk ({s['tiles_apparent']:.1f} apparent); "
          f"leaves {s['leaf']:.1f}; data directory {s['data_dir_disk']:.1f}", flush=True)
    result["total_seconds"] = time.perf_counter() - started
    result["goals"] = goals_of(result)
    written = write_and_print_result(args.out, "tiles", result, report(info, args, result))
    print("\n".join(goal_lines(result["goals"])))
    print(f"total {result['total_seconds']:.0f} s; wrote {written} and {written.with_suffix('.md')}")
    return 1 if any(x["met"] is False for x in result["goals"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
