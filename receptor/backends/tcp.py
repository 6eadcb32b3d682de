"""The TCP backend: ``tcp-listener`` and ``tcp-peer`` (wire.md §1.1, §1.4).

Thread model (DESIGN.md): a listener accepts in a ``selectors`` loop that ``stop`` wakes
through a socket pair; every session gets a thread that runs the mesh protocol (the reader)
plus the session's writer thread. A dialer is one thread that dials, runs the session, and
redials with upstream's back-off.
"""

import selectors
import socket
import threading

from receptor._errors import ConfigError
from receptor._log import logger
from receptor.backends._stream import StreamSession
from receptor.netceptor import Backend, BackendInfo, Netceptor

#: Upstream's redial back-off: 5 s, times 1.5 after each wait, at most 20 s.
REDIAL_FIRST = 5.0
REDIAL_FACTOR = 1.5
REDIAL_MAX = 20.0
DIAL_TIMEOUT = 15.0


def split_host_port(address: str) -> tuple[str, int]:
    """Go's ``net.SplitHostPort`` plus port parsing; ``ConfigError`` with Go's wording."""
    if address.startswith("["):
        end = address.find("]")
        if end < 0:
            raise ConfigError(f"address {address}: missing ']' in address")
        host, rest = address[1:end], address[end + 1 :]
        if not rest.startswith(":"):
            raise ConfigError(f"address {address}: missing port in address")
        port_text = rest[1:]
    else:
        host, sep, port_text = address.rpartition(":")
        if not sep:
            raise ConfigError(f"address {address}: missing port in address")
        if ":" in host:
            raise ConfigError(f"address {address}: too many colons in address")
    return host, _parse_port(port_text, address)


def _parse_port(text: str, address: str) -> int:
    if text.isdigit() and int(text) <= 65535:
        return int(text)
    if text.isdigit():
        raise ConfigError(f"address {address}: invalid port")
    try:
        return socket.getservbyname(text, "tcp")
    except OSError:
        raise ConfigError(f"address {text}: unknown port") from None


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


def go_dial_error(kind: str, address: str, err: OSError) -> str:
    """Render a socket error the way Go's net package does, e.g. ``dial tcp h:p: connect:
    connection refused``."""
    if isinstance(err, socket.gaierror):
        host = address.rpartition(":")[0]
        return f"dial {kind} {address}: lookup {host}: {err.strerror or err}"
    if isinstance(err, TimeoutError):
        return f"dial {kind} {address}: i/o timeout"
    reason = (err.strerror or str(err)).lower()
    return f"dial {kind} {address}: connect: {reason}"


class TCPListener(Backend):
    """Accepts TCP connections and runs a mesh session on each."""

    def __init__(self, bindaddr: str, port: int) -> None:
        if not 0 <= port <= 65535:
            raise ConfigError(f"listen tcp: address {port}: invalid port")
        self.bindaddr = bindaddr
        self.requested_port = port
        self.port = port
        self._sock: socket.socket | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._sessions: set[StreamSession] = set()
        self._threads: set[threading.Thread] = set()
        self._accept_thread: threading.Thread | None = None

    def start(self, netceptor: Netceptor, info: BackendInfo) -> None:
        sock = listen_tcp(self.bindaddr, self.requested_port)
        self._sock = sock
        self.port = sock.getsockname()[1]
        logger.debug("Listening on TCP %s:%d", self.bindaddr, self.port)
        self._accept_thread = threading.Thread(
            target=self._accept_loop,
            args=(netceptor, info),
            name=f"tcp-listener {self.bindaddr}:{self.port}",
            daemon=True,
        )
        self._accept_thread.start()

    def _accept_loop(self, netceptor: Netceptor, info: BackendInfo) -> None:
        assert self._sock is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._sock, selectors.EVENT_READ)
            selector.register(self._wake_r, selectors.EVENT_READ)
            while not self._stopping.is_set():
                for key, _ in selector.select():
                    if key.fileobj is self._wake_r:
                        return
                    try:
                        conn, peer = self._sock.accept()
                    except OSError as err:
                        if not self._stopping.is_set():
                            logger.error("Error accepting connection: %s", err)
                        continue
                    self._spawn(netceptor, info, conn, peer)

    def _spawn(
        self, netceptor: Netceptor, info: BackendInfo, conn: socket.socket, peer: object
    ) -> None:
        session = StreamSession(conn, f"tcp {peer}")
        thread = threading.Thread(
            target=self._run_session, args=(netceptor, info, session), daemon=True
        )
        with self._lock:
            if self._stopping.is_set():
                session.release()
                return
            self._sessions.add(session)
            self._threads.add(thread)
        thread.name = f"session {session.description}"
        thread.start()

    def _run_session(self, netceptor: Netceptor, info: BackendInfo, session: StreamSession) -> None:
        try:
            netceptor.run_protocol(session, info)
        finally:
            session.release()
            with self._lock:
                self._sessions.discard(session)
                self._threads.discard(threading.current_thread())

    def stop(self) -> None:
        self._stopping.set()
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        if self._accept_thread is not None:
            self._accept_thread.join()
        if self._sock is not None:
            self._sock.close()
        with self._lock:
            sessions = list(self._sessions)
            threads = list(self._threads)
        for session in sessions:
            session.close()
        for thread in threads:
            thread.join()
        self._wake_r.close()
        self._wake_w.close()


class TCPDialer(Backend):
    """Dials a TCP peer, runs a mesh session, and redials with back-off when it ends."""

    def __init__(self, address: str, redial: bool = True) -> None:
        self.address = address
        self.host, self.port = split_host_port(address)
        self.redial = redial
        self._stopping = threading.Event()
        self._session: StreamSession | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self, netceptor: Netceptor, info: BackendInfo) -> None:
        logger.debug("Running TCP peer connection %s", self.address)
        self._thread = threading.Thread(
            target=self._dial_loop, args=(netceptor, info), name=f"tcp-peer {self.address}"
        )
        self._thread.daemon = True
        self._thread.start()

    def _dial(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=DIAL_TIMEOUT)
        sock.settimeout(None)
        return sock

    def _dial_loop(self, netceptor: Netceptor, info: BackendInfo) -> None:
        delay = REDIAL_FIRST
        while not self._stopping.is_set():
            try:
                sock = self._dial()
            except OSError as err:
                message = go_dial_error("tcp", self.address, err)
                if not self.redial:
                    logger.error("Backend connection failed: %s", message)
                    return
                logger.warning("Backend connection failed (will retry): %s", message)
            else:
                delay = REDIAL_FIRST
                session = StreamSession(sock, f"tcp {self.address}")
                with self._lock:
                    self._session = session
                    stopping = self._stopping.is_set()
                try:
                    if not stopping:
                        netceptor.run_protocol(session, info)
                finally:
                    session.release()
                    with self._lock:
                        self._session = None
                if self._stopping.is_set():
                    return
                if not self.redial:
                    logger.error("Backend connection exited")
                    return
                logger.warning("Backend connection exited (will retry)")
            if self._stopping.wait(delay):
                return
            delay = min(delay * REDIAL_FACTOR, REDIAL_MAX)

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            session = self._session
        if session is not None:
            session.close()
        if self._thread is not None:
            self._thread.join()
