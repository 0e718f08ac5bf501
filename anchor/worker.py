"""The anchor worker: puts each ledger's latest checkpoint on chain and follows it to
confirmation, recording every step as an event in the ledger's own log.

Policy: anchor the latest checkpoint when it is newer than the last anchor and at least
`min_interval` has passed since the last submission, or at once when asked (`anchor_now`).
Lifecycle events: AnchorSubmitted (size, root, tx hash, nonce) -> AnchorConfirmed (block
number, hash and time, once the block is `confirmations` deep and the contract returns the
root) or AnchorFailed (reason). State lives in the log: after a restart the worker picks up
its submitted transaction from the ledger's projections, and before sending a new one it asks
the contract what is already anchored, so an anchor is neither lost nor made twice.

Faults: an unreachable or slow endpoint is retried with backoff while ingest goes on; a
dropped transaction or a reorganised-away block shows up as a missing receipt or a changed
block hash and is anchored again; a revert (or running out of gas) is an AnchorFailed with the
reason and an ALERT line in the log.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

from ingest import events as ev
from ingest.leaf import format_received_at
from ingest.ledger import LedgerError

from .chain import AnchorRejected, AnchorTx, ChainBackend, ChainError, TxStatus

log = logging.getLogger("evledger.anchor")


def _now() -> str:
    return format_received_at(time.time_ns() // 1000)


@dataclass
class AnchorSettings:
    min_interval: float = 10.0  # seconds between submissions per ledger
    confirmations: int = 1  # blocks deep, counting the anchoring block (PBFT chains: 1)
    poll_interval: float = 1.0
    max_backoff: float = 60.0

    def __post_init__(self):
        if self.min_interval < 0 or self.poll_interval <= 0 or self.max_backoff <= 0:
            raise ValueError("anchor intervals must be positive")
        if not isinstance(self.confirmations, int) or self.confirmations < 1:
            raise ValueError(f"confirmations must be an integer >= 1, got {self.confirmations!r}")


@dataclass
class _LedgerState:
    pending: dict | None = None  # the AnchorSubmitted payload being followed
    confirmed: dict | None = None  # the last AnchorConfirmed payload (the projection may lag it)
    mined_at: tuple[int, str] | None = None  # (block number, hash) where it was last seen mined
    last_submit: float = float("-inf")
    next_try: float = 0.0
    backoff: float = 0.0
    forced: bool = False


# Seconds from a checkpoint being sealed to its anchor being confirmed: a second or two on a
# dev chain, up to minutes with public-chain block times and several confirmations.
LATENCY_BUCKETS = (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600)


class AnchorMetrics:
    """The worker's counters and confirmation-latency histogram, as Prometheus instruments in
    the registry it is given (the API's, so /metrics shows them as they change) or its own.
    Memory stays bounded in a long-running server; the integer properties read the counters
    back for the CLI, the tests and the bench."""

    KEEP_LATENCIES = 10_000  # per-anchor latencies kept for the bench: bounded, the histogram has them all

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.submitted_total = Counter("evledger_anchors_submitted", "Anchor transactions sent", registry=r)
        self.confirmed_total = Counter("evledger_anchors_confirmed", "Anchors confirmed on chain", registry=r)
        self.failed_total = Counter("evledger_anchors_failed", "AnchorFailed events since start", registry=r)
        self.chain_errors_total = Counter("evledger_anchor_chain_errors", "Chain endpoint errors since start",
                                          registry=r)
        self.reorgs_total = Counter("evledger_anchor_reorgs", "Anchors whose block left the chain", registry=r)
        self.confirm_seconds = Histogram("evledger_anchor_confirm_latency_seconds",
                                         "Checkpoint sealed to its anchor confirmed", buckets=LATENCY_BUCKETS,
                                         registry=r)
        self._latencies: deque[float] = deque(maxlen=self.KEEP_LATENCIES)
        self.last_error = ""

    @staticmethod
    def _count(counter: Counter) -> int:
        return int(next(s.value for s in counter.collect()[0].samples if s.name.endswith("_total")))

    @property
    def submitted(self) -> int:
        return self._count(self.submitted_total)

    @property
    def confirmed(self) -> int:
        return self._count(self.confirmed_total)

    @property
    def failed(self) -> int:
        return self._count(self.failed_total)

    @property
    def chain_errors(self) -> int:
        return self._count(self.chain_errors_total)

    @property
    def reorgs(self) -> int:
        return self._count(self.reorgs_total)

    @property
    def confirm_latency(self) -> list[float]:
        """The latest confirmations' latencies in seconds, oldest first (at most KEEP_LATENCIES)."""
        return list(self._latencies)

    def observe_confirmed(self, seconds: float) -> None:
        self.confirm_seconds.observe(seconds)
        self._latencies.append(seconds)


class AnchorWorker:
    LOG_RETRY = 5.0  # seconds between tries while the log takes no writes

    def __init__(self, service, chain: ChainBackend, settings: AnchorSettings = AnchorSettings(),
                 registry: CollectorRegistry | None = None):
        self.service = service
        self.chain = chain
        self.settings = settings
        self.metrics = AnchorMetrics(registry)
        self._states: dict[str, _LedgerState] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sealed_at: dict[tuple[str, int], float] = {}  # (ledger, size) -> monotonic time sealed
        log.info("anchoring to %s, contract %s", chain.description, chain.contract_address)

    # -- state ----------------------------------------------------------------------------

    def _state(self, ledger) -> _LedgerState:
        state = self._states.get(ledger.id)
        if state is None:
            state = _LedgerState()
            latest = ledger.latest_anchor()
            if latest is not None and latest["status"] == "submitted":
                state.pending = latest
            state.confirmed = ledger.latest_anchor(status="confirmed")
            self._states[ledger.id] = state
            ledger.on_sealed(
                lambda payload, lid=ledger.id: self._sealed_at.setdefault((lid, payload["size"]), time.monotonic()))
        return state

    def _log_event(self, ledger, event_type: str, payload: dict) -> None:
        ledger.append_events([ev.json_event(event_type, payload)])

    def _base(self, size: int, root: str) -> dict:
        return {"size": size, "root": root, "chain_id": self.chain.chain_id, "contract": self.chain.contract_address}

    # -- the policy -----------------------------------------------------------------------

    def anchor_now(self, ledger_id: str) -> None:
        """Anchor this ledger's latest checkpoint at the next step, whatever the interval."""
        ledger = self.service.ledger(ledger_id)
        with self._lock:
            state = self._state(ledger)
            state.forced = True
            state.next_try = 0.0
        self._wake.set()

    def step(self) -> None:
        """One pass over every ledger: follow pending anchors, submit new ones when due."""
        for ledger_id in self.service.ledgers():
            ledger = self.service.ledger(ledger_id)
            with self._lock:
                state = self._state(ledger)
                if time.monotonic() < state.next_try:
                    continue
                try:
                    if state.pending is not None:
                        self._follow(ledger, state)
                    # A failure just now set its own backoff (a drop or reorg sets none): honour it.
                    if state.pending is None and time.monotonic() >= state.next_try:
                        self._maybe_submit(ledger, state)
                except ChainError as exc:  # the endpoint is down or slow: ingest goes on, retry later
                    self.metrics.chain_errors_total.inc()
                    self.metrics.last_error = str(exc)
                    state.backoff = min(self.settings.max_backoff, max(1.0, state.backoff * 2))
                    state.next_try = time.monotonic() + state.backoff
                    log.warning("ledger %r: chain unavailable (%s); retrying in %.0f s", ledger_id, exc, state.backoff)
                except LedgerError as exc:
                    if exc.code != "log_unavailable":
                        raise
                    # The log takes no writes for now (a full disk): the anchor events wait for it.
                    self.metrics.last_error = str(exc)
                    state.next_try = time.monotonic() + self.LOG_RETRY
                    log.warning("ledger %r: cannot log anchor events (%s); retrying in %.0f s", ledger_id, exc,
                                self.LOG_RETRY)

    def _maybe_submit(self, ledger, state: _LedgerState) -> None:
        checkpoint = ledger.latest_checkpoint()
        if checkpoint is None:
            return
        confirmed = state.confirmed
        if confirmed is not None and confirmed["size"] >= checkpoint["size"]:
            state.forced = False
            return
        if not state.forced and time.monotonic() - state.last_submit < self.settings.min_interval:
            return
        size, root = checkpoint["size"], checkpoint["root"]
        on_chain = self.chain.latest_anchor(ledger.origin)
        if on_chain is not None and on_chain.size >= size:
            self._adopt(ledger, state, on_chain)
            return
        if on_chain is not None and confirmed is not None and on_chain.size > confirmed["size"]:
            self._adopt(ledger, state, on_chain)  # ours from before a crash: confirm it, then go on
            return
        payload = self._base(size, root)

        def logged(tx: AnchorTx) -> None:
            # Logged before the transaction leaves when the key is local (its hash is known once
            # signed), so a crash right after sending still leaves its trace to follow.
            payload.update({"tx_hash": tx.tx_hash, "nonce": tx.nonce, "sender": tx.sender, "submitted_at": _now()})
            self._log_event(ledger, ev.ANCHOR_SUBMITTED, payload)

        try:
            self.chain.submit_anchor(ledger.origin, size, bytes.fromhex(root), before_send=logged)
        except AnchorRejected as exc:
            self._failed(ledger, state, size, root, None, exc.reason)
            return
        except ChainError:
            if "tx_hash" in payload:  # logged, then the send failed: follow it (it will read as dropped)
                state.pending = payload
                state.mined_at = None
            raise
        state.pending = payload
        state.mined_at = None
        state.last_submit = time.monotonic()
        state.forced = False
        self.metrics.submitted_total.inc()
        log.info("ledger %r: anchoring size %d in tx %s", ledger.id, size, payload["tx_hash"])

    def _adopt(self, ledger, state: _LedgerState, on_chain) -> None:
        """The contract already holds an anchor we have no record of sending (a crash came
        between sending and logging): if it is our checkpoint, follow its transaction."""
        ours = ledger.checkpoint(on_chain.size)
        if ours is None or bytes.fromhex(ours["root"]) != on_chain.root:
            reason = (f"the contract holds size {on_chain.size} with root {on_chain.root.hex()}, which is not this "
                      f"ledger's checkpoint: another writer uses this ledger's key on chain")
            self._failed(ledger, state, on_chain.size, on_chain.root.hex(), None, reason)
            state.next_try = time.monotonic() + self.settings.max_backoff
            return
        tx_hash = self.chain.find_anchor_tx(ledger.origin, on_chain.size)
        payload = self._base(on_chain.size, ours["root"])
        payload.update({"tx_hash": tx_hash, "nonce": None, "sender": None, "submitted_at": _now(), "adopted": True})
        self._log_event(ledger, ev.ANCHOR_SUBMITTED, payload)
        state.pending = payload
        state.mined_at = None
        state.forced = False
        log.info("ledger %r: found size %d already anchored on chain (tx %s); following it", ledger.id,
                 on_chain.size, tx_hash)

    def _follow(self, ledger, state: _LedgerState) -> None:
        pending = state.pending
        size, root, tx_hash = pending["size"], pending["root"], pending["tx_hash"]
        if tx_hash:
            status = self.chain.tx_status(tx_hash)
        else:  # adopted, and no Anchored event found: the contract's own record says where
            on_chain = self.chain.read_anchor(ledger.origin, size)
            block = self.chain.block(on_chain.block_number) if on_chain is not None else None
            status = TxStatus("mined", on_chain.block_number, block[0]) if block else TxStatus("missing")
        if status.state == "missing":
            if state.mined_at is not None:
                self.metrics.reorgs_total.inc()
                reason = f"reorg: block {state.mined_at[0]} ({state.mined_at[1]}) holding the anchor left the chain"
            else:
                reason = "transaction dropped: the node no longer knows it"
            self._failed(ledger, state, size, root, tx_hash, reason)
            state.forced = True  # anchor again at once
            state.next_try = 0.0
            return
        if status.state == "pending":
            return
        if status.state == "reverted":
            self._failed(ledger, state, size, root, tx_hash, status.reason or "reverted")
            return
        # Mined. A different block hash at the same height since last time is a reorg that
        # re-included the transaction: fine, its new block is the one to bury.
        state.mined_at = (status.block_number, status.block_hash)
        depth = self.chain.head() - status.block_number + 1
        if depth < self.settings.confirmations:
            return
        canonical = self.chain.block(status.block_number)
        if canonical is None or canonical[0] != status.block_hash:
            return  # a reorg is under way: look again next step
        on_chain = self.chain.read_anchor(ledger.origin, size)
        if on_chain is None or on_chain.root.hex() != root:
            self._failed(ledger, state, size, root, tx_hash, "mined, but the contract does not return this root")
            return
        payload = self._base(size, root)
        payload.update({"tx_hash": tx_hash, "block_number": status.block_number, "block_hash": status.block_hash,
                        "block_time": canonical[1], "confirmations": depth, "confirmed_at": _now()})
        self._log_event(ledger, ev.ANCHOR_CONFIRMED, payload)
        state.confirmed = payload
        state.backoff = 0.0  # only a confirmation ends a run of failures
        sealed = self._sealed_at.pop((ledger.id, size), None)
        if sealed is not None:
            self.metrics.observe_confirmed(time.monotonic() - sealed)
        # Checkpoints sealed between anchors are covered by this one and never anchored
        # themselves: forget them, or the map grows by one a second per ledger.
        # list() copies the keys in one step: the sequencer's thread adds to the map meanwhile.
        for key in [k for k in list(self._sealed_at) if k[0] == ledger.id and k[1] < size]:
            self._sealed_at.pop(key, None)
        self.metrics.confirmed_total.inc()
        state.pending = None
        state.mined_at = None
        log.info("ledger %r: size %d anchored in block %d (%d deep)", ledger.id, size, status.block_number, depth)

    def _failed(self, ledger, state: _LedgerState, size: int, root: str, tx_hash: str | None, reason: str) -> None:
        payload = self._base(size, root)
        payload.update({"tx_hash": tx_hash, "reason": reason, "failed_at": _now()})
        self._log_event(ledger, ev.ANCHOR_FAILED, payload)
        self.metrics.failed_total.inc()
        self.metrics.last_error = reason
        state.pending = None
        state.mined_at = None
        state.backoff = min(self.settings.max_backoff, max(1.0, state.backoff * 2))
        state.next_try = time.monotonic() + state.backoff
        log.error("ALERT ledger %r: anchoring size %d failed: %s", ledger.id, size, reason)

    # -- the thread -----------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="anchor-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception as exc:  # a bug or a ledger error: keep the worker alive, say so loudly
                self.metrics.last_error = str(exc)
                log.exception("anchor worker step failed: %s", exc)
            self._wake.wait(self.settings.poll_interval)
            self._wake.clear()

    def wait_confirmed(self, ledger_id: str, size: int, timeout: float = 60.0) -> dict | None:
        """Step until an anchor covering `size` is confirmed (for the CLI and tests)."""
        ledger = self.service.ledger(ledger_id)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                confirmed = self._state(ledger).confirmed
            if confirmed is not None and confirmed["size"] >= size:
                return confirmed
            if self._thread is None:
                self.step()
            time.sleep(min(self.settings.poll_interval, 0.05))
        return None
