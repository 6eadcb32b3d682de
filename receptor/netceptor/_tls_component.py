"""The daemon component for ``tls-server`` and ``tls-client`` (config.md §3.6–§3.7)."""

from typing import TYPE_CHECKING

from receptor._daemon import Component, Handler
from receptor._lazy import LazyModule
from receptor._log import logger
from receptor.config import ConfigItem

if TYPE_CHECKING:
    from receptor.netceptor import tls
    from receptor.netceptor.tls import ClientTLS, ServerTLS
else:  # ssl and cryptography load in the prepare phase, after the control sockets are up
    tls = LazyModule("receptor.netceptor.tls", globals(), "tls")


class TLSEntities(Component):
    """Loads the named TLS configs in the ``prepare`` phase into ``daemon.tls``.

    Upstream never re-reads TLS files. Here ``reload`` (and SIGHUP) re-reads them, so a
    rotated certificate, key or CA bundle is used for every new connection without a
    restart; the reload restarts the backends, so their connections are new ones. The
    config items themselves stay non-reloadable (a changed ``tls-server`` item is refused
    as upstream does). If any file no longer loads, the reload is refused with the error
    naming the file and the section, and the running configs stay as they were.
    """

    def handlers(self) -> dict[str, dict[str, Handler]]:
        return {
            "prepare": {
                "tls-server": self._prepare_server,
                "tls-client": self._prepare_client,
            },
        }

    def _prepare_server(self, item: ConfigItem) -> None:
        self.daemon.tls.add_server(tls.load_server(item.values, self.daemon.settings.node_id))

    def _prepare_client(self, item: ConfigItem) -> None:
        self.daemon.tls.add_client(tls.load_client(item.values, self.daemon.settings.node_id))

    def before_reload(self, items: list[ConfigItem]) -> None:
        node_id = self.daemon.settings.node_id
        servers: list[ServerTLS] = []
        clients: list[ClientTLS] = []
        for item in items:
            if item.entity.name == "tls-server":
                servers.append(tls.load_server(item.values, node_id))
            elif item.entity.name == "tls-client":
                clients.append(tls.load_client(item.values, node_id))
        for server in servers:
            self.daemon.tls.add_server(server)
        for client in clients:
            self.daemon.tls.add_client(client)
        if servers or clients:
            logger.info("Reloaded TLS configuration files")
