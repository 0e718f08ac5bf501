"""`evledger rebuild LEDGER`: replay a ledger's log from position 0 into fresh projections and
check that every logged checkpoint root comes out bit for bit.

The new projections are built beside the old ones (`projections.rebuilding/`) and replace them
only if the whole log replayed and every checkpoint matched; on a mismatch the old ones stay
and the first checkpoint size that failed is reported.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
from tqdm import tqdm

from . import events as ev
from .ledger import LedgerError, check_ledger_id
from .log import LogBackend
from .projections import CheckpointMismatch, Projections
from .sequencer import Sequencer


@dataclass
class RebuildReport:
    ledger: str
    events: int
    records: int
    checkpoints_verified: int
    seconds: float
    mismatch: CheckpointMismatch | None = None

    @property
    def ok(self) -> bool:
        return self.mismatch is None

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def rebuild_ledger(data_dir: str | os.PathLike, ledger_id: str, log_backend: LogBackend,
                   progress: bool = True) -> RebuildReport:
    check_ledger_id(ledger_id)
    first = next(iter(log_backend.read(ledger_id, 0, 1)), None)
    if first is None or first.type != ev.LEDGER_CREATED:
        raise LedgerError("unknown_ledger", f"no ledger {ledger_id!r} in the log")
    alg = orjson.loads(first.data)["alg"]
    ledger_dir = Path(data_dir) / "ledgers" / ledger_id
    target = ledger_dir / "projections"
    scratch = ledger_dir / "projections.rebuilding"
    Projections.destroy(scratch)
    projections = Projections(scratch, ledger_id, alg)
    sequencer = Sequencer(ledger_id, log_backend, projections)  # no signer: it never seals
    checkpoints = [0]
    sequencer.on_sealed.append(lambda payload: checkpoints.__setitem__(0, checkpoints[0] + 1))
    total = log_backend.version(ledger_id)
    started = time.perf_counter()
    mismatch = None
    try:
        with tqdm(total=total, unit="ev", desc=f"rebuilding {ledger_id}", disable=not progress) as bar:
            sequencer.catch_up(progress=bar.update)
    except CheckpointMismatch as exc:
        mismatch = exc
    finally:
        records = projections.record_count
        projections.close()
    seconds = time.perf_counter() - started
    if mismatch is None:
        old = ledger_dir / "projections.old"
        Projections.destroy(old)
        if target.exists():
            target.rename(old)
        scratch.rename(target)
        Projections.destroy(old)
    else:
        shutil.rmtree(scratch, ignore_errors=True)
    return RebuildReport(ledger_id, total, records, checkpoints[0], seconds, mismatch)
