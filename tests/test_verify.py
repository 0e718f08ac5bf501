"""The offline verifier (`evledger_verify/verify.py`) against real bundles.

The bundles are made the way the service makes them: a LedgerService in a temporary data
directory, records whose content_hash is the SM3 of a known file, checkpoints sealed by the
sequencer, anchored on the in-process chain by the AnchorWorker, then `build_bundle`.

The tamper suite walks the bundle's JSON and changes it one thing at a time (every string, a
character at a time; every integer; every key dropped or added; lists and objects replaced,
reordered, cut short and lengthened; every byte of the leaf; and the changes a forger would
make consistently: re-encoded leaf with a recomputed hash, another record's leaf on this path,
another ledger's key, another checkpoint). Every change must give verdict ② and nothing may
raise, except where a field is informational:
  - `issued_at` (when the bundle was made) is covered by no check;
  - `anchor.*` except `anchor.ledger_key` is only checked on chain, with --rpc
    (test_anchor_on_a_real_chain flips each of them to ② over JSON-RPC against anvil).
"""
from __future__ import annotations

import base64
import copy
import hashlib
import json
import time
from pathlib import Path

import orjson
import pytest

from anchor.chain import Web3Chain, load_artifact
from anchor.worker import AnchorSettings, AnchorWorker
from evledger_dev.devchain import ANVIL, DEV_KEYS, Anvil
from ingest.ledger import LedgerService
from ingest.sequencer import SequencerSettings
from evledger_verify.chain import GET_ANCHOR_ABI
from evledger_verify.cosignature import cosigner_key_id
from merkle.checkpoint import SM2PrivateKey
from witness.cosigning import WitnessIdentity, cosignature_payload, log_cosignature
from evledger_verify.verify import CHECK_NAMES, Report, format_report, load_bundle, run, sm3, verify_bundle
from proof_api.bundle import build_bundle
from tests.sample_records import rec

SEQ = SequencerSettings(batch_max_delay=0.05)
FAST = AnchorSettings(min_interval=0, poll_interval=0.05)
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "docs" / "proof-bundle.v2.schema.json"
SCHEMA_V1_PATH = Path(__file__).resolve().parent.parent / "docs" / "proof-bundle.schema.json"
COUNT = 11  # an odd size: paths with a border part (RFC 9162 §2.1.3) as well as full subtrees
TAMPERED = 5  # record 5 of 11: a 4-hash path


def evidence_file(i: int) -> bytes:
    return f"contract {i}: the account holder agrees to the terms.\n".encode() * (i + 1)


def sm3_hex(data: bytes) -> str:
    try:
        return hashlib.new("sm3", data).hexdigest()
    except ValueError:  # this OpenSSL has no SM3
        return sm3(data).hex()


def as_json(bundle: dict) -> dict:
    """The bundle as a verifier reads it from a file."""
    return load_bundle(json.dumps(bundle))


def ingest(ledger, start: int, count: int) -> dict:
    ledger.submit([rec(i, content_hash=sm3_hex(evidence_file(i)), evidence_id=f"e{i}")
                   for i in range(start, start + count)])
    target = ledger.record_count
    checkpoint = ledger.wait_for_checkpoint(target, timeout=15)
    assert checkpoint is not None and checkpoint["size"] == target
    return checkpoint


WITNESS = WitnessIdentity("witness.example/court-1", SM2PrivateKey.generate())
OTHER_WITNESS = WitnessIdentity("witness.example/notary-2", SM2PrivateKey.generate())


def cosign(ledger, witness: WitnessIdentity, size: int) -> None:
    """Log `witness`'s cosignature of the checkpoint at `size` as the collector would."""
    checkpoint = ledger.checkpoint(size)
    body = checkpoint["note"].split("\n\n")[0] + "\n"
    log_cosignature(ledger, cosignature_payload(checkpoint, witness.verifier_key, witness.cosign(body)))
    kid = cosigner_key_id(witness.name, witness.key.public_key).hex()
    deadline = time.monotonic() + 10
    while not any(c["key_id"] == kid for c in ledger.cosignatures(size)):
        assert time.monotonic() < deadline, "the cosignature was not projected"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Three ledgers (acme and beta on SM3, plain on SHA-256), all anchored; acme with two
    anchored checkpoints (sizes 11 and 14); bundles made before and after anchoring."""
    service = LedgerService(tmp_path_factory.mktemp("verify") / "data", settings=SEQ)
    try:
        acme = service.create_ledger("acme")
        beta = service.create_ledger("beta")
        plain = service.create_ledger("plain", alg="sha256")
        ingest(acme, 0, COUNT)
        ingest(beta, 100, 7)
        ingest(plain, 200, 5)
        unanchored = as_json(build_bundle(acme, TAMPERED, require_anchor=False))
        worker = AnchorWorker(service, Web3Chain.in_process(), FAST)
        for ledger, size in ((acme, COUNT), (beta, 7), (plain, 5)):
            worker.anchor_now(ledger.id)
            assert worker.wait_confirmed(ledger.id, size, timeout=30) is not None
        ingest(acme, COUNT, 3)
        worker.anchor_now("acme")
        assert worker.wait_confirmed("acme", COUNT + 3, timeout=30) is not None
        for size in (COUNT, COUNT + 3):  # acme's checkpoints cosigned by one witness
            cosign(acme, WITNESS, size)
        yield {
            "acme": {seq: as_json(build_bundle(acme, seq)) for seq in range(COUNT)},
            "acme_later": as_json(build_bundle(acme, TAMPERED, size=COUNT + 3)),
            "beta": as_json(build_bundle(beta, 3)),
            "plain": as_json(build_bundle(plain, 2)),
            "unanchored": unanchored,
        }
    finally:
        service.close()


@pytest.fixture
def good(world) -> dict:
    return copy.deepcopy(world["acme"][TAMPERED])


def assert_verdict_1(report: Report, file_checked=False, hash_checked=False, on_chain=False):
    assert report.verdict == 1, format_report(report)
    expected = {name: True for name in CHECK_NAMES}
    expected.update(file=True if file_checked else None, content_hash=True if hash_checked else None,
                    anchor_on_chain=True if on_chain else None)
    # acme's bundles carry a cosignature (verified with the bundle's key); the others none
    expected["witnesses"] = True if report.check("witnesses").ok else None
    assert {c.name: c.ok for c in report.checks} == expected, format_report(report)


def failed(report: Report) -> set[str]:
    return {c.name for c in report.checks if c.ok is False}


# --- good bundles ------------------------------------------------------------------------------


def test_every_record_of_a_good_ledger_verifies(world):
    for seq, bundle in world["acme"].items():
        report = verify_bundle(bundle)
        assert_verdict_1(report)
        assert [c.name for c in report.checks] == list(CHECK_NAMES)
        assert all(c.detail for c in report.checks)
    assert "not checked on chain (pass --rpc)" in report.check("anchor_on_chain").detail


def test_a_sha256_ledger_and_a_later_checkpoint_verify(world):
    assert_verdict_1(verify_bundle(world["plain"]))
    assert "sha256(0x00 || leaf)" in verify_bundle(world["plain"]).check("leaf_hash").detail
    assert_verdict_1(verify_bundle(world["acme_later"]))
    assert world["acme_later"]["inclusion"]["tree_size"] == COUNT + 3


def test_format_report_prints_each_check_and_the_verdict(good):
    text = format_report(verify_bundle(good))
    lines = text.splitlines()
    assert lines[0].startswith("✔ format: evledger-proof/2")
    assert any(line.startswith("– anchor on chain: not checked on chain (pass --rpc)") for line in lines)
    assert lines[-1].startswith("verdict ①: the record is in the anchored tree, unaltered")
    good["leaf"]["index"] += 1
    text = format_report(verify_bundle(good))
    assert "✘ leaf: the leaf is record 5 but leaf.index is 6" in text
    assert text.splitlines()[-1].startswith("verdict ②:")


def test_report_as_dict_is_plain_json(good):
    out = verify_bundle(good).as_dict()
    assert out["verdict"] == 1 and len(out["checks"]) == len(CHECK_NAMES)
    assert json.loads(json.dumps(out)) == out


def test_the_inline_abi_is_the_contracts(world):
    artifact = [f for f in load_artifact()["abi"] if f.get("name") == "getAnchor"]
    assert [{k: f[k] for k in ("inputs", "outputs", "name", "stateMutability", "type")} for f in artifact] == GET_ANCHOR_ABI


# --- the file and its hash ---------------------------------------------------------------------


def test_the_right_file_gives_1_and_any_changed_byte_gives_2(good):
    data = evidence_file(TAMPERED)
    assert_verdict_1(verify_bundle(good, file_bytes=data), file_checked=True)
    for position in (0, 1, len(data) // 2, len(data) - 1):
        changed = bytearray(data)
        changed[position] ^= 0x01
        report = verify_bundle(good, file_bytes=bytes(changed))
        assert report.verdict == 2 and failed(report) == {"file"}, format_report(report)
        assert "SM3 of the file" in report.check("file").detail
    for other in (b"", data + b"\n", data[:-1], evidence_file(TAMPERED + 1)):
        assert verify_bundle(good, file_bytes=other).verdict == 2


def test_the_file_check_is_sm3_even_on_a_sha256_ledger(world):
    bundle = world["plain"]
    assert_verdict_1(verify_bundle(bundle, file_bytes=evidence_file(202)), file_checked=True)
    assert verify_bundle(bundle, file_bytes=evidence_file(203)).verdict == 2


def test_the_hash_check(good):
    right = sm3_hex(evidence_file(TAMPERED))
    assert_verdict_1(verify_bundle(good, content_hash=right), hash_checked=True)
    assert_verdict_1(verify_bundle(good, content_hash=right.upper()), hash_checked=True)
    for wrong in (sm3_hex(evidence_file(0)), hashlib.sha256(evidence_file(TAMPERED)).hexdigest(), right[:-1],
                  "xyz", "", right + "0"):
        report = verify_bundle(good, content_hash=wrong)
        assert report.verdict == 2 and failed(report) == {"content_hash"}, wrong
    both = verify_bundle(good, file_bytes=evidence_file(TAMPERED), content_hash=right)
    assert_verdict_1(both, file_checked=True, hash_checked=True)


# --- no anchor ---------------------------------------------------------------------------------


def test_a_bundle_without_an_anchor_gives_2(world):
    report = verify_bundle(world["unanchored"])
    assert world["unanchored"]["anchor"] is None
    assert report.verdict == 2 and failed(report) == {"anchor"}
    assert report.check("anchor").detail == "no anchor: the record is not proven to be in an anchored tree"
    assert all(c.ok for c in report.checks if c.name in ("format", "leaf", "leaf_hash", "inclusion", "checkpoint"))


# --- the tamper suite --------------------------------------------------------------------------

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
HEX = "0123456789abcdef"
ZERO_HASH = "00" * 32


def other_char(ch: str) -> str:
    """A different character of the same kind where there is one (hex stays hex, base64
    stays base64), so the change reaches the checks behind the format check."""
    for alphabet in (HEX, B64):
        if ch in alphabet:
            return alphabet[(alphabet.index(ch) + 1) % len(alphabet)]
    return chr(ord(ch) + 1)


def get(obj, path):
    for key in path:
        obj = obj[key]
    return obj


def replaced(bundle, path, value):
    out = copy.deepcopy(bundle)
    get(out, path[:-1])[path[-1]] = value
    return out


def dropped(bundle, path):
    out = copy.deepcopy(bundle)
    del get(out, path[:-1])[path[-1]]
    return out


def string_positions(path, s: str) -> list[int]:
    """Every character of the signed note and of the key; elsewhere (leaf bytes are flipped one
    by one in the forgery test) the ends, the middle, every 16th, and the last base64 digit
    before padding, whose spare bits a lax decoder ignores."""
    if path in (("checkpoint", "note"), ("checkpoint", "verifier_key")):
        return list(range(len(s)))
    last = len(s.rstrip("=\n")) - 1
    return sorted({0, 1, len(s) // 2, last, len(s) - 1, *range(0, len(s), 16)} & set(range(len(s))))


def value_mutations(path, value):
    """(what, new value) pairs for one JSON value; None as new value means: drop it."""
    if path:
        yield "dropped", None
    if isinstance(value, str):
        for n in string_positions(path, value):
            yield f"char {n} changed", value[:n] + other_char(value[n]) + value[n + 1:]
        yield "appended a char", value + "0"
        yield "emptied", ""
        yield "made an int", 7
    elif type(value) is int:
        yield "+1", value + 1
        yield "-1", value - 1
        yield "written as float", float(value)
        yield "written as string", str(value)
        yield "made a bool", value == 0
    elif isinstance(value, list):
        yield "emptied", []
        yield "made an object", {}
        if len(value) > 1:
            yield "reversed", value[::-1]
            for n in range(len(value) - 1):
                yield f"entries {n} and {n + 1} swapped", value[:n] + [value[n + 1], value[n]] + value[n + 2:]
        if value:
            yield "last entry dropped", value[:-1]
            yield "first entry dropped", value[1:]
        yield "extended with a zero hash", value + [ZERO_HASH]
        yield "extended with its first entry", value + value[:1]
    elif isinstance(value, dict):
        yield "extra key", {**value, "extra": 1}
        yield "emptied", {}
        yield "made a list", [value]
    if path and value is not None:
        yield "made null", "__null__"


def walk(value, path=()):
    yield path, value
    if isinstance(value, dict):
        for key, child in value.items():
            yield from walk(child, path + (key,))
    elif isinstance(value, list):
        for n, child in enumerate(value):
            yield from walk(child, path + (n,))


def field_mutations(bundle):
    """Every one-field change of the bundle: (description, path, tampered bundle)."""
    for path, value in walk(bundle):
        for what, new in value_mutations(path, value):
            if not path:
                out = {**copy.deepcopy(bundle), "extra": 1} if what == "extra key" else new
            elif what == "dropped":
                out = dropped(bundle, path)
            else:
                out = replaced(bundle, path, None if new == "__null__" else new)
            yield f"{'.'.join(map(str, path)) or 'bundle'}: {what}", path, out


def with_leaf(bundle, leaf: bytes, alg="sm3", record=None) -> dict:
    """The bundle with other leaf bytes, their correct hash, and (optionally) a matching record."""
    out = copy.deepcopy(bundle)
    out["leaf"]["bytes_b64"] = base64.b64encode(leaf).decode()
    out["leaf"]["hash"] = (sm3(b"\x00" + leaf) if alg == "sm3" else hashlib.sha256(b"\x00" + leaf).digest()).hex()
    if record is not None:
        out["record"] = record
    return out


def note_parts(note: str) -> tuple[str, str, bytes]:
    body, sig_lines = note.rstrip("\n").split("\n\n")
    _, name, blob = sig_lines.split("\n")[0].split(" ")  # the ledger's line comes first
    return body + "\n", name, base64.b64decode(blob)


def forger_mutations(bundle, world):
    """Changes made consistently, as a forger would, each still caught by some check."""
    leaf = base64.b64decode(bundle["leaf"]["bytes_b64"])
    for n in range(len(leaf)):
        flipped = bytearray(leaf)
        flipped[n] ^= 0x01
        yield f"leaf byte {n} flipped", with_leaf(bundle, bytes(flipped)) if n % 2 else \
            replaced(bundle, ("leaf", "bytes_b64"), base64.b64encode(bytes(flipped)).decode())

    event = orjson.loads(leaf)
    forged = copy.deepcopy(event)
    forged["record"]["content_hash"] = sm3_hex(b"a different contract")
    forged_leaf = orjson.dumps(forged, option=orjson.OPT_SORT_KEYS)
    yield "record rewritten, leaf re-encoded and re-hashed", with_leaf(bundle, forged_leaf, record=forged)
    forged = {**copy.deepcopy(event), "received_at": "2020-01-01T00:00:00.000000Z"}
    yield "receipt time back-dated consistently", with_leaf(bundle, orjson.dumps(forged, option=orjson.OPT_SORT_KEYS),
                                                          record=forged)
    yield "leaf with a space (not canonical), re-hashed", with_leaf(bundle, leaf.replace(b",", b", ", 1))
    yield "leaf in a non-canonical key order, re-hashed", with_leaf(bundle, json.dumps(event).encode())
    padded = bundle["leaf"]["bytes_b64"]
    last = len(padded.rstrip("=")) - 1
    yield "leaf base64 with spare bits set", replaced(bundle, ("leaf", "bytes_b64"),
                                                      padded[:last] + B64[B64.index(padded[last]) ^ 1] + padded[last + 1:])

    other = world["acme"][2]
    yield "another record's leaf and record on this path", {
        **copy.deepcopy(bundle), "leaf": copy.deepcopy(other["leaf"]), "record": copy.deepcopy(other["record"])}
    yield "another record's leaf at this index", {
        **copy.deepcopy(bundle), "leaf": {**other["leaf"], "index": bundle["leaf"]["index"]}}
    yield "another record's path", replaced(bundle, ("inclusion", "path"), other["inclusion"]["path"])
    yield "hash_alg sha256", replaced(bundle, ("hash_alg",), "sha256")
    yield "leaf hash recomputed with sha256", with_leaf({**bundle, "hash_alg": "sha256"}, leaf, alg="sha256")

    beta = world["beta"]
    yield "another ledger's verifier key", replaced(bundle, ("checkpoint", "verifier_key"),
                                                     beta["checkpoint"]["verifier_key"])
    yield "another ledger's checkpoint", replaced(bundle, ("checkpoint",), copy.deepcopy(beta["checkpoint"]))
    yield "another ledger's note and key, sizes matched", replaced(
        bundle, ("checkpoint",), {**beta["checkpoint"], "size": bundle["checkpoint"]["size"],
                                  "root": bundle["checkpoint"]["root"]})
    yield "another ledger's anchor", replaced(bundle, ("anchor",), copy.deepcopy(beta["anchor"]))
    yield "another ledger's origin", replaced(bundle, ("origin",), beta["origin"])

    later = world["acme_later"]
    yield "a later checkpoint of the same ledger", replaced(bundle, ("checkpoint",), copy.deepcopy(later["checkpoint"]))
    yield "a later checkpoint and its tree size, old path", {
        **replaced(bundle, ("checkpoint",), copy.deepcopy(later["checkpoint"])),
        "inclusion": {"tree_size": later["inclusion"]["tree_size"], "path": bundle["inclusion"]["path"]}}
    yield "the later path against this checkpoint", replaced(bundle, ("inclusion",), copy.deepcopy(later["inclusion"]))

    body, name, blob = note_parts(bundle["checkpoint"]["note"])
    for n in (4, 5, 40, len(blob) - 1):  # key id byte 4 is the first signature byte
        changed = bytearray(blob)
        changed[n] ^= 0x01
        cosignatures = "".join(line + "\n" for line in bundle["checkpoint"]["note"].split("\n\n")[1].split("\n")[1:-1])
        note = f"{body}\n\u2014 {name} {base64.b64encode(bytes(changed)).decode()}\n{cosignatures}"
        yield f"note signature byte {n} flipped", replaced(bundle, ("checkpoint", "note"), note)
    signature = f"\n\u2014 {name} {base64.b64encode(blob).decode()}\n"
    origin, size, root = body.rstrip("\n").split("\n")
    for what, new_body in (("size", f"{origin}\n{int(size) + 1}\n{root}\n"),
                           ("root", f"{origin}\n{size}\n{base64.b64encode(bytes(32)).decode()}\n"),
                           ("origin", f"evledger/beta\n{size}\n{root}\n"),
                           ("extension line added", f"{body}extra\n")):
        yield f"note body {what} changed, signature kept", replaced(bundle, ("checkpoint", "note"), new_body + signature)
    yield "note without its signature", replaced(bundle, ("checkpoint", "note"), body)
    yield "note signature line doubled", replaced(bundle, ("checkpoint", "note"), bundle["checkpoint"]["note"] + signature[1:])


def is_informational(path) -> bool:
    return path == ("issued_at",) or (len(path) == 2 and path[0] == "anchor" and path[1] != "ledger_key")


def test_every_field_tampered_gives_2_and_nothing_raises(good, world):
    original = json.dumps(good, sort_keys=True)
    count = informational = 0
    for what, path, tampered in field_mutations(good):
        assert json.dumps(tampered, sort_keys=True) != original, f"{what} changed nothing"
        report = verify_bundle(tampered)  # must not raise
        assert [c.name for c in report.checks] == list(CHECK_NAMES)
        if is_informational(path):
            informational += 1
            # Not covered offline: the verdict is ① unless the value is no longer well-formed.
            assert report.verdict == (1 if report.check("format").ok else 2), f"{what}\n{format_report(report)}"
        else:
            assert report.verdict == 2, f"{what} was not detected:\n{format_report(report)}"
            assert failed(report), what
        count += 1
    assert count > 600 and informational > 40


def test_consistent_forgeries_give_2(good, world):
    count = 0
    for what, tampered in forger_mutations(good, world):
        report = verify_bundle(tampered)
        assert report.verdict == 2, f"{what} was not detected:\n{format_report(report)}"
        count += 1
    assert count > 250


def test_the_forgery_checks_name_the_link_that_broke(good, world):
    forgeries = dict(forger_mutations(good, world))
    assert failed(verify_bundle(forgeries["record rewritten, leaf re-encoded and re-hashed"])) == {"inclusion"}
    assert failed(verify_bundle(forgeries["another record's leaf and record on this path"])) == {"inclusion"}
    assert failed(verify_bundle(forgeries["leaf base64 with spare bits set"])) >= {"leaf", "leaf_hash"}
    assert failed(verify_bundle(forgeries["another ledger's verifier key"])) == {"checkpoint"}
    assert failed(verify_bundle(forgeries["another ledger's anchor"])) == {"anchor"}
    assert failed(verify_bundle(forgeries["note signature byte 40 flipped"])) == {"checkpoint"}
    assert "does not verify" in verify_bundle(forgeries["note signature byte 40 flipped"]).check("checkpoint").detail
    detail = verify_bundle(forgeries["leaf with a space (not canonical), re-hashed"]).check("leaf").detail
    assert "not canonical" in detail


def test_issued_at_is_informational(good):
    good["issued_at"] = "1999-12-31T23:59:59.999999Z"
    assert_verdict_1(verify_bundle(good))


def test_an_anchor_is_a_claim_until_checked_on_chain(good, world):
    """Offline, the anchor's chain fields are not checked: another anchored block of the same
    contract passes; only --rpc (test_anchor_on_a_real_chain) tells them apart."""
    good["anchor"]["block_number"] += 5
    good["anchor"]["tx_hash"] = "0x" + "ab" * 32
    report = verify_bundle(good)
    assert_verdict_1(report)
    assert "pass --rpc" in report.verdict_text


@pytest.mark.parametrize("garbage", [
    None, [], "evledger-proof/1", 7, 1.5, True, {}, {"format": "evledger-proof/1"}, {"format": "evledger-proof/2"},
    {"format": ["evledger-proof/1"]}, {1: 2}, {"format": "evledger-proof/1", "leaf": None},
])
def test_garbage_is_a_failed_format_check(garbage):
    report = verify_bundle(garbage)
    assert report.verdict == 2 and failed(report) == {"format"}
    assert all(c.ok is None for c in report.checks[1:])


def test_deep_and_strange_values_fail_without_raising(good):
    deep = {}
    inner = deep
    for _ in range(50_000):
        inner["x"] = {}
        inner = inner["x"]
    for record in (deep, {"ledger": float("nan")}, {"seq": 10**40}, {object(): 1}):
        report = verify_bundle({**good, "record": record}, file_bytes=b"x", content_hash="0" * 64)
        assert report.verdict == 2 and report.check("leaf").ok is False
    report = verify_bundle(good, file_bytes="not bytes", content_hash=12)  # wrong types from a caller
    assert report.verdict == 2 and failed(report) == {"file", "content_hash"}


# --- the JSON schema ---------------------------------------------------------------------------


def test_good_bundles_validate_against_the_schema(world, good):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for bundle in (good, world["plain"], world["acme_later"], world["unanchored"], world["beta"]):
        assert not list(validator.iter_errors(bundle))
    # The schema and the format check agree: a bundle the schema accepts passes the format
    # check (JSON Schema counts 7.0 as an integer, the verifier does not), and one the format
    # check accepts is accepted by the schema unless the change is inside `record`, which the
    # schema describes in detail and the leaf check compares byte for byte.
    for what, path, tampered in field_mutations(good):
        schema_ok = validator.is_valid(tampered)
        format_ok = verify_bundle(tampered).check("format").ok
        if schema_ok and "float" not in what:
            assert format_ok, what
        if format_ok and path[:1] != ("record",):
            assert schema_ok, what


# --- the command -------------------------------------------------------------------------------


def test_the_command_prints_the_report_and_exits_0_only_for_1(good, tmp_path, capsys):
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(good))
    evidence = tmp_path / "contract.pdf"
    evidence.write_bytes(evidence_file(TAMPERED))
    assert run(str(path), file=str(evidence)) == 0
    out = capsys.readouterr().out
    assert "✔ file: SM3 of the file" in out and "verdict ①" in out
    evidence.write_bytes(evidence_file(TAMPERED) + b" ")
    assert run(str(path), file=str(evidence)) == 1
    assert "✘ file:" in capsys.readouterr().out
    assert run(str(path), content_hash=sm3_hex(evidence_file(TAMPERED)).upper()) == 0
    capsys.readouterr()
    path.write_text(json.dumps(good)[:-1])
    assert run(str(path)) == 1
    assert "✘ format: the bundle cannot be read: not JSON: " in capsys.readouterr().out
    path.write_text('{"format": "evledger-proof/1", "format": "evledger-proof/1"}')
    assert run(str(path)) == 1
    assert "duplicate key 'format'" in capsys.readouterr().out
    assert run(str(tmp_path / "missing.json")) == 2
    assert "evledger verify: error:" in capsys.readouterr().err


# --- pinning the ledger's published verifier keys (--key) ---------------------------------------


@pytest.fixture(scope="module")
def impostor(tmp_path_factory):
    """A whole bundle forged by someone who runs this software with a ledger of the same name
    ("acme", so the same origin) under their own SM2 key, anchored on their own chain."""
    service = LedgerService(tmp_path_factory.mktemp("impostor") / "data", settings=SEQ)
    try:
        fake = service.create_ledger("acme")
        ingest(fake, 0, COUNT)
        worker = AnchorWorker(service, Web3Chain.in_process(), FAST)
        worker.anchor_now("acme")
        assert worker.wait_confirmed("acme", COUNT, timeout=30) is not None
        yield as_json(build_bundle(fake, TAMPERED))
    finally:
        service.close()


def test_a_whole_forged_bundle_passes_offline_unless_the_key_is_pinned(good, impostor):
    real_key = good["checkpoint"]["verifier_key"]
    assert impostor["checkpoint"]["verifier_key"] != real_key and impostor["origin"] == good["origin"]
    alone = verify_bundle(impostor)  # every link holds: only an outside key or the chain tells
    assert_verdict_1(alone)
    assert "the signing key was not pinned: pass --key" in alone.verdict_text
    assert "the bundle's own key (pass --key to pin it)" in alone.check("checkpoint").detail
    pinned = verify_bundle(impostor, trusted_keys=[real_key])
    assert pinned.verdict == 2 and failed(pinned) == {"checkpoint"}
    assert "not one of the 1 trusted key(s) given (--key)" in pinned.check("checkpoint").detail
    genuine = verify_bundle(good, trusted_keys=[impostor["checkpoint"]["verifier_key"], real_key])
    assert_verdict_1(genuine)  # any of several keys (a ledger that rotated its key)
    assert "with a trusted key (--key)" in genuine.check("checkpoint").detail
    assert "pass --key" not in genuine.verdict_text


def test_the_command_takes_keys_and_key_files_and_refuses_what_is_not_a_key(good, impostor, tmp_path, capsys):
    real_key = good["checkpoint"]["verifier_key"]
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(impostor))
    assert run(str(forged)) == 0
    capsys.readouterr()
    assert run(str(forged), keys=[real_key]) == 1
    assert "✘ checkpoint:" in capsys.readouterr().out
    keys = tmp_path / "acme.keys"
    keys.write_text(f"# acme's published verifier keys\n\n{real_key}\n")
    genuine = tmp_path / "genuine.json"
    genuine.write_text(json.dumps(good))
    assert run(str(genuine), key_files=[str(keys)]) == 0
    assert "verifies with a trusted key (--key)" in capsys.readouterr().out
    assert run(str(forged), key_files=[str(keys)]) == 1
    capsys.readouterr()
    assert run(str(genuine), keys=["evledger/acme+00000000+AAAA"]) == 2
    assert "--key: 'evledger/acme+00000000+AAAA' is not a verifier key" in capsys.readouterr().err
    keys.write_text(f"{real_key}\nnot-a-key\n")
    assert run(str(genuine), key_files=[str(keys)]) == 2
    assert f"{keys} line 2: 'not-a-key' is not a verifier key" in capsys.readouterr().err
    assert run(str(genuine), key_files=[str(tmp_path / "missing.keys")]) == 2
    assert "evledger verify: error:" in capsys.readouterr().err
    keys.write_text("# nothing published yet\n\n")  # an empty download must not mean "trust the bundle"
    assert run(str(forged), key_files=[str(keys)]) == 2
    assert f"{keys} holds no verifier keys" in capsys.readouterr().err
    keys.write_bytes(b"\xef\xbb\xbf" + real_key.encode() + b"\r\n")  # a BOM and CRLF, as Notepad saves it
    assert run(str(genuine), key_files=[str(keys)]) == 0
    capsys.readouterr()
    keys.write_bytes(b"\xff\xfe" + real_key.encode("utf-16-le"))
    assert run(str(genuine), key_files=[str(keys)]) == 2
    assert f"{keys} is not UTF-8 text" in capsys.readouterr().err


def test_the_contract_pin_refuses_an_anchor_in_another_registry(good, impostor, tmp_path, capsys):
    # Both ledgers anchored on chains of their own, but to the same deterministic address:
    # the pin compares the address, and --rpc (test_anchor_on_a_real_chain) the chain.
    address = good["anchor"]["contract"]
    assert_verdict_1(verify_bundle(good, contract=address.lower()))
    elsewhere = copy.deepcopy(good)
    elsewhere["anchor"]["contract"] = "0x" + "ab" * 20
    refused = verify_bundle(elsewhere, contract=address)
    assert refused.verdict == 2 and failed(refused) == {"anchor"}
    assert f"not the registry given (--contract {address})" in refused.check("anchor").detail
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(good))
    assert run(str(path), contract="0x1234") == 2
    assert "--contract '0x1234' is not an address" in capsys.readouterr().err


def test_file_and_hash_are_exclusive(tmp_path):
    from proof_api.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["verify", str(tmp_path / "b.json"), "--file", "f", "--hash", "h"])
    assert exc.value.code == 2


# --- the anchor on a real chain (anvil over JSON-RPC) ------------------------------------------


@pytest.mark.skipif(not ANVIL.exists(), reason=f"anvil is missing at {ANVIL}: run `make npm-tools`")
def test_anchor_on_a_real_chain(tmp_path):
    from eth_account import Account
    from web3 import HTTPProvider, Web3

    from anchor.chain import deploy_registry
    from evledger_dev.devchain import free_port

    node = Anvil()
    node.start()
    service = None
    try:
        registry = deploy_registry(Web3(HTTPProvider(node.url)), account=Account.from_key(DEV_KEYS[0]))
        chain = Web3Chain.from_rpc(node.url, registry, DEV_KEYS[0], timeout=3)
        service = LedgerService(tmp_path / "data", settings=SEQ)
        ledger = service.create_ledger("acme")
        ingest(ledger, 0, COUNT)
        worker = AnchorWorker(service, chain, FAST)
        worker.anchor_now("acme")
        assert worker.wait_confirmed("acme", COUNT, timeout=30) is not None
        ingest(ledger, COUNT, 2)  # a later checkpoint, never anchored
        bundle = as_json(build_bundle(ledger, 3))
        report = verify_bundle(bundle, file_bytes=evidence_file(3), rpc_url=node.url)
        assert_verdict_1(report, file_checked=True, on_chain=True)
        assert f"chain 31337 at {node.url}: getAnchor(" in report.check("anchor_on_chain").detail
        assert "pass --rpc" not in report.verdict_text
        # Read from whatever contract the bundle names, the root is vouched for only with the
        # registry's published address (or the key) pinned.
        assert "neither the signing key nor the contract was pinned" in report.verdict_text
        pinned = verify_bundle(bundle, rpc_url=node.url, contract=registry)
        assert_verdict_1(pinned, on_chain=True)
        assert pinned.verdict_text == "the record is in the anchored tree, unaltered (anchor on chain ✔)"

        # Every anchor field, tampered, is caught on chain (offline they are informational).
        for what, path, tampered in field_mutations(bundle):
            if len(path) == 2 and path[0] == "anchor":
                report = verify_bundle(tampered, rpc_url=node.url)
                assert report.verdict == 2, f"{what} not detected on chain:\n{format_report(report)}"
                assert failed(report) & {"format", "anchor", "anchor_on_chain"}, what

        # An anchor claimed for a checkpoint the contract does not hold.
        unanchored = as_json(build_bundle(ledger, 3, size=COUNT + 2, require_anchor=False))
        claimed = {**unanchored, "anchor": bundle["anchor"]}
        assert verify_bundle(claimed).verdict == 1  # offline the claim cannot be told apart
        report = verify_bundle(claimed, rpc_url=node.url)
        assert report.verdict == 2 and failed(report) == {"anchor_on_chain"}
        assert f"holds no anchor of size {COUNT + 2}" in report.check("anchor_on_chain").detail

        # A chain that cannot be reached proves nothing: ②, saying why.
        report = verify_bundle(bundle, rpc_url=f"http://127.0.0.1:{free_port()}")
        assert report.verdict == 2 and failed(report) == {"anchor_on_chain"}
        assert "could not read the chain id" in report.check("anchor_on_chain").detail
    finally:
        if service is not None:
            service.close()
        node.stop()


# --- the verifier stands alone ------------------------------------------------------------------


def test_the_verifier_loads_none_of_the_services_dependencies():
    """A court installs the verifier, not the ledger: importing every module of it, and running
    a check, loads no numpy, numba, rocksdict, web3, fastapi or orjson."""
    import subprocess
    import sys

    script = ("import sys\n"
              "import evledger_verify, evledger_verify.chain, evledger_verify.leaf, evledger_verify.verify\n"
              "evledger_verify.verify.verify_bundle({'format': 'evledger-proof/1'})\n"
              "evledger_verify.chain.ledger_key('evledger/acme')\n"
              "print('\\n'.join(sorted({m.split('.')[0] for m in sys.modules})))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    assert "evledger_verify" in loaded
    assert loaded.isdisjoint({"numpy", "numba", "rocksdict", "web3", "eth_utils", "fastapi", "orjson", "ingest",
                              "anchor", "proof_api", "jinja2", "merkle"}), sorted(loaded)


def test_get_anchor_answers_of_the_wrong_shape_are_refused():
    from evledger_verify.chain import decode_get_anchor, get_anchor_call

    key = bytes(range(32))
    call = get_anchor_call(key, 7)
    assert call[:4].hex() == "6a9fc0b2" and call[4:36] == key and int.from_bytes(call[36:], "big") == 7
    assert decode_get_anchor(7, bytes(96)) is None  # zeros: the contract holds no such anchor
    good = b"\x11" * 32 + (5).to_bytes(32, "big") + (1700000000).to_bytes(32, "big")
    found = decode_get_anchor(7, good)
    assert (found.size, found.root, found.block_number, found.timestamp) == (7, b"\x11" * 32, 5, 1700000000)
    for bad in (good[:64], good + bytes(32), b"\x11" * 32 + (2**64).to_bytes(32, "big") + bytes(32)):
        with pytest.raises(ValueError, match="not \\(bytes32, uint64, uint64\\)"):
            decode_get_anchor(7, bad)


@pytest.fixture
def raw_server():
    """A TCP server on 127.0.0.1 that answers every connection with the given bytes (again and
    again with `repeat`, until the client goes), keeps it open `hold` seconds, then closes."""
    import socket
    import threading

    servers = []

    def start(answer: bytes, hold: float = 0.0, repeat: bool = False) -> str:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        servers.append(sock)

        def serve():
            while True:
                try:
                    conn, _ = sock.accept()
                except OSError:
                    return
                with conn:
                    conn.settimeout(0.5)
                    try:
                        request = conn.recv(65536)
                        while b"\r\n\r\n" in request and not request.endswith(b"}"):  # the body follows
                            request += conn.recv(65536)
                    except OSError:
                        pass
                    try:
                        conn.sendall(answer)
                        while repeat:
                            conn.sendall(answer)
                        time.sleep(hold)
                    except OSError:  # the client went away
                        pass

        threading.Thread(target=serve, daemon=True).start()
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    yield start
    for sock in servers:
        sock.close()


@pytest.mark.parametrize("answer, said", [
    (b"HELLO\r\n\r\n", "BadStatusLine"),  # not HTTP at all (an SSH port, say)
    (b"HTTP/1.1 307 Temporary Redirect\r\nLocation: ftp://127.0.0.1/x\r\nContent-Length: 0\r\n\r\n", "HTTP 307"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 32\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"result\"", "not JSON-RPC"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 41\r\n\r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":\"0x0x1\"}", "not a hex"),
], ids=["not-http", "redirect", "truncated", "loose-hex"])
def test_a_json_rpc_endpoint_that_answers_nonsense_is_an_rpc_error(raw_server, answer, said):
    from evledger_verify.chain import JsonRpc, RpcError

    with pytest.raises(RpcError, match=said):
        JsonRpc(raw_server(answer), timeout=5).chain_id()


def test_the_command_line_reports_a_non_http_endpoint_in_one_line(raw_server, capsys):
    from proof_api.cli import main

    code = main(["anchor", "verify", "acme", "1", "00" * 32, "--rpc", raw_server(b"HELLO\r\n\r\n"),
                 "--contract", "0x" + "11" * 20])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "evledger anchor verify: error: cannot read the anchor from http://127.0.0.1:" in err


@pytest.mark.parametrize("answer, repeat", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{", False),  # part of the body, then nothing
    (b"HTTP/1.1 100 Continue\r\n\r\n", True),  # interim answers without end
], ids=["stalled-body", "endless-100-continue"])
def test_a_json_rpc_exchange_has_a_deadline_in_all(raw_server, answer, repeat):
    from evledger_verify.chain import JsonRpc, RpcError

    started = time.monotonic()
    with pytest.raises(RpcError, match="no complete answer within 3 s|timed out"):
        JsonRpc(raw_server(answer, hold=8, repeat=repeat), timeout=1).chain_id()
    assert time.monotonic() - started < 10


def test_what_an_endpoint_says_is_cut_short_and_numbers_are_uint64(raw_server):
    from evledger_verify.chain import JsonRpc, RpcError

    def answering(result_or_error: bytes) -> str:
        body = b'{"jsonrpc":"2.0","id":1,' + result_or_error + b"}"
        return raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    with pytest.raises(RpcError) as failed:
        JsonRpc(answering(b'"error":{"message":"' + b"x" * 2_000_000 + b'"}'), timeout=5).chain_id()
    assert len(str(failed.value)) < 300
    with pytest.raises(RpcError, match="not a hex uint64") as huge:
        JsonRpc(answering(b'"result":"0x' + b"f" * 4_000_000 + b'"'), timeout=5).chain_id()
    assert len(str(huge.value)) < 300


def test_a_note_of_many_signatures_by_the_key_is_refused_before_any_sm2_check(good, monkeypatch):
    """Each SM2 check is ~16 ms of pure Python: thousands of signature lines by the key would
    cost minutes of a public verifier's CPU. They are counted first."""
    import evledger_verify.note as note

    calls = []
    monkeypatch.setattr(note, "sm2_verify", lambda *a: calls.append(a) or False)
    line = good["checkpoint"]["note"].split("\n\n")[1].split("\n")[0] + "\n"  # the ledger's line
    tampered = replaced(good, ("checkpoint", "note"), good["checkpoint"]["note"] + line * 5000)
    report = verify_bundle(tampered)
    assert report.verdict == 2 and "has 5001 signatures by key" in report.check("checkpoint").detail
    assert calls == []


def test_anchored_events_read_logs_as_the_js_verifier_does():
    """Only well-formed Anchored logs of the contract count; "removed" must be absent, null or
    false; hex must start with "0x" (either case after it). verifier/js/src/verify.mjs reads
    receipts by the same rules."""
    from evledger_verify.chain import ANCHORED_EVENT, anchored_events, keccak256

    contract = "0x" + "ab" * 20
    good = {"address": contract, "topics": ["0x" + keccak256(ANCHORED_EVENT.encode()).hex(), "0x" + "11" * 32,
                                            "0x" + "00" * 31 + "05", "0x" + "00" * 12 + "cd" * 20],
            "data": "0x" + "22" * 32}
    assert anchored_events({"logs": [good]}, contract) == [("0x" + "11" * 32, 5, "22" * 32, "0x" + "cd" * 20)]
    for removed in (None, False):
        assert len(anchored_events({"logs": [{**good, "removed": removed}]}, contract)) == 1
    for removed in (True, [], 0, "", "false"):
        assert anchored_events({"logs": [{**good, "removed": removed}]}, contract) == [], removed
    upper = {**good, "topics": [t.replace("0x", "0X") for t in good["topics"]]}
    assert anchored_events({"logs": ["junk", 7, None, upper, {**good, "data": "0X" + "22" * 32}]}, contract) == []
    assert anchored_events({"logs": "junk"}, contract) == [] and anchored_events({}, contract) == []
