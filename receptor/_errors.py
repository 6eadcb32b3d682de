"""Every exception the package raises on purpose, under one root."""


class ReceptorError(Exception):
    """Root of all errors raised by this package."""


class ConfigError(ReceptorError, ValueError):
    """Invalid configuration; ``str(err)`` is the text printed after ``Error: ``."""


class ProtocolError(ReceptorError, ValueError):
    """Bytes received from outside (a peer, a client) that do not follow the protocol."""


class MeshError(ReceptorError):
    """A mesh operation failed; ``str(err)`` is upstream's text (``no route to node``, …)."""
