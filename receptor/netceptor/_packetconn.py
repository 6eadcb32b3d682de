"""Datagram endpoints on the mesh, addressed by ``node:service`` (wire.md §13)."""

import collections
import threading
import time
from typing import TYPE_CHECKING

from receptor._errors import MeshError
from receptor.netceptor._messages import UnreachableMessage

if TYPE_CHECKING:
    from receptor.netceptor._node import Netceptor

#: Datagrams held for a reader that is not keeping up; beyond this the newest are dropped,
#: as a router drops what it cannot queue (upstream blocks the whole link instead).
INBOX_LIMIT = 4096


class PacketConn:
    """A registered service that sends and receives single datagrams.

    Created by :meth:`Netceptor.listen_packet`. Thread-safe: one thread may read while
    others write. ``read_from`` raises ``TimeoutError("i/o timeout")`` on timeout and
    ``MeshError`` once the conn is closed.
    """

    def __init__(
        self,
        netceptor: "Netceptor",
        service: str,
        hops_to_live: int = 30,
        inbox_limit: int = INBOX_LIMIT,
    ) -> None:
        self.netceptor = netceptor
        self.service = service
        self.hops_to_live = hops_to_live
        self.inbox_limit = inbox_limit
        self._cond = threading.Condition()
        self._inbox: collections.deque[tuple[bytes, str, str]] = collections.deque()
        self._unreachable: collections.deque[UnreachableMessage] = collections.deque()
        self._closed = False
        self.dropped = 0

    @property
    def closed(self) -> bool:
        return self._closed

    def write_to(self, payload: bytes, node: str, service: str) -> None:
        """Send one datagram; locally detectable problems raise ``MeshError``."""
        if self._closed:
            raise MeshError("use of closed connection")
        self.netceptor.send_message(self.service, node, service, payload, self.hops_to_live)

    def read_from(self, timeout: float | None = None) -> tuple[bytes, str, str]:
        """Wait for one datagram: ``(payload, from_node, from_service)``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._inbox:
                self._wait(deadline)
            return self._inbox.popleft()

    def read_any(self, timeout: float | None = None) -> tuple[bytes, str, str] | UnreachableMessage:
        """Wait for a datagram or an unreachable notification about our own sends."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._inbox and not self._unreachable:
                self._wait(deadline)
            if self._unreachable:
                return self._unreachable.popleft()
            return self._inbox.popleft()

    def _wait(self, deadline: float | None) -> None:
        if self._closed:
            raise MeshError("use of closed connection")
        if deadline is None:
            self._cond.wait()
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("i/o timeout")
        self._cond.wait(remaining)

    def close(self) -> None:
        """Unregister the service; advertised services flood a cancel advertisement."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self.netceptor.unregister(self)

    def __enter__(self) -> "PacketConn":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def deliver(self, payload: bytes, from_node: str, from_service: str) -> None:
        """Called by the mesh for each datagram addressed to this service."""
        with self._cond:
            if self._closed:
                return
            if len(self._inbox) >= self.inbox_limit:
                self.dropped += 1
                return
            self._inbox.append((payload, from_node, from_service))
            self._cond.notify()

    def deliver_unreachable(self, message: UnreachableMessage) -> None:
        with self._cond:
            if self._closed or len(self._unreachable) >= INBOX_LIMIT:
                return
            self._unreachable.append(message)
            self._cond.notify()
