"""`make bench-api`: the HTTP API under load, each figure next to a trivial FastAPI endpoint
measured in the same run, on the same server. Writes bench/results/api-<UTC time>.{json,md}.

    python -m bench.api_bench [--quick] [--client auto|autocannon|threads+transport|threads+client|async+transport|async+client]
                              [--workdir DIR] [--out DIR]

The full run takes about 3-5 minutes on 2 cores; --quick about a minute.

The server is a child process that runs what `evledger serve` runs, built the same way
(proof_api.cli's helpers: RocksDB log in the data folder, default sequencer settings, the
in-process chain, the anchor worker with its default interval) and started with the same
uvicorn.run settings (one worker, log_level warning, no access log), plus ONE extra route on
the same app: GET /bench/trivial, an `async def` returning {"ok": true}. It goes through the
app's middleware and response class like every /v1 route, but does no auth, no parsing and
no work: the reference for what this server, these settings and this process can do at all.

The load generator is a closed loop of C concurrent keep-alive connections to 127.0.0.1, each
request sent again as soon as its answer is read. Five ways to drive it are measured on the
trivial endpoint first: autocannon (Node.js, bench/load, installed by `make bench`), which is
not Python and so is not held to Python's rate, and four from this process: one thread per connection or one asyncio
task per connection (on uvloop when installed), each through httpx's Client API or straight
through its transport (httpx.HTTPTransport / AsyncHTTPTransport: the same connection pool and
HTTP/1.1 code without the Client's per-request URL merging, cookies, auth and hooks); the one
with the highest rate runs everything (--client picks one by hand). The generator's CPU per
request is what limits the trivial rate here, so the cheapest driver is the fair one.

1. batch ingest: POST /records/batch, JSON arrays of 1,000 and 5,000 fresh records (~230
   bytes each; only the evidence ids, business ids and content hashes change between batches),
   producer key; records/s acknowledged (goal >= 150,000 records/s), and how long the
   sequencer took afterwards to seal them into a checkpoint.
2. single-record submits: POST /records at C concurrent connections; submits/s, p50/p99.
3. proof bundles: GET /proof?seq=N for random N of an anchored ledger (auditor key);
   bundles/s and p50/p99 (goal >= 0.5 of the trivial endpoint's requests/s at the same C).
4. the trivial endpoint at the same C, measured before and after 1-3 (mean used, spread shown).
   Next to each rate: the server's CPU per request. Where the generator or other processes
   take cores, the trivial rate is held down more than the proof rate (the server's share of a
   trivial request is small), so the proof's ratio is also given by server CPU per request:
   trivial's divided by the proof's, the ratio if the server alone set both rates.

Server and load generator share this machine's cores: that bounds every figure here, and the
CPU each used is measured over every window (the server from /proc/<pid>/stat, all its
threads; the generator from its own process time) and printed next to the figure. Latencies
are measured by the generator, so they include its own queueing for the CPU.
Nothing is asserted: the issue's goals are printed next to the figures, met or not.
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import resource
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from bench.ingest_bench import _proc_stat, make_workdir, met, percentiles
from bench.machine import machine_info, machine_line, write_and_print_result
from evledger_common.stopping import terminate
from evledger_dev.devbroker import free_port

RESULTS = Path(__file__).parent / "results"

GOAL_BATCH = 150_000  # records/s through POST /records/batch, on 2 cores
GOAL_PROOF_RATIO = 0.5  # of the trivial endpoint's requests/s at the same concurrency
BATCH_SIZES = (1000, 5000)
TRIVIAL_PATH = "/bench/trivial"
PLACEHOLDER = b"PPPPPPPP"  # 8 characters, replaced by an 8-digit number per request


# -- the server (child process) -----------------------------------------------------------------

def serve_child(data_dir: str, port: int) -> int:
    """What `evledger serve --data-dir D --port P` runs (proof_api/cli/serve.py), plus
    GET /bench/trivial on the same app."""
    import uvicorn

    from proof_api.app import create_app
    from proof_api.cli import anchor_settings, open_chain, open_log, parse_args, sequencer_settings
    from proof_api.runtime import Runtime
    from proof_api.serving import protocol_class

    args = parse_args(["--data-dir", data_dir, "serve", "--port", str(port)])
    runtime = Runtime(args.data_dir, open_log(args), sequencer_settings(args), open_chain(args), anchor_settings(args))
    try:
        runtime.bootstrap_admin_key()
        app = create_app(runtime)

        @app.get(TRIVIAL_PATH, include_in_schema=False)
        async def trivial():
            return {"ok": True}

        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False,
                    timeout_graceful_shutdown=10, http=protocol_class(args.header_timeout), ws="none")
    finally:
        runtime.close()
    return 0


class Server:
    def __init__(self, workdir: str):
        self.data_dir = os.path.join(workdir, "server")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(workdir, "server.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.api_bench", "--serve-child", self.data_dir,
                                      "--port", str(self.port)], stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=str(Path(__file__).resolve().parent.parent))
        self.clk = os.sysconf("SC_CLK_TCK")

    def wait_ready(self, timeout: float = 180.0) -> float:
        import httpx

        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                # ready: its SM3 kernels are compiled too, which must not fall in a measurement
                if httpx.get(self.base + "/readyz", timeout=2).status_code == 200:
                    return time.perf_counter() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the server was not ready (/readyz) within {timeout:.0f} s:\n{self.log_tail()}")

    def admin_key(self) -> str:
        return Path(self.data_dir, "admin.key").read_text().strip()

    def cpu_seconds(self) -> float:
        """utime + stime of the server process, all its threads."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / self.clk
        except (OSError, IndexError, ValueError):
            return 0.0

    def log_tail(self, n: int = 4000) -> str:
        try:
            return Path(self.log_path).read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def stop(self) -> int | None:
        terminate(self.proc, 30, signal.SIGINT)  # uvicorn shuts down, then runtime.close()
        self._log.close()
        return self.proc.returncode


# -- CPU over a window ----------------------------------------------------------------------------

class Window:
    """Wall time, and over it: the server's CPU, the load generator's (this process), and the
    machine's busy time (so anything else running shows up as `other`), all in cores."""

    def __init__(self, server: Server):
        self.server = server
        self.stat0 = _proc_stat()
        self.srv0 = server.cpu_seconds()
        self.wall0, self.gen0 = time.perf_counter(), time.process_time()

    def stop(self) -> dict:
        wall = time.perf_counter() - self.wall0
        srv = self.server.cpu_seconds() - self.srv0
        gen = time.process_time() - self.gen0
        d = [b - a for a, b in zip(self.stat0, _proc_stat())]
        total = sum(d) or 1
        ncpu = os.cpu_count() or 1
        busy = (total - d[3] - d[4]) / total * ncpu
        server, generator = srv / wall, gen / wall
        return {"seconds": wall, "server_cores": server, "generator_cores": generator,
                "machine_busy_cores": busy, "other_cores": max(0.0, busy - server - generator),
                "iowait_cores": d[4] / total * ncpu, "steal_cores": d[7] / total * ncpu}


def cpu_text(m: dict) -> str:
    return (f"CPU: server {m['server_cores']:.2f} ({m['server_us_per_request']:,.0f} us/request), generator "
            f"{m['generator_cores']:.2f} ({m['generator_us_per_request']:,.0f} us/request), other "
            f"{m['other_cores']:.2f} of {os.cpu_count()} cores")


def bound_of(m: dict, cores: int) -> str:
    """What limited a figure, read off the CPU split measured over its window (stored beside
    it, so a reader can disagree)."""
    s, g, o = m["server_cores"], m["generator_cores"], m["other_cores"]
    busy = m["machine_busy_cores"]
    if s >= 0.85:
        main = (f"the server's Python at {s:.2f} cores (one process, one GIL: about one core is its ceiling); "
                f"generator {g:.2f}")
    elif g >= 0.85:
        main = (f"the load generator's Python at {g:.2f} cores (one process, one GIL); server only {s:.2f}: "
                "the generator is the limit here, not the server")
    elif busy >= 0.9 * cores:
        main = f"CPU: all {cores} cores busy (server {s:.2f}, generator {g:.2f}, other {o:.2f})"
    else:
        main = f"nothing saturated (server {s:.2f}, generator {g:.2f}, machine busy {busy:.2f} of {cores} cores"
        if m.get("iowait_cores", 0) >= 0.05:
            main += f", iowait {m['iowait_cores']:.2f}"
        main += "): waiting (fsync, hand-offs between threads)"
    notes = []
    if busy >= 0.9 * cores and not main.startswith("CPU"):
        notes.append(f"and all {cores} cores were busy")
    if o >= 0.2:
        notes.append(f"other processes took {o:.2f} cores (a shared machine: these figures are low)")
    return main + ("; " + "; ".join(notes) if notes else "")


# -- records -------------------------------------------------------------------------------------

def record_template(n: int) -> bytes:
    """A JSON array of n records with PLACEHOLDER in every evidence id, business id and content
    hash; replacing it with a fresh 8-digit number gives n records never seen before (digits
    are hex, so the content hashes stay valid)."""
    hexes = os.urandom(28 * n).hex()
    ph = PLACEHOLDER.decode()
    return orjson.dumps([{"content_hash": ph + hexes[56 * j:56 * j + 56], "business_type": "account-opening",
                          "occurred_at": "2026-11-26T09:00:00+08:00", "evidence_id": f"ev-{ph}-{j:05d}",
                          "business_id": f"bf-{ph}-{j // 4:05d}"} for j in range(n)])


def single_template() -> bytes:
    body = record_template(1)
    return body[1:-1]  # the object, not the array


# -- the load generator ---------------------------------------------------------------------------

class Load:
    """One closed-loop run: C concurrent requests for `seconds`. `job(i)` gives request i as
    (method, path, body bytes or None, headers or None); `check(status, body)` gives how many
    items it completed (0 = an error). `spec` says the same for the non-Python generator
    (bench/load/drive.js): method, headers, path or paths, body_template with placeholder,
    ok_status, and recorded_re or items_per_request."""

    def __init__(self, job, check, spec: dict):
        self.job, self.check, self.spec = job, check, spec
        self.sizes: list[int] = []


def _limits(concurrency: int):
    import httpx

    return httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)


def sync_sender(kind: str, base: str, concurrency: int):
    """send(method, path, body, headers) -> (status, body), and a close(). "client": the
    httpx.Client API; "transport": httpx.HTTPTransport.handle_request with a bare
    httpx.Request, which skips the Client's per-request work (URL merging, cookies, auth,
    redirects, event hooks) but is the same connection pool and HTTP/1.1 code."""
    import httpx

    if kind == "client":
        client = httpx.Client(base_url=base, limits=_limits(concurrency), timeout=120.0, trust_env=False)

        def send(method, path, body, headers):
            r = client.request(method, path, content=body, headers=headers)
            return r.status_code, r.content
        return send, client.close
    transport = httpx.HTTPTransport(limits=_limits(concurrency))
    Request = httpx.Request

    def send(method, path, body, headers):
        r = transport.handle_request(Request(method, base + path, content=body, headers=headers))
        try:
            return r.status_code, r.read()
        finally:
            r.close()
    return send, transport.close


def async_sender(kind: str, base: str, concurrency: int):
    import httpx

    if kind == "client":
        client = httpx.AsyncClient(base_url=base, limits=_limits(concurrency), timeout=120.0, trust_env=False)

        async def send(method, path, body, headers):
            r = await client.request(method, path, content=body, headers=headers)
            return r.status_code, r.content
        return send, client.aclose
    transport = httpx.AsyncHTTPTransport(limits=_limits(concurrency))
    Request = httpx.Request

    async def send(method, path, body, headers):
        r = await transport.handle_async_request(Request(method, base + path, content=body, headers=headers))
        try:
            return r.status_code, await r.aread()
        finally:
            await r.aclose()
    return send, transport.aclose


def _finish(window, lat, items, errors, requests, first_error) -> dict:
    m = window.stop()
    return {"requests": requests, "items": items, "errors": errors, "first_error": first_error,
            "requests_per_s": requests / m["seconds"], "items_per_s": items / m["seconds"],
            "server_us_per_request": m["server_cores"] * m["seconds"] / max(requests, 1) * 1e6,
            "generator_us_per_request": m["generator_cores"] * m["seconds"] / max(requests, 1) * 1e6,
            **percentiles(lat), **m}


def _error_text(status, body) -> str:
    return f"{status} {bytes(body[:300]).decode(errors='replace')}"


def run_async(kind: str, server: Server, load: Load, concurrency: int, seconds: float) -> dict:
    """One asyncio task per connection, on uvloop when installed."""
    import httpx

    async def main():
        send, close = async_sender(kind, server.base, concurrency)
        try:
            # open every connection before the clock starts
            await asyncio.gather(*(send("GET", TRIVIAL_PATH, None, None) for _ in range(concurrency)))
            counter = itertools.count()
            lat: list[float] = []
            state = {"items": 0, "errors": 0, "first_error": None}

            async def worker():
                perf = time.perf_counter
                while perf() < deadline:
                    method, path, body, headers = load.job(next(counter))
                    t0 = perf()
                    try:
                        status, content = await send(method, path, body, headers)
                        n = load.check(status, content)
                    except httpx.HTTPError as exc:
                        status, n = None, 0
                        state["first_error"] = state["first_error"] or repr(exc)
                    lat.append((perf() - t0) * 1000)
                    if n:
                        state["items"] += n
                    else:
                        state["errors"] += 1
                        if status is not None and state["first_error"] is None:
                            state["first_error"] = _error_text(status, content)

            window = Window(server)
            deadline = time.perf_counter() + seconds
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return _finish(window, lat, state["items"], state["errors"], len(lat), state["first_error"])
        finally:
            await close()

    try:
        import uvloop
        return uvloop.run(main())
    except ImportError:
        return asyncio.run(main())


def run_threads(kind: str, server: Server, load: Load, concurrency: int, seconds: float) -> dict:
    """One thread per connection, all on one connection pool."""
    import httpx

    send, close = sync_sender(kind, server.base, concurrency)
    try:
        counter = itertools.count()
        lock = threading.Lock()
        lats: list[list[float]] = [[] for _ in range(concurrency)]
        items = [0] * concurrency
        errors = [0] * concurrency
        first_error: list[str] = []
        start = threading.Barrier(concurrency + 1)

        def worker(w: int):
            send("GET", TRIVIAL_PATH, None, None)  # open this thread's connection before the clock starts
            start.wait()
            start.wait()
            perf = time.perf_counter
            lat = lats[w]
            while perf() < deadline:
                with lock:
                    i = next(counter)
                method, path, body, headers = load.job(i)
                t0 = perf()
                try:
                    status, content = send(method, path, body, headers)
                    n = load.check(status, content)
                except httpx.HTTPError as exc:
                    status, n = None, 0
                    first_error.append(repr(exc))
                lat.append((perf() - t0) * 1000)
                if n:
                    items[w] += n
                else:
                    errors[w] += 1
                    if status is not None:
                        first_error.append(_error_text(status, content))

        threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(concurrency)]
        for t in threads:
            t.start()
        start.wait()
        deadline = time.perf_counter() + seconds
        window = Window(server)
        start.wait()
        for t in threads:
            t.join()
        lat = [x for part in lats for x in part]
        return _finish(window, lat, sum(items), sum(errors), len(lat), first_error[0] if first_error else None)
    finally:
        close()


LOAD_TOOLS = Path(__file__).parent / "load"  # bench/load: autocannon, pinned by its package-lock.json


def autocannon_ready() -> bool:
    # The stamp, not the folder: `npm ci` stopped half-way can leave the folder behind.
    return shutil.which("node") is not None and (LOAD_TOOLS / "node_modules" / ".installed").is_file()


def run_autocannon(server: Server, load: Load, concurrency: int, seconds: float) -> dict:
    """autocannon (Node.js) in a child process: a load generator that is not Python, so a
    rate it reports is the server's, not the generator's. The window runs from its "ready" line
    to its result line, so Node's start-up and exit are outside it; the generator's CPU is what
    drive.js measured over the run."""
    import queue

    spec = {**load.spec, "url": server.base, "connections": concurrency, "seconds": max(1, round(seconds))}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write(orjson.dumps(spec).decode())
    lines: queue.Queue = queue.Queue()
    with tempfile.TemporaryFile("w+") as err:  # a file, not a pipe: a chatty child cannot block on it
        child = subprocess.Popen(["node", str(LOAD_TOOLS / "drive.js"), f.name], stdout=subprocess.PIPE, stderr=err,
                                 text=True)
        def read_lines() -> None:
            for text in child.stdout:
                lines.put(text)
            lines.put("")  # the end: no more lines

        threading.Thread(target=read_lines, daemon=True).start()
        deadline = time.monotonic() + seconds + 120

        def next_line() -> str:
            try:
                return lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return ""
        try:
            ready = next_line()
            window = Window(server)
            line = next_line() if ready.strip() == "ready" else ""
            m = window.stop()
            if line.strip():
                try:
                    child.wait(timeout=10)  # the result is in; a child that lingers is stopped below
                except subprocess.TimeoutExpired:
                    pass
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            os.unlink(f.name)
        err.seek(0)
        problem = err.read()[-2000:]
    if ready.strip() != "ready" or not line.strip():
        raise RuntimeError(f"autocannon gave no result (exit {child.returncode}): {problem}")
    r = orjson.loads(line)
    if r["mean_body_bytes"]:
        load.sizes.append(int(r["mean_body_bytes"]))
    spent = r["cpu_seconds"]
    m["generator_cores"] = spent / m["seconds"]
    m["other_cores"] = max(0.0, m["machine_busy_cores"] - m["server_cores"] - m["generator_cores"])
    requests = r["requests"]
    return {"requests": requests, "items": r["items"], "errors": r["errors"], "first_error": r["first_error"],
            "requests_per_s": requests / m["seconds"], "items_per_s": r["items"] / m["seconds"],
            "server_us_per_request": m["server_cores"] * m["seconds"] / max(requests, 1) * 1e6,
            "generator_us_per_request": spent / max(requests, 1) * 1e6,
            "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"], "max_ms": r["max_ms"], "n": requests, "autocannon": r["autocannon"], **m}


_WRK_SCRIPT = """
local paths = {%s}
local headers = {%s}
local i = 0
request = function()
  i = i + 1
  return wrk.format("%s", paths[(i %% #paths) + 1], headers)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests":%%d,"socket_errors":%%d,"status_errors":%%d,"bytes":%%d,' ..
    '"p50_us":%%d,"p99_us":%%d,"max_us":%%d,"duration_us":%%d}\\n', summary.requests,
    e.connect + e.read + e.write + e.timeout, e.status, summary.bytes, latency:percentile(50),
    latency:percentile(99), latency.max, summary.duration))
end
"""


def _lua_string(text: str) -> str:
    if any(c in text for c in "\r\n\0"):
        raise ValueError(f"a request line cannot hold {text!r}")
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def wrk_ready() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(server: Server, load: Load, concurrency: int, seconds: float) -> dict:
    """wrk (C, Debian's) in a child process with one thread: the lightest load generator at hand,
    so a static server's rate is less the generator's. Requests cycle through the load's paths;
    a status other than 2xx/3xx counts as an error. Its CPU is the child's (RUSAGE_CHILDREN around it)."""
    spec = load.spec
    paths = spec.get("paths") or [spec["path"]]
    headers = ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in (spec.get("headers") or {}).items())
    method = spec.get("method", "GET")
    if not method.isalpha():
        raise ValueError(f"method {method!r}")
    script = _WRK_SCRIPT % (", ".join(map(_lua_string, paths)), headers, method)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        with tempfile.TemporaryFile("w+") as out:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            window = Window(server)
            child = subprocess.Popen(["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--timeout",
                                      "10s", "-s", f.name, server.base], stdout=out, stderr=subprocess.STDOUT, text=True)
            try:
                child.wait(timeout=seconds + 60)
            finally:
                if child.poll() is None:  # stuck, or interrupted: never left running
                    child.kill()
                    child.wait()
            m = window.stop()
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            out.seek(0)
            text = out.read()
    finally:
        os.unlink(f.name)
    line = next((x for x in text.splitlines() if x.startswith('{"requests"')), None)
    if child.returncode != 0 or line is None:
        raise RuntimeError(f"wrk gave no result (exit {child.returncode}): {text[-2000:]}")
    r = orjson.loads(line)
    spent = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)  # wrk's, the one child reaped
    m["generator_cores"] = spent / m["seconds"]
    m["other_cores"] = max(0.0, m["machine_busy_cores"] - m["server_cores"] - m["generator_cores"])
    requests, errors = r["requests"], r["socket_errors"] + r["status_errors"]
    if requests:
        load.sizes.append(r["bytes"] // requests)
    return {"requests": requests, "items": requests - r["status_errors"], "errors": errors,
            "first_error": f"{r['status_errors']} non-2xx/3xx, {r['socket_errors']} socket errors" if errors else None,
            "requests_per_s": requests / m["seconds"], "items_per_s": (requests - r["status_errors"]) / m["seconds"],
            "server_us_per_request": m["server_cores"] * m["seconds"] / max(requests, 1) * 1e6,
            "generator_us_per_request": spent / max(requests, 1) * 1e6,
            "p50_ms": r["p50_us"] / 1000, "p99_ms": r["p99_us"] / 1000, "max_ms": r["max_us"] / 1000, "n": requests,
            "wrk": True, **m}


# name -> (how it drives, what it calls); each measured on the trivial endpoint, the fastest used
DRIVERS = {
    "threads+transport": lambda *a: run_threads("transport", *a),
    "threads+client": lambda *a: run_threads("client", *a),
    "async+transport": lambda *a: run_async("transport", *a),
    "async+client": lambda *a: run_async("client", *a),
}
if autocannon_ready():
    DRIVERS["autocannon"] = run_autocannon
DRIVER_TEXT = {
    "threads+transport": "one thread per connection, httpx.HTTPTransport.handle_request on one pool",
    "threads+client": "one thread per connection, one httpx.Client",
    "async+transport": "one asyncio task per connection, httpx.AsyncHTTPTransport on one pool",
    "async+client": "one asyncio task per connection, one httpx.AsyncClient",
    "autocannon": "autocannon (Node.js, bench/load/drive.js): one connection each, not Python",
}


# -- the API, outside the clocks ---------------------------------------------------------------------

class Api:
    def __init__(self, server: Server):
        import httpx

        self.client = httpx.Client(base_url=server.base, timeout=120.0)
        self.admin = {"authorization": f"Bearer {server.admin_key()}"}

    def call(self, method: str, path: str, key: dict | None = None, expect=(200, 201, 202), **kw):
        headers = {**(key or self.admin), **kw.pop("headers", {})}
        r = self.client.request(method, path, headers=headers, **kw)
        if r.status_code not in expect:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:500]}")
        return r

    def ledger(self, name: str) -> dict:
        """A fresh ledger and a producer and an auditor key for it."""
        self.call("POST", "/v1/ledgers", json={"ledger": name})
        keys = {role: {"authorization": "Bearer " + self.call("POST", f"/v1/ledgers/{name}/api-keys",
                                                               json={"role": role}).json()["key"]}
                for role in ("producer", "auditor")}
        return {"name": name, **keys}

    def ingest(self, ledger: dict, n: int, batch: int = 5000, first: int = 0) -> int:
        template = record_template(batch)
        done = 0
        for k in range(first, first + (n + batch - 1) // batch):
            body = template.replace(PLACEHOLDER, b"%08d" % k)
            out = self.call("POST", f"/v1/ledgers/{ledger['name']}/records/batch", ledger["producer"], content=body,
                            headers={"content-type": "application/json"}).json()
            if out["failed"]:
                raise RuntimeError(f"batch ingest refused records: {out['results'][:2]}")
            done += out["recorded"]
        return done

    def wait_sealed(self, ledger: dict, size: int, timeout: float = 180.0) -> float | None:
        """Seconds until a checkpoint covers `size` records (None: not within the timeout)."""
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout:
            r = self.call("GET", f"/v1/ledgers/{ledger['name']}/checkpoints/latest", ledger["auditor"],
                          expect=(200, 404))
            if r.status_code == 200 and r.json()["size"] >= size:
                return time.perf_counter() - t0
            time.sleep(0.05)
        return None

    def anchor(self, ledger: dict, size: int, timeout: float = 120.0) -> float | None:
        """Anchor the latest checkpoint now; seconds until record size-1 reads as anchored."""
        t0 = time.perf_counter()
        self.call("POST", f"/v1/ledgers/{ledger['name']}/anchors/now")
        while time.perf_counter() - t0 < timeout:
            if self.call("GET", f"/v1/ledgers/{ledger['name']}/records/{size - 1}",
                         ledger["auditor"]).json()["status"] == "anchored":
                return time.perf_counter() - t0
            time.sleep(0.05)
        return None

    def settle(self, ledger: dict, size: int) -> dict:
        """Seal and anchor what a scenario wrote, so that the sequencer's and the chain's work
        for it is done before the next window starts."""
        if size == 0:
            return {"sealed_after_s": None, "anchored_after_s": None}
        sealed = self.wait_sealed(ledger, size)
        anchored = self.anchor(ledger, size) if sealed is not None else None
        return {"sealed_after_s": sealed, "anchored_after_s": anchored}

    def close(self):
        self.client.close()


# -- scenarios --------------------------------------------------------------------------------------

_RECORDED = re.compile(rb'"recorded":(\d+),"failed":(\d+)')


def trivial_load() -> Load:
    job = ("GET", TRIVIAL_PATH, None, None)
    return Load(lambda i: job, lambda status, body: 1 if status == 200 else 0,
                {"method": "GET", "path": TRIVIAL_PATH, "headers": {}, "ok_status": 200})


def batch_load(ledger: dict, size: int) -> Load:
    template = record_template(size)
    path = f"/v1/ledgers/{ledger['name']}/records/batch"
    headers = {**ledger["producer"], "content-type": "application/json"}

    def check(status, body) -> int:
        m = _RECORDED.search(body[:100]) if status == 200 else None
        return int(m.group(1)) if m and m.group(2) == b"0" else 0

    return Load(lambda i: ("POST", path, template.replace(PLACEHOLDER, b"%08d" % i), headers), check,
                {"method": "POST", "path": path, "headers": headers, "body_template": template.decode(),
                 "placeholder": PLACEHOLDER.decode(), "ok_status": 200, "recorded_re": _RECORDED.pattern.decode()})


def single_load(ledger: dict) -> Load:
    template = single_template()
    path = f"/v1/ledgers/{ledger['name']}/records"
    headers = {**ledger["producer"], "content-type": "application/json"}
    return Load(lambda i: ("POST", path, template.replace(PLACEHOLDER, b"%08d" % i), headers),
                lambda status, body: 1 if status == 201 else 0,
                {"method": "POST", "path": path, "headers": headers, "body_template": template.decode(),
                 "placeholder": PLACEHOLDER.decode(), "ok_status": 201})


def proof_load(ledger: dict, size: int, seed: int = 2026) -> Load:
    seqs = np.random.default_rng(seed).integers(0, size, 1 << 20).tolist()
    path = f"/v1/ledgers/{ledger['name']}/proof?seq="
    headers = ledger["auditor"]

    def check(status, body) -> int:
        if status != 200:
            return 0
        if len(load.sizes) < 1000:
            load.sizes.append(len(body))
        return 1

    load = Load(lambda i: ("GET", path + str(seqs[i & ((1 << 20) - 1)]), None, headers), check,
                {"method": "GET", "paths": [path + str(s) for s in seqs[:1 << 16]], "headers": headers,
                 "ok_status": 200})
    return load


def show(title: str, r: dict, unit: str = "requests/s", extra: str = "") -> None:
    rate = r["items_per_s"] if unit != "requests/s" else r["requests_per_s"]
    lat = (f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms" if r["p50_ms"] is not None else "no answers")
    err = f"; {r['errors']} errors (first: {r['first_error']})" if r["errors"] else ""
    print(f"  {title:<34} {rate:>10,.0f} {unit}{extra}; {lat}; {cpu_text(r)}{err}", flush=True)


def show_bounded(title: str, r: dict, unit: str = "requests/s", extra: str = "") -> None:
    """show(), then what bounded the figure on the line below."""
    show(title, r, unit, extra)
    print(f"  {'':34} bound: {r['bound']}", flush=True)


# -- report -----------------------------------------------------------------------------------------

def _cpu_cells(r: dict) -> str:
    return (f"{r['server_cores']:.2f} | {r['server_us_per_request']:,.0f} | {r['generator_cores']:.2f} | "
            f"{r['other_cores']:.2f}")


CPU_HEAD = "server cores | server us/request | generator cores | other cores"


def markdown(result: dict) -> str:
    cores = result["machine"]["cores"]
    cl = result["client"]
    lines = [f"# API benchmark ({'quick' if result['quick'] else 'full'} run)", "",
             f"Machine: {machine_line(result['machine'])}", "",
             f"Server: what `evledger serve` runs, built by proof_api.cli's helpers (RocksDB log in the data folder, "
             f"default sequencer settings, in-process chain, anchor worker with its default interval), uvicorn.run "
             f"with serve's settings, one worker ({result['server']['uvicorn']}); data on "
             f"{result['filesystem']['device']} ({result['filesystem']['fstype']}). Plus GET {TRIVIAL_PATH} on the "
             f"same app (async def returning {{\"ok\": true}}, through the same middleware and response class): "
             f"the reference. Ready after {result['server']['ready_s']:.1f} s.", "",
             f"Load generator: a second process (the benchmark's own), httpx {cl['httpx']}, closed loop over C "
             f"keep-alive connections to 127.0.0.1; driver **{cl['driver']}** ({DRIVER_TEXT[cl['driver']]}; "
             f"{cl['why']}). Latencies are measured in the generator.", "",
             f"**Server and generator share the machine's {cores} cores**: that bounds every figure below. The CPU "
             f"columns split each window's time between them (server: /proc/<pid>/stat, all its threads; generator: "
             f"its process time; other: the rest of the machine's busy time).", ""]
    lines += ["## Driver choice (trivial endpoint)", "",
              f"| driver | C | requests/s | p50 ms | p99 ms | {CPU_HEAD} | generator us/request |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in result["calibration"].items():
        lines.append(f"| {name} | {r['concurrency']} | {r['requests_per_s']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                     f"{_cpu_cells(r)} | {r['generator_us_per_request']:,.0f} |")
    lines += ["", "## 4. Trivial endpoint (reference): before and after 1-3, mean used", "",
              f"| C | requests/s (mean) | before | after | spread | p50 ms | p99 ms | {CPU_HEAD} | bound |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for t in result["trivial"]:
        b, a = t["before"], t["after"]
        lines.append(f"| {t['concurrency']} | **{t['requests_per_s']:,.0f}** | {b['requests_per_s']:,.0f} | "
                     f"{a['requests_per_s']:,.0f} | {t['spread']:.0%} | {b['p50_ms']:.2f} / {a['p50_ms']:.2f} | "
                     f"{b['p99_ms']:.2f} / {a['p99_ms']:.2f} | {_cpu_cells(b)} | {b['bound']} |")
    lines += ["", f"## 1. Batch ingest (goal >= {GOAL_BATCH:,} records/s on {cores} cores)", "",
              f"| batch | C | records/s | goal | requests/s | p50 ms | p99 ms | {CPU_HEAD} | sealed after | errors | bound |",
              "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in result["batch"]:
        sealed = f"{r['sealed_after_s']:.1f} s" if r["sealed_after_s"] is not None else "NOT in 180 s"
        lines.append(f"| {r['batch']:,} | {r['concurrency']} | **{r['items_per_s']:,.0f}** | "
                     f"{met(r['items_per_s'] >= GOAL_BATCH)} | {r['requests_per_s']:,.1f} | "
                     f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {_cpu_cells(r)} | {sealed} | {r['errors']} | {r['bound']} |")
    lines += ["", "'sealed after': from the window's end until a checkpoint covered every record it acknowledged.",
              "", "## 2. Single-record submits", "",
              f"| C | submits/s | of trivial | p50 ms | p99 ms | {CPU_HEAD} | errors | bound |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in result["single"]:
        lines.append(f"| {r['concurrency']} | **{r['items_per_s']:,.0f}** | {r['ratio_to_trivial']:.2f} | {r['p50_ms']:.2f} | "
                     f"{r['p99_ms']:.2f} | {_cpu_cells(r)} | {r['errors']} | {r['bound']} |")
    pl = result["proof_ledger"]
    lines += ["", f"## 3. Proof bundles (goal >= {GOAL_PROOF_RATIO} of the trivial endpoint's rate at the same C)", "",
              f"Ledger of {pl['records']:,} records (ingested through the batch API at {pl['ingest_records_per_s']:,.0f} "
              f"records/s, outside the clocks), sealed {pl['sealed_after_s']:.1f} s and anchored "
              f"{pl['anchored_after_s']:.1f} s later; GET /proof?seq=N for random N, auditor key; bundles of "
              f"~{pl['bundle_bytes']:,} bytes.", "",
              f"| C | bundles/s | of trivial | goal | p50 ms | p99 ms | {CPU_HEAD} | of trivial by server CPU | errors | bound |",
              "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in result["proof"]:
        lines.append(f"| {r['concurrency']} | **{r['items_per_s']:,.0f}** | **{r['ratio_to_trivial']:.2f}** | "
                     f"{met(r['ratio_to_trivial'] >= GOAL_PROOF_RATIO)} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                     f"{_cpu_cells(r)} | {r['ratio_by_server_cpu']:.2f} | {r['errors']} | {r['bound']} |")
    lines += ["", "'of trivial by server CPU': the trivial endpoint's server CPU per request divided by the proof's, "
              "the ratio the two rates would show if the server alone set them. Where it differs from 'of trivial', "
              "the measured rates were not set by the server alone: the load generator (and any other process) "
              "took a larger share of the cores in the trivial windows, where the server's work per request is "
              "smallest.", ""]
    g = result["goals"]
    lines += ["## Goals (issue)", "",
              f"- batch ingest >= {GOAL_BATCH:,} records/s on {cores} cores: {met(g['batch_records_per_s']['met'])} "
              f"(best {g['batch_records_per_s']['best']:,.0f})",
              f"- proof bundles >= {GOAL_PROOF_RATIO} of the trivial endpoint's rate: {met(g['proof_ratio']['met'])} "
              f"(best {g['proof_ratio']['best']:.2f}; by server CPU per request {g['proof_ratio']['by_server_cpu']:.2f})",
              "", f"Whole run: {result['total_seconds']:.0f} s; machine busy {result['run']['machine_busy_cores']:.2f} "
              f"of {cores} cores over it, of which other processes {result['run']['other_cores']:.2f}"
              + (" (a shared machine: rerun on a quiet one)" if result["run"]["other_cores"] >= 0.2 else "") + ".", ""]
    return "\n".join(lines)


# -- main -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunSizes:
    """Window lengths, concurrencies and the proof ledger's size, for --quick or a full run."""
    seconds: float  # per measured window
    calibration_seconds: float
    concurrency: tuple[int, ...]  # singles, proofs, and the trivial reference
    batch_concurrency: tuple[int, ...]
    proof_records: int

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "RunSizes":
        quick = args.quick
        return cls(seconds=3.0 if quick else 10.0, calibration_seconds=1.0 if quick else 3.0,
                   concurrency=(16,) if quick else (16, 32), batch_concurrency=(4,) if quick else (2, 4),
                   proof_records=20_000 if quick else 200_000)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short windows, for a smoke check (about a minute)")
    parser.add_argument("--client", choices=("auto", *DRIVERS), default="auto",
                        help="how the load generator drives its connections (default: each is measured on the "
                             "trivial endpoint and the fastest is used)")
    parser.add_argument("--workdir", default=tempfile.gettempdir(), help="where the server's data folder goes (a real disk)")
    parser.add_argument("--out", default=str(RESULTS), help="results folder")
    parser.add_argument("--serve-child", metavar="DATA_DIR", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def server_stack() -> str:
    """uvicorn's version and the event loop and HTTP parser it picks here."""
    import uvicorn

    try:
        import uvloop
        loop_impl = f"uvloop {uvloop.__version__}"
    except ImportError:
        loop_impl = "asyncio"
    try:
        import httptools  # noqa: F401
        http_impl = "httptools"
    except ImportError:
        http_impl = "h11"
    return f"uvicorn {uvicorn.__version__}, {loop_impl}, {http_impl}"


def warm_up(api: Api) -> None:
    """Numba kernels, the write path, the sequencer, the chain and bundles, outside every clock."""
    warm = api.ledger("warm")
    api.ingest(warm, 2000, batch=1000)
    api.settle(warm, 2000)
    api.call("GET", "/v1/ledgers/warm/proof?seq=7", warm["auditor"])
    api.call("POST", "/v1/ledgers/warm/records", warm["producer"], content=single_template().replace(
        PLACEHOLDER, b"99999999"), headers={"content-type": "application/json"})


def measure_idle(server: Server, cores: int) -> dict:
    """One idle second before measuring: whatever else keeps this machine busy."""
    window = Window(server)
    time.sleep(1.0)
    idle = window.stop()
    print(f"idle for 1 s before measuring: machine busy {idle['machine_busy_cores']:.2f} of {cores} cores "
          f"(server {idle['server_cores']:.2f})"
          + (": other processes are busy on this machine, the figures will be low" if
             idle["machine_busy_cores"] - idle["server_cores"] >= 0.2 else ""), flush=True)
    return idle


def choose_driver(server: Server, client: str, sizes: RunSizes, result: dict):
    """The driver that gets the most out of the trivial endpoint (or the one --client names);
    its calibration figures and why it was chosen go into `result`."""
    import httpx

    c = sizes.concurrency[0]
    result["calibration"] = {}
    drivers = list(DRIVERS) if client == "auto" else [client]
    print(f"driver: trivial endpoint, C={c}, {sizes.calibration_seconds:.0f} s each", flush=True)
    for name in drivers:
        r = DRIVERS[name](server, trivial_load(), c, sizes.calibration_seconds)
        r["concurrency"] = c
        result["calibration"][name] = r
        show(f"{name}", r)
    driver_name = max(result["calibration"], key=lambda n: result["calibration"][n]["requests_per_s"])
    why = (f"the highest trivial rate of the {len(drivers)} measured" if len(drivers) > 1 else "chosen by --client")
    result["client"] = {"driver": driver_name, "why": why, "httpx": httpx.__version__}
    print(f"  -> {driver_name} ({why})", flush=True)
    return DRIVERS[driver_name]


def measure_trivial(drive, server: Server, sizes: RunSizes, cores: int) -> dict[int, dict]:
    """The trivial endpoint at each concurrency: {C: figures}."""
    out = {}
    for c in sizes.concurrency:
        out[c] = r = drive(server, trivial_load(), c, sizes.seconds)
        r["bound"] = bound_of(r, cores)
        show_bounded(f"trivial C={c}", r)
    return out


def measure_batch(drive, server: Server, api: Api, sizes: RunSizes, cores: int) -> list[dict]:
    """Section 1: POST /records/batch at each batch size and concurrency, each on a fresh ledger."""
    print(f"1. batch ingest (goal >= {GOAL_BATCH:,} records/s)", flush=True)
    rows = []
    for size in BATCH_SIZES:
        for c in sizes.batch_concurrency:
            ledger = api.ledger(f"batch-{size}-{c}")
            r = drive(server, batch_load(ledger, size), c, sizes.seconds)
            r.update(batch=size, concurrency=c, bound=bound_of(r, cores), **api.settle(ledger, r["items"]))
            rows.append(r)
            sealed = (f"sealed {r['sealed_after_s']:.1f} s after" if r["sealed_after_s"] is not None
                      else "NOT sealed within 180 s")
            show_bounded(f"batch {size:,} C={c}", r, "records/s",
                         f" [goal {GOAL_BATCH:,}: {met(r['items_per_s'] >= GOAL_BATCH)}] ({r['requests_per_s']:.1f} "
                         f"requests/s; {sealed})")
    return rows


def measure_single(drive, server: Server, api: Api, sizes: RunSizes, cores: int) -> list[dict]:
    """Section 2: POST /records at each concurrency, each on a fresh ledger."""
    print("2. single-record submits", flush=True)
    rows = []
    for c in sizes.concurrency:
        ledger = api.ledger(f"single-{c}")
        r = drive(server, single_load(ledger), c, sizes.seconds)
        r.update(concurrency=c, bound=bound_of(r, cores), **api.settle(ledger, r["items"]))
        rows.append(r)
        show_bounded(f"single C={c}", r, "submits/s")
    return rows


def measure_proofs(drive, server: Server, api: Api, sizes: RunSizes, cores: int) -> tuple[dict, list[dict]]:
    """Section 3: (the proof ledger, GET /proof figures at each concurrency). The ledger is
    ingested, sealed and anchored outside the clocks."""
    n = sizes.proof_records
    print(f"3. proof bundles: building an anchored ledger of {n:,} records ...", flush=True)
    ledger = api.ledger("proofs")
    t0 = time.perf_counter()
    api.ingest(ledger, n)
    ingest_rate = n / (time.perf_counter() - t0)
    settled = api.settle(ledger, n)
    if settled["anchored_after_s"] is None:
        raise RuntimeError(f"the proof ledger was not sealed and anchored: {settled}\n{server.log_tail()}")
    proof_ledger = {"records": n, "ingest_records_per_s": ingest_rate, **settled}
    rows = []
    for c in sizes.concurrency:
        load = proof_load(ledger, n)
        r = drive(server, load, c, sizes.seconds)
        r.update(concurrency=c, bound=bound_of(r, cores))
        proof_ledger["bundle_bytes"] = int(np.mean(load.sizes)) if load.sizes else 0
        rows.append(r)
        show_bounded(f"proof C={c}", r, "bundles/s")
    print(f"  ledger: ingested at {ingest_rate:,.0f} records/s, sealed {settled['sealed_after_s']:.1f} s and "
          f"anchored {settled['anchored_after_s']:.1f} s after; bundles ~{proof_ledger['bundle_bytes']:,} bytes")
    return proof_ledger, rows


def trivial_reference(before: dict[int, dict], after: dict[int, dict]) -> list[dict]:
    """The trivial endpoint's rate at each C as the mean of before and after 1-3, with the spread."""
    rows = []
    for c, a in after.items():
        b = before[c]
        mean = (b["requests_per_s"] + a["requests_per_s"]) / 2
        rows.append({"concurrency": c, "requests_per_s": mean, "before": b, "after": a,
                     "spread": abs(a["requests_per_s"] - b["requests_per_s"]) / mean,
                     "server_us_per_request": (b["server_us_per_request"] + a["server_us_per_request"]) / 2})
    return rows


def add_ratios_to_trivial(result: dict) -> None:
    """Each single and proof figure as a share of the trivial rate at its C, measured and by server CPU."""
    ref = {t["concurrency"]: t for t in result["trivial"]}
    for r in result["single"] + result["proof"]:
        t = ref[r["concurrency"]]
        r["ratio_to_trivial"] = r["items_per_s"] / t["requests_per_s"]
        r["ratio_by_server_cpu"] = t["server_us_per_request"] / max(r["server_us_per_request"], 1e-9)


def goals_of(result: dict) -> dict:
    best_batch = max(r["items_per_s"] for r in result["batch"])
    best_ratio = max(r["ratio_to_trivial"] for r in result["proof"])
    return {"batch_records_per_s": {"goal": GOAL_BATCH, "best": best_batch, "met": best_batch >= GOAL_BATCH},
            "proof_ratio": {"goal": GOAL_PROOF_RATIO, "best": best_ratio, "met": best_ratio >= GOAL_PROOF_RATIO,
                            "by_server_cpu": max(r["ratio_by_server_cpu"] for r in result["proof"])}}


def print_summary(result: dict, written: Path, cores: int) -> None:
    g = result["goals"]
    print(f"goals: batch ingest >= {GOAL_BATCH:,} records/s: {met(g['batch_records_per_s']['met'])} "
          f"(best {g['batch_records_per_s']['best']:,.0f}); proofs >= {GOAL_PROOF_RATIO} of trivial: "
          f"{met(g['proof_ratio']['met'])} (best {g['proof_ratio']['best']:.2f}; by server CPU per request "
          f"{g['proof_ratio']['by_server_cpu']:.2f})")
    run = result["run"]
    print(f"over the run: server {run['server_cores']:.2f} cores, generator {run['generator_cores']:.2f}, other processes "
          f"{run['other_cores']:.2f} of {cores} (they all share the cores; other above ~0.2 means a noisy neighbour: rerun)")
    for t in result["trivial"]:
        if t["spread"] > 0.2:
            print(f"  NOTE: the trivial rate at C={t['concurrency']} moved {t['spread']:.0%} between before and after: "
                  "a noisy machine; rerun")
    print(f"total {result['total_seconds']:.0f} s; wrote {written} and .md")


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.serve_child:
        return serve_child(args.serve_child, args.port)
    sizes = RunSizes.from_args(args)
    cores = os.cpu_count() or 1
    result = {"machine": machine_info(), "quick": args.quick}
    print("machine:", machine_line(result["machine"]))
    workdir = make_workdir(args.workdir, "api", result)
    result["server"] = {"uvicorn": server_stack()}
    started = time.perf_counter()
    server = Server(workdir)
    api = None
    try:
        result["server"]["ready_s"] = server.wait_ready()
        print(f"server: pid {server.proc.pid} on {server.base}, ready after {result['server']['ready_s']:.1f} s "
              f"({result['server']['uvicorn']})", flush=True)
        api = Api(server)
        warm_up(api)
        result["idle"] = measure_idle(server, cores)
        run_window = Window(server)
        drive = choose_driver(server, args.client, sizes, result)
        print(f"4. trivial endpoint (before), {sizes.seconds:.0f} s windows", flush=True)
        trivial_before = measure_trivial(drive, server, sizes, cores)
        result["batch"] = measure_batch(drive, server, api, sizes, cores)
        result["single"] = measure_single(drive, server, api, sizes, cores)
        result["proof_ledger"], result["proof"] = measure_proofs(drive, server, api, sizes, cores)
        print("4. trivial endpoint (after)", flush=True)
        result["trivial"] = trivial_reference(trivial_before, measure_trivial(drive, server, sizes, cores))
        add_ratios_to_trivial(result)
        result["run"] = run_window.stop()
    finally:
        if api is not None:
            api.close()
        rc = server.stop()
        if rc not in (0, None):
            print(f"server exited with {rc}; its log ends:\n{server.log_tail()}")
        shutil.rmtree(workdir, ignore_errors=True)
    result["server"]["exit_code"] = rc
    result["total_seconds"] = time.perf_counter() - started
    result["goals"] = goals_of(result)
    written = write_and_print_result(args.out, "api", result, markdown(result))
    print_summary(result, written, cores)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
