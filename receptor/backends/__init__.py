"""Backends: the transports that carry mesh sessions between nodes."""

from receptor.backends.null import NullBackend
from receptor.backends.tcp import TCPDialer, TCPListener, split_host_port
from receptor.backends.udp import UDPDialer, UDPListener
from receptor.backends.websocket import WebSocketDialer, WebSocketListener

__all__ = [
    "NullBackend",
    "TCPDialer",
    "TCPListener",
    "UDPDialer",
    "UDPListener",
    "WebSocketDialer",
    "WebSocketListener",
    "split_host_port",
]
