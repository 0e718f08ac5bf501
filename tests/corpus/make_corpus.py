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
"""
from __future__ import annotations

import base64
import json
import shutil
import tempfile
from pathlib import Path

from anchor.chain import Web3Chain
from anchor.worker import AnchorWorker
from evledger_verify.certificate import bundle_text_of_file
from evledger_verify.note import EM_DASH
from evledger_verify.verify import MAX_BUNDLE_BYTES, load_bundle, load_trusted_keys, verify_bundle
from ingest.ledger import LedgerService
from proof_api.bundle import build_bundle
from proof_api.certificate import render_certificate
from tests.test_verify import (COUNT, FAST, SEQ, TAMPERED, evidence_file, field_mutations, forger_mutations, ingest,
                               is_informational)

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
        try:  # as evledger-verify reads a file: a certificate's embedded bundle, then strictly
            report = verify_bundle(load_bundle(bundle_text_of_file(raw)), file_bytes, given.get("hash"), None,
                                   keys, given.get("contract"))
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
    note = good["checkpoint"]["note"]
    blob = base64.b64encode(bytes(68)).decode()
    for label, name in (("a well-formed witness", "witness.example/w1"),
                        ("a name with an information separator", "wit\x1cness"),
                        ("a name with a no-break space", "wit\xa0ness"), ("a name with a BOM", "wit\ufeffness"),
                        ("a name with a next-line character", "wit\x85ness")):
        line = f"{EM_DASH} {name} {blob}\n"
        c.add(f"a cosignature line by {label}", text({**good, "checkpoint": {**good["checkpoint"], "note": note + line}}),
              1 if label == "a well-formed witness" else 2)
    exact = body[:-1] + " " * (MAX_BUNDLE_BYTES - len(body.encode())) + "}"
    assert len(exact.encode()) == MAX_BUNDLE_BYTES
    c.add("a bundle of exactly 1 MiB", exact, 1)
    c.add("a bundle one byte over 1 MiB", exact[:-1] + " }", 2)


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
