"""Backends: the transports that carry mesh sessions between nodes."""

from receptor.backends.null import NullBackend
from receptor.backends.tcp import TCPDialer, TCPListener, split_host_port

__all__ = ["NullBackend", "TCPDialer", "TCPListener", "split_host_port"]
