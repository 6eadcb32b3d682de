"""The dial / redial loop shared by the ``*-peer`` backends (wire.md §1.4).

A dialer is one thread: dial, run the mesh protocol on the session until it ends, wait, dial
again. The wait starts at 5 s, grows by 1.5 after each wait up to 20 s, and resets after a
successful dial, as upstream. Subclasses only say how to dial and how to word a failure.
"""

import abc
import socket
import threading
from typing import Protocol

from receptor._log import logger
from receptor.backends._stream import raw_shutdown
from receptor.netceptor import Backend, BackendInfo, BackendSession, Netceptor

#: Upstream's redial back-off: 5 s, times 1.5 after each wait, at most 20 s.
REDIAL_FIRST = 5.0
REDIAL_FACTOR = 1.5
REDIAL_MAX = 20.0
#: Bound of each step of a stream dial (TCP connect, proxy CONNECT, TLS, upgrade).
DIAL_TIMEOUT = 15.0


class ReleasableSession(BackendSession, Protocol):
    def release(self) -> None:
        """Free the session's resources; called once by the thread that ran it."""


class DialError(Exception):
    """A dial failed; the message is the text upstream logs after ``failed (will retry): ``."""


def tls_dial_error(address: str, err: BaseException) -> DialError:
    """A failed client TLS handshake with ``address`` (``host:port``), in upstream's words."""
    from receptor.netceptor.tls import describe_error

    return DialError(f"TLS handshake with {address} failed: {describe_error(err)}")


class RedialingDialer(Backend):
    """Dials a peer, runs a mesh session, and redials with back-off when it ends."""

    #: Thread name prefix, e.g. ``udp-peer``.
    kind = "peer"
    #: Transport named in the start-up debug line, e.g. ``UDP`` (``Running UDP peer ...``).
    transport: str

    def __init__(self, address: str, redial: bool = True) -> None:
        self.address = address
        self.redial = redial
        self._stopping = threading.Event()
        self._session: ReleasableSession | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._dialing: socket.socket | None = None

    @abc.abstractmethod
    def dial(self) -> ReleasableSession:
        """One connection attempt: a ready session, or :class:`DialError`."""

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def start(self, netceptor: Netceptor, info: BackendInfo) -> None:
        logger.debug("Running %s peer connection %s", self.transport, self.address)
        self._thread = threading.Thread(
            target=self._dial_loop,
            args=(netceptor, info),
            name=f"{self.kind} {self.address}",
            daemon=True,
        )
        self._thread.start()

    def _dial_loop(self, netceptor: Netceptor, info: BackendInfo) -> None:
        delay = REDIAL_FIRST
        while not self._stopping.is_set():
            try:
                session = self.dial()
            except DialError as err:
                if self._stopping.is_set():
                    return
                if not self.redial:
                    logger.error("Backend connection failed: %s", err)
                    return
                logger.warning("Backend connection failed (will retry): %s", err)
            else:
                delay = REDIAL_FIRST
                self._run(netceptor, info, session)
                if self._stopping.is_set():
                    return
                if not self.redial:
                    logger.error("Backend connection exited")
                    return
                logger.warning("Backend connection exited (will retry)")
            if self._stopping.wait(delay):
                return
            delay = min(delay * REDIAL_FACTOR, REDIAL_MAX)

    def _run(self, netceptor: Netceptor, info: BackendInfo, session: ReleasableSession) -> None:
        with self._lock:
            self._session = session
            stopping = self._stopping.is_set()
        try:
            if not stopping:
                netceptor.run_protocol(session, info)
        finally:
            session.release()
            with self._lock:
                self._session = None

    def stop(self) -> None:
        self._stopping.set()
        self.interrupt_dial()
        with self._lock:
            session = self._session
        if session is not None:
            session.close()
        if self._thread is not None:
            self._thread.join()

    def _set_dialing(self, sock: socket.socket | None) -> bool:
        """Record the socket a dial in progress blocks on (None once done), so that ``stop``
        can abort it; whether the backend is still running (if not, the caller gives up)."""
        with self._lock:
            self._dialing = sock
            return not self._stopping.is_set()

    def interrupt_dial(self) -> None:
        """Abort a dial in progress: shut down the socket recorded by ``_set_dialing``."""
        with self._lock:
            sock = self._dialing
        if sock is not None:
            raw_shutdown(sock)
