"""The control service: the protocol receptorctl and AWX speak over a Unix socket (or TCP)."""

from receptor.controlsvc._server import ControlServer, ControlServiceError
from receptor.controlsvc._session import TAKEN_OVER, CommandError, ControlSession, Handler

__all__ = [
    "TAKEN_OVER",
    "CommandError",
    "ControlServer",
    "ControlServiceError",
    "ControlSession",
    "Handler",
]
