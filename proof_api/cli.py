"""`evledger`: one command, subcommands. Configuration: flags, then EVLEDGER_* variables."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time

import orjson


def _env(name: str, default: str) -> str:
    return os.environ.get(f"EVLEDGER_{name}", default)


def _env_number(name: str, default, kind):
    """A number from EVLEDGER_<name>, or a clear error naming the variable."""
    raw = os.environ.get(f"EVLEDGER_{name}")
    if raw is None:
        return default
    try:
        return kind(raw)
    except ValueError:
        raise SystemExit(f"evledger: error: EVLEDGER_{name}={raw!r} is not a valid {kind.__name__}") from None


def _settings(args: argparse.Namespace):
    from ingest.sequencer import SequencerSettings

    return SequencerSettings(batch_max_items=args.batch_max_items, batch_max_delay=args.batch_max_delay)


def open_log(args: argparse.Namespace):
    """The log backend the flags and environment name: RocksDB under the data directory, or
    a KurrentDB server."""
    if args.log == "kurrentdb":
        if not args.kurrentdb_uri:
            raise ValueError("--log kurrentdb needs --kurrentdb-uri or EVLEDGER_KURRENTDB_URI")
        from ingest.log_kurrentdb import KurrentDBLog
        return KurrentDBLog(args.kurrentdb_uri)
    from ingest.log_rocksdb import RocksDBLog
    return RocksDBLog(os.path.join(args.data_dir, "log"))


def open_service(args: argparse.Namespace, start: bool = True):
    from ingest.ledger import LedgerService

    return LedgerService(args.data_dir, open_log(args), _settings(args), start=start)


def _cmd_demo(args: argparse.Namespace) -> int:
    from evledger_dev.demo import run_demo  # dev-only: imported only when `demo` runs

    return run_demo(records=args.records, out_dir=args.out)


def _cmd_ledger_create(args: argparse.Namespace) -> int:
    with open_service(args, start=False) as service:
        ledger = service.create_ledger(args.ledger, alg=args.alg)
        key_id = ledger.created["key_id"]
        print(f"created ledger {ledger.id} ({ledger.alg}, checkpoint origin {ledger.origin}, signing key {key_id})")
        print(f"verifier key: {ledger.created['verifier_key']}")
    return 0


def _cmd_ledger_list(args: argparse.Namespace) -> int:
    with open_service(args, start=False) as service:
        for ledger_id in service.ledgers():
            ledger = service.ledger(ledger_id)
            latest = ledger.latest_checkpoint()
            sealed = latest["size"] if latest else 0
            print(f"{ledger_id}\t{ledger.alg}\trecords {ledger.record_count}\tcheckpointed {sealed}")
    return 0


def _cmd_ledger_rotate_key(args: argparse.Namespace) -> int:
    with open_service(args, start=False) as service:
        ledger = service.ledger(args.ledger)
        key_id, vkey = ledger.rotate_signing_key()
        print(f"ledger {ledger.id}: new signing key {key_id}; checkpoints signed before keep verifying "
              f"with their own key id")
        print(f"verifier key: {vkey}")
    return 0


def _cmd_ingest(args: argparse.Namespace) -> int:
    """Record NDJSON records; print one receipt or error per line, in order."""
    from ingest.records import RECORD_FIELD, RecordError

    stream = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")
    failed = 0
    with stream, open_service(args) as service:
        ledger = service.ledger(args.ledger)
        batch: list = []

        def flush() -> int:
            bad = 0
            records = [r for r in batch if not isinstance(r, RecordError)]
            submitted = iter(ledger.submit(records))
            for item in batch:
                result = item if isinstance(item, RecordError) else next(submitted)
                if isinstance(result, RecordError):
                    bad += 1
                    out = {"error": result.as_dict()}
                else:
                    out = result.as_dict()
                sys.stdout.buffer.write(orjson.dumps(out) + b"\n")
            sys.stdout.buffer.flush()
            batch.clear()
            return bad

        for lineno, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                batch.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                batch.append(RecordError(RECORD_FIELD, "json", f"line {lineno} is not JSON: {exc}"))
            if len(batch) >= args.batch:
                failed += flush()
        if batch:
            failed += flush()
        if args.wait:
            checkpoint = ledger.wait_for_checkpoint(ledger.record_count, timeout=args.batch_max_delay + 30)
            if checkpoint:
                print(f"checkpoint at size {checkpoint['size']}, root {checkpoint['root']}", file=sys.stderr)
    return 1 if failed else 0


def _cmd_rebuild(args: argparse.Namespace) -> int:
    from ingest.rebuild import rebuild_ledger

    log_backend = open_log(args)
    try:
        report = rebuild_ledger(args.data_dir, args.ledger, log_backend, progress=not args.quiet)
    finally:
        log_backend.close()
    if not report.ok:
        print(f"REBUILD FAILED for ledger {report.ledger}: {report.mismatch}", file=sys.stderr)
        print(f"first bad checkpoint size: {report.mismatch.size}; the old projections were kept", file=sys.stderr)
        return 3
    print(f"rebuilt ledger {report.ledger}: {report.events:,} events, {report.records:,} records, "
          f"{report.checkpoints_verified} checkpoint roots reproduced bit for bit, "
          f"{report.seconds:.1f} s ({report.events_per_second:,.0f} events/s)")
    return 0


def open_chain(args: argparse.Namespace):
    """The chain the flags and environment name: a JSON-RPC endpoint, or the in-process one."""
    from anchor.chain import Web3Chain, anchoring_key_from_env

    if not args.rpc:
        return Web3Chain.in_process()
    if not args.contract:
        raise ValueError("--rpc needs --contract ADDRESS (env EVLEDGER_CONTRACT); `evledger anchor deploy` makes one")
    key = anchoring_key_from_env()
    if not key:
        raise ValueError("anchoring to --rpc needs the anchoring account's key: EVLEDGER_ANCHOR_KEY_FILE "
                         "(a 0600 file with the hex key) or EVLEDGER_ANCHOR_KEY")
    return Web3Chain.from_rpc(args.rpc, args.contract, key, chain_id=args.chain_id)


def _anchor_settings(args: argparse.Namespace):
    from anchor.worker import AnchorSettings

    return AnchorSettings(min_interval=args.anchor_min_interval, confirmations=args.confirmations)


def _cmd_anchor_now(args: argparse.Namespace) -> int:
    from anchor.worker import AnchorWorker

    chain = open_chain(args)
    with open_service(args) as service:
        ledger = service.ledger(args.ledger)
        checkpoint = ledger.latest_checkpoint()
        if checkpoint is None:
            raise ValueError(f"ledger {args.ledger!r} has no checkpoint to anchor yet")
        worker = AnchorWorker(service, chain, _anchor_settings(args))
        worker.anchor_now(args.ledger)
        anchor = worker.wait_confirmed(args.ledger, checkpoint["size"], timeout=args.timeout)
        if anchor is None:
            print(f"evledger anchor now: not confirmed within {args.timeout:.0f} s "
                  f"({worker.metrics.last_error or 'still pending'})", file=sys.stderr)
            return 1
        print(f"ledger {ledger.id}: size {anchor['size']} root {anchor['root']} anchored on chain {anchor['chain_id']} "
              f"contract {anchor['contract']} in tx {anchor['tx_hash']}, block {anchor['block_number']} "
              f"({anchor['block_hash']}), {anchor['confirmations']} confirmation(s)")
    return 0


def _cmd_anchor_status(args: argparse.Namespace) -> int:
    with open_service(args, start=False) as service:
        ledger = service.ledger(args.ledger)
        anchors = ledger.anchors()
        if not anchors:
            print(f"ledger {ledger.id}: no anchors yet")
        for a in anchors:
            where = f"block {a['block_number']}" if a.get("block_number") else f"tx {a.get('tx_hash')}"
            extra = f" ({a['reason']})" if a["status"] == "failed" else ""
            print(f"{a['size']}\t{a['status']}\t{where}{extra}")
    return 0


def _cmd_anchor_verify(args: argparse.Namespace) -> int:
    """Read the anchor straight from the chain: needs no data directory and no service."""
    from web3 import HTTPProvider, Web3

    from anchor.chain import get_anchor, ledger_key, load_artifact

    origin = args.origin or f"evledger/{args.ledger}"
    try:
        root = bytes.fromhex(args.root)
    except ValueError:
        raise ValueError(f"ROOT must be 64 hex digits, got {args.root!r}") from None
    if len(root) != 32 or args.size < 1:
        raise ValueError("ROOT must be 32 bytes (64 hex digits) and SIZE at least 1")
    w3 = Web3(HTTPProvider(args.rpc, request_kwargs={"timeout": 10}))
    contract = w3.eth.contract(address=Web3.to_checksum_address(args.contract), abi=load_artifact()["abi"])
    try:
        found = get_anchor(contract, ledger_key(origin), args.size)
    except Exception as exc:
        raise OSError(f"cannot read the anchor from {args.rpc}: {exc}") from None
    print(f"chain {args.rpc}, contract {args.contract}, ledger origin {origin!r} (key 0x{ledger_key(origin).hex()})")
    if found is None:
        print(f"NOT ANCHORED: the contract holds no anchor for size {args.size}")
        return 1
    if found.root != root:
        print(f"MISMATCH: the contract holds root {found.root.hex()} for size {args.size}, not {root.hex()}")
        return 1
    print(f"VERIFIED: size {args.size} root {root.hex()} anchored in block {found.block_number} at "
          f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(found.timestamp))}")
    return 0


def _cmd_anchor_deploy(args: argparse.Namespace) -> int:
    from eth_account import Account
    from web3 import HTTPProvider, Web3

    from anchor.chain import anchoring_key_from_env, deploy_registry

    key = anchoring_key_from_env()
    if not key:
        raise ValueError("deploying needs the admin account's key: EVLEDGER_ANCHOR_KEY_FILE or EVLEDGER_ANCHOR_KEY")
    w3 = Web3(HTTPProvider(args.rpc, request_kwargs={"timeout": 30}))
    account = Account.from_key(key)
    address = deploy_registry(w3, account=account)
    print(f"AnchorRegistry deployed at {address} on chain {w3.eth.chain_id}; admin and first anchorer {account.address}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import create_app
    from .bodies import MAX_BATCH_BYTES, MIB, BodyTimeouts, InFlight
    from .runtime import Runtime

    from evledger_common.stopping import hold_while_closing, ignore_for_exit

    from .serving import check_tls_files, protocol_class, raise_open_files_limit

    if bool(args.ssl_certfile) != bool(args.ssl_keyfile):
        print("evledger serve: error: --ssl-certfile and --ssl-keyfile (env EVLEDGER_SSL_CERTFILE, "
              "EVLEDGER_SSL_KEYFILE) go together: give both or neither", file=sys.stderr)
        return 2
    for flag, value in (("--header-timeout", args.header_timeout), ("--body-timeout", args.body_timeout)):
        if not value > 0:
            print(f"evledger serve: error: {flag} must be over 0 seconds, not {value:g}", file=sys.stderr)
            return 2
    if args.ledger_in_flight_mib < MAX_BATCH_BYTES // MIB:  # a chunked batch is charged the whole limit
        print(f"evledger serve: error: --ledger-in-flight-mib must hold one full batch, at least "
              f"{MAX_BATCH_BYTES // MIB}, not {args.ledger_in_flight_mib}", file=sys.stderr)
        return 2
    if args.ssl_certfile:  # before anything opens: uvicorn would fail late, with a traceback
        check_tls_files(args.ssl_certfile, args.ssl_keyfile)
    raise_open_files_limit()
    _Server = _server_class()
    chain = open_chain(args)
    runtime = Runtime(args.data_dir, open_log(args), _settings(args), chain, _anchor_settings(args),
                      file_store=args.file_store or None)
    try:
        admin_key = runtime.bootstrap_admin_key()
        if admin_key:
            print(f"evledger serve: the service admin's API key was written to {admin_key} (0600); "
                  f"use it to create ledgers and their keys", file=sys.stderr)
        app = create_app(runtime, InFlight(per_ledger=args.ledger_in_flight_mib * MIB,
                                           total=max(256, 4 * args.ledger_in_flight_mib) * MIB),
                         BodyTimeouts.scaled(args.body_timeout))
        metrics = runtime.metrics

        def refused(status: int, code: str) -> None:  # answered below the app: counted here
            metrics.requests.labels(f"{status // 100}xx").inc()
            metrics.errors.labels(code).inc()

        # proxy_headers off: IP rules must see the real peer, not an X-Forwarded-For any local
        # client can write. The protocol adds the header timeout and size limits uvicorn lacks
        # (proof_api/serving.py); ws off: no route takes a WebSocket, so no upgrade hands the
        # connection to a library outside those limits. limit_max_requests stays off: uvicorn
        # would stop serving after that many requests, a count any client can run up.
        config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning",
                                access_log=False, timeout_graceful_shutdown=10, proxy_headers=False,
                                http=protocol_class(args.header_timeout, refused), ws="none",
                                limit_max_requests=None, ssl_certfile=args.ssl_certfile or None,
                                ssl_keyfile=args.ssl_keyfile or None)
        server = _Server(config)
        server.run()
    finally:
        hold_while_closing()  # the server's handlers are still in place until here
        runtime.close()  # sequencers flushed, databases closed: a clean stop
        ignore_for_exit()
    return 0


def _server_class():
    import contextlib

    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn re-raises SIGTERM/SIGINT once it has shut down, and puts the default
        handlers back first, so the first or a repeated signal kills the process before the
        ledgers close. Here a signal only ends serving, its handler stays until `serve` puts
        evledger_common.stopping's in its place, and `serve` returns."""

        @contextlib.contextmanager
        def capture_signals(self):
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self.handle_exit)
            yield

        def handle_exit(self, sig, frame) -> None:
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            self.should_exit = True

    return Server


def _read_bundle(path: str) -> dict:
    """The bundle at `path` (- for stdin), read as `evledger verify` reads it (load_bundle):
    a text that one entry point refuses, or reads another way, must not pass another."""
    from .verify import load_bundle, read_bundle_file

    try:
        raw = read_bundle_file(path)
    except OSError as exc:
        raise OSError(f"cannot read the bundle {path}: {exc.strerror}") from None
    try:
        bundle = load_bundle(raw)
    except ValueError as exc:  # StrictJSONError
        raise ValueError(f"{path}: the bundle cannot be read: {exc}") from None
    if not isinstance(bundle, dict):
        raise ValueError(f"{path} is not a proof bundle (a JSON object)")
    return bundle


def _cmd_verify(args: argparse.Namespace) -> int:
    """Offline: needs the bundle and, optionally, the file, the hash or a chain endpoint.
    Exit 0 for verdict 1, 1 for verdict 2, 2 when a file cannot be read."""
    from .verify import run

    return run(args.bundle, args.file, args.hash, args.rpc, keys=args.key, key_files=args.key_file,
               contract=args.contract)


def _cmd_certificate(args: argparse.Namespace) -> int:
    from .certificate import render_certificate

    html = render_certificate(_read_bundle(args.bundle))
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(html)
    print(f"wrote the data preservation certificate to {args.output}")
    return 0


# -- stream: Kafka ingest (ingest/stream.py, docs/stream.md) ------------------------------

def _stream_settings(args: argparse.Namespace):
    from ingest.stream import StreamSettings

    password = args.kafka_sasl_password
    if args.kafka_sasl_password_file:
        with open(args.kafka_sasl_password_file, encoding="utf-8") as f:
            password = f.read().strip()
    return StreamSettings(
        broker=args.broker, topic=args.topic,
        receipts_topic=getattr(args, "receipts_topic", "evidence-receipts"),
        dead_letter_topic=getattr(args, "dead_letter_topic", "evidence-dead-letter"),
        group=getattr(args, "group", "evledger-stream"),
        batch_size=getattr(args, "batch_size", 1000), batch_latency=getattr(args, "batch_latency", 0.05),
        layout=getattr(args, "layout", "single"),
        assign_evidence_ids=not getattr(args, "no_assign_evidence_ids", False),
        commit_interval=getattr(args, "commit_interval", 1.0),
        session_timeout=getattr(args, "session_timeout", 30.0),
        ssl=args.kafka_ssl, ssl_cafile=args.kafka_ssl_cafile or None, ssl_certfile=args.kafka_ssl_certfile or None,
        ssl_keyfile=args.kafka_ssl_keyfile or None, ssl_check_hostname=not args.kafka_ssl_no_check_hostname,
        sasl_mechanism=args.kafka_sasl_mechanism or None, sasl_username=args.kafka_sasl_username or None,
        sasl_password=password or None)


def _cmd_stream_worker(args: argparse.Namespace) -> int:
    from ingest.ledger import LedgerService
    from ingest.stream import PartitionDataDirs, SingleDataDir, run_worker

    from merkle.hashing import warm_up

    settings = _stream_settings(args)
    warm_up()  # the SM3 kernels before the ledgers open and the worker joins its group
    if settings.layout == "partition":
        if args.log != "rocksdb":
            raise ValueError("--layout partition keeps a RocksDB log per partition directory; it does not "
                             "take --log kurrentdb (docs/stream.md)")
        sequencer = _settings(args)
        ledgers = PartitionDataDirs(
            args.data_dir, lambda path: LedgerService(path, settings=sequencer))  # a RocksDB log in each
    else:
        ledgers = SingleDataDir(open_service(args))
    print(f"evledger stream worker: {settings.broker} topic {settings.topic} -> {settings.receipts_topic} "
          f"(dead letters {settings.dead_letter_topic}), group {settings.group}, layout {settings.layout}, "
          f"data {args.data_dir}", file=sys.stderr)
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
    return run_worker(settings, ledgers, loglevel=level)


def _cmd_stream_produce(args: argparse.Namespace) -> int:
    """Send NDJSON lines as they are (the worker validates them), keyed by --ledger."""
    from ingest.ledger import check_ledger_id
    from ingest.stream import produce_records

    check_ledger_id(args.ledger)
    stream = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")
    with stream:
        lines = [line.rstrip(b"\r\n") for line in stream if line.strip()]
    started = time.perf_counter()
    sent = produce_records(args.broker, args.topic, lines, ledger=args.ledger, settings=_stream_settings(args))
    seconds = time.perf_counter() - started
    partitions = sorted({m.partition for m in sent})
    print(f"produced {len(sent):,} records for ledger {args.ledger} to {args.topic} (partition "
          f"{', '.join(map(str, partitions)) or '-'}) in {seconds:.2f} s; all acknowledged by the broker",
          file=sys.stderr)
    return 0


def _cmd_stream_create_ledger(args: argparse.Namespace) -> int:
    """--layout partition: create a ledger in the directory of the partition its id hashes to."""
    import asyncio

    from ingest.ledger import LedgerService
    from ingest.stream import PartitionDataDirs, partition_for, topic_partition_count

    partitions = args.partitions
    if partitions is None:
        partitions = asyncio.run(topic_partition_count(args.broker, args.topic, _stream_settings(args)))
    partition = partition_for(args.ledger, partitions)
    path = PartitionDataDirs.path(args.data_dir, partition)
    with LedgerService(path, settings=_settings(args), start=False) as service:
        ledger = service.create_ledger(args.ledger, alg=args.alg)
        print(f"created ledger {ledger.id} ({ledger.alg}) in {path}: partition {partition} of the "
              f"{partitions} of {args.topic}")
        print(f"verifier key: {ledger.created['verifier_key']}")
    return 0


def _add_stream_parser(sub) -> None:
    stream = sub.add_parser("stream", help="Kafka ingest: the faust worker, a producer, ledgers per partition")
    kafka = argparse.ArgumentParser(add_help=False)
    kafka.add_argument("--broker", default=_env("KAFKA_BROKER", "kafka://127.0.0.1:9092"),
                       help="Kafka bootstrap servers, kafka://HOST:PORT[;kafka://HOST:PORT] "
                            "(env EVLEDGER_KAFKA_BROKER; default kafka://127.0.0.1:9092)")
    kafka.add_argument("--topic", default=_env("KAFKA_TOPIC", "evidence"),
                       help="records topic, keyed by ledger id (env EVLEDGER_KAFKA_TOPIC; default evidence)")
    kafka.add_argument("--kafka-ssl", action="store_true", default=_env("KAFKA_SSL", "") not in ("", "0", "false"),
                       help="TLS to the broker, with the system's CAs unless --kafka-ssl-cafile (env EVLEDGER_KAFKA_SSL)")
    kafka.add_argument("--kafka-ssl-cafile", default=_env("KAFKA_SSL_CAFILE", ""),
                       help="CA bundle (PEM) to verify the broker; turns TLS on (env EVLEDGER_KAFKA_SSL_CAFILE)")
    kafka.add_argument("--kafka-ssl-certfile", default=_env("KAFKA_SSL_CERTFILE", ""),
                       help="client certificate (PEM) for mutual TLS (env EVLEDGER_KAFKA_SSL_CERTFILE)")
    kafka.add_argument("--kafka-ssl-keyfile", default=_env("KAFKA_SSL_KEYFILE", ""),
                       help="its private key (env EVLEDGER_KAFKA_SSL_KEYFILE)")
    kafka.add_argument("--kafka-ssl-no-check-hostname", action="store_true",
                       help="do not match the broker's certificate to its host name")
    kafka.add_argument("--kafka-sasl-mechanism", default=_env("KAFKA_SASL_MECHANISM", ""),
                       choices=("", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
                       help="SASL mechanism; over TLS when TLS is on (env EVLEDGER_KAFKA_SASL_MECHANISM)")
    kafka.add_argument("--kafka-sasl-username", default=_env("KAFKA_SASL_USERNAME", ""),
                       help="SASL user (env EVLEDGER_KAFKA_SASL_USERNAME)")
    kafka.add_argument("--kafka-sasl-password", default=_env("KAFKA_SASL_PASSWORD", ""),
                       help="SASL password (env EVLEDGER_KAFKA_SASL_PASSWORD; prefer it or the file to the flag)")
    kafka.add_argument("--kafka-sasl-password-file", default=_env("KAFKA_SASL_PASSWORD_FILE", ""),
                       help="file holding the SASL password (env EVLEDGER_KAFKA_SASL_PASSWORD_FILE)")
    stream_sub = stream.add_subparsers(dest="stream_command", metavar="ACTION")

    worker = stream_sub.add_parser("worker", parents=[kafka],
                                   help="consume the records topic: record in batches, publish receipts, "
                                        "dead-letter poison records (the single writer of its data directory)")
    worker.add_argument("--receipts-topic", default=_env("KAFKA_RECEIPTS_TOPIC", "evidence-receipts"),
                        help="env EVLEDGER_KAFKA_RECEIPTS_TOPIC; default evidence-receipts")
    worker.add_argument("--dead-letter-topic", default=_env("KAFKA_DEAD_LETTER_TOPIC", "evidence-dead-letter"),
                        help="env EVLEDGER_KAFKA_DEAD_LETTER_TOPIC; default evidence-dead-letter")
    worker.add_argument("--group", default=_env("KAFKA_GROUP", "evledger-stream"),
                        help="consumer group (also the faust app id) (env EVLEDGER_KAFKA_GROUP; default evledger-stream)")
    worker.add_argument("--batch-size", type=int, default=_env_number("STREAM_BATCH_SIZE", 1000, int),
                        help="records per batch at most (env EVLEDGER_STREAM_BATCH_SIZE; default 1000)")
    worker.add_argument("--batch-latency", type=float, default=_env_number("STREAM_BATCH_LATENCY", 0.05, float),
                        help="seconds a batch waits to fill (env EVLEDGER_STREAM_BATCH_LATENCY; default 0.05)")
    worker.add_argument("--layout", choices=("single", "partition"), default=_env("STREAM_LAYOUT", "single"),
                        help="single: one data directory, one worker per group; partition: DATA_DIR/partition-N "
                             "per partition, several workers per group (env EVLEDGER_STREAM_LAYOUT; default single)")
    worker.add_argument("--commit-interval", type=float, default=_env_number("STREAM_COMMIT_INTERVAL", 1.0, float),
                        help="seconds between offset commits (env EVLEDGER_STREAM_COMMIT_INTERVAL; default 1)")
    worker.add_argument("--session-timeout", type=float, default=_env_number("STREAM_SESSION_TIMEOUT", 30.0, float),
                        help="seconds before the group gives a silent (dead) worker's partitions to others "
                             "(env EVLEDGER_STREAM_SESSION_TIMEOUT; default 30)")
    worker.add_argument("--no-assign-evidence-ids", action="store_true",
                        help="record records without an evidence_id as they are (a replay after a crash may "
                             "then record them twice) instead of giving them kafka:TOPIC:PARTITION:OFFSET")
    worker.set_defaults(func=_cmd_stream_worker)

    produce = stream_sub.add_parser("produce", parents=[kafka],
                                    help="send an NDJSON file (or - for stdin) of records for one ledger; "
                                         "returns once the broker acknowledged them all")
    produce.add_argument("file")
    produce.add_argument("--ledger", required=True, help="the ledger id: the message key")
    produce.set_defaults(func=_cmd_stream_produce)

    create = stream_sub.add_parser("create-ledger", parents=[kafka],
                                   help="--layout partition: create a ledger in DATA_DIR/partition-N, N the "
                                        "partition its id hashes to")
    create.add_argument("ledger")
    create.add_argument("--partitions", type=int, help="partitions of the records topic (default: ask the broker)")
    create.add_argument("--alg", choices=("sm3", "sha256"), default="sm3", help="tree hash (default sm3)")
    create.set_defaults(func=_cmd_stream_create_ledger)


def _cmd_bench_tool(args: argparse.Namespace) -> int:
    """`evledger bench` / `evledger capacity`: run bench.suite / bench.capacity from this source
    checkout with the arguments given (bench/ is not installed, and the service never imports it)."""
    import subprocess
    from pathlib import Path

    module = {"bench": "suite", "capacity": "capacity"}[args.command]
    root = Path(__file__).resolve().parent.parent
    if not (root / "bench" / f"{module}.py").is_file():
        print(f"evledger {args.command}: {root / 'bench' / (module + '.py')} is missing: run it from a source checkout",
              file=sys.stderr)
        return 1
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    return subprocess.call([sys.executable, "-m", f"bench.{module}", *args.tool_args], env=env)


def _add_bench_parsers(sub) -> None:
    # `evledger bench ...` and `evledger capacity ...` hand every argument to bench.suite and
    # bench.capacity (prefix_chars="+": their --options are theirs, and --help shows their help).
    for name, text in (("bench", "run every benchmark scenario into one report under bench/results/<UTC stamp>/ "
                                 "(--quick: a smoke check under two minutes); --help for its options"),
                       ("capacity", "what a target load costs in nodes, disk, Kafka partitions and chain "
                                    "transactions, from the latest bench results; --help for its options")):
        tool = sub.add_parser(name, help=text, add_help=False, prefix_chars="+")
        tool.add_argument("tool_args", nargs="*", metavar="ARGS")
        tool.set_defaults(func=_cmd_bench_tool)


def build_parser() -> argparse.ArgumentParser:
    from ingest.sequencer import SequencerSettings

    from .verify import add_arguments as verify_arguments

    defaults = SequencerSettings()
    # No abbreviations: "--batch" of a subcommand must not read as a prefix of --batch-max-items.
    parser = argparse.ArgumentParser(prog="evledger", description=__doc__, allow_abbrev=False)
    parser.add_argument("--data-dir", default=_env("DATA_DIR", "./data"),
                        help="data directory (env EVLEDGER_DATA_DIR; default ./data)")
    parser.add_argument("--log", choices=("rocksdb", "kurrentdb"), default=_env("LOG", "rocksdb"),
                        help="event log backend (env EVLEDGER_LOG; default rocksdb, in the data directory)")
    parser.add_argument("--kurrentdb-uri", default=_env("KURRENTDB_URI", ""),
                        help="KurrentDB/EventStoreDB URI for --log kurrentdb (env EVLEDGER_KURRENTDB_URI)")
    parser.add_argument("--batch-max-items", type=int, default=_env_number("BATCH_MAX_ITEMS", defaults.batch_max_items, int),
                        help=f"seal a checkpoint after this many records (env EVLEDGER_BATCH_MAX_ITEMS; "
                             f"default {defaults.batch_max_items})")
    parser.add_argument("--batch-max-delay", type=float, default=_env_number("BATCH_MAX_DELAY", defaults.batch_max_delay, float),
                        help=f"or after the oldest unsealed record waited this many seconds "
                             f"(env EVLEDGER_BATCH_MAX_DELAY; default {defaults.batch_max_delay})")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="the main job: the service end to end over HTTP, proofs verified offline")
    demo.add_argument("--records", type=int, default=_env_number("DEMO_RECORDS", 200_000, int),
                      help="how many generated records to stream in (default 200,000)")
    demo.add_argument("--out", default="demo-output", help="where the bundle, files and certificate go (default demo-output)")
    demo.set_defaults(func=_cmd_demo)

    ledger = sub.add_parser("ledger", help="create, list and manage ledgers")
    ledger_sub = ledger.add_subparsers(dest="ledger_command", metavar="ACTION")
    create = ledger_sub.add_parser("create", help="create a ledger with new SM2 and SM4 keys")
    create.add_argument("ledger", help="ledger id: [a-z0-9][a-z0-9-]{0,62}")
    create.add_argument("--alg", choices=("sm3", "sha256"), default="sm3", help="tree hash (default sm3)")
    create.set_defaults(func=_cmd_ledger_create)
    ledger_sub.add_parser("list", help="the ledgers and their sizes").set_defaults(func=_cmd_ledger_list)
    rotate = ledger_sub.add_parser("rotate-key", help="make a new SM2 signing key current (an event in the log)")
    rotate.add_argument("ledger")
    rotate.set_defaults(func=_cmd_ledger_rotate_key)

    ingest = sub.add_parser("ingest", help="record NDJSON evidence records from a file (or - for stdin); "
                                           "prints a receipt or an error per record")
    ingest.add_argument("ledger")
    ingest.add_argument("file")
    ingest.add_argument("--batch", type=int, default=1000, help="records per submission (default 1000)")
    ingest.add_argument("--wait", action="store_true", help="wait for the checkpoint that covers them")
    ingest.set_defaults(func=_cmd_ingest)

    anchor = sub.add_parser("anchor", help="anchor checkpoints on the chain, and check anchors")
    # The chain options belong to each action, so they read naturally after it:
    # `evledger anchor verify LEDGER SIZE ROOT --rpc URL --contract ADDR`.
    chain_opts = argparse.ArgumentParser(add_help=False)
    chain_opts.add_argument("--rpc", default=_env("CHAIN_RPC", ""),
                            help="EVM JSON-RPC endpoint (env EVLEDGER_CHAIN_RPC); without it, the in-process chain, "
                                 "which lives only as long as the process")
    chain_opts.add_argument("--chain-id", type=int, default=_env_number("CHAIN_ID", None, int),
                            help="refuse an endpoint serving another chain id (env EVLEDGER_CHAIN_ID)")
    chain_opts.add_argument("--contract", default=_env("CONTRACT", ""),
                            help="AnchorRegistry address (env EVLEDGER_CONTRACT)")
    chain_opts.add_argument("--confirmations", type=int, default=_env_number("CONFIRMATIONS", 1, int),
                            help="blocks deep, counting the anchoring block, before an anchor is confirmed "
                                 "(env EVLEDGER_CONFIRMATIONS; default 1: enough on PBFT chains such as FISCO BCOS)")
    chain_opts.add_argument("--anchor-min-interval", type=float,
                            default=_env_number("ANCHOR_MIN_INTERVAL", 10.0, float),
                            help="seconds between anchors of one ledger (env EVLEDGER_ANCHOR_MIN_INTERVAL; default 10)")
    anchor_sub = anchor.add_subparsers(dest="anchor_command", metavar="ACTION")
    now = anchor_sub.add_parser("now", parents=[chain_opts], help="anchor a ledger's latest checkpoint now and wait for its confirmation")
    now.add_argument("ledger")
    now.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for confirmation (default 120)")
    now.set_defaults(func=_cmd_anchor_now)
    status = anchor_sub.add_parser("status", parents=[chain_opts], help="a ledger's anchors and their states")
    status.add_argument("ledger")
    status.set_defaults(func=_cmd_anchor_status)
    verify = anchor_sub.add_parser("verify", parents=[chain_opts], help="check an anchor straight on the chain (no data directory needed)")
    verify.add_argument("ledger")
    verify.add_argument("size", type=int)
    verify.add_argument("root", help="the checkpoint root, hex")
    verify.add_argument("--origin", help="the ledger's checkpoint origin (default evledger/LEDGER)")
    verify.set_defaults(func=_cmd_anchor_verify, needs=("rpc", "contract"))
    deploy = anchor_sub.add_parser("deploy", parents=[chain_opts], help="deploy the AnchorRegistry contract to --rpc with the anchoring key")
    deploy.set_defaults(func=_cmd_anchor_deploy, needs=("rpc",))

    serve = sub.add_parser("serve", parents=[chain_opts],
                           help="run ingest, sequencer, anchor worker and the HTTP API in one process")
    serve.add_argument("--host", default=_env("HOST", "127.0.0.1"), help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=_env_number("PORT", 8080, int), help="port (default 8080)")
    serve.add_argument("--file-store", default=_env("FILE_STORE", ""), metavar="DIR",
                       help="keep uploaded files in DIR, by ledger and SM3, and serve them to auditors "
                            "(env EVLEDGER_FILE_STORE; default: keep only their SM3)")
    serve.add_argument("--ssl-certfile", default=_env("SSL_CERTFILE", ""), metavar="FILE",
                       help="serve HTTPS with this PEM certificate (chain); needs --ssl-keyfile "
                            "(env EVLEDGER_SSL_CERTFILE)")
    serve.add_argument("--ssl-keyfile", default=_env("SSL_KEYFILE", ""), metavar="FILE",
                       help="its unencrypted PEM private key (env EVLEDGER_SSL_KEYFILE)")
    serve.add_argument("--header-timeout", type=float, default=_env_number("HEADER_TIMEOUT", 10.0, float),
                       metavar="S", help="a request line and headers must arrive within S seconds, else 408 "
                                         "request_timeout and the connection closes (env EVLEDGER_HEADER_TIMEOUT; "
                                         "default 10)")
    serve.add_argument("--body-timeout", type=float, default=_env_number("BODY_TIMEOUT", 30.0, float), metavar="S",
                       help="a request body must arrive within S seconds plus one second per 64 KiB, and never "
                            "pause for S/2 seconds; else 408 body_timeout (default 30)")
    serve.add_argument("--ledger-in-flight-mib", type=int, default=_env_number("LEDGER_IN_FLIGHT_MIB", 64, int),
                       metavar="MIB", help="submissions in flight per ledger, in MiB of body, before producers get "
                                           "429 with Retry-After (default 64, at least 16; the whole service "
                                           "takes four times that, at least 256)")
    serve.set_defaults(func=_cmd_serve)

    verify = sub.add_parser("verify", help="check a proof bundle offline: leaf, path, signed checkpoint, the file, "
                                           "and with --rpc the anchor on chain; exit 0 only for verdict 1")
    verify_arguments(verify)
    verify.set_defaults(func=_cmd_verify)

    certificate = sub.add_parser("certificate", help="render a data preservation certificate (HTML) from a bundle")
    certificate.add_argument("bundle", help="the evledger-proof/1 JSON file")
    certificate.add_argument("-o", "--output", required=True, help="where to write the HTML")
    certificate.set_defaults(func=_cmd_certificate)

    rebuild = sub.add_parser("rebuild", help="replay a ledger's log into fresh projections and check that every "
                                             "logged checkpoint root is reproduced")
    rebuild.add_argument("ledger")
    rebuild.add_argument("--quiet", action="store_true", help="no progress bar")
    rebuild.set_defaults(func=_cmd_rebuild)
    _add_stream_parser(sub)
    _add_bench_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from anchor.chain import ChainError
    from ingest.keys import KeyFileError
    from ingest.ledger import LedgerError
    from ingest.log import LogError
    from ingest.projections import CheckpointMismatch
    from ingest.sequencer import LogCorruption

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.log not in ("rocksdb", "kurrentdb"):  # argparse does not check a default from the environment
        parser.error(f"EVLEDGER_LOG={args.log!r}: choose rocksdb or kurrentdb")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    missing = [f"--{name}" for name in getattr(args, "needs", ()) if not getattr(args, name)]
    if missing:
        parser.error(f"{args.command}: needs {' and '.join(missing)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request drowns the output
    try:
        return args.func(args)
    except (ValueError, OSError, LogError, LedgerError, KeyFileError, ChainError) as exc:
        print(f"evledger {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except (LogCorruption, CheckpointMismatch) as exc:
        print(f"evledger {args.command}: error: {exc}; run `evledger rebuild LEDGER`", file=sys.stderr)
        return 3
    except KeyboardInterrupt:  # what was opened is closed on the way out (with-blocks)
        print(f"evledger {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
