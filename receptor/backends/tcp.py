"""The TCP backend: ``tcp-listener`` and ``tcp-peer`` (wire.md §1.1, §1.4).

Thread model (DESIGN.md): the listener is a ``_listener.StreamListener`` (a ``selectors``
accept loop that ``stop`` wakes; every connection gets a thread that runs the mesh protocol,
plus the session's writer thread). The dialer is a ``_redial.RedialingDialer``: one thread
that dials, runs the session, and redials with upstream's back-off.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from receptor._errors import ConfigError
from receptor.backends._listener import StreamListener, listen_tcp
from receptor.backends._redial import DIAL_TIMEOUT, DialError, RedialingDialer, tls_dial_error
from receptor.backends._stream import StreamSession

if TYPE_CHECKING:  # ssl and the TLS layer load only with a TLS config
    from receptor.netceptor.tls import ClientTLS, ServerTLS, TLSSocket

__all__ = [
    "TCPDialer",
    "TCPListener",
    "go_dial_error",
    "listen_tcp",
    "split_host_port",
]


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


class TCPListener(StreamListener):
    """Accepts TCP connections and runs a mesh session on each.

    With ``tls`` every connection first completes a TLS handshake (in its own thread, at
    most ``HANDSHAKE_TIMEOUT``); a failed one is logged with the peer and the reason and
    closed, and the listener carries on.
    """

    kind = "tcp-listener"
    connection_thread = "session tcp"

    def __init__(self, bindaddr: str, port: int, tls: ServerTLS | None = None) -> None:
        super().__init__(bindaddr, port)
        self.tls = tls

    def _listening(self) -> str:
        return f"TCP {self.bindaddr}:{self.port}"

    def _open_session(self, conn: socket.socket, peer: object) -> StreamSession | None:
        sock = conn if self.tls is None else self._handshake(conn, peer)
        if sock is None:
            return None
        return StreamSession(sock, f"tcp {peer}")

    def _handshake(self, conn: socket.socket, peer: object) -> TLSSocket | None:
        """The TLS side of an accepted connection, or None (logged by ``handshake``)."""
        assert self.tls is not None
        address = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        tls = self.tls.socket(conn)
        if not self._track(tls):
            tls.close()
            return None
        from receptor.netceptor.tls import TLSPeerError

        try:
            return self.tls.handshake(tls, address)
        except (OSError, TLSPeerError, ValueError):
            return None


class TCPDialer(RedialingDialer):
    """Dials a TCP peer, runs a mesh session, and redials with back-off when it ends.

    With ``tls`` the server certificate is verified against the host part of the address
    (wire.md §12.3); a failed handshake counts as a failed dial (logged, then redialled).
    """

    kind = "tcp-peer"
    transport = "TCP"

    def __init__(self, address: str, redial: bool = True, tls: ClientTLS | None = None) -> None:
        super().__init__(address, redial)
        self.host, self.port = split_host_port(address)
        self.tls = tls

    def dial(self) -> StreamSession:
        try:
            sock = self._connect()
        except Exception as err:
            if self.tls is not None:
                import ssl

                from receptor.netceptor.tls import TLSPeerError

                if isinstance(err, TLSPeerError | ssl.SSLError):
                    raise tls_dial_error(self.address, err) from None
            if isinstance(err, OSError):
                raise DialError(go_dial_error("tcp", self.address, err)) from None
            raise
        return StreamSession(sock, f"tcp {self.address}")

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=DIAL_TIMEOUT)
        sock.settimeout(None)
        if self.tls is None:
            return sock
        tls = self.tls.socket(sock, self.host.strip("[]"))
        try:
            if not self._set_dialing(tls):
                tls.close()
                raise ConnectionAbortedError("backend is stopping")
            return self.tls.handshake(tls)
        finally:
            self._set_dialing(None)
