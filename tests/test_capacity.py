"""The capacity planner (bench.capacity) on known inputs, each expected figure worked by hand in
the comments, and its refusals of input that makes no sense."""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest

from bench import capacity as C

# Round figures, so the arithmetic can be followed by hand.
FIGURES = {
    "ingest": {
        "machine": {"cpu": "Test CPU", "cores": 4}, "quick": False,
        "event_bytes": 400, "leaf_bytes": 325,  # event envelope = 400 - 325 = 75
        "durable": [{"threads": 1, "group": 1000, "records_per_s": 50_000.0, "cpu_cores": 1.25, "bound": "CPU/GIL"},
                    {"threads": 4, "group": 1000, "records_per_s": 40_000.0, "cpu_cores": 1.5, "bound": "CPU/GIL"}],
        "latency": {"achieved_records_per_s": 25_000.0,
                    "receipt": {"p50_ms": 1.0, "p99_ms": 10.0, "max_ms": 20.0, "n": 100},
                    "to_checkpoint": {"p50_ms": 500.0, "p99_ms": 1000.0, "max_ms": 1100.0, "n": 100}},
        "rebuild": {"disk_bytes_per_record": 330.0},
    },
    "api": {
        "machine": {"cpu": "Test CPU", "cores": 4}, "quick": False,
        "batch": [{"batch": 1000, "concurrency": 2, "items_per_s": 40_000.0, "server_cores": 1.0,
                   "p50_ms": 50.0, "p99_ms": 100.0, "bound": "the server's Python"}],
        "single": [{"concurrency": 16, "items_per_s": 1_000.0, "p50_ms": 15.0, "p99_ms": 40.0}],
        "proof": [{"concurrency": 16, "items_per_s": 2_000.0, "server_cores": 1.0, "server_us_per_request": 500.0,
                   "p50_ms": 10.0, "p99_ms": 20.0, "bound": "the server's Python"}],
        "proof_ledger": {"records": 1000},
    },
    "merkle": {
        "machine": {"cpu": "Test CPU", "cores": 4}, "quick": False,
        "proofs": [{"tree_size": 1_000, "proofs_per_s": 50_000.0, "p50_us": 20.0, "p99_us": 30.0, "proof_hashes": 10},
                   {"tree_size": 1_000_000, "proofs_per_s": 20_000.0, "p50_us": 50.0, "p99_us": 90.0, "proof_hashes": 20},
                   {"tree_size": 100_000_000, "proofs_per_s": 6_000.0, "p50_us": 150.0, "p99_us": 290.0,
                    "proof_hashes": 27}],
    },
    "anchor": {
        "machine": {"cpu": "Test CPU", "cores": 4}, "quick": False,
        "gas": {"anchor_first_median": 95_000.0, "anchor_later_median": 80_000.0, "transfer_median": 21_000.0,
                "per_record_floor_median": 43_621.0, "block_gas_limit": 30_000_000, "chain": "anvil"},
        "latency": [{"chain": "anvil, a block per transaction", "block_time_s": None, "confirmations": 1,
                     "poll_interval_s": 1.0, "mode": "one at a time",
                     "latency": {"p50_ms": 1500.0, "p99_ms": 2000.0, "n": 20}}],
        "tx_per_million": {"settings": {"batch_max_items": 65536, "batch_max_delay_s": 1.0,
                                        "anchor_min_interval_s": 10.0, "poll_interval_s": 1.0}},
    },
}

TARGET = dict(sustained=100_000, peak=150_000, record_bytes=500, retention_years=2, proof_rps=1_000,
              anchor_interval_s=10, chain="besu", headroom=0.7, ingest_path="http", node_cores=8)


@pytest.fixture()
def p() -> dict:
    return C.plan(C.Target(**TARGET), copy.deepcopy(FIGURES))


def test_ingest(p):
    ing = p["ingest"]
    # http: 40,000 records/s per server process at 1.0 core; usable at 70%: 28,000
    assert ing["usable_per_process"] == pytest.approx(28_000)
    # processes = ceil(150,000 / 28,000) = ceil(5.357) = 6; cores = 6 x 1.0 = 6
    assert ing["processes"] == 6 and ing["cores"] == pytest.approx(6.0)
    # processes per 8-core node = floor(8 / 1.0) = 8 -> nodes = ceil(6 / 8) = 1
    assert ing["processes_per_node"] == 8 and ing["nodes"] == 1
    # one writer per ledger: at least 6 ledgers, and 6 when none are given
    assert ing["min_ledgers"] == 6 and p["ledgers"] == 6
    # utilisation: 100,000 / (6 x 40,000) = 0.4167 sustained; 150,000 / 240,000 = 0.625 at peak
    assert ing["utilisation_sustained"] == pytest.approx(100_000 / 240_000)
    assert ing["utilisation_peak"] == pytest.approx(0.625)
    # direct (Ledger.submit): 50,000 at 1.25 cores -> usable 35,000 -> ceil(150,000 / 35,000) = ceil(4.29) = 5
    # processes, 5 x 1.25 = 6.25 cores, floor(8 / 1.25) = 6 per node -> 1 node
    d = ing["by_path"]["direct"]
    assert (d["processes"], d["cores"], d["processes_per_node"], d["nodes"]) == (5, pytest.approx(6.25), 6, 1)
    # stream: no stream result, so assumed equal to direct, and said so
    assert ing["by_path"]["stream"]["processes"] == 5 and not ing["by_path"]["stream"]["measured"]
    assert any("ASSUMED: the stream benchmark has not run" in a for a in p["assumptions"])


def test_proofs(p):
    pr = p["proofs"]
    # per ledger: 100,000 / 6 = 16,666.7 records/s; after 2 years: x 31,536,000 x 2 = 1.0512e12 leaves
    assert pr["tree_size_end"] == pytest.approx(100_000 / 6 * 31_536_000 * 2)
    # p50 beyond the largest measured size, extrapolated in log10(size) from (1e6, 50 µs) and (1e8, 150 µs):
    # 50 µs per decade; log10(1.0512e12) = 12.02169 -> 150 + 50 x 4.02169 = 351.08 µs; at the API's
    # 1,000-record ledger 20 µs -> +331.08 µs per proof
    assert pr["delta_us_p50"] == pytest.approx(150 + 50 * (math.log10(1.0512e12) - 8) - 20)
    assert pr["delta_us_p50"] == pytest.approx(331.08, abs=0.01)
    # p99: (1e6, 90), (1e8, 290): 100 per decade -> 290 + 402.17 = 692.17; minus 30 at 1,000 -> +662.17 µs
    assert pr["delta_us_p99"] == pytest.approx(662.17, abs=0.01)
    # rate per process = 2,000 x 500 / (500 + 331.08) = 1,203.2 bundles/s; usable at 70%: 842.3
    assert pr["rate_per_process"] == pytest.approx(2_000 * 500 / 831.08, rel=1e-4)
    # processes = ceil(1,000 / 842.3) = 2, at 1.0 core each; floor(8 / 1) = 8 per node -> 1 node
    assert (pr["processes"], pr["cores"], pr["nodes"]) == (2, pytest.approx(2.0), 1)
    # a court's latency: 10 ms + 0.331 = 10.331 ms p50; 20 + 0.662 = 20.662 ms p99
    assert p["latency"]["proof"]["p50_ms"] == pytest.approx(10.331, abs=1e-3)
    assert p["latency"]["proof"]["p99_ms"] == pytest.approx(20.662, abs=1e-3)
    # 1.05e12 is 4.0 decades past the largest tree measured: said so
    assert any("4.0 decades beyond the largest tree measured" in w for w in p["warnings"])


def test_disk(p):
    d = p["disk"]
    # framing = envelope 75 + leaf wrapper 98 = 173; log = 500 + 173 + key 28 = 701 bytes
    assert d["framing_bytes"] == 173 and d["log_bytes_per_record"] == 701
    # indexes = 130 + 2 x 36 = 202; Merkle = 64; per record 701 + 64 + 202 = 967
    assert d["index_bytes_per_record"] == 202 and d["bytes_per_record"] == 967
    # records a year: 100,000 x 31,536,000 = 3.1536e12
    assert d["records_per_year"] == 3.1536e12
    py = d["per_year"]
    assert py["log"] == pytest.approx(3.1536e12 * 701)  # 2.2107e15
    assert py["merkle"] == pytest.approx(3.1536e12 * 64)  # 2.0183e14
    assert py["indexes"] == pytest.approx(3.1536e12 * 202)  # 6.3703e14
    # checkpoints: 16,667 records/s per ledger fills 65,536 in 3.9 s, so the 1 s delay seals: one a second
    # per ledger: 6 x 31,536,000 x 700 bytes = 1.3245e11
    assert d["checkpoint_interval_s"] == 1.0
    assert py["checkpoints"] == pytest.approx(6 * 31_536_000 * 700)
    # anchors: 86,400 / 10 = 8,640 a day per ledger: 6 x 8,640 x 365 x 1,300 bytes = 2.4598e10
    assert py["anchors"] == pytest.approx(6 * 8_640 * 365 * 1_300)
    # total a year: 3.1536e12 x 967 + 1.3245e11 + 2.4598e10 = 3.04969e15; over 2 years 6.09938e15
    assert py["total"] == pytest.approx(3.1536e12 * 967 + 6 * 31_536_000 * 700 + 6 * 8_640 * 365 * 1_300)
    assert d["total"] == pytest.approx(2 * py["total"])
    assert d["total"] == pytest.approx(6.09938e15, rel=1e-5)
    # against the measured 330 bytes/record: the model at the bench's records is event 400 + key 28 + 64 +
    # 130 + 2 x 8 = 638 bytes
    assert d["model_at_bench_record"] == 638 and d["measured_bytes_per_record"] == 330


def test_backends_and_kafka(p):
    # KurrentDB: 500 + 173 + 150 + 24 = 847 bytes per event x 3 replicas x 3.1536e12 a year = 8.0133e15
    assert p["backends"]["kurrent_event_bytes"] == 847
    assert p["backends"]["kurrent_log_per_year"] == pytest.approx(3.1536e12 * 847 * 3)
    k = p["kafka"]
    # broker: 10 MB/s / (500 + 70) = 17,543.9 records/s per partition, below the consumer's 50,000 (assumed)
    assert k["partition_rate"] == pytest.approx(10e6 / 570) and k["bound"] == "broker"
    # partitions = max(6 ledgers, ceil(150,000 / (17,543.9 x 0.7))) = max(6, ceil(12.21)) = 13
    assert k["partitions"] == 13
    # disk: 100,000 x 86,400 x 7 days x 570 bytes x 3 replicas = 1.0342e14
    assert k["disk"] == pytest.approx(100_000 * 86_400 * 7 * 570 * 3)


def test_chain(p):
    c = p["chain"]
    # Besu: 2 s blocks assumed, 1 confirmation; 8,640 anchors a day per ledger x 6 ledgers = 51,840
    assert (c["block_time_s"], c["confirmations"]) == (2.0, 1)
    assert c["tx_per_day_per_ledger"] == 8_640 and c["tx_per_day"] == 51_840
    # gas: 51,840 x 80,000 = 4.1472e9 a day; first anchors once: 6 x (95,000 - 80,000) = 90,000
    assert c["gas_per_day"] == 4.1472e9 and c["gas_once"] == 90_000
    # share of the chain: 4.1472e9 / (30,000,000 x 86,400 / 2) = 4.1472e9 / 1.296e12 = 0.0032
    assert c["share_of_chain_gas"] == pytest.approx(0.0032)
    # per-record design for comparison: 100,000 x 86,400 x 95,000 gas a day
    assert c["per_record_gas_per_day"] == pytest.approx(100_000 * 86_400 * 95_000)
    # checkpoint -> confirmed: the measured poll-1 s row (1,500 / 2,000 ms) + the next 2 s block: +1,000 ms at
    # p50 (T/2), +2,000 at p99 (T) -> 2,500 / 4,000 ms
    assert c["anchor_latency"]["p50_ms"] == 2_500 and c["anchor_latency"]["p99_ms"] == 4_000


def test_producer_latency(p):
    lat = p["latency"]
    assert (lat["receipt_http_batch"]["p50_ms"], lat["receipt_http_batch"]["p99_ms"]) == (50.0, 100.0)
    assert (lat["receipt_http_single"]["p50_ms"], lat["receipt_direct"]["p99_ms"]) == (15.0, 10.0)
    # anchored: checkpoint 500 + half the 10 s anchor interval 5,000 + 2,500 = 8,000 ms at p50;
    # 1,000 + 0.99 x 10,000 + 4,000 = 14,900 ms at p99
    assert lat["anchored"]["p50_ms"] == pytest.approx(8_000)
    assert lat["anchored"]["p99_ms"] == pytest.approx(14_900)


def test_too_few_ledgers_warns():
    # 2 ledgers at 150,000 records/s peak: 75,000 each, over one process's 28,000 usable; 6 needed
    p = C.plan(C.Target(**{**TARGET, "ledgers": 2}), copy.deepcopy(FIGURES))
    assert p["ledgers"] == 2
    assert any("2 ledger(s) cannot take 150,000 records/s" in w and "at least 6 ledgers" in w for w in p["warnings"])


def test_fisco_defaults_and_markdown(p):
    q = C.plan(C.Target(**{**TARGET, "chain": "fisco-bcos"}), copy.deepcopy(FIGURES))
    # FISCO BCOS: 1 s blocks assumed: 1,500 + 500 = 2,000 ms p50, 2,000 + 1,000 = 3,000 ms p99
    assert q["chain"]["anchor_latency"]["p50_ms"] == 2_000 and q["chain"]["anchor_latency"]["p99_ms"] == 3_000
    md = C.render_markdown(p)
    assert "- **Ingest processes: 6** = ceil(150,000 / 28,000); **6.0 cores**; **1 node(s)** of 8 cores" in md
    assert "**Proof server processes: 2**" in md
    assert "| **total** | 3.05 PB | 6.10 PB |" in md
    assert "**Partitions: 13** = max(ledgers 6, ceil(150,000 / (17,544 x 0.7)))." in md
    assert "**51,840 a day** for 6 ledger(s)" in md
    assert "| court | proof bundle, GET /proof | 10.3 | 20.7 |" in md
    assert "## Assumptions" in md and "assumed, not measured" in md


@pytest.mark.parametrize("change, message", [
    ({"sustained": 0}, "--sustained must be a positive rate in records/s, got 0"),
    ({"sustained": -5}, "--sustained must be a positive rate in records/s, got -5"),
    ({"peak": 50_000}, "--peak (50000 records/s) is below --sustained (100000)"),
    ({"peak": float("inf")}, "--peak must be a finite number, got inf"),
    ({"record_bytes": 20}, "--record-bytes must be between 100 and 16,384"),
    ({"record_bytes": 20_000}, "--record-bytes must be between 100 and 16,384"),
    ({"retention_years": 0}, "--retention-years must be more than 0 and at most 100, got 0"),
    ({"retention_years": float("nan")}, "--retention-years must be a finite number, got nan"),
    ({"proof_rps": 0}, "--proof-rps must be a positive rate in proof requests/s, got 0"),
    ({"anchor_interval_s": -1}, "--anchor-interval must be a positive number of seconds, got -1"),
    ({"headroom": 1.5}, "--headroom is the utilisation to plan for, more than 0 and at most 1"),
    ({"headroom": 0}, "--headroom is the utilisation to plan for"),
    ({"ledgers": 0}, "--ledgers must be a whole number of at least 1, got 0"),
    ({"chain": "bitcoin"}, "--chain must be one of fisco-bcos, besu, anvil, in-process, got 'bitcoin'"),
    ({"node_cores": 0}, "--node-cores must be a whole number of at least 1, got 0"),
    ({"confirmations": 0}, "--confirmations must be a whole number of at least 1, got 0"),
])
def test_refusals(change, message):
    with pytest.raises(C.PlanError) as exc:
        C.plan(C.Target(**{**TARGET, **change}), copy.deepcopy(FIGURES))
    assert message in str(exc.value)


def test_command_line_refuses(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        C.main(["--sustained", "1000", "--peak", "500", "--record-bytes", "300", "--retention-years", "5",
                "--proof-rps", "10", "--results", str(tmp_path)])
    assert exc.value.code == 2
    assert "--peak (500 records/s) is below --sustained (1000)" in capsys.readouterr().err


def test_command_line_writes(capsys, tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    for name, data in FIGURES.items():
        (results / f"{name}-20261126T000000Z.json").write_text(json.dumps(data))
    out = tmp_path / "plan" / "capacity"
    rc = C.main(["--sustained", "100000", "--peak", "150000", "--record-bytes", "500", "--retention-years", "2",
                 "--proof-rps", "1000", "--chain", "besu", "--node-cores", "8", "--results", str(results),
                 "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "# Capacity plan" in printed and "**Ingest processes: 6**" in printed
    saved = json.loads(out.with_suffix(".json").read_text())
    assert saved["ingest"]["processes"] == 6 and saved["chain"]["tx_per_day"] == 51_840
    assert out.with_suffix(".md").read_text().startswith("# Capacity plan")


def test_latest_results_prefers_full_runs_of_this_machine(tmp_path):
    here = {"cpu": "Test CPU", "cores": 4}
    def write(path, rate, machine=here, quick=False):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"machine": machine, "quick": quick,
                                    "durable": [{"threads": 1, "group": 1000, "records_per_s": rate}]}))
    write(tmp_path / "ingest-20261101T000000Z.json", 1.0)  # old full run, this machine
    write(tmp_path / "ingest-20261102T000000Z.json", 2.0)  # newer full run, this machine: chosen
    write(tmp_path / "20261103T000000Z" / "ingest-20261103T000001Z.json", 3.0, quick=True)  # newer, quick
    write(tmp_path / "ingest-20261104T000000Z.json", 4.0, machine={"cpu": "Other", "cores": 64})  # other machine
    # a suite folder's report.json with an even newer quick run
    (tmp_path / "20261105T000000Z").mkdir()
    (tmp_path / "20261105T000000Z" / "report.json").write_text(json.dumps({
        "stamp": "20261105T000000Z", "modules": {"ingest": {"json": "ingest-20261105T000001Z.json"}},
        "results": {"ingest": {"machine": here, "quick": True, "durable": [{"records_per_s": 5.0}]}}}))
    results, sources = C.latest_results(tmp_path, here)
    assert results["ingest"]["durable"][0]["records_per_s"] == 2.0
    assert sources["ingest"]["stamp"] == "20261102T000000Z" and sources["ingest"]["this_machine"]
    # with only quick runs left, the newest quick one (from the report.json)
    (tmp_path / "ingest-20261101T000000Z.json").unlink()
    (tmp_path / "ingest-20261102T000000Z.json").unlink()
    results, sources = C.latest_results(tmp_path, here)
    assert results["ingest"]["durable"][0]["records_per_s"] == 5.0 and sources["ingest"]["quick"]


def test_on_the_committed_sample():
    """The planner on the sample of real results (tests/fixtures/bench_sample_report.json)."""
    sample = json.loads((Path(__file__).parent / "fixtures" / "bench_sample_report.json").read_text())
    p = C.plan(C.Target(sustained=20_000, peak=60_000, record_bytes=400, retention_years=10, proof_rps=50,
                        anchor_interval_s=10, chain="fisco-bcos"), sample["results"])
    # http: the best batch row, 37,253 records/s at 1.10 server cores; usable 37,253 x 0.7 = 26,077;
    # ceil(60,000 / 26,077) = ceil(2.30) = 3 processes
    assert p["ingest"]["rate_per_process"] == pytest.approx(37_253.04, abs=0.01)
    assert p["ingest"]["processes"] == 3
    # the event envelope measured: 420 - 345 = 75 bytes
    assert p["disk"]["envelope_bytes"] == 75
    assert p["chain"]["gas_per_anchor"] == 76_908
    assert C.render_markdown(p).startswith("# Capacity plan")
