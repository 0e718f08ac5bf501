"""Ledgers end to end over the embedded RocksDB log: receipts, validation per item, idempotency,
concurrent producers, signed checkpoints and their proofs, several ledgers, SHA-256 ledgers, key
rotation, sealed fields, the indexes, errors and restarts."""
import hashlib
import os
import re
import stat
import threading
import time

import orjson
import pytest

from ingest.leaf import decode_leaf, encode_leaf
from ingest.ledger import LedgerError, LedgerService, Receipt
from ingest.records import RecordError
from ingest.sequencer import SequencerSettings
from merkle import ProofError, verify_consistency, verify_inclusion
from merkle.checkpoint import CheckpointError, parse_note, verify_checkpoint
from evledger_verify.sm3 import sm3_reference

FAST = SequencerSettings(batch_max_items=1000, batch_max_delay=0.05)
SLOW = SequencerSettings(batch_max_items=100000, batch_max_delay=30.0)  # never seals by itself in a test
RECEIVED_AT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")


from tests.sample_records import chash
from tests.sample_records import rec as _rec


def rec(i, **fields) -> dict:
    return _rec(i, **{"occurred_at": "2024-05-01T09:30:00+08:00", **fields})


def sm3_leaf_hash(leaf: bytes) -> str:
    return sm3_reference(b"\x00" + leaf).hex()


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def svc(tmp_path):
    service = LedgerService(tmp_path, settings=FAST)
    yield service
    service.close()


def reopen(service, settings=FAST, start=True):
    service.close()
    return LedgerService(service.data_dir, settings=settings, start=start)


def checkpoint_for(ledger, size, timeout=10):
    cp = ledger.wait_for_checkpoint(size, timeout=timeout)
    assert cp is not None, f"no checkpoint covering {size} records within {timeout} s"
    return cp


# ------------------------------------------------------------------------------ receipts

def test_receipts_seqs_leaf_hashes_and_business_ids(svc):
    L = svc.create_ledger("acme")
    records = [rec(0), rec(1, business_id="acct/778812"), rec(2, evidence_id="ev-2"), rec(3), rec(4)]
    receipts = L.submit(records)
    assert all(isinstance(r, Receipt) for r in receipts)
    assert [r.seq for r in receipts] == [0, 1, 2, 3, 4]
    assert {r.ledger for r in receipts} == {"acme"}
    assert [r.duplicate for r in receipts] == [False] * 5
    assert [r.evidence_id for r in receipts] == [None, None, "ev-2", None, None]
    assert receipts[1].business_id == "acct/778812"
    generated = [r.business_id for i, r in enumerate(receipts) if i != 1]
    assert len(set(generated)) == 4 and all(b and b != "acct/778812" for b in generated)
    assert all(RECEIVED_AT.fullmatch(r.received_at) for r in receipts)
    more = L.submit([rec(5), rec(6)])
    assert [r.seq for r in more] == [5, 6]
    assert L.record_count == 7

    checkpoint_for(L, 7)
    for receipt, record in zip(receipts + more, records + [rec(5), rec(6)]):
        leaf = L.leaf(receipt.seq)
        assert receipt.leaf_hash == sm3_leaf_hash(leaf) == hashlib.new("sm3", b"\x00" + leaf).hexdigest()
        assert L.projections.tree.leaf_hash(receipt.seq).hex() == receipt.leaf_hash
        stored = {**record, "business_id": receipt.business_id}
        # the leaf is exactly the canonical version-1 encoding of the recorded event
        assert leaf == encode_leaf("acme", receipt.seq, receipt.received_at, stored)
        event = L.record(receipt.seq)
        assert event == decode_leaf(leaf)
        assert event["record"] == stored and event["seq"] == receipt.seq and event["ledger"] == "acme"


def test_a_generated_business_id_can_link_later_records(svc):
    L = svc.create_ledger("acme")
    first = L.submit_one(rec(0))
    second = L.submit_one(rec(1, business_id=first.business_id))
    assert second.business_id == first.business_id
    checkpoint_for(L, 2)
    assert L.projections.seqs_by_business_id(first.business_id) == [0, 1]


def test_a_bad_record_does_not_hold_back_the_good_ones(svc):
    L = svc.create_ledger("acme")
    batch = [rec(0), {"business_type": "x", "occurred_at": "2024-05-01T09:30:00Z"}, rec(1),
             rec(2, colour="red"), "not an object", rec(3, occurred_at="yesterday"), rec(4)]
    results = L.submit(batch)
    assert [type(r).__name__ for r in results] == ["Receipt", "RecordError", "Receipt", "RecordError",
                                                   "RecordError", "RecordError", "Receipt"]
    assert [(e.field, e.rule) for e in results if isinstance(e, RecordError)] == [
        ("content_hash", "required"), ("colour", "unknown_field"), ("record", "type"), ("occurred_at", "format")]
    assert [r.seq for r in results if isinstance(r, Receipt)] == [0, 1, 2]
    assert L.record_count == 3
    with pytest.raises(RecordError):
        L.submit_one(rec(9, content_hash="xyz"))
    assert L.submit([]) == []
    assert L.record_count == 3
    checkpoint_for(L, 3)
    assert [L.record(s)["record"]["content_hash"] for s in range(3)] == [chash(0), chash(1), chash(4)]


# ------------------------------------------------------------------------------ idempotency

def _same_receipt(dup: Receipt, original: Receipt):
    assert dup.duplicate is True and original.duplicate is False
    assert (dup.ledger, dup.seq, dup.leaf_hash, dup.received_at, dup.business_id, dup.evidence_id) == (
        original.ledger, original.seq, original.leaf_hash, original.received_at, original.business_id,
        original.evidence_id)


def test_repeat_within_one_batch(svc):
    L = svc.create_ledger("acme")
    results = L.submit([rec(0, evidence_id="ev-1"), rec(1), rec(0, evidence_id="ev-1"), rec(0, evidence_id="ev-1")])
    assert [r.seq for r in results] == [0, 1, 0, 0]
    _same_receipt(results[2], results[0])
    _same_receipt(results[3], results[0])
    assert L.record_count == 2


def test_repeat_across_concurrent_submissions_in_one_group(svc):
    L = svc.create_ledger("acme")
    barrier = threading.Barrier(6)
    out = [None] * 6

    def producer(i):
        barrier.wait()
        out[i] = L.submit([rec(100 + i), rec(0, evidence_id="ev-shared")])

    threads = [threading.Thread(target=producer, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    shared = [r[1] for r in out]
    originals = [r for r in shared if not r.duplicate]
    assert len(originals) == 1
    for r in shared:
        if r.duplicate:
            _same_receipt(r, originals[0])
    assert L.record_count == 7


def test_repeat_across_batches_before_the_sequencer_projected_it(tmp_path):
    service = LedgerService(tmp_path, settings=FAST, start=False)  # no sequencer: nothing gets projected
    try:
        L = service.create_ledger("acme")
        original = L.submit_one(rec(0, evidence_id="ev-1"))
        assert L.projections.evidence("ev-1") is None  # only the write path's memory knows it
        again = L.submit([rec(1), rec(0, evidence_id="ev-1")])
        assert again[0].seq == 1
        _same_receipt(again[1], original)
        conflict = L.submit([rec(2, evidence_id="ev-1")])[0]
        assert isinstance(conflict, RecordError)
        assert (conflict.field, conflict.rule) == ("evidence_id", "conflict")
        assert L.record_count == 2
    finally:
        service.close()


def test_repeat_after_projection_and_after_restart(svc):
    L = svc.create_ledger("acme")
    original = L.submit([rec(0, evidence_id="ev-1", sealed={"name": "张三"})])[0]
    L.submit([rec(1)])
    checkpoint_for(L, 2)
    assert wait_until(lambda: L.projections.evidence("ev-1") is not None)
    # give the sequencer time to forget the id, so the index answers
    assert wait_until(lambda: "ev-1" not in getattr(L, "_recent", {}))
    dup = L.submit_one(rec(0, evidence_id="ev-1", sealed={"name": "张三"}))
    _same_receipt(dup, original)
    bad = L.submit([rec(0, evidence_id="ev-1", sealed={"name": "李四"})])[0]
    assert isinstance(bad, RecordError) and (bad.field, bad.rule) == ("evidence_id", "conflict")
    assert "seq 0" in bad.message
    assert L.record_count == 2

    svc2 = reopen(svc)
    try:
        L2 = svc2.ledger("acme")
        assert L2.record_count == 2
        dup2 = L2.submit_one(rec(0, evidence_id="ev-1", sealed={"name": "张三"}))
        _same_receipt(dup2, original)
        bad2 = L2.submit([rec(5, evidence_id="ev-1")])[0]
        assert isinstance(bad2, RecordError) and (bad2.field, bad2.rule) == ("evidence_id", "conflict")
        assert L2.record_count == 2
        assert L2.submit_one(rec(3)).seq == 2
    finally:
        svc2.close()


def test_conflicting_content_is_refused_and_nothing_is_recorded(svc):
    L = svc.create_ledger("acme")
    results = L.submit([rec(0, evidence_id="ev-1"), rec(1, evidence_id="ev-1"),
                        rec(0, evidence_id="ev-1", business_id="another")])
    assert isinstance(results[0], Receipt)
    for err in results[1:]:
        assert isinstance(err, RecordError)
        assert (err.field, err.rule) == ("evidence_id", "conflict")
        assert err.as_dict()["code"] == "invalid_record"
    later = L.submit([rec(0, evidence_id="ev-1", attributes={"x": 1})])[0]
    assert isinstance(later, RecordError) and later.rule == "conflict"
    assert L.record_count == 1
    checkpoint_for(L, 1)
    assert L.projections.seqs_by_content_hash(chash(1)) == []
    assert L.projections.evidence("ev-1")[0] == 0
    assert sum(e.type == "EvidenceRecorded" for e in L.log.read("acme")) == 1


def test_repeat_after_restart_before_projection(tmp_path):
    # The first session writes but never projects: the state a crash right after the log's fsync leaves.
    service = LedgerService(tmp_path, settings=SLOW, start=False)
    L = service.create_ledger("acme")
    original = L.submit_one(rec(0, evidence_id="ev-1"))
    service.close()
    service = LedgerService(tmp_path, settings=SLOW, start=False)
    try:
        L = service.ledger("acme")
        assert L.record_count == 1
        again = L.submit_one(rec(0, evidence_id="ev-1"))
        assert again.seq == original.seq and again.duplicate
        assert L.record_count == 1
    finally:
        service.close()


# ------------------------------------------------------------------------------ concurrency

def test_many_threads_submitting_concurrently(svc):
    L = svc.create_ledger("acme")
    threads_n, batches, per_batch = 8, 50, 4
    receipts: list[list] = [[] for _ in range(threads_n)]
    errors = []
    barrier = threading.Barrier(threads_n)

    def producer(t):
        try:
            barrier.wait()
            for b in range(batches):
                records = [rec(f"{t}-{b}-{i}", attributes={"t": t, "b": b, "i": i}) for i in range(per_batch)]
                for record, result in zip(records, L.submit(records)):
                    receipts[t].append((record, result))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=producer, args=(t,)) for t in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    all_results = [pair for per_thread in receipts for pair in per_thread]
    total = threads_n * batches * per_batch
    assert len(all_results) == total
    assert all(isinstance(r, Receipt) for _, r in all_results)
    assert sorted(r.seq for _, r in all_results) == list(range(total))
    assert L.record_count == total
    # within one producer, later submissions get later seqs
    for per_thread in receipts:
        seqs = [r.seq for _, r in per_thread]
        assert seqs == sorted(seqs)
    checkpoint_for(L, total, timeout=20)
    for record, receipt in all_results:
        leaf = L.leaf(receipt.seq)
        assert receipt.leaf_hash == hashlib.new("sm3", b"\x00" + leaf).hexdigest()
        event = decode_leaf(leaf)
        assert event["seq"] == receipt.seq and event["received_at"] == receipt.received_at
        assert event["record"] == {**record, "business_id": receipt.business_id}
    assert len({r.business_id for _, r in all_results}) == total
    assert sum(e.type == "EvidenceRecorded" for e in L.log.read("acme")) == total


# ------------------------------------------------------------------------------ checkpoints

def test_checkpoints_sign_roots_and_prove_inclusion_and_consistency(svc):
    L = svc.create_ledger("acme")
    receipts = L.submit([rec(i) for i in range(5)])
    cp1 = checkpoint_for(L, 5)
    vkeys = L.verifier_keys()
    assert vkeys == {L.created["key_id"]: L.created["verifier_key"]}
    receipts += L.submit([rec(i) for i in range(5, 13)])
    cp2 = checkpoint_for(L, 13)
    assert cp1["size"] == 5 and cp2["size"] == 13  # one batch, one checkpoint, waited for in turn
    assert [c["size"] for c in L.projections.checkpoints()] == [5, 13]
    assert L.projections.checkpoint(5) == cp1 and L.projections.latest_checkpoint() == cp2
    assert L.projections.checkpoints(after_size=5) == [cp2]

    tree = L.projections.tree
    for cp in (cp1, cp2):
        assert set(cp) >= {"size", "root", "note", "key_id", "sealed_at"}
        assert cp["key_id"] == L.created["key_id"]
        assert RECEIVED_AT.fullmatch(cp["sealed_at"])
        signed = verify_checkpoint(cp["note"], vkeys[cp["key_id"]])
        assert signed.origin == L.origin == "evledger/acme"
        assert signed.size == cp["size"]
        assert signed.root == bytes.fromhex(cp["root"]) == tree.root(cp["size"])
        _, sigs = parse_note(cp["note"])
        assert sigs[0][1].hex() == cp["key_id"]

    for cp in (cp1, cp2):
        size, root = cp["size"], bytes.fromhex(cp["root"])
        for receipt in receipts[:size]:
            proof = tree.inclusion_proof(receipt.seq, size)
            verify_inclusion("sm3", receipt.seq, size, bytes.fromhex(receipt.leaf_hash), proof, root)
    # a proof for the wrong leaf or a tampered root fails
    proof = tree.inclusion_proof(3, 13)
    with pytest.raises(ProofError):
        verify_inclusion("sm3", 3, 13, bytes.fromhex(receipts[4].leaf_hash), proof, bytes.fromhex(cp2["root"]))
    with pytest.raises(ProofError):
        verify_inclusion("sm3", 3, 13, bytes.fromhex(receipts[3].leaf_hash), proof, bytes.fromhex(cp1["root"]))

    consistency = tree.consistency_proof(5, 13)
    verify_consistency("sm3", 5, 13, consistency, bytes.fromhex(cp1["root"]), bytes.fromhex(cp2["root"]))
    with pytest.raises(ProofError):
        verify_consistency("sm3", 5, 13, consistency, tree.root(4), bytes.fromhex(cp2["root"]))

    # a note whose body was altered no longer verifies
    forged = cp2["note"].replace("\n13\n", "\n14\n", 1)
    with pytest.raises(CheckpointError):
        verify_checkpoint(forged, vkeys[cp2["key_id"]])


def test_wait_for_checkpoint_returns_the_first_covering_checkpoint(svc):
    L = svc.create_ledger("acme")
    L.submit([rec(i) for i in range(3)])
    checkpoint_for(L, 3)
    L.submit([rec(i) for i in range(3, 7)])
    checkpoint_for(L, 7)
    assert L.wait_for_checkpoint(2, timeout=1)["size"] == 3
    assert L.wait_for_checkpoint(3, timeout=1)["size"] == 3
    assert L.wait_for_checkpoint(4, timeout=1)["size"] == 7
    started = time.monotonic()
    assert L.wait_for_checkpoint(8, timeout=0.3) is None
    assert time.monotonic() - started >= 0.25


def test_batch_max_items_seals_without_waiting_for_the_delay(tmp_path):
    service = LedgerService(tmp_path, settings=SequencerSettings(batch_max_items=100, batch_max_delay=30.0))
    try:
        L = service.create_ledger("acme")
        L.submit([rec(i) for i in range(50)])
        assert L.wait_for_checkpoint(50, timeout=0.5) is None  # 50 < 100 and the delay is 30 s
        started = time.monotonic()
        L.submit([rec(i) for i in range(50, 250)])
        cp = L.wait_for_checkpoint(100, timeout=5)
        elapsed = time.monotonic() - started
        assert cp is not None and elapsed < 3, elapsed
        assert 100 <= cp["size"] <= 250
        assert bytes.fromhex(cp["root"]) == L.projections.tree.root(cp["size"])
        assert verify_checkpoint(cp["note"], L.verifier_keys()[cp["key_id"]]).size == cp["size"]
    finally:
        service.close()


def test_the_delay_seals_a_small_batch(tmp_path):
    service = LedgerService(tmp_path, settings=SequencerSettings(batch_max_items=100000, batch_max_delay=0.2))
    try:
        L = service.create_ledger("acme")
        started = time.monotonic()
        L.submit([rec(0)])
        cp = checkpoint_for(L, 1, timeout=5)
        assert cp["size"] == 1
        assert time.monotonic() - started >= 0.15
    finally:
        service.close()


def test_records_projected_but_unsealed_at_close_are_sealed_after_restart(tmp_path):
    service = LedgerService(tmp_path, settings=SLOW)
    L = service.create_ledger("acme")
    L.submit([rec(i) for i in range(3)])
    assert wait_until(lambda: L.projections.record_count == 3)  # read and projected, not sealed
    assert L.projections.latest_checkpoint() is None
    service = reopen(service, FAST)
    try:
        L = service.ledger("acme")
        cp = L.wait_for_checkpoint(3, timeout=3)
        assert cp is not None and cp["size"] == 3
    finally:
        service.close()


# ------------------------------------------------------------------------------ ledgers

def test_ledgers_are_independent(svc):
    A = svc.create_ledger("alpha")
    B = svc.create_ledger("beta")
    assert svc.ledgers() == ["alpha", "beta"]
    assert A.created["key_id"] != B.created["key_id"]
    assert A.created["verifier_key"] != B.created["verifier_key"]
    ra = A.submit([rec("a0", evidence_id="ev-1", business_id="flow-a"), rec("a1")])
    rb = B.submit([rec("b0", evidence_id="ev-1", business_id="flow-b")])
    assert [r.seq for r in ra] == [0, 1] and [r.seq for r in rb] == [0]
    assert not rb[0].duplicate  # the same evidence id in another ledger is another record
    cpa, cpb = checkpoint_for(A, 2), checkpoint_for(B, 1)
    assert A.projections.seqs_by_content_hash(chash("a0")) == [0]
    assert B.projections.seqs_by_content_hash(chash("a0")) == []
    assert B.projections.seqs_by_business_id("flow-a") == []
    assert A.projections.seqs_by_business_id("flow-b") == []
    assert A.record(0)["record"]["content_hash"] == chash("a0")
    assert B.record(0)["record"]["content_hash"] == chash("b0")
    assert A.record(0)["ledger"] == "alpha" and B.record(0)["ledger"] == "beta"
    assert ra[0].leaf_hash != rb[0].leaf_hash
    assert verify_checkpoint(cpa["note"], A.verifier_keys()[cpa["key_id"]]).origin == "evledger/alpha"
    assert verify_checkpoint(cpb["note"], B.verifier_keys()[cpb["key_id"]]).origin == "evledger/beta"
    with pytest.raises(CheckpointError):
        verify_checkpoint(cpa["note"], B.verifier_keys()[cpb["key_id"]])
    assert A.projections.evidence("ev-1")[0] == 0 and B.projections.evidence("ev-1")[0] == 0
    assert A.keys.data_key() != B.keys.data_key()


def test_sha256_ledger(svc):
    L = svc.create_ledger("tls", alg="sha256")
    assert L.alg == "sha256"
    receipts = L.submit([rec(i) for i in range(6)])
    cp = checkpoint_for(L, 6)
    root = bytes.fromhex(cp["root"])
    assert root == L.projections.tree.root(6)
    for r in receipts:
        leaf = L.leaf(r.seq)
        assert r.leaf_hash == hashlib.sha256(b"\x00" + leaf).hexdigest()
        verify_inclusion("sha256", r.seq, 6, bytes.fromhex(r.leaf_hash), L.projections.tree.inclusion_proof(r.seq, 6), root)
    with pytest.raises(ProofError):
        verify_inclusion("sm3", 0, 6, bytes.fromhex(receipts[0].leaf_hash), L.projections.tree.inclusion_proof(0, 6), root)
    assert verify_checkpoint(cp["note"], L.verifier_keys()[cp["key_id"]]).root == root
    svc2 = reopen(svc)
    try:
        assert svc2.ledger("tls").alg == "sha256"
        assert svc2.ledger("tls").submit_one(rec(7)).seq == 6
    finally:
        svc2.close()


def test_key_rotation(svc):
    L = svc.create_ledger("acme")
    k1 = L.created["key_id"]
    L.submit([rec(i) for i in range(3)])
    cp1 = checkpoint_for(L, 3)
    assert cp1["key_id"] == k1
    k2, vk2 = L.rotate_signing_key()
    assert k2 != k1 and vk2.startswith("evledger/acme+" + k2 + "+")
    L.submit([rec(i) for i in range(3, 6)])
    cp2 = checkpoint_for(L, 6)
    assert cp2["key_id"] == k2
    vkeys = L.verifier_keys()
    assert set(vkeys) == {k1, k2} and vkeys[k2] == vk2 and vkeys[k1] == L.created["verifier_key"]
    assert verify_checkpoint(cp1["note"], vkeys[k1]).size == 3
    assert verify_checkpoint(cp2["note"], vkeys[k2]).size == 6
    with pytest.raises(CheckpointError):
        verify_checkpoint(cp1["note"], vkeys[k2])
    with pytest.raises(CheckpointError):
        verify_checkpoint(cp2["note"], vkeys[k1])
    rotated = [orjson.loads(e.data) for e in L.log.read("acme") if e.type == "SigningKeyRotated"]
    assert len(rotated) == 1
    assert rotated[0]["key_id"] == k2 and rotated[0]["previous_key_id"] == k1 and rotated[0]["verifier_key"] == vk2
    for kid in (k1, k2):
        path = L.directory / "keys" / f"sm2-{kid}.key"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

    svc2 = reopen(svc)
    try:
        L2 = svc2.ledger("acme")
        assert L2.verifier_keys() == vkeys
        L2.submit([rec(9)])
        cp3 = checkpoint_for(L2, 7)
        assert cp3["key_id"] == k2
        verify_checkpoint(cp3["note"], vk2)
        assert L2.projections.checkpoint(3) == cp1
        verify_checkpoint(L2.projections.checkpoint(3)["note"], L2.verifier_keys()[k1])
    finally:
        svc2.close()


def test_sealed_fields_never_reach_the_leaf_in_clear(svc):
    L = svc.create_ledger("acme")
    secret = {"name": "张三", "id_number": "110101199003077777"}
    receipt = L.submit_one(rec(0, sealed=secret, attributes={"branch": "SH-001"}))
    plain = L.submit_one(rec(1))
    checkpoint_for(L, 2)
    leaf = L.leaf(receipt.seq)
    for value in secret.values():
        assert value.encode() not in leaf
        assert orjson.dumps(value)[1:-1] not in leaf
    for event in L.log.read("acme"):
        for value in secret.values():
            assert value.encode() not in event.data and value.encode() not in event.metadata
    record = L.record(receipt.seq)["record"]
    assert record["sealed"]["alg"] == "SM4-GCM" and set(record["sealed"]) == {"alg", "nonce", "ciphertext"}
    assert record["attributes"] == {"branch": "SH-001"}
    assert L.open_sealed(record) == secret
    assert L.open_sealed(L.record(plain.seq)["record"]) is None
    assert receipt.leaf_hash == sm3_leaf_hash(leaf)


def test_indexes_by_business_id_and_content_hash(svc):
    L = svc.create_ledger("acme")
    shared = chash("shared")
    L.submit([
        rec(0, business_id="flow-1"),
        rec("shared", business_id="flow-10"),
        rec(2, business_id="flow-1"),
        {**rec(0), "content_hash": shared.upper(), "business_id": "flow-2"},  # upper case is normalized
        rec(4, business_id="flow-1", evidence_id="ev-4"),
    ])
    checkpoint_for(L, 5)
    p = L.projections
    assert p.seqs_by_business_id("flow-1") == [0, 2, 4]
    assert p.seqs_by_business_id("flow-10") == [1]  # "flow-1" is a prefix of it, but not a match
    assert p.seqs_by_business_id("flow-2") == [3]
    assert p.seqs_by_business_id("flow") == []
    assert p.seqs_by_business_id("flow-1", limit=2) == [0, 2]
    assert p.seqs_by_content_hash(shared) == [1, 3]
    assert p.seqs_by_content_hash(chash(0)) == [0]
    assert p.seqs_by_content_hash(chash(99)) == []
    assert p.evidence("ev-4")[0] == 4
    assert p.evidence("ev-unknown") is None
    assert L.record(3)["record"]["content_hash"] == shared


# ------------------------------------------------------------------------------ errors and files

def test_unknown_ledger(svc):
    with pytest.raises(LedgerError) as info:
        svc.ledger("nope")
    assert info.value.code == "unknown_ledger"
    assert "nope" in str(info.value)


@pytest.mark.parametrize("bad", ["", "Acme", "-acme", "acme_1", "acme/x", "a" * 64, "ac me", "é", None, 7])
def test_bad_ledger_ids_are_refused(svc, bad):
    with pytest.raises(LedgerError) as info:
        svc.create_ledger(bad)
    assert info.value.code == "invalid_ledger_id"
    assert svc.ledgers() == []


def test_longest_ledger_id_is_accepted(svc):
    name = "a" + "-9" * 31
    assert len(name) == 63
    assert svc.create_ledger(name).id == name


def test_duplicate_create_is_refused(svc):
    L = svc.create_ledger("acme")
    with pytest.raises(LedgerError) as info:
        svc.create_ledger("acme")
    assert info.value.code == "ledger_exists"
    assert "already exists" in str(info.value)
    assert svc.ledger("acme") is L
    svc2 = reopen(svc)
    try:
        with pytest.raises(LedgerError) as info:
            svc2.create_ledger("acme")
        assert info.value.code == "ledger_exists"
        assert svc2.ledger("acme").created["key_id"] == L.created["key_id"]
    finally:
        svc2.close()


def test_key_files_after_create(svc, tmp_path):
    L = svc.create_ledger("acme")
    keys_dir = tmp_path / "ledgers" / "acme" / "keys"
    assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700
    names = sorted(os.listdir(keys_dir))
    assert names == sorted([f"sm2-{L.created['key_id']}.key", "sm4-data.key"])
    for name in names:
        assert stat.S_IMODE((keys_dir / name).stat().st_mode) == 0o600


def test_everything_survives_a_restart(svc):
    L = svc.create_ledger("acme")
    receipts = L.submit([rec(i, business_id="flow-x") for i in range(4)])
    cp = checkpoint_for(L, 4)
    root = L.projections.tree.root(4)
    svc2 = reopen(svc)
    try:
        L2 = svc2.ledger("acme")
        assert svc2.ledgers() == ["acme"]
        assert L2.record_count == 4
        assert L2.projections.latest_checkpoint() == cp
        assert L2.projections.tree.root(4) == root
        assert L2.projections.seqs_by_business_id("flow-x") == [0, 1, 2, 3]
        assert [L2.projections.tree.leaf_hash(r.seq).hex() for r in receipts] == [r.leaf_hash for r in receipts]
        more = L2.submit([rec(10), rec(11)])
        assert [r.seq for r in more] == [4, 5]
        cp2 = checkpoint_for(L2, 6)
        verify_consistency("sm3", 4, 6, L2.projections.tree.consistency_proof(4, 6), root, bytes.fromhex(cp2["root"]))
    finally:
        svc2.close()
