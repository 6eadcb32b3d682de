"""WebSocket protocol core for the ``ws-*`` backends (RFC 6455, wire.md §1.3): no sockets here.

The upstream daemon uses gorilla/websocket; a Go peer sees our bytes and we answer its (and a
hostile client's) bytes the way gorilla does. That is why the handshake and the frame codec
are written out here instead of taken from a library: the upgrade request must match Go's
byte for byte (header order included), refusals carry Go's status lines and bodies, and
protocol errors end with gorilla's close codes and texts (``bad MASK`` ...).

* :func:`upgrade_request` / :func:`check_upgrade_response` — the dialer's side of the handshake.
* :func:`parse_request` / :func:`answer_upgrade` — the listener's side.
* :class:`FrameDecoder` / :func:`encode_frame` — frames; one backend message is one binary
  message (text messages are accepted as data, as upstream).
"""

import base64
import binascii
import hashlib
import os
import struct
import urllib.parse
from dataclasses import dataclass, field
from email.utils import formatdate

from receptor._errors import ProtocolError

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

CLOSE_NORMAL = 1000
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_NO_STATUS = 1005
CLOSE_ABNORMAL = 1006
CLOSE_TOO_BIG = 1009

#: Largest message accepted. Mesh messages are far smaller (TCP frames them in 64 KiB);
#: gorilla has no default limit, we refuse larger ones with close 1009 as gorilla does
#: when a limit is set.
MAX_MESSAGE = 1 << 20
#: Largest HTTP request or response head read during the handshake.
MAX_HEAD = 16384

_CLOSE_NAMES = {
    1000: "(normal)",
    1001: "(going away)",
    1002: "(protocol error)",
    1003: "(unsupported data)",
    1005: "(no status)",
    1006: "(abnormal closure)",
    1007: "(invalid payload data)",
    1008: "(policy violation)",
    1009: "(message too big)",
    1010: "(mandatory extension missing)",
    1011: "(internal server error)",
    1015: "(TLS handshake error)",
}


class WebSocketError(ProtocolError):
    """A WebSocket protocol failure; ``str()`` is gorilla's wording (``websocket: ...``)."""


class CloseReceived(WebSocketError):
    """The peer sent a close frame (or vanished: code 1006)."""

    def __init__(self, code: int, text: str = "") -> None:
        self.code = code
        self.text = text
        message = f"websocket: close {code}"
        if code in _CLOSE_NAMES:
            message += f" {_CLOSE_NAMES[code]}"
        if text:
            message += f": {text}"
        super().__init__(message)


class FrameError(WebSocketError):
    """The peer broke the framing rules; ``close_frame`` is what gorilla answers."""

    def __init__(self, reason: str, code: int = CLOSE_PROTOCOL_ERROR, send_reason: bool = True):
        self.close_code = code
        self.close_reason = reason if send_reason else ""
        super().__init__(f"websocket: {reason}")


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value for a ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1(key.encode("latin-1") + GUID).digest()).decode()


def close_payload(code: int, reason: str = "") -> bytes:
    """Close frame body; code 1005 ("no status") means an empty body, as gorilla sends."""
    if code == CLOSE_NO_STATUS:
        return b""
    return struct.pack("!H", code) + reason.encode()


# ---------------------------------------------------------------------------------- frames


def _mask(data: bytes, key: bytes) -> bytes:
    if not data:
        return data
    repeat = (key * (len(data) // 4 + 1))[: len(data)]
    value = int.from_bytes(data, "little") ^ int.from_bytes(repeat, "little")
    return value.to_bytes(len(data), "little")


def encode_frame(opcode: int, payload: bytes, mask_key: bytes | None = None) -> bytes:
    """One final frame; ``mask_key`` (4 bytes) for client frames, None for server frames."""
    length = len(payload)
    mask_bit = 0x80 if mask_key is not None else 0
    if length <= 125:
        header = bytes((0x80 | opcode, mask_bit | length))
    elif length <= 0xFFFF:
        header = bytes((0x80 | opcode, mask_bit | 126)) + struct.pack("!H", length)
    else:
        header = bytes((0x80 | opcode, mask_bit | 127)) + struct.pack("!Q", length)
    if mask_key is None:
        return header + payload
    return header + mask_key + _mask(payload, mask_key)


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked frame with a fresh random key, as every dialer frame must be."""
    return encode_frame(opcode, payload, os.urandom(4))


_VALID_CLOSE = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})


@dataclass
class Control:
    """A control frame the session must react to (ping → pong)."""

    opcode: int
    payload: bytes


@dataclass
class FrameDecoder:
    """Turns received bytes into messages and control events.

    ``server`` is True on the listener's side: then every frame must be masked, and on the
    dialer's side none may be (gorilla: ``bad MASK``). ``feed`` returns the events in order:
    ``bytes`` for a whole data message, :class:`Control` for a ping or pong; a close frame
    raises :class:`CloseReceived`, a framing error :class:`FrameError`.
    """

    server: bool
    max_message: int = MAX_MESSAGE
    _buffer: bytearray = field(default_factory=bytearray)
    _fragments: list[bytes] = field(default_factory=list)
    _fragmented: bool = False
    _fragment_size: int = 0

    @property
    def buffered(self) -> int:
        return len(self._buffer) + self._fragment_size

    def feed(self, data: bytes) -> list[bytes | Control]:
        self._buffer += data
        events: list[bytes | Control] = []
        while True:
            frame = self._next_frame()
            if frame is None:
                return events
            event = self._handle(*frame)
            if event is not None:
                events.append(event)

    def _next_frame(self) -> tuple[bool, int, bytes] | None:
        buf = self._buffer
        if len(buf) < 2:
            return None
        first, second = buf[0], buf[1]
        final, rsv, opcode = bool(first & 0x80), first & 0x70, first & 0x0F
        masked, length = bool(second & 0x80), second & 0x7F
        if rsv:
            raise FrameError(f"unexpected reserved bits 0x{rsv:x}")
        if opcode in (OP_CLOSE, OP_PING, OP_PONG):
            if length > 125:
                raise FrameError("control frame length > 125")
            if not final:
                raise FrameError("control frame not final")
        elif opcode not in (OP_CONTINUATION, OP_TEXT, OP_BINARY):
            raise FrameError(f"unknown opcode {opcode}")
        offset = 2
        if length == 126:
            if len(buf) < 4:
                return None
            (length,) = struct.unpack_from("!H", buf, 2)
            offset = 4
        elif length == 127:
            if len(buf) < 10:
                return None
            (length,) = struct.unpack_from("!Q", buf, 2)
            offset = 10
        if masked != self.server:
            raise FrameError("bad MASK")
        if opcode < OP_CLOSE and self._fragment_size + length > self.max_message:
            raise FrameError("read limit exceeded", CLOSE_TOO_BIG, send_reason=False)
        key = b""
        if masked:
            if len(buf) < offset + 4:
                return None
            key = bytes(buf[offset : offset + 4])
            offset += 4
        if len(buf) < offset + length:
            return None
        payload = bytes(buf[offset : offset + length])
        del buf[: offset + length]
        if masked:
            payload = _mask(payload, key)
        return final, opcode, payload

    def _handle(self, final: bool, opcode: int, payload: bytes) -> bytes | Control | None:
        if opcode == OP_CLOSE:
            raise self._close(payload)
        if opcode in (OP_PING, OP_PONG):
            return Control(opcode, payload)
        if opcode == OP_CONTINUATION:
            if not self._fragmented:
                raise FrameError("continuation after final message frame")
        elif self._fragmented:
            raise FrameError("message start before final message frame")
        if final and not self._fragmented:
            return payload
        self._fragments.append(payload)
        self._fragment_size += len(payload)
        self._fragmented = not final
        if not final:
            return None
        message = b"".join(self._fragments)
        self._fragments.clear()
        self._fragment_size = 0
        return message

    @staticmethod
    def _close(payload: bytes) -> WebSocketError:
        if len(payload) < 2:
            return CloseReceived(CLOSE_NO_STATUS)
        (code,) = struct.unpack_from("!H", payload)
        if code not in _VALID_CLOSE and not 3000 <= code <= 4999:
            return FrameError(f"bad close code {code}")
        try:
            text = payload[2:].decode()
        except UnicodeDecodeError:
            return FrameError("invalid utf8 payload in close frame")
        return CloseReceived(code, text)


# ---------------------------------------------------------------------------------- HTTP


def canonical_header(name: str) -> str:
    """Go's ``http.CanonicalHeaderKey``: ``x-example-token`` → ``X-Example-Token``."""
    if not name or any(not (c.isalnum() or c in "!#$%&'*+-.^_`|~") for c in name):
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


@dataclass(frozen=True)
class WebSocketURL:
    """A parsed ``ws://`` / ``wss://`` address."""

    secure: bool
    host: str  # host[:port] exactly as written (Host and Origin headers)
    hostname: str  # without port or brackets (TLS server name, proxy rules)
    port: int
    target: str  # request target: path and query

    @property
    def origin(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.host}"

    @property
    def hostport(self) -> str:
        """``host:port`` as written, the default port filled in (for CONNECT and proxy rules)."""
        if self.host.endswith("]") or ":" not in self.host:
            return f"{self.host}:{self.port}"
        return self.host


def parse_ws_url(address: str) -> WebSocketURL:
    """Parse a peer address; anything but a usable ws/wss URL raises ``ValueError`` with
    gorilla's message (``malformed ws or wss URL``)."""
    try:
        parts = urllib.parse.urlsplit(address)
        port = parts.port
    except ValueError:
        raise ValueError("malformed ws or wss URL") from None
    # gorilla also refuses user info in the URL ("not allowed in websocket URIs").
    if parts.scheme not in ("ws", "wss") or not parts.hostname or "@" in parts.netloc:
        raise ValueError("malformed ws or wss URL")
    secure = parts.scheme == "wss"
    host = parts.netloc
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return WebSocketURL(secure, host, parts.hostname, port or (443 if secure else 80), target)


#: Headers gorilla sets itself and refuses from the caller.
_OWN_HEADERS = frozenset(
    {"Upgrade", "Connection", "Sec-Websocket-Key", "Sec-Websocket-Version",
     "Sec-Websocket-Extensions"}
)  # fmt: skip


def upgrade_request(url: WebSocketURL, key: str, extra_header: str | None = None) -> bytes:
    """The upgrade request exactly as Go sends it: request line, Host, User-Agent, then the
    other headers sorted by name (wire.md §1.3, golden/wire/ws-handshake.txt).

    ``extra_header`` (``Name:Value``) is canonicalised and its value trimmed as Go's header
    writer does; a ``Host`` extra header replaces the Host line (gorilla's rule), one of the
    WebSocket headers raises :class:`WebSocketError` (``duplicate header not allowed``).
    """
    host = url.host
    headers: list[tuple[str, str]] = []
    if extra_header:
        raw_name, _, raw_value = extra_header.partition(":")
        name = canonical_header(raw_name)
        value = raw_value.replace("\r", " ").replace("\n", " ").strip(" \t")
        if name in _OWN_HEADERS:
            raise WebSocketError(f"websocket: duplicate header not allowed: {name}")
        if name == "Host":
            host = value
        else:
            headers.append((name, value))
    headers += [
        ("Connection", "Upgrade"),
        ("Origin", url.origin),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", "13"),
        ("Upgrade", "websocket"),
    ]
    headers.sort(key=lambda header: header[0])  # stable: extra values first, as Header.Add
    lines = [f"GET {url.target} HTTP/1.1", f"Host: {host}", "User-Agent: Go-http-client/1.1"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def new_key() -> str:
    return base64.b64encode(os.urandom(16)).decode()


@dataclass
class HTTPHead:
    """A parsed request or response head."""

    start: str
    headers: list[tuple[str, str]]

    def get(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]

    def has_token(self, name: str, token: str) -> bool:
        """Whether a comma-separated header contains ``token`` (case-insensitively)."""
        return any(
            part.strip().lower() == token
            for value in self.values(name)
            for part in value.split(",")
        )


def split_head(buffer: bytes) -> tuple[bytes, bytes] | None:
    """(head, rest) once ``buffer`` holds a whole head (up to the empty line), else None."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    return buffer[: end + 2], buffer[end + 4 :]


def parse_head(head: bytes) -> HTTPHead:
    """Parse an HTTP/1.x head; ``ValueError`` when malformed."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes everything
        raise ValueError("malformed HTTP head") from None
    lines = text.split("\r\n")
    while lines and lines[-1] == "":
        lines.pop()
    if not lines or not lines[0]:
        raise ValueError("malformed HTTP head")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or any(c in name for c in " \t"):
            raise ValueError("malformed MIME header line")
        headers.append((canonical_header(name), value.strip(" \t")))
    return HTTPHead(lines[0], headers)


def check_upgrade_response(head: bytes, key: str) -> None:
    """Accept the listener's 101 answer or raise ``WebSocketError("websocket: bad handshake")``."""
    try:
        response = parse_head(head)
    except ValueError:
        raise WebSocketError("websocket: bad handshake") from None
    parts = response.start.split(" ", 2)
    if (
        len(parts) < 2
        or not parts[0].startswith("HTTP/1.")
        or parts[1] != "101"
        or not response.has_token("Upgrade", "websocket")
        or not response.has_token("Connection", "upgrade")
        or response.get("Sec-Websocket-Accept") != accept_key(key)
    ):
        raise WebSocketError("websocket: bad handshake")


# ---------------------------------------------------------------------------------- listener


@dataclass
class Refusal:
    """A refused request: the bytes to answer and, for upgrade errors, the log text."""

    response: bytes
    log: str | None = None


def _go_error_response(status: str, body: str, websocket_header: bool, now: float | None) -> bytes:
    """Go's ``http.Error`` response: headers sorted, then Date and Content-Length."""
    headers = ["Content-Type: text/plain; charset=utf-8"]
    if websocket_header:
        headers.append("Sec-Websocket-Version: 13")
    headers.append("X-Content-Type-Options: nosniff")
    headers.append(f"Date: {formatdate(now, usegmt=True)}")
    headers.append(f"Content-Length: {len(body.encode())}")
    return (f"HTTP/1.1 {status}\r\n" + "\r\n".join(headers) + "\r\n\r\n" + body).encode()


def bad_request(detail: str = "") -> Refusal:
    """Go net/http's answer to a request it cannot parse (then it closes the connection)."""
    text = "400 Bad Request" + (f": {detail}" if detail else "")
    head = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
    return Refusal(f"{head}Connection: close\r\n\r\n{text}".encode())


def header_too_large() -> Refusal:
    status = "431 Request Header Fields Too Large"
    head = f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n"
    return Refusal(f"{head}Connection: close\r\n\r\n{status}".encode())


def path_matches(pattern: str, path: str) -> bool:
    """Go ``ServeMux``: a pattern ending in ``/`` matches its whole subtree, else exactly."""
    if pattern.endswith("/"):
        return path.startswith(pattern)
    return path == pattern


def _same_origin(request: HTTPHead, host: str) -> bool:
    """gorilla's default ``CheckOrigin``: no Origin, or its host[:port] equals Host."""
    origins = request.values("Origin")
    if not origins:
        return True
    try:
        netloc = urllib.parse.urlsplit(origins[0]).netloc
    except ValueError:
        return False
    return netloc.rpartition("@")[2].lower() == host.lower()


def _valid_key(key: str) -> bool:
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        return False


def answer_upgrade(
    head: bytes, pattern: str, now: float | None = None
) -> tuple[bytes, Refusal | None]:
    """The listener's answer to one request head: (101 response, None) to accept, or
    (b"", refusal). Checks run in gorilla's order, with net/http's and gorilla's answers."""
    try:
        request = parse_head(head)
    except ValueError as err:
        return b"", bad_request(str(err) if "MIME" in str(err) else "")
    parts = request.start.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return b"", bad_request("malformed HTTP version" if len(parts) == 3 else "")
    method, target, _ = parts
    host_values = request.values("Host")
    if len(host_values) != 1:
        return b"", bad_request(
            "missing required Host header" if not host_values else "too many Host headers"
        )
    path = urllib.parse.urlsplit(target).path if not target.startswith("/") else target
    path = urllib.parse.unquote(path.split("?", 1)[0])  # Go matches the decoded path
    if not path_matches(pattern, path):
        return b"", Refusal(_go_error_response("404 Not Found", "404 page not found\n", False, now))

    def refuse(status: str, reason: str) -> tuple[bytes, Refusal]:
        body = status.split(" ", 1)[1] + "\n"
        response = _go_error_response(status, body, True, now)
        return b"", Refusal(response, f"websocket: {reason}")

    not_ws = "the client is not using the websocket protocol: "
    bad = "400 Bad Request"
    if not request.has_token("Connection", "upgrade"):
        return refuse(
            "400 Bad Request", not_ws + "'upgrade' token not found in 'Connection' header"
        )
    if not request.has_token("Upgrade", "websocket"):
        return refuse(bad, not_ws + "'websocket' token not found in 'Upgrade' header")
    if method != "GET":
        return refuse("405 Method Not Allowed", not_ws + "request method is not GET")
    if not request.has_token("Sec-Websocket-Version", "13"):
        return refuse(
            "400 Bad Request", "unsupported version: 13 not found in 'Sec-Websocket-Version' header"
        )
    if not _same_origin(request, host_values[0]):
        return refuse("403 Forbidden", "request origin not allowed by Upgrader.CheckOrigin")
    key = request.get("Sec-Websocket-Key") or ""
    if not _valid_key(key):
        return refuse(
            "400 Bad Request",
            "not a websocket handshake: 'Sec-WebSocket-Key' header must be Base64 encoded value"
            " of 16-byte in length",
        )
    response = (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
    )
    return response.encode(), None
