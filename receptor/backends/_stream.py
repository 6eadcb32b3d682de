"""Sessions over a stream socket: the queued, back-pressured send side they share, and the
2-byte framing of wire.md §1.1 (:class:`StreamSession`, the TCP backend's session).

Writes take a fast path where the socket allows it: when nothing is queued the calling thread
hands the frame to the kernel at once with a non-blocking ``send`` (no thread hop, which is
most of a ping's round trip). Whatever the kernel does not take goes to a bounded queue that
the session's writer thread drains, coalescing queued frames into one ``sendall``; a full
queue makes senders wait (back-pressure) rather than grow memory without bound.

Reads happen only on the session's reader thread (the one running the mesh protocol), with
``poll`` for the timeout so that the socket itself stays blocking for the writer.
"""

import collections
import select
import socket
import struct
import threading
import time

from receptor._core import codec
from receptor._errors import ProtocolError
from receptor.netceptor import SessionClosed

#: Queued bytes beyond which senders wait for the writer.
MAX_PENDING_BYTES = 4 * 1024 * 1024
#: How long a sender waits on a full queue before the session is declared stuck.
SEND_TIMEOUT = 30.0
#: How long ``close`` lets the writer flush what is queued (e.g. a reject message).
CLOSE_FLUSH_TIMEOUT = 1.0
READ_SIZE = 65536
#: Most buffers one ``sendmsg`` takes (Linux's IOV_MAX).
IOV_MAX = 1024
_LENGTH = struct.Struct("<H")


def _frame_prefix(message: bytes) -> bytes:
    """The 2-byte length prefix of ``codec.frame(message)``, with its checks."""
    length = len(message)
    if length == 0 or length > codec.MAX_FRAME:
        codec.frame(message)  # raises ProtocolError with the codec's wording
    return _LENGTH.pack(length)


def raw_shutdown(sock: socket.socket) -> None:
    """Shut the descriptor down (waking its blocked reader and writer) without touching an
    ``ssl.SSLSocket``'s TLS state: that stays usable for the writer thread, which is what
    ``SSLSocket.shutdown`` would break. Errors (already closed, not connected) are ignored."""
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


class QueuedSession:
    """The send side and the closing of a session on a stream socket, for subclasses that
    encode messages into frames and read them back (see the module docstring)."""

    #: Whether ``send`` may hand a frame straight to the kernel when nothing is queued.
    #: Subclasses whose socket may be an ``ssl.SSLSocket`` (no ``MSG_DONTWAIT``, no send
    #: beside the writer's) turn it off.
    direct_send = True

    def __init__(self, sock: socket.socket, description: str) -> None:
        self.description = description
        self._sock = sock
        sock.setblocking(True)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._poller = select.poll()
        self._poller.register(sock.fileno(), select.POLLIN)
        self._cond = threading.Condition()
        self._pending: collections.deque[bytes] = collections.deque()
        self._pending_bytes = 0
        self._writing = False
        self._closing = False
        self._released = False
        self._write_error: OSError | None = None
        self._writer = threading.Thread(
            target=self._write_loop, name=f"writer {description}", daemon=True
        )
        self._writer.start()

    # ------------------------------------------------------------------ sending

    def _refuses_sends(self) -> bool:
        """Whether ``send`` must fail as closed; the caller holds ``_cond``."""
        return self._closing

    def _enqueue(self, data: bytes, wait: bool) -> None:
        """Send one encoded frame: directly if possible, else through the writer's queue,
        waiting for room (at most ``SEND_TIMEOUT``) unless ``wait`` is false."""
        with self._cond:
            if self._refuses_sends():
                raise ConnectionError("session is closed")
            if self._write_error is not None:
                raise self._write_error
            if self.direct_send and not self._pending and not self._writing:
                try:
                    sent = self._sock.send(data, socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                if sent == len(data):
                    return
                data = data[sent:]
            self._wait_and_queue(data, wait)

    def _enqueue_parts(self, parts: list[bytes], wait: bool) -> None:
        """``_enqueue`` of the concatenation of ``parts``; on a plain socket the direct
        send is one scatter-gather ``sendmsg`` (no joined copy of a batch of frames)."""
        if not self.direct_send or type(self._sock) is not socket.socket or len(parts) > IOV_MAX:
            self._enqueue(b"".join(parts), wait)
            return
        with self._cond:
            if self._refuses_sends():
                raise ConnectionError("session is closed")
            if self._write_error is not None:
                raise self._write_error
            if not self._pending and not self._writing:
                try:
                    sent = self._sock.sendmsg(parts, (), socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                if sent == sum(map(len, parts)):
                    return
                data = b"".join(parts)[sent:]
            else:
                data = b"".join(parts)
            self._wait_and_queue(data, wait)

    def _wait_and_queue(self, data: bytes, wait: bool) -> None:
        """Queue ``data`` for the writer, waiting for room unless ``wait`` is false; the
        caller holds ``_cond``."""
        if not wait and self._pending_bytes >= MAX_PENDING_BYTES:
            raise BlockingIOError("session send queue is full")
        deadline = time.monotonic() + SEND_TIMEOUT
        while self._pending_bytes >= MAX_PENDING_BYTES:
            remaining = deadline - time.monotonic()
            if self._closing or remaining <= 0:
                raise ConnectionError("session send queue is stuck")
            self._cond.wait(remaining)
        self._queue(data)

    def _queue(self, data: bytes) -> None:
        """Append to the writer's queue; the caller holds ``_cond``."""
        self._pending.append(data)
        self._pending_bytes += len(data)
        self._cond.notify_all()

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending:
                    return
                batch = b"".join(self._pending)
                self._pending.clear()
                self._pending_bytes = 0
                self._writing = True
                self._cond.notify_all()
            try:
                self._sock.sendall(batch)
            except (OSError, ValueError) as err:
                with self._cond:
                    self._write_error = err if isinstance(err, OSError) else OSError(str(err))
                    self._writing = False
                    self._pending.clear()
                    self._cond.notify_all()
                raw_shutdown(self._sock)
                return
            with self._cond:
                self._writing = False
                self._cond.notify_all()

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        """Flush what is queued (briefly), then shut the connection down.

        Any thread may call this; it wakes the reader. The descriptor itself is closed
        once the writer has finished, so a reader polling it never sees a reused number.
        """
        with self._cond:
            first = not self._closing
            self._closing = True
            self._cond.notify_all()
        if first and threading.current_thread() is not self._writer:
            self._writer.join(CLOSE_FLUSH_TIMEOUT)
        raw_shutdown(self._sock)

    def release(self) -> None:
        """Close the descriptor; only the thread that ran the session calls this, at the end."""
        self.close()
        self._writer.join(CLOSE_FLUSH_TIMEOUT)
        with self._cond:
            if self._released:
                return
            self._released = True
        self._sock.close()


class StreamSession(QueuedSession):
    """One framed stream connection; see the module docstring for the threading rules."""

    def __init__(self, sock: socket.socket, description: str) -> None:
        self._framer = codec.Framer()
        self._frames: collections.deque[bytes] = collections.deque()
        super().__init__(sock, description)

    def send(self, message: bytes, wait: bool = True) -> None:
        self._enqueue(codec.frame(message), wait)

    def send_many(self, messages: list[bytes], wait: bool = True) -> None:
        """Frame several messages into one write (the node's batches; same bytes as
        sending them one by one)."""
        parts: list[bytes] = []
        append = parts.append
        for message in messages:
            append(_frame_prefix(message))
            append(message)
        self._enqueue_parts(parts, wait)

    def send_split(self, headers: list[bytes], payloads: list[bytes], wait: bool = True) -> None:
        """``send_many`` of ``header + payload`` messages without joining each pair: the
        frames go to the kernel as a scatter-gather list (the payload is not copied)."""
        parts: list[bytes] = []
        append = parts.append
        for header, payload in zip(headers, payloads, strict=True):
            length = len(header) + len(payload)
            if length == 0 or length > codec.MAX_FRAME:
                codec.frame(header + payload)  # raises ProtocolError with the codec's wording
            append(_LENGTH.pack(length))
            append(header)
            append(payload)
            if len(parts) >= IOV_MAX - 2:
                self._enqueue_parts(parts, wait)
                parts = []
                append = parts.append
        if parts:
            self._enqueue_parts(parts, wait)

    def buffered_frames(self) -> int:
        """Frames already read from the socket and not yet returned by ``recv``."""
        return len(self._frames)

    def recv(self, timeout: float) -> bytes | None:
        if self._frames:
            return self._frames.popleft()
        deadline = time.monotonic() + timeout
        while True:
            if self._closing:
                raise SessionClosed("session closed")
            remaining = max(0.0, deadline - time.monotonic())
            if not self._poller.poll(remaining * 1000):
                return None
            data = self._sock.recv(READ_SIZE)
            if not data:
                if self._framer.buffered:
                    raise ProtocolError(
                        f"connection closed in the middle of a frame "
                        f"({self._framer.buffered} bytes of it received)"
                    )
                raise SessionClosed("end of stream")
            frames = self._framer.feed(data)
            if frames:
                self._frames.extend(frames)
                return self._frames.popleft()
