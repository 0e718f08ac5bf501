"""The main job on the embedded defaults (`make demo`): the service end to end, over HTTP.

Starts a local anvil chain whose state is kept on disk (demo-output/chain/), deploys the
anchor registry on it with `evledger anchor deploy`, and starts `evledger serve` (RocksDB data
directory, anchoring to that chain) as a separate process, with one witness (`evledger witness
serve`, a court's, with its own key and state in demo-output/witness/) that cosigns each
checkpoint, and publishes the ledgers as static tiles (demo-output/tiles/). Creates two
ledgers, streams in generated brokerage records (account openings and contract signings,
business flows of several records each) as NDJSON files pushed with the client (what
`evledger push` runs: progress bar, receipts files), uploads one contract file with the client,
waits for checkpoints, anchors and the witness's cosignature, fetches that record's proof
bundle (the client, naming the record by the file) and stops the service, the witness and the
chain.

Then the court's side, with none running: the chain is started again from its state on disk,
and `evledger-verify` (the verifier's own distribution) checks the bundle with the file, the
ledger's published key, the witness's key, the published tiles and the anchor read on chain
over JSON-RPC (verdict 1, "anchor on chain" and "cosigned by the witnesses given" passed), and
a tampered copy of the file (verdict 2). Writes a certificate and prints the figures and the command to re-run.
"""
from __future__ import annotations

import asyncio
import bisect
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import orjson

from evledger_client import Client
from evledger_common.stopping import terminate

from .devbroker import free_port
from .devchain import DEV_KEYS, Anvil

FLOWS = {
    "account-opening": ("account-opening.application", "account-opening.id-check", "account-opening.video",
                        "risk-disclosure.signed", "suitability.confirmed"),
    "contract-signing": ("contract.draft", "contract.risk-notice", "contract.signed"),
}
BRANCHES = [f"{city}-{n:03d}" for city in ("sh", "bj", "sz", "gz", "hz") for n in range(1, 9)]
BATCH = 2000
# The demo's chain answers here once it is started again from its state (the README's
# command for a court uses it); any free port while the demo runs.
COURT_RPC_PORT = 8545
ANVIL_COMMAND = "anchor/contracts/node_modules/.bin/anvil"  # from the repository's root (make npm-tools)


def generate_records(count: int, seed: int = 2026) -> list[dict]:
    """A brokerage's evidence: flows of 3-5 records sharing a business id."""
    rng = random.Random(seed)
    records = []
    flow = 0
    while len(records) < count:
        kind = "account-opening" if rng.random() < 0.6 else "contract-signing"
        business_id = f"{'ACC' if kind == 'account-opening' else 'CTR'}-2026-{flow:07d}"
        branch = rng.choice(BRANCHES)
        day, minute = 1 + flow % 26, flow % 600
        for step, business_type in enumerate(FLOWS[kind]):
            record = {
                "content_hash": rng.randbytes(32).hex(),
                "business_type": business_type,
                "occurred_at": f"2026-11-{day:02d}T{9 + minute // 60:02d}:{minute % 60:02d}:{step * 7:02d}+08:00",
                "evidence_id": f"{business_id}-{step}",
                "business_id": business_id,
                "attributes": {"branch": branch, "channel": rng.choice(("app", "counter", "web")), "step": step},
            }
            if business_type == "account-opening.application":
                record["sealed"] = {"customer_name": rng.choice(("张三", "李四", "王五", "赵六")),
                                    "id_number": f"3101{rng.randrange(10**13):013d}"}
            records.append(record)
        flow += 1
    return records[:count]


def _percentiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    values = sorted(values)
    p = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
    return f"p50 {p(0.5) * 1000:,.0f} ms, p99 {p(0.99) * 1000:,.0f} ms"


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Service:
    """`evledger serve` in its own process, stopped with SIGTERM."""

    def __init__(self, data_dir: Path, rpc: str, contract: str, witness_config: Path, tiles_dir: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "proof_api.cli", "--data-dir", str(data_dir), "serve",
                                      "--port", str(self.port), "--rpc", rpc, "--contract", contract,
                                      "--witness-config", str(witness_config), "--publish-tiles",
                                      "--tiles-dir", str(tiles_dir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_chain_env())
        import httpx

        # /readyz: up, and the SM3 kernels compiled (the first run on a machine), so the figures
        # below are the service's and not numba's.
        started = time.monotonic()
        deadline = started + 180
        said, why = False, "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"evledger serve exited: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                ready = httpx.get(self.url + "/readyz", timeout=1)
                if ready.status_code == 200:
                    return
                why = "; ".join(ready.json().get("problems", [])) or ready.text
                if not said and time.monotonic() - started > 2:  # not for the kernels' load from cache
                    print(f"waiting for the service: {why}", flush=True)
                    said = True
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"evledger serve was not ready within 180 s: {why}")

    def stop(self) -> int:
        terminate(self.proc, 30)
        self.proc.stderr.close()
        return self.proc.returncode


class WitnessService:
    """`evledger witness serve` in its own process: the court's witness of the demo's ledgers."""

    NAME = "court.demo/witness"

    def __init__(self, directory: Path):
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        shutil.rmtree(directory, ignore_errors=True)  # each run witnesses new ledgers
        made = subprocess.run([sys.executable, "-m", "proof_api.cli", "witness", "init", "--dir", str(directory),
                               "--name", self.NAME], capture_output=True, text=True, timeout=60)
        if made.returncode != 0:
            raise RuntimeError(f"evledger witness init failed: {made.stderr[-2000:]}")
        self.key = made.stdout.strip()
        self.proc = None

    def start(self, ledger_keys: list[str]) -> None:
        import httpx

        logs = [arg for key in ledger_keys for arg in ("--log", key)]
        self.proc = subprocess.Popen([sys.executable, "-m", "proof_api.cli", "witness", "serve", "--dir",
                                      str(self.directory), "--port", str(self.port), *logs],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"evledger witness serve exited: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("evledger witness serve did not answer within 60 s")

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, 30)
            self.proc.stderr.close()


def run_demo(records: int = 200_000, out_dir: str = "demo-output") -> int:
    if records < 10:
        raise ValueError("--records must be at least 10")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    chain_dir = out / "chain"
    shutil.rmtree(chain_dir, ignore_errors=True)  # each run anchors on a new chain
    chain_dir.mkdir()
    state = chain_dir / "state.json"
    ledgers = ("brokerage-sh", "brokerage-sz")
    print(f"evledger demo: {records:,} records over the HTTP API into {len(ledgers)} ledgers, anchored on a local "
          f"anvil chain whose state is kept in {chain_dir}/; output in {out}/")
    with Anvil(state=state) as chain:
        contract = _deploy_registry(chain.url)
        (chain_dir / "contract.txt").write_text(f"{contract}\n")
        figures, code = _serve_and_record(out, ledgers, records, chain.url, contract)
    print(f"service stopped (exit {code}); chain stopped, its state on disk: {state} ({state.stat().st_size:,} bytes)")
    return _court(out, ledgers[0], state, contract, figures)


def _serve_and_record(out: Path, ledgers, records: int, rpc: str, contract: str) -> tuple[list[str], int]:
    """The producer's side: the service and the witness up, records in, one file uploaded,
    everything anchored and cosigned, the file's proof bundle written; then the service and the
    witness stopped. (figures, the service's exit status)"""
    import httpx

    witness = WitnessService(out / "witness")
    (out / "witness.vkey").write_text(witness.key + "\n")
    with tempfile.TemporaryDirectory(prefix="evledger-demo-") as tmp:
        config = Path(tmp) / "witnesses.toml"
        config.write_text(f'threshold = 1\n[[witness]]\nurl = "{witness.url}"\nkey = "{witness.key}"\n')
        data_dir = Path(tmp) / "data"
        shutil.rmtree(out / "tiles", ignore_errors=True)  # a new ledger each run: its publication anew
        service = Service(data_dir, rpc, contract, config, out / "tiles")
        try:
            admin = (data_dir / "admin.key").read_text().strip()
            http = httpx.Client(base_url=service.url, timeout=60)
            keys = {}
            for ledger in ledgers:
                created = http.post("/v1/ledgers", json={"ledger": ledger}, headers=_auth(admin))
                created.raise_for_status()
                # What the ledger publishes for courts: they pin it, not the key inside a bundle.
                (out / f"{ledger}.keys").write_text(f"# verifier key published by ledger {ledger}\n"
                                                    f"{created.json()['verifier_key']}\n")
                keys[ledger] = {role: http.post(f"/v1/ledgers/{ledger}/api-keys", json={"role": role},
                                                headers=_auth(admin)).json()["key"]
                                for role in ("producer", "auditor")}
                keys[ledger]["verifier_key"] = created.json()["verifier_key"]
            # The court's witness follows both ledgers, by the keys they published.
            witness.start([keys[ledger]["verifier_key"] for ledger in ledgers])
            print(f"witness {witness.NAME} at {witness.url}, its key in {out / 'witness.vkey'}")
            generated = generate_records(records)
            receipts = _stream(service.url, ledgers, keys, generated, out)

            # One contract file, uploaded: the service computes its SM3.
            document = (f"证券经纪业务合同 / Securities brokerage contract\n{'条款 clause ' * 400}\n"
                        f"signed 2026-11-26 by customer CTR-2026-demo\n").encode()
            (out / "contract.txt").write_bytes(document)
            with Client(service.url, ledgers[0], keys[ledgers[0]]["producer"]) as producer:
                receipt = producer.submit_file(out / "contract.txt", "contract.signed",
                                               occurred_at="2026-11-26T10:00:00+08:00",
                                               evidence_id="CTR-2026-demo-signed", business_id="CTR-2026-demo")
            print(f"uploaded contract.txt ({len(document):,} bytes): SM3 {receipt.content_hash} (checked against "
                  f"the SM3 computed as it was sent), seq {receipt.seq}, leaf hash {receipt.leaf_hash}")

            waited = time.perf_counter()
            for ledger in ledgers:
                http.post(f"/v1/ledgers/{ledger}/anchors/now", headers=_auth(admin))
            _wait_anchored(http, ledgers, keys, {ledgers[0]: receipt.seq,
                                                  ledgers[1]: max(r["seq"] for r in receipts[ledgers[1]])})
            print(f"every record checkpointed and anchored ({time.perf_counter() - waited:.1f} s after the last upload)")
            cosigned = _wait_cosigned(http, ledgers[0], receipt.seq, keys[ledgers[0]]["auditor"])
            print(f"the witness cosigned the anchored checkpoint of size {cosigned['size']:,} "
                  f"({cosigned['cosignatures'][0]['cosigned_at']})")

            with Client(service.url, ledgers[0], keys[ledgers[0]]["auditor"]) as auditor:
                bundle = auditor.proof(file=out / "contract.txt")  # named by the file, as a court would
            (out / "bundle.json").write_bytes(orjson.dumps(bundle, option=orjson.OPT_INDENT_2))
            _wait_published(out / "tiles" / ledgers[0], bundle["checkpoint"]["size"])
            print(f"the ledgers' static tiles (C2SP tlog-tiles) are published in {out / 'tiles'}/, as any web "
                  f"server would serve them")
            figures = _figures(http, ledgers, keys, receipts)
            http.close()
        finally:
            code = service.stop()
            witness.stop()
    return figures, code


def _wait_published(directory: Path, size: int, timeout: float = 60) -> None:
    """Until the ledger's published checkpoint covers `size` records."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if int((directory / "checkpoint").read_text().split("\n")[1]) >= size:
                return
        except (FileNotFoundError, IndexError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the tiles in {directory} did not reach size {size} within {timeout:.0f} s")
        time.sleep(0.1)


def _wait_cosigned(http, ledger: str, seq: int, key: str, timeout: float = 120) -> dict:
    """The first anchored checkpoint covering record `seq`, once the witness cosigned it."""
    deadline = time.monotonic() + timeout
    while True:
        size = http.get(f"/v1/ledgers/{ledger}/records/{seq}", headers=_auth(key)).json()["anchor"]["size"]
        checkpoint = http.get(f"/v1/ledgers/{ledger}/checkpoints/{size}", headers=_auth(key)).json()
        if checkpoint["cosignatures"]:
            return checkpoint
        if time.monotonic() > deadline:
            raise RuntimeError(f"ledger {ledger}: the witness did not cosign checkpoint {size} within {timeout:.0f} s")
        time.sleep(0.25)


def _court(out: Path, ledger: str, state: Path, contract: str, figures: list[str]) -> int:
    """The court's side: no service, no data directory; the bundle, the file, the ledger's
    published key and the chain, started again from its state on disk. Verdict 1 for the
    file, 2 for a tampered copy."""
    tampered = bytearray((out / "contract.txt").read_bytes())
    tampered[len(tampered) // 2] ^= 0x01
    (out / "contract-tampered.txt").write_bytes(bytes(tampered))
    port = COURT_RPC_PORT if _port_free(COURT_RPC_PORT) else None
    with Anvil(port=port, state=state) as chain:
        print(f"\nthe chain started again from {state}, at {chain.url}")
        common = ["--key-file", str(out / f"{ledger}.keys"), "--witness", (out / "witness.vkey").read_text().strip(),
                  "--rpc", chain.url, "--contract", contract, "--tiles", str(out / "tiles" / ledger)]
        verdicts = []
        for name in ("contract.txt", "contract-tampered.txt"):
            args = [str(out / "bundle.json"), "--file", str(out / name), *common]
            print(f"\n$ evledger-verify {' '.join(args)}", flush=True)
            verdicts.append(subprocess.run([sys.executable, "-m", "evledger_verify", *args]).returncode)
    subprocess.run([sys.executable, "-m", "proof_api.cli", "certificate", str(out / "bundle.json"),
                    "-o", str(out / "certificate.html")], check=True)
    print("\n" + "\n".join(figures))
    print(f"  certificate: {out / 'certificate.html'}; bundle: {out / 'bundle.json'}")
    print(f"\nto check again as a court would: start the chain from its state "
          f"(`{ANVIL_COMMAND} --state {state} --port {COURT_RPC_PORT}`), then\n"
          f"  evledger-verify {out}/bundle.json --file {out}/contract.txt --key-file {out}/{ledger}.keys "
          f"--witness \"$(cat {out}/witness.vkey)\" --rpc http://127.0.0.1:{COURT_RPC_PORT} --contract {contract} "
          f"--tiles {out}/tiles/{ledger}")
    if verdicts != [0, 1]:
        print("ERROR: the verdicts are not 1 for the original and 2 for the tampered file")
        return 1
    return 0


def _chain_env() -> dict:
    """The environment of a command that sends transactions: anvil's first dev account."""
    return {**os.environ, "EVLEDGER_ANCHOR_KEY": DEV_KEYS[0]}


def _deploy_registry(rpc: str) -> str:
    """Deploy the anchor registry with `evledger anchor deploy`; its address."""
    done = subprocess.run([sys.executable, "-m", "proof_api.cli", "anchor", "deploy", "--rpc", rpc],
                          capture_output=True, text=True, env=_chain_env(), timeout=120)
    found = re.search(r"deployed at (0x[0-9a-fA-F]{40})", done.stdout)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"evledger anchor deploy failed: {(done.stdout + done.stderr)[-2000:]}")
    print(done.stdout.strip())
    return found.group(1)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def _stream(url: str, ledgers, keys, generated: list[dict], out: Path) -> dict[str, list[dict]]:
    """The producer's side: each ledger's records written as an NDJSON file and pushed with the
    client, as `evledger push URL LEDGER FILE --receipts R` pushes them; the receipts."""
    from evledger_client import AsyncClient
    from evledger_client.push import ReceiptsFile, push_lines

    # Alternating ledgers by batches of BATCH, no larger than each ledger's share: with few records
    # every ledger still gets some, which the wait for anchors and the figures below rely on.
    size = min(BATCH, -(-len(generated) // len(ledgers)))
    files = {}
    for n, ledger in enumerate(ledgers):
        records, receipts_file = out / f"records-{ledger}.ndjson", out / f"receipts-{ledger}.ndjson"
        mine = [r for start in range(n * size, len(generated), size * len(ledgers))
                for r in generated[start:start + size]]
        records.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in mine))
        receipts_file.unlink(missing_ok=True)  # a new ledger each run: no earlier push to resume
        files[ledger] = (records, receipts_file, len(mine))
        print(f"$ evledger push {url} {ledger} {records} --receipts {receipts_file}", flush=True)

    async def push(ledger: str, quiet: bool):
        records, receipts_file, total = files[ledger]
        async with AsyncClient(url, ledger, keys[ledger]["producer"]) as client:
            with open(records, "rb") as lines:
                return await push_lines(client, lines, ReceiptsFile(str(receipts_file)), total=total, quiet=quiet)

    async def both():  # the ledgers side by side, as two producers would (one progress bar: the first's)
        return await asyncio.gather(*(push(ledger, quiet=n > 0) for n, ledger in enumerate(ledgers)))

    started = time.perf_counter()
    receipts: dict[str, list[dict]] = {}
    for ledger, summary in zip(ledgers, asyncio.run(both())):
        print(f"{ledger}: {summary.line('lines')}", flush=True)
        if summary.exit_status != 0:
            raise RuntimeError(f"the push into {ledger} did not record every record: {summary.line('lines')}")
        receipts[ledger] = [orjson.loads(line) for line in open(files[ledger][1], "rb")]
    elapsed = time.perf_counter() - started
    total = sum(len(v) for v in receipts.values())
    print(f"{total:,} receipts in {elapsed:.1f} s = {total / elapsed:,.0f} records/s "
          f"(durable: each receipt after its group's fsync)")
    receipts["_rate"] = [{"records_per_s": total / elapsed, "batch": size}]
    return receipts


def _wait_anchored(http, ledgers, keys, last_seq: dict[str, int], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    for ledger in ledgers:
        while True:
            reply = http.get(f"/v1/ledgers/{ledger}/records/{last_seq[ledger]}", headers=_auth(keys[ledger]["auditor"]))
            if reply.status_code == 200 and reply.json()["status"] == "anchored":
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"ledger {ledger}: record {last_seq[ledger]} not anchored within {timeout:.0f} s")
            time.sleep(0.25)


def _figures(http, ledgers, keys, receipts) -> list[str]:
    """Records/s, record -> checkpoint and checkpoint -> anchor latency, chain transactions."""
    to_checkpoint, to_anchor, transactions = [], [], set()
    for ledger in ledgers:
        auth = _auth(keys[ledger]["auditor"])
        checkpoints = http.get(f"/v1/ledgers/{ledger}/checkpoints", params={"limit": 1000}, headers=auth).json()["checkpoints"]
        anchors = http.get(f"/v1/ledgers/{ledger}/anchors", headers=auth).json()["anchors"]
        sealed_at = {c["size"]: _ts(c["sealed_at"]) for c in checkpoints}
        sizes = sorted(sealed_at)
        for r in receipts[ledger]:
            i = bisect.bisect_right(sizes, r["seq"])
            if i < len(sizes):
                to_checkpoint.append(sealed_at[sizes[i]] - _ts(r["received_at"]))
        for a in anchors:
            transactions.add(a.get("tx_hash"))
            if a["status"] == "confirmed" and a["size"] in sealed_at:
                to_anchor.append(_ts(a["confirmed_at"]) - sealed_at[a["size"]])
    rate, batch = receipts["_rate"][0]["records_per_s"], receipts["_rate"][0]["batch"]
    total = sum(len(receipts[ledger]) for ledger in ledgers)
    return [
        "figures:",
        f"  ingest over HTTP: {rate:,.0f} records/s ({total:,} records pushed with the client, batches of at most "
        f"{batch:,}, 4 in flight per ledger, both ledgers at once; client and server on the same 2 cores)",
        f"  record -> checkpoint: {_percentiles(to_checkpoint)} (batches of 65,536 records or 1 s)",
        f"  checkpoint -> anchor confirmed: {_percentiles(to_anchor)} (anchors every 10 s at most, or on demand)",
        f"  chain transactions: {len(transactions)} anchors for {total:,} records "
        f"(one per record would be {total:,})",
    ]
