"""Reading a leaf: the exact bytes committed to a ledger's Merkle tree for one recorded event.

Version 1 (docs/leaf.md): the UTF-8 JSON object

    {"ledger": ..., "received_at": "YYYY-MM-DDTHH:MM:SS.ffffffZ", "record": {...}, "seq": N, "v": 1}

with keys sorted at every level, no whitespace, integers only, non-ASCII as UTF-8 and control
characters escaped. The ledger writes leaves (ingest/leaf.py, with orjson); a verifier decodes
them and never re-encodes, but `decode_leaf` checks that the bytes are the canonical form, so
two different byte strings can never stand for one event. Standard library only: this is the
decoder the offline verifier ships.
"""
from __future__ import annotations

import json
import re

from .strict_json import depth_problem

LEAF_VERSION = 1
# What a ledger id (the leaf's "ledger") must full-match.
LEDGER_ID_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
# A record nests a few levels ($.record.attributes.x); the bound keeps a hostile leaf's work small.
MAX_LEAF_DEPTH = 32
_LEAF_KEYS = frozenset({"ledger", "received_at", "record", "seq", "v"})


class LeafError(ValueError):
    """Bytes that are not a canonical version-1 leaf."""


def canonical_json(value) -> bytes:
    """The canonical form of a leaf or a record: the bytes the ledger's writer gives (orjson,
    sorted keys). Python's str order is code point order, which is UTF-8 byte order, and both
    escape exactly `"`, `\\` and the control characters, in the same short or \\u00xx forms; a test
    holds the two writers equal over generated records."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


def _refuse_number(text: str):
    raise ValueError(f"{text[:40]} is not an integer (a leaf holds integers only)")


def decode_leaf(leaf: bytes) -> dict:
    """The event a leaf encodes, after checking it is a canonical version-1 leaf.

    Read with the json module's C scanner, then re-encoded and compared byte for byte: what
    strict reading refuses elsewhere (a key twice, escaped lone surrogates, another spelling of
    a number or a string) cannot re-encode to the same bytes, and floats, NaN and Infinity are
    refused as they are read. The depth is counted first, so a hostile leaf cannot make the
    scanner recurse (where a library has raised the recursion limit, that kills the process)."""
    raw = bytes(leaf)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LeafError(f"leaf is not UTF-8: {exc.reason} at byte {exc.start}") from None
    problem = depth_problem(text, MAX_LEAF_DEPTH)
    if problem:
        raise LeafError(f"leaf is not JSON: {problem}")
    try:
        event = json.loads(text, parse_float=_refuse_number, parse_constant=_refuse_number)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise LeafError(f"leaf is not JSON: {exc}") from None
    if not isinstance(event, dict):
        raise LeafError("leaf is not a JSON object")
    if type(event.get("v")) is not int or event["v"] != LEAF_VERSION:  # not true, not 1.0
        raise LeafError(f"leaf version {event.get('v')!r} is not {LEAF_VERSION}")
    differ = _LEAF_KEYS ^ event.keys()
    if differ:
        raise LeafError(f"leaf keys differ from version 1 in: {', '.join(sorted(differ))}")
    if type(event["seq"]) is not int or event["seq"] < 0:
        raise LeafError("leaf seq must be a non-negative integer")
    try:
        canonical = canonical_json(event)
    except UnicodeEncodeError:  # an escaped lone surrogate
        raise LeafError("leaf holds a lone surrogate, which UTF-8 cannot encode") from None
    if canonical != raw:
        raise LeafError("leaf bytes are not canonical (key order, spacing, escapes or number form differ)")
    return event
