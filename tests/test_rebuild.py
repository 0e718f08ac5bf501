"""Rebuilding a ledger's projections from its log: every logged checkpoint root must come out bit
for bit; a forged checkpoint in the log is reported and the old projections are kept."""
import shutil

import orjson
import pytest

from ingest import events as ev
from ingest.ledger import LedgerError, LedgerService
from ingest.log_rocksdb import RocksDBLog
from ingest.projections import CheckpointMismatch, Projections
from ingest.rebuild import RebuildReport, rebuild_ledger
from ingest.sequencer import SequencerSettings
from merkle import verify_consistency
from merkle.checkpoint import verify_checkpoint
from proof_api.cli import main

FAST = SequencerSettings(batch_max_items=1000, batch_max_delay=0.05)


from tests.sample_records import chash, rec


QUERIES_BID = ["flow-a", "flow-b", "flow-c", "flow-none"]
QUERIES_HASH = [chash(i) for i in ("dup", 1, 7, 11, "nothing")]
QUERIES_EID = ["ev-0", "ev-5", "ev-10", "ev-none"]


def snapshot(projections: Projections) -> dict:
    size = projections.record_count
    return {
        "size": size,
        "root": projections.tree.root(size),
        "roots": [projections.tree.root(n) for n in range(size + 1)],
        "leaf_hashes": [projections.tree.leaf_hash(i) for i in range(size)],
        "by_business_id": {b: projections.seqs_by_business_id(b) for b in QUERIES_BID},
        "by_content_hash": {h: projections.seqs_by_content_hash(h) for h in QUERIES_HASH},
        "evidence": {e: projections.evidence(e) for e in QUERIES_EID},
        "checkpoints": projections.checkpoints(),
        "signing_keys": projections.signing_keys(),
        "positions": [projections.position_of(i) for i in range(size)],
        "position": projections.position,
    }


@pytest.fixture
def populated(tmp_path):
    """A closed data directory: ledger acme with 12 records over several checkpoints and a key
    rotation between them, and an untouched second ledger."""
    service = LedgerService(tmp_path, settings=FAST)
    L = service.create_ledger("acme")
    other = service.create_ledger("other")
    other.submit([rec("o")])
    L.submit([rec(i, business_id="flow-a", evidence_id=f"ev-{i}") for i in range(4)] + [rec("dup", business_id="flow-b")])
    assert L.wait_for_checkpoint(5, timeout=10)
    L.submit([rec(i, business_id="flow-b", evidence_id=f"ev-{i}") for i in range(5, 8)] + [rec("dup")])
    assert L.wait_for_checkpoint(9, timeout=10)
    L.rotate_signing_key()
    L.submit([rec(i, business_id="flow-c", evidence_id=f"ev-{i}", sealed={"name": "张三"}) for i in range(9, 12)])
    assert L.wait_for_checkpoint(12, timeout=10)
    assert other.wait_for_checkpoint(1, timeout=10)
    before = snapshot(L.projections)
    vkeys = L.verifier_keys()
    assert len(vkeys) == 2 and len(before["checkpoints"]) >= 3
    assert {c["key_id"] for c in before["checkpoints"]} == set(vkeys)  # both keys signed something
    service.close()
    return tmp_path, before, vkeys


def logged_checkpoints(log, ledger="acme"):
    return [orjson.loads(e.data) for e in log.read(ledger) if e.type == ev.CHECKPOINT_SEALED]


def forge_checkpoint(data_dir, size, root=b"\x00" * 32):
    """Append a CheckpointSealed with a wrong root straight to the log (the service is closed)."""
    log = RocksDBLog(data_dir / "log")
    try:
        genuine = logged_checkpoints(log)[0]
        payload = {**genuine, "size": size, "root": root.hex()}
        version = log.version("acme")
        assert log.append("acme", [ev.json_event(ev.CHECKPOINT_SEALED, payload)], version) == version + 1
    finally:
        log.close()


def run_rebuild(data_dir, ledger="acme") -> RebuildReport:
    log = RocksDBLog(data_dir / "log")
    try:
        return rebuild_ledger(data_dir, ledger, log, progress=False)
    finally:
        log.close()


def open_projections(data_dir, ledger="acme") -> Projections:
    return Projections(data_dir / "ledgers" / ledger / "projections", ledger, "sm3")


# ------------------------------------------------------------------------------ a good log

def test_rebuild_reproduces_every_checkpoint_and_index(populated):
    data_dir, before, vkeys = populated
    log = RocksDBLog(data_dir / "log")
    n_checkpoints = len(logged_checkpoints(log))
    version = log.version("acme")
    log.close()

    report = run_rebuild(data_dir)
    assert report.ok and report.mismatch is None
    assert report.ledger == "acme"
    assert report.records == 12
    assert report.events == version
    assert report.checkpoints_verified == n_checkpoints == len(before["checkpoints"])
    assert report.seconds >= 0 and report.events_per_second >= 0
    assert not (data_dir / "ledgers" / "acme" / "projections.rebuilding").exists()
    assert not (data_dir / "ledgers" / "acme" / "projections.old").exists()

    projections = open_projections(data_dir)
    try:
        assert snapshot(projections) == before
    finally:
        projections.close()

    # the rebuilt projections serve a running ledger: reads, new records, consistent checkpoints
    service = LedgerService(data_dir, settings=FAST)
    try:
        L = service.ledger("acme")
        assert L.verifier_keys() == vkeys
        assert L.open_sealed(L.record(10)["record"]) == {"name": "张三"}
        assert L.submit_one(rec(12)).seq == 12
        cp = L.wait_for_checkpoint(13, timeout=10)
        assert cp is not None
        verify_checkpoint(cp["note"], vkeys[cp["key_id"]])
        verify_consistency("sm3", 12, 13, L.projections.tree.consistency_proof(12, 13), before["root"],
                           bytes.fromhex(cp["root"]))
        assert service.ledger("other").record_count == 1
    finally:
        service.close()


def test_rebuild_from_nothing(populated):
    data_dir, before, _ = populated
    shutil.rmtree(data_dir / "ledgers" / "acme" / "projections")
    report = run_rebuild(data_dir)
    assert report.ok and report.records == 12
    projections = open_projections(data_dir)
    try:
        assert snapshot(projections) == before
    finally:
        projections.close()


# ------------------------------------------------------------------------------ a forged log

@pytest.mark.parametrize("forged_size", [5, 9, 3, 500])
def test_a_forged_checkpoint_root_fails_the_rebuild_and_keeps_the_old_projections(populated, forged_size):
    data_dir, before, _ = populated
    forge_checkpoint(data_dir, forged_size)
    report = run_rebuild(data_dir)
    assert not report.ok
    assert isinstance(report.mismatch, CheckpointMismatch)
    assert report.mismatch.size == forged_size
    assert report.mismatch.logged == b"\x00" * 32
    if forged_size <= 12:
        assert report.mismatch.computed == before["roots"][forged_size]
    assert str(forged_size) in str(report.mismatch)
    # every genuine checkpoint came before the forged one and was verified
    assert report.checkpoints_verified == len(before["checkpoints"])
    assert not (data_dir / "ledgers" / "acme" / "projections.rebuilding").exists()
    projections = open_projections(data_dir)
    try:
        assert snapshot(projections) == before
    finally:
        projections.close()


def test_rebuild_of_an_unknown_ledger(tmp_path, populated):
    data_dir, _, _ = populated
    with pytest.raises(LedgerError) as info:
        run_rebuild(data_dir, "nope")
    assert info.value.code == "unknown_ledger"
    with pytest.raises(LedgerError) as info:
        run_rebuild(data_dir, "Not_A_Ledger")
    assert info.value.code == "invalid_ledger_id"
    assert not (data_dir / "ledgers" / "nope").exists()


# ------------------------------------------------------------------------------ the command

def test_cli_rebuild_ok(populated, capsys):
    data_dir, before, _ = populated
    assert main(["--data-dir", str(data_dir), "rebuild", "acme", "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert "rebuilt ledger acme" in out
    assert "12 records" in out
    assert f"{len(before['checkpoints'])} checkpoint roots reproduced bit for bit" in out
    assert "REBUILD FAILED" not in out + err


def test_cli_rebuild_reports_a_forged_checkpoint(populated, capsys):
    data_dir, before, _ = populated
    forge_checkpoint(data_dir, 9)
    assert main(["--data-dir", str(data_dir), "rebuild", "acme", "--quiet"]) == 3
    out, err = capsys.readouterr()
    assert "REBUILD FAILED for ledger acme" in err
    assert "first bad checkpoint size: 9" in err
    assert "old projections were kept" in err
    assert "rebuilt ledger" not in out
    projections = open_projections(data_dir)
    try:
        assert snapshot(projections) == before
    finally:
        projections.close()


def test_cli_rebuild_of_an_unknown_ledger(populated, capsys):
    data_dir, _, _ = populated
    assert main(["--data-dir", str(data_dir), "rebuild", "nope", "--quiet"]) == 1
    out, err = capsys.readouterr()
    assert "evledger rebuild: error: no ledger 'nope'" in err
    assert out == ""
