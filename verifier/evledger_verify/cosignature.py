"""Witness cosignatures with SM2 (docs/cosignature.md, `evledger-sm2-cosignature/v1`): the
C2SP tlog-cosignature v1 statement ("as of this time, this is the largest consistent tree I
have seen for this log") made with an SM2 key instead of Ed25519.

    signed message:  "cosignature/v1\\n" "time <unix seconds>\\n" <checkpoint body>
    signature line:  — <witness name> base64(key ID (4) || timestamp (8, big-endian) || r || s (64))
    key type:        0xFF "sm2-cosignature/v1" (not the ledger's 0xFF "sm2": one key cannot
                     sign both a checkpoint and a cosignature under one key ID)

The message is the Ed25519 cosignature's, byte for byte; SM2 signs it as the ledger signs its
note (SM3 with Z_A of the default user ID, r || s).
"""
from __future__ import annotations

import base64
import struct

from .note import CheckpointError, key_id, parse_note, parse_verifier_key, sm2_verify, verifier_key

COSIGNATURE_TYPE = b"\xffsm2-cosignature/v1"
COSIGNATURE_BYTES = 4 + 8 + 64
MAX_TIMESTAMP = 2**63 - 1
_U64 = struct.Struct(">Q")


def cosignature_message(body: str, timestamp: int) -> bytes:
    """What a witness signs: the cosignature/v1 header, the time line, the checkpoint body."""
    return f"cosignature/v1\ntime {timestamp}\n".encode() + body.encode()


def cosigner_key_id(name: str, public_key: bytes) -> bytes:
    return key_id(name, public_key, COSIGNATURE_TYPE)


def cosigner_verifier_key(name: str, public_key: bytes) -> str:
    return verifier_key(name, public_key, COSIGNATURE_TYPE)


def parse_cosigner_key(vkey: str) -> tuple[str, bytes, bytes]:
    """(name, key ID, public key) of a witness's verifier key; CheckpointError if it is not one
    in canonical form."""
    name, kid, public_key = parse_verifier_key(vkey, COSIGNATURE_TYPE)
    if cosigner_verifier_key(name, public_key) != vkey:
        raise CheckpointError("witness key is not in canonical form (it re-encodes differently)")
    return name, kid, public_key


def cosignature_line(name: str, kid: bytes, timestamp: int, signature: bytes) -> str:
    blob = kid + _U64.pack(timestamp) + signature
    return f"\u2014 {name} {base64.b64encode(blob).decode()}\n"


def split_cosignature(signature: bytes) -> tuple[int, bytes]:
    """(timestamp, r || s) of a cosignature line's signature (what follows the key ID)."""
    if len(signature) != COSIGNATURE_BYTES - 4:
        raise CheckpointError(f"a cosignature is {COSIGNATURE_BYTES} bytes with its key ID, got {len(signature) + 4}")
    timestamp = _U64.unpack_from(signature)[0]
    if not 0 < timestamp <= MAX_TIMESTAMP:
        raise CheckpointError(f"cosignature timestamp {timestamp} is not between 1 and 2**63-1")
    return timestamp, signature[8:]


def verify_cosignature(body: str, vkey: str, signature: bytes) -> int:
    """The timestamp of a valid cosignature (the bytes after the key ID) by the witness `vkey`
    on the checkpoint `body`; CheckpointError if it does not verify."""
    name, kid, public_key = parse_cosigner_key(vkey)
    timestamp, rs = split_cosignature(signature)
    if not sm2_verify(public_key, cosignature_message(body, timestamp), rs):
        raise CheckpointError(f"cosignature by {name} ({kid.hex()}) does not verify")
    return timestamp


def cosignatures_by(note: str, vkeys: list[str]) -> dict[str, int | CheckpointError]:
    """For each witness key, the timestamp of its one valid cosignature on the note, or the
    CheckpointError saying why there is none. Lines by other keys are ignored (signed-note);
    two lines by one key are refused before any SM2 check, as the ledger's own line is."""
    body, signatures = parse_note(note)
    found: dict[str, int | CheckpointError] = {}
    for vkey in vkeys:
        name, kid, _ = parse_cosigner_key(vkey)
        matching = [sig for n, k, sig in signatures if n == name and k == kid]
        if not matching:
            found[vkey] = CheckpointError(f"no cosignature by witness {name} ({kid.hex()})")
        elif len(matching) > 1:
            found[vkey] = CheckpointError(f"{len(matching)} cosignatures by witness {name} ({kid.hex()}), want one")
        else:
            try:
                found[vkey] = verify_cosignature(body, vkey, matching[0])
            except CheckpointError as exc:
                found[vkey] = exc
    return found
