"""The daemon component for the proxy services (tcp-server, udp-client, unix-socket-server, ...)."""

from receptor._daemon import Component


class ServiceEntities(Component):
    """Not built yet: owns no entities."""
