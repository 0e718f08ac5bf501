"""`evledger serve` against hostile connections (proof_api/serving.py): TLS, a header timeout
for clients that trickle their request head, and bounds on the head's size, each against a
real `evledger serve` subprocess over raw sockets on 127.0.0.1. Every loop is bounded in time.
"""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.api_helpers import assert_error, free_port, make_certificate, wait_until

REPO = Path(__file__).resolve().parents[1]
HEADER_TIMEOUT = 2.0
SLOW_HEAD = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200


class Served:
    def __init__(self, proc: subprocess.Popen, port: int, stderr: Path, scheme: str = "http",
                 verify: ssl.SSLContext | bool = True):
        self.proc, self.port, self.stderr = proc, port, stderr
        self.base = f"{scheme}://127.0.0.1:{port}"
        self.verify = verify

    def get(self, path: str, **kwargs) -> httpx.Response:
        with httpx.Client(base_url=self.base, verify=self.verify, timeout=10) as http:
            return http.get(path, **kwargs)

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)


def start_serve(tmp: Path, *extra: str) -> tuple[subprocess.Popen, int, Path]:
    port = free_port()
    stderr = tmp / "serve.stderr"
    # stderr to a file: a pipe nobody reads would fill and stall the server
    with open(stderr, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "proof_api.cli", "--data-dir", str(tmp / "data"),
                                 "--batch-max-delay", "0.05", "serve", "--host", "127.0.0.1", "--port", str(port),
                                 "--anchor-min-interval", "0", *extra],
                                cwd=REPO, stdout=subprocess.DEVNULL, stderr=err,
                                env={**os.environ, "PYTHONWARNINGS": "ignore"})
    return proc, port, stderr


def wait_up(served: Served) -> None:
    def up():
        if served.proc.poll() is not None:
            raise AssertionError(f"evledger serve exited {served.proc.returncode}: {served.stderr.read_text()}")
        try:
            return served.get("/healthz").status_code == 200
        except httpx.TransportError:
            return False
    wait_until(up, timeout=60, interval=0.1, what="evledger serve")


def stop(served: Served) -> None:
    try:
        if served.proc.poll() is None:
            served.proc.send_signal(signal.SIGTERM)
            served.proc.wait(timeout=30)
        assert served.proc.returncode == 0, served.stderr.read_text()
        assert "Traceback" not in served.stderr.read_text(), served.stderr.read_text()
    finally:
        if served.proc.poll() is None:
            served.proc.kill()
            served.proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    served = Served(*start_serve(tmp, "--header-timeout", str(HEADER_TIMEOUT)))
    try:
        wait_up(served)
        yield served
    finally:
        stop(served)


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection (or `timeout` passes)."""
    sock.settimeout(timeout)
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return out


def read_response(sock: socket.socket, timeout: float = 10) -> tuple[int, dict, bytes]:
    """One response with a Content-Length body: status, headers, body."""
    deadline = time.monotonic() + timeout
    data = b""
    while b"\r\n\r\n" not in data:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        assert chunk, f"closed before a response: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    while len(body) < int(headers["content-length"]):
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        assert chunk, "closed in the middle of a body"
        body += chunk
    return int(lines[0].split()[1]), headers, body


def assert_refusal(raw: bytes, status: int, code: str) -> None:
    """`raw` is one whole response: `status` in the API's error shape, and Connection: close."""
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    assert int(lines[0].split()[1]) == status, raw[:300]
    assert headers["connection"] == "close" and headers["content-type"] == "application/json", headers
    assert int(headers["content-length"]) == len(body)
    error = json.loads(body)["error"]
    assert error["code"] == code and error["field"] is None and error["message"], error


def trickle(socks: list[socket.socket], seconds: float, every: float = 0.5,
            until_answered: bool = False) -> dict[socket.socket, tuple[bytes, float]]:
    """Send each socket the next byte of SLOW_HEAD every `every` seconds for `seconds`,
    carrying on where the last call stopped; for those the server answered or closed, what
    came back (read once something came) and when. With until_answered, stop once every socket
    has been."""
    started = time.monotonic()
    answered: dict[socket.socket, tuple[bytes, float]] = {}
    while time.monotonic() - started < seconds and not (until_answered and len(answered) == len(socks)):
        for s in socks:
            if s not in answered:
                sent = _sent.get(s, 0)
                assert sent < len(SLOW_HEAD), "SLOW_HEAD ran out: make it longer"
                try:
                    s.send(SLOW_HEAD[sent:sent + 1])
                except OSError:  # reset after the server closed: its answer was read below, or lost
                    answered[s] = (b"", time.monotonic() - started)
                _sent[s] = sent + 1
        step_end = time.monotonic() + every
        while (left := step_end - time.monotonic()) > 0:
            pending = [s for s in socks if s not in answered]
            readable = select.select(pending, [], [], left)[0] if pending else time.sleep(left) or []
            for s in readable:
                answered[s] = (read_until_closed(s, 5), time.monotonic() - started)
    return answered


_sent: dict[socket.socket, int] = {}  # bytes of SLOW_HEAD each slow socket has sent


# --- the header timeout ------------------------------------------------------------------------


def test_a_client_trickling_its_headers_is_cut_off_after_the_header_timeout(server):
    with server.connect() as s:
        answered = trickle([s], seconds=HEADER_TIMEOUT + 8, until_answered=True)
    assert s in answered, "a slow client was never cut off"
    raw, after = answered[s]
    assert HEADER_TIMEOUT - 0.2 <= after <= HEADER_TIMEOUT + 2.5, after
    assert_refusal(raw, 408, "request_timeout")


def test_a_connection_that_sends_nothing_is_closed_without_an_answer(server):
    with server.connect() as s:
        started = time.monotonic()
        raw = read_until_closed(s, HEADER_TIMEOUT + 8)
        after = time.monotonic() - started
    assert raw == b"" and HEADER_TIMEOUT - 0.2 <= after <= HEADER_TIMEOUT + 2.5, (raw, after)


def test_fifty_slow_clients_do_not_keep_a_normal_one_waiting(server):
    slow = [server.connect() for _ in range(50)]
    try:
        assert not trickle(slow, seconds=0.1, every=0.2)  # all of them into their heads
        with httpx.Client(base_url=server.base, timeout=10) as http:
            for _ in range(3):
                t0 = time.monotonic()
                r = http.get("/healthz")
                assert r.status_code == 200 and time.monotonic() - t0 < 1.0, time.monotonic() - t0
                # all 50 still open (none answered or closed) while that was served
                assert not trickle(slow, seconds=0.1, every=0.2)
        answered = trickle(slow, seconds=HEADER_TIMEOUT + 8, until_answered=True)
        assert len(answered) == 50, f"{50 - len(answered)} slow clients were never cut off"
        for raw, _after in answered.values():
            if raw:  # else the answer was lost to a reset; the connection was cut either way
                assert_refusal(raw, 408, "request_timeout")
    finally:
        for s in slow:
            s.close()
    assert server.get("/healthz").status_code == 200


def test_a_keep_alive_client_pausing_less_than_the_timeout_is_not_cut_off(server):
    """Five requests on one connection over longer than the header timeout, each head in two
    parts: only the time from a head's first byte to its last counts."""
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with server.connect() as s:
        started = time.monotonic()
        for _ in range(5):
            s.sendall(request[:20])
            time.sleep(HEADER_TIMEOUT * 0.3)
            s.sendall(request[20:])
            status, headers, body = read_response(s)
            assert status == 200 and headers.get("connection") != "close", (status, headers)
            time.sleep(HEADER_TIMEOUT * 0.5)
        assert time.monotonic() - started > 2 * HEADER_TIMEOUT


def test_pipelined_requests_are_answered_and_a_slow_one_after_them_times_out(server):
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with server.connect() as s:
        started = time.monotonic()
        s.sendall(request + request + SLOW_HEAD[:60])
        raw = read_until_closed(s, HEADER_TIMEOUT + 8)
        after = time.monotonic() - started
    assert HEADER_TIMEOUT - 0.2 <= after <= HEADER_TIMEOUT + 2.5, after
    assert raw.count(b"HTTP/1.1 200 OK\r\n") == 2, raw
    assert_refusal(raw[raw.rindex(b"HTTP/1.1 "):], 408, "request_timeout")


def test_a_fault_in_a_pipelined_request_closes_after_the_response_in_progress(server):
    """No answer lands in the middle of another: the good request's response comes whole, then
    the connection closes."""
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with server.connect() as s:
        s.sendall(request + b"GET /healthz HTTP/1.1\r\n" + many_headers(200) + b"\r\n")
        status, _, body = read_response(s)
        assert status == 200 and json.loads(body)["status"] == "ok"
        assert read_until_closed(s, 10) == b""


def test_a_slow_body_is_not_the_header_timeouts_business(server):
    body = b'{"bundle": {}}'
    with server.connect() as s:
        s.sendall(b"POST /v1/verify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body) + body[:5])
        time.sleep(HEADER_TIMEOUT * 1.5)
        s.sendall(body[5:])
        status, _, answer = read_response(s)
    assert status != 408 and status < 500, (status, answer)


# --- the size of a head -----------------------------------------------------------------------


def many_headers(n: int) -> bytes:
    return b"".join(b"X-H%d: v\r\n" % i for i in range(n))


@pytest.mark.parametrize("head", [
    pytest.param(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n", id="100KB-header"),
    pytest.param(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + many_headers(10_000) + b"\r\n", id="10000-headers"),
    pytest.param(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + many_headers(101) + b"\r\n", id="101-headers"),
    pytest.param(b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", id="100KB-url"),
])
def test_an_oversized_head_gets_431_and_the_server_survives(server, head):
    with server.connect() as s:
        s.sendall(head)
        assert_refusal(read_until_closed(s, 10), 431, "headers_too_large")
    assert server.get("/healthz").status_code == 200


def test_one_endless_header_line_sent_in_pieces_is_refused(server):
    """A header line still arriving is not in the parser's callbacks yet: its bytes are counted
    as they are read, so the parser never holds much more than the limit."""
    with server.connect() as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Endless: ")
        answer = b""
        for _ in range(200):  # up to 800 KB
            time.sleep(0.005)
            try:
                s.sendall(b"a" * 4096)
            except OSError:
                break
            if select.select([s], [], [], 0)[0]:
                answer = read_until_closed(s, 5)
                break
        assert answer, "never refused"
    assert_refusal(answer, 431, "headers_too_large")
    assert server.get("/healthz").status_code == 200


def test_a_head_just_under_the_limits_is_served(server):
    r = server.get("/healthz", headers={"X-Big": "a" * 30_000, **{f"X-H{i}": "v" for i in range(90)}})
    assert r.status_code == 200


def test_a_request_that_is_not_http_gets_400_in_the_error_shape(server):
    with server.connect() as s:
        s.sendall(b"\x16\x03\x01\x00\xa5garbage\r\n\r\n")
        assert_refusal(read_until_closed(s, 10), 400, "malformed_request")


def test_refusals_below_the_app_are_counted(server):
    with server.connect() as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\n" + many_headers(200) + b"\r\n")
        read_until_closed(s, 10)
    metrics = server.get("/metrics").text
    assert 'evledger_errors_total{code="headers_too_large"}' in metrics


def test_a_websocket_upgrade_is_an_ordinary_request(server):
    with server.connect() as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        status, _, _ = read_response(s)
    assert status == 200
    assert server.get("/healthz").status_code == 200


# --- TLS --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tls")
    cert, key = make_certificate(tmp)
    served = Served(*start_serve(tmp, "--ssl-certfile", str(cert), "--ssl-keyfile", str(key),
                                 "--header-timeout", str(HEADER_TIMEOUT)), scheme="https",
                    verify=ssl.create_default_context(cafile=str(cert)))
    served.cert = cert
    try:
        wait_up(served)
        yield served
    finally:
        stop(served)


def test_tls_serves_https_to_a_client_that_trusts_the_certificate(tls_server):
    r = tls_server.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"
    assert r.url.scheme == "https"
    # errors keep their shape over TLS
    assert_error(tls_server.get("/v1/ledgers"), 401, "unauthorized")


def test_tls_port_gives_plain_http_no_answer_of_ours(tls_server):
    with tls_server.connect() as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        raw = read_until_closed(s, 10)
    assert b"HTTP/1." not in raw and b"healthz" not in raw and b'"status"' not in raw, raw[:200]
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{tls_server.port}/healthz", timeout=10)
    assert tls_server.get("/healthz").status_code == 200


def test_tls_a_client_that_does_not_trust_the_certificate_refuses_it(tls_server):
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"https://127.0.0.1:{tls_server.port}/healthz", verify=ssl.create_default_context(), timeout=10)
    other_cert, _ = make_certificate(tls_server.cert.parent, "other")
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"https://127.0.0.1:{tls_server.port}/healthz",
                  verify=ssl.create_default_context(cafile=str(other_cert)), timeout=10)


def test_tls_the_header_timeout_holds_after_the_handshake(tls_server):
    context = ssl.create_default_context(cafile=str(tls_server.cert))
    with context.wrap_socket(tls_server.connect(), server_hostname="127.0.0.1") as s:
        started = time.monotonic()
        s.sendall(SLOW_HEAD[:30])
        raw = read_until_closed(s, HEADER_TIMEOUT + 8)
        after = time.monotonic() - started
    assert HEADER_TIMEOUT - 0.2 <= after <= HEADER_TIMEOUT + 4, after
    assert_refusal(raw, 408, "request_timeout")


def run_serve(tmp: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "proof_api.cli", "--data-dir", str(tmp / "data"), "serve",
                           "--port", str(free_port()), *args], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})})


def test_tls_files_are_checked_before_the_service_starts(tmp_path):
    cert, key = make_certificate(tmp_path)
    other_cert, other_key = make_certificate(tmp_path, "other")
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(_encrypted_key())
    cases = [
        (["--ssl-certfile", str(cert)], {}, 2, "--ssl-certfile and --ssl-keyfile"),
        ([], {"EVLEDGER_SSL_KEYFILE": str(key)}, 2, "give both or neither"),
        (["--ssl-certfile", str(tmp_path / "missing.crt"), "--ssl-keyfile", str(key)], {}, 1,
         "cannot read --ssl-certfile"),
        (["--ssl-certfile", str(key), "--ssl-keyfile", str(key)], {}, 1, "holds no PEM certificate"),
        (["--ssl-certfile", str(cert), "--ssl-keyfile", str(cert)], {}, 1, "holds no PEM private key"),
        (["--ssl-certfile", str(cert), "--ssl-keyfile", str(other_key)], {}, 1, "is not the private key"),
        (["--ssl-certfile", str(cert), "--ssl-keyfile", str(encrypted)], {}, 1, "is encrypted"),
        (["--header-timeout", "0"], {}, 2, "--header-timeout must be over 0"),
    ]
    for args, env, code, message in cases:
        result = run_serve(tmp_path, *args, env=env)
        assert result.returncode == code, (args, env, result.returncode, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr, (args, result.stderr)
    assert not (tmp_path / "data").exists(), "nothing opens before the files are checked"


def _encrypted_key() -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"))
