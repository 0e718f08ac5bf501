"""Access to the proof API (proof_api/access.py, deps.py's ledger lookup): roles, keys, IP rules.

Two ledgers, alpha (A) and beta (B), seeded alike and anchored. A key for A, whatever its role,
gets from every route of B exactly what it gets for a ledger that does not exist: 404
unknown_ledger, and nothing changes in B. Within A, each role gets 403 where it lacks the right
and success where it has it (the roles of docs/api.md, "Authentication and roles"). No key, a bad key, a revoked key:
401. Keys are stored hashed. IP allow/deny rules answer 404 too, in process and over a real
uvicorn server on 127.0.0.1.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import stat
from types import SimpleNamespace

import httpx
import pytest
from fastapi.testclient import TestClient

from proof_api.app import create_app
from tests.api_helpers import OCCURRED, ROLES, assert_error, auth, make_runtime, settle, uvicorn_server
from tests.sample_records import chash, rec

A, B, GHOST = "alpha", "beta", "ghost"
STORED_FILE = b"a contract kept in the file store of both ledgers\n"
PROBE_IP, ADMIN_IP = "203.0.113.7", "198.51.100.1"
_unique = itertools.count(1000)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    data = tmp_path_factory.mktemp("access") / "data"
    runtime, admin = make_runtime(data, file_store=data.parent / "files")
    app = create_app(runtime)
    client = TestClient(app)
    try:
        sizes = {}
        for ledger in (A, B):
            assert client.post("/v1/ledgers", json={"ledger": ledger}, headers=auth(admin)).status_code == 201
            producer = runtime.access.create_key(ledger, "producer")[1]
            r = client.post(f"/v1/ledgers/{ledger}/records/batch", headers=auth(producer), json=[
                rec(1, evidence_id="ev-1", business_id="flow-1"), rec(2, evidence_id="ev-2", business_id="flow-1")])
            assert r.json()["recorded"] == 2, r.text
            r = client.post(f"/v1/ledgers/{ledger}/files?business_type=contract&occurred_at={OCCURRED}",
                            content=STORED_FILE, headers=auth(producer))
            assert r.status_code == 201 and r.json()["stored"] is True, r.text
            sizes[ledger] = settle(runtime, ledger)
        assert sizes[A] == sizes[B] == 3
        keys = {role: client.post(f"/v1/ledgers/{A}/api-keys", json={"role": role}, headers=auth(admin)).json()["key"]
                for role in ROLES}
        made = [admin, *keys.values()]
        yield SimpleNamespace(runtime=runtime, app=app, client=client, admin=admin, keys=keys, size=sizes[A],
                              data=data, made=made)
    finally:
        client.close()
        runtime.close()


# name, method, path under /v1/ledgers/{ledger}, request kwargs (a function of the context and the
# ledger), the roles that may do it. The service admin ("*" admin) may do everything.
def _revoke_target(ctx, ledger):
    """A throwaway key of `ledger` to revoke (a made-up id where the ledger does not exist)."""
    if ledger in ctx.runtime.service.ledgers():
        return ctx.runtime.access.create_key(ledger, "verifier")[0]
    return "0123456789ab"


ROUTES = [
    ("create_key", "POST", "/api-keys", lambda c, l: {"json": {"role": "verifier"}}, {"admin"}),
    ("list_keys", "GET", "/api-keys", lambda c, l: {}, {"admin"}),
    ("revoke_key", "DELETE", "/api-keys/{key_id}", lambda c, l: {}, {"admin"}),
    ("ip_rules", "PUT", "/ip-rules", lambda c, l: {"json": {"allow": [], "deny": []}}, {"admin"}),
    ("rotate_signing_key", "POST", "/signing-key/rotate", lambda c, l: {}, {"admin"}),
    ("anchor_now", "POST", "/anchors/now", lambda c, l: {}, {"admin"}),
    ("submit", "POST", "/records", lambda c, l: {"json": rec(next(_unique))}, {"producer"}),
    ("batch", "POST", "/records/batch", lambda c, l: {"json": [rec(next(_unique))]}, {"producer"}),
    ("batch_ndjson", "POST", "/records/batch", lambda c, l: {
        "content": json.dumps(rec(next(_unique))).encode(), "headers": {"content-type": "application/x-ndjson"}},
     {"producer"}),
    ("file", "POST", f"/files?business_type=contract&occurred_at={OCCURRED}",
     lambda c, l: {"content": f"file {next(_unique)}".encode()}, {"producer"}),
    ("get_record", "GET", "/records/0", lambda c, l: {}, {"auditor"}),
    ("find_by_evidence_id", "GET", "/records?evidence_id=ev-1", lambda c, l: {}, {"auditor", "verifier"}),
    ("find_by_content_hash", "GET", f"/records?content_hash={chash(1)}", lambda c, l: {}, {"auditor", "verifier"}),
    ("list_by_business_id", "GET", "/records?business_id=flow-1", lambda c, l: {}, {"auditor"}),
    ("proof_by_evidence_id", "GET", "/proof?evidence_id=ev-1", lambda c, l: {}, {"auditor", "verifier"}),
    ("proof_by_content_hash", "GET", f"/proof?content_hash={chash(2)}", lambda c, l: {}, {"auditor", "verifier"}),
    ("proof_by_seq", "GET", "/proof?seq=0", lambda c, l: {}, {"auditor"}),
    ("certificate_by_evidence_id", "GET", "/certificate?evidence_id=ev-2", lambda c, l: {}, {"auditor", "verifier"}),
    ("certificate_by_seq", "GET", "/certificate?seq=1", lambda c, l: {}, {"auditor"}),
    ("consistency", "GET", "/consistency?first={size}&second={size}", lambda c, l: {}, {"auditor", "verifier"}),
    ("list_checkpoints", "GET", "/checkpoints", lambda c, l: {}, {"auditor"}),
    ("latest_checkpoint", "GET", "/checkpoints/latest", lambda c, l: {}, {"auditor", "verifier"}),
    ("checkpoint_at_size", "GET", "/checkpoints/{size}", lambda c, l: {}, {"auditor", "verifier"}),
    ("list_anchors", "GET", "/anchors", lambda c, l: {}, {"auditor"}),
    ("get_file", "GET", f"/files/{hashlib.new('sm3', STORED_FILE).hexdigest()}", lambda c, l: {}, {"auditor"}),
]
ROUTE_IDS = [r[0] for r in ROUTES]


def call(ctx, route, ledger, key, client=None, key_id=None):
    name, method, path, kwargs_of, _ = route
    kwargs = kwargs_of(ctx, ledger)
    headers = {**kwargs.pop("headers", {}), **auth(key)}
    fields = {"size": ctx.size}
    if "{key_id}" in path:
        fields["key_id"] = key_id or _revoke_target(ctx, ledger)
    url = f"/v1/ledgers/{ledger}" + path.format(**fields)
    return (client or ctx.client).request(method, url, headers=headers, **kwargs)


def state_of(ctx, ledger) -> dict:
    led = ctx.runtime.service.ledger(ledger)
    return {"records": led.record_count, "keys": sorted(k["key_id"] for k in ctx.runtime.access.keys(ledger)),
            "ip_rules": ctx.runtime.access.ip_rules(ledger), "signing_key": led.current_key_id,
            "checkpoints": len(led.projections.checkpoints()),
            "anchors": len(led.projections.anchors())}


# --- roles within a ledger ---------------------------------------------------------------------


@pytest.mark.parametrize("role", [*ROLES, "service-admin"])
@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_role_matrix(ctx, route, role):
    name, method, path, _, allowed = route
    key = ctx.admin if role == "service-admin" else ctx.keys[role]
    r = call(ctx, route, A, key)
    if role == "service-admin" or role in allowed:
        assert 200 <= r.status_code < 300, (name, role, r.status_code, r.text[:300])
        if r.headers["content-type"].startswith("application/json"):
            assert "error" not in r.json()
    else:
        assert_error(r, 403, "forbidden")


# --- another ledger's keys learn nothing ----------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_cross_ledger_probe_is_404_like_a_missing_ledger(ctx, route, role):
    key = ctx.keys[role]
    target = _revoke_target(ctx, B)  # a real key of B, for the revoke route
    before = state_of(ctx, B)
    real = call(ctx, route, B, key, key_id=target)
    ghost = call(ctx, route, GHOST, key, key_id=target)
    error = assert_error(real, 404, "unknown_ledger")
    assert_error(ghost, 404, "unknown_ledger")
    assert json.loads(real.text.replace(B, "<ledger>")) == json.loads(ghost.text.replace(GHOST, "<ledger>"))
    assert error["field"] is None and "exist" not in error["message"].replace("no ledger", "")
    assert state_of(ctx, B) == before


def test_ledger_list_shows_only_the_keys_ledger(ctx):
    for role in ROLES:
        assert ctx.client.get("/v1/ledgers", headers=auth(ctx.keys[role])).json() == {"ledgers": [A]}
    assert set(ctx.client.get("/v1/ledgers", headers=auth(ctx.admin)).json()["ledgers"]) >= {A, B}


def test_revoking_another_ledgers_key_through_own_ledger_is_404(ctx):
    b_key_id, b_key = ctx.runtime.access.create_key(B, "auditor")
    r = ctx.client.delete(f"/v1/ledgers/{A}/api-keys/{b_key_id}", headers=auth(ctx.keys["admin"]))
    assert_error(r, 404, "not_found", "key_id")
    assert ctx.client.get(f"/v1/ledgers/{B}/checkpoints/latest", headers=auth(b_key)).status_code == 200


# --- authentication -------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_no_bad_or_revoked_key_is_401(ctx, route):
    revoked_id, revoked = ctx.runtime.access.create_key(A, "auditor")
    assert ctx.runtime.access.revoke(revoked_id)
    real_id = ctx.keys["auditor"].split("_", 2)[1]
    attempts = {
        "no key": {},
        "empty bearer": {"Authorization": "Bearer "},
        "not evk": {"Authorization": "Bearer sk_live_123"},
        "unknown id": {"Authorization": "Bearer evk_000000000000_" + "x" * 43},
        "wrong secret": {"Authorization": f"Bearer evk_{real_id}_" + "x" * 43},
        "revoked": {"Authorization": f"Bearer {revoked}"},
        "basic": {"Authorization": "Basic " + ctx.keys["auditor"]},
        "bad x-api-key": {"X-API-Key": "evk_nope_nope"},
    }
    before = state_of(ctx, A)
    for what, headers in attempts.items():
        for ledger in (A, GHOST):
            name, method, path, kwargs_of, _ = route
            kwargs = kwargs_of(ctx, ledger)
            url = f"/v1/ledgers/{ledger}" + path.format(size=ctx.size, key_id="0123456789ab")
            r = ctx.client.request(method, url, headers={**kwargs.pop("headers", {}), **headers}, **kwargs)
            assert r.status_code == 401, (what, ledger, r.status_code, r.text[:300])
            assert_error(r, 401, "unauthorized")
    assert state_of(ctx, A) == before


def test_x_api_key_header_is_accepted(ctx):
    r = ctx.client.get(f"/v1/ledgers/{A}/checkpoints/latest", headers={"X-API-Key": ctx.keys["verifier"]})
    assert r.status_code == 200 and r.json()["size"] >= ctx.size


def test_keys_are_stored_hashed(ctx):
    path = ctx.data / "access.json"
    text = path.read_text()
    stored = json.loads(text)["keys"]
    for key in ctx.made:
        key_id, secret = key.split("_", 2)[1:]
        assert key not in text and secret not in text
        assert stored[key_id]["hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(ctx.data / "admin.key").st_mode) == 0o600
    listing = ctx.client.get(f"/v1/ledgers/{A}/api-keys", headers=auth(ctx.admin)).text
    assert not any(key.split("_", 2)[2] in listing for key in ctx.made)
    assert not any(stored[k]["hash"] in listing for k in stored)


# --- IP rules ---------------------------------------------------------------------------------


def test_ip_rules_in_process(ctx):
    probe = TestClient(ctx.app, client=(PROBE_IP, 50000))
    admin = TestClient(ctx.app, client=(ADMIN_IP, 50000))
    neighbour = TestClient(ctx.app, client=("203.0.113.8", 50000))
    url = f"/v1/ledgers/{A}/checkpoints/latest"
    key = auth(ctx.keys["auditor"])

    def rules(allow=(), deny=()):
        r = admin.put(f"/v1/ledgers/{A}/ip-rules", json={"allow": list(allow), "deny": list(deny)}, headers=auth(ctx.admin))
        assert r.status_code == 200, r.text
        return r.json()

    def hidden(client):
        r = client.get(url, headers=key)
        assert_error(r, 404, "unknown_ledger")
        ghost = client.get(url.replace(A, GHOST), headers=key)
        assert json.loads(r.text.replace(A, "<l>")) == json.loads(ghost.text.replace(GHOST, "<l>"))

    try:
        assert probe.get(url, headers=key).status_code == 200
        assert rules(deny=[PROBE_IP]) == {"allow": [], "deny": [f"{PROBE_IP}/32"]}
        hidden(probe)
        for role in ("producer", "verifier", "admin"):  # every role, every kind of route
            assert_error(probe.get(f"/v1/ledgers/{A}/api-keys", headers=auth(ctx.keys[role])), 404, "unknown_ledger")
        assert_error(probe.post(f"/v1/ledgers/{A}/records", json=rec(9), headers=auth(ctx.keys["producer"])),
                     404, "unknown_ledger")
        assert neighbour.get(url, headers=key).status_code == 200
        assert probe.get(f"/v1/ledgers/{B}/checkpoints/latest", headers=auth(ctx.admin)).status_code == 200

        rules(allow=["10.0.0.0/8", ADMIN_IP])  # an allow list without the probe's address
        hidden(probe)
        hidden(neighbour)
        rules(allow=["203.0.113.0/24", ADMIN_IP])
        assert probe.get(url, headers=key).status_code == 200
        rules(allow=["203.0.113.0/24", ADMIN_IP], deny=[PROBE_IP])  # deny wins over allow
        hidden(probe)
        assert neighbour.get(url, headers=key).status_code == 200
        # The service admin is held by the rules too.
        assert_error(probe.get(url, headers=auth(ctx.admin)), 404, "unknown_ledger")
        # TestClient's default peer is "testclient", not an address: shut out by an allow list.
        assert ctx.client.get(url, headers=key).status_code == 404

        assert_error(admin.put(f"/v1/ledgers/{A}/ip-rules", json={"allow": ["not-an-ip"]}, headers=auth(ctx.admin)),
                     422, "invalid_request", "allow")
        assert rules() == {"allow": [], "deny": []}  # restore
        assert probe.get(url, headers=key).status_code == 200
        assert ctx.client.get(url, headers=key).status_code == 200
    finally:
        ctx.runtime.access.set_ip_rules(A, [], [])
        for c in (probe, admin, neighbour):
            c.close()


def test_ip_rules_bad_deny_entry_names_field_deny(ctx):
    r = ctx.client.put(f"/v1/ledgers/{A}/ip-rules", json={"allow": [], "deny": ["not-an-ip"]}, headers=auth(ctx.admin))
    assert_error(r, 422, "invalid_request", "deny")


def test_ip_rules_over_real_http(ctx):
    key = auth(ctx.keys["auditor"])
    url = f"/v1/ledgers/{A}/checkpoints/latest"
    with uvicorn_server(ctx.app) as base, httpx.Client(base_url=base, timeout=10) as http:
        try:
            assert http.get(url, headers=key).status_code == 200
            ctx.runtime.access.set_ip_rules(A, [], ["127.0.0.1"])
            r = http.get(url, headers=key)
            assert_error(r, 404, "unknown_ledger")
            assert json.loads(r.text.replace(A, "<l>")) == json.loads(
                http.get(url.replace(A, GHOST), headers=key).text.replace(GHOST, "<l>"))
            ctx.runtime.access.set_ip_rules(A, ["10.0.0.0/8"], [])
            assert_error(http.get(url, headers=key), 404, "unknown_ledger")
            ctx.runtime.access.set_ip_rules(A, ["127.0.0.0/8"], [])
            assert http.get(url, headers=key).status_code == 200
            ctx.runtime.access.set_ip_rules(A, [], [])
            assert http.get(url, headers=key).status_code == 200
            assert_error(http.get(f"/v1/ledgers/{B}/checkpoints/latest", headers=key), 404, "unknown_ledger")
        finally:
            ctx.runtime.access.set_ip_rules(A, [], [])
