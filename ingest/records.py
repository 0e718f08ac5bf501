"""The evidence record (version 1): its fields, its hard limits and its validation.

`validate_record` turns what a producer submitted (a decoded JSON object) into a normalized
new dict, or raises one `RecordError` naming the field and the rule that failed. The accepted
shape is documented in docs/records.md; a change to it is a new record version, never an edit.

The hot path runs for every ingested record (well over 200K/s per core), so each field is
checked inline by one precompiled regex `fullmatch`, a set lookup (strings producers repeat,
see _remember) or a type and range test; anything unusual goes to a slow path that works out
which rule failed and says so.
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Iterable

import orjson

__all__ = [
    "LIMITS", "LIMIT_RULES", "RECORD_FIELD", "RECORD_VERSION", "RecordError",
    "validate_record", "validate_records",
]

RECORD_VERSION = 1

# Every limit, by name: the single source for the checks below, their error messages and the
# table in docs/records.md (a test holds the table to this dict). Read once, at import: the
# patterns below are compiled from it, so changing it later changes nothing.
LIMITS: dict[str, int] = {
    "content_hash_length": 64,  # exact: SM3 digest, hex
    "business_type_max_length": 64,
    "occurred_at_max_length": 40,
    "occurred_at_min_year": 1970,
    "occurred_at_max_year": 9999,
    "id_max_length": 128,  # evidence_id and business_id
    "signature_algorithm_max_length": 32,
    "signature_signer_id_max_length": 128,
    "signature_value_max_length": 2048,
    "key_max_length": 64,  # keys of attributes and sealed
    "attributes_max_entries": 32,
    "attribute_value_max_length": 256,
    "attribute_int_max_abs": 2**53 - 1,  # exact in every JSON reader (RFC 8259 §6)
    "sealed_max_entries": 16,
    "sealed_value_max_length": 4096,
    "sealed_max_total_bytes": 8192,  # UTF-8 bytes of all sealed values together
    "record_max_bytes": 16384,  # orjson encoding of the normalized record
}

# The rule code each limit is enforced under (the docs table shows both).
LIMIT_RULES: dict[str, str] = {
    "content_hash_length": "length",
    "business_type_max_length": "max_length",
    "occurred_at_max_length": "max_length",
    "occurred_at_min_year": "year_range",
    "occurred_at_max_year": "year_range",
    "id_max_length": "max_length",
    "signature_algorithm_max_length": "max_length",
    "signature_signer_id_max_length": "max_length",
    "signature_value_max_length": "max_length",
    "key_max_length": "key_length",
    "attributes_max_entries": "max_entries",
    "attribute_value_max_length": "max_length",
    "attribute_int_max_abs": "int_range",
    "sealed_max_entries": "max_entries",
    "sealed_value_max_length": "max_length",
    "sealed_max_total_bytes": "max_sealed_bytes",
    "record_max_bytes": "max_record_bytes",
}

# Rules that mean "too big" (the client may shrink and retry) rather than "malformed".
_LIMIT_EXCEEDED_RULES = frozenset(
    {"max_length", "key_length", "max_entries", "int_range", "max_sealed_bytes", "max_record_bytes"}
)

# The field name used for errors about the record as a whole (its type, its total size).
RECORD_FIELD = "record"


class RecordError(ValueError):
    """A submitted record breaks one rule: `field` (a dotted path), `rule` (a code), `message`."""

    def __init__(self, field: str, rule: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.rule = rule
        self.message = message

    @property
    def code(self) -> str:
        return "limit_exceeded" if self.rule in _LIMIT_EXCEEDED_RULES else "invalid_record"

    def as_dict(self) -> dict:
        return {"code": self.code, "field": self.field, "rule": self.rule, "message": self.message}

    def __reduce__(self):  # pickles across processes (the default would call __init__(msg))
        return (RecordError, (self.field, self.rule, self.message))

    def __repr__(self) -> str:
        return f"RecordError({self.field!r}, {self.rule!r}, {self.message!r})"


# ---------------------------------------------------------------------------------- patterns
# Character classes are spelled out ([0-9], never \d, which matches every Unicode digit).
_L = LIMITS
_TYPE_PATTERN = "[A-Za-z0-9][A-Za-z0-9_.:-]*"
_ID_PATTERN = "[A-Za-z0-9][A-Za-z0-9_.:/-]*"
_ALGORITHM_PATTERN = "[A-Za-z0-9][A-Za-z0-9_.-]*"
_KEY_PATTERN = "[A-Za-z0-9_][A-Za-z0-9_.-]*"
# RFC 3339 §5.6 date-time; "T" and "Z" may be lower case (§5.6 NOTE). Leap seconds (:60) are
# refused by the parse that follows, as is anything not a real calendar date and time.
_DATETIME_PATTERN = (
    "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)
# RFC 4648 §4 base64, standard alphabet, with its padding: this pattern and a length that is
# a multiple of 4 (one character class runs far faster in `re` than groups of four).
_BASE64_PATTERN = "[A-Za-z0-9+/]*={0,2}"


def _bounded(head: str, tail: str, max_len: int) -> str:
    """`head tail*` with the total length capped, so one fullmatch checks pattern and length."""
    return f"{head}{tail}{{0,{max_len - 1}}}"


_HASH_LOWER = re.compile(f"[0-9a-f]{{{_L['content_hash_length']}}}").fullmatch
_HASH_ANY = re.compile(f"[0-9A-Fa-f]{{{_L['content_hash_length']}}}").fullmatch
_BUSINESS_TYPE = re.compile(
    _bounded("[A-Za-z0-9]", "[A-Za-z0-9_.:-]", _L["business_type_max_length"])
).fullmatch
_ID = re.compile(_bounded("[A-Za-z0-9]", "[A-Za-z0-9_.:/-]", _L["id_max_length"])).fullmatch
_ALGORITHM = re.compile(
    _bounded("[A-Za-z0-9]", "[A-Za-z0-9_.-]", _L["signature_algorithm_max_length"])
).fullmatch
_KEY = re.compile(_bounded("[A-Za-z0-9_]", "[A-Za-z0-9_.-]", _L["key_max_length"])).fullmatch
_DATETIME = re.compile(_DATETIME_PATTERN).fullmatch
_BASE64 = re.compile(_BASE64_PATTERN).fullmatch
# What no string may hold: C0 controls and DEL, and lone surrogates (not encodable as UTF-8).
_CONTROL = re.compile("[\x00-\x1f\x7f]").search
_SURROGATE = re.compile("[\ud800-\udfff]").search
# Free text (attribute and sealed values): anything but the above; the empty string is fine.
_FREE_TEXT = re.compile("[^\x00-\x1f\x7f\ud800-\udfff]*").fullmatch

_MAX_TYPE = _L["business_type_max_length"]
_MAX_OCCURRED = _L["occurred_at_max_length"]
_MIN_YEAR = _L["occurred_at_min_year"]
_MAX_YEAR = _L["occurred_at_max_year"]
_MAX_ID = _L["id_max_length"]
_MAX_KEY = _L["key_max_length"]
_MAX_ATTRS = _L["attributes_max_entries"]
_MAX_ATTR_STR = _L["attribute_value_max_length"]
_MAX_INT = _L["attribute_int_max_abs"]
_MAX_SEALED = _L["sealed_max_entries"]
_MAX_SEALED_STR = _L["sealed_value_max_length"]
_MAX_SEALED_BYTES = _L["sealed_max_total_bytes"]
_MAX_RECORD_BYTES = _L["record_max_bytes"]
_MAX_ALGORITHM = _L["signature_algorithm_max_length"]
_MAX_SIGNER = _L["signature_signer_id_max_length"]
_MAX_SIG_VALUE = _L["signature_value_max_length"]

_FIELDS = (
    "content_hash", "business_type", "occurred_at", "evidence_id", "business_id",
    "signature", "attributes", "sealed",
)
_FIELD_SET = frozenset(_FIELDS)
_SIGNATURE_KEYS = ("algorithm", "signer_id", "value")
_SIGNATURE_KEY_SET = frozenset(_SIGNATURE_KEYS)


def _worst_case_bytes(n_attributes: int) -> int:
    """An upper bound on the orjson size of any valid record with n attributes and no `sealed`.

    Pattern-checked fields are ASCII without `"` or `\\`, one byte a character; free text is
    at most 4 bytes a character (a non-BMP character; `"` and `\\` escape to 2; control
    characters, the only ones orjson writes as \\u00XX, are refused)."""
    def entry(name_chars: int, value_bytes: int) -> int:  # "name":value
        return name_chars + 3 + value_bytes

    def text(chars: int, bytes_per_char: int = 1) -> int:  # "value"
        return 2 + chars * bytes_per_char

    def obj(entries: list[int]) -> int:  # {a,b,...}
        return 2 + max(0, len(entries) - 1) + sum(entries)

    signature = obj([
        entry(len("algorithm"), text(_L["signature_algorithm_max_length"])),
        entry(len("signer_id"), text(_L["signature_signer_id_max_length"], 4)),
        entry(len("value"), text(_L["signature_value_max_length"])),
    ])
    longest_int = len(str(-_L["attribute_int_max_abs"]))
    attribute = entry(_L["key_max_length"], max(text(_L["attribute_value_max_length"], 4), longest_int))
    return obj([
        entry(len("content_hash"), text(_L["content_hash_length"])),
        entry(len("business_type"), text(_L["business_type_max_length"])),
        entry(len("occurred_at"), text(_L["occurred_at_max_length"])),
        entry(len("evidence_id"), text(_L["id_max_length"])),
        entry(len("business_id"), text(_L["id_max_length"])),
        entry(len("signature"), signature),
        entry(len("attributes"), obj([attribute] * n_attributes)),
    ])


# A record without `sealed` and with at most this many attributes cannot exceed
# record_max_bytes, so it skips encoding (the common case); any other is encoded and measured.
_ALWAYS_MEASURE = _worst_case_bytes(0) > _MAX_RECORD_BYTES
_ATTRIBUTES_WITHOUT_SIZE_CHECK = max(
    (n for n in range(_MAX_ATTRS + 1) if _worst_case_bytes(n) <= _MAX_RECORD_BYTES), default=-1
)

_fromisoformat = datetime.fromisoformat
_dumps = orjson.dumps

# Strings that producers repeat on nearly every record (business types, attribute and sealed
# keys, signature algorithms) are remembered once accepted: a set lookup instead of a regex.
# Only plain strs that passed the full check go in, so the memo never changes an outcome; a
# memo is emptied when it reaches _MEMO_MAX entries, so memory stays bounded.
_MEMO_MAX = 4096
_TYPES_SEEN: set[str] = set()
_KEYS_SEEN: set[str] = set()
_ALGORITHMS_SEEN: set[str] = set()


def _remember(seen: set, value: str) -> None:
    if len(seen) >= _MEMO_MAX:
        seen.clear()
    seen.add(value)


# ------------------------------------------------------------------------------- slow paths
# Called only when the inline check fails or meets something unusual (a subclass, upper-case
# hex). Each returns the normalized value or raises the RecordError of the first rule broken.

def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _safe_name(key: Any) -> str:
    """A key as it may appear in an error: itself if it is a plain short name, else escaped
    (ASCII, so the error always encodes as JSON) and cut short."""
    if type(key) is str:
        if _KEY(key) is not None:
            return key
        key = key[:72]  # before escaping: the key may be megabytes long
    try:
        text = ascii(key)
    except Exception:  # a huge int (str conversion limit), or a key type with a broken repr
        text = f"<{type(key).__name__}>"
    return text if len(text) <= 72 else text[:69] + "..."


def _string(value: Any, field: str, what: str = "") -> str:
    """An exact str, UTF-8 encodable and free of control characters, or a RecordError."""
    if not isinstance(value, str):
        raise RecordError(field, "type", f"{what}must be a string, got {_type_name(value)}")
    value = str.__str__(value)  # a subclass becomes a plain str (its methods are not called)
    if not value.isascii():
        if _SURROGATE(value) is not None:
            raise RecordError(field, "encoding", f"{what}holds a lone surrogate, which UTF-8 cannot encode")
    if _CONTROL(value) is not None:
        raise RecordError(
            field, "control_character", f"{what}must not contain control characters (U+0000-U+001F, U+007F)"
        )
    return value


def _sized(value: Any, field: str, max_len: int, what: str = "") -> str:
    value = _string(value, field, what)
    n = len(value)
    if n == 0:
        raise RecordError(field, "min_length", f"{what}must not be empty")
    if n > max_len:
        raise RecordError(field, "max_length", f"{what}must be at most {max_len} characters, got {n}")
    return value


def _token(value: Any, field: str, max_len: int, match, pattern: str) -> str:
    """A short identifier-like string: 1..max_len characters matching `pattern`."""
    value = _sized(value, field, max_len)
    if match(value) is None:
        raise RecordError(field, "pattern", f"must match {pattern}")
    return value


def _business_type(value: Any) -> str:
    if type(value) is str and _BUSINESS_TYPE(value) is not None:
        _remember(_TYPES_SEEN, value)
        return value
    if value is None:
        raise RecordError("business_type", "required", "is required")
    return _token(value, "business_type", _MAX_TYPE, _BUSINESS_TYPE, _TYPE_PATTERN)


def _algorithm(value: Any) -> str:
    field = "signature.algorithm"
    if type(value) is str and _ALGORITHM(value) is not None:
        _remember(_ALGORITHMS_SEEN, value)
        return value
    if value is None:
        raise RecordError(field, "required", "is required")
    return _token(value, field, _MAX_ALGORITHM, _ALGORITHM, _ALGORITHM_PATTERN)


def _content_hash(value: Any) -> str:
    field = "content_hash"
    if value is None:
        raise RecordError(field, "required", "is required")
    value = _string(value, field)
    want = _L["content_hash_length"]
    if len(value) != want:
        raise RecordError(field, "length", f"must be exactly {want} hex characters (SM3 digest), got {len(value)}")
    if _HASH_ANY(value) is None:
        raise RecordError(field, "pattern", f"must be {want} hex characters [0-9a-fA-F]")
    return value.lower()


def _occurred_at(value: Any) -> str:
    field = "occurred_at"
    if value is None:
        raise RecordError(field, "required", "is required")
    value = _string(value, field)
    n = len(value)
    if n > _MAX_OCCURRED:
        raise RecordError(field, "max_length", f"must be at most {_MAX_OCCURRED} characters, got {n}")
    if _DATETIME(value) is None:
        raise RecordError(
            field, "format", "must be an RFC 3339 date-time with a time zone, e.g. 2024-05-01T09:30:00+08:00"
        )
    return _check_instant(value)


def _check_instant(value: str) -> str:
    """A string that matched _DATETIME: it must name a real instant, year in range."""
    year = int(value[:4])
    if not _MIN_YEAR <= year <= _MAX_YEAR:
        raise RecordError("occurred_at", "year_range", f"year must be {_MIN_YEAR}..{_MAX_YEAR}, got {value[:4]}")
    try:
        _fromisoformat(value)
    except ValueError as e:
        # fromisoformat (3.11) does not read the lower-case "t"/"z" that RFC 3339 allows;
        # after the pattern the only cased letters are those two.
        try:
            _fromisoformat(value.upper())
        except ValueError:
            raise RecordError("occurred_at", "format", f"is not a valid date-time ({e})") from None
    return value


def _object(value: Any, field: str) -> dict:
    if not isinstance(value, dict):
        raise RecordError(field, "type", f"must be an object, got {_type_name(value)}")
    return dict(value)


def _key(key: Any, field: str) -> str:
    """An attributes/sealed key: 1..key_max_length characters matching the key pattern."""
    if type(key) is str and _KEY(key) is not None:
        _remember(_KEYS_SEEN, key)
        return key
    if not isinstance(key, str):
        raise RecordError(field, "key_type", f"keys must be strings, got {_type_name(key)} key {_safe_name(key)}")
    name = _safe_name(key)
    key = _string(key, field, f"key {name} ")
    n = len(key)
    if n > _MAX_KEY:
        raise RecordError(field, "key_length", f"key {name} must be at most {_MAX_KEY} characters, got {n}")
    if _KEY(key) is None:
        raise RecordError(field, "key_pattern", f"key {name} must be 1-{_MAX_KEY} characters matching {_KEY_PATTERN}")
    return key


def _attribute_value(value: Any, field: str):
    """A value that is not an exact str/int/bool, or one that failed its inline check."""
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        value = int.__int__(value)
        if -_MAX_INT <= value <= _MAX_INT:
            return value
        raise RecordError(field, "int_range", f"integers must be within ±{_MAX_INT} (2**53-1)")
    if isinstance(value, str):
        value = _string(value, field)
        if len(value) > _MAX_ATTR_STR:
            raise RecordError(field, "max_length", f"must be at most {_MAX_ATTR_STR} characters, got {len(value)}")
        return value
    if isinstance(value, float):
        raise RecordError(
            field, "type", "must be a string, integer or boolean, got float (floats have no single canonical encoding)"
        )
    raise RecordError(field, "type", f"must be a string, integer or boolean, got {_type_name(value)}")


def _unknown(obj: dict, known: frozenset, prefix: str) -> RecordError:
    for key in obj:
        if key not in known:
            return RecordError(f"{prefix}{_safe_name(key)}", "unknown_field", "is not a field of this record version")
    raise AssertionError("no unknown key")  # pragma: no cover


# ------------------------------------------------------------------------------ field groups

def _signature(sig: Any) -> dict:
    if type(sig) is not dict:
        sig = _object(sig, "signature")
    if not sig.keys() <= _SIGNATURE_KEY_SET:
        raise _unknown(sig, _SIGNATURE_KEY_SET, "signature.")
    get = sig.get
    algorithm = get("algorithm")
    signer_id = get("signer_id")
    value = get("value")
    if type(algorithm) is not str or algorithm not in _ALGORITHMS_SEEN:
        algorithm = _algorithm(algorithm)
    # signer_id: printable text (str.isprintable: no control, format, surrogate, private-use,
    # unassigned or separator characters other than the ASCII space).
    if type(signer_id) is not str or not signer_id.isprintable() or not 0 < len(signer_id) <= _MAX_SIGNER:
        if signer_id is None:
            raise RecordError("signature.signer_id", "required", "is required")
        signer_id = _sized(signer_id, "signature.signer_id", _MAX_SIGNER)
        if not signer_id.isprintable():
            raise RecordError(
                "signature.signer_id", "printable",
                "must be printable characters (no separators but the space, no format or unassigned characters)",
            )
    if type(value) is not str or not 0 < len(value) <= _MAX_SIG_VALUE or len(value) & 3 or _BASE64(value) is None:
        if value is None:
            raise RecordError("signature.value", "required", "is required")
        value = _sized(value, "signature.value", _MAX_SIG_VALUE)
        if len(value) & 3 or _BASE64(value) is None:
            raise RecordError("signature.value", "base64", "must be standard base64 (RFC 4648 §4, with padding)")
    return {"algorithm": algorithm, "signer_id": signer_id, "value": value}


def _attributes(attrs: Any) -> dict:
    if type(attrs) is not dict:
        attrs = _object(attrs, "attributes")
    n = len(attrs)
    if n > _MAX_ATTRS:
        raise RecordError("attributes", "max_entries", f"at most {_MAX_ATTRS} entries, got {n}")
    plain = True
    for key, value in attrs.items():
        if type(key) is not str or key not in _KEYS_SEEN:
            plain = plain and type(key) is str
            key = _key(key, "attributes")
        t = type(value)
        if t is str:
            # Printable ASCII cannot hold a control character or a surrogate: two C calls.
            if len(value) <= _MAX_ATTR_STR and (
                value.isascii() and value.isprintable() or _FREE_TEXT(value) is not None
            ):
                continue
        elif t is int:
            if -_MAX_INT <= value <= _MAX_INT:
                continue
        elif t is bool:
            continue
        _attribute_value(value, "attributes." + key)
        plain = False
    if plain:
        return dict(attrs)
    # Rare: a str/int subclass somewhere; rebuild with plain types.
    out = {}
    for key, value in attrs.items():
        key = _key(key, "attributes")
        out[key] = _attribute_value(value, "attributes." + key)
    return out


def _sealed(sealed: Any) -> dict:
    if type(sealed) is not dict:
        sealed = _object(sealed, "sealed")
    n = len(sealed)
    if n > _MAX_SEALED:
        raise RecordError("sealed", "max_entries", f"at most {_MAX_SEALED} entries, got {n}")
    out = {}
    total = 0
    for key, value in sealed.items():
        if type(key) is not str or key not in _KEYS_SEEN:
            key = _key(key, "sealed")
        if type(value) is not str or len(value) > _MAX_SEALED_STR or not (
            value.isascii() and value.isprintable() or _FREE_TEXT(value) is not None
        ):
            field = "sealed." + key
            value = _string(value, field)
            if len(value) > _MAX_SEALED_STR:
                raise RecordError(
                    field, "max_length", f"must be at most {_MAX_SEALED_STR} characters, got {len(value)}"
                )
        total += len(value) if value.isascii() else len(value.encode("utf-8"))
        out[key] = value
    if total > _MAX_SEALED_BYTES:
        raise RecordError(
            "sealed", "max_sealed_bytes", f"values must total at most {_MAX_SEALED_BYTES} UTF-8 bytes, got {total}"
        )
    return out


# --------------------------------------------------------------------------------- the API

def validate_record(obj: Any) -> dict:
    """Check one submitted record and return it normalized, as a new dict.

    The result holds only the fields present (None counts as absent), in the documented field
    order, with `content_hash` in lower case; nested objects are copies. Raises RecordError
    naming the first field (dotted path) and rule that fail, in field order.
    """
    if type(obj) is not dict:
        if not isinstance(obj, dict):
            raise RecordError(RECORD_FIELD, "type", f"must be an object, got {_type_name(obj)}")
        obj = dict(obj)
    if not obj.keys() <= _FIELD_SET:
        raise _unknown(obj, _FIELD_SET, "")
    get = obj.get

    content_hash = get("content_hash")
    if type(content_hash) is not str or _HASH_LOWER(content_hash) is None:
        content_hash = _content_hash(content_hash)
    business_type = get("business_type")
    if type(business_type) is not str or business_type not in _TYPES_SEEN:
        business_type = _business_type(business_type)
    occurred_at = get("occurred_at")
    if type(occurred_at) is str and len(occurred_at) <= _MAX_OCCURRED and _DATETIME(occurred_at) is not None:
        try:
            if not _MIN_YEAR <= _fromisoformat(occurred_at).year <= _MAX_YEAR:
                _check_instant(occurred_at)  # raises year_range
        except ValueError:
            _check_instant(occurred_at)  # lower-case t/z, or raises format
    else:
        occurred_at = _occurred_at(occurred_at)
    out = {"content_hash": content_hash, "business_type": business_type, "occurred_at": occurred_at}

    value = get("evidence_id")
    if value is not None:
        if type(value) is not str or _ID(value) is None:
            value = _token(value, "evidence_id", _MAX_ID, _ID, _ID_PATTERN)
        out["evidence_id"] = value
    value = get("business_id")
    if value is not None:
        if type(value) is not str or _ID(value) is None:
            value = _token(value, "business_id", _MAX_ID, _ID, _ID_PATTERN)
        out["business_id"] = value
    value = get("signature")
    if value is not None:
        out["signature"] = _signature(value)
    measure = _ALWAYS_MEASURE
    value = get("attributes")
    if value is not None:
        out["attributes"] = value = _attributes(value)
        if len(value) > _ATTRIBUTES_WITHOUT_SIZE_CHECK:
            measure = True
    value = get("sealed")
    if value is not None:
        out["sealed"] = _sealed(value)
        measure = True

    if measure:
        size = len(_dumps(out))
        if size > _MAX_RECORD_BYTES:
            raise RecordError(
                RECORD_FIELD, "max_record_bytes", f"encodes to {size} bytes, at most {_MAX_RECORD_BYTES} allowed"
            )
    return out


def validate_records(objs: Iterable[Any]) -> list:
    """Validate many records independently: per item, the normalized dict or its RecordError.

    Order is kept; a bad item never affects the others, and nothing is raised for bad items.
    """
    results = []
    append = results.append
    for obj in objs:
        try:
            append(validate_record(obj))
        except RecordError as e:
            append(e)
    return results
