"""The events of a ledger's stream and their payloads (docs/ingest.md, "Ledgers and their
streams"; the anchor events: docs/anchor.md, "Lifecycle").

Position 0 of every ledger's stream is LedgerCreated. EvidenceRecorded carries the leaf bytes
themselves as its data, so the log holds exactly what the tree commits to; its metadata holds
the idempotency fingerprint, which is not part of the evidence. The other payloads are JSON.
"""
from __future__ import annotations

import orjson

from .log import NewEvent

LEDGER_CREATED = "LedgerCreated"
EVIDENCE_RECORDED = "EvidenceRecorded"
CHECKPOINT_SEALED = "CheckpointSealed"
SIGNING_KEY_ROTATED = "SigningKeyRotated"
# Written by the anchor worker (anchor/worker.py); projected as each checkpoint's anchor state.
ANCHOR_SUBMITTED = "AnchorSubmitted"
ANCHOR_CONFIRMED = "AnchorConfirmed"
ANCHOR_FAILED = "AnchorFailed"
# Written by the witness collector (witness/collector.py): a witness's cosignature on a checkpoint.
CHECKPOINT_COSIGNED = "CheckpointCosigned"

EVENT_TYPES = (LEDGER_CREATED, EVIDENCE_RECORDED, CHECKPOINT_SEALED, SIGNING_KEY_ROTATED,
               ANCHOR_SUBMITTED, ANCHOR_CONFIRMED, ANCHOR_FAILED, CHECKPOINT_COSIGNED)


def json_event(event_type: str, payload: dict) -> NewEvent:
    return NewEvent(event_type, orjson.dumps(payload, option=orjson.OPT_SORT_KEYS))


# EvidenceRecorded's metadata, when the record has an evidence id, is exactly
# FINGERPRINT_HEAD + 32 hex digits + b'"}'.
FINGERPRINT_HEAD = b'{"fingerprint":"'


def evidence_recorded(leaf: bytes, fingerprint: bytes | None) -> NewEvent:
    if fingerprint is None:
        return NewEvent(EVIDENCE_RECORDED, leaf)
    return NewEvent(EVIDENCE_RECORDED, leaf, FINGERPRINT_HEAD + fingerprint + b'"}')



def fingerprint_of(metadata: bytes) -> bytes | None:
    """The idempotency fingerprint (32 hex digits, as bytes) in an EvidenceRecorded event's
    metadata: JSON written by `evidence_recorded` in one fixed form, so it is sliced."""
    if not metadata:
        return None
    if len(metadata) == 50 and metadata.startswith(FINGERPRINT_HEAD):
        return metadata[16:48]
    return orjson.loads(metadata)["fingerprint"].encode()
