"""Witnesses: the add-checkpoint protocol as c2sp.org/tlog-witness words it (with SM2
cosignatures), the witness's durable state, the ledger's collector, and the whole path with
real processes: `evledger witness serve`, `evledger serve --witness-config`, a forked ledger,
a witness down and back, a witness restarted mid-stream, and `evledger verify --witness`."""
from __future__ import annotations

import base64
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from evledger_dev.devbroker import free_port
from evledger_verify.cosignature import cosignatures_by, parse_cosigner_key
from evledger_verify.verify import VERDICT_IN_TREE, load_witness_policy, verify_bundle
from ingest.ledger import LedgerService
from ingest.sequencer import SequencerSettings
from merkle.checkpoint import SM2PrivateKey, cosign_checkpoint
from proof_api.bundle import build_bundle
from tests.api_helpers import auth, evledger_serve, wait_until
from tests.sample_records import rec
from witness.collector import WitnessConfig, load_witness_config
from witness.server import Witness, witnessed_logs
from witness.state import WitnessState, WitnessStateError

REPO = Path(__file__).resolve().parents[1]
SEQ = SequencerSettings(batch_max_delay=0.02)


def submit(ledger, start: int, count: int) -> dict:
    ledger.submit([rec(i, evidence_id=f"r{i}") for i in range(start, start + count)])
    checkpoint = ledger.wait_for_checkpoint(ledger.record_count, timeout=15)
    assert checkpoint is not None and checkpoint["size"] == ledger.record_count
    return checkpoint


def request(ledger, old: int, checkpoint: dict) -> str:
    proof = ledger.consistency_proof(old, checkpoint["size"]) if 0 < old < checkpoint["size"] else []
    return f"old {old}\n" + "".join(base64.b64encode(p).decode() + "\n" for p in proof) + "\n" + checkpoint["note"]


@pytest.fixture
def world(tmp_path):
    """A ledger with three checkpoints, a fork of it (same key, other records), a witness."""
    service = LedgerService(tmp_path / "data", settings=SEQ)
    ledger = service.create_ledger("acme")
    first = submit(ledger, 0, 5)
    service.close()
    shutil.copytree(tmp_path / "data", tmp_path / "fork")  # the operator copies its ledger, key and all
    service = LedgerService(tmp_path / "data", settings=SEQ)
    fork_service = LedgerService(tmp_path / "fork", settings=SEQ)
    ledger, fork = service.ledger("acme"), fork_service.ledger("acme")
    second, third = submit(ledger, 5, 4), None
    third = submit(ledger, 9, 3)
    forked = submit(fork, 500, 4)  # size 9 again, another root, signed with the real key
    assert forked["size"] == second["size"] and forked["root"] != second["root"]
    state = WitnessState(tmp_path / "witness")
    identity = state.create("court.example/witness")
    vkey = ledger.verifier_keys()[ledger.latest_checkpoint()["key_id"]]
    witness = Witness(state, witnessed_logs([vkey], []))
    yield {"ledger": ledger, "fork": fork, "first": first, "second": second, "third": third, "forked": forked,
           "witness": witness, "state": state, "identity": identity, "vkey": vkey, "dir": tmp_path / "witness"}
    service.close()
    fork_service.close()


def cosigned(witness: Witness, checkpoint: dict, line: str) -> int:
    found = cosignatures_by(checkpoint["note"] + line, [witness.identity.verifier_key])
    return found[witness.identity.verifier_key]


# --- the protocol --------------------------------------------------------------------------------


def test_a_first_checkpoint_then_consistent_ones_are_cosigned(world):
    w, ledger = world["witness"], world["ledger"]
    status, _, line = w.add_checkpoint(request(ledger, 0, world["first"]))
    assert status == 200 and line.startswith("\u2014 court.example/witness ") and line.endswith("\n")
    assert abs(cosigned(w, world["first"], line) - time.time()) < 5
    status, _, line = w.add_checkpoint(request(ledger, world["first"]["size"], world["third"]))
    assert status == 200 and isinstance(cosigned(w, world["third"], line), int)
    # the same checkpoint again: the same root, cosigned again
    status, _, _ = w.add_checkpoint(request(ledger, world["third"]["size"], world["third"]))
    assert status == 200


def test_a_wrong_old_size_is_409_with_the_size_cosigned(world):
    w, ledger = world["witness"], world["ledger"]
    assert w.add_checkpoint(request(ledger, 0, world["second"]))[0] == 200
    status, content_type, body = w.add_checkpoint(request(ledger, 0, world["third"]))
    assert (status, content_type, body) == (409, "text/x.tlog.size", f"{world['second']['size']}\n")
    status, _, body = w.add_checkpoint(request(ledger, world["first"]["size"], world["third"]))
    assert status == 409 and body == f"{world['second']['size']}\n"


def test_a_fork_is_never_cosigned_and_is_kept_as_evidence(world):
    """Two checkpoints of one size with different roots, both signed by the ledger's real key:
    the witness cosigns the first it sees and refuses the other, whichever way it comes."""
    w, ledger, fork = world["witness"], world["ledger"], world["fork"]
    size = world["second"]["size"]
    assert w.add_checkpoint(request(ledger, 0, world["second"]))[0] == 200
    status, _, body = w.add_checkpoint(request(fork, size, world["forked"]))  # same size, other root
    assert status == 422 and "has root" in body and "cosigned root" in body
    # the fork's next checkpoint, with its (honest-looking) proof from the size the witness holds
    forked_later = submit(fork, 600, 2)
    status, _, body = w.add_checkpoint(request(fork, size, forked_later))
    assert status == 422 and "not consistent" in body
    refused = world["state"].refusals()
    assert [(r["status"], r["kind"]) for r in refused] == [(422, "fork"), (422, "refused")]
    # the fork's evidence is the two notes, both signed by the log's key, one size, two roots
    assert refused[0]["note"] == world["forked"]["note"] and refused[0]["cosigned_note"] == world["second"]["note"]
    # a refused checkpoint sent again (anyone can replay one) is kept once
    assert w.add_checkpoint(request(fork, size, forked_later))[0] == 422
    assert len(world["state"].refusals()) == 2
    # and the honest log goes on
    assert w.add_checkpoint(request(ledger, size, world["third"]))[0] == 200


def test_refusals_say_what_was_wrong(world):
    w, ledger = world["witness"], world["ledger"]
    note = world["first"]["note"]
    assert w.add_checkpoint("old 0\n" + note)[0] == 400  # no empty line
    assert w.add_checkpoint("old 01\n\n" + note)[0] == 400  # leading zero
    assert w.add_checkpoint("old 0\nnot-base64\n\n" + note)[0] == 400
    assert w.add_checkpoint("old 0\n" + "AAAA\n" + "\n" + note)[0] == 400  # not 32 bytes
    assert w.add_checkpoint("old 0\n" + (base64.b64encode(bytes(32)).decode() + "\n") * 64 + "\n" + note)[0] == 400
    assert w.add_checkpoint(f"old {world['first']['size'] + 1}\n\n" + note)[0] == 400  # old above the size
    assert w.add_checkpoint("old 0\n\n" + note.replace("evledger/acme", "evledger/other"))[0] == 404
    body, sig = note.split("\n\n")
    other = SM2PrivateKey.generate()
    forged_sig = sig.split(" ")[0] + " " + sig.split(" ")[1] + " " + base64.b64encode(
        base64.b64decode(sig.split(" ")[2])[:4] + other.sign(b"x")).decode() + "\n"
    assert w.add_checkpoint("old 0\n\n" + body + "\n\n" + forged_sig)[0] == 403  # the key's line, a bad signature
    assert w.add_checkpoint("old 0\n\n" + body + "\n\n\u2014 someone AAAAAAAAAAAAAAAAAAAAAAAAAAAA\n")[0] == 403
    proof_line = base64.b64encode(bytes(32)).decode() + "\n"
    assert w.add_checkpoint("old 0\n" + proof_line + "\n" + note)[0] == 422  # a proof from size 0
    assert w.add_checkpoint("old " + "9" * 5000 + "\n\n" + note)[0] == 400  # past int()'s digit limit
    assert w.add_checkpoint(f"old {2**64}\n\n" + note)[0] == 400
    assert w.add_checkpoint(request(ledger, 0, world["first"]))[0] == 200
    bad_proof = f"old {world['first']['size']}\n" + proof_line * 3 + "\n" + world["third"]["note"]
    assert w.add_checkpoint(bad_proof)[0] == 422
    # the log's key signing a size of 2**64 or a 5000-digit size: refused as malformed, never a 500
    key = ledger.keys.signing_key(ledger.latest_checkpoint()["key_id"])
    name, blob_head = body.split("\n")[0], base64.b64decode(sig.split(" ")[2])[:4]
    for size in (str(2**64), "9" * 5000):
        huge = f"{name}\n{size}\n{base64.b64encode(bytes(32)).decode()}\n"
        line = f"\u2014 {name} {base64.b64encode(blob_head + key.sign(huge.encode())).decode()}\n"
        assert w.add_checkpoint("old 0\n\n" + huge + "\n" + line)[0] == 400


def test_a_replayed_refusal_is_kept_once_however_it_is_padded(world):
    """Anyone can send a log's public checkpoint with a bad proof: it is kept once (with only the
    log's own lines), not once per request, and it raises no alarm (it proves nothing)."""
    w, ledger = world["witness"], world["ledger"]
    assert w.add_checkpoint(request(ledger, 0, world["first"]))[0] == 200
    zero = base64.b64encode(bytes(32)).decode() + "\n"
    body, lines = world["third"]["note"].split("\n\n")
    for i in range(20):
        padding = f"\u2014 pad{i} {base64.b64encode(bytes(76)).decode()}\n"
        padded = f"{body}\n\n{lines}{padding}"
        assert w.add_checkpoint(f"old {world['first']['size']}\n" + zero * 2 + "\n" + padded)[0] == 422
    refused = world["state"].refusals()
    assert len(refused) == 1 and refused[0]["kind"] == "refused" and "pad" not in refused[0]["note"]


def test_the_state_survives_a_restart_and_one_process_holds_it(world):
    w, ledger = world["witness"], world["ledger"]
    assert w.add_checkpoint(request(ledger, 0, world["second"]))[0] == 200
    again = Witness(WitnessState(world["dir"]), w.logs)  # a new process on the same directory
    assert again.identity.verifier_key == world["identity"].verifier_key
    assert again.add_checkpoint(request(world["fork"], world["second"]["size"], world["forked"]))[0] == 422
    assert again.add_checkpoint(request(ledger, 0, world["third"]))[:3:2] == (409, f"{world['second']['size']}\n")
    holder = WitnessState(world["dir"])
    holder.lock()
    with pytest.raises(WitnessStateError, match="another witness process"):
        WitnessState(world["dir"]).lock()
    holder.close()
    with pytest.raises(WitnessStateError, match="already holds a witness"):
        WitnessState(world["dir"]).create("another")
    for name in ("bad+name", "two words", "line\n", ""):  # names a note cannot carry: refused before any key
        with pytest.raises(ValueError, match="witness name"):
            WitnessState(world["dir"] / "other").create(name)
    assert not (world["dir"] / "other" / "witness.key").exists()


def test_concurrent_requests_never_roll_the_state_back(world):
    """Check and store are one step per log: of two requests from the same old size only one
    is cosigned, the other gets 409, and the stored size is never the smaller after the larger."""
    from concurrent.futures import ThreadPoolExecutor

    w, ledger = world["witness"], world["ledger"]
    assert w.add_checkpoint(request(ledger, 0, world["first"]))[0] == 200
    old = world["first"]["size"]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(w.add_checkpoint, [request(ledger, old, world["second"]),
                                                   request(ledger, old, world["third"])] * 4))
    assert sorted(a[0] for a in answers).count(200) == 1
    assert world["state"].latest("evledger/acme").size in (world["second"]["size"], world["third"]["size"])


# --- the verifier's policy -------------------------------------------------------------------------


def test_witness_policy_options_are_checked():
    key = cosign_key("court.example/a")
    assert load_witness_policy([], None) is None
    assert load_witness_policy([key, key], None).threshold == 1  # one witness counts once
    with pytest.raises(ValueError, match="needs the witness keys"):
        load_witness_policy([], 1)
    with pytest.raises(ValueError, match="from 1 to the 1"):
        load_witness_policy([key], 2)
    with pytest.raises(ValueError, match="is not a witness key"):
        load_witness_policy(["evledger/acme+00000000+AAAA"], None)


def cosign_key(name: str) -> str:
    from witness.cosigning import WitnessIdentity

    return WitnessIdentity(name, SM2PrivateKey.generate()).verifier_key


def test_the_config_file_is_validated(tmp_path):
    key = cosign_key("court.example/a")
    path = tmp_path / "w.toml"
    path.write_text(f'threshold = 1\n[[witness]]\nurl = "http://127.0.0.1:1"\nkey = "{key}"\n')
    config = load_witness_config(path)
    assert isinstance(config, WitnessConfig) and config.threshold_of("acme") == 1
    for text, wrong in ((f'[[witness]]\nurl = "ftp://x"\nkey = "{key}"\n', "witness.0.url"),
                        ('[[witness]]\nurl = "http://x"\nkey = "nope"\n', "not a witness key"),
                        (f'[[witness]]\nurl = "http://x"\nkey = "{key}"\n[[witness]]\nurl = "http://y"\nkey = "{key}"\n',
                         "listed twice"),
                        ("witness = 3", "witness"), ("[[witness", "not TOML"), ("", "witness"),
                        ("a = " + "[" * 100_000, "nested too deeply"),
                        (f'[[witness]]\nurl = "http://x:99999"\nkey = "{key}"\n', "not a TCP port"),
                        (f'threshold = 2\n[[witness]]\nurl = "http://x"\nkey = "{key}"\n', "above the 1 witnesses"),
                        (f'threshold = true\n[[witness]]\nurl = "http://x"\nkey = "{key}"\n', "threshold"),
                        (f'[thresholds]\nacme = 0\n[[witness]]\nurl = "http://x"\nkey = "{key}"\n', "thresholds.acme"),
                        (f'[thresholds]\nacme = 2\n[[witness]]\nurl = "http://x"\nkey = "{key}"\n', "above the 1")):
        path.write_text(text)
        with pytest.raises(ValueError, match=wrong):
            load_witness_config(path)


# --- real processes ---------------------------------------------------------------------------------


class WitnessProcess:
    """`evledger witness serve` on 127.0.0.1, started and stopped by the test."""

    def __init__(self, directory: Path, vkey: str, port: int | None = None):
        self.directory, self.vkey = directory, vkey
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def init(self, name: str) -> str:
        out = subprocess.run([sys.executable, "-m", "proof_api.cli", "witness", "init", "--dir", str(self.directory),
                              "--name", name], cwd=REPO, capture_output=True, text=True, check=True)
        return out.stdout.strip()

    def start(self) -> "WitnessProcess":
        self.stderr = open(f"{self.directory}.stderr", "a")
        self.proc = subprocess.Popen([sys.executable, "-m", "proof_api.cli", "witness", "serve", "--dir",
                                      str(self.directory), "--log", self.vkey, "--port", str(self.port)],
                                     cwd=REPO, stdout=subprocess.DEVNULL, stderr=self.stderr)

        def up():
            assert self.proc.poll() is None, Path(f"{self.directory}.stderr").read_text()
            try:
                return httpx.get(self.url + "/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False
        wait_until(up, timeout=60, interval=0.1, what="evledger witness serve")
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.stderr.close()


def test_the_whole_path_with_real_processes(tmp_path):
    """A ledger served with one witness: every checkpoint cosigned; the bundle v2 verified with
    --witness (①) and with another witness's key (②); the witness killed (ingest and sealing go
    on, the lag shows) and restarted on its state (it catches up, every checkpoint in order);
    then the operator forks the ledger and serves the fork: the witness refuses it."""
    data = tmp_path / "data"
    with evledger_serve(data, "--anchor-min-interval", "0") as (proc, base, admin_key):
        admin = auth(admin_key)
        with httpx.Client(base_url=base, timeout=10) as http:
            assert http.post("/v1/ledgers", json={"ledger": "acme"}, headers=admin).status_code == 201
            vkey = next(iter(http.get("/v1/ledgers/acme/checkpoints", headers=admin).json()["verifier_keys"].values()))
    # the ledger's key is known: start its witness, then the service again with the witness configured
    witness = WitnessProcess(tmp_path / "witness", vkey)
    wkey = witness.init("court.example/witness")
    config = tmp_path / "witnesses.toml"
    config.write_text(f'threshold = 1\ntimeout = 2\n[[witness]]\nurl = "{witness.url}"\nkey = "{wkey}"\n')
    witness.start()
    try:
        with evledger_serve(data, "--anchor-min-interval", "0", "--witness-config", str(config),
                            "--publish-tiles") as (proc, base, _):
            with httpx.Client(base_url=base, timeout=10) as http:
                producer = auth(http.post("/v1/ledgers/acme/api-keys", json={"role": "producer"}, headers=admin).json()["key"])

                def record(i):
                    assert http.post("/v1/ledgers/acme/records", json=rec(i, evidence_id=f"e{i}"),
                                     headers=producer).status_code == 201

                def latest():
                    return http.get("/v1/ledgers/acme/checkpoints/latest", headers=admin).json()

                for i in range(3):
                    record(i)
                    wait_until(lambda: latest().get("size") == i + 1, what="the checkpoint")
                wait_until(lambda: len(latest()["cosignatures"]) == 1, what="the cosignature")
                served = latest()
                assert served["cosigned_note"] == served["note"] + served["cosignatures"][0]["line"]
                assert served["witnessed"] is True
                # the static tiles' checkpoint is written again with the witness's line once it comes
                published = data / "tiles" / "acme" / "checkpoint"
                wait_until(lambda: published.exists() and published.read_text() == served["cosigned_note"],
                           what="the published checkpoint with the witness's cosignature")
                checkpoints = http.get("/v1/ledgers/acme/checkpoints", headers=admin).json()["checkpoints"]
                for cp in checkpoints:  # every checkpoint cosigned, in order
                    got = http.get(f"/v1/ledgers/acme/checkpoints/{cp['size']}", headers=admin).json()
                    assert [c["witness_key"] for c in got["cosignatures"]] == [wkey]

                bundle = wait_until(lambda: (lambda r: r.json() if r.status_code == 200 else None)(
                    http.get("/v1/ledgers/acme/proof?evidence_id=e1", headers=admin)), what="an anchored proof")
                assert bundle["format"] == "evledger-proof/2" and bundle["cosignatures"][0]["witness_key"] == wkey
                path = tmp_path / "bundle.json"
                path.write_text(json.dumps(bundle))
                ok = subprocess.run([sys.executable, "-m", "proof_api.cli", "verify", str(path), "--witness", wkey],
                                    cwd=REPO, capture_output=True, text=True)
                assert ok.returncode == 0 and "cosigned by the witnesses given \u2714" in ok.stdout, ok.stdout
                other = cosign_key("court.example/witness")
                bad = subprocess.run([sys.executable, "-m", "proof_api.cli", "verify", str(path), "--witness", other],
                                     cwd=REPO, capture_output=True, text=True)
                assert bad.returncode == 1 and "\u2718 witnesses: 0 of the 1 witness key(s)" in bad.stdout, bad.stdout
                usage = subprocess.run([sys.executable, "-m", "proof_api.cli", "verify", str(path), "--witness-threshold",
                                        "1"], cwd=REPO, capture_output=True, text=True)
                assert usage.returncode == 2 and "needs the witness keys" in usage.stderr
                api = http.post("/v1/verify", json={"bundle": bundle, "witness_keys": [wkey]}).json()
                assert api["verdict"] == 1
                assert http.post("/v1/verify", json={"bundle": bundle, "witness_keys": [other]}).json()["verdict"] == 2
                for threshold in (2, 0, True, "1"):
                    refused = http.post("/v1/verify", json={"bundle": bundle, "witness_keys": [wkey],
                                                            "witness_threshold": threshold})
                    assert refused.status_code == 422 and refused.json()["error"]["field"] == "witness_threshold"

                # the witness goes down: records are still acknowledged and sealed, the lag shows
                witness.kill()
                down_from = latest()["size"]
                for i in range(3, 6):
                    record(i)
                wait_until(lambda: latest()["size"] == 6, what="checkpoints while the witness is down")
                assert latest()["cosignatures"] == [] and latest()["witnessed"] is False

                def lag() -> float:
                    for line in http.get("/metrics").text.splitlines():
                        if line.startswith('evledger_witness_lag_seconds{ledger="acme"'):
                            return float(line.split()[-1])
                    return 0.0
                wait_until(lambda: lag() > 0, what="the witness lag metric")
                # back up, on its state: it catches up on every checkpoint it missed, in order
                witness.start()
                wait_until(lambda: len(latest()["cosignatures"]) == 1, timeout=60, what="the catch-up")
                sizes = [cp["size"] for cp in http.get("/v1/ledgers/acme/checkpoints", headers=admin).json()["checkpoints"]]
                assert all(len(http.get(f"/v1/ledgers/acme/checkpoints/{s}", headers=admin).json()["cosignatures"]) == 1
                           for s in sizes if s > down_from)
                wait_until(lambda: lag() == 0, what="the lag back to 0")
        # the operator forks: a copy of the ledger from before, with other records, served to the witness
        fork = tmp_path / "fork"
        shutil.copytree(data, fork)
        honest_size = 6
        with evledger_serve(data, "--anchor-min-interval", "0", "--witness-config", str(config)) as (_, base, _):
            with httpx.Client(base_url=base, timeout=10) as http:
                for i in range(6, 8):
                    assert http.post("/v1/ledgers/acme/records", json=rec(i), headers=admin).status_code == 201
                wait_until(lambda: len(http.get("/v1/ledgers/acme/checkpoints/latest", headers=admin)
                                       .json()["cosignatures"]) == 1 and
                           http.get("/v1/ledgers/acme/checkpoints/latest", headers=admin).json()["size"] == 8,
                           what="the honest ledger cosigned at 8")
        with evledger_serve(fork, "--anchor-min-interval", "0", "--witness-config", str(config)) as (_, base, _):
            with httpx.Client(base_url=base, timeout=10) as http:
                for i in range(900, 902):  # size 8 again, another root
                    assert http.post("/v1/ledgers/acme/records", json=rec(i), headers=admin).status_code == 201
                wait_until(lambda: http.get("/v1/ledgers/acme/checkpoints/latest", headers=admin).json()["size"] == 8,
                           what="the fork's checkpoint")
                refused = wait_until(lambda: WitnessState(tmp_path / "witness").refusals(), what="the refusal")
                assert [(r["status"], r["kind"]) for r in refused] == [(422, "fork")], refused
                wait_until(lambda: "ALERT ledger 'acme': witness court.example/witness: HTTP 422"
                           in Path(f"{fork}.stderr").read_text(), what="the collector's alert")
                assert http.get("/v1/ledgers/acme/checkpoints/latest", headers=admin).json()["cosignatures"] == []
        assert honest_size < 8
    finally:
        witness.kill()
    assert "Traceback" not in Path(f"{tmp_path / 'witness'}.stderr").read_text()


def test_a_hostile_witness_gets_nothing_logged_and_delays_nothing_else(tmp_path):
    """A witness is another party's server: garbage, an answer too large, a valid line by a
    key of the same name, an unreadable conflict size and a 500 are each an error with a
    backoff; nothing is logged as a cosignature, and records are still recorded and sealed."""
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    from tests.api_helpers import uvicorn_server
    from witness.collector import MAX_ANSWER_BYTES, WitnessCollector
    from witness.cosigning import WitnessIdentity

    service = LedgerService(tmp_path / "data", settings=SEQ)
    ledger = service.create_ledger("acme")
    checkpoint = submit(ledger, 0, 3)
    impostor = WitnessIdentity("court.example/witness", SM2PrivateKey.generate())
    body = checkpoint["note"].split("\n\n")[0] + "\n"
    answers = [(200, "text/plain", "garbage\n"), (200, "text/plain", "x" * (MAX_ANSWER_BYTES + 10)),
               (200, "text/plain", impostor.cosign(body)), (409, "text/x.tlog.size", "many\n"),
               (409, "text/x.tlog.size", "\u00b2\n"), (409, "text/x.tlog.size", "9" * 5000 + "\n"),
               (409, "text/x.tlog.size", "1\n"),  # a size it keeps giving back: tried 3 times, then a backoff
               (500, "text/plain", "oops\n")]
    current = {}

    async def add_checkpoint(request):
        status, content_type, text = current["answer"]
        return Response(text, status, media_type=content_type)

    app = Starlette(routes=[Route("/add-checkpoint", add_checkpoint, methods=["POST"]),
                            Route("/healthz", lambda r: Response("ok"), methods=["GET"])])
    real_key = cosign_key("court.example/witness")
    try:
        with uvicorn_server(app) as url:
            config = WitnessConfig.model_validate({"witness": [{"url": url, "key": real_key}]})
            collector = WitnessCollector(service, config)
            entry = config.witness[0]
            with httpx.Client(timeout=5) as client:
                for i, answer in enumerate(answers):
                    current["answer"] = answer
                    progress = collector._progress_of(entry, "acme")
                    progress.next_try = 0.0
                    collector.step(entry, client)
                    assert progress.next_try > time.monotonic(), answer[:2]  # backed off
                    errors = sum(s.value for s in collector.metrics.errors.collect()[0].samples
                                 if s.name.endswith("_total"))
                    assert errors == i + 1
            assert ledger.cosignatures(checkpoint["size"]) == []
            assert submit(ledger, 3, 2)["size"] == 5  # ingest and sealing went on
    finally:
        service.close()


def test_the_lag_counts_from_before_a_restart_and_memory_stays_bounded(tmp_path):
    """A collector started while its witness is behind (here: unreachable) reports the lag from
    the oldest uncosigned checkpoint's seal, not from its own start; and while the witness stays
    down, what it keeps per checkpoint is bounded."""
    from witness.collector import MAX_SEALED_KEPT, WitnessCollector, _Progress

    service = LedgerService(tmp_path / "data", settings=SEQ)
    try:
        ledger = service.create_ledger("acme")
        submit(ledger, 0, 2)
        time.sleep(1.0)
        config = WitnessConfig.model_validate({"witness": [{"url": f"http://127.0.0.1:{free_port()}",
                                                            "key": cosign_key("court.example/w")}], "timeout": 1})
        collector = WitnessCollector(service, config)
        with httpx.Client(timeout=1) as client:
            collector.step(config.witness[0], client)
        lag = collector.metrics.lag_seconds.labels("acme", "court.example/w")._value.get()
        assert lag >= 1.0
    finally:
        service.close()
    progress = _Progress()
    for size in range(1, 3 * MAX_SEALED_KEPT):
        progress.sealed(size, float(size))
    assert len(progress.sealed_at) == MAX_SEALED_KEPT and progress.waiting_since == 1.0
    assert progress.cosigned(3 * MAX_SEALED_KEPT - 1) is not None
    assert progress.sealed_at == {} and progress.waiting_since is None


def test_a_fork_is_kept_and_alarmed_however_the_refusals_before_it_went(world, monkeypatch, caplog):
    """Refusals anyone can cause never hide a fork: not by filling the store (each kind has its
    own room), not by sending the forked note early as a plain bad proof (kept again as a fork,
    with the note it contradicts), not by a line a crash cut short."""
    import logging

    import witness.state

    monkeypatch.setattr(witness.state, "MAX_REFUSALS", 2)
    w, ledger, fork = world["witness"], world["ledger"], world["fork"]
    zero = base64.b64encode(bytes(32)).decode() + "\n"
    first, size = world["first"]["size"], world["second"]["size"]
    assert w.add_checkpoint(request(ledger, 0, world["first"]))[0] == 200
    # the operator sends its forked note early, with a bad proof: a plain refusal
    assert w.add_checkpoint(f"old {first}\n" + zero * 3 + "\n" + world["forked"]["note"])[0] == 422
    assert w.add_checkpoint(f"old {first}\n" + zero * 3 + "\n" + world["third"]["note"])[0] == 422  # the kind is full
    with open(world["dir"] / "refused.ndjson", "ab") as torn:
        torn.write(b'{"at": "2026-')  # a crash in the middle of an append
    w = Witness(WitnessState(world["dir"]), w.logs)  # restarted
    assert w.add_checkpoint(request(ledger, first, world["second"]))[0] == 200
    with caplog.at_level(logging.WARNING, logger="evledger.witness"):
        assert w.add_checkpoint(request(fork, size, world["forked"]))[0] == 422
    kinds = [(r["kind"], r["note"] == world["forked"]["note"]) for r in w.state.refusals()]
    assert kinds == [("refused", True), ("refused", False), ("fork", True)], kinds
    assert w.state.refusals()[-1]["cosigned_note"] == world["second"]["note"]
    assert any("ALERT witness: log 'evledger/acme' signed two roots" in r.message for r in caplog.records)
