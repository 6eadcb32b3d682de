"""The mesh: node state, the connection protocol, routing, service ads, firewall, datagrams.

The names below are imported on first use (:func:`receptor._lazy.lazy_exports`): a node
that runs no stream service never loads the stream layer, and one without TLS never ``ssl``.
"""

from typing import TYPE_CHECKING

from receptor._lazy import lazy_exports

if TYPE_CHECKING:
    from receptor.netceptor._backend import Backend, BackendInfo, BackendSession, SessionClosed
    from receptor.netceptor._firewall import Action, FirewallRule, parse_rules
    from receptor.netceptor._messages import (
        CONN_TYPE_DATAGRAM,
        CONN_TYPE_STREAM,
        CONN_TYPE_STREAM_TLS,
        RoutingUpdate,
        ServiceAdvertisement,
        UnreachableMessage,
    )
    from receptor.netceptor._node import Netceptor, PingResult
    from receptor.netceptor._packetconn import PacketConn
    from receptor.netceptor._streams import (
        Conn,
        HandshakeError,
        Listener,
        ServiceUnknownError,
        StreamError,
    )

_EXPORTS = {
    "Backend": "receptor.netceptor._backend",
    "BackendInfo": "receptor.netceptor._backend",
    "BackendSession": "receptor.netceptor._backend",
    "SessionClosed": "receptor.netceptor._backend",
    "Action": "receptor.netceptor._firewall",
    "FirewallRule": "receptor.netceptor._firewall",
    "parse_rules": "receptor.netceptor._firewall",
    "CONN_TYPE_DATAGRAM": "receptor.netceptor._messages",
    "CONN_TYPE_STREAM": "receptor.netceptor._messages",
    "CONN_TYPE_STREAM_TLS": "receptor.netceptor._messages",
    "RoutingUpdate": "receptor.netceptor._messages",
    "ServiceAdvertisement": "receptor.netceptor._messages",
    "UnreachableMessage": "receptor.netceptor._messages",
    "Netceptor": "receptor.netceptor._node",
    "PingResult": "receptor.netceptor._node",
    "PacketConn": "receptor.netceptor._packetconn",
    "Conn": "receptor.netceptor._streams",
    "HandshakeError": "receptor.netceptor._streams",
    "Listener": "receptor.netceptor._streams",
    "ServiceUnknownError": "receptor.netceptor._streams",
    "StreamError": "receptor.netceptor._streams",
}

__all__ = [
    "CONN_TYPE_DATAGRAM",
    "CONN_TYPE_STREAM",
    "CONN_TYPE_STREAM_TLS",
    "Action",
    "Backend",
    "BackendInfo",
    "BackendSession",
    "Conn",
    "FirewallRule",
    "HandshakeError",
    "Listener",
    "Netceptor",
    "PacketConn",
    "PingResult",
    "RoutingUpdate",
    "ServiceAdvertisement",
    "ServiceUnknownError",
    "SessionClosed",
    "StreamError",
    "UnreachableMessage",
    "parse_rules",
]
__getattr__ = lazy_exports(__name__, _EXPORTS)
