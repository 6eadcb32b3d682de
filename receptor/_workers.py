"""Threads that serve one job after another instead of one thread per job.

The control server used to start a thread per client. ``Thread.start`` waits until the new
thread has run far enough to say so, and with a busy GIL (fifty clients at once) that wait
held the accept loop up for milliseconds; creating and tearing down the thread cost a dozen
system calls more. Here a thread that finishes its job waits :data:`IDLE_SECONDS` for the
next one, so a burst of short sessions (AWX submits, then reads results, then releases) is
served by the threads of the previous ones. There is no upper bound, as there was none
before: a job that blocks for hours (``work results`` of a long unit) ties up its thread
only.
"""

import queue
import threading
from collections.abc import Callable
from typing import Any

from receptor._log import logger

#: How long a thread with nothing to do waits for the next job before it exits.
IDLE_SECONDS = 10.0

_Job = tuple[Callable[..., Any], tuple[Any, ...]]


class Workers:
    """Run jobs each in a thread of their own, reusing idle threads."""

    def __init__(self, name: str, idle_seconds: float = IDLE_SECONDS) -> None:
        self.name = name
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._idle = 0
        self._threads: set[threading.Thread] = set()
        self._stopping = False

    def run(self, function: Callable[..., Any], *args: Any) -> None:
        """Start ``function(*args)`` now, in an idle thread or a new one.

        ``RuntimeError`` after :meth:`stop`.
        """
        with self._lock:
            if self._stopping:
                raise RuntimeError(f"{self.name} workers are stopped")
            if self._idle:
                self._idle -= 1
                self._jobs.put((function, args))
                return
            thread = threading.Thread(
                target=self._work, args=((function, args),), name=self.name, daemon=True
            )
            self._threads.add(thread)
        thread.start()

    @property
    def thread_count(self) -> int:
        with self._lock:
            return len(self._threads)

    def _work(self, job: _Job | None) -> None:
        while job is not None:
            function, args = job
            try:
                function(*args)
            except Exception:
                logger.exception("Unexpected error in a %s thread", self.name)
            job = None  # drop the finished job's references while idle
            with self._lock:
                if self._stopping:
                    break
                self._idle += 1
            try:
                job = self._jobs.get(timeout=self.idle_seconds)
            except queue.Empty:
                with self._lock:
                    # run() hands a job out and counts the idle thread in one locked step,
                    # so a job queued just now is seen here and nothing is left waiting.
                    try:
                        job = self._jobs.get_nowait()
                    except queue.Empty:
                        self._idle -= 1
        with self._lock:
            self._threads.discard(threading.current_thread())

    def stop(self, timeout: float = 5.0) -> None:
        """Let idle threads exit and join every thread (give running jobs a reason to end
        first: this waits for them, up to ``timeout`` each)."""
        with self._lock:
            self._stopping = True
            threads = list(self._threads)
            for _ in range(self._idle):
                self._jobs.put(None)
            self._idle = 0
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
