"""The anchor worker against the in-process chain (web3's EthereumTesterProvider, py-evm).

Each test builds a real LedgerService in a temporary data directory (small sequencer batches,
so checkpoints seal within ~50 ms), a fresh in-process chain with the AnchorRegistry deployed,
and drives the worker with `step()` (or `wait_confirmed`) so every transition is observed.

What is checked is what the issue asks for: the lifecycle events in each ledger's own log
(AnchorSubmitted -> AnchorConfirmed, or AnchorFailed with the reason), the contract's own record
matching the checkpoint root, the anchoring policy (min interval, anchor now, nothing newer ->
no transaction), reverts and out-of-gas surfacing as AnchorFailed plus an ALERT log line, and
restart safety (a transaction sent but never logged is adopted, a logged pending one is
followed; neither is sent twice).
"""
from __future__ import annotations

import logging
import time

import pytest
from prometheus_client import CollectorRegistry

from anchor.chain import Web3Chain, ledger_key
from anchor.worker import AnchorMetrics, AnchorSettings, AnchorWorker
from ingest import events as ev
from ingest.ledger import LedgerService
from ingest.sequencer import SequencerSettings
from tests.anchor_helpers import anchor_events, event_types, ingest, wait_until
from tests.sample_records import rec

SEQ = SequencerSettings(batch_max_items=1000, batch_max_delay=0.05)


def fast(**overrides) -> AnchorSettings:
    return AnchorSettings(**{"min_interval": 0, "poll_interval": 0.05, "max_backoff": 1.0, **overrides})


# --- helpers -------------------------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


@pytest.fixture
def service(data_dir):
    svc = LedgerService(data_dir, settings=SEQ)
    yield svc
    svc.close()


@pytest.fixture(scope="module")
def shared_chain():
    """Deploying costs ~0.7 s; tests that only need *a* registry share one (ledgers differ)."""
    return Web3Chain.in_process()


@pytest.fixture
def chain():
    return Web3Chain.in_process()




def projected(ledger, size: int, status: str) -> dict:
    """Wait until the projections show the anchor of `size` with `status`."""
    return wait_until(lambda: (a := ledger.projections.anchor(size)) is not None and a["status"] == status and a,
                      what=f"anchor {size} projected as {status}")


def step_until(worker, predicate, timeout: float = 10.0, what: str = "condition"):
    def once():
        worker.step()
        return predicate()
    return wait_until(once, timeout, what)


def nonce(chain, address: str | None = None) -> int:
    return chain.w3.eth.get_transaction_count(address or chain.sender)


# --- the happy path -----------------------------------------------------------------------


def test_two_ledgers_anchored_and_confirmed_with_events_in_order(service, chain):
    alpha = service.create_ledger("alpha")
    beta = service.create_ledger("beta")
    cp_a = ingest(alpha, 0, 5)
    cp_b = ingest(beta, 100, 7)
    worker = AnchorWorker(service, chain, fast())

    conf_a = worker.wait_confirmed("alpha", cp_a["size"], timeout=15)
    conf_b = worker.wait_confirmed("beta", cp_b["size"], timeout=15)
    assert conf_a is not None and conf_b is not None
    assert ledger_key(alpha.origin) != ledger_key(beta.origin)

    for ledger, cp in ((alpha, cp_a), (beta, cp_b)):
        events = anchor_events(ledger)
        assert [t for t, _ in events] == [ev.ANCHOR_SUBMITTED, ev.ANCHOR_CONFIRMED]
        (_, submitted), (_, confirmed) = events
        assert submitted["size"] == confirmed["size"] == cp["size"]
        assert submitted["root"] == confirmed["root"] == cp["root"]
        assert submitted["tx_hash"].startswith("0x") and len(submitted["tx_hash"]) == 66
        assert confirmed["tx_hash"] == submitted["tx_hash"]
        assert isinstance(submitted["nonce"], int)
        assert submitted["chain_id"] == chain.chain_id and submitted["contract"] == chain.contract_address
        # The block the event names is the canonical block that holds the transaction.
        receipt = chain.w3.eth.get_transaction_receipt(submitted["tx_hash"])
        assert receipt["status"] == 1
        assert confirmed["block_number"] == receipt["blockNumber"]
        block = chain.w3.eth.get_block(confirmed["block_number"])
        assert confirmed["block_hash"] == "0x" + bytes(block["hash"]).hex()
        assert confirmed["block_time"] == block["timestamp"]
        assert confirmed["confirmations"] >= 1
        # The contract's record, read straight from the chain, holds the checkpoint root.
        on_chain = chain.read_anchor(ledger.origin, cp["size"])
        assert on_chain is not None
        assert on_chain.root == bytes.fromhex(cp["root"])
        assert on_chain.block_number == confirmed["block_number"]
        assert on_chain.timestamp == confirmed["block_time"]
        assert chain.latest_anchor(ledger.origin).size == cp["size"]
        assert projected(ledger, cp["size"], "confirmed")["block_hash"] == confirmed["block_hash"]

    # Different ledgers, different transactions, one each.
    assert anchor_events(alpha)[0][1]["tx_hash"] != anchor_events(beta)[0][1]["tx_hash"]
    assert worker.metrics.submitted == 2 and worker.metrics.confirmed == 2 and worker.metrics.failed == 0
    assert len(worker.metrics.confirm_latency) <= 2


def test_worker_thread_anchors_new_checkpoints_as_they_seal(service, shared_chain):
    ledger = service.create_ledger("threaded")
    worker = AnchorWorker(service, shared_chain, fast())
    worker.start()
    try:
        cp1 = ingest(ledger, 0, 3)
        projected(ledger, cp1["size"], "confirmed")
        cp2 = ingest(ledger, 3, 4)
        projected(ledger, cp2["size"], "confirmed")
    finally:
        worker.stop()
    assert worker._thread is None
    assert shared_chain.latest_anchor(ledger.origin).root == bytes.fromhex(cp2["root"])
    assert shared_chain.read_anchor(ledger.origin, cp1["size"]).root == bytes.fromhex(cp1["root"])
    assert event_types(ledger) == [ev.ANCHOR_SUBMITTED, ev.ANCHOR_CONFIRMED] * 2


# --- the policy ---------------------------------------------------------------------------


def test_min_interval_holds_back_newer_checkpoint_until_anchor_now(service, shared_chain):
    ledger = service.create_ledger("policy")
    worker = AnchorWorker(service, shared_chain, fast(min_interval=30))
    cp1 = ingest(ledger, 0, 4)
    assert worker.wait_confirmed("policy", cp1["size"], timeout=10) is not None  # the first is due at once
    assert event_types(ledger) == [ev.ANCHOR_SUBMITTED, ev.ANCHOR_CONFIRMED]

    cp2 = ingest(ledger, 4, 3)
    assert cp2["size"] > cp1["size"]
    head = shared_chain.head()
    for _ in range(5):
        worker.step()
        time.sleep(0.02)
    # Within the 30 s interval: no new transaction, no new event, the chain still holds cp1.
    assert shared_chain.head() == head
    assert event_types(ledger) == [ev.ANCHOR_SUBMITTED, ev.ANCHOR_CONFIRMED]
    assert shared_chain.latest_anchor(ledger.origin).size == cp1["size"]
    assert worker.metrics.submitted == 1

    worker.anchor_now("policy")
    worker.step()  # one step: anchored at once
    types = event_types(ledger)
    assert types[:3] == [ev.ANCHOR_SUBMITTED, ev.ANCHOR_CONFIRMED, ev.ANCHOR_SUBMITTED]
    assert anchor_events(ledger)[2][1]["size"] == cp2["size"]
    assert shared_chain.latest_anchor(ledger.origin).root == bytes.fromhex(cp2["root"])
    assert worker.wait_confirmed("policy", cp2["size"], timeout=10)["root"] == cp2["root"]
    assert worker.metrics.submitted == 2


def test_nothing_newer_than_last_anchor_sends_nothing(service, shared_chain):
    ledger = service.create_ledger("idle")
    worker = AnchorWorker(service, shared_chain, fast())
    cp = ingest(ledger, 0, 5)
    assert worker.wait_confirmed("idle", cp["size"], timeout=10) is not None
    projected(ledger, cp["size"], "confirmed")
    head, sent = shared_chain.head(), nonce(shared_chain)
    events = anchor_events(ledger)

    for _ in range(5):
        worker.step()
    worker.anchor_now("idle")  # on demand, but still nothing newer
    for _ in range(3):
        worker.step()
    assert shared_chain.head() == head
    assert nonce(shared_chain) == sent
    assert anchor_events(ledger) == events
    assert worker.metrics.submitted == 1 and worker.metrics.confirmed == 1


def test_nothing_anchored_before_the_first_checkpoint(service, shared_chain):
    service.create_ledger("empty")
    worker = AnchorWorker(service, shared_chain, fast())
    head = shared_chain.head()
    worker.anchor_now("empty")
    for _ in range(3):
        worker.step()
    assert shared_chain.head() == head
    assert event_types(service.ledger("empty")) == []
    assert shared_chain.latest_anchor("evledger/empty") is None


def test_confirmed_anchor_is_not_adopted_again_while_projections_lag(data_dir, shared_chain):
    # The sequencer is driven by hand (start=False), standing in for a sequencer busy sealing a
    # big batch: the log has AnchorConfirmed, the projections do not yet.
    svc = LedgerService(data_dir, settings=SEQ, start=False)
    try:
        ledger = svc.create_ledger("lag")
        ledger.submit([rec(i) for i in range(3)])
        ledger.sequencer.catch_up()
        ledger.sequencer.seal()
        ledger.sequencer.catch_up()
        cp = ledger.projections.latest_checkpoint()
        assert cp["size"] == 3
        worker = AnchorWorker(svc, shared_chain, fast())
        worker.step()  # submits (automine: mined at once)
        worker.step()  # confirms
        assert event_types(ledger) == [ev.ANCHOR_SUBMITTED, ev.ANCHOR_CONFIRMED]
        sent = nonce(shared_chain)
        worker.step()  # nothing newer: must be a no-op
        assert nonce(shared_chain) == sent  # (no second transaction: this part holds)
        assert event_types(ledger) == [ev.ANCHOR_SUBMITTED, ev.ANCHOR_CONFIRMED]
        assert worker.metrics.confirmed == 1
        assert worker.wait_confirmed("lag", 3, timeout=1)["root"] == cp["root"]
    finally:
        svc.close()


# --- reverts and out of gas ---------------------------------------------------------------


def test_unauthorized_sender_fails_with_revert_reason_and_alert(service, shared_chain, caplog):
    w3 = shared_chain.w3
    outsider = w3.eth.accounts[1]
    chain = Web3Chain(w3, shared_chain.contract_address, sender=outsider)
    ledger = service.create_ledger("outsider")
    cp = ingest(ledger, 0, 3)
    worker = AnchorWorker(service, chain, fast())
    before = nonce(chain, outsider)

    with caplog.at_level(logging.WARNING, logger="evledger.anchor"):
        worker.step()
    events = anchor_events(ledger)
    assert [t for t, _ in events] == [ev.ANCHOR_FAILED]
    failed = events[0][1]
    assert "not an authorized anchorer" in failed["reason"]
    assert failed["size"] == cp["size"] and failed["root"] == cp["root"]
    assert failed["tx_hash"] is None  # caught by the simulation: nothing was sent
    assert nonce(chain, outsider) == before
    assert worker.metrics.failed == 1
    assert "not an authorized anchorer" in worker.metrics.last_error
    alerts = [r for r in caplog.records if "ALERT" in r.getMessage()]
    assert alerts and alerts[0].levelno >= logging.ERROR
    assert "not an authorized anchorer" in alerts[0].getMessage()
    assert projected(ledger, cp["size"], "failed")["reason"] == failed["reason"]
    assert chain.latest_anchor(ledger.origin) is None

    # Backed off: an immediate step does not hammer the contract again.
    worker.step()
    assert worker.metrics.failed == 1
    assert event_types(ledger) == [ev.ANCHOR_FAILED]


def test_out_of_gas_is_an_anchor_failed_that_mentions_gas(service, shared_chain, caplog):
    chain = Web3Chain(shared_chain.w3, shared_chain.contract_address, sender=shared_chain.sender, gas_limit=30_000)
    ledger = service.create_ledger("thirsty")
    cp = ingest(ledger, 0, 3)
    worker = AnchorWorker(service, chain, fast())
    with caplog.at_level(logging.WARNING, logger="evledger.anchor"):
        step_until(worker, lambda: ev.ANCHOR_FAILED in event_types(ledger), what="AnchorFailed")
    events = anchor_events(ledger)
    assert events[0][0] == ev.ANCHOR_SUBMITTED
    submitted = events[0][1]
    failed = next(p for t, p in events if t == ev.ANCHOR_FAILED)
    assert failed["tx_hash"] == submitted["tx_hash"]  # sent, mined, reverted
    assert failed["size"] == cp["size"]
    assert "gas" in failed["reason"]
    assert chain.w3.eth.get_transaction_receipt(submitted["tx_hash"])["status"] == 0
    assert chain.latest_anchor(ledger.origin) is None
    assert worker.metrics.failed == 1 and worker.metrics.confirmed == 0
    assert "gas" in worker.metrics.last_error
    assert any("ALERT" in r.getMessage() and "gas" in r.getMessage() and r.levelno >= logging.ERROR
               for r in caplog.records)


def test_reverted_anchor_is_not_resent_within_its_backoff(service, shared_chain):
    chain = Web3Chain(shared_chain.w3, shared_chain.contract_address, sender=shared_chain.sender, gas_limit=30_000)
    ledger = service.create_ledger("resend")
    ingest(ledger, 0, 3)
    worker = AnchorWorker(service, chain, fast())
    before = nonce(chain)
    step_until(worker, lambda: ev.ANCHOR_FAILED in event_types(ledger), what="AnchorFailed")
    worker.step()  # within the backoff
    assert event_types(ledger) == [ev.ANCHOR_SUBMITTED, ev.ANCHOR_FAILED]
    assert nonce(chain) == before + 1  # one doomed transaction, not two


def test_repeated_rejections_back_off_exponentially(service, shared_chain):
    chain = Web3Chain(shared_chain.w3, shared_chain.contract_address, sender=shared_chain.w3.eth.accounts[2])
    ledger = service.create_ledger("backoff")
    ingest(ledger, 0, 3)
    worker = AnchorWorker(service, chain, fast(max_backoff=60.0))
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        worker.step()
        time.sleep(0.05)
    # Doubling from 1 s: failures at ~0 s, ~1 s, then not before ~3 s.
    assert event_types(ledger).count(ev.ANCHOR_FAILED) <= 2


# --- restart safety -----------------------------------------------------------------------


def test_sent_but_never_logged_anchor_is_adopted_not_resent(service, chain):
    ledger = service.create_ledger("crashed")
    cp = ingest(ledger, 0, 6)
    # The "crash": the transaction left, the AnchorSubmitted event never reached the log.
    sent = chain.submit_anchor(ledger.origin, cp["size"], bytes.fromhex(cp["root"]))
    assert chain.tx_status(sent.tx_hash).state == "mined"
    assert event_types(ledger) == []
    head, count = chain.head(), nonce(chain)

    worker = AnchorWorker(service, chain, fast())  # a fresh worker after the restart
    confirmed = worker.wait_confirmed("crashed", cp["size"], timeout=10)
    assert confirmed is not None
    events = anchor_events(ledger)
    assert [t for t, _ in events] == [ev.ANCHOR_SUBMITTED, ev.ANCHOR_CONFIRMED]
    adopted, done = events[0][1], events[1][1]
    assert adopted["adopted"] is True
    assert adopted["tx_hash"] == sent.tx_hash
    assert adopted["size"] == cp["size"] and adopted["root"] == cp["root"]
    assert done["tx_hash"] == sent.tx_hash
    assert done["block_number"] == chain.tx_status(sent.tx_hash).block_number
    # No second transaction.
    assert chain.head() == head and nonce(chain) == count
    assert chain.latest_anchor(ledger.origin).size == cp["size"]
    assert worker.metrics.submitted == 0


def test_foreign_anchor_on_the_ledgers_key_is_reported_not_adopted(service, chain, caplog):
    ledger = service.create_ledger("squatted")
    cp = ingest(ledger, 0, 5)
    bogus = bytes(31) + b"\x01"
    chain.submit_anchor(ledger.origin, cp["size"], bogus)  # someone else's anchor at our size
    head = chain.head()
    worker = AnchorWorker(service, chain, fast())
    with caplog.at_level(logging.WARNING, logger="evledger.anchor"):
        worker.step()
    (kind, failed), = anchor_events(ledger)
    assert kind == ev.ANCHOR_FAILED
    assert "another writer" in failed["reason"] and bogus.hex() in failed["reason"]
    assert chain.head() == head  # nothing sent
    assert any("ALERT" in r.getMessage() for r in caplog.records)
    assert worker.wait_confirmed("squatted", cp["size"], timeout=0.3) is None


def _submit_pending(service, chain, ledger_id: str) -> tuple[dict, dict]:
    """A worker submits with mining off, then goes away; (checkpoint, AnchorSubmitted payload)."""
    tester = chain.w3.provider.ethereum_tester
    ledger = service.ledger(ledger_id)
    cp = ingest(ledger, 0, 4)
    tester.disable_auto_mine_transactions()
    first = AnchorWorker(service, chain, fast())
    first.step()
    first.stop()
    events = anchor_events(ledger)
    assert [t for t, _ in events] == [ev.ANCHOR_SUBMITTED]
    submitted = events[0][1]
    assert chain.tx_status(submitted["tx_hash"]).state == "pending"
    projected(ledger, cp["size"], "submitted")
    return cp, submitted


def _finish_after_restart(service, chain, ledger_id: str, cp: dict, submitted: dict, sent_before: int) -> None:
    ledger = service.ledger(ledger_id)
    tester = chain.w3.provider.ethereum_tester
    second = AnchorWorker(service, chain, fast())
    for _ in range(3):
        second.step()  # still pending: follow it, send nothing
    assert event_types(ledger) == [ev.ANCHOR_SUBMITTED]
    assert chain.tx_status(submitted["tx_hash"]).state == "pending"
    assert second.metrics.submitted == 0
    tester.enable_auto_mine_transactions()
    tester.mine_blocks()
    confirmed = second.wait_confirmed(ledger_id, cp["size"], timeout=10)
    assert confirmed is not None and confirmed["tx_hash"] == submitted["tx_hash"]
    events = anchor_events(ledger)
    assert [t for t, _ in events] == [ev.ANCHOR_SUBMITTED, ev.ANCHOR_CONFIRMED]
    assert events[1][1]["tx_hash"] == submitted["tx_hash"]
    assert nonce(chain) == sent_before + 1  # exactly one transaction in all
    assert chain.read_anchor(ledger.origin, cp["size"]).root == bytes.fromhex(cp["root"])
    assert second.metrics.submitted == 0 and second.metrics.confirmed == 1


def test_pending_submitted_anchor_is_followed_by_a_new_worker(service, chain):
    service.create_ledger("pending")
    sent_before = nonce(chain)
    cp, submitted = _submit_pending(service, chain, "pending")
    _finish_after_restart(service, chain, "pending", cp, submitted, sent_before)


def test_pending_submitted_anchor_survives_a_service_restart(data_dir, chain):
    svc = LedgerService(data_dir, settings=SEQ)
    try:
        svc.create_ledger("reopened")
        sent_before = nonce(chain)
        cp, submitted = _submit_pending(svc, chain, "reopened")
    finally:
        svc.close()
    svc = LedgerService(data_dir, settings=SEQ)  # the whole service restarts from its data dir
    try:
        assert svc.ledger("reopened").projections.anchor(cp["size"])["status"] == "submitted"
        _finish_after_restart(svc, chain, "reopened", cp, submitted, sent_before)
    finally:
        svc.close()


def test_settings_validation():
    with pytest.raises(ValueError):
        AnchorSettings(confirmations=0)
    with pytest.raises(ValueError):
        AnchorSettings(poll_interval=0)
    with pytest.raises(ValueError):
        AnchorSettings(min_interval=-1)
    assert AnchorSettings().min_interval == 10.0  # the default


def test_checkpoints_covered_by_a_confirmed_anchor_leave_the_latency_map(service, chain):
    """Checkpoints are sealed about once a second and anchored at most every min_interval:
    the ones in between are covered by the next anchor and must not stay in memory forever."""
    alpha = service.create_ledger("alpha")
    worker = AnchorWorker(service, chain, fast(min_interval=3600))
    worker.step()  # takes the ledger on: from now it notes when each checkpoint is sealed
    sizes = [ingest(alpha, i * 5, 5)["size"] for i in range(3)]
    assert sizes == [5, 10, 15] and {("alpha", s) for s in sizes} <= set(worker._sealed_at)
    worker.anchor_now("alpha")
    assert worker.wait_confirmed("alpha", 15, timeout=15) is not None
    assert not [key for key in worker._sealed_at if key[0] == "alpha"]
    assert worker.metrics.confirm_latency  # the confirmed checkpoint's own latency was taken first


def test_metrics_are_prometheus_instruments_in_the_registry_given(service, shared_chain):
    """/metrics reads the worker's own counters and histogram: nothing copies them over."""
    registry = CollectorRegistry()
    metered = service.create_ledger("metered")
    worker = AnchorWorker(service, shared_chain, fast(), registry=registry)
    worker.step()  # takes the ledger on: from now it notes when each checkpoint is sealed
    cp = ingest(metered, 0, 3)
    assert worker.wait_confirmed("metered", cp["size"], timeout=15) is not None
    sample = registry.get_sample_value
    assert sample("evledger_anchors_submitted_total") == worker.metrics.submitted == 1
    assert sample("evledger_anchors_confirmed_total") == worker.metrics.confirmed == 1
    assert sample("evledger_anchors_failed_total") == worker.metrics.failed == 0
    assert sample("evledger_anchor_chain_errors_total") == worker.metrics.chain_errors == 0
    assert sample("evledger_anchor_reorgs_total") == worker.metrics.reorgs == 0
    (latency,) = worker.metrics.confirm_latency
    assert sample("evledger_anchor_confirm_latency_seconds_count") == 1
    assert sample("evledger_anchor_confirm_latency_seconds_sum") == pytest.approx(latency)
    assert sample("evledger_anchor_confirm_latency_seconds_bucket", {"le": "600.0"}) == 1
    # A worker given no registry has its own, so several can run in one process.
    assert AnchorWorker(service, shared_chain, fast()).metrics.registry is not registry


def test_confirm_latency_memory_is_bounded():
    metrics = AnchorMetrics()
    keep = AnchorMetrics.KEEP_LATENCIES
    for i in range(keep + 5):
        metrics.observe_confirmed(float(i))
    assert len(metrics.confirm_latency) == keep and metrics.confirm_latency[0] == 5.0  # the latest kept
    assert metrics.registry.get_sample_value("evledger_anchor_confirm_latency_seconds_count") == keep + 5


def test_reading_an_anchor_where_no_contract_is_is_chain_unavailable():
    """getAnchor answered by an address without code (0 bytes): the worker's error for a chain it
    cannot use, which it counts and backs off on, not a bare ValueError that ends its pass."""
    from anchor.chain import ChainUnavailable

    chain = Web3Chain.in_process()
    elsewhere = Web3Chain(chain.w3, "0x" + "11" * 20, sender=chain.sender)
    with pytest.raises(ChainUnavailable, match="not \\(bytes32, uint64, uint64\\)"):
        elsewhere.read_anchor("evledger/acme", 1)
