"""One thread that learns, without polling, when watched processes exit.

Each watched PID gets a Linux pidfd (readable once the process has exited) in one epoll
selector. This works for the daemon's own children (which it then reaps) and equally for
command runners found again after a daemon restart, which are not its children.
"""

import os
import selectors
import socket
import threading
from collections.abc import Callable

from receptor._log import logger


class ProcessWatcher:
    """Calls ``on_exit()`` in the watcher thread once the process has exited."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._lock = threading.Lock()
        self._pending: list[tuple[int, int, bool, Callable[[], None]]] = []
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="work-watcher", daemon=True)
        self._thread.start()

    def watch(self, pid: int, on_exit: Callable[[], None], child: bool = False) -> bool:
        """Watch ``pid``; False (and no call) if it no longer exists."""
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return False
        self.watch_fd(pid, pidfd, on_exit, child)
        return True

    def watch_fd(
        self, pid: int, pidfd: int, on_exit: Callable[[], None], child: bool = False
    ) -> None:
        """Watch a process by a pidfd we own from now on (closed after the exit)."""
        with self._lock:
            self._pending.append((pid, pidfd, child, on_exit))
        self._wake_w.send(b"x")

    def _loop(self) -> None:
        while True:
            for key, _ in self._selector.select():
                if key.fileobj is self._wake_r:
                    try:
                        self._wake_r.recv(4096)
                    except BlockingIOError:
                        pass
                    with self._lock:
                        pending, self._pending = self._pending, []
                        if self._stopping:
                            return
                    for pid, pidfd, child, on_exit in pending:
                        self._selector.register(pidfd, selectors.EVENT_READ, (pid, child, on_exit))
                    continue
                pid, child, on_exit = key.data
                fd = key.fd
                self._selector.unregister(fd)
                os.close(fd)
                if child:
                    try:
                        os.waitpid(pid, 0)
                    except ChildProcessError:
                        pass
                try:
                    on_exit()
                except Exception:
                    logger.exception("Error handling the exit of process %d", pid)

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
        self._wake_w.send(b"x")
        self._thread.join(5.0)
