"""Hostile input against a real `evledger serve` process: every defect an outside attacker
found, as a regression test, each answered with a documented 4xx in the one error shape while
the service keeps answering /healthz and records nothing from a refused request.

A server process, not an in-process app: a request that overflowed the C stack killed the
whole process, which would take pytest with it."""
from __future__ import annotations

import json
import select
from collections import Counter
import socket
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from tests.api_helpers import assert_error, auth, evledger_serve
from tests.sample_records import rec

DEEP = 100_000


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    data = tmp_path_factory.mktemp("hostile") / "data"
    # A short body timeout, so that slow bodies show within a test's time; the size limits are
    # the defaults.
    with evledger_serve(data, "--body-timeout", "2") as (proc, base, admin):
        with httpx.Client(base_url=base, timeout=30) as http:
            keys = {}
            for ledger in ("acme", "other"):
                assert http.post("/v1/ledgers", json={"ledger": ledger}, headers=auth(admin)).status_code == 201
                for role in ("producer", "auditor"):
                    r = http.post(f"/v1/ledgers/{ledger}/api-keys", json={"role": role}, headers=auth(admin))
                    keys[ledger, role] = r.json()["key"]
            yield SimpleNamespace(proc=proc, base=base, http=http, admin=admin, keys=keys,
                                  H=lambda ledger="acme", role="producer": auth(keys[ledger, role]))
        assert proc.poll() is None, "the service died"
    stderr = Path(f"{data}.stderr").read_text()
    assert "Traceback" not in stderr, stderr[-3000:]  # every hostile request answered, none crashed a route


def alive(live) -> None:
    assert live.proc.poll() is None, f"evledger serve died with {live.proc.returncode}"
    assert live.http.get("/healthz").status_code == 200


def count(live, ledger="acme") -> int:
    """Records the ledger holds, from its Prometheus counter."""
    metrics = live.http.get("/metrics").text
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in metrics.splitlines()
               if line.startswith(f'evledger_records_total{{ledger="{ledger}"}}'))


def raw_request(base: str, head: str, body_parts=(), pause: float = 0.0, timeout: float = 30.0) -> tuple[int, bytes]:
    """One HTTP/1.1 request over a plain socket (for what httpx will not send: trickled bodies,
    lying lengths); the status and the raw response."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(head.encode())
        try:
            for part in body_parts:
                if select.select([s], [], [], pause)[0]:
                    break  # the server has answered: stop sending
                s.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the rest: read what it said
        chunks = []
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                    break
        except (ConnectionResetError, socket.timeout):
            pass
    response = b"".join(chunks)
    assert response.startswith(b"HTTP/1.1 "), response[:200]
    return int(response[9:12]), response


def _complete(response: bytes) -> bool:
    head, _, body = response.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def error_of(response: bytes) -> dict:
    return json.loads(response.partition(b"\r\n\r\n")[2])["error"]


# --- the attacker's reproductions ------------------------------------------------------------

def deep_body(depth: int) -> bytes:
    return b'{"bundle":' + b"[" * depth + b"]" * depth + b"}"


# /v1/ledgers takes at most 64 KiB: 32,000 levels fit, and overflowed the C stack as well.
@pytest.mark.parametrize("path, depth", [("/v1/verify", DEEP), ("/v1/ledgers/acme/records", DEEP),
                                         ("/v1/ledgers", 32_000), ("/v1/ledgers/acme/records/batch", DEEP)])
def test_nesting_100000_deep_is_malformed_json_and_the_service_lives(live, path, depth):
    before = count(live)
    headers = {"content-type": "application/json", **(auth(live.admin) if path == "/v1/ledgers" else live.H())}
    error = assert_error(live.http.post(path, content=deep_body(depth), headers=headers), 400, "malformed_json")
    assert "depth" in error["message"], error
    if path != "/v1/verify":  # without a key: refused before a byte of the body is read
        assert_error(live.http.post(path, content=deep_body(depth), headers={"content-type": "application/json"}),
                     401, "unauthorized")
    alive(live)
    assert count(live) == before


def chunked(total: int, piece: int = 1 << 20, head: bytes = b'{"bundle":"', tail: bytes = b'"}'):
    yield head
    sent = 0
    while sent < total:
        yield b"a" * min(piece, total - sent)
        sent += piece
    yield tail


@pytest.mark.parametrize("path", ["/v1/ledgers/acme/records", "/v1/verify", "/v1/ledgers",
                                  "/v1/ledgers/acme/records/batch", "/v1/ledgers/acme/api-keys"])
def test_a_chunked_body_over_the_limit_is_413_like_a_declared_one(live, path):
    headers = {"content-type": "application/json",
               **(auth(live.admin) if path in ("/v1/ledgers", "/v1/ledgers/acme/api-keys") else live.H())}
    body = b"".join(chunked(17 << 20))
    assert_error(live.http.post(path, content=body, headers=headers), 413, "body_too_large")
    assert_error(live.http.post(path, content=chunked(17 << 20), headers=headers), 413, "body_too_large")
    alive(live)


def test_an_endless_chunked_verify_is_cut_off_at_the_limit_and_memory_stays_flat(live):
    before = rss_bytes(live.proc.pid)
    # 400 MiB offered, unauthenticated; the server stops reading past its 1 MiB limit.
    r = live.http.post("/v1/verify", content=chunked(400 << 20), headers={"content-type": "application/json"})
    assert_error(r, 413, "body_too_large")
    assert rss_bytes(live.proc.pid) - before < 64 << 20
    alive(live)


@pytest.mark.parametrize("where", ["top", "record"])
def test_a_lone_surrogate_key_in_a_bundle_is_malformed_json_not_a_500(live, where):
    key = '"\\ud800"'
    bundle = f'{{{key}: 1}}' if where == "top" else f'{{"record": {{{key}: 1}}}}'
    r = live.http.post("/v1/verify", content=f'{{"bundle": {bundle}}}'.encode(),
                       headers={"content-type": "application/json"})
    assert_error(r, 400, "malformed_json")
    alive(live)


BAD_BYTES = {
    "invalid utf-8": b'{"ledger": "\xff\xfe"}',
    "overlong utf-8": b'{"ledger": "\xc0\xaf"}',
    "5,000-digit integer": b'{"ledger": ' + b"9" * 5000 + b"}",
    "encoded surrogate": b'{"ledger": "\xed\xa0\x80"}',
}


@pytest.mark.parametrize("what", sorted(BAD_BYTES))
@pytest.mark.parametrize("path", ["/v1/ledgers/acme/records", "/v1/verify", "/v1/ledgers",
                                  "/v1/ledgers/acme/api-keys", "/v1/ledgers/acme/ip-rules"])
def test_bytes_that_are_not_json_are_malformed_json_everywhere(live, path, what):
    method = "PUT" if path.endswith("/ip-rules") else "POST"
    headers = {"content-type": "application/json", **(live.H() if path.endswith("/records") else auth(live.admin))}
    r = live.http.request(method, path, content=BAD_BYTES[what], headers=headers)
    assert_error(r, 400, "malformed_json")


def test_a_conflicting_resubmission_carries_its_rule(live):
    first = rec(1, evidence_id="hostile-conflict")
    assert live.http.post("/v1/ledgers/acme/records", json=first, headers=live.H()).status_code == 201
    other = {**first, "business_type": "something-else"}
    error = assert_error(live.http.post("/v1/ledgers/acme/records", json=other, headers=live.H()),
                         422, "invalid_record", "evidence_id")
    assert error["rule"] == "conflict", error
    batch = live.http.post("/v1/ledgers/acme/records/batch", json=[other], headers=live.H()).json()
    assert batch["results"][0]["error"] == error  # the same error, one record or a batch


def test_a_record_without_a_content_type_is_read_as_json_like_a_batch(live):
    body = json.dumps(rec(2, evidence_id="hostile-no-ctype")).encode()
    one = live.http.post("/v1/ledgers/acme/records", content=body, headers=live.H())
    assert one.status_code == 201, one.text
    batch = live.http.post("/v1/ledgers/acme/records/batch", content=b"[" + body + b"]", headers=live.H())
    assert batch.status_code == 200 and batch.json()["results"][0]["duplicate"] is True, batch.text


# --- slow clients ------------------------------------------------------------------------------------


def test_a_trickled_body_is_cut_off_with_408(live):
    host = live.base.removeprefix("http://")
    head = (f"POST /v1/ledgers/acme/records HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {live.keys['acme', 'producer']}\r\nContent-Length: 1000\r\n\r\n")
    started = time.monotonic()
    status, response = raw_request(live.base, head, [b"{"] + [b" "] * 40, pause=0.25)
    assert status == 408 and error_of(response)["code"] == "body_timeout", response[:300]
    assert time.monotonic() - started < 8
    # A body that stops: cut after the idle timeout (half of --body-timeout 2).
    started = time.monotonic()
    status, response = raw_request(live.base, head, [b"{"], pause=0)
    assert status == 408 and error_of(response)["code"] == "body_timeout", response[:300]
    assert 0.8 < time.monotonic() - started < 6
    alive(live)


# --- back-pressure --------------------------------------------------------------------------------


def test_a_flooded_ledger_answers_429_with_retry_after_and_the_others_are_unaffected(tmp_path):
    with evledger_serve(tmp_path / "data", "--ledger-in-flight-mib", "16") as (proc, base, admin), \
            httpx.Client(base_url=base, timeout=30) as http:
        keys = {}
        for ledger in ("acme", "other"):
            assert http.post("/v1/ledgers", json={"ledger": ledger}, headers=auth(admin)).status_code == 201
            keys[ledger] = http.post(f"/v1/ledgers/{ledger}/api-keys", json={"role": "producer"},
                                     headers=auth(admin)).json()["key"]
        port = int(base.rsplit(":", 1)[1])
        # Four slow producers hold acme's 16 MiB budget (4 MiB each, declared, the body held back).
        holders = []
        for _ in range(4):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.sendall((f"POST /v1/ledgers/acme/records/batch HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       f"Content-Type: application/json\r\nAuthorization: Bearer {keys['acme']}\r\n"
                       f"Content-Length: {4 << 20}\r\n\r\n[").encode())
            holders.append(s)
        try:
            time.sleep(0.5)
            before = rss_bytes(proc.pid)
            big = b"[" + b" " * ((16 << 20) - 2) + b"]"
            for i in range(200):  # a flood: each refused before its body is read
                body = big if i < 3 else json.dumps([rec(3)]).encode()
                r = http.post("/v1/ledgers/acme/records/batch", content=body,
                              headers={"Authorization": f"Bearer {keys['acme']}", "content-type": "application/json"})
                error = assert_error(r, 429, "too_many_requests")
                assert r.headers["retry-after"] == "1", r.headers
                assert "acme" in error["message"], error
                if i % 50 == 0:  # another ledger is served meanwhile
                    r = http.post("/v1/ledgers/other/records", json=rec(1000 + i),
                                  headers={"Authorization": f"Bearer {keys['other']}"})
                    assert r.status_code == 201, r.text
            assert rss_bytes(proc.pid) - before < 64 << 20
        finally:
            for s in holders:
                s.close()
        # The budget comes back once the holders are gone.
        deadline = time.monotonic() + 15
        while True:
            r = http.post("/v1/ledgers/acme/records/batch", json=[rec(4, evidence_id="after-flood")],
                          headers={"Authorization": f"Bearer {keys['acme']}"})
            if r.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert r.status_code == 200 and r.json()["recorded"] == 1, r.text
        assert proc.poll() is None and http.get("/healthz").status_code == 200


# --- found by an outside review ------------------------------------------------------------------


def health_latency_while(live, work) -> tuple[object, float]:
    """Run `work()` in a thread; the slowest /healthz answer meanwhile (event loop liveness)."""
    import threading

    result, worst = {}, 0.0
    thread = threading.Thread(target=lambda: result.setdefault("r", work()))
    thread.start()
    with httpx.Client(base_url=live.base, timeout=60) as probe:
        while thread.is_alive():
            started = time.monotonic()
            assert probe.get("/healthz").status_code == 200
            worst = max(worst, time.monotonic() - started)
            time.sleep(0.05)
    thread.join()
    return result["r"], worst


def test_an_ndjson_batch_of_millions_of_lines_is_refused_at_line_10001_off_the_event_loop(live):
    body = b"x\n" * (8 << 20)  # 16 MiB of one-byte lines: each a parse error, 8 million of them
    r, worst = health_latency_while(live, lambda: live.http.post(
        "/v1/ledgers/acme/records/batch", content=body, headers={**live.H(), "content-type": "application/x-ndjson"}))
    assert_error(r, 413, "batch_too_large")
    assert worst < 5, f"/healthz waited {worst:.1f} s while the batch was parsed"  # was 50 s


def test_verify_reads_big_bundles_off_the_event_loop(live):
    body = b'{"bundle":{"x":[' + b"{}," * 340_000 + b'{}]}}'  # just under 1 MiB, slow to read strictly

    def verify_four():
        with httpx.Client(base_url=live.base, timeout=60) as c:
            return [c.post("/v1/verify", content=body, headers={"content-type": "application/json"})
                    for _ in range(4)]
    answers, worst = health_latency_while(live, verify_four)
    assert all(a.status_code == 200 and a.json()["verdict"] == 2 for a in answers), answers[0].text[:300]
    assert worst < 3, f"/healthz waited {worst:.1f} s behind the verifier"


def test_verify_refuses_a_crowd_before_parsing_anything(live):
    """Fifty at once: those beyond the verification slots get 429 before their body is parsed,
    so the event loop and memory stay free."""
    from concurrent.futures import ThreadPoolExecutor

    body = b'{"bundle":{"x":[' + b"{}," * 340_000 + b'{}]}}'
    before = rss_bytes(live.proc.pid)

    def crowd():
        with httpx.Client(base_url=live.base, timeout=120) as c, ThreadPoolExecutor(50) as pool:
            return list(pool.map(lambda _: c.post("/v1/verify", content=body,
                                                  headers={"content-type": "application/json"}), range(50)))
    answers, worst = health_latency_while(live, crowd)
    statuses = Counter(a.status_code for a in answers)
    # 408: this server's --body-timeout is 2 s, and fifty uploads from one client can stall that long.
    assert set(statuses) <= {200, 408, 429} and statuses[429] > 0, statuses
    assert all(a.headers["retry-after"] == "1" for a in answers if a.status_code == 429)
    assert worst < 3, f"/healthz waited {worst:.1f} s behind the crowd"
    assert rss_bytes(live.proc.pid) - before < 400 << 20


@pytest.mark.parametrize("path, ctype, status", [("/v1/ledgers/acme/records", "application/json", 401),
                                                 ("/v1/verify", "text/plain", 415)])
def test_an_answer_before_the_body_closes_the_connection_rather_than_read_the_body_as_a_head(live, path, ctype,
                                                                                             status):
    host = live.base.removeprefix("http://")
    port = int(host.split(":")[1])
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
                  f"Content-Type: {ctype}\r\nContent-Length: 2\r\n\r\n".encode())
        time.sleep(0.3)
        s.sendall(b"{}")  # the body, after the 401 was already sent
        received = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            received += chunk
    assert received.startswith(f"HTTP/1.1 {status} ".encode()), received[:200]
    assert b"connection: close" in received.lower()
    assert received.count(b"HTTP/1.1 ") == 1, received  # no second, unasked-for answer


def test_a_client_gone_mid_body_is_counted_not_an_internal_error(live):
    def errors(code: str) -> int:
        return sum(int(float(line.rsplit(" ", 1)[1])) for line in live.http.get("/metrics").text.splitlines()
                   if line.startswith(f'evledger_errors_total{{code="{code}"}}'))

    before_gone, before_internal = errors("client_disconnected"), errors("internal_error")
    host = live.base.removeprefix("http://")
    for path in ("/v1/ledgers/acme/records/batch", "/v1/ledgers/acme/records", "/v1/verify",
                 "/v1/ledgers/acme/files?business_type=contract&occurred_at=2026-11-26T01:00:00Z"):
        with socket.create_connection(("127.0.0.1", int(host.split(":")[1])), timeout=15) as s:
            s.sendall((f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                       f"Authorization: Bearer {live.keys['acme', 'producer']}\r\nContent-Length: 1000\r\n\r\n[{{}}").encode())
            time.sleep(0.2)
    wait_for = time.monotonic() + 10
    while errors("client_disconnected") < before_gone + 4 and time.monotonic() < wait_for:
        time.sleep(0.1)
    assert errors("client_disconnected") == before_gone + 4
    assert errors("internal_error") == before_internal
    alive(live)


@pytest.mark.parametrize("flags, message", [(("--body-timeout", "0"), "--body-timeout must be over 0"),
                                            (("--ledger-in-flight-mib", "8"), "at least 16")])
def test_serve_refuses_limits_that_would_refuse_everything(tmp_path, flags, message):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "proof_api.cli", "--data-dir", str(tmp_path / "d"), "serve", *flags],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and message in done.stderr, done.stderr
