"""In-memory sessions for wiring mesh nodes together without sockets (STYLE.md habit 8)."""

import queue
import threading
import time
from collections.abc import Callable

from receptor.netceptor import Backend, BackendInfo, Netceptor, SessionClosed


class MemorySession:
    """One end of an in-memory link; messages are delivered whole and in order."""

    def __init__(self, description: str) -> None:
        self.description = description
        self.inbox: queue.Queue[bytes | None] = queue.Queue()
        self.peer: MemorySession | None = None
        self.closed = threading.Event()
        self.sent: list[bytes] = []

    def send(self, message: bytes, wait: bool = True) -> None:
        if self.closed.is_set() or self.peer is None or self.peer.closed.is_set():
            raise ConnectionError("link closed")
        self.sent.append(bytes(message))
        self.peer.inbox.put(bytes(message))

    def recv(self, timeout: float) -> bytes | None:
        if self.closed.is_set():
            raise SessionClosed("closed")
        try:
            item = self.inbox.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is None:
            raise SessionClosed("closed")
        return item

    def close(self) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        self.inbox.put(None)
        if self.peer is not None:
            self.peer.inbox.put(None)


def session_pair(a: str, b: str) -> tuple[MemorySession, MemorySession]:
    left, right = MemorySession(f"mem {a}->{b}"), MemorySession(f"mem {b}->{a}")
    left.peer, right.peer = right, left
    return left, right


class MemoryBackend(Backend):
    """A backend that runs the mesh protocol on one given session."""

    def __init__(self, session: MemorySession) -> None:
        self.session = session
        self.thread: threading.Thread | None = None

    def start(self, netceptor: Netceptor, info: BackendInfo) -> None:
        self.thread = threading.Thread(
            target=netceptor.run_protocol, args=(self.session, info), daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.session.close()
        if self.thread is not None:
            self.thread.join(5)


def link(
    a: Netceptor,
    b: Netceptor,
    info_a: BackendInfo | None = None,
    info_b: BackendInfo | None = None,
) -> tuple[MemoryBackend, MemoryBackend]:
    left, right = session_pair(a.node_id, b.node_id)
    back_a, back_b = MemoryBackend(left), MemoryBackend(right)
    a.add_backend(back_a, info_a or BackendInfo())
    b.add_backend(back_b, info_b or BackendInfo())
    return back_a, back_b


def wait_until(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"condition not met within {timeout} s: {predicate}")
