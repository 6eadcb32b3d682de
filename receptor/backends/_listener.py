"""The serving side of the listening backends (``tcp-``, ``ws-`` and ``udp-listener``).

Thread model (DESIGN.md, the shape of CPython's ``socketserver``): one bound socket served by
one thread in a ``selectors`` loop that ``stop`` wakes through a socket pair; every connection
(or UDP source) gets a thread of its own, and ``stop`` wakes and joins them all.

* :class:`SocketServer` — the loop, the wake-up and the tracked worker threads.
* :class:`StreamListener` — accepts TCP connections; a connection's thread turns it into a
  session (TLS handshake, HTTP upgrade, ...) and runs the mesh protocol on it.
"""

import abc
import selectors
import socket
import threading
from collections.abc import Callable

from receptor._errors import ConfigError
from receptor._log import logger
from receptor.backends._redial import ReleasableSession
from receptor.backends._stream import raw_shutdown
from receptor.netceptor import Backend, BackendInfo, Netceptor


def listen_tcp(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv6 when ``host`` has a colon, brackets
    allowed); failures raise ``ConfigError`` in Go's words, e.g. ``listen tcp
    127.0.0.1:80: bind: address already in use``."""
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as err:
        sock.close()
        reason = (err.strerror or str(err)).lower()
        raise ConfigError(f"listen tcp {host}:{port}: bind: {reason}") from None
    return sock


def describe_peer(sockaddr: object) -> str:
    """``host:port`` of a socket address, the host in brackets when it is IPv6 (Go's form)."""
    if isinstance(sockaddr, tuple) and len(sockaddr) >= 2:
        host = str(sockaddr[0])
        return f"[{host}]:{sockaddr[1]}" if ":" in host else f"{host}:{sockaddr[1]}"
    return str(sockaddr)


class SocketServer(Backend):
    """One bound socket served by one loop thread, plus tracked worker threads.

    Subclasses say how to bind (``_open``), what a readable socket means (``_ready``) and how
    to wake their workers on stop (``_interrupt``). ``stop`` ends the loop, interrupts,
    joins every worker, then closes the bound socket (workers may still send on it).
    """

    #: Network named in the invalid-port error (``listen tcp: ...``).
    network = "tcp"
    #: Name prefix of the loop thread, e.g. ``tcp-listener``.
    kind = "listener"

    def __init__(self, bindaddr: str, port: int) -> None:
        if not 0 <= port <= 65535:
            raise ConfigError(f"listen {self.network}: address {port}: invalid port")
        self.bindaddr = bindaddr
        self.requested_port = port
        self.port = port
        self._sock: socket.socket | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._loop_thread: threading.Thread | None = None

    @abc.abstractmethod
    def _open(self) -> socket.socket:
        """The bound socket to serve; ``ConfigError`` in Go's words when that fails."""

    @abc.abstractmethod
    def _listening(self) -> str:
        """What the start-up debug line says after ``Listening on``."""

    @abc.abstractmethod
    def _ready(self, netceptor: Netceptor, info: BackendInfo) -> None:
        """The bound socket is readable (on the loop thread): accept, or read a datagram."""

    @abc.abstractmethod
    def _interrupt(self) -> None:
        """Wake every worker thread so that it finishes (the loop has ended already)."""

    def start(self, netceptor: Netceptor, info: BackendInfo) -> None:
        sock = self._open()
        self._sock = sock
        self.port = sock.getsockname()[1]
        logger.debug("Listening on %s", self._listening())
        self._loop_thread = threading.Thread(
            target=self._serve_loop,
            args=(netceptor, info),
            name=f"{self.kind} {self.bindaddr}:{self.port}",
            daemon=True,
        )
        self._loop_thread.start()

    def _serve_loop(self, netceptor: Netceptor, info: BackendInfo) -> None:
        assert self._sock is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._sock, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self._wake_r:
                        return
                    self._ready(netceptor, info)

    def _spawn(self, name: str, target: Callable[..., None], *args: object) -> bool:
        """Run ``target(*args)`` in a worker thread that ``stop`` joins; False (and nothing
        started) once the backend is stopping."""
        thread = threading.Thread(target=self._work, args=(target, args), name=name, daemon=True)
        with self._lock:
            if self._stopping.is_set():
                return False
            self._threads.add(thread)
        thread.start()
        return True

    def _work(self, target: Callable[..., None], args: tuple[object, ...]) -> None:
        try:
            target(*args)
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def stop(self) -> None:
        self._stopping.set()
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        if self._loop_thread is not None:
            self._loop_thread.join()
        self._interrupt()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join()
        if self._sock is not None:
            self._sock.close()
        self._wake_r.close()
        self._wake_w.close()


class StreamListener(SocketServer):
    """Accepts TCP connections; each one's thread makes a session and runs the mesh on it.

    Until it is a session, a connection is *tracked*: ``stop`` shuts down the socket its
    thread works on (the accepted one, or the TLS socket wrapping it), so a slow handshake
    or request cannot hold ``stop`` up. Sessions are closed by ``stop``.
    """

    #: Name prefix of a connection's thread, followed by the peer address.
    connection_thread = "connection"

    def __init__(self, bindaddr: str, port: int) -> None:
        super().__init__(bindaddr, port)
        #: Connections not yet sessions, by the thread working on each.
        self._connections: dict[threading.Thread, socket.socket] = {}
        self._sessions: set[ReleasableSession] = set()

    @abc.abstractmethod
    def _open_session(self, conn: socket.socket, peer: object) -> ReleasableSession | None:
        """Turn an accepted connection into a session, or None when that failed (logged
        here; the connection is then closed by the caller)."""

    def _open(self) -> socket.socket:
        return listen_tcp(self.bindaddr, self.requested_port)

    def _ready(self, netceptor: Netceptor, info: BackendInfo) -> None:
        assert self._sock is not None
        try:
            conn, peer = self._sock.accept()
        except OSError as err:
            if not self._stopping.is_set():
                logger.error("Error accepting connection: %s", err)
            return
        name = f"{self.connection_thread} {peer}"
        if not self._spawn(name, self._serve, netceptor, info, conn, peer):
            conn.close()

    def _serve(
        self, netceptor: Netceptor, info: BackendInfo, conn: socket.socket, peer: object
    ) -> None:
        session = None
        try:
            if self._track(conn):
                session = self._open_session(conn, peer)
        finally:
            with self._lock:
                self._connections.pop(threading.current_thread(), None)
            if session is None:
                conn.close()
        if session is not None:
            self._run_session(netceptor, info, session)

    def _track(self, sock: socket.socket) -> bool:
        """Record the socket the current connection thread now works on (for ``stop``);
        False once the backend is stopping (the caller then gives up)."""
        with self._lock:
            if self._stopping.is_set():
                return False
            self._connections[threading.current_thread()] = sock
        return True

    def _run_session(
        self, netceptor: Netceptor, info: BackendInfo, session: ReleasableSession
    ) -> None:
        with self._lock:
            stopping = self._stopping.is_set()
            if not stopping:
                self._sessions.add(session)
        if stopping:
            session.release()
            return
        try:
            netceptor.run_protocol(session, info)
        finally:
            session.release()
            with self._lock:
                self._sessions.discard(session)

    def _interrupt(self) -> None:
        if self._sock is not None:
            self._sock.close()  # no more connections while the others end
        with self._lock:
            connections = list(self._connections.values())
            sessions = list(self._sessions)
        for conn in connections:
            raw_shutdown(conn)
        for session in sessions:
            session.close()
