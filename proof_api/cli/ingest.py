"""`evledger ingest` (NDJSON records into a ledger) and `evledger rebuild` (the log replayed
into fresh projections)."""
from __future__ import annotations

import sys

import click
import orjson

from .backends import open_log, open_service
from .binding import Command, option


@click.command("ingest", cls=Command, help="record NDJSON evidence records from a file (or - for stdin); "
                                           "prints a receipt or an error per record")
@click.argument("ledger")
@click.argument("file")
@option("--batch", type=int, default=1000, metavar="N", help="records per submission")
@option("--wait", is_flag=True, help="wait for the checkpoint that covers them")
def ingest(args) -> int:
    """Print one receipt or error per line, in order; exit 1 if any record failed."""
    from ingest.records import RECORD_FIELD, RecordError

    stream = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")
    failed = 0
    with stream, open_service(args) as service:
        ledger = service.ledger(args.ledger)
        batch: list = []
        for lineno, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                batch.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                batch.append(RecordError(RECORD_FIELD, "json", f"line {lineno} is not JSON: {exc}"))
            if len(batch) >= args.batch:
                failed += _submit(ledger, batch)
        if batch:
            failed += _submit(ledger, batch)
        if args.wait:
            checkpoint = ledger.wait_for_checkpoint(ledger.record_count, timeout=args.batch_max_delay + 30)
            if checkpoint:
                print(f"checkpoint at size {checkpoint['size']}, root {checkpoint['root']}", file=sys.stderr)
    return 1 if failed else 0


def _submit(ledger, batch: list) -> int:
    """Submit the records of `batch` (lines that are not JSON stay errors), print a result per
    line in order, empty the batch; the number of errors."""
    from ingest.records import RecordError

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


@click.command("rebuild", cls=Command, help="replay a ledger's log into fresh projections and check that every "
                                             "logged checkpoint root is reproduced")
@click.argument("ledger")
@option("--quiet", is_flag=True, help="no progress bar")
def rebuild(args) -> int:
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
