"""`evledger demo`, the main job, end to end through the console entry point: the service
over HTTP, a bundle verified offline (verdict 1), a tampered file refused (verdict 2)."""
import subprocess
import sys

from proof_api.certificate import extract_bundle


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "proof_api.cli", *args], capture_output=True, text=True, timeout=300)


def test_demo_streams_anchors_proves_and_refuses_a_tampered_file(tmp_path):
    out = tmp_path / "out"
    result = run_cli("demo", "--records", "3000", "--out", str(out))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    text = result.stdout
    assert "3,000 receipts" in text
    assert "every record checkpointed and anchored" in text
    assert text.count("verdict ①") == 1 and text.count("verdict ②") == 1
    assert "✘ file:" in text  # the tampered copy fails exactly on the file check
    assert text.count("verifies with a trusted key (--key)") == 2  # pinned to the ledger's published key
    assert "chain transactions:" in text and "record -> checkpoint: p50" in text
    assert "service stopped (exit 0)" in text
    bundle = extract_bundle((out / "certificate.html").read_text())
    assert bundle["record"]["record"]["evidence_id"] == "CTR-2026-demo-signed"
    assert bundle["anchor"] is not None


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
