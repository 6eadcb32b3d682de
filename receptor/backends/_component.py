"""The daemon component for the backend entities (``tcp-*``, ``udp-*``, ``ws-*``)."""

from receptor._daemon import Component, Handler
from receptor._errors import ConfigError
from receptor.backends.tcp import TCPDialer, TCPListener, split_host_port
from receptor.config import ConfigItem


def check_costs(item: ConfigItem) -> None:
    cost = item.values.get("cost")
    if cost is not None and not cost > 0:
        raise ConfigError("connection cost must be positive")
    for node, node_cost in (item.values.get("nodecost") or {}).items():
        if not node_cost > 0:
            raise ConfigError(f"connection cost must be positive for {node}")


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
            },
            "run": {
                "tcp-listener": self._run_tcp_listener,
                "tcp-peer": self._run_tcp_peer,
            },
        }

    def _run_tcp_listener(self, item: ConfigItem) -> None:
        if item.values.get("tls"):
            self.daemon.tls.server(item.values["tls"])
        listener = TCPListener(item.values["bindaddr"], item.values["port"])
        self.daemon.add_backend(listener, item)

    def _run_tcp_peer(self, item: ConfigItem) -> None:
        address = item.values["address"]
        split_host_port(address)
        if item.values.get("tls"):
            self.daemon.tls.client(item.values["tls"])
        self.daemon.add_backend(TCPDialer(address, item.values["redial"]), item)
