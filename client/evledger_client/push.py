"""`evledger push`: NDJSON records, or the files of a folder, to a remote service, with a
receipts file that makes a run resumable (docs/producers.md).

Lines: the receipts file has one line per input line, in order: `{"line": N, ...receipt}`,
`{"line": N, "error": {...}, "input": H}` for a record refused (by the service, or here) or
`{"line": N, "blank": true, "input": H}`, H a fingerprint of the line. A line is written only
once the service has answered for it, so after a crash, a kill or a Ctrl-C the file ends with
whole lines for a prefix of the input (a torn last line is cut off). Running the same command
again reads that prefix back, checks that it belongs to this input (each recorded line's
evidence id must match) and sends the rest, from the first refused or blank line that changed
since if there is one. Records sent before the stop whose receipts were not yet written are sent
again with the same evidence ids, so the service answers with their first receipts: nothing is
recorded twice and nothing is skipped.

Files: `{"file": PATH, ...}` a line per file in the order pushed; a later run pushes the files
no receipt answers yet (and those refused as changed or unreadable).
"""
from __future__ import annotations

import asyncio
import codecs
import concurrent.futures
import dataclasses
import fcntl
import hashlib
import os
import stat
import threading
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from . import core
from .aio import AsyncClient
from .core import BATCH_BYTES, BATCH_RECORDS, Batch
from .errors import RECORD_CODES, EvledgerError, InvalidRecord

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
    """The receipts file: what an earlier run wrote is read back (a last line without its newline,
    a write a crash cut short, is cut off), new lines are appended and flushed as each chunk of
    the input is answered, and fsynced at the end. A file that is not a receipts file is refused
    untouched, and one push at a time holds it (flock)."""

    def __init__(self, path: str | None):
        self.path = path
        self.done: list[dict] = []
        self._file = None
        if path is None:
            return
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise PushError(f"--receipts {path} is not a regular file")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise PushError(f"another push is writing --receipts {path}") from None
            self._file = os.fdopen(fd, "ab")
        except BaseException:
            os.close(fd)
            raise
        self._read_back(path)

    def _read_back(self, path: str) -> None:
        self.ends: list[int] = []  # where each receipt line ends in the file
        good = 0
        with open(path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                if not raw.endswith(b"\n"):
                    if not any(raw.startswith(start) or start.startswith(raw) for start in (b'{"line":', b'{"file":')):
                        self._refuse(path, number)  # not the start of a receipt a crash cut short
                    break
                try:
                    entry = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    entry = None
                if not isinstance(entry, dict) or not ("line" in entry or "file" in entry):
                    self._refuse(path, number)
                self.done.append(entry)
                good += len(raw)
                self.ends.append(good)
        self._file.truncate(good)

    def _refuse(self, path: str, number: int):
        self._file.close()
        self._file = None
        raise PushError(f"--receipts {path}: its line {number} is not a receipt of evledger push; give a new file "
                        f"(or the one an earlier push of this input wrote)")

    def cut(self, keep: int) -> None:
        """Keep the first `keep` receipts: the line after them is sent again, and all after it."""
        del self.done[keep:]
        del self.ends[keep:]
        self._file.truncate(self.ends[-1] if self.ends else 0)

    def write(self, lines: list[bytes]) -> None:
        if self._file is not None and lines:
            self._file.write(b"".join(lines))
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            try:
                file.flush()
                os.fsync(file.fileno())
            finally:
                file.close()


# -- NDJSON lines -------------------------------------------------------------------------------

READ_BLOCK = 1 << 20
IDLE_FLUSH = 1.0  # seconds without input after which what was read is sent (a pipe that trickles)


class LineReader:
    """The input's lines, read by a thread of their own a MiB at a time (os.read on its file
    descriptor: no lock a blocked read would hold at exit) and handed to the event loop in
    blocks, at most a few MiB ahead: a pipe that waits never holds the loop (answers are still
    read, Ctrl-C still stops it at once). A UTF-8 byte order mark at the start is skipped; a line
    longer than any record can be is dropped as it streams (TooLong)."""

    def __init__(self, stream):
        self.stream = stream
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=4)
        self.loop = asyncio.get_running_loop()
        self.stopped = threading.Event()
        threading.Thread(target=self._read, name="push-input", daemon=True).start()

    def stop(self) -> None:
        """No more blocks are taken: the thread ends at its next hand-over (or with the process)."""
        self.stopped.set()

    def _put(self, item) -> None:
        if self.stopped.is_set():
            raise _Stopped
        put = self.queue.put(item)
        try:
            handed = asyncio.run_coroutine_threadsafe(put, self.loop)
        except RuntimeError:  # the loop is closed
            put.close()
            raise _Stopped from None
        while True:
            try:
                return handed.result(timeout=0.5)
            except concurrent.futures.TimeoutError:
                if self.stopped.is_set():
                    handed.cancel()
                    raise _Stopped from None

    def _reader(self):
        try:
            fd = self.stream.fileno()
        except (AttributeError, OSError, ValueError):  # not a file: whatever it reads
            return getattr(self.stream, "read1", self.stream.read)
        return lambda n: os.read(fd, n)

    def _read(self) -> None:
        read = self._reader()
        tail, start, dropped = b"", True, 0  # dropped: bytes of a line too long to keep, so far
        try:
            while data := read(READ_BLOCK):
                if dropped:  # drop until its end: a line with no end must not fill the memory
                    end = data.find(b"\n")
                    if end < 0:
                        dropped += len(data)
                        continue
                    self._put([TooLong(dropped + end)])
                    dropped, data = 0, data[end + 1:]
                tail += data
                if start:
                    if len(tail) < len(codecs.BOM_UTF8) and codecs.BOM_UTF8.startswith(tail):
                        continue  # too short yet to tell
                    tail, start = tail.removeprefix(codecs.BOM_UTF8), False
                cut = tail.rfind(b"\n") + 1
                if cut:
                    self._put(tail[:cut - 1].split(b"\n"))
                    tail = tail[cut:]
                if len(tail) > core.MAX_RECORD_BYTES + 2:
                    dropped, tail = len(tail), b""
            tail = tail.removeprefix(codecs.BOM_UTF8) if start else tail
            if dropped or tail:  # a last line without its newline
                self._put([TooLong(dropped) if dropped else tail])
            self._put(None)
        except _Stopped:
            pass
        except Exception as exc:  # noqa: BLE001 - handed to the loop, which raises it
            try:
                self._put(exc)
            except _Stopped:  # the loop is gone, or no longer listens
                pass

    async def get(self, timeout: float):
        """The next list of lines (bytes, no newline); [] when none came within `timeout` seconds;
        None at the end of the input."""
        try:
            block = self.queue.get_nowait()
        except asyncio.QueueEmpty:
            try:
                block = await asyncio.wait_for(self.queue.get(), timeout)
            except TimeoutError:
                return []
        if isinstance(block, Exception):
            raise block
        return block


class _Stopped(Exception):
    pass


# A line with fewer brackets than this cannot nest deeper than a batch can carry (core.prepare).
SHALLOW = 200


class TooLong(int):
    """A line longer than any record can be, in place of its bytes (its length), which were dropped."""


def read_line(raw: bytes | TooLong) -> tuple[bytes | None, object, dict | None]:
    """(what to send, its evidence id, the error that stops it being sent) for one input line;
    (None, None, None) for a blank one. A record with an evidence id and no deep nesting is sent
    as its line; any other is written again as core.prepare writes it (an evidence id derived
    where it has none), so every check of the library applies."""
    if isinstance(raw, TooLong):
        return None, None, core.too_large(raw).as_dict()
    text = raw.strip()
    if not text:
        return None, None, None
    if len(text) > core.MAX_RECORD_BYTES:
        return None, None, core.too_large(len(text)).as_dict()
    try:
        record = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return None, None, {"code": "malformed_json", "field": "record", "rule": "json", "message": f"not JSON: {exc}"}
    if type(record) is dict and type(record.get("evidence_id")) is str and \
            text.count(b"{") + text.count(b"[") < SHALLOW:  # sent as it is: nothing for prepare to add
        return text, record["evidence_id"], None
    prepared = core.prepare(record)
    if isinstance(prepared, InvalidRecord):
        evidence_id = record.get("evidence_id") if isinstance(record, dict) else None
        return None, evidence_id, prepared.as_dict()
    return prepared.body, prepared.evidence_id, None


def chunk(entries: list, parts: list[bytes]):
    return entries, Batch(range(len(parts)), core.array(parts)) if parts else None


async def line_chunks(reader: LineReader, receipts: ReceiptsFile, summary: "Summary", max_records: int,
                      max_bytes: int):
    """The input's lines after those the receipts file answers (each checked against its receipt),
    cut into chunks: ([(line, evidence id, error, or None, or "blank", the line)], Batch of the
    sendable ones or None), a chunk as soon as a batch is full or its first line has waited
    IDLE_FLUSH seconds; None when the input paused with nothing to send. A line that was refused
    or blank in an earlier run and is not the same now (a file completed, a record corrected) is
    sent: the receipts from it on are written again."""
    core.check_batch_limits(max_records, max_bytes)
    entries, parts, size, number, resuming, since = [], [], 2, 0, len(receipts.done), None
    while True:
        block = await reader.get(IDLE_FLUSH if since is None else max(0.0, since + IDLE_FLUSH - time.monotonic()))
        if block is None:
            break
        if not block:  # the first line waiting has waited long enough, or the input paused
            yield chunk(entries, parts) if entries else None
            entries, parts, size, since = [], [], 2, None
            continue
        for raw in block:
            number += 1
            if number <= resuming:
                if same_line(receipts.done[number - 1], number, raw):
                    continue
                receipts.cut(number - 1)
                resumed(summary, receipts)
                resuming = number - 1
            body, evidence_id, error = read_line(raw)
            if len(entries) == max_records or (body is not None and core.batch_full(
                    len(parts), size, len(body), max_records, max_bytes)):
                yield chunk(entries, parts)
                entries, parts, size, since = [], [], 2, None
            entries.append((number, evidence_id, error if error else "blank" if body is None else None, raw))
            since = since or time.monotonic()
            if body is not None:
                parts.append(body)
                size += len(body) + 1
    if number < resuming:
        raise PushError(f"the receipts file has {resuming:,} lines but the input only {number:,}: it belongs to "
                        f"another input; give another --receipts file")
    if entries:
        yield chunk(entries, parts)


def fingerprint(raw: bytes | TooLong) -> str:
    """What a refused or blank line's receipt keeps of it, to tell on a resume whether it changed:
    a line too long for any record by its length alone (it may have come whole or dropped)."""
    if isinstance(raw, TooLong) or len(raw) > core.MAX_RECORD_BYTES:
        return hashlib.sha256(b"too long: %d" % (raw if isinstance(raw, TooLong) else len(raw))).hexdigest()[:32]
    return hashlib.sha256(raw.strip()).hexdigest()[:32]


def same_line(done: dict, number: int, raw: bytes) -> bool:
    """Whether input line `number` is the one an earlier run's receipt answers. A recorded line
    must be (same evidence id), or the receipts belong to another input (PushError); a refused or
    blank one may have changed since (False: send it again)."""
    if done.get("line") != number:
        raise PushError(f"the receipts file's line {number} is for input line {done.get('line')!r}: it is not a "
                        f"receipts file of this input; give another --receipts file")
    if "seq" not in done:
        return done.get("input") == fingerprint(raw)
    evidence_id = read_line(raw)[1]
    if done.get("evidence_id") != evidence_id:
        raise PushError(f"the receipts file's line {number} records evidence id {done.get('evidence_id')!r} but input "
                        f"line {number} has {evidence_id!r}: it belongs to another input; give another --receipts "
                        f"file")
    return True


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
    """Send chunks (an async iterator; None for "nothing new yet") with up to `concurrency` in
    flight; write each one's answers in input order as soon as they and those before them are in
    (while the next chunk is still being read). On an error, what was answered before it is
    written, the rest is cancelled."""
    pending: deque = deque()
    iterator, following = chunks.__aiter__(), None
    try:
        while True:
            following = following or asyncio.ensure_future(anext(iterator, _END))
            await asyncio.wait({following, *([pending[0]] if pending else [])}, return_when=asyncio.FIRST_COMPLETED)
            while pending and pending[0].done():
                write(*pending.popleft().result())
            if not following.done():
                continue
            item, following = following.result(), None
            if item is _END:
                break
            if item is not None:
                while len(pending) >= concurrency:
                    write(*await pending.popleft())
                pending.append(asyncio.ensure_future(send(item)))
        while pending:
            write(*await pending.popleft())
    finally:
        for task in (*pending, *([following] if following else [])):
            task.cancel()
        await asyncio.gather(*pending, *([following] if following else []), return_exceptions=True)


_END = object()


async def push_lines(client: AsyncClient, source, receipts: ReceiptsFile, *, ledger: str | None = None,
                     total: int | None = None, batch_records: int = BATCH_RECORDS, batch_bytes: int = BATCH_BYTES,
                     quiet: bool = False) -> Summary:
    """Push NDJSON lines (a binary stream) as records; the Summary (its `stopped` says why a run
    ended early: the receipts file then holds the answered prefix)."""
    summary = Summary()
    resumed(summary, receipts)
    progress = Progress(total, summary.items, "rec", quiet)

    def on_retry(state) -> None:
        summary.retries += 1

    async def send(item):
        entries, batch = item
        results = await client.submit_batch(batch, ledger, on_retry) if batch is not None else []
        return entries, iter(results)

    def write(entries, results) -> None:
        out = []
        for number, evidence_id, local, raw in entries:
            result = None if local else next(results)
            if result is not None and "seq" in result:  # the common case, kept short: a receipt
                if result.get("evidence_id") != evidence_id:
                    core.matching(result, evidence_id)  # raises BadAnswer
                if result.get("duplicate"):
                    summary.duplicates += 1
                else:
                    summary.recorded += 1
                if "line" in result:  # the service's fields never stand in for the receipt's own
                    result = {k: v for k, v in result.items() if k != "line"}
                out.append(b'{"line":%d,%s\n' % (number, orjson.dumps(result)[1:]))
            elif local == "blank":
                summary.blank += 1
                out.append(b'{"line":%d,"blank":true,"input":"%s"}\n' % (number, fingerprint(raw).encode()))
            else:
                result = {"error": local} if local else result
                result = {**result, "input": fingerprint(raw)}  # after the service's fields: this one counts
                count_answer(summary, f"line {number}", result)
                entry = {"line": number, **result}
                entry["line"] = number
                out.append(orjson.dumps(entry) + b"\n")
        receipts.write(out)
        summary.items += len(entries)
        progress.update(len(entries), summary)

    async def work():
        await client.send(core.probe_call(client.settings, ledger), on_retry)  # the key and the ledger, first
        reader = LineReader(source)
        try:
            await pipeline(line_chunks(reader, receipts, summary, batch_records, batch_bytes), send, write,
                           client.concurrency)
        finally:
            reader.stop()

    return await run(summary, progress, receipts, work())


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
        try:
            receipts.close()
        except OSError as exc:  # a full disk, an I/O error: the receipts before it stand
            summary.stopped = summary.stopped or f"cannot write the receipts: {exc.strerror or exc}"
    return summary


# -- files ----------------------------------------------------------------------------------------

def folder_files(directory: str) -> list[tuple[str, Path]]:
    """The regular files under `directory` (symbolic links not followed), sorted: (the relative
    path as the receipts name it, UTF-8 with any other byte escaped as \\xNN; the path). A folder
    that cannot be read stops the push: a file left out would be a silent drop."""
    root = Path(directory)
    if not root.is_dir():
        raise PushError(f"{directory} is not a folder")

    def unreadable(exc: OSError) -> None:
        raise PushError(f"cannot read the folder {exc.filename}: {exc.strerror}")

    found = []
    for folder, subfolders, names in os.walk(root, onerror=unreadable):
        subfolders.sort()
        for name in names:
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink():
                shown = os.fsencode(path.relative_to(root).as_posix()).decode("utf-8", "backslashreplace")
                found.append((shown, path))
    return sorted(found)


async def push_files(client: AsyncClient, directory: str, receipts: ReceiptsFile, *, business_type: str,
                     occurred_at: str | None = None, business_id: str | None = None, ledger: str | None = None,
                     quiet: bool = False) -> Summary:
    """Upload every file under `directory`, in the order of their paths, one record each."""
    files = folder_files(directory)
    summary = Summary()
    names = {name for name, _ in files}
    if receipts.done and (any("file" not in d for d in receipts.done)
                          or not names & {d["file"] for d in receipts.done}):
        raise PushError("the receipts file is not one of a push of this folder (none of its files is in it); give "
                        "another --receipts file")
    again = [d for d in receipts.done if isinstance(d.get("error"), dict) and d["error"].get("code") in AGAIN]
    answered = {d["file"] for d in receipts.done} - {d["file"] for d in again}
    resumed(summary, receipts)
    summary.refused -= len(again)  # tried again below: counted by what happens now
    todo = [item for item in files if item[0] not in answered]
    progress = Progress(summary.items + len(todo), summary.items, "file", quiet)

    async def send(item):
        name, path = item
        try:
            receipt = await client.submit_file(path, business_type, occurred_at=occurred_at, business_id=business_id,
                                               ledger=ledger)
            return name, _receipt_dict(receipt)
        except OSError as exc:
            return name, {"error": {"code": "unreadable", "field": "file", "message": f"cannot read it: {exc.strerror}"}}
        except EvledgerError as exc:
            if exc.status in (413, 422) or exc.code == "file_changed":
                return name, {"error": exc.as_dict()}
            raise

    def write(name: str, result: dict) -> None:
        count_answer(summary, name, result)
        entry = {"file": name, **result}
        entry["file"] = name  # the service's fields never stand in for the receipt's own
        receipts.write([orjson.dumps(entry) + b"\n"])
        summary.items += 1
        progress.update(1, summary)

    async def each():
        for item in todo:
            yield item

    async def work():
        await fields_checked(client, ledger, business_type, occurred_at, business_id)
        await pipeline(each(), send, write, client.concurrency)

    return await run(summary, progress, receipts, work())


AGAIN = ("file_changed", "unreadable")  # refusals of a file a later push tries again


async def fields_checked(client: AsyncClient, ledger, business_type, occurred_at, business_id) -> None:
    """The records' fields the options give, checked by the service before any upload (an empty
    one, which it refuses as `empty_file` once the fields pass): a bad option is exit 2, not
    every file refused."""
    fields = {"business_type": business_type, "occurred_at": occurred_at or "2026-01-01T00:00:00Z",
              **({"business_id": business_id} if business_id is not None else {})}
    try:
        core.check_probe(await client.send(core.fields_call(client.settings, ledger, fields)))
    except EvledgerError as exc:
        if exc.code in RECORD_CODES or exc.code == "invalid_request":
            raise PushError(f"the service refuses the records' fields: {exc}") from None
        raise


def _receipt_dict(receipt) -> dict:
    return {k: v for k, v in dataclasses.asdict(receipt).items() if v is not None}
