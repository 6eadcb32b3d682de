"""UDP proxies: local datagrams carried as mesh datagrams (config.md §3.12, wire.md §13).

* :class:`UDPToMesh` (``udp-server``) listens on a local UDP port; each UDP source address
  gets its own ephemeral mesh PacketConn, so replies from ``node:service`` find their way
  back to that source;
* :class:`MeshToUDP` (``udp-client``) listens on an advertised mesh datagram service; each
  mesh source ``node:service`` gets its own connected UDP socket towards ``address``.

Choices where upstream has none (it keeps every session forever, and a failed session set-up
stops the whole proxy):

* a session ends after :data:`SESSION_IDLE` seconds without a datagram either way, and at most
  :data:`MAX_SESSIONS` live at once (the least recently used one makes room), so a stream of
  spoofed source addresses cannot exhaust threads or descriptors;
* a datagram too big for one mesh message (:data:`MAX_PAYLOAD`) is dropped with a log line:
  it could never be delivered;
* a failed session set-up drops that datagram only; ICMP "port unreachable" on a session's
  UDP socket is logged and the session kept (the target may come back).

Every datagram is forwarded as-is: nothing here parses it.
"""

import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from receptor._core import codec
from receptor._errors import ConfigError, MeshError, ReceptorError
from receptor._log import logger
from receptor.netceptor import CONN_TYPE_DATAGRAM, PacketConn

if TYPE_CHECKING:
    from receptor.netceptor import Netceptor

#: Largest datagram one mesh data message can carry.
MAX_PAYLOAD = codec.MAX_FRAME - codec.HEADER_LEN
#: A session without traffic for this long is closed.
SESSION_IDLE = 120.0
#: Live sessions per proxy; beyond this the least recently used one is closed.
MAX_SESSIONS = 256
#: Largest datagram read from a UDP socket (any larger is truncated by the kernel).
READ_SIZE = 65536
#: How long ``stop`` waits for each thread.
STOP_TIMEOUT = 5.0


def resolve_udp(host: str, port: int) -> tuple[int, tuple[str, int]]:
    """``(family, sockaddr)`` of ``host:port``; OSError if it does not resolve."""
    infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_DGRAM)
    family, _, _, _, sockaddr = infos[0]
    return family, (str(sockaddr[0]), int(sockaddr[1]))


def _format_address(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Session:
    """One pairing of a far address with the endpoint that carries its datagrams."""

    def __init__(self, key: object) -> None:
        self.key = key
        self.last_used = time.monotonic()
        self.thread: threading.Thread | None = None

    def touch(self) -> None:
        self.last_used = time.monotonic()

    def idle_for(self) -> float:
        return time.monotonic() - self.last_used

    def close(self) -> None:
        """Make the session's thread end (it then removes the session)."""
        raise NotImplementedError


class _SessionTable:
    """Sessions by key, least recently used first, bounded by :data:`MAX_SESSIONS`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sessions: OrderedDict[object, _Session] = OrderedDict()

    def get(self, key: object) -> _Session | None:
        with self.lock:
            session = self.sessions.get(key)
            if session is not None:
                self.sessions.move_to_end(key)
            return session

    def start(self, session: _Session, run: Callable[[Any], None], name: str) -> None:
        """Add ``session`` (closing the least recently used one if the table is full) and
        start its thread, ``run(session)``."""
        with self.lock:
            evicted = None
            if len(self.sessions) >= MAX_SESSIONS:
                _, evicted = self.sessions.popitem(last=False)
            self.sessions[session.key] = session
        if evicted is not None:
            evicted.close()
        session.thread = threading.Thread(target=run, args=(session,), name=name, daemon=True)
        session.thread.start()

    def remove(self, session: _Session) -> bool:
        with self.lock:
            if self.sessions.get(session.key) is session:
                del self.sessions[session.key]
                return True
            return False

    def close_all(self) -> None:
        """Close every session and wait for its thread (the proxy is stopping)."""
        with self.lock:
            sessions = list(self.sessions.values())
            self.sessions.clear()
        for session in sessions:
            session.close()
            if session.thread is not None:
                session.thread.join(STOP_TIMEOUT)


class _InboundSession(_Session):
    def __init__(self, key: tuple[str, int], conn: PacketConn) -> None:
        super().__init__(key)
        self.source = key
        self.conn = conn

    def close(self) -> None:
        self.conn.close()


class UDPToMesh:
    """``udp-server``: a local UDP port forwarded to the mesh datagram service node:service."""

    def __init__(
        self, netceptor: "Netceptor", host: str, port: int, node: str, service: str
    ) -> None:
        """Binds the port now: ConfigError with upstream's words if it cannot."""
        self.netceptor = netceptor
        self.node = node
        self.service = service
        address = f"{host}:{port}"
        try:
            if not 0 <= port <= 65535:  # getaddrinfo would wrap it round
                raise OSError("invalid port")
            family, sockaddr = resolve_udp(host, port)
        except OSError:
            raise ConfigError(f"could not resolve address {address}") from None
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self.sock.bind(sockaddr)
        except OSError as err:
            self.sock.close()
            reason = (err.strerror or str(err)).lower()
            raise ConfigError(
                f"error listening on UDP: listen udp {address}: bind: {reason}"
            ) from None
        self._sessions = _SessionTable()
        self._stopping = False
        self._thread = threading.Thread(target=self._read_loop, name="udp-server", daemon=True)

    def start(self) -> "UDPToMesh":
        self._thread.start()
        return self

    def _read_loop(self) -> None:
        while True:
            try:
                data, source = self.sock.recvfrom(READ_SIZE)
            except OSError as err:
                if self._stopping:
                    return
                logger.error("Error reading from UDP: %s", err)
                continue
            if self._stopping:
                return
            if len(data) > MAX_PAYLOAD:
                logger.error(
                    "Error sending packet on Receptor network: datagram of %d bytes is larger "
                    "than %d",
                    len(data),
                    MAX_PAYLOAD,
                )
                continue
            session = self._session_for((str(source[0]), int(source[1])))
            if session is None:
                continue
            session.touch()
            try:
                session.conn.write_to(data, self.node, self.service)
            except (MeshError, ReceptorError) as err:
                logger.error("Error sending packet on Receptor network: %s", err)

    def _session_for(self, source: tuple[str, int]) -> _InboundSession | None:
        session = self._sessions.get(source)
        if isinstance(session, _InboundSession):
            return session
        try:
            conn = self.netceptor.listen_packet("")
        except ReceptorError as err:
            logger.error("Error listening on Receptor network: %s", err)
            return None
        logger.debug("Received new UDP connection from %s", _format_address(source))
        session = _InboundSession(source, conn)
        self._sessions.start(session, self._mesh_to_udp, "udp-server-session")
        return session

    def _mesh_to_udp(self, session: _InboundSession) -> None:
        try:
            while True:
                try:
                    payload, node, service = session.conn.read_from(timeout=SESSION_IDLE)
                except TimeoutError:
                    if session.idle_for() >= SESSION_IDLE:
                        logger.debug(
                            "Closing idle UDP connection from %s", _format_address(session.source)
                        )
                        return
                    continue
                except MeshError:
                    return  # closed: evicted or stopping
                if (node, service) != (self.node, self.service):
                    logger.debug("Received packet from unexpected source %s:%s", node, service)
                    continue
                session.touch()
                try:
                    self.sock.sendto(payload, session.source)
                except OSError as err:
                    logger.error("Error sending packet via UDP: %s", err)
        finally:
            self._sessions.remove(session)
            session.close()

    def stop(self) -> None:
        self._stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes recvfrom
        except OSError:
            pass
        self._thread.join(STOP_TIMEOUT)
        self.sock.close()
        self._sessions.close_all()


class _OutboundSession(_Session):
    def __init__(self, key: tuple[str, str], sock: socket.socket) -> None:
        super().__init__(key)
        self.node, self.service = key
        self.sock = sock
        self.closed = False

    def close(self) -> None:
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the session's recv
        except OSError:
            pass


class MeshToUDP:
    """``udp-client``: an advertised mesh datagram service forwarded to a UDP address."""

    def __init__(self, netceptor: "Netceptor", service: str, address: str) -> None:
        """Resolves ``address`` and registers the service now (ConfigError if either fails)."""
        from receptor.backends.tcp import split_host_port

        self.address = address
        try:
            host, port = split_host_port(address)
            self.family, self.target = resolve_udp(host, port)
        except (ConfigError, OSError):
            raise ConfigError(f"could not resolve UDP address {address}") from None
        try:
            self.conn = netceptor.listen_packet(
                service,
                advertise=True,
                conn_type=CONN_TYPE_DATAGRAM,
                tags={"type": "UDP Proxy", "address": address},
            )
        except ReceptorError as err:
            raise ConfigError(f"error listening on service {service}: {err}") from None
        self._sessions = _SessionTable()
        self._stopping = False
        self._thread = threading.Thread(target=self._read_loop, name="udp-client", daemon=True)

    def start(self) -> "MeshToUDP":
        self._thread.start()
        return self

    def _read_loop(self) -> None:
        last_sweep = time.monotonic()
        while True:
            sweep_every = SESSION_IDLE / 4
            if time.monotonic() - last_sweep >= sweep_every:
                self._close_idle_sessions()
                last_sweep = time.monotonic()
            try:
                payload, node, service = self.conn.read_from(timeout=sweep_every)
            except TimeoutError:
                continue
            except MeshError as err:
                if not self._stopping:
                    logger.error("Error reading from Receptor network: %s", err)
                return
            session = self._session_for((node, service))
            if session is None:
                continue
            session.touch()
            try:
                session.sock.send(payload)
            except ConnectionRefusedError as err:
                logger.debug("Error writing to UDP: %s", err)  # an earlier datagram's ICMP
            except OSError as err:
                logger.error("Error writing to UDP: %s", err)

    def _close_idle_sessions(self) -> None:
        """Sessions wait in a blocking ``recv`` (only ``shutdown`` wakes one, and not one
        waiting with a timeout), so the read loop ends the idle ones."""
        with self._sessions.lock:
            idle = [s for s in self._sessions.sessions.values() if s.idle_for() >= SESSION_IDLE]
        for session in idle:
            assert isinstance(session, _OutboundSession)
            logger.debug("Closing idle UDP connection to %s:%s", session.node, session.service)
            self._sessions.remove(session)
            session.close()

    def _session_for(self, source: tuple[str, str]) -> _OutboundSession | None:
        session = self._sessions.get(source)
        if isinstance(session, _OutboundSession):
            return session
        sock = socket.socket(self.family, socket.SOCK_DGRAM)
        try:
            sock.connect(self.target)
        except OSError as err:
            sock.close()
            logger.error("Error connecting via UDP: %s", err)
            return None
        logger.debug("Opened new UDP connection to %s:%s", *source)
        session = _OutboundSession(source, sock)
        self._sessions.start(session, self._udp_to_mesh, "udp-client-session")
        return session

    def _udp_to_mesh(self, session: _OutboundSession) -> None:
        node, service = session.node, session.service
        try:
            while not session.closed:
                try:
                    data = session.sock.recv(READ_SIZE)
                except ConnectionRefusedError as err:
                    logger.error("Error reading from UDP: %s", err)
                    continue
                except OSError as err:
                    if not session.closed:
                        logger.error("Error reading from UDP: %s", err)
                    return
                if session.closed:
                    return
                session.touch()
                if len(data) > MAX_PAYLOAD:
                    logger.error(
                        "Error writing to the Receptor network: datagram of %d bytes is larger "
                        "than %d",
                        len(data),
                        MAX_PAYLOAD,
                    )
                    continue
                try:
                    self.conn.write_to(data, node, service)
                except (MeshError, ReceptorError) as err:
                    logger.error("Error writing to the Receptor network: %s", err)
        finally:
            self._sessions.remove(session)
            session.sock.close()

    def stop(self) -> None:
        self._stopping = True
        self.conn.close()
        self._thread.join(STOP_TIMEOUT)
        self._sessions.close_all()
