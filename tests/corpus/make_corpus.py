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

import json
import shutil
import tempfile
from pathlib import Path

from anchor.chain import Web3Chain
from anchor.worker import AnchorWorker
from evledger_verify.verify import load_bundle, verify_bundle
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

    def add(self, name: str, text: str, verdict: int | None, kind: str = "bundle", **given) -> None:
        number = len(self.cases) + 1
        path = f"{'bundles' if kind == 'bundle' else 'certificates'}/{number:03d}.{'json' if kind == 'bundle' else 'html'}"
        (self.out / path).write_text(text, encoding="utf-8")
        bundle_text = text if kind == "bundle" else _embedded(text)
        file_bytes = (self.out / given["file"]).read_bytes() if "file" in given else None
        try:
            report = verify_bundle(load_bundle(bundle_text), file_bytes, given.get("hash"), None, given.get("keys"),
                                   given.get("contract"))
        except ValueError:  # unreadable: the format check fails, as load_bundle's callers report it
            report = None
        got = 2 if report is None else report.verdict
        if verdict is None:  # an informational field: 1 while the bundle stays well-formed
            verdict = 1 if report is not None and report.check("format").ok else 2
        assert got == verdict, f"{name}: the reference verifier gives {got}, want {verdict}"
        failed = ["format"] if report is None else [c.name for c in report.checks if c.ok is False]
        self.cases.append({"name": name, "kind": kind, "input": path, **given,
                           "expected": {"verdict": verdict, "failed": failed}})


def _embedded(html: str) -> str:
    from proof_api.certificate import _embedded_scripts
    return _embedded_scripts(html)[0]


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
    # Certificates: as issued, the embedded bundle edited, the readable text edited.
    cert = render_certificate(good)
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
    (out / "cases.json").write_text(json.dumps({"format": "evledger-tamper-corpus/1", "cases": c.cases},
                                               ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(c.cases)} cases to {out}")


if __name__ == "__main__":
    main()
