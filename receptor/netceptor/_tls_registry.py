"""The named TLS configs of one daemon, kept apart from :mod:`receptor.netceptor.tls` so that
a node without TLS never imports ``ssl`` or ``cryptography`` (start-up time)."""

from typing import TYPE_CHECKING

from receptor._errors import ConfigError

if TYPE_CHECKING:
    from receptor.netceptor.tls import ClientTLS, ServerTLS


class TLSRegistry:
    """The named TLS configs of one daemon.

    ``replace`` swaps new materials into the existing objects, so a listener that holds a
    ``ServerTLS`` uses a rotated certificate for its next connection.
    """

    def __init__(self) -> None:
        self.servers: dict[str, ServerTLS] = {}
        self.clients: dict[str, ClientTLS] = {}

    def server(self, name: str) -> "ServerTLS":
        """The ``tls-server`` of that name; ConfigError if there is none."""
        if name not in self.servers:
            raise ConfigError(f"unknown TLS config {name}")
        return self.servers[name]

    def client(self, name: str) -> "ClientTLS":
        """The ``tls-client`` of that name; ConfigError if there is none."""
        if name not in self.clients:
            raise ConfigError(f"unknown TLS config {name}")
        return self.clients[name]

    def add_server(self, config: "ServerTLS") -> None:
        """Register (or update in place) a ``tls-server``."""
        _store(self.servers, config)

    def add_client(self, config: "ClientTLS") -> None:
        """Register (or update in place) a ``tls-client``; a later one of the same name wins."""
        _store(self.clients, config)


def _store(table: dict, config: "ServerTLS | ClientTLS") -> None:
    current = table.get(config.name)
    if current is None or type(current) is not type(config):
        table[config.name] = config
    else:
        current.__dict__.update(config.__dict__)
