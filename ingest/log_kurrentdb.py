"""The distributed log backend: each ledger's stream is a KurrentDB (EventStoreDB) stream.

For users who outgrow one machine. Our stream `s` is the KurrentDB stream `stream_prefix + s`;
our version (number of events) is KurrentDB's stream position of the last event plus one, and
the server's own optimistic concurrency check enforces `expected_version`. Event data and
metadata travel as opaque bytes (content type application/octet-stream), so they round-trip
exactly. `kurrentdbclient` is imported lazily: importing this module never needs it.
"""
from __future__ import annotations

import contextlib
import queue
import threading
from typing import Iterator, Sequence

from .log import LogBackend, LogError, NewEvent, RecordedEvent, WrongExpectedVersion, check_new_events

_READ_PAGE = 4096  # events fetched per round trip when reading


class KurrentDBLog(LogBackend):
    def __init__(self, uri: str, stream_prefix: str = "evledger-"):
        from kurrentdbclient import KurrentDBClient

        self.uri = uri
        self.stream_prefix = stream_prefix
        try:
            self._client = KurrentDBClient(uri=uri)
        except Exception as exc:  # a malformed URI (ValueError) or failed cluster discovery
            raise LogError(f"cannot connect to KurrentDB at {uri!r}: {exc}") from exc
        self._closed = False

    # -- helpers ---------------------------------------------------------------------------

    def _name(self, stream: str) -> str:
        if self._closed:
            raise LogError("log is closed")
        return self.stream_prefix + stream

    @contextlib.contextmanager
    def _server_errors(self, doing: str):
        """Turn the client's exceptions into LogError naming what failed and where."""
        from kurrentdbclient.exceptions import KurrentDBClientError, ProgrammingError

        try:
            yield
        except (KurrentDBClientError, ProgrammingError) as exc:
            raise LogError(f"KurrentDB at {self.uri!r}: {doing} failed: "
                           f"{type(exc).__name__}: {exc}") from exc
        except ValueError as exc:  # grpc raises it on a closed channel
            raise LogError(f"KurrentDB at {self.uri!r}: {doing} failed: {exc}") from exc

    def _recorded(self, stream: str, ev) -> RecordedEvent:
        return RecordedEvent(stream, ev.stream_position, ev.type, ev.data, ev.metadata)

    @staticmethod
    def _is_event(ev) -> bool:
        # CaughtUp, FellBehind and Checkpoint subclass RecordedEvent but are not events.
        from kurrentdbclient import CaughtUp, Checkpoint, FellBehind

        return not isinstance(ev, (CaughtUp, Checkpoint, FellBehind))

    @staticmethod
    def _after(position: int) -> int | None:
        """The `stream_position` a catch-up subscription needs to deliver events from
        `position` on: it delivers the events *after* the position it is given."""
        return position - 1 if position > 0 else None

    # -- the seam --------------------------------------------------------------------------

    def append(self, stream: str, events: Sequence[NewEvent], expected_version: int) -> int:
        from kurrentdbclient import NewEvent as KurrentEvent
        from kurrentdbclient import StreamState
        from kurrentdbclient.exceptions import WrongCurrentVersionError

        check_new_events(stream, events)
        name = self._name(stream)
        if not events:
            actual = self.version(stream)
            if actual != expected_version:
                raise WrongExpectedVersion(stream, expected_version, actual)
            return actual
        # KurrentDB names a stream's state by the position of its last event, not a count.
        current = StreamState.NO_STREAM if expected_version == 0 else expected_version - 1
        batch = [KurrentEvent(type=ev.type, data=bytes(ev.data), metadata=bytes(ev.metadata),
                              content_type="application/octet-stream") for ev in events]
        try:
            with self._server_errors(f"append to {name!r}"):
                # One request: the server writes all of `batch` or none of it. The client
                # retries once on a gRPC error; the event ids make that retry idempotent.
                self._client.append_to_stream(name, events=batch, current_version=current)
        except LogError as exc:
            wrong = exc.__cause__
            if not isinstance(wrong, WrongCurrentVersionError):
                raise
            last = wrong.actual_version
            if isinstance(last, int):
                actual = last + 1
            elif last is StreamState.NO_STREAM:
                actual = 0
            else:
                actual = self.version(stream)
            raise WrongExpectedVersion(stream, expected_version, actual) from None
        return expected_version + len(events)

    def read(self, stream: str, from_position: int = 0, limit: int | None = None) -> Iterator[RecordedEvent]:
        if from_position < 0:
            raise LogError(f"from_position must be >= 0, got {from_position}")
        if limit is not None and limit < 0:
            raise LogError(f"limit must be >= 0, got {limit}")
        return self._read(stream, self._name(stream), from_position, limit)

    def _read(self, stream: str, name: str, position: int, limit: int | None) -> Iterator[RecordedEvent]:
        from kurrentdbclient.exceptions import NotFoundError

        remaining = limit
        while remaining is None or remaining > 0:
            page = _READ_PAGE if remaining is None else min(_READ_PAGE, remaining)
            try:
                with self._server_errors(f"read {name!r}"):
                    got = self._client.get_stream(name, stream_position=position, limit=page)
            except LogError as exc:
                if isinstance(exc.__cause__, NotFoundError):
                    return  # an absent stream reads as empty
                raise
            for ev in got:
                yield self._recorded(stream, ev)
            if len(got) < page:
                return
            position = got[-1].stream_position + 1
            if remaining is not None:
                remaining -= len(got)

    def version(self, stream: str) -> int:
        from kurrentdbclient import StreamState

        name = self._name(stream)
        with self._server_errors(f"read the version of {name!r}"):
            last = self._client.get_current_version(name)
        return 0 if last is StreamState.NO_STREAM else last + 1

    def streams(self) -> list[str]:
        """Scans every event of our streams (KurrentDB has no stream index without system
        projections), so it costs a read of the whole log: for tools, not hot paths."""
        names = set()
        with self._server_errors(f"list streams starting with {self.stream_prefix!r}"):
            with self._client.read_all(filter_include=(self.stream_prefix,), filter_by_stream_name=True,
                                       filter_by_prefix=True) as response:
                for ev in response:
                    if self._is_event(ev) and ev.stream_name.startswith(self.stream_prefix):
                        names.add(ev.stream_name[len(self.stream_prefix):])
        return sorted(names)

    def follow(self, stream: str, from_position: int = 0, stop: threading.Event | None = None,
               poll_interval: float = 0.05, batch: int = 4096) -> Iterator[list[RecordedEvent]]:
        """A catch-up subscription pumped by a thread into a queue, so the server pushes new
        events at once and this generator can still yield [] every `poll_interval`."""
        name = self._name(stream)
        with self._server_errors(f"subscribe to {name!r}"):
            subscription = self._client.subscribe_to_stream(name, stream_position=self._after(from_position))
        inbox: queue.Queue = queue.Queue()
        stopping = threading.Event()

        def pump():
            try:
                for ev in subscription:
                    if self._is_event(ev):
                        inbox.put(ev)
            except Exception as exc:
                if not stopping.is_set():
                    inbox.put(exc)

        pumper = threading.Thread(target=pump, name=f"follow {name}", daemon=True)
        pumper.start()
        try:
            while stop is None or not stop.is_set():
                try:
                    items = [inbox.get(timeout=poll_interval)]
                except queue.Empty:
                    yield []
                    continue
                while len(items) < batch:
                    try:
                        items.append(inbox.get_nowait())
                    except queue.Empty:
                        break
                for item in items:
                    if isinstance(item, Exception):
                        with self._server_errors(f"follow {name!r}"):
                            raise item
                yield [self._recorded(stream, ev) for ev in items]
        finally:
            stopping.set()
            with contextlib.suppress(Exception):
                subscription.stop()
            pumper.join(timeout=5)

    def wait_for_append(self, stream: str, version: int, timeout: float) -> bool:
        from kurrentdbclient.exceptions import DeadlineExceededError

        if timeout <= 0:
            return self.version(stream) > version
        name = self._name(stream)
        # A catch-up subscription from position `version` delivers any event already there
        # as well as the next one appended, so there is no window between check and wait.
        try:
            with self._server_errors(f"wait for events in {name!r}"):
                subscription = self._client.subscribe_to_stream(
                    name, stream_position=self._after(version), timeout=timeout)
                try:
                    return any(self._is_event(ev) for ev in subscription)
                finally:
                    subscription.stop()
        except LogError as exc:
            if isinstance(exc.__cause__, DeadlineExceededError):
                return False
            raise

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):
                self._client.close()
