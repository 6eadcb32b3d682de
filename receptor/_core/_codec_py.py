"""Netceptor message codec and TCP framing, pure-Python twin of ``_codec_c``.

Layouts are in ``spec/wire.md``: backend framing §1.1, message types §2, the data message
header §3. Nothing here touches a socket: bytes in, bytes or values out.
"""

import operator
import struct

from receptor._errors import ProtocolError

__all__ = [
    "HEADER_LEN",
    "MAX_FRAME",
    "MSG_DATA",
    "MSG_REJECT",
    "MSG_ROUTING_UPDATE",
    "MSG_SERVICE_ADVERTISEMENT",
    "REJECT_MESSAGE",
    "SERVICE_NAME_MAX",
    "Framer",
    "decode_data",
    "encode_data",
    "frame",
    "with_hops",
]

MSG_DATA = 0
MSG_ROUTING_UPDATE = 1
MSG_SERVICE_ADVERTISEMENT = 2
MSG_REJECT = 3
HEADER_LEN = 36
MAX_FRAME = 65535
SERVICE_NAME_MAX = 8
REJECT_MESSAGE = b"\x03[]"

BytesLike = bytes | bytearray | memoryview

_U64_MAX = 0xFFFFFFFFFFFFFFFF
# type, HopsToLive, reserved, FromNode hash, ToNode hash, FromService, ToService.
_HEADER = struct.Struct(">BBHQQ8s8s")
_LENGTH = struct.Struct("<H")
# b"\x00" + HopsToLive, one per hop count, so with_hops copies the message only once.
_DATA_PREFIX = [bytes((MSG_DATA, hops)) for hops in range(256)]


def _byte_view(data: BytesLike) -> bytes | bytearray | memoryview:
    """``data`` itself when it indexes by byte, else a flat byte view of its buffer."""
    if isinstance(data, bytes | bytearray):
        return data
    return memoryview(data).cast("B")


def _check_hops(hops: int) -> int:
    hops = operator.index(hops)
    if not 0 <= hops <= 255:
        raise ValueError(f"HopsToLive must be in 0..255, not {hops}")
    return hops


def _encode_service(name: str) -> bytes:
    if not isinstance(name, str):
        raise TypeError(f"service name must be str, not {type(name).__name__}")
    encoded = name.encode("utf-8", "surrogateescape")
    if len(encoded) > SERVICE_NAME_MAX:
        raise ProtocolError("service name too long")
    return encoded


def _decode_service(field: bytes) -> str:
    return field.rstrip(b"\x00").decode("utf-8", "surrogateescape")


def encode_data(
    hops: int,
    from_hash: int,
    to_hash: int,
    from_service: str,
    to_service: str,
    payload: BytesLike,
) -> bytes:
    """Return a data message (``spec/wire.md`` §3): 36-byte header, then ``payload``.

    Node hashes go big-endian; service names are UTF-8 (``surrogateescape``, so names that came
    from ``decode_data`` re-encode to the same bytes) right-padded with NUL to 8 bytes. The
    reserved bytes are written as ``00 00``.

    Raises ``ProtocolError("service name too long")`` when a name encodes to more than 8 bytes,
    ``ValueError`` when ``hops`` is outside 0..255 or a hash outside 0..2**64-1.
    """
    hops = _check_hops(hops)
    from_hash = operator.index(from_hash)
    to_hash = operator.index(to_hash)
    if not (0 <= from_hash <= _U64_MAX and 0 <= to_hash <= _U64_MAX):
        raise ValueError("node hashes must be in 0..2**64-1")
    header = _HEADER.pack(
        MSG_DATA,
        hops,
        0,
        from_hash,
        to_hash,
        _encode_service(from_service),
        _encode_service(to_service),
    )
    return header + payload


def decode_data(message: BytesLike) -> tuple[int, int, int, str, str, bytes]:
    """Split a data message into its header fields and payload.

    Returns ``(hops, from_hash, to_hash, from_service, to_service, payload)``.
    Accepts any bytes-like object. Trailing NULs (only trailing ones) are stripped from the
    service names, which are decoded as UTF-8 with ``surrogateescape`` so that any bytes survive
    a round trip through ``encode_data``. The reserved bytes 2-3 are ignored, as upstream does.

    Raises ``ProtocolError`` if the message is shorter than 36 bytes or is not of type data.
    """
    view = _byte_view(message)
    if len(view) < HEADER_LEN:
        raise ProtocolError("data too short to be a valid message")
    msg_type, hops, _, from_hash, to_hash, from_service, to_service = _HEADER.unpack_from(view)
    if msg_type != MSG_DATA:
        raise ProtocolError(f"not a data message (type {msg_type})")
    return (
        hops,
        from_hash,
        to_hash,
        _decode_service(from_service),
        _decode_service(to_service),
        bytes(view[HEADER_LEN:]),
    )


def with_hops(message: BytesLike, hops: int) -> bytes:
    """Return a copy of the data ``message`` with HopsToLive (byte 1) set to ``hops``.

    Everything else, the reserved bytes and the payload included, is passed through untouched:
    forwarding never re-encodes a message. Raises ``ProtocolError`` if ``message`` is not a data
    message of at least 36 bytes, ``ValueError`` if ``hops`` is outside 0..255.
    """
    hops = _check_hops(hops)
    view = _byte_view(message)
    if len(view) < HEADER_LEN:
        raise ProtocolError("data too short to be a valid message")
    if view[0] != MSG_DATA:
        raise ProtocolError(f"not a data message (type {view[0]})")
    return b"".join((_DATA_PREFIX[hops], memoryview(view)[2:]))


def frame(message: BytesLike) -> bytes:
    """Return ``message`` framed for TCP: 2-byte little-endian length, then the bytes.

    Raises ``ProtocolError`` for an empty message (a Go receiver panics on a zero-length backend
    message) and for one longer than 65535 bytes (the length would wrap and desynchronise the
    stream, as upstream's sender lets happen).
    """
    view = _byte_view(message)
    length = len(view)
    if length == 0:
        raise ProtocolError("refusing to send an empty backend message")
    if length > MAX_FRAME:
        raise ProtocolError(f"backend message of {length} bytes exceeds {MAX_FRAME}")
    return _LENGTH.pack(length) + view


class Framer:
    """Incremental de-framer for a TCP backend stream (``spec/wire.md`` §1.1).

    ``feed`` takes whatever the socket returned and hands back every frame completed by it.
    Bytes of an incomplete frame are kept until later feeds complete it; ``buffered`` says how
    many, so at EOF a caller can tell a clean end (0) from a peer that stopped mid-frame.
    """

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = bytearray()

    @property
    def buffered(self) -> int:
        """Number of bytes held that belong to a frame not yet complete."""
        return len(self._pending)

    def feed(self, data: BytesLike) -> list[bytes]:
        """Consume ``data``; return the frames it completed, in order, without prefix.

        Zero-length frames come back as ``b""``: they are not valid backend messages, and the
        caller decides how to report them.
        """
        pending = self._pending
        if not pending and type(data) is bytes:
            # Nothing held over: slice frames straight out of the caller's bytes.
            frames, used = _split(data)
            if used < len(data):
                pending += memoryview(data)[used:]
            return frames
        pending += data
        with memoryview(pending) as view:
            frames, used = _split(view)
        # bytearray drops a prefix in O(1) by moving its start pointer, so a frame that arrives
        # in many small pieces is not copied over and over.
        del pending[:used]
        return frames


def _split(buf: bytes | memoryview) -> tuple[list[bytes], int]:
    """Complete frames at the start of ``buf``, and how many bytes they use."""
    frames: list[bytes] = []
    pos = 0
    end = len(buf)
    while end - pos >= 2:
        stop = pos + 2 + (buf[pos] | (buf[pos + 1] << 8))
        if stop > end:
            break
        frames.append(bytes(buf[pos + 2 : stop]))
        pos = stop
    return frames, pos
