"""One thread that runs every timer of a node (DESIGN.md: no thread per timer).

Callbacks run on the scheduler thread and must be short; they are isolated from one
another: an exception is logged and the scheduler carries on.
"""

import heapq
import itertools
import threading
import time
from collections.abc import Callable

from receptor._log import logger


class Timer:
    """A handle on a scheduled callback; ``cancel()`` makes it a no-op."""

    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Scheduler:
    """A timer heap served by one daemon thread, with ``time.monotonic`` as the clock."""

    def __init__(self, name: str = "scheduler") -> None:
        self._heap: list[tuple[float, int, Timer]] = []
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(when, callback)
        with self._cond:
            heapq.heappush(self._heap, (when, next(self._counter), timer))
            if self._heap[0][2] is timer:
                self._cond.notify()
        return timer

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return self.call_at(time.monotonic() + delay, callback)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    if not self._heap:
                        self._cond.wait()
                        continue
                    delay = self._heap[0][0] - time.monotonic()
                    if delay <= 0:
                        break
                    self._cond.wait(delay)
                if self._stopped:
                    return
                _, _, timer = heapq.heappop(self._heap)
            if timer.cancelled:
                continue
            try:
                timer.callback()
            except Exception:
                logger.exception("Error in timer callback %r", timer.callback)


class Debounced:
    """Run ``callback`` once, ``delay`` seconds after the first of any burst of requests.

    Used for upstream's on-demand runs ("within 100 ms of a change"): many triggers in a
    burst coalesce into one run. ``periodic`` (optional) also runs the callback every
    ``periodic`` seconds, and an on-demand run restarts that period, as upstream's
    tickrunner does.
    """

    def __init__(
        self,
        scheduler: Scheduler,
        callback: Callable[[], None],
        delay: float,
        periodic: float | None = None,
    ) -> None:
        self._scheduler = scheduler
        self._callback = callback
        self._delay = delay
        self._periodic = periodic
        self._lock = threading.Lock()
        self._pending: Timer | None = None
        self._tick: Timer | None = None
        if periodic is not None:
            self._tick = scheduler.call_later(periodic, self._run)

    def request(self, delay: float | None = None) -> None:
        """Ask for a run within ``delay`` (default: the configured delay)."""
        when = time.monotonic() + (self._delay if delay is None else delay)
        with self._lock:
            if self._pending is not None and self._pending.when <= when:
                return
            if self._pending is not None:
                self._pending.cancel()
            self._pending = self._scheduler.call_at(when, self._run)

    def cancel(self) -> None:
        with self._lock:
            for timer in (self._pending, self._tick):
                if timer is not None:
                    timer.cancel()
            self._pending = self._tick = None
            self._periodic = None

    def _run(self) -> None:
        with self._lock:
            if self._pending is not None:
                self._pending.cancel()
                self._pending = None
            if self._tick is not None:
                self._tick.cancel()
            if self._periodic is not None:
                self._tick = self._scheduler.call_later(self._periodic, self._run)
        self._callback()
