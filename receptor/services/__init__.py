"""Proxy services: tunnel local TCP, UDP and Unix sockets over the mesh (config.md §3.12)."""

from receptor.services._bridge import Bridge
from receptor.services._stream_proxy import LocalToMesh, MeshToLocal, tcp_connector, unix_connector
from receptor.services._udp_proxy import MeshToUDP, UDPToMesh

__all__ = [
    "Bridge",
    "LocalToMesh",
    "MeshToLocal",
    "MeshToUDP",
    "UDPToMesh",
    "tcp_connector",
    "unix_connector",
]
