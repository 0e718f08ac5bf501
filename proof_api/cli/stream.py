"""`evledger stream worker|produce|create-ledger`: Kafka ingest (ingest/stream.py, docs/stream.md)."""
from __future__ import annotations

import argparse
import sys
import time

import click

from .backends import open_service, sequencer_settings
from .binding import Group, option
from .ledger import alg_option

_KAFKA_OPTIONS = (
    option("--broker", default="kafka://127.0.0.1:9092", envvar="EVLEDGER_KAFKA_BROKER", metavar="URL",
           help="Kafka bootstrap servers, kafka://HOST:PORT[;kafka://HOST:PORT]"),
    option("--topic", default="evidence", envvar="EVLEDGER_KAFKA_TOPIC", metavar="TOPIC",
           help="records topic, keyed by ledger id"),
    option("--kafka-ssl", is_flag=True, envvar="EVLEDGER_KAFKA_SSL",
           help="TLS to the broker, with the system's CAs unless --kafka-ssl-cafile"),
    option("--kafka-ssl-cafile", envvar="EVLEDGER_KAFKA_SSL_CAFILE", metavar="FILE",
           help="CA bundle (PEM) to verify the broker; turns TLS on"),
    option("--kafka-ssl-certfile", envvar="EVLEDGER_KAFKA_SSL_CERTFILE", metavar="FILE",
           help="client certificate (PEM) for mutual TLS"),
    option("--kafka-ssl-keyfile", envvar="EVLEDGER_KAFKA_SSL_KEYFILE", metavar="FILE", help="its private key"),
    option("--kafka-ssl-no-check-hostname", is_flag=True,
           help="do not match the broker's certificate to its host name"),
    option("--kafka-sasl-mechanism", type=click.Choice(("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")),
           envvar="EVLEDGER_KAFKA_SASL_MECHANISM", help="SASL mechanism; over TLS when TLS is on"),
    option("--kafka-sasl-username", envvar="EVLEDGER_KAFKA_SASL_USERNAME", metavar="USER", help="SASL user"),
    option("--kafka-sasl-password", envvar="EVLEDGER_KAFKA_SASL_PASSWORD", metavar="PASSWORD",
           help="SASL password (prefer the variable or the file to the flag, which shows in `ps`)"),
    option("--kafka-sasl-password-file", envvar="EVLEDGER_KAFKA_SASL_PASSWORD_FILE", metavar="FILE",
           help="file holding the SASL password"),
)


def kafka_options(command):
    """The broker, topic, TLS and SASL options every stream action takes."""
    for each in reversed(_KAFKA_OPTIONS):
        command = each(command)
    return command


def stream_settings(args: argparse.Namespace):
    """The StreamSettings of the options given; the worker's own options keep their defaults
    for `produce` and `create-ledger`."""
    from ingest.stream import StreamSettings

    password = args.kafka_sasl_password
    if args.kafka_sasl_password_file:
        with open(args.kafka_sasl_password_file, encoding="utf-8") as f:
            password = f.read().strip()
    worker = {name: getattr(args, name) for name in ("receipts_topic", "dead_letter_topic", "group", "batch_size",
                                                     "batch_latency", "layout", "commit_interval", "session_timeout")
              if hasattr(args, name)}
    if hasattr(args, "no_assign_evidence_ids"):
        worker["assign_evidence_ids"] = not args.no_assign_evidence_ids
    return StreamSettings(
        broker=args.broker, topic=args.topic, **worker,
        ssl=args.kafka_ssl, ssl_cafile=args.kafka_ssl_cafile or None, ssl_certfile=args.kafka_ssl_certfile or None,
        ssl_keyfile=args.kafka_ssl_keyfile or None, ssl_check_hostname=not args.kafka_ssl_no_check_hostname,
        sasl_mechanism=args.kafka_sasl_mechanism or None, sasl_username=args.kafka_sasl_username or None,
        sasl_password=password or None)


@click.group("stream", cls=Group, help="Kafka ingest: the worker, a producer, ledgers per partition")
def stream_group() -> None:
    pass


@stream_group.command("worker", help="consume the records topic: record in batches, publish receipts, "
                                     "dead-letter poison records (the single writer of its data directory)")
@kafka_options
@option("--receipts-topic", default="evidence-receipts", envvar="EVLEDGER_KAFKA_RECEIPTS_TOPIC", metavar="TOPIC",
        help="one message per record read: its receipt, or its error")
@option("--dead-letter-topic", default="evidence-dead-letter", envvar="EVLEDGER_KAFKA_DEAD_LETTER_TOPIC",
        metavar="TOPIC", help="a copy of every record that got an error, unchanged")
@option("--group", default="evledger-stream", envvar="EVLEDGER_KAFKA_GROUP", metavar="NAME",
        help="consumer group")
@option("--batch-size", type=int, default=1000, envvar="EVLEDGER_STREAM_BATCH_SIZE", metavar="N",
        help="records per batch at most")
@option("--batch-latency", type=float, default=0.05, envvar="EVLEDGER_STREAM_BATCH_LATENCY", metavar="S",
        help="seconds a batch waits to fill")
@option("--layout", type=click.Choice(("single", "partition")), default="single", envvar="EVLEDGER_STREAM_LAYOUT",
        help="single: one data directory, one worker per group; partition: DATA_DIR/partition-N per partition, "
             "several workers per group")
@option("--commit-interval", type=float, default=1.0, envvar="EVLEDGER_STREAM_COMMIT_INTERVAL", metavar="S",
        help="seconds between offset commits")
@option("--session-timeout", type=float, default=30.0, envvar="EVLEDGER_STREAM_SESSION_TIMEOUT", metavar="S",
        help="seconds before the group gives a silent (dead) worker's partitions to others")
@option("--no-assign-evidence-ids", is_flag=True,
        help="record records without an evidence_id as they are (a replay after a crash may then record them "
             "twice) instead of giving them kafka:TOPIC:PARTITION:OFFSET")
def worker(args) -> int:
    from ingest.ledger import LedgerService
    from ingest.kafka_partitioner import kafka_partitions
    from ingest.stream import PartitionDataDirs, SingleDataDir, run_worker

    from merkle.hashing import warm_up

    settings = stream_settings(args)
    warm_up()  # the SM3 kernels before the ledgers open and the worker joins its group
    kafka_partitions([b"warm-up"], 1)  # and the receipts' partitioner, off the event loop
    if settings.layout == "partition":
        if args.log != "rocksdb":
            raise ValueError("--layout partition keeps a RocksDB log per partition directory; it does not "
                             "take --log kurrentdb (docs/stream.md)")
        sequencer = sequencer_settings(args)
        ledgers = PartitionDataDirs(
            args.data_dir, lambda path: LedgerService(path, settings=sequencer))  # a RocksDB log in each
    else:
        ledgers = SingleDataDir(open_service(args))
    print(f"evledger stream worker: {settings.broker} topic {settings.topic} -> {settings.receipts_topic} "
          f"(dead letters {settings.dead_letter_topic}), group {settings.group}, layout {settings.layout}, "
          f"data {args.data_dir}", file=sys.stderr)
    return run_worker(settings, ledgers)


@stream_group.command("produce", help="send an NDJSON file (or - for stdin) of records for one ledger; returns "
                                      "once the broker acknowledged them all")
@click.argument("file")
@option("--ledger", required=True, help="the ledger id: the message key")
@kafka_options
def produce(args) -> int:
    """Send NDJSON lines as they are (the worker validates them), keyed by --ledger."""
    from ingest.ledger import check_ledger_id
    from ingest.stream import produce_records

    check_ledger_id(args.ledger)
    stream = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")
    with stream:
        lines = [line.rstrip(b"\r\n") for line in stream if line.strip()]
    started = time.perf_counter()
    sent = produce_records(args.broker, args.topic, lines, ledger=args.ledger, settings=stream_settings(args))
    seconds = time.perf_counter() - started
    partitions = sorted({m.partition for m in sent})
    print(f"produced {len(sent):,} records for ledger {args.ledger} to {args.topic} (partition "
          f"{', '.join(map(str, partitions)) or '-'}) in {seconds:.2f} s; all acknowledged by the broker",
          file=sys.stderr)
    return 0


@stream_group.command("create-ledger", help="--layout partition: create a ledger in DATA_DIR/partition-N, N the "
                                            "partition its id hashes to")
@click.argument("ledger")
@option("--partitions", type=int, metavar="N", help="partitions of the records topic (default: ask the broker)")
@alg_option
@kafka_options
def create_ledger(args) -> int:
    import asyncio

    from ingest.ledger import LedgerService
    from ingest.stream import PartitionDataDirs, partition_for, topic_partition_count

    partitions = args.partitions
    if partitions is None:
        partitions = asyncio.run(topic_partition_count(args.broker, args.topic, stream_settings(args)))
    partition = partition_for(args.ledger, partitions)
    path = PartitionDataDirs.path(args.data_dir, partition)
    with LedgerService(path, settings=sequencer_settings(args), start=False) as service:
        ledger = service.create_ledger(args.ledger, alg=args.alg)
        print(f"created ledger {ledger.id} ({ledger.alg}) in {path}: partition {partition} of the "
              f"{partitions} of {args.topic}")
        print(f"verifier key: {ledger.created['verifier_key']}")
    return 0
