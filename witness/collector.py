"""The ledger's side of witnessing: after each checkpoint is sealed, send it to the ledger's
witnesses (c2sp.org/tlog-witness add-checkpoint, with the consistency proof from the size each
witness last cosigned), check each cosignature, and log it as a CheckpointCosigned event, so
cosignatures are served with the checkpoint and carried by proof bundles (docs/witness.md).

One thread per witness: a witness that is down or slow delays its own cosignatures and
nothing else (ingest, sealing, anchoring and the other witnesses go on); its lag is a metric.
Checkpoints go to a witness in order, so each is cosigned while the witness keeps up; after
an outage of more than MAX_BACKLOG checkpoints it gets the latest one, with one proof.
"""
from __future__ import annotations

import base64
import logging
import re
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator, model_validator

from evledger_verify.cosignature import parse_cosigner_key
from evledger_verify.note import CheckpointError
from ingest.leaf import parse_received_at
from ingest.ledger import LedgerError

from .cosigning import cosignature_payload, log_cosignature

log = logging.getLogger("evledger.witness")

MAX_BACKLOG = 256
MAX_SEALED_KEPT = 4 * MAX_BACKLOG
MAX_CONFLICTS = 3  # 409s in a row before backing off: one resolves a restored state, more is a witness that flips
# What a witness answers that means it saw something else of this log (not an outage): ALERT.
ALARMING_STATUSES = (403, 404, 409, 422)
MAX_ANSWER_BYTES = 64 * 1024  # a witness answers with a few signature lines
MAX_LINES = 16  # lines with the witness's name checked per answer (each an SM2 verification)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


# --- the configuration: a TOML file (docs/witness.md) ----------------------------------------


class WitnessEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(pattern=r"^https?://[^\s]+$", description="the witness's submission prefix")
    key: str = Field(description="the witness's cosigning verifier key")
    ledgers: list[str] | None = Field(default=None, min_length=1,
                                      description="the ledgers it witnesses (default: all)")

    @field_validator("url")
    @classmethod
    def _is_url(cls, value: str) -> str:
        try:
            url = httpx.URL(value)
        except (httpx.InvalidURL, ValueError) as exc:
            raise ValueError(f"not a URL: {exc}") from None
        if not url.host:
            raise ValueError("the URL has no host")
        if url.port is not None and not 0 < url.port < 65536:
            raise ValueError(f"port {url.port} is not a TCP port (1-65535)")
        return value

    @field_validator("key")
    @classmethod
    def _is_witness_key(cls, value: str) -> str:
        try:
            parse_cosigner_key(value)
        except CheckpointError as exc:
            raise ValueError(f"not a witness key: {exc}") from None
        return value


class WitnessConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    witness: list[WitnessEntry] = Field(min_length=1, description="the witnesses, at least one")
    threshold: StrictInt | None = Field(default=None, ge=1, description="cosignatures that make a checkpoint "
                                                                        "witnessed (default: every witness of the ledger)")
    thresholds: dict[str, Annotated[StrictInt, Field(ge=1)]] = Field(default_factory=dict,
                                                                      description="per-ledger thresholds")
    timeout: float = Field(default=5.0, gt=0, le=300, strict=True,
                           description="seconds to wait for a witness's answer")

    @model_validator(mode="after")
    def _thresholds_can_be_met(self) -> "WitnessConfig":
        if self.threshold is not None and self.threshold > len(self.witness):
            raise ValueError(f"threshold {self.threshold} is above the {len(self.witness)} witnesses listed")
        for ledger_id, k in self.thresholds.items():
            if k > len(self.witnesses_of(ledger_id)):
                raise ValueError(f"thresholds.{ledger_id} = {k} is above the {len(self.witnesses_of(ledger_id))} "
                                 f"witnesses of that ledger")
        return self

    def witnesses_of(self, ledger_id: str) -> list[WitnessEntry]:
        return [w for w in self.witness if w.ledgers is None or ledger_id in w.ledgers]

    def threshold_of(self, ledger_id: str) -> int:
        """Cosignatures that make a checkpoint of this ledger witnessed: its own threshold, else the
        file's (never more than its witnesses: a ledger with fewer needs all of them), else all."""
        count = len(self.witnesses_of(ledger_id))
        return self.thresholds.get(ledger_id, min(count, self.threshold or count))


def load_witness_config(path: str | Path) -> WitnessConfig:
    """The witness configuration in a TOML file; ValueError saying what is wrong and where."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not TOML: {exc}") from None
    except RecursionError:
        raise ValueError(f"{path}: not TOML this loader can read: nested too deeply") from None
    try:
        config = WitnessConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"{path}: {where + ': ' if where else ''}{first['msg']}") from None
    names = [parse_cosigner_key(w.key)[:2] for w in config.witness]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: a witness key is listed twice")
    return config


# --- metrics ------------------------------------------------------------------------------------


class WitnessMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        r = self.registry = registry if registry is not None else CollectorRegistry()
        self.cosigned = Counter("evledger_witness_cosignatures", "Cosignatures collected and logged", ["witness"],
                                registry=r)
        self.errors = Counter("evledger_witness_errors", "Witness requests that failed, by kind", ["witness", "kind"],
                              registry=r)
        self.cosigned_size = Gauge("evledger_witness_cosigned_size", "The largest checkpoint size the witness "
                                   "cosigned", ["ledger", "witness"], registry=r)
        self.lag_seconds = Gauge("evledger_witness_lag_seconds", "Age of the oldest sealed checkpoint the witness "
                                 "has not cosigned (0: caught up)", ["ledger", "witness"], registry=r)
        self.latency = Histogram("evledger_witness_cosign_latency_seconds", "Checkpoint sealed to its cosignature "
                                 "logged", ["witness"], buckets=LATENCY_BUCKETS, registry=r)


# --- the collector ------------------------------------------------------------------------------


class WitnessRefused(Exception):
    """The witness answered, and not with a cosignature."""

    def __init__(self, status: int, text: str):
        super().__init__(f"HTTP {status}: {text.strip()[:300]}")
        self.status, self.text = status, text


@dataclass
class _Progress:
    size: int = 0  # the largest size this witness cosigned, as far as this ledger knows
    unconfirmed: bool = False  # `size` is what the witness said it holds (409), not a cosignature we logged
    conflicts: int = 0  # 409s since the last cosignature
    next_try: float = 0.0
    backoff: float = 0.0
    # size -> monotonic time it was sealed, for the latency histogram: the latest MAX_SEALED_KEPT
    sealed_at: dict[int, float] = field(default_factory=dict)
    waiting_since: float | None = None  # when the oldest checkpoint this witness has not cosigned was sealed

    def sealed(self, size: int, at: float) -> None:
        if size <= self.size:
            return
        self.sealed_at.setdefault(size, at)
        if len(self.sealed_at) > MAX_SEALED_KEPT:  # a witness down for long: keep the newest
            for s in sorted(self.sealed_at)[:len(self.sealed_at) - MAX_SEALED_KEPT]:
                del self.sealed_at[s]
        if self.waiting_since is None:
            self.waiting_since = at

    def cosigned(self, size: int) -> float | None:
        """Note a cosignature at `size`; seconds since it was sealed, when known."""
        at = self.sealed_at.pop(size, None)
        self.size = size
        for s in [s for s in self.sealed_at if s < size]:
            del self.sealed_at[s]
        self.waiting_since = min(self.sealed_at.values()) if self.sealed_at else None
        return None if at is None else time.monotonic() - at


class WitnessCollector:
    POLL = 1.0
    MAX_BACKOFF = 30.0

    def __init__(self, service, config: WitnessConfig, registry: CollectorRegistry | None = None):
        self.service = service
        self.config = config
        self.metrics = WitnessMetrics(registry)
        self._stop = threading.Event()
        self._wake = {w.key: threading.Event() for w in config.witness}
        self._progress: dict[tuple[str, str], _Progress] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._watched: set[str] = set()
        self._watch_lock = threading.Lock()

    # -- state ------------------------------------------------------------------------------

    def _watch(self, ledger) -> None:
        """Wake the witnesses of `ledger` when it seals, and note when each checkpoint was sealed."""
        with self._watch_lock:
            if ledger.id in self._watched:
                return
            self._watched.add(ledger.id)

        def sealed(payload: dict, ledger_id=ledger.id) -> None:
            now = time.monotonic()
            for entry in self.config.witnesses_of(ledger_id):
                progress = self._progress_of(entry, ledger_id)
                with self._lock:
                    progress.sealed(payload["size"], now)
                self._wake[entry.key].set()

        ledger.on_sealed(sealed)

    def _progress_of(self, entry: WitnessEntry, ledger_id: str) -> _Progress:
        with self._lock:
            progress = self._progress.get((entry.key, ledger_id))
        if progress is not None:
            return progress
        # Read outside the lock (the sequencer's on_sealed callback takes it): a scan of the index
        ledger = self.service.ledger(ledger_id)
        latest = ledger.latest_cosignature(parse_cosigner_key(entry.key)[1].hex())
        fresh = _Progress(latest["size"] if latest else 0)
        # Behind since before this process started: the lag counts from that checkpoint's seal.
        behind = ledger.checkpoints(after_size=fresh.size, limit=1)
        if behind:
            age = max(0.0, time.time() - parse_received_at(behind[0]["sealed_at"]) / 1e6)
            fresh.waiting_since = time.monotonic() - age
        with self._lock:
            return self._progress.setdefault((entry.key, ledger_id), fresh)

    # -- one witness -----------------------------------------------------------------------

    def step(self, entry: WitnessEntry, client: httpx.Client) -> None:
        """Bring every ledger of this witness up to date, as far as the witness answers."""
        name = parse_cosigner_key(entry.key)[0]
        for ledger_id in self.service.ledgers():
            if entry.ledgers is not None and ledger_id not in entry.ledgers:
                continue
            ledger = self.service.ledger(ledger_id)
            self._watch(ledger)
            progress = self._progress_of(entry, ledger_id)
            if time.monotonic() < progress.next_try:
                continue
            try:
                self._catch_up(entry, name, ledger, progress, client)
            except (httpx.HTTPError, WitnessRefused, CheckpointError) as exc:
                progress.conflicts = 0
                kind = "unreachable" if isinstance(exc, httpx.HTTPError) else (
                    "refused" if isinstance(exc, WitnessRefused) else "bad_cosignature")
                self.metrics.errors.labels(name, kind).inc()
                progress.backoff = min(self.MAX_BACKOFF, max(1.0, progress.backoff * 2))
                progress.next_try = time.monotonic() + progress.backoff
                alarming = kind == "bad_cosignature" or (isinstance(exc, WitnessRefused)
                                                          and exc.status in ALARMING_STATUSES)
                log.log(logging.ERROR if alarming else logging.WARNING, "%sledger %r: witness %s: %s; retrying in %.0f s",
                        "ALERT " if alarming else "", ledger_id, name, exc, progress.backoff)
            except LedgerError as exc:
                if exc.code != "log_unavailable":
                    raise
                progress.next_try = time.monotonic() + 5.0
            self._update_lag(ledger, name, progress)

    def _catch_up(self, entry: WitnessEntry, name: str, ledger, progress: _Progress, client: httpx.Client) -> None:
        while not self._stop.is_set():
            # After a 409 the witness holds a size we hold no cosignature for: our checkpoint of
            # that size goes first (old = new = that size), so a root that differs is refused.
            after = progress.size - 1 if progress.unconfirmed else progress.size
            pending = ledger.checkpoints(after_size=after, limit=MAX_BACKLOG + 1)
            if not pending:
                return
            checkpoint = pending[0] if len(pending) <= MAX_BACKLOG else ledger.latest_checkpoint()
            self._send(entry, name, ledger, progress, checkpoint, client)

    def _send(self, entry: WitnessEntry, name: str, ledger, progress: _Progress, checkpoint: dict,
              client: httpx.Client) -> None:
        old, size = progress.size, checkpoint["size"]
        proof = ledger.consistency_proof(old, size) if 0 < old < size else []
        body = f"old {old}\n" + "".join(base64.b64encode(p).decode() + "\n" for p in proof) + "\n" + checkpoint["note"]
        status, content_type, text = self._post(client, entry.url.rstrip("/") + "/add-checkpoint", body.encode())
        if status == 409 and content_type.startswith("text/x.tlog.size"):
            theirs = text.strip()
            if not re.fullmatch(r"0|[1-9][0-9]{0,19}", theirs):
                raise WitnessRefused(409, f"conflict with an unreadable size {theirs[:40]!r}")
            theirs = int(theirs)
            progress.conflicts += 1
            if progress.conflicts > MAX_CONFLICTS:
                raise WitnessRefused(409, f"the witness answered {progress.conflicts} conflicts in a row (last: size "
                                          f"{theirs}); trying again later")
            latest = ledger.latest_checkpoint()
            if theirs > latest["size"]:
                raise WitnessRefused(409, f"the witness has cosigned size {theirs} of this log, beyond its latest "
                                          f"checkpoint {latest['size']}: another signer, or this ledger lost data")
            if theirs == old:
                raise WitnessRefused(409, text)
            progress.size = theirs  # resend from the size the witness holds (lost events, a restored state)
            progress.unconfirmed = True
            if progress.waiting_since is None:  # behind from now on, whatever it cosigned before
                progress.waiting_since = time.monotonic()
            return
        if status != 200:
            raise WitnessRefused(status, text)
        kid = parse_cosigner_key(entry.key)[1]
        ours = [line + "\n" for line in text.split("\n") if line.startswith(f"\u2014 {name} ")][:MAX_LINES]
        for line in ours:
            try:
                payload = cosignature_payload(checkpoint, entry.key, line)
            except CheckpointError:
                continue  # another key of the same name, or a bad line: the one by our key decides
            log_cosignature(ledger, payload)
            self.metrics.cosigned.labels(name).inc()
            with self._lock:
                seconds = progress.cosigned(size)
            progress.unconfirmed = False
            progress.conflicts = 0
            progress.backoff = 0.0
            if seconds is not None:
                self.metrics.latency.labels(name).observe(seconds)
            return
        raise CheckpointError(f"the witness answered 200 without a valid cosignature by {name} ({kid.hex()})")

    @staticmethod
    def _post(client: httpx.Client, url: str, body: bytes) -> tuple[int, str, str]:
        """(status, content type, text) of a witness's answer, read up to MAX_ANSWER_BYTES: a
        witness is another party's server, and its answer is a few signature lines."""
        with client.stream("POST", url, content=body) as answer:
            data = b""
            for chunk in answer.iter_bytes():
                data += chunk
                if len(data) > MAX_ANSWER_BYTES:
                    raise WitnessRefused(answer.status_code, f"an answer over {MAX_ANSWER_BYTES} bytes")
            return answer.status_code, answer.headers.get("content-type", ""), data.decode("utf-8", "replace")

    def _update_lag(self, ledger, name: str, progress: _Progress) -> None:
        self.metrics.cosigned_size.labels(ledger.id, name).set(progress.size)
        since = progress.waiting_since
        self.metrics.lag_seconds.labels(ledger.id, name).set(0.0 if since is None else time.monotonic() - since)

    # -- the threads -----------------------------------------------------------------------

    def start(self) -> None:
        for ledger_id in self.service.ledgers():
            self._watch(self.service.ledger(ledger_id))
        for entry in self.config.witness:
            thread = threading.Thread(target=self._run, args=(entry,), daemon=True,
                                      name=f"witness-{parse_cosigner_key(entry.key)[0]}")
            thread.start()
            self._threads.append(thread)

    def _run(self, entry: WitnessEntry) -> None:
        with httpx.Client(timeout=self.config.timeout) as client:
            while not self._stop.is_set():
                try:
                    self.step(entry, client)
                except Exception as exc:  # a bug: keep the thread alive and say so loudly
                    log.exception("witness collector step failed: %s", exc)
                self._wake[entry.key].wait(self.POLL)
                self._wake[entry.key].clear()

    def wake(self) -> None:
        for event in self._wake.values():
            event.set()

    def stop(self) -> None:
        self._stop.set()
        self.wake()
        for thread in self._threads:  # a request under way ends within the configured timeout
            thread.join(2 * self.config.timeout + 5)
        self._threads = []
