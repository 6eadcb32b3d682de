"""Bridging two byte streams, like netcat: one pump thread per direction (wire.md §14.4).

A mesh stream has no file descriptor to wait on, so each direction gets its own thread that
blocks in ``recv`` and writes with ``sendall``. Unlike upstream's ``BridgeConns`` (which closes
the other side entirely at EOF), end of input in one direction is passed on as a half-close
(``shutdown(SHUT_WR)``): a client that sends its request and half-closes still gets the
whole reply. A read or write error aborts both sides, which wakes the other pump; the
sockets are closed once both pumps have ended, so no descriptor is reused under a pump.
"""

import socket
import threading
from collections.abc import Callable
from typing import Protocol

from receptor._log import logger

#: Bytes read at once (upstream's ``NormalBufferSize``).
BUFFER_SIZE = 65536


class Stream(Protocol):
    """What a bridge needs of each side: a socket, a mesh stream connection, ..."""

    def recv(self, bufsize: int, /) -> bytes: ...

    def sendall(self, data: bytes, /) -> None: ...

    def shutdown(self, how: int, /) -> None: ...

    def close(self) -> None: ...


def _abort(stream: Stream) -> None:
    """Wake any thread blocked on ``stream``.

    A socket is shut down rather than closed (closing does not wake a blocked ``recv`` and
    would free the descriptor under it); a mesh stream wakes its waiters on ``close``.
    """
    try:
        if isinstance(stream, socket.socket):
            stream.shutdown(socket.SHUT_RDWR)
        else:
            stream.close()
    except OSError:
        pass


class Bridge:
    """Copies bytes both ways between ``a`` and ``b`` until both directions have ended."""

    def __init__(
        self,
        a: Stream,
        a_name: str,
        b: Stream,
        b_name: str,
        on_done: Callable[["Bridge"], None] | None = None,
    ) -> None:
        self.a, self.a_name, self.b, self.b_name = a, a_name, b, b_name
        self._on_done = on_done
        self._lock = threading.Lock()
        self._aborted = False
        self._running = 2
        self.done = threading.Event()

    def run(self) -> None:
        """Pump a→b in a new thread and b→a in this one; return when both have ended."""
        thread = threading.Thread(
            target=self._pump,
            args=(self.a, self.a_name, self.b, self.b_name),
            name="bridge",
            daemon=True,
        )
        thread.start()
        self._pump(self.b, self.b_name, self.a, self.a_name)
        thread.join()

    def abort(self) -> None:
        """Stop both directions now (an error, or the service stopping)."""
        with self._lock:
            if self._aborted:
                return
            self._aborted = True
        _abort(self.a)
        _abort(self.b)

    def _pump(self, src: Stream, src_name: str, dst: Stream, dst_name: str) -> None:
        try:
            self._copy(src, src_name, dst, dst_name)
        finally:
            self._finish()

    def _copy(self, src: Stream, src_name: str, dst: Stream, dst_name: str) -> None:
        while True:
            try:
                data = src.recv(BUFFER_SIZE)
            except OSError as err:
                if not self._aborted:
                    logger.error("Connection read error: %s", err)
                    self.abort()
                return
            if not data:
                break
            try:
                dst.sendall(data)
            except OSError as err:
                if not self._aborted:
                    logger.error("Connection write error: %s", err)
                    self.abort()
                return
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            self.abort()  # the other side is gone: nothing more can be delivered

    def _finish(self) -> None:
        with self._lock:
            self._running -= 1
            last = self._running == 0
        if not last:
            return
        for stream in (self.a, self.b):
            try:
                stream.close()
            except OSError:
                pass
        self.done.set()
        if self._on_done is not None:
            self._on_done(self)
