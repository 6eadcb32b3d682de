"""The mesh: node state, the connection protocol, routing, service ads, firewall, datagrams."""

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
