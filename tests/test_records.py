"""The evidence record model: accepted shapes, normalization, every rule, every limit's edge."""
import base64
import json
import pathlib
import pickle
import re
import timeit
from datetime import datetime

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest import records
from ingest.records import LIMIT_RULES, LIMITS, RecordError, validate_record, validate_records

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs" / "records.md"

HASH = "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
MINIMAL = {"content_hash": HASH, "business_type": "contract.signed", "occurred_at": "2024-05-01T09:30:00Z"}
FULL = {
    "content_hash": HASH,
    "business_type": "account_opening.video",
    "occurred_at": "2024-05-01T09:30:00.123+08:00",
    "evidence_id": "ev-2024-000001",
    "business_id": "acct/778812",
    "signature": {"algorithm": "SM2-SM3", "signer_id": "CN=Broker A, O=证券", "value": base64.b64encode(bytes(64)).decode()},
    "attributes": {"branch": "SH-001", "channel": "app", "amount": 120000, "confirmed": True, "note": "开户 ✓"},
    "sealed": {"id_number": "110101199003077777", "name": "张三"},
}


def rec(**changes):
    """MINIMAL with fields changed; a value of `...` removes the field."""
    out = dict(MINIMAL)
    for k, v in changes.items():
        if v is ...:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def sig(**changes):
    out = {"algorithm": "SM2-SM3", "signer_id": "signer-1", "value": "AAAA"}
    for k, v in changes.items():
        if v is ...:
            out.pop(k)
        else:
            out[k] = v
    return out


def fails(obj, field, rule):
    with pytest.raises(RecordError) as info:
        validate_record(obj)
    err = info.value
    assert (err.field, err.rule) == (field, rule), err.as_dict()
    assert str(err) == f"{err.field}: {err.message}"
    return err


# ------------------------------------------------------------------------------ valid shapes

def test_minimal_round_trip():
    out = validate_record(MINIMAL)
    assert out == MINIMAL
    assert out is not MINIMAL
    assert validate_record(out) == out


def test_full_round_trip_is_a_deep_copy_in_field_order():
    out = validate_record(FULL)
    assert out == FULL
    assert list(out) == list(FULL)
    assert list(out["signature"]) == ["algorithm", "signer_id", "value"]
    for name in ("signature", "attributes", "sealed"):
        assert out[name] is not FULL[name]
    assert validate_record(orjson.loads(orjson.dumps(out))) == out


def test_normalization():
    given_ = dict(FULL, content_hash=HASH.upper(), evidence_id=None, business_id=None, signature=None,
                  attributes=None, sealed=None)
    out = validate_record(given_)
    assert out == {"content_hash": HASH, "business_type": FULL["business_type"], "occurred_at": FULL["occurred_at"]}
    assert given_["content_hash"] == HASH.upper()  # the input is not touched


def test_field_order_is_canonical_whatever_the_input_order():
    out = validate_record(dict(reversed(list(FULL.items()))))
    assert list(out) == list(FULL)


@pytest.mark.parametrize("when", [
    "2024-05-01T09:30:00Z", "2024-05-01t09:30:00z", "2024-05-01T09:30:00+08:00", "2024-05-01T09:30:00-00:00",
    "2024-05-01T09:30:00.5Z", "2024-02-29T23:59:59.999999+23:59", "1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
    "2024-05-01T09:30:00.12345678901234+08:00",  # exactly 40 characters
])
def test_occurred_at_accepted_and_kept_verbatim(when):
    assert validate_record(rec(occurred_at=when))["occurred_at"] == when


def test_subclasses_become_plain_types():
    class S(str):
        pass

    class D(dict):
        pass

    out = validate_record(D(rec(business_type=S("x"), attributes=D({S("k"): S("v")}))))
    assert type(out["business_type"]) is str
    assert [type(k) for k in out["attributes"]] == [str]
    assert type(out["attributes"]["k"]) is str


def test_attribute_value_types():
    attrs = {"s": "", "t": True, "f": False, "z": 0, "max": 2**53 - 1, "min": -(2**53 - 1)}
    out = validate_record(rec(attributes=attrs))["attributes"]
    assert out == attrs
    assert out["t"] is True and out["z"] == 0 and type(out["z"]) is int


def test_signature_value_may_be_any_padded_base64():
    for raw in (b"\x00", b"\x00\x01", b"\x00\x01\x02", bytes(range(256))):
        value = base64.b64encode(raw).decode()
        assert validate_record(rec(signature=sig(value=value)))["signature"]["value"] == value


def test_doc_example_is_valid():
    text = DOCS.read_text(encoding="utf-8")
    example = text.split("## Example", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    obj = json.loads(example)
    assert validate_record(obj) == obj


# -------------------------------------------------------------------------- every rule fails

CTRL = "a\x00b"
SURROGATE = "a\ud800b"

FAILING = [
    # the record itself
    ([1, 2], "record", "type"),
    ("{}", "record", "type"),
    (None, "record", "type"),
    (rec(extra=1), "extra", "unknown_field"),
    ({**MINIMAL, 5: "x"}, "5", "unknown_field"),
    # content_hash
    (rec(content_hash=...), "content_hash", "required"),
    (rec(content_hash=None), "content_hash", "required"),
    (rec(content_hash=123), "content_hash", "type"),
    (rec(content_hash=HASH[:-1]), "content_hash", "length"),
    (rec(content_hash=HASH + "0"), "content_hash", "length"),
    (rec(content_hash="g" * 64), "content_hash", "pattern"),
    (rec(content_hash="٠" * 64), "content_hash", "pattern"),  # Arabic-Indic digits are not hex
    (rec(content_hash=HASH[:-1] + "\x00"), "content_hash", "control_character"),
    (rec(content_hash=HASH[:-1] + "\ud800"), "content_hash", "encoding"),
    # business_type
    (rec(business_type=...), "business_type", "required"),
    (rec(business_type=["x"]), "business_type", "type"),
    (rec(business_type=""), "business_type", "min_length"),
    (rec(business_type="x" * 65), "business_type", "max_length"),
    (rec(business_type="_x"), "business_type", "pattern"),
    (rec(business_type="a b"), "business_type", "pattern"),
    (rec(business_type="a/b"), "business_type", "pattern"),
    (rec(business_type="合同"), "business_type", "pattern"),
    (rec(business_type=CTRL), "business_type", "control_character"),
    (rec(business_type="a\x7f"), "business_type", "control_character"),
    (rec(business_type=SURROGATE), "business_type", "encoding"),
    # occurred_at
    (rec(occurred_at=...), "occurred_at", "required"),
    (rec(occurred_at=1714555800), "occurred_at", "type"),
    (rec(occurred_at=""), "occurred_at", "format"),
    (rec(occurred_at="2024-05-01T09:30:00"), "occurred_at", "format"),  # no zone
    (rec(occurred_at="2024-05-01 09:30:00Z"), "occurred_at", "format"),
    (rec(occurred_at="2024-05-01"), "occurred_at", "format"),
    (rec(occurred_at="2024-05-01T09:30Z"), "occurred_at", "format"),
    (rec(occurred_at="2024-05-01T09:30:00+0800"), "occurred_at", "format"),
    (rec(occurred_at="2024-05-01T09:30:00.Z"), "occurred_at", "format"),
    (rec(occurred_at="2024-W18-3T09:30:00Z"), "occurred_at", "format"),
    (rec(occurred_at="２０２４-05-01T09:30:00Z"), "occurred_at", "format"),  # full-width digits
    (rec(occurred_at="2024-02-30T09:30:00Z"), "occurred_at", "format"),
    (rec(occurred_at="2024-13-01T09:30:00Z"), "occurred_at", "format"),
    (rec(occurred_at="2024-05-01T24:00:00Z"), "occurred_at", "format"),
    (rec(occurred_at="2016-12-31T23:59:60Z"), "occurred_at", "format"),  # leap second
    (rec(occurred_at="2024-05-01T09:30:00+24:00"), "occurred_at", "format"),
    (rec(occurred_at="1969-12-31T23:59:59Z"), "occurred_at", "year_range"),
    (rec(occurred_at="0000-01-01T00:00:00Z"), "occurred_at", "year_range"),
    (rec(occurred_at="2024-05-01T09:30:00.123456789012345+08:00"), "occurred_at", "max_length"),
    (rec(occurred_at="2024-05-01T09:30:00\x00Z"), "occurred_at", "control_character"),
    (rec(occurred_at="2024-05-01T09:30:00\udfffZ"), "occurred_at", "encoding"),
    # evidence_id, business_id
    (rec(evidence_id=7), "evidence_id", "type"),
    (rec(evidence_id=""), "evidence_id", "min_length"),
    (rec(evidence_id="e" * 129), "evidence_id", "max_length"),
    (rec(evidence_id="/e"), "evidence_id", "pattern"),
    (rec(evidence_id="e e"), "evidence_id", "pattern"),
    (rec(evidence_id=CTRL), "evidence_id", "control_character"),
    (rec(evidence_id=SURROGATE), "evidence_id", "encoding"),
    (rec(business_id=True), "business_id", "type"),
    (rec(business_id=""), "business_id", "min_length"),
    (rec(business_id="b" * 129), "business_id", "max_length"),
    (rec(business_id="b#1"), "business_id", "pattern"),
    (rec(business_id=CTRL), "business_id", "control_character"),
    (rec(business_id=SURROGATE), "business_id", "encoding"),
    # signature
    (rec(signature="SM2:abc"), "signature", "type"),
    (rec(signature=[]), "signature", "type"),
    (rec(signature=sig(extra="x")), "signature.extra", "unknown_field"),
    (rec(signature=sig(algorithm=...)), "signature.algorithm", "required"),
    (rec(signature=sig(signer_id=None)), "signature.signer_id", "required"),
    (rec(signature=sig(value=...)), "signature.value", "required"),
    (rec(signature=sig(algorithm=1)), "signature.algorithm", "type"),
    (rec(signature=sig(algorithm="")), "signature.algorithm", "min_length"),
    (rec(signature=sig(algorithm="A" * 33)), "signature.algorithm", "max_length"),
    (rec(signature=sig(algorithm="SM2:SM3")), "signature.algorithm", "pattern"),
    (rec(signature=sig(algorithm=CTRL)), "signature.algorithm", "control_character"),
    (rec(signature=sig(algorithm=SURROGATE)), "signature.algorithm", "encoding"),
    (rec(signature=sig(signer_id=b"x")), "signature.signer_id", "type"),
    (rec(signature=sig(signer_id="")), "signature.signer_id", "min_length"),
    (rec(signature=sig(signer_id="s" * 129)), "signature.signer_id", "max_length"),
    (rec(signature=sig(signer_id="a\tb")), "signature.signer_id", "control_character"),
    (rec(signature=sig(signer_id=SURROGATE)), "signature.signer_id", "encoding"),
    (rec(signature=sig(signer_id="a\u200bb")), "signature.signer_id", "printable"),  # zero-width space
    (rec(signature=sig(signer_id="a\u2028b")), "signature.signer_id", "printable"),  # line separator
    (rec(signature=sig(value=1.5)), "signature.value", "type"),
    (rec(signature=sig(value="")), "signature.value", "min_length"),
    (rec(signature=sig(value="A" * 2052)), "signature.value", "max_length"),
    (rec(signature=sig(value="AAA")), "signature.value", "base64"),
    (rec(signature=sig(value="AAAAA===")), "signature.value", "base64"),
    (rec(signature=sig(value="AA=A")), "signature.value", "base64"),
    (rec(signature=sig(value="AA-_")), "signature.value", "base64"),  # URL-safe alphabet
    (rec(signature=sig(value="AA AA")), "signature.value", "base64"),
    (rec(signature=sig(value="AAAA\n")), "signature.value", "control_character"),
    (rec(signature=sig(value="AAA\ud800")), "signature.value", "encoding"),
    # attributes
    (rec(attributes=[["k", "v"]]), "attributes", "type"),
    (rec(attributes={f"k{i}": i for i in range(33)}), "attributes", "max_entries"),
    (rec(attributes={1: "v"}), "attributes", "key_type"),
    (rec(attributes={"": "v"}), "attributes", "key_pattern"),
    (rec(attributes={".k": "v"}), "attributes", "key_pattern"),
    (rec(attributes={"a:b": "v"}), "attributes", "key_pattern"),
    (rec(attributes={"分行": "v"}), "attributes", "key_pattern"),
    (rec(attributes={"k" * 65: "v"}), "attributes", "key_length"),
    (rec(attributes={"k\x00": "v"}), "attributes", "control_character"),
    (rec(attributes={"k\ud800": "v"}), "attributes", "encoding"),
    (rec(attributes={"k": 1.0}), "attributes.k", "type"),
    (rec(attributes={"k": None}), "attributes.k", "type"),
    (rec(attributes={"k": {"a": 1}}), "attributes.k", "type"),
    (rec(attributes={"k": [1]}), "attributes.k", "type"),
    (rec(attributes={"k": "v" * 257}), "attributes.k", "max_length"),
    (rec(attributes={"k": 2**53}), "attributes.k", "int_range"),
    (rec(attributes={"k": -(2**53)}), "attributes.k", "int_range"),
    (rec(attributes={"k": 10**400}), "attributes.k", "int_range"),
    (rec(attributes={"k": "line\nbreak"}), "attributes.k", "control_character"),
    (rec(attributes={"k": "del\x7f"}), "attributes.k", "control_character"),
    (rec(attributes={"k": "中\x1f"}), "attributes.k", "control_character"),
    (rec(attributes={"k": SURROGATE}), "attributes.k", "encoding"),
    # sealed
    (rec(sealed="secret"), "sealed", "type"),
    (rec(sealed={f"k{i}": "v" for i in range(17)}), "sealed", "max_entries"),
    (rec(sealed={None: "v"}), "sealed", "key_type"),
    (rec(sealed={"-k": "v"}), "sealed", "key_pattern"),
    (rec(sealed={"k" * 65: "v"}), "sealed", "key_length"),
    (rec(sealed={"k": 1}), "sealed.k", "type"),
    (rec(sealed={"k": True}), "sealed.k", "type"),
    (rec(sealed={"k": None}), "sealed.k", "type"),
    (rec(sealed={"k": "v" * 4097}), "sealed.k", "max_length"),
    (rec(sealed={"a": "v" * 4096, "b": "v" * 4096, "c": "v"}), "sealed", "max_sealed_bytes"),
    (rec(sealed={"k": "\x00"}), "sealed.k", "control_character"),
    (rec(sealed={"k": "\udc80"}), "sealed.k", "encoding"),
]


@pytest.mark.parametrize("obj,field,rule", FAILING, ids=[f"{f}-{r}-{i}" for i, (_, f, r) in enumerate(FAILING)])
def test_rule_fails(obj, field, rule):
    err = fails(obj, field, rule)
    # Every error is data an API can send: JSON-encodable, with a known code.
    assert err.as_dict()["code"] in ("invalid_record", "limit_exceeded")
    orjson.dumps(err.as_dict())


def test_every_rule_has_a_failing_case():
    rules = set()
    for line in _section("## Errors").splitlines():
        cell = re.match(r"\| ((?:`\w+`(?:, )?)+) \|", line)
        if cell:
            rules |= set(re.findall(r"`(\w+)`", cell.group(1)))
    tested = {rule for _, _, rule in FAILING} | {"max_record_bytes"}
    assert rules == tested


def test_unknown_fields_are_reported_before_other_errors():
    fails({"bussiness_type": "x", "content_hash": HASH, "occurred_at": "2024-05-01T09:30:00Z"},
          "bussiness_type", "unknown_field")


def test_errors_come_in_field_order():
    fails({"content_hash": "x", "business_type": "", "occurred_at": ""}, "content_hash", "length")
    fails(rec(business_type="", evidence_id=""), "business_type", "min_length")
    fails(rec(evidence_id="", attributes=[]), "evidence_id", "min_length")


def test_unprintable_keys_are_escaped_in_errors():
    err = fails(rec(**{"\ud800\x00": 1}), ascii("\ud800\x00"), "unknown_field")
    orjson.dumps(err.as_dict())
    err = fails(rec(**{"x" * 500: 1}), ascii("x" * 72)[:69] + "...", "unknown_field")
    fails({**MINIMAL, 10**5000: 1}, "<int>", "unknown_field")  # past Python's int-to-str limit
    fails(rec(attributes={10**5000: 1}), "attributes", "key_type")
    err = fails(rec(attributes={"bad key\ud800": 1}), "attributes", "encoding")
    assert "\ud800" not in err.message


def test_error_shape_and_codes():
    err = fails(rec(attributes={f"k{i}": i for i in range(40)}), "attributes", "max_entries")
    assert err.message == "at most 32 entries, got 40"
    assert str(err) == "attributes: at most 32 entries, got 40"
    assert err.as_dict() == {"code": "limit_exceeded", "field": "attributes", "rule": "max_entries",
                             "message": "at most 32 entries, got 40"}
    assert isinstance(err, ValueError)
    err = fails(rec(business_type=5), "business_type", "type")
    assert err.message == "must be a string, got int"
    assert err.as_dict()["code"] == "invalid_record"
    assert fails(rec(business_type="x" * 65), "business_type", "max_length").message == \
        "must be at most 64 characters, got 65"
    copy = pickle.loads(pickle.dumps(err))
    assert copy.as_dict() == err.as_dict() and str(copy) == str(err)


# ---------------------------------------------------------------- limits: at and one past

def _section(heading):
    text = DOCS.read_text(encoding="utf-8")
    return text.split(heading + "\n", 1)[1].split("\n## ", 1)[0]


def test_docs_limit_table_is_LIMITS():
    rows = re.findall(r"^\| `(\w+)` \| (\d+) \| `(\w+)` \|$", _section("## Limits"), re.M)
    assert {name: int(value) for name, value, _ in rows} == LIMITS
    assert {name: rule for name, _, rule in rows} == LIMIT_RULES
    assert len(rows) == len(LIMITS)


def test_limits_are_what_the_record_version_says():
    assert LIMITS["attribute_int_max_abs"] == 2**53 - 1
    assert LIMITS["record_max_bytes"] == 16384
    assert set(LIMIT_RULES) == set(LIMITS)


def _at_and_past(make, limit, field, rule):
    validate_record(make(limit))
    fails(make(limit + 1), field, rule)


@pytest.mark.parametrize("field,limit", [("business_type", "business_type_max_length"),
                                         ("evidence_id", "id_max_length"), ("business_id", "id_max_length")])
def test_token_length_limits(field, limit):
    _at_and_past(lambda n: rec(**{field: "a" * n}), LIMITS[limit], field, "max_length")


def test_content_hash_length_is_exact():
    n = LIMITS["content_hash_length"]
    validate_record(rec(content_hash="0" * n))
    fails(rec(content_hash="0" * (n - 1)), "content_hash", "length")
    fails(rec(content_hash="0" * (n + 1)), "content_hash", "length")


def test_occurred_at_length_limit():
    n = LIMITS["occurred_at_max_length"]
    def make(length):
        return rec(occurred_at="2024-05-01T09:30:00." + "1" * (length - 26) + "+08:00")
    assert len(make(n)["occurred_at"]) == n
    _at_and_past(make, n, "occurred_at", "max_length")


def test_occurred_at_year_limits():
    lo, hi = LIMITS["occurred_at_min_year"], LIMITS["occurred_at_max_year"]
    validate_record(rec(occurred_at=f"{lo}-01-01T00:00:00Z"))
    fails(rec(occurred_at=f"{lo - 1}-12-31T23:59:59Z"), "occurred_at", "year_range")
    validate_record(rec(occurred_at=f"{hi}-12-31T23:59:59Z"))
    assert hi + 1 > 9999  # five-digit years do not fit the RFC 3339 pattern at all
    fails(rec(occurred_at=f"{hi + 1}-01-01T00:00:00Z"), "occurred_at", "format")


@pytest.mark.parametrize("part,limit", [("algorithm", "signature_algorithm_max_length"),
                                        ("signer_id", "signature_signer_id_max_length")])
def test_signature_text_limits(part, limit):
    _at_and_past(lambda n: rec(signature=sig(**{part: "A" * n})), LIMITS[limit], f"signature.{part}", "max_length")


def test_signature_value_limit():
    n = LIMITS["signature_value_max_length"]
    assert n % 4 == 0
    validate_record(rec(signature=sig(value="A" * n)))
    fails(rec(signature=sig(value="A" * (n + 4))), "signature.value", "max_length")
    fails(rec(signature=sig(value="A" * (n + 1))), "signature.value", "max_length")


def test_key_length_limit():
    n = LIMITS["key_max_length"]
    _at_and_past(lambda m: rec(attributes={"k" * m: 1}), n, "attributes", "key_length")
    _at_and_past(lambda m: rec(sealed={"k" * m: "v"}), n, "sealed", "key_length")


def test_entries_limits():
    _at_and_past(lambda n: rec(attributes={f"k{i}": i for i in range(n)}), LIMITS["attributes_max_entries"],
                 "attributes", "max_entries")
    _at_and_past(lambda n: rec(sealed={f"k{i}": "v" for i in range(n)}), LIMITS["sealed_max_entries"],
                 "sealed", "max_entries")


def test_attribute_value_limits():
    _at_and_past(lambda n: rec(attributes={"k": "é" * n}), LIMITS["attribute_value_max_length"],
                 "attributes.k", "max_length")
    m = LIMITS["attribute_int_max_abs"]
    _at_and_past(lambda n: rec(attributes={"k": n}), m, "attributes.k", "int_range")
    _at_and_past(lambda n: rec(attributes={"k": -n}), m, "attributes.k", "int_range")


def test_sealed_value_limits():
    _at_and_past(lambda n: rec(sealed={"k": "v" * n}), LIMITS["sealed_value_max_length"], "sealed.k", "max_length")
    total = LIMITS["sealed_max_total_bytes"]
    # Counted in UTF-8 bytes: "中" is 3 bytes, so 2 + 3 * 2730 = 8192.
    def make(n):
        return rec(sealed={"a": "中" * 1365, "b": "中" * 1365, "c": "x" * (n - 6 * 1365)})
    assert sum(len(v.encode()) for v in make(total)["sealed"].values()) == total
    _at_and_past(make, total, "sealed", "max_sealed_bytes")


def _record_of_size(size):
    """A valid-looking record whose orjson encoding is exactly `size` bytes (sealed included)."""
    obj = rec(sealed={"s0": "x" * 4096, "s1": "x" * 4096}, attributes={})
    room = size - len(orjson.dumps(obj))
    longest = LIMITS["attribute_value_max_length"]
    entry = len('"a00":""') + 1  # key, quotes, colon, comma (the first entry has no comma)
    count = room // (longest + entry) + 1
    chars = room - (entry * count - 1)
    for i in range(count):
        take = min(longest, chars)
        obj["attributes"][f"a{i:02d}"] = "y" * take
        chars -= take
    assert chars == 0 and count <= LIMITS["attributes_max_entries"]
    assert len(orjson.dumps(obj)) == size
    return obj


def test_record_size_limit():
    _at_and_past(_record_of_size, LIMITS["record_max_bytes"], "record", "max_record_bytes")


def test_record_size_counts_encoded_bytes():
    # 2 x 4096 quote characters count 4 bytes each encoded ('\"'), the rest 1: over the limit
    # although the sealed values are only 8192 UTF-8 bytes.
    obj = rec(sealed={"s0": '"' * 4096, "s1": '"' * 4096})
    assert len(orjson.dumps(obj)) > LIMITS["record_max_bytes"]
    fails(obj, "record", "max_record_bytes")


def _worst_case_record(n_attributes):
    """The largest valid record without `sealed`: every text at its limit in 4-byte characters."""
    return {
        "content_hash": "a" * 64, "business_type": "t" * 64, "occurred_at": "2024-05-01T09:30:00." + "1" * 14 + "+08:00",
        "evidence_id": "e" * 128, "business_id": "b" * 128,
        "signature": {"algorithm": "A" * 32, "signer_id": "😀" * 128, "value": "A" * 2048},
        "attributes": {f"{i:02d}" + "k" * 62: "😀" * 256 for i in range(n_attributes)},
    }


def test_records_skipped_by_the_size_check_really_fit():
    # Records without `sealed` and with few attributes are not encoded to be measured: the
    # bound that allows it must hold for the worst such record.
    n = records._ATTRIBUTES_WITHOUT_SIZE_CHECK
    assert n == 12  # docs/records.md says so
    worst = _worst_case_record(n)
    assert len(orjson.dumps(worst)) <= records._worst_case_bytes(n) <= LIMITS["record_max_bytes"]
    assert validate_record(worst) == worst
    fails(_worst_case_record(n + 1), "record", "max_record_bytes")


# ------------------------------------------------------------------------------------ batches

def test_validate_records_keeps_order_and_isolates_bad_items():
    items = [FULL, rec(business_type=""), MINIMAL, "not a record", rec(content_hash=HASH.upper()),
             rec(attributes={"k": 1.5}), None]
    out = validate_records(items)
    assert len(out) == len(items)
    assert out[0] == FULL and out[2] == MINIMAL and out[4] == MINIMAL
    assert [(e.field, e.rule) for e in (out[1], out[3], out[5], out[6])] == [
        ("business_type", "min_length"), ("record", "type"), ("attributes.k", "type"), ("record", "type")]
    assert all(isinstance(e, RecordError) for e in (out[1], out[3], out[5], out[6]))
    assert validate_records(iter([])) == []
    assert validate_records(x for x in [MINIMAL]) == [MINIMAL]


# ---------------------------------------------------------------------------------- properties

_chars = st.one_of(
    st.characters(exclude_categories=()),  # surrogates included
    st.sampled_from(["\x00", "\x1f", "\x7f", "\ud800", "\udfff", '"', "\\", "😀", "中", "a", "F", "0", "=", "+", "/", "-"]),
)
_text = st.text(_chars, max_size=80)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_text, children, max_size=4),
    max_leaves=12,
)
_field_names = st.sampled_from(sorted(records._FIELD_SET) + ["extra", ""])
_near_valid = st.builds(
    lambda base, changes: {**base, **changes},
    st.sampled_from([MINIMAL, FULL]),
    st.dictionaries(
        _field_names,
        _json | st.dictionaries(st.sampled_from(["algorithm", "signer_id", "value", "k", "x.y"]), _json),
        max_size=3,
    ),
)


@given(st.one_of(_json, _near_valid))
def test_validate_record_only_raises_record_error(obj):
    try:
        out = validate_record(obj)
    except RecordError as err:
        assert err.rule and err.field
        assert err.as_dict()["code"] in ("invalid_record", "limit_exceeded")
        orjson.dumps(err.as_dict())  # always JSON-encodable, even for hostile input
    else:
        assert validate_record(out) == out  # normalization is idempotent
        assert len(orjson.dumps(out)) <= LIMITS["record_max_bytes"]


@given(_text)
def test_every_accepted_attribute_string_is_clean_utf8(value):
    try:
        out = validate_record(rec(attributes={"k": value}))
    except RecordError as err:
        assert err.rule in ("control_character", "encoding", "max_length")
    else:
        s = out["attributes"]["k"]
        s.encode("utf-8")
        assert not re.search("[\x00-\x1f\x7f]", s)


@given(st.text(st.sampled_from("AB+/=xy-_ \n"), max_size=12)
       | st.binary(max_size=12).map(lambda b: base64.b64encode(b).decode()))
def test_accepted_signature_values_decode_strictly(value):
    try:
        validate_record(rec(signature=sig(value=value)))
    except RecordError as err:
        assert err.field == "signature.value"
        if err.rule == "base64":  # refused: not padded standard base64 of whole groups
            assert len(value) % 4 or not re.fullmatch("[A-Za-z0-9+/]*={0,2}", value)
    else:
        base64.b64decode(value, validate=True)  # accepted: decodes strictly


# A differential test: the spec written out plainly and slowly, against the tuned validator.

def _clean(s):
    return type(s) is str and not any(ord(c) < 0x20 or ord(c) == 0x7F or 0xD800 <= ord(c) <= 0xDFFF for c in s)


def _token_ok(s, longest, pattern):
    return _clean(s) and 1 <= len(s) <= longest and re.fullmatch(pattern, s) is not None


def _entries_ok(obj, most, value_ok):
    key = "[A-Za-z0-9_][A-Za-z0-9_.-]*"
    return type(obj) is dict and len(obj) <= most and all(
        _token_ok(k, LIMITS["key_max_length"], key) and value_ok(v) for k, v in obj.items())


def _reference(obj):
    """The normalized record as docs/records.md describes it, or None where it is refused."""
    names = list(records._FIELDS)
    if type(obj) is not dict or set(obj) - set(names):
        return None
    o = {k: obj[k] for k in names if obj.get(k) is not None}
    if not {"content_hash", "business_type", "occurred_at"} <= set(o):
        return None
    if not (_clean(o["content_hash"]) and re.fullmatch("[0-9a-fA-F]{64}", o["content_hash"])):
        return None
    o["content_hash"] = o["content_hash"].lower()
    if not _token_ok(o["business_type"], 64, "[A-Za-z0-9][A-Za-z0-9_.:-]*"):
        return None
    when = o["occurred_at"]
    if not (_clean(when) and len(when) <= 40 and re.fullmatch(
            "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})", when)):
        return None
    try:
        if not 1970 <= datetime.fromisoformat(when.upper()).year <= 9999:
            return None
    except ValueError:
        return None
    for name in ("evidence_id", "business_id"):
        if name in o and not _token_ok(o[name], 128, "[A-Za-z0-9][A-Za-z0-9_.:/-]*"):
            return None
    if "signature" in o:
        sg = o["signature"]
        if type(sg) is not dict or set(sg) != {"algorithm", "signer_id", "value"} or None in sg.values():
            return None
        if not (_token_ok(sg["algorithm"], 32, "[A-Za-z0-9][A-Za-z0-9_.-]*")
                and _clean(sg["signer_id"]) and 1 <= len(sg["signer_id"]) <= 128 and sg["signer_id"].isprintable()
                and _token_ok(sg["value"], 2048, "[A-Za-z0-9+/=]+") and len(sg["value"]) % 4 == 0):
            return None
        try:
            base64.b64decode(sg["value"], validate=True)
        except ValueError:
            return None
        if "=" in sg["value"].rstrip("="):
            return None
        o["signature"] = {k: sg[k] for k in ("algorithm", "signer_id", "value")}
    if "attributes" in o and not _entries_ok(o["attributes"], 32, lambda v: type(v) is bool or (
            type(v) is int and abs(v) <= 2**53 - 1) or (_clean(v) and len(v) <= 256)):
        return None
    if "sealed" in o and not (_entries_ok(o["sealed"], 16, lambda v: _clean(v) and len(v) <= 4096)
                              and sum(len(v.encode()) for v in o["sealed"].values()) <= 8192):
        return None
    for name in ("attributes", "sealed"):
        if name in o:
            o[name] = dict(o[name])
    if len(orjson.dumps(o)) > 16384:
        return None
    return o


_sizes = st.sampled_from([0, 1, 2, 3, 4, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257, 2048, 2049, 4096, 4097])
_probe = st.one_of(
    st.text(st.sampled_from("aZ09_.:-/+= \"\x00\x1f\x7f\ud800é中😀\u200b"), max_size=6),
    st.builds(lambda head, c, n: head + c * n, st.sampled_from(["", "a", "_", "A", "0"]),
              st.sampled_from(["a", "A", "é", "😀", '"', "=", "\x00"]), _sizes),
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.just([]),
)
def _mostly(good, bad):
    """Usually a valid value, sometimes a probe: most records get deep into the checks."""
    return st.sampled_from([good] * 7 + [bad]).flatmap(lambda strategy: strategy)


_hash = _mostly(st.one_of(st.sampled_from([HASH, HASH.upper()]), st.text("0123456789abcdefABCDEF", min_size=64, max_size=64)),
                st.one_of(st.sampled_from([HASH[:-1], HASH + "a", "g" * 64, "٠" * 64]), _probe))
_token = _mostly(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,8}", fullmatch=True), _probe)
_when = _mostly(
    st.builds(lambda y, mo, d, h, mi, sec, frac, zone: f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{sec:02d}{frac}{zone}",
              st.integers(1970, 9999), st.integers(1, 12), st.integers(1, 28), st.integers(0, 23), st.integers(0, 59),
              st.integers(0, 59), st.sampled_from(["", ".5", ".123456"]), st.sampled_from(["Z", "z", "+08:00", "-00:00"])),
    st.one_of(st.builds(
        lambda y, mo, d, sep, h, mi, sec, frac, zone: f"{y:04d}-{mo:02d}-{d:02d}{sep}{h:02d}:{mi:02d}:{sec:02d}{frac}{zone}",
        st.sampled_from([0, 1969, 1970, 2024, 9999]), st.integers(0, 13), st.integers(0, 32), st.sampled_from("Tt "),
        st.integers(0, 24), st.integers(0, 60), st.integers(0, 60),
        st.sampled_from(["", ".", ".5", ".123456", "." + "1" * 14, "." + "1" * 15]),
        st.sampled_from(["Z", "z", "+08:00", "-00:00", "+23:59", "+24:00", "+0800", ""])), _probe),
)
_attr_value = _mostly(st.one_of(st.text(max_size=8), st.integers(-(2**53 - 1), 2**53 - 1), st.booleans()),
                      st.one_of(_probe, st.sampled_from([2**53, -(2**53), 1.0, "x" * 257, "é" * 256])))
_key = _mostly(st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,6}", fullmatch=True),
               st.one_of(st.sampled_from(["k:v", ".k", "k" * 64, "k" * 65, "", "中"]),
                         _probe.filter(lambda k: isinstance(k, str))))
_sealed_value = _mostly(st.text(max_size=8), st.one_of(_probe, st.sampled_from(["中" * 1400, "x" * 4096, "x" * 4097])))
_signature = _mostly(
    st.fixed_dictionaries({"algorithm": st.just("SM2-SM3"), "signer_id": st.text(min_size=1, max_size=8),
                           "value": st.binary(min_size=1, max_size=9).map(lambda b: base64.b64encode(b).decode())}),
    st.one_of(
        st.fixed_dictionaries({"algorithm": _mostly(st.just("SM2-SM3"), _probe),
                               "signer_id": _mostly(st.just("CN=x"), _probe),
                               "value": _mostly(st.sampled_from(["AAAA", "AA==", "AAA="]),
                                                st.one_of(st.sampled_from(["A===", "AA=A", "AAAAA", "AAAA===="]), _probe))}),
        st.fixed_dictionaries({"algorithm": st.just("SM2")}, optional={"extra": st.just(1)}),
        _probe),
)
_record = st.builds(
    lambda fields, unknown: {**fields, **unknown},
    st.fixed_dictionaries(
        {"content_hash": _hash, "business_type": _token, "occurred_at": _when},
        optional={
            "evidence_id": _token, "business_id": _token, "signature": _signature,
            "attributes": _mostly(st.dictionaries(_key, _attr_value, max_size=6),
                                  st.one_of(st.dictionaries(_key, _attr_value, min_size=30, max_size=34), _probe)),
            "sealed": _mostly(st.dictionaries(_key, _sealed_value, max_size=6),
                              st.one_of(st.dictionaries(_key, _sealed_value, min_size=15, max_size=18), _probe)),
        },
    ),
    st.sampled_from([{}] * 9 + [{"unknown": 1}]),
)


@given(_record)
def test_validator_agrees_with_the_plain_reference(obj):
    want = _reference(obj)
    try:
        got = validate_record(obj)
    except RecordError as err:
        assert want is None, (err.as_dict(), want)
    else:
        assert got == want
        assert list(got) == list(want)


def test_memo_stays_bounded():
    for i in range(records._MEMO_MAX + 10):
        validate_record(rec(business_type=f"type-{i}"))
    assert 0 < len(records._TYPES_SEEN) <= records._MEMO_MAX


def test_sanity_speed_smoke():
    # Not a timing assertion: only that the hot path runs and a figure can be printed.
    typical = {k: FULL[k] for k in ("content_hash", "business_type", "occurred_at", "evidence_id", "attributes")}
    n = 2000
    seconds = timeit.timeit(lambda: validate_record(typical), number=n)
    print(f"validate_record: {seconds / n * 1e6:.2f} us per typical record")
