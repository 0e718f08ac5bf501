"""The monitor's checks, one pass at a time: every new checkpoint's signature by a pinned key
and its consistency with the last one verified (RFC 9162 §2.1.4.2), the last verified size still
served with the same root, every Anchored event's root equal to the checkpoint's at its size,
and every checkpoint covered in time by an anchor of its size or more."""
from __future__ import annotations

import bisect
import math
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from evledger_verify.note import CheckpointError, verify_checkpoint
from evledger_verify.proof import ProofError, verify_consistency

from .sources import ChainAnchors, LedgerApi, SourceError
from .state import MonitorState

# The kinds of alarm, each a value of the alert gauge's `kind` label (docs/monitor.md).
ALARM_KINDS = ("bad_checkpoint", "inconsistent", "split_view", "vanished", "anchor_mismatch",
               "anchor_without_checkpoint", "late_anchor")
MAX_BACKOFF_S = 60.0


@dataclass(frozen=True)
class Alarm:
    """One alarm: its kind, the sizes and roots it is about (in a fixed order), and a sentence.
    Its line is `ALERT <kind> ledger=<id> <key=value>... -- <sentence>`."""
    kind: str
    ledger: str
    fields: tuple[tuple[str, object], ...]
    message: str

    @property
    def key(self) -> str:
        """What makes two alarms the same one: raised once, however often it is seen again."""
        return " ".join([self.kind, *(f"{k}={v}" for k, v in self.fields if k not in ("sealed_at", "deadline"))])

    @property
    def line(self) -> str:
        return " ".join(["ALERT", self.kind, f"ledger={self.ledger}", *(f"{k}={v}" for k, v in self.fields),
                         "--", self.message])


@dataclass
class MonitorSettings:
    ledger: str
    origin: str
    trusted_keys: list[str]
    page_size: int = 1000
    max_anchor_delay: float | None = None  # seconds; None: no delay check
    confirmations: int = 1
    from_block: int = 0
    hash_alg: str | None = None  # None: as the server says, then pinned in the state


@dataclass
class PassResult:
    verified: int = 0
    anchors_checked: int = 0
    alarms: list[Alarm] = field(default_factory=list)


def parse_sealed_at(text) -> float:
    """Epoch seconds of a checkpoint's sealed_at ("2026-11-26T01:00:00.000000Z")."""
    try:
        return datetime.fromisoformat(text).timestamp()
    except (TypeError, ValueError):
        return math.nan


def _iso(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "never"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


class Monitor:
    def __init__(self, settings: MonitorSettings, api: LedgerApi, state: MonitorState,
                 chain: ChainAnchors | None = None, metrics=None, report=print):
        self.settings, self.api, self.state, self.chain = settings, api, state, chain
        self.metrics, self.report = metrics, report
        # key ID (hex) -> verifier key: the note's signature line names the key it needs
        from evledger_verify.note import parse_verifier_key
        self.keys = {parse_verifier_key(k)[1].hex(): k for k in settings.trusted_keys}
        identity = {"ledger": settings.ledger, "origin": settings.origin}
        if chain is not None:
            identity["contract"] = chain.contract.lower()
        state.bind(**identity)
        if settings.hash_alg:
            state.bind(hash_alg=settings.hash_alg)
        if metrics is not None:
            metrics.restore(state)

    # -- alarms -------------------------------------------------------------------------------

    def raise_alarm(self, result: PassResult, kind: str, message: str, **fields) -> None:
        alarm = Alarm(kind, self.settings.ledger, tuple(fields.items()), message)
        if self.state.add_alarm(alarm.key, kind, alarm.line, time.time()):
            result.alarms.append(alarm)
            self.report(alarm.line)
            if self.metrics is not None:
                self.metrics.alert.labels(kind).set(1)

    # -- one pass -----------------------------------------------------------------------------

    def check_once(self) -> PassResult:
        """One pass over what is new: checkpoints, then (with a chain) anchors and their delay.
        SourceError when the API or the chain cannot be read; what was verified before it is kept."""
        result = PassResult()
        agrees = self.sync_checkpoints(result)
        if self.chain is None:
            return result
        scanned_at = self.sync_anchors()
        self.check_anchors(result, final=False)
        if agrees and self.state.pending_anchors():
            # An anchor of a checkpoint sealed after the listing above: list again, then every
            # anchor must match a checkpoint.
            agrees = self.sync_checkpoints(result)
            self.check_anchors(result, final=agrees)
        if self.settings.max_anchor_delay is not None:
            self.check_anchor_delay(result, scanned_at)
        return result

    def _alg(self, page: dict) -> str:
        alg = self.state.meta("hash_alg")
        if alg is None:
            alg = page.get("hash_alg") if page.get("hash_alg") in ("sm3", "sha256") else "sm3"
            self.state.bind(hash_alg=alg)
        return alg

    def sync_checkpoints(self, result: PassResult) -> bool:
        """Verify every checkpoint past the last one verified. False when the server's history
        no longer agrees with what was verified (an alarm is raised)."""
        last = self.state.last_verified()
        if last is not None and not self._still_served(result, *last):
            return False
        after, root = (last[0], bytes.fromhex(last[1])) if last else (0, None)
        while True:
            page = self.api.checkpoints(after, self.settings.page_size)
            alg, items = self._alg(page), page["checkpoints"]
            rows: list[tuple[int, str, float]] = []
            agrees = True
            for item in items:
                verified = self._verify(result, item, after, root, alg)
                if verified is None:
                    agrees = False
                    break
                after, root = verified
                rows.append((after, root.hex(), parse_sealed_at(item.get("sealed_at"))))
            if rows:
                self.state.add_verified(rows)
                result.verified += len(rows)
                if self.metrics is not None:
                    self.metrics.verified.inc(len(rows))
                    self.metrics.last_size.set(after)
            if not agrees:
                return False
            if len(items) < self.settings.page_size:
                return True

    def _still_served(self, result: PassResult, size: int, root_hex: str) -> bool:
        """The server still has the last verified checkpoint, with the same root."""
        served = self.api.checkpoint(size)
        if served is None:
            self.raise_alarm(result, "vanished", f"the server no longer has the checkpoint of size {size} that "
                             "was verified", size=size, root=root_hex)
            return False
        if served.get("root") == root_hex:
            return True
        derived = served.get("derived_from")
        if derived is not None:  # static tiles: the root comes from the tree of a later signed checkpoint
            latest = self._signed({"note": derived["note"], "size": derived["size"]})
            if isinstance(latest, str):
                self.raise_alarm(result, "bad_checkpoint", f"the published checkpoint does not verify: {latest}",
                                 size=derived["size"])
            else:
                self.raise_alarm(result, "inconsistent", f"the published tree of size {latest.size}, signed by a pinned "
                                 f"key, gives root {served.get('root')} for size {size}, not the verified one: the "
                                 "ledger shows two histories", first=size, first_root=root_hex, size=latest.size,
                                 root=latest.root.hex())
            return False
        checkpoint = self._signed(served)
        if isinstance(checkpoint, str):
            self.raise_alarm(result, "bad_checkpoint", f"the server now shows a checkpoint of size {size} that "
                             f"does not verify: {checkpoint}", size=size, root=served.get("root"))
        else:
            self.raise_alarm(result, "split_view", f"two checkpoints of size {size}, both signed by a pinned key, "
                             "with different roots: the ledger shows two histories", size=size, root=root_hex,
                             seen=checkpoint.root.hex())
        return False

    def _signed(self, item: dict):
        """The checkpoint of a listed item, its signature checked with a pinned key; else why not."""
        note = item.get("note")
        if not isinstance(note, str):
            return "it carries no signed note"
        candidates = [self.keys[item["key_id"]]] if item.get("key_id") in self.keys else list(self.keys.values())
        why = "no pinned key"
        for vkey in candidates:
            try:
                checkpoint = verify_checkpoint(note, vkey)
                break
            except CheckpointError as exc:
                why = str(exc)
        else:
            return why
        if checkpoint.origin != self.settings.origin:
            return f"its origin is {checkpoint.origin!r}, not {self.settings.origin!r}"
        if checkpoint.size != item.get("size") or ("root" in item and checkpoint.root.hex() != item["root"]):
            return (f"its note says size {checkpoint.size} root {checkpoint.root.hex()}, the listing size "
                    f"{item.get('size')} root {item.get('root')}")
        return checkpoint

    def _verify(self, result: PassResult, item: dict, after: int, root: bytes | None, alg: str):
        """(size, root) of a listed checkpoint once verified against the last verified one
        (`after`, `root`); None after raising its alarm."""
        checkpoint = self._signed(item) if isinstance(item, dict) else "it is not an object"
        if isinstance(checkpoint, str):
            size = item.get("size") if isinstance(item, dict) else None
            self.raise_alarm(result, "bad_checkpoint", f"checkpoint does not verify: {checkpoint}", size=size,
                             root=item.get("root") if isinstance(item, dict) else None)
            return None
        if checkpoint.size <= after:
            raise SourceError(f"{self.api.base_url}: the listing after size {after} holds size {checkpoint.size}")
        if root is not None:
            given = item.get("consistency")
            if isinstance(given, dict) and given.get("first") == after and isinstance(given.get("proof"), list):
                try:
                    proof = [bytes.fromhex(p) for p in given["proof"]]
                except (TypeError, ValueError):
                    proof = given["proof"]  # verify_consistency says what is wrong with it
            else:  # a server without proofs in its listing
                proof = self.api.consistency(after, checkpoint.size)
            try:
                verify_consistency(alg, after, checkpoint.size, proof, root, checkpoint.root)
            except ProofError as exc:
                self.raise_alarm(result, "inconsistent", f"checkpoint of size {checkpoint.size} does not extend the "
                                 f"verified one of size {after}: {exc}", first=after, first_root=root.hex(),
                                 size=checkpoint.size, root=checkpoint.root.hex())
                return None
        return checkpoint.size, checkpoint.root

    # -- anchors ------------------------------------------------------------------------------

    def sync_anchors(self) -> float:
        """Read the ledger's Anchored events in the blocks not read yet (those `confirmations`
        deep); the earliest time an anchor not read yet can carry: that of the earliest anchor
        in the blocks mined but not deep enough yet (looked at, not kept), else the time now
        (a chain that mines no empty blocks may never bury them)."""
        now = time.time()
        head = self.chain.head()
        last = self.state.meta("last_block")
        first = int(last) + 1 if last is not None else self.settings.from_block
        until = head - (self.settings.confirmations - 1)
        if until >= first:
            self.state.add_anchors(self.chain.anchors(first, until), until)
        unread = max(first, until + 1)
        shallow = self.chain.anchors(unread, head) if unread <= head else []
        return float(min([now, *(time_ for _, _, _, time_, _ in shallow)]))

    def check_anchors(self, result: PassResult, final: bool) -> None:
        last = self.state.last_verified()
        for size, root, block, block_time, tx in self.state.pending_anchors():
            verified = self.state.verified_root(size)
            if verified is None:
                if not final and (last is None or size > last[0]):
                    continue  # its checkpoint may be sealed after the listing: the next listing has it
                self.raise_alarm(result, "anchor_without_checkpoint", f"the chain holds an anchor of size {size} "
                                 "and the ledger has no verified checkpoint of that size", size=size, anchored=root,
                                 block=block, tx=tx)
                status = "bad"
            elif verified != root:
                self.raise_alarm(result, "anchor_mismatch", f"the root anchored for size {size} is not the root "
                                 "of the ledger's signed checkpoint of that size", size=size, root=verified,
                                 anchored=root, block=block, tx=tx)
                status = "bad"
            else:
                status = "ok"
            self.state.set_anchor_status(size, root, block, status)
            result.anchors_checked += 1
            if self.metrics is not None:
                self.metrics.anchors.inc()

    def check_anchor_delay(self, result: PassResult, scanned_at: float) -> None:
        """Each checkpoint must be covered by an anchor of its size or more mined within
        max_anchor_delay seconds of its sealing (the anchor worker anchors the latest checkpoint
        only, so one anchor covers every checkpoint before it)."""
        uncovered = self.state.uncovered()
        if not uncovered:
            return
        anchors = self.state.good_anchors_from(uncovered[0][0])
        sizes = [size for size, _ in anchors]
        earliest_from = [0] * len(anchors)  # earliest block time of the anchors from index i on
        best = math.inf
        for i in range(len(anchors) - 1, -1, -1):
            best = min(best, anchors[i][1])
            earliest_from[i] = best
        covered, late = [], []
        for size, _root, sealed_at in uncovered:
            i = bisect.bisect_left(sizes, size)
            earliest = earliest_from[i] if i < len(anchors) else None
            deadline = sealed_at + self.settings.max_anchor_delay
            if math.isnan(sealed_at):
                covered.append(size)  # no sealing time to measure from: nothing to hold it to
            elif earliest is not None and earliest <= deadline:
                covered.append(size)
            elif earliest is not None or scanned_at > deadline:
                late.append((size, sealed_at, deadline, earliest))
        if covered:
            self.state.mark_covered(covered, 1)
        if late:
            self.state.mark_covered([size for size, *_ in late], 2)
            first, last = late[0], late[-1]
            sizes_text = str(first[0]) if len(late) == 1 else f"{first[0]}..{last[0]}"
            self.raise_alarm(result, "late_anchor", f"{len(late)} checkpoint(s) not anchored within "
                             f"{self.settings.max_anchor_delay:g} s of sealing", sizes=sizes_text, count=len(late),
                             sealed_at=_iso(first[1]), deadline=_iso(first[2]), anchored_at=_iso(first[3]))

    # -- following ----------------------------------------------------------------------------

    def follow(self, interval: float, stop: threading.Event, on_error=None) -> None:
        """Pass after pass every `interval` seconds until `stop` is set; a pass that cannot read
        the API or the chain is retried with a doubling wait (up to a minute)."""
        failures = 0
        while not stop.is_set():
            try:
                self.check_once()
                failures, wait = 0, interval
                if self.metrics is not None:
                    self.metrics.up.set(1)
            except SourceError as exc:
                failures += 1
                wait = min(interval * 2 ** min(failures, 16), MAX_BACKOFF_S)
                if self.metrics is not None:
                    self.metrics.up.set(0)
                    self.metrics.errors.inc()
                if on_error is not None:
                    on_error(exc, wait)
            stop.wait(wait)
