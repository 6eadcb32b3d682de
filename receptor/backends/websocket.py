"""The WebSocket backend: ``ws-listener`` and ``ws-peer`` (wire.md §1.3, §1.4).

I/O adapters around the sans-I/O core in ``_ws.py`` (handshake, frames) and ``_proxy.py``
(``HTTP(S)_PROXY`` / ``NO_PROXY``). Thread model as in the TCP backend (a
``_listener.StreamListener`` and a ``_redial.RedialingDialer``): the listener accepts in a
``selectors`` loop that ``stop`` wakes; each connection gets a thread that does the TLS
handshake (``wss``), reads the HTTP upgrade request, answers it and, once upgraded, runs the
mesh protocol; each session has a writer thread draining a bounded queue. The dialer is one
thread that dials (through a proxy if the environment says so), runs the session and redials.

Choices where upstream is silent (documented for operators):

* A refused HTTP request (404, 400, 403, ...) is answered with upstream's bytes and the
  connection is then closed; Go's server would keep it alive for another request.
* The request head must arrive within 5 s (upstream's ``ReadHeaderTimeout``, which also
  bounds the TLS handshake) and be at most 16 KiB (Go allows 1 MiB; more → ``431``).
* Messages above 1 MiB are refused with close 1009 (gorilla sets no limit by default).
* When our side ends a session it sends a close frame (1000) before closing the TCP
  connection; a Go node just closes (its peer then logs close 1006).
* The dialer bounds the TCP connect, proxy CONNECT, TLS and upgrade by 15 s each (the Go
  dialer has no handshake timeout).
"""

import collections
import socket
import ssl
import time
from typing import Protocol

from receptor._errors import ConfigError, ProtocolError, ReceptorError
from receptor._log import logger
from receptor.backends import _proxy, _ws
from receptor.backends._listener import StreamListener, describe_peer
from receptor.backends._redial import DIAL_TIMEOUT, DialError, RedialingDialer, tls_dial_error
from receptor.backends._stream import READ_SIZE, QueuedSession
from receptor.backends.tcp import go_dial_error
from receptor.netceptor import SessionClosed
from receptor.netceptor.tls import ClientTLS, ServerTLS, TLSPeerError

#: Upstream's ``ReadHeaderTimeout`` (also bounds the server TLS handshake).
HEADER_TIMEOUT = 5.0
#: A malformed peer URL fails at once; this short pause lets the daemon finish starting
#: first, so the log reads as upstream's (``Initialization complete`` before the warning).
MALFORMED_URL_PAUSE = 0.2


class ServerTLSWrapper(Protocol):
    """What the listener needs of a ``tls-server`` (``receptor.netceptor.tls.ServerTLS``)."""

    def wrap(self, sock: socket.socket) -> socket.socket: ...


class ClientTLSWrapper(Protocol):
    """What the dialer needs of a ``tls-client`` (``receptor.netceptor.tls.ClientTLS``)."""

    def wrap(self, sock: socket.socket, server_name: str) -> socket.socket: ...


class ContextServerTLS:
    """A plain ``ssl.SSLContext`` used as a server wrapper (no receptor-specific checks).

    For library use and tests: it yields an ``ssl.SSLSocket``, which the session's reader and
    writer threads then share. The daemon passes its ``tls-server`` / ``tls-client`` configs
    instead, whose ``TLSSocket`` is built for one reader plus concurrent writers.
    """

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context

    def wrap(self, sock: socket.socket) -> ssl.SSLSocket:
        return self.context.wrap_socket(sock, server_side=True)


class ContextClientTLS:
    """A plain ``ssl.SSLContext`` used as a client wrapper, verifying ``server_name``
    (see :class:`ContextServerTLS` for where it is meant to be used)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context

    def wrap(self, sock: socket.socket, server_name: str) -> ssl.SSLSocket:
        return self.context.wrap_socket(sock, server_hostname=server_name)


class HeadError(Exception):
    """Reading an HTTP head failed: too large, timed out or the peer went away."""


def _read_head(sock: socket.socket, deadline: float, initial: bytes = b"") -> tuple[bytes, bytes]:
    """Read up to the end of an HTTP head; (head, bytes after it)."""
    buffer = initial
    while True:
        found = _ws.split_head(buffer)
        if found is not None:
            if len(found[0]) > _ws.MAX_HEAD:
                raise HeadError("too large")
            return found
        if len(buffer) > _ws.MAX_HEAD:
            raise HeadError("too large")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise HeadError("i/o timeout")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(READ_SIZE)
        except TimeoutError:
            raise HeadError("i/o timeout") from None
        if not chunk:
            raise HeadError("unexpected EOF")
        buffer += chunk


#: Go's HTTPS server answer to a plain HTTP request (e.g. ``curl http://`` on a wss port).
PLAIN_HTTP_ANSWER = (
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
)
_HTTP_STARTS = (b"GET /", b"HEAD ", b"POST ", b"PUT /", b"OPTIO")


def _plain_http_on_tls(conn: socket.socket) -> bool:
    """Whether the first bytes on a TLS port are an HTTP request (Go's check, by peeking)."""
    conn.settimeout(HEADER_TIMEOUT)
    try:
        first = conn.recv(5, socket.MSG_PEEK | socket.MSG_WAITALL)
    except TimeoutError:
        return False
    return first in _HTTP_STARTS


# ---------------------------------------------------------------------------------- session


class WebSocketSession(QueuedSession):
    """One upgraded connection: each backend message is one binary WebSocket message.

    Every frame goes through the writer thread (no direct send): the socket may be an
    ``ssl.SSLSocket``, which allows neither ``MSG_DONTWAIT`` nor a send beside the writer's.
    """

    direct_send = False

    def __init__(
        self, sock: socket.socket, description: str, server: bool, received: bytes = b""
    ) -> None:
        self._server = server
        self._decoder = _ws.FrameDecoder(server=server)
        self._messages: collections.deque[bytes] = collections.deque()
        self._unparsed = received
        self._close_sent = False
        super().__init__(sock, description)

    # ------------------------------------------------------------------ sending

    def _frame(self, opcode: int, payload: bytes) -> bytes:
        if self._server:
            return _ws.encode_frame(opcode, payload)
        return _ws.client_frame(opcode, payload)

    def send(self, message: bytes, wait: bool = True) -> None:
        self._enqueue(self._frame(_ws.OP_BINARY, message), wait)

    def _refuses_sends(self) -> bool:
        return self._closing or self._close_sent

    def _send_close(self, code: int, reason: str = "") -> None:
        """Queue our one close frame (later ones are dropped, as RFC 6455 asks)."""
        with self._cond:
            if self._close_sent or self._write_error is not None:
                return
            self._close_sent = True
            self._queue(self._frame(_ws.OP_CLOSE, _ws.close_payload(code, reason)))

    # ------------------------------------------------------------------ receiving

    def recv(self, timeout: float) -> bytes | None:
        deadline = time.monotonic() + timeout
        while True:
            if self._messages:
                return self._messages.popleft()
            if self._closing:
                raise SessionClosed("session closed")
            data: bytes | None = self._unparsed
            self._unparsed = b""
            if not data:
                data = self._read(deadline)
                if data is None:
                    return None
            self._absorb(data)

    def _read(self, deadline: float) -> bytes | None:
        buffered = isinstance(self._sock, ssl.SSLSocket) and self._sock.pending()
        if not buffered:
            remaining = max(0.0, deadline - time.monotonic())
            if not self._poller.poll(remaining * 1000):
                return None
            if self._closing:
                raise SessionClosed("session closed")
        try:
            data = self._sock.recv(READ_SIZE)
        except ssl.SSLEOFError:
            data = b""
        except ssl.SSLError as err:
            raise ProtocolError(f"tls: {err.reason or err}") from None
        if not data:
            if self._closing:
                raise SessionClosed("session closed")
            raise _ws.CloseReceived(_ws.CLOSE_ABNORMAL, "unexpected EOF")
        return data

    def _absorb(self, data: bytes) -> None:
        """Decode received bytes: queue messages, answer pings and closes, raise on errors."""
        try:
            events = self._decoder.feed(data)
        except _ws.CloseReceived as close:
            self._send_close(close.code)
            raise
        except _ws.FrameError as err:
            self._send_close(err.close_code, err.close_reason)
            raise
        for event in events:
            if isinstance(event, bytes):
                self._messages.append(event)
            elif event.opcode == _ws.OP_PING:
                with self._cond:
                    if not self._close_sent and self._write_error is None:
                        self._queue(self._frame(_ws.OP_PONG, event.payload))

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        """Send a close frame, flush briefly, shut the connection down; any thread."""
        self._send_close(_ws.CLOSE_NORMAL)
        super().close()


# ---------------------------------------------------------------------------------- listener


class WebSocketListener(StreamListener):
    """An HTTP(S) server that upgrades requests for ``path`` and runs a mesh session on each.

    A connection is tracked (``stop`` aborts it) through its TLS handshake and HTTP request.
    """

    kind = "ws-listener"
    connection_thread = "ws-connection"

    def __init__(
        self,
        bindaddr: str,
        port: int,
        path: str = "/",
        tls: ServerTLSWrapper | ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(bindaddr, port)
        self.path = path
        self.tls: ServerTLSWrapper | None = (
            ContextServerTLS(tls) if isinstance(tls, ssl.SSLContext) else tls
        )

    def _listening(self) -> str:
        scheme = "WSS" if self.tls else "WS"
        return f"{scheme} {self.bindaddr}:{self.port} path {self.path}"

    def _open_session(self, conn: socket.socket, peer: object) -> WebSocketSession | None:
        """TLS, read and answer the HTTP request; the session if it was a valid upgrade."""
        deadline = time.monotonic() + HEADER_TIMEOUT
        peer_text = describe_peer(peer)
        sock = conn if self.tls is None else self._tls_accept(conn, peer_text)
        if sock is None:
            return None
        try:
            upgraded = self._answer(sock, deadline)
        except OSError as err:
            if not self._stopping.is_set():
                logger.debug("WebSocket connection from %s failed: %s", peer_text, err)
            upgraded = False
        if not upgraded:
            sock.close()
            return None
        return WebSocketSession(sock, f"ws {peer_text}", server=True)

    def _tls_accept(self, conn: socket.socket, peer_text: str) -> socket.socket | None:
        """The TLS side of an accepted connection, or None (a ``tls-server`` logs why)."""
        tls = self.tls
        assert tls is not None
        try:
            if _plain_http_on_tls(conn):
                conn.sendall(PLAIN_HTTP_ANSWER)
                conn.close()
                logger.debug("http: TLS handshake error from %s: plain HTTP request", peer_text)
                return None
            if isinstance(tls, ServerTLS):
                # Two steps, so that ``stop`` can abort a slow handshake on the TLS socket.
                pending = tls.socket(conn)
                if not self._track(pending):
                    pending.close()
                    return None
                return tls.handshake(pending, peer_text, HEADER_TIMEOUT)
            conn.settimeout(HEADER_TIMEOUT)
            return tls.wrap(conn)
        except (OSError, ReceptorError, ValueError) as err:
            logger.debug("http: TLS handshake error from %s: %s", peer_text, err)
            return None

    def _answer(self, sock: socket.socket, deadline: float) -> bool:
        """Read the request head and answer it; whether the connection was upgraded."""
        try:
            head, rest = _read_head(sock, deadline)
        except HeadError as err:
            if str(err) == "too large":
                sock.sendall(_ws.header_too_large().response)
            return False
        response, refusal = _ws.answer_upgrade(head, self.path)
        if refusal is not None:
            if refusal.log:
                logger.error("Error upgrading websocket connection: %s", refusal.log)
            sock.sendall(refusal.response)
            return False
        if rest:
            logger.error(
                "Error upgrading websocket connection: websocket: client sent data before"
                " handshake is complete"
            )
            return False
        sock.settimeout(None)
        sock.sendall(response)
        return True


# ---------------------------------------------------------------------------------- dialer


class WebSocketDialer(RedialingDialer):
    """Dials a ``ws://`` / ``wss://`` URL (through an HTTP proxy when the environment names
    one), upgrades, runs a mesh session, and redials with back-off when it ends.

    ``tls`` verifies a ``wss`` server (against the URL's host name); without one a ``wss``
    URL uses the system trust store (the daemon itself refuses ``wss`` without ``tls=``, as
    upstream). ``environ`` replaces ``os.environ`` for the proxy variables.
    """

    kind = "ws-peer"
    transport = "Websocket"

    def __init__(
        self,
        address: str,
        redial: bool = True,
        extra_header: str | None = None,
        tls: ClientTLSWrapper | ssl.SSLContext | None = None,
        environ: dict[str, str] | None = None,
    ) -> None:
        super().__init__(address, redial)
        if extra_header and ":" not in extra_header:
            raise ConfigError("extra header must be in the form key:value")
        self.extra_header = extra_header
        self.tls: ClientTLSWrapper | None = (
            ContextClientTLS(tls) if isinstance(tls, ssl.SSLContext) else tls
        )
        self.environ = environ

    def dial(self) -> WebSocketSession:
        try:
            url = _ws.parse_ws_url(self.address)
        except ValueError as err:
            self._stopping.wait(MALFORMED_URL_PAUSE)
            raise DialError(str(err)) from None
        try:
            proxy = _proxy.proxy_for(url, self.environ)
        except ValueError as err:
            raise DialError(str(err)) from None
        if proxy is not None and proxy.scheme != "http":
            raise DialError(f"proxy: unknown scheme: {proxy.scheme}")
        host, port = (proxy.hostname, proxy.port) if proxy else (url.hostname, url.port)
        sock = self._connect(host, port)
        try:
            return self._handshake(sock, url, proxy)
        except DialError:
            self._abandon(sock)
            raise
        except (ssl.SSLError, TLSPeerError) as err:
            self._abandon(sock)
            raise tls_dial_error(url.hostport, err) from None
        except (OSError, ReceptorError, ValueError) as err:
            self._abandon(sock)
            raise DialError(str(err) or type(err).__name__) from None
        finally:
            self._set_dialing(None)

    def _abandon(self, sock: socket.socket) -> None:
        """Close a half-made connection (the TLS socket too, once ``sock`` was wrapped)."""
        with self._lock:
            current = self._dialing
        if current is not None:
            current.close()
        sock.close()

    def _connect(self, host: str, port: int) -> socket.socket:
        try:
            sock = socket.create_connection((host, port), timeout=DIAL_TIMEOUT)
        except OSError as err:
            name = f"[{host}]" if ":" in host else host
            raise DialError(go_dial_error("tcp", f"{name}:{port}", err)) from None
        if not self._set_dialing(sock):
            sock.close()
            raise DialError("stopped")
        return sock

    def _handshake(
        self, sock: socket.socket, url: _ws.WebSocketURL, proxy: _proxy.ProxyURL | None
    ) -> WebSocketSession:
        if proxy is not None:
            sock.settimeout(DIAL_TIMEOUT)
            sock.sendall(_proxy.connect_request(url.hostport, proxy))
            head, rest = self._head(sock)
            _proxy.check_connect_response(head)
            if rest:
                raise DialError("proxy sent data before the tunnel was used")
        if url.secure:
            sock = self._tls_connect(sock, url.hostname)
        key = _ws.new_key()
        sock.settimeout(DIAL_TIMEOUT)
        sock.sendall(_ws.upgrade_request(url, key, self.extra_header))
        head, rest = self._head(sock)
        _ws.check_upgrade_response(head, key)
        return WebSocketSession(sock, f"ws {self.address}", server=False, received=rest)

    def _tls_connect(self, sock: socket.socket, server_name: str) -> socket.socket:
        tls = self.tls or ContextClientTLS(ssl.create_default_context())
        if isinstance(tls, ClientTLS):
            # Two steps, so that ``stop`` can abort a slow handshake on the TLS socket.
            pending = tls.socket(sock, server_name)
            self._set_dialing(pending)
            return tls.handshake(pending, None, DIAL_TIMEOUT)
        sock.settimeout(DIAL_TIMEOUT)
        wrapped = tls.wrap(sock, server_name)
        self._set_dialing(wrapped)
        return wrapped

    @staticmethod
    def _head(sock: socket.socket) -> tuple[bytes, bytes]:
        try:
            return _read_head(sock, time.monotonic() + DIAL_TIMEOUT)
        except HeadError as err:
            raise DialError(str(err)) from None
