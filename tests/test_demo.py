"""`evledger demo`, the main job, end to end through the console entry point: the service
over HTTP anchoring on a local anvil chain kept on disk, then the court's side with the
service gone and the chain started again from its state: the bundle verified with the anchor
read on chain (verdict 1), a tampered file refused (verdict 2). And the verifier as a court
installs it: its own distribution in an empty venv, giving the same verdicts on the demo's
bundle."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from evledger_dev.devchain import ANVIL, Anvil
from tests.browser import DevTools, needs_chromium
from proof_api.certificate import extract_bundle

ROOT = Path(__file__).resolve().parent.parent
needs_anvil = pytest.mark.skipif(not ANVIL.exists(), reason=f"anvil is missing at {ANVIL}: run `make npm-tools`")


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "proof_api.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    result = run_cli("demo", "--records", "3000", "--out", str(out))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out, result.stdout


@needs_anvil
def test_demo_streams_anchors_proves_on_chain_and_refuses_a_tampered_file(demo):
    out, text = demo
    assert "3,000 receipts" in text
    assert "every record checkpointed and anchored" in text
    assert text.count("verdict ①") == 1 and text.count("verdict ②") == 1
    # Verdict 1 with the anchor read on chain, after the service stopped and the chain restarted.
    # and cosigned by the court's witness, whose key the verifier was given
    assert "verdict ①: the record is in the anchored tree, unaltered (anchor on chain ✔; cosigned by the " \
           "witnesses given ✔)" in text
    assert text.count("✔ witnesses: 1 of the 1 witness key(s) given cosigned this checkpoint (threshold 1): "
                      "court.demo/witness at ") == 2
    assert "the witness cosigned the anchored checkpoint of size" in text
    assert (out / "witness" / "witness.key").exists() and (out / "witness.vkey").read_text().startswith("court.demo/")
    assert text.count("✔ anchor on chain: chain 31337 at http://127.0.0.1:") == 2
    assert text.index("service stopped (exit 0); chain stopped") < text.index("the chain started again from")
    assert "✘ file:" in text  # the tampered copy fails exactly on the file check
    assert "failed: file)" in text
    assert text.count("verifies with a trusted key (--key)") == 2  # pinned to the ledger's published key
    assert "chain transactions:" in text and "record -> checkpoint: p50" in text
    assert (out / "chain" / "state.json").stat().st_size > 0
    bundle = extract_bundle((out / "certificate.html").read_text())
    assert bundle["record"]["record"]["evidence_id"] == "CTR-2026-demo-signed"
    assert bundle["anchor"]["contract"] == (out / "chain" / "contract.txt").read_text().strip()
    assert "to check again as a court would" in text and "evledger-verify " in text


def test_demo_refuses_nonsense_with_a_clear_error():
    result = run_cli("demo", "--records", "1")
    assert result.returncode == 1
    assert "--records must be at least 10" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_lists_the_subcommands():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("demo", "serve", "verify", "certificate", "anchor", "ledger", "ingest", "rebuild"):
        assert command in result.stdout


# --- the verifier as a court installs it ----------------------------------------------------------


def installed(venv: Path) -> set[str]:
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze",
                           "--disable-pip-version-check"], capture_output=True, text=True, check=True)
    return {line.split("==")[0].lower() for line in done.stdout.split()}


def test_the_standalone_verifier_installs_alone(standalone_verifier):
    assert installed(standalone_verifier) - {"pip", "setuptools"} == {"evledger-verify", "gmssl", "pycryptodome",
                                                             "pycryptodomex"}
    # Its import closure, running a check, is the standard library and those.
    script = ("import sys\n"
              "before = set(sys.modules)\n"
              "import evledger_verify.cli, evledger_verify.chain\n"
              "evledger_verify.verify.verify_bundle({'format': 'evledger-proof/1'})\n"
              "evledger_verify.chain.ledger_key('evledger/acme')\n"
              "loaded = {m.split('.')[0] for m in set(sys.modules) - before}\n"
              "print('\\n'.join(sorted(loaded - set(sys.stdlib_module_names))))\n")
    done = subprocess.run([str(standalone_verifier / "bin" / "python"), "-c", script], capture_output=True, text=True,
                          cwd=standalone_verifier, check=True)
    assert set(done.stdout.split()) <= {"evledger_verify", "gmssl", "Crypto", "Cryptodome", "_cffi_backend"}, done.stdout


@needs_anvil
def test_the_standalone_verifier_gives_the_demos_verdicts_on_chain(demo, standalone_verifier):
    out, _ = demo
    command = standalone_verifier / "bin" / "evledger-verify"
    contract = (out / "chain" / "contract.txt").read_text().strip()
    with Anvil(state=out / "chain" / "state.json") as chain:
        pinned = ["--key-file", str(out / "brokerage-sh.keys"), "--rpc", chain.url, "--contract", contract,
                  "--witness", (out / "witness.vkey").read_text().strip(), "--tiles", str(out / "tiles" / "brokerage-sh")]
        good = subprocess.run([str(command), str(out / "bundle.json"), "--file", str(out / "contract.txt"), *pinned],
                              capture_output=True, text=True, timeout=120, cwd=standalone_verifier)
        bad = subprocess.run([str(command), str(out / "bundle.json"), "--file", str(out / "contract-tampered.txt"),
                              *pinned], capture_output=True, text=True, timeout=120, cwd=standalone_verifier)
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.splitlines()[-1] == "verdict ①: the record is in the anchored tree, unaltered (anchor on chain ✔; cosigned by the witnesses given ✔)"
    assert re.search(r"^✔ anchor on chain: chain 31337 at ", good.stdout, re.M)
    assert re.search(r"^✔ tiles: the tiles at .*tiles/brokerage-sh \(checkpoint of size ", good.stdout, re.M)
    assert bad.returncode == 1 and "(failed: file)" in bad.stdout.splitlines()[-1]
    # The same report, line for line, as `evledger verify` in the service's environment.
    for name, mine in (("contract.txt", good), ("contract-tampered.txt", bad)):
        with Anvil(state=out / "chain" / "state.json") as chain:
            args = [str(out / "bundle.json"), "--file", str(out / name), "--key-file", str(out / "brokerage-sh.keys"),
                    "--rpc", chain.url, "--contract", contract, "--witness", (out / "witness.vkey").read_text().strip()]
            service_side = subprocess.run([sys.executable, "-m", "proof_api.cli", "verify", *args],
                                          capture_output=True, text=True, timeout=120)
            standalone_side = subprocess.run([str(command), *args], capture_output=True, text=True, timeout=120)
        assert service_side.returncode == standalone_side.returncode == mine.returncode
        assert service_side.stdout == standalone_side.stdout


def test_the_standalone_verifier_answers_usage_errors_with_exit_2(standalone_verifier, tmp_path):
    command = str(standalone_verifier / "bin" / "evledger-verify")
    both = subprocess.run([command, "b.json", "--file", "f", "--hash", "00"], capture_output=True, text=True)
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
    missing = subprocess.run([command, str(tmp_path / "nope.json")], capture_output=True, text=True)
    assert missing.returncode == 2 and missing.stderr.startswith("evledger-verify: error: ")
    assert "Traceback" not in missing.stderr + both.stderr
    helped = subprocess.run([command, "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "--rpc URL" in helped.stdout and "verdict 1" in helped.stdout


# --- the JS verifier reads the anchor on chain too ------------------------------------------------


def marks_and_verdict(report: str) -> list[str]:
    """Each check's mark and name, and the verdict line: what the Python and JS verifiers share
    word for word (their details may be worded differently)."""
    lines = report.strip().splitlines()
    return [line.split(":")[0] for line in lines[:-1]] + [lines[-1]]


@needs_anvil
def test_the_js_verifier_under_node_reads_the_anchor_on_chain(demo):
    out, _ = demo
    contract = (out / "chain" / "contract.txt").read_text().strip()
    js = ROOT / "verifier" / "js" / "src" / "cli.mjs"
    with Anvil(state=out / "chain" / "state.json") as chain:
        for name, code in (("contract.txt", 0), ("contract-tampered.txt", 1)):
            args = [str(out / "bundle.json"), "--file", str(out / name), "--key-file", str(out / "brokerage-sh.keys"),
                    "--rpc", chain.url, "--contract", contract, "--witness", (out / "witness.vkey").read_text().strip()]
            node = subprocess.run(["node", str(js), *args], capture_output=True, text=True, timeout=120)
            python = subprocess.run([sys.executable, "-m", "evledger_verify", *args], capture_output=True, text=True,
                                    timeout=120)
            assert node.returncode == python.returncode == code, node.stdout + node.stderr
            assert marks_and_verdict(node.stdout) == marks_and_verdict(python.stdout)
            assert "✔ anchor on chain" in node.stdout
        moved = subprocess.run(["node", str(js), str(out / "bundle.json"), "--rpc", chain.url.replace(
            str(chain.port), "1")], capture_output=True, text=True, timeout=120)
        assert moved.returncode == 1 and "✘ anchor on chain: could not read the chain id" in moved.stdout


@needs_anvil
@needs_chromium
def test_the_verifier_page_reads_the_anchor_on_chain(demo, tmp_path):
    out, _ = demo
    contract = (out / "chain" / "contract.txt").read_text().strip()
    key = (out / "brokerage-sh.keys").read_text()
    page_file = ROOT / "verifier" / "js" / "dist" / "verify.html"
    with Anvil(state=out / "chain" / "state.json") as chain, DevTools(tmp_path, page_file.as_uri()) as page:
        page.set_files("#ev-pick", [out / "bundle.json", out / "contract.txt"])
        witness = (out / "witness.vkey").read_text()
        for field, value in (("ev-rpc", chain.url), ("ev-contract", contract), ("ev-keys", key),
                             ("ev-witnesses", witness)):
            page.evaluate(f"document.getElementById({json.dumps(field)}).value = {json.dumps(value)}")
        verdict, checks = page.evaluate("""(async () => {
          document.getElementById("ev-verify").click();
          for (let i = 0; i < 600 && !document.getElementById("ev-verdict").textContent; i++)
            await new Promise((r) => setTimeout(r, 50));
          return [document.getElementById("ev-verdict").textContent,
                  [...document.querySelectorAll("#ev-report li")].map((li) => li.textContent)];
        })()""")
    assert verdict == "verdict ①: the record is in the anchored tree, unaltered (anchor on chain ✔; cosigned by the witnesses given ✔)", (verdict, checks)
    assert any(line.startswith(f"✔ anchor on chain: chain 31337 at {chain.url}") for line in checks), checks
