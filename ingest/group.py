"""Group commit: callers from many threads hand in work; one of them at a time (the leader)
processes everything queued so far in one go, so N concurrent callers share one fsync."""
from __future__ import annotations

import threading
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class Request(Generic[T]):
    __slots__ = ("item", "result", "error", "done")

    def __init__(self, item: T):
        self.item = item
        self.result = None
        self.error: BaseException | None = None
        self.done = threading.Event()


class GroupCommitter(Generic[T]):
    """`submit(item)` returns what `process` set as the request's result (or raises its error).

    `process(requests)` gets every request queued since the last call and must set `.result`
    or `.error` on each; it runs in one caller's thread while the others wait, and whatever is
    queued meanwhile forms the next group."""

    def __init__(self, process: Callable[[list[Request[T]]], None]):
        self._process = process
        self._lock = threading.Lock()
        self._queue: list[Request[T]] = []
        self._leading = False

    def submit(self, item: T):
        request = Request(item)
        with self._lock:
            self._queue.append(request)
            lead = not self._leading
            self._leading = True
        if lead:
            self._lead()
        request.done.wait()
        if request.error is not None:
            raise request.error
        return request.result

    def _lead(self) -> None:
        while True:
            with self._lock:
                group, self._queue = self._queue, []
                if not group:
                    self._leading = False
                    return
            try:
                self._process(group)
            except BaseException as exc:  # a bug in process: fail the group, not the process
                for request in group:
                    if request.result is None and request.error is None:
                        request.error = exc
            finally:
                for request in group:
                    request.done.set()
