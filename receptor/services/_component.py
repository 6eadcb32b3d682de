"""The daemon component for the proxy services (tcp-server, udp-client, unix-socket-server, ...).

Every proxy starts in the ``run`` phase (config.md §1.3) and is not reloadable, as upstream:
a reload that changes one is refused. Start-up failures are ConfigErrors worded as upstream's
(``error listening on TCP: ...``), so the daemon prints ``Error: ...`` and exits 1.
"""

import socket
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from receptor._daemon import Component, Handler
from receptor._errors import ConfigError, ReceptorError
from receptor._log import logger
from receptor.backends.tcp import listen_tcp, split_host_port
from receptor.config import ConfigItem
from receptor.netceptor import Netceptor
from receptor.netceptor.tls import ServerTLS
from receptor.services._bridge import Stream
from receptor.services._stream_proxy import LocalToMesh, MeshToLocal, tcp_connector, unix_connector
from receptor.services._udp_proxy import MeshToUDP, UDPToMesh


class _Proxy(Protocol):
    def stop(self) -> None: ...


def go_struct(item: ConfigItem, fields: Iterable[str]) -> str:
    """The values as Go's ``%v`` prints the config struct (upstream's debug line).

    For example ``{8080 0.0.0.0 alpha echo  }``: fields in order, empty ones still spaced.
    """
    values = (item.values.get(name) for name in fields)
    return "{" + " ".join("" if value is None else str(value) for value in values) + "}"


class ServiceEntities(Component):
    """Starts the TCP, UDP and Unix-socket proxies and stops them with the daemon."""

    def __init__(self, daemon: Any) -> None:
        super().__init__(daemon)
        self._proxies: list[_Proxy] = []

    def handlers(self) -> dict[str, dict[str, Handler]]:
        return {
            "run": {
                "tcp-server": self._run_tcp_server,
                "tcp-client": self._run_tcp_client,
                "udp-server": self._run_udp_server,
                "udp-client": self._run_udp_client,
                "unix-socket-server": self._run_unix_server,
                "unix-socket-client": self._run_unix_client,
            },
        }

    @property
    def _netceptor(self) -> Netceptor:
        assert self.daemon.netceptor is not None
        return self.daemon.netceptor

    def stop(self) -> None:
        proxies, self._proxies = self._proxies, []
        for proxy in reversed(proxies):
            proxy.stop()

    # ------------------------------------------------------------------ TCP

    def _run_tcp_server(self, item: ConfigItem) -> None:
        values = item.values
        logger.debug(
            "Running TCP inbound proxy service %s",
            go_struct(
                item, ("port", "bindaddr", "remotenode", "remoteservice", "tlsserver", "tlsclient")
            ),
        )
        mesh_tls = self.daemon.tls.client(values["tlsclient"]) if values.get("tlsclient") else None
        local_tls = self.daemon.tls.server(values["tlsserver"]) if values.get("tlsserver") else None
        if not 0 <= values["port"] <= 65535:
            raise ConfigError(
                f"error listening on TCP: listen tcp: address {values['port']}: invalid port"
            )
        try:
            sock = listen_tcp(values["bindaddr"], values["port"])
        except ConfigError as err:
            raise ConfigError(f"error listening on TCP: {err}") from None
        proxy = LocalToMesh(
            self._netceptor,
            sock,
            "TCP",
            values["remotenode"],
            values["remoteservice"],
            mesh_tls=mesh_tls,
            local_tls=local_tls,
        )
        self._proxies.append(proxy.start())

    def _run_tcp_client(self, item: ConfigItem) -> None:
        values = item.values
        logger.debug(
            "Running TCP inbound proxy service %s",  # sic: upstream's text
            go_struct(item, ("service", "address", "tlsserver", "tlsclient")),
        )
        mesh_tls = self.daemon.tls.server(values["tlsserver"]) if values.get("tlsserver") else None
        host, port = split_host_port(values["address"])
        local_tls = self.daemon.tls.client(values["tlsclient"]) if values.get("tlsclient") else None
        connect = tcp_connector(values["address"], host.strip("[]"), port, local_tls)
        tags = {"type": "TCP Proxy", "address": values["address"]}
        self._proxies.append(self._mesh_to_local(values["service"], tags, connect, "TCP", mesh_tls))

    def _mesh_to_local(
        self,
        service: str,
        tags: dict[str, str],
        connect: Callable[[], Stream],
        kind: str,
        tls: ServerTLS | None,
    ) -> MeshToLocal:
        try:
            proxy = MeshToLocal(self._netceptor, service, tags, connect, kind, mesh_tls=tls)
        except (OSError, ReceptorError) as err:
            raise ConfigError(f"error listening on Receptor network: {err}") from None
        return proxy.start()

    # ------------------------------------------------------------------ UDP

    def _run_udp_server(self, item: ConfigItem) -> None:
        values = item.values
        logger.debug(
            "Running UDP inbound proxy service %s",
            go_struct(item, ("port", "bindaddr", "remotenode", "remoteservice")),
        )
        proxy = UDPToMesh(
            self._netceptor,
            values["bindaddr"],
            values["port"],
            values["remotenode"],
            values["remoteservice"],
        )
        self._proxies.append(proxy.start())

    def _run_udp_client(self, item: ConfigItem) -> None:
        values = item.values
        logger.debug(
            "Running UDP outbound proxy service %s", go_struct(item, ("service", "address"))
        )
        proxy = MeshToUDP(self._netceptor, values["service"], values["address"])
        self._proxies.append(proxy.start())

    # ------------------------------------------------------------------ Unix sockets

    def _run_unix_server(self, item: ConfigItem) -> None:
        from receptor.controlsvc._server import ControlServiceError, _UnixListener

        values = item.values
        logger.debug(
            "Running Unix socket inbound proxy service %s",
            go_struct(item, ("filename", "permissions", "remotenode", "remoteservice", "tls")),
        )
        mesh_tls = self.daemon.tls.client(values["tls"]) if values.get("tls") else None
        try:
            listener = _UnixListener(values["filename"], values["permissions"])
        except ControlServiceError as err:
            raise ConfigError(f"error opening Unix socket: {err}") from None
        sock: socket.socket = listener.sock
        proxy = LocalToMesh(
            self._netceptor,
            sock,
            "Unix socket",
            values["remotenode"],
            values["remoteservice"],
            mesh_tls=mesh_tls,
            on_stop=listener.close,
        )
        self._proxies.append(proxy.start())

    def _run_unix_client(self, item: ConfigItem) -> None:
        values = item.values
        logger.debug(
            "Running Unix socket inbound proxy service %s",  # sic: upstream's text
            go_struct(item, ("service", "filename", "tls")),
        )
        mesh_tls = self.daemon.tls.server(values["tls"]) if values.get("tls") else None
        tags = {"type": "Unix Proxy", "filename": values["filename"]}
        connect = unix_connector(values["filename"])
        self._proxies.append(
            self._mesh_to_local(values["service"], tags, connect, "Unix socket", mesh_tls)
        )
