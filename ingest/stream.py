"""Streaming ingest through Kafka: a consumer-group worker (aiokafka) that records evidence
records from a topic and publishes a receipt (or an error) per record to another
(docs/stream.md).

    evidence (key: ledger id, value: record JSON)
        -> worker: consumer.getmany(max_records=batch_size), at most batch_latency waiting
           -> handle_batch: decode, validate and record per ledger through Ledger.submit
              (durable: Ledger.submit returns after the log's fsync)
           -> one message per record on evidence-receipts (and the poison ones on
              evidence-dead-letter), every send acknowledged by the broker
           -> only then may the group's committed offsets move past the batch.

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
    commit_interval: float = 1.0  # seconds between offset commits
    session_timeout: float = 30.0  # seconds: a worker silent this long leaves the group
    commit_every: int = 10_000  # or after this many durable, published records
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

    def aiokafka_auth(self) -> dict:
        """The credentials as aiokafka client keyword arguments."""
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


def partition_for(ledger_id: str, partitions: int) -> int:
    """The partition a record keyed by `ledger_id` goes to with Kafka's default partitioner
    (murmur2 of the key, as the Java client and aiokafka compute it)."""
    from .kafka_partitioner import kafka_partitions

    check_ledger_id(ledger_id)
    return int(kafka_partitions([ledger_id.encode()], partitions)[0])


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


# ------------------------------------------------------------------------------- the worker

def _default_on_fatal(exc: BaseException) -> None:
    """Stop at once without committing anything more: what was not committed is read again
    by the next worker, and idempotency keeps it from being recorded twice."""
    log.critical("stream worker stopping: %s; nothing of the failed batch was committed, a restarted "
                 "worker reads it again", exc)
    for handler in logging.getLogger().handlers:
        try:
            handler.flush()
        except Exception:
            pass
    os._exit(EXIT_FATAL)


class Publisher:
    """Sends a batch's receipts and dead letters through the worker's producer and waits until
    the broker acknowledged every one (acks=all). Replaceable in tests.

    Receipts go out as one producer batch per partition, the partition of each chosen as
    Kafka's default partitioner would (kafka_partitioner): aiokafka's per-message `send`
    (its pure-Python murmur2, a future per message) was half the worker's CPU. Dead letters,
    rare and carrying headers, go through `send`."""

    def __init__(self, producer, receipts_topic: str, dead_letter_topic: str):
        self.producer = producer
        self.receipts_topic = receipts_topic
        self.dead_letter_topic = dead_letter_topic

    async def publish(self, result: BatchResult) -> None:
        producer = self.producer
        pending = []  # aiokafka delivery futures
        for message in result.dead_letters:
            pending.append(await producer.send(self.dead_letter_topic, message.value, message.key,
                                               headers=list(message.headers)))
        if result.receipts:
            pending += await self._send_in_batches(self.receipts_topic, result.receipts)
        await asyncio.gather(*pending)  # raises if any was not delivered

    async def _send_in_batches(self, topic: str, messages: list[OutMessage]) -> list:
        from .kafka_partitioner import kafka_partitions

        producer = self.producer
        partitions = sorted(await producer.partitions_for(topic))
        chosen = kafka_partitions([m.key for m in messages], len(partitions))
        by_partition: dict[int, list[OutMessage]] = {}
        for message, index in zip(messages, chosen.tolist()):
            by_partition.setdefault(partitions[index], []).append(message)
        pending = []
        for partition, group in by_partition.items():
            batch = producer.create_batch()
            for message in group:
                if batch.append(key=message.key, value=message.value, timestamp=None) is None:  # full
                    pending.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()  # takes its first record whatever its size
                    batch.append(key=message.key, value=message.value, timestamp=None)
            if batch.record_count():
                pending.append(await producer.send_batch(batch, topic, partition=partition))
        return pending


class StreamWorker:
    """One member of the consumer group: fetch a batch (aiokafka `getmany`), record it off the
    event loop (BatchHandler, durable after the log's fsync), publish its receipts and dead
    letters (acks=all), and only then mark its offsets for commit. Offsets are committed every
    `commit_interval` seconds or `commit_every` records, when partitions are revoked and when
    the worker stops.

    A rebalance waits for the batch in hand: `on_partitions_revoked` (which aiokafka awaits
    before the group moves on, for up to the rebalance timeout) takes the batch lock, commits,
    and closes the revoked partitions' directories; a batch fetched before the revocation
    keeps only the records of partitions the listener still says are ours.

    Every wait on the broker also watches `stop`: a worker whose broker is gone still stops
    on SIGTERM (what it recorded is durable; its receipts' offsets are read again later).

    aiokafka directly, not faust-streaming: with faust's per-event machinery the worker ran
    at 0.015 of raw consume (docs/stream.md, "Delivery")."""

    def __init__(self, settings: StreamSettings, handler: BatchHandler,
                 on_fatal: Callable[[BaseException], None] = _default_on_fatal):
        self.settings = settings
        self.handler = handler
        self.on_fatal = on_fatal
        self.consumer = None
        self.producer = None
        self.publisher: Publisher | None = None
        # One thread: batches and partition releases run in order, off the event loop.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evledger-stream-batch")
        self._batch_lock: asyncio.Lock | None = None
        self._stop: asyncio.Event | None = None
        # What the rebalance listener last said is ours: aiokafka's own assignment() still
        # lists revoked partitions until the group's next assignment arrives.
        self._owned: set = set()
        self._uncommitted: dict = {}  # TopicPartition -> next offset, durable and published
        self._since_commit = 0
        self._last_commit = time.monotonic()
        self.batches = 0
        self.records = 0
        self.errors = 0

    def _clients(self):
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        s = self.settings
        auth = s.aiokafka_auth()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=s.bootstrap_servers, group_id=s.group, enable_auto_commit=False,
            auto_offset_reset="earliest",  # a new group starts at the beginning, not at the end
            max_poll_records=s.batch_size,
            fetch_max_wait_ms=self.batch_latency_ms,  # a fetch answers within the batch latency
            session_timeout_ms=int(s.session_timeout * 1000),
            heartbeat_interval_ms=int(min(3.0, s.session_timeout / 3) * 1000),
            # A batch may take a while behind a slow disk (retry_timeout, then the producer's
            # delivery timeout): the group waits for it, in a rebalance too, rather than
            # handing its partitions on while it still writes.
            max_poll_interval_ms=self.batch_deadline_ms,
            rebalance_timeout_ms=self.batch_deadline_ms,
            **auth)
        producer = AIOKafkaProducer(bootstrap_servers=s.bootstrap_servers, acks="all", linger_ms=2,
                                    max_batch_size=1 << 20, **auth)
        return consumer, producer

    @property
    def batch_latency_ms(self) -> int:
        return max(1, int(self.settings.batch_latency * 1000))

    @property
    def batch_deadline_ms(self) -> int:
        return max(300_000, int(self.settings.retry_timeout * 2000))

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set, then finish the batch in hand and commit."""
        self._batch_lock = asyncio.Lock()
        self._stop = stop
        self.consumer, self.producer = self._clients()
        if self.publisher is None:
            self.publisher = Publisher(self.producer, self.settings.receipts_topic, self.settings.dead_letter_topic)
        try:
            self.consumer.subscribe([self.settings.topic], listener=_rebalance_listener(self))
            if await self._start(stop):
                await self._consume(stop)
        finally:
            await _quietly(self.consumer.stop(), "closing the consumer")
            await _quietly(self.producer.stop(), "closing the producer")

    async def _start(self, stop: asyncio.Event) -> bool:
        """Connect both clients, retrying while the broker cannot be reached (0.5 s doubling
        up to 10 s); False if stopped first."""
        from aiokafka.errors import KafkaConnectionError
        from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(KafkaConnectionError),
            wait=wait_exponential(multiplier=0.5, max=10.0),
            sleep=lambda seconds: _until_stopped(asyncio.sleep(seconds), stop),  # a stop cuts it short
            before_sleep=lambda state: log.warning("broker %s not reachable (%s); retrying in %.1f s",
                                                   self.settings.broker, state.outcome.exception(),
                                                   state.upcoming_sleep),
            reraise=True)
        for client in (self.producer, self.consumer):
            async for attempt in retrying:
                with attempt:
                    if await _until_stopped(client.start(), stop) is _STOPPED:
                        return False
        return True

    async def _consume(self, stop: asyncio.Event) -> None:
        timeout_ms = self.batch_latency_ms
        while not stop.is_set():
            # getmany waits without a limit while the group rebalances: race it with the stop.
            fetched = await _until_stopped(
                self.consumer.getmany(timeout_ms=timeout_ms, max_records=self.settings.batch_size), stop)
            if fetched and fetched is not _STOPPED:
                async with self._batch_lock:
                    await self.process(fetched)
            await _until_stopped(self._maybe_commit(), stop)
        async with self._batch_lock:  # the last commit gets a short while, stop or not
            await self._commit(timeout=min(self.settings.session_timeout, 5.0))

    async def process(self, fetched: dict) -> None:
        """Record one fetched batch ({TopicPartition: [ConsumerRecord]}) and publish its
        results; on any failure nothing of it is marked, and on_fatal decides what happens."""
        fetched = {tp: msgs for tp, msgs in fetched.items() if msgs and tp in self._owned}
        records = [InRecord(m.key, m.value, m.topic, m.partition, m.offset)
                   for msgs in fetched.values() for m in msgs]
        if not records:
            return
        try:
            loop = asyncio.get_running_loop()
            started = time.perf_counter()
            result = await loop.run_in_executor(self.executor, self.handler.handle, records)
            recorded = time.perf_counter()
            # A stop gives the delivery a few seconds: a broker that is gone would hold it for
            # the producer's whole request timeout (40 s).
            if await _until_stopped(self.publisher.publish(result), self._stop, grace=5.0) is _STOPPED:
                log.warning("stopping with %d receipts not delivered: their records are durable and are read "
                            "again (as duplicates) by the next worker", len(records))
                return  # nothing of this batch is marked
            if log.isEnabledFor(logging.DEBUG):
                log.debug("batch of %d: recorded in %.1f ms, receipts delivered in %.1f ms", len(records),
                          (recorded - started) * 1e3, (time.perf_counter() - recorded) * 1e3)
        except asyncio.CancelledError:
            raise  # stopping: nothing of this batch is marked, so it is read again
        except BaseException as exc:
            self.on_fatal(exc)
            raise
        # Durable in the log and every receipt acknowledged by the broker: only now may the
        # group's offsets move past these records.
        for tp, msgs in fetched.items():
            self._uncommitted[tp] = msgs[-1].offset + 1
        self._since_commit += len(records)
        self.batches += 1
        self.records += len(records)
        self.errors += len(result.dead_letters)

    async def _maybe_commit(self) -> None:
        if self._uncommitted and (self._since_commit >= self.settings.commit_every
                                  or time.monotonic() - self._last_commit >= self.settings.commit_interval):
            await self._commit()

    async def _commit(self, timeout: float | None = None) -> None:
        from aiokafka.errors import KafkaError

        offsets = {tp: offset for tp, offset in self._uncommitted.items() if tp in self._owned}
        self._uncommitted = dict(offsets)  # a revoked partition's offsets are its next owner's business
        if not offsets:
            return
        try:
            # aiokafka retries a commit without a limit while the coordinator is unreachable.
            await asyncio.wait_for(self.consumer.commit(offsets), timeout or self.settings.session_timeout)
        except (KafkaError, asyncio.TimeoutError) as exc:
            # Left to the next commit (or to the partition's next owner, who reads these
            # records again and finds them recorded: duplicates, never losses).
            log.warning("offset commit failed (%s); the records are durable and will be committed later or "
                        "read again as duplicates", str(exc) or "no answer in time")
            return
        for tp, offset in offsets.items():
            if self._uncommitted.get(tp) == offset:
                del self._uncommitted[tp]
        self._since_commit = 0
        self._last_commit = time.monotonic()

    async def partitions_revoked(self, revoked) -> None:
        async with self._batch_lock:  # the batch in hand finishes first
            await self._commit()
            self._owned -= set(revoked)
            self._uncommitted = {tp: o for tp, o in self._uncommitted.items() if tp not in revoked}
            partitions = {tp.partition for tp in revoked if tp.topic == self.settings.topic}
            if partitions:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(self.executor, self.handler.ledgers.release, partitions)

    async def partitions_assigned(self, assigned) -> None:
        self._owned = set(assigned)
        mine = sorted(tp.partition for tp in assigned if tp.topic == self.settings.topic)
        log.info("assigned partitions %s of %s", mine, self.settings.topic)
        if self.settings.layout == "single":
            total = self.consumer.partitions_for_topic(self.settings.topic)
            if total and len(mine) < len(total):
                # Its records would be dead-lettered as unknown_ledger here while the worker
                # that has their ledgers waits: consume nothing until the group gives this
                # worker the whole topic again (the next assignment starts unpaused).
                self.consumer.pause(*assigned)
                log.error("layout 'single' but this worker got %d of the %d partitions of %s: another worker "
                          "joined group %r, and the ledgers of one data directory must see every partition. "
                          "Consuming nothing until this worker has the whole topic again; use --layout "
                          "partition to run several workers (docs/stream.md)", len(mine), len(total),
                          self.settings.topic, self.settings.group)

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        self.handler.close()
        self.handler.ledgers.close()


_STOPPED = object()


async def _until_stopped(awaitable, stop: asyncio.Event, grace: float = 0.0):
    """`awaitable`'s result, or _STOPPED (it cancelled) if `stop` is set first and it does
    not finish within `grace` seconds after."""
    task = asyncio.ensure_future(awaitable)
    if not stop.is_set():
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait((task, stopping), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        finally:
            stopping.cancel()
    if not task.done() and grace > 0:
        await asyncio.wait((task,), timeout=grace)
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.wait((task,))
    if not task.cancelled() and task.exception() is not None:  # it failed as it was stopped
        log.warning("while stopping: %r", task.exception())
    return _STOPPED


async def _quietly(awaitable, what: str, timeout: float = 5.0) -> None:
    """Close a client without letting its failure (a broker gone mid-close) become the
    worker's: logged, not raised, and given `timeout` seconds (a producer's close waits for
    undelivered messages, up to its whole request timeout when the broker is gone). A
    cancellation of this task itself still propagates."""
    try:
        await asyncio.wait_for(awaitable, timeout)
    except asyncio.TimeoutError:
        log.warning("%s: no answer within %.0f s; left behind", what, timeout)
    except asyncio.CancelledError:
        if asyncio.current_task().cancelling():
            raise
        log.warning("%s: cancelled inside the client", what)
    except Exception as exc:
        log.warning("%s: %s", what, exc)


class RepeatedLogFilter(logging.Filter):
    """Lets a warning or error repeated word for word (same logger, level, template and
    arguments) through once every `interval` seconds; the next one let through says how many
    were held back. aiokafka logs every reconnect attempt and every failed fetch while a
    broker is gone, dozens of lines a second."""

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.interval = interval
        self.clock = clock
        self._last: dict[tuple, float] = {}
        self._held: dict[tuple, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        try:
            key = (record.name, record.levelno, record.msg, repr(record.args)[:500])
        except Exception:  # an argument whose repr fails: never hold such a record back
            return True
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        if len(self._last) > 1000:  # messages repeated in an outage are few; bounded whatever comes
            self._last.clear()
            self._held.clear()
        self._last[key] = now
        held = self._held.pop(key, 0)
        if held:
            record.msg = f"{record.msg} ({held} more like this since the last one shown)"
        return True


# aiokafka's loggers that repeat themselves while a broker is unreachable.
AIOKAFKA_LOGGERS = ("aiokafka", "aiokafka.conn", "aiokafka.cluster", "aiokafka.consumer.consumer",
                    "aiokafka.consumer.fetcher", "aiokafka.consumer.group_coordinator",
                    "aiokafka.producer.producer", "aiokafka.producer.sender")


def _rebalance_listener(worker: StreamWorker):
    """aiokafka's ConsumerRebalanceListener, handing both calls to the worker (aiokafka awaits
    them before the group goes on)."""
    from aiokafka.abc import ConsumerRebalanceListener

    class Rebalance(ConsumerRebalanceListener):
        async def on_partitions_revoked(self, revoked) -> None:
            await worker.partitions_revoked(revoked)

        async def on_partitions_assigned(self, assigned) -> None:
            await worker.partitions_assigned(assigned)

    return Rebalance()


def run_worker(settings: StreamSettings, ledgers: LedgerDirectory) -> int:
    """Run the worker until SIGINT/SIGTERM (a clean stop: the batch in hand finishes, its
    offsets are committed, the ledgers close). Returns the exit status."""
    import signal

    from aiokafka.errors import KafkaError

    worker = StreamWorker(settings, BatchHandler(ledgers, settings))
    repeated = RepeatedLogFilter()
    for name in AIOKAFKA_LOGGERS:
        logging.getLogger(name).addFilter(repeated)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def request_stop(signum: int) -> None:
            if stop.is_set():  # a second signal queued before the first was handled
                signal.raise_signal(signum)  # to the closing-time handler, now in place
                return
            log.info("stopping: finishing the batch in hand, committing, closing the ledgers")
            stop.set()
            # From here a repeated SIGTERM is only noted and a second Ctrl-C exits at once,
            # even while a wait on an unreachable broker runs out.
            hold_while_closing(loop, began_with=signum)

        def unretrieved(loop_, context: dict) -> None:
            # aiokafka leaves delivery futures of a broker that went away failed and unread;
            # asyncio would print each with a stack trace when it is collected.
            log.warning("%s: %r", context.get("message", "asyncio"), context.get("exception"))

        loop.set_exception_handler(unretrieved)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, request_stop, sig)
        try:
            await worker.run(stop)
        finally:
            hold_while_closing(loop)  # from here a repeated stop signal is only noted

    code = 0
    try:
        asyncio.run(main())
    except KafkaError as exc:
        log.error("stream worker: the broker at %s cannot be used: %s", settings.broker, exc)
        code = 1
    except Exception as exc:  # never a bare traceback: say what stopped the worker
        log.error("stream worker stopped by an unexpected error: %r", exc)
        code = 1
    finally:
        worker.close()
        ignore_for_exit()
    log.info("stream worker stopped: %d records in %d batches, %d errors", worker.records, worker.batches,
             worker.errors)
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
