"""The daemon component for the backend entities (``tcp-*``, ``udp-*``, ``ws-*``)."""

import urllib.parse
from typing import TYPE_CHECKING

from receptor._daemon import Component, Handler
from receptor._errors import ConfigError
from receptor._lazy import LazyModule
from receptor._log import logger
from receptor.config import ConfigItem

if TYPE_CHECKING:
    from receptor.backends import tcp, udp, websocket
else:  # a node loads only the transports its configuration names
    tcp = LazyModule("receptor.backends.tcp", globals(), "tcp")
    udp = LazyModule("receptor.backends.udp", globals(), "udp")
    websocket = LazyModule("receptor.backends.websocket", globals(), "websocket")


def check_costs(item: ConfigItem) -> None:
    cost = item.values.get("cost")
    if cost is not None and not cost > 0:
        raise ConfigError("connection cost must be positive")
    for node, node_cost in (item.values.get("nodecost") or {}).items():
        if not node_cost > 0:
            raise ConfigError(f"connection cost must be positive for {node}")


def check_ws_peer(item: ConfigItem) -> None:
    """Upstream's ``ws-peer`` Prepare: costs, the URL must parse, the header needs a ``:``."""
    check_costs(item)
    address = item.values["address"]
    try:
        _ = urllib.parse.urlsplit(address).port
    except ValueError as err:
        raise ConfigError(f"address {address} is not a valid URL: {err}") from None
    header = item.values.get("extraheader")
    if header and ":" not in header:
        raise ConfigError("extra header must be in the form key:value")


class BackendEntities(Component):
    """Validates costs in ``prepare`` and starts each backend in ``run`` (and on reload)."""

    reloadable = frozenset(
        {"tcp-peer", "tcp-listener", "ws-peer", "ws-listener", "udp-peer", "udp-listener"}
    )

    def handlers(self) -> dict[str, dict[str, Handler]]:
        return {
            "prepare": {
                "tcp-listener": check_costs,
                "tcp-peer": check_costs,
                "udp-listener": check_costs,
                "udp-peer": check_costs,
                "ws-listener": check_costs,
                "ws-peer": check_ws_peer,
            },
            "run": {
                "tcp-listener": self._run_tcp_listener,
                "tcp-peer": self._run_tcp_peer,
                "udp-listener": self._run_udp_listener,
                "udp-peer": self._run_udp_peer,
                "ws-listener": self._run_ws_listener,
                "ws-peer": self._run_ws_peer,
            },
        }

    def _run_tcp_listener(self, item: ConfigItem) -> None:
        name = item.values.get("tls")
        tls = self.daemon.tls.server(name) if name else None
        listener = tcp.TCPListener(item.values["bindaddr"], item.values["port"], tls)
        self.daemon.add_backend(listener, item)

    def _run_tcp_peer(self, item: ConfigItem) -> None:
        address = item.values["address"]
        tcp.split_host_port(address)
        name = item.values.get("tls")
        tls = self.daemon.tls.client(name) if name else None
        self.daemon.add_backend(tcp.TCPDialer(address, item.values["redial"], tls), item)

    def _run_udp_listener(self, item: ConfigItem) -> None:
        listener = udp.UDPListener(item.values["bindaddr"], item.values["port"])
        self.daemon.add_backend(listener, item)

    def _run_udp_peer(self, item: ConfigItem) -> None:
        address = item.values["address"]
        try:
            dialer = udp.UDPDialer(address, item.values["redial"])
        except ConfigError as err:
            logger.error("Error creating peer %s: %s", address, err)
            raise
        self.daemon.add_backend(dialer, item)

    def _run_ws_listener(self, item: ConfigItem) -> None:
        name = item.values.get("tls")
        tls = self.daemon.tls.server(name) if name else None
        values = item.values
        listener = websocket.WebSocketListener(
            values["bindaddr"], values["port"], values["path"], tls
        )
        self.daemon.add_backend(listener, item)

    def _run_ws_peer(self, item: ConfigItem) -> None:
        """A ``wss://`` URL without ``tls=`` looks up the built-in client config ``default``,
        which upstream cannot use: startup fails as there (config.md §3.8 quirk)."""
        values = item.values
        address = values["address"]
        name = values.get("tls")
        if not name and urllib.parse.urlsplit(address).scheme == "wss":
            name = "default"
        try:
            tls = self.daemon.tls.client(name) if name else None
        except ConfigError:
            if name == "default":
                raise ConfigError("pinned fingerprints missing for default") from None
            raise
        secure_tls = tls if urllib.parse.urlsplit(address).scheme == "wss" else None
        dialer = websocket.WebSocketDialer(
            address, values["redial"], values.get("extraheader"), secure_tls
        )
        self.daemon.add_backend(dialer, item)
