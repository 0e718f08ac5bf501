"""The offline verifier of `evledger-proof/1` bundles (docs/proof-bundle.md): checks one
record's proof with no data directory and no server, and answers verdict ① (in the anchored
tree, unaltered) or ② (not in it, or altered), listing every check and what it found.

A bundle is a chain of links, one check each:
    leaf bytes --H(0x00||leaf)--> leaf.hash --inclusion path--> checkpoint.root
    --SM2-signed note--> (origin, size, root) --anchor contract--> the chain.
The leaf bytes also decode to the record a human reads, and a file's SM3 to its content_hash.
Nothing here raises on a malformed bundle: every problem is a failed check with a message.
Plain Python: the proof code is proof.py (RFC 9162), the note is note.py,
the chain is read over plain JSON-RPC (chain.py).
"""
from __future__ import annotations

import base64
import binascii
import re
import sys
import time
from pathlib import Path
from dataclasses import dataclass, field

from .cosignature import cosignatures_by, parse_cosigner_key, verify_cosignature
from .note import CheckpointError, parse_note, parse_verifier_key, verifier_key, verify_checkpoint
from .proof import ProofError, hash_function, verify_consistency, verify_inclusion

from .certificate import MAX_CERTIFICATE_BYTES, CertificateError, bundle_text_of_file, is_blank, is_certificate
from .chain import JsonRpc, RpcError, anchored_events, get_anchor, ledger_key
from .leaf import LEDGER_ID_RE, LeafError, canonical_json, decode_leaf
from .strict_json import StrictJSONError, loads_strict
from .tiles import TileError, TileReader, fetcher, read_published, shown_url

BUNDLE_FORMAT_V1 = "evledger-proof/1"
BUNDLE_FORMAT = "evledger-proof/2"  # v1 and the list of the note's cosignatures
BUNDLE_FORMATS = (BUNDLE_FORMAT_V1, BUNDLE_FORMAT)

CHECK_NAMES = ("format", "leaf", "leaf_hash", "inclusion", "checkpoint", "witnesses", "file", "content_hash",
               "anchor", "anchor_on_chain")
MAX_COSIGNATURES = 32  # witness lines a v2 bundle lists; a ledger has a handful of witnesses
VERDICT_IN_TREE = 1  # ①
VERDICT_NOT_PROVEN = 2  # ②

# What a verifier reads before any check (docs/proof-bundle.md, "How a verifier reads a
# bundle"). A real bundle is a few KB (a record of at most 16 KB by default, twice, and at most
# 64 path hashes) and nests 4 objects deep ($.record.record.signature): the limits leave room
# and bound the work a hostile text can cause.
MAX_BUNDLE_BYTES = 1 << 20  # 1 MiB
MAX_BUNDLE_DEPTH = 32


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: not checked (the detail says why)
    detail: str


@dataclass(frozen=True)
class Report:
    checks: list[Check] = field(default_factory=list)
    verdict: int = VERDICT_NOT_PROVEN
    verdict_text: str = ""

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    def as_dict(self) -> dict:
        return {"verdict": self.verdict, "verdict_text": self.verdict_text,
                "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks]}


class Failed(Exception):
    """The check failed; the message says how."""


class NotChecked(Exception):
    """The check was not made; the message says why."""


# --- hashes -----------------------------------------------------------------------------------


# SM3 for the file check (a content_hash is always SM3); the tree hash of a ledger is
# proof.hash_function(hash_alg), the same function the inclusion check hashes with.
sm3 = hash_function("sm3")


# --- check 1: the format ------------------------------------------------------------------------

_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX64_0X = re.compile(r"0x[0-9a-f]{64}")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
MAX_BLOCK_TIME = 253402300799  # 9999-12-31T23:59:59Z
MAX_PATH = 64  # an inclusion path has at most one hash per level of a tree of < 2**64 leaves


def _text(pattern=None):
    return lambda v: isinstance(v, str) and (v != "" if pattern is None else pattern.fullmatch(v) is not None)


def _int(minimum: int):
    # type() is int: not True, not 1.0. Below 2**64: the contract's and the tree's sizes are
    # uint64, and a parser that reads numbers as doubles could not hold more, so no bundle passes
    # one reader and fails another on a number's size.
    return lambda v: type(v) is int and minimum <= v < 2**64


# Field -> (test, what it must be); a nested dict is a nested object. Mirrors docs/proof-bundle.schema.json.
_ANCHOR_FIELDS = {
    "chain_id": (_int(1), "a positive integer below 2**64"),
    "contract": (_text(_ADDRESS), "0x and 40 hex digits"),
    "ledger_key": (_text(_HEX64_0X), "0x and 64 lower-case hex digits"),
    "tx_hash": (_text(_HEX64_0X), "0x and 64 lower-case hex digits"),
    "block_number": (_int(1), "a positive integer below 2**64"),
    "block_hash": (_text(_HEX64_0X), "0x and 64 lower-case hex digits"),
    # Up to the last second of year 9999: every verifier can print it as a date.
    "block_time": (lambda v: type(v) is int and 0 <= v <= MAX_BLOCK_TIME,
                   f"Unix seconds from 0 to {MAX_BLOCK_TIME} (9999-12-31T23:59:59Z)"),
}
_COSIGNATURE_FIELDS = {
    "witness_key": (_text(), "a non-empty string"),
    "timestamp": (lambda v: type(v) is int and 1 <= v < 2**63, "Unix seconds from 1 to 2**63-1"),
}
_BUNDLE_FIELDS = {
    "format": (lambda v: v in BUNDLE_FORMATS, " or ".join(map(repr, BUNDLE_FORMATS))),
    "ledger": (_text(LEDGER_ID_RE), f"a ledger id {LEDGER_ID_RE.pattern}"),
    "origin": (_text(), "a non-empty string"),
    "hash_alg": (lambda v: v in ("sm3", "sha256"), '"sm3" or "sha256"'),
    "leaf": {
        "index": (_int(0), "a non-negative integer below 2**64"),
        "bytes_b64": (_text(_BASE64), "base64 text"),
        "hash": (_text(_HEX64), "64 lower-case hex digits"),
    },
    "inclusion": {
        "tree_size": (_int(1), "a positive integer below 2**64"),
        "path": (lambda v: type(v) is list and len(v) <= MAX_PATH and all(map(_text(_HEX64), v)),
                 f"a list of at most {MAX_PATH} hashes of 64 lower-case hex digits"),
    },
    "checkpoint": {
        "size": (_int(1), "a positive integer below 2**64"),
        "root": (_text(_HEX64), "64 lower-case hex digits"),
        "note": (_text(), "a non-empty string"),
        "verifier_key": (_text(), "a non-empty string"),
    },
    "anchor": (lambda v: v is None or type(v) is dict, "an object or null"),
    "record": (lambda v: type(v) is dict, "an object"),
    "issued_at": (_text(_TIME), "a UTC time YYYY-MM-DDTHH:MM:SS.ffffffZ"),
}
_BUNDLE_V2_FIELDS = {
    **_BUNDLE_FIELDS,
    "cosignatures": (lambda v: type(v) is list and len(v) <= MAX_COSIGNATURES,
                     f"a list of at most {MAX_COSIGNATURES} cosignatures"),
}


def _shape_problem(value, fields: dict, where: str, version: str) -> str | None:
    if type(value) is not dict:
        return f"{where.rstrip('.') or 'the bundle'} must be an object, got {type(value).__name__}"
    missing = [k for k in fields if k not in value]
    if missing:
        return f"{where}{missing[0]} is missing"
    unknown = sorted(str(k) for k in value if k not in fields)
    if unknown:
        return f"{where}{unknown[0]} is not a field of {version}"
    for key, rule in fields.items():
        if isinstance(rule, dict):
            problem = _shape_problem(value[key], rule, f"{where}{key}.", version)
            if problem:
                return problem
        elif not rule[0](value[key]):
            return f"{where}{key} must be {rule[1]}, got {_short(value[key])}"
    return None


def check_format(b) -> str:
    if type(b) is not dict:
        raise Failed(f"the bundle must be a JSON object, got {type(b).__name__}")
    version = b.get("format")
    if version not in BUNDLE_FORMATS:
        raise Failed(f"format is {_short(version)}, not {BUNDLE_FORMAT_V1!r} or {BUNDLE_FORMAT!r}: this verifier "
                     f"reads no other version")
    problem = _shape_problem(b, _BUNDLE_V2_FIELDS if version == BUNDLE_FORMAT else _BUNDLE_FIELDS, "", version)
    if problem is None and b["anchor"] is not None:
        problem = _shape_problem(b["anchor"], _ANCHOR_FIELDS, "anchor.", version)
    for i, entry in enumerate(b.get("cosignatures", ()) if problem is None else ()):
        problem = problem or _shape_problem(entry, _COSIGNATURE_FIELDS, f"cosignatures[{i}].", version)
    if problem:
        raise Failed(problem)
    return (f"{version}, every field present and well-formed: record {b['leaf']['index']} of ledger "
            f"{b['ledger']!r} (origin {b['origin']!r}, {b['hash_alg']})")


# --- check 2: the leaf bytes are the record ----------------------------------------------------


def leaf_bytes(b: dict) -> bytes:
    text = b["leaf"]["bytes_b64"]
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Failed(f"leaf.bytes_b64 is not base64: {exc}") from None
    if base64.b64encode(raw).decode() != text:  # one leaf, one text: no spare padding bits
        raise Failed("leaf.bytes_b64 is not canonical base64 (it re-encodes differently)")
    return raw


def committed_event(b: dict) -> dict:
    """The event the leaf bytes encode, checked to be a canonical version-1 leaf."""
    try:
        return decode_leaf(leaf_bytes(b))
    except LeafError as exc:
        raise Failed(f"the leaf bytes are not a canonical version-1 leaf (docs/leaf.md): {exc}") from None


def _difference(a, b, where: str) -> str | None:
    """The first path where two decoded JSON values differ (type included: 1 is not true)."""
    if type(a) is dict and type(b) is dict:
        for key in sorted(a.keys() | b.keys()):
            if key not in a or key not in b:
                return f"{where}.{key}"
            found = _difference(a[key], b[key], f"{where}.{key}")
            if found:
                return found
        return None
    return None if type(a) is type(b) and a == b else where


def check_leaf(b: dict) -> str:
    leaf = leaf_bytes(b)
    event = committed_event(b)
    if event["seq"] != b["leaf"]["index"]:
        raise Failed(f"the leaf is record {event['seq']} but leaf.index is {b['leaf']['index']}")
    if event["ledger"] != b["ledger"]:
        raise Failed(f"the leaf is of ledger {event['ledger']!r}, not the bundle's ledger {b['ledger']!r}")
    try:
        same = canonical_json(b["record"]) == leaf
    except (TypeError, ValueError):  # ValueError: a lone surrogate cannot be UTF-8
        same = False
    if not same:
        where = _difference(b["record"], event, "record") or "record"
        raise Failed(f"the bundle's record is not what the leaf commits to: they differ at {where}")
    return f"a canonical v1 leaf of {len(leaf)} bytes: record {event['seq']} of ledger {event['ledger']!r}, " \
           f"received {event['received_at']}, equal to the bundle's record"


# --- check 3: the leaf hash --------------------------------------------------------------------


def check_leaf_hash(b: dict) -> str:
    alg, claimed = b["hash_alg"], b["leaf"]["hash"]
    computed = hash_function(alg)(b"\x00" + leaf_bytes(b)).hex()  # RFC 9162 §2.1.1: leaf prefix 0x00
    if computed != claimed:
        raise Failed(f"{alg}(0x00 || leaf) is {computed}, but leaf.hash is {claimed}")
    return f"{alg}(0x00 || leaf) = {computed} = leaf.hash"


# --- check 4: the inclusion path ---------------------------------------------------------------


def check_inclusion(b: dict) -> str:
    index, size = b["leaf"]["index"], b["inclusion"]["tree_size"]
    path = b["inclusion"]["path"]
    try:  # RFC 9162 §2.1.3.2
        verify_inclusion(b["hash_alg"], index, size, bytes.fromhex(b["leaf"]["hash"]),
                         [bytes.fromhex(p) for p in path], bytes.fromhex(b["checkpoint"]["root"]))
    except ProofError as exc:
        raise Failed(f"the path does not lead from leaf {index} to checkpoint.root at tree size {size}: {exc}") from None
    return f"{len(path)} hashes lead from leaf.hash at index {index} to checkpoint.root " \
           f"{b['checkpoint']['root']} at tree size {size} (RFC 9162 §2.1.3.2)"


# --- check 5: the signed checkpoint ------------------------------------------------------------


def _note_problem(note: str) -> str | None:
    """The note must be exactly its body and signature lines re-encoded (base64 has spare bits:
    two texts must not carry one signature). It holds one signature by the key, not several
    (verify_checkpoint refuses more); lines by other keys (witnesses' cosignatures) are allowed
    and ignored (c2sp.org/signed-note)."""
    body, signatures = parse_note(note)
    lines = "".join(f"\u2014 {n} {base64.b64encode(k + sig).decode()}\n" for n, k, sig in signatures)
    if note != body + "\n" + lines:
        return "checkpoint.note is not in canonical form (its signature lines re-encode differently)"
    return None


def check_checkpoint(b: dict, trusted_keys: list[str] | None = None) -> str:
    """`trusted_keys`: the verifier keys the ledger published (--key). Without them the key is
    the one the bundle carries, and a bundle signed by a forger's own key would also pass."""
    cp, origin, tree_size = b["checkpoint"], b["origin"], b["inclusion"]["tree_size"]
    try:
        name, kid, public_key = parse_verifier_key(cp["verifier_key"])
        if verifier_key(name, public_key) != cp["verifier_key"]:
            raise Failed("checkpoint.verifier_key is not in canonical form (it re-encodes differently)")
        if name != origin:
            raise Failed(f"the verifier key is for {name!r}, not the bundle's origin {origin!r}")
        signed = verify_checkpoint(cp["note"], cp["verifier_key"])  # C2SP signed note, SM2 (docs/checkpoint.md)
        problem = _note_problem(cp["note"])
        if problem:
            raise Failed(problem)
    except CheckpointError as exc:
        raise Failed(f"checkpoint: {exc}") from None
    if signed.origin != origin:
        raise Failed(f"the note is for origin {signed.origin!r}, not the bundle's origin {origin!r}")
    if signed.size != cp["size"] or signed.size != tree_size:
        raise Failed(f"the note signs tree size {signed.size}, but checkpoint.size is {cp['size']} "
                     f"and inclusion.tree_size is {tree_size}")
    if signed.root.hex() != cp["root"]:
        raise Failed(f"the note signs root {signed.root.hex()}, but checkpoint.root is {cp['root']}")
    if trusted_keys is not None and cp["verifier_key"] not in trusted_keys:
        raise Failed(f"the note is signed by key id {kid.hex()} ({cp['verifier_key']}), which is not one of the "
                     f"{len(trusted_keys)} trusted key(s) given (--key)")
    whose = "a trusted key (--key)" if trusted_keys is not None else "the bundle's own key (pass --key to pin it)"
    return f"the note's SM2 signature by {name} (key id {kid.hex()}) verifies with {whose}; it signs origin " \
           f"{origin!r}, size {signed.size}, root {signed.root.hex()}"


# --- check 6: the witnesses' cosignatures (docs/cosignature.md) ---------------------------------


@dataclass(frozen=True)
class WitnessPolicy:
    """Pass only with `threshold` valid cosignatures, each by a different one of `keys`."""
    keys: tuple[str, ...]
    threshold: int


def _cosignature_lines(b: dict) -> tuple[str, list[tuple[str, bytes, bytes]]]:
    """The note's body, and its signature lines by names other than the bundle's origin (the
    ledger signs as its origin; a witness has a name of its own)."""
    try:
        body, signatures = parse_note(b["checkpoint"]["note"])
    except CheckpointError as exc:
        raise Failed(f"the note cannot be read: {exc}") from None
    return body, [(n, k, sig) for n, k, sig in signatures if n != b["origin"]]


def check_witnesses(b: dict, policy: WitnessPolicy | None = None) -> str:
    """Version 2: every cosignature line of the note is listed, in order, with its witness's
    key and time, and verifies with that key (as the checkpoint verifies with the bundle's own
    key). With a policy (--witness): enough of the keys given have cosigned, whatever the list
    says (a version-1 note may carry cosignature lines too)."""
    body, lines = _cosignature_lines(b)
    if b["format"] == BUNDLE_FORMAT:
        listed = b["cosignatures"]
        if len(listed) != len(lines):
            raise Failed(f"cosignatures lists {len(listed)}, but the note has {len(lines)} cosignature line(s)")
        seen = set()
        for name, kid, _ in lines:  # one line per witness key, as signed-note verifiers require
            if (name, kid) in seen:
                raise Failed(f"the note has more than one cosignature line by {name} ({kid.hex()})")
            seen.add((name, kid))
        for i, ((name, kid, sig), entry) in enumerate(zip(lines, listed)):
            try:
                wname, wkid, _ = parse_cosigner_key(entry["witness_key"])
                if (wname, wkid) != (name, kid):
                    raise Failed(f"cosignatures[{i}] is by {wname} ({wkid.hex()}), but the note's line {i + 1} after "
                                 f"the ledger's is by {name} ({kid.hex()})")
                timestamp = verify_cosignature(body, entry["witness_key"], sig)
            except CheckpointError as exc:
                raise Failed(f"cosignatures[{i}]: {exc}") from None
            if timestamp != entry["timestamp"]:
                raise Failed(f"cosignatures[{i}].timestamp is {entry['timestamp']}, but the cosignature is timestamped "
                             f"{timestamp}")
    if policy is None:
        if b["format"] == BUNDLE_FORMAT and lines:
            return (f"{len(lines)} cosignature(s) verify with the bundle's own witness keys (pass --witness to "
                    f"pin them): " + ", ".join(f"{e['witness_key'].split('+')[0]} at {_utc(e['timestamp'])}"
                                               for e in b["cosignatures"]))
        raise NotChecked("no witness keys given (pass --witness)"
                         + ("" if lines else "; the note carries no cosignatures"))
    found = cosignatures_by(b["checkpoint"]["note"], list(policy.keys))
    valid = {vkey: ts for vkey, ts in found.items() if type(ts) is int}
    if len(valid) < policy.threshold:
        why = "; ".join(str(v) for v in found.values() if type(v) is not int)
        raise Failed(f"{len(valid)} of the {len(policy.keys)} witness key(s) given cosigned this checkpoint, "
                     f"{policy.threshold} required: {why}")
    who = ", ".join(f"{parse_cosigner_key(vkey)[0]} at {_utc(ts)}" for vkey, ts in valid.items())
    return (f"{len(valid)} of the {len(policy.keys)} witness key(s) given cosigned this checkpoint (threshold "
            f"{policy.threshold}): {who}")


# --- checks 7 and 8: the file, or its hash -----------------------------------------------------


def _committed_content_hash(b: dict) -> str:
    content_hash = committed_event(b)["record"].get("content_hash")
    if not isinstance(content_hash, str):
        raise Failed("the committed record has no content_hash")
    return content_hash.lower()


def check_file(b: dict, file_bytes: bytes | None) -> str:
    if file_bytes is None:
        raise NotChecked("no file given (--file)")
    want = _committed_content_hash(b)
    got = sm3(bytes(file_bytes)).hex()  # content_hash is always SM3, whatever the tree hash
    if got != want:
        raise Failed(f"SM3 of the file ({len(file_bytes)} bytes) is {got}, but the record's content_hash is {want}")
    return f"SM3 of the file ({len(file_bytes)} bytes) = {got} = the record's content_hash"


def check_content_hash(b: dict, content_hash: str | None) -> str:
    if content_hash is None:
        raise NotChecked("no hash given (--hash)")
    want = _committed_content_hash(b)
    if not isinstance(content_hash, str) or not _HEX64.fullmatch(content_hash.lower()):
        raise Failed(f"the given hash {_short(content_hash)} is not 64 hex digits (an SM3 digest)")
    if content_hash.lower() != want:
        raise Failed(f"the given hash {content_hash.lower()} is not the record's content_hash {want}")
    return f"the given hash = the record's content_hash {want}"


# --- checks 9 and 10: the anchor ----------------------------------------------------------------


def _utc(seconds: int) -> str:
    # Past year 9999 (a cosignature's time may be up to 2**63-1) as the number: not every
    # verifier's calendar reaches further.
    if seconds > MAX_BLOCK_TIME:
        return f"Unix time {seconds}"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def check_anchor(b: dict, contract: str | None = None) -> str:
    """`contract`: the registry's address as the consortium published it (--contract). Without
    it, --rpc reads whatever contract the bundle names, which a forger can deploy too."""
    anchor = b["anchor"]
    if anchor is None:
        raise Failed("no anchor: the record is not proven to be in an anchored tree")
    want = "0x" + ledger_key(b["origin"]).hex()
    if anchor["ledger_key"] != want:
        raise Failed(f"anchor.ledger_key is {anchor['ledger_key']}, but keccak256 of the origin "
                     f"{b['origin']!r} is {want}")
    if contract is not None and anchor["contract"].lower() != contract.lower():
        raise Failed(f"the anchor is in contract {anchor['contract']}, not the registry given (--contract {contract})")
    return f"the bundle names its anchor: chain {anchor['chain_id']}, contract {anchor['contract']}" \
           f"{' (the registry given with --contract)' if contract is not None else ''}, " \
           f"tx {anchor['tx_hash']} in block {anchor['block_number']} ({_utc(anchor['block_time'])}); " \
           f"ledger key keccak256({b['origin']!r})"


def check_anchor_on_chain(b: dict, rpc_url: str | None) -> str:
    anchor, size = b["anchor"], b["checkpoint"]["size"]
    if anchor is None:
        raise NotChecked("there is no anchor to look up")
    if not rpc_url:
        raise NotChecked("not checked on chain (pass --rpc)")
    rpc = JsonRpc(rpc_url)

    def ask(what: str, call):
        try:
            return call()
        except (RpcError, ValueError) as exc:  # unreachable, no contract there, unknown tx...: not proven
            raise Failed(f"could not read {what} from {rpc_url}: {exc}") from None

    chain_id = ask("the chain id", rpc.chain_id)
    if chain_id != anchor["chain_id"]:
        raise Failed(f"{rpc_url} serves chain {chain_id}, but the anchor is on chain {anchor['chain_id']}")
    key = bytes.fromhex(anchor["ledger_key"][2:])
    found = ask(f"getAnchor at {anchor['contract']}", lambda: get_anchor(rpc.eth_call, anchor["contract"], key, size))
    if found is None:
        raise Failed(f"the contract holds no anchor of size {size} for ledger key {anchor['ledger_key']}")
    root, number, timestamp = found.root, found.block_number, found.timestamp
    if root.hex() != b["checkpoint"]["root"]:
        raise Failed(f"the contract holds root {root.hex()} for size {size}, not checkpoint.root "
                     f"{b['checkpoint']['root']}")
    if number != anchor["block_number"] or timestamp != anchor["block_time"]:
        raise Failed(f"the contract says block {number} at {timestamp}, but the bundle says block "
                     f"{anchor['block_number']} at {anchor['block_time']}")
    block_hash = ask(f"block {number}", lambda: rpc.block(number).get("hash"))
    if not isinstance(block_hash, str) or block_hash.lower() != anchor["block_hash"]:
        raise Failed(f"block {number} is {_short(block_hash)}, not anchor.block_hash {anchor['block_hash']}")
    receipt = ask(f"the receipt of {anchor['tx_hash']}", lambda: rpc.receipt(anchor["tx_hash"]))
    mined = ask(f"the receipt of {anchor['tx_hash']}",
                lambda: (rpc.quantity(receipt, "status"), rpc.quantity(receipt, "blockNumber")))
    to = receipt.get("to")
    if mined != (1, number) or not isinstance(to, str) or to.lower() != anchor["contract"].lower():
        raise Failed(f"transaction {anchor['tx_hash']} is not a successful call of {anchor['contract']} in block {number}")
    # Any successful call of the registry in that block passes the test above (admin(), or
    # another ledger's anchor): the transaction must be the one whose Anchored event wrote
    # exactly this (ledger key, size, root).
    want = (anchor["ledger_key"], size, b["checkpoint"]["root"])
    written = anchored_events(receipt, anchor["contract"])
    matching = [event for event in written if event[:3] == want]
    if not matching:
        if not written:
            raise Failed(f"transaction {anchor['tx_hash']} emitted no Anchored event from {anchor['contract']}: "
                         f"it did not call anchor({anchor['ledger_key']}, {size}, 0x{b['checkpoint']['root']})")
        differs = "; ".join(f"{name} {got}, not {expected}" for name, got, expected
                            in zip(("ledger key", "size", "root"), written[0][:3], want) if got != expected)
        raise Failed(f"transaction {anchor['tx_hash']} anchored another checkpoint: its Anchored event has {differs}")
    return f"chain {chain_id} at {rpc_url}: getAnchor({anchor['ledger_key']}, {size}) = root {b['checkpoint']['root']}, " \
           f"block {number} {anchor['block_hash']} ({_utc(timestamp)}), written by tx {anchor['tx_hash']} " \
           f"(its Anchored event, from anchorer {matching[0][3]})"


def check_tiles(b: dict, location: str | None, trusted_keys: list[str] | None = None) -> str:
    """Against the ledger's static tiles at `location` (a URL or a copy of the directory):
    the published checkpoint, signed by the bundle's key or a key given, extends the bundle's
    checkpoint; the leaf is the published entry; the inclusion path recomputed from the tiles
    is the bundle's."""
    if location is None:
        raise NotChecked("not checked against published tiles (pass --tiles)")
    alg, index, size = b["hash_alg"], b["leaf"]["index"], b["checkpoint"]["size"]
    where = shown_url(location)  # no user:password in the report
    try:
        fetch = fetcher(location)
        published, _, signer = read_published(fetch, where, [b["checkpoint"]["verifier_key"], *(trusted_keys or [])],
                                              "the bundle's key or a key given")
        if published.origin != b["origin"]:
            raise Failed(f"the tiles at {where} are of origin {published.origin!r}, not {b['origin']!r}")
        if published.size < size:  # a publication lagging behind (or a cache): nothing to hold against yet
            raise NotChecked(f"not checked: the checkpoint published at {where} (size {published.size}) is older "
                             f"than the bundle's (size {size}); ask again once it has caught up")
        tiles = TileReader(fetch, alg, published.size)
        tiles.check_root(published.root)
        verify_consistency(alg, size, published.size, tiles.consistency_proof(size), bytes.fromhex(b["checkpoint"]["root"]),
                           published.root)
        if tiles.entry(index) != leaf_bytes(b):
            raise Failed(f"the published entry {index} is not the bundle's leaf")
        path = [p.hex() for p in tiles.inclusion_proof(index, size)]
        if path != b["inclusion"]["path"]:
            raise Failed("the inclusion path computed from the tiles differs from the bundle's")
    except (TileError, ProofError) as exc:
        raise Failed(f"tiles at {where}: {exc}") from None
    return (f"the tiles at {where} (checkpoint of size {published.size}, signed by {signer.split('+')[0]}) "
            f"extend the bundle's checkpoint (consistency {size} -> {published.size} verified), publish this leaf "
            f"as entry {index}, and give the bundle's inclusion path")


# --- the verdict -------------------------------------------------------------------------------


def _run(name: str, check) -> Check:
    try:
        return Check(name, True, check())
    except Failed as exc:
        return Check(name, False, str(exc))
    except NotChecked as exc:
        return Check(name, None, str(exc))
    except Exception as exc:  # a verifier answers, it never crashes: anything unforeseen is a failure
        return Check(name, False, f"could not be checked: {type(exc).__name__}: {exc}")


def _report(checks: list[Check], key_pinned: bool = False, contract_pinned: bool = False,
            witnesses_pinned: bool = False) -> Report:
    failed = [c.name for c in checks if c.ok is False]
    anchored = any(c.name == "anchor" and c.ok for c in checks)
    if not failed and anchored:
        text = "the record is in the anchored tree, unaltered"
        on_chain = any(c.name == "anchor_on_chain" and c.ok for c in checks)
        # What vouches for the root from outside the bundle: a pinned key, or the anchor read
        # from the published registry. Say which of them this verdict lacks.
        notes = ["anchor on chain \u2714"] if on_chain else ["the anchor itself was not checked on chain: pass --rpc"]
        if witnesses_pinned and any(c.name == "witnesses" and c.ok for c in checks):
            notes.append("cosigned by the witnesses given \u2714")
        if not key_pinned and not (on_chain and contract_pinned):
            notes.append("the signing key was not pinned: pass --key" if not on_chain else
                         "neither the signing key nor the contract was pinned: pass --key, or --contract")
        if notes:
            text += f" ({'; '.join(notes)})"
        return Report(checks, VERDICT_IN_TREE, text)
    return Report(checks, VERDICT_NOT_PROVEN,
                  f"the record is not proven to be in the anchored tree, or it was altered (failed: {', '.join(failed)})")


def malformed_report(problem: str) -> Report:
    """The report for a bundle that is not a well-formed evledger-proof/1 bundle."""
    return _report([Check("format", False, problem)]
                   + [Check(name, None, "not checked: the bundle is malformed") for name in CHECK_NAMES[1:]])


def verify_bundle(bundle: dict, file_bytes: bytes | None = None, content_hash: str | None = None,
                  rpc_url: str | None = None, trusted_keys: list[str] | None = None,
                  contract: str | None = None, witnesses: WitnessPolicy | None = None,
                  tiles: str | None = None) -> Report:
    """Every check of one bundle (and optionally the file, or its SM3 hash, the chain, the
    ledger's published verifier keys, the registry's published address, and the witnesses
    whose cosignatures are required)."""
    first = _run("format", lambda: check_format(bundle))
    if not first.ok:
        return malformed_report(first.detail)
    b = bundle
    return _report([
        first,
        _run("leaf", lambda: check_leaf(b)),
        _run("leaf_hash", lambda: check_leaf_hash(b)),
        _run("inclusion", lambda: check_inclusion(b)),
        _run("checkpoint", lambda: check_checkpoint(b, trusted_keys)),
        _run("witnesses", lambda: check_witnesses(b, witnesses)),
        _run("file", lambda: check_file(b, file_bytes)),
        _run("content_hash", lambda: check_content_hash(b, content_hash)),
        _run("anchor", lambda: check_anchor(b, contract)),
        _run("anchor_on_chain", lambda: check_anchor_on_chain(b, rpc_url)),
        # Only asked for: the other verifiers (Node, the page) read no tiles, and their reports
        # list the same checks as this one otherwise.
        *([_run("tiles", lambda: check_tiles(b, tiles, trusted_keys))] if tiles is not None else []),
    ], key_pinned=trusted_keys is not None, contract_pinned=contract is not None, witnesses_pinned=witnesses is not None)


def format_report(report: Report) -> str:
    marks = {True: "\u2714", False: "\u2718", None: "\u2013"}  # ✔ ✘ –
    lines = [f"{marks[c.ok]} {c.name.replace('_', ' ')}: {c.detail}" for c in report.checks]
    lines.append(f"verdict {'①' if report.verdict == VERDICT_IN_TREE else '②'}: {report.verdict_text}")
    return "\n".join(lines)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --- reading a bundle, and the command: `evledger verify BUNDLE [--file F | --hash H] [--rpc URL] [--key K]`


def load_bundle(data: bytes | str) -> object:
    """The JSON value of a bundle's text, read strictly (strict_json.py) within
    MAX_BUNDLE_BYTES and MAX_BUNDLE_DEPTH, or StrictJSONError (a ValueError) saying what was
    wrong and where. Every entry point reads a bundle with this, because two parsers that read
    one text two ways (which of two equal keys wins) would give two verdicts; the format check
    of verify_bundle then says whether the value is an evledger-proof/1 bundle."""
    return loads_strict(data, max_bytes=MAX_BUNDLE_BYTES, max_depth=MAX_BUNDLE_DEPTH)


def read_bundle_file(path: str) -> bytes:
    """A bundle's bytes (- for stdin), at most one byte more than MAX_BUNDLE_BYTES, or a
    certificate's, at most one byte more than MAX_CERTIFICATE_BYTES: enough for the readers to
    refuse a larger file without reading all of it. OSError if unreadable."""
    def read(f) -> bytes:
        head = f.read(MAX_BUNDLE_BYTES + 1)
        # a certificate, or blank so far (what follows decides): read on to the larger limit
        more = is_certificate(head) or is_blank(head)
        return head + f.read(MAX_CERTIFICATE_BYTES - MAX_BUNDLE_BYTES) if more else head

    if path == "-":
        return read(sys.stdin.buffer)
    with open(path, "rb") as f:
        return read(f)


def unreadable_report(error: StrictJSONError) -> Report:
    """The report for a bundle text that load_bundle refused: verdict ②, the format check
    failed with the reason, nothing else checked."""
    return malformed_report(f"the bundle cannot be read: {error}")


# A key file's lines end at "\n" alone (a "\r" before it is blank), and only spaces, tabs and
# "\r" are blank around a key: str.splitlines would also break at \x1c or U+2028, so a key
# hidden in a comment line would be trusted here and not by a verifier in another language.
KEY_BLANKS = " \t\r"


def key_lines(text: str) -> list[str]:
    return text.split("\n")


def load_trusted_keys(keys: list[str], key_files: list[str], named: str = "--key") -> list[str] | None:
    """The verifier keys given with --key and --key-file, each checked, or None when none was
    given. OSError for a file that cannot be read, ValueError for a line that is not a key."""
    given = [(named, k.strip(KEY_BLANKS)) for k in keys]
    for path in key_files:
        try:  # bytes decoded, not read_text: its newline translation would split a line at a lone "\r"
            text = Path(path).read_bytes().decode("utf-8-sig")  # -sig: a BOM some editors write
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path} is not UTF-8 text: {exc}") from None
        found = [(f"{path} line {number}", line.strip(KEY_BLANKS)) for number, line in enumerate(key_lines(text), 1)
                 if line.strip(KEY_BLANKS) and not line.lstrip(KEY_BLANKS).startswith("#")]
        if not found:  # an empty download must not quietly mean "trust the bundle's key"
            raise ValueError(f"{path} holds no verifier keys")
        given.extend(found)
    if not given:
        return None
    for where, key in given:
        try:
            name, _, public_key = parse_verifier_key(key)
            if verifier_key(name, public_key) != key:
                raise CheckpointError("not in canonical form (it re-encodes differently)")
        except CheckpointError as exc:
            raise ValueError(f"{where}: {_short(key)} is not a verifier key: {exc}") from None
    return [key for _, key in given]


def load_witness_policy(keys: list[str], threshold: int | None, named: str = "--witness",
                        threshold_named: str = "--witness-threshold") -> WitnessPolicy | None:
    """The witness keys given (--witness), each checked, and how many must have cosigned
    (--witness-threshold, by default all of them); None when none was given. ValueError for a
    key that is not a witness key or a threshold that cannot be met."""
    given: list[str] = []
    for key in keys:
        key = key.strip(KEY_BLANKS)
        try:
            parse_cosigner_key(key)
        except CheckpointError as exc:
            raise ValueError(f"{named}: {_short(key)} is not a witness key: {exc}") from None
        if key not in given:  # one witness counts once, however often it is named
            given.append(key)
    if not given:
        if threshold is not None:
            raise ValueError(f"{threshold_named} needs the witness keys it counts ({named})")
        return None
    if threshold is None:
        threshold = len(given)
    if type(threshold) is not int or not 1 <= threshold <= len(given):
        raise ValueError(f"{threshold_named} must be from 1 to the {len(given)} witness key(s) given, not {threshold!r}")
    return WitnessPolicy(tuple(given), threshold)


def run(bundle_path: str, file: str | None = None, content_hash: str | None = None, rpc_url: str | None = None,
        out=None, keys: list[str] = (), key_files: list[str] = (), contract: str | None = None,
        program: str = "evledger verify", witnesses: list[str] = (), witness_threshold: int | None = None,
        tiles: str | None = None) -> int:
    """Verify the bundle at `bundle_path`, or the one a certificate there embeds; print the
    report; 0 for verdict ①, 1 for ②, 2 when a file cannot be read or a key or contract given
    is not one."""
    out = out or sys.stdout
    if out is sys.stdout and hasattr(out, "reconfigure"):
        out.reconfigure(errors="replace")  # a console that cannot show ✔ (GBK, Latin-1) gets "?", not a crash
    try:
        text = read_bundle_file(bundle_path)
        file_bytes = Path(file).read_bytes() if file is not None else None
        trusted_keys = load_trusted_keys(list(keys), list(key_files))
        if contract is not None and not re.fullmatch(r"0x[0-9a-fA-F]{40}", contract):
            raise ValueError(f"--contract {contract!r} is not an address (0x and 40 hex digits)")
        policy = load_witness_policy(list(witnesses), witness_threshold)
    except (OSError, ValueError) as exc:
        print(f"{program}: error: {exc}", file=sys.stderr)
        return 2
    try:
        bundle = load_bundle(bundle_text_of_file(text))  # a certificate: the bundle it embeds
    except CertificateError as exc:
        report = malformed_report(f"the certificate holds no readable bundle: {exc}")
    except StrictJSONError as exc:
        report = unreadable_report(exc)
    else:
        report = verify_bundle(bundle, file_bytes, content_hash, rpc_url, trusted_keys, contract, policy, tiles)
    print(format_report(report), file=out)
    return 0 if report.verdict == VERDICT_IN_TREE else 1
