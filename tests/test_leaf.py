"""The version-1 leaf: the spliced write-path encoding is the canonical one, decoding checks it,
a golden vector pins the bytes and their SM3 leaf hash, and received_at has a fixed width."""
import hashlib
import json
import re
from datetime import datetime

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.leaf import (LEAF_VERSION, LeafError, decode_leaf, encode_leaf, format_received_at,
                         parse_received_at)
from evledger_verify.leaf import canonical_json
from ingest.records import validate_record
from merkle import sm3_reference

# ------------------------------------------------------------------------------ strategies

_C0_DEL = set(chr(c) for c in range(0x20)) | {"\x7f"}
_free_char = st.one_of(
    st.characters(exclude_categories=("Cs",)).filter(lambda c: c not in _C0_DEL),
    st.sampled_from(['"', "\\", "/", "\u2028", "\u2029", "\x80", "\x9f", "é", "中", "😀", "\ufeff", " "]),
)
_free_text = st.text(_free_char, max_size=30)
_type = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,20}", fullmatch=True)
_id = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,30}", fullmatch=True)
_key = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,15}", fullmatch=True)
_hash = st.text("0123456789abcdefABCDEF", min_size=64, max_size=64)
_when = st.builds(
    lambda d, frac, zone: d.strftime("%Y-%m-%dT%H:%M:%S") + frac + zone,
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30)),
    st.sampled_from(["", ".1", ".123", ".123456789"]),
    st.sampled_from(["Z", "+08:00", "-05:30", "+00:00"]),
)
_signature = st.fixed_dictionaries({
    "algorithm": st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,10}", fullmatch=True),
    "signer_id": st.text(st.characters(exclude_categories=("Cs", "Cc", "Cf", "Co", "Cn", "Zl", "Zp")),
                         min_size=1, max_size=20).filter(str.isprintable),
    "value": st.binary(min_size=1, max_size=40).map(lambda b: __import__("base64").b64encode(b).decode()),
})
_attr_value = st.one_of(_free_text, st.integers(-(2**53 - 1), 2**53 - 1), st.booleans())
_record = st.fixed_dictionaries(
    {"content_hash": _hash, "business_type": _type, "occurred_at": _when},
    optional={
        "evidence_id": _id,
        "business_id": _id,
        "signature": _signature,
        "attributes": st.dictionaries(_key, _attr_value, max_size=6),
        "sealed": st.dictionaries(_key, _free_text, max_size=3),
    },
).map(validate_record)
_ledger = st.from_regex(r"[a-z0-9][a-z0-9-]{0,62}", fullmatch=True)
_seq = st.integers(0, 2**63)
_micros = st.integers(0, 253402300799999999)  # 1970-01-01 .. 9999-12-31T23:59:59.999999Z


def _event(ledger, seq, received_at, record):
    return {"ledger": ledger, "received_at": received_at, "record": record, "seq": seq, "v": LEAF_VERSION}


# ---------------------------------------------------------------------------- canonical form

@given(_ledger, _seq, _micros, _record)
def test_spliced_encoding_is_the_canonical_sorted_encoding(ledger, seq, micros, record):
    received_at = format_received_at(micros)
    leaf = encode_leaf(ledger, seq, received_at, record)
    assert leaf == orjson.dumps(_event(ledger, seq, received_at, record), option=orjson.OPT_SORT_KEYS)
    # and it is the plain JSON a verifier would expect: no whitespace, keys sorted at every level
    assert leaf == json.dumps(_event(ledger, seq, received_at, record), sort_keys=True, separators=(",", ":"),
                              ensure_ascii=False).encode()
    assert leaf == canonical_json(_event(ledger, seq, received_at, record))


# Any JSON value the writer can write (text of every code point but lone surrogates, integers in
# its 64-bit range): the verifier's standard-library canonical form is the writer's, byte for byte.
_json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(st.characters(exclude_categories=["Cs"])),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(st.characters(exclude_categories=["Cs"]), max_size=8), inner, max_size=4),
    max_leaves=20)


@given(_json_value)
def test_the_verifiers_canonical_form_is_the_writers(value):
    assert canonical_json(value) == orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


@given(_ledger, _seq, _micros, _record)
def test_decode_round_trips(ledger, seq, micros, record):
    received_at = format_received_at(micros)
    leaf = encode_leaf(ledger, seq, received_at, record)
    event = decode_leaf(leaf)
    assert event == _event(ledger, seq, received_at, record)
    assert type(event["seq"]) is int and type(event["v"]) is int
    assert encode_leaf(event["ledger"], event["seq"], event["received_at"], event["record"]) == leaf


GOOD = encode_leaf("acme", 3, "2024-05-01T01:30:00.000001Z",
                   {"business_id": "b", "content_hash": "00" * 32, "attributes": {"z": 1, "a": "é"}})


def test_good_leaf_decodes():
    assert decode_leaf(GOOD)["seq"] == 3
    assert decode_leaf(bytearray(GOOD))["record"]["attributes"] == {"a": "é", "z": 1}


def _reordered(leaf):
    event = orjson.loads(leaf)
    return orjson.dumps({k: event[k] for k in reversed(list(event))})


def _without(key):
    event = orjson.loads(GOOD)
    del event[key]
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS)


def _with(**changes):
    event = orjson.loads(GOOD)
    event.update(changes)
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS)


NOT_CANONICAL = {
    "space after colon": GOOD.replace(b'"seq":3', b'"seq": 3'),
    "space after comma": GOOD.replace(b',"v"', b', "v"'),
    "trailing newline": GOOD + b"\n",
    "leading space": b" " + GOOD,
    "pretty printed": json.dumps(orjson.loads(GOOD), indent=2, sort_keys=True, ensure_ascii=False).encode(),
    "top-level keys reordered": _reordered(GOOD),
    "nested keys reordered": GOOD.replace(b'{"a":"\xc3\xa9","z":1}', b'{"z":1,"a":"\xc3\xa9"}'),
    "non-ASCII escaped": GOOD.replace(b'"\xc3\xa9"', b'"\\u00e9"'),
    "slash escaped": encode_leaf("acme", 3, "2024-05-01T01:30:00.000001Z", {"x": "a/b"}).replace(b"a/b", b"a\\/b"),
    "duplicate key": GOOD.replace(b'"seq":3', b'"seq":2,"seq":3'),
    "number with exponent": GOOD.replace(b'"seq":3', b'"seq":3e0'),
    "version 2": _with(v=2),
    "version as string": _with(v="1"),
    "version 0": _with(v=0),
    "no version": _without("v"),
    "no seq": _without("seq"),
    "no ledger": _without("ledger"),
    "no record": _without("record"),
    "no received_at": _without("received_at"),
    "extra key": _with(extra=1),
    "negative seq": _with(seq=-1),
    "float seq": _with(seq=3.5),
    "string seq": _with(seq="3"),
    "not JSON": b"not json at all",
    "truncated": GOOD[:-1],
    "empty": b"",
    "JSON array": b"[1,2,3]",
    "JSON string": b'"leaf"',
    "invalid UTF-8": GOOD.replace(b"\xc3\xa9", b"\xc3\x28"),
}


@pytest.mark.parametrize("leaf", NOT_CANONICAL.values(), ids=NOT_CANONICAL.keys())
def test_decode_rejects_non_canonical_leaves(leaf):
    assert leaf != GOOD
    with pytest.raises(LeafError):
        decode_leaf(leaf)


@pytest.mark.parametrize("leaf", [
    GOOD.replace(b'"v":1', b'"v":true'),
    GOOD.replace(b'"v":1', b'"v":1.0'),
    GOOD.replace(b'"seq":3', b'"seq":true'),
], ids=["v-true", "v-float", "seq-true"])
def test_decode_rejects_bool_and_float_version_and_seq(leaf):
    with pytest.raises(LeafError):
        decode_leaf(leaf)


# ------------------------------------------------------------------------------ golden vector

GOLDEN_RECORD = validate_record({
    "content_hash": "66C7F0F462EEEDD9D1F2D46BDC10E4E24167C4875CF2F7A2297DA02B8F4BA8E0",
    "business_type": "account_opening.video",
    "occurred_at": "2024-05-01T09:30:00.123+08:00",
    "evidence_id": "ev-2024-000001",
    "business_id": "acct/778812",
    "attributes": {"note": '开户 ✓ "q" \\ /', "amount": 120000, "confirmed": True, "branch": "SH-001"},
})
GOLDEN_LEAF = (
    b'{"ledger":"acme-sec","received_at":"2024-05-01T01:30:00.123456Z","record":{"attributes":'
    b'{"amount":120000,"branch":"SH-001","confirmed":true,"note":"\xe5\xbc\x80\xe6\x88\xb7 \xe2\x9c\x93 '
    b'\\"q\\" \\\\ /"},"business_id":"acct/778812","business_type":"account_opening.video",'
    b'"content_hash":"66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0",'
    b'"evidence_id":"ev-2024-000001","occurred_at":"2024-05-01T09:30:00.123+08:00"},"seq":42,"v":1}'
)
GOLDEN_SM3_LEAF_HASH = "c97a18f1ff28dc997b153634a1af1dc74c420e97c6271386a120f7bbcdd5c85c"
GOLDEN_SHA256_LEAF_HASH = "d00c1aa63dc80e5c3832d944eca474b587fa9a748ac68ac510b66fa74d05c96b"


def test_golden_vector_bytes_and_leaf_hash():
    received_at = format_received_at(1714527000123456)
    assert received_at == "2024-05-01T01:30:00.123456Z"
    leaf = encode_leaf("acme-sec", 42, received_at, GOLDEN_RECORD)
    assert leaf == GOLDEN_LEAF
    assert sm3_reference(b"\x00" + leaf).hex() == GOLDEN_SM3_LEAF_HASH
    assert hashlib.sha256(b"\x00" + leaf).hexdigest() == GOLDEN_SHA256_LEAF_HASH
    try:
        assert hashlib.new("sm3", b"\x00" + leaf).hexdigest() == GOLDEN_SM3_LEAF_HASH
    except ValueError:  # an OpenSSL without SM3: the pure reference above already checked it
        pass
    assert decode_leaf(GOLDEN_LEAF)["record"] == GOLDEN_RECORD


def test_golden_vector_through_the_batch_hasher():
    from merkle import hash_leaves

    assert hash_leaves([GOLDEN_LEAF], "sm3")[0].tobytes().hex() == GOLDEN_SM3_LEAF_HASH
    assert hash_leaves([GOLDEN_LEAF], "sha256")[0].tobytes().hex() == GOLDEN_SHA256_LEAF_HASH


# ------------------------------------------------------------------------------ received_at

_RECEIVED_AT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")


@pytest.mark.parametrize("micros,text", [
    (0, "1970-01-01T00:00:00.000000Z"),
    (1, "1970-01-01T00:00:00.000001Z"),
    (999_999, "1970-01-01T00:00:00.999999Z"),
    (1_000_000, "1970-01-01T00:00:01.000000Z"),
    (1714527000123456, "2024-05-01T01:30:00.123456Z"),
    (1709164800000000, "2024-02-29T00:00:00.000000Z"),
    (4102444799999999, "2099-12-31T23:59:59.999999Z"),
])
def test_received_at_fixed_values(micros, text):
    assert format_received_at(micros) == text
    assert parse_received_at(text) == micros


# Present-day receive times (2000 .. 2500): below 2**34 s the float inside parse_received_at
# still resolves microseconds.
@given(st.integers(946684800_000000, 16725225600_000000))
def test_received_at_round_trips_and_has_fixed_width(micros):
    text = format_received_at(micros)
    assert len(text) == 27
    assert _RECEIVED_AT.fullmatch(text)
    assert parse_received_at(text) == micros


@given(st.integers(0, 253402300799999999), st.integers(0, 253402300799999999))
def test_received_at_sorts_as_text(a, b):
    ta, tb = format_received_at(a), format_received_at(b)
    assert len(ta) == len(tb) == 27
    assert (ta < tb) == (a < b)


@pytest.mark.parametrize("micros", [253402300799999999, 17179869184_999999, -500000],
                         ids=["9999-12-31T23:59:59.999999", "2514-.999999", "1969-12-31T23:59:59.5"])
def test_received_at_round_trips_over_the_whole_fixed_width_range(micros):
    assert parse_received_at(format_received_at(micros)) == micros


def test_parse_received_at_rejects_other_shapes():
    for text in ["2024-05-01T01:30:00Z", "2024-05-01 01:30:00.000000Z", "2024-05-01T01:30:00.000000+00:00",
                 "2024-13-01T01:30:00.000000Z", "garbage"]:
        with pytest.raises(ValueError):
            parse_received_at(text)
