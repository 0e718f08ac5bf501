"""Regression tests for faults on the ingest path: group commit errors and fairness, appends whose
outcome is unknown, sequencer retries and halts, projections that fell behind the index or
outlived their log, forged checkpoints in a rebuild, key-rotation races, and CLI error handling.

Each test reproduces a failure a reviewer demonstrated (scratch scripts s1-s14) and checks the
behaviour the fix promises."""
import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import pytest

import ingest.ledger as ledger_module
from ingest import events as ev
from ingest.group import GroupCommitter
from ingest.ledger import LedgerError, LedgerService, Receipt
from ingest.log import LogError, NewEvent
from ingest.log_rocksdb import RocksDBLog
from ingest.projections import CheckpointMismatch
from ingest.rebuild import rebuild_ledger
from ingest.records import RecordError
from ingest.sequencer import LogCorruption, SequencerSettings
from merkle.checkpoint import Checkpoint, SM2PrivateKey, sign_checkpoint, verify_checkpoint
from proof_api.cli import main

FAST = SequencerSettings(batch_max_items=1000, batch_max_delay=0.05)
SLOW = SequencerSettings(batch_max_items=100000, batch_max_delay=30.0)  # never seals by itself in a test
REPO = Path(__file__).resolve().parents[1]


def chash(i) -> str:
    return hashlib.sha256(f"content-{i}".encode()).hexdigest()


def rec(i, **fields) -> dict:
    out = {"content_hash": chash(i), "business_type": "contract.signed", "occurred_at": "2024-05-01T09:30:00+08:00"}
    out.update(fields)
    return out


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def logged_events(log, ledger_id, event_type):
    return [e for e in log.read(ledger_id) if e.type == event_type]


def logged_seqs(log, ledger_id) -> dict:
    """evidence id -> seq for every EvidenceRecorded event in the log (each id must appear once)."""
    out = {}
    for e in logged_events(log, ledger_id, ev.EVIDENCE_RECORDED):
        body = orjson.loads(e.data)
        evidence_id = body["record"].get("evidence_id")
        assert evidence_id not in out, f"evidence id {evidence_id!r} is in the log twice"
        out[evidence_id] = body["seq"]
    return out


def logged_checkpoints(log, ledger_id) -> list[dict]:
    return [orjson.loads(e.data) for e in logged_events(log, ledger_id, ev.CHECKPOINT_SEALED)]


def assert_checkpoints_hold(ledger):
    """Every logged checkpoint is projected, reproduces the tree's root and verifies."""
    logged = logged_checkpoints(ledger.log, ledger.id)
    assert logged, "no checkpoint in the log"
    assert [c["size"] for c in logged] == sorted({c["size"] for c in logged}), "sizes must increase"
    assert ledger.projections.checkpoints() == logged
    keys = ledger.verifier_keys()
    for cp in logged:
        assert cp["root"] == ledger.projections.tree.root(cp["size"]).hex()
        signed = verify_checkpoint(cp["note"], keys[cp["key_id"]])
        assert (signed.size, signed.root.hex()) == (cp["size"], cp["root"])


# ------------------------------------------------------------------------------ 1. GroupCommitter

def test_group_committer_process_raising_fails_every_request_of_its_group():
    gate = threading.Event()
    calls = []

    class Boom(Exception):
        pass

    def process(group):
        calls.append([r.item for r in group])
        if len(calls) == 1:  # the first group holds the lead while the next one queues up
            gate.wait(10)
            for r in group:
                r.result = ("ok", r.item)
        elif len(calls) == 2:  # acknowledges some, fails one, then raises
            group[0].result = ("acked", group[0].item)
            group[1].error = ValueError("its own error")
            raise Boom("the write failed after results were set")
        else:
            for r in group:
                r.result = ("ok", r.item)

    gc_ = GroupCommitter(process)
    outcomes = {}

    def submit(item):
        try:
            outcomes[item] = ("returned", gc_.submit(item))
        except BaseException as exc:
            outcomes[item] = ("raised", exc)

    first = threading.Thread(target=submit, args=("first",))
    first.start()
    assert wait_until(lambda: len(calls) == 1, 5)
    others = [threading.Thread(target=submit, args=(name,)) for name in ("b", "c", "d")]
    for t in others:
        t.start()
    assert wait_until(lambda: len(gc_._queue) == 3, 5)
    gate.set()
    for t in [first, *others]:
        t.join(10)
        assert not t.is_alive()
    assert outcomes["first"] == ("returned", ("ok", "first"))
    assert sorted(calls[1]) == ["b", "c", "d"]
    for name in ("b", "c", "d"):
        kind, value = outcomes[name]
        assert kind == "raised", f"{name} was acknowledged ({value!r}) although its group failed"
        assert isinstance(value, Boom)
    # the committer is not stuck after a failed group
    assert gc_.submit("e") == ("ok", "e")


def test_group_committer_each_leader_processes_one_group_and_hands_over():
    groups = []  # (thread that ran process, threads whose requests were in the group)

    def process(group):
        time.sleep(0.002)  # one fsync
        groups.append((threading.get_ident(), {r.item[0] for r in group}))
        for r in group:
            r.result = r.item

    gc_ = GroupCommitter(process)
    stop = threading.Event()
    waits: list[float] = []
    wrong = []

    def worker():
        me, n = threading.get_ident(), 0
        while not stop.is_set():
            started = time.monotonic()
            got = gc_.submit((me, n))
            waits.append(time.monotonic() - started)
            if got != (me, n):
                wrong.append((got, (me, n)))
            n += 1

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join(10)
        assert not t.is_alive()
    assert not wrong
    assert len(groups) > 100, f"only {len(groups)} groups in 1.5 s"
    # A leader processes the group its own request is in, then hands over: never someone else's.
    foreign = [(leader, members) for leader, members in groups if leader not in members]
    assert not foreign, f"{len(foreign)} of {len(groups)} groups were processed by a thread not in them"
    busy = len(groups) * 0.002
    # No submit waits for more than a few groups (~2 ms each); the whole run was `busy` seconds of
    # processing, so a leader that kept leading would make someone wait a large part of it.
    assert max(waits) < 0.5, f"a submit waited {max(waits):.3f} s ({len(groups)} groups, {busy:.2f} s busy)"
    assert max(waits) < busy / 2


# ------------------------------------------------------------------------------ 2. RocksDBLog

def test_rocksdb_group_with_an_append_raising_in_the_writer_acknowledges_nothing_unwritten(tmp_path):
    log = RocksDBLog(tmp_path / "log")
    gate, entered = threading.Event(), threading.Event()
    write_group = log._committer._process

    def gated(group):
        if not gate.is_set():
            entered.set()
            gate.wait(10)
        write_group(group)

    log._committer._process = gated
    outcomes = {}

    def append(stream, events):
        try:
            outcomes[stream] = ("returned", log.append(stream, events, 0))
        except BaseException as exc:
            outcomes[stream] = ("raised", exc)

    def events_from_a_generator():
        yield NewEvent("X", b"2")  # passes check_new_events, which consumes it; the writer finds it spent

    holder = threading.Thread(target=append, args=("z", [NewEvent("X", b"0")]))
    holder.start()
    assert entered.wait(5)
    good = threading.Thread(target=append, args=("a", [NewEvent("X", b"1")]))
    good.start()
    assert wait_until(lambda: len(log._committer._queue) == 1, 5)
    bad = threading.Thread(target=append, args=("b", events_from_a_generator()))
    bad.start()
    assert wait_until(lambda: len(log._committer._queue) == 2, 5)
    gate.set()
    for t in (holder, good, bad):
        t.join(10)
        assert not t.is_alive()

    assert outcomes["z"] == ("returned", 1)
    assert outcomes["b"][0] == "raised"
    assert outcomes["a"][0] == "raised", f"'a' was acknowledged ({outcomes['a'][1]!r}) but its group failed"

    def check(lg):
        for stream, (kind, value) in outcomes.items():
            want = value if kind == "returned" else 0
            assert lg.version(stream) == want, stream
            assert len(list(lg.read(stream))) == want, stream
    check(log)
    assert lg_data(log, "z") == [b"0"]
    # the stream is usable: the next append at version 0 is written
    assert log.append("a", [NewEvent("X", b"1")], 0) == 1
    outcomes["a"] = ("returned", 1)
    log.close()
    reopened = RocksDBLog(tmp_path / "log")
    try:
        check(reopened)
        assert lg_data(reopened, "a") == [b"1"]
        assert reopened.torn_batches_discarded == []
    finally:
        reopened.close()


def lg_data(log, stream):
    return [e.data for e in log.read(stream)]


# ------------------------------------------------------------------------------ 3. Ledger appends that fail

def test_append_lost_reply_then_retry_returns_the_logged_records_as_duplicates(tmp_path, monkeypatch):
    svc = LedgerService(tmp_path, settings=SLOW)
    try:
        L = svc.create_ledger("acme")
        L.submit([rec(100 + i, evidence_id=f"pre-{i}") for i in range(3)])
        real = svc.log.append
        lost = []

        def lost_reply(stream, events, expected):
            version = real(stream, events, expected)  # durable...
            if not lost and any(e.type == ev.EVIDENCE_RECORDED for e in events):
                lost.append(version)
                raise LogError("deadline exceeded (the server did commit)")  # ...but the reply is lost
            return version

        monkeypatch.setattr(svc.log, "append", lost_reply)
        batch = [rec(i, evidence_id=f"ev-{i}") for i in range(5)]
        with pytest.raises(LedgerError) as err:
            L.submit(batch)
        assert err.value.code == "log_unavailable"
        assert lost
        in_log = logged_seqs(svc.log, L.id)
        assert {f"ev-{i}": in_log[f"ev-{i}"] for i in range(5)} == {f"ev-{i}": 3 + i for i in range(5)}

        for attempt in range(2):
            retry = L.submit(batch)
            assert all(isinstance(r, Receipt) for r in retry), retry
            assert [r.duplicate for r in retry] == [True] * 5
            assert [r.seq for r in retry] == [in_log[f"ev-{i}"] for i in range(5)]
            assert L.record_count == 8
        # same evidence id, other content: still a conflict
        conflict = L.submit([rec(999, evidence_id="ev-0")])[0]
        assert isinstance(conflict, RecordError) and conflict.rule == "conflict"
        new = L.submit_one(rec(50, evidence_id="new"))
        assert (new.seq, new.duplicate) == (8, False)
        assert logged_seqs(svc.log, L.id) == {**in_log, "new": 8}

        # the duplicate receipts describe what is in the log
        assert wait_until(lambda: L.projections.tree.size == 9, 10)
        for receipt in retry:
            leaf = L.record(receipt.seq)
            assert receipt.leaf_hash == L.projections.tree.leaf_hash(receipt.seq).hex()
            assert receipt.received_at == leaf["received_at"]
            assert receipt.business_id == leaf["record"]["business_id"]
            assert receipt.evidence_id == leaf["record"]["evidence_id"]
        monkeypatch.undo()
    finally:
        svc.close()

    svc = LedgerService(tmp_path, settings=FAST)
    try:
        L = svc.ledger("acme")
        again = L.submit(batch)
        assert [(r.seq, r.duplicate) for r in again] == [(r.seq, True) for r in retry]
        assert L.record_count == 9
        assert L.wait_for_checkpoint(9, 10)["size"] == 9
        assert_checkpoints_hold(L)
    finally:
        svc.close()


def test_append_failing_before_the_write_then_retry_records_once(tmp_path, monkeypatch):
    svc = LedgerService(tmp_path, settings=FAST)
    try:
        L = svc.create_ledger("acme")
        real = svc.log.append
        failed = []

        def unavailable(stream, events, expected):
            if not failed and any(e.type == ev.EVIDENCE_RECORDED for e in events):
                failed.append(1)
                raise LogError("connection refused")
            return real(stream, events, expected)

        monkeypatch.setattr(svc.log, "append", unavailable)
        version = svc.log.version(L.id)
        batch = [rec(i, evidence_id=f"ev-{i}") for i in range(4)] + [rec(10)]
        with pytest.raises(LedgerError) as err:
            L.submit(batch)
        assert err.value.code == "log_unavailable"
        assert svc.log.version(L.id) == version
        assert L.record_count == 0

        retry = L.submit(batch)
        assert all(isinstance(r, Receipt) for r in retry), retry
        assert [(r.seq, r.duplicate) for r in retry] == [(i, False) for i in range(5)]
        assert L.record_count == 5
        assert logged_seqs(svc.log, L.id) == {**{f"ev-{i}": i for i in range(4)}, None: 4}
        assert L.submit(batch[:4]) == [r._replace(duplicate=True) for r in retry[:4]]
        assert L.wait_for_checkpoint(5, 10)["size"] == 5
        assert L.sequencer.failure is None
        assert_checkpoints_hold(L)
    finally:
        svc.close()


def test_failure_before_the_append_leaves_nothing_behind(tmp_path, monkeypatch):
    svc = LedgerService(tmp_path, settings=SLOW, start=False)
    try:
        L = svc.create_ledger("acme")
        real = ledger_module.hash_leaves
        failed = []

        def flaky(*args, **kwargs):
            if not failed:
                failed.append(1)
                raise RuntimeError("simulated failure while hashing")
            return real(*args, **kwargs)

        monkeypatch.setattr(ledger_module, "hash_leaves", flaky)
        with pytest.raises(Exception):
            L.submit_one(rec(1, evidence_id="X"))
        assert svc.log.version(L.id) == 1  # nothing but LedgerCreated
        receipt = L.submit_one(rec(1, evidence_id="X"))
        assert (receipt.seq, receipt.duplicate) == (0, False)
        assert logged_seqs(svc.log, L.id) == {"X": 0}
    finally:
        svc.close()


# ------------------------------------------------------------------------------ 4. the sequencer

def test_sequencer_retries_a_checkpoint_append_that_failed(tmp_path):
    svc = LedgerService(tmp_path, settings=FAST)
    try:
        L = svc.create_ledger("acme")
        seq = L.sequencer
        real = seq._append
        failed = []

        def flaky(new_events):
            if not failed:
                failed.append(1)
                raise LogError("transient: disk hiccup")
            return real(new_events)

        seq._append = flaky
        L.submit([rec(i) for i in range(5)])
        cp = L.wait_for_checkpoint(5, 5)
        assert cp is not None and cp["size"] == 5
        assert failed
        assert seq.failure is None and seq.errors >= 1 and seq._thread.is_alive()
        L.submit([rec(i) for i in range(5, 12)])
        assert L.wait_for_checkpoint(12, 5)["size"] == 12
        assert_checkpoints_hold(L)
    finally:
        svc.close()


def test_sequencer_survives_the_log_refusing_a_checkpoint(tmp_path, monkeypatch):
    svc = LedgerService(tmp_path, settings=FAST)
    try:
        L = svc.create_ledger("acme")
        L.submit_one(rec(0))
        assert L.wait_for_checkpoint(1, 5)["size"] == 1
        real = svc.log.append
        failed = []

        def flaky(stream, events, expected):
            if not failed and any(e.type == ev.CHECKPOINT_SEALED for e in events):
                failed.append(1)
                raise LogError("transient: disk hiccup")
            return real(stream, events, expected)

        monkeypatch.setattr(svc.log, "append", flaky)
        L.submit_one(rec(1))
        assert wait_until(lambda: failed, 5)
        for i in range(2, 300):
            L.submit_one(rec(i, evidence_id=f"e{i}"))
        assert L.wait_for_checkpoint(300, 5)["size"] == 300
        assert L.sequencer.failure is None and L.sequencer.errors >= 1 and L.sequencer._thread.is_alive()
        assert L.record_count == 300
        assert_checkpoints_hold(L)
    finally:
        svc.close()


def _bogus_checkpoint(L):
    return [ev.json_event(ev.CHECKPOINT_SEALED, {
        "size": 3, "root": "00" * 32, "note": "forged\n", "key_id": L.current_key_id,
        "sealed_at": "2024-05-01T00:00:00.000000Z"})]


@pytest.mark.parametrize("foreign, failure", [
    (_bogus_checkpoint, CheckpointMismatch),
    (lambda L: [NewEvent("NotAnEvent", b"{}")], LogCorruption),
], ids=["checkpoint-mismatch", "log-corruption"])
def test_sequencer_stops_for_good_on_a_log_it_cannot_trust(tmp_path, foreign, failure):
    svc = LedgerService(tmp_path, settings=FAST)
    try:
        L = svc.create_ledger("acme")
        L.submit([rec(i) for i in range(3)])
        assert L.wait_for_checkpoint(3, 5)["size"] == 3
        svc.log.append(L.id, foreign(L), svc.log.version(L.id))  # another writer, behind the ledger's back
        assert wait_until(lambda: L.sequencer.failure is not None, 5)
        assert isinstance(L.sequencer.failure, failure)
        assert wait_until(lambda: not L.sequencer._thread.is_alive(), 5)
        errors = L.sequencer.errors
        with pytest.raises(LedgerError) as err:
            L.submit([rec(10)])
        assert err.value.code == "ledger_halted"
        with pytest.raises(LedgerError) as err:
            L.submit_one(rec(11))
        assert err.value.code == "ledger_halted"
        with pytest.raises(failure):
            L.wait_for_checkpoint(4, 1)
        time.sleep(0.2)
        assert L.sequencer.errors == errors  # not retrying
        assert L.record_count == 3
    finally:
        svc.close()


# ------------------------------------------------------------------------------ 5. reconcile

@pytest.mark.parametrize("damage", [
    "lost-last-batch",
    "lost-two-batches",
    "no-tree",
])
def test_tree_behind_the_index_is_replayed_on_open(tmp_path, damage):
    data = tmp_path / "data"
    tree = data / "ledgers" / "acme" / "projections" / "tree"
    snapshots = {}
    for batch in range(3):  # three runs of 10 records, a checkpoint after each, the tree copied after each
        svc = LedgerService(data, settings=FAST)
        L = svc.ledger("acme") if batch else svc.create_ledger("acme")
        L.submit([rec(i, evidence_id=f"e{i}") for i in range(10 * batch, 10 * batch + 10)])
        assert L.wait_for_checkpoint(10 * batch + 10, 5)["size"] == 10 * batch + 10
        roots = {c["size"]: c["root"] for c in L.projections.checkpoints()}
        svc.close()
        snapshots[10 * batch + 10] = tmp_path / f"tree-at-{10 * batch + 10}"
        shutil.copytree(tree, snapshots[10 * batch + 10])
    assert sorted(roots) == [10, 20, 30]

    shutil.rmtree(tree)  # the tree's last writes are lost; the index survived
    if damage == "lost-last-batch":
        shutil.copytree(snapshots[20], tree)
    elif damage == "lost-two-batches":
        shutil.copytree(snapshots[10], tree)

    svc = LedgerService(data, settings=FAST)
    try:
        L = svc.ledger("acme")
        assert L.record_count == 30
        assert L.projections.tree.size == 30
        assert {s: L.projections.tree.root(s).hex() for s in roots} == roots
        assert_checkpoints_hold(L)
        # duplicates still found, new records go to the right leaf index
        assert L.submit_one(rec(15, evidence_id="e15")).duplicate
        L.submit([rec(i) for i in range(30, 35)])
        assert L.wait_for_checkpoint(35, 5)["size"] == 35
        assert L.sequencer.failure is None
        assert L.projections.tree.size == L.record_count == 35
        assert [c["size"] for c in L.projections.checkpoints()] == [10, 20, 30, 35]
        assert_checkpoints_hold(L)
    finally:
        svc.close()
    log = RocksDBLog(data / "log")
    try:
        report = rebuild_ledger(data, "acme", log, progress=False)
    finally:
        log.close()
    assert report.ok, report.mismatch
    assert (report.records, report.checkpoints_verified) == (35, 4)


def test_restart_with_smaller_batches_keeps_unindexed_ids_known(tmp_path):
    """Crash between the tree's write and the index's, restart with a smaller batch_max_items:
    the evidence ids not yet indexed must still answer as duplicates (reviewer's s4)."""
    svc = LedgerService(tmp_path, settings=SLOW, start=False)
    L = svc.create_ledger("acme")
    L.submit([rec(i, evidence_id=f"e{i}") for i in range(100)])
    leaves = [e.data for e in svc.log.read("acme") if e.type == ev.EVIDENCE_RECORDED]
    L.projections.tree.append(leaves)  # what a crashed sequencer got done before the index write
    assert L.projections.position == 1
    svc.close()
    svc = LedgerService(tmp_path, settings=SequencerSettings(batch_max_items=10, batch_max_delay=30), start=False)
    try:
        L = svc.ledger("acme")
        assert L.record_count == 100
        for i in (0, 50, 99):
            r = L.submit_one(rec(i, evidence_id=f"e{i}"))
            assert (r.seq, r.duplicate) == (i, True)
        assert L.submit_one(rec(100, evidence_id="e100")).seq == 100
    finally:
        svc.close()


# ------------------------------------------------------------------------------ 6. stale projections

def test_create_ledger_ignores_projections_left_from_another_log(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    svc = LedgerService(a, settings=FAST)
    L = svc.create_ledger("acme")
    L.submit([rec(i, evidence_id=f"e{i}") for i in range(5)])
    assert L.wait_for_checkpoint(5, 5)["size"] == 5
    svc.close()

    svc = LedgerService(b, settings=FAST)
    try:
        shutil.copytree(a / "ledgers" / "acme" / "projections", b / "ledgers" / "acme" / "projections")
        L = svc.create_ledger("acme")
        assert L.record_count == 0
        assert L.projections.tree.size == 0
        assert L.projections.latest_checkpoint() is None
        assert L.projections.evidence("e1") is None
        results = L.submit([rec(99, evidence_id="e1"), rec(3, evidence_id="e3"), rec(7, evidence_id="new")])
        assert all(isinstance(r, Receipt) for r in results), results
        assert [(r.seq, r.duplicate) for r in results] == [(0, False), (1, False), (2, False)]
        assert L.wait_for_checkpoint(3, 5)["size"] == 3
        assert L.sequencer.failure is None
        assert L.projections.tree.size == 3
        assert_checkpoints_hold(L)
    finally:
        svc.close()


def test_create_ledger_after_the_log_was_lost(tmp_path):
    svc = LedgerService(tmp_path, settings=FAST)
    L = svc.create_ledger("acme")
    L.submit([rec(i, evidence_id=f"e{i}") for i in range(5)])
    assert L.wait_for_checkpoint(5, 5)["size"] == 5
    svc.close()
    shutil.rmtree(tmp_path / "log")
    svc = LedgerService(tmp_path, settings=FAST)
    try:
        L = svc.create_ledger("acme")
        assert (L.record_count, L.projections.tree.size, L.projections.latest_checkpoint()) == (0, 0, None)
        r = L.submit_one(rec(99, evidence_id="e1"))
        assert (r.seq, r.duplicate) == (0, False)
        assert L.wait_for_checkpoint(1, 5)["size"] == 1
        assert_checkpoints_hold(L)
    finally:
        svc.close()


# ------------------------------------------------------------------------------ 7. rebuild and signed notes

def _forge(L, kind):
    """CheckpointSealed payloads for a ledger of 5 projected records."""
    tree, origin, kid = L.projections.tree, L.origin, L.current_key_id

    def payload(size, note):
        return {"size": size, "root": tree.root(size).hex(), "note": note, "key_id": kid,
                "sealed_at": "2024-05-01T00:00:00.000000Z"}

    def signed(size):
        return L._sign(Checkpoint(origin, size, tree.root(size)), kid)

    if kind == "genuine":
        return [payload(5, signed(5))]
    if kind == "note-over-another-size":  # a valid signature, but over size 4
        return [payload(5, signed(4))]
    if kind == "note-text-edited":
        return [payload(5, signed(5).replace("\n5\n", "\n999\n"))]
    if kind == "note-by-another-key":
        other = SM2PrivateKey.generate()
        return [payload(5, sign_checkpoint(Checkpoint(origin, 5, tree.root(5)), origin, other))]
    if kind == "size-goes-back":
        return [payload(5, signed(5)), payload(3, signed(3))]
    raise AssertionError(kind)


@pytest.mark.parametrize("kind, bad_size, words", [
    ("genuine", None, None),
    ("note-over-another-size", 5, "note"),
    ("note-text-edited", 5, "note"),
    ("note-by-another-key", 5, "note"),
    ("size-goes-back", 3, "sizes must increase"),
])
def test_rebuild_checks_each_checkpoints_signed_note_and_order(tmp_path, kind, bad_size, words):
    svc = LedgerService(tmp_path, settings=FAST, start=False)
    L = svc.create_ledger("acme")
    L.submit([rec(i) for i in range(5)])
    L.sequencer.catch_up()
    assert L.projections.tree.size == 5
    for payload in _forge(L, kind):
        L.append_events([ev.json_event(ev.CHECKPOINT_SEALED, payload)])
    svc.close()
    before = sorted(p.name for p in (tmp_path / "ledgers" / "acme" / "projections").rglob("*"))
    log = RocksDBLog(tmp_path / "log")
    try:
        report = rebuild_ledger(tmp_path, "acme", log, progress=False)
    finally:
        log.close()
    if bad_size is None:
        assert report.ok, report.mismatch
        assert report.checkpoints_verified == 1
        return
    assert not report.ok
    assert isinstance(report.mismatch, CheckpointMismatch)
    assert report.mismatch.size == bad_size
    assert words in str(report.mismatch)
    assert not (tmp_path / "ledgers" / "acme" / "projections.rebuilding").exists()
    assert sorted(p.name for p in (tmp_path / "ledgers" / "acme" / "projections").rglob("*")) == before


# ------------------------------------------------------------------------------ 8. key rotation race

def test_checkpoint_signed_with_a_rotated_out_key_is_refused(tmp_path):
    svc = LedgerService(tmp_path, settings=FAST, start=False)
    try:
        L = svc.create_ledger("acme")
        old_kid = L.current_key_id
        L.submit([rec(i) for i in range(4)])
        seq = L.sequencer
        seq.apply(list(svc.log.read(L.id, seq.position)))  # the sequencer read the records...
        new_kid, new_vkey = L.rotate_signing_key()  # ...and the rotation lands before it seals
        assert new_kid != old_kid and L.current_key_id == new_kid
        version = svc.log.version(L.id)

        # the sequencer, not having read the rotation yet, signs with the old key: refused
        with pytest.raises(LedgerError) as err:
            seq.seal()
        assert err.value.code == "stale_signing_key"
        assert seq.sealed_size == -1

        # and the same directly through append_events
        root = L.projections.tree.root(4)
        stale = {"size": 4, "root": root.hex(), "note": L._sign(Checkpoint(L.origin, 4, root), old_kid),
                 "key_id": old_kid, "sealed_at": "2024-05-01T00:00:00.000000Z"}
        with pytest.raises(LedgerError) as err:
            L.append_events([ev.json_event(ev.CHECKPOINT_SEALED, stale)])
        assert err.value.code == "stale_signing_key"
        assert svc.log.version(L.id) == version
        assert logged_checkpoints(svc.log, L.id) == []

        # once it reads the rotation it seals with the new key
        seq.start()
        cp = L.wait_for_checkpoint(4, 5)
        assert cp["key_id"] == new_kid
        assert verify_checkpoint(cp["note"], new_vkey).size == 4
        assert_checkpoints_hold(L)
    finally:
        svc.close()


# ------------------------------------------------------------------------------ 9. the CLI

def _make_ledger(data):
    svc = LedgerService(data, settings=FAST)
    L = svc.create_ledger("acme")
    L.submit([rec(i) for i in range(3)])
    assert L.wait_for_checkpoint(3, 5)
    svc.close()


@pytest.mark.parametrize("argv", [["rebuild", "acme", "--quiet"], ["ledger", "list"]])
def test_cli_on_a_data_dir_in_use_says_so(tmp_path, capsys, argv):
    data = tmp_path / "data"
    _make_ledger(data)
    holder = LedgerService(data, settings=FAST)
    try:
        capsys.readouterr()
        code = main(["--data-dir", str(data), *argv])
        out, err = capsys.readouterr()
        assert code == 1
        assert "another evledger process" in err
        assert "Traceback" not in err + out
    finally:
        holder.close()
    assert main(["--data-dir", str(data), *argv]) == 0  # and once it is free, the command works


def _cli(args, **env):
    full = {k: v for k, v in os.environ.items() if not k.startswith("EVLEDGER_")}
    full.update(env)
    full["PYTHONPATH"] = str(REPO) + os.pathsep + full.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "proof_api.cli", *args], env=full, cwd=REPO,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("name, value", [("BATCH_MAX_ITEMS", "abc"), ("BATCH_MAX_DELAY", "soon")])
def test_cli_bad_number_in_the_environment_is_a_clear_error(tmp_path, name, value):
    done = _cli(["--data-dir", str(tmp_path / "data"), "ledger", "list"], **{f"EVLEDGER_{name}": value})
    assert done.returncode in (1, 2)
    assert f"EVLEDGER_{name}" in done.stderr and repr(value) in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists()


def test_cli_bad_number_in_the_environment_in_process(monkeypatch, tmp_path):
    monkeypatch.setenv("EVLEDGER_BATCH_MAX_ITEMS", "abc")
    with pytest.raises(SystemExit) as exc:
        main(["--data-dir", str(tmp_path), "ledger", "list"])
    assert "EVLEDGER_BATCH_MAX_ITEMS" in str(exc.value.code)


def test_cli_unknown_log_backend_is_an_argparse_error(tmp_path, capsys, monkeypatch):
    with pytest.raises(SystemExit) as exc:
        main(["--data-dir", str(tmp_path), "--log", "sqlite", "ledger", "list"])
    assert exc.value.code == 2
    assert "--log" in capsys.readouterr().err
    monkeypatch.setenv("EVLEDGER_LOG", "sqlite")
    with pytest.raises(SystemExit) as exc:
        main(["--data-dir", str(tmp_path), "ledger", "list"])
    assert exc.value.code == 2
    assert "EVLEDGER_LOG" in capsys.readouterr().err
    assert not (tmp_path / "log").exists()


# ------------------------------------------------------------------------------ 10. bad requests

@pytest.mark.parametrize("arg", [None, {"content_hash": chash(1)}, rec(1), "abc", 5, b"[]"],
                         ids=["none", "dict", "record", "str", "int", "bytes"])
def test_submit_takes_a_list(tmp_path, arg):
    svc = LedgerService(tmp_path, settings=FAST, start=False)
    try:
        L = svc.create_ledger("acme")
        with pytest.raises(LedgerError) as err:
            L.submit(arg)
        assert err.value.code == "invalid_request"
        assert L.record_count == 0 and svc.log.version(L.id) == 1
    finally:
        svc.close()


@pytest.mark.parametrize("seq", [-1, "x", 1.0, True, None])
def test_record_and_leaf_take_a_non_negative_int(tmp_path, seq):
    svc = LedgerService(tmp_path, settings=FAST, start=False)
    try:
        L = svc.create_ledger("acme")
        L.submit([rec(0)])
        L.sequencer.catch_up()
        assert L.record(0)["seq"] == 0
        for read in (L.record, L.leaf):
            with pytest.raises(LedgerError) as err:
                read(seq)
            assert err.value.code == "invalid_request"
        with pytest.raises(LedgerError) as err:
            L.record(5)
        assert err.value.code == "not_found"
    finally:
        svc.close()
