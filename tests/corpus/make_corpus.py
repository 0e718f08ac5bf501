"""Writes the tamper corpus (tests/corpus/): bundles, certificates and files with the verdict
and failing checks each must give, which every verifier (the CLI, POST /v1/verify, the
standalone distribution, the JS verifier under Node and the page in Chromium) is held to by
tests/test_corpus.py. Run from the repository root when the bundle format changes:

    .venv/bin/python -m tests.corpus.make_corpus

Ledgers are built in process (SM3 and SHA-256, anchored on the in-process chain), the
bundles are mutated with the generators of tests/test_verify.py, and the expected verdict is
set by construction: 1 for the good bundles, 2 for every tampered one except where
docs/proof-bundle.md says a field is informational offline (issued_at, and the anchor's
fields other than ledger_key, checked only with --rpc). The failing checks recorded are the
reference verifier's, kept so that the others must name the same broken link.

The bundles are evledger-proof/2 as the service issues them: acme's checkpoint is cosigned by
one witness, its later checkpoint by two. Version-1 cases are made from them (no cosignatures
list, format /1, and the note without its cosignature lines unless a case keeps them). A case
may give a witness policy ("witnesses": [witness keys], "witness_threshold": K), passed to every
verifier as --witness and --witness-threshold.
"""
from __future__ import annotations

import base64
import copy
import json
import shutil
import tempfile
from pathlib import Path

from anchor.chain import Web3Chain
from anchor.worker import AnchorWorker
from evledger_verify.certificate import bundle_text_of_file
from evledger_verify.note import EM_DASH
from evledger_verify.verify import (BUNDLE_FORMAT_V1, MAX_BUNDLE_BYTES, MAX_COSIGNATURES, load_bundle, load_trusted_keys,
                                    load_witness_policy, verify_bundle)
from ingest.ledger import LedgerService
from proof_api.bundle import build_bundle
from proof_api.certificate import render_certificate
from tests.test_verify import (COUNT, FAST, OTHER_WITNESS, SEQ, TAMPERED, WITNESS, cosign, evidence_file,
                               field_mutations, forger_mutations, ingest, is_informational)

HERE = Path(__file__).resolve().parent


def build_world(data_dir: Path) -> dict:
    service = LedgerService(data_dir, settings=SEQ)
    try:
        acme, beta = service.create_ledger("acme"), service.create_ledger("beta")
        plain = service.create_ledger("plain", alg="sha256")
        ingest(acme, 0, COUNT)
        ingest(beta, 100, 7)
        ingest(plain, 200, 5)
        unanchored = load_bundle(json.dumps(build_bundle(acme, TAMPERED, require_anchor=False)))
        worker = AnchorWorker(service, Web3Chain.in_process(), FAST)
        for ledger, size in ((acme, COUNT), (beta, 7), (plain, 5)):
            worker.anchor_now(ledger.id)
            assert worker.wait_confirmed(ledger.id, size, timeout=30) is not None
        ingest(acme, COUNT, 3)
        worker.anchor_now("acme")
        assert worker.wait_confirmed("acme", COUNT + 3, timeout=30) is not None
        # acme's checkpoint cosigned by one witness, its later one by two (in this order)
        for witness, size in ((WITNESS, COUNT), (WITNESS, COUNT + 3), (OTHER_WITNESS, COUNT + 3)):
            cosign(acme, witness, size)
        as_json = lambda b: load_bundle(json.dumps(b))  # noqa: E731
        return {"acme": {seq: as_json(build_bundle(acme, seq)) for seq in range(COUNT)},
                "acme_later": as_json(build_bundle(acme, TAMPERED, size=COUNT + 3)),
                "beta": as_json(build_bundle(beta, 3)), "plain": as_json(build_bundle(plain, 2)),
                "unanchored": unanchored}
    finally:
        service.close()


class Corpus:
    def __init__(self, out: Path):
        self.out, self.cases = out, []

    def add(self, name: str, text: str | bytes, verdict: int | None, kind: str = "bundle", **given) -> None:
        """A case: the file (a bundle's text, or a certificate's, written byte for byte), what
        a court gives with it, and the verdict it must get."""
        number = len(self.cases) + 1
        path = f"{'bundles' if kind == 'bundle' else 'certificates'}/{number:03d}.{'json' if kind == 'bundle' else 'html'}"
        raw = text.encode() if isinstance(text, str) else text
        (self.out / path).write_bytes(raw)
        file_bytes = (self.out / given["file"]).read_bytes() if "file" in given else None
        keys = given.get("keys")
        if "key_file" in given:  # read as evledger-verify --key-file reads one
            keys = load_trusted_keys([], [str(self.out / given["key_file"])])
        policy = load_witness_policy(given.get("witnesses", []), given.get("witness_threshold"))
        try:  # as evledger-verify reads a file: a certificate's embedded bundle, then strictly
            report = verify_bundle(load_bundle(bundle_text_of_file(raw)), file_bytes, given.get("hash"), None,
                                   keys, given.get("contract"), policy)
        except ValueError:  # unreadable (CertificateError, StrictJSONError): the format check fails
            report = None
        got = 2 if report is None else report.verdict
        if verdict is None:  # an informational field: 1 while the bundle stays well-formed
            verdict = 1 if report is not None and report.check("format").ok else 2
        assert got == verdict, f"{name}: the reference verifier gives {got}, want {verdict}"
        failed = ["format"] if report is None else [c.name for c in report.checks if c.ok is False]
        self.cases.append({"name": name, "kind": kind, "input": path, **given,
                           "expected": {"verdict": verdict, "failed": failed}})


def add_byte_cases(c: Corpus, good: dict, text) -> None:
    """What two parsers could read two ways: each must be refused (or read) alike by every verifier."""
    body = text(good)
    c.add("a byte order mark before the bundle", b"\xef\xbb\xbf" + body.encode(), 2)
    c.add("invalid UTF-8 in a string", body.encode().replace(b'"e5"', b'"e\xff5"', 1), 2)
    c.add("an escaped lone surrogate", body.replace('"e5"', '"e\\ud8005"', 1), 2)
    c.add("an escaped surrogate pair, not what the leaf holds", body.replace('"e5"', '"e\\ud83d\\ude005"', 1), 2)
    c.add("a number written -0", body.replace(f'"index": {TAMPERED}', '"index": -0', 1), 2)
    c.add("a number written with an exponent", body.replace(f'"index": {TAMPERED}', '"index": 5e0', 1), 2)
    c.add("a nested key twice", body.replace('"business_type": ', '"business_type": "x", "business_type": ', 1), 2)
    c.add("nesting 40 deep", body[:body.rindex("}")] + ', "deep": ' + "[" * 40 + "]" * 40 + "}", 2)
    c.add("leaf.index 2**53 + 1", text({**good, "leaf": {**good["leaf"], "index": 2**53 + 1}}), 2)
    c.add("leaf.index 2**64 - 1", text({**good, "leaf": {**good["leaf"], "index": 2**64 - 1}}), 2)
    c.add("anchor.chain_id 2**64", text({**good, "anchor": {**good["anchor"], "chain_id": 2**64}}), 2)
    c.add("anchor.block_time past year 9999", text({**good, "anchor": {**good["anchor"], "block_time": 10**13}}), 2)
    c.add("anchor.block_time at the end of year 9999",
          text({**good, "anchor": {**good["anchor"], "block_time": 253402300799}}), 1)
    # A version-1 bundle: its verifiers read a cosignature line's name without checking the line.
    v1 = as_v1(good)
    note = v1["checkpoint"]["note"]
    blob = base64.b64encode(bytes(68)).decode()
    for label, name in (("a well-formed witness", "witness.example/w1"),
                        ("a name with an information separator", "wit\x1cness"),
                        ("a name with a no-break space", "wit\xa0ness"), ("a name with a BOM", "wit\ufeffness"),
                        ("a name with a next-line character", "wit\x85ness")):
        line = f"{EM_DASH} {name} {blob}\n"
        c.add(f"a cosignature line by {label}", text({**v1, "checkpoint": {**v1["checkpoint"], "note": note + line}}),
              1 if label == "a well-formed witness" else 2)
    c.add("a v2 note with a cosignature line its list leaves out",
          text(with_note(good, *note_parts(good)[:2], [*note_parts(good)[2], f"{EM_DASH} witness.example/w1 {blob}\n"])), 2)
    exact = body[:-1] + " " * (MAX_BUNDLE_BYTES - len(body.encode())) + "}"
    assert len(exact.encode()) == MAX_BUNDLE_BYTES
    c.add("a bundle of exactly 1 MiB", exact, 1)
    c.add("a bundle one byte over 1 MiB", exact[:-1] + " }", 2)


def note_parts(bundle: dict) -> tuple[str, str, list[str]]:
    """(body, the ledger's signature line, [the cosignature lines]) of a bundle's note, each line
    with its newline; the ledger's line comes first."""
    note = bundle["checkpoint"]["note"]
    sep = note.rindex("\n\n")
    ledger_line, *cosignature_lines = [line + "\n" for line in note[sep + 2:-1].split("\n")]
    return note[:sep + 1], ledger_line, cosignature_lines


def with_note(bundle: dict, body: str, ledger_line: str, lines: list[str], cosignatures: list | None = None) -> dict:
    """The bundle with its note made of these lines (and, given, this cosignatures list)."""
    out = copy.deepcopy(bundle)
    out["checkpoint"]["note"] = f"{body}\n{ledger_line}{''.join(lines)}"
    if cosignatures is not None:
        out["cosignatures"] = cosignatures
    return out


def as_v1(bundle: dict, keep_lines: bool = False) -> dict:
    """The version-1 bundle of a version-2 one: no cosignatures list, and the note without its
    cosignature lines unless `keep_lines` (a v1 note may carry them; nothing lists them)."""
    body, ledger_line, lines = note_parts(bundle)
    out = with_note(bundle, body, ledger_line, lines if keep_lines else [])
    del out["cosignatures"]
    return {"format": BUNDLE_FORMAT_V1, **{k: v for k, v in out.items() if k != "format"}}


def flipped_line(line: str, at: int) -> str:
    """A signature line with byte `at` of its blob (key ID, then the timestamp, then r || s) flipped."""
    dash, name, blob = line.rstrip("\n").split(" ")
    raw = bytearray(base64.b64decode(blob))
    raw[at] ^= 0x01
    return f"{dash} {name} {base64.b64encode(bytes(raw)).decode()}\n"


def add_witness_cases(c: Corpus, world: dict, text) -> None:
    """Cosignatures (evledger-proof/2 lists them; the note carries them) and the witness policy a
    court gives: each verifier must check the list against the note and count the keys given."""
    one, two = world["acme"][TAMPERED], world["acme_later"]  # cosigned by WITNESS; by both
    w, o = WITNESS.verifier_key, OTHER_WITNESS.verifier_key
    assert [e["witness_key"] for e in one["cosignatures"]] == [w]
    first = two["cosignatures"][0]["witness_key"]  # the lines come in key ID order
    assert sorted(e["witness_key"] for e in two["cosignatures"]) == sorted([w, o])
    body, ledger_line, lines = note_parts(one)
    later_body, later_ledger_line, later_lines = note_parts(two)
    # What a court requires.
    c.add("witnesses: cosigned by one, 1 of 1 required", text(one), 1, witnesses=[w])
    c.add("witnesses: cosigned by two, 2 of 2 required", text(two), 1, witnesses=[w, o])
    c.add("witnesses: cosigned by two, the second one required", text(two), 1, witnesses=[o])
    c.add("witnesses: cosigned by one, 1 of 2 required", text(one), 1, witnesses=[w, o], witness_threshold=1)
    c.add("witnesses: cosigned by one, its key named twice", text(one), 1, witnesses=[w, w])
    c.add("witnesses: cosigned by one, another witness required", text(one), 2, witnesses=[o])
    c.add("witnesses: cosigned by one, 2 of 2 required", text(one), 2, witnesses=[w, o], witness_threshold=2)
    c.add("witnesses: cosigned by one, both required by default", text(one), 2, witnesses=[o, w])
    # The note's cosignature lines and the list, tampered.
    for what, at in (("its key ID", 0), ("its timestamp", 4 + 7), ("its r", 4 + 8 + 5), ("its s", 4 + 8 + 63)):
        tampered = with_note(one, body, ledger_line, [flipped_line(lines[0], at)])
        c.add(f"cosignature: a byte of {what} flipped", text(tampered), 2)
        c.add(f"cosignature: a byte of {what} flipped, its witness required", text(tampered), 2, witnesses=[w])
    entry = one["cosignatures"][0]
    for what, changed in (("timestamp +1", {**entry, "timestamp": entry["timestamp"] + 1}),
                          ("timestamp -1", {**entry, "timestamp": entry["timestamp"] - 1}),
                          ("another witness's key", {**entry, "witness_key": o}),
                          ("the ledger's key", {**entry, "witness_key": one["checkpoint"]["verifier_key"]})):
        c.add(f"cosignatures[0] with {what}", text({**copy.deepcopy(one), "cosignatures": [changed]}), 2)
    c.add("cosignatures: an entry dropped", text({**copy.deepcopy(two), "cosignatures": two["cosignatures"][:1]}), 2)
    c.add("cosignatures: an entry dropped, the other witness required",
          text({**copy.deepcopy(two), "cosignatures": two["cosignatures"][1:]}), 2, witnesses=[o if first == w else w])
    c.add("cosignatures: the entries swapped", text({**copy.deepcopy(two), "cosignatures": two["cosignatures"][::-1]}), 2)
    c.add("cosignatures: an entry listed twice", text({**copy.deepcopy(one), "cosignatures": one["cosignatures"] * 2}), 2)
    c.add("cosignature: a line removed from the note, the list kept",
          text(with_note(two, later_body, later_ledger_line, later_lines[:1])), 2)
    c.add("cosignature: the note's lines swapped", text(with_note(two, later_body, later_ledger_line, later_lines[::-1])),
          2)
    c.add("cosignature: a line doubled in the note", text(with_note(one, body, ledger_line, lines * 2)), 2)
    c.add("cosignature: a line doubled in the note and in the list, no witness required",
          text(with_note(one, body, ledger_line, lines * 2, one["cosignatures"] * 2)), 2)
    c.add("cosignature: the line and its entry removed", text(with_note(one, body, ledger_line, [], [])), 1)
    c.add("cosignature: the line and its entry removed, its witness required",
          text(with_note(one, body, ledger_line, [], [])), 2, witnesses=[w])
    # A forger's: the witness's genuine cosignature of another checkpoint, listed as it is.
    c.add("cosignature: the witness's line on a later checkpoint", text(with_note(
        one, body, ledger_line, later_lines[:1], two["cosignatures"][:1])), 2)
    c.add("cosignature: the witness's line on a later checkpoint, its witness required", text(with_note(
        one, body, ledger_line, later_lines[:1], two["cosignatures"][:1])), 2, witnesses=[first])
    # Far from now, and genuine: the time is the witness's statement, any from 1 to 2**63-1.
    far = 10**13  # the year 318857, past what a JavaScript Date holds
    c.add("cosignature: genuine, timestamped in the year 318857", text(with_note(
        one, body, ledger_line, [WITNESS.cosign(body, far)], [{"witness_key": w, "timestamp": far}])), 1, witnesses=[w])
    last = 2**63 - 1  # the latest time a cosignature may carry: printed as the number
    c.add("cosignature: genuine, timestamped 2**63-1", text(with_note(
        one, body, ledger_line, [WITNESS.cosign(body, last)], [{"witness_key": w, "timestamp": last}])), 1, witnesses=[w])
    # The list's fields (the format check).
    for what, value in (("missing", None), ("null", "__null__"), ("an object", {}),
                        (f"{MAX_COSIGNATURES + 1} entries", [entry] * (MAX_COSIGNATURES + 1)),
                        ("an entry that is a list", [[w, entry["timestamp"]]]),
                        ("an entry with an extra key", [{**entry, "extra": 1}]),
                        ("an entry without its timestamp", [{"witness_key": w}]),
                        ("timestamp 0", [{**entry, "timestamp": 0}]), ("timestamp 2**63", [{**entry, "timestamp": 2**63}]),
                        ("timestamp as a string", [{**entry, "timestamp": str(entry["timestamp"])}]),
                        ("timestamp as a bool", [{**entry, "timestamp": True}]),
                        ("an empty witness_key", [{**entry, "witness_key": ""}])):
        tampered = copy.deepcopy(one)
        if value is None:
            del tampered["cosignatures"]
        else:
            tampered["cosignatures"] = None if value == "__null__" else value
        c.add(f"cosignatures {what}", text(tampered), 2)
    c.add("cosignatures of 2**63-1, the largest timestamp", text({**copy.deepcopy(one), "cosignatures": [
        {**entry, "timestamp": 2**63 - 1}]}), 2)  # well-formed, but not the line's time
    # Version 1: read as before; a policy counts the note's lines, which nothing lists.
    c.add("v1 bundle", text(as_v1(one)), 1)
    c.add("v1 bundle, its file", text(as_v1(one)), 1, file="files/acme-5.txt")
    c.add("v1 bundle with a cosignatures list", text({**as_v1(one), "cosignatures": one["cosignatures"]}), 2)
    c.add("v1 bundle, its note cosigned, no witness required", text(as_v1(one, keep_lines=True)), 1)
    c.add("v1 bundle, its note cosigned, its witness required", text(as_v1(one, keep_lines=True)), 1, witnesses=[w])
    c.add("v1 bundle, its note cosigned by two, 2 of 2 required", text(as_v1(two, keep_lines=True)), 1,
          witnesses=[w, o])
    c.add("v1 bundle, its note not cosigned, a witness required", text(as_v1(one)), 2, witnesses=[w])
    c.add("v1 bundle, its note cosigned by one, 2 of 2 required", text(as_v1(one, keep_lines=True)), 2,
          witnesses=[w, o])
    tampered = as_v1(with_note(one, body, ledger_line, [flipped_line(lines[0], 4 + 8 + 5)]), keep_lines=True)
    c.add("v1 bundle, a cosignature byte flipped, no witness required", text(tampered), 1)
    c.add("v1 bundle, a cosignature byte flipped, its witness required", text(tampered), 2, witnesses=[w])
    doubled = as_v1(with_note(one, body, ledger_line, lines * 2), keep_lines=True)
    c.add("v1 bundle, a cosignature line doubled, no witness required", text(doubled), 1)
    c.add("v1 bundle, a cosignature line doubled, its witness required", text(doubled), 2, witnesses=[w])
    c.add("v1 certificate", render_certificate(as_v1(one), embed_font=False), 1, kind="certificate",
          file="files/acme-5.txt")


def add_certificate_cases(c: Corpus, cert: str, world: dict) -> None:
    tag = '<script type="application/json" id="evledger-proof">'
    beta = json.dumps(world["beta"], ensure_ascii=False)
    decoy = f"{tag}\n{beta}\n</script>"
    c.add("certificate, another bundle inside a comment before it", cert.replace(tag, f"<!-- {decoy} -->\n{tag}", 1),
          1, kind="certificate", file="files/acme-5.txt")
    c.add("certificate, another bundle in a script with data-id", cert.replace(
        tag, decoy.replace('id="evledger-proof"', 'data-id="evledger-proof"') + "\n" + tag, 1), 1, kind="certificate")
    c.add("certificate, its id in single quotes", cert.replace(tag, tag.replace('"evledger-proof"', "'evledger-proof'"), 1),
          1, kind="certificate")
    c.add("certificate, its id written with a character reference",
          cert.replace(tag, tag.replace("evledger-proof", "evledger&#45;proof"), 1), 1, kind="certificate")
    c.add("certificate, its type written with a named reference",
          cert.replace(tag, tag.replace("application/json", "application&sol;json"), 1), 1, kind="certificate")
    c.add("certificate, a second bundle after it", cert.replace("</body>", decoy + "\n</body>", 1), 2,
          kind="certificate")
    c.add("certificate, a second bundle with an upper-case tag",
          cert.replace("</body>", decoy.replace("<script", "<SCRIPT") + "\n</body>", 1), 2, kind="certificate")
    c.add("certificate, no embedded bundle", cert.replace(tag, '<script type="application/json" id="other">', 1), 2,
          kind="certificate")
    two_faced = cert.replace(tag, f"<template>{tag}", 1).replace("</script>\n</body>", "</script></template>\n"
                                                                  f"<!-->{decoy}<!-- -->\n</body>", 1)
    assert two_faced.count("<template>") == 1 and "<!-->" in two_faced
    c.add("certificate, one bundle in a template and one after an empty comment", two_faced, 2, kind="certificate")
    c.add("certificate, another bundle after a comment closed by --!>",
          cert.replace(tag, f"<!-- x --!>{decoy}\n{tag}", 1), 2, kind="certificate")
    c.add("certificate, a byte order mark before it", b"\xef\xbb\xbf" + cert.encode(), 1, kind="certificate",
          file="files/acme-5.txt")
    c.add("certificate, after more than 1 MiB of blank lines", "\n" * (MAX_BUNDLE_BYTES + 16) + cert, 1,
          kind="certificate")
    # Python's html.unescape drops the control characters HTML forbids (a browser keeps them);
    # every reader of a certificate's text reads references as html.unescape does.
    c.add("certificate, its id with a control-character reference html.unescape drops",
          cert.replace(tag, tag.replace('id="evledger-proof"', 'id="evledger-proof&#1;"'), 1), 1, kind="certificate")
    c.add("certificate, an attribute with a character reference of 5,000 digits",
          cert.replace(tag, tag.replace("<script ", '<script data-x="&#' + "9" * 5000 + ';" '), 1), 1,
          kind="certificate")
    c.add("certificate, not UTF-8", cert.encode().replace("数据保全证书".encode(), b"\xff\xfe", 1), 2,
          kind="certificate")


def main() -> None:
    out = HERE
    for sub in ("bundles", "certificates", "files"):
        shutil.rmtree(out / sub, ignore_errors=True)
        (out / sub).mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        world = build_world(Path(tmp) / "data")
    good, plain = world["acme"][TAMPERED], world["plain"]
    (out / "files" / "acme-5.txt").write_bytes(evidence_file(TAMPERED))
    (out / "files" / "plain-2.txt").write_bytes(evidence_file(202))
    tampered = bytearray(evidence_file(TAMPERED))
    tampered[len(tampered) // 2] ^= 0x01
    (out / "files" / "acme-5-tampered.txt").write_bytes(bytes(tampered))
    (out / "keys.txt").write_text("".join(f"{world[n]['checkpoint']['verifier_key'] if n != 'acme' else good['checkpoint']['verifier_key']}\n"
                                          for n in ("acme", "beta", "plain")))
    acme_key, beta_key = good["checkpoint"]["verifier_key"], world["beta"]["checkpoint"]["verifier_key"]
    registry = good["anchor"]["contract"]
    text = lambda b: json.dumps(b, ensure_ascii=False, indent=1)  # noqa: E731
    c = Corpus(out)

    # Good bundles, SM3 and SHA-256, with what a court adds.
    c.add("good sm3 bundle", text(good), 1)
    c.add("good sm3 bundle, its file", text(good), 1, file="files/acme-5.txt")
    c.add("good sm3 bundle, its hash", text(good), 1, hash=good["record"]["record"]["content_hash"].upper())
    c.add("good sm3 bundle, key and registry pinned", text(good), 1, file="files/acme-5.txt", keys=[acme_key],
          contract=registry.lower())
    c.add("good sha256 bundle, its file", text(plain), 1, file="files/plain-2.txt")
    c.add("good bundle against a later checkpoint", text(world["acme_later"]), 1)
    for seq in (0, 10):
        c.add(f"good bundle of record {seq}", text(world["acme"][seq]), 1)
    # What a court gives that does not match.
    c.add("a tampered file", text(good), 2, file="files/acme-5-tampered.txt")
    c.add("another file", text(good), 2, file="files/plain-2.txt")
    c.add("a wrong hash", text(good), 2, hash="00" * 32)
    c.add("another ledger's key pinned", text(good), 2, keys=[beta_key])
    c.add("another registry pinned", text(good), 2, contract="0x" + "11" * 20)
    c.add("a bundle with no anchor", text(world["unanchored"]), 2)
    c.add("another ledger's bundle, this ledger's key pinned", text(world["beta"]), 2, keys=[acme_key])
    # The text itself.
    c.add("not JSON", text(good)[:-2], 2)
    c.add("a key twice", text(good).replace('"format"', '"ledger": "acme", "format"', 1)
          .replace('"ledger": "acme",\n "ledger"', '"ledger": "acme",\n "ledger"', 1), 2)
    c.add("a number with a fraction", text(good).replace(f'"index": {TAMPERED}', f'"index": {TAMPERED}.0', 1), 2)
    # Each field of each part altered: one change per field (from the middle of its list: the
    # first, dropping it, is a format failure every time), the whole bundle's first two.
    by_path: dict[tuple, list] = {}
    for what, path, bundle in field_mutations(good):
        by_path.setdefault(path, []).append((what, bundle))
    for path, changes in by_path.items():
        for what, bundle in (changes[:2] if not path else changes[len(changes) // 2:][:1]):
            c.add(f"field {what}", text(bundle), None if is_informational(path) else 2)
    for what, path, bundle in list(field_mutations(plain))[::29]:
        c.add(f"sha256 bundle field {what}", text(bundle), None if is_informational(path) else 2)
    # Forgeries made consistently, as a forger would.
    for n, (what, bundle) in enumerate(forger_mutations(good, world)):
        if not what.startswith("leaf byte") or n % 40 == 0:
            c.add(f"forgery: {what}", text(bundle), 2)
    add_byte_cases(c, good, text)
    # Certificates (without the embedded font, which does not bear on the bundle): as issued,
    # the embedded bundle edited, the readable text edited, and ways to hide a second bundle.
    cert = render_certificate(good, embed_font=False)
    c.add("certificate as issued", cert, 1, kind="certificate", file="files/acme-5.txt")
    root = good["checkpoint"]["root"]
    c.add("certificate, embedded root edited", cert.replace(f'"root": "{root}"', f'"root": "{root[:-1]}0"'
                                                               if root[-1] != "0" else f'"root": "{root[:-1]}1"', 1),
          2, kind="certificate")
    c.add("certificate, embedded record edited", cert.replace('"evidence_id": "e5"', '"evidence_id": "e6"', 1), 2,
          kind="certificate")
    tag = '<script type="application/json" id="evledger-proof">'
    start = cert.index(tag) + len(tag)
    c.add("certificate, embedded bundle of another ledger",
          cert[:start] + "\n" + json.dumps(world["beta"], ensure_ascii=False) + cert[cert.index("</script>", start):],
          2, kind="certificate", keys=[acme_key])
    c.add("certificate, only the readable text edited (the embedded bundle decides)",
          cert.replace("数据保全证书", "数据保全证书（已修改）", 1), 1, kind="certificate")
    add_certificate_cases(c, cert, world)
    add_witness_cases(c, world, text)
    # A key file that shows one key to a reader and hides another in a comment line (behind an
    # information separator, which some line splitters take for a line break).
    (out / "files" / "keys-hidden.txt").write_text(f"# acme's published key \x1c{beta_key}\n{acme_key}\n")
    c.add("another ledger's bundle, its key hidden in a comment of the key file", text(world["beta"]), 2,
          key_file="files/keys-hidden.txt")
    c.add("good sm3 bundle, the key file with a comment line", text(good), 1, key_file="files/keys-hidden.txt")
    # A lone "\r" ends no line: the acme key after it is part of the comment, and no key is left
    # (every command refuses the file: tests/test_corpus.py).
    (out / "files" / "keys-cr.txt").write_bytes(f"# published keys\r{acme_key}\n".encode())
    (out / "cases.json").write_text(json.dumps({"format": "evledger-tamper-corpus/1", "cases": c.cases},
                                               ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(c.cases)} cases to {out}")


if __name__ == "__main__":
    main()
