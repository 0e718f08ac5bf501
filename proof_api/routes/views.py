"""What the routes answer with, built from a ledger: a record's status, receipts, records
found by their selectors (docs/api.md)."""
from __future__ import annotations

from ingest.ledger import Receipt

from ..access import Principal
from ..errors import ApiError


def status_of(ledger, seq: int) -> dict:
    checkpoint = ledger.checkpoints(after_size=seq, limit=1)
    first = ledger.first_confirmed_anchor(seq)
    out = {"seq": seq, "status": "recorded", "checkpoint_size": None, "anchor": None}
    if checkpoint:
        out["status"] = "checkpointed"
        out["checkpoint_size"] = checkpoint[0]["size"]
    if first is not None:
        out["status"] = "anchored"
        out["anchor"] = {k: first[k] for k in ("size", "chain_id", "contract", "tx_hash", "block_number",
                                              "block_hash", "block_time")}
    return out


def receipt_body(receipt: Receipt, ledger=None) -> dict:
    """A new record is "recorded"; a repeat reports how far the original has come."""
    status = status_of(ledger, receipt.seq)["status"] if receipt.duplicate and ledger is not None else "recorded"
    return {"evidence_id": receipt.evidence_id, "business_id": receipt.business_id, "seq": receipt.seq,
            "leaf_hash": receipt.leaf_hash, "received_at": receipt.received_at, "status": status,
            "duplicate": receipt.duplicate}


def find_seqs(ledger, who: Principal, seq: int | None, evidence_id: str | None, content_hash: str | None,
              business_id: str | None = None, selectors: str = "seq, evidence_id or content_hash") -> list[int]:
    named = [n for n, v in (("seq", seq), ("evidence_id", evidence_id), ("content_hash", content_hash),
                            ("business_id", business_id)) if v is not None]
    if len(named) != 1:
        raise ApiError(400, "invalid_request", f"name exactly one of {selectors}")
    if who.role == "verifier" and named[0] in ("seq", "business_id"):
        raise ApiError(403, "forbidden", "a verifier names records by evidence_id or content_hash")
    if seq is not None:
        if seq >= ledger.projected_count:
            raise ApiError(404, "not_found", f"ledger {ledger.id!r} has no record {seq} (yet)", "seq")
        return [seq]
    if evidence_id is not None:
        seq = ledger.find_evidence(evidence_id)
        return [] if seq is None else [seq]
    if content_hash is not None:
        text = content_hash.lower()
        if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
            raise ApiError(422, "invalid_request", "content_hash must be 64 hex digits", "content_hash")
        return ledger.seqs_by_content_hash(text, limit=1000)
    return ledger.seqs_by_business_id(business_id, limit=1000)


def record_view(ledger, seq: int, who: Principal) -> dict:
    event = ledger.record(seq)
    out = {**status_of(ledger, seq), "leaf_hash": ledger.leaf_hash(seq).hex(),
           "received_at": event["received_at"], "record": event["record"]}
    if who.role in ("auditor", "admin") and "sealed" in event["record"]:
        out["sealed_fields"] = ledger.open_sealed(event["record"])
    return out
