"""Named TLS configurations (``tls-server`` / ``tls-client``, config.md §3.6–§3.7, wire.md §12).

The registry is filled in the ``prepare`` phase by the TLS component and read by everything
that takes a ``tls=`` / ``tlsserver=`` / ``tlsclient=`` name: backends, the control service,
proxy services and mesh stream services.
"""

import ssl
from typing import Any

from receptor._errors import ConfigError


class TLSRegistry:
    """The named TLS configs of one daemon."""

    def __init__(self) -> None:
        self.servers: dict[str, Any] = {}
        self.clients: dict[str, Any] = {}

    def server(self, name: str) -> ssl.SSLContext:
        """The server context for a ``tls-server`` name; ConfigError if none has that name."""
        if name not in self.servers:
            raise ConfigError(f"unknown TLS config {name}")
        context: ssl.SSLContext = self.servers[name]
        return context

    def client(self, name: str) -> Any:
        """The client config for a ``tls-client`` name; ConfigError if none has that name."""
        if name not in self.clients:
            raise ConfigError(f"unknown TLS config {name}")
        return self.clients[name]
