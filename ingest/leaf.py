"""The leaf: the exact bytes committed to a ledger's Merkle tree for one recorded event.

Version 1 (docs/leaf.md): the UTF-8 JSON object

    {"ledger": ..., "received_at": "YYYY-MM-DDTHH:MM:SS.ffffffZ", "record": {...}, "seq": N, "v": 1}

with keys sorted at every level (all keys are ASCII, so byte order and UTF-16 order agree),
no whitespace, integers only (records carry no floats), strings as orjson writes them
(non-ASCII as UTF-8, control characters escaped). `seq` is the leaf's index in the tree. The
leaf is encoded once, when the record is logged; proofs carry these bytes and a verifier
decodes them, never re-encodes: `decode_leaf` (evledger_verify/leaf.py, the one decoder, which
the ledger uses too) still checks that they are canonical, so two different byte strings can
never stand for one event.
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import orjson

from evledger_verify.leaf import LEAF_VERSION, LEDGER_ID_RE, LeafError, decode_leaf

__all__ = ["LEAF_VERSION", "LEDGER_ID_RE", "LeafError", "decode_leaf", "encode_leaf", "format_received_at",
           "leaf_prefix", "parse_received_at", "record_json", "utc_now_text"]
_SORTED = orjson.OPT_SORT_KEYS


def format_received_at(micros: int) -> str:
    """UTC time with exactly six fractional digits: fixed width, so it sorts as text."""
    seconds, us = divmod(micros, 1_000_000)
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{us:06d}Z"


def utc_now_text() -> str:
    """Now, in the received_at format: every time the ledger writes (received, sealed, issued,
    anchored) is in this one sortable text form. From time_ns: a float clock loses microseconds."""
    return format_received_at(time.time_ns() // 1000)


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse_received_at(text: str) -> int:
    """Microseconds since the epoch, in integers (a float timestamp loses microseconds)."""
    dt = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return (dt - _EPOCH) // timedelta(microseconds=1)


def encode_leaf(ledger: str, seq: int, received_at: str, record: dict) -> bytes:
    return leaf_prefix(ledger, received_at) + record_json(record) + b',"seq":' + str(seq).encode() + LEAF_TAIL


# The write path builds leaves from these parts, dumping each record once: the top-level keys
# in sorted order are ledger < received_at < record < seq < v, so the concatenation is exactly
# what orjson.dumps(..., OPT_SORT_KEYS) gives for the whole object (a test holds them equal).
LEAF_TAIL = b',"v":%d}' % LEAF_VERSION


def leaf_prefix(ledger: str, received_at: str) -> bytes:
    return b'{"ledger":' + orjson.dumps(ledger) + b',"received_at":' + orjson.dumps(received_at) + b',"record":'


def record_json(record: dict) -> bytes:
    return orjson.dumps(record, option=_SORTED)
