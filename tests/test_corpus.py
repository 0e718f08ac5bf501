"""One tamper corpus (tests/corpus/, written by tests/corpus/make_corpus.py), every verifier
agrees: `evledger verify` (the CLI), `POST /v1/verify` on a real `evledger serve`, the
standalone distribution's `evledger-verify` installed in a venv of its own, the JS verifier
under Node, and the same JS built into the verifier page, run in headless Chromium. Each must
give every case its expected verdict and name the same failing checks, with what a court gives
alongside: the file or its hash, the published keys, the registry, and the witnesses whose
cosignatures it requires (--witness, --witness-threshold). The table (case,
expected, each verifier's verdict) is printed by the last test."""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from evledger_verify.certificate import CertificateError, bundle_text_of_file
from evledger_verify.verify import load_trusted_keys
from tests.api_helpers import evledger_serve
from tests.browser import DevTools, needs_chromium

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "corpus"
CASES = json.loads((CORPUS / "cases.json").read_text(encoding="utf-8"))["cases"]
JS = ROOT / "verifier" / "js"
PAGE = JS / "dist" / "verify.html"
RESULTS: dict[str, dict[str, tuple[int, list[str]]]] = {}  # verifier -> case -> (verdict, failed checks)
_FAILED_LINE = re.compile(r"^\u2718 ([a-z ]+):", re.M)


def expected(case) -> tuple[int, list[str]]:
    return case["expected"]["verdict"], sorted(case["expected"]["failed"])


def sm3_hex(data: bytes) -> str:
    from evledger_verify.verify import sm3
    return sm3(data).hex()


def command_args(case, bundle: Path) -> list[str]:
    args = [str(bundle)]
    if "file" in case:
        args += ["--file", str(CORPUS / case["file"])]
    if "hash" in case:
        args += ["--hash", case["hash"]]
    for key in case.get("keys", []):
        args += ["--key", key]
    if "key_file" in case:
        args += ["--key-file", str(CORPUS / case["key_file"])]
    if "contract" in case:
        args += ["--contract", case["contract"]]
    for key in case.get("witnesses", []):
        args += ["--witness", key]
    if "witness_threshold" in case:
        args += ["--witness-threshold", str(case["witness_threshold"])]
    return args


def read_report(done: subprocess.CompletedProcess) -> tuple[int, list[str]]:
    assert done.returncode in (0, 1), done.stdout + done.stderr
    failed = sorted(name.replace(" ", "_") for name in _FAILED_LINE.findall(done.stdout))
    return (1 if done.returncode == 0 else 2), failed


def run_commands(name: str, command: list[str], tmp_path: Path) -> None:
    def one(case):
        # The file as the court holds it, bundle or certificate: each verifier reads it itself.
        done = subprocess.run([*command, *command_args(case, CORPUS / case["input"])], capture_output=True,
                              text=True, timeout=120)
        return case["name"], read_report(done)

    with ThreadPoolExecutor(4) as pool:
        RESULTS[name] = dict(pool.map(one, CASES))
    assert_agrees(name)


def assert_agrees(name: str) -> None:
    wrong = [f"{c['name']}: want {expected(c)}, got {RESULTS[name].get(c['name'])}" for c in CASES
             if RESULTS[name].get(c["name"]) != expected(c)]
    assert wrong == [], f"{name} disagrees on {len(wrong)} of {len(CASES)} cases:\n" + "\n".join(wrong[:20])


def test_the_corpus_covers_what_it_must():
    names = " | ".join(c["name"] for c in CASES)
    assert len(CASES) >= 100
    for needed in ("good sm3 bundle", "good sha256 bundle", "forgery: note signature byte", "another ledger's",
                   "another ledger's key pinned", "another registry pinned", "certificate, embedded root edited",
                   "a bundle with no anchor", "a key twice", "a byte order mark", "invalid UTF-8",
                   "a bundle one byte over 1 MiB", "another bundle inside a comment", "a cosignature line by",
                   "witnesses: cosigned by one, 1 of 1 required", "witnesses: cosigned by two, 2 of 2 required",
                   "witnesses: cosigned by one, 1 of 2 required", "witnesses: cosigned by one, another witness required",
                   "witnesses: cosigned by one, 2 of 2 required", "cosignature: a byte of its r flipped",
                   "cosignatures[0] with timestamp +1", "cosignatures: an entry dropped",
                   "cosignatures[0] with another witness's key", "cosignature: a line removed from the note",
                   "v1 bundle, its note cosigned, its witness required",
                   "v1 bundle, its note not cosigned, a witness required"):
        assert needed in names, needed
    for part in ("leaf", "inclusion", "checkpoint", "anchor", "record"):
        assert any(c["name"].startswith(f"field {part}.") and c["expected"]["verdict"] == 2 for c in CASES), part
    assert {c["expected"]["verdict"] for c in CASES} == {1, 2}
    for version in ("evledger-proof/1", "evledger-proof/2"):  # both formats are read, good and bad
        verdicts = {c["expected"]["verdict"] for c in CASES if c["kind"] == "bundle"
                    and f'"format": "{version}"' in (CORPUS / c["input"]).read_text(encoding="utf-8", errors="replace")}
        assert verdicts == {1, 2}, version
    assert any(c["expected"]["failed"] == ["witnesses"] for c in CASES if "witnesses" in c)


def test_the_cli_gives_every_expected_verdict(tmp_path):
    run_commands("cli", [sys.executable, "-m", "proof_api.cli", "verify"], tmp_path)


def test_the_standalone_distribution_gives_every_expected_verdict(standalone_verifier, tmp_path):
    run_commands("standalone", [str(standalone_verifier / "bin" / "evledger-verify")], tmp_path)


def test_post_verify_gives_every_expected_verdict(tmp_path):
    results = {}
    with evledger_serve(tmp_path / "data") as (_, base, _admin), httpx.Client(base_url=base, timeout=60) as http:
        for case in CASES:
            try:  # a certificate: the client takes its bundle out, as evledger-verify does
                raw = bundle_text_of_file((CORPUS / case["input"]).read_bytes())
            except CertificateError:
                results[case["name"]] = (2, ["format"])  # no bundle to send: the format fails, as there
                continue
            raw = raw.encode() if isinstance(raw, str) else raw
            extra = {}
            if "file" in case:  # the API takes the file's SM3, computed by the court
                extra["content_hash"] = sm3_hex((CORPUS / case["file"]).read_bytes())
            if "hash" in case:
                extra["content_hash"] = case["hash"]
            if "keys" in case:
                extra["verifier_keys"] = case["keys"]
            if "key_file" in case:  # the client reads the file as evledger-verify --key-file does
                extra["verifier_keys"] = load_trusted_keys([], [str(CORPUS / case["key_file"])])
            if "contract" in case:
                extra["contract"] = case["contract"]
            if "witnesses" in case:
                extra["witness_keys"] = case["witnesses"]
            if "witness_threshold" in case:
                extra["witness_threshold"] = case["witness_threshold"]
            # The bundle's text as it is (a key twice stays twice), inside the request.
            body = b'{"bundle":' + raw + b"".join(b"," + json.dumps(k).encode() + b":" + json.dumps(v).encode()
                                                   for k, v in extra.items()) + b"}"
            answer = http.post("/v1/verify", content=body, headers={"content-type": "application/json"})
            if (answer.status_code, answer.json().get("error", {}).get("code")) in ((400, "malformed_json"),
                                                                                (413, "body_too_large")):
                # Not JSON at all, or over the bundle limit: the request is refused, which is the
                # format failing (the verifiers say so as a failed format check).
                results[case["name"]] = (2, ["format"])
                continue
            assert answer.status_code == 200, (case["name"], answer.text[:500])
            report = answer.json()
            failed = [c["name"] for c in report["checks"] if c["ok"] is False]
            if "file" in case:  # the file reached the API as its SM3: its check is the hash check
                failed = ["file" if name == "content_hash" else name for name in failed]
            results[case["name"]] = (report["verdict"], sorted(failed))
    RESULTS["api"] = results
    assert_agrees("api")


def node_results() -> dict:
    node = shutil.which("node")
    assert node, "node is not on PATH (make test installs the npm tools with it)"
    done = subprocess.run([node, str(JS / "src" / "corpus.mjs"), str(CORPUS / "cases.json")], capture_output=True,
                          text=True, timeout=300, cwd=JS)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    return {r["case"]: (r["verdict"], sorted(r["failed"])) for r in lines}


def test_the_js_verifier_under_node_gives_every_expected_verdict():
    RESULTS["node"] = node_results()
    assert_agrees("node")


HARNESS = """<script>
window.__corpus = (async () => {
  const ev = window.evledgerVerify, cases = JSON.parse(document.getElementById("corpus-cases").textContent);
  const bytes = (b64) => Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
  const results = [];
  for (const c of cases) {
    let file = null;
    if (c.file_b64 !== undefined) {
      const blob = new Blob([bytes(c.file_b64)]);
      file = { sm3: await ev.sm3OfBlob(blob, () => {}, 7), size: blob.size };  // 7-byte chunks: the chunked path
    }
    const keys = c.key_file_text !== undefined ? ev.keysOfText(c.key_file_text) : c.keys ?? null;
    const witnesses = ev.loadWitnessPolicy(c.witnesses ?? [], c.witness_threshold ?? null);
    const report = await ev.verifyFile(bytes(c.input_b64), { file, contentHash: c.hash ?? null,
                                                            trustedKeys: keys, contract: c.contract ?? null, witnesses });
    results.push({ case: c.name, verdict: report.verdict, failed: report.checks.filter((x) => x.ok === false).map((x) => x.name) });
  }
  return JSON.stringify(results);
})();
</script>"""


@needs_chromium
def test_the_verifier_page_in_chromium_gives_every_expected_verdict(tmp_path):
    cases = []
    for case in CASES:
        item = {k: case[k] for k in ("name", "hash", "keys", "contract", "witnesses", "witness_threshold") if k in case}
        item["input_b64"] = base64.b64encode((CORPUS / case["input"]).read_bytes()).decode()  # byte for byte
        if "file" in case:
            item["file_b64"] = base64.b64encode((CORPUS / case["file"]).read_bytes()).decode()
        if "key_file" in case:
            item["key_file_text"] = (CORPUS / case["key_file"]).read_text(encoding="utf-8")
        cases.append(item)
    data = json.dumps(cases).replace("</", "<\\/")
    page = PAGE.read_text(encoding="utf-8").replace(
        "</body>", f'<script type="application/json" id="corpus-cases">{data}</script>\n{HARNESS}\n</body>')
    # The page's Content-Security-Policy runs its own script alone; the harness is a second one.
    page, dropped = re.subn(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page)
    assert dropped == 1
    harness = tmp_path / "harness.html"
    harness.write_text(page, encoding="utf-8")
    with DevTools(tmp_path, harness.as_uri()) as page:
        text = page.evaluate("window.__corpus")
    RESULTS["chromium"] = {r["case"]: (r["verdict"], sorted(r["failed"])) for r in json.loads(text)}
    assert_agrees("chromium")


def test_the_committed_page_is_what_the_sources_build():
    done = subprocess.run([shutil.which("node") or "node", "build.mjs", "--check"], cwd=JS, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_zz_print_the_corpus_table(capsys):
    """The table the note quotes: every case, its expected verdict, each verifier's."""
    verifiers = [v for v in ("cli", "api", "standalone", "node", "chromium") if v in RESULTS]
    if not verifiers:
        pytest.skip("no verifier ran in this session")
    mark = {1: "①", 2: "②", None: "-"}
    lines = [f"| case | expected | {' | '.join(verifiers)} |", "|---|---|" + "---|" * len(verifiers)]
    disagreements = 0
    for case in CASES:
        want = expected(case)
        row = []
        for v in verifiers:
            got = RESULTS[v].get(case["name"])
            disagreements += got != want
            row.append(f"{mark[got[0]] if got else '-'}{'' if got == want else ' ≠'}")
        lines.append(f"| {case['name']} | {mark[want[0]]} {','.join(want[1]) or ''} | {' | '.join(row)} |")
    with capsys.disabled():
        print(f"\n\ntamper corpus: {len(CASES)} cases x {len(verifiers)} verifiers ({', '.join(verifiers)}), "
              f"{disagreements} disagreements\n" + "\n".join(lines) + "\n")
    assert disagreements == 0


# --- the page and the certificate as a court uses them: files chosen, a button pressed ---------

CLICK_AND_WAIT = """(async () => {
  document.getElementById("ev-verdict").textContent = "";
  document.getElementById("ev-verify").click();
  for (let i = 0; i < 600 && !document.getElementById("ev-verdict").textContent; i++) await new Promise((r) => setTimeout(r, 50));
  return [document.getElementById("ev-verdict").textContent,
          [...document.querySelectorAll("#ev-report li")].map((li) => li.textContent)];
})()"""


def case_named(name: str) -> dict:
    return next(c for c in CASES if c["name"] == name)


@needs_chromium
def test_the_page_verifies_a_chosen_bundle_and_file_then_refuses_a_tampered_one(tmp_path):
    case = case_named("good sm3 bundle, its file")
    with DevTools(tmp_path, PAGE.as_uri()) as page:
        page.set_files("#ev-pick", [CORPUS / case["input"], CORPUS / case["file"]])
        verdict, checks = page.evaluate(CLICK_AND_WAIT)
        assert verdict.startswith("verdict ①: the record is in the anchored tree, unaltered"), (verdict, checks)
        assert any(line.startswith("✔ file: SM3 of the file") for line in checks), checks
        page.set_files("#ev-pick", [CORPUS / "files" / "acme-5-tampered.txt"])
        verdict, checks = page.evaluate(CLICK_AND_WAIT)
        assert verdict.startswith("verdict ②") and "(failed: file)" in verdict, (verdict, checks)


FILL_WITNESSES = """((keys, threshold) => {
  document.getElementById("ev-witnesses").value = keys;
  document.getElementById("ev-witness-threshold").value = threshold;
})"""


@needs_chromium
def test_the_page_requires_the_witnesses_typed_into_its_fields(tmp_path):
    """The witness keys (one per line, # comments) and the threshold typed into the page: a
    policy met says so in the verdict, one unmet fails the witnesses check, and a threshold that
    cannot be met is refused before any check, as the commands refuse it."""
    one = case_named("witnesses: cosigned by one, 1 of 2 required")
    w, o = one["witnesses"]
    with DevTools(tmp_path, PAGE.as_uri()) as page:
        page.set_files("#ev-pick", [CORPUS / one["input"]])
        typed = f"# the court's witnesses\n{w}\n {o} \n"  # a comment line, blanks around a key
        page.evaluate(f"{FILL_WITNESSES}({json.dumps(typed)}, '1')")
        verdict, checks = page.evaluate(CLICK_AND_WAIT)
        assert verdict.startswith("verdict ①") and "cosigned by the witnesses given ✔" in verdict, (verdict, checks)
        assert checks[5].startswith("✔ witnesses: 1 of the 2 witness key(s) given cosigned this checkpoint (threshold 1)")
        page.evaluate(f"{FILL_WITNESSES}({json.dumps(w + chr(10) + o)}, '')")  # all of them, by default
        verdict, checks = page.evaluate(CLICK_AND_WAIT)
        assert verdict.startswith("verdict ②") and verdict.endswith("(failed: witnesses)"), (verdict, checks)
        page.evaluate(f"{FILL_WITNESSES}({json.dumps(w)}, '2')")
        page.evaluate("document.getElementById('ev-verify').click()")
        status = page.evaluate("(async () => { for (let i = 0; i < 100 && !document.getElementById('ev-status')"
                               ".textContent; i++) await new Promise((r) => setTimeout(r, 50));"
                               " return document.getElementById('ev-status').textContent; })()")
        assert status == "witness threshold must be from 1 to the 1 witness key(s) given, not 2", status


@needs_chromium
def test_the_certificate_verifies_its_own_bundle_with_the_file_dropped_on_it(tmp_path):
    from proof_api.certificate import extract_bundle, render_certificate

    case = case_named("certificate as issued")
    # Rendered now, so that it carries the panel as built now.
    certificate = tmp_path / "certificate.html"
    certificate.write_text(render_certificate(extract_bundle((CORPUS / case["input"]).read_text())), encoding="utf-8")
    with DevTools(tmp_path, certificate.as_uri()) as page:
        assert page.evaluate("document.getElementById('ev-bundle-name').textContent") == \
            "the bundle embedded in this certificate"
        page.set_files("#ev-pick", [CORPUS / case["file"]])
        verdict, checks = page.evaluate(CLICK_AND_WAIT)
        assert verdict.startswith("verdict ①"), (verdict, checks)
        # ten checks, eight passed: no hash, no RPC (its one cosignature verifies with the bundle's own key)
        assert len(checks) == 10 and sum(line.startswith("✔") for line in checks) == 8, checks
    root = extract_bundle(certificate.read_text())["checkpoint"]["root"]
    edited = certificate.read_text().replace(f'"root": "{root}"', f'"root": "{root[::-1]}"')  # the embedded bundle's
    assert edited != certificate.read_text()
    certificate.write_text(edited, encoding="utf-8")
    with DevTools(tmp_path, certificate.as_uri()) as page:
        verdict, _ = page.evaluate(CLICK_AND_WAIT)
        assert verdict.startswith("verdict ②"), verdict


@needs_chromium
def test_a_certificate_whose_browser_view_differs_is_refused_by_its_own_panel(tmp_path):
    """One bundle in a <template> (the file's readers see it, the document does not show it)
    and one after "<!-->": the panel counts both, as the readers of the file's text do, and
    gives no verdict ① for either."""
    case = case_named("certificate, one bundle in a template and one after an empty comment")
    with DevTools(tmp_path, (CORPUS / case["input"]).as_uri()) as page:
        verdict, checks = page.evaluate(CLICK_AND_WAIT)
    assert verdict.startswith("verdict ②") and "(failed: format)" in verdict, (verdict, checks)
    assert "found 2" in checks[0], checks


def test_the_commands_read_a_bundle_alike_on_a_console_that_cannot_show_the_marks():
    done = subprocess.run([sys.executable, "-m", "evledger_verify", str(CORPUS / case_named("good sm3 bundle")["input"])],
                          capture_output=True, timeout=120, env={**os.environ, "PYTHONIOENCODING": "gbk"})
    assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr[-1000:]
    assert done.stdout.decode("gbk").splitlines()[-1].startswith("verdict ")


def test_the_js_command_reads_only_what_it_needs_of_an_endless_input():
    node = shutil.which("node")
    done = subprocess.run([node, str(JS / "src" / "cli.mjs"), "/dev/zero"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "the text is 1048577 bytes, over the limit" in done.stdout, done.stdout + done.stderr


def test_options_are_read_as_spelt_by_every_command(standalone_verifier):
    bundle = str(CORPUS / case_named("good sm3 bundle")["input"])
    digest = case_named("good sm3 bundle, its hash")["hash"]
    for command in ([str(standalone_verifier / "bin" / "evledger-verify")], [sys.executable, "-m", "proof_api.cli", "verify"],
                    [shutil.which("node"), str(JS / "src" / "cli.mjs")]):
        done = subprocess.run([*command, bundle, "--ha", digest], capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, (command, done.stdout, done.stderr)


def test_witness_options_that_cannot_be_met_are_refused_by_every_command(standalone_verifier):
    """A threshold without keys, out of range or not a number, and a key that is not a witness's
    (the ledger's own checkpoint key): exit 2 before any check, from every command."""
    case = case_named("witnesses: cosigned by one, 1 of 1 required")
    bundle, witness = str(CORPUS / case["input"]), case["witnesses"][0]
    ledger_key = json.loads((CORPUS / case["input"]).read_text())["checkpoint"]["verifier_key"]
    refused = (["--witness-threshold", "1"], ["--witness", witness, "--witness-threshold", "2"],
               ["--witness", witness, "--witness-threshold", "0"], ["--witness", witness, "--witness-threshold", "x"],
               ["--witness", ledger_key], ["--witness", witness[:-2]])
    for command in ([str(standalone_verifier / "bin" / "evledger-verify")], [sys.executable, "-m", "proof_api.cli", "verify"],
                    [shutil.which("node"), str(JS / "src" / "cli.mjs")]):
        for options in refused:
            done = subprocess.run([*command, bundle, *options], capture_output=True, text=True, timeout=120)
            assert done.returncode == 2 and done.stdout == "", (command, options, done.stdout, done.stderr)
        done = subprocess.run([*command, bundle, "--witness", witness, "--witness", witness], capture_output=True,
                              text=True, timeout=120)  # one witness named twice counts once: 1 of 1
        assert done.returncode == 0 and "cosigned by the witnesses given ✔" in done.stdout, (command, done.stdout)


def test_a_key_behind_a_lone_carriage_return_is_part_of_the_comment_for_every_command(standalone_verifier):
    bundle, keys = str(CORPUS / case_named("good sm3 bundle")["input"]), str(CORPUS / "files" / "keys-cr.txt")
    for command in ([str(standalone_verifier / "bin" / "evledger-verify")], [sys.executable, "-m", "proof_api.cli", "verify"],
                    [shutil.which("node"), str(JS / "src" / "cli.mjs")]):
        done = subprocess.run([*command, bundle, "--key-file", keys], capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and "holds no verifier keys" in done.stderr, (command, done.stdout, done.stderr)


# --- the chain's answers, read alike -------------------------------------------------------------


def fake_chain_answers(bundle: dict) -> dict:
    """JSON-RPC results that vouch for the bundle's anchor, as a node would give them."""
    from evledger_verify.chain import ANCHORED_EVENT, keccak256

    anchor, root, size = bundle["anchor"], bundle["checkpoint"]["root"], bundle["checkpoint"]["size"]
    word = lambda n: f"{n:064x}"  # noqa: E731
    log = {"address": anchor["contract"], "removed": False, "data": "0x" + root,
           "topics": ["0x" + keccak256(ANCHORED_EVENT.encode()).hex(), anchor["ledger_key"], "0x" + word(size),
                      "0x" + "00" * 12 + "cd" * 20]}
    return {"eth_chainId": hex(anchor["chain_id"]),
            "eth_call": "0x" + root + word(anchor["block_number"]) + word(anchor["block_time"]),
            "eth_getBlockByNumber": {"hash": anchor["block_hash"], "number": hex(anchor["block_number"])},
            "eth_getTransactionReceipt": {"status": "0x1", "blockNumber": hex(anchor["block_number"]),
                                          "to": anchor["contract"], "logs": [log]}}


def answer_variants(answers: dict):
    """(what, answers): the good answers, then one field at a time made odd."""
    receipt = answers["eth_getTransactionReceipt"]
    log = receipt["logs"][0]

    def with_log(**changed):
        return {**answers, "eth_getTransactionReceipt": {**receipt, "logs": [{**log, **changed}]}}

    def with_receipt(**changed):
        return {**answers, "eth_getTransactionReceipt": {**receipt, **changed}}

    yield "as a node answers", answers
    for removed in (True, [], 0, None, "false"):
        yield f"log removed {removed!r}", with_log(removed=removed)
    yield "log without removed", {**answers, "eth_getTransactionReceipt": {**receipt, "logs": [
        {k: v for k, v in log.items() if k != "removed"}]}}
    yield "topics as 0X", with_log(topics=[t.replace("0x", "0X") for t in log["topics"]])
    yield "topics upper-case hex", with_log(topics=[t.upper().replace("0X", "0x") for t in log["topics"]])
    yield "topics as an object", with_log(topics={t: 1 for t in log["topics"]})
    yield "address in a list", with_log(address=[log["address"]])
    yield "address upper-case", with_log(address=log["address"].upper().replace("0X", "0x"))
    yield "data empty", with_log(data="")
    yield "a junk log first", with_receipt(logs=["junk", 7, None, log])
    yield "logs not a list", with_receipt(logs={"0": log})
    yield "to in a list", with_receipt(to=[receipt["to"]])
    yield "status 0x0", with_receipt(status="0x0")
    yield "block hash in a list", {**answers, "eth_getBlockByNumber": {"hash": [answers["eth_getBlockByNumber"]["hash"]]}}
    yield "chain id with leading zeros", {**answers, "eth_chainId": "0x0" + answers["eth_chainId"][2:]}
    yield "eth_call short", {**answers, "eth_call": answers["eth_call"][:-2]}


def test_python_and_js_read_the_chains_answers_alike(tmp_path):
    """A JSON-RPC endpoint answering for the bundle's anchor, then with one field made odd at a
    time: evledger-verify and the JS verifier must give the same verdict and mark on
    anchor_on_chain for each."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    bundle_file = CORPUS / case_named("good sm3 bundle")["input"]
    answers = {"now": None}

    class Node(BaseHTTPRequestHandler):
        def do_POST(self):
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            body = json.dumps({"jsonrpc": "2.0", "id": request["id"],
                               "result": answers["now"][request["method"]]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Node)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    marks = {}
    try:
        for what, variant in answer_variants(fake_chain_answers(json.loads(bundle_file.read_text()))):
            answers["now"] = variant
            seen = []
            for command in ([sys.executable, "-m", "evledger_verify"], [shutil.which("node"), str(JS / "src" / "cli.mjs")]):
                done = subprocess.run([*command, str(bundle_file), "--rpc", url], capture_output=True, text=True, timeout=60)
                line = next(x for x in done.stdout.splitlines() if "anchor on chain" in x and not x.startswith("verdict"))
                seen.append((done.returncode, line[0]))
            assert seen[0] == seen[1], (what, seen)
            marks[what] = seen[0]
    finally:
        server.shutdown()
    assert marks["as a node answers"] == (0, "✔") and marks["log without removed"] == (0, "✔")
    assert marks["log removed True"] == (1, "✘") and marks["status 0x0"] == (1, "✘")
