"""Crash safety: a producer is killed with SIGKILL at random moments under load.

After every kill the ledger is reopened and held to what the producer's client was told:
every receipt it got is in the log with the same sequence and leaf hash, records are dense
with no duplicates, the tree and indexes agree with the log, and every logged checkpoint is
signed, reproduces from the tree and is consistent with the next one (RFC 9162 §2.1.4).
EVLEDGER_CRASH_TRIALS sets the number of kills (20 here; `make soak` runs more).
"""
from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson

from ingest import events as ev
from ingest.ledger import LedgerService
from ingest.sequencer import SequencerSettings
from merkle.checkpoint import verify_checkpoint
from evledger_verify.proof import verify_consistency

REPO = Path(__file__).resolve().parent.parent
TRIALS = int(os.environ.get("EVLEDGER_CRASH_TRIALS", "20"))
SEED = int(os.environ.get("EVLEDGER_CRASH_SEED", "20261126"))
SETTINGS = SequencerSettings(batch_max_items=300, batch_max_delay=0.03)


def _run_and_kill(data: Path, trial: int, delay: float) -> list[dict]:
    """Start the writer, SIGKILL it `delay` seconds after its first receipt; the receipts."""
    proc = subprocess.Popen([sys.executable, "-m", "tests.crash.writer", str(data), "crash", str(trial), str(trial - 1)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = proc.stdout.readline()
        assert first, f"writer produced no receipt: {proc.stderr.read().decode()[-2000:]}"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        rest = proc.stdout.read()
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    receipts = []
    lines = (first + rest).split(b"\n")
    for i, line in enumerate(lines):
        if not line:
            continue
        try:
            receipts.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            # Only the last line can be cut short by the kill: the client never read it whole.
            assert i >= len(lines) - 2, f"garbled receipt line {i}: {line[:80]!r}"
    return receipts


def _check_ledger(data: Path, acked: dict[str, dict]) -> int:
    with LedgerService(data, settings=SETTINGS) as service:
        ledger = service.ledger("crash")
        count = ledger.record_count
        assert ledger.wait_for_checkpoint(count, timeout=60) is not None, "restarted ledger never sealed its records"
        log_events = list(service.log.read("crash"))
        leaves = [e for e in log_events if e.type == ev.EVIDENCE_RECORDED]
        bodies = [orjson.loads(e.data) for e in leaves]
        assert [b["seq"] for b in bodies] == list(range(count)), "record seqs are not dense"
        ids = [b["record"]["evidence_id"] for b in bodies]
        assert len(set(ids)) == len(ids), "an evidence id was recorded twice"
        tree = ledger.projections.tree
        assert tree.size == count
        for evidence_id, receipt in acked.items():
            seq = receipt["seq"]
            leaf = leaves[seq].data
            assert ids[seq] == evidence_id, f"receipt for {evidence_id} names seq {seq}, which holds {ids[seq]}"
            assert hashlib.new("sm3", b"\x00" + leaf).hexdigest() == receipt["leaf_hash"]
            assert tree.leaf_hash(seq).hex() == receipt["leaf_hash"]
            assert ledger.projections.evidence(evidence_id)[0] == seq
            assert bodies[seq]["received_at"] == receipt["received_at"]
        keys = ledger.verifier_keys()
        sealed = [orjson.loads(e.data) for e in log_events if e.type == ev.CHECKPOINT_SEALED]
        sizes = [c["size"] for c in sealed]
        assert sizes == sorted(set(sizes)), f"checkpoint sizes not strictly increasing: {sizes}"
        assert sizes[-1] == count
        for cp in sealed:
            assert tree.root(cp["size"]).hex() == cp["root"]
            assert verify_checkpoint(cp["note"], keys[cp["key_id"]]).size == cp["size"]
            assert ledger.projections.checkpoint(cp["size"])["root"] == cp["root"]
        for a, b in zip(sealed, sealed[1:]):
            proof = tree.consistency_proof(a["size"], b["size"])
            verify_consistency("sm3", a["size"], b["size"], proof, bytes.fromhex(a["root"]), bytes.fromhex(b["root"]))
        return count


def test_sigkill_under_load_loses_nothing_acknowledged(tmp_path):
    data = tmp_path / "data"
    with LedgerService(data, settings=SETTINGS, start=False) as service:
        service.create_ledger("crash")
    rng = random.Random(SEED)
    acked: dict[str, dict] = {}
    duplicates_checked = 0
    for trial in range(TRIALS):
        receipts = _run_and_kill(data, trial, rng.uniform(0.02, 0.5))
        for r in receipts:
            earlier = acked.get(r["evidence_id"])
            if earlier is not None:  # a retry of an acknowledged record: the original receipt
                assert r["duplicate"] is True
                assert (r["seq"], r["leaf_hash"], r["received_at"]) == \
                       (earlier["seq"], earlier["leaf_hash"], earlier["received_at"])
                duplicates_checked += 1
            else:
                acked[r["evidence_id"]] = r
        _check_ledger(data, acked)
    assert len(acked) > TRIALS * 10, f"too little load to mean anything: {len(acked)} receipts"
    assert duplicates_checked > 0, "no retried record was ever checked"
