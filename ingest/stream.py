"""Streaming ingest through Kafka: a faust-streaming app that records evidence records from a
topic and publishes a receipt (or an error) per record to another (docs/stream.md).

    evidence (key: ledger id, value: record JSON)
        -> worker: stream.noack_take(batch_size, within=batch_latency)
           -> handle_batch: decode, validate and record per ledger through Ledger.submit
              (durable: Ledger.submit returns after the log's fsync)
           -> one message per record on evidence-receipts (and the poison ones on
              evidence-dead-letter), every send acknowledged by the broker
           -> only then the batch's events are acked, so faust may commit their offsets.

At least once + idempotency = exactly once recording: a worker killed at any moment re-reads
everything after the last committed offset; records already in the log come back as
duplicates (by evidence id) and are not recorded again. A record without an evidence id gets
one derived from where it sits in the topic (`kafka:<topic>:<partition>:<offset>`), so a
replay finds it too.

The worker is the single writer of the ledgers it opens: `evledger serve` (or another worker)
must never use the same data directory at the same time (RocksDB's lock refuses the second
opener of a log). Two layouts:

  single     one data directory (one LedgerService) for every partition of the topic: one
             worker per consumer group.
  partition  one data directory per partition, <data dir>/partition-<N>: a worker opens the
             directory of each partition it is assigned and closes it when the partition is
             revoked, so several workers in one consumer group split the partitions and each
             ledger (always in the partition its key hashes to) has one writer.
"""
from __future__ import annotations

import asyncio
import logging
import os
import ssl
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, NamedTuple, Sequence

import orjson
from tenacity import Retrying, retry_if_exception, stop_before_delay, wait_exponential

from .ledger import LedgerError, LedgerService, check_ledger_id
from .log import LogError
from .records import RECORD_FIELD, RecordError
from evledger_common.stopping import hold_while_closing, ignore_for_exit

log = logging.getLogger("evledger.stream")

LAYOUTS = ("single", "partition")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
# Raised by Ledger.submit for a whole submission when the log could not take it: retried.
TRANSIENT_CODES = frozenset({"log_unavailable", "concurrent_writer"})
# Exit status of a worker that stopped because a batch could not be made durable (EX_TEMPFAIL):
# nothing of that batch was acked, so a restarted worker reads it again.
EXIT_FATAL = 75
ERROR_HEADER = "evledger-error"
SOURCE_HEADER = "evledger-source"
TRUNCATED_HEADER = "evledger-truncated"
# A dead letter carries the poison value as it came, up to this size (a valid record is at most
# 16 KiB); a longer one is cut, with its full length in the TRUNCATED_HEADER, so the dead
# letter always fits the producer's request size and can never stop the worker.
DEAD_LETTER_MAX_VALUE = 256 * 1024


# ---------------------------------------------------------------------------------- settings

@dataclass(frozen=True)
class StreamSettings:
    """Everything the worker and the producer helper need to reach the broker, and how the
    worker batches. Credentials: a CA file turns TLS on; a SASL mechanism turns SASL on (over
    TLS when TLS is on, else in clear: SASL_PLAINTEXT)."""

    broker: str = "kafka://127.0.0.1:9092"
    topic: str = "evidence"
    receipts_topic: str = "evidence-receipts"
    dead_letter_topic: str = "evidence-dead-letter"
    group: str = "evledger-stream"
    batch_size: int = 1000
    batch_latency: float = 0.05  # seconds: the longest a record waits for its batch to fill
    layout: str = "single"
    assign_evidence_ids: bool = True
    commit_interval: float = 1.0  # seconds between offset commits (faust broker_commit_interval)
    session_timeout: float = 30.0  # seconds: a worker silent this long leaves the group
    commit_every: int = 10_000  # or after this many acked records (faust broker_commit_every)
    retry_timeout: float = 60.0  # how long a batch retries a failing log before the worker exits
    ledger_threads: int = 4  # ledgers of one batch written at once (they share the log's fsync)
    ssl: bool = False
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool = True
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch size must be a positive integer, got {self.batch_size!r}")
        if not self.batch_latency > 0:
            raise ValueError(f"batch latency must be > 0 seconds, got {self.batch_latency!r}")
        if self.sasl_mechanism is not None:
            if self.sasl_mechanism.upper() not in SASL_MECHANISMS:
                raise ValueError(f"SASL mechanism must be one of {', '.join(SASL_MECHANISMS)}, "
                                 f"got {self.sasl_mechanism!r}")
            if not self.sasl_username or self.sasl_password is None:
                raise ValueError("SASL needs a user name and a password")
        if not self.session_timeout >= 2:
            raise ValueError(f"session timeout must be at least 2 seconds, got {self.session_timeout!r}")
        if len({self.topic, self.receipts_topic, self.dead_letter_topic}) != 3:
            raise ValueError("the evidence, receipts and dead-letter topics must be three different topics")

    @property
    def tls(self) -> bool:
        return bool(self.ssl or self.ssl_cafile or self.ssl_certfile)

    @property
    def bootstrap_servers(self) -> list[str]:
        return bootstrap_servers(self.broker)

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.ssl_cafile)
        if self.ssl_certfile:
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        context.check_hostname = self.ssl_check_hostname
        return context

    def faust_credentials(self):
        """What faust's `broker_credentials` takes (it hands it to aiokafka), or None."""
        import faust

        context = self.ssl_context()
        if self.sasl_mechanism:
            return faust.SASLCredentials(username=self.sasl_username, password=self.sasl_password,
                                         ssl_context=context, mechanism=self.sasl_mechanism.upper())
        if context is not None:
            return faust.SSLCredentials(context)
        return None

    def aiokafka_auth(self) -> dict:
        """The same credentials as aiokafka client keyword arguments."""
        context = self.ssl_context()
        if self.sasl_mechanism:
            return {"security_protocol": "SASL_SSL" if context else "SASL_PLAINTEXT", "ssl_context": context,
                    "sasl_mechanism": self.sasl_mechanism.upper(), "sasl_plain_username": self.sasl_username,
                    "sasl_plain_password": self.sasl_password}
        if context is not None:
            return {"security_protocol": "SSL", "ssl_context": context}
        return {"security_protocol": "PLAINTEXT"}


def bootstrap_servers(broker: str) -> list[str]:
    """`kafka://h1:9092;kafka://h2:9092` or `h1:9092,h2:9092` -> ["h1:9092", "h2:9092"]."""
    servers = []
    for part in broker.replace(";", ",").split(","):
        part = part.strip()
        if "://" in part:
            scheme, part = part.split("://", 1)
            if scheme not in ("kafka", "aiokafka", "tcp"):
                raise ValueError(f"broker URL scheme must be kafka://, got {scheme}://")
        part = part.rstrip("/")
        if part:
            servers.append(part)
    if not servers:
        raise ValueError(f"no broker address in {broker!r}")
    return servers


def faust_broker_url(broker: str) -> str:
    return ";".join(f"kafka://{s}" for s in bootstrap_servers(broker))


def partition_for(ledger_id: str, partitions: int) -> int:
    """The partition a record keyed by `ledger_id` goes to with Kafka's default partitioner
    (murmur2 of the key, as the Java client and aiokafka compute it)."""
    from aiokafka.partitioner import murmur2

    check_ledger_id(ledger_id)
    if partitions < 1:
        raise ValueError(f"a topic has at least one partition, got {partitions}")
    return (murmur2(ledger_id.encode()) & 0x7FFFFFFF) % partitions


def ledgers_on_distinct_partitions(partitions: int) -> list[str]:
    """Ledger ids ledger-<i>, one for each partition in order: for tests and benchmarks that
    need every partition to hold a ledger."""
    found: dict[int, str] = {}
    i = 0
    while len(found) < partitions:
        found.setdefault(partition_for(f"ledger-{i}", partitions), f"ledger-{i}")
        i += 1
    return [found[p] for p in range(partitions)]


# ----------------------------------------------------------------------- where ledgers live

class LedgerDirectory:
    """Which LedgerService holds the ledgers of a partition."""

    def service_for(self, partition: int) -> LedgerService:
        raise NotImplementedError

    def release(self, partitions: Iterable[int]) -> None:
        """The worker lost these partitions: close what it opened for them only."""

    def close(self) -> None:
        raise NotImplementedError


class SingleDataDir(LedgerDirectory):
    """One LedgerService (one data directory, or one KurrentDB log) for every partition."""

    def __init__(self, service: LedgerService):
        self.service = service

    def service_for(self, partition: int) -> LedgerService:
        return self.service

    def close(self) -> None:
        self.service.close()


class PartitionDataDirs(LedgerDirectory):
    """A data directory per partition, `<root>/partition-<N>`, opened when the partition's
    first record arrives and closed when the partition is revoked. Opening waits while the
    previous owner (another worker) still holds the log's lock, up to `open_timeout`."""

    def __init__(self, root: str | os.PathLike, open_service: Callable[[Path], LedgerService] | None = None,
                 open_timeout: float = 60.0):
        self.root = Path(root)
        self._open_service = open_service or (lambda path: LedgerService(path))
        self.open_timeout = open_timeout
        self._services: dict[int, LedgerService] = {}
        self._lock = threading.Lock()

    @staticmethod
    def path(root: str | os.PathLike, partition: int) -> Path:
        return Path(root) / f"partition-{partition}"

    def service_for(self, partition: int) -> LedgerService:
        with self._lock:
            service = self._services.get(partition)
            if service is None:
                service = self._services[partition] = self._open(partition)
            return service

    def _open(self, partition: int) -> LedgerService:
        path = self.path(self.root, partition)
        path.mkdir(parents=True, exist_ok=True)
        # The worker that had this partition may still be closing it: wait for the log's lock,
        # 0.05 s doubling up to 1 s, giving up (with the lock error) before open_timeout runs out.
        retrying = Retrying(
            retry=retry_if_exception(lambda exc: isinstance(exc, LogError) and "lock" in str(exc).lower()),
            wait=wait_exponential(multiplier=0.05, max=1.0),
            stop=stop_before_delay(self.open_timeout),
            before_sleep=lambda _: log.info("partition %d: %s is still held by its previous owner; waiting",
                                            partition, path),
            reraise=True,
        )
        service = retrying(self._open_service, path)
        log.info("partition %d: opened %s (ledgers: %s)", partition, path, ", ".join(service.ledgers()) or "none")
        return service

    def opened(self) -> list[int]:
        with self._lock:
            return sorted(self._services)

    def release(self, partitions: Iterable[int]) -> None:
        with self._lock:
            for partition in sorted(set(partitions)):
                service = self._services.pop(partition, None)
                if service is not None:
                    service.close()
                    log.info("partition %d: closed (revoked)", partition)

    def close(self) -> None:
        self.release(list(self._services))


# --------------------------------------------------------------------- the batch, no broker

class InRecord(NamedTuple):
    """One consumed message: where it sits and its raw key and value."""

    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int

    @property
    def source(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"


class OutMessage(NamedTuple):
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


class BatchResult(NamedTuple):
    receipts: list[OutMessage]  # one per input record, in input order
    dead_letters: list[OutMessage]  # one per poison record, in input order


class FatalStreamError(RuntimeError):
    """The batch could not be made durable (the log keeps failing, a partition's directory
    cannot be opened): none of it may be acked, and the worker must stop."""


def _error_dict(exc: Exception) -> dict:
    if isinstance(exc, RecordError):
        return exc.as_dict()
    return {"code": getattr(exc, "code", "error"), "message": str(exc)}


class _Item:
    __slots__ = ("record", "ledger", "evidence_id", "key", "body", "result")

    def __init__(self, record: InRecord):
        self.record = record
        self.ledger: str | None = None
        self.evidence_id: str | None = None
        self.key: str | None = None  # the receipt's key
        self.body = None  # the decoded record
        self.result = None  # Receipt | RecordError | LedgerError


class BatchHandler:
    """Turns a batch of consumed messages into recorded evidence and the messages to publish:
    the pure part of the worker, testable without a broker. `handle` blocks (the log's
    fsync): the worker runs it off the event loop."""

    def __init__(self, ledgers: LedgerDirectory, settings: StreamSettings = StreamSettings()):
        self.ledgers = ledgers
        self.settings = settings
        self._pool = ThreadPoolExecutor(max_workers=max(1, settings.ledger_threads),
                                        thread_name_prefix="evledger-stream-ledger")

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def handle(self, records: Sequence[InRecord]) -> BatchResult:
        items = [self._decode(r) for r in records]
        groups: dict[tuple[int, str], list[_Item]] = {}
        for item in items:
            if item.result is None:
                groups.setdefault((item.record.partition, item.ledger), []).append(item)
        jobs = []
        for (partition, ledger_id), group in groups.items():
            try:
                service = self.ledgers.service_for(partition)
            except Exception as exc:
                raise FatalStreamError(f"partition {partition}: cannot open its ledgers: {exc}") from exc
            try:
                ledger = service.ledger(ledger_id)
            except LedgerError as exc:
                where = f" in {service.data_dir}" if self.settings.layout == "partition" else ""
                error = LedgerError(exc.code, f"{exc}{where}")
                for item in group:
                    item.result = error
                continue
            jobs.append((ledger, group))
        if len(jobs) == 1:
            self._record(*jobs[0])
        elif jobs:
            for future in [self._pool.submit(self._record, ledger, group) for ledger, group in jobs]:
                future.result()
        return self._publishable(items)

    def _decode(self, record: InRecord) -> _Item:
        item = _Item(record)
        fallback_key = record.source
        try:
            if record.key is None:
                raise LedgerError("invalid_ledger_id", "the message has no key: the key must be the ledger id")
            try:
                ledger_id = record.key.decode("ascii")
            except UnicodeDecodeError:
                raise LedgerError("invalid_ledger_id", f"the message key {record.key[:80]!r} is not a ledger id "
                                  "([a-z0-9][a-z0-9-]{0,62})") from None
            item.ledger = check_ledger_id(ledger_id)
            fallback_key = f"{ledger_id}:{record.partition}:{record.offset}"
        except LedgerError as exc:
            item.result = exc
        body = None
        if record.value is None:
            error = RecordError(RECORD_FIELD, "json", "the message has no value (a tombstone); it must be a record")
        else:
            try:
                body = orjson.loads(record.value)
                error = None
            except orjson.JSONDecodeError as exc:
                error = RecordError(RECORD_FIELD, "json", f"the message value is not JSON: {exc}")
        evidence_id = body.get("evidence_id") if isinstance(body, dict) else None
        if isinstance(body, dict) and evidence_id is None and self.settings.assign_evidence_ids and error is None:
            evidence_id = body["evidence_id"] = f"kafka:{record.topic}:{record.partition}:{record.offset}"
        if isinstance(evidence_id, str) and 0 < len(evidence_id) <= 128:
            item.evidence_id = evidence_id
        item.key = item.evidence_id or fallback_key
        item.body = body
        if item.result is None and error is not None:
            item.result = error
        return item

    def _record(self, ledger, group: list[_Item]) -> None:
        """Ledger.submit validates (the API's code) and returns after the log's fsync; one
        result per record. The log failing is retried; a halted ledger fails its records."""
        bodies = [item.body for item in group]
        # 0.05 s doubling up to 2 s, giving up (with the last error) before retry_timeout runs out.
        retrying = Retrying(
            retry=retry_if_exception(lambda exc: isinstance(exc, LedgerError) and exc.code in TRANSIENT_CODES),
            wait=wait_exponential(multiplier=0.05, max=2.0),
            stop=stop_before_delay(self.settings.retry_timeout),
            before_sleep=lambda rs: log.warning("ledger %r: %s; retrying in %.2f s", ledger.id,
                                                rs.outcome.exception(), rs.upcoming_sleep),
            reraise=True,
        )
        try:
            results = retrying(ledger.submit, bodies)
        except LedgerError as exc:
            if exc.code in TRANSIENT_CODES:  # the log kept failing for retry_timeout
                raise FatalStreamError(f"ledger {ledger.id!r}: {exc}") from exc
            results = [exc] * len(group)  # this ledger refuses them (halted): they fail, the batch goes on
        except Exception as exc:
            raise FatalStreamError(f"ledger {ledger.id!r}: recording failed: {exc!r}") from exc
        for item, result in zip(group, results):
            item.result = result
            if not isinstance(result, Exception) and result.evidence_id:
                item.evidence_id = result.evidence_id

    def _publishable(self, items: list[_Item]) -> BatchResult:
        receipts, dead = [], []
        for item in items:
            r = item.record
            result = item.result
            body = {"ledger": item.ledger, "evidence_id": item.evidence_id}
            if isinstance(result, Exception):
                error = _error_dict(result)
                body["error"] = error
                headers = [(ERROR_HEADER, orjson.dumps(error)), (SOURCE_HEADER, r.source.encode())]
                key, dead_value = r.key, r.value
                if key is not None and len(key) > 1024:
                    key = key[:1024]
                if dead_value is not None and len(dead_value) > DEAD_LETTER_MAX_VALUE:
                    headers.append((TRUNCATED_HEADER, str(len(dead_value)).encode()))
                    dead_value = dead_value[:DEAD_LETTER_MAX_VALUE]
                dead.append(OutMessage(key, dead_value, tuple(headers)))
            else:
                body["receipt"] = result.as_dict()
            body["partition"] = r.partition
            body["offset"] = r.offset
            receipts.append(OutMessage(item.key.encode(), orjson.dumps(body)))
        return BatchResult(receipts, dead)


def handle_batch(ledgers: LedgerDirectory | LedgerService, records: Sequence[InRecord],
                 settings: StreamSettings = StreamSettings()) -> BatchResult:
    """One batch, without a broker (tests, tools): see BatchHandler."""
    if isinstance(ledgers, LedgerService):
        ledgers = SingleDataDir(ledgers)
    handler = BatchHandler(ledgers, settings)
    try:
        return handler.handle(records)
    finally:
        handler.close()


# ----------------------------------------------------------------------------- the faust app

def _default_on_fatal(exc: BaseException) -> None:
    """Stop at once without committing anything more: what was not acked is read again by
    the next worker, and idempotency keeps it from being recorded twice."""
    log.critical("stream worker stopping: %s; nothing of the failed batch was acknowledged, a restarted "
                 "worker reads it again", exc)
    for handler in logging.getLogger().handlers:
        try:
            handler.flush()
        except Exception:
            pass
    os._exit(EXIT_FATAL)


class Publisher:
    """Sends a batch's receipts and dead letters through the app's producer and waits until
    the broker acknowledged every one (acks=all). Replaceable in tests."""

    def __init__(self, app, receipts_topic: str, dead_letter_topic: str):
        self.app = app
        self.receipts_topic = receipts_topic
        self.dead_letter_topic = dead_letter_topic

    async def publish(self, result: BatchResult) -> None:
        send = self.app.producer.send  # faust's aiokafka producer; each send returns a delivery future
        pending = []
        for message in result.dead_letters:
            pending.append(await send(self.dead_letter_topic, message.key, message.value, None, None,
                                      list(message.headers)))
        topic = self.receipts_topic
        for message in result.receipts:
            pending.append(await send(topic, message.key, message.value, None, None, None))
        await asyncio.gather(*pending)  # raises if any was not delivered


class StreamRuntime:
    """What the agent needs besides faust: the batch handler, the publisher, the executor
    that runs handle() off the event loop (one thread: batches and partition releases run in
    order), and what to do when a batch cannot be made durable."""

    def __init__(self, handler: BatchHandler, on_fatal: Callable[[BaseException], None] = _default_on_fatal):
        self.handler = handler
        self.publisher: Publisher | None = None
        self.on_fatal = on_fatal
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evledger-stream-batch")
        self.batches = 0
        self.records = 0
        self.errors = 0

    async def process(self, stream, events: list) -> None:
        records = [InRecord(e.message.key, e.message.value, e.message.topic, e.message.partition, e.message.offset)
                   for e in events]
        try:
            loop = asyncio.get_running_loop()
            started = time.perf_counter()
            result = await loop.run_in_executor(self.executor, self.handler.handle, records)
            recorded = time.perf_counter()
            await self.publisher.publish(result)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("batch of %d: recorded in %.1f ms, receipts delivered in %.1f ms", len(records),
                          (recorded - started) * 1e3, (time.perf_counter() - recorded) * 1e3)
        except asyncio.CancelledError:
            raise  # stopping: nothing of this batch is acked, so it is read again
        except BaseException as exc:
            self.on_fatal(exc)
            raise
        # Durable in the log and every receipt acknowledged by the broker: only now may
        # faust commit past these records.
        for event in events:
            await stream.ack(event)
        self.batches += 1
        self.records += len(records)
        self.errors += len(result.dead_letters)

    async def release(self, partitions: set[int]) -> None:
        if partitions:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self.executor, self.handler.ledgers.release, partitions)

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        self.handler.close()
        self.handler.ledgers.close()


def make_app(settings: StreamSettings, handler: BatchHandler, *, datadir: str | os.PathLike,
             on_fatal: Callable[[BaseException], None] = _default_on_fatal):
    """The faust app: consumer group `settings.group`, the three topics, and the `ingest`
    agent. `app.evledger` is its StreamRuntime; `app.evledger_agent` the agent."""
    import faust

    app = faust.App(
        settings.group,
        broker=faust_broker_url(settings.broker),
        broker_credentials=settings.faust_credentials(),
        autodiscover=False,
        web_enabled=False,  # several workers on one machine; nothing to serve
        store="memory://",
        datadir=str(datadir),  # faust's table directory (this app has no tables): not ./<group>-data
        topic_disable_leader=True,  # no extra internal topic to create
        topic_allow_declare=False,  # the topics are the operator's (docs/stream.md)
        consumer_auto_offset_reset="earliest",  # a new group starts at the beginning, not at the end
        processing_guarantee="at_least_once",
        stream_publish_on_commit=False,
        stream_wait_empty=True,  # a rebalance and a stop wait for the batch in hand
        producer_acks=-1,
        producer_max_batch_size=1 << 20,  # a batch's receipts in few requests
        producer_linger=0.002,
        broker_commit_interval=settings.commit_interval,
        broker_commit_every=settings.commit_every,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=min(3.0, settings.session_timeout / 3),
        key_serializer="raw",
        value_serializer="raw",
    )
    evidence = app.topic(settings.topic, key_type=bytes, value_type=bytes, key_serializer="raw",
                         value_serializer="raw")
    runtime = StreamRuntime(handler, on_fatal)
    runtime.publisher = Publisher(app, settings.receipts_topic, settings.dead_letter_topic)

    async def ingest(stream):
        # noack_take, not take: take() acks a batch's events in a `finally` when the generator
        # resumes or is closed, which includes the agent raising; here nothing is acked but
        # by runtime.process after the batch is durable and its receipts are delivered.
        async for events in stream.noack_take(settings.batch_size, within=settings.batch_latency):
            await runtime.process(stream, list(events))

    agent = app.agent(evidence, name="evledger.stream.ingest", concurrency=1)(ingest)

    @app.on_partitions_revoked.connect
    async def on_revoked(app_, revoked, **kwargs) -> None:  # after faust waited for the batch in hand
        await runtime.release({tp.partition for tp in revoked if tp.topic == settings.topic})

    @app.on_partitions_assigned.connect
    async def on_assigned(app_, assigned, **kwargs) -> None:
        mine = sorted(tp.partition for tp in assigned if tp.topic == settings.topic)
        log.info("assigned partitions %s of %s", mine, settings.topic)
        if settings.layout == "single":
            try:
                total = app.consumer.topic_partitions(settings.topic)
            except Exception:
                total = None
            if total and len(mine) < total:
                log.error("layout 'single' but this worker got %d of the %d partitions of %s: another worker "
                          "joined group %r; its ledgers are not in this data directory. Use --layout partition "
                          "to run several workers (docs/stream.md)", len(mine), total, settings.topic, settings.group)

    app.evledger = runtime
    app.evledger_agent = agent
    return app


def run_worker(settings: StreamSettings, ledgers: LedgerDirectory, loglevel: str = "info",
               datadir: str | os.PathLike | None = None) -> int:
    """Run the worker until SIGINT/SIGTERM (a clean stop: the batch in hand finishes, acked
    offsets are committed, the ledgers close). Returns the exit status."""
    import shutil

    import faust

    # faust wants a directory for table state; this app has no tables, so a scratch one (not
    # its default, `<group>-data` in the working directory).
    scratch = None
    if datadir is None:
        datadir = scratch = tempfile.mkdtemp(prefix="evledger-faust-")

    class StoppingWorker(faust.Worker):
        def on_worker_shutdown(self) -> None:
            # Closing the event loop would put SIGTERM/SIGINT back to their defaults, and a
            # repeated stop signal would kill the process while the ledgers close below.
            hold_while_closing(self.loop)
            super().on_worker_shutdown()

    handler = BatchHandler(ledgers, settings)
    app = make_app(settings, handler, datadir=datadir)
    worker = StoppingWorker(app, loglevel=loglevel, quiet=True, override_logging=False, redirect_stdouts=False)
    code = 0
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        app.evledger.close()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        ignore_for_exit()
    log.info("stream worker stopped: %d records in %d batches, %d errors", app.evledger.records,
             app.evledger.batches, app.evledger.errors)
    return code


# ---------------------------------------------------------------------------------- producing

def _value_bytes(value) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    return orjson.dumps(value)


async def produce_records_async(broker: str, topic: str, records: Iterable, *, ledger: str | None = None,
                                settings: StreamSettings | None = None, linger_ms: int = 5,
                                on_sent: Callable[[int], None] | None = None) -> list:
    """Send records keyed by ledger id and return once the broker acknowledged them all
    (acks=all), with their RecordMetadata in order. Each item is a (ledger, record) pair, or
    just the record when `ledger` is given; a record is a dict (sent as JSON), or bytes/str
    (sent as they are)."""
    from aiokafka import AIOKafkaProducer

    auth = (settings or StreamSettings(broker=broker)).aiokafka_auth()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers(broker), acks="all", linger_ms=linger_ms,
                                max_batch_size=1 << 20, **auth)
    await producer.start()
    try:
        pending = []
        for item in records:
            if ledger is not None:
                key, value = ledger, item
            else:
                key, value = item
            pending.append(await producer.send(topic, key=check_ledger_id(key).encode(), value=_value_bytes(value)))
            if on_sent is not None:
                on_sent(len(pending))
        return list(await asyncio.gather(*pending))
    finally:
        await producer.stop()


def produce_records(broker: str, topic: str, records: Iterable, **kwargs) -> list:
    """The blocking form of produce_records_async (it runs its own event loop)."""
    return asyncio.run(produce_records_async(broker, topic, records, **kwargs))


async def topic_partition_count(broker: str, topic: str, settings: StreamSettings | None = None) -> int:
    """How many partitions the broker says `topic` has."""
    from aiokafka import AIOKafkaProducer

    auth = (settings or StreamSettings(broker=broker)).aiokafka_auth()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers(broker), **auth)
    await producer.start()
    try:
        partitions = await producer.partitions_for(topic)
    finally:
        await producer.stop()
    if not partitions:
        raise ValueError(f"the broker has no topic {topic!r}")
    return len(partitions)
