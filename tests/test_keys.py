"""A ledger's key files (0600 in a 0700 directory, never overwritten, refused when readable by
others) and SM4-GCM sealed fields (round trip, bound to the ledger and the key, no plaintext)."""
import base64
import os
import stat

import orjson
import pytest

from ingest.keys import SEALED_ALG, KeyFileError, LedgerKeys, idempotency_fingerprint, open_sealed, seal_fields
from merkle.checkpoint import Checkpoint, sign_checkpoint, verifier_key, verify_checkpoint


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def keys(tmp_path):
    return LedgerKeys(tmp_path / "ledgers" / "acme" / "keys", "evledger/acme")


# ------------------------------------------------------------------------------ key files

def test_key_files_are_0600_in_a_0700_directory(keys):
    old_umask = os.umask(0o022)  # a permissive umask must not widen the files
    try:
        key = keys.new_signing_key()
        keys.create_data_key()
    finally:
        os.umask(old_umask)
    kid = keys.key_id_hex(key.public_key)
    signing_file = keys.directory / f"sm2-{kid}.key"
    data_file = keys.directory / "sm4-data.key"
    assert sorted(p.name for p in keys.directory.iterdir()) == sorted([signing_file.name, data_file.name])
    assert _mode(keys.directory) == 0o700
    assert _mode(signing_file) == 0o600
    assert _mode(data_file) == 0o600
    assert signing_file.read_text().strip() == key.private_hex
    assert len(bytes.fromhex(data_file.read_text().strip())) == 16


def test_keys_load_back_and_sign(keys):
    key = keys.new_signing_key()
    keys.create_data_key()
    kid = keys.key_id_hex(key.public_key)
    fresh = LedgerKeys(keys.directory, "evledger/acme")  # nothing cached: read from disk
    loaded = fresh.signing_key(kid)
    assert loaded == key
    assert fresh.data_key() == keys.data_key()
    note = sign_checkpoint(Checkpoint("evledger/acme", 1, bytes(32)), "evledger/acme", loaded)
    assert verify_checkpoint(note, verifier_key("evledger/acme", key.public_key)).size == 1


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o606])
def test_loading_a_signing_key_readable_by_others_is_refused(keys, mode):
    key = keys.new_signing_key()
    kid = keys.key_id_hex(key.public_key)
    path = keys.directory / f"sm2-{kid}.key"
    os.chmod(path, mode)
    with pytest.raises(KeyFileError, match="permissions") as info:
        LedgerKeys(keys.directory, "evledger/acme").signing_key(kid)
    assert f"{mode:04o}" in str(info.value)
    assert "600" in str(info.value)


def test_loading_a_data_key_readable_by_others_is_refused(keys):
    keys.create_data_key()
    os.chmod(keys.directory / "sm4-data.key", 0o644)
    with pytest.raises(KeyFileError, match="permissions"):
        LedgerKeys(keys.directory, "evledger/acme").data_key()


def test_missing_and_malformed_key_files(keys):
    with pytest.raises(KeyFileError, match="missing"):
        keys.signing_key("deadbeef")
    with pytest.raises(KeyFileError, match="missing"):
        keys.data_key()
    key = keys.new_signing_key()
    kid = keys.key_id_hex(key.public_key)
    path = keys.directory / f"sm2-{kid}.key"
    os.chmod(path, 0o600)
    path.write_text("not hex\n")
    with pytest.raises(KeyFileError):
        LedgerKeys(keys.directory, "evledger/acme").signing_key(kid)
    # a valid key under another key's id
    other = keys.new_signing_key()
    path.write_text(other.private_hex + "\n")
    with pytest.raises(KeyFileError, match="id"):
        LedgerKeys(keys.directory, "evledger/acme").signing_key(kid)
    data = keys.directory / "sm4-data.key"
    data.touch(mode=0o600)
    data.write_text("00" * 8 + "\n")  # 64 bits, not 128
    with pytest.raises(KeyFileError, match="128"):
        LedgerKeys(keys.directory, "evledger/acme").data_key()


def test_an_existing_key_file_is_never_overwritten(keys):
    keys.create_data_key()
    path = keys.directory / "sm4-data.key"
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        keys.create_data_key()
    assert path.read_bytes() == before


def test_signing_key_file_is_never_overwritten(keys, monkeypatch):
    from ingest import keys as keys_module

    key = keys.new_signing_key()
    path = keys.directory / f"sm2-{keys.key_id_hex(key.public_key)}.key"
    before = path.read_bytes()
    # the generator hands out the same key again: the file it names exists already
    monkeypatch.setattr(keys_module.SM2PrivateKey, "generate", classmethod(lambda cls: key))
    with pytest.raises(FileExistsError):
        keys.new_signing_key()
    assert path.read_bytes() == before
    assert _mode(path) == 0o600


# ------------------------------------------------------------------------------ sealed fields

DATA_KEY = bytes(range(16))
FIELDS = {"name": "张三", "id_number": "110101199003077777", "note": 'quote " backslash \\ emoji 😀'}


def test_seal_and_open_round_trip_with_non_ascii():
    sealed = seal_fields(DATA_KEY, "acme", FIELDS)
    assert set(sealed) == {"alg", "nonce", "ciphertext"}
    assert sealed["alg"] == SEALED_ALG == "SM4-GCM"
    assert len(base64.b64decode(sealed["nonce"])) == 12
    assert open_sealed(DATA_KEY, "acme", sealed) == FIELDS
    assert open_sealed(DATA_KEY, "acme", seal_fields(DATA_KEY, "acme", {})) == {}


def test_each_seal_uses_a_fresh_nonce():
    a, b = seal_fields(DATA_KEY, "acme", FIELDS), seal_fields(DATA_KEY, "acme", FIELDS)
    assert a["nonce"] != b["nonce"]
    assert a["ciphertext"] != b["ciphertext"]


def test_sealed_form_holds_no_plaintext():
    sealed = seal_fields(DATA_KEY, "acme", FIELDS)
    stored = orjson.dumps(sealed)
    raw = base64.b64decode(sealed["ciphertext"])
    for key, value in FIELDS.items():
        for needle in (key, value, value[:4]):
            assert needle.encode() not in stored
            assert needle.encode() not in raw
            assert orjson.dumps(needle)[1:-1] not in stored


def _flip(b64: str, index: int) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize("where", ["ciphertext-first", "ciphertext-last", "tag", "nonce"])
def test_tampering_is_detected(where):
    sealed = seal_fields(DATA_KEY, "acme", FIELDS)
    if where == "nonce":
        bad = {**sealed, "nonce": _flip(sealed["nonce"], 0)}
    else:
        index = {"ciphertext-first": 0, "ciphertext-last": -17, "tag": -1}[where]
        bad = {**sealed, "ciphertext": _flip(sealed["ciphertext"], index)}
    with pytest.raises(KeyFileError, match="do not decrypt"):
        open_sealed(DATA_KEY, "acme", bad)


def test_sealed_fields_are_bound_to_their_ledger():
    sealed = seal_fields(DATA_KEY, "acme", FIELDS)
    with pytest.raises(KeyFileError):
        open_sealed(DATA_KEY, "acme2", sealed)
    with pytest.raises(KeyFileError):
        open_sealed(DATA_KEY, "other", sealed)


def test_sealed_fields_need_the_right_data_key():
    sealed = seal_fields(DATA_KEY, "acme", FIELDS)
    with pytest.raises(KeyFileError):
        open_sealed(bytes(16), "acme", sealed)
    with pytest.raises(KeyFileError):
        open_sealed(DATA_KEY[::-1], "acme", sealed)


def test_unknown_sealing_algorithm_is_refused():
    sealed = seal_fields(DATA_KEY, "acme", FIELDS)
    with pytest.raises(KeyFileError, match="AES-GCM"):
        open_sealed(DATA_KEY, "acme", {**sealed, "alg": "AES-GCM"})


@pytest.mark.parametrize("change", [
    {"ciphertext": base64.b64encode(b"short").decode()},
    {"nonce": ""},
    {"ciphertext": "!!!not base64!!!"},
], ids=["truncated-ciphertext", "empty-nonce", "bad-base64"])
def test_malformed_sealed_fields_raise_key_file_error(change):
    sealed = seal_fields(DATA_KEY, "acme", FIELDS)
    with pytest.raises(KeyFileError):
        open_sealed(DATA_KEY, "acme", {**sealed, **change})


def test_idempotency_fingerprint_is_stable_across_releases():
    """Fingerprints are stored in the index and the log's metadata: a data directory written by
    an earlier release must keep finding its records. Computed by the original formula,
    blake2b(record JSON, key=blake2b(data key, 32, person="evl-idempotency"), digest_size=16)."""
    record = (b'{"business_type":"trade","content_hash":"' + b"ab" * 32 +
              b'","evidence_id":"ev-1","occurred_at":"2024-05-01T09:30:00+08:00"}')
    fingerprint = idempotency_fingerprint(bytes(range(16)))
    assert fingerprint(record) == b"12b1b77c945a445369ad42ee4f72fa22"
    assert fingerprint(record) == fingerprint(record)  # the keyed state is copied, never consumed
    assert fingerprint(record + b" ") != fingerprint(record)
    assert idempotency_fingerprint(bytes(16))(record) != fingerprint(record)
