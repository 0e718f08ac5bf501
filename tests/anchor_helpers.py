"""Helpers shared by the anchoring tests (in-process and anvil)."""
import time

import orjson

from ingest import events as ev
from ingest.ledger import Receipt
from tests.sample_records import rec

ANCHOR_TYPES = (ev.ANCHOR_SUBMITTED, ev.ANCHOR_CONFIRMED, ev.ANCHOR_FAILED)


def ingest(ledger, start: int, count: int) -> dict:
    """Record `count` records and wait for the checkpoint covering them; that checkpoint."""
    results = ledger.submit([rec(i) for i in range(start, start + count)])
    assert all(isinstance(r, Receipt) for r in results), results
    target = ledger.record_count
    assert ledger.wait_for_checkpoint(target, timeout=10) is not None
    latest = ledger.projections.latest_checkpoint()
    assert latest["size"] == target
    return latest


def anchor_events(ledger) -> list[tuple[str, dict]]:
    """The anchor lifecycle events in the ledger's log, in log order."""
    return [(e.type, orjson.loads(e.data)) for e in ledger.log.read(ledger.id, 0) if e.type in ANCHOR_TYPES]


def event_types(ledger) -> list[str]:
    return [t for t, _ in anchor_events(ledger)]


def wait_until(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")
