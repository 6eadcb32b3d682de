"""receptorctl: the client library and command line for a Receptor control service.

`ReceptorControl` is a session on a node's control socket (the API AWX and ansible-runner use);
`run` is the `receptorctl` command.
"""

from receptorctl._errors import ControlAddressError, ControlProtocolError, ReceptorControlError
from receptorctl.cli import run
from receptorctl.socket_interface import ReceptorControl

__all__ = [
    "ControlAddressError",
    "ControlProtocolError",
    "ReceptorControl",
    "ReceptorControlError",
    "run",
]
