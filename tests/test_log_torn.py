"""A torn or partially written batch at the end of the RocksDB log is found and handled on
open, loudly, and nothing acknowledged is lost."""
from __future__ import annotations

import logging
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from rocksdict import Options, Rdict

from ingest.log import LogError, NewEvent
from ingest.log_rocksdb import RocksDBLog, _event_key, _stream_prefix, encode_event

REPO = Path(__file__).resolve().parent.parent


def _events(n: int, tag: str) -> list[NewEvent]:
    return [NewEvent("EvidenceRecorded", f"{tag}-{i}".encode() * 10) for i in range(n)]


def _raw(path: Path) -> Rdict:
    opts = Options(raw_mode=True)
    return Rdict(str(path), opts)


def test_events_past_the_head_are_a_torn_batch_and_are_discarded(tmp_path, caplog):
    path = tmp_path / "log"
    with RocksDBLog(path) as log:
        log.append("acme", _events(5, "ok"), 0)
    # What a batch torn mid-write would leave: its events without the head that acknowledges them.
    db = _raw(path)
    prefix = _stream_prefix("acme")
    for pos in (5, 6, 7):
        db[_event_key(prefix, pos)] = encode_event(NewEvent("EvidenceRecorded", b"never acknowledged"))
    db.close()
    with caplog.at_level(logging.WARNING, logger="evledger.log"):
        log = RocksDBLog(path)
    try:
        assert log.torn_batches_discarded == [("acme", 5, 3)]
        assert "torn batch" in caplog.text and "3 unacknowledged event(s) after position 4" in caplog.text
        assert log.version("acme") == 5
        assert [e.data for e in log.read("acme")] == [e.data for e in _events(5, "ok")]
        # The next append takes positions 5.. and is not mixed with the discarded events.
        assert log.append("acme", _events(2, "next"), 5) == 7
        assert [e.data for e in log.read("acme", 5)] == [e.data for e in _events(2, "next")]
    finally:
        log.close()
    with RocksDBLog(path) as again:
        assert again.torn_batches_discarded == []
        assert again.version("acme") == 7


def test_a_stream_whose_only_batch_is_torn_disappears(tmp_path, caplog):
    path = tmp_path / "log"
    with RocksDBLog(path) as log:
        log.append("kept", _events(2, "k"), 0)
    db = _raw(path)
    db[_event_key(_stream_prefix("ghost"), 0)] = encode_event(NewEvent("LedgerCreated", b"{}"))
    db.close()
    with caplog.at_level(logging.WARNING, logger="evledger.log"):
        with RocksDBLog(path) as log:
            assert log.streams() == ["kept"]
            assert log.version("ghost") == 0
            assert list(log.read("ghost")) == []
            assert log.append("ghost", _events(1, "g"), 0) == 1
    assert "stream 'ghost'" in caplog.text


def test_a_head_past_the_events_means_acknowledged_loss_and_refuses_to_open(tmp_path):
    path = tmp_path / "log"
    with RocksDBLog(path) as log:
        log.append("acme", _events(4, "ok"), 0)
    db = _raw(path)
    del db[_event_key(_stream_prefix("acme"), 3)]
    db.close()
    with pytest.raises(LogError, match="acknowledged events were lost"):
        RocksDBLog(path)


def test_a_corrupt_last_event_is_reported(tmp_path):
    path = tmp_path / "log"
    with RocksDBLog(path) as log:
        log.append("acme", _events(3, "ok"), 0)
    db = _raw(path)
    key = _event_key(_stream_prefix("acme"), 2)
    value = bytearray(db[key])
    value[-1] ^= 0xFF
    db[key] = bytes(value)
    db.close()
    with pytest.raises(LogError, match="checksum"):
        RocksDBLog(path)


_WRITER = """
import sys
from ingest.log import NewEvent
from ingest.log_rocksdb import RocksDBLog
log = RocksDBLog(sys.argv[1])
for g in range(40):
    v = log.append("acme", [NewEvent("EvidenceRecorded", b"g%d-e%d" % (g, i) * 20) for i in range(10)], g * 10)
    print(v, flush=True)
import time
time.sleep(60)
"""


def test_a_write_torn_in_the_wal_by_a_crash_drops_only_that_write(tmp_path):
    """SIGKILL the writer (so the WAL is never flushed into tables), then cut the WAL's last
    record short, as a crash in the middle of the final write would. RocksDB's point-in-time
    recovery drops that record whole; the log opens consistent at the group before it."""
    path = tmp_path / "log"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], cwd=REPO, stdout=subprocess.PIPE)
    versions = [int(proc.stdout.readline()) for _ in range(40)]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert versions[-1] == 400
    wal = max(path.glob("*.log"), key=lambda p: p.stat().st_mtime)
    size = wal.stat().st_size
    with open(wal, "r+b") as f:
        f.truncate(size - 50)  # inside the last group's WAL record (10 events of ~100 bytes)
    with RocksDBLog(path) as log:
        assert log.version("acme") == 390
        events = list(log.read("acme"))
        assert len(events) == 390
        assert [e.data for e in events[-10:]] == [b"g38-e%d" % i * 20 for i in range(10)]
        assert log.append("acme", [NewEvent("EvidenceRecorded", b"after")], 390) == 391
