"""Group commit: callers from many threads hand in work; one of them at a time (the leader)
processes everything queued so far in one go, so N concurrent callers share one fsync."""
from __future__ import annotations

import threading
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class Request(Generic[T]):
    __slots__ = ("item", "result", "error", "finished", "lead", "wake")

    def __init__(self, item: T):
        self.item = item
        self.result = None
        self.error: BaseException | None = None
        self.finished = False
        self.lead = False
        self.wake = threading.Event()


class GroupCommitter(Generic[T]):
    """`submit(item)` returns what `process` set as the request's result (or raises its error).

    `process(requests)` gets every request queued since the last call and must set `.result`
    or `.error` on each. It runs in one caller's thread while the others wait; whatever is
    queued meanwhile forms the next group, led by the first caller in it. Each leader processes
    one group and hands over, so no caller is held for longer than its own group and the one
    before it. If `process` raises, every request of the group fails with that error: none is
    acknowledged, whatever it had set."""

    def __init__(self, process: Callable[[list[Request[T]]], None]):
        self._process = process
        self._lock = threading.Lock()
        self._queue: list[Request[T]] = []
        self._leading = False

    def submit(self, item: T):
        request = Request(item)
        with self._lock:
            self._queue.append(request)
            if not self._leading:
                self._leading = request.lead = True
        while not request.finished:
            if request.lead:
                request.lead = False
                self._lead_once()
            else:
                request.wake.wait()
                request.wake.clear()
        if request.error is not None:
            raise request.error
        return request.result

    def _lead_once(self) -> None:
        with self._lock:
            group, self._queue = self._queue, []
        try:
            self._process(group)
        except BaseException as exc:
            for request in group:
                request.result, request.error = None, exc
        finally:
            for request in group:
                request.finished = True
                request.wake.set()
            with self._lock:
                if self._queue:
                    successor = self._queue[0]
                    successor.lead = True
                    successor.wake.set()
                else:
                    self._leading = False
