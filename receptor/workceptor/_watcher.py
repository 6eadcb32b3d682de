"""One thread that learns, without polling, when watched processes exit.

Each watched PID gets a Linux pidfd (readable once the process has exited) in one epoll set.
This works for the daemon's own children (which it then reaps) and equally for command
runners found again after a daemon restart, which are not its children. The thread that
starts watching adds the pidfd to the epoll set itself (``epoll_ctl`` may be called while
another thread waits in ``epoll_wait``), so watching a process wakes nobody.
"""

import os
import select
import socket
import threading
from collections.abc import Callable

from receptor._log import logger


class ProcessWatcher:
    """Calls ``on_exit()`` in the watcher thread once the process has exited."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._epoll.register(self._wake_r.fileno(), select.EPOLLIN)
        self._lock = threading.Lock()
        #: pidfd → (pid, whether it is our child to reap, on_exit)
        self._watched: dict[int, tuple[int, bool, Callable[[], None]]] = {}
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
            if self._stopping:
                os.close(pidfd)
                return
            self._watched[pidfd] = (pid, child, on_exit)
            # Under the lock, so that stop() cannot close the epoll set in between.
            self._epoll.register(pidfd, select.EPOLLIN)

    def _loop(self) -> None:
        wake = self._wake_r.fileno()
        while True:
            for fd, _ in self._epoll.poll():
                if fd == wake:
                    return  # stop() is the only writer
                with self._lock:
                    entry = self._watched.pop(fd, None)
                    if entry is None:
                        continue
                    self._epoll.unregister(fd)
                os.close(fd)
                pid, child, on_exit = entry
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
        """Stop watching (the processes go on); a second call does nothing."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
        self._wake_w.send(b"x")
        self._thread.join(5.0)
        with self._lock:
            for pidfd in self._watched:
                os.close(pidfd)
            self._watched.clear()
            self._epoll.close()
        self._wake_r.close()
        self._wake_w.close()
