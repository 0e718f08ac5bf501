"""The producer's client (client/evledger_client) and `evledger push`, against real `evledger
serve` processes on 127.0.0.1: receipts, idempotent retries, typed errors, uploads and proofs;
a push whose server is killed and restarted, whose own process is killed or interrupted, a
429 storm, a stalled server, TLS with a self-signed certificate, bad lines. Pure pieces (Retry-After,
evidence ids, batches, the error mapping) are checked on their own at the end."""
from __future__ import annotations

import asyncio
import codecs
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest

from evledger_client import (AsyncClient, Client, ConnectionFailed, InvalidRecord, NotFound, Receipt, TooManyRequests,
                             Unauthorized, derive_evidence_id)
from evledger_client.core import batches, prepare, wait_before_retry
from evledger_client.errors import BadRequest, Unavailable, error_from_answer, retry_after_seconds
from tests.api_helpers import evledger_serve, free_port, make_certificate, wait_until

REPO = Path(__file__).resolve().parent.parent


def records(n: int, start: int = 0, ids: bool = False, pad: int = 0) -> list[dict]:
    """n distinct records; every other one has an evidence id when `ids`; `pad` adds attributes
    of about that many bytes."""
    out = []
    for i in range(start, start + n):
        record = {"content_hash": hashlib.sha256(b"client-%d" % i).hexdigest(), "business_type": "account-opening",
                  "occurred_at": "2026-12-01T09:00:00+08:00", "attributes": {"n": i}}
        if pad:
            record["attributes"].update({f"a{k}": "x" * 200 for k in range(pad // 200)})
        if ids and i % 2:
            record["evidence_id"] = f"ev-{i}"
        out.append(record)
    return out


def ndjson(items) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in items)


class Ledger:
    """A ledger on a running server, with a producer and an auditor key."""

    def __init__(self, base: str, admin: str, name: str, verify=True):
        self.base, self.name = base, name
        with httpx.Client(base_url=base, verify=verify, timeout=30) as http:
            head = {"authorization": f"Bearer {admin}"}
            http.post("/v1/ledgers", json={"ledger": name}, headers=head).raise_for_status()
            self.producer, self.auditor = (
                http.post(f"/v1/ledgers/{name}/api-keys", json={"role": role}, headers=head).json()["key"]
                for role in ("producer", "auditor"))
        self.verify = verify

    def count(self) -> int:
        """How many records the ledger's latest checkpoint holds (0 before its first)."""
        with Client(self.base, self.name, self.auditor, verify=self.verify) as client:
            try:
                return client.checkpoint()["size"]
            except NotFound:
                return 0

    def assert_exactly(self, n: int, receipts_file: Path) -> list[dict]:
        """The ledger holds exactly n records and the receipts file one per line, each matching the server."""
        wait_until(lambda: self.count() == n, timeout=30, what=f"a checkpoint of {n} records")
        lines = [orjson.loads(x) for x in receipts_file.read_bytes().splitlines()]
        assert [x["line"] for x in lines] == list(range(1, n + 1))
        assert sorted(x["seq"] for x in lines) == list(range(n)), "each record once, none skipped"
        assert len({x["evidence_id"] for x in lines}) == n
        with Client(self.base, self.name, self.auditor, verify=self.verify) as client:
            for x in random.Random(1).sample(lines, min(50, n)):
                [found] = client.find(seq=x["seq"])
                assert found["record"]["evidence_id"] == x["evidence_id"] and found["leaf_hash"] == x["leaf_hash"]
        return lines


# `evledger-push`, the client's own command (the same click command as `evledger push`, which one
# test runs as such): it starts without importing the service.
PUSH = [sys.executable, "-m", "evledger_client.cli"]


def push(*args: str, env: dict | None = None, command=PUSH, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*command, *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, **(env or {})}, timeout=kw.pop("timeout", 240), **kw)


def start_push(*args: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([*PUSH, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, **env})


def lines_in(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("client")
    with evledger_serve(tmp / "data", "--file-store", str(tmp / "files")) as (proc, base, admin):
        yield proc, base, admin


@pytest.fixture
def ledger(served, request):
    _, base, admin = served
    return Ledger(base, admin, "l-" + hashlib.sha256(request.node.name.encode()).hexdigest()[:12])


# -- the library ----------------------------------------------------------------------------------

def test_submit_gives_receipts_in_order_and_a_repeat_records_nothing(ledger):
    batch = records(25, ids=True)
    with Client(ledger.base, ledger.name, ledger.producer) as client:
        first = client.submit(batch, batch_records=7)
        assert first.ok and len(first.receipts) == 25
        assert [r.seq for r in first] == list(range(25)) and not any(r.duplicate for r in first)
        assert [r.evidence_id for r in first] == [r.get("evidence_id") or derive_evidence_id(r) for r in batch]
        again = client.submit(batch)  # a producer that lost its receipts sends the same records again
    assert [r.seq for r in again] == list(range(25)) and all(r.duplicate for r in again)
    wait_until(lambda: ledger.count() == 25, what="a checkpoint of the 25 records")


def test_bad_records_are_refused_one_by_one_with_the_servers_field_and_rule(ledger):
    batch = records(3)
    batch[1]["occurred_at"] = "yesterday"
    with Client(ledger.base, ledger.name, ledger.producer) as client:
        result = client.submit([batch[0], batch[1], "not a record", batch[2]])
        assert [type(r).__name__ for r in result] == ["Receipt", "InvalidRecord", "InvalidRecord", "Receipt"]
        refused = result[1]
        assert (refused.index, refused.code, refused.field, refused.rule) == (1, "invalid_record", "occurred_at", "format")
        assert (result[2].index, result[2].field, result[2].rule) == (2, "record", "type")
        with pytest.raises(InvalidRecord) as one:
            client.record(**{**batch[0], "content_hash": "zz", "evidence_id": None})
        assert (one.value.status, one.value.field, one.value.rule) == (422, "content_hash", "length")
        with pytest.raises(InvalidRecord) as conflict:  # the same evidence id with other content
            client.record(**{**batch[2], "evidence_id": result[0].evidence_id})
        assert conflict.value.field == "evidence_id"


def test_errors_are_typed(ledger):
    with Client(ledger.base, ledger.name, "evk_nobody_nothing") as client:
        with pytest.raises(Unauthorized) as denied:
            client.checkpoint()
    assert denied.value.status == 401 and denied.value.code == "unauthorized"
    with Client(ledger.base, "no-such-ledger", ledger.producer) as client:
        with pytest.raises(NotFound) as missing:
            client.submit(records(2))
    assert missing.value.code == "unknown_ledger" and missing.value.partial == [None, None]
    with Client(ledger.base, ledger.name, ledger.auditor) as client:
        with pytest.raises(ValueError, match="exactly one"):
            client.proof(seq=1, evidence_id="x")
    with Client(f"http://127.0.0.1:{free_port()}", ledger.name, ledger.producer, retry_for=0.5) as client:
        started = time.monotonic()
        with pytest.raises(ConnectionFailed) as down:
            client.record(**records(1)[0])
    assert down.value.retryable and time.monotonic() - started < 15


def test_upload_find_proof_certificate_and_checkpoint(ledger, tmp_path, monkeypatch):
    contract = tmp_path / "contract.pdf"
    contract.write_bytes(os.urandom(3 << 20))  # three chunks of the upload
    sm3 = hashlib.new("sm3", contract.read_bytes()).hexdigest()
    monkeypatch.setenv("EVLEDGER_URL", ledger.base)  # url, ledger and key from the environment
    monkeypatch.setenv("EVLEDGER_LEDGER", ledger.name)
    monkeypatch.setenv("EVLEDGER_API_KEY", ledger.producer)
    with Client() as producer:
        receipt = producer.submit_file(contract, "contract.signed", business_id="CTR-1")
        again = producer.submit_file(contract, "contract.signed", business_id="CTR-1")
    assert receipt.content_hash == sm3 and receipt.bytes == 3 << 20 and receipt.stored is True
    assert receipt.evidence_id.startswith("auto-") and again.duplicate and again.seq == receipt.seq
    with Client(api_key=ledger.auditor) as auditor:
        [found] = auditor.find(evidence_id=receipt.evidence_id)
        assert found["record"]["content_hash"] == sm3 and found["record"]["business_id"] == "CTR-1"
        wait_until(lambda: auditor.checkpoint()["size"] >= 1, what="a checkpoint")
        bundle = auditor.proof(file=contract, require_anchor=False)
        assert bundle["leaf"]["index"] == receipt.seq and bundle["record"]["record"]["content_hash"] == sm3
        assert auditor.checkpoint(bundle["checkpoint"]["size"])["root"] == bundle["checkpoint"]["root"]


def _anchored(client: Client, receipt: Receipt) -> None:
    """A default proof and the certificate need an anchored checkpoint: the in-process chain's."""
    wait_until(lambda: client.find(seq=receipt.seq)[0]["status"] == "anchored", timeout=40, what="an anchor")


def test_a_file_that_changes_during_its_upload_is_not_recorded(ledger, tmp_path):
    from evledger_client import core

    path = tmp_path / "growing.log"
    with Client(ledger.base, ledger.name, ledger.producer) as client:
        changes = {b"THE FILE AS IT WAS READ": "changed (SM3", b"a longer file than it was when first read": "changed size"}
        for change, said in changes.items():
            path.write_bytes(b"the file as it was read")
            call, _ = core.file_call(client.settings, None, path, "log", "2026-12-01T09:00:00Z", None, None)
            path.write_bytes(change)
            with pytest.raises(InvalidRecord) as changed:
                client.send(call)
            assert changed.value.code == "file_changed" and said in str(changed.value)
        sentinel = client.record(**records(1)[0])  # once it is in a checkpoint, so would be anything before it
    wait_until(lambda: ledger.count() == 1, what="the sentinel's checkpoint")
    assert sentinel.seq == 0
    with Client(ledger.base, ledger.name, ledger.auditor) as auditor:
        for content in changes:
            assert auditor.find(content_hash=hashlib.new("sm3", content).hexdigest()) == []


def test_a_server_answering_something_else_is_said_never_trusted(tmp_path):
    import http.server
    import threading

    class Garbage(http.server.BaseHTTPRequestHandler):
        def answer(self, status: int, body: bytes, *headers):
            self.send_response(status)
            for name, value in (("content-length", str(len(body))), *headers):
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            self.rfile.read(int(self.headers["content-length"]))
            if "/busy/" in self.path:
                self.answer(429, b'{"error": {"code": "too_many_requests", "message": "busy"}}', ("retry-after", "100000"))
            else:
                self.answer(200, b"hello")

        def do_GET(self):
            self.answer(200, b"{}" if "/proof" in self.path else b"<html>no bundle here</html>")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Garbage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    env = {"EVLEDGER_API_KEY": "k"}
    try:
        (tmp_path / "in.ndjson").write_bytes(ndjson(records(3)))
        done = push(url, "x", str(tmp_path / "in.ndjson"), env=env)
        assert done.returncode == 4 and "not a JSON object: 'hello'" in done.stderr and "Traceback" not in done.stderr
        started = time.monotonic()  # a Retry-After far beyond --retry-for is not waited out
        busy = push(url, "busy", str(tmp_path / "in.ndjson"), "--retry-for", "2", env=env)
        assert busy.returncode == 4 and "too_many_requests" in busy.stderr and time.monotonic() - started < 20
        for args in (("proof", "x", "--url", url, "--evidence-id", "a", "--out", str(tmp_path / "p.json")),
                     ("certificate", "--ledger", "x", "--url", url, "--evidence-id", "a", "-o", str(tmp_path / "c.html"))):
            fetched = subprocess.run([sys.executable, "-m", "proof_api.cli", *args], capture_output=True, text=True,
                                     cwd=REPO, env={**os.environ, **env}, timeout=60)
            assert fetched.returncode == 1 and "bad_answer" in fetched.stderr and "Traceback" not in fetched.stderr
        assert not (tmp_path / "p.json").exists() and not (tmp_path / "c.html").exists()
    finally:
        server.shutdown()
    for target in (("http://[::1", "x"), ("http://127.0.0.1:99999", "x"), ("http://", "x"), (url, "y/../x")):
        refused = subprocess.run([sys.executable, "-m", "evledger_client.cli", *target, str(tmp_path / "in.ndjson")],
                                 capture_output=True, text=True, env={**os.environ, **env}, timeout=30)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr, (target, refused.stderr)


def test_the_async_client_keeps_batches_in_flight_and_gives_the_same_receipts(ledger, tmp_path):
    batch = records(60)

    async def run():
        async with AsyncClient(ledger.base, ledger.name, ledger.producer, concurrency=3) as client:
            first = await client.submit(batch, batch_records=10)
            again = await client.submit(batch, batch_records=25)
            one = await client.record(**records(1, start=999)[0])
            (tmp_path / "f.txt").write_bytes(b"evidence")
            upload = await client.submit_file(tmp_path / "f.txt", "contract.signed",
                                              occurred_at="2026-12-01T09:00:00Z")
            return first, again, one, upload

    first, again, one, upload = asyncio.run(run())
    assert sorted(r.seq for r in first) == list(range(60)) and [r.seq for r in again] == [r.seq for r in first]
    assert all(r.duplicate for r in again) and one.seq == 60 and upload.seq == 61
    assert upload.content_hash == hashlib.new("sm3", b"evidence").hexdigest()


def test_importing_the_client_loads_nothing_of_the_service():
    code = ("import sys, evledger_client, evledger_client.push, evledger_client.cli\n"
            "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                cwd="/").stdout.split())
    assert "evledger_client" in loaded
    assert loaded.isdisjoint({"numpy", "numba", "rocksdict", "web3", "fastapi", "uvicorn", "ingest", "proof_api",
                              "merkle", "anchor", "gmssl"}), loaded


# -- evledger push ----------------------------------------------------------------------------------

def test_push_reports_bad_lines_and_goes_on_then_a_rerun_records_nothing_twice(ledger, tmp_path):
    good = records(40, ids=True)
    huge = orjson.dumps({**good[0], "evidence_id": "huge", "business_type": "x" * (17 << 20)}) + b"\n"
    deep = b'{"evidence_id": "deep", "attributes": ' + b'{"a": ' * 600 + b"1" + b"}" * 601 + b"\n"  # batch-breaking
    data = (ndjson(good[:20]) + b"not json\n\n[1, 2]\n" + ndjson([{**good[0], "content_hash": "12"}]) + ndjson(good[20:])
            + huge + deep)
    source = tmp_path / "in.ndjson"
    source.write_bytes(data)
    env = {"EVLEDGER_API_KEY": ledger.producer}
    first = push(ledger.base, ledger.name, str(source), "--receipts", str(tmp_path / "r.ndjson"), "--batch-records",
                 "7", env=env, command=[sys.executable, "-m", "proof_api.cli", "push"])  # as `evledger push`
    assert first.returncode == 1, first.stderr
    assert "line 21: refused: malformed_json" in first.stderr and "line 23: refused: invalid_record record (type)" in first.stderr
    assert "line 24: refused: invalid_record content_hash (length)" in first.stderr
    assert "line 45: refused: limit_exceeded record (max_record_bytes)" in first.stderr
    assert "line 46: refused: invalid_record record (type)" in first.stderr
    assert "46 lines answered: 40 recorded, 0 already recorded, 5 refused, 1 blank" in first.stderr
    lines = [orjson.loads(x) for x in (tmp_path / "r.ndjson").read_bytes().splitlines()]
    assert [x["line"] for x in lines] == list(range(1, 47))
    assert lines[21]["blank"] is True and lines[23]["error"]["field"] == "content_hash"
    assert sorted(x["seq"] for x in lines if "seq" in x) == list(range(40))
    # Another run over the same input with no receipts to resume from: every record already there.
    again = push(ledger.base, ledger.name, "-", input=data.decode(), env={**env, "EVLEDGER_URL": ledger.base})
    assert again.returncode == 1 and "40 already recorded" in again.stderr, again.stderr
    # A run resuming from a complete receipts file sends nothing.
    resumed = push(ledger.name, str(source), "--receipts", str(tmp_path / "r.ndjson"),
                   env={**env, "EVLEDGER_URL": ledger.base})
    assert resumed.returncode == 1 and "(46 from the receipts of an earlier run)" in resumed.stderr
    wait_until(lambda: ledger.count() == 40, what="a checkpoint of the 40 records")


def test_a_refused_line_that_changed_is_sent_on_a_resume(ledger, tmp_path):
    """A file still being written (its last line half there) and a record corrected after its
    refusal: the run after sends them, and only them are new."""
    good = records(4)
    source, receipts = tmp_path / "in.ndjson", tmp_path / "r.ndjson"
    bad_type = {**good[1], "business_type": "bad type!"}
    source.write_bytes(ndjson([good[0], bad_type, good[2]]) + orjson.dumps(good[3])[:40])
    env = {"EVLEDGER_API_KEY": ledger.producer}
    first = push(ledger.base, ledger.name, str(source), "--receipts", str(receipts), env=env)
    assert first.returncode == 1 and "line 2: refused" in first.stderr and "line 4: refused: malformed_json" in first.stderr
    source.write_bytes(ndjson(good) + b"\n" + b"x" * (17 << 20))  # corrected, completed, and a line with no end
    second = push(ledger.base, ledger.name, str(source), "--receipts", str(receipts), env=env)
    assert second.returncode == 1 and "line 6: refused: limit_exceeded" in second.stderr, second.stderr
    assert "2 recorded, 1 already recorded" in second.stderr, second.stderr
    lines = [orjson.loads(x) for x in receipts.read_bytes().splitlines()]
    assert [x.get("seq") for x in lines] == [0, 2, 1, 3, None, None] and lines[4]["blank"] and "error" in lines[5]


def test_push_refuses_a_receipts_file_of_another_input(ledger, tmp_path):
    (tmp_path / "a.ndjson").write_bytes(ndjson(records(5)))
    (tmp_path / "b.ndjson").write_bytes(ndjson(records(5, start=100)))
    env = {"EVLEDGER_API_KEY": ledger.producer}
    assert push(ledger.base, ledger.name, str(tmp_path / "a.ndjson"), "--receipts", str(tmp_path / "r"), env=env).returncode == 0
    other = push(ledger.base, ledger.name, str(tmp_path / "b.ndjson"), "--receipts", str(tmp_path / "r"), env=env)
    assert other.returncode == 2 and "belongs to another input" in other.stderr and "Traceback" not in other.stderr
    # A bad key, with batches of several MiB: the service refuses it before reading a body and
    # closes the connection; the push says why at once instead of retrying what looks like a reset.
    (tmp_path / "big.ndjson").write_bytes(ndjson(records(2000, pad=1600)))
    started = time.monotonic()
    bad_key = push(ledger.base, ledger.name, str(tmp_path / "big.ndjson"), "--batch-bytes", str(16 << 20),
                   "--batch-records", "10000", env={"EVLEDGER_API_KEY": "evk_x_y"})
    assert bad_key.returncode == 4 and "unauthorized" in bad_key.stderr and "Traceback" not in bad_key.stderr
    assert time.monotonic() - started < 30
    (tmp_path / "notes.txt").write_text("my notes\n")
    not_receipts = push(ledger.base, ledger.name, str(tmp_path / "a.ndjson"), "--receipts", str(tmp_path / "notes.txt"),
                        env=env)
    assert not_receipts.returncode == 2 and "is not a receipt" in not_receipts.stderr
    assert (tmp_path / "notes.txt").read_text() == "my notes\n", "a file that is not a receipts file is left alone"
    (tmp_path / "one-line.txt").write_text("precious single line, no newline")
    one = push(ledger.base, ledger.name, str(tmp_path / "a.ndjson"), "--receipts", str(tmp_path / "one-line.txt"), env=env)
    assert one.returncode == 2 and (tmp_path / "one-line.txt").read_text() == "precious single line, no newline"


def test_push_files_uploads_a_folder_once(ledger, tmp_path):
    folder = tmp_path / "scans"
    (folder / "2026" / "12").mkdir(parents=True)
    for i in range(5):
        (folder / "2026" / "12" / f"scan-{i}.pdf").write_bytes(b"scan %d" % i)
    (folder / "empty.pdf").write_bytes(b"")
    env = {"EVLEDGER_API_KEY": ledger.producer}
    args = (ledger.base, ledger.name, "--files", str(folder), "--business-type", "contract.scan",
            "--receipts", str(tmp_path / "r.ndjson"))
    first = push(*args, env=env)
    assert first.returncode == 1 and "empty.pdf: refused: empty_file" in first.stderr, first.stderr
    lines = [orjson.loads(x) for x in (tmp_path / "r.ndjson").read_bytes().splitlines()]
    assert [x["file"] for x in lines] == [f"2026/12/scan-{i}.pdf" for i in range(5)] + ["empty.pdf"]
    assert [x["content_hash"] for x in lines[:5]] == [hashlib.new("sm3", b"scan %d" % i).hexdigest() for i in range(5)]
    (tmp_path / "r.ndjson").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines[:2]) + b'{"file": "20')
    resumed = push(*args, env=env)  # a torn last line: cut off, the rest sent again, nothing recorded twice
    assert resumed.returncode == 1 and "3 already recorded" in resumed.stderr, resumed.stderr
    assert [orjson.loads(x)["file"] for x in (tmp_path / "r.ndjson").read_bytes().splitlines()] == [x["file"] for x in lines]
    wait_until(lambda: ledger.count() == 5, what="a checkpoint of the 5 files")
    # A name that is not UTF-8, and a large file whose fields the service refuses before its body.
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / os.fsdecode(b"caf\xe9.pdf")).write_bytes(b"odd name")
    (odd / "large.bin").write_bytes(os.urandom(3 << 20))
    named = push(ledger.base, ledger.name, "--files", str(odd), "--business-type", "contract.scan", "--receipts",
                 str(tmp_path / "odd.ndjson"), env=env)
    assert named.returncode == 0, named.stderr
    assert [orjson.loads(x)["file"] for x in (tmp_path / "odd.ndjson").read_bytes().splitlines()] == [
        "caf\\xe9.pdf", "large.bin"]
    again = push(ledger.base, ledger.name, "--files", str(odd), "--business-type", "contract.scan", "--receipts",
                 str(tmp_path / "odd.ndjson"), env=env)  # resumes from those names: nothing to send
    assert again.returncode == 0 and "0 recorded, 0 already recorded" in again.stderr, again.stderr
    assert "(2 from the receipts of an earlier run)" in again.stderr
    (odd / "new.pdf").write_bytes(b"dropped in later")  # a drop folder: the next run sends what is new
    later = push(ledger.base, ledger.name, "--files", str(odd), "--business-type", "contract.scan", "--receipts",
                 str(tmp_path / "odd.ndjson"), env=env)
    assert later.returncode == 0 and "1 recorded, 0 already recorded" in later.stderr, later.stderr
    refused = push(ledger.base, ledger.name, "--files", str(odd), "--business-type", "contract.scan", "--occurred-at",
                   "yesterday", "--receipts", str(tmp_path / "bad-option.ndjson"), env=env, timeout=60)
    assert refused.returncode == 2 and "occurred_at" in refused.stderr, refused.stderr  # before any upload
    assert (tmp_path / "bad-option.ndjson").read_bytes() == b""


def test_push_from_a_pipe_that_trickles_sends_what_came_and_the_light_command_works(ledger, tmp_path):
    """`evledger-push` (the client's own command) reading a pipe that stays open: the lines that came
    are sent after a second without more, not held until a batch fills."""
    receipts = tmp_path / "r.ndjson"
    run = subprocess.Popen([sys.executable, "-m", "evledger_client.cli", ledger.base, ledger.name, "-", "--receipts",
                            str(receipts)], stdin=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/",
                           env={**os.environ, "EVLEDGER_API_KEY": ledger.producer})
    run.stdin.write(codecs.BOM_UTF8)  # a byte order mark, as some exporters write
    try:
        for line in ndjson(records(6)).splitlines(keepends=True):  # a line every 0.4 s: never a second's pause
            run.stdin.write(line)
            run.stdin.flush()
            time.sleep(0.4)
        assert lines_in(receipts) >= 3, "lines waiting a second are sent, though more keep coming"
        wait_until(lambda: lines_in(receipts) == 6, timeout=20, what="every line's receipt, input still open")
        run.stdin.write(ndjson(records(2, start=6)))
    finally:
        run.stdin.close()
    assert run.wait(timeout=60) == 0, run.stderr.read()
    assert [orjson.loads(x)["seq"] for x in receipts.read_bytes().splitlines()] == list(range(8))


def test_a_push_that_stops_while_its_pipe_is_open_exits_cleanly(ledger, tmp_path):
    receipts = tmp_path / "r.ndjson"
    env = {**os.environ, "EVLEDGER_API_KEY": ledger.producer}
    (tmp_path / "a.ndjson").write_bytes(ndjson(records(3)))
    assert push(ledger.base, ledger.name, str(tmp_path / "a.ndjson"), "--receipts", str(receipts), env=env).returncode == 0
    run = subprocess.Popen([sys.executable, "-m", "evledger_client.cli", ledger.base, ledger.name, "-", "--receipts",
                            str(receipts)], stdin=subprocess.PIPE, stderr=subprocess.PIPE, cwd="/", env=env)
    try:
        run.stdin.write(ndjson(records(3, start=50)))  # not the input those receipts answer
        run.stdin.flush()
        assert run.wait(timeout=30) == 2  # while the pipe is still open
        err = run.stderr.read().decode()
        assert "belongs to another input" in err and "Fatal Python error" not in err, err
    finally:
        run.stdin.close()
        run.kill()
    shorter = push(ledger.base, ledger.name, "-", "--receipts", str(receipts), input=ndjson(records(2)).decode(), env=env)
    assert shorter.returncode == 2 and "only 2" in shorter.stderr, shorter.stderr


def test_the_library_probes_before_a_large_upload(ledger, tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(8 << 20))
    started = time.monotonic()
    with Client(ledger.base, ledger.name, "evk_wrong_key") as client, pytest.raises(Unauthorized):
        client.submit_file(big, "contract.scan", evidence_id="big-1")
    with Client(ledger.base, ledger.name, ledger.producer) as client, pytest.raises(InvalidRecord) as refused:
        client.submit_file(big, "contract.scan", occurred_at="yesterday", evidence_id="big-1")
    assert refused.value.field == "occurred_at" and time.monotonic() - started < 20
    with pytest.raises(ValueError, match="cannot carry"):
        Client(ledger.base, ledger.name, ledger.producer + "\r\x01")


def test_a_killed_or_interrupted_push_resumes_exactly_once(ledger, tmp_path):
    n = 30_000
    source = tmp_path / "in.ndjson"
    source.write_bytes(ndjson(records(n, ids=True)))
    receipts = tmp_path / "r.ndjson"
    env = {"EVLEDGER_API_KEY": ledger.producer}
    args = (ledger.base, ledger.name, str(source), "--receipts", str(receipts), "--batch-records", "500")
    for how in (signal.SIGKILL, signal.SIGINT):
        run = start_push(*args, env=env)
        before = lines_in(receipts)
        wait_until(lambda: lines_in(receipts) >= before + 3000 or run.poll() is not None, timeout=60, what="a push")
        run.send_signal(how)
        _, err = run.communicate(timeout=60)
        assert run.returncode == (-9 if how == signal.SIGKILL else 130), err
        assert 0 < lines_in(receipts) < n, "stopped in the middle"
    done = push(*args, env=env)
    assert done.returncode == 0 and "from the receipts of an earlier run" in done.stderr, done.stderr
    ledger.assert_exactly(n, receipts)


def test_a_push_rides_out_its_server_killed_and_restarted(tmp_path):
    port = free_port()
    data = tmp_path / "data"

    def serve():
        return subprocess.Popen([sys.executable, "-m", "proof_api.cli", "--data-dir", str(data), "--batch-max-delay",
                                 "0.05", "serve", "--port", str(port)], cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=open(tmp_path / "serve.log", "ab"))

    base = f"http://127.0.0.1:{port}"
    server = serve()
    try:
        wait_until(lambda: _up(base), timeout=90, interval=0.1, what="evledger serve")
        ledger = Ledger(base, (data / "admin.key").read_text().strip(), "restarted")
        n = 25_000
        (tmp_path / "in.ndjson").write_bytes(ndjson(records(n)))
        receipts = tmp_path / "r.ndjson"
        run = start_push(base, ledger.name, str(tmp_path / "in.ndjson"), "--receipts", str(receipts),
                         "--batch-records", "500", env={"EVLEDGER_API_KEY": ledger.producer})
        wait_until(lambda: lines_in(receipts) >= 3000, timeout=60, what="the push under way")
        server.kill()
        server.wait()
        time.sleep(1)
        server = serve()
        _, err = run.communicate(timeout=240)
        assert run.returncode == 0, err
        assert lines_in(receipts) == n and "retries" in err
        ledger.assert_exactly(n, receipts)
    finally:
        server.kill()
        server.wait()


def _up(base: str, verify=True) -> bool:
    try:
        return httpx.get(base + "/healthz", timeout=2, verify=verify).status_code == 200
    except httpx.TransportError:
        return False


def test_a_429_storm_and_a_stalled_server_only_slow_a_push(tmp_path):
    """A ledger with the smallest in-flight budget (16 MiB) and a push with 8 batches of 4 MiB in
    flight: the server answers 429 again and again. Then the server is stopped (SIGSTOP) for 3 s
    while requests with a 1 s timeout are in flight, which are sent again."""
    with evledger_serve(tmp_path / "data", "--ledger-in-flight-mib", "16") as (proc, base, admin):
        ledger = Ledger(base, admin, "storm")
        n = 9_000
        (tmp_path / "in.ndjson").write_bytes(ndjson(records(n, pad=2600)))
        receipts = tmp_path / "r.ndjson"
        run = start_push(base, ledger.name, str(tmp_path / "in.ndjson"), "--receipts", str(receipts), "--concurrency",
                         "8", "--batch-records", "10000", "--batch-bytes", str(4 << 20), "--timeout", "1",
                         env={"EVLEDGER_API_KEY": ledger.producer})
        wait_until(lambda: lines_in(receipts) >= 1000, timeout=120, what="the push under way")
        os.kill(proc.pid, signal.SIGSTOP)
        time.sleep(3)
        os.kill(proc.pid, signal.SIGCONT)
        _, err = run.communicate(timeout=240)
        assert run.returncode == 0, err
        metrics = httpx.get(base + "/metrics").text
        storms = [line for line in metrics.splitlines() if line.startswith('evledger_errors_total{code="too_many_requests"}')]
        assert storms and float(storms[0].split()[-1]) >= 3, storms
        ledger.assert_exactly(n, receipts)


def test_tls_with_a_self_signed_certificate(tmp_path):
    cert, key = make_certificate(tmp_path)
    port = free_port()
    data = tmp_path / "data"
    server = subprocess.Popen([sys.executable, "-m", "proof_api.cli", "--data-dir", str(data), "serve", "--port",
                               str(port), "--ssl-certfile", str(cert), "--ssl-keyfile", str(key)], cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"https://127.0.0.1:{port}"
    try:
        import ssl

        wait_until(lambda: _up(base, ssl.create_default_context(cafile=str(cert))), timeout=90, interval=0.1,
                   what="evledger serve over TLS")
        ledger = Ledger(base, (data / "admin.key").read_text().strip(), "tls", ssl.create_default_context(cafile=str(cert)))
        with Client(base, "tls", ledger.producer, ca_file=str(cert)) as client:
            assert client.record(**records(1)[0]).seq == 0
        started = time.monotonic()
        with Client(base, "tls", ledger.producer) as client, pytest.raises(ConnectionFailed) as refused:
            client.record(**records(1)[0])
        assert not refused.value.retryable and "CERTIFICATE_VERIFY_FAILED" in str(refused.value)
        assert time.monotonic() - started < 10, "a certificate that does not verify is not retried"
        (tmp_path / "in.ndjson").write_bytes(ndjson(records(3)))
        env = {"EVLEDGER_API_KEY": ledger.producer}
        untrusted = push(base, "tls", str(tmp_path / "in.ndjson"), env=env)
        assert untrusted.returncode == 4 and "--ca-file" in untrusted.stderr and "Traceback" not in untrusted.stderr
        trusted = push(base, "tls", str(tmp_path / "in.ndjson"), env={**env, "EVLEDGER_CA_FILE": str(cert)})
        assert trusted.returncode == 0 and "2 recorded, 1 already recorded" in trusted.stderr, trusted.stderr
    finally:
        server.kill()
        server.wait()


# -- evledger proof / certificate from a service ------------------------------------------------------

def test_proof_and_certificate_commands_fetch_from_a_service(ledger, tmp_path):
    evidence = tmp_path / "evidence.txt"
    evidence.write_bytes(b"the evidence")
    with Client(ledger.base, ledger.name, ledger.producer) as client:
        receipt = client.submit_file(evidence, "contract.signed", occurred_at="2026-12-01T09:00:00Z")
    with Client(ledger.base, ledger.name, ledger.auditor) as auditor:
        _anchored(auditor, receipt)
        assert receipt.evidence_id in auditor.certificate(file=evidence)
    env = {**os.environ, "EVLEDGER_URL": ledger.base, "EVLEDGER_API_KEY": ledger.auditor}

    def evledger(*args):
        return subprocess.run([sys.executable, "-m", "proof_api.cli", *args], capture_output=True, text=True,
                              cwd=REPO, env=env, timeout=120)

    made = evledger("proof", ledger.name, "--file", str(evidence), "--out", str(tmp_path / "b.json"))
    assert made.returncode == 0, made.stderr
    verdict = evledger("verify", str(tmp_path / "b.json"), "--file", str(evidence))
    assert verdict.returncode == 0 and "verdict ①" in verdict.stdout, verdict.stdout
    cert = evledger("certificate", "--ledger", ledger.name, "--evidence-id", receipt.evidence_id, "-o",
                    str(tmp_path / "c.html"))
    assert cert.returncode == 0 and receipt.evidence_id in (tmp_path / "c.html").read_text(), cert.stderr
    missing = evledger("proof", ledger.name, "--evidence-id", "no-such-record")
    assert missing.returncode == 1 and "not_found" in missing.stderr and "Traceback" not in missing.stderr
    both = evledger("certificate", str(tmp_path / "b.json"), "--seq", "1", "-o", "-")
    assert both.returncode == 2


# -- the pure pieces ---------------------------------------------------------------------------------

def test_retry_after_reads_seconds_and_http_dates():
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Sat, 05 Dec 2026 10:00:30 GMT", now=1796464800.0) == 30.0
    assert retry_after_seconds("Sat, 05 Dec 2026 09:00:00 GMT", now=1796464800.0) == 0.0  # already past
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_the_wait_before_a_retry_is_the_servers_retry_after_capped():
    from tenacity import RetryCallState, Retrying

    def state_after(exc) -> RetryCallState:
        state = RetryCallState(Retrying(), None, (), {})
        state.set_exception((type(exc), exc, None))
        return state

    assert wait_before_retry(state_after(TooManyRequests("busy", status=429, retry_after=3.0))) == 3.0
    assert wait_before_retry(state_after(TooManyRequests("busy", status=429, retry_after=3600.0))) == 60.0
    assert 0 < wait_before_retry(state_after(ConnectionFailed("reset"))) <= 10.0


def test_derived_evidence_ids_are_stable_and_leave_sealed_values_out():
    record = {"content_hash": "ab" * 32, "business_type": "t", "occurred_at": "2026-12-01T09:00:00Z",
              "sealed": {"id_number": "310101199001011234"}}
    same = {"occurred_at": "2026-12-01T09:00:00Z", "business_type": "t", "content_hash": "ab" * 32, "business_id": None}
    assert derive_evidence_id(record) == derive_evidence_id(same) == derive_evidence_id({**record, "sealed": {}})
    assert derive_evidence_id(record) != derive_evidence_id({**record, "occurred_at": "2026-12-01T09:00:01Z"})
    assert derive_evidence_id({**record, "content_hash": "AB" * 32}) == derive_evidence_id(record)  # as the service keeps it
    assert orjson.loads(prepare(record).body)["evidence_id"] == prepare(record).evidence_id == derive_evidence_id(record)
    assert orjson.loads(prepare({**record, "evidence_id": "mine"}).body)["evidence_id"] == "mine"
    deep = {**record, "attributes": {"a": [[[[[]]]]]}}
    for _ in range(300):
        deep = {**record, "attributes": {"a": deep}}
    assert prepare(deep).rule == "type" and "JSON" in prepare(deep).message  # deeper than a batch could carry


def test_batches_stay_under_count_and_bytes():
    prepared = [prepare(r) for r in records(50, pad=1000)]
    cut = list(batches(prepared, max_records=8, max_bytes=6000))
    assert [i for b in cut for i in b.indexes] == list(range(50))
    assert all(len(b.indexes) <= 8 and (len(b.body) <= 6000 or len(b.indexes) == 1) for b in cut)
    assert [orjson.loads(b.body) for b in cut][0][0]["attributes"]["n"] == 0
    with pytest.raises(ValueError, match="10,000"):
        list(batches(prepared, max_records=10_001))


def test_answers_map_to_typed_errors():
    said = orjson.dumps({"error": {"code": "invalid_record", "field": "occurred_at", "rule": "format", "message": "m"}})
    assert type(error_from_answer(422, said)) is InvalidRecord
    assert type(error_from_answer(422, orjson.dumps({"error": {"code": "invalid_request", "message": "m"}}))) is BadRequest
    busy = error_from_answer(429, b'{"error": {"code": "too_many_requests", "message": "m"}}', "1")
    assert type(busy) is TooManyRequests and busy.retry_after == 1.0
    assert type(error_from_answer(502, b"<html>bad gateway</html>")) is Unavailable
    assert "bad gateway" in str(error_from_answer(500, b"<html>bad gateway</html>"))
