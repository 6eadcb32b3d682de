"""What a backend gives the mesh: sessions that carry whole messages.

A backend (TCP, UDP, WebSocket, local-only) produces *sessions*, each a point-to-point link
to one peer that transports discrete messages (wire.md §1). For every session the backend
calls :meth:`Netceptor.run_protocol` in a thread of its own; the mesh protocol then runs on
that session until it ends.
"""

import abc
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from receptor._errors import ReceptorError

if TYPE_CHECKING:
    from receptor.netceptor._node import Netceptor


class SessionClosed(ReceptorError, EOFError):
    """The peer closed the session cleanly (end of stream)."""


class BackendSession(Protocol):
    """A datagram-oriented link to one peer."""

    #: Human-readable peer description for log lines, e.g. ``tcp 127.0.0.1:4455``.
    description: str

    def send(self, message: bytes, wait: bool = True) -> None:
        """Queue one message. A full queue makes the caller wait (back-pressure) or, with
        ``wait=False``, raises ``BlockingIOError`` at once. Raises ``OSError`` when the link
        has failed."""

    def recv(self, timeout: float) -> bytes | None:
        """One whole message, or None after ``timeout`` seconds without one.

        Raises :class:`SessionClosed` at end of stream and ``OSError`` / ``ProtocolError``
        when the link fails.
        """

    def close(self) -> None:
        """Close the link; idempotent, callable from any thread, wakes a blocked ``recv``."""


@dataclass(frozen=True)
class BackendInfo:
    """Per-backend connection policy (config.md §3.8)."""

    cost: float = 1.0
    node_cost: dict[str, float] = field(default_factory=dict)
    #: None accepts any peer; a list (even an empty one) accepts only the listed node IDs.
    allowed_peers: tuple[str, ...] | None = None


class Backend(abc.ABC):
    """A source of sessions. ``start`` must not block; ``stop`` ends every session."""

    @abc.abstractmethod
    def start(self, netceptor: "Netceptor", info: BackendInfo) -> None: ...

    @abc.abstractmethod
    def stop(self) -> None: ...
