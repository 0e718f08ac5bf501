"""The `evledger ledger …` and `evledger ingest` commands, called through proof_api.cli.main."""
import hashlib
import io
import sys

import orjson
import pytest

from ingest import events as ev
from ingest.ledger import LedgerService
from ingest.log_rocksdb import RocksDBLog
from ingest.records import RECORD_FIELD
from merkle.checkpoint import verify_checkpoint
from proof_api.cli import main


from tests.sample_records import chash, rec


def line(obj) -> bytes:
    return orjson.dumps(obj) + b"\n"


@pytest.fixture
def cli(tmp_path, capsys):
    """main() with the data directory and fast batch settings; returns (exit code, stdout, stderr)."""
    def run(*argv):
        code = main(["--data-dir", str(tmp_path / "data"), "--batch-max-items", "1000", "--batch-max-delay", "0.05",
                     *argv])
        out, err = capsys.readouterr()
        return code, out, err
    return run


def read_log(tmp_path, ledger="acme"):
    log = RocksDBLog(tmp_path / "data" / "log")
    try:
        return list(log.read(ledger))
    finally:
        log.close()


# ------------------------------------------------------------------------------ ledger …

def test_ledger_create(cli, tmp_path):
    code, out, err = cli("ledger", "create", "acme")
    assert code == 0, err
    assert out.startswith("created ledger acme (sm3, checkpoint origin evledger/acme, signing key ")
    assert "verifier key: evledger/acme+" in out
    created = read_log(tmp_path)
    assert [e.type for e in created] == [ev.LEDGER_CREATED]
    payload = orjson.loads(created[0].data)
    assert payload["ledger"] == "acme" and payload["alg"] == "sm3"
    assert f"signing key {payload['key_id']})" in out
    assert f"verifier key: {payload['verifier_key']}" in out


def test_duplicate_create_fails(cli):
    assert cli("ledger", "create", "acme")[0] == 0
    code, out, err = cli("ledger", "create", "acme")
    assert code == 1
    assert "already exists" in err and "acme" in err
    assert out == ""


def test_bad_ledger_id_fails(cli):
    code, out, err = cli("ledger", "create", "Bad_Ledger")
    assert code == 1
    assert "must match" in err
    assert cli("ledger", "list")[1] == ""


def test_ledger_list(cli):
    assert cli("ledger", "list") == (0, "", "")
    assert cli("ledger", "create", "zeta", "--alg", "sha256")[0] == 0
    assert cli("ledger", "create", "acme")[0] == 0
    code, out, _ = cli("ledger", "list")
    assert code == 0
    assert out.splitlines() == ["acme\tsm3\trecords 0\tcheckpointed 0", "zeta\tsha256\trecords 0\tcheckpointed 0"]


def test_ledger_rotate_key(cli, tmp_path):
    cli("ledger", "create", "acme")
    code, out, err = cli("ledger", "rotate-key", "acme")
    assert code == 0, err
    assert out.startswith("ledger acme: new signing key ")
    kid = out.split("new signing key ", 1)[1].split(";", 1)[0]
    rotated = [orjson.loads(e.data) for e in read_log(tmp_path) if e.type == ev.SIGNING_KEY_ROTATED]
    assert len(rotated) == 1 and rotated[0]["key_id"] == kid
    assert f"verifier key: {rotated[0]['verifier_key']}" in out
    # checkpoints sealed from now on carry the new key, and it verifies them
    records = tmp_path / "records.ndjson"
    records.write_bytes(line(rec(0)) + line(rec(1)))
    code, _, err = cli("ingest", "acme", str(records), "--wait")
    assert code == 0, err
    service = LedgerService(tmp_path / "data", start=False)
    try:
        L = service.ledger("acme")
        cp = L.projections.latest_checkpoint()
        assert cp["size"] == 2 and cp["key_id"] == kid
        verify_checkpoint(cp["note"], rotated[0]["verifier_key"])
    finally:
        service.close()


def test_rotate_key_records_the_previous_key_id(cli, tmp_path):
    cli("ledger", "create", "acme")
    assert cli("ledger", "rotate-key", "acme")[0] == 0
    events = read_log(tmp_path)
    created = orjson.loads(events[0].data)
    rotated = orjson.loads(next(e for e in events if e.type == ev.SIGNING_KEY_ROTATED).data)
    assert rotated["previous_key_id"] == created["key_id"]


def test_rotate_key_of_an_unknown_ledger_fails(cli):
    code, out, err = cli("ledger", "rotate-key", "nope")
    assert code == 1
    assert "no ledger 'nope'" in err


# ------------------------------------------------------------------------------ ingest

def test_ingest_prints_one_result_per_line_in_order(cli, tmp_path):
    cli("ledger", "create", "acme")
    data = tmp_path / "records.ndjson"
    data.write_bytes(b"".join([
        line(rec(0, evidence_id="ev-0")),
        b"{this is not json\n",
        line(rec(1, business_id="flow-1")),
        line({"business_type": "contract.signed", "occurred_at": "2024-05-01T09:30:00Z"}),  # no content_hash
        b"\n",  # blank lines are skipped
        line(rec(2, colour="red")),
        line(rec(0, evidence_id="ev-0")),  # a repeat: the original receipt
        line([1, 2, 3]),
        line(rec(3)),
    ]))
    code, out, err = cli("ingest", "acme", str(data))
    assert code == 1  # some lines failed
    results = [orjson.loads(x) for x in out.splitlines()]
    assert len(results) == 8
    ok = {0: 0, 2: 1, 7: 2}  # output line -> seq
    for i, result in enumerate(results):
        if i in ok:
            assert result["seq"] == ok[i] and result["ledger"] == "acme" and result["duplicate"] is False
            assert len(result["leaf_hash"]) == 64
        elif i == 5:
            assert result["duplicate"] is True and result["seq"] == 0
            assert result["leaf_hash"] == results[0]["leaf_hash"]
            assert result["business_id"] == results[0]["business_id"]
        else:
            assert set(result) == {"error"}
            assert set(result["error"]) == {"code", "field", "rule", "message"}
    assert (results[1]["error"]["field"], results[1]["error"]["rule"]) == (RECORD_FIELD, "json")
    assert "line 2" in results[1]["error"]["message"]
    assert (results[3]["error"]["field"], results[3]["error"]["rule"]) == ("content_hash", "required")
    assert (results[4]["error"]["field"], results[4]["error"]["rule"]) == ("colour", "unknown_field")
    assert (results[6]["error"]["field"], results[6]["error"]["rule"]) == ("record", "type")
    assert results[2]["business_id"] == "flow-1"
    assert results[0]["evidence_id"] == "ev-0"

    recorded = [e for e in read_log(tmp_path) if e.type == ev.EVIDENCE_RECORDED]
    assert [orjson.loads(e.data)["record"]["content_hash"] for e in recorded] == [chash(0), chash(1), chash(3)]
    for e, result in zip(recorded, [results[0], results[2], results[7]]):
        assert hashlib.new("sm3", b"\x00" + e.data).hexdigest() == result["leaf_hash"]
    assert cli("ledger", "list")[1].startswith("acme\tsm3\trecords 3\t")


def test_ingest_all_good_exits_0_and_waits_for_the_checkpoint(cli, tmp_path):
    cli("ledger", "create", "acme")
    data = tmp_path / "records.ndjson"
    data.write_bytes(b"".join(line(rec(i)) for i in range(4)))
    code, out, err = cli("ingest", "acme", str(data), "--wait")
    assert code == 0, err
    assert [orjson.loads(x)["seq"] for x in out.splitlines()] == [0, 1, 2, 3]
    assert "checkpoint at size 4, root " in err
    assert cli("ledger", "list")[1] == "acme\tsm3\trecords 4\tcheckpointed 4\n"
    # a second file continues the sequence
    data.write_bytes(line(rec(9)))
    code, out, _ = cli("ingest", "acme", str(data))
    assert code == 0 and orjson.loads(out)["seq"] == 4


def test_ingest_from_stdin(cli, monkeypatch):
    cli("ledger", "create", "acme")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(line(rec(0)) + line(rec(1)))))
    code, out, err = cli("ingest", "acme", "-")
    assert code == 0, err
    assert [orjson.loads(x)["seq"] for x in out.splitlines()] == [0, 1]


def test_ingest_into_an_unknown_ledger_fails(cli, tmp_path):
    data = tmp_path / "records.ndjson"
    data.write_bytes(line(rec(0)))
    code, out, err = cli("ingest", "nope", str(data))
    assert code == 1
    assert "no ledger 'nope'" in err
    assert out == ""


def test_ingest_of_a_missing_file_fails(cli, tmp_path):
    cli("ledger", "create", "acme")
    code, out, err = cli("ingest", "acme", str(tmp_path / "absent.ndjson"))
    assert code == 1
    assert "absent.ndjson" in err


def test_ingest_batch_flag_keeps_order_across_submissions(cli, tmp_path):
    cli("ledger", "create", "acme")
    data = tmp_path / "records.ndjson"
    data.write_bytes(b"".join([line(rec(0)), b"nope\n", line(rec(1)), line(rec(2, colour="red")), line(rec(3)),
                               line(rec(4))]))
    code, out, err = cli("ingest", "acme", str(data), "--batch", "2")
    assert code == 1, err
    results = [orjson.loads(x) for x in out.splitlines()]
    assert [r.get("seq", r.get("error", {}).get("rule")) for r in results] == [0, "json", 1, "unknown_field", 2, 3]
