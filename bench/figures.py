"""Figures read off the benchmark modules' result JSONs, shared by the suite's report
(bench.report) and the capacity planner (bench.capacity). Pure functions over dicts: no
clocks, no files, no imports of the service, so both can be tested on fixed sample results.

Every function tolerates a missing or partial result (a module that failed or was not run)
by returning None or an empty list; callers say "not measured" then.
"""
from __future__ import annotations

import math

# The service's defaults (ingest.sequencer.SequencerSettings, anchor.worker.AnchorSettings).
# The anchor benchmark records the settings it ran with; those win where present.
DEFAULT_BATCH_MAX_ITEMS = 65536
DEFAULT_BATCH_MAX_DELAY_S = 1.0
DEFAULT_ANCHOR_MIN_INTERVAL_S = 10.0
DEFAULT_POLL_INTERVAL_S = 1.0
SECONDS_PER_DAY = 86_400
DAYS_PER_YEAR = 365


def _num(x) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


# -- policy ---------------------------------------------------------------------------------------

def settings(results: dict) -> dict:
    """batch_max_items, batch_max_delay_s, anchor_min_interval_s, poll_interval_s: as the anchor
    benchmark recorded them, else the service's defaults."""
    s = ((results.get("anchor") or {}).get("tx_per_million") or {}).get("settings") or {}
    return {"batch_max_items": int(s.get("batch_max_items") or DEFAULT_BATCH_MAX_ITEMS),
            "batch_max_delay_s": float(s.get("batch_max_delay_s") or DEFAULT_BATCH_MAX_DELAY_S),
            "anchor_min_interval_s": float(s.get("anchor_min_interval_s") or DEFAULT_ANCHOR_MIN_INTERVAL_S),
            "poll_interval_s": float(s.get("poll_interval_s") or DEFAULT_POLL_INTERVAL_S)}


def checkpoint_interval_s(rate: float, batch_max_items: int = DEFAULT_BATCH_MAX_ITEMS,
                          batch_max_delay_s: float = DEFAULT_BATCH_MAX_DELAY_S) -> float:
    """A ledger taking `rate` records/s seals a checkpoint when batch_max_items have gathered or
    the oldest waited batch_max_delay: every min(items / rate, delay) seconds."""
    return min(batch_max_items / rate, batch_max_delay_s)


def chain_tx_per_day(anchor_interval_s: float, rate: float, batch_max_items: int = DEFAULT_BATCH_MAX_ITEMS,
                     batch_max_delay_s: float = DEFAULT_BATCH_MAX_DELAY_S) -> float:
    """Anchor transactions per day for ONE ledger taking `rate` records/s: the policy anchors at
    most every max(anchor interval, checkpoint interval) seconds (there is nothing new to anchor
    between checkpoints). A ceiling: the worker also waits for each anchor's confirmation and
    for its next pass, which can only stretch the interval."""
    return SECONDS_PER_DAY / max(anchor_interval_s, checkpoint_interval_s(rate, batch_max_items, batch_max_delay_s))


# -- merkle_bench ---------------------------------------------------------------------------------

HASHER_IMPLS = (  # (key prefix in merkle_bench's JSON, label)
    ("numba_multibuffer", "numba multi-buffer (64 lanes)"),
    ("numba_scalar", "numba scalar"),
    ("openssl_speed", "OpenSSL C loop (openssl speed -evp sm3)"),
    ("hashlib_loop", "Python loop over hashlib.new('sm3')"),
    ("gmssl", "gmssl (pure Python)"),
)


def hasher_rows(merkle: dict | None, kind: str) -> list[dict]:
    """kind "nodes" or "leaves": one row per implementation, {label, threads -> messages/s}."""
    r = (merkle or {}).get(kind)
    if not r:
        return []
    cores = int(r.get("cores") or 1)
    rows = []
    for key, label in HASHER_IMPLS:
        by_threads = {}
        for t in sorted({1, cores}):
            v = _num(r.get(f"{key}_{t}core"))
            if v is not None:
                by_threads[t] = v
        if by_threads:
            rows.append({"key": key, "label": label, "rates": by_threads})
    return rows


def proof_rows(merkle: dict | None) -> list[dict]:
    """merkle_bench's inclusion proofs (RocksDB store, SM3), sorted by tree size."""
    return sorted((merkle or {}).get("proofs") or [], key=lambda r: r["tree_size"])


def proof_latency_at(merkle: dict | None, tree_size: float, key: str = "p50_us") -> tuple[float | None, str]:
    """The proof latency (µs) at `tree_size`, interpolated linearly in log10(tree size) between
    the measured sizes, or extrapolated from the last two beyond them (a proof's work grows
    with log n: one more level per doubling). Returns (value, how it was obtained)."""
    rows = [r for r in proof_rows(merkle) if _num(r.get(key)) is not None]
    if not rows:
        return None, "not measured"
    x = math.log10(max(tree_size, 1))
    pts = [(math.log10(r["tree_size"]), float(r[key])) for r in rows]
    for lx, v in pts:
        if abs(lx - x) < 1e-9:
            return v, f"measured at {10 ** lx:,.0f}"
    if len(pts) == 1:
        return pts[0][1], f"only {10 ** pts[0][0]:,.0f} measured"
    if x < pts[0][0]:
        return pts[0][1], f"below the smallest measured size ({10 ** pts[0][0]:,.0f}): its figure"
    for (x0, v0), (x1, v1) in zip(pts, pts[1:]):
        if x0 <= x <= x1:
            return v0 + (v1 - v0) * (x - x0) / (x1 - x0), (f"interpolated in log(size) between "
                                                           f"{10 ** x0:,.0f} and {10 ** x1:,.0f}")
    (x0, v0), (x1, v1) = pts[-2], pts[-1]
    return v1 + (v1 - v0) * (x - x1) / (x1 - x0), (f"extrapolated in log(size) beyond the largest measured "
                                                   f"({10 ** x1:,.0f})")


# -- ingest_bench ---------------------------------------------------------------------------------

def durable_peak(ingest: dict | None) -> dict | None:
    """The best durable row (Ledger.submit, sequencer running): the per-process rate."""
    rows = (ingest or {}).get("durable") or []
    return max(rows, key=lambda r: r["records_per_s"]) if rows else None


def ingest_latency(ingest: dict | None) -> dict | None:
    return (ingest or {}).get("latency")


# -- api_bench ------------------------------------------------------------------------------------

def best_row(rows: list[dict] | None, key: str = "items_per_s") -> dict | None:
    rows = [r for r in rows or [] if _num(r.get(key)) is not None]
    return max(rows, key=lambda r: r[key]) if rows else None


def lowest_concurrency_row(rows: list[dict] | None) -> dict | None:
    rows = [r for r in rows or [] if r.get("p50_ms") is not None]
    return min(rows, key=lambda r: (r.get("concurrency", 0), r.get("batch", 0))) if rows else None


# -- anchor_bench ---------------------------------------------------------------------------------

def anchor_row(anchor: dict | None, *, chain_prefix: str, block_time: float | None, confirmations: int = 1,
               poll: float | None = None, mode: str = "one at a time") -> dict | None:
    """The anchor latency row for a chain kind (matched on the start of its name), block time,
    confirmations, worker poll (None: the smallest measured) and mode."""
    rows = [r for r in (anchor or {}).get("latency") or []
            if r.get("chain", "").startswith(chain_prefix) and r.get("block_time_s") == block_time
            and r.get("confirmations") == confirmations and r.get("mode") == mode
            and (r.get("latency") or {}).get("n")]
    if poll is not None:
        rows = [r for r in rows if abs(r.get("poll_interval_s", -1) - poll) < 1e-9]
    return min(rows, key=lambda r: r.get("poll_interval_s", 0)) if rows else None


def anchor_gas(anchor: dict | None) -> dict | None:
    g = (anchor or {}).get("gas")
    if not g:
        return None
    return {"first": _num(g.get("anchor_first_median")), "later": _num(g.get("anchor_later_median")),
            "transfer": _num(g.get("transfer_median")), "per_record_floor": _num(g.get("per_record_floor_median")),
            "block_gas_limit": _num(g.get("block_gas_limit")), "chain": g.get("chain"), "hardfork": g.get("hardfork")}


# -- stream (structure not fixed here: read generically) ------------------------------------------

def find_rates(d, path: str = "", suffix: str = "records_per_s") -> list[tuple[str, float]]:
    """Every (path, value) whose key ends in `suffix` (not a target or a goal), anywhere in d."""
    out = []
    if isinstance(d, dict):
        for k, v in d.items():
            p = f"{path}.{k}" if path else str(k)
            if isinstance(k, str) and k.endswith(suffix) and not k.startswith(("target", "goal")) and _num(v) is not None:
                out.append((p, float(v)))
            elif isinstance(v, (dict, list)) and k not in ("machine", "goals"):
                out += find_rates(v, p, suffix)
    elif isinstance(d, list):
        for i, v in enumerate(d):
            out += find_rates(v, f"{path}[{i}]", suffix)
    return out
