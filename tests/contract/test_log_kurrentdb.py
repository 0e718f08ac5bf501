"""The log backend contract against KurrentDB/EventStoreDB, when EVLEDGER_KURRENTDB_URI names a
server (for example kurrentdb://127.0.0.1:2113?tls=false); and, always, how the backend fails
when no server answers."""
import os
import time
import uuid

import pytest

from ingest.log import LogError, NewEvent
from ingest.log_kurrentdb import KurrentDBLog

from .log_contract import LogBackendContract

URI = os.environ.get("EVLEDGER_KURRENTDB_URI")
UNREACHABLE = "kurrentdb://127.0.0.1:1?tls=false"  # nothing listens on port 1


@pytest.mark.skipif(not URI, reason="EVLEDGER_KURRENTDB_URI is not set: no KurrentDB/EventStoreDB server "
                                    "to test against (none can be installed on this machine)")
class TestKurrentDBLog(LogBackendContract):
    # The server refuses an append over MaxAppendSize (default 1,048,576 bytes, counting the
    # event's type, metadata and framing as well as its data), so the largest event is smaller.
    large_event_bytes = 1_000_000

    def create_log(self, tmp_path):
        # A prefix of its own per test, so tests never see each other's streams on a shared server.
        self.prefix = f"evledger-test-{uuid.uuid4().hex}-"
        return KurrentDBLog(URI, stream_prefix=self.prefix)

    def reopen_log(self):
        return KurrentDBLog(URI, stream_prefix=self.prefix)


def test_unreachable_server_raises_log_error_quickly():
    log = KurrentDBLog(UNREACHABLE)
    try:
        for call in [lambda: log.version("ledger-a"),
                     lambda: list(log.read("ledger-a")),
                     lambda: log.append("ledger-a", [NewEvent("EvidenceRecorded", b"d")], 0),
                     lambda: log.streams(),
                     lambda: log.wait_for_append("ledger-a", 0, 1.0),
                     lambda: next(log.follow("ledger-a"))]:
            started = time.monotonic()
            with pytest.raises(LogError, match="KurrentDB at 'kurrentdb://127.0.0.1:1"):
                call()
            assert time.monotonic() - started < 5
    finally:
        log.close()


def test_bad_uri_and_closed_log_raise_log_error():
    with pytest.raises(LogError, match="cannot connect to KurrentDB"):
        KurrentDBLog("http://127.0.0.1:2113")
    log = KurrentDBLog(UNREACHABLE)
    # Invalid events are refused before anything is sent.
    with pytest.raises(LogError, match="must be bytes"):
        log.append("ledger-a", [NewEvent("EvidenceRecorded", "text")], 0)  # type: ignore[arg-type]
    log.close()
    log.close()  # closing twice is harmless
    with pytest.raises(LogError, match="closed"):
        log.version("ledger-a")
