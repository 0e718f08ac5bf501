"""The sequencer: follows a ledger's log, folds recorded events into its projections in batches
and seals each batch with a signed checkpoint.

A batch is sealed when `batch_max_items` records are waiting or the oldest has waited
`batch_max_delay`, whichever comes first: the leaves go through the numba hasher into the
Merkle log, the index entries are written, the root is signed with the ledger's current SM2
key and `CheckpointSealed` is appended to the log. Sealing happens only when the sequencer has
read the log to its end, so checkpoints in the log are in increasing size order; while it
replays (after a restart, or in `ingest.rebuild`), every logged checkpoint is instead checked
against the tree it rebuilt.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from collections import deque
from typing import Callable, NamedTuple

import orjson
from tenacity import (RetryCallState, Retrying, retry_if_exception_type, retry_if_not_exception_type,
                      sleep_using_event, stop_when_event_set, wait_exponential)

from merkle.checkpoint import Checkpoint

from . import events as ev
from .leaf import format_received_at
from .log import LogBackend, RecordedEvent
from .projections import CheckpointMismatch, Projections

log = logging.getLogger("evledger.sequencer")


@dataclass(frozen=True)
class SequencerSettings:
    batch_max_items: int = 65536
    batch_max_delay: float = 1.0  # seconds

    def __post_init__(self):
        if not isinstance(self.batch_max_items, int) or self.batch_max_items < 1:
            raise ValueError(f"batch_max_items must be a positive integer, got {self.batch_max_items!r}")
        if not self.batch_max_delay > 0:
            raise ValueError(f"batch_max_delay must be > 0 seconds, got {self.batch_max_delay!r}")


class PreparedRecord(NamedTuple):
    """A record the write path just appended, handed over as it already has it, so the
    sequencer need not read and parse it back, nor hash it again: the leaf, its seq, the
    record as encoded in the leaf, the idempotency fingerprint and the leaf hash."""

    leaf: bytes
    seq: int
    record: dict
    fingerprint: bytes | None
    leaf_hash: bytes | None = None


class LogCorruption(RuntimeError):
    """The log breaks a rule that every append keeps (dense record sequence, known events)."""


class Sequencer:
    READ_BATCH = 8192
    # Records the write path may hand over in memory before the sequencer catches up; past
    # this, hand-overs are dropped and it reads the log instead (bounded memory under overload).
    OFFER_LIMIT = 262144

    def __init__(self, ledger_id: str, log_backend: LogBackend, projections: Projections,
                 settings: SequencerSettings = SequencerSettings(), origin: str = "",
                 sign: Callable[[Checkpoint, str], str] | None = None,
                 append: Callable[[list], int] | None = None):
        """`sign(checkpoint, key_id) -> note` and `append(new_events) -> version` are the
        ledger's; without them the sequencer only replays (a rebuild never seals)."""
        self.ledger_id = ledger_id
        self.origin = origin  # the checkpoint's origin line
        self.log = log_backend
        self.projections = projections
        self.settings = settings
        self._sign = sign
        self._append = append
        self.position = projections.position
        self._leaves: list[bytes] = []
        self._leaf_hashes: list[bytes | None] = []  # beside _leaves: the write path's hash, or None
        self._records: list[tuple[int, int, dict, bytes | None]] = []
        # Seq of the next record to read; unknown when resuming mid-log until one is read.
        self.next_seq: int | None = 0 if projections.position == 0 else None
        self.current_key_id: str | None = projections.current_key_id()
        latest = projections.latest_checkpoint()
        # Largest checkpoint size in the log (read, or appended by us); -1 before the first.
        self.sealed_size = latest["size"] if latest else -1
        # Records projected before a restart but never sealed start their wait now.
        self.unsealed_since: float | None = (time.monotonic() if projections.record_count > max(self.sealed_size, 0)
                                             else None)
        self.failure: BaseException | None = None  # set when it stopped for good
        self.errors = 0  # transient failures retried
        self.stalled: str | None = None  # why the last step failed, while it retries; None when working
        self.on_sealed: list[Callable[[dict], None]] = []  # observers of each logged checkpoint
        self.on_cosigned: list[Callable[[dict], None]] = []  # observers of each logged cosignature
        self.on_projected: list[Callable[[int], None]] = []  # called with the new record count
        # Called with (seq of the first, leaves) as they go into the tree: the tiles publisher
        # takes them from here rather than reading them back from the log.
        self.on_leaves: list[Callable[[int, list[bytes]], None]] = []
        self._changed = threading.Condition()
        self._offered: deque[tuple[int, list]] = deque()  # (first log position, items)
        self._offered_count = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- replaying the log ----------------------------------------------------------------

    def apply(self, events: list[RecordedEvent]) -> None:
        """Project events read from the log. If it raises, `position` names the first event
        not (fully) applied, so a retry applies it again: every step here is idempotent."""
        for event in events:
            if event.position != self.position:
                raise LogCorruption(f"ledger {self.ledger_id!r}: expected log position {self.position}, "
                                    f"read {event.position}")
            if event.type == ev.EVIDENCE_RECORDED:
                self._add_record(event)
                continue
            # Other events are projected at once, so the waiting records go first: the stored
            # position must never pass a record that is not in the projections yet.
            self.flush()
            next_position = event.position + 1
            if event.type == ev.CHECKPOINT_SEALED:
                payload = orjson.loads(event.data)
                self.projections.apply_checkpoint(payload, next_position)
                self.sealed_size = max(self.sealed_size, payload["size"])
                if self.sealed_size >= self.record_count:
                    self.unsealed_since = None
                for observer in self.on_sealed:
                    observer(payload)
            elif event.type in (ev.LEDGER_CREATED, ev.SIGNING_KEY_ROTATED):
                payload = orjson.loads(event.data)
                self.projections.apply_signing_key(payload, next_position)
                self.current_key_id = payload["key_id"]
            elif event.type in (ev.ANCHOR_SUBMITTED, ev.ANCHOR_CONFIRMED, ev.ANCHOR_FAILED):
                self.projections.apply_anchor(event.type, orjson.loads(event.data), next_position)
            elif event.type == ev.CHECKPOINT_COSIGNED:
                payload = orjson.loads(event.data)
                self.projections.apply_cosignature(payload, next_position)
                for observer in self.on_cosigned:
                    observer(payload)
            elif event.type not in ev.EVENT_TYPES:
                raise LogCorruption(f"ledger {self.ledger_id!r}: unknown event type {event.type!r} "
                                    f"at position {event.position}")
            self.position = next_position
        with self._changed:
            self._changed.notify_all()

    def catch_up(self, progress: Callable[[int], None] | None = None) -> None:
        """Apply the log to its end and flush, without sealing: what a ledger does on open
        (so its indexes answer for everything logged) and what a rebuild does."""
        while True:
            events = list(self.log.read(self.ledger_id, self.position, self.READ_BATCH))
            if not events:
                break
            self.apply(events)
            if progress is not None:
                progress(len(events))
        self.flush()

    def _add_record(self, event: RecordedEvent) -> None:
        leaf = event.data
        body = orjson.loads(leaf)
        seq = body["seq"]
        if self.next_seq is None:  # resuming mid-log: trust the first record's own seq
            self.next_seq = seq
        if seq != self.next_seq:
            raise LogCorruption(f"ledger {self.ledger_id!r}: record at log position {event.position} has seq "
                                f"{seq}, want {self.next_seq} (records must be dense)")
        self.next_seq += 1
        self._leaves.append(leaf)
        self._leaf_hashes.append(None)
        self._records.append((event.position, seq, body["record"], ev.fingerprint_of(event.metadata)))
        self.position = event.position + 1
        if self.unsealed_since is None:
            self.unsealed_since = time.monotonic()
        if len(self._leaves) >= self.settings.batch_max_items:
            self.flush()

    @property
    def record_count(self) -> int:
        """Records read from the log so far (projected or waiting to be)."""
        return self.next_seq if self.next_seq is not None else self.projections.record_count

    def flush(self) -> None:
        """Write the waiting records into the tree and the index."""
        if not self._records:
            return
        projected = self._records[-1][1] + 1  # records below this seq are now in the index
        hashes = self._leaf_hashes
        known = None if None in hashes else b"".join(hashes)  # hashed by the write path already
        self.projections.apply_records(self._leaves, self._records, self._records[-1][0] + 1, leaf_hashes=known)
        for observer in self.on_leaves:
            observer(self._records[0][1], self._leaves)  # a list no one changes after this
        self._leaves, self._leaf_hashes, self._records = [], [], []
        for observer in self.on_projected:
            observer(projected)

    # -- sealing --------------------------------------------------------------------------

    def due(self, now: float | None = None) -> bool:
        unsealed = self.record_count - max(self.sealed_size, 0)
        if unsealed <= 0 or self.sealed_size >= self.record_count:
            return False
        if unsealed >= self.settings.batch_max_items:
            return True
        now = time.monotonic() if now is None else now
        return self.unsealed_since is not None and now - self.unsealed_since >= self.settings.batch_max_delay

    def seal(self) -> dict:
        """Flush and append a signed checkpoint over every record read so far."""
        self.flush()
        size = self.projections.record_count
        if size != self.record_count or size <= self.sealed_size:
            raise LogCorruption(f"ledger {self.ledger_id!r}: refusing to seal size {size}: {self.record_count} "
                                f"records read, last checkpoint at {self.sealed_size}")
        root = self.projections.tree.root(size)
        note = self._sign(Checkpoint(self.origin, size, root), self.current_key_id)
        payload = {"size": size, "root": root.hex(), "note": note, "key_id": self.current_key_id,
                   "sealed_at": format_received_at(time.time_ns() // 1000)}
        self._append([ev.json_event(ev.CHECKPOINT_SEALED, payload)])
        self.sealed_size = size
        self.unsealed_since = None
        return payload

    # -- the thread ---------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"sequencer-{self.ledger_id}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if not self._thread.is_alive():
                self._thread = None

    def offer(self, first_position: int, items: list) -> None:
        """The write path's hand-over of what it appended at `first_position`: for each event
        in order a PreparedRecord or the NewEvent. The log stays the source of truth: anything
        not handed over (or dropped here) is read from it."""
        with self._changed:
            if self._offered_count + len(items) <= self.OFFER_LIMIT:
                self._offered.append((first_position, items))
                self._offered_count += len(items)
            self._changed.notify_all()

    def _take_offered(self) -> list | None:
        """Handed-over items from exactly `self.position` on, or None if there is a gap."""
        with self._changed:
            while self._offered:
                first, items = self._offered[0]
                if first + len(items) <= self.position:  # already read from the log
                    self._offered.popleft()
                    self._offered_count -= len(items)
                    continue
                if first > self.position:
                    return None
                self._offered.popleft()
                self._offered_count -= len(items)
                return [(first + i, item) for i, item in enumerate(items)][self.position - first:]
        return None

    def apply_prepared(self, items: list[tuple[int, object]]) -> None:
        records = self._records
        for position, item in items:
            if type(item) is PreparedRecord:
                if position != self.position:
                    raise LogCorruption(f"ledger {self.ledger_id!r}: expected log position {self.position}, "
                                        f"got {position}")
                if self.next_seq is None:
                    self.next_seq = item.seq
                if item.seq != self.next_seq:
                    raise LogCorruption(f"ledger {self.ledger_id!r}: record at log position {position} has seq "
                                        f"{item.seq}, want {self.next_seq}")
                self.position = position + 1
                self.next_seq += 1
                self._leaves.append(item.leaf)
                self._leaf_hashes.append(item.leaf_hash)
                records.append((position, item.seq, item.record, item.fingerprint))
                if self.unsealed_since is None:
                    self.unsealed_since = time.monotonic()
                if len(records) >= self.settings.batch_max_items:
                    self.flush()
                    records = self._records
            else:
                self.apply([RecordedEvent(self.ledger_id, position, item.type, item.data, item.metadata)])
                records = self._records
        with self._changed:
            self._changed.notify_all()

    def _run(self) -> None:
        poll = min(0.05, self.settings.batch_max_delay / 4)
        # Any failure but a disagreement between log and projections is a log or disk hiccup
        # that leaves the state consistent: try again, 0.1 s doubling up to 5 s, and stop
        # waiting as soon as the sequencer is asked to stop.
        retrying = Retrying(
            retry=retry_if_exception_type(Exception) & retry_if_not_exception_type((LogCorruption, CheckpointMismatch)),
            wait=wait_exponential(multiplier=0.1, max=5.0),
            stop=stop_when_event_set(self._stop),
            sleep=sleep_using_event(self._stop),
            before_sleep=self._step_failed,
            retry_error_callback=self._step_failed,  # the failure that met a stop counts too
        )
        while not self._stop.is_set():
            try:
                retrying(self._steps, poll)
            except (LogCorruption, CheckpointMismatch) as exc:
                # The log and the projections disagree: sealing on would sign a wrong root.
                self.failure = exc
                log.critical("ledger %r: sequencer stopped: %s (run `evledger rebuild %s`)",
                             self.ledger_id, exc, self.ledger_id)
                with self._changed:
                    self._changed.notify_all()
                return

    def _steps(self, poll: float) -> None:
        """Step until stopped. Returns after the first step that works following a failure,
        so that the next failure starts its backoff afresh; the retry controller stays out of
        the loop that runs once per batch."""
        while not self._stop.is_set():
            # A failed write (a full disk) leaves a database refusing writes until it is
            # reopened: that is a pause, not corruption, so reopen and go on once there is room.
            if self.stalled is not None and self.projections.recover():
                self._resync()
            self._step(poll)
            if self.stalled is not None:
                log.warning("ledger %r: sequencer working again after %d failed attempt(s)", self.ledger_id,
                            self.errors)
                self.stalled = None
                return

    def _step_failed(self, retry_state: RetryCallState) -> None:
        exc = retry_state.outcome.exception()
        self.errors += 1
        self.stalled = str(exc) or type(exc).__name__
        log.error("ledger %r: sequencer step failed, retrying in %.1f s: %s", self.ledger_id,
                  retry_state.upcoming_sleep, exc)

    def _resync(self) -> None:
        """After the projections were reopened: carry on from what they hold, as a restart
        would. Records read but not yet written are read from the log again."""
        self.position = self.projections.position
        self._leaves, self._leaf_hashes, self._records = [], [], []
        self.next_seq = 0 if self.position == 0 else None

    def _step(self, poll: float) -> None:
        offered = self._take_offered()
        if offered:
            self.apply_prepared(offered)
            read = len(offered)
        else:
            events = list(self.log.read(self.ledger_id, self.position, self.READ_BATCH))
            if events:
                self.apply(events)
            read = len(events)
        caught_up = read < self.READ_BATCH and self.position >= self.log.version(self.ledger_id)
        if caught_up and self.due():
            self.seal()
        elif caught_up and not read:
            if self._records:
                self.flush()  # idle: make what was read visible to readers
            with self._changed:
                if not self._offered:
                    self._changed.wait(poll)

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until `predicate()` holds (checked after every applied read) or time runs out;
        raises the sequencer's failure if it stopped."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                if self.failure is not None:
                    raise self.failure
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.1))
        return True
