"""The UDP backend: ``udp-listener`` and ``udp-peer`` (wire.md §1.2, §1.4).

One backend message is one datagram, with no header and no reliability. The dialer uses a
connected socket; the listener binds one socket and makes a session for every source
``ip:port`` it has not seen (the first datagram starts the session and is its first message).
A session's record goes when the mesh connection on it ends, so a later datagram from the same
source starts afresh. Liveness is left to the mesh idle timeout: UDP itself has no keepalive.

Choices where upstream is silent or accidental (documented for operators):

* Datagrams longer than :data:`MAX_RECEIVE` (upstream's MTU, 16384 bytes — Go reads into a
  buffer of that size and silently truncates) and empty datagrams are dropped with a log line
  instead of being passed on truncated.
* A listener holds at most :data:`MAX_SESSIONS` sessions: a datagram from yet another new
  source is dropped (logged) rather than costing a thread, so a spoofed-source flood cannot
  exhaust the daemon. Upstream has no limit.
* Each session queues at most :data:`INBOX_LIMIT` undelivered datagrams; more are dropped, as
  a full socket buffer would.
"""

import collections
import errno
import select
import socket
import threading
import time

from receptor._errors import ConfigError
from receptor._log import logger
from receptor.backends._listener import SocketServer, describe_peer
from receptor.backends._redial import DialError, RedialingDialer
from receptor.backends.tcp import split_host_port
from receptor.netceptor import BackendInfo, Netceptor, SessionClosed

#: Largest message that fits one IPv4 UDP datagram; upstream refuses larger ones to send.
MAX_SEND = 65507
#: Largest datagram accepted (upstream's receive buffer, netceptor.MTU).
MAX_RECEIVE = 16384
MAX_SESSIONS = 1024
INBOX_LIMIT = 256
#: Upper bound of one blocking wait, so ``close`` is noticed even without a wake-up.
POLL_SLICE = 0.5


def _resolve(address: str) -> tuple[socket.AddressFamily, tuple[str, int]]:
    """``host:port`` → (family, sockaddr), with Go's error wording as ``ConfigError``."""
    host, port = split_host_port(address)
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as err:
        raise ConfigError(f"lookup {host}: {err.strerror or err}") from None
    family, _, _, _, sockaddr = infos[0]
    return family, (str(sockaddr[0]), int(sockaddr[1]))


def _os_error(code: int | None, message: str) -> OSError:
    """An OSError whose text is exactly ``message`` (Go style, no ``[Errno n]`` prefix)."""
    err = OSError(message)
    err.errno = code
    return err


def _too_large() -> OSError:
    return _os_error(errno.EMSGSIZE, "data too large")


def _check_datagram(data: bytes, truncated: bool, source: str) -> bool:
    """Whether a received datagram may go to the mesh; logs why not."""
    if truncated or len(data) > MAX_RECEIVE:
        logger.error("UDP datagram from %s dropped: longer than %d bytes", source, MAX_RECEIVE)
        return False
    if not data:
        logger.error("UDP datagram from %s dropped: empty", source)
        return False
    return True


# ---------------------------------------------------------------------------------- listener


class UDPListenerSession:
    """The datagrams of one source address on a listener's shared socket."""

    def __init__(self, listener: "UDPListener", sockaddr: tuple[str, int]) -> None:
        self.description = f"udp {describe_peer(sockaddr)}"
        self.sockaddr = sockaddr
        self._listener = listener
        self._inbox: collections.deque[bytes] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False

    def deliver(self, data: bytes) -> None:
        """Called by the listener's reader thread for each datagram from this source."""
        with self._cond:
            if len(self._inbox) >= INBOX_LIMIT:
                logger.debug("UDP session %s inbox full; datagram dropped", self.description)
                return
            self._inbox.append(data)
            self._cond.notify()

    def send(self, message: bytes, wait: bool = True) -> None:
        if self._closed:
            raise ConnectionError("session is closed")
        if len(message) > MAX_SEND:
            raise _too_large()
        self._listener.send_to(message, self.sockaddr, wait)

    def recv(self, timeout: float) -> bytes | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._inbox:
                if self._closed:
                    raise SessionClosed("session closed")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            return self._inbox.popleft()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._listener.forget(self)

    def release(self) -> None:
        self.close()


class UDPListener(SocketServer):
    """One bound UDP socket; a session (and mesh protocol thread) per source address."""

    network = "udp"
    kind = "udp-listener"

    def __init__(self, bindaddr: str, port: int) -> None:
        super().__init__(bindaddr, port)
        self._sessions: dict[tuple[str, int], UDPListenerSession] = {}

    def _listening(self) -> str:
        return f"UDP {self.bindaddr}:{self.port}"

    def _open(self) -> socket.socket:
        host = self.bindaddr.strip("[]")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((host, self.requested_port))
        except OSError as err:
            sock.close()
            reason = (err.strerror or str(err)).lower()
            raise ConfigError(
                f"listen udp {self.bindaddr}:{self.requested_port}: bind: {reason}"
            ) from None
        return sock

    def _ready(self, netceptor: Netceptor, info: BackendInfo) -> None:
        assert self._sock is not None
        try:
            data, _, flags, sockaddr = self._sock.recvmsg(MAX_RECEIVE + 1, 0, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as err:
            # ICMP errors for earlier sends surface here; they concern one peer only.
            logger.debug("UDP read error: %s", err)
            return
        source = describe_peer(sockaddr)
        if not _check_datagram(data, bool(flags & socket.MSG_TRUNC), source):
            return
        key = (sockaddr[0], sockaddr[1])
        with self._lock:
            session = self._sessions.get(key)
            new = session is None
            if session is None:
                if len(self._sessions) >= MAX_SESSIONS:
                    logger.error(
                        "UDP datagram from %s dropped: %d sessions already", source, MAX_SESSIONS
                    )
                    return
                session = UDPListenerSession(self, key)
                self._sessions[key] = session
        name = f"session {session.description}"
        if new and not self._spawn(name, self._run_session, netceptor, info, session):
            session.close()
            return
        session.deliver(data)

    @staticmethod
    def _run_session(netceptor: Netceptor, info: BackendInfo, session: UDPListenerSession) -> None:
        try:
            netceptor.run_protocol(session, info)
        finally:
            session.release()

    def send_to(self, message: bytes, sockaddr: tuple[str, int], wait: bool) -> None:
        sock = self._sock
        if sock is None or self._stopping.is_set():
            raise ConnectionError("listener is stopped")
        sock.sendto(message, 0 if wait else socket.MSG_DONTWAIT, sockaddr)

    def forget(self, session: UDPListenerSession) -> None:
        """Drop a session's record so that the next datagram from its source starts anew."""
        with self._lock:
            if self._sessions.get(session.sockaddr) is session:
                del self._sessions[session.sockaddr]

    def _interrupt(self) -> None:
        with self._lock:
            sessions = list(self._sessions.values())
        for session in sessions:
            session.close()


# ---------------------------------------------------------------------------------- dialer


class UDPDialerSession:
    """A connected UDP socket: every datagram to and from one peer address."""

    def __init__(self, sock: socket.socket, description: str) -> None:
        self.description = description
        self._sock = sock
        self._poller = select.poll()
        self._poller.register(sock.fileno(), select.POLLIN)
        self._closing = False
        self._released = False
        self._lock = threading.Lock()

    def send(self, message: bytes, wait: bool = True) -> None:
        if self._closing:
            raise ConnectionError("session is closed")
        if len(message) > MAX_SEND:
            raise _too_large()
        try:
            self._sock.send(message, 0 if wait else socket.MSG_DONTWAIT)
        except OSError as err:
            raise self._go_error("write", err) from None

    def recv(self, timeout: float) -> bytes | None:
        deadline = time.monotonic() + timeout
        while True:
            if self._closing:
                raise SessionClosed("session closed")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if not self._poller.poll(min(remaining, POLL_SLICE) * 1000):
                continue
            if self._closing:
                raise SessionClosed("session closed")
            try:
                data, _, flags, _ = self._sock.recvmsg(MAX_RECEIVE + 1, 0, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as err:
                raise self._go_error("read", err) from None
            if _check_datagram(data, bool(flags & socket.MSG_TRUNC), self.description):
                return data

    def _go_error(self, op: str, err: OSError) -> OSError:
        """Go's wording, e.g. ``read udp 127.0.0.1:5->127.0.0.1:6: read: connection refused``."""
        try:
            local = describe_peer(self._sock.getsockname())
            remote = describe_peer(self._sock.getpeername())
        except OSError:
            return err
        reason = (err.strerror or str(err)).lower()
        return _os_error(err.errno, f"{op} udp {local}->{remote}: {op}: {reason}")

    def close(self) -> None:
        self._closing = True
        try:
            # Wakes a reader blocked in poll (Linux does this for datagram sockets too).
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def release(self) -> None:
        self.close()
        with self._lock:
            if self._released:
                return
            self._released = True
        self._sock.close()


class UDPDialer(RedialingDialer):
    """Dials a UDP peer from a connected socket; redials when the mesh connection ends.

    The address must resolve when the backend is created (as upstream: a startup error).
    """

    kind = "udp-peer"
    transport = "UDP"

    def __init__(self, address: str, redial: bool = True) -> None:
        super().__init__(address, redial)
        self.family, self.sockaddr = _resolve(address)

    def dial(self) -> UDPDialerSession:
        sock = socket.socket(self.family, socket.SOCK_DGRAM)
        try:
            sock.connect(self.sockaddr)
        except OSError as err:
            sock.close()
            reason = (err.strerror or str(err)).lower()
            raise DialError(f"dial udp {self.address}: connect: {reason}") from None
        return UDPDialerSession(sock, f"udp {self.address}")
