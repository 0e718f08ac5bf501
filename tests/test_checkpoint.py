"""Signed checkpoints (merkle.checkpoint): C2SP checkpoint bodies in signed notes with SM2.

The signatures are also checked by an independent SM2 verifier written here from
GB/T 32918.2 §7 (affine arithmetic on the recommended curve of GB/T 32918.5), so that a
signature our module accepts is one any SM2 implementation accepts."""
import base64
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from merkle.checkpoint import (
    SIGNATURE_TYPE,
    Checkpoint,
    CheckpointError,
    SM2PrivateKey,
    key_id,
    parse_note,
    parse_verifier_key,
    sign_checkpoint,
    sm2_verify,
    verifier_key,
    verify_checkpoint,
)

ROOT = hashlib.sha256(b"a root").digest()
ORIGIN = "ledger.example.org/evidence"
KEY_NAME = "ledger.example.org"
EM_DASH = "\u2014"

# -- an independent SM2 verifier -------------------------------------------------------------
P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
A = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC
B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
G = (0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7,
     0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0)


def ec_add(p1, p2):
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    (x1, y1), (x2, y2) = p1, p2
    if x1 == x2 and (y1 + y2) % P == 0:
        return None
    if p1 == p2:
        lam = (3 * x1 * x1 + A) * pow(2 * y1, -1, P) % P
    else:
        lam = (y2 - y1) * pow(x2 - x1, -1, P) % P
    x3 = (lam * lam - x1 - x2) % P
    return x3, (lam * (x1 - x3) - y1) % P


def ec_mul(k, point):
    result = None
    while k:
        if k & 1:
            result = ec_add(result, point)
        point = ec_add(point, point)
        k >>= 1
    return result


def on_curve(point) -> bool:
    x, y = point
    return (y * y - (x * x * x + A * x + B)) % P == 0


def sm3(data: bytes) -> bytes:
    return hashlib.new("sm3", data).digest()


def independent_sm2_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """GB/T 32918.2-2016 §7.1 with the default user ID "1234567812345678"."""
    pa = (int.from_bytes(public_key[:32], "big"), int.from_bytes(public_key[32:], "big"))
    uid = b"1234567812345678"
    za = sm3((len(uid) * 8).to_bytes(2, "big") + uid
             + b"".join(v.to_bytes(32, "big") for v in (A, B, G[0], G[1], pa[0], pa[1])))
    e = int.from_bytes(sm3(za + message), "big")
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    if not (1 <= r < N and 1 <= s < N):
        return False
    t = (r + s) % N
    if t == 0:
        return False
    x1, _ = ec_add(ec_mul(s, G), ec_mul(t, pa))
    return (e + x1) % N == r


# -- fixtures --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def key():
    k = SM2PrivateKey.from_hex("3945208f7b2144b13f36e38ac6d39f95889393692860b51a42fb81ef4df7c5b8")
    assert k.public_key[0] != 0x04  # see test_key_whose_public_key_starts_with_04_round_trips
    return k


@pytest.fixture(scope="module")
def other_key():
    return SM2PrivateKey.from_hex("1649ab77a00637bd5e2efe283fbf353534aa7f7cb89463f208ddbc2920bb0da0")


@pytest.fixture(scope="module")
def checkpoint():
    return Checkpoint(ORIGIN, 123456, ROOT, ("extension line one", "ext two"))


@pytest.fixture(scope="module")
def note(checkpoint, key):
    return sign_checkpoint(checkpoint, KEY_NAME, key)


@pytest.fixture(scope="module")
def vkey(key):
    return verifier_key(KEY_NAME, key.public_key)


def split_note(note: str):
    body, sig_text = note.split("\n\n")
    return body + "\n", sig_text


# -- round trip and format -------------------------------------------------------------------
def test_sign_parse_verify_round_trip(checkpoint, note, vkey):
    assert verify_checkpoint(note, vkey) == checkpoint
    body, sigs = parse_note(note)
    assert Checkpoint.parse_body(body) == checkpoint
    assert [name for name, _, _ in sigs] == [KEY_NAME]


def test_note_layout(checkpoint, note, key):
    # c2sp.org/tlog-checkpoint body, c2sp.org/signed-note signature line.
    assert checkpoint.body() == f"{ORIGIN}\n123456\n{base64.b64encode(ROOT).decode()}\nextension line one\next two\n"
    body, sig_text = split_note(note)
    assert body == checkpoint.body()
    prefix = f"{EM_DASH} {KEY_NAME} "
    assert sig_text.startswith(prefix) and sig_text.endswith("\n") and sig_text.count("\n") == 1
    blob = base64.b64decode(sig_text[len(prefix):-1], validate=True)
    assert len(blob) == 4 + 64
    assert blob[:4] == key_id(KEY_NAME, key.public_key)
    assert key_id(KEY_NAME, key.public_key) == hashlib.sha256(
        KEY_NAME.encode() + b"\n" + b"\xffsm2" + key.public_key).digest()[:4]


def test_signature_verifies_with_an_independent_sm2(note, key):
    body, sigs = parse_note(note)
    (_, _, sig), = sigs
    assert independent_sm2_verify(key.public_key, body.encode(), sig)
    assert not independent_sm2_verify(key.public_key, body.encode() + b"x", sig)


def test_private_key_gives_the_public_point(key):
    d = int(key.private_hex, 16)
    x, y = ec_mul(d, G)
    assert key.public_key == x.to_bytes(32, "big") + y.to_bytes(32, "big")
    assert on_curve((x, y))


def test_generated_keys_are_valid():
    for _ in range(3):
        k = SM2PrivateKey.generate()
        d = int(k.private_hex, 16)
        assert 1 <= d <= N - 2
        assert ec_mul(d, G) == (int.from_bytes(k.public_key[:32], "big"), int.from_bytes(k.public_key[32:], "big"))


@pytest.mark.parametrize("bad", ["0", f"{N - 1:x}", f"{N:x}"])
def test_private_key_out_of_range(bad):
    with pytest.raises(ValueError, match="range"):
        SM2PrivateKey.from_hex(bad)


def test_verifier_key_round_trip(key, vkey):
    assert vkey.startswith(f"{KEY_NAME}+{key_id(KEY_NAME, key.public_key).hex()}+")
    assert parse_verifier_key(vkey) == (KEY_NAME, key_id(KEY_NAME, key.public_key), key.public_key)
    assert parse_verifier_key(f"  {vkey}\n") == parse_verifier_key(vkey)


def test_signatures_are_randomized_and_each_verifies(checkpoint, key, vkey):
    a, b = sign_checkpoint(checkpoint, KEY_NAME, key), sign_checkpoint(checkpoint, KEY_NAME, key)
    assert a != b  # a fresh nonce each time
    assert verify_checkpoint(a, vkey) == verify_checkpoint(b, vkey) == checkpoint


def test_cosigned_note_verifies_with_either_key(checkpoint, note, key, other_key, vkey):
    other_note = sign_checkpoint(checkpoint, "witness.example", other_key)
    cosigned = note + split_note(other_note)[1]
    assert verify_checkpoint(cosigned, vkey) == checkpoint
    assert verify_checkpoint(cosigned, verifier_key("witness.example", other_key.public_key)) == checkpoint


@given(origin=st.text(st.characters(blacklist_characters="\n", blacklist_categories=["Cs"]), min_size=1, max_size=40),
       size=st.integers(0, 2**64 - 1), root=st.binary(min_size=32, max_size=32),
       extensions=st.lists(st.text(st.characters(blacklist_characters="\n", blacklist_categories=["Cs"]),
                                   min_size=1, max_size=20), max_size=3))
@settings(max_examples=50)
def test_body_round_trip(origin, size, root, extensions):
    cp = Checkpoint(origin, size, root, tuple(extensions))
    assert Checkpoint.parse_body(cp.body()) == cp


# -- tampering: every change to a signed note fails ----------------------------------------
def replace_body_line(note: str, line: int, text: str) -> str:
    body, sig_text = split_note(note)
    lines = body[:-1].split("\n")
    lines[line] = text
    return "\n".join(lines) + "\n\n" + sig_text


def with_signature_blob(note: str, change) -> str:
    """The note with its (only) signature blob, key ID || signature, replaced by change(blob)."""
    body, sig_text = split_note(note)
    head, b64 = sig_text[:-1].rsplit(" ", 1)
    blob = change(base64.b64decode(b64))
    return f"{body}\n{head} {base64.b64encode(blob).decode()}\n"


def tampered_signature(note: str, byte: int, mask: int = 1) -> str:
    def flip(blob: bytes) -> bytes:
        out = bytearray(blob)
        out[byte] ^= mask
        return bytes(out)

    return with_signature_blob(note, flip)


TAMPERS = {
    "size+1": lambda n: replace_body_line(n, 1, "123457"),
    "size-0": lambda n: replace_body_line(n, 1, "0"),
    "root": lambda n: replace_body_line(n, 2, base64.b64encode(hashlib.sha256(b"other").digest()).decode()),
    "origin": lambda n: replace_body_line(n, 0, ORIGIN + "2"),
    "origin-case": lambda n: replace_body_line(n, 0, ORIGIN.upper()),
    "extension": lambda n: replace_body_line(n, 3, "extension line 1"),
    "extension-added": lambda n: n.replace("ext two\n", "ext two\nextra\n", 1),
    "extension-removed": lambda n: n.replace("ext two\n", "", 1),
    "signature-first-bit": lambda n: tampered_signature(n, 4),
    "signature-last-bit": lambda n: tampered_signature(n, 67, 0x80),
    "signature-r-high-bit": lambda n: tampered_signature(n, 4 + 31, 0x10),
    "signature-zero": lambda n: with_signature_blob(n, lambda blob: blob[:4] + bytes(64)),
    "signature-truncated": lambda n: with_signature_blob(n, lambda blob: blob[:-1]),
    "key-id": lambda n: tampered_signature(n, 0),
    "key-name": lambda n: n.replace(f"{EM_DASH} {KEY_NAME} ", f"{EM_DASH} {KEY_NAME}x ", 1),
}


@pytest.mark.parametrize("tamper", TAMPERS)
def test_tampered_note_fails(note, vkey, tamper):
    bad = TAMPERS[tamper](note)
    assert bad != note
    with pytest.raises(CheckpointError):
        verify_checkpoint(bad, vkey)


def test_signature_with_r_or_s_out_of_range_is_refused(note, key):
    body, sigs = parse_note(note)
    sig = sigs[0][2]
    for bad in (bytes(32) + sig[32:], sig[:32] + bytes(32), N.to_bytes(32, "big") + sig[32:],
                sig[:32] + N.to_bytes(32, "big"), sig[:63], sig + b"\x00"):
        assert not sm2_verify(key.public_key, body.encode(), bad)
    assert not sm2_verify(key.public_key[:63], body.encode(), sig)
    assert sm2_verify(key.public_key, body.encode(), sig)


def test_wrong_key_fails(checkpoint, note, key, other_key):
    with pytest.raises(CheckpointError, match="no signature by key"):
        verify_checkpoint(note, verifier_key(KEY_NAME, other_key.public_key))
    with pytest.raises(CheckpointError, match="no signature by key"):
        verify_checkpoint(note, verifier_key("someone.else", key.public_key))


def test_signature_by_another_key_under_our_key_id_fails(checkpoint, key, other_key, vkey):
    # The attacker copies our key name and key ID onto their own signature.
    forged = with_signature_blob(sign_checkpoint(checkpoint, KEY_NAME, other_key),
                                 lambda blob: key_id(KEY_NAME, key.public_key) + blob[4:])
    with pytest.raises(CheckpointError, match="does not verify"):
        verify_checkpoint(forged, vkey)


# -- verifier keys that do not parse ---------------------------------------------------------
def _vkey(name="k", kid=None, raw=None, public_key=b"\x01" * 64):
    raw = SIGNATURE_TYPE + public_key if raw is None else raw
    kid = key_id(name, public_key).hex() if kid is None else kid
    return f"{name}+{kid}+{base64.b64encode(raw).decode()}"


@pytest.mark.parametrize("vkey_text", [
    "",
    "no-plus-signs",
    "name+abcd",
    _vkey(kid="zzzzzzzz"),                                   # key ID not hex
    "k+00000000+not base64!",                                # key not base64
    _vkey(raw=b"\x01" + b"\x02" * 32),                       # an Ed25519 key (type 0x01)
    _vkey(raw=b"\xffsm3" + b"\x01" * 64),                    # another unregistered type
    _vkey(raw=SIGNATURE_TYPE + b"\x01" * 63),                # point one byte short
    _vkey(raw=SIGNATURE_TYPE + b"\x01" * 65),                # point one byte long
    _vkey(kid="00000000"),                                   # key ID of nothing
    _vkey(kid=key_id("other", b"\x01" * 64).hex()),          # key ID of another name
], ids=["empty", "no-plus", "two-parts", "kid-not-hex", "key-not-base64", "ed25519", "other-type",
        "short-point", "long-point", "kid-zero", "kid-other-name"])
def test_verifier_key_parse_errors(vkey_text, note):
    with pytest.raises(CheckpointError):
        parse_verifier_key(vkey_text)
    with pytest.raises(CheckpointError):
        verify_checkpoint(note, vkey_text)


# -- checkpoint bodies that do not parse -----------------------------------------------------
GOOD_ROOT = base64.b64encode(ROOT).decode()


@pytest.mark.parametrize("body,message", [
    (f"{ORIGIN}\n5\n{GOOD_ROOT}", "newline"),                      # missing final newline
    (f"{ORIGIN}\n5\n", "lines"),                                   # no root line
    ("", "newline"),
    (f"\n5\n{GOOD_ROOT}\n", "origin"),                             # empty origin
    (f"{ORIGIN}\n\n{GOOD_ROOT}\n", "size"),                        # empty size
    (f"{ORIGIN}\n-5\n{GOOD_ROOT}\n", "size"),
    (f"{ORIGIN}\n+5\n{GOOD_ROOT}\n", "size"),
    (f"{ORIGIN}\n05\n{GOOD_ROOT}\n", "size"),                      # leading zero
    (f"{ORIGIN}\n5.0\n{GOOD_ROOT}\n", "size"),
    (f"{ORIGIN}\n0x5\n{GOOD_ROOT}\n", "size"),
    (f"{ORIGIN}\n 5\n{GOOD_ROOT}\n", "size"),
    (f"{ORIGIN}\n\u0665\n{GOOD_ROOT}\n", "size"),                  # ARABIC-INDIC DIGIT FIVE
    (f"{ORIGIN}\n5\n{GOOD_ROOT[:-1]}\n", "base64"),                # bad padding
    (f"{ORIGIN}\n5\n{GOOD_ROOT[:10]}!{GOOD_ROOT[11:]}\n", "base64"),
    (f"{ORIGIN}\n5\n{base64.b64encode(ROOT[:31]).decode()}\n", "32"),
    (f"{ORIGIN}\n5\n{base64.b64encode(ROOT + b'x').decode()}\n", "32"),
    (f"{ORIGIN}\n5\n\n", "base64|32"),                             # empty root
    (f"{ORIGIN}\n5\n{GOOD_ROOT}\n\n", "extension"),                # empty extension line
], ids=["no-final-newline", "two-lines", "empty", "empty-origin", "empty-size", "negative-size",
        "plus-size", "leading-zero", "decimal-point", "hex-size", "space-size", "non-ascii-digit",
        "bad-padding", "bad-char", "root-31", "root-33", "root-empty", "empty-extension"])
def test_body_parse_errors(body, message):
    with pytest.raises(CheckpointError, match=message):
        Checkpoint.parse_body(body)


def test_body_parse_accepts_the_edge_cases():
    assert Checkpoint.parse_body(f"o\n0\n{GOOD_ROOT}\n") == Checkpoint("o", 0, ROOT)
    assert Checkpoint.parse_body(f"o\n18446744073709551615\n{GOOD_ROOT}\n").size == 2**64 - 1


@pytest.mark.parametrize("note_text,message", [
    ("no blank line\n", "blank line"),
    (f"o\n5\n{GOOD_ROOT}\n\n{EM_DASH} k AAAAAAAA", "newline"),
    (f"o\n5\n{GOOD_ROOT}\n\n- k AAAAAAAA\n", "malformed"),                 # hyphen, not em dash
    (f"o\n5\n{GOOD_ROOT}\n\n{EM_DASH} k\n", "malformed"),
    (f"o\n5\n{GOOD_ROOT}\n\n{EM_DASH} k not!base64\n", "base64"),
    (f"o\n5\n{GOOD_ROOT}\n\n{EM_DASH} k AAAA\n", "short"),
    (b"o\n5\n\n", "text"),
], ids=["no-blank-line", "no-final-newline", "hyphen", "no-signature", "signature-not-base64",
        "signature-short", "not-text"])
def test_note_parse_errors(note_text, message):
    with pytest.raises(CheckpointError, match=message):
        parse_note(note_text)


def test_sign_refuses_bad_key_names_and_checkpoints(key):
    for name in ("", "has space", "has+plus", "tab\tname"):
        with pytest.raises(CheckpointError, match="key name"):
            sign_checkpoint(Checkpoint(ORIGIN, 1, ROOT), name, key)
    with pytest.raises(CheckpointError, match="origin"):
        sign_checkpoint(Checkpoint("", 1, ROOT), KEY_NAME, key)
    with pytest.raises(CheckpointError, match="origin"):
        sign_checkpoint(Checkpoint("two\nlines", 1, ROOT), KEY_NAME, key)
    with pytest.raises(CheckpointError, match="root"):
        sign_checkpoint(Checkpoint(ORIGIN, 1, ROOT[:31]), KEY_NAME, key)


# -- bugs ------------------------------------------------------------------------------------
@pytest.mark.parametrize("checkpoint_args", [
    (ORIGIN, -1, ROOT, ()),
    (ORIGIN, True, ROOT, ()),
    (ORIGIN, "7", ROOT, ()),
    (ORIGIN, 1, ROOT, ("",)),
    (ORIGIN, 1, ROOT, ("two\nlines",)),
], ids=["negative-size", "bool-size", "str-size", "empty-extension", "extension-with-newline"])
def test_body_refuses_what_parse_body_refuses(checkpoint_args):
    # BUG: Checkpoint.body() checks origin and root but not size or extensions, so
    # sign_checkpoint signs bodies that verify_checkpoint can never accept (size "-1",
    # "True", an empty extension line) or that parse back as a different checkpoint
    # (size "7" comes back as int 7; the extension "two\nlines" as two extensions).
    cp = Checkpoint(*checkpoint_args)
    with pytest.raises(CheckpointError):
        cp.body()


def test_key_whose_public_key_starts_with_04_round_trips():
    # BUG: gmssl's CryptSM2 takes a public key starting with "04" for an uncompressed-point
    # prefix and strips it with str.lstrip("04") (every leading '0' and '4'). checkpoint.py
    # passes the bare 128-hex-digit x || y, so for the 1 in 256 keys whose x begins with
    # byte 0x04 the key is mangled: Z_A is computed over the wrong key when signing and the
    # verifier multiplies a truncated point, so their own checkpoints never verify
    # (verify_checkpoint raises TypeError from inside gmssl, not even CheckpointError).
    key = SM2PrivateKey.from_hex(f"{11:064x}")
    assert key.public_key[0] == 0x04
    cp = Checkpoint(ORIGIN, 5, ROOT)
    note = sign_checkpoint(cp, KEY_NAME, key)
    body, sigs = parse_note(note)
    assert independent_sm2_verify(key.public_key, body.encode(), sigs[0][2]), "not a standard SM2 signature"
    assert verify_checkpoint(note, verifier_key(KEY_NAME, key.public_key)) == cp
