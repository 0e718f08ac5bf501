"""The quick benchmark suite run once (`make bench-smoke`; `make test` leaves it out, about 210 s
on 2 cores): it must complete and write a well-formed report. Only that is asserted, not the
figures of a smoke run. The report's own tests below run in `make test`."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import report as R
from bench import suite as S

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.bench_smoke
def test_quick_suite_writes_a_well_formed_report(tmp_path):
    out, data = tmp_path / "results", tmp_path / "data"
    data.mkdir()
    proc = subprocess.run([sys.executable, "-m", "bench.suite", "--quick", "--out", str(out), "--workdir", str(data)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"the quick suite failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    runs = [d for d in out.iterdir() if d.is_dir()]
    assert len(runs) == 1, runs
    run = runs[0]

    report = json.loads((run / "report.json").read_text())
    assert report["format"] == R.FORMAT and report["quick"] is True and report["stamp"] == run.name
    m = report["machine"]
    for key in ("cpu", "cores", "memory_gib", "python", "numba", "openssl", "commit", "os", "versions"):
        assert m.get(key), key
    assert m["disk"].get("device") and m["disk"].get("fstype")
    assert set(report["modules"]) == set(R.MODULES)
    for name, entry in report["modules"].items():
        if entry["status"] == "not run (module missing)":
            assert not (ROOT / "bench" / f"{R.MODULES[name].split('.')[-1]}.py").exists(), name
            continue
        assert entry["status"] == "ok", (name, entry)
        assert (run / entry["json"]).exists() and (run / entry["log"]).exists()
        assert name in report["results"] and entry["seconds"] > 0
        assert entry["notes"], f"{name}: a quick run says what it left out"

    md = (run / "report.md").read_text()
    assert md == R.render_markdown(report)
    assert md.startswith(f"# Benchmark suite report: {run.name}")
    for heading in ("## Machine", "## 1. Hasher", "## 2. Tree", "## 3. Durable ingest", "## 4. HTTP ingest",
                    "## 5. Stream ingest", "## 6. Proof serving", "## 7. Rebuild", "## 8. Anchoring",
                    "## 9. Monitoring", "## 10. Witness cosigning", "## 12. Producer push",
                    "## Latency percentiles", "## What bounded each figure"):
        assert heading in md, heading
    for name, _ in R.PLOTS.values():
        assert (run / name).read_bytes()[:4] == b"\x89PNG", name
    print(f"quick suite: {report['total_seconds']:.0f} s")


def test_a_goal_missed_is_not_a_failed_run(tmp_path):
    """monitor and witness exit 1 when a goal is not met: the suite reads that from their JSON."""
    missed = tmp_path / "witness-x.json"
    missed.write_text(json.dumps({"goals": {"cosigning_added_p99_ms": {"goal": 50, "measured": 61, "met": False,
                                                                       "direction": "<="},
                                            "other": {"goal": 1, "measured": None, "met": None}}}))
    assert S.goals_missed(missed) == ["cosigning_added_p99_ms"]
    met = tmp_path / "monitor-x.json"
    met.write_text(json.dumps({"goals": {"false_alarms": {"goal": 0, "measured": 0, "met": True, "direction": "=="}}}))
    assert S.goals_missed(met) == [] and S.goals_missed(tmp_path / "absent.json") == []
    assert set(S.RUNS) == set(R.MODULES)
