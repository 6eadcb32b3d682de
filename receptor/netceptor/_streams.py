"""Mesh streams: one QUIC connection carrying one stream, over mesh datagrams (wire.md §14).

Threads. Every QUIC connection of a node is a sans-I/O qh3 object guarded by its own lock.
Work for it (a datagram from the mesh, bytes an application wrote, a timer) is appended to
the connection's work queues and then run by whichever thread gets the lock first: a
session reader that just decoded a datagram processes it at once (no hand-off to another
thread per packet), an application thread pushes its own writes, and the node's single
engine thread (:class:`StreamEngine`, one timer heap) fires qh3's timers, keep-alives and
deadlines. A thread that finds the lock taken leaves its work queued for the holder, which
looks again after releasing; so no thread ever waits on another connection's lock, and a
connection that delivers to another on the same node cannot deadlock.

Batching (``Netceptor.batch``): a session reader hands every datagram of one socket read to
the connection's queue and processes each connection once at the end of the read, so one
QUIC pass takes them all (qh3's ``receive_many_datagrams``, one acknowledgement for several
packets, one wake-up of the reader); and a pass sends all the datagrams it produced in one
write to the next hop, under the QUIC lock so packets never overtake each other. The bytes
on the wire are unchanged; per-packet costs (locks, wake-ups, system calls) are what drop.

User-facing objects (:class:`Listener`, :class:`Conn`) are blocking and socket-like; their
state lives under a separate condition so that applications never hold the QUIC lock
while they wait.

Datagrams leave with ``wait=False``: when a backend session's send queue is full the
datagram is dropped, as a router drops what it cannot queue, and QUIC's loss recovery
and congestion control slow the sender down. (Waiting would let two nodes pushing bulk
data at each other block both session readers on their full writers: a deadlock.)

Choices where upstream is silent or where we do better, documented for operators:

* ``Conn.close()`` sends FIN (upstream ``Close``) and then ends the QUIC connection with
  application code 0, reason ``normal close``, once our data is acknowledged and the peer
  has finished too, or after the 30 s idle timeout, so connections do not linger.
* A reader that stops reading makes its node hold incoming datagrams (up to a bound,
  beyond which they are dropped and retransmitted later) instead of buffering without
  limit; one held datagram is let through every few seconds so a stalled reader does
  not make the connection hit its idle timeout.
* A listener waits at most 15 s for a handshake to complete and 60 s for the stream
  (``Accept Timeout``), and keeps at most ``MAX_PENDING`` connections in handshake.
* ``shutdown(SHUT_RD)`` (and ``close()`` with unread input) sends STOP_SENDING; the peer's
  answering RESET_STREAM then ends only its direction, so what we still write is
  delivered (a control service streaming results and then shutting down both ways). A
  STOP_SENDING from the peer makes our further sends fail with ``BrokenPipeError`` but
  leaves what the peer sends us readable to the end.
"""

import collections
import functools
import heapq
import io
import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from receptor._errors import ConfigError, MeshError
from receptor._lazy import LazyModule
from receptor._log import logger
from receptor.netceptor._messages import PROBLEM_SERVICE_UNKNOWN, UnreachableMessage
from receptor.netceptor._packetconn import PacketConn

if TYPE_CHECKING:
    from qh3.quic import events

    from receptor.netceptor import _quic
    from receptor.netceptor._node import Netceptor
    from receptor.netceptor.tls import ClientTLS, ServerTLS
else:
    # qh3 and cryptography (about 25 MiB) are loaded by the first stream connection, not
    # by a node that only advertises a stream service (the control service does).
    events = LazyModule("qh3.quic.events", globals(), "events")
    _quic = LazyModule("receptor.netceptor._quic", globals(), "_quic")

# qh3 logs every peer close at WARNING; those are normal events here.
logging.getLogger("quic").setLevel(logging.ERROR)

ACCEPT_TIMEOUT = 60.0
#: After ``close()``, how long we wait for the peer before ending the connection
#: (``_quic.IDLE_TIMEOUT``; a test keeps the two equal).
LINGER_TIMEOUT = 30.0
#: Connections in handshake, waiting for their stream or for ``accept``, per listener.
MAX_PENDING = 256
#: Bytes an application may queue ahead of QUIC before ``sendall`` waits.
SEND_HIGH = 4 * 1024 * 1024
#: Received bytes buffered for a slow reader before incoming datagrams are held.
RECV_HIGH = 8 * 1024 * 1024
#: Datagrams queued for one connection (held for a slow reader, or waiting while another
#: thread processes the connection); beyond this they are dropped and QUIC resends them.
HOLD_LIMIT = 2048
#: While holding, one datagram goes through this often (keeps the connection alive).
HOLD_TRICKLE = 5.0
#: Largest piece handed to QUIC at once by ``sendall``.
SEND_CHUNK = 1024 * 1024
#: How long a node stays known as one of ours (large datagrams) without a new handshake.
LARGE_PEER_TTL = 3600.0
#: Error code and reasons of upstream's listener (wire.md §14.3).
APP_ERROR = 500
APP_ERROR_NOT_ALLOWED = 499


class StreamError(MeshError, ConnectionError):
    """A mesh stream failed; an ``OSError`` (ConnectionError) as sockets raise."""


class ServiceUnknownError(MeshError, ConnectionRefusedError):
    """The dialed service does not exist on the target node."""


class HandshakeError(MeshError, ConnectionError):
    """The QUIC/TLS handshake failed (certificate checks included)."""


class _UpgradeToLarge(ConnectionError):
    """A probe connection found one of our nodes: dial again with large datagrams."""


# --------------------------------------------------------------------------- engine


class StreamEngine:
    """The per-node timer thread of the stream layer, plus what it knows about peers."""

    def __init__(self, netceptor: "Netceptor") -> None:
        self.netceptor = netceptor
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Conn]] = []
        self._counter = itertools.count()
        self._stopped = False
        self._large_peers: dict[str, float] = {}
        self._thread = threading.Thread(
            target=self._loop, name=f"streams-{netceptor.node_id}", daemon=True
        )
        self._thread.start()

    # ---------------------------------------------------------------- timers

    def schedule(self, conn: "Conn", when: float) -> None:
        """Make sure ``conn`` is woken at ``when`` (or earlier: early wake-ups are harmless)."""
        current = conn._timer_when
        if current is not None and current <= when:
            return
        with self._cond:
            if self._stopped:
                return
            conn._timer_when = when
            heapq.heappush(self._heap, (when, next(self._counter), conn))
            if self._heap[0][2] is conn:
                self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopped:
                        return
                    if not self._heap:
                        self._cond.wait()
                        continue
                    delay = self._heap[0][0] - time.monotonic()
                    if delay <= 0:
                        break
                    self._cond.wait(delay)
                when, _, conn = heapq.heappop(self._heap)
                if conn._timer_when != when:
                    continue
                conn._timer_when = None
            try:
                conn._on_timer()
            except Exception:
                logger.exception("Error in mesh stream timer")

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(5.0)

    # ---------------------------------------------------------------- peer knowledge

    def is_large_peer(self, node: str) -> bool:
        seen = self._large_peers.get(node)
        return seen is not None and time.monotonic() - seen < LARGE_PEER_TTL

    def learn_peer(self, node: str, ours: bool) -> None:
        if ours:
            self._large_peers[node] = time.monotonic()
        else:
            self._large_peers.pop(node, None)

    # ---------------------------------------------------------------- API

    def listen(
        self,
        service: str,
        tls: "ServerTLS | None",
        advertise: bool,
        tags: dict[str, str] | None,
    ) -> "Listener":
        from receptor.netceptor._messages import CONN_TYPE_STREAM, CONN_TYPE_STREAM_TLS

        # A TLS config is checked now (its errors belong to start-up); the self-signed
        # certificate of a service without TLS is made with its first connection.
        configs = _server_configs(tls) if tls is not None else None
        listener = Listener(self, tls, configs)
        endpoint = self.netceptor.listen_packet(
            service,
            advertise=advertise,
            conn_type=CONN_TYPE_STREAM_TLS if tls is not None else CONN_TYPE_STREAM,
            tags=tags,
            factory=lambda nc, svc, hops, limit: _Endpoint(nc, svc, hops, self, listener),
        )
        assert isinstance(endpoint, _Endpoint)
        listener._endpoint = endpoint
        listener.service = endpoint.service
        return listener

    def dial(
        self, node: str, service: str, tls: "ClientTLS | None", timeout: float | None
    ) -> "Conn":
        if node.lower() == "localhost":
            node = self.netceptor.node_id
        large = self.is_large_peer(node) or node == self.netceptor.node_id
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            return self._dial_once(node, service, tls, timeout, large)
        except _UpgradeToLarge:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            return self._dial_once(node, service, tls, remaining, True)

    def _dial_once(
        self,
        node: str,
        service: str,
        tls: "ClientTLS | None",
        timeout: float | None,
        large: bool,
    ) -> "Conn":
        """One QUIC connection. A small one to a node not known yet is a *probe*: its
        stream opens only after the handshake, and if the peer turns out to be one of ours
        the connection is closed unused (the listener never sees a stream) and the caller
        dials again with large datagrams (see ``_quic``'s module docstring)."""
        config = _client_config(self.netceptor.node_id, large, tls)
        endpoint = self.netceptor.listen_packet(
            "", factory=lambda nc, svc, hops, limit: _Endpoint(nc, svc, hops, self, None)
        )
        assert isinstance(endpoint, _Endpoint)
        quic = _quic.MeshQuicConnection(configuration=config)
        conn = Conn(
            self, endpoint, node, service, quic, client_tls=tls, large=large, probe=not large
        )
        endpoint.add(conn)
        conn._start_client()
        try:
            conn._wait_established(timeout)
        except _UpgradeToLarge:
            raise
        except BaseException:
            conn._abort()
            if large and not conn._handshake_done:
                # Perhaps the node is no longer one of ours: start small next time.
                self.learn_peer(node, False)
            raise
        return conn


def _server_configs(tls: "ServerTLS | None") -> dict[bool, Any]:
    """Server configurations for small and large datagrams, made at listen time.

    With a tls-server (ConnType 2) its certificate chain and key are used; when it asks for
    client certificates each connection also gets a verifier (see :func:`_client_verifier`).
    A tls-server that cannot serve mesh streams is a configuration error (ConfigError, not
    MeshError: the caller's text for mesh errors speaks of the service, not of TLS).
    """
    if tls is None:
        cert_pem, key_pem = _quic.self_signed_pem()
        return {
            large: _quic.server_configuration(cert_pem, key_pem, large) for large in (False, True)
        }
    if not tls.cert_pem or not tls.key_pem:
        raise ConfigError(f"TLS config {tls.name} has no certificate for mesh streams")
    try:
        return {
            large: _quic.server_configuration(tls.cert_pem, tls.key_pem, large)
            for large in (False, True)
        }
    except _quic.LOAD_ERRORS as err:
        raise ConfigError(
            f"TLS config {tls.name}: its certificate or key cannot be used for mesh streams: {err}"
        ) from None


def _client_verifier(
    tls: "ServerTLS", node: str, service: str, local_service: str
) -> Callable[[list[bytes]], None]:
    """How a mesh service judges a client's certificate chain during the handshake
    (wire.md §12.2, §12.6), as quic-go with upstream's verifier does:

    * no certificate: refused (``requireclientcert``: ``tls: client didn't provide a
      certificate``, alert certificate_required; ``clientcas`` only: upstream's verifier
      refuses with ``RVF failed: peer certificate missing``);
    * the chain against ``clientcas`` (the system roots without it) and validity dates:
      ``tls: failed to verify certificate: x509: …``; the clientAuth usage;
    * pinned fingerprints (``pinnedclientcert``). Upstream skips them on this path when
      ``requireclientcert`` is set; we apply them always (README: differences);
    * with ``requireclientcert``: the connecting node's ID in the certificate.

    A refusal is logged naming the peer and the reason; the client gets the TLS alert.
    """
    from receptor.netceptor._quic_tls import ClientCertificateError
    from receptor.netceptor.tls import TLSPeerError, verify_chain

    def refuse(reason: str, alert: int = 42) -> ClientCertificateError:
        logger.error(
            "Refused a connection from %s:%s to mesh service %s (tls-server %s): %s",
            node,
            service,
            local_service,
            tls.name,
            reason,
        )
        return ClientCertificateError(reason, alert)

    def verify(chain: list[bytes]) -> None:
        if not chain:
            if tls.require_client_cert:
                raise refuse("tls: client didn't provide a certificate", 116)
            raise refuse("RVF failed: peer certificate missing")
        try:
            roots = tls.client_cas_pem if tls.client_cas_pem is not None else _system_roots()
            verify_chain(chain, roots)
        except TLSPeerError as err:
            text = str(err).removeprefix("RVF failed verify: ")
            if "certificate signed by unknown authority" in text:
                alert = 48  # unknown_ca, as Go sends
            elif "has expired or is not yet valid" in text:
                alert = 45  # certificate_expired
            else:
                alert = 42
            raise refuse(f"tls: failed to verify certificate: {text}", alert) from None
        try:
            tls.check_peer(chain, node if tls.require_client_cert else None)
        except (TLSPeerError, ValueError) as err:
            raise refuse(str(err)) from None

    return verify


def _client_config(node_id: str, large: bool, tls: "ClientTLS | None") -> Any:
    """A dialer's qh3 configuration; with a tls-client its certificate (if any) is
    presented, and the server's chain and node ID are checked after the handshake."""
    if tls is None:
        return _quic.client_configuration(node_id, large)
    return _quic.client_configuration(
        node_id, large, cert_pem=tls.cert_pem, key_pem=tls.key_pem, nist_key_shares=True
    )


def _system_roots() -> bytes:
    """PEM of the system trust store (tls-clients without ``rootcas``)."""
    import ssl

    paths = ssl.get_default_verify_paths()
    for path in (paths.cafile, paths.openssl_cafile):
        if path and os.path.isfile(path):
            with open(path, "rb") as handle:
                return handle.read()
    return b""


def check_mesh_server_chain(tls: "ClientTLS", chain: list[bytes], node_id: str) -> str | None:
    """wire.md §12.3 for mesh streams: chain (no host name), pins, EKU, the target's node
    ID. Returns quic-go's error text (``x509: …``) or None."""
    from receptor.netceptor.tls import TLSPeerError, verify_chain

    try:
        if not tls.insecure_skip_verify:
            roots = tls.root_cas_pem if tls.root_cas_pem is not None else _system_roots()
            verify_chain(chain, roots)
        tls.check_peer(chain, node_id)
    except (TLSPeerError, ValueError) as err:
        text = str(err)
        for prefix in ("RVF failed verify: ", "RVF failed: "):
            text = text.removeprefix(prefix)
        logger.error("RVF failed verify: %s", text)
        return text
    return None


# --------------------------------------------------------------------------- endpoint


class _Endpoint(PacketConn):
    """The mesh service of a listener or a dialer: demultiplexes datagrams by peer."""

    def __init__(
        self,
        netceptor: "Netceptor",
        service: str,
        hops_to_live: int,
        engine: StreamEngine,
        listener: "Listener | None",
    ) -> None:
        super().__init__(netceptor, service, hops_to_live, 0)
        self.engine = engine
        self.listener = listener
        self.conns: dict[tuple[str, str], Conn] = {}
        self._lock = threading.Lock()
        self.dropped_datagrams = 0

    def add(self, conn: "Conn") -> None:
        with self._lock:
            self.conns[(conn.remote_node, conn.remote_service)] = conn

    def remove(self, conn: "Conn") -> None:
        with self._lock:
            key = (conn.remote_node, conn.remote_service)
            if self.conns.get(key) is conn:
                del self.conns[key]
            empty = not self.conns
        if empty and self.listener is None:
            self.close()

    def deliver(self, payload: bytes, from_node: str, from_service: str) -> None:
        conn = self.conns.get((from_node, from_service))
        if conn is None:
            conn = self._new_server_conn(payload, from_node, from_service)
            if conn is None:
                return
        conn._post_datagram(payload)

    def _new_server_conn(self, payload: bytes, node: str, service: str) -> "Conn | None":
        listener = self.listener
        if listener is None or self.closed or listener.closed:
            self.dropped_datagrams += 1
            return None
        dcid = _quic.initial_dcid(payload)
        if dcid is None or len(payload) < _quic.SMALL_DATAGRAM or len(dcid) < 8:
            # Not the start of a QUIC v1 connection (garbage, or a stray packet of a
            # connection that is gone): dropped, as a UDP QUIC server would.
            self.dropped_datagrams += 1
            logger.debug("Dropped a stray datagram from %s:%s to %s", node, service, self.service)
            return None
        with self._lock:
            existing = self.conns.get((node, service))
            if existing is not None:  # another reader thread was first
                return existing
            if not listener._add_pending():
                self.dropped_datagrams += 1
                logger.warning("Too many pending mesh connections to %s; dropped one", self.service)
                return None
            large = _quic.initial_is_marked(payload)
            tls = listener.tls
            quic = _quic.MeshQuicConnection(
                configuration=listener.configs[large],
                original_destination_connection_id=dcid,
                client_auth=_client_verifier(tls, node, service, self.service)
                if tls is not None and tls.verify_clients
                else None,
            )
            conn = Conn(self.engine, self, node, service, quic, listener=listener, large=large)
            self.conns[(node, service)] = conn
        conn._start_server()
        return conn

    def deliver_unreachable(self, message: UnreachableMessage) -> None:
        conn = self.conns.get((message.to_node, message.to_service))
        if conn is not None and message.problem == PROBLEM_SERVICE_UNKNOWN:
            conn._post_op(lambda: conn._fail_locked(_service_unknown(conn)))

    def close(self) -> None:
        super().close()
        with self._lock:
            conns = list(self.conns.values())
        for conn in conns:
            conn._post_op(conn._endpoint_closed_locked)


def _service_unknown(conn: "Conn") -> ServiceUnknownError:
    return ServiceUnknownError(f"service unknown: {conn.remote_node}:{conn.remote_service}")


# --------------------------------------------------------------------------- listener


class Listener:
    """Accepts mesh stream connections on one service (upstream ``ListenAndAdvertise``)."""

    def __init__(self, engine: StreamEngine, tls: "ServerTLS | None", configs: dict | None) -> None:
        self.engine = engine
        self.tls = tls
        self._configs = configs
        self._configs_lock = threading.Lock()
        self.service = ""
        self.pending_count = 0
        self.closed = False
        self._endpoint: _Endpoint | None = None
        self._cond = threading.Condition()
        self._ready: collections.deque[Conn] = collections.deque()

    @property
    def configs(self) -> dict[bool, Any]:
        """The qh3 server configurations (small and large datagrams), made on first use."""
        with self._configs_lock:
            if self._configs is None:
                self._configs = _server_configs(self.tls)
            return self._configs

    def accept(self, timeout: float | None = None) -> "Conn":
        """The next connection whose stream has started; TimeoutError, or OSError once
        the listener is closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._ready:
                if self.closed:
                    raise OSError(f"listener {self.service} is closed")
                if deadline is None:
                    self._cond.wait()
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError("accept timed out")
                    self._cond.wait(remaining)
            return self._ready.popleft()

    def _add_pending(self) -> bool:
        with self._cond:
            if self.pending_count + len(self._ready) >= MAX_PENDING:
                return False
            self.pending_count += 1
            return True

    def _offer(self, conn: "Conn") -> bool:
        """Move a connection whose stream started from pending to ready."""
        with self._cond:
            self.pending_count -= 1
            if self.closed:
                return False
            self._ready.append(conn)
            self._cond.notify()
            return True

    def close(self) -> None:
        """Stop listening: the service is withdrawn and its connections end."""
        with self._cond:
            if self.closed:
                return
            self.closed = True
            ready = list(self._ready)
            self._ready.clear()
            self._cond.notify_all()
        for conn in ready:
            conn.close()
        if self._endpoint is not None:
            self._endpoint.close()

    def __enter__(self) -> "Listener":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- connection


class _RawConn(io.RawIOBase):
    """The raw file under ``Conn.makefile``."""

    def __init__(self, conn: "Conn") -> None:
        self._conn = conn

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._conn.recv_into(buffer)

    def write(self, data: Any) -> int:
        self._conn.sendall(data)
        return len(data)


class Conn:
    """One mesh stream: a blocking, socket-like byte stream to ``remote_node:remote_service``.

    ``recv`` returns ``b""`` at end of stream; errors are ``OSError`` subclasses
    (``ConnectionResetError`` when the peer or the route is lost, ``TimeoutError``).
    """

    def __init__(
        self,
        engine: StreamEngine,
        endpoint: _Endpoint,
        remote_node: str,
        remote_service: str,
        quic: "_quic.MeshQuicConnection",
        *,
        listener: Listener | None = None,
        client_tls: "ClientTLS | None" = None,
        large: bool = False,
        probe: bool = False,
    ) -> None:
        self.engine = engine
        self.remote_node = remote_node
        self.remote_service = remote_service
        self.large = large
        self._endpoint = endpoint
        self._quic = quic
        self._listener = listener
        self._client_tls = client_tls
        self._is_client = listener is None
        self._probe = probe
        # Work queues and the QUIC lock (see the module docstring).
        self._lock = threading.Lock()
        self._datagrams: collections.deque[bytes] = collections.deque()
        self._ops: collections.deque[Callable[[], None]] = collections.deque()
        self._timer_due = False
        self._timer_when: float | None = None
        # QUIC-side state (QUIC lock).
        self._sid: int | None = None
        self._got_first_byte = self._is_client
        self._handshake_done = False
        self._terminated = False
        self._closing = False
        self._peer_fin = False
        self._send_reset = False
        self._holding_since: float | None = None
        self._started = time.monotonic()
        self._next_keepalive = 0.0
        self._linger_deadline: float | None = None
        self._ping_uid = 0
        # Application-side state (condition).
        self._cond = threading.Condition()
        self._recv: collections.deque[bytes] = collections.deque()
        self._recv_bytes = 0
        self._rx_pending: list[bytes] = []
        self._rx_end = False
        self._eof = False
        self._error: OSError | None = None
        self._send_error: OSError | None = None
        self._established = False
        #: A dialer whose server asked for a certificate waits for HANDSHAKE_DONE.
        self._awaiting_confirmation = False
        self._queued = 0
        self._unsent = 0
        self._send_waiters = 0
        self._write_shut = False
        self._read_shut = False
        self._app_closed = False
        self._timeout: float | None = None

    # ================================================================ public API

    @property
    def local_service(self) -> str:
        return self._endpoint.service

    def settimeout(self, timeout: float | None) -> None:
        self._timeout = timeout

    def gettimeout(self) -> float | None:
        return self._timeout

    def recv(self, n: int = 65536) -> bytes:
        """Up to ``n`` bytes; ``b""`` at end of stream."""
        if n <= 0:
            return b""
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        with self._cond:
            while not self._recv:
                if self._eof or self._read_shut:
                    return b""
                if self._error is not None:
                    raise self._error
                if self._app_closed:
                    raise OSError("connection is closed")
                self._wait(deadline)
            chunk = self._take(n)
            before = self._recv_bytes
            self._recv_bytes -= len(chunk)
            resume = before > RECV_HIGH >= self._recv_bytes
        if resume:
            self._run()
        return chunk

    def _take(self, n: int) -> bytes:
        """Up to ``n`` received bytes, joining queued pieces (one per QUIC packet) so that
        a large ``recv`` is not one packet's worth; the caller holds the condition."""
        queue = self._recv
        chunk = queue[0]
        size = len(chunk)
        if size >= n:
            if size == n:
                return queue.popleft()
            queue[0] = chunk[n:]
            return chunk[:n]
        queue.popleft()
        if not queue or len(queue[0]) + size > n:
            return chunk
        pieces = [chunk]
        while queue and size + len(queue[0]) <= n:
            piece = queue.popleft()
            pieces.append(piece)
            size += len(piece)
        return b"".join(pieces)

    def recv_into(self, buffer: Any, nbytes: int = 0) -> int:
        view = memoryview(buffer).cast("B")
        data = self.recv(nbytes or len(view))
        view[: len(data)] = data
        return len(data)

    def send(self, data: Any) -> int:
        self.sendall(data)
        return len(data)

    def sendall(self, data: Any) -> None:
        """Queue all of ``data`` on the stream (waits while too much is queued)."""
        view = memoryview(data).cast("B")
        if not isinstance(data, bytes):
            view = memoryview(bytes(view))
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        for start in range(0, len(view), SEND_CHUNK):
            chunk = view[start : start + SEND_CHUNK]
            with self._cond:
                self._send_waiters += 1
                try:
                    while True:
                        self._check_writable()
                        if self._queued + self._unsent < SEND_HIGH:
                            break
                        self._wait(deadline)
                finally:
                    self._send_waiters -= 1
                self._queued += len(chunk)
            self._post_op(functools.partial(self._send_locked, chunk))

    def shutdown(self, how: int = socket.SHUT_WR) -> None:
        """``SHUT_WR`` sends FIN (the peer reads EOF); ``SHUT_RD`` discards further input."""
        if how in (socket.SHUT_RD, socket.SHUT_RDWR):
            with self._cond:
                self._read_shut = True
                self._recv.clear()
                self._recv_bytes = 0
                self._cond.notify_all()
            self._post_op(self._stop_reading_locked)
        if how in (socket.SHUT_WR, socket.SHUT_RDWR):
            with self._cond:
                if self._write_shut:
                    return
                self._write_shut = True
            self._post_op(self._send_fin_locked)

    def close(self) -> None:
        """Finish sending (FIN) and release the connection (see the module docstring)."""
        with self._cond:
            if self._app_closed:
                return
            self._app_closed = True
            send_fin = not self._write_shut
            self._write_shut = True
            self._recv.clear()
            self._recv_bytes = 0
            self._cond.notify_all()

        def closing() -> None:
            if send_fin:
                self._send_fin_locked()
            self._closing = True
            self._linger_deadline = time.monotonic() + LINGER_TIMEOUT

        self._post_op(closing)

    def makefile(self, mode: str = "rb", buffering: int | None = None) -> io.BufferedIOBase:
        """A buffered binary file over the stream (``rb``, ``wb`` or ``rwb``), as
        ``socket.makefile``; closing the file does not close the connection."""
        size = buffering if buffering and buffering > 0 else io.DEFAULT_BUFFER_SIZE
        raw = _RawConn(self)
        reading, writing = "r" in mode, "w" in mode
        if reading and writing:
            return io.BufferedRWPair(raw, raw, size)
        if writing:
            return io.BufferedWriter(raw, size)
        return io.BufferedReader(raw, size)

    def fileno(self) -> int:
        return -1

    def __enter__(self) -> "Conn":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<mesh Conn {self.engine.netceptor.node_id}:{self.local_service} -> "
            f"{self.remote_node}:{self.remote_service}>"
        )

    # ================================================================ app-side helpers

    def _wait(self, deadline: float | None) -> None:
        if deadline is None:
            self._cond.wait()
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out")
        self._cond.wait(remaining)

    def _check_writable(self) -> None:
        if self._error is not None:
            raise self._error
        if self._send_error is not None:
            raise self._send_error
        if self._write_shut:
            raise BrokenPipeError("cannot send after shutdown or close")
        if self._terminated:
            raise BrokenPipeError("connection closed by peer")

    def _wait_established(self, timeout: float | None) -> None:
        limit = (
            _quic.HANDSHAKE_TIMEOUT if timeout is None else min(timeout, _quic.HANDSHAKE_TIMEOUT)
        )
        deadline = time.monotonic() + limit
        with self._cond:
            while not self._established:
                if self._error is not None:
                    raise self._error
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"timed out connecting to {self.remote_node}:{self.remote_service}"
                    )
                self._cond.wait(remaining)

    # ================================================================ work queues

    def _post_datagram(self, data: bytes) -> None:
        if len(self._datagrams) >= HOLD_LIMIT:
            self._endpoint.dropped_datagrams += 1
            return
        self._datagrams.append(data)
        # A session reader defers the processing to the end of its batch, so that one
        # QUIC pass takes every datagram of one socket read (see ``Netceptor.batch``).
        if not self.engine.netceptor.defer(self, self._run):
            self._run()

    def _post_op(self, op: Callable[[], None]) -> None:
        self._ops.append(op)
        self._run()

    def _on_timer(self) -> None:
        self._timer_due = True
        self._run()

    def _has_work(self) -> bool:
        return bool(
            self._ops or self._timer_due or (self._datagrams and self._holding_since is None)
        )

    def _run(self) -> None:
        """Process queued work if no other thread is doing so (see the module docstring).
        The datagrams a pass produces leave together when it ends (one node batch)."""
        netceptor = self.engine.netceptor
        began = netceptor.batch_begin()
        try:
            while True:
                if not self._lock.acquire(blocking=False):
                    return
                try:
                    self._pump()
                except Exception as err:
                    logger.exception(
                        "Mesh stream to %s:%s failed", self.remote_node, self.remote_service
                    )
                    self._terminate_locked(StreamError(f"internal error: {err}"))
                finally:
                    self._lock.release()
                if not self._has_work():
                    return
        finally:
            if began:
                netceptor.batch_end()

    # ================================================================ QUIC side (QUIC lock)

    def _start_client(self) -> None:
        def start() -> None:
            self._quic.connect(_quic.FAKE_ADDR, time.monotonic())
            if not self._probe:
                self._open_stream_locked()

        self._post_op(start)

    def _open_stream_locked(self) -> None:
        """Open the stream with its leading 0x00 byte (wire.md §14.3)."""
        self._sid = self._quic.get_next_available_stream_id()
        self._quic.send_stream_data(self._sid, b"\x00")

    def _start_server(self) -> None:
        pass  # the first datagram follows at once and creates the qh3 state

    def _pump(self) -> None:
        quic = self._quic
        if self._terminated:
            self._ops.clear()
            self._datagrams.clear()
            self._timer_due = False
            return
        now = time.monotonic()
        while self._ops:
            self._ops.popleft()()
            if self._terminated:
                return
        self._feed_datagrams(now)
        if self._timer_due:
            self._timer_due = False
            self._check_deadlines(now)
            if self._terminated:
                return
            timer = quic.get_timer()
            if timer is not None and timer <= now:
                quic.handle_timer(now)
        self._process_events()
        if self._terminated:
            return
        if self._awaiting_confirmation and self._quic.handshake_confirmed():
            self._awaiting_confirmation = False
            self._set_established()
        self._transmit(now)
        self._maybe_finish(now)
        self._reschedule(now)

    def _feed_datagrams(self, now: float) -> None:
        if not self._datagrams:
            return
        if self._recv_bytes > RECV_HIGH:
            if self._holding_since is None:
                self._holding_since = now
            if now - self._holding_since < HOLD_TRICKLE:
                return
            # Let one through so that both ends see traffic (idle timers).
            self._holding_since = now
            self._quic.receive_datagram(self._datagrams.popleft(), _quic.FAKE_ADDR, now)
            return
        self._holding_since = None
        datagrams = self._datagrams
        if len(datagrams) == 1:
            self._quic.receive_datagram(datagrams.popleft(), _quic.FAKE_ADDR, now)
            return
        batch = list(datagrams)
        datagrams.clear()
        self._quic.receive_datagrams(batch, now)

    def _check_deadlines(self, now: float) -> None:
        if not self._handshake_done and now - self._started > _quic.HANDSHAKE_TIMEOUT:
            self._close_connection_locked(0, "handshake timeout")
            self._terminate_locked(TimeoutError("handshake did not complete in time"))
            return
        if (
            not self._is_client
            and not self._got_first_byte
            and now - self._started > ACCEPT_TIMEOUT
        ):
            self._close_connection_locked(APP_ERROR, "Accept Timeout")
            self._terminate_locked(TimeoutError("accept timeout"))
            return
        if self._linger_deadline is not None and now >= self._linger_deadline:
            if not self._quic_closing:
                if self._all_sent_acknowledged():
                    self._close_connection_locked(0, "normal close")
                else:
                    # Still delivering what the application wrote before closing, as a
                    # TCP socket does after close(); a dead peer ends it via the idle timeout.
                    self._linger_deadline = now + LINGER_TIMEOUT
            elif now >= self._linger_deadline + 5.0:
                self._terminate_locked(None)
                return
        if (
            self._is_client
            and self._handshake_done
            and not self._closing
            and not self._quic_closing  # the peer closed: qh3 refuses a ping then
            and now >= self._next_keepalive
        ):
            self._ping_uid += 1
            self._quic.send_ping(self._ping_uid)
            self._next_keepalive = now + _quic.KEEPALIVE_PERIOD

    @property
    def _quic_closing(self) -> bool:
        return getattr(self._quic, "_close_event", None) is not None

    def _process_events(self) -> None:
        try:
            self._process_event_queue()
        finally:
            self._flush_received()

    def _process_event_queue(self) -> None:
        quic = self._quic
        stream_data = events.StreamDataReceived
        while True:
            event = quic.next_event()
            if event is None:
                return
            if type(event) is stream_data:
                self._on_stream_data(event.stream_id, event.data, event.end_stream)
                if self._terminated:
                    return
                continue
            self._flush_received()  # keep data ahead of what other events cause
            if isinstance(event, events.StreamDataReceived):
                self._on_stream_data(event.stream_id, event.data, event.end_stream)
            elif isinstance(event, events.HandshakeCompleted):
                self._on_handshake(event)
            elif isinstance(event, events.ConnectionTerminated):
                self._on_terminated(event)
                return
            elif isinstance(event, events.StreamReset) and event.stream_id == self._sid:
                if self._read_shut or self._app_closed:
                    # The answer to our STOP_SENDING (shutdown(SHUT_RD) or close()): only
                    # the peer's direction ends; what we still send must get through.
                    self._peer_fin = True
                else:
                    self._fail_locked(ConnectionResetError("stream reset by peer"))
            elif isinstance(event, events.StopSendingReceived) and event.stream_id == self._sid:
                self._send_reset = True
                # Only our sending ends: what the peer still sends us stays readable
                # (a results stream shut down with SHUT_RDWR while it writes).
                with self._cond:
                    if self._send_error is None and not self._write_shut:
                        self._send_error = BrokenPipeError("peer stopped reading")
                    self._cond.notify_all()
            if self._terminated:
                return

    def _on_handshake(self, event: "events.HandshakeCompleted") -> None:
        self._handshake_done = True
        if event.alpn_protocol != _quic.ALPN:
            self._close_connection_locked(0x120 | 0x0, "no application protocol")
            self._terminate_locked(HandshakeError("peer did not agree on ALPN netceptor"))
            return
        self.engine.learn_peer(self.remote_node, self._quic.peer_is_receptor_py())
        if self._is_client:
            error = self._check_server_certificate()
            if error is not None:
                self._close_connection_locked(_quic.CRYPTO_ERROR_CERT, error, transport=True)
                self._terminate_locked(HandshakeError(f"CRYPTO_ERROR 0x12a (local): {error}"))
                return
            if self._probe:
                if self._quic.peer_is_receptor_py():
                    # Our Finished first, so that the listener completes its handshake and
                    # sees the close at once (not after its draining period).
                    self._transmit(time.monotonic())
                    self._close_connection_locked(0, "normal close")
                    self._terminate_locked(_UpgradeToLarge("peer accepts large datagrams"))
                    return
                self._open_stream_locked()
            self._next_keepalive = time.monotonic() + _quic.KEEPALIVE_PERIOD
            if self._quic.server_asked_for_certificate() and not self._quic.handshake_confirmed():
                # The server judges our certificate after our Finished: the dial succeeds
                # once it confirms the handshake (HANDSHAKE_DONE), and a refusal is a dial
                # error (CRYPTO_ERROR …), not a stream that breaks at its first read.
                self._awaiting_confirmation = True
                return
            self._set_established()

    def _set_established(self) -> None:
        with self._cond:
            self._established = True
            self._cond.notify_all()

    def _check_server_certificate(self) -> str | None:
        chain = self._quic.peer_der_chain()
        if self._client_tls is None:
            if not _quic.chain_has_insecure_cn(chain):
                return "insecure connection to secure service"
            return None
        return check_mesh_server_chain(self._client_tls, chain, self.remote_node)

    def _on_stream_data(self, stream_id: int, data: bytes, end: bool) -> None:
        if self._sid is None:
            if self._is_client or stream_id % 4 != 0:
                return
            self._sid = stream_id
        elif stream_id != self._sid:
            return  # further streams on one connection are never accepted (§14.3)
        if not self._got_first_byte:
            if not data:
                if end:
                    self._reject_stream("Read Error: EOF")
                return
            if data[0] != 0:
                self._reject_stream("Read Data Error")
                return
            data = data[1:]
            self._got_first_byte = True
            listener = self._listener
            if listener is not None:
                with self._cond:
                    self._established = True
                if not listener._offer(self):
                    self._close_connection_locked(APP_ERROR, "Listener Closed")
                    self._terminate_locked(None)
                    return
        if data or end:
            # Handed to the application once per pass (``_flush_received``).
            self._rx_pending.append(data)
            if end:
                self._rx_end = True
        if end:
            self._peer_fin = True

    def _flush_received(self) -> None:
        """Give the application what this pass received: one lock, one wake-up."""
        pieces = self._rx_pending
        if not pieces:
            return
        self._rx_pending = []
        end, self._rx_end = self._rx_end, False
        with self._cond:
            if not self._read_shut and not self._app_closed:
                for data in pieces:
                    if data:
                        self._recv.append(data)
                        self._recv_bytes += len(data)
            if end:
                self._eof = True
            self._cond.notify_all()

    def _reject_stream(self, reason: str) -> None:
        self._close_connection_locked(APP_ERROR, reason)
        self._terminate_locked(None)

    def _on_terminated(self, event: "events.ConnectionTerminated") -> None:
        if self._closing or (self._peer_fin and self._write_shut):
            error: OSError | None = None
        elif event.reason_phrase == "normal close" and event.error_code == 0:
            error = None
        elif (not self._handshake_done or self._awaiting_confirmation) and (
            event.error_code >= 0x100
        ):
            error = HandshakeError(
                f"CRYPTO_ERROR 0x{event.error_code:x} (remote): {event.reason_phrase}"
            )
        else:
            reason = event.reason_phrase or f"error code {event.error_code}"
            error = ConnectionResetError(f"mesh stream ended: {reason}")
        self._terminate_locked(error)

    def _send_locked(self, chunk: memoryview) -> None:
        if self._sid is not None and not self._quic_closing and not self._send_reset:
            try:
                self._quic.send_stream_data(self._sid, chunk)
            except ValueError:
                # The peer stopped reading (STOP_SENDING) and QUIC reset our side: the
                # bytes are discarded; the application gets BrokenPipeError on its next
                # send (see ``_process_event_queue``).
                self._send_reset = True
        with self._cond:
            self._queued -= len(chunk)

    def _send_fin_locked(self) -> None:
        if self._sid is not None and not self._quic_closing and not self._send_reset:
            try:
                self._quic.send_stream_data(self._sid, b"", end_stream=True)
            except ValueError:
                self._send_reset = True  # as in ``_send_locked``

    def _stop_reading_locked(self) -> None:
        if self._sid is not None and not self._quic_closing and not self._peer_fin:
            try:
                self._quic.stop_stream(self._sid, APP_ERROR_NOT_ALLOWED)
            except Exception:
                pass

    def _transmit(self, now: float) -> None:
        netceptor = self.engine.netceptor
        service = self._endpoint.service
        datagrams = self._quic.datagram_payloads(now)
        if datagrams:
            try:
                # All of this pass's datagrams in one write, under the QUIC lock, so
                # that packets leave in the order QUIC numbered them.
                netceptor.send_messages(
                    service, self.remote_node, self.remote_service, datagrams, wait=False
                )
            except MeshError as err:
                if str(err) == PROBLEM_SERVICE_UNKNOWN:
                    self._fail_locked(_service_unknown(self))
                    return
                # No route (yet, or any more): QUIC retransmits, or the idle timeout ends it.
                logger.debug("Mesh stream datagram to %s not sent: %s", self.remote_node, err)
        if self._sid is not None:
            unsent = self._quic.get_send_buffer_size(self._sid)
            if unsent != self._unsent or self._send_waiters:
                with self._cond:
                    self._unsent = unsent
                    if self._send_waiters:
                        self._cond.notify_all()

    def _maybe_finish(self, now: float) -> None:
        """After ``close()``: end the connection once both directions are done."""
        if not self._closing or self._quic_closing:
            return
        if self._peer_fin and self._all_sent_acknowledged():
            self._close_connection_locked(0, "normal close")
            self._transmit(now)

    def _all_sent_acknowledged(self) -> bool:
        core = getattr(self._quic, "_core", None)
        in_flight = getattr(core, "bytes_in_flight", 0) if core is not None else 0
        return self._unsent == 0 and self._queued == 0 and in_flight == 0

    def _reschedule(self, now: float) -> None:
        if self._terminated:
            return
        candidates = []
        timer = self._quic.get_timer()
        if timer is not None:
            candidates.append(timer)
        if not self._handshake_done:
            candidates.append(self._started + _quic.HANDSHAKE_TIMEOUT)
        elif not self._is_client and not self._got_first_byte:
            candidates.append(self._started + ACCEPT_TIMEOUT)
        if self._linger_deadline is not None:
            if now < self._linger_deadline:
                candidates.append(self._linger_deadline)
            else:
                candidates.append(self._linger_deadline + 5.0)
        if self._is_client and self._handshake_done and not self._closing:
            candidates.append(self._next_keepalive)
        if self._holding_since is not None and self._datagrams:
            candidates.append(self._holding_since + HOLD_TRICKLE)
        if candidates:
            self.engine.schedule(self, max(min(candidates), now))

    def _close_connection_locked(self, code: int, reason: str, transport: bool = False) -> None:
        """Send CONNECTION_CLOSE (application close unless ``transport``)."""
        self._closing = True
        try:
            self._quic.close(
                error_code=code, frame_type=0 if transport else None, reason_phrase=reason
            )
            self._transmit(time.monotonic())
        except Exception:
            pass
        if self._linger_deadline is None:
            self._linger_deadline = time.monotonic() + 5.0

    def _endpoint_closed_locked(self) -> None:
        """The mesh service is gone (listener closed, node shut down): say goodbye once
        and end at once, since nothing can arrive for us any more."""
        if self._terminated:
            return
        self._close_connection_locked(0, "normal close")
        self._terminate_locked(
            None if self._peer_fin else ConnectionAbortedError("mesh service closed")
        )

    def _fail_locked(self, error: OSError) -> None:
        """End the connection at once with ``error`` for the application."""
        if self._terminated:
            return
        self._close_connection_locked(0, "normal close")
        self._terminate_locked(error)

    def _abort(self) -> None:
        self._post_op(lambda: self._fail_locked(ConnectionAbortedError("connection aborted")))

    def _terminate_locked(self, error: OSError | None) -> None:
        if self._terminated:
            return
        self._terminated = True
        self._closing = True
        with self._cond:
            if error is not None and self._error is None and not self._app_closed:
                self._error = error
            if error is None:
                self._eof = True
            self._cond.notify_all()
        listener = self._listener
        if listener is not None and not self._got_first_byte:
            self._got_first_byte = True
            with listener._cond:
                listener.pending_count -= 1
        self._endpoint.remove(self)


__all__ = [
    "Conn",
    "HandshakeError",
    "Listener",
    "ServiceUnknownError",
    "StreamEngine",
    "StreamError",
]
