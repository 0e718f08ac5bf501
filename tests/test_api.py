"""The proof API (proof_api/app.py and its routers) in process with Starlette's TestClient, and once against a
real `evledger serve` on 127.0.0.1: every endpoint's happy path, and its errors in the one
shape {"error": {"code", "field", "message"}}, with nothing half-recorded.

One module-scoped Runtime (in-process chain). Anchoring is left to the worker for each
ledger's first checkpoint and otherwise done on demand (anchor min interval 3600 s), so that
a record can be watched going recorded -> checkpointed -> anchored.
"""
from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
import secrets
import signal
import stat
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi.testclient import TestClient

from merkle.checkpoint import verify_checkpoint
from evledger_verify.proof import verify_consistency
from proof_api.app import MAX_BATCH_BYTES, MAX_BATCH_ITEMS, create_app
from tests.api_helpers import (OCCURRED, ROLES, assert_error, auth, evledger_serve, make_runtime, record_count,
                               settle, wait_until)
from tests.sample_records import chash, rec

RECEIPT_FIELDS = {"evidence_id", "business_id", "seq", "leaf_hash", "received_at", "status", "duplicate"}
MAX_FILE_BYTES = 64 * 1024


def sm3_hex(data: bytes) -> str:
    return hashlib.new("sm3", data).hexdigest()


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    data = tmp_path_factory.mktemp("api") / "data"
    runtime, admin = make_runtime(data, batch_max_delay=0.5, anchor_min_interval=3600, max_file_bytes=MAX_FILE_BYTES)
    client = TestClient(create_app(runtime))
    try:
        for ledger in ("acme", "other"):
            r = client.post("/v1/ledgers", json={"ledger": ledger}, headers=auth(admin))
            assert r.status_code == 201, r.text
        keys = {}
        for role in ("producer", "auditor", "verifier", "admin"):
            r = client.post("/v1/ledgers/acme/api-keys", json={"role": role}, headers=auth(admin))
            assert r.status_code == 201, r.text
            keys[role] = r.json()["key"]
        yield SimpleNamespace(runtime=runtime, client=client, admin=admin, keys=keys, data=data,
                              H=lambda role: auth(admin if role == "service" else keys[role]))
    finally:
        client.close()
        runtime.close()


def submit(api, record, ledger="acme"):
    return api.client.post(f"/v1/ledgers/{ledger}/records", json=record, headers=api.H("producer"))


def get_record(api, seq, ledger="acme"):
    r = api.client.get(f"/v1/ledgers/{ledger}/records/{seq}", headers=api.H("auditor"))
    assert r.status_code == 200, r.text
    return r.json()


# --- ledgers and keys -------------------------------------------------------------------------


def test_create_ledger(api):
    c = api.client
    r = c.post("/v1/ledgers", json={"ledger": "made-here", "alg": "sha256"}, headers=api.H("service"))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["ledger"] == "made-here" and body["alg"] == "sha256" and body["origin"] == "evledger/made-here"
    assert body["verifier_key"].startswith("evledger/made-here+")
    assert "made-here" in c.get("/v1/ledgers", headers=api.H("service")).json()["ledgers"]
    assert c.post("/v1/ledgers", json={"ledger": "sm3-default"}, headers=api.H("service")).json()["alg"] == "sm3"

    assert_error(c.post("/v1/ledgers", json={"ledger": "made-here"}, headers=api.H("service")), 409, "ledger_exists")
    assert_error(c.post("/v1/ledgers", json={"ledger": "made-here", "alg": "md5"}, headers=api.H("service")),
                 422, "invalid_request", "alg")
    assert_error(c.post("/v1/ledgers", json={}, headers=api.H("service")), 422, "invalid_request", "ledger")
    for role in ("admin", "producer", "auditor", "verifier"):  # a ledger's own admin does not create ledgers
        assert_error(c.post("/v1/ledgers", json={"ledger": f"by-{role}"}, headers=api.H(role)), 403, "forbidden")
    assert_error(c.post("/v1/ledgers", json={"ledger": "anon"}), 401, "unauthorized")
    listed = c.get("/v1/ledgers", headers=api.H("service")).json()["ledgers"]
    assert not any(name.startswith("by-") or name == "anon" for name in listed)
    # A ledger key sees only its own ledger.
    assert c.get("/v1/ledgers", headers=api.H("auditor")).json() == {"ledgers": ["acme"]}


BAD_LEDGER_IDS = ["ACME", "", "é", "Bad Id", "-leading-dash", "a" * 64, "under_score", "x/y"]
# pydantic applies Field(pattern=...) as a *search*, not a full match, so LEDGER_ID_PATTERN
# (deps.py) is anchored: every bad id is 422 on the field, not a later 400 with field null.


@pytest.mark.parametrize("bad", BAD_LEDGER_IDS)
def test_create_ledger_bad_id_is_refused(api, bad):
    r = api.client.post("/v1/ledgers", json={"ledger": bad}, headers=api.H("service"))
    assert 400 <= r.status_code < 500
    assert_error(r, r.status_code)
    assert bad not in api.client.get("/v1/ledgers", headers=api.H("service")).json()["ledgers"]


@pytest.mark.parametrize("bad", BAD_LEDGER_IDS)
def test_create_ledger_bad_id_is_422_on_field_ledger(api, bad):
    r = api.client.post("/v1/ledgers", json={"ledger": bad}, headers=api.H("service"))
    assert_error(r, 422, "invalid_request", "ledger")


def test_api_keys_create_list_revoke(api):
    c, H = api.client, api.H
    r = c.post("/v1/ledgers/acme/api-keys", json={"role": "verifier"}, headers=H("admin"))
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["ledger"] == "acme" and made["role"] == "verifier" and made["key"].startswith(f"evk_{made['key_id']}_")
    assert c.get("/v1/ledgers/acme/checkpoints/latest", headers=auth(made["key"])).status_code in (200, 404)

    listed = c.get("/v1/ledgers/acme/api-keys", headers=H("admin"))
    assert listed.status_code == 200
    keys = listed.json()["keys"]
    assert {k["key_id"] for k in keys} >= {made["key_id"]}
    assert all(set(k) == {"key_id", "ledger", "role", "created"} and k["ledger"] == "acme" for k in keys)
    assert made["key"] not in listed.text and made["key"].split("_", 2)[2] not in listed.text

    assert_error(c.post("/v1/ledgers/acme/api-keys", json={"role": "root"}, headers=H("admin")), 422, "invalid_request", "role")
    assert_error(c.post("/v1/ledgers/acme/api-keys", json={}, headers=H("admin")), 422, "invalid_request", "role")

    r = c.delete(f"/v1/ledgers/acme/api-keys/{made['key_id']}", headers=H("admin"))
    assert r.status_code == 200 and r.json() == {"revoked": made["key_id"]}
    assert_error(c.get("/v1/ledgers/acme/checkpoints/latest", headers=auth(made["key"])), 401, "unauthorized")
    assert made["key_id"] not in c.get("/v1/ledgers/acme/api-keys", headers=H("admin")).text
    assert_error(c.delete(f"/v1/ledgers/acme/api-keys/{made['key_id']}", headers=H("admin")), 404, "not_found", "key_id")
    assert_error(c.delete("/v1/ledgers/acme/api-keys/000000000000", headers=H("admin")), 404, "not_found", "key_id")
    # A key of another ledger cannot be revoked through this one.
    other_id, other_key = api.runtime.access.create_key("other", "auditor")
    assert_error(c.delete(f"/v1/ledgers/acme/api-keys/{other_id}", headers=H("service")), 404, "not_found", "key_id")
    assert api.runtime.access.authenticate(other_key) is not None


def test_rotate_signing_key_then_new_checkpoints_use_it(api):
    c = api.client
    r = c.post("/v1/ledgers/other/signing-key/rotate", headers=api.H("service"))
    assert r.status_code == 200, r.text
    key_id, vkey = r.json()["key_id"], r.json()["verifier_key"]
    assert vkey.startswith(f"evledger/other+{key_id}+")
    producer = api.runtime.access.create_key("other", "producer")[1]
    assert c.post("/v1/ledgers/other/records", json=rec(1, evidence_id="rot-1"), headers=auth(producer)).status_code == 201
    assert api.runtime.service.ledger("other").wait_for_checkpoint(1, timeout=10) is not None
    latest = c.get("/v1/ledgers/other/checkpoints/latest", headers=api.H("service")).json()
    assert latest["key_id"] == key_id and latest["verifier_key"] == vkey
    verify_checkpoint(latest["note"], vkey)


# --- ingest -----------------------------------------------------------------------------------


def test_submit_one_duplicate_and_conflict(api):
    before = record_count(api.runtime, "acme")
    record = rec(101, evidence_id="one-1", business_id="flow-one", attributes={"branch": "sh-001"})
    r = submit(api, record)
    assert r.status_code == 201, r.text
    receipt = r.json()
    assert set(receipt) == RECEIPT_FIELDS
    assert receipt["evidence_id"] == "one-1" and receipt["business_id"] == "flow-one"
    assert receipt["status"] == "recorded" and receipt["duplicate"] is False
    assert receipt["seq"] == before and len(receipt["leaf_hash"]) == 64

    again = submit(api, record)
    assert again.status_code == 200
    assert again.json() == {**receipt, "duplicate": True}

    conflict = submit(api, rec(102, evidence_id="one-1", business_id="flow-one"))
    error = assert_error(conflict, 422, "invalid_record", "evidence_id")
    assert "different content" in error["message"]
    assert record_count(api.runtime, "acme") == before + 1
    stored = get_record(api, receipt["seq"])
    assert stored["record"]["content_hash"] == chash(101) and stored["leaf_hash"] == receipt["leaf_hash"]


def test_submit_one_bad_input_records_nothing(api):
    c, H = api.client, api.H("producer")
    before = record_count(api.runtime, "acme")
    assert_error(submit(api, {**rec(1), "content_hash": "zz"}), 422, "invalid_record", "content_hash")
    assert_error(submit(api, {**rec(1), "surprise": 1}), 422, "invalid_record", "surprise")
    assert_error(submit(api, {"business_type": "x", "occurred_at": OCCURRED}), 422, "invalid_record", "content_hash")
    assert_error(submit(api, {**rec(1), "occurred_at": "yesterday"}), 422, "invalid_record", "occurred_at")
    assert_error(submit(api, {**rec(1), "evidence_id": "x" * 1000}), 422, "limit_exceeded", "evidence_id")
    assert_error(submit(api, [rec(1)]), 422, "invalid_request")
    # Malformed JSON and wrong content types: a 4xx with a code (not a 5xx, not a record).
    for body, ctype in ((b"{bad", "application/json"), (b"", "application/json"),
                        (json.dumps(rec(2)).encode(), "text/plain"), (b"\x00\xff", "application/octet-stream")):
        r = c.post("/v1/ledgers/acme/records", content=body, headers={**H, "content-type": ctype})
        assert 400 <= r.status_code < 500, (body, ctype, r.status_code)
        assert_error(r, r.status_code)
    assert record_count(api.runtime, "acme") == before


def test_batch_json_per_item_results_in_order(api):
    c = api.client
    before = record_count(api.runtime, "acme")
    items = [rec(201, evidence_id="b-1"), {"bad": 1}, rec(202, evidence_id="b-2"), 5, "text", None,
             rec(203, evidence_id="b-2"),  # the same evidence id as item 2, different content
             rec(202, evidence_id="b-2"),  # a repeat of item 2 in the same batch
             rec(204, evidence_id="b-4", occurred_at="not a time"), rec(205, evidence_id="b-5")]
    r = c.post("/v1/ledgers/acme/records/batch", json=items, headers=api.H("producer"))
    assert r.status_code == 200, r.text
    body = r.json()
    results = body["results"]
    assert len(results) == len(items)
    good = [0, 2, 9]
    assert body["recorded"] == 3 and body["failed"] == 6
    for i in good:
        assert set(results[i]) == RECEIPT_FIELDS and results[i]["duplicate"] is False, results[i]
    assert [results[i]["evidence_id"] for i in good] == ["b-1", "b-2", "b-5"]
    assert [results[i]["seq"] for i in good] == [before, before + 1, before + 2]
    assert results[7]["evidence_id"] == "b-2" and results[7]["duplicate"] is True
    for i, (field, rule) in {1: ("bad", "unknown_field"), 3: ("record", "type"), 4: ("record", "type"),
                             5: ("record", "type"), 6: ("evidence_id", "conflict"),
                             8: ("occurred_at", None)}.items():
        error = results[i]["error"]
        assert error["field"] == field and error["code"] == "invalid_record" and error["message"], (i, error)
        if rule:
            assert error["rule"] == rule, (i, error)
    # Exactly the good ones were recorded, in order, with their own content.
    assert record_count(api.runtime, "acme") == before + 3
    for i, n in zip(good, (201, 202, 205)):
        assert get_record(api, results[i]["seq"])["record"]["content_hash"] == chash(n)


def test_batch_ndjson(api):
    c = api.client
    before = record_count(api.runtime, "acme")
    lines = [json.dumps(rec(301, evidence_id="nd-1")), "not json", "", json.dumps(rec(302, evidence_id="nd-2")),
             json.dumps({"content_hash": "00"}), json.dumps(rec(303))]
    for ctype in ("application/x-ndjson", "application/x-ndjson; charset=utf-8"):
        r = c.post("/v1/ledgers/acme/records/batch", content="\n".join(lines).encode() + b"\n",
                   headers={**api.H("producer"), "content-type": ctype})
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["results"]) == 5  # the blank line is not an item
        res = body["results"]
        assert res[1]["error"]["rule"] == "json" and "line 2" in res[1]["error"]["message"]
        assert res[3]["error"]["field"] == "content_hash"
        assert [res[i].get("evidence_id") for i in (0, 2)] == ["nd-1", "nd-2"]
        if ctype == "application/x-ndjson":
            assert body["recorded"] == 3 and body["failed"] == 2
            assert [res[i]["seq"] for i in (0, 2, 4)] == [before, before + 1, before + 2]
        else:  # the same body again: the evidence ids are repeats; the id-less record is new
            assert body["recorded"] == 1 and res[0]["duplicate"] is True and res[2]["duplicate"] is True
    assert record_count(api.runtime, "acme") == before + 4
    for ctype in ("application/ndjson", "application/jsonl"):
        r = c.post("/v1/ledgers/acme/records/batch", content=json.dumps(rec(304)).encode(),
                   headers={**api.H("producer"), "content-type": ctype})
        assert r.status_code == 200 and r.json()["recorded"] == 1, r.text


def test_batch_limits_record_nothing(api):
    c, H = api.client, api.H("producer")
    before = record_count(api.runtime, "acme")
    good = rec(401, evidence_id="limit-1")
    too_many = [good] + [rec(402 + i) for i in range(MAX_BATCH_ITEMS)]
    assert_error(c.post("/v1/ledgers/acme/records/batch", json=too_many, headers=H), 413, "batch_too_large")
    ndjson = b"\n".join(json.dumps(r).encode() for r in too_many)
    assert_error(c.post("/v1/ledgers/acme/records/batch", content=ndjson,
                        headers={**H, "content-type": "application/x-ndjson"}), 413, "batch_too_large")
    assert record_count(api.runtime, "acme") == before
    # Exactly the limit is accepted (invalid items: validated, none written).
    r = c.post("/v1/ledgers/acme/records/batch", json=[{}] * MAX_BATCH_ITEMS, headers=H)
    assert r.status_code == 200 and r.json()["failed"] == MAX_BATCH_ITEMS and r.json()["recorded"] == 0

    # Over MAX_BATCH_BYTES: declared by Content-Length, and streamed without one.
    big = json.dumps([good]).encode()[:-1] + b"," + b" " * MAX_BATCH_BYTES + json.dumps(rec(403)).encode() + b"]"
    assert_error(c.post("/v1/ledgers/acme/records/batch", content=big, headers={**H, "content-type": "application/json"}),
                 413, "body_too_large")

    def chunks():
        yield json.dumps([good]).encode()[:-1] + b","
        for _ in range(MAX_BATCH_BYTES // (1 << 20) + 1):
            yield b" " * (1 << 20)
        yield json.dumps(rec(404)).encode() + b"]"
    assert_error(c.post("/v1/ledgers/acme/records/batch", content=chunks(),
                        headers={**H, "content-type": "application/json"}), 413, "body_too_large")
    assert record_count(api.runtime, "acme") == before
    assert c.get("/v1/ledgers/acme/records?evidence_id=limit-1", headers=api.H("auditor")).json() == {"records": []}


def test_batch_content_types_and_malformed_json(api):
    c, H = api.client, api.H("producer")
    before = record_count(api.runtime, "acme")
    for ctype in ("text/plain", "application/xml", "multipart/form-data; boundary=x"):
        assert_error(c.post("/v1/ledgers/acme/records/batch", content=json.dumps([rec(1)]).encode(),
                            headers={**H, "content-type": ctype}), 415, "unsupported_media_type")
    assert_error(c.post("/v1/ledgers/acme/records/batch", content=b"[{bad", headers={**H, "content-type": "application/json"}),
                 400, "malformed_json")
    assert_error(c.post("/v1/ledgers/acme/records/batch", content=b"", headers={**H, "content-type": "application/json"}),
                 400, "malformed_json")
    assert_error(c.post("/v1/ledgers/acme/records/batch", json=rec(1), headers=H), 422, "invalid_request")
    r = c.post("/v1/ledgers/acme/records/batch", json=[], headers=H)
    assert r.status_code == 200 and r.json() == {"recorded": 0, "failed": 0, "results": []}
    assert record_count(api.runtime, "acme") == before


def test_file_upload(api):
    c, H = api.client, api.H("producer")
    blob = secrets.token_bytes(40_000)  # random: even a compressed copy would show the bytes
    url = f"/v1/ledgers/acme/files?business_type=contract-signing&occurred_at={OCCURRED}&evidence_id=file-1&business_id=flow-file"
    r = c.post(url, content=blob, headers={**H, "content-type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["content_hash"] == sm3_hex(blob) and body["bytes"] == len(blob)
    assert body["evidence_id"] == "file-1" and body["business_id"] == "flow-file" and body["duplicate"] is False
    assert get_record(api, body["seq"])["record"]["content_hash"] == sm3_hex(blob)

    def chunked():  # streamed, without a Content-Length
        for i in range(0, len(blob), 4096):
            yield blob[i:i + 4096]
    again = c.post(url, content=chunked(), headers={**H, "content-type": "application/octet-stream"})
    assert again.status_code == 200 and again.json()["duplicate"] is True and again.json()["seq"] == body["seq"]
    assert_error(c.post(url, content=blob + b"!", headers=H), 422, "invalid_record", "evidence_id")

    before = record_count(api.runtime, "acme")
    assert_error(c.post(url.replace("file-1", "file-empty"), content=b"", headers=H), 422, "empty_file", "file")
    assert_error(c.post(url.replace("file-1", "file-big"), content=b"x" * (MAX_FILE_BYTES + 1), headers=H),
                 413, "file_too_large")
    assert_error(c.post("/v1/ledgers/acme/files?business_type=x", content=b"x", headers=H),
                 422, "invalid_request", "occurred_at")
    assert_error(c.post(f"/v1/ledgers/acme/files?occurred_at={OCCURRED}", content=b"x", headers=H),
                 422, "invalid_request", "business_type")
    assert_error(c.post("/v1/ledgers/acme/files?business_type=x&occurred_at=soon", content=b"x", headers=H),
                 422, "invalid_record", "occurred_at")
    assert record_count(api.runtime, "acme") == before

    # The file itself is kept nowhere under the data directory.
    assert api.runtime.service.ledger("acme").wait_for_checkpoint(body["seq"] + 1, timeout=10) is not None
    for path in api.data.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert blob[:64] not in data and blob[-64:] not in data, f"the uploaded file's bytes are in {path}"


# --- reading ----------------------------------------------------------------------------------


def test_file_store_keeps_uploads_durably_and_serves_them_to_auditors_only(tmp_path):
    from proof_api.filestore import FileStore

    store = tmp_path / "files"
    runtime, admin = make_runtime(tmp_path / "data", chain=False, max_file_bytes=MAX_FILE_BYTES, file_store=store)
    c = TestClient(create_app(runtime))
    try:
        keys = {}
        for ledger in ("acme", "other"):
            assert c.post("/v1/ledgers", json={"ledger": ledger}, headers=auth(admin)).status_code == 201
            keys[ledger] = {role: auth(c.post(f"/v1/ledgers/{ledger}/api-keys", json={"role": role},
                                              headers=auth(admin)).json()["key"]) for role in ROLES}
        producer, auditor = keys["acme"]["producer"], keys["acme"]["auditor"]
        url = f"/v1/ledgers/acme/files?business_type=contract&occurred_at={OCCURRED}&evidence_id=kept-1"
        blob = secrets.token_bytes(MAX_FILE_BYTES - 1000)
        digest = sm3_hex(blob)
        r = c.post(url, content=(blob[i:i + 8192] for i in range(0, len(blob), 8192)), headers=producer)
        assert r.status_code == 201 and r.json()["stored"] is True and r.json()["content_hash"] == digest, r.text
        kept = store / "acme" / digest[:2] / digest
        assert kept.read_bytes() == blob
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600 and stat.S_IMODE(kept.parent.stat().st_mode) == 0o700

        got = c.get(f"/v1/ledgers/acme/files/{digest.upper()}", headers=auditor)
        assert got.status_code == 200 and got.content == blob and got.headers["x-content-sm3"] == digest
        assert got.headers["content-type"] == "application/octet-stream"
        for role in ("producer", "verifier"):
            assert_error(c.get(f"/v1/ledgers/acme/files/{digest}", headers=keys["acme"][role]), 403, "forbidden")
        assert_error(c.get(f"/v1/ledgers/acme/files/{digest}", headers=keys["other"]["auditor"]), 404,
                     "unknown_ledger")
        assert_error(c.get(f"/v1/ledgers/other/files/{digest}", headers=keys["other"]["auditor"]), 404, "not_found")
        assert_error(c.get("/v1/ledgers/acme/files/not-a-hash", headers=auditor), 422, "invalid_request",
                     "content_hash")

        # Recorded by hash only: the record exists, the file does not.
        only_hash = sm3_hex(b"never uploaded")
        assert c.post("/v1/ledgers/acme/records", json=rec(1, content_hash=only_hash), headers=producer).status_code == 201
        assert_error(c.get(f"/v1/ledgers/acme/files/{only_hash}", headers=auditor), 404, "not_stored")

        # The same content again: a duplicate, one file. Bad fields: refused before any byte is kept.
        again = c.post(url, content=blob, headers=producer)
        assert again.status_code == 200 and again.json()["duplicate"] is True

        def files():
            return sorted(p.relative_to(store) for p in store.rglob("*") if p.is_file())
        assert files() == [kept.relative_to(store)]
        assert_error(c.post(url.replace(OCCURRED, "soon"), content=b"other bytes", headers=producer), 422,
                     "invalid_record", "occurred_at")
        assert_error(c.post(url.replace("kept-1", "kept-big"), content=b"x" * (MAX_FILE_BYTES + 1), headers=producer),
                     413, "file_too_large")
        assert files() == [kept.relative_to(store)]  # no temporary file left either
        # A conflicting evidence_id is found only after the upload: kept, but no record names it.
        assert_error(c.post(url, content=b"different content", headers=producer), 422, "invalid_record",
                     "evidence_id")
        assert_error(c.get(f"/v1/ledgers/acme/files/{sm3_hex(b'different content')}", headers=auditor), 404,
                     "not_found")
    finally:
        c.close()
        runtime.close()
    # An upload a crash cut short is removed when the store opens again.
    (store / "acme" / ".incoming-crashed").write_bytes(b"half a file")
    FileStore(store)
    assert not (store / "acme" / ".incoming-crashed").exists() and kept.read_bytes() == blob


def test_record_status_recorded_checkpointed_anchored(api):
    c = api.client
    assert c.post("/v1/ledgers", json={"ledger": "flow"}, headers=api.H("service")).status_code == 201
    producer = api.runtime.access.create_key("flow", "producer")[1]
    auditor = auth(api.runtime.access.create_key("flow", "auditor")[1])
    assert c.post("/v1/ledgers/flow/records", json=rec(1), headers=auth(producer)).status_code == 201
    settle(api.runtime, "flow")  # the ledger's first anchor: later ones only on demand

    r = c.post("/v1/ledgers/flow/records", json=rec(2, evidence_id="watch"), headers=auth(producer))
    seq = r.json()["seq"]
    first = c.get(f"/v1/ledgers/flow/records/{seq}", headers=auditor).json()
    assert first["status"] == "recorded" and first["checkpoint_size"] is None and first["anchor"] is None

    second = wait_until(lambda: (lambda b: b if b["status"] != "recorded" else None)(
        c.get(f"/v1/ledgers/flow/records/{seq}", headers=auditor).json()), timeout=10, what="a checkpoint")
    assert second["status"] == "checkpointed" and second["checkpoint_size"] == seq + 1 and second["anchor"] is None
    assert_error(c.get("/v1/ledgers/flow/proof?evidence_id=watch", headers=auditor), 409, "not_anchored")

    assert c.post("/v1/ledgers/flow/anchors/now", headers=api.H("service")).json() == {"ledger": "flow", "anchoring": True}
    third = wait_until(lambda: (lambda b: b if b["status"] == "anchored" else None)(
        c.get(f"/v1/ledgers/flow/records/{seq}", headers=auditor).json()), timeout=20, what="an anchor")
    assert third["anchor"]["size"] == seq + 1 and third["anchor"]["tx_hash"].startswith("0x")
    assert set(third["anchor"]) == {"size", "chain_id", "contract", "tx_hash", "block_number", "block_hash", "block_time"}
    assert third["record"]["evidence_id"] == "watch"


def test_find_records(api):
    c, H = api.client, api.H("auditor")
    shared = chash(501)
    r = c.post("/v1/ledgers/acme/records/batch", json=[
        rec(501, evidence_id="find-1", business_id="acct-find", sealed={"customer_name": "张三"}),
        rec(502, evidence_id="find-2", business_id="acct-find"),
        {**rec(503, evidence_id="find-3", business_id="acct-find"), "content_hash": shared}],
        headers=api.H("producer"))
    seqs = [x["seq"] for x in r.json()["results"]]

    by_id = c.get("/v1/ledgers/acme/records?evidence_id=find-1", headers=H).json()["records"]
    assert [x["seq"] for x in by_id] == [seqs[0]]
    assert by_id[0]["sealed_fields"] == {"customer_name": "张三"}  # the auditor reads sealed fields
    assert by_id[0]["record"]["sealed"]["alg"] == "SM4-GCM" and "张三" not in json.dumps(by_id[0]["record"])
    by_hash = c.get(f"/v1/ledgers/acme/records?content_hash={shared.upper()}", headers=H).json()["records"]
    assert [x["seq"] for x in by_hash] == [seqs[0], seqs[2]]
    flow = c.get("/v1/ledgers/acme/records?business_id=acct-find", headers=H).json()["records"]
    assert [x["seq"] for x in flow] == seqs and [x["record"]["evidence_id"] for x in flow] == ["find-1", "find-2", "find-3"]
    assert c.get("/v1/ledgers/acme/records?evidence_id=never", headers=H).json() == {"records": []}
    assert c.get(f"/v1/ledgers/acme/records?content_hash={chash(999999)}", headers=H).json() == {"records": []}
    # The verifier gets status only, for records it names.
    seen = c.get("/v1/ledgers/acme/records?evidence_id=find-1", headers=api.H("verifier")).json()["records"]
    assert len(seen) == 1 and set(seen[0]) == {"seq", "status", "checkpoint_size", "anchor"}

    assert_error(c.get("/v1/ledgers/acme/records", headers=H), 400, "invalid_request")
    assert_error(c.get("/v1/ledgers/acme/records?evidence_id=find-1&business_id=acct-find", headers=H), 400, "invalid_request")
    assert_error(c.get("/v1/ledgers/acme/records?content_hash=xyz", headers=H), 422, "invalid_request", "content_hash")
    assert_error(c.get("/v1/ledgers/acme/records?content_hash=" + "g" * 64, headers=H), 422, "invalid_request", "content_hash")
    assert_error(c.get("/v1/ledgers/acme/records?evidence_id=" + "e" * 129, headers=H), 422, "invalid_request", "evidence_id")
    assert_error(c.get("/v1/ledgers/acme/records/999999999", headers=H), 404, "not_found", "seq")
    assert_error(c.get("/v1/ledgers/acme/records/-1", headers=H), 422, "invalid_request", "seq")
    assert_error(c.get("/v1/ledgers/acme/records/abc", headers=H), 422, "invalid_request", "seq")


# --- proofs -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def anchored(api):
    """Records of 'acme' in two anchored checkpoints: {'early', 'late', 'first_size', 'second_size', 'file'}."""
    from evledger_verify.verify import verify_bundle  # noqa: F401  (the module must exist)

    c = api.client
    c.post("/v1/ledgers/acme/records/batch", json=[rec(590 + i) for i in range(3)], headers=api.H("producer"))
    blob = b"the contract file, as signed " + secrets.token_bytes(16)
    early = c.post(f"/v1/ledgers/acme/files?business_type=contract&occurred_at={OCCURRED}&evidence_id=proof-early",
                   content=blob, headers=api.H("producer")).json()
    first_size = settle(api.runtime, "acme")
    late = submit(api, rec(601, evidence_id="proof-late")).json()
    second_size = settle(api.runtime, "acme")
    assert first_size < second_size
    return SimpleNamespace(early=early, late=late, first_size=first_size, second_size=second_size, file=blob)


def test_proof_bundle_verifies(api, anchored, tmp_path):
    from evledger_verify import verify

    c = api.client
    bundle = c.get("/v1/ledgers/acme/proof?evidence_id=proof-early", headers=api.H("verifier"))
    assert bundle.status_code == 200, bundle.text
    b = bundle.json()
    assert b["format"] == "evledger-proof/2" and b["ledger"] == "acme" and b["hash_alg"] == "sm3"
    assert b["leaf"]["index"] == anchored.early["seq"] and b["leaf"]["hash"] == anchored.early["leaf_hash"]
    assert b["inclusion"]["tree_size"] == anchored.first_size  # its first anchored checkpoint, by default
    assert b["anchor"] is not None and b["record"]["record"]["content_hash"] == sm3_hex(anchored.file)
    report = verify.verify_bundle(b, anchored.file)
    assert report.verdict == verify.VERDICT_IN_TREE, verify.format_report(report)
    assert report.check("file").ok is True

    by_hash = c.get(f"/v1/ledgers/acme/proof?content_hash={sm3_hex(anchored.file)}", headers=api.H("verifier")).json()
    by_seq = c.get(f"/v1/ledgers/acme/proof?seq={anchored.early['seq']}", headers=api.H("auditor")).json()
    for other in (by_hash, by_seq):
        assert {k: v for k, v in other.items() if k != "issued_at"} == {k: v for k, v in b.items() if k != "issued_at"}
    at_second = c.get(f"/v1/ledgers/acme/proof?evidence_id=proof-early&checkpoint={anchored.second_size}",
                      headers=api.H("auditor")).json()
    assert at_second["inclusion"]["tree_size"] == anchored.second_size
    assert verify.verify_bundle(at_second).verdict == verify.VERDICT_IN_TREE

    # `evledger verify BUNDLE --file F`: exit 0 for the file, 1 for an altered copy of it.
    (tmp_path / "bundle.json").write_text(json.dumps(b))
    (tmp_path / "good.bin").write_bytes(anchored.file)
    (tmp_path / "bad.bin").write_bytes(anchored.file + b" ")
    out = tmp_path / "out.txt"
    with out.open("w") as fh:
        assert verify.run(str(tmp_path / "bundle.json"), file=str(tmp_path / "good.bin"), out=fh) == 0
        assert verify.run(str(tmp_path / "bundle.json"), file=str(tmp_path / "bad.bin"), out=fh) == 1
    assert "verdict ①" in out.read_text() and "verdict ②" in out.read_text()

    # Not anchored: refused by default; with require_anchor=false, a bundle that verifies to ②.
    pending = submit(api, rec(602, evidence_id="proof-pending")).json()
    assert api.runtime.service.ledger("acme").wait_for_checkpoint(pending["seq"] + 1, timeout=10)
    assert_error(c.get("/v1/ledgers/acme/proof?evidence_id=proof-pending", headers=api.H("auditor")), 409, "not_anchored")
    unanchored = c.get("/v1/ledgers/acme/proof?evidence_id=proof-pending&require_anchor=false", headers=api.H("auditor"))
    assert unanchored.status_code == 200 and unanchored.json()["anchor"] is None
    assert verify.verify_bundle(unanchored.json()).verdict == verify.VERDICT_NOT_PROVEN

    assert_error(c.get("/v1/ledgers/acme/proof?evidence_id=nobody", headers=api.H("auditor")), 404, "not_found")
    assert_error(c.get("/v1/ledgers/acme/proof", headers=api.H("auditor")), 400, "invalid_request")
    assert_error(c.get("/v1/ledgers/acme/proof?evidence_id=proof-early&checkpoint=999999999", headers=api.H("auditor")),
                 404, "not_found")
    assert_error(c.get(f"/v1/ledgers/acme/proof?evidence_id=proof-late&checkpoint={anchored.first_size}",
                       headers=api.H("auditor")), 400, "invalid_request")
    assert_error(c.get("/v1/ledgers/acme/proof?seq=x", headers=api.H("auditor")), 422, "invalid_request", "seq")
    assert_error(c.get("/v1/ledgers/acme/proof?evidence_id=proof-early&checkpoint=0", headers=api.H("auditor")),
                 422, "invalid_request", "checkpoint")


def test_consistency_proof_verifies(api, anchored):
    c, H = api.client, api.H("verifier")
    first, second = anchored.first_size, anchored.second_size
    r = c.get(f"/v1/ledgers/acme/consistency?first={first}&second={second}", headers=H)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["first"]["size"] == first and body["second"]["size"] == second and body["hash_alg"] == "sm3"
    verify_consistency("sm3", first, second, [bytes.fromhex(p) for p in body["proof"]],
                       bytes.fromhex(body["first"]["root"]), bytes.fromhex(body["second"]["root"]))
    same = c.get(f"/v1/ledgers/acme/consistency?first={second}&second={second}", headers=H).json()
    assert same["proof"] == []
    assert_error(c.get(f"/v1/ledgers/acme/consistency?first={second}&second={first}", headers=H), 400, "invalid_request", "first")
    assert_error(c.get(f"/v1/ledgers/acme/consistency?first={first}&second=999999999", headers=H), 404, "not_found", "second")
    assert_error(c.get(f"/v1/ledgers/acme/consistency?first={first}", headers=H), 422, "invalid_request", "second")
    assert_error(c.get(f"/v1/ledgers/acme/consistency?first=0&second={second}", headers=H), 422, "invalid_request", "first")


def test_checkpoints(api, anchored):
    c = api.client
    listed = c.get("/v1/ledgers/acme/checkpoints", headers=api.H("auditor"))
    assert listed.status_code == 200
    checkpoints, vkeys = listed.json()["checkpoints"], listed.json()["verifier_keys"]
    sizes = [cp["size"] for cp in checkpoints]
    assert sizes == sorted(sizes) and {anchored.first_size, anchored.second_size} <= set(sizes)
    for cp in checkpoints:
        signed = verify_checkpoint(cp["note"], vkeys[cp["key_id"]])
        assert signed.size == cp["size"] and signed.root.hex() == cp["root"]
    page = c.get(f"/v1/ledgers/acme/checkpoints?after={sizes[0]}&limit=1", headers=api.H("auditor")).json()["checkpoints"]
    assert [cp["size"] for cp in page] == sizes[1:2]

    latest = c.get("/v1/ledgers/acme/checkpoints/latest", headers=api.H("verifier")).json()
    assert latest["size"] == max(sizes)
    at = c.get(f"/v1/ledgers/acme/checkpoints/{anchored.second_size}", headers=api.H("verifier")).json()
    listed_cp = next(cp for cp in checkpoints if cp["size"] == anchored.second_size)
    assert {k: at[k] for k in listed_cp} == listed_cp
    assert at["verifier_key"] == vkeys[at["key_id"]] and at["anchor"]["status"] == "confirmed"
    assert_error(c.get("/v1/ledgers/acme/checkpoints/999999999", headers=api.H("auditor")), 404, "not_found", "size")
    assert_error(c.get("/v1/ledgers/acme/checkpoints/0", headers=api.H("auditor")), 422, "invalid_request", "size")
    assert_error(c.get("/v1/ledgers/acme/checkpoints?limit=0", headers=api.H("auditor")), 422, "invalid_request", "limit")
    # A fresh ledger has none yet.
    assert c.post("/v1/ledgers", json={"ledger": "empty"}, headers=api.H("service")).status_code == 201
    assert_error(c.get("/v1/ledgers/empty/checkpoints/latest", headers=api.H("service")), 404, "not_found")
    assert c.get("/v1/ledgers/empty/checkpoints", headers=api.H("service")).json()["checkpoints"] == []


def test_anchors_list(api, anchored):
    r = api.client.get("/v1/ledgers/acme/anchors", headers=api.H("auditor"))
    assert r.status_code == 200, r.text
    anchors = r.json()["anchors"]
    confirmed = {a["size"]: a for a in anchors if a["status"] == "confirmed"}
    assert {anchored.first_size, anchored.second_size} <= set(confirmed)
    bundle = api.client.get("/v1/ledgers/acme/proof?evidence_id=proof-late", headers=api.H("auditor")).json()
    assert confirmed[anchored.second_size]["tx_hash"] == bundle["anchor"]["tx_hash"]
    assert_error(api.client.get("/v1/ledgers/acme/anchors", headers=api.H("verifier")), 403, "forbidden")


def test_certificate(api, anchored):
    from proof_api.certificate import extract_bundle

    c = api.client
    r = c.get("/v1/ledgers/acme/certificate?evidence_id=proof-early", headers=api.H("verifier"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    embedded = extract_bundle(r.text)
    bundle = c.get("/v1/ledgers/acme/proof?evidence_id=proof-early", headers=api.H("verifier")).json()
    assert {k: v for k, v in embedded.items() if k != "issued_at"} == {k: v for k, v in bundle.items() if k != "issued_at"}
    assert anchored.early["leaf_hash"] in r.text and bundle["anchor"]["tx_hash"] in r.text
    assert_error(c.get("/v1/ledgers/acme/certificate?evidence_id=nobody", headers=api.H("auditor")), 404, "not_found")
    assert_error(c.get("/v1/ledgers/acme/certificate", headers=api.H("auditor")), 400, "invalid_request")
    assert "script-src 'sha256-" in r.headers["content-security-policy"]


def test_certificates_are_counted_with_the_verifications(api, anchored):
    """Rendering a certificate (its font subset takes seconds for a record of thousands of
    characters) takes a verification slot: with every slot held, it is refused at once (429)."""
    gate = api.client.app.state.services.in_flight
    held = [gate.admit_verification() for _ in range(gate.verifications)]
    try:
        assert_error(api.client.get("/v1/ledgers/acme/certificate?evidence_id=proof-early", headers=api.H("auditor")),
                     429, "too_many_requests")
    finally:
        for release in held:
            release()
    assert api.client.get("/v1/ledgers/acme/certificate?evidence_id=proof-early",
                          headers=api.H("auditor")).status_code == 200


def _tampered(bundle: dict):
    """(what, bundle) pairs, each with one field altered."""
    def flip(hex_text):
        return ("0" if hex_text[0] != "0" else "1") + hex_text[1:]
    out = []
    b = copy.deepcopy(bundle); b["leaf"]["hash"] = flip(b["leaf"]["hash"]); out.append(("leaf.hash", b))
    b = copy.deepcopy(bundle); b["checkpoint"]["root"] = flip(b["checkpoint"]["root"]); out.append(("checkpoint.root", b))
    assert bundle["inclusion"]["path"], "a one-leaf tree: nothing to tamper in the path"
    b = copy.deepcopy(bundle); b["inclusion"]["path"][0] = flip(b["inclusion"]["path"][0]); out.append(("path[0]", b))
    b = copy.deepcopy(bundle); b["inclusion"]["path"].pop(); out.append(("path shortened", b))
    b = copy.deepcopy(bundle); b["record"]["record"]["content_hash"] = chash(7); out.append(("record.content_hash", b))
    b = copy.deepcopy(bundle)
    leaf = json.loads(base64.b64decode(b["leaf"]["bytes_b64"]))
    leaf["record"]["business_type"] = "forged"
    b["leaf"]["bytes_b64"] = base64.b64encode(json.dumps(leaf, separators=(",", ":"), sort_keys=True,
                                                         ensure_ascii=False).encode()).decode()
    out.append(("leaf.bytes_b64", b))
    b = copy.deepcopy(bundle); b["leaf"]["index"] += 1; out.append(("leaf.index", b))
    b = copy.deepcopy(bundle); b["anchor"] = None; out.append(("anchor", b))
    b = copy.deepcopy(bundle); b["format"] = "evledger-proof/3"; out.append(("format", b))
    return out


def test_verify_endpoint(api, anchored):
    c = api.client
    bundle = c.get("/v1/ledgers/acme/proof?evidence_id=proof-early", headers=api.H("verifier")).json()
    good = c.post("/v1/verify", json={"bundle": bundle})  # public: no key needed
    assert good.status_code == 200, good.text
    body = good.json()
    assert body["verdict"] == 1 and body["verdict_text"]
    checks = {ch["name"]: ch for ch in body["checks"]}
    assert [checks[n]["ok"] for n in ("format", "leaf", "leaf_hash", "inclusion", "checkpoint", "anchor")] == [True] * 6
    assert checks["content_hash"]["ok"] is None

    with_hash = c.post("/v1/verify", json={"bundle": bundle, "content_hash": sm3_hex(anchored.file)}).json()
    assert with_hash["verdict"] == 1 and {ch["name"]: ch["ok"] for ch in with_hash["checks"]}["content_hash"] is True
    wrong_hash = c.post("/v1/verify", json={"bundle": bundle, "content_hash": sm3_hex(anchored.file + b"x")}).json()
    assert wrong_hash["verdict"] == 2

    for what, tampered in _tampered(bundle):
        r = c.post("/v1/verify", json={"bundle": tampered})
        assert r.status_code == 200 and r.json()["verdict"] == 2, (what, r.text[:300])
    assert c.post("/v1/verify", json={"bundle": {}}).json()["verdict"] == 2
    assert_error(c.post("/v1/verify", json={"bundle": [1]}), 422, "invalid_request", "bundle")

    # The ledger's published keys pinned: its own passes, another's (a forger's) fails the checkpoint.
    published = c.get("/v1/ledgers/acme/checkpoints", headers=api.H("auditor")).json()["verifier_keys"]
    assert bundle["checkpoint"]["verifier_key"] in published.values()
    pinned = c.post("/v1/verify", json={"bundle": bundle, "verifier_keys": list(published.values())}).json()
    assert pinned["verdict"] == 1 and "pass --key" not in pinned["verdict_text"]
    other_key = c.post("/v1/ledgers", json={"ledger": "verify-other"}, headers=api.H("service")).json()["verifier_key"]
    wrong = c.post("/v1/verify", json={"bundle": bundle, "verifier_keys": [other_key]}).json()
    assert wrong["verdict"] == 2 and {ch["name"]: ch["ok"] for ch in wrong["checks"]}["checkpoint"] is False
    assert_error(c.post("/v1/verify", json={"bundle": bundle, "verifier_keys": ["not a key"]}), 422,
                 "invalid_request", "verifier_keys")
    assert_error(c.post("/v1/verify", json={"bundle": bundle, "verifier_keys": []}), 422, "invalid_request",
                 "verifier_keys")
    assert_error(c.post("/v1/verify", json={}), 422, "invalid_request", "bundle")
    r = c.post("/v1/verify", content=b"{not json", headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500
    assert_error(r, r.status_code)


def test_verify_endpoint_and_cli_read_an_ambiguous_bundle_alike(api, anchored, tmp_path):
    """Bundle text with a key twice: whichever reading a parser picks, the HTTP verifier and
    `evledger verify` both give verdict 2, naming the duplicated key, never 1."""
    from evledger_verify.verify import run

    bundle = api.client.get("/v1/ledgers/acme/proof?evidence_id=proof-early", headers=api.H("verifier")).json()
    text = json.dumps(bundle)
    ledger_twice = text.replace('"ledger": ', '"ledger": "someone-else", "ledger": ', 1)
    index = bundle["leaf"]["index"]
    index_twice = text.replace(f'"index": {index}', f'"index": {index + 1}, "index": {index}', 1)
    for ambiguous, key in ((ledger_twice, "ledger"), (index_twice, "index")):
        assert ambiguous != text
        r = api.client.post("/v1/verify", content=f'{{"bundle": {ambiguous}}}'.encode(),
                            headers={"content-type": "application/json"})
        assert r.status_code == 200 and r.json()["verdict"] == 2, r.text[:300]
        assert f"duplicate key '{key}'" in r.json()["checks"][0]["detail"], r.json()["checks"][0]
        path = tmp_path / f"{key}.json"
        path.write_text(ambiguous)
        out = io.StringIO()
        assert run(str(path), out=out) == 1
        assert f"duplicate key '{key}'" in out.getvalue() and "verdict ②" in out.getvalue(), out.getvalue()
    # The unambiguous text passes both.
    assert api.client.post("/v1/verify", content=f'{{"bundle": {text}}}'.encode()).json()["verdict"] == 1


# --- operations and routing -------------------------------------------------------------------


def test_health_ready_metrics(api):
    c = api.client
    assert submit(api, rec(701)).status_code == 201
    assert_error(c.get("/v1/ledgers/acme/records/0"), 401, "unauthorized")
    ledger = api.runtime.service.ledger("acme")
    assert ledger.wait_for_checkpoint(ledger.record_count, timeout=10) is not None
    h = c.get("/healthz")
    assert h.status_code == 200 and h.json()["status"] == "ok"
    assert api.runtime.warmed.wait(120), "the SM3 kernels did not compile within 120 s"
    ready = c.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert ready.json()["ledgers"] == len(api.runtime.service.ledgers())
    api.runtime.warmed.clear()  # as while the kernels compile at start
    try:
        warming = c.get("/readyz")
        assert warming.status_code == 503 and "compiling the SM3 kernels" in warming.json()["problems"][0]
    finally:
        api.runtime.warmed.set()
    m = c.get("/metrics")
    assert m.status_code == 200 and m.headers["content-type"].startswith("text/plain")
    values = {}
    for line in m.text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    assert values['evledger_records_total{ledger="acme"}'] >= 1
    assert values['evledger_checkpoint_lag_records{ledger="acme"}'] == 0  # every record is in a checkpoint
    latest = ledger.projections.latest_checkpoint()["size"]
    anchored = ledger.projections.latest_anchor(status="confirmed")
    assert values['evledger_anchor_lag_records{ledger="acme"}'] == latest - (anchored["size"] if anchored else 0)
    assert values['evledger_http_requests_total{status="2xx"}'] >= 1
    assert values['evledger_http_requests_total{status="4xx"}'] >= 1
    assert values['evledger_errors_total{code="unauthorized"}'] >= 1
    # The anchor worker's own instruments, and the documented names that read its counters. Its
    # thread runs meanwhile: a count read after the scrape can only be higher.
    assert values["evledger_anchor_failures"] == values["evledger_anchors_failed_total"]
    assert values["evledger_chain_errors"] == values["evledger_anchor_chain_errors_total"]
    confirmed = values["evledger_anchors_confirmed_total"]
    assert values["evledger_anchor_confirm_latency_seconds_count"] <= confirmed <= api.runtime.worker.metrics.confirmed


def test_unknown_routes_and_wrong_methods(api):
    c = api.client
    for path in ("/nope", "/v1", "/v2/ledgers", "/v1/ledgers/acme/nothing", "/v1/ledgers/acme/records/0/extra"):
        assert_error(c.get(path, headers=api.H("service")), 404, "not_found")
    for method, path in (("DELETE", "/healthz"), ("POST", "/metrics"), ("PUT", "/v1/ledgers"),
                         ("GET", "/v1/verify"), ("PATCH", "/v1/ledgers/acme/records"),
                         ("GET", "/v1/ledgers/acme/files"), ("PUT", "/v1/ledgers/acme/records/batch"),
                         ("DELETE", "/v1/ledgers/acme/checkpoints/latest")):
        assert_error(c.request(method, path, headers=api.H("service")), 405, "method_not_allowed")


# --- a real server ------------------------------------------------------------------------------


def test_real_server_evledger_serve(tmp_path):
    """`evledger serve` on 127.0.0.1: create a ledger, submit a record and a streamed file (kept
    in the file store and fetched back), fetch and verify the proof over real HTTP, stop cleanly
    on SIGTERM, however often it comes."""
    from evledger_verify.verify import VERDICT_IN_TREE, verify_bundle

    data = tmp_path / "data"
    with evledger_serve(data, "--anchor-min-interval", "0", "--file-store", str(tmp_path / "files")) as (proc, base, _):
        with httpx.Client(base_url=base, timeout=10) as http:
            admin = auth((data / "admin.key").read_text().strip())
            assert http.post("/v1/ledgers", json={"ledger": "live"}, headers=admin).status_code == 201
            producer = auth(http.post("/v1/ledgers/live/api-keys", json={"role": "producer"}, headers=admin).json()["key"])
            verifier = auth(http.post("/v1/ledgers/live/api-keys", json={"role": "verifier"}, headers=admin).json()["key"])
            r = http.post("/v1/ledgers/live/records", json=rec(1, evidence_id="live-1"), headers=producer)
            assert r.status_code == 201, r.text
            blob = secrets.token_bytes(300_000)
            f = http.post(f"/v1/ledgers/live/files?business_type=contract&occurred_at={OCCURRED}&evidence_id=live-f",
                          content=(blob[i:i + 65536] for i in range(0, len(blob), 65536)), headers=producer)
            assert f.status_code == 201 and f.json()["content_hash"] == sm3_hex(blob), f.text
            assert f.json()["stored"] is True
            auditor = auth(http.post("/v1/ledgers/live/api-keys", json={"role": "auditor"}, headers=admin).json()["key"])
            kept = http.get(f"/v1/ledgers/live/files/{sm3_hex(blob)}", headers=auditor)
            assert kept.status_code == 200 and kept.content == blob
            assert_error(http.get("/v1/ledgers/live/records/0", headers=verifier), 403, "forbidden")
            assert_error(http.get("/v1/ledgers/ghost/records/0", headers=verifier), 404, "unknown_ledger")

            def proof():
                p = http.get("/v1/ledgers/live/proof?evidence_id=live-f", headers=verifier)
                return p.json() if p.status_code == 200 else None
            bundle = wait_until(proof, timeout=30, interval=0.1, what="an anchored proof")
            report = verify_bundle(bundle, blob)
            assert report.verdict == VERDICT_IN_TREE and report.check("file").ok is True
            assert http.post("/v1/verify", json={"bundle": bundle}).json()["verdict"] == 1
            assert "evledger_records_total" in http.get("/metrics").text
        # Repeated, as a supervisor or a double Ctrl-C would: still a clean stop, the ledgers closed.
        deadline = time.monotonic() + 30
        while proc.poll() is None:
            assert time.monotonic() < deadline, "evledger serve did not stop on SIGTERM"
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.005)
        assert proc.returncode == 0
        stderr = Path(f"{data}.stderr").read_text()
        assert "Traceback" not in stderr, stderr


# --- regressions of bugs found by these tests ------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/ledgers/acme/records", "/v1/ledgers", "/v1/ledgers/acme/api-keys",
                                  "/v1/verify"])
def test_malformed_json_is_malformed_json_everywhere(api, path):
    r = api.client.post(path, content=b"{bad", headers={**api.H("service"), "content-type": "application/json"})
    assert_error(r, 400, "malformed_json")


def test_submit_one_wrong_content_type_is_415(api):
    r = api.client.post("/v1/ledgers/acme/records", content=json.dumps(rec(801)).encode(),
                        headers={**api.H("producer"), "content-type": "text/plain"})
    assert_error(r, 415, "unsupported_media_type")


def test_verify_does_not_silently_ignore_what_it_cannot_check(api, anchored):
    bundle = api.client.get("/v1/ledgers/acme/proof?evidence_id=proof-early", headers=api.H("verifier")).json()
    wrong = sm3_hex(b"some other file")
    for extra in ({"hash": wrong}, {"file": base64.b64encode(b"some other file").decode()}):
        r = api.client.post("/v1/verify", json={"bundle": bundle, **extra})
        assert r.status_code == 422 or r.json()["verdict"] == 2, (extra, r.json().get("verdict"))


def test_duplicate_receipt_of_anchored_record_says_anchored(api, anchored):
    r = submit(api, rec(601, evidence_id="proof-late"))
    assert r.status_code == 200 and r.json()["duplicate"] is True
    assert get_record(api, r.json()["seq"])["status"] == "anchored"
    assert r.json()["status"] == "anchored"


def test_proof_without_selector_does_not_offer_business_id(api):
    error = assert_error(api.client.get("/v1/ledgers/acme/proof", headers=api.H("auditor")), 400, "invalid_request")
    assert "business_id" not in error["message"]


def test_a_file_store_upload_kept_is_not_undone_and_one_that_fails_leaves_nothing(tmp_path):
    from proof_api.filestore import FileStore

    store = FileStore(tmp_path / "files")
    upload = store.begin("acme")
    upload.write(b"the contract")
    kept = upload.keep(sm3_hex(b"the contract"))
    upload.discard()  # as the request's finally does, even when it was cancelled during keep()
    assert kept.read_bytes() == b"the contract"
    failing = store.begin("acme")
    failing.write(b"half")
    with pytest.raises(ValueError):
        failing.keep("not a digest")
    failing.discard()
    assert sorted(p.name for p in (tmp_path / "files").rglob("*") if p.is_file()) == [kept.name]


def test_an_unexpected_exception_is_counted_as_a_5xx_answer(api):
    """The request counter sits inside starlette's ServerErrorMiddleware, which answers the 500:
    an exception that escapes the app still counts as one 5xx answer."""
    app = api.client.app

    @app.get("/test-only/boom", include_in_schema=False)
    async def boom():
        raise RuntimeError("boom")

    def fivexx() -> float:
        text = api.client.get("/metrics").text
        line = next((x for x in text.splitlines() if x.startswith('evledger_http_requests_total{status="5xx"}')), None)
        return float(line.rpartition(" ")[2]) if line else 0.0

    before = fivexx()
    client = TestClient(app, raise_server_exceptions=False)  # no `with`: the app's lifespan stays untouched
    assert client.get("/test-only/boom").status_code == 500
    assert fivexx() == before + 1


def test_an_ndjson_error_names_the_line_blank_lines_included(api):
    body = b"\n".join([json.dumps(rec(311)).encode(), b"", b"   ", b"{not json", b"", b"[oops"]) + b"\n"
    r = api.client.post("/v1/ledgers/acme/records/batch", content=body,
                        headers={**api.H("producer"), "content-type": "application/x-ndjson"})
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert len(res) == 3 and "seq" in res[0]
    assert res[1]["error"]["message"].startswith("line 4 is not JSON")
    assert res[2]["error"]["message"].startswith("line 6 is not JSON")


def test_health_answers_head_and_a_trailing_slash_is_not_redirected(api):
    """Uptime checkers probe with HEAD; a POST to "/v1/verify/" gets the documented 404, not a
    307 that most clients do not follow with a body (and that doubles it for those that do)."""
    c = api.client
    head = c.head("/healthz")
    assert head.status_code == 200 and head.content == b""
    assert c.head("/readyz").status_code in (200, 503)
    assert_error(c.post("/v1/verify/", json={"bundle": {}}), 404, "not_found")
    assert_error(c.get("/v1/ledgers/", headers=api.H("service")), 404, "not_found")
