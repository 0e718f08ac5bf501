"""Static tiles (docs/tiles.md): the publication written after each checkpoint matches the tree
and the log file for file; it is repaired after a crash at any point; `evledger serve` and a
real nginx serve it with the documented headers; proofs, verification and the monitor work
from it alone, and a tampered tile is caught."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest

from evledger_dev.devnginx import LOCATIONS, Nginx, nginx_binary
from evledger_verify.note import Checkpoint, parse_note
from evledger_verify.proof import verify_consistency, verify_inclusion
from evledger_verify.tiles import (TILE_WIDTH, TileError, TileReader, decode_entry_bundle, entries_path, fetcher,
                                   parse_path, tile_path, tile_widths)
from ingest.ledger import LedgerService, SequencerSettings
from ingest.publication import TilePublication, TilePublisher, publication_paths
from tests.api_helpers import auth, evledger_serve, wait_until
from tests.ci import in_ci
from tests.sample_records import rec

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "tiles.md"


def evledger(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "proof_api.cli", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, env={**os.environ, "PYTHONWARNINGS": "ignore"}, timeout=120)


def files_of(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def expected_files(ledger, size: int, note: str | None = None) -> dict[str, bytes]:
    """What the publication of `ledger` at `size` must hold, from the tree and the log: every
    full tile and bundle, the partial ones of `size`, and its checkpoint."""
    store = ledger.projections.tree.store
    out = {}
    for level, index, width in tile_widths(size):
        out[tile_path(level, index, width)] = store.read_nodes(8 * level, index * TILE_WIDTH, index * TILE_WIDTH + width)
    leaves = ledger.leaves(0, size)
    for index in range(-(-size // TILE_WIDTH)):
        width = min(TILE_WIDTH, size - index * TILE_WIDTH)
        chunk = leaves[index * TILE_WIDTH:index * TILE_WIDTH + width]
        out[entries_path(index, width)] = b"".join(len(x).to_bytes(2, "big") + x for x in chunk)
    out["checkpoint"] = (note or TilePublisher(ledger, "/nonexistent").published_note(ledger.checkpoint(size))).encode()
    return out


def published_without_old_partials(directory: Path, size: int) -> dict[str, bytes]:
    """The files of the publication that the tree of `size` has (older partial widths, which
    a client of an older checkpoint may still ask for, left out)."""
    wanted = {tile_path(*t) for t in tile_widths(size)} | {entries_path(i, w) for lvl, i, w in tile_widths(size)
                                                           if lvl == 0} | {"checkpoint"}
    return {k: v for k, v in files_of(directory).items() if k in wanted}


@pytest.fixture
def service(tmp_path):
    svc = LedgerService(tmp_path / "data", settings=SequencerSettings(batch_max_items=100_000, batch_max_delay=0.02))
    yield svc
    svc.close()


def fill(ledger, start: int, count: int) -> int:
    for s in range(start, start + count, 500):
        ledger.submit([rec(i, evidence_id=f"ev-{i}") for i in range(s, min(start + count, s + 500))])
    assert ledger.wait_for_checkpoint(start + count, 30)
    return start + count


# -- the layout and the publication ---------------------------------------------------------------

@pytest.mark.parametrize("alg", ["sm3", "sha256"])
def test_each_checkpoint_is_published_as_the_tree_and_log_say(service, tmp_path, alg):
    ledger = service.create_ledger("acme", alg=alg)
    read_back = []  # leaves the publisher read from the log: none while it keeps up
    log_leaves = ledger.leaves

    def counting(first, count):
        if threading.current_thread().name.startswith("tiles-"):
            read_back.append(count)
        return log_leaves(first, count)
    ledger.leaves = counting
    publication = TilePublication(service, tmp_path / "tiles")
    publisher = publication.publishers["acme"]
    directory = publication.directory("acme")
    size = 0
    try:
        for count in (1, 254, 1, 1, 300, 65536 - 557, 200):  # sizes 1, 255, 256, 257, 557, 65536, 65736
            size = fill(ledger, size, count)
            wait_until(lambda: publisher.published == ledger.latest_checkpoint()["size"], what="the publication")
            latest = ledger.latest_checkpoint()["size"]
            assert published_without_old_partials(directory, latest) == expected_files(ledger, latest)
            # A partial tile whose full tile is out is gone; the partial ones of this size are there.
            for path in files_of(directory):
                kind, index, width = parse_path(path)
                assert kind == "checkpoint" or width == TILE_WIDTH or not (directory / path.split(".p/")[0]).exists()
    finally:
        publication.stop()
    assert not any(p.name.startswith(".") for p in directory.rglob("*"))  # staging stays outside
    assert sum(read_back) == 0, read_back


def test_the_spec_examples_hold():
    widths = tile_widths(70_000)
    assert sum(1 for lvl, _, w in widths if lvl == 0 and w == 256) == 273
    assert [(lvl, w) for lvl, _, w in widths if w < 256] == [(0, 112), (1, 17), (2, 1)]
    assert [(lvl, w) for lvl, _, w in widths if lvl == 1 and w == 256] == [(1, 256)]
    assert tile_widths(256) == [(0, 0, 256), (1, 0, 1)]
    assert tile_path(0, 1234067) == "tile/0/x001/x234/067"
    assert entries_path(5, 17) == "tile/entries/005.p/17"


def test_a_reader_computes_the_ledgers_proofs_and_checks_them(service, tmp_path):
    ledger = service.create_ledger("acme", alg="sm3")
    size = fill(ledger, 0, 70_000)
    publisher = TilePublisher(ledger, tmp_path / "tiles")
    publisher.rebuild()
    fetch = fetcher(str(publisher.files.directory))
    note = fetch("checkpoint", 1 << 20).decode()
    checkpoint = Checkpoint.parse_body(parse_note(note)[0])
    assert checkpoint.size == size
    reader = TileReader(fetch, "sm3", size)
    reader.check_root(checkpoint.root)
    for index in (0, 255, 256, 65535, 65536, 69_999):
        assert reader.inclusion_proof(index) == ledger.inclusion_proof(index, size)
        assert reader.entry(index) == ledger.leaf(index)
        verify_inclusion("sm3", index, size, reader.leaf_hash(reader.entry(index)), reader.inclusion_proof(index),
                         checkpoint.root)
    for first in (1, 256, 300, 65536):
        proof = reader.consistency_proof(first)
        assert proof == ledger.consistency_proof(first, size)
        verify_consistency("sm3", first, size, proof, ledger.projections.tree.root(first), checkpoint.root)
    with pytest.raises(TileError, match="not to the signed checkpoint's root"):
        TileReader(fetch, "sha256", size).check_root(checkpoint.root)


# -- crash repair ---------------------------------------------------------------------------------

def test_a_publication_stopped_anywhere_is_repaired_on_start(service, tmp_path):
    ledger = service.create_ledger("acme")
    fill(ledger, 0, 600)
    publisher = TilePublisher(ledger, tmp_path / "tiles")
    publisher.rebuild()
    published = publisher.files.read_checkpoint()
    fill(ledger, 600, 700)
    # A crash after some files of size 1300 and before its checkpoint: a half-written staged
    # file, and a full tile the power loss left empty.
    publisher._publish_step(1300, final=True)
    directory, staging = publication_paths(tmp_path / "tiles", "acme")
    assert publisher.files.read_checkpoint() == published
    staging.mkdir(parents=True, exist_ok=True)
    (staging / "half").write_bytes(b"\0" * 100)
    (directory / tile_path(0, 4)).write_bytes(b"")
    restarted = TilePublisher(ledger, tmp_path / "tiles")
    restarted.resume()
    assert restarted.published == 600
    restarted.publish_latest()
    assert restarted.published == 1300
    assert published_without_old_partials(directory, 1300) == expected_files(ledger, 1300)
    assert not staging.exists() or not any(staging.iterdir())


def test_a_directory_of_another_history_is_published_again(tmp_path):
    """The directory holds another ledger's publication of the same id, longer than this one
    (a restored backup, a fork): its checkpoint is not this ledger's, so every file is taken
    down and written again, and none of the other's is left to be taken for this one's later."""
    tiles = tmp_path / "tiles"
    for n, (name, size) in enumerate((("first", 2000), ("second", 600))):
        with LedgerService(tmp_path / name, settings=SequencerSettings(batch_max_delay=0.02)) as svc:
            ledger = svc.create_ledger("acme")
            for s in range(0, size, 300):
                ledger.submit([rec(i + 10_000 * n) for i in range(s, min(size, s + 300))])
            assert ledger.wait_for_checkpoint(size, 30)
            publisher = TilePublisher(ledger, tiles)
            publisher.resume()
            assert publisher.published == 0
            publisher.publish_latest()
            assert files_of(tiles / "acme") == expected_files(ledger, size)
            if name == "second":  # it grows past where the first one's files were
                ledger.submit([rec(i + 10_000) for i in range(600, 1300)])
                assert ledger.wait_for_checkpoint(1300, 30)
                publisher.publish_latest()
                assert published_without_old_partials(tiles / "acme", 1300) == expected_files(ledger, 1300)
    (tiles / "acme" / "checkpoint").write_text("not a note")
    with LedgerService(tmp_path / "second", settings=SequencerSettings(batch_max_delay=0.02)) as svc:
        publisher = TilePublisher(svc.ledger("acme"), tiles)
        publisher.resume()
        assert publisher.published == 0 and not (tiles / "acme" / "tile").exists()


# -- serving: evledger serve and nginx --------------------------------------------------------------

def need_nginx():
    if nginx_binary() is None:
        if in_ci():
            pytest.fail("nginx is missing: .ci/run installs it (Debian: nginx-light)")
        pytest.skip("nginx is not installed (Debian: nginx-light)")


def test_the_documented_nginx_configuration_is_the_tested_one():
    text = DOCS.read_text()
    assert LOCATIONS.strip("\n") in text


def check_headers(get, prefix: str, size: int) -> None:
    answer = get(f"{prefix}/checkpoint")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    assert answer.headers["cache-control"] == "public, max-age=5"
    full, partial = [t for t in tile_widths(size) if t[2] == 256][0], [t for t in tile_widths(size) if t[2] < 256][0]
    for path, cache in ((tile_path(*full), "public, max-age=31536000, immutable"),
                        (tile_path(*partial), "public, max-age=60"),
                        (entries_path(0), "public, max-age=31536000, immutable")):
        answer = get(f"{prefix}/{path}")
        assert answer.status_code == 200, path
        assert answer.headers["content-type"] == "application/octet-stream"
        assert answer.headers["cache-control"] == cache
    for bad in ("tile/64/000", "tile/0/1", "tile/0/000.p/0", "tile/0/x000/001", "../data/admin.key",
                ".staging/acme", "tile/0/999", "tile/0/" + "x001/" * 900 + "000", "tile/0/" + "1" * 5000):
        assert get(f"{prefix}/{bad}").status_code in (400, 404), bad


def test_served_by_evledger_serve_and_by_nginx_alike(tmp_path):
    need_nginx()
    data = tmp_path / "data"
    with evledger_serve(data, "--publish-tiles") as (proc, base, admin_key):
        admin = auth(admin_key)
        with httpx.Client(base_url=base, timeout=10) as http:
            assert http.post("/v1/ledgers", json={"ledger": "acme", "alg": "sha256"}, headers=admin).status_code == 201
            vkey = next(iter(http.get("/v1/ledgers/acme/checkpoints", headers=admin).json()["verifier_keys"].values()))
            producer = auth(http.post("/v1/ledgers/acme/api-keys", json={"role": "producer"}, headers=admin).json()["key"])
            for s in range(0, 700, 350):
                answer = http.post("/v1/ledgers/acme/records/batch", headers=producer,
                                   json=[rec(i, evidence_id=f"ev-{i}") for i in range(s, s + 350)])
                assert answer.status_code in (200, 201, 207), answer.text
            prefix = f"{base}/tiles/acme"
            wait_until(lambda: http.get(f"{prefix}/checkpoint").text.split("\n")[1:2] == ["700"],
                       what="the published checkpoint of size 700")
            check_headers(http.get, prefix, 700)
            zipped = http.get(f"{prefix}/{entries_path(0)}", headers={"accept-encoding": "gzip"})
            assert zipped.headers["content-encoding"] == "gzip" and zipped.headers["vary"] == "Accept-Encoding"
            plain = http.get(f"{prefix}/{entries_path(0)}", headers={"accept-encoding": "gzip;q=0, identity"})
            assert "content-encoding" not in plain.headers and plain.content == zipped.content
            assert http.get(f"{base}/tiles/nosuch/checkpoint").status_code == 404
            assert fetcher(prefix)("tile/0/999", 8192) is None  # a 404 with a body is "not there"
            head = http.head(f"{prefix}/{tile_path(0, 0)}")
            assert head.status_code == 200 and head.headers["content-length"] == "8192" and head.content == b""
            error = http.get(f"{prefix}/tile/0/1").json()["error"]
            assert error["code"] == "not_found" and "tile/0/1" in error["message"]
            served = {path: http.get(f"{prefix}/{path}").content for path in files_of(data / "tiles" / "acme")}
            assert served == files_of(data / "tiles" / "acme")
            (tmp_path / "vkey").write_text(vkey + "\n")
            from_serve = tmp_path / "from-serve.json"
            proof = evledger("proof", "acme", "--tiles", prefix, "--evidence-id", "ev-432", "--key", vkey,
                             "--out", str(from_serve))
            assert proof.returncode == 0, proof.stderr
        with Nginx(data / "tiles") as nginx:
            with httpx.Client(timeout=10) as static:
                check_headers(static.get, f"{nginx.url}/tiles/acme", 700)
                assert fetcher(f"{nginx.url}/tiles/acme")("tile/0/999", 8192) is None  # nginx's HTML 404
                # a redirect with a body, as nginx sends them, to the publication
                moved = static.get(f"{nginx.url}/tiles", follow_redirects=False)
                assert moved.status_code == 301 and moved.content
                body = moved.content
                mirror = HostileTiles(b"HTTP/1.1 301 Moved\r\nLocation: %s/tiles/acme/checkpoint\r\n"
                                      b"Content-Length: %d\r\n\r\n" % (nginx.url.encode(), len(body)) + body)
                try:
                    assert fetcher(mirror.url)("checkpoint", 1 << 20) == served["checkpoint"]
                finally:
                    mirror.close()
                assert {p: static.get(f"{nginx.url}/tiles/acme/{p}").content for p in served} == served
            verdict = evledger("verify", str(from_serve), "--tiles", f"{nginx.url}/tiles/acme", "--key", vkey)
            assert "\u2714 tiles: " in verdict.stdout, verdict.stdout
            bundle = orjson.loads(from_serve.read_bytes())
            assert bundle["leaf"]["index"] == 432 and bundle["record"]["record"]["evidence_id"] == "ev-432"
            assert bundle["anchor"] is None  # tiles carry none: the verdict says so
            assert "\u2718 anchor: no anchor" in verdict.stdout
            monitor = evledger("monitor", "acme", "--tiles", f"{nginx.url}/tiles/acme", "--key", vkey, "--state",
                               str(tmp_path / "monitor.sqlite"))
            assert monitor.returncode == 0, monitor.stdout + monitor.stderr
            assert "up to size 700" in monitor.stdout


def test_a_service_killed_while_publishing_repairs_its_tiles_on_start(tmp_path):
    data = tmp_path / "data"
    with evledger_serve(data, "--publish-tiles", global_args=("--batch-max-delay", "0.01", "--batch-max-items",
                                                              "300")) as (proc, base, admin_key):
        admin = auth(admin_key)
        with httpx.Client(base_url=base, timeout=10) as http:
            assert http.post("/v1/ledgers", json={"ledger": "acme"}, headers=admin).status_code == 201
            producer = auth(http.post("/v1/ledgers/acme/api-keys", json={"role": "producer"}, headers=admin).json()["key"])
            for s in range(0, 6000, 500):
                http.post("/v1/ledgers/acme/records/batch", headers=producer,
                          json=[rec(i) for i in range(s, s + 500)])
        proc.send_signal(signal.SIGKILL)  # mid-publication, most likely: checkpoints every 300 records
        proc.wait()
    with evledger_serve(data, "--publish-tiles") as (proc, base, admin_key):
        with httpx.Client(base_url=base, timeout=10) as http:
            def published():
                latest = http.get("/v1/ledgers/acme/checkpoints/latest", headers=auth(admin_key)).json()
                text = http.get(f"{base}/tiles/acme/checkpoint").text
                return latest["size"] == 6000 and text.split("\n")[1] == "6000"
            wait_until(published, timeout=60, what="the publication to catch up")
            metrics = http.get("/metrics").text
            assert re.search(r'evledger_tiles_published_size\{ledger="acme"\} 6000', metrics)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    repaired = published_without_old_partials(data / "tiles" / "acme", 6000)
    rebuilt = evledger("--data-dir", str(data), "tiles", "rebuild", "acme")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "at tree size 6,000" in rebuilt.stdout
    assert published_without_old_partials(data / "tiles" / "acme", 6000) == repaired


# -- what a wrong publication gets ---------------------------------------------------------------

def test_a_tampered_tile_or_entry_is_refused_by_every_client(service, tmp_path):
    ledger = service.create_ledger("acme", alg="sha256")
    fill(ledger, 0, 600)
    publisher = TilePublisher(ledger, tmp_path / "tiles")
    publisher.rebuild()
    directory = publisher.files.directory
    vkey = ledger.created["verifier_key"]
    good = tmp_path / "good.json"
    assert evledger("proof", "acme", "--tiles", str(directory), "--seq", "300", "--key", vkey, "--out",
                    str(good)).returncode == 0
    # A full tile and an entry bundle on the record's path, and the partial tile at the top.
    bundle = (directory / entries_path(1)).read_bytes()
    entry_300 = 2 + sum(2 + len(e) for e in decode_entry_bundle(bundle, TILE_WIDTH)[:300 - 256]) + 10
    for path, offset in ((tile_path(0, 1), 100), (entries_path(1), entry_300), (tile_path(1, 0, 2), 5)):
        copy = tmp_path / f"tampered-{path.replace('/', '-')}"
        shutil.copytree(directory, copy)
        data = bytearray((copy / path).read_bytes())
        data[offset] ^= 1
        (copy / path).write_bytes(bytes(data))
        verdict = evledger("verify", str(good), "--tiles", str(copy), "--key", vkey)
        assert verdict.returncode == 1 and "\u2718 tiles: " in verdict.stdout, verdict.stdout
        made = evledger("proof", "acme", "--tiles", str(copy), "--seq", "300", "--key", vkey)
        assert made.returncode == 1 and made.stdout == "" and "Traceback" not in made.stderr, made.stderr
        monitor = evledger("monitor", "acme", "--tiles", str(copy), "--key", vkey, "--state", str(copy) + ".sqlite")
        if path.startswith("tile/1/"):  # what the monitor reads to check the signed root
            assert monitor.returncode == 4, monitor.stdout + monitor.stderr
            assert "not to the signed checkpoint's root" in monitor.stderr, monitor.stderr
        else:  # it never reads these: a first look needs only the top of the tree
            assert monitor.returncode == 0, monitor.stdout + monitor.stderr
    other = evledger("proof", "acme", "--tiles", str(directory), "--seq", "1", "--key",
                     "evledger/acme+00000000+" + "A" * 88)
    assert other.returncode != 0 and "Traceback" not in other.stderr


def test_a_sha256_ledgers_published_checkpoint_is_also_signed_with_ed25519(tmp_path):
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    data = tmp_path / "data"
    with LedgerService(data, settings=SequencerSettings(batch_max_delay=0.02)) as svc:
        for name, alg in (("acme", "sha256"), ("sm", "sm3")):
            ledger = svc.create_ledger(name, alg=alg)
            ledger.submit([rec(i) for i in range(300)])
            assert ledger.wait_for_checkpoint(300, 30)
            TilePublisher(ledger, data / "tiles").rebuild()
    printed = evledger("--data-dir", str(data), "tiles", "key", "acme")
    assert printed.returncode == 0, printed.stderr
    name, kid, key = printed.stdout.strip().split("+", 2)
    raw = base64.b64decode(key)
    assert name == "evledger/acme" and raw[0] == 1 and len(raw) == 33
    note = (data / "tiles" / "acme" / "checkpoint").read_text()
    body, _, lines = note.partition("\n\n")
    sm2_line, ed_line = lines.splitlines()
    blob = base64.b64decode(ed_line.rsplit(" ", 1)[1])
    assert ed_line.startswith("\u2014 evledger/acme ") and blob[:4].hex() == kid
    Ed25519PublicKey.from_public_bytes(raw[1:]).verify(blob[4:], (body + "\n").encode())  # raises if not
    assert len((data / "tiles" / "sm" / "checkpoint").read_text().partition("\n\n")[2].splitlines()) == 1
    refused = evledger("--data-dir", str(data), "tiles", "key", "sm")
    assert refused.returncode == 2 and "hashes with sm3" in refused.stderr and "Traceback" not in refused.stderr
    assert evledger("--data-dir", str(data), "tiles", "key", "acme").stdout == printed.stdout  # the same key kept


def test_sha256_ledgers_at_sizes_whose_root_is_a_stored_hash(tmp_path):
    """At sizes 1 and 256 the root is read from a tile with no hashing: the clients still find
    the ledger's hash (SHA-256 here) and the monitor raises no alarm as the ledger grows."""
    data = tmp_path / "data"
    monitor_state = tmp_path / "monitor.sqlite"
    with LedgerService(data, settings=SequencerSettings(batch_max_delay=0.02)) as svc:
        ledger = svc.create_ledger("acme", alg="sha256")
        vkey = ledger.created["verifier_key"]
        publisher = TilePublisher(ledger, data / "tiles")
        directory = str(publisher.files.directory)
        for size in (1, 256, 300):
            fill(ledger, ledger.record_count, size - ledger.record_count)
            assert publisher.publish_latest() == size
            made = evledger("proof", "acme", "--tiles", directory, "--seq", str(size - 1), "--key", vkey)
            assert made.returncode == 0, made.stderr
            assert orjson.loads(made.stdout)["hash_alg"] == "sha256"
            watched = evledger("monitor", "acme", "--tiles", directory, "--key", vkey, "--state", str(monitor_state))
            assert watched.returncode == 0 and f"up to size {size}" in watched.stdout, watched.stdout + watched.stderr


def test_a_lagging_publication_is_not_a_failure(service, tmp_path):
    ledger = service.create_ledger("acme")
    fill(ledger, 0, 300)
    vkey = ledger.created["verifier_key"]
    publisher = TilePublisher(ledger, tmp_path / "tiles")
    publisher.publish_latest()
    stale = tmp_path / "stale"
    shutil.copytree(publisher.files.directory, stale)
    fill(ledger, 300, 200)
    publisher.publish_latest()
    bundle = tmp_path / "bundle.json"
    assert evledger("proof", "acme", "--tiles", str(publisher.files.directory), "--seq", "450", "--key", vkey,
                    "--out", str(bundle)).returncode == 0
    verdict = evledger("verify", str(bundle), "--tiles", str(stale), "--key", vkey)
    assert "\u2013 tiles: not checked: the checkpoint published at" in verdict.stdout, verdict.stdout
    state = str(tmp_path / "monitor.sqlite")
    assert evledger("monitor", "acme", "--tiles", str(publisher.files.directory), "--key", vkey, "--state",
                    state).returncode == 0
    behind = evledger("monitor", "acme", "--tiles", str(stale), "--key", vkey, "--state", state)
    assert behind.returncode == 4 and "older than the one verified" in behind.stderr, behind.stderr
    assert "ALERT" not in behind.stdout


def test_an_evidence_id_is_looked_for_in_checked_entries_only(service, tmp_path):
    ledger = service.create_ledger("acme")
    fill(ledger, 0, 300)
    publisher = TilePublisher(ledger, tmp_path / "tiles")
    publisher.publish_latest()
    path = publisher.files.directory / entries_path(0)
    path.write_bytes(path.read_bytes().replace(b'"evidence_id":"ev-7"', b'"evidence_id":"ev-X"'))
    made = evledger("proof", "acme", "--tiles", str(publisher.files.directory), "--evidence-id", "ev-7", "--key",
                    ledger.created["verifier_key"])
    assert made.returncode == 1 and "does not hash to its level-0 tile hash" in made.stderr, made.stderr


class HostileTiles:
    """An HTTP server answering every request the same wrong way."""

    def __init__(self, answer: bytes, trickle: float = 0.0):
        import socket
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.answer, self.trickle = answer, trickle
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                conn.recv(65536)
                for i in range(0, len(self.answer), 1 if self.trickle else len(self.answer)):
                    conn.sendall(self.answer[i:i + (1 if self.trickle else len(self.answer))])
                    time.sleep(self.trickle)
            except OSError:
                pass
            finally:
                conn.close()

    def close(self):
        self.sock.close()


@pytest.mark.parametrize("answer,trickle,said", [
    (b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 9\r\n\r\nnot gzip!", 0.0, "bad gzip body"),
    (b"NONSENSE\r\n\r\n", 0.0, "BadStatusLine"),
    (b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n", 0.0, "HTTP 500"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n" + b"e" * 2000, 0.01, "not received within"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 9000\r\n\r\n" + b"e" * 9000, 0.0, "more than 8192 bytes"),
], ids=["bad-gzip", "bad-status-line", "server-error", "trickled", "oversized"])
def test_a_hostile_server_gets_a_clear_error(monkeypatch, answer, trickle, said):
    import evledger_verify.tiles as tiles

    monkeypatch.setattr(tiles, "FETCH_DEADLINE", 1.0)
    server = HostileTiles(answer, trickle)
    try:
        with pytest.raises(TileError, match=said):
            fetcher(server.url)("tile/0/000", 8192)
    finally:
        server.close()


def test_a_short_write_on_a_full_disk_never_puts_a_file_in_place(tmp_path, monkeypatch):
    import errno

    from merkle.tiles import TileDirectory

    files = TileDirectory(tmp_path / "pub", tmp_path / "staging")
    real_write, calls = os.write, []

    def full_disk(fd, data):  # Linux: what fits is written and counted; the next write fails
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[:1000]))
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(OSError, match="No space left"):
        files._write(tile_path(0, 0), b"\1" * 8192)
    assert not (tmp_path / "pub" / tile_path(0, 0)).exists()
    assert list((tmp_path / "staging").iterdir()) == []


def test_a_publication_deleted_by_hand_is_published_again(service, tmp_path):
    ledger = service.create_ledger("acme")
    publication = TilePublication(service, tmp_path / "tiles")
    publisher, directory = publication.publishers["acme"], publication.directory("acme")
    try:
        fill(ledger, 0, 600)
        wait_until(lambda: publisher.published == 600, what="the publication")
        shutil.rmtree(directory)
        fill(ledger, 600, 100)
        wait_until(lambda: publisher.published == 700 and (directory / "checkpoint").exists(), what="republication")
        assert published_without_old_partials(directory, 700) == expected_files(ledger, 700)
    finally:
        publication.stop()


def test_a_mirror_that_gzips_everything_and_redirects_is_read(tmp_path):
    import gzip as gz

    tile = os.urandom(8192)  # hashes do not compress: gzip makes them longer
    body = gz.compress(tile)
    server = HostileTiles(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    redirect = HostileTiles(b"HTTP/1.1 302 Found\r\nLocation: " + server.url.encode() + b"/x\r\nContent-Length: 0\r\n\r\n")
    elsewhere = HostileTiles(b"HTTP/1.1 302 Found\r\nLocation: ftp://example.com/x\r\nContent-Length: 0\r\n\r\n")
    try:
        assert fetcher(server.url)("tile/0/000", 8192) == tile
        assert fetcher(redirect.url)("tile/0/000", 8192) == tile
        with pytest.raises(TileError, match="redirected to 'ftp://example.com/x', not http"):
            fetcher(elsewhere.url)("tile/0/000", 8192)
        with pytest.raises(TileError, match="must be a prefix"):
            fetcher(server.url + "/?x=1")
        with pytest.raises(TileError) as refused:
            fetcher("http://user:secret@127.0.0.1:1/tiles")("checkpoint", 100)
        assert "secret" not in str(refused.value)
    finally:
        for s in (server, redirect, elsewhere):
            s.close()


def test_the_monitor_takes_a_mirror_signed_by_no_pinned_key_for_a_read_error(service, tmp_path):
    ledger = service.create_ledger("acme")
    fill(ledger, 0, 300)
    publisher = TilePublisher(ledger, tmp_path / "tiles")
    publisher.publish_latest()
    other = service.create_ledger("other")
    state = str(tmp_path / "monitor.sqlite")
    watched = evledger("monitor", "acme", "--tiles", str(publisher.files.directory), "--key",
                       other.created["verifier_key"], "--state", state)
    assert watched.returncode == 4 and "not signed by a pinned key" in watched.stderr, watched.stderr
    assert "ALERT" not in watched.stdout
