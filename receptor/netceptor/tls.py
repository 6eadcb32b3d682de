"""Named TLS configurations (``tls-server`` / ``tls-client``, config.md §3.6–§3.7, wire.md §12).

The registry is filled in the ``prepare`` phase by the TLS component and read by everything
that takes a ``tls=`` / ``tlsserver=`` / ``tlsclient=`` name: backends, the control service,
proxy services and mesh stream services (whose QUIC TLS uses the raw materials, not the
``ssl`` contexts).
"""

import socket
import ssl
from dataclasses import dataclass

from receptor._errors import ConfigError, ReceptorError


class TLSPeerError(ReceptorError):
    """The peer's certificate failed one of receptor's own checks (pin, node ID, ...)."""


@dataclass
class ServerTLS:
    """A loaded ``tls-server`` config."""

    name: str
    context: ssl.SSLContext

    def wrap(self, sock: socket.socket) -> ssl.SSLSocket:
        """Server-side handshake on an accepted socket, then receptor's own peer checks."""
        raise NotImplementedError

    def check_peer(self, der_chain: list[bytes]) -> None:
        """Receptor's checks beyond the ``ssl`` module's (pinned client certs): TLSPeerError."""
        raise NotImplementedError


@dataclass
class ClientTLS:
    """A loaded ``tls-client`` config."""

    name: str
    context: ssl.SSLContext

    def wrap(
        self, sock: socket.socket, server_name: str, node_id: str | None = None
    ) -> ssl.SSLSocket:
        """Client handshake verifying ``server_name`` (and ``node_id`` where wire.md §12.5 asks)."""
        raise NotImplementedError

    def check_peer(self, der_chain: list[bytes], node_id: str | None = None) -> None:
        """Receptor's checks beyond the ``ssl`` module's (pins, node ID): TLSPeerError."""
        raise NotImplementedError


class TLSRegistry:
    """The named TLS configs of one daemon."""

    def __init__(self) -> None:
        self.servers: dict[str, ServerTLS] = {}
        self.clients: dict[str, ClientTLS] = {}

    def server(self, name: str) -> ServerTLS:
        """The ``tls-server`` of that name; ConfigError if there is none."""
        if name not in self.servers:
            raise ConfigError(f"unknown TLS config {name}")
        return self.servers[name]

    def client(self, name: str) -> ClientTLS:
        """The ``tls-client`` of that name; ConfigError if there is none."""
        if name not in self.clients:
            raise ConfigError(f"unknown TLS config {name}")
        return self.clients[name]
