"""`evledger monitor` against real processes: `evledger serve` on 127.0.0.1 fed over HTTP, anvil
for the anchors, the monitor run as a subprocess. The faults are made for real: an operator who
copies its data directory (signing key included) and grows two histories from one size, a
server that shows the old checkpoint but a new history after it, anchors of the other history,
anchors that come too late; and an honest ledger, followed with metrics, that raises nothing."""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from evledger_common.stopping import terminate
from evledger_dev.devbroker import free_port
from evledger_dev.devchain import ANVIL, DEV_KEYS, Anvil
from tests.api_helpers import auth, wait_until
from tests.sample_records import rec

REPO = Path(__file__).resolve().parents[1]
BATCH = 5  # records per checkpoint: each submission below seals one
needs_anvil = pytest.mark.skipif(not ANVIL.exists(), reason=f"anvil is missing at {ANVIL}: run `make npm-tools`")


# --- processes ---------------------------------------------------------------------------------


@contextlib.contextmanager
def serving(data_dir: Path, port: int | None = None, chain: tuple[str, str] | None = None,
            anchor_interval: float = 0.0):
    """`evledger serve` on 127.0.0.1:`port` (the same port for two data directories in turn: the
    monitor sees one URL); stopped with SIGTERM, so the copy taken after is clean."""
    port = port or free_port()
    args = [sys.executable, "-m", "proof_api.cli", "--data-dir", str(data_dir), "--batch-max-items", str(BATCH),
            "--batch-max-delay", "0.05", "serve", "--host", "127.0.0.1", "--port", str(port),
            "--anchor-min-interval", str(anchor_interval)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    if chain is not None:
        args += ["--rpc", chain[0], "--contract", chain[1]]
        env["EVLEDGER_ANCHOR_KEY"] = DEV_KEYS[0]
    with open(f"{data_dir}.stderr", "a") as err:
        proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        def up():
            assert proc.poll() is None, f"evledger serve exited: {Path(f'{data_dir}.stderr').read_text()[-2000:]}"
            try:
                return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False
        wait_until(up, timeout=60, interval=0.1, what="evledger serve")
        with httpx.Client(base_url=base, timeout=10) as http:
            yield base, http
    finally:
        terminate(proc, 30)


def monitor(*args: str, state: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "proof_api.cli", "monitor", "--state", str(state), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, "PYTHONWARNINGS": "ignore"})


def alerts(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("ALERT ")]


def field(line: str, name: str) -> str:
    """The value of `name=` in an ALERT line."""
    return re.search(rf" {name}=(\S+)", line).group(1)


def assert_clean(done: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout, done.stderr


# --- a ledger over HTTP ------------------------------------------------------------------------


class Ledger:
    """A ledger created on a running service: its keys, and records submitted a checkpoint at a time."""

    def __init__(self, http: httpx.Client, data_dir: Path, name: str = "acme"):
        admin = auth((data_dir / "admin.key").read_text().strip())
        created = http.post("/v1/ledgers", json={"ledger": name}, headers=admin)
        assert created.status_code == 201, created.text
        self.name, self.vkey = name, created.json()["verifier_key"]
        self.producer = http.post(f"/v1/ledgers/{name}/api-keys", json={"role": "producer"}, headers=admin).json()["key"]
        self.auditor = http.post(f"/v1/ledgers/{name}/api-keys", json={"role": "auditor"}, headers=admin).json()["key"]

    def grow(self, http: httpx.Client, tag: str, checkpoints: int) -> int:
        """Submit `checkpoints` batches of BATCH records (content told apart by `tag`), waiting for
        each one's checkpoint; the last size."""
        size = self.latest(http)
        for _ in range(checkpoints):
            records = [rec(f"{tag}-{size + i}") for i in range(BATCH)]
            r = http.post(f"/v1/ledgers/{self.name}/records/batch", json=records, headers=auth(self.producer))
            assert r.status_code in (200, 201, 207), r.text
            size += BATCH
            wait_until(lambda: self.latest(http) >= size, timeout=20, what=f"checkpoint {size}")
        return size

    def latest(self, http: httpx.Client) -> int:
        r = http.get(f"/v1/ledgers/{self.name}/checkpoints/latest", headers=auth(self.auditor))
        return r.json()["size"] if r.status_code == 200 else 0

    def wait_anchored(self, http: httpx.Client, size: int) -> None:
        def anchored():
            r = http.get(f"/v1/ledgers/{self.name}/anchors", headers=auth(self.auditor))
            return any(a["size"] >= size and a["status"] == "confirmed" for a in r.json()["anchors"])
        wait_until(anchored, timeout=30, interval=0.1, what=f"an anchor of size {size} or more")

    def monitor_args(self, base: str, *extra: str) -> list[str]:
        return [self.name, "--url", base, "--api-key", self.auditor, "--key", self.vkey, *extra]


@pytest.fixture
def chain(tmp_path):
    from web3 import HTTPProvider, Web3
    from eth_account import Account

    from anchor.chain import deploy_registry

    with Anvil() as node:
        yield node.url, deploy_registry(Web3(HTTPProvider(node.url)), account=Account.from_key(DEV_KEYS[0]))


# --- the tests ---------------------------------------------------------------------------------


@needs_anvil
def test_honest_ledger_with_anchoring_raises_nothing_and_a_restart_keeps_its_state(tmp_path, chain):
    data, state = tmp_path / "data", tmp_path / "monitor.sqlite"
    with serving(data, chain=chain) as (base, http):
        ledger = Ledger(http, data)
        size = ledger.grow(http, "honest", 4)
        ledger.wait_anchored(http, size)
        on_chain = ["--rpc", chain[0], "--contract", chain[1], "--max-anchor-delay", "30"]
        first = monitor(*ledger.monitor_args(base, *on_chain), state=state)
        assert_clean(first)
        assert first.returncode == 0 and not alerts(first.stdout), first.stdout + first.stderr
        assert f"4 checkpoint(s) verified in this run, 4 in all, up to size {size}" in first.stdout, first.stdout
        again = monitor(*ledger.monitor_args(base, *on_chain), state=state)
        assert again.returncode == 0 and "0 checkpoint(s) verified in this run, 4 in all" in again.stdout, again.stdout

        # Followed, with metrics: new checkpoints and their anchors are checked as they come.
        port = free_port()
        follower = subprocess.Popen(
            [sys.executable, "-m", "proof_api.cli", "monitor", "--state", str(state), *ledger.monitor_args(
                base, *on_chain, "--follow", "--interval", "0.2", "--metrics-port", str(port))],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            size = ledger.grow(http, "honest-more", 3)
            ledger.wait_anchored(http, size)

            def metric(name: str) -> float | None:
                try:
                    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
                except httpx.TransportError:
                    return None
                found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
                return float(found.group(1)) if found else None
            wait_until(lambda: metric("evledger_monitor_last_verified_size") == size, timeout=20,
                       what="the follower to verify the new checkpoints")
            wait_until(lambda: (metric("evledger_monitor_anchors_checked_total") or 0) >= 1, timeout=20,
                       what="the follower to check the new anchors")
            assert metric('evledger_monitor_alert{kind="split_view"}') == 0
            assert metric("evledger_monitor_checkpoints_verified_total") == 3
        finally:
            follower.send_signal(signal.SIGTERM)
            out, err = follower.communicate(timeout=30)
        assert follower.returncode == 0 and not alerts(out), out + err
        assert "Traceback" not in err, err


@needs_anvil
def test_forked_operator_split_view_anchor_mismatch_and_sticky_alarms(tmp_path, chain):
    """The operator copies its data directory at size 10 and grows each copy differently: both
    sign checkpoints of sizes 15 and 20 with different roots. Copy A is monitored; then copy B,
    which anchors its own roots, is served on the same URL."""
    origin, copy_a, copy_b = tmp_path / "origin", tmp_path / "a", tmp_path / "b"
    state, port = tmp_path / "monitor.sqlite", free_port()
    with serving(origin, port) as (base, http):
        ledger = Ledger(http, origin)
        ledger.grow(http, "common", 2)
    shutil.copytree(origin, copy_a)
    shutil.copytree(origin, copy_b)
    on_chain = ["--rpc", chain[0], "--contract", chain[1]]

    with serving(copy_a, port) as (base, http):
        assert ledger.grow(http, "history-a", 2) == 20
        honest = monitor(*ledger.monitor_args(base, *on_chain), state=state)
        assert honest.returncode == 0 and not alerts(honest.stdout), honest.stdout + honest.stderr
        roots_a = {c["size"]: c["root"] for c in http.get("/v1/ledgers/acme/checkpoints",
                                                          headers=auth(ledger.auditor)).json()["checkpoints"]}

    with serving(copy_b, port, chain=chain) as (base, http):
        for _ in range(2):  # anchored one at a time: sizes 15 and 20 of history B on chain
            size = ledger.grow(http, "history-b", 1)
            ledger.wait_anchored(http, size)
        forked = monitor(*ledger.monitor_args(base, *on_chain), state=state)
        assert_clean(forked)
        assert forked.returncode == 1, forked.stdout + forked.stderr
        lines = alerts(forked.stdout)
        split = [line for line in lines if line.startswith("ALERT split_view ")]
        assert len(split) == 1 and split[0].startswith(f"ALERT split_view ledger=acme size=20 root={roots_a[20]} seen="), lines
        assert field(split[0], "seen") != roots_a[20]
        mismatched = {int(field(line, "size")): line for line in lines if line.startswith("ALERT anchor_mismatch ")}
        assert set(mismatched) == {15, 20}, lines
        assert all(field(line, "root") == roots_a[size] != field(line, "anchored") for size, line in mismatched.items())

        # Sticky: a restart shows the alarms again, raises none twice, and still fails.
        again = monitor(*ledger.monitor_args(base, *on_chain), state=state)
        assert again.returncode == 1 and sorted(alerts(again.stdout)) == sorted(lines), again.stdout


class LyingServer:
    """Serves checkpoint `size` requests from one service and everything else from another: an
    operator that still shows the old checkpoint but a new history after it."""

    def __init__(self, old: str, new: str):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                at_size = re.fullmatch(r"/v1/ledgers/[^/]+/checkpoints/\d+", self.path.split("?")[0])
                upstream = httpx.get((old if at_size else new) + self.path,
                                     headers={"Authorization": self.headers.get("Authorization", "")}, timeout=10)
                self.send_response(upstream.status_code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(upstream.content)))
                self.end_headers()
                self.wfile.write(upstream.content)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_a_history_that_does_not_extend_the_verified_checkpoint_is_inconsistent(tmp_path):
    origin, copy_a, copy_b, state = tmp_path / "origin", tmp_path / "a", tmp_path / "b", tmp_path / "m.sqlite"
    with serving(origin) as (base, http):
        ledger = Ledger(http, origin)
        ledger.grow(http, "common", 1)
    shutil.copytree(origin, copy_a)
    shutil.copytree(origin, copy_b)
    with serving(copy_a) as (base_a, http_a), serving(copy_b) as (base_b, http_b):
        ledger.grow(http_a, "history-a", 1)  # A: 5, 10
        ledger.grow(http_b, "history-b", 2)  # B: 5, 10', 15'
        assert monitor(*ledger.monitor_args(base_a), state=state).returncode == 0
        liar = LyingServer(base_a, base_b)
        try:
            lied = monitor(*ledger.monitor_args(liar.url), state=state)
        finally:
            liar.close()
        assert_clean(lied)
        assert lied.returncode == 1, lied.stdout + lied.stderr
        [line] = alerts(lied.stdout)
        assert line.startswith("ALERT inconsistent ledger=acme first=10 first_root=") and " size=15 " in line, line
        assert "mismatch" in line, line


@needs_anvil
def test_late_anchor(tmp_path, chain):
    """The anchor worker anchors the first checkpoint at once, then waits an hour: the later
    checkpoints are not anchored within the 1 s the monitor allows."""
    data, state = tmp_path / "data", tmp_path / "m.sqlite"
    with serving(data, chain=chain, anchor_interval=3600) as (base, http):
        ledger = Ledger(http, data)
        ledger.grow(http, "first", 1)
        ledger.wait_anchored(http, 5)
        ledger.grow(http, "later", 2)
        time.sleep(1.5)
        late = monitor(*ledger.monitor_args(base, "--rpc", chain[0], "--contract", chain[1],
                                            "--max-anchor-delay", "1"), state=state)
        assert_clean(late)
        assert late.returncode == 1, late.stdout + late.stderr
        [line] = alerts(late.stdout)
        assert line.startswith("ALERT late_anchor ledger=acme sizes=10..15 count=2 ") and "anchored_at=never" in line


def test_usage_and_network_errors_are_one_line(tmp_path):
    state = tmp_path / "m.sqlite"
    no_key = monitor("acme", "--url", "http://127.0.0.1:9", state=state)
    assert no_key.returncode == 2 and "--key" in no_key.stderr, no_key.stderr
    assert_clean(no_key)
    from evledger_verify.note import verifier_key
    vkey = verifier_key("evledger/acme", bytes(range(64)))
    down = monitor("acme", "--url", f"http://127.0.0.1:{free_port()}", "--key", vkey, state=state)
    assert down.returncode == 4 and down.stderr.startswith("evledger monitor: error: cannot reach"), down.stderr
    assert_clean(down)
    assert not alerts(down.stdout)


def test_an_api_answering_json_nested_too_deep_is_an_error_not_a_crash():
    """A hostile or broken server's answer is a SourceError (exit 4 in the command), whatever
    it holds: here JSON nested deeper than Python's parser recurses."""
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    from monitor.sources import LedgerApi, SourceError
    from tests.api_helpers import uvicorn_server

    deep = "[" * 100_000 + "]" * 100_000
    app = Starlette(routes=[Route("/v1/ledgers/acme/checkpoints", lambda r: Response(deep, media_type="application/json")),
                            Route("/healthz", lambda r: Response("ok"))])
    with uvicorn_server(app) as url:
        api = LedgerApi(url, "acme", None, timeout=10)
        try:
            with pytest.raises(SourceError, match="not JSON"):
                api.checkpoints(0, 10)
        finally:
            api.close()


def test_an_anchor_not_yet_deep_enough_is_not_late():
    """With --confirmations above 1 an anchor mined in time but not yet deep enough is not read
    yet: the deadline is held against the first block not read, not the clock, so no false
    late_anchor; once the anchor is deep enough it covers the checkpoint."""
    import time as _time

    from evledger_verify.note import verifier_key
    from merkle.checkpoint import SM2PrivateKey
    from monitor.checks import Monitor, MonitorSettings, PassResult
    from monitor.state import MonitorState

    now = _time.time()
    root = "ab" * 32

    class Chain:
        contract = "0x" + "11" * 20
        head_block = 100

        def head(self):
            return self.head_block

        stalled_for = 0  # seconds since the chain last mined a block

        def block_time(self, number):  # a block every second, block 100 mined now (less stalled_for)
            return int(now - self.stalled_for - (100 - number))

        def anchors(self, first, until):  # the anchor of size 5, in block 95, 30 s after its seal
            return [(5, root, 95, int(now - 40), "0x" + "22" * 32)] if first <= 95 <= until else []

    chain = Chain()
    vkey = verifier_key("evledger/acme", SM2PrivateKey.generate().public_key)
    state = MonitorState(":memory:")
    monitor = Monitor(MonitorSettings("acme", "evledger/acme", [vkey], max_anchor_delay=60, confirmations=12),
                      api=None, state=state, chain=chain, report=lambda line: None)
    state.add_verified([(5, root, now - 70)])
    def one_pass() -> list[str]:  # in the order of Monitor's own pass
        result = PassResult()
        readable_until = monitor.sync_anchors()
        monitor.check_anchors(result, final=False)
        monitor.check_anchor_delay(result, readable_until)
        return [a.kind for a in result.alarms]

    assert one_pass() == []  # block 95 is 6 deep of 12: not read yet, and it was mined in time
    chain.head_block = 106
    assert one_pass() == []  # now read: it covers the checkpoint
    assert state.uncovered() == []
    # a checkpoint never anchored, on a chain that has mined nothing for an hour (a chain with no
    # empty blocks buries nothing more): late all the same, judged against the clock
    chain.stalled_for = 3600
    state.add_verified([(7, root, now - 100)])
    assert one_pass() == ["late_anchor"]
