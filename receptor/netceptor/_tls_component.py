"""The daemon component for ``tls-server`` and ``tls-client`` (built by the TLS issue)."""

from receptor._daemon import Component


class TLSEntities(Component):
    """Loads the named TLS configs in the ``prepare`` phase into ``daemon.tls``."""
