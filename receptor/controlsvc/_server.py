"""The control server: listeners, the accept loop and one thread per client.

Shaped like ``socketserver``: a selector loop over every listening socket plus a wake-up
socket pair for ``stop``; each accepted client runs a :class:`ControlSession` in a thread of
its own (taken from :class:`~receptor._workers.Workers`, which reuses the threads of
finished sessions); ``stop`` closes the listeners, shuts the clients' sockets down and joins
the threads. Several ``control-service`` entities share one server (and one command table),
each adding its listeners.
"""

from __future__ import annotations

import fcntl
import os
import selectors
import socket
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from receptor._errors import ConfigError, ReceptorError
from receptor._log import logger
from receptor._workers import Workers
from receptor.controlsvc._session import ControlSession, Handler

if TYPE_CHECKING:  # imported where used: a Unix-socket-only server needs none of them
    from receptor.netceptor import Conn, Listener, Netceptor
    from receptor.netceptor._tls_registry import TLSRegistry
    from receptor.netceptor.tls import ServerTLS


class ControlServiceError(ReceptorError):
    """A control listener could not be opened."""


class _UnixListener:
    """A Unix socket listener guarded by an exclusive ``flock`` on ``<filename>.lock``."""

    def __init__(self, filename: str, permissions: int) -> None:
        self.filename = filename
        try:
            lock_fd = os.open(filename + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as err:
            # Upstream's wording: its flock helper returns the bare errno text.
            reason = (err.strerror or str(err)).lower()
            raise ControlServiceError(f"could not acquire lock on socket file: {reason}") from None
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise ControlServiceError(
                "could not acquire lock on socket file: fslock is already locked"
            ) from None
        self._lock_fd = lock_fd
        try:
            try:
                os.unlink(filename)
            except FileNotFoundError:
                pass
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self.sock.bind(filename)
                self.sock.listen(64)
                # Go applies only the permission bits: YAML 600 (decimal) becomes 0o130.
                os.chmod(filename, permissions & 0o777)
            except OSError:
                self.sock.close()
                raise
        except OSError as err:
            os.close(lock_fd)
            reason = (err.strerror or str(err)).lower()
            raise ControlServiceError(f"listen unix {filename}: bind: {reason}") from None

    def close(self) -> None:
        self.sock.close()
        os.close(self._lock_fd)


class ControlServer:
    """Serves the control protocol on any number of listeners."""

    def __init__(
        self,
        netceptor: Netceptor,
        version: str,
        reload_handler: Callable[[], str | None] | None = None,
    ) -> None:
        from receptor.controlsvc._commands import standard_commands

        self.netceptor = netceptor
        self.version = version
        #: Returns None on success or upstream's error text (with ``ERRORCODE n``).
        self.reload_handler = reload_handler
        self.commands: dict[str, Handler] = standard_commands()
        #: The daemon's named TLS configs (``connect`` looks tls-clients up there).
        self.tls_registry: TLSRegistry | None = None
        self._lock = threading.Lock()
        self._unix: list[_UnixListener] = []
        self._listeners: dict[socket.socket, str] = {}
        self._listener_tls: dict[socket.socket, ServerTLS] = {}
        self._mesh: list[Listener] = []
        self._mesh_threads: list[threading.Thread] = []
        #: Clients being served (the sessions' threads come from ``_workers``).
        self._mesh_clients: dict[Conn, None] = {}
        self._clients: dict[socket.socket, None] = {}
        self._workers = Workers("control-session")
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._stopping = False
        self._thread = threading.Thread(
            target=self._accept_loop, name="control-accept", daemon=True
        )
        self._thread.start()

    def add_command(self, name: str, handler: Handler) -> None:
        if name in self.commands:
            raise ValueError(f"control function named {name} already exists")
        self.commands[name] = handler

    # ------------------------------------------------------------------ listeners

    def listen_unix(self, filename: str, permissions: int) -> None:
        listener = _UnixListener(filename, permissions)
        with self._lock:
            self._unix.append(listener)
        self._add_listener(listener.sock, "unix")

    def listen_tcp(self, address: str, tls: ServerTLS | None = None) -> socket.socket:
        """``port`` or ``host:port`` (upstream: no colon means ``0.0.0.0:<port>``).

        With ``tls`` each client must complete the TLS handshake within 10 s of being
        accepted (control.md §1), else it is logged and closed. The ``ServerTLS`` is read
        at every accept, so certificates re-read by ``reload`` apply to new clients.
        """
        host, _, port_text = address.rpartition(":") if ":" in address else ("0.0.0.0", "", address)
        if not port_text.isdigit() or int(port_text) > 65535:
            raise ControlServiceError(f"listen tcp: address tcp/{port_text}: unknown port")
        from receptor.backends.tcp import listen_tcp

        try:
            sock = listen_tcp(host, int(port_text))
        except ConfigError as err:
            raise ControlServiceError(str(err)) from None
        if tls is not None:
            with self._lock:
                self._listener_tls[sock] = tls
        self._add_listener(sock, "tcp" if tls is None else "tls")
        return sock

    def listen_mesh(self, service: str, tls: ServerTLS | None = None) -> None:
        """Serve control sessions on mesh streams to ``service`` (control.md §1).

        Advertised with tags ``{"type": "Control Service"}``; with ``tls`` the service is
        a TLS one (ConnType 2). Each accepted stream gets its own session thread, as
        socket clients do.
        """
        listener = self.netceptor.listen(
            service, tls=tls, advertise=True, tags={"type": "Control Service"}
        )
        thread = threading.Thread(
            target=self._accept_mesh, args=(listener,), name=f"control-mesh-{service}"
        )
        thread.daemon = True
        with self._lock:
            self._mesh.append(listener)
            self._mesh_threads.append(thread)
        thread.start()

    def _accept_mesh(self, listener: Listener) -> None:
        while True:
            try:
                conn = listener.accept()
            except OSError:
                return  # the listener was closed
            with self._lock:
                if self._stopping:
                    conn.close()
                    return
                self._mesh_clients[conn] = None
            self._workers.run(self._serve_mesh, conn)

    def _serve_mesh(self, conn: Conn) -> None:
        logger.debug(
            "Client connected to control service from %s:%s", conn.remote_node, conn.remote_service
        )
        self._run_session(conn, "mesh", self._mesh_clients)  # type: ignore[arg-type]

    def _add_listener(self, sock: socket.socket, transport: str) -> None:
        with self._lock:
            self._listeners[sock] = transport
            self._selector.register(sock, selectors.EVENT_READ)
        self._wake_w.send(b"x")

    # ------------------------------------------------------------------ serving

    def _accept_loop(self) -> None:
        while True:
            for key, _ in self._selector.select():
                sock = key.fileobj
                if sock is self._wake_r:
                    self._wake_r.recv(4096)
                    if self._stopping:
                        return
                    continue
                assert isinstance(sock, socket.socket)
                try:
                    client, _ = sock.accept()
                except OSError as err:
                    logger.error("Error accepting connection: %s", err)
                    continue
                transport = self._listeners.get(sock, "tcp")
                with self._lock:
                    if self._stopping:
                        client.close()
                        return
                    self._clients[client] = None
                self._workers.run(self._serve, client, transport, self._listener_tls.get(sock))

    def _serve(self, client: socket.socket, transport: str, tls: ServerTLS | None = None) -> None:
        if tls is not None:
            wrapped = self._handshake(client, tls)
            if wrapped is None:
                return
            client = wrapped
        logger.debug("Client connected to control service")
        self._run_session(client, transport, self._clients)

    def _run_session(self, client: socket.socket, transport: str, registry: dict) -> None:
        """Serve one client until it leaves, then forget and close it."""
        try:
            ControlSession(self, client, transport).run()
        except OSError as err:
            logger.debug("Control session ended: %s", err)
        except Exception:
            logger.exception("Control session failed")
        finally:
            with self._lock:
                registry.pop(client, None)
            client.close()
            logger.debug("Client disconnected from control service")

    def _handshake(self, client: socket.socket, tls: ServerTLS) -> socket.socket | None:
        """The TLS socket of a control client, or None (closed; ``handshake`` logged why).

        The registry entry moves to the TLS socket first, so ``stop`` can abort the
        handshake."""
        try:
            peer = client.getpeername()
            address = f"{peer[0]}:{peer[1]}"
        except (OSError, IndexError, TypeError):
            address = "control client"
        with self._lock:
            known = client in self._clients
            self._clients.pop(client, None)
            wrapped = tls.socket(client)
            if known:
                self._clients[wrapped] = None
        from receptor.netceptor.tls import TLSPeerError

        try:
            return tls.handshake(wrapped, address)
        except (OSError, TLSPeerError):
            with self._lock:
                self._clients.pop(wrapped, None)
            return None

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            listeners = list(self._listeners)
            unix = list(self._unix)
            mesh = list(self._mesh)
            mesh_threads = list(self._mesh_threads)
            clients = dict(self._clients)
        self._wake_w.send(b"x")
        self._thread.join()
        for sock in listeners:
            self._selector.unregister(sock)
        for listener in unix:
            listener.close()
        for sock in listeners:
            sock.close()
        for mesh_listener in mesh:
            mesh_listener.close()
        for thread in mesh_threads:
            thread.join(5.0)
        with self._lock:
            mesh_clients = dict(self._mesh_clients)
        for conn in mesh_clients:
            conn.close()
        for client in clients:
            try:
                client.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._workers.stop()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()
