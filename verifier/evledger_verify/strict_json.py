"""Strict JSON for texts handed in from outside to be checked (proof bundles, verify requests):
one reading of a text, or a refusal that says what was wrong and where. Standard library only,
so that the offline verifier can ship it without orjson, numpy or web3.

Why not plain `json.loads`: it keeps the last of two equal keys while other parsers keep the
first, so two verifiers could read one bundle two ways; it accepts NaN and Infinity, and lone
surrogates (`\\ud800`) that no UTF-8 text can hold; and it recurses once per nesting level, so a
text nested 100,000 deep raises RecursionError, or, where a library has raised the recursion
limit (web3 and py_ecc set it to 100,000), overflows the C stack and kills the process. Here the
depth is counted by a linear scan before the parser runs, so no recursion limit matters.
"""
from __future__ import annotations

import json
import re

__all__ = ["StrictJSONError", "depth_problem", "loads_strict"]


class StrictJSONError(ValueError):
    """The text is refused. The message says what was wrong and where: `$` is the top value,
    `$.leaf.index` a member, `$.inclusion.path[3]` an element."""


class _Refused:
    """Put in place of a value the parser's hooks refuse. The hooks cannot raise with a path (the
    parser calls them from the inside out, without saying where), so they leave this and the
    walk after parsing, which knows the path, reports it."""

    __slots__ = ("problem",)

    def __init__(self, problem: str):
        self.problem = problem


# A string, or one bracket outside strings; a lone `"` is a string that never ends (JSON allows
# no `"` elsewhere), and from there on the parser's own error is the one to give.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[][{}"]', re.S)
_SURROGATE = re.compile("[\ud800-\udfff]")  # after parsing, a pair is one code point: these are lone
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_INT_DIGITS = 4300  # Python's default int() limit; longer integers are refused, not raised on


def _quoted(text: str, limit: int = 60) -> str:
    # repr escapes lone surrogates and control characters, so a message can always be printed
    shown = repr(text)
    return shown if len(shown) <= limit else shown[:limit - 4] + "...'"


def _unique_keys(pairs: list[tuple[str, object]]):
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            return _Refused(f"duplicate key {_quoted(key)} in object")
        seen.add(key)
    return obj  # not reached


def _integer(text: str):
    # The grammar gives `-?(0|[1-9][0-9]*)` here: no leading zeros, no `+`.
    if text == "-0":
        return _Refused("number -0 is not a plain integer (write 0)")
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        return _Refused(f"integer of {len(text.lstrip('-'))} digits is too long")
    return int(text)


def _fraction(text: str):
    shown = text if len(text) <= 40 else text[:37] + "..."
    return _Refused(f"number {shown} is not a plain integer (no fraction, no exponent)")


def _constant(name: str):
    return _Refused(f"{name} is not JSON")


def depth_problem(text: str, max_depth: int) -> str | None:
    """Where `text` nests brackets deeper than `max_depth`, or None: a linear scan, no recursion."""
    if text.count("{") + text.count("[") <= max_depth:  # too few brackets to nest past it: no scan
        return None
    depth = 0
    for token in _TOKEN.finditer(text):
        char = token.group()
        if char in "[{":
            depth += 1
            if depth > max_depth:
                return f"nesting deeper than {max_depth} levels (at character {token.start()})"
        elif char in "]}":
            depth -= 1  # below 0 is a syntax error that the parser reports
        elif char == '"':
            break  # an unterminated string: the parser reports it
    return None


def _path(entry) -> str:
    names = []
    while entry is not None:
        entry, key = entry
        names.append(f"[{key}]" if type(key) is int else f".{key}" if _NAME.fullmatch(key)
                     else f"[{json.dumps(key)}]")  # json.dumps: ASCII, surrogates escaped
    return "$" + "".join(reversed(names))


def _problem_in(value) -> str | None:
    """The first refused value, lone surrogate, in document order, with its path. Iterative:
    the nesting is bounded already, but this walk never needs the recursion limit either."""
    stack = [(value, None)]  # (value, where): where is (parent's where, key) or None for $
    while stack:
        item, where = stack.pop()
        kind = type(item)
        if kind is _Refused:
            return f"{item.problem} at {_path(where)}"
        if kind is str:
            found = _SURROGATE.search(item)
            if found:
                return f"lone surrogate {ascii(found.group())[1:-1]} in a string at {_path(where)}"
        elif kind is dict:
            members = []
            for key, member in item.items():
                found = _SURROGATE.search(key)
                if found:
                    return f"lone surrogate {ascii(found.group())[1:-1]} in the key {_quoted(key)} of the object " \
                           f"at {_path(where)}"
                members.append((member, (where, key)))
            stack.extend(reversed(members))
        elif kind is list:
            stack.extend((item[i], (where, i)) for i in range(len(item) - 1, -1, -1))
    return None


def loads_strict(data: bytes | str, *, max_bytes: int, max_depth: int) -> object:
    """The JSON value of `data` (RFC 8259), or StrictJSONError. In this order: at most
    `max_bytes` bytes of UTF-8 (a str counts as its UTF-8 encoding); strict UTF-8 (no overlong
    forms, no encoded surrogates); brackets nested at most `max_depth` deep (keep it small, a
    few dozen: the parser that runs after the scan recurses that deep); then the JSON itself,
    refusing duplicate keys in an object, NaN and Infinity, numbers with a fraction or an
    exponent and -0 (every number must be a plain integer), and escaped lone surrogates
    (`\\ud800` with no pair) in keys and strings."""
    if isinstance(data, str):
        if len(data) > max_bytes:  # a character is at least one byte: too long already
            raise StrictJSONError(f"the text is over {max_bytes} bytes, the limit")
        try:
            size = len(data.encode("utf-8"))
        except UnicodeEncodeError as exc:  # a str from Python code can hold what UTF-8 cannot
            raise StrictJSONError(f"lone surrogate {ascii(data[exc.start])[1:-1]} at character {exc.start}") from None
        text = data
    elif isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        size = len(raw)
        text = None
    else:
        raise TypeError(f"loads_strict reads bytes or str, not {type(data).__name__}")
    if size > max_bytes:
        raise StrictJSONError(f"the text is {size} bytes, over the limit of {max_bytes}")
    if text is None:
        try:
            text = raw.decode("utf-8")  # strict: overlong forms and encoded surrogates are errors
        except UnicodeDecodeError as exc:
            raise StrictJSONError(f"invalid UTF-8 at byte {exc.start} "
                                  f"({raw[exc.start:exc.end].hex(' ')}: {exc.reason})") from None
    problem = depth_problem(text, max_depth)
    if problem:
        raise StrictJSONError(problem)
    try:
        value = json.loads(text, object_pairs_hook=_unique_keys, parse_int=_integer, parse_float=_fraction,
                           parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise StrictJSONError(f"not JSON: {exc}") from None
    except RecursionError:  # not reached with a small max_depth; never a traceback if it is
        raise StrictJSONError(f"nesting too deep for this parser (max_depth {max_depth} is too large)") from None
    problem = _problem_in(value)
    if problem:
        raise StrictJSONError(problem)
    return value
