"""Shared helpers for the proof API tests (tests/test_api*.py): a Runtime on a temporary data
directory, Authorization headers, the one error shape, waiting for checkpoints and anchors, and
a real uvicorn server on 127.0.0.1 in a thread."""
from __future__ import annotations

import contextlib
import datetime
import ipaddress
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from anchor.chain import Web3Chain
from anchor.worker import AnchorSettings
from evledger_dev.devbroker import free_port
from ingest.sequencer import SequencerSettings
from proof_api.runtime import Runtime

ROLES = ("producer", "auditor", "verifier", "admin")
OCCURRED = "2026-11-26T01:00:00Z"  # written as is into query strings: no "+"


def make_runtime(data_dir: Path, *, chain: bool = True, batch_max_delay: float = 0.05,
                 anchor_min_interval: float = 0.0, max_file_bytes: int = 1 << 30,
                 file_store: Path | None = None) -> tuple[Runtime, str]:
    """A Runtime (in-process chain unless chain=False) and its bootstrapped service admin key."""
    runtime = Runtime(data_dir, settings=SequencerSettings(batch_max_delay=batch_max_delay),
                      chain=Web3Chain.in_process() if chain else None,
                      anchor_settings=AnchorSettings(min_interval=anchor_min_interval, poll_interval=0.05),
                      max_file_bytes=max_file_bytes, file_store=file_store)
    path = runtime.bootstrap_admin_key()
    assert path == str(Path(data_dir) / "admin.key")
    return runtime, Path(path).read_text().strip()


def auth(key: str | None) -> dict:
    return {} if key is None else {"Authorization": f"Bearer {key}"}


def assert_error(response, status: int, code: str | None = None, field: str | None | type = ...) -> dict:
    """The response is `status` with the one error shape {"error": {"code", "field", "message"}}."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json"), response.headers["content-type"]
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert {"code", "field", "message"} <= set(error), error
    assert isinstance(error["code"], str) and error["code"], error
    assert isinstance(error["message"], str) and error["message"], error
    assert error["field"] is None or isinstance(error["field"], str), error
    if code is not None:
        assert error["code"] == code, error
    if field is not ...:
        assert error["field"] == field, error
    return error


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def record_count(runtime: Runtime, ledger_id: str) -> int:
    return runtime.service.ledger(ledger_id).record_count


def settle(runtime: Runtime, ledger_id: str, timeout: float = 30.0) -> int:
    """Wait until every record of the ledger is in a checkpoint and that checkpoint is anchored
    (confirmed); returns the anchored size."""
    ledger = runtime.service.ledger(ledger_id)
    size = ledger.record_count
    assert size > 0
    assert ledger.wait_for_checkpoint(size, timeout=timeout) is not None
    runtime.worker.anchor_now(ledger_id)
    assert runtime.worker.wait_confirmed(ledger_id, size, timeout=timeout) is not None

    def projected():  # the API reads the projection, which may lag the worker by a moment
        anchored = ledger.projections.latest_anchor(status="confirmed")
        return anchored is not None and anchored["size"] >= size
    wait_until(projected, timeout=timeout, what=f"ledger {ledger_id!r} anchored to size {size}")
    return size




@contextlib.contextmanager
def uvicorn_server(app):
    """A real uvicorn server on 127.0.0.1 (a free port) in a thread; yields its base URL and
    stops it cleanly."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: server.started, timeout=20, what="uvicorn to start")
        with httpx.Client(base_url=base, timeout=10) as client:
            assert client.get("/healthz").status_code == 200
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        assert not thread.is_alive(), "uvicorn did not stop"


@contextlib.contextmanager
def evledger_serve(data_dir: Path, *serve_args: str, global_args: tuple[str, ...] = ("--batch-max-delay", "0.05"),
                   env: dict | None = None):
    """A real `evledger serve` process on 127.0.0.1 (a free port, its own data directory);
    yields (process, base URL, service admin key) once /healthz answers, its stderr in
    <data dir>.stderr (a file: a pipe nobody reads would fill and stall the server). Killed if
    still up at the end."""
    import os
    import subprocess
    import sys

    port = free_port()
    repo = Path(__file__).resolve().parents[1]
    stderr = Path(f"{data_dir}.stderr")
    with open(stderr, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "proof_api.cli", "--data-dir", str(data_dir), *global_args,
                                 "serve", "--host", "127.0.0.1", "--port", str(port), *serve_args],
                                cwd=repo, stdout=subprocess.DEVNULL, stderr=err,
                                env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})})
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=10) as http:
            def up():
                if proc.poll() is not None:
                    raise AssertionError(f"evledger serve exited {proc.returncode}: {stderr.read_text()}")
                try:
                    return http.get("/healthz").status_code == 200
                except httpx.TransportError:
                    return False
            wait_until(up, timeout=90, interval=0.1, what="evledger serve")
        yield proc, base, (Path(data_dir) / "admin.key").read_text().strip()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def make_certificate(directory: Path, name: str = "server") -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (an IP SAN) and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "evledger test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False, key_agreement=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path
