"""The log backend contract (ingest.log.LogBackend): one suite that every backend must pass.

A backend's test module subclasses `LogBackendContract` in a class named Test… and says only
how to build its log: `create_log(tmp_path)`, and `reopen_log()` for a new instance over the
same storage. This class is not collected itself, because its name does not start with Test.
"""
from __future__ import annotations

import random
import threading
import time

import pytest

from ingest.log import LogError, NewEvent, RecordedEvent, WrongExpectedVersion

WAIT = 10.0  # seconds a test waits for something that should happen at once


def events(n: int, tag: str = "e") -> list[NewEvent]:
    return [NewEvent("EvidenceRecorded", f"{tag}{i}".encode(), f"meta-{tag}{i}".encode()) for i in range(n)]


def payloads(recorded: list[RecordedEvent]) -> list[bytes]:
    return [ev.data for ev in recorded]


def run_in_thread(target, *args) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


class LogBackendContract:
    # The largest single event the backend must store. KurrentDB's default MaxAppendSize
    # (1,048,576 bytes for a whole append) leaves less room for data than RocksDB has.
    large_event_bytes = 1 << 20

    def create_log(self, tmp_path):
        raise NotImplementedError

    def reopen_log(self):
        """A new log instance over the storage that `create_log` opened."""
        raise NotImplementedError

    @pytest.fixture
    def log(self, tmp_path):
        self._open_logs = [self.create_log(tmp_path)]
        yield self._open_logs[0]
        for log in self._open_logs:
            log.close()

    # -- appending and reading -------------------------------------------------------------

    def test_append_to_new_stream(self, log):
        # An absent stream has version 0 and reads as empty.
        assert log.version("ledger-a") == 0
        assert list(log.read("ledger-a")) == []

        # Appending with expected version 0 returns the new version, the number of events.
        assert log.append("ledger-a", events(1, "a"), 0) == 1
        assert log.append("ledger-a", events(3, "b"), 1) == 4
        assert log.append("ledger-a", events(2, "c"), 4) == 6
        assert log.version("ledger-a") == 6

    def test_positions_are_dense_from_zero(self, log):
        log.append("ledger-a", events(3, "a"), 0)
        log.append("ledger-a", events(2, "b"), 3)

        recorded = list(log.read("ledger-a"))
        # Check every event names its stream and its position, 0, 1, 2… with no gaps, in
        # the order they were appended.
        assert [ev.stream for ev in recorded] == ["ledger-a"] * 5
        assert [ev.position for ev in recorded] == [0, 1, 2, 3, 4]
        assert payloads(recorded) == [b"a0", b"a1", b"a2", b"b0", b"b1"]
        assert [ev.metadata for ev in recorded] == [b"meta-a0", b"meta-a1", b"meta-a2", b"meta-b0", b"meta-b1"]

    def test_read_from_a_position_and_with_a_limit(self, log):
        log.append("ledger-a", events(10), 0)

        # Check reading from a position starts exactly there.
        from_4 = list(log.read("ledger-a", 4))
        assert [ev.position for ev in from_4] == [4, 5, 6, 7, 8, 9]
        assert payloads(from_4) == [f"e{i}".encode() for i in range(4, 10)]

        # Check a limit caps the count, from the start or from a position.
        assert [ev.position for ev in log.read("ledger-a", 0, 3)] == [0, 1, 2]
        assert [ev.position for ev in log.read("ledger-a", 7, 2)] == [7, 8]
        assert [ev.position for ev in log.read("ledger-a", 8, 100)] == [8, 9]
        assert list(log.read("ledger-a", 0, 0)) == []

        # Check reading at or past the end gives nothing.
        assert list(log.read("ledger-a", 10)) == []
        assert list(log.read("ledger-a", 1000)) == []

    def test_read_absent_stream_is_empty(self, log):
        log.append("ledger-a", events(2), 0)
        assert list(log.read("ledger-b")) == []
        assert list(log.read("ledger-b", 5, 10)) == []
        assert log.version("ledger-b") == 0
        # Reading an absent stream does not create it.
        assert log.streams() == ["ledger-a"]

    def test_version_counts_events(self, log):
        assert log.version("ledger-a") == 0
        for expected in range(5):
            log.append("ledger-a", events(expected + 1, f"v{expected}"), log.version("ledger-a"))
        assert log.version("ledger-a") == 1 + 2 + 3 + 4 + 5
        assert len(list(log.read("ledger-a"))) == 15

    # -- optimistic concurrency and atomicity ----------------------------------------------

    def test_wrong_expected_version_raises_and_writes_nothing(self, log):
        log.append("ledger-a", events(3, "ok"), 0)

        # Check a stale expected version (a writer that missed an append) is refused…
        with pytest.raises(WrongExpectedVersion) as caught:
            log.append("ledger-a", events(2, "stale"), 1)
        assert isinstance(caught.value, LogError)
        assert (caught.value.stream, caught.value.expected, caught.value.actual) == ("ledger-a", 1, 3)

        # …and so is one from the future, and expected 0 on a stream that exists.
        with pytest.raises(WrongExpectedVersion) as caught:
            log.append("ledger-a", events(1, "future"), 7)
        assert (caught.value.expected, caught.value.actual) == (7, 3)
        with pytest.raises(WrongExpectedVersion) as caught:
            log.append("ledger-a", events(1, "again"), 0)
        assert (caught.value.expected, caught.value.actual) == (0, 3)

        # Check nothing of the refused appends was written.
        assert log.version("ledger-a") == 3
        assert payloads(log.read("ledger-a")) == [b"ok0", b"ok1", b"ok2"]

        # Check an absent stream reports actual version 0, and stays absent.
        with pytest.raises(WrongExpectedVersion) as caught:
            log.append("ledger-b", events(1), 2)
        assert (caught.value.stream, caught.value.expected, caught.value.actual) == ("ledger-b", 2, 0)
        assert log.version("ledger-b") == 0
        assert log.streams() == ["ledger-a"]

        # Check the stream still takes an append at the right version.
        assert log.append("ledger-a", events(1, "next"), 3) == 4

    def test_append_of_several_events_is_all_or_nothing(self, log):
        log.append("ledger-a", events(2, "ok"), 0)

        # Check a batch whose last event is invalid is refused whole: not a prefix of it.
        bad_batch = events(3, "x") + [NewEvent("EvidenceRecorded", "not bytes")]  # type: ignore[arg-type]
        with pytest.raises(LogError):
            log.append("ledger-a", bad_batch, 2)
        assert log.version("ledger-a") == 2

        # Check a batch refused for its version is refused whole too.
        with pytest.raises(WrongExpectedVersion):
            log.append("ledger-a", events(50, "y"), 1)
        assert log.version("ledger-a") == 2

        # Check a batch that is accepted is written whole, in order.
        assert log.append("ledger-a", events(50, "z"), 2) == 52
        assert payloads(log.read("ledger-a")) == [b"ok0", b"ok1"] + [f"z{i}".encode() for i in range(50)]

    def test_racing_writers_exactly_one_wins(self, log):
        writers, rounds = 4, 10
        for round_ in range(rounds):
            version = log.version("ledger-a")
            start = threading.Barrier(writers)
            outcomes: list = [None] * writers

            def write(i):
                start.wait()
                try:
                    outcomes[i] = log.append("ledger-a", events(3, f"r{round_}w{i}-"), version)
                except WrongExpectedVersion as exc:
                    outcomes[i] = exc

            threads = [run_in_thread(write, i) for i in range(writers)]
            for thread in threads:
                thread.join(WAIT)
            assert not any(thread.is_alive() for thread in threads), "an append never returned"

            # Check exactly one writer won, the others saw the winner's version, and only
            # the winner's events were written.
            winners = [i for i, outcome in enumerate(outcomes) if outcome == version + 3]
            assert len(winners) == 1, outcomes
            losers = [o for o in outcomes if isinstance(o, WrongExpectedVersion)]
            assert len(losers) == writers - 1, outcomes
            assert all(loser.expected == version and loser.actual == version + 3 for loser in losers)
            assert log.version("ledger-a") == version + 3
            tag = f"r{round_}w{winners[0]}-"
            assert payloads(log.read("ledger-a", version)) == [f"{tag}{i}".encode() for i in range(3)]
        assert log.version("ledger-a") == 3 * rounds

    def test_streams_are_independent(self, log):
        assert log.append("ledger-a", events(3, "a"), 0) == 3
        # Check another stream starts at version 0 and position 0, whatever ledger-a holds.
        assert log.append("ledger-b", events(2, "b"), 0) == 2
        assert log.append("ledger-a", events(1, "a-more"), 3) == 4

        a, b = list(log.read("ledger-a")), list(log.read("ledger-b"))
        assert [(ev.stream, ev.position) for ev in b] == [("ledger-b", 0), ("ledger-b", 1)]
        assert payloads(b) == [b"b0", b"b1"]
        assert payloads(a) == [b"a0", b"a1", b"a2", b"a-more0"]
        assert (log.version("ledger-a"), log.version("ledger-b")) == (4, 2)

        # Check a conflict on one stream leaves the other alone.
        with pytest.raises(WrongExpectedVersion):
            log.append("ledger-b", events(1), 4)
        assert log.version("ledger-b") == 2
        # A name that is a prefix of another is its own stream.
        assert log.version("ledger") == 0
        assert list(log.read("ledger")) == []

    def test_streams_lists_names_sorted(self, log):
        assert log.streams() == []
        for name in ["ledger-c", "ledger-a", "ledger-b-2"]:
            log.append(name, events(2), 0)
        log.append("ledger-a", events(1), 2)
        # A refused first append does not make a stream.
        with pytest.raises(WrongExpectedVersion):
            log.append("ledger-z", events(1), 1)
        assert log.streams() == ["ledger-a", "ledger-b-2", "ledger-c"]

    # -- what round-trips ------------------------------------------------------------------

    def test_data_and_metadata_round_trip_exactly(self, log):
        every_byte = bytes(range(256))
        large = random.Random(20240601).randbytes(self.large_event_bytes)
        sent = [
            NewEvent("EvidenceRecorded", b"data with empty metadata"),
            NewEvent("EvidenceRecorded", b"", b"metadata with empty data"),
            NewEvent("EvidenceRecorded", b"\x00\xff\x00", b"\xff\x00\xff"),
            NewEvent("EvidenceRecorded", every_byte, every_byte[::-1]),
            NewEvent("EvidenceRecorded", b'{"json": "is not special"}', b"{}"),
            NewEvent("EvidenceRecorded", bytearray(b"a bytearray")),
        ]
        log.append("ledger-a", sent, 0)
        log.append("ledger-a", [NewEvent("EvidenceRecorded", large, b"\x00")], len(sent))

        got = list(log.read("ledger-a"))
        assert len(got) == len(sent) + 1
        for recorded, new in zip(got, sent):
            assert recorded.data == new.data
            assert recorded.metadata == new.metadata
        assert got[-1].data == large
        assert len(got[-1].data) == self.large_event_bytes
        assert got[-1].metadata == b"\x00"

    def test_event_type_round_trips(self, log):
        names = ["EvidenceRecorded", "CheckpointSealed", "x", "T" * 64, "with space-and.dots_1"]
        log.append("ledger-a", [NewEvent(name, b"d") for name in names], 0)
        assert [ev.type for ev in log.read("ledger-a")] == names

    def test_invalid_inputs_raise_log_error_and_write_nothing(self, log):
        invalid = [
            ("", events(1)),                                            # empty stream name
            ("ledger-a", [NewEvent("EvidenceRecorded", "text")]),       # data not bytes
            ("ledger-a", [NewEvent("EvidenceRecorded", b"d", None)]),   # metadata not bytes
            ("ledger-a", [NewEvent("T" * 65, b"d")]),                   # type too long
            ("ledger-a", [NewEvent("", b"d")]),                         # empty type
            ("ledger-a", [("EvidenceRecorded", b"d")]),                 # not a NewEvent
        ]
        for stream, batch in invalid:
            with pytest.raises(LogError):
                log.append(stream, batch, 0)  # type: ignore[arg-type]
        assert log.version("ledger-a") == 0
        assert log.streams() == []

    # -- following -------------------------------------------------------------------------

    def test_follow_yields_appended_events_in_order_until_stopped(self, log):
        log.append("ledger-a", events(3, "before"), 0)
        stop = threading.Event()
        followed: list[RecordedEvent] = []
        batches: list[list[RecordedEvent]] = []
        ended = threading.Event()

        def consume():
            for batch in log.follow("ledger-a", 1, stop, poll_interval=0.02):
                batches.append(batch)
                followed.extend(batch)
            ended.set()

        consumer = run_in_thread(consume)
        # Check it first catches up with what was there, from the position asked for.
        assert wait_until(lambda: len(followed) >= 2)
        assert [ev.position for ev in followed] == [1, 2]

        # Check events appended by another thread after follow started arrive, in order.
        writer = run_in_thread(lambda: [log.append("ledger-a", events(2, f"after{i}-"), 3 + 2 * i)
                                        for i in range(3)])
        writer.join(WAIT)
        assert wait_until(lambda: len(followed) >= 8)
        assert [ev.position for ev in followed] == list(range(1, 9))
        assert payloads(followed) == [b"before1", b"before2"] + [
            f"after{i}-{j}".encode() for i in range(3) for j in range(2)]
        assert all(ev.stream == "ledger-a" for ev in followed)

        # Check it yields [] while there is no news, so a consumer can run timers.
        seen = len(batches)
        assert wait_until(lambda: len(batches) > seen + 1)
        assert all(batch == [] for batch in batches[seen:])

        # Check it ends once stop is set.
        stop.set()
        assert ended.wait(WAIT), "follow did not stop"
        consumer.join(WAIT)
        assert len(followed) == 8

    def test_follow_a_stream_that_does_not_exist_yet(self, log):
        stop = threading.Event()
        followed: list[RecordedEvent] = []
        batches: list[list[RecordedEvent]] = []

        def consume():
            for batch in log.follow("ledger-new", 0, stop, poll_interval=0.02):
                batches.append(batch)
                followed.extend(batch)

        consumer = run_in_thread(consume)
        assert wait_until(lambda: len(batches) >= 2)  # empty polls while there is nothing
        assert followed == []
        log.append("ledger-new", events(2, "n"), 0)
        assert wait_until(lambda: len(followed) >= 2)
        assert [(ev.position, ev.data) for ev in followed] == [(0, b"n0"), (1, b"n1")]
        stop.set()
        consumer.join(WAIT)
        assert not consumer.is_alive(), "follow did not stop"

    # -- waiting ---------------------------------------------------------------------------

    def test_wait_for_append(self, log):
        log.append("ledger-a", events(2), 0)

        # Check it returns at once when the stream already has more than `version` events.
        started = time.monotonic()
        assert log.wait_for_append("ledger-a", 1, WAIT) is True
        assert time.monotonic() - started < WAIT / 2

        # Check it returns False after about `timeout` when nothing is appended.
        started = time.monotonic()
        assert log.wait_for_append("ledger-a", 2, 0.3) is False
        assert 0.25 <= time.monotonic() - started < WAIT / 2

        # Check an append from another thread wakes it well before the timeout.
        timer = threading.Timer(0.2, lambda: log.append("ledger-a", events(1, "late"), 2))
        started = time.monotonic()
        timer.start()
        try:
            assert log.wait_for_append("ledger-a", 2, WAIT) is True
        finally:
            timer.join()
        assert time.monotonic() - started < WAIT / 2
        assert log.version("ledger-a") == 3

    def test_wait_for_append_on_absent_stream(self, log):
        assert log.wait_for_append("ledger-new", 0, 0.2) is False
        timer = threading.Timer(0.2, lambda: log.append("ledger-new", events(1), 0))
        timer.start()
        try:
            assert log.wait_for_append("ledger-new", 0, WAIT) is True
        finally:
            timer.join()

    # -- durability ------------------------------------------------------------------------

    def test_reopen_keeps_everything(self, log):
        log.append("ledger-a", events(3, "a"), 0)
        log.append("ledger-b", [NewEvent("CheckpointSealed", bytes(range(256)), b"\x00\xff")], 0)
        log.append("ledger-a", events(2, "a-more"), 3)
        before = {name: list(log.read(name)) for name in ["ledger-a", "ledger-b"]}
        log.close()
        self._open_logs.remove(log)

        reopened = self.reopen_log()
        self._open_logs.append(reopened)
        # Check streams, versions and every field of every event survive.
        assert reopened.streams() == ["ledger-a", "ledger-b"]
        assert (reopened.version("ledger-a"), reopened.version("ledger-b")) == (5, 1)
        for name, recorded in before.items():
            assert list(reopened.read(name)) == recorded
        assert before["ledger-b"][0].type == "CheckpointSealed"
        # Check the reopened log keeps enforcing versions and appends where it left off.
        with pytest.raises(WrongExpectedVersion):
            reopened.append("ledger-a", events(1), 3)
        assert reopened.append("ledger-a", events(1, "after-reopen"), 5) == 6
        assert [ev.position for ev in reopened.read("ledger-a", 4)] == [4, 5]


def wait_until(condition, timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()
