"""Stream proxies: local TCP / Unix sockets carried over mesh streams (config.md §3.12).

* :class:`LocalToMesh` (``tcp-server``, ``unix-socket-server``) accepts local connections and
  dials a mesh service for each;
* :class:`MeshToLocal` (``tcp-client``, ``unix-socket-client``) listens on an advertised mesh
  service and connects each stream it accepts to a local address.

Each connection gets its own thread, which opens the far side (so a slow dial or TLS handshake
never holds up the accept loop, where upstream's TCP proxy dials inline) and then runs the
:class:`~receptor.services._bridge.Bridge`. A failed dial is logged with upstream's words and
closes the connection that was waiting for it.

Choices where upstream has none: a mesh dial gives up after :data:`MESH_DIAL_TIMEOUT` and a
local connect after :data:`LOCAL_CONNECT_TIMEOUT`; a local TLS client must finish its handshake
within :data:`TLS_HANDSHAKE_TIMEOUT`; running out of descriptors pauses the accept loop for
:data:`ACCEPT_BACKOFF` instead of stopping it for good.
"""

import errno
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from receptor._errors import ReceptorError
from receptor._log import logger
from receptor.services._bridge import Bridge, Stream

if TYPE_CHECKING:
    from receptor.netceptor import Netceptor
    from receptor.netceptor.tls import ClientTLS, ServerTLS

#: Longest wait for a mesh stream to the remote service to open.
MESH_DIAL_TIMEOUT = 30.0
#: Longest wait for a local TCP / Unix connection (Go's dialer has none; the kernel's is ~2 min).
LOCAL_CONNECT_TIMEOUT = 30.0
#: Longest wait for a local client's TLS handshake on a ``tcp-server`` with ``tlsserver``.
TLS_HANDSHAKE_TIMEOUT = 15.0
#: How long ``stop`` waits for connection threads to end.
STOP_TIMEOUT = 5.0
#: Pause after a transient accept failure (out of descriptors, ...) before accepting again;
#: upstream's proxy stops accepting for good instead.
ACCEPT_BACKOFF = 0.5
_TRANSIENT_ACCEPT_ERRORS = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.ECONNABORTED, errno.EPROTO}
)


class Connections:
    """The connection threads and bridges of one proxy, so ``stop`` can end them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._bridges: set[Bridge] = set()
        self.stopping = False

    def spawn(self, target: Callable[[Any], None], arg: Any) -> None:
        """Run ``target(arg)`` in a tracked thread."""

        def run() -> None:
            try:
                target(arg)
            except Exception:
                logger.exception("Proxy connection failed")
            finally:
                with self._lock:
                    self._threads.discard(threading.current_thread())

        thread = threading.Thread(target=run, name="proxy-connection", daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def bridge(self, a: Stream, a_name: str, b: Stream, b_name: str) -> None:
        """Run a bridge in the calling thread; aborted at once if the proxy is stopping."""
        bridge = Bridge(a, a_name, b, b_name)
        with self._lock:
            self._bridges.add(bridge)
            stopping = self.stopping
        if stopping:
            bridge.abort()
        try:
            bridge.run()
        finally:
            with self._lock:
                self._bridges.discard(bridge)

    def stop(self) -> None:
        with self._lock:
            self.stopping = True
            bridges = list(self._bridges)
            threads = list(self._threads)
        for bridge in bridges:
            bridge.abort()
        deadline = time.monotonic() + STOP_TIMEOUT  # threads still dialling may take longer
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


def _close_quietly(stream: Stream | socket.socket) -> None:
    try:
        stream.close()
    except OSError:
        pass


def go_dial_error(kind: str, address: str, err: OSError) -> str:
    """Go's wording for a failed dial: ``dial tcp 127.0.0.1:9: connect: connection refused``."""
    if isinstance(err, socket.gaierror):
        host = address.rpartition(":")[0]
        return f"dial {kind} {address}: lookup {host}: {err.strerror or err}"
    if isinstance(err, TimeoutError):
        return f"dial {kind} {address}: i/o timeout"
    if isinstance(err, ssl.SSLError | ReceptorError):
        return str(err)
    reason = (err.strerror or str(err)).lower()
    return f"dial {kind} {address}: connect: {reason}"


class LocalToMesh:
    """Accepts local stream connections and bridges each to ``node:service`` on the mesh."""

    def __init__(
        self,
        netceptor: "Netceptor",
        listener: socket.socket,
        kind: str,
        node: str,
        service: str,
        mesh_tls: "ClientTLS | None" = None,
        local_tls: "ServerTLS | None" = None,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        """``kind`` names the local side in log lines: ``TCP`` or ``Unix socket``."""
        self.netceptor = netceptor
        self.listener = listener
        self.kind = kind
        self.node = node
        self.service = service
        self.mesh_tls = mesh_tls
        self.local_tls = local_tls
        self._on_stop = on_stop
        self._connections = Connections()
        self._thread = threading.Thread(target=self._accept_loop, name="proxy-accept", daemon=True)

    def start(self) -> "LocalToMesh":
        self._thread.start()
        return self

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError as err:
                if self._connections.stopping:
                    return
                logger.error("Error accepting %s connection: %s", self.kind, err)
                if err.errno not in _TRANSIENT_ACCEPT_ERRORS:
                    return
                time.sleep(ACCEPT_BACKOFF)
                continue
            self._connections.spawn(self._serve, client)

    def _serve(self, client: socket.socket) -> None:
        try:
            local = self._local_stream(client)
        except BaseException:
            _close_quietly(client)  # never leave the client waiting on a failure of ours
            raise
        if local is None:
            return
        try:
            remote = self.netceptor.dial(
                self.node, self.service, tls=self.mesh_tls, timeout=MESH_DIAL_TIMEOUT
            )
        except (OSError, ReceptorError) as err:
            logger.error("Error connecting on Receptor network: %s", err)
            _close_quietly(local)
            return
        except BaseException:
            _close_quietly(local)
            raise
        local_name = "tcp service" if self.kind == "TCP" else "unix socket service"
        self._connections.bridge(local, local_name, remote, "receptor connection")

    def _local_stream(self, client: socket.socket) -> Stream | None:
        if self.local_tls is None:
            return client
        try:
            wrapped = self.local_tls.wrap(client, timeout=TLS_HANDSHAKE_TIMEOUT)
        except (OSError, ReceptorError):
            return None  # logged, and the socket closed, by wrap
        wrapped.settimeout(None)
        return wrapped

    def stop(self) -> None:
        self._connections.stopping = True
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept
        except OSError:
            pass
        self._thread.join(STOP_TIMEOUT)
        self.listener.close()
        if self._on_stop is not None:
            self._on_stop()
        self._connections.stop()


class MeshToLocal:
    """Accepts streams on an advertised mesh service and bridges each to a local connection."""

    def __init__(
        self,
        netceptor: "Netceptor",
        service: str,
        tags: dict[str, str],
        connect: Callable[[], Stream],
        kind: str,
        mesh_tls: "ServerTLS | None" = None,
    ) -> None:
        """``connect`` opens the local side; ``kind`` (``TCP``, ``Unix socket``) is for logs.

        Raises ReceptorError/OSError if the service cannot be listened on.
        """
        self.connect = connect
        self.kind = kind
        self.listener = netceptor.listen(service, tls=mesh_tls, advertise=True, tags=tags)
        self._connections = Connections()
        self._thread = threading.Thread(target=self._accept_loop, name="proxy-accept", daemon=True)

    def start(self) -> "MeshToLocal":
        self._thread.start()
        return self

    def _accept_loop(self) -> None:
        while True:
            try:
                remote = self.listener.accept()
            except (OSError, ReceptorError) as err:
                if not self._connections.stopping:
                    logger.error("Error accepting connection on Receptor network: %s", err)
                return
            self._connections.spawn(self._serve, remote)

    def _serve(self, remote: Stream) -> None:
        try:
            local = self.connect()
        except (OSError, ReceptorError) as err:
            logger.error("Error connecting via %s: %s", self.kind, err)
            _close_quietly(remote)
            return
        except BaseException:
            _close_quietly(remote)
            raise
        local_name = "tcp connection" if self.kind == "TCP" else "unix socket connection"
        self._connections.bridge(remote, "receptor service", local, local_name)

    def stop(self) -> None:
        self._connections.stopping = True
        self.listener.close()
        self._thread.join(STOP_TIMEOUT)
        self._connections.stop()


def tcp_connector(
    address: str, host: str, port: int, tls: "ClientTLS | None"
) -> Callable[[], Stream]:
    """Opens a TCP connection to ``address`` (TLS verified against ``host`` as a DNS name)."""

    def connect() -> Stream:
        try:
            sock = socket.create_connection((host, port), timeout=LOCAL_CONNECT_TIMEOUT)
        except OSError as err:
            raise OSError(go_dial_error("tcp", address, err)) from None
        if tls is None:
            sock.settimeout(None)
            return sock
        try:
            wrapped = tls.wrap(sock, host)
        except (OSError, ReceptorError):
            sock.close()
            raise
        wrapped.settimeout(None)
        return wrapped

    return connect


def unix_connector(filename: str) -> Callable[[], Stream]:
    """Opens a connection to the Unix socket ``filename``."""

    def connect() -> Stream:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(LOCAL_CONNECT_TIMEOUT)
        try:
            sock.connect(filename)
        except OSError as err:
            sock.close()
            raise OSError(go_dial_error("unix", filename, err)) from None
        sock.settimeout(None)
        return sock

    return connect
