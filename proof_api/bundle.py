"""Proof bundles, format `evledger-proof/2` (docs/proof-bundle.md, docs/proof-bundle.v2.schema.json):
everything a court needs to check one record offline, without trusting this service. Version 2
is version 1 with the witnesses' cosignature lines in the checkpoint's note and listed in
`cosignatures`; every verifier still reads version 1.

    {"format": "evledger-proof/2",
     "ledger": "acme", "origin": "evledger/acme", "hash_alg": "sm3",
     "leaf": {"index": 7, "bytes_b64": "...", "hash": "<hex>"},
     "inclusion": {"tree_size": 65536, "path": ["<hex>", ...]},
     "checkpoint": {"size": 65536, "root": "<hex>", "note": "<signed note, cosigned>", "verifier_key": "<vkey>"},
     "cosignatures": [{"witness_key": "<witness vkey>", "timestamp": <unix s>}, ...],
     "anchor": {"chain_id": ..., "contract": "0x...", "ledger_key": "0x...", "tx_hash": "0x...",
                "block_number": ..., "block_hash": "0x...", "block_time": <unix s>} or null,
     "record": {... the decoded leaf, for humans ...},
     "issued_at": "YYYY-MM-DDTHH:MM:SS.ffffffZ"}
"""
from __future__ import annotations

import base64

from evledger_verify.chain import ledger_key
from evledger_verify.verify import BUNDLE_FORMAT
from ingest.leaf import decode_leaf, utc_now_text


class BundleError(ValueError):
    """The bundle asked for cannot be made (no such checkpoint, not anchored yet...)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def choose_checkpoint(ledger, seq: int, size: int | None = None, require_anchor: bool = True) -> tuple[dict, dict | None]:
    """The checkpoint a record's proof is made against, and its confirmed anchor: by default
    the first anchored checkpoint that covers the record; or the checkpoint at `size`."""
    if size is not None:
        checkpoint = ledger.checkpoint(size)
        if checkpoint is None:
            raise BundleError("not_found", f"ledger {ledger.id!r} has no checkpoint at size {size}")
        if seq >= size:
            raise BundleError("invalid_request", f"record {seq} is not in the checkpoint at size {size}")
        anchor = ledger.anchor(size)
        return checkpoint, anchor if anchor and anchor.get("status") == "confirmed" else None
    anchor = ledger.first_confirmed_anchor(seq)
    if anchor is not None:
        return ledger.checkpoint(anchor["size"]), anchor
    if require_anchor:
        raise BundleError("not_anchored", f"record {seq} of ledger {ledger.id!r} is not covered by an anchored "
                                          f"checkpoint yet; ask again after the next anchor, or name a checkpoint size")
    checkpoint = ledger.checkpoints(after_size=seq, limit=1)
    if not checkpoint:
        raise BundleError("not_checkpointed", f"record {seq} of ledger {ledger.id!r} is not in a checkpoint yet")
    return checkpoint[0], None


def build_bundle(ledger, seq: int, size: int | None = None, require_anchor: bool = True) -> dict:
    """The `evledger-proof/2` bundle proving record `seq` of `ledger`."""
    checkpoint, anchor = choose_checkpoint(ledger, seq, size, require_anchor)
    leaf = ledger.leaf(seq)
    path = ledger.inclusion_proof(seq, checkpoint["size"])
    verifier_key = ledger.verifier_keys()[checkpoint["key_id"]]
    note, cosignatures = ledger.cosigned_note(checkpoint)
    anchor_block = None
    if anchor is not None:
        anchor_block = {"chain_id": anchor["chain_id"], "contract": anchor["contract"],
                        "ledger_key": "0x" + ledger_key(ledger.origin).hex(), "tx_hash": anchor["tx_hash"],
                        "block_number": anchor["block_number"], "block_hash": anchor["block_hash"],
                        "block_time": anchor["block_time"]}
    return {
        "format": BUNDLE_FORMAT,
        "ledger": ledger.id,
        "origin": ledger.origin,
        "hash_alg": ledger.alg,
        "leaf": {"index": seq, "bytes_b64": base64.b64encode(leaf).decode(), "hash": ledger.leaf_hash(seq).hex()},
        "inclusion": {"tree_size": checkpoint["size"], "path": [p.hex() for p in path]},
        "checkpoint": {"size": checkpoint["size"], "root": checkpoint["root"], "note": note,
                       "verifier_key": verifier_key},
        "cosignatures": [{"witness_key": c["witness_key"], "timestamp": c["timestamp"]} for c in cosignatures],
        "anchor": anchor_block,
        "record": decode_leaf(leaf),
        "issued_at": utc_now_text(),
    }


def bundle_from_tiles(location: str, ledger_id: str, verifier_keys: list[str], seq: int | None = None,
                      evidence_id: str | None = None, scanned=None, alg: str | None = None) -> dict:
    """The `evledger-proof/2` bundle of a record built from the ledger's static tiles alone
    (docs/tiles.md), against the published checkpoint: its signature is checked with
    `verifier_keys` and the tiles against its root before anything is taken from them. Tiles
    carry no anchor, so the bundle has none. `alg`: the ledger's hash, found from the tiles
    when not given (at the cost of entry bundle 0 and its tiles). `scanned(n)` hears of each entry bundle read
    while looking for an evidence id (the tiles have no index: every entry up to it is read)."""
    from evledger_verify.proof import verify_inclusion
    from evledger_verify.tiles import TileError, fetcher, open_published, read_published, shown_url

    fetch = fetcher(location)
    where = shown_url(location)  # no user:password in messages
    checkpoint, note, signer = read_published(fetch, where, verifier_keys)
    try:
        tiles = open_published(fetch, checkpoint.size, checkpoint.root, alg)
    except TileError as exc:
        raise BundleError("bad_tiles", f"the tiles at {where} do not match their signed checkpoint: {exc}") from None
    if evidence_id is not None:
        seq = _find_in_tiles(tiles, evidence_id, scanned)
        if seq is None:
            raise BundleError("not_found", f"no record with evidence id {evidence_id!r} in the {checkpoint.size} "
                                           f"published entries")
    if seq is None or not 0 <= seq < checkpoint.size:
        raise BundleError("not_found", f"record {seq} is not in the published checkpoint (size {checkpoint.size})")
    leaf = tiles.entry(seq)
    try:
        record = decode_leaf(leaf)
    except ValueError as exc:  # LeafError: signed and consistent, but not a leaf of ours
        raise BundleError("bad_tiles", f"published entry {seq} is not an evidence-ledger leaf: {exc}") from None
    if record["ledger"] != ledger_id:
        raise BundleError("invalid_request", f"the tiles at {where} are ledger {record['ledger']!r}'s, "
                                             f"not {ledger_id!r}'s")
    path = tiles.inclusion_proof(seq)
    leaf_hash = tiles.leaf_hash(leaf)
    verify_inclusion(tiles.alg, seq, checkpoint.size, leaf_hash, path, checkpoint.root)
    return {
        "format": BUNDLE_FORMAT, "ledger": ledger_id, "origin": checkpoint.origin, "hash_alg": tiles.alg,
        "leaf": {"index": seq, "bytes_b64": base64.b64encode(leaf).decode(), "hash": leaf_hash.hex()},
        "inclusion": {"tree_size": checkpoint.size, "path": [p.hex() for p in path]},
        "checkpoint": {"size": checkpoint.size, "root": checkpoint.root.hex(), "note": _signed_by(note, signer),
                       "verifier_key": signer},
        "cosignatures": [],
        "anchor": None,
        "record": record,
        "issued_at": utc_now_text(),
    }


def _find_in_tiles(tiles, evidence_id: str, scanned=None) -> int | None:
    import orjson

    from evledger_verify.tiles import TILE_WIDTH

    needle = b'"evidence_id":' + orjson.dumps(evidence_id)
    for bundle in range(-(-tiles.size // TILE_WIDTH)):
        for at, entry in enumerate(tiles.entries(bundle)):
            if needle not in entry:
                continue
            try:
                found = decode_leaf(entry)["record"].get("evidence_id")
            except ValueError as exc:  # LeafError: signed and consistent, but not a leaf of ours
                raise BundleError("bad_tiles", f"published entry {bundle * TILE_WIDTH + at} is not an "
                                               f"evidence-ledger leaf: {exc}") from None
            if found == evidence_id:
                return bundle * TILE_WIDTH + at
        tiles._tiles.pop(("entries", bundle), None)  # read once: hold no more than one bundle
        if scanned is not None:
            scanned(1)
    return None


def _signed_by(note: str, vkey: str) -> str:
    """The note with the signature line of `vkey` alone. A bundle lists the witnesses of the
    lines its note carries by their keys, which a published note does not give: their lines
    are left out (a verifier requiring a witness then asks for a bundle from the API)."""
    from evledger_verify.note import parse_verifier_key

    name, kid, _ = parse_verifier_key(vkey)
    body, _, signatures = note.partition("\n\n")
    mine = [line for line in signatures.splitlines()
            if line.startswith(f"\u2014 {name} ") and base64.b64decode(line.rsplit(" ", 1)[1])[:4] == kid]
    return body + "\n\n" + mine[0] + "\n"
