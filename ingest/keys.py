"""A ledger's secret keys on disk: SM2 signing keys (one file per key id) and the SM4 data key.

Files live in <data dir>/ledgers/<ledger>/keys/, are created 0600 with O_EXCL (never
overwritten) and refused on load if anyone but the owner may read them, as ssh does. Which
signing key is current is not stored here: it is an event in the ledger's log
(LedgerCreated, SigningKeyRotated), so the key history is part of the evidence.

Sealed fields are encrypted with SM4-GCM (GB/T 32907 block cipher, 128-bit key, 96-bit random
nonce, 128-bit tag) with the ledger id as associated data, so a ciphertext moved to another
ledger fails to decrypt.
"""
from __future__ import annotations

import base64
import hashlib
import os
import secrets
import stat
from pathlib import Path

import orjson

from evledger_common.durable import fsync_dir
from merkle.checkpoint import SM2PrivateKey, key_id

SEALED_ALG = "SM4-GCM"


class KeyFileError(ValueError):
    """A key file is missing, unreadable, malformed or too widely readable."""


def write_secret(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(path.parent)


def read_secret(path: Path) -> str:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} is missing") from None
    if st.st_mode & 0o077:
        raise KeyFileError(f"key file {path} has permissions {stat.S_IMODE(st.st_mode):04o}; "
                        f"it must be readable by its owner only (chmod 600)")
    return path.read_text().strip()


class LedgerKeys:
    def __init__(self, directory: str | os.PathLike, key_name: str):
        self.directory = Path(directory)
        self.key_name = key_name  # the signed note's key name: the ledger's checkpoint origin
        self._signing: dict[str, SM2PrivateKey] = {}
        self._data_key: bytes | None = None
        self._tiles_key = None  # the Ed25519 key, once read or made

    # -- signing keys -------------------------------------------------------------------

    def new_signing_key(self) -> SM2PrivateKey:
        """Generate and store a new SM2 key; returns it (its key id names the file)."""
        key = SM2PrivateKey.generate()
        write_secret(self._signing_path(self.key_id_hex(key.public_key)), key.private_hex + "\n")
        return key

    def key_id_hex(self, public_key: bytes) -> str:
        return key_id(self.key_name, public_key).hex()

    def _signing_path(self, kid_hex: str) -> Path:
        return self.directory / f"sm2-{kid_hex}.key"

    def signing_key(self, kid_hex: str) -> SM2PrivateKey:
        key = self._signing.get(kid_hex)
        if key is None:
            path = self._signing_path(kid_hex)
            try:
                key = SM2PrivateKey.from_hex(read_secret(path))
            except ValueError as exc:
                if isinstance(exc, KeyFileError):
                    raise
                raise KeyFileError(f"key file {path} does not hold an SM2 private key: {exc}") from None
            if self.key_id_hex(key.public_key) != kid_hex:
                raise KeyFileError(f"key file {path} holds a key whose id is not {kid_hex}")
            self._signing[kid_hex] = key
        return key

    # -- the Ed25519 key of the published checkpoint ---------------------------------------

    @property
    def _ed25519_path(self) -> Path:
        return self.directory / "ed25519-tiles.key"

    def tiles_key(self):
        """The Ed25519 key that also signs a SHA-256 ledger's published checkpoint, so that
        transparency-log tooling (which verifies Ed25519 notes, as tlog-tiles asks) reads it;
        made on first use. A cryptography Ed25519PrivateKey."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        if self._tiles_key is None:
            try:
                write_secret(self._ed25519_path, secrets.token_bytes(32).hex() + "\n")
            except FileExistsError:
                pass
            try:
                seed = bytes.fromhex(read_secret(self._ed25519_path))
                self._tiles_key = Ed25519PrivateKey.from_private_bytes(seed)
            except ValueError as exc:
                if isinstance(exc, KeyFileError):
                    raise
                raise KeyFileError(f"key file {self._ed25519_path} does not hold a 32-byte Ed25519 seed in hex") from None
        return self._tiles_key

    # -- the data key -------------------------------------------------------------------

    @property
    def _data_path(self) -> Path:
        return self.directory / "sm4-data.key"

    def create_data_key(self) -> None:
        write_secret(self._data_path, secrets.token_bytes(16).hex() + "\n")

    def data_key(self) -> bytes:
        if self._data_key is None:
            try:
                key = bytes.fromhex(read_secret(self._data_path))
            except ValueError as exc:
                if isinstance(exc, KeyFileError):
                    raise
                raise KeyFileError(f"key file {self._data_path} is not hex") from None
            if len(key) != 16:
                raise KeyFileError(f"key file {self._data_path} must hold a 128-bit SM4 key")
            self._data_key = key
        return self._data_key


def idempotency_fingerprint(data_key: bytes):
    """The function from a record's canonical JSON to its idempotency fingerprint (32 hex
    digits, as bytes): BLAKE2b-128 keyed with a key derived from the data key, so the index
    and the log's metadata reveal nothing about sealed plaintext. Keyed once, then copied per
    record: re-keying costs a compression, a third of the hash of a typical record."""
    key = hashlib.blake2b(data_key, digest_size=32, person=b"evl-idempotency").digest()
    keyed = hashlib.blake2b(key=key, digest_size=16)

    def fingerprint(encoded: bytes) -> bytes:
        h = keyed.copy()
        h.update(encoded)
        return h.hexdigest().encode()

    return fingerprint


def _sm4_gcm(key: bytes, nonce: bytes, tag: bytes | None = None):
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    mode = modes.GCM(nonce, tag) if tag is not None else modes.GCM(nonce)
    cipher = Cipher(algorithms.SM4(key), mode)
    return cipher.decryptor() if tag is not None else cipher.encryptor()


def seal_fields(data_key: bytes, ledger: str, fields: dict[str, str]) -> dict[str, str]:
    """The stored form of a record's `sealed` fields: one SM4-GCM ciphertext of their JSON."""
    nonce = secrets.token_bytes(12)
    enc = _sm4_gcm(data_key, nonce)
    enc.authenticate_additional_data(ledger.encode())
    ct = enc.update(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)) + enc.finalize() + enc.tag
    return {"alg": SEALED_ALG, "nonce": base64.b64encode(nonce).decode(), "ciphertext": base64.b64encode(ct).decode()}


def open_sealed(data_key: bytes, ledger: str, sealed: dict) -> dict[str, str]:
    """Decrypt what `seal_fields` produced; raises KeyFileError if it was altered or the key is wrong."""
    from cryptography.exceptions import InvalidTag

    if not isinstance(sealed, dict):
        raise KeyFileError(f"sealed fields are not {SEALED_ALG} ciphertext")
    if sealed.get("alg") != SEALED_ALG:
        raise KeyFileError(f"sealed fields use {sealed.get('alg')!r}, not {SEALED_ALG}")
    try:
        nonce = base64.b64decode(sealed["nonce"], validate=True)
        ct = base64.b64decode(sealed["ciphertext"], validate=True)
    except (KeyError, TypeError, ValueError):
        raise KeyFileError("sealed fields are malformed: nonce and ciphertext must be base64") from None
    if len(nonce) != 12 or len(ct) < 16:
        raise KeyFileError("sealed fields are malformed: want a 12-byte nonce and a ciphertext with its 16-byte tag")
    dec = _sm4_gcm(data_key, nonce, ct[-16:])
    dec.authenticate_additional_data(ledger.encode())
    try:
        return orjson.loads(dec.update(ct[:-16]) + dec.finalize())
    except InvalidTag:
        raise KeyFileError("sealed fields do not decrypt: altered ciphertext or wrong data key") from None
