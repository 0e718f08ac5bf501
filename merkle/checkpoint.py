"""Checkpoints, the signing side: the ledger's SM2 key and the signed note it writes.

The note's format (C2SP tlog-checkpoint in a C2SP signed note, SM2 as the unregistered
signature type 0xFF "sm2") and its verification live in evledger_verify/note.py, which a
court installs without the ledger; see docs/checkpoint.md.
"""
from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass

# The note format and its verification belong to the verifier, which a court installs alone;
# the ledger signs with the same definitions (re-exported for the ledger's modules).
from evledger_verify.cosignature import MAX_TIMESTAMP, cosignature_line, cosignature_message, cosigner_key_id
from evledger_verify.note import (EM_DASH, SIGNATURE_TYPE, SM2_N, Checkpoint, CheckpointError, key_id, openssl_sm2,
                                  parse_note, parse_verifier_key, sm2_crypt, sm2_verify, verifier_key, verify_checkpoint)

_NAME_RE = re.compile(r"[^\s+]+")  # a key name the ledger signs with


def check_key_name(name: str, what: str = "key name") -> None:
    """CheckpointError (a ValueError) unless `name` can name a note key: no spaces or '+'."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise CheckpointError(f"{what} {name!r} must be non-empty with no spaces or '+'")

__all__ = ["ED25519_TYPE", "SIGNATURE_TYPE", "Checkpoint", "CheckpointError", "SM2PrivateKey", "key_id", "parse_note",
           "parse_verifier_key", "cosign_checkpoint", "ed25519_signature_line", "ed25519_verifier_key",
           "sign_checkpoint", "sm2_verify", "verifier_key", "verify_checkpoint"]


@dataclass(frozen=True)
class SM2PrivateKey:
    private_hex: str
    public_key: bytes  # 64 bytes x || y

    @classmethod
    def generate(cls) -> "SM2PrivateKey":
        d = secrets.randbelow(SM2_N - 2) + 1
        return cls.from_hex(f"{d:064x}")

    @classmethod
    def from_hex(cls, private_hex: str) -> "SM2PrivateKey":
        d = int(private_hex, 16)
        if not 1 <= d <= SM2_N - 2:
            raise ValueError("SM2 private key out of range")
        crypt = sm2_crypt(private_hex, "")
        public_hex = crypt._kg(d, crypt.ecc_table["g"])
        return cls(f"{d:064x}", bytes.fromhex(public_hex))

    def sign(self, message: bytes) -> bytes:
        openssl = openssl_sm2()
        if openssl is not None:
            return openssl.sign(self.private_hex, message)
        crypt = sm2_crypt(self.private_hex, self.public_key.hex())
        while True:
            # gmssl's default nonce comes from `random`, which is predictable; a predictable
            # SM2 nonce reveals the private key, so it is drawn from `secrets` here.
            k = f"{secrets.randbelow(SM2_N - 1) + 1:064x}"
            sig = crypt.sign_with_sm3(message, k)
            if sig is not None:
                return bytes.fromhex(sig)


def sign_checkpoint(checkpoint: Checkpoint, key_name: str, key: SM2PrivateKey) -> str:
    """The signed note text of `checkpoint`."""
    check_key_name(key_name)
    body = checkpoint.body()
    sig = key.sign(body.encode())
    blob = base64.b64encode(key_id(key_name, key.public_key) + sig).decode()
    return f"{body}\n{EM_DASH} {key_name} {blob}\n"




ED25519_TYPE = b"\x01"  # signed-note's Ed25519 signature type


def _ed25519_public(key) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def ed25519_verifier_key(name: str, key) -> str:
    """The signed-note verifier key (name+keyid+base64(0x01 || public key)) of an Ed25519 key
    (a cryptography Ed25519PrivateKey), as golang.org/x/mod/sumdb/note and its kin read it."""
    return verifier_key(name, _ed25519_public(key), ED25519_TYPE)


def ed25519_signature_line(body: str, name: str, key) -> str:
    """The signed note's line of an Ed25519 signature of `body` by `key`."""
    check_key_name(name)
    blob = key_id(name, _ed25519_public(key), ED25519_TYPE) + key.sign(body.encode())
    return f"{EM_DASH} {name} {base64.b64encode(blob).decode()}\n"


def cosign_checkpoint(body: str, name: str, key: SM2PrivateKey, timestamp: int) -> str:
    """A witness's cosignature line on a checkpoint body (docs/cosignature.md)."""
    check_key_name(name, "witness name")
    if not 0 < timestamp <= MAX_TIMESTAMP:
        raise CheckpointError(f"cosignature timestamp {timestamp} is not between 1 and 2**63-1")
    signature = key.sign(cosignature_message(body, timestamp))
    return cosignature_line(name, cosigner_key_id(name, key.public_key), timestamp, signature)
