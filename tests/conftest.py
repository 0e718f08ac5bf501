"""Shared test settings: hypothesis profiles sized for a slow two-core CI machine.

HYPOTHESIS_PROFILE=thorough runs every property test with many more examples (minutes).
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("default", max_examples=25, **_COMMON)
settings.register_profile("thorough", max_examples=500, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session")
def standalone_verifier(tmp_path_factory):
    """`pip install ./verifier` into a venv made empty for it: the distribution's own
    dependencies, from the package index, and nothing of the service's."""
    venv = tmp_path_factory.mktemp("court") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    root = Path(__file__).resolve().parent.parent
    # From a copy of the sources alone: a build/ folder left by an earlier build is not reused.
    source = venv.parent / "verifier"
    shutil.copytree(root / "verifier", source, ignore=shutil.ignore_patterns("build", "*.egg-info", "js", "__pycache__"))
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                           "-c", str(root / "constraints.txt"), str(source)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return venv
