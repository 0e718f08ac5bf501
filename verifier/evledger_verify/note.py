"""Signed checkpoints, the reading side: C2SP signed-note checkpoint text (origin, size, base64
root) and its SM2 signature checked, with the standard library and gmssl only.

Body (c2sp.org/tlog-checkpoint):   <origin>\\n<tree size>\\n<base64 root hash>\\n[extension lines]
Note (c2sp.org/signed-note):       <body>\\n— <key name> <base64(key ID (4 bytes) || signature)>\\n

SM2 has no registered signed-note signature type, so we use the "unregistered" type byte 0xFF
followed by the ASCII identifier "sm2": the key ID is the first 4 bytes of
SHA-256(key name || 0x0A || 0xFF || "sm2" || public key), the public key being the 64 bytes
x || y of the SM2 point. The signature is SM2 over the note body (GB/T 32918.2, the digest
SM3(Z_A || body) with the default user ID "1234567812345678"), encoded as r || s (64 bytes).
A verifier key is written "<key name>+<key ID hex>+<base64(0xFF || "sm2" || public key)>",
the shape of Go's note verifier keys. See docs/checkpoint.md. The ledger signs with
merkle/checkpoint.py, which builds on this module.
"""
from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import os
import re
from dataclasses import dataclass, field

SIGNATURE_TYPE = b"\xffsm2"
SM2_N = int("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123", 16)
EM_DASH = "\u2014"


class CheckpointError(ValueError):
    """A checkpoint or signed note is malformed or its signature does not verify."""


_SM2_P = int("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF", 16)
_SM2_A = _SM2_P - 3
_SM2_B = int("28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93", 16)


def sm2_crypt(private_hex: str, public_hex: str):
    from gmssl import sm2  # only signing and verifying need it

    crypt = sm2.CryptSM2(private_key=private_hex, public_key="")
    # Set after construction: gmssl's constructor strips a leading "04" with lstrip("04"),
    # which also eats the key's own leading '0'/'4' digits (1 key in 256 starts with 04).
    crypt.public_key = public_hex
    return crypt


def _on_curve(public_key: bytes) -> bool:
    x, y = int.from_bytes(public_key[:32], "big"), int.from_bytes(public_key[32:], "big")
    return x < _SM2_P and y < _SM2_P and (y * y - (x * x * x + _SM2_A * x + _SM2_B)) % _SM2_P == 0


def sm2_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    if len(public_key) != 64 or len(signature) != 64 or not _on_curve(public_key):
        return False
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    if not (1 <= r < SM2_N and 1 <= s < SM2_N):  # GB/T 32918.2 §7.1 B1, B2
        return False
    openssl = openssl_sm2()
    if openssl is not None:
        return openssl.verify(public_key, message, r, s)
    return sm2_verify_gmssl(public_key, message, signature)


def sm2_verify_gmssl(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """SM2 verification in gmssl's pure Python (~15 ms): what a verifier installed alone uses."""
    try:
        return bool(sm2_crypt("00", public_key.hex()).verify_with_sm3(signature.hex(), message))
    except (ValueError, TypeError, ZeroDivisionError, binascii.Error):
        return False


class OpenSSLSM2:
    """SM2 through Tongsuo's OpenSSL (the `tongsuopy` wheel, ~0.4 ms a signature): the same
    GB/T 32918.2 signature as gmssl's (SM3 over Z_A of the default user ID, then the message),
    so either verifies what the other signs; tests hold them to that. The ledger, witnesses and
    monitors sign and check many notes a second and install it; a court's verifier may not."""

    def __init__(self):
        from tongsuopy.crypto import hashes
        from tongsuopy.crypto.asymciphers import ec
        from tongsuopy.crypto.asymciphers.utils import encode_dss_signature
        from tongsuopy.crypto.exceptions import InvalidSignature

        self._ec, self._encode, self._invalid = ec, encode_dss_signature, InvalidSignature
        self._algorithm = ec.ECDSA(hashes.SM3())  # with an SM2 key: the SM2 signature scheme
        self._public = functools.lru_cache(maxsize=256)(self._load_public)
        self._private = functools.lru_cache(maxsize=64)(self._load_private)

    def _load_public(self, public_key: bytes):
        x, y = int.from_bytes(public_key[:32], "big"), int.from_bytes(public_key[32:], "big")
        return self._ec.EllipticCurvePublicNumbers(x, y, self._ec.SM2()).public_key()

    def _load_private(self, private_hex: str):
        return self._ec.derive_private_key(int(private_hex, 16), self._ec.SM2())

    def verify(self, public_key: bytes, message: bytes, r: int, s: int) -> bool:
        try:
            self._public(public_key).verify(self._encode(r, s), message, self._algorithm)
            return True
        except (self._invalid, ValueError):
            return False

    def sign(self, private_hex: str, message: bytes) -> bytes:
        """r || s (64 bytes); the nonce from OpenSSL's CSPRNG."""
        der = self._private(private_hex).sign(message, self._algorithm)
        return b"".join(v.to_bytes(32, "big") for v in _der_integers(der))


def _der_integers(der: bytes) -> tuple[int, int]:
    """(r, s) of the DER SEQUENCE { INTEGER r, INTEGER s } that OpenSSL writes."""
    at, values = 2, []  # past the SEQUENCE tag and its one-byte length (at most 72 bytes follow)
    for _ in range(2):
        length = der[at + 1]
        values.append(int.from_bytes(der[at + 2:at + 2 + length], "big"))
        at += 2 + length
    return values[0], values[1]


@functools.lru_cache(maxsize=1)
def openssl_sm2() -> OpenSSLSM2 | None:
    """The OpenSSL SM2 when tongsuopy is installed (and EVLEDGER_SM2 is not "gmssl"), else None."""
    if os.environ.get("EVLEDGER_SM2", "").strip().lower() == "gmssl":
        return None
    try:
        return OpenSSLSM2()
    except ImportError:
        return None


def key_id(name: str, public_key: bytes, key_type: bytes = SIGNATURE_TYPE) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + key_type + public_key).digest()[:4]


def verifier_key(name: str, public_key: bytes, key_type: bytes = SIGNATURE_TYPE) -> str:
    return f"{name}+{key_id(name, public_key, key_type).hex()}+{base64.b64encode(key_type + public_key).decode()}"


def parse_verifier_key(vkey: str, key_type: bytes = SIGNATURE_TYPE) -> tuple[str, bytes, bytes]:
    """(name, key ID, public key) of a verifier key string of type `key_type` (the ledger's
    checkpoint key by default; a witness's cosigning key is cosignature.COSIGNATURE_TYPE)."""
    parts = vkey.strip().split("+", 2)  # base64 may hold "+": split at the first two only
    if len(parts) != 3:
        raise CheckpointError("verifier key must be <name>+<key id hex>+<base64 key>")
    name, kid_hex, b64 = parts
    try:
        kid = bytes.fromhex(kid_hex)
        raw = base64.b64decode(b64, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise CheckpointError(f"verifier key is not hex/base64: {exc}") from None
    if not raw.startswith(key_type) or len(raw) != len(key_type) + 64:
        what = "SM2" if key_type == SIGNATURE_TYPE else "SM2 cosigning"
        raise CheckpointError(f"verifier key is not an {what} key (type 0xFF {key_type[1:].decode()!r}, 64-byte point)")
    public_key = raw[len(key_type):]
    if key_id(name, public_key, key_type) != kid:
        raise CheckpointError("verifier key's key ID does not match its name and public key")
    return name, kid, public_key


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = field(default=())

    def body(self) -> str:
        if not isinstance(self.origin, str) or not self.origin or "\n" in self.origin:
            raise CheckpointError("origin must be one non-empty line")
        if not isinstance(self.size, int) or isinstance(self.size, bool) or self.size < 0:
            raise CheckpointError(f"size must be a non-negative integer, got {self.size!r}")
        for ext in self.extensions:
            if not isinstance(ext, str) or not ext or "\n" in ext:
                raise CheckpointError(f"extension {ext!r} must be one non-empty line")
        if not isinstance(self.root, bytes) or len(self.root) != 32:
            got = f"{len(self.root)} bytes" if isinstance(self.root, bytes) else type(self.root).__name__
            raise CheckpointError(f"root must be 32 bytes, got {got}")
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode(), *self.extensions]
        return "\n".join(lines) + "\n"

    @classmethod
    def parse_body(cls, body: str) -> "Checkpoint":
        if not body.endswith("\n"):
            raise CheckpointError("checkpoint body must end with a newline")
        lines = body[:-1].split("\n")
        if len(lines) < 3:
            raise CheckpointError(f"checkpoint body has {len(lines)} lines, want at least 3")
        origin, size_text, root_text, *ext = lines
        if not origin:
            raise CheckpointError("checkpoint origin line is empty")
        if not re.fullmatch(r"0|[1-9][0-9]{0,19}", size_text) or int(size_text) >= 2**64:
            raise CheckpointError(f"checkpoint size {size_text[:30]!r} is not a decimal number below 2**64")
        try:
            root = base64.b64decode(root_text, validate=True)
        except binascii.Error:
            raise CheckpointError("checkpoint root is not base64") from None
        if len(root) != 32:
            raise CheckpointError(f"checkpoint root is {len(root)} bytes, want 32")
        if any(not e for e in ext):
            raise CheckpointError("checkpoint has an empty extension line")
        return cls(origin, int(size_text), root, tuple(ext))


# "— <key name> <base64>": the name is anything but ASCII controls and space, DEL and the
# Unicode spaces (spelt out, so that every verifier, in any language, reads a line alike), the
# signature base64. The JS verifier (verifier/js/src/verify.mjs) has the same pattern.
_NAME_CHARS = "[^\x00-\x20\x7f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"
_SIGNATURE_LINE = re.compile(f"{EM_DASH} ({_NAME_CHARS}+) ([A-Za-z0-9+/=]+)")


def parse_note(note: str) -> tuple[str, list[tuple[str, bytes, bytes]]]:
    """(body, [(key name, key ID, signature)]) of a signed note."""
    if not isinstance(note, str):
        raise CheckpointError("note must be text")
    sep = note.rfind("\n\n")
    if sep < 0:
        raise CheckpointError("note has no blank line before its signatures")
    body, sig_text = note[:sep + 1], note[sep + 2:]
    if not sig_text.endswith("\n"):
        raise CheckpointError("note must end with a newline")
    sigs = []
    for line in sig_text[:-1].split("\n"):
        m = _SIGNATURE_LINE.fullmatch(line)
        if not m:
            raise CheckpointError(f"malformed signature line {line!r}")
        try:
            blob = base64.b64decode(m.group(2), validate=True)
        except binascii.Error:
            raise CheckpointError("signature is not base64") from None
        if len(blob) < 5:
            raise CheckpointError("signature is too short")
        sigs.append((m.group(1), blob[:4], blob[4:]))
    return body, sigs


def verify_checkpoint(note: str, vkey: str) -> Checkpoint:
    """Parse a signed checkpoint and check its signature by the key `vkey`; the checkpoint."""
    name, kid, public_key = parse_verifier_key(vkey)
    body, sigs = parse_note(note)
    checkpoint = Checkpoint.parse_body(body)
    matching = [sig for n, k, sig in sigs if n == name and k == kid]
    if not matching:
        raise CheckpointError(f"note has no signature by key {name} ({kid.hex()})")
    if len(matching) > 1:  # counted before any SM2 check: each costs ~16 ms of pure Python
        raise CheckpointError(f"note has {len(matching)} signatures by key {name} ({kid.hex()}), want exactly one")
    if not sm2_verify(public_key, body.encode(), matching[0]):
        raise CheckpointError(f"signature by {name} ({kid.hex()}) does not verify")
    return checkpoint
