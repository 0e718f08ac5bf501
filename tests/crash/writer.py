"""A producer under load, run as a subprocess by tests/test_crash.py and killed with SIGKILL.

It opens the data directory, re-submits the first records of the previous trial (a client
retrying what it may not have heard back about), then submits new records from two threads
until killed. Every receipt is printed as one JSON line, flushed, only after `submit`
returned it: exactly what a client could have been told.
"""
from __future__ import annotations

import hashlib
import sys
import threading

import orjson

from ingest.ledger import LedgerService
from ingest.sequencer import SequencerSettings


def record(evidence_id: str) -> dict:
    """The same evidence id always has the same content, so a retry is a true duplicate."""
    digest = hashlib.sha256(evidence_id.encode()).hexdigest()
    return {"content_hash": hashlib.new("sm3", evidence_id.encode()).hexdigest(),
            "business_type": "account-opening", "occurred_at": "2026-11-26T09:00:00+08:00",
            "evidence_id": evidence_id, "business_id": f"flow-{digest[:6]}",
            "attributes": {"branch": f"b{int(digest[6:8], 16) % 7}"}}


def main() -> None:
    data_dir, ledger_id, trial, previous = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    service = LedgerService(data_dir, settings=SequencerSettings(batch_max_items=300, batch_max_delay=0.03))
    ledger = service.ledger(ledger_id)
    out_lock = threading.Lock()

    def emit(receipts) -> None:
        lines = b"".join(orjson.dumps(r.as_dict()) + b"\n" for r in receipts)
        with out_lock:
            sys.stdout.buffer.write(lines)
            sys.stdout.buffer.flush()

    if previous >= 0:
        emit(ledger.submit([record(f"t{previous}-{w}-{n}") for w in range(2) for n in range(20)]))

    def produce(worker: int) -> None:
        n = 0
        size = 1
        while True:
            batch = [record(f"t{trial}-{worker}-{n + i}") for i in range(size)]
            n += size
            emit(ledger.submit(batch))
            size = size * 3 % 97 + 1  # varied group sizes, 1..97

    threads = [threading.Thread(target=produce, args=(w,), daemon=True) for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
