"""A full disk during ingest, on a small filesystem made for the test (a tmpfs mounted here).

What must hold: receipts stop with 503 `log_unavailable` (never a 500, never a dead process),
nothing acknowledged is lost, reads go on, and once space is freed ingest and sealing resume by
themselves, without a restart; a restart and `evledger rebuild` then agree with every receipt.

Mounting needs root (or CAP_SYS_ADMIN). Without it these tests skip, except under CI=true,
where they fail: CI runs as root, so a skip there would hide that they never ran.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from evledger_dev.devbroker import free_port
from tests.api_helpers import wait_until
from tests.ci import in_ci
from ingest.log import LogError, NewEvent
from ingest.log_rocksdb import RocksDBLog

REPO = Path(__file__).resolve().parents[1]
OCCURRED = "2026-11-26T01:00:00Z"


# ------------------------------------------------------------------------------ the small filesystem

@contextlib.contextmanager
def small_filesystem(where: Path, size: str = "64m"):
    """A tmpfs of `size` mounted at `where` for the block, unmounted after it whatever happens."""
    where.mkdir(parents=True, exist_ok=True)
    reason = None
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        reason = "mounting a tmpfs needs root"
    elif shutil.which("mount") is None or shutil.which("umount") is None:
        reason = "mount/umount are not installed"
    else:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
                              capture_output=True, text=True, timeout=20)
        if done.returncode != 0:
            reason = f"`mount -t tmpfs` failed: {(done.stderr or done.stdout).strip()}"
    if reason is not None:
        message = f"the disk-full tests need a small filesystem of their own: {reason}"
        if in_ci():
            pytest.fail(f"{message}; under CI=true they must run (CI runs as root), not skip")
        pytest.skip(f"{message} (run as root, or in a container with CAP_SYS_ADMIN)")
    try:
        yield where
    finally:
        _unmount(where)


def _unmount(where: Path) -> None:
    for _ in range(20):
        if subprocess.run(["umount", str(where)], capture_output=True, timeout=20).returncode == 0:
            return
        time.sleep(0.1)  # a process that had files open there is still going away
    subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=20)


def fill_disk(directory: Path) -> Path:
    """Write a ballast file until the filesystem says ENOSPC; the caller deletes it to free space."""
    ballast = directory / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 20, 4096, 512):  # the last pages too: nothing bigger than a sliver is left
            block = bytes(size)
            while True:
                try:
                    os.write(fd, block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return ballast


# ------------------------------------------------------------------------------ the reopening handle (no mount)

class _FailingWrites:
    """Stands in for a rocksdict handle whose writes fail as RocksDB's do after a bad WAL append."""

    def __init__(self, db):
        self.db = db

    def write(self, batch, options=None):
        raise Exception("IO error: No space left on device: While appending to file: 000004.log")

    def __getattr__(self, name):
        return getattr(self.db, name)


def _options():
    from rocksdict import Options

    opts = Options(raw_mode=True)
    opts.create_if_missing(True)
    return opts


def _batch(**items):
    from rocksdict import WriteBatch

    batch = WriteBatch(raw_mode=True)
    for key, value in items.items():
        batch.put(key.encode(), value.encode())
    return batch


def test_handle_refuses_writes_after_a_failed_one_until_reopened(tmp_path):
    from merkle.rocks import RocksHandle, StorageUnavailable

    handle = RocksHandle(tmp_path / "db", _options, "a test database")
    try:
        handle.write(_batch(a="1"))
        handle._db = _FailingWrites(handle._db)
        with pytest.raises(Exception, match="No space left"):
            handle.write(_batch(b="2"))
        assert "No space left" in handle.failure
        with pytest.raises(StorageUnavailable):  # not even tried on the broken database
            handle.write(_batch(c="3"))
        assert handle.get(b"a") == b"1"  # reads go on
        assert handle.recover() is True
        assert handle.failure is None and handle.reopened == 1
        handle.write(_batch(d="4"))
        assert dict(handle.items()) == {b"a": b"1", b"d": b"4"}
        assert handle.recover() is False  # nothing to do
    finally:
        handle.close()


def test_handle_serves_reads_read_only_while_a_reopen_fails(tmp_path, monkeypatch):
    from merkle.rocks import RocksHandle, StorageUnavailable

    handle = RocksHandle(tmp_path / "db", _options, "a test database")
    try:
        handle.write(_batch(a="1"))
        handle._db = _FailingWrites(handle._db)
        with pytest.raises(Exception):
            handle.write(_batch(b="2"))
        real_open = RocksHandle._open

        def open_read_only_only(self, read_only=False):
            if not read_only:
                raise Exception("IO error: No space left on device: While appending to file: 000009.sst")
            return real_open(self, read_only=True)
        monkeypatch.setattr(RocksHandle, "_open", open_read_only_only)
        with pytest.raises(StorageUnavailable, match="reopening failed"):
            handle.recover()
        assert handle.read_only and handle.failure is not None
        assert handle.get(b"a") == b"1"
        with pytest.raises(StorageUnavailable, match="reopening again in"):  # backoff, not a reopen per call
            handle.recover()
        monkeypatch.setattr(RocksHandle, "_open", real_open)
        handle._next_try = 0.0
        assert handle.recover() is True and not handle.read_only
        handle.write(_batch(c="3"))
        assert handle.get(b"c") == b"3"
    finally:
        handle.close()


def test_handle_reopens_under_concurrent_readers_without_breaking_them(tmp_path):
    from merkle.rocks import RocksHandle

    handle = RocksHandle(tmp_path / "db", _options, "a test database")
    handle.write(_batch(**{f"k{i:04d}": str(i) for i in range(500)}))
    stop, errors, reads = threading.Event(), [], [0]

    def reader():
        while not stop.is_set():
            try:
                assert handle.get(b"k0007") == b"7"
                assert len(list(handle.items(from_key=b"k"))) == 500
                reads[0] += 1
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                return
    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for _ in range(20):
            handle._db = _FailingWrites(handle._db)
            with pytest.raises(Exception):
                handle.write(_batch(x="1"))
            assert handle.recover() is True
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        handle.close()
    assert not errors, errors[:3]
    assert handle.reopened == 20 and reads[0] > 0


def test_a_write_reported_failed_that_reached_the_disk_is_taken_in_after_the_reopen(tmp_path):
    """A failed fsync can report failure for a WAL append that the reopen then replays: those
    records were never acknowledged, but they are in the log now. The ledger re-reads the log
    before numbering anything, so seqs stay dense and a retry gets them back as duplicates."""
    from ingest.ledger import LedgerError, LedgerService
    from ingest.sequencer import SequencerSettings

    svc = LedgerService(tmp_path / "data", settings=SequencerSettings(batch_max_delay=0.05))
    try:
        ledger = svc.create_ledger("acme")
        before = ledger.submit([_record(i) for i in range(10)])
        handle = svc.log._db
        real = handle._db

        class WrittenThenFailed:
            def write(self, batch, options=None):
                real.write(batch, options)
                raise Exception("IO error: While fsync: a file: Input/output error")

            def __getattr__(self, name):
                return getattr(real, name)
        handle._db = WrittenThenFailed()
        with pytest.raises(LedgerError) as caught:
            ledger.submit([_record(i) for i in range(10, 20)])
        assert caught.value.code == "log_unavailable"
        assert svc.log.version("acme") == ledger._version  # not served before the reopen
        wait_until(lambda: svc.log.unavailable is None, 10, what="the log to reopen")
        again = ledger.submit([_record(i) for i in range(10, 25)])
        assert [r.duplicate for r in again] == [True] * 10 + [False] * 5
        assert [r.seq for r in before + again] == list(range(25))
        assert ledger.wait_for_checkpoint(25, timeout=20) is not None
        assert [ledger.projections.tree.leaf_hash(r.seq).hex() for r in before + again] == \
               [r.leaf_hash for r in before + again]
    finally:
        svc.close()


# ------------------------------------------------------------------------------ the log alone

def test_log_refuses_appends_on_a_full_disk_and_takes_them_again_by_itself(tmp_path):
    with small_filesystem(tmp_path / "small", "16m") as fs:
        log = RocksDBLog(fs / "log")
        try:
            acked = 0
            for i in range(20):
                acked = log.append("s", [NewEvent("X", os.urandom(2000))], acked)
            kept = [e.data for e in log.read("s")]
            ballast = fill_disk(fs)
            with pytest.raises(LogError, match="No space left"):
                log.append("s", [NewEvent("X", os.urandom(200_000))], acked)
            assert log.unavailable and "No space left" in log.unavailable
            with pytest.raises(LogError, match="waiting for free space"):  # refused at once, not written
                log.append("s", [NewEvent("X", b"small")], acked)
            assert log.version("s") == acked
            assert [e.data for e in log.read("s")] == kept  # reads go on

            ballast.unlink()
            # Reopened in the background, with no append to prompt it.
            wait_until(lambda: log.unavailable is None, 10, what="the log to reopen by itself")
            assert log.version("s") == acked
            assert log.append("s", [NewEvent("X", b"after")], acked) == acked + 1
        finally:
            log.close()
        reopened = RocksDBLog(fs / "log")
        try:
            assert [e.data for e in reopened.read("s")] == kept + [b"after"]
            assert reopened.torn_batches_discarded == []
        finally:
            reopened.close()


def test_sequencer_waits_out_a_full_disk_and_seals_by_itself(tmp_path):
    """Records acknowledged, then the disk fills before the sequencer writes them into the
    tree: it retries (not halted, no `ledger_halted`), reopens the projections once there is
    room and seals a checkpoint over every record."""
    from ingest.ledger import LedgerService
    from ingest.sequencer import SequencerSettings

    with small_filesystem(tmp_path / "small", "32m") as fs:
        settings = SequencerSettings(batch_max_delay=0.05)
        svc = LedgerService(fs / "data", settings=settings, start=False)  # the sequencer starts below
        try:
            ledger = svc.create_ledger("acme")
            receipts = ledger.submit([_record(i) for i in range(2000)])
            ballast = fill_disk(fs)
            ledger.sequencer.start()
            wait_until(lambda: ledger.sequencer.stalled is not None, 10, what="the sequencer to hit the full disk")
            assert "No space left" in ledger.projections.unavailable
            time.sleep(0.5)  # a few retries on the full disk
            assert ledger.sequencer.failure is None and ledger.sequencer._thread.is_alive()
            assert ledger.wait_for_checkpoint(len(receipts), timeout=0.1) is None

            ballast.unlink()
            checkpoint = ledger.wait_for_checkpoint(len(receipts), timeout=20)
            assert checkpoint is not None and checkpoint["size"] == len(receipts)
            wait_until(lambda: ledger.sequencer.stalled is None, 10, what="the sequencer to say it works again")
            assert ledger.projections.unavailable is None and ledger.sequencer.failure is None
            assert [ledger.projections.tree.leaf_hash(r.seq).hex() for r in receipts] == [r.leaf_hash for r in receipts]
        finally:
            svc.close()
        reopened = LedgerService(fs / "data", settings=settings)
        try:
            ledger = reopened.ledger("acme")
            assert ledger.record_count == len(receipts)
            assert ledger.projections.latest_checkpoint()["size"] == len(receipts)
        finally:
            reopened.close()


def test_file_store_upload_on_a_full_disk_is_storage_full_and_leaves_nothing(tmp_path):
    from proof_api.filestore import FileStore, StorageFull

    with small_filesystem(tmp_path / "small", "8m") as fs:
        store = FileStore(fs / "files")
        ballast = fill_disk(fs)
        blob = os.urandom(1 << 20)
        upload = None
        with pytest.raises(StorageFull) as caught:
            upload = store.begin("acme")
            upload.write(blob)
            upload.keep(hashlib.new("sm3", blob).hexdigest())
        if upload is not None:
            upload.discard()
        assert caught.value.code == "storage_full"
        assert not list((fs / "files").rglob(".incoming-*"))  # the partial upload is gone
        ballast.unlink()
        upload = store.begin("acme")
        upload.write(blob)
        kept = upload.keep(hashlib.new("sm3", blob).hexdigest())
        assert kept.read_bytes() == blob


def test_access_store_on_a_full_disk_changes_nothing_in_memory_or_on_disk(tmp_path):
    """A key created while the disk is full is refused (storage_full), not half-made: it
    does not work now and then vanish at the next restart, and the file stays whole."""
    from ingest.ledger import LedgerError
    from proof_api.access import AccessStore

    with small_filesystem(tmp_path / "small", "4m") as fs:
        store = AccessStore(fs / "access.json")
        _, admin = store.create_key("*", "admin")
        store.set_ip_rules("acme", ["10.0.0.0/8"], [])
        before = (fs / "access.json").read_bytes()
        ballast = fill_disk(fs)
        with pytest.raises(LedgerError) as caught:
            store.create_key("acme", "producer")
        assert caught.value.code == "storage_full"
        with pytest.raises(LedgerError):
            store.set_ip_rules("acme", [], ["10.0.0.1"])
        assert [k["role"] for k in store.keys()] == ["admin"] and store.ip_rules("acme")["allow"] == ["10.0.0.0/8"]
        assert (fs / "access.json").read_bytes() == before
        assert not (fs / "access.tmp").exists()
        ballast.unlink()
        _, producer = store.create_key("acme", "producer")
        reopened = AccessStore(fs / "access.json")
        assert reopened.authenticate(producer).role == "producer" and reopened.authenticate(admin).role == "admin"


# ------------------------------------------------------------------------------ evledger serve

def _evledger() -> list[str]:
    script = Path(sys.executable).with_name("evledger")
    return [str(script)] if script.exists() else [sys.executable, "-m", "proof_api.cli"]


def _record(i: int) -> dict:
    return {"content_hash": hashlib.new("sm3", f"disk-full-{i}".encode()).hexdigest(),
            "business_type": "account-opening", "occurred_at": OCCURRED, "evidence_id": f"df-{i:06d}"}


class Serve:
    """`evledger serve` in a subprocess; its stderr goes to a file off the small filesystem
    (a pipe nobody reads could fill up and stall it)."""

    def __init__(self, data: Path, logs: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stderr_path = logs
        self._stderr = open(logs, "ab")
        self.proc = subprocess.Popen(
            _evledger() + ["--data-dir", str(data), "--batch-max-delay", "0.05", "serve", "--host", "127.0.0.1",
                           "--port", str(self.port), "--anchor-min-interval", "0"],
            cwd=REPO, stdout=self._stderr, stderr=self._stderr, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        self.http = httpx.Client(base_url=self.url, timeout=10)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"evledger serve exited {self.proc.returncode}: {self.stderr()[-3000:]}")
            try:
                return self.http.get("/healthz").status_code == 200
            except httpx.TransportError:
                return False
        wait_until(up, 30, 0.1, what="evledger serve to answer /healthz")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM, and the exit status of a clean stop."""
        self.http.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        finally:
            self._stderr.close()

    def kill(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._stderr.close()


def test_evledger_serve_through_a_full_disk(tmp_path):
    """A producer keeps submitting while the disk fills up under `evledger serve`, and goes on
    after space is freed; nothing is restarted until every check has passed."""
    started = time.monotonic()
    with small_filesystem(tmp_path / "small", "64m") as fs:
        data = fs / "data"
        servers: list[Serve] = []
        try:
            server = Serve(data, tmp_path / "serve-1.log")
            servers.append(server)
            http = server.http
            admin = {"Authorization": f"Bearer {(data / 'admin.key').read_text().strip()}"}
            assert http.post("/v1/ledgers", json={"ledger": "acme"}, headers=admin).status_code == 201
            keys = {}
            for role in ("producer", "auditor"):
                r = http.post("/v1/ledgers/acme/api-keys", json={"role": role}, headers=admin)
                assert r.status_code == 201, r.text
                keys[role] = {"Authorization": f"Bearer {r.json()['key']}"}
            producer, auditor = keys["producer"], keys["auditor"]

            receipts: dict[str, tuple[int, str]] = {}  # evidence id -> (seq, leaf_hash), from every 200
            refused: list[list[dict]] = []  # batches answered 503 log_unavailable
            problems: list[str] = []  # what the producer saw that it must never see
            lock = threading.Lock()
            next_id = [0]

            def batch(n: int) -> list[dict]:
                with lock:
                    first = next_id[0]
                    next_id[0] += n
                return [_record(first + i) for i in range(n)]

            def submit(client: httpx.Client, records: list[dict]) -> int:
                r = client.post("/v1/ledgers/acme/records/batch", json=records, headers=producer)
                if r.status_code == 200:
                    body = r.json()
                    if body["recorded"] != len(records) or body["failed"] or any(i["duplicate"] for i in body["results"]):
                        problems.append(f"a 200 that did not record every record: {r.text[:300]}")
                    with lock:
                        for item in body["results"]:
                            receipts[item["evidence_id"]] = (item["seq"], item["leaf_hash"])
                elif r.status_code == 503 and r.json()["error"]["code"] == "log_unavailable":
                    with lock:
                        refused.append(records)
                else:  # never a 500, never another code
                    problems.append(f"{r.status_code}: {r.text[:300]}")
                return r.status_code

            stop_producing = threading.Event()
            statuses: list[tuple[float, int]] = []

            def produce() -> None:
                with httpx.Client(base_url=server.url, timeout=10) as client:
                    while not stop_producing.is_set():
                        try:
                            status = submit(client, batch(50))
                            health = client.get("/healthz").status_code
                        except httpx.TransportError as exc:
                            problems.append(f"the server stopped answering: {exc!r}")
                            return
                        statuses.append((time.monotonic(), status))
                        if health != 200:
                            problems.append(f"/healthz answered {health}")
                        time.sleep(0.02)

            def latest_checkpoint_size() -> int:
                r = http.get("/v1/ledgers/acme/checkpoints/latest", headers=auditor)
                return r.json()["size"] if r.status_code == 200 else 0

            for _ in range(3):  # before: the disk has room
                assert submit(http, batch(200)) == 200, problems
            first_seq, first_leaf = receipts[_record(0)["evidence_id"]]
            producer_thread = threading.Thread(target=produce, name="producer", daemon=True)
            producer_thread.start()
            try:
                wait_until(lambda: len(receipts) >= 1000, 15, what="the producer's first receipts")

                # The disk fills up during ingest, and stays full for a while.
                ballast = fill_disk(fs)
                filled = time.monotonic()
                wait_until(lambda: len(refused) >= 3 and time.monotonic() - filled > 1.5, 15, what=
                           "503 log_unavailable on the full disk")
                assert server.proc.poll() is None, "evledger serve died"
                ready = http.get("/readyz")
                assert ready.status_code == 503, ready.text
                assert any("log takes no writes" in p and "No space left" in p
                           for p in ready.json()["problems"]), ready.text
                read = http.get(f"/v1/ledgers/acme/records/{first_seq}", headers=auditor)  # reads go on
                assert read.status_code == 200 and read.json()["leaf_hash"] == first_leaf, read.text
                assert statuses[-1][1] == 503  # still refusing, not flapping

                # Space comes back: ingest resumes by itself, with no restart.
                ballast.unlink()
                freed = time.monotonic()
                wait_until(lambda: any(t > freed and s == 200 for t, s in statuses), 15, what="a 200 after freeing space")
            finally:
                stop_producing.set()
                producer_thread.join(15)
            assert not producer_thread.is_alive()
            assert not problems, problems[:5]
            # A refused batch sent again goes in whole, as new records: nothing of it got in before.
            retried = refused[-1]
            assert submit(http, retried) == 200, problems
            assert all(r["evidence_id"] in receipts for r in retried)
            total = len(receipts)
            assert total == next_id[0] - 50 * (len(refused) - 1)  # every batch but the refused ones, exactly
            wait_until(lambda: latest_checkpoint_size() >= total, 20, what="a checkpoint covering every receipt")
            wait_until(lambda: http.get("/readyz").status_code == 200, 15, what="/readyz to say ready again")

            chosen = random.Random(7).sample(sorted(receipts), 12) + [r["evidence_id"] for r in retried[:3]]
            sample = [(evidence_id, receipts[evidence_id]) for evidence_id in chosen]

            def check(client: httpx.Client) -> None:
                assert latest_checkpoint_size() == total  # exactly what was acknowledged: none lost, none extra
                last = client.get(f"/v1/ledgers/acme/records/{total - 1}", headers=auditor)
                assert last.status_code == 200, last.text
                beyond = client.get(f"/v1/ledgers/acme/records/{total}", headers=auditor)
                assert beyond.status_code == 404, beyond.text
                for evidence_id, (seq, leaf_hash) in sample:
                    got = client.get(f"/v1/ledgers/acme/records/{seq}", headers=auditor)
                    assert got.status_code == 200, got.text
                    assert got.json()["leaf_hash"] == leaf_hash
                    assert got.json()["record"]["evidence_id"] == evidence_id
            check(http)
            assert server.stop() == 0
            servers.remove(server)
            assert "Traceback" not in server.stderr(), server.stderr()[-5000:]

            # The log is the truth: a rebuild reproduces every checkpoint from it, and a restart agrees.
            rebuilt = subprocess.run(_evledger() + ["--data-dir", str(data), "rebuild", "acme", "--quiet"], cwd=REPO,
                                     capture_output=True, text=True, timeout=60)
            assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
            assert f"{total:,} records" in rebuilt.stdout, rebuilt.stdout
            server = Serve(data, tmp_path / "serve-2.log")
            servers.append(server)
            http = server.http
            check(http)
            assert server.stop() == 0
            servers.remove(server)
        finally:
            for server in servers:
                server.kill()
    assert time.monotonic() - started < 60
