"""Property-based hostile requests against a real `evledger serve`, to every route of its own
OpenAPI schema: bodies of every shape (nesting, encodings, numbers, sizes, chunked or not),
right, wrong and missing content types, with and without keys. Every answer must be a success
or a documented 4xx in the one error shape (the codes are read from docs/api.md's table), the
service must keep answering /healthz, and a refused request must record nothing.

The counts (requests, routes, 5xx seen, deaths) are printed at the end and, with
EVLEDGER_ADVERSARIAL_REPORT=FILE, written there as JSON."""
from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.api_helpers import auth, evledger_serve, wait_until
from tests.sample_records import rec

REPO = Path(__file__).resolve().parents[1]
OCCURRED = "2026-11-26T01:00:00Z"


def documented_errors() -> set[tuple[int, str]]:
    """(status, code) pairs from the error table of docs/api.md."""
    text = (REPO / "docs" / "api.md").read_text()
    table = text[text.index("| status | codes |"):]
    out = set()
    for line in table.splitlines()[2:]:
        if not line.startswith("| "):
            break
        status, codes = line.strip("|").split("|", 1)
        out |= {(int(status), code) for code in re.findall(r"`([a-z_]+)`", codes)}
    return out


DOCUMENTED = documented_errors()
TALLY: Counter = Counter()
ROUTES_HIT: set[str] = set()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("adversarial") / "data"
    with evledger_serve(data, "--body-timeout", "5") as (proc, base, admin):
        with httpx.Client(base_url=base, timeout=60) as http:
            keys = {"service": admin, "bogus": "evk_0000_not-a-key"}
            for ledger in ("acme", "other"):
                assert http.post("/v1/ledgers", json={"ledger": ledger}, headers=auth(admin)).status_code == 201
            for role in ("producer", "auditor", "verifier", "admin"):
                keys[role] = http.post("/v1/ledgers/acme/api-keys", json={"role": role},
                                       headers=auth(admin)).json()["key"]
            wait_until(lambda: http.get("/readyz").status_code == 200, timeout=120, what="the service ready")
            schema = http.get("/openapi.json").json()
            yield proc, http, keys, schema
        assert proc.poll() is None, f"evledger serve died ({proc.returncode})"
    report = {"requests": TALLY["requests"], "routes": len(ROUTES_HIT), "server_errors_5xx": TALLY["5xx"],
              "service_deaths": TALLY["deaths"], "by_status": {k: v for k, v in TALLY.items() if k.isdigit()}}
    print(f"\nadversarial suite: {json.dumps(report, sort_keys=True)}")
    if os.environ.get("EVLEDGER_ADVERSARIAL_REPORT"):
        Path(os.environ["EVLEDGER_ADVERSARIAL_REPORT"]).write_text(json.dumps(report, indent=2, sort_keys=True))


def operations() -> list[tuple[str, str]]:
    """Every (method, path) of the schema the app serves, read from the app itself so that a
    route added later is attacked too."""
    from proof_api.app import create_app

    class NoRuntime:  # create_app reads only .metrics at build time
        metrics = __import__("proof_api.runtime", fromlist=["Metrics"]).Metrics()

    schema = create_app(NoRuntime()).openapi()
    return sorted((method.upper(), path) for path, item in schema["paths"].items() for method in item)


# --- what an attacker sends ------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=16)

NUMBERS = [b"9" * 5000, b"1e400", b"-0", b"NaN", b"Infinity", b"-Infinity", b"1.0", b"18446744073709551616",
           b"-1", b"0x10", b"01", b"1e3"]
RAW_STRINGS = [b'"\xff\xfe"', b'"\xc0\xaf"', b'"\xed\xa0\x80"', b'"\\ud800"', b'"\\udc00x"', b'"\\u0000"',
               b'"\x00"', b'"a\\"', b'"\\x41"']
CONTENT_TYPES = [None, "application/json", "application/json; charset=utf-8", "text/plain", "application/x-ndjson",
                 "application/octet-stream", "multipart/form-data; boundary=x", "application/json; charset=utf-16",
                 "garbage///", ""]


def _corpus() -> dict[str, bytes]:
    """Named bodies that broke, or would break, a JSON service: every one is sent to every route."""
    out = {f"deep {d} {name}": wrap(o * d + b"1" + c * d)
           for d in (33, 1025, 32_000, 100_000) for o, c in ((b"[", b"]"), (b'{"a":', b"}"))
           for name, wrap in (("array", lambda x: x), ("in bundle", lambda x: b'{"bundle":' + x + b"}"))}
    out |= {f"unbalanced {d}": b"[" * d for d in (1025, 100_000)}
    out |= {f"number {n[:12]!r}": b'{"ledger":' + n + b',"bundle":{"leaf":{"index":' + n + b'}},"role":' + n + b"}"
            for n in NUMBERS}
    out |= {f"string {s[:12]!r}": b'{"ledger":' + s + b',"bundle":{' + s + b":1}," + s + b':1,"role":' + s + b"}"
            for s in RAW_STRINGS}
    out |= {f"surrogate key {where}": body for where, body in (
        ("top", b'{"bundle":{"\\ud800":1}}'), ("record", b'{"bundle":{"record":{"\\ud800":1}}}'),
        ("record body", b'{"content_hash":"' + b"0" * 64 + b'","business_type":"t","occurred_at":"' + OCCURRED.encode()
         + b'","\\ud800":1}'))}
    out |= {f"oversize {size}": b'{"bundle":"' + b"a" * (size - 12) + b'"}' for size in (64 << 10, 256 << 10, 1 << 20)}
    out["oversize 16 MiB"] = b"[" + b" " * (16 << 20) + b"]"
    out["empty"] = b""
    out["utf-16"] = json.dumps({"ledger": "utf16", "role": "producer"}).encode("utf-16")
    out["bom"] = b"\xef\xbb\xbf" + json.dumps({"ledger": "bom"}).encode()
    out["duplicate keys"] = b'{"ledger":"dup-a","ledger":"dup-b","role":"producer","role":"admin","bundle":{},"bundle":[]}'
    out["trailing garbage"] = b'{"ledger":"trail"} x'
    out["nul"] = b"\x00" * 100
    return out


CORPUS = _corpus()


@st.composite
def bodies(draw) -> bytes:
    kind = draw(st.sampled_from(["corpus", "corpus", "json", "record", "bytes", "ndjson"]))
    if kind == "corpus":
        return CORPUS[draw(st.sampled_from(sorted(CORPUS)))]
    if kind == "json":
        return json.dumps(draw(JSON_VALUES)).encode()
    if kind == "record":
        record = rec(draw(st.integers(0, 10**6)), evidence_id=f"adv-{draw(st.integers(0, 50))}")
        for field in draw(st.lists(st.sampled_from(sorted(record) + ["sealed", "attributes", "x"]), max_size=2)):
            record[field] = draw(JSON_VALUES)
        return json.dumps(draw(st.sampled_from([record, [record], {"bundle": record}, {"ledger": record}])),
                          ensure_ascii=draw(st.booleans())).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=3000))
    return b"\n".join(json.dumps(draw(JSON_VALUES)).encode() for _ in range(draw(st.integers(0, 4))))


PATH_VALUES = {
    "ledger_id": ["acme", "other", "ghost", "A", "x" * 70, "..", "acme%00", "%ff"],
    "seq": ["0", "1", "-1", str(2**63), str(2**64), "abc", "1e3"],
    "size": ["1", "0", str(2**63), "x"],
    "key_id": ["k", "evk_0000", "%00", "a" * 300],
    "content_hash": ["0" * 64, "f" * 63, "g" * 64, "0" * 65],
}
QUERY_VALUES = ["", "0", "1", "-1", str(2**64), "x" * 300, "acme", "0" * 64, OCCURRED, "contract", "true", "%ff",
                "\u4e2d", "nan"]


def fill(path: str, draw) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: draw(st.sampled_from(PATH_VALUES.get(m.group(1), ["x"]))), path)


def records_total(http: httpx.Client) -> int:
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in http.get("/metrics").text.splitlines()
               if line.startswith("evledger_records_total{"))


def expected_recorded(method: str, path: str, response: httpx.Response) -> int:
    """How many records a successful answer says it recorded."""
    if method != "POST" or response.status_code >= 300:
        return 0
    if path.endswith("/records/batch"):
        return response.json()["recorded"]
    if path.endswith(("/records", "/files")):
        return 0 if response.json().get("duplicate") else 1
    return 0


# --- the property ------------------------------------------------------------------------------------


def attack(server, method: str, path: str, url: str, body: bytes, headers: dict, query: dict | None = None,
           chunk: int | None = None) -> httpx.Response:
    """Send one request and hold the answer to the rules: below 500, a documented error shape,
    the service alive, and exactly what the answer reports recorded."""
    proc, http, _, _ = server
    content = body if chunk is None else (body[i:i + chunk] for i in range(0, len(body), chunk))
    before = records_total(http)
    try:
        response = http.request(method, url, params=query, content=content, headers=headers)
    except httpx.TransportError as exc:
        TALLY["deaths" if proc.poll() is not None else "transport_errors"] += 1
        raise AssertionError(f"{method} {url}: no answer ({exc!r}); serve {'died' if proc.poll() is not None else 'lives'}")
    TALLY["requests"] += 1
    TALLY[str(response.status_code)] += 1
    ROUTES_HIT.add(f"{method} {path}")
    if response.status_code >= 500:
        TALLY["5xx"] += 1
    assert response.status_code < 500, (method, url, response.status_code, response.text[:300])
    if response.status_code >= 400 and method == "HEAD":  # the answer to HEAD carries headers only (RFC 9110)
        assert response.headers["content-type"].startswith("application/json"), response.headers
        assert response.content == b"" and response.status_code in {status for status, _ in DOCUMENTED}
    elif response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/json"), response.headers
        error = response.json()["error"]
        assert (response.status_code, error["code"]) in DOCUMENTED, (method, url, response.status_code, error)
        assert isinstance(error["message"], str) and error["message"]
    if proc.poll() is not None:
        TALLY["deaths"] += 1
    assert proc.poll() is None, f"evledger serve died after {method} {url}"
    assert http.get("/healthz").status_code == 200
    assert records_total(http) - before == expected_recorded(method, path, response), (method, url, response.text[:300])
    return response


@pytest.mark.parametrize("method, path", operations())
def test_every_nasty_body_to_every_route(server, method, path):
    """The corpus, whole, with the service admin's key (which every route accepts, so the body
    is read) and without a key; chunked and with a length in turn."""
    keys = server[2]
    url = path.replace("{ledger_id}", "acme").replace("{seq}", "0").replace("{size}", "1") \
        .replace("{key_id}", "k").replace("{content_hash}", "0" * 64)
    query = {"business_type": "contract", "occurred_at": OCCURRED} if path.endswith("/files") else None
    for i, (name, body) in enumerate(sorted(CORPUS.items())):
        for key in ("service", None):
            headers = {"content-type": "application/json"}
            if key:
                headers["authorization"] = f"Bearer {keys[key]}"
            attack(server, method, path, url, body, headers, query, chunk=None if i % 2 else 65536)


@pytest.mark.parametrize("method, path", operations())
@settings(max_examples=int(os.environ.get("EVLEDGER_ADVERSARIAL_EXAMPLES", "24")))
@given(data=st.data())
def test_any_request_gets_success_or_a_documented_4xx_and_the_service_lives(server, method, path, data):
    keys = server[2]
    url = fill(path, data.draw)
    query = {}
    for name in data.draw(st.lists(st.sampled_from(["seq", "evidence_id", "content_hash", "business_id", "checkpoint",
                                                    "require_anchor", "first", "second", "after", "limit",
                                                    "business_type", "occurred_at"]), max_size=4)):
        query[name] = data.draw(st.sampled_from(QUERY_VALUES))
    body = data.draw(bodies()) if method in ("POST", "PUT", "DELETE") or data.draw(st.booleans()) else b""
    headers = {}
    ctype = data.draw(st.sampled_from(["application/json"] * len(CONTENT_TYPES) + CONTENT_TYPES))
    if ctype is not None:
        headers["content-type"] = ctype
    # Half with the key every route takes, so that most bodies are read rather than refused unread.
    key = data.draw(st.sampled_from(["service"] * 6 + [None, "bogus", "producer", "auditor", "verifier", "admin"]))
    if key is not None:
        headers["authorization"] = f"Bearer {keys[key]}"
    chunk = data.draw(st.sampled_from([None, 1, 7, 4096, 1 << 20])) if body else None
    attack(server, method, path, url, body, headers, query, chunk=chunk if chunk is None else
           max(chunk, len(body) // 64 or 1))
