"""The exceptions `receptorctl` raises on purpose.

They sit under the project root `ReceptorError` and also subclass the builtin that upstream
receptorctl raises in the same situation, so code written against upstream (AWX catches
`RuntimeError` around `ReceptorControl(...)` and `simple_command(...)`) keeps working.
"""

from receptor._errors import ProtocolError, ReceptorError


class ReceptorControlError(ReceptorError, RuntimeError):
    """The control service refused a request, or the client cannot go on with the session.

    Raised where upstream raises `RuntimeError`: an `ERROR:` reply (the text is the message
    without the `ERROR: ` prefix), a failed handshake, a failed work submission, conflicting
    TLS options.
    """


class ControlProtocolError(ReceptorControlError, ProtocolError):
    """The control service sent bytes that do not follow the protocol.

    A wrong greeting, a connection closed in the middle of a reply, a reply that is not JSON,
    not UTF-8 or longer than the line limit, a reply lacking keys the client needs. It is a
    `RuntimeError` and a `ValueError` (upstream lets `json.JSONDecodeError` through).
    """


class ControlAddressError(ReceptorError, ValueError):
    """The control socket address is invalid, or nothing could be reached there.

    Upstream raises `ValueError` for these.
    """
