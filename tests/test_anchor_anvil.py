"""The anchor worker and the `evledger anchor` commands against a real JSON-RPC chain: anvil,
from the pinned npm package (`make npm-tools`), started on 127.0.0.1 per test with its own
state file and stopped after.

Each fault the issue names is reproduced for real: the endpoint going away and coming back
(anvil stopped and restarted on the same port from its --state file), a dropped transaction
(anvil_dropTransaction with automine off), a reorg that removes the anchoring block
(evm_snapshot / evm_revert), a revert with its reason (an unauthorized key), out of gas; plus
verification without the service (the CLI, plain web3.py calls and foundry's `cast` agree),
and a restart of everything (service and chain) after which every confirmed anchor is still
on chain with the same root and block.
"""
from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import time

import pytest

from evledger_dev.devchain import ANVIL, CAST, DEV_KEYS, Anvil

if not ANVIL.exists():
    pytest.skip(f"anvil is missing at {ANVIL}: run `make npm-tools` to install the pinned anvil/cast",
                allow_module_level=True)

from eth_account import Account  # noqa: E402
from web3 import HTTPProvider, Web3  # noqa: E402

from anchor.chain import Web3Chain, deploy_registry, ledger_key, load_artifact  # noqa: E402
from anchor.worker import AnchorSettings, AnchorWorker  # noqa: E402
from ingest import events as ev  # noqa: E402
from ingest.ledger import LedgerService  # noqa: E402
from ingest.sequencer import SequencerSettings  # noqa: E402
from proof_api.cli import main as cli_main  # noqa: E402
from tests.anchor_helpers import anchor_events, event_types, ingest, wait_until  # noqa: E402

SEQ = SequencerSettings(batch_max_items=1000, batch_max_delay=0.05)
ADMIN = Account.from_key(DEV_KEYS[0])
OUTSIDER = Account.from_key(DEV_KEYS[1])


def fast(**overrides) -> AnchorSettings:
    return AnchorSettings(**{"min_interval": 0, "poll_interval": 0.05, "max_backoff": 1.0, **overrides})


# --- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture
def anvil(tmp_path):
    node = Anvil(state=tmp_path / "anvil-state.json")
    node.start()
    yield node
    node.stop()


@pytest.fixture
def registry(anvil) -> str:
    return deploy_registry(Web3(HTTPProvider(anvil.url)), account=ADMIN)


@pytest.fixture
def chain(anvil, registry) -> Web3Chain:
    return Web3Chain.from_rpc(anvil.url, registry, DEV_KEYS[0], timeout=3)


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def service(data_dir):
    svc = LedgerService(data_dir, settings=SEQ)
    yield svc
    svc.close()


@pytest.fixture
def cli_env(monkeypatch):
    """No EVLEDGER_* setting from the outside leaks into the CLI runs."""
    for name in ("ANCHOR_KEY", "ANCHOR_KEY_FILE", "CHAIN_RPC", "CHAIN_ID", "CONTRACT", "CONFIRMATIONS",
                 "ANCHOR_MIN_INTERVAL", "DATA_DIR", "LOG", "BATCH_MAX_ITEMS", "BATCH_MAX_DELAY"):
        monkeypatch.delenv(f"EVLEDGER_{name}", raising=False)
    return monkeypatch




def projected(ledger, size: int, status: str, timeout: float = 10.0) -> dict:
    return wait_until(lambda: (a := ledger.projections.anchor(size)) is not None and a["status"] == status and a,
                      timeout, f"anchor {size} projected as {status}")


def step_until(worker, predicate, timeout: float = 10.0, what: str = "condition"):
    def once():
        worker.step()
        return predicate()
    return wait_until(once, timeout, what)


def assert_on_chain(chain, origin: str, size: int, root_hex: str, block_number: int | None = None):
    on_chain = chain.read_anchor(origin, size)
    assert on_chain is not None, f"size {size} of {origin} is not on chain"
    assert on_chain.root == bytes.fromhex(root_hex)
    if block_number is not None:
        assert on_chain.block_number == block_number
    return on_chain


def run_cli(capsys, argv) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli_main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# --- the endpoint goes down and comes back ---------------------------------------------------


def test_endpoint_down_ingest_goes_on_and_anchors_resume(anvil, chain, service, caplog):
    ledger = service.create_ledger("outage")
    worker = AnchorWorker(service, chain, fast(max_backoff=1.0))
    worker.start()
    try:
        cp1 = ingest(ledger, 0, 5)
        first = projected(ledger, cp1["size"], "confirmed")
        assert_on_chain(chain, ledger.origin, cp1["size"], cp1["root"], first["block_number"])

        port = anvil.port
        anvil.stop()  # the endpoint goes away (its state is dumped to the --state file)
        with caplog.at_level(logging.WARNING, logger="evledger.anchor"):
            # Ingest goes on: records are received and checkpoints seal without the chain.
            cp2 = ingest(ledger, 5, 4)
            cp3 = ingest(ledger, 9, 3)
            assert cp3["size"] == 12 > cp2["size"]
            wait_until(lambda: worker.metrics.chain_errors > 0, 10, "a chain error")
            errors_before = worker.metrics.chain_errors
            time.sleep(2.0)
            # Backed off: with a 0.05 s poll an un-backed-off worker would fail ~40 times here.
            assert worker.metrics.chain_errors - errors_before <= 4
            assert worker._thread is not None and worker._thread.is_alive()  # no crash
            assert ledger.projections.anchor(cp3["size"]) is None
        assert any("chain unavailable" in r.getMessage() for r in caplog.records)
        assert worker.metrics.last_error
        assert DEV_KEYS[0][2:] not in caplog.text  # the key is never logged

        anvil.port = port  # (unchanged: the same port, the same state file)
        anvil.start()
        confirmed = projected(ledger, cp3["size"], "confirmed", timeout=20)
    finally:
        worker.stop()
    assert confirmed["root"] == cp3["root"]
    assert_on_chain(chain, ledger.origin, cp3["size"], cp3["root"], confirmed["block_number"])
    # What was anchored before the outage survived the restart of the chain.
    assert_on_chain(chain, ledger.origin, cp1["size"], cp1["root"], first["block_number"])
    assert chain.latest_anchor(ledger.origin).size == cp3["size"]


def test_endpoint_timing_out_is_retried_with_backoff(anvil, registry, service):
    """A hung endpoint (anvil stopped with SIGSTOP: connections are accepted, nothing answers)
    costs one request timeout per try, not a hung worker."""
    chain = Web3Chain.from_rpc(anvil.url, registry, DEV_KEYS[0], timeout=0.3)
    ledger = service.create_ledger("hung")
    worker = AnchorWorker(service, chain, fast(max_backoff=1.0))
    cp1 = ingest(ledger, 0, 3)
    assert worker.wait_confirmed("hung", cp1["size"], timeout=10) is not None
    os.kill(anvil.proc.pid, signal.SIGSTOP)
    try:
        cp2 = ingest(ledger, 3, 3)  # ingest is not held up by the chain
        started = time.monotonic()
        worker.step()
        assert time.monotonic() - started < 15  # bounded
        assert worker.metrics.chain_errors == 1
        assert "timed out" in worker.metrics.last_error.lower() or "timeout" in worker.metrics.last_error.lower()
        worker.step()  # within the backoff: no second try, no second timeout
        assert worker.metrics.chain_errors == 1
    finally:
        os.kill(anvil.proc.pid, signal.SIGCONT)
    confirmed = worker.wait_confirmed("hung", cp2["size"], timeout=15)
    assert confirmed is not None
    assert_on_chain(chain, ledger.origin, cp2["size"], cp2["root"], confirmed["block_number"])
    assert event_types(ledger) == [ev.ANCHOR_SUBMITTED, ev.ANCHOR_CONFIRMED] * 2


def test_a_hung_endpoint_costs_about_one_timeout_per_call(anvil, registry):
    from anchor.chain import ChainUnavailable

    chain = Web3Chain.from_rpc(anvil.url, registry, DEV_KEYS[0], timeout=0.3)
    os.kill(anvil.proc.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(ChainUnavailable):
            chain.head()
        elapsed = time.monotonic() - started
    finally:
        os.kill(anvil.proc.pid, signal.SIGCONT)
    assert elapsed < 1.5, f"one call to a hung endpoint took {elapsed:.1f} s with a 0.3 s timeout"


class Crash(BaseException):
    """The process dies here."""


class CrashAfterLogging(Web3Chain):
    """Logs AnchorSubmitted (the worker's before_send hook), then "crashes" before sending."""

    def submit_anchor(self, origin, size, root, before_send=None):
        def hook(tx):
            before_send(tx)
            raise Crash()
        return super().submit_anchor(origin, size, root, before_send=hook)


def test_crash_after_logging_before_sending_is_anchored_once(anvil, registry, chain, data_dir):
    svc = LedgerService(data_dir, settings=SEQ)
    try:
        ledger = svc.create_ledger("halfway")
        cp = ingest(ledger, 0, 4)
        doomed = AnchorWorker(svc, CrashAfterLogging.from_rpc(anvil.url, registry, DEV_KEYS[0], timeout=3), fast())
        with pytest.raises(Crash):
            doomed.step()
        (kind, logged), = anchor_events(ledger)
        assert kind == ev.ANCHOR_SUBMITTED
        assert chain.tx_status(logged["tx_hash"]).state == "missing"  # it never left
        projected(ledger, cp["size"], "submitted")
    finally:
        svc.close()
    sent = chain.w3.eth.get_transaction_count(ADMIN.address)

    svc = LedgerService(data_dir, settings=SEQ)  # the restart
    try:
        ledger = svc.ledger("halfway")
        worker = AnchorWorker(svc, chain, fast())
        confirmed = worker.wait_confirmed("halfway", cp["size"], timeout=15)
        assert confirmed is not None
        events = anchor_events(ledger)
        assert [t for t, _ in events] == [ev.ANCHOR_SUBMITTED, ev.ANCHOR_FAILED, ev.ANCHOR_SUBMITTED,
                                          ev.ANCHOR_CONFIRMED]
        assert "dropped" in events[1][1]["reason"]
        assert chain.w3.eth.get_transaction_count(ADMIN.address) == sent + 1  # exactly one transaction
        assert_on_chain(chain, ledger.origin, cp["size"], cp["root"], confirmed["block_number"])
    finally:
        svc.close()


def test_two_ledgers_on_a_block_time_chain(tmp_path, service):
    """Blocks every second (not one per transaction): both ledgers' transactions wait in the pool
    together, with their own nonces, and are confirmed 2 blocks deep."""
    with Anvil(block_time=1, state=tmp_path / "bt.json") as node:
        address = deploy_registry(Web3(HTTPProvider(node.url)), account=ADMIN)
        chain = Web3Chain.from_rpc(node.url, address, DEV_KEYS[0], timeout=3)
        red, blue = service.create_ledger("red"), service.create_ledger("blue")
        cp_red, cp_blue = ingest(red, 0, 5), ingest(blue, 50, 3)
        worker = AnchorWorker(service, chain, fast(confirmations=2))
        worker.step()
        submitted = [anchor_events(lg)[0][1] for lg in (red, blue)]
        assert len({s["nonce"] for s in submitted}) == 2
        assert worker.wait_confirmed("red", cp_red["size"], timeout=15) is not None
        assert worker.wait_confirmed("blue", cp_blue["size"], timeout=15) is not None
        for lg, cp in ((red, cp_red), (blue, cp_blue)):
            (_, sub), (_, done) = anchor_events(lg)
            assert done["tx_hash"] == sub["tx_hash"] and done["confirmations"] >= 2
            assert_on_chain(chain, lg.origin, cp["size"], cp["root"], done["block_number"])


# --- a dropped transaction ---------------------------------------------------------------------


def test_dropped_transaction_is_detected_and_anchored_again(anvil, chain, service):
    ledger = service.create_ledger("dropped")
    cp = ingest(ledger, 0, 6)
    worker = AnchorWorker(service, chain, fast())
    anvil.rpc("evm_setAutomine", False)

    worker.step()
    (kind, submitted), = anchor_events(ledger)
    assert kind == ev.ANCHOR_SUBMITTED
    assert chain.tx_status(submitted["tx_hash"]).state == "pending"
    anvil.rpc("anvil_dropTransaction", submitted["tx_hash"])
    assert chain.tx_status(submitted["tx_hash"]).state == "missing"

    worker.step()  # the confirmation check finds it gone
    types = event_types(ledger)
    assert types[:2] == [ev.ANCHOR_SUBMITTED, ev.ANCHOR_FAILED]
    failed = anchor_events(ledger)[1][1]
    assert "dropped" in failed["reason"]
    assert failed["tx_hash"] == submitted["tx_hash"] and failed["size"] == cp["size"]

    anvil.rpc("evm_setAutomine", True)
    anvil.rpc("evm_mine")
    confirmed = worker.wait_confirmed("dropped", cp["size"], timeout=15)
    assert confirmed is not None
    events = anchor_events(ledger)
    assert [t for t, _ in events] == [ev.ANCHOR_SUBMITTED, ev.ANCHOR_FAILED, ev.ANCHOR_SUBMITTED,
                                      ev.ANCHOR_CONFIRMED]
    resent, done = events[2][1], events[3][1]
    assert done["tx_hash"] == resent["tx_hash"]
    assert chain.w3.eth.get_transaction_receipt(done["tx_hash"])["status"] == 1
    assert_on_chain(chain, ledger.origin, cp["size"], cp["root"], done["block_number"])
    assert worker.metrics.failed == 1 and worker.metrics.confirmed == 1 and worker.metrics.reorgs == 0


# --- a reorg that removes the anchoring block --------------------------------------------------


def test_reorg_removing_the_anchoring_block_is_detected_and_reanchored(anvil, chain, service):
    ledger = service.create_ledger("reorged")
    cp = ingest(ledger, 0, 5)
    worker = AnchorWorker(service, chain, fast(confirmations=3))
    anvil.rpc("evm_setAutomine", False)
    snapshot = anvil.rpc("evm_snapshot")  # the chain before the anchor's block

    worker.step()
    (_, submitted), = anchor_events(ledger)
    anvil.rpc("evm_mine")
    mined = chain.tx_status(submitted["tx_hash"])
    assert mined.state == "mined"
    worker.step()  # seen mined, 1 deep of 3: not confirmed yet
    assert event_types(ledger) == [ev.ANCHOR_SUBMITTED]

    assert anvil.rpc("evm_revert", snapshot) is True
    for _ in range(3):
        anvil.rpc("evm_mine")  # a longer chain without the anchor
    assert chain.head() >= mined.block_number
    assert chain.block(mined.block_number)[0] != mined.block_hash
    assert chain.latest_anchor(ledger.origin) is None

    worker.step()  # the confirmation check notices
    events = anchor_events(ledger)
    assert events[1][0] == ev.ANCHOR_FAILED
    assert "reorg" in events[1][1]["reason"]
    assert worker.metrics.reorgs == 1

    for _ in range(6):  # mine the re-anchor and bury it 3 deep
        anvil.rpc("evm_mine")
        worker.step()
    confirmed = worker.wait_confirmed("reorged", cp["size"], timeout=10)
    assert confirmed is not None
    events = anchor_events(ledger)
    assert [t for t, _ in events] == [ev.ANCHOR_SUBMITTED, ev.ANCHOR_FAILED, ev.ANCHOR_SUBMITTED,
                                      ev.ANCHOR_CONFIRMED]
    done = events[3][1]
    assert done["tx_hash"] == events[2][1]["tx_hash"]
    assert done["confirmations"] >= 3
    assert done["block_hash"] == chain.block(done["block_number"])[0] != mined.block_hash
    assert_on_chain(chain, ledger.origin, cp["size"], cp["root"], done["block_number"])


# --- reverts and out of gas over JSON-RPC ------------------------------------------------------


def test_revert_reason_over_json_rpc(anvil, registry, service, caplog):
    outsider = Web3Chain.from_rpc(anvil.url, registry, DEV_KEYS[1], timeout=3)
    ledger = service.create_ledger("unauthorized")
    cp = ingest(ledger, 0, 3)
    worker = AnchorWorker(service, outsider, fast())
    with caplog.at_level(logging.WARNING, logger="evledger.anchor"):
        worker.step()
    (kind, failed), = anchor_events(ledger)
    assert kind == ev.ANCHOR_FAILED
    assert "not an authorized anchorer" in failed["reason"]
    assert failed["size"] == cp["size"] and failed["tx_hash"] is None
    assert outsider.w3.eth.get_transaction_count(OUTSIDER.address) == 0  # nothing sent, no gas spent
    assert worker.metrics.failed == 1
    assert any("ALERT" in r.getMessage() and "not an authorized anchorer" in r.getMessage()
               and r.levelno >= logging.ERROR for r in caplog.records)
    assert DEV_KEYS[1][2:] not in caplog.text
    assert outsider.latest_anchor(ledger.origin) is None
    assert projected(ledger, cp["size"], "failed")["reason"] == failed["reason"]


def test_out_of_gas_over_json_rpc(anvil, registry, service):
    thirsty = Web3Chain(Web3(HTTPProvider(anvil.url)), registry, account=ADMIN, gas_limit=30_000)
    ledger = service.create_ledger("thirsty")
    cp = ingest(ledger, 0, 3)
    worker = AnchorWorker(service, thirsty, fast())
    step_until(worker, lambda: ev.ANCHOR_FAILED in event_types(ledger), what="AnchorFailed")
    events = anchor_events(ledger)
    submitted = events[0][1]
    failed = next(p for t, p in events if t == ev.ANCHOR_FAILED)
    assert failed["tx_hash"] == submitted["tx_hash"] and failed["size"] == cp["size"]
    assert "gas" in failed["reason"]
    assert thirsty.w3.eth.get_transaction_receipt(submitted["tx_hash"])["status"] == 0
    assert thirsty.latest_anchor(ledger.origin) is None


# --- verification without the service ---------------------------------------------------------


def test_verify_cli_web3_and_cast_agree(anvil, registry, chain, service, capsys, cli_env):
    ledger = service.create_ledger("vfy")
    cp = ingest(ledger, 0, 7)
    worker = AnchorWorker(service, chain, fast())
    confirmed = worker.wait_confirmed("vfy", cp["size"], timeout=15)
    assert confirmed is not None
    size, root = cp["size"], cp["root"]
    base = ["anchor", "verify", "--rpc", anvil.url, "--contract", registry, "vfy"]

    code, out, _ = run_cli(capsys, base + [size, root])
    assert code == 0 and "VERIFIED" in out and root in out
    assert f"block {confirmed['block_number']}" in out

    wrong = ("0" if root[0] != "0" else "1") + root[1:]
    code, out, _ = run_cli(capsys, base + [size, wrong])
    assert code == 1 and "MISMATCH" in out and "VERIFIED" not in out
    assert root in out  # it says what the contract does hold

    code, out, _ = run_cli(capsys, base + [size + 1000, root])
    assert code == 1 and "NOT ANCHORED" in out and "VERIFIED" not in out

    # The same check with plain web3.py calls, knowing only the ABI and the ledger's origin.
    w3 = Web3(HTTPProvider(anvil.url))
    contract = w3.eth.contract(address=registry, abi=load_artifact()["abi"])
    key = ledger_key(ledger.origin)
    assert key == Web3.keccak(text="evledger/vfy")
    w3_root, w3_block, w3_time = contract.functions.getAnchor(key, size).call()
    assert bytes(w3_root).hex() == root
    assert w3_block == confirmed["block_number"] and w3_time == confirmed["block_time"]

    # And with foundry's cast, a generic client that knows nothing of this project.
    proc = subprocess.run([str(CAST), "call", registry, "getAnchor(bytes32,uint64)(bytes32,uint64,uint64)",
                           "0x" + key.hex(), str(size), "--rpc-url", anvil.url],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    lines = [line.split()[0] for line in proc.stdout.strip().splitlines()]
    assert lines[0].lower() == "0x" + root
    assert int(lines[1]) == confirmed["block_number"] and int(lines[2]) == confirmed["block_time"]


def test_verify_cli_accepts_flags_after_the_action_as_documented(anvil, registry, chain, service, capsys, cli_env):
    ledger = service.create_ledger("documented")
    cp = ingest(ledger, 0, 3)
    assert AnchorWorker(service, chain, fast()).wait_confirmed("documented", cp["size"], timeout=15) is not None
    try:
        code, out, _ = run_cli(capsys, ["anchor", "verify", "documented", cp["size"], cp["root"],
                                        "--rpc", anvil.url, "--contract", registry])
    except SystemExit as exc:  # argparse's usage error
        code, out = exc.code, ""
    assert code == 0 and "VERIFIED" in out


def test_verify_rpc_refuses_a_tx_hash_that_did_not_write_the_anchor(anvil, registry, chain, service, capsys,
                                                                     cli_env, tmp_path):
    """`anchor.tx_hash` is not under the checkpoint signature: anyone can point it at another
    transaction. Pointed at another successful call of the registry in the anchor's own block
    (admin() from another account, or the anchor of another ledger), `verify --rpc` must say ②,
    naming the transaction, even with the key and the contract pinned."""
    from proof_api.bundle import build_bundle
    from evledger_verify.verify import format_report, load_bundle, verify_bundle

    victim, neighbour = service.create_ledger("victim"), service.create_ledger("neighbour")
    cp, other_cp = ingest(victim, 0, 5), ingest(neighbour, 0, 3)
    worker = AnchorWorker(service, chain, fast())
    w3 = Web3(HTTPProvider(anvil.url))
    contract = w3.eth.contract(address=registry, abi=load_artifact()["abi"])
    anvil.rpc("evm_setAutomine", False)
    worker.step()  # both anchors submitted, not mined
    admin_call = "0x" + bytes(contract.functions.admin().transact({"from": OUTSIDER.address})).hex()
    anvil.rpc("evm_mine")  # one block: both anchors and the admin() call
    anvil.rpc("evm_setAutomine", True)
    done = worker.wait_confirmed("victim", cp["size"], timeout=15)
    other = worker.wait_confirmed("neighbour", other_cp["size"], timeout=15)
    assert done is not None and other is not None and done["tx_hash"] != other["tx_hash"]
    for tx in (admin_call, other["tx_hash"]):  # what the check used to accept: a good call, same block, same contract
        receipt = w3.eth.get_transaction_receipt(tx)
        assert (receipt["status"], receipt["blockNumber"], receipt["to"]) == (1, done["block_number"], registry)

    bundle = load_bundle(json.dumps(build_bundle(victim, 2)))
    key = bundle["checkpoint"]["verifier_key"]
    pinned = {"rpc_url": anvil.url, "trusted_keys": [key], "contract": registry}
    report = verify_bundle(bundle, **pinned)
    assert report.verdict == 1, format_report(report)
    assert f"written by tx {done['tx_hash']} (its Anchored event, from anchorer {ADMIN.address.lower()})" \
        in report.check("anchor_on_chain").detail

    def pointed_at(tx: str) -> dict:
        return {**bundle, "anchor": {**bundle["anchor"], "tx_hash": tx}}

    report = verify_bundle(pointed_at(admin_call), **pinned)
    assert report.verdict == 2 and [c.name for c in report.checks if c.ok is False] == ["anchor_on_chain"]
    assert report.check("anchor_on_chain").detail == (
        f"transaction {admin_call} emitted no Anchored event from {bundle['anchor']['contract']}: it did not call "
        f"anchor({bundle['anchor']['ledger_key']}, {cp['size']}, 0x{cp['root']})")

    report = verify_bundle(pointed_at(other["tx_hash"]), **pinned)
    assert report.verdict == 2 and [c.name for c in report.checks if c.ok is False] == ["anchor_on_chain"]
    assert report.check("anchor_on_chain").detail == (
        f"transaction {other['tx_hash']} anchored another checkpoint: its Anchored event has "
        f"ledger key 0x{ledger_key(neighbour.origin).hex()}, not 0x{ledger_key(victim.origin).hex()}; "
        f"size {other_cp['size']}, not {cp['size']}; root {other_cp['root']}, not {cp['root']}")

    # The command says the same: ② naming the check, exit 1.
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(pointed_at(admin_call)))
    code, out, _ = run_cli(capsys, ["verify", path, "--rpc", anvil.url, "--contract", registry, "--key", key])
    assert code == 1, out
    assert f"✘ anchor on chain: transaction {admin_call} emitted no Anchored event" in out
    assert out.splitlines()[-1].endswith("(failed: anchor_on_chain)") and "verdict ②" in out


# --- restart everything ------------------------------------------------------------------------


def test_restart_service_and_chain_every_confirmed_anchor_still_on_chain(tmp_path, data_dir, capsys, cli_env):
    state = tmp_path / "chain-state.json"
    node = Anvil(state=state).start()
    try:
        address = deploy_registry(Web3(HTTPProvider(node.url)), account=ADMIN)
        chain = Web3Chain.from_rpc(node.url, address, DEV_KEYS[0], timeout=3)
        svc = LedgerService(data_dir, settings=SEQ)
        try:
            one, two = svc.create_ledger("one"), svc.create_ledger("two")
            worker = AnchorWorker(svc, chain, fast())
            cp_one = ingest(one, 0, 5)
            cp_two = ingest(two, 1000, 8)
            assert worker.wait_confirmed("one", cp_one["size"], timeout=15) is not None
            assert worker.wait_confirmed("two", cp_two["size"], timeout=15) is not None
            cp_one2 = ingest(one, 5, 6)
            assert worker.wait_confirmed("one", cp_one2["size"], timeout=15) is not None
            projected(one, cp_one2["size"], "confirmed")
            projected(two, cp_two["size"], "confirmed")
            sent = chain.w3.eth.get_transaction_count(ADMIN.address)
        finally:
            svc.close()
    finally:
        node.stop()
    assert state.exists() and state.stat().st_size > 0

    node = Anvil(state=state).start()  # a new process (and port), the same chain
    try:
        chain = Web3Chain.from_rpc(node.url, address, DEV_KEYS[0], timeout=3)
        assert chain.w3.eth.get_transaction_count(ADMIN.address) == sent
        svc = LedgerService(data_dir, settings=SEQ)
        try:
            seen = 0
            for ledger_id in ("one", "two"):
                ledger = svc.ledger(ledger_id)
                confirmed = [a for a in ledger.projections.anchors() if a["status"] == "confirmed"]
                assert confirmed, f"ledger {ledger_id} lost its anchors"
                for a in confirmed:
                    seen += 1
                    assert a["root"] == ledger.projections.checkpoint(a["size"])["root"]
                    assert_on_chain(chain, ledger.origin, a["size"], a["root"], a["block_number"])
                    assert chain.block(a["block_number"])[0] == a["block_hash"]
                    assert chain.tx_status(a["tx_hash"]).state == "mined"
                    code, out, _ = run_cli(capsys, ["anchor", "verify", "--rpc", node.url, "--contract", address,
                                                    ledger_id, a["size"], a["root"]])
                    assert code == 0 and "VERIFIED" in out
            assert seen == 3

            # A new worker over the reopened service finds nothing to do: no transaction.
            worker = AnchorWorker(svc, chain, fast())
            for _ in range(3):
                worker.step()
            assert chain.w3.eth.get_transaction_count(ADMIN.address) == sent
            assert worker.metrics.submitted == 0
            # ... and anchors resume for what comes next.
            cp_two2 = ingest(svc.ledger("two"), 1008, 4)
            assert worker.wait_confirmed("two", cp_two2["size"], timeout=15) is not None
            assert_on_chain(chain, "evledger/two", cp_two2["size"], cp_two2["root"])
        finally:
            svc.close()
    finally:
        node.stop()


# --- deploy and anchor with the CLI -------------------------------------------------------------


def test_cli_deploy_then_anchor_now(anvil, data_dir, capsys, cli_env):
    cli_env.setenv("EVLEDGER_ANCHOR_KEY", DEV_KEYS[0])
    code, out, err = run_cli(capsys, ["anchor", "deploy", "--rpc", anvil.url])
    assert code == 0, err
    match = re.search(r"deployed at (0x[0-9a-fA-F]{40})", out)
    assert match, out
    address = match.group(1)
    w3 = Web3(HTTPProvider(anvil.url))
    assert len(w3.eth.get_code(address)) > 0
    contract = w3.eth.contract(address=address, abi=load_artifact()["abi"])
    assert contract.functions.admin().call() == ADMIN.address
    assert DEV_KEYS[0][2:] not in out + err

    svc = LedgerService(data_dir, settings=SEQ)
    try:
        ledger = svc.create_ledger("cli")
        cp = ingest(ledger, 0, 9)
        origin = ledger.origin
    finally:
        svc.close()

    code, out, err = run_cli(capsys, ["--data-dir", data_dir, "--batch-max-delay", "0.05", "anchor", "now", "cli",
                                      "--rpc", anvil.url, "--contract", address, "--timeout", "30"])
    assert code == 0, err
    assert f"size {cp['size']} root {cp['root']}" in out
    assert DEV_KEYS[0][2:] not in out + err
    on_root, block, _ = contract.functions.getAnchor(ledger_key(origin), cp["size"]).call()
    assert bytes(on_root).hex() == cp["root"] and block > 0
    assert f"block {block}" in out

    code, out, _ = run_cli(capsys, ["--data-dir", data_dir, "anchor", "status", "cli"])
    assert code == 0
    assert f"{cp['size']}\tconfirmed\tblock {block}" in out

    # Without a key, anchoring to an RPC endpoint is refused with a clear error.
    cli_env.delenv("EVLEDGER_ANCHOR_KEY")
    code, _, err = run_cli(capsys, ["--data-dir", data_dir, "anchor", "now", "cli", "--rpc", anvil.url,
                                    "--contract", address, "--timeout", "5"])
    assert code == 1 and "EVLEDGER_ANCHOR_KEY" in err
