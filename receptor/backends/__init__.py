"""Backends: the transports that carry mesh sessions between nodes.

Imported on first use (:func:`receptor._lazy.lazy_exports`): a node loads only the
transports its configuration names.
"""

from typing import TYPE_CHECKING

from receptor._lazy import lazy_exports

if TYPE_CHECKING:
    from receptor.backends.null import NullBackend
    from receptor.backends.tcp import TCPDialer, TCPListener, split_host_port
    from receptor.backends.udp import UDPDialer, UDPListener
    from receptor.backends.websocket import WebSocketDialer, WebSocketListener

_EXPORTS = {
    "NullBackend": "receptor.backends.null",
    "TCPDialer": "receptor.backends.tcp",
    "TCPListener": "receptor.backends.tcp",
    "split_host_port": "receptor.backends.tcp",
    "UDPDialer": "receptor.backends.udp",
    "UDPListener": "receptor.backends.udp",
    "WebSocketDialer": "receptor.backends.websocket",
    "WebSocketListener": "receptor.backends.websocket",
}

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
__getattr__ = lazy_exports(__name__, _EXPORTS)
