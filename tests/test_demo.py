"""`evledger demo`, the main job, end to end through the console entry point."""
import subprocess
import sys


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "proof_api.cli", *args], capture_output=True, text=True, timeout=300)


def test_demo_builds_proves_and_rejects_a_tampered_leaf():
    result = run_cli("demo", "--records", "700", "--batch", "100")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "tree size 700" in out
    assert "inclusion proof for leaf 233" in out and ": verified" in out
    assert "consistency proof 350 -> 700" in out
    assert "one byte changed: rejected (root mismatch" in out
    assert "leaf hashing" in out and "leaves/s (numba)" in out


def test_demo_refuses_nonsense_with_a_clear_error():
    result = run_cli("demo", "--records", "1")
    assert result.returncode == 1
    assert "--records must be at least 2" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_lists_the_subcommands():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "demo" in result.stdout
