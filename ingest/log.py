"""The event log seam: one stream of events per ledger, appended with optimistic concurrency.

A backend stores streams of opaque events (type, data, metadata). Positions in a stream are
dense and start at 0; a stream's *version* is its number of events, so an empty or absent
stream has version 0. The log knows nothing about records, trees or checkpoints: `ingest.events`
says what the event types mean and `ingest.sequencer` builds projections from them.
"""
from __future__ import annotations

import threading
from typing import Iterator, NamedTuple, Sequence


# Named tuples rather than dataclasses: hundreds of thousands are made per second on the
# write path and in a rebuild, and a tuple is built several times faster.
class NewEvent(NamedTuple):
    """An event to append. `type` is a short ASCII name such as "EvidenceRecorded"."""

    type: str
    data: bytes
    metadata: bytes = b""


class RecordedEvent(NamedTuple):
    """An event as stored: its stream and its position (0-based, dense) in that stream."""

    stream: str
    position: int
    type: str
    data: bytes
    metadata: bytes = b""


class LogError(Exception):
    """The log cannot do what was asked (backend unavailable, corrupt, closed)."""


class WrongExpectedVersion(LogError):
    """An append named a stream version that is not the stream's current version.

    Raised when two writers race on one stream: the loser's events are not written."""

    def __init__(self, stream: str, expected: int, actual: int):
        super().__init__(f"stream {stream!r}: expected version {expected}, but it has {actual} events")
        self.stream = stream
        self.expected = expected
        self.actual = actual


MAX_EVENT_TYPE_LENGTH = 64


def check_new_events(stream: str, events: Sequence[NewEvent]) -> None:
    """Reject events a backend could not store faithfully; backends call this first."""
    if not stream or len(stream) > 200 or not stream.isascii():
        raise LogError(f"stream name {stream!r} must be 1-200 ASCII characters")
    for i, ev in enumerate(events):
        if not isinstance(ev, NewEvent):
            raise LogError(f"event {i}: expected NewEvent, got {type(ev).__name__}")
        if not ev.type or len(ev.type) > MAX_EVENT_TYPE_LENGTH or not ev.type.isascii():
            raise LogError(f"event {i}: type {ev.type!r} must be 1-{MAX_EVENT_TYPE_LENGTH} ASCII characters")
        if not isinstance(ev.data, (bytes, bytearray)) or not isinstance(ev.metadata, (bytes, bytearray)):
            raise LogError(f"event {i}: data and metadata must be bytes")


class LogBackend:
    """Streams of events with optimistic concurrency.

    All methods are thread-safe. `append` returns only once the events are durable (for the
    RocksDB backend: fsynced), so a caller may acknowledge them to a client the moment it
    returns.
    """

    def append(self, stream: str, events: Sequence[NewEvent], expected_version: int) -> int:
        """Append `events` atomically (all or none) if `stream` has exactly `expected_version`
        events; return the new version. Raises WrongExpectedVersion otherwise."""
        raise NotImplementedError

    def read(self, stream: str, from_position: int = 0, limit: int | None = None) -> Iterator[RecordedEvent]:
        """Events of `stream` from `from_position` on, in order (at most `limit`). An absent
        stream reads as empty."""
        raise NotImplementedError

    def version(self, stream: str) -> int:
        """The number of events in `stream` (0 if absent)."""
        raise NotImplementedError

    def streams(self) -> list[str]:
        """Names of the streams that have at least one event, sorted."""
        raise NotImplementedError

    def follow(self, stream: str, from_position: int = 0, stop: threading.Event | None = None,
               poll_interval: float = 0.05, batch: int = 4096) -> Iterator[list[RecordedEvent]]:
        """Yield lists of events from `from_position` as they are appended, until `stop` is set.

        Yields an empty list whenever it has waited about `poll_interval` without news, so a
        consumer can run timers (the sequencer's batch_max_delay) and notice `stop`."""
        position = from_position
        while stop is None or not stop.is_set():
            events = list(self.read(stream, position, batch))
            if events:
                position = events[-1].position + 1
                yield events
                continue
            self.wait_for_append(stream, position, poll_interval)
            yield []

    def wait_for_append(self, stream: str, version: int, timeout: float) -> bool:
        """Block until `stream` has more than `version` events or `timeout` passes; True if it
        has. Backends that can be notified override this; the default sleeps."""
        if self.version(stream) > version:
            return True
        threading.Event().wait(timeout)
        return self.version(stream) > version

    # Why appends fail now (e.g. the disk is full), or None; for readiness checks.
    unavailable: str | None = None

    def recover(self) -> None:
        """After a failed append: make the backend take writes again if it can (the RocksDB
        backend reopens its database once there is room); raises LogError while it cannot.
        A backend that recovers from a failed write itself (or has nothing to recover) does
        nothing here."""

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
