"""`evledger push` (also `evledger-push`, for a machine with only this client installed)."""
from __future__ import annotations

import asyncio
import os
import stat
import sys

import click

from .aio import CONCURRENCY, AsyncClient
from .core import BATCH_BYTES, BATCH_RECORDS, MAX_BATCH_BYTES, MAX_BATCH_RECORDS
from .push import PushError, ReceiptsFile, push_files, push_lines

_HELP = """Push records to a remote evidence-ledger service: NDJSON records, one per line, from FILE
(- for standard input), or with --files DIR one record per file of a folder (uploaded; the
service computes each file's SM3).

[URL] LEDGER FILE|-: the URL may be left out when EVLEDGER_URL names the service.

Batches stay under the service's limits; connection errors, 429 (after its Retry-After), 502,
503 and 504 are retried for --retry-for seconds. A line without an evidence_id is sent with one derived
from its fields, so pushing the same line again never records it twice. --receipts FILE gets one
line per input line, in order; run the same command again after a crash or a Ctrl-C and it
resumes after the last line answered. Refused lines are said on stderr and in the receipts file
and do not stop the push.

Exit status: 0 every record recorded (or already recorded); 1 pushed to the end, some records
refused; 2 a command line, input or receipts file it cannot use; 4 stopped before the end (the
service could not be reached, refused the key, answered something else; an I/O error): run it
again to resume; 130 interrupted."""


def _option(*decls, **attrs):
    return click.option(*decls, show_envvar="envvar" in attrs, **attrs)


@click.command("push", help=_HELP, short_help="push NDJSON records, or a folder's files, to a remote service, "
                                               "resumably, with receipts")
@click.argument("target", nargs=-1, required=True, metavar="[URL] LEDGER FILE|-")
@_option("--api-key", envvar="EVLEDGER_API_KEY", metavar="KEY", help="a producer key of the ledger")
@_option("--ca-file", envvar="EVLEDGER_CA_FILE", metavar="PEM",
         help="trust the certificates in this file (a self-signed service's)")
@_option("--receipts", metavar="FILE", help="write a receipt per input line here; resume from it when it exists")
@_option("--files", "folder", metavar="DIR", help="upload every file under DIR instead of reading records")
@_option("--business-type", metavar="TYPE", help="with --files: the records' business_type (required)")
@_option("--occurred-at", metavar="RFC3339", help="with --files: the records' occurred_at (default: each file's "
                                                  "modification time)")
@_option("--business-id", metavar="ID", help="with --files: the records' business_id")
@_option("--concurrency", type=click.IntRange(1, 64), default=CONCURRENCY, show_default=True,
         help="batches (or files) in flight at once")
@_option("--batch-records", type=click.IntRange(1, MAX_BATCH_RECORDS), default=BATCH_RECORDS, show_default=True,
         help="records per batch at most")
@_option("--batch-bytes", type=click.IntRange(1024, MAX_BATCH_BYTES), default=BATCH_BYTES, show_default=True,
         help="bytes per batch at most")
@_option("--timeout", type=click.FloatRange(0, min_open=True), default=60.0, show_default=True,
         help="seconds a request may wait on the network (to connect, to send, for the answer) before it is tried again")
@_option("--retry-for", type=click.FloatRange(0), default=300.0, show_default=True, envvar="EVLEDGER_RETRY_FOR",
         help="seconds a request is tried again before the push stops")
@_option("--quiet", is_flag=True, help="no progress bar")
def push(target, api_key, ca_file, receipts, folder, business_type, occurred_at, business_id, concurrency,
         batch_records, batch_bytes, timeout, retry_for, quiet) -> int:
    url, ledger, source = _target(list(target), folder is not None)
    if folder is not None and not business_type:
        raise click.UsageError("--files needs --business-type")
    if folder is None and (business_type or occurred_at or business_id):
        raise click.UsageError("--business-type, --occurred-at and --business-id go with --files")
    try:
        client = AsyncClient(url, ledger, api_key, ca_file=ca_file, timeout=timeout, retry_for=retry_for,
                             concurrency=concurrency)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        summary = asyncio.run(_push(client, source, folder, receipts, business_type, occurred_at, business_id,
                                    batch_records, batch_bytes, quiet))
    except PushError as exc:
        print(f"evledger push: error: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:  # the input or receipts file cannot be opened; no SM3 here
        print(f"evledger push: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("evledger push: interrupted; the receipts file holds every line answered: run the same command again "
              "to resume", file=sys.stderr)
        return 130
    print(summary.line("files" if folder else "lines"), file=sys.stderr)
    return summary.exit_status


def _target(args: list[str], files: bool) -> tuple[str | None, str, str | None]:
    """(URL or None for EVLEDGER_URL, ledger, input) from the positional arguments."""
    url = args.pop(0) if args and args[0].startswith(("http://", "https://")) else None
    wanted = 1 if files else 2
    if len(args) != wanted:
        shape = "[URL] LEDGER --files DIR" if files else "[URL] LEDGER FILE|-"
        raise click.UsageError(f"expected {shape}, got {len(args) + (url is not None)} arguments")
    return url, args[0], None if files else args[1]


async def _push(client: AsyncClient, source, folder, receipts_path, business_type, occurred_at, business_id,
                batch_records, batch_bytes, quiet):
    async with client:
        if folder is not None:
            return await push_files(client, folder, ReceiptsFile(receipts_path), business_type=business_type,
                                    occurred_at=occurred_at, business_id=business_id, quiet=quiet)
        stream = sys.stdin.buffer if source == "-" else open(source, "rb")
        try:
            return await push_lines(client, stream, ReceiptsFile(receipts_path), total=_line_count(stream),
                                    batch_records=batch_records, batch_bytes=batch_bytes, quiet=quiet)
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()


def _line_count(stream) -> int | None:
    """The lines of a regular file (the progress bar's total); None for a pipe."""
    try:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            return None
        with open(stream.fileno(), "rb", closefd=False) as f:
            start = f.tell()
            count, last = 0, b"\n"
            while chunk := f.read(1 << 20):
                count += chunk.count(b"\n")
                last = chunk[-1:]
            f.seek(start)
        return count + (last != b"\n")
    except (OSError, ValueError):
        return None


def main(argv: list[str] | None = None) -> int:
    try:
        return push.main(argv, prog_name="evledger-push", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        return 130


if __name__ == "__main__":
    sys.exit(main())
