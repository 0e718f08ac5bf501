"""Our tlog-tiles layout held against an implementation nobody here wrote: Go's
golang.org/x/mod/sumdb/tlog (Russ Cox's transparency log package, which C2SP tlog-tiles derives
from). tests/tiles_go/main.go reads a sha256 ledger's publication directory with tlog alone: its
tile paths (tlog's own Tile.Path() less the height element), the tree rebuilt from the entry
bundles, the root, inclusion and consistency proofs; and it prints tlog's path of any tile.

It is built once, offline, in GOPATH mode against Debian's golang-go and
golang-golang-x-mod-dev (.ci/run installs them under CI=true, where their absence fails)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from evledger_verify.tiles import TILE_WIDTH, TileReader, entries_path, fetcher, index_path, parse_path, tile_path, \
    tile_widths
from ingest.ledger import LedgerService, SequencerSettings
from ingest.publication import TilePublisher
from merkle.checkpoint import ed25519_verifier_key
from tests.ci import in_ci
from tests.sample_records import rec

REPO = Path(__file__).resolve().parents[1]
GO_SOURCE = REPO / "tests" / "tiles_go" / "main.go"
GOPATH = Path("/usr/share/gocode")  # Debian's Go sources, golang-golang-x-mod-dev among them
X_MOD = GOPATH / "src" / "golang.org" / "x" / "mod"


# -- the Go program ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tlogcheck(tmp_path_factory) -> Path:
    go = shutil.which("go")
    missing = [name for name, there in (("golang-go (go)", go), (f"golang-golang-x-mod-dev ({X_MOD})",
                                                               (X_MOD / "sumdb" / "tlog").is_dir())) if not there]
    if missing:
        message = f"the tlog compatibility tests need {', '.join(missing)}"
        if in_ci():
            pytest.fail(f"{message}: .ci/run installs them under CI=true")
        pytest.skip(f"{message} (apt-get install golang-go golang-golang-x-mod-dev)")
    where = tmp_path_factory.mktemp("tlogcheck")
    binary = where / "tlogcheck"
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": str(GOPATH), "GOCACHE": str(where / "cache"),
           "GOFLAGS": "", "GOPROXY": "off", "CGO_ENABLED": "0"}
    done = subprocess.run([go, "build", "-o", str(binary), str(GO_SOURCE)], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=300)
    assert done.returncode == 0, f"go build failed:\n{done.stdout}{done.stderr}"
    return binary


def run_go(binary: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), *args], input=stdin, capture_output=True, text=True, timeout=120)


def go_check(binary: Path, directory: Path, records=(), olds=(), vkey: str | None = None) -> dict[str, dict]:
    args = ["check"]
    if vkey:
        args += ["-vkey", vkey]
    if records:
        args += ["-records", ",".join(map(str, records))]
    if olds:
        args += ["-olds", ",".join(map(str, olds))]
    done = run_go(binary, *args, str(directory))
    assert done.returncode == 0, f"tlog disagrees with {directory}:\n{done.stderr}"
    return {line["check"]: line for line in map(json.loads, done.stdout.splitlines())}


# -- ledgers ----------------------------------------------------------------------------------------

def make_publication(where: Path, sizes: list[int], incremental: bool) -> Path:
    """A sha256 ledger filled to each of `sizes` in turn; published after each size
    (`incremental`, as the publisher thread does, older partial tiles left) or rebuilt at the end."""
    svc = LedgerService(where / "data", settings=SequencerSettings(batch_max_items=1000, batch_max_delay=0.02))
    try:
        ledger = svc.create_ledger("acme", alg="sha256")
        publisher = TilePublisher(ledger, where / "tiles")
        publisher.resume()
        done = 0
        for size in sizes:
            for start in range(done, size, 300):
                ledger.submit([rec(i, evidence_id=f"ev-{i}") for i in range(start, min(size, start + 300))])
            assert ledger.wait_for_checkpoint(size, 60)
            done = size
            if incremental:
                assert publisher.publish_latest() == size
        if not incremental:
            assert publisher.rebuild() == sizes[-1]
        (where / "ed25519.vkey").write_text(ed25519_verifier_key(ledger.origin, ledger.keys.tiles_key()))
    finally:
        svc.close()
    return where / "tiles" / "acme"


@pytest.fixture(scope="module")
def publication(tmp_path_factory):
    made: dict[tuple, Path] = {}

    def get(*sizes: int, incremental: bool = False) -> Path:
        key = (sizes, incremental)
        if key not in made:
            made[key] = make_publication(tmp_path_factory.mktemp("ledger"), list(sizes), incremental)
        return made[key]
    return get


def spread(size: int) -> list[int]:
    return sorted({i for i in (0, 1, 2, 127, 255, 256, 257, 511, 65535, 65536, size // 2, size - 2, size - 1)
                   if 0 <= i < size})


# -- (a) our publication, read by tlog --------------------------------------------------------------

@pytest.mark.parametrize("size", [1, 2, 255, 256, 257, 700, 65536 + 300])
def test_tlog_reads_a_rebuilt_publication(tlogcheck, publication, size):
    directory = publication(size)
    olds = [s for s in (1, 2, 3, 255, 256, 257, 511, 512, 513, 65535, 65536, 65537, size // 2, size - 1, size)
            if 1 <= s <= size]
    out = go_check(tlogcheck, directory, records=spread(size), olds=olds)
    assert out["checkpoint"]["size"] == size and out["checkpoint"]["origin"] == "evledger/acme"
    assert out["rebuild"]["entries"] == size
    assert out["files"]["tiles"] == len(tile_widths(size)) and out["files"]["older_partials"] == 0
    assert out["files"]["files"] == len(tile_widths(size)) + -(-size // TILE_WIDTH)
    assert out["records"]["proved"] == len(spread(size)) and out["consistency"]["proved"] == len(set(olds))
    # The same proofs and older roots as our own reader computes from the tiles.
    reader = TileReader(fetcher(str(directory)), "sha256", size)
    for index, proof in out["records"]["proofs"].items():
        assert [h.hex() for h in reader.inclusion_proof(int(index))] == proof, index
    for old, proof in out["consistency"]["proofs"].items():
        assert [h.hex() for h in reader.consistency_proof(int(old))] == proof, old
        assert reader.subtree_hash(0, int(old)).hex() == out["consistency"]["roots"][old], old


def test_tlog_reads_a_publication_written_checkpoint_by_checkpoint(tlogcheck, publication):
    sizes = [1, 255, 256, 257, 557, 1000]
    directory = publication(*sizes, incremental=True)
    out = go_check(tlogcheck, directory, records=spread(1000), olds=sizes)
    assert out["checkpoint"]["size"] == 1000 and out["rebuild"]["entries"] == 1000
    # tile/1/000.p/1 (size 256..511) and .p/2 (512..767) are still there for older checkpoints'
    # clients; the old trees' own tiles are read as they were published.
    assert out["files"]["older_partials"] == 2
    assert sorted(p.name for p in (directory / "tile" / "1" / "000.p").iterdir()) == ["1", "2", "3"]


# -- (b) tile paths: ours and tlog's Tile.Path() ----------------------------------------------------

LEVELS = [-1, 0, 1, 2, 7, 8, 10, 63]  # -1: tlog's data tile, our entry bundle
INDICES = [0, 1, 7, 9, 10, 99, 100, 255, 256, 999, 1000, 1001, 65535, 999_999, 1_000_000, 1_234_067,
           123_456_789, 2**31 - 1, 2**32, 10**12, 2**53 + 1, 2**62, 2**63 - 1]
WIDTHS = [1, 2, 112, 255, 256]


def ours(level: int, index: int, width: int) -> str:
    return entries_path(index, width) if level == -1 else tile_path(level, index, width)


def test_tile_paths_are_tlogs_without_the_height(tlogcheck):
    cases = [(lvl, n, w) for lvl in LEVELS for n in INDICES for w in WIDTHS]
    done = run_go(tlogcheck, "paths", stdin="".join(f"{lvl} {n} {w}\n" for lvl, n, w in cases))
    assert done.returncode == 0, done.stderr
    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(out) == len(cases) > 500
    for (lvl, n, w), go in zip(cases, out):
        assert (go["L"], go["N"], go["W"]) == (lvl, n, w)
        assert go["path"] == ours(lvl, n, w), (lvl, n, w)
        element = "data" if lvl == -1 else str(lvl)
        assert go["go"].startswith(f"tile/8/{element}/") and go["go"].endswith(go["path"].split("/", 2)[2])
    by_case = dict(zip(cases, (go["path"] for go in out)))
    assert by_case[(0, 1_234_067, 256)] == "tile/0/x001/x234/067"
    assert by_case[(-1, 1_234_067, 1)] == "tile/entries/x001/x234/067.p/1"
    assert by_case[(63, 2**63 - 1, 255)] == "tile/63/x009/x223/x372/x036/x854/x775/807.p/255"


BAD_PATHS = ["tile/64/000", "tile/0/1", "tile/0/000.p/0", "tile/0/000.p/256", "tile/0/x000/001", "../x",
             "tile/00/000", "tile/0/0000", "tile/0/000.p/01", "tile/0/000.p/", "tile/entries/000.p/256",
             "tile/-1/000", "tile/0/x001", "tile/0/x1234/067", "tile/0/001/", "/tile/0/000", "tile/0/000.p/1/2"]


def test_paths_parse_as_tlog_parses_them(tlogcheck):
    good = [ours(lvl, n, w) for lvl in LEVELS for n in INDICES[:12] + [1_234_067, 2**63 - 1] for w in (1, 255, 256)]
    done = run_go(tlogcheck, "parse", stdin="".join(p + "\n" for p in good + BAD_PATHS))
    assert done.returncode == 0, done.stderr
    parsed = {line["path"]: line for line in map(json.loads, done.stdout.splitlines())}
    for path in good:
        level, index, width = parse_path(path)
        assert parsed[path]["ok"] and parsed[path]["H"] == 8, path
        assert (parsed[path]["L"], parsed[path]["N"], parsed[path]["W"]) == (-1 if level == "entries" else level,
                                                                             index, width)
    for path in BAD_PATHS:
        assert parse_path(path) is None, path
    # tlog's parser takes any level (its Tile has L <= 63 only in a comment; HashFromTile
    # refuses L >= 64); tlog-tiles says 0 to 63, as ours does. Every other bad path it refuses.
    assert [p for p in BAD_PATHS if parsed[p]["ok"]] == ["tile/64/000"]


# -- (c) the check can fail -------------------------------------------------------------------------

def test_tlogs_note_package_verifies_the_published_checkpoint(tlogcheck, publication, tmp_path):
    """A SHA-256 ledger's published checkpoint carries an Ed25519 signature that
    golang.org/x/mod/sumdb/note verifies with the key `evledger tiles key` prints; another
    key, or a changed body, does not verify."""
    directory = publication(700)
    vkey = (directory.parent.parent / "ed25519.vkey").read_text()
    out = go_check(tlogcheck, directory, vkey=vkey)
    assert out["signature"]["verified"] == 1 and out["signature"]["unverified"] == 1  # the SM2 line
    assert out["signature"]["name"] == "evledger/acme"
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    other = ed25519_verifier_key("evledger/acme", Ed25519PrivateKey.generate())
    done = run_go(tlogcheck, "check", "-vkey", other, str(directory))
    assert done.returncode == 1 and "does not verify it" in done.stderr, done.stderr
    copy = tmp_path / "acme"
    shutil.copytree(directory, copy)
    text = (copy / "checkpoint").read_text()
    (copy / "checkpoint").write_text(text.replace("evledger/acme\n", "evledger/acmf\n", 1))
    done = run_go(tlogcheck, "check", "-vkey", vkey, str(copy))
    assert done.returncode == 1 and "does not verify it" in done.stderr, done.stderr


def flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def tamper_checkpoint_root(directory: Path) -> None:
    note = (directory / "checkpoint").read_text(encoding="utf-8").split("\n")
    note[2] = ("B" if note[2][0] != "B" else "C") + note[2][1:]
    (directory / "checkpoint").write_text("\n".join(note), encoding="utf-8")


TAMPERINGS = {
    "a full level-0 tile": (lambda d: flip(d / "tile/0/001", 5 * 32 + 7), "level-0 tile"),
    "the partial level-0 tile": (lambda d: flip(d / "tile/0/002.p/188", 100), "level-0 tile"),
    "a level-1 tile": (lambda d: flip(d / "tile/1/000.p/2", 33), "tlog.ReadTileData"),
    "an entry": (lambda d: flip(d / "tile/entries/000", 2 + 10), "tlog.RecordHash"),
    "an entry's length": (lambda d: flip(d / "tile/entries/001", 0), "tile/entries/001"),
    "a missing tile": (lambda d: (d / "tile/0/000").unlink(), "tile/0/000"),
    "an extra tile": (lambda d: (d / "tile/0/003").write_bytes(b"\0" * 8192), "tile/0/003"),
    "the checkpoint's root": (tamper_checkpoint_root, "the checkpoint's root"),
}


@pytest.mark.parametrize("what", list(TAMPERINGS))
def test_a_tampered_publication_fails_the_check(tlogcheck, publication, tmp_path, what):
    copy = tmp_path / "acme"
    shutil.copytree(publication(700), copy)
    go_check(tlogcheck, copy)  # the copy passes before it is tampered with
    tamper, said = TAMPERINGS[what]
    tamper(copy)
    done = run_go(tlogcheck, "check", str(copy))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "tlogcheck: MISMATCH:" in done.stderr and said in done.stderr, done.stderr


# -- (d) the spec's own examples, in Python alone -----------------------------------------------------

def test_the_spec_examples():
    widths = tile_widths(70_000)
    assert [(lvl, n) for lvl, n, w in widths if lvl == 0 and w == TILE_WIDTH] == [(0, n) for n in range(273)]
    assert [t for t in widths if t[2] < TILE_WIDTH] == [(0, 273, 112), (1, 1, 17), (2, 0, 1)]
    assert [t for t in widths if t[0] == 1 and t[2] == TILE_WIDTH] == [(1, 0, 256)]
    assert len(widths) == 273 + 1 + 1 + 1 + 1
    assert tile_widths(256) == [(0, 0, 256), (1, 0, 1)]
    assert tile_widths(0) == [] and tile_widths(1) == [(0, 0, 1)]
    assert index_path(1_234_067) == "x001/x234/067"
    assert index_path(0) == "000" and index_path(999) == "999" and index_path(1000) == "x001/000"


def test_parse_path_round_trips_and_refuses_what_is_not_a_tile():
    for lvl in LEVELS:
        for n in INDICES:
            for w in WIDTHS:
                assert parse_path(ours(lvl, n, w)) == ("entries" if lvl == -1 else lvl, n, w)
    assert parse_path("checkpoint") == ("checkpoint", 0, 0)
    for path in BAD_PATHS + ["tile/data/000", "tile/8/0/000", "checkpoint/", "tile/0/000.p/1.p/1", ""]:
        assert parse_path(path) is None, path
