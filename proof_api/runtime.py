"""What `evledger serve` runs in one process: the ledgers (write path and sequencers), the
anchor worker and the access store, plus the Prometheus metrics the API exposes."""
from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge

from anchor.worker import AnchorSettings, AnchorWorker
from ingest.ledger import LedgerService, SequencerSettings
from merkle.hashing import warm_up

from .access import ALL_LEDGERS, AccessStore
from .filestore import FileStore

log = logging.getLogger("evledger.serve")


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.records = Counter("evledger_records", "Records recorded", ["ledger"], registry=self.registry)
        self.rejected = Counter("evledger_records_rejected", "Records refused (validation or conflict)",
                                ["ledger"], registry=self.registry)
        self.requests = Counter("evledger_http_requests", "HTTP requests by status class",
                                ["status"], registry=self.registry)
        self.errors = Counter("evledger_errors", "Error responses by code", ["code"], registry=self.registry)
        self.checkpoints = Gauge("evledger_checkpoints", "Checkpoints sealed (batches)", ["ledger"], registry=self.registry)
        self.checkpoint_lag = Gauge("evledger_checkpoint_lag_records", "Records logged but not yet in a checkpoint",
                                    ["ledger"], registry=self.registry)
        self.anchor_lag = Gauge("evledger_anchor_lag_records", "Records checkpointed but not yet covered by a "
                                "confirmed anchor", ["ledger"], registry=self.registry)
        # The names docs/api.md lists, kept as gauges (a Counter would show them as *_total) that read
        # the anchor worker's counters, registered here too, at each scrape: see `follow`.
        self.anchor_failures = Gauge("evledger_anchor_failures", "AnchorFailed events since start", registry=self.registry)
        self.chain_errors = Gauge("evledger_chain_errors", "Chain endpoint errors since start", registry=self.registry)
        self.tiles_published = Gauge("evledger_tiles_published_size", "Tree size of the checkpoint in the ledger's "
                                     "static tiles publication", ["ledger"], registry=self.registry)
        self.tiles_failing = Gauge("evledger_tiles_failing", "1 while publishing the ledger's tiles fails (it "
                                   "retries)", ["ledger"], registry=self.registry)

    def follow(self, worker: AnchorWorker) -> None:
        """Expose `worker`'s counts under the documented gauge names (0 while there is no worker)."""
        self.anchor_failures.set_function(lambda: worker.metrics.failed)
        self.chain_errors.set_function(lambda: worker.metrics.chain_errors)


class Runtime:
    def __init__(self, data_dir: str | os.PathLike, log_backend=None, settings: SequencerSettings = SequencerSettings(),
                 chain=None, anchor_settings: AnchorSettings = AnchorSettings(), max_file_bytes: int = 1 << 30,
                 file_store: str | os.PathLike | None = None, witness_config=None,
                 tiles_dir: str | os.PathLike | None = None):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.files = FileStore(file_store) if file_store is not None else None  # None: uploads keep only the SM3
        self.service = LedgerService(self.data_dir, log_backend, settings)
        self.access = AccessStore(self.data_dir / "access.json")
        self.metrics = Metrics()
        self.max_file_bytes = max_file_bytes
        self.started = time.time()
        self.worker: AnchorWorker | None = None
        if chain is not None:
            self.worker = AnchorWorker(self.service, chain, anchor_settings, registry=self.metrics.registry)
            self.metrics.follow(self.worker)
            self.worker.start()
        self.witnesses = None  # the witness collector, when the ledgers have witnesses
        if witness_config is not None:
            from witness.collector import WitnessCollector

            self.witnesses = WitnessCollector(self.service, witness_config, registry=self.metrics.registry)
            self.witnesses.start()
        self.tiles = None  # the static tiles publication, when it is on
        if tiles_dir is not None:
            from ingest.publication import TilePublication

            self.tiles = TilePublication(self.service, tiles_dir)
        # The SM3 kernels, before the first records need them: not ready until then.
        self.warmed = threading.Event()
        self._warm_failure: str | None = None
        threading.Thread(target=self._warm_up, name="evledger-warm-up", daemon=True).start()

    def _warm_up(self) -> None:
        started = time.perf_counter()
        try:
            warm_up()
        except Exception as exc:  # the write path would fail the same way: say so on /readyz
            self._warm_failure = f"the SM3 kernels failed to compile: {type(exc).__name__}: {exc}"
            log.error("%s", self._warm_failure)
        else:
            seconds = time.perf_counter() - started
            if seconds > 2:
                log.warning("compiled the SM3 kernels in %.0f s (numba caches them: later starts take well "
                            "under a second)", seconds)
        finally:
            self.warmed.set()

    def bootstrap_admin_key(self) -> str | None:
        """On first start, a service admin key written to <data dir>/admin.key (0600)."""
        if self.access.has_service_admin():
            return None
        _, key = self.access.create_key(ALL_LEDGERS, "admin")
        path = self.data_dir / "admin.key"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, (key + "\n").encode())
        finally:
            os.close(fd)
        return str(path)

    def refresh_gauges(self) -> None:
        m = self.metrics
        for ledger_id in self.service.ledgers():
            ledger = self.service.ledger(ledger_id)
            latest = ledger.latest_checkpoint()
            sealed = latest["size"] if latest else 0
            m.checkpoint_lag.labels(ledger_id).set(ledger.record_count - sealed)
            m.checkpoints.labels(ledger_id).set(len(ledger.checkpoints()))
            anchored = ledger.latest_anchor(status="confirmed")
            m.anchor_lag.labels(ledger_id).set(sealed - (anchored["size"] if anchored else 0))
        if self.tiles is not None:
            for ledger_id, publisher in list(self.tiles.publishers.items()):
                m.tiles_published.labels(ledger_id).set(publisher.published)
                m.tiles_failing.labels(ledger_id).set(0 if publisher.failure is None else 1)

    def problems(self) -> list[str]:
        """Why the service is not ready, if it is not."""
        out = []
        if not self.warmed.is_set():
            out.append("compiling the SM3 kernels (the first start on this machine: up to about a minute)")
        elif self._warm_failure is not None:
            out.append(self._warm_failure)
        unavailable = getattr(self.service.log, "unavailable", None)
        if unavailable:  # e.g. the disk is full: receipts answer log_unavailable until it reopens
            out.append(f"the log takes no writes: {unavailable}")
        for ledger_id in self.service.ledgers():
            problem = self.service.ledger(ledger_id).problem()
            if problem is not None:
                out.append(f"ledger {ledger_id}: {problem}")
        return out

    def close(self) -> None:
        if self.tiles is not None:
            self.tiles.stop()
        if self.witnesses is not None:
            self.witnesses.stop()
        if self.worker is not None:
            self.worker.stop()
        self.service.close()
