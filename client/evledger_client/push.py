"""`evledger push`: NDJSON records, or the files of a folder, to a remote service, with a
receipts file that makes a run resumable.

The receipts file has one line per input line (or file), in order: `{"line": N, ...receipt}`,
`{"line": N, "error": {...}}` for a record refused (by the service, or here when the line is not
a JSON object) or `{"line": N, "blank": true}`; with --files, `"file": PATH` in place of `line`.
A line is written only once the service has answered for it, so after a crash, a kill or a
Ctrl-C the file ends with whole lines for a prefix of the input (a torn last line is cut off).
Running the same command again reads that prefix back, checks that it belongs to this input
(each evidence id, or path, must match) and sends the rest. Records sent before the stop whose
receipts were not yet written are sent again with the same evidence ids, so the service answers
with their first receipts: nothing is recorded twice and nothing is skipped.
"""
from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from . import core
from .aio import AsyncClient
from .core import BATCH_BYTES, BATCH_RECORDS, Batch
from .errors import EvledgerError

MAX_LINE_ERRORS_SHOWN = 100  # refused lines said on stderr; the receipts file has every one


class PushError(Exception):
    """An input or a receipts file push cannot use (exit status 2)."""


@dataclass
class Summary:
    items: int = 0  # input lines (or files) with an answer, this run and the runs it resumed
    resumed: int = 0  # of them, read back from the receipts file
    recorded: int = 0  # new records, this run
    duplicates: int = 0  # records the service already had (a resumed run's repeats, or the input's)
    refused: int = 0
    blank: int = 0
    retries: int = 0
    seconds: float = 0.0
    stopped: str | None = None  # why the run ended before the input did
    shown: int = field(default=0, repr=False)

    @property
    def exit_status(self) -> int:
        """0 every record recorded; 1 the input pushed to its end, some records refused; 4 stopped
        before the end (run again to resume)."""
        return 4 if self.stopped else 1 if self.refused else 0

    def line(self, unit: str) -> str:
        rate = (self.recorded + self.duplicates) / self.seconds if self.seconds else 0.0
        text = (f"{self.items:,} {unit} answered: {self.recorded:,} recorded, {self.duplicates:,} already recorded, "
                f"{self.refused:,} refused" + (f", {self.blank:,} blank" if self.blank else "")
                + (f" ({self.resumed:,} from the receipts of an earlier run)" if self.resumed else "")
                + f"; {self.seconds:.1f} s, {rate:,.0f} records/s" + (f", {self.retries} retries" if self.retries else ""))
        return text + (f"\nstopped: {self.stopped}; run the same command again to resume" if self.stopped else "")


class ReceiptsFile:
    """The receipts file: what an earlier run wrote is read back (a torn last line cut off), new
    lines are appended and flushed as each chunk of the input is answered, and fsynced at the end."""

    def __init__(self, path: str | None):
        self.path = path
        self.done: list[dict] = []
        self._file = None
        if path is None:
            return
        good = 0
        try:
            with open(path, "rb") as f:
                for raw in f:
                    if not raw.endswith(b"\n"):
                        break
                    try:
                        entry = orjson.loads(raw)
                    except orjson.JSONDecodeError:
                        break
                    if not isinstance(entry, dict):
                        break
                    self.done.append(entry)
                    good += len(raw)
        except FileNotFoundError:
            pass
        self._file = open(path, "ab")
        self._file.truncate(good)  # whatever followed the last whole line: a write a crash cut short

    def write(self, lines: list[bytes]) -> None:
        if self._file is not None and lines:
            self._file.write(b"".join(lines))
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None


# -- NDJSON lines -------------------------------------------------------------------------------

def read_line(raw: bytes) -> tuple[bytes | None, str | None, dict | None]:
    """(what to send, its evidence id, the error that stops it being sent) for one input line;
    (None, None, None) for a blank one. A line with an evidence id is sent as it is."""
    text = raw.strip()
    if not text:
        return None, None, None
    if len(text) > core.MAX_RECORD_BYTES:
        return None, None, core.too_large(len(text)).as_dict()
    try:
        record = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return None, None, {"code": "malformed_json", "field": "record", "rule": "json", "message": f"not JSON: {exc}"}
    if not isinstance(record, dict):
        return None, None, {"code": "invalid_record", "field": "record", "rule": "type",
                            "message": f"a record is a JSON object, not {type(record).__name__}"}
    evidence_id = record.get("evidence_id")
    if evidence_id is None:
        evidence_id = core.derive_evidence_id(record)
        record["evidence_id"] = evidence_id
        text = orjson.dumps(record)
    return text, evidence_id if isinstance(evidence_id, str) else None, None


def line_chunks(lines, first: int, max_records: int, max_bytes: int):
    """The input's lines from line number `first`, cut into chunks: ([(line, evidence id,
    error or None or "blank")], Batch of the sendable ones or None)."""
    core.check_batch_limits(max_records, max_bytes)
    entries, parts, size = [], [], 2
    for number, raw in enumerate(lines, start=first):
        body, evidence_id, error = read_line(raw)
        if body is not None and parts and (len(parts) == max_records or size + len(body) + 1 > max_bytes):
            yield entries, Batch(range(len(parts)), b"[" + b",".join(parts) + b"]")
            entries, parts, size = [], [], 2
        entries.append((number, evidence_id, error if body is None and error else "blank" if body is None else None))
        if body is not None:
            parts.append(body)
            size += len(body) + 1
    if entries:
        yield entries, Batch(range(len(parts)), b"[" + b",".join(parts) + b"]") if parts else None


def check_resumed_line(done: dict, number: int, raw: bytes) -> None:
    """The receipt an earlier run wrote for line `number` must be for this input's line."""
    body, evidence_id, error = read_line(raw)
    if done.get("line") != number or ("evidence_id" in done and done["evidence_id"] != evidence_id) \
            or (body is None and error is None) != bool(done.get("blank")):
        raise PushError(f"the receipts file's line {number} ({orjson.dumps(done)[:200].decode()}) is not for input "
                        f"line {number} (evidence id {evidence_id}): it belongs to another input; give another "
                        f"--receipts file")


# -- the run -------------------------------------------------------------------------------------

class Progress:
    def __init__(self, total: int | None, initial: int, unit: str, quiet: bool):
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=initial, unit=unit, file=sys.stderr, disable=True if quiet else None,
                        smoothing=0.1, dynamic_ncols=True)

    def update(self, n: int, summary: Summary) -> None:
        self.bar.update(n)
        self.bar.set_postfix(recorded=summary.recorded, dup=summary.duplicates, refused=summary.refused,
                             retries=summary.retries, refresh=False)

    def close(self) -> None:
        self.bar.close()


def resumed(summary: Summary, receipts: ReceiptsFile) -> None:
    """Count what an earlier run answered: its refusals count in this run's exit status too."""
    summary.items = summary.resumed = len(receipts.done)
    summary.refused = sum(1 for done in receipts.done if "error" in done)
    summary.blank = sum(1 for done in receipts.done if done.get("blank"))


def say_refused(summary: Summary, where: str, error: dict) -> None:
    summary.refused += 1
    if summary.shown < MAX_LINE_ERRORS_SHOWN:
        summary.shown += 1
        said = " ".join(str(error[k]) for k in ("code", "field") if error.get(k))
        rule = f" ({error['rule']})" if error.get("rule") else ""
        print(f"{where}: refused: {said}{rule}: {error.get('message', '')}", file=sys.stderr)
        if summary.shown == MAX_LINE_ERRORS_SHOWN:
            print("(further refusals are in the receipts file only)", file=sys.stderr)


def count_answer(summary: Summary, where: str, result: dict) -> None:
    error = result.get("error")
    if isinstance(error, dict):
        say_refused(summary, where, error)
    elif result.get("duplicate"):
        summary.duplicates += 1
    else:
        summary.recorded += 1


async def pipeline(chunks, send, write, concurrency: int) -> None:
    """Send chunks with up to `concurrency` in flight; write each one's answers in input order.
    On an error, what was answered before it is written, the rest is cancelled."""
    pending: deque = deque()
    try:
        for chunk in chunks:
            if len(pending) >= concurrency:
                write(*await pending.popleft())
            pending.append(asyncio.ensure_future(send(chunk)))
        while pending:
            write(*await pending.popleft())
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


async def push_lines(client: AsyncClient, source, receipts: ReceiptsFile, *, ledger: str | None = None,
                     total: int | None = None, batch_records: int = BATCH_RECORDS, batch_bytes: int = BATCH_BYTES,
                     quiet: bool = False) -> Summary:
    """Push NDJSON lines (an iterable of bytes) as records; the Summary (its `stopped` says why
    a run ended early: the receipts file then holds the answered prefix)."""
    summary = Summary()
    lines = iter(source)
    for number, done in enumerate(receipts.done, start=1):
        raw = next(lines, None)
        if raw is None:
            raise PushError(f"the receipts file has {len(receipts.done):,} lines but the input only {number - 1:,}: "
                            f"it belongs to another input")
        check_resumed_line(done, number, raw)
    resumed(summary, receipts)
    progress = Progress(total, summary.items, "rec", quiet)

    def on_retry(state) -> None:
        summary.retries += 1

    async def send(chunk):
        entries, batch = chunk
        results = iter(await client.submit_batch(batch, ledger, on_retry) if batch is not None else ())
        return entries, results

    def write(entries, results) -> None:
        out = []
        for number, evidence_id, local in entries:
            if local == "blank":
                summary.blank += 1
                out.append(b'{"line":%d,"blank":true}\n' % number)
                continue
            result = {"evidence_id": evidence_id, "error": local} if local else next(results)
            count_answer(summary, f"line {number}", result)
            out.append(orjson.dumps({"line": number, **result}) + b"\n")
        receipts.write(out)
        summary.items += len(entries)
        progress.update(len(entries), summary)

    return await run(summary, progress, receipts, pipeline(
        line_chunks(lines, summary.items + 1, batch_records, batch_bytes), send, write, client.concurrency))


async def run(summary: Summary, progress: Progress, receipts: ReceiptsFile, work) -> Summary:
    started = time.perf_counter()
    try:
        await work
    except EvledgerError as exc:
        summary.stopped = str(exc)
    except OSError as exc:  # reading the input, or writing the receipts (a full disk)
        summary.stopped = f"{exc.filename or 'I/O'}: {exc.strerror or exc}"
    except (KeyboardInterrupt, asyncio.CancelledError):
        summary.stopped = "interrupted"
        raise
    finally:
        summary.seconds = time.perf_counter() - started
        progress.close()
        receipts.close()
    return summary


# -- files ----------------------------------------------------------------------------------------

def folder_files(directory: str) -> list[str]:
    """The regular files under `directory` (symbolic links not followed), as sorted relative paths."""
    root = Path(directory)
    if not root.is_dir():
        raise PushError(f"{directory} is not a folder")
    found = []
    for folder, subfolders, names in os.walk(root):
        subfolders.sort()
        for name in names:
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink():
                found.append(path.relative_to(root).as_posix())
    return sorted(found)


async def push_files(client: AsyncClient, directory: str, receipts: ReceiptsFile, *, business_type: str,
                     occurred_at: str | None = None, business_id: str | None = None, ledger: str | None = None,
                     quiet: bool = False) -> Summary:
    """Upload every file under `directory`, in the order of their paths, one record each."""
    names = folder_files(directory)
    summary = Summary()
    for number, done in enumerate(receipts.done, start=1):
        if number > len(names) or done.get("file") != names[number - 1]:
            raise PushError(f"the receipts file's line {number} is for {done.get('file')!r}, not "
                            f"{names[number - 1] if number <= len(names) else 'a file of this folder'!r}: it belongs "
                            f"to another folder; give another --receipts file")
    resumed(summary, receipts)
    progress = Progress(len(names), summary.items, "file", quiet)

    async def send(name: str):
        try:
            receipt = await client.submit_file(Path(directory) / name, business_type, occurred_at=occurred_at,
                                               business_id=business_id, ledger=ledger)
            return name, _receipt_dict(receipt)
        except OSError as exc:
            return name, {"error": {"code": "unreadable", "field": "file", "message": f"cannot read it: {exc.strerror}"}}
        except EvledgerError as exc:
            if exc.status in (413, 422) or exc.code == "file_changed":
                return name, {"error": exc.as_dict()}
            raise

    def write(name: str, result: dict) -> None:
        count_answer(summary, name, result)
        receipts.write([orjson.dumps({"file": name, **result}) + b"\n"])
        summary.items += 1
        progress.update(1, summary)

    return await run(summary, progress, receipts, pipeline(iter(names[summary.items:]), send, write,
                                                            client.concurrency))


def _receipt_dict(receipt) -> dict:
    return {k: v for k, v in dataclasses.asdict(receipt).items() if v is not None}
