"""The suite's report generator (bench.report) on fixed sample results.

tests/fixtures/bench_sample_report.json is a combined report in the shape bench.suite writes,
built from the committed full-run results (bench/results/merkle-20261126T032722Z.json,
ingest-20261126T041107Z.json, api-20261126T050211Z.json, anchor-20261126T043641Z.json; the
anchor rows' per-anchor samples and the data folder paths dropped), with the stream module
marked missing, and full runs at their defaults of bench.monitor_bench (monitor-20261205T161819Z,
its goals in the shape bench.report documents) and bench.witness_bench (witness-20261205T161439Z). tests/fixtures/bench_sample_report.md is its Markdown, reviewed by hand
against those modules' own .md reports: a figure dropped, moved or mislabelled changes it.

To regenerate the golden file after an intended change to the report:
    EVLEDGER_REGEN_GOLDEN=1 python -m pytest tests/test_bench_report.py
"""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest

from bench import report as R

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE = FIXTURES / "bench_sample_report.json"
GOLDEN = FIXTURES / "bench_sample_report.md"


@pytest.fixture()
def sample() -> dict:
    return json.loads(SAMPLE.read_text())


def test_golden(sample):
    md = R.render_markdown(sample)
    if os.environ.get("EVLEDGER_REGEN_GOLDEN"):
        GOLDEN.write_text(md)
    assert md == GOLDEN.read_text(), "the report changed: diff it against tests/fixtures/bench_sample_report.md"


@pytest.mark.parametrize("line", [
    # machine, versions, commit
    "- CPU: AMD EPYC, 2 cores",
    "- Memory: 23.5 GiB",
    "- Disk (benchmark data): /dev/vda (ext4, mounted at /), 252 GiB, 74 GiB free, "
    "rotational as /sys reports it (virtual disks often do)",
    "- Commit: 036d0b8",
    # hasher, by implementation and thread count (merkle-20261126T032722Z.md)
    "| numba multi-buffer (64 lanes) | 26,493,838 | 51,713,019 |",
    "| OpenSSL C loop (openssl speed -evp sm3) | 3,043,985 | 6,124,731 |",
    "| numba multi-buffer (64 lanes) | 7,163,366 | 9,543,325 |",
    "| gmssl (pure Python) | 1,432 | - |",
    "Multi-buffer vs OpenSSL per core: **8.70x**; scaling 1 -> 2 cores: **1.95x**. "
    "Bound: CPU (compute-bound kernels; numba threads, OpenSSL processes).",
    # tree
    "| MerkleLog, RocksDB store (SM3) | 2,703,767 | CPU plus RocksDB writes (no fsync: nodes are a rebuildable projection) |",
    # durable ingest next to its reference, and its bound (ingest-20261126T041107Z.md)
    "| 1 | 1,000 | 65,628 | 976,824 | 0.067 | 1.40 | CPU/GIL (process at 1.40 of 2 cores: its Python threads take "
    "turns on the GIL) |",
    "| receipt (submit call to return) | 0.713 | 12.5 | 35.9 | 492,250 |",
    "| receipt to logged checkpoint | 543 | 1,015 | 1,062 | 492,250 |",
    # HTTP ingest (api-20261126T050211Z.md)
    "| 5,000 | 4 | 37,253 | 551 | 856 | 1.10 | the server's Python at 1.10 cores (one process, one GIL: about one "
    "core is its ceiling); generator 0.02 |",
    "| POST /records, C=16 | 1,076 | 0.43 | 14.1 | 40.6 | the server's Python at 0.87 cores (one process, one GIL: "
    "about one core is its ceiling); generator 0.35 |",
    # stream: missing module
    "Not measured: `bench.stream_bench` not run (module missing).",
    "| `bench.stream_bench` | Stream ingest | not run (module missing) | - | - | - |",
    # proofs by tree size, 1e3..1e8
    "| 1,000 | 59,542 | 18.4 | 19.4 | 10 |",
    "| 100,000,000 | 5,514 | 159.2 | 350.9 | 27 |",
    "| 16 | 1,667 | 0.66 | 9.20 | 18.4 | 0.94 | 564 | the server's Python at 0.94 cores (one process, one GIL: "
    "about one core is its ceiling); generator 0.43 |",
    # rebuild
    "| 10,000,000 records | 10,000,150 | 86.3 | 115,871 | 149 | True | CPU, one thread (1.30 cores); the log was "
    "read from a warm page cache (written just before) |",
    # anchoring: latency, gas, chain transactions per day (86400 / max(interval, checkpoint interval))
    "| anvil, 1 s blocks | 2 | 0.05 | one at a time | 40 | 1,653 | 2,046 | block time x (confirmations - 1) = 1 s: "
    "the anchoring block must have 1 more on top, after waiting for the anchoring block itself (~0.5 s on average) "
    "(largest part burying, 61% of the summed medians) |",
    "| anchor, later ones | 76,908 | as the first, but latestSize is non-zero -> non-zero (5,000 instead of 22,100): "
    "17,100 less |",
    "| 10 | 8,640 | 8,640 | 8,640 | 664,485,120 |",  # 86400/10 = 8,640; x 76,908 gas = 664,485,120
    "| 0.25 | 86,400 | 86,521 | 263,672 | 6,654,175,936 |",  # checkpoint every min(65536/rate, 1 s) bounds it
    # the latency summary
    "| proof bundle: HTTP GET /proof | 9.20 | 18.4 | api, C=16, closed loop | the server's Python at 0.94 cores "
    "(one process, one GIL: about one core is its ceiling); generator 0.43 |",
    # plots are linked under fixed names
    "![SM3 hasher throughput by implementation and thread count](plot-hasher.png)",
    "![Ingest throughput vs batch size](plot-ingest-batch.png)",
    "![Receipt, checkpoint, anchor and proof latency percentiles](plot-latency.png)",
    "![Inclusion proof latency vs tree size](plot-proof-tree-size.png)",
    "![Chain transactions per day vs anchor interval](plot-chain-tx.png)",
    # the monitor next to fetching alone and SM2 alone (monitor-20261205T161819Z.md), and its soak
    "| monitor pass, in process (fetch + SM2 + consistency + SQLite) | 3,038 | 2.48 | 1,224 | 0.61 |",
    "| reference: SM2 verification of the same notes alone | 3,038 | 1.52 | 1,993 | 1.00 |",
    "| 1,000+ | 1,100 | 16.1 | 1,093 | 15 | 0 | **0** |",
    # witness cosigning next to the same load without witnesses (witness-20261205T161439Z.md)
    "| reference (no witness): received -> sealed | 19,200 | 75.9 | 128 | 133 | 385 |",
    "| witnessed: received -> cosignature logged | 19,200 | 74.9 | 136 | 149 | 156 |",
    "Added by cosigning: p99 **16.8 ms** (witnessed 149.5 - reference 132.7), p50 -1.0 ms. Checkpoints not "
    "cosigned: 0; collector errors: 0; witness refusals: 0.",
    "| record -> cosigned checkpoint, one local witness | 74.9 | 149 | witness, 20 records every 50 ms | the "
    "sealer's batch delay (0.1 s), then sealed -> cosigned (p99 24.9 ms) |",
    # goals (one shape: goal, measured or best, met, direction) and bounds
    "- ingest: durable_records_per_s >= 200,000: NOT met (measured 65,628)",
    "- monitor: checkpoints_per_second >= 1,000: met (measured 1,224)",
    "- monitor: false_alarms == 0: met (measured 0)",
    "- witness: cosigning_added_p99_ms <= 50.00: met (measured 16.76)",
    "- Durable ingest peak: CPU/GIL (process at 1.40 of 2 cores: its Python threads take turns on the GIL).",
])
def test_figure_lines(sample, line):
    assert line in R.render_markdown(sample).splitlines()


def test_chain_tx_policy():
    # one ledger, default batching (65,536 records / 1 s): 86400 / max(interval, min(65536 / rate, 1))
    from bench.figures import chain_tx_per_day

    assert chain_tx_per_day(10, 1_000) == 8_640
    assert chain_tx_per_day(0.25, 200_000) == pytest.approx(86_400 / (65_536 / 200_000))  # 263,671.9
    assert chain_tx_per_day(0.25, 1_000) == 86_400  # checkpoints come once a second at most
    assert chain_tx_per_day(3600, 50_000) == 24


def test_a_changed_figure_shows(sample):
    """The golden comparison fails when one number moves or a label changes."""
    changed = copy.deepcopy(sample)
    changed["results"]["merkle"]["proofs"][-1]["p50_us"] = 160.2
    assert R.render_markdown(changed) != GOLDEN.read_text()
    relabelled = copy.deepcopy(sample)
    relabelled["results"]["api"]["proof"][0]["bound"] = "fsync"
    assert R.render_markdown(relabelled) != GOLDEN.read_text()


def test_failed_and_missing_modules(sample):
    broken = copy.deepcopy(sample)
    broken["modules"]["api"].update(status="failed (exit 1)", error="RuntimeError: the server exited (1)")
    del broken["results"]["anchor"]
    broken["modules"]["anchor"]["status"] = "timed out after 1800 s"
    md = R.render_markdown(broken)
    assert "Not measured: `bench.api_bench` failed (exit 1). Last output: `RuntimeError: the server exited (1)`" in md
    assert "Not measured: `bench.anchor_bench` timed out after 1800 s." in md
    assert "| `bench.api_bench` | HTTP ingest, Proof serving | failed (exit 1) |" in md
    # what the others measured is still there; the chain table falls back to the policy alone
    assert "| 100,000,000 | 5,514 | 159.2 | 350.9 | 27 |" in md
    assert "| 10 | 8,640 | 8,640 | 8,640 | - |" in md


def test_goal_directions_and_unmeasured_goals(sample):
    """An upper bound that is missed, and a goal whose figure was not measured (a skipped soak)."""
    changed = copy.deepcopy(sample)
    changed["results"]["witness"]["goals"]["cosigning_added_p99_ms"].update(measured=61.25, met=False)
    changed["results"]["monitor"]["goals"]["false_alarms"].update(measured=None, met=None)
    changed["results"]["monitor"]["soak"] = {"skipped": "anvil is missing"}
    md = R.render_markdown(changed).splitlines()
    assert "- witness: cosigning_added_p99_ms <= 50.00: NOT met (measured 61.25)" in md
    assert "- monitor: false_alarms == 0: not measured (measured -)" in md
    assert "Not measured: anvil is missing" in md


def test_nothing_measured():
    md = R.render_markdown({"stamp": "x", "modules": {}, "results": {}})
    assert md.startswith("# Benchmark suite report: x")
    assert "Not measured: `bench.merkle_bench` not run." in md


def test_stream_results_are_read_generically(sample):
    """The stream module's JSON structure is not fixed here: its rows and rates are shown as found."""
    withstream = copy.deepcopy(sample)
    withstream["modules"]["stream"].update(status="ok", json="stream-20261127T000000Z.json")
    withstream["results"]["stream"] = {
        "machine": {}, "quick": False,
        "runs": [{"partitions": 1, "records_per_s": 41000.5, "bound": "the worker's Python"},
                 {"partitions": 2, "records_per_s": 52000.0, "bound": "CPU: both cores"}],
        "broker": {"name": "tansu", "version": "0.1"}}
    md = R.render_markdown(withstream)
    assert "Best rate reported: **52,000 records/s** (`runs[1].records_per_s`)." in md
    assert "| 2 | 52,000.00 | CPU: both cores |" in md
    assert "- Stream ingest: CPU: both cores; the worker's Python." in md


def test_plots(sample, tmp_path):
    drawn = R.render_plots(sample, tmp_path)
    assert sorted(drawn) == sorted(name for name, _ in R.PLOTS.values())
    for name in drawn:
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name
