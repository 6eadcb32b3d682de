"""Netceptor message codec and TCP framing, Cython twin of ``_codec_py`` (same API).

Layouts are in ``spec/wire.md``: backend framing §1.1, message types §2, the data
message header §3. Nothing here touches a socket: bytes in, bytes or values out. The hot
paths read and write the bytes directly and build results with
``PyBytes_FromStringAndSize``.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.number cimport PyNumber_Index
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport uint64_t
from libc.string cimport memcpy, memset

from receptor._errors import ProtocolError

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object text, Py_ssize_t* size) except NULL

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

cdef enum:
    C_MSG_DATA = 0
    C_HEADER_LEN = 36
    C_MAX_FRAME = 65535
    C_SERVICE_NAME_MAX = 8
    # Longest incomplete frame a Framer can hold: a length prefix and 65534 of 65535
    # bytes.
    C_PENDING_MAX = C_MAX_FRAME + 1

MSG_DATA = C_MSG_DATA
MSG_ROUTING_UPDATE = 1
MSG_SERVICE_ADVERTISEMENT = 2
MSG_REJECT = 3
HEADER_LEN = C_HEADER_LEN
MAX_FRAME = C_MAX_FRAME
SERVICE_NAME_MAX = C_SERVICE_NAME_MAX
REJECT_MESSAGE = b"\x03[]"


cdef struct ByteSpan:
    const unsigned char* data
    Py_ssize_t size
    bint exported  # a buffer was acquired into the Py_buffer and must be released


cdef inline int open_span(object obj, Py_buffer* view, ByteSpan* span) except -1:
    """Point ``span`` at the bytes of ``obj``; ``close_span`` releases them."""
    if type(obj) is bytes:
        # No buffer export needed: read the bytes object's storage directly.
        span.exported = False
        span.data = <const unsigned char*>PyBytes_AS_STRING(obj)
        span.size = PyBytes_GET_SIZE(obj)
    else:
        PyObject_GetBuffer(obj, view, PyBUF_SIMPLE)
        span.exported = True
        span.data = <const unsigned char*>view.buf
        span.size = view.len
    return 0


cdef inline void close_span(Py_buffer* view, ByteSpan* span) noexcept:
    if span.exported:
        PyBuffer_Release(view)


cdef inline uint64_t load_be64(const unsigned char* p) noexcept nogil:
    return (
        (<uint64_t>p[0] << 56) | (<uint64_t>p[1] << 48) | (<uint64_t>p[2] << 40)
        | (<uint64_t>p[3] << 32) | (<uint64_t>p[4] << 24) | (<uint64_t>p[5] << 16)
        | (<uint64_t>p[6] << 8) | <uint64_t>p[7]
    )


cdef inline void store_be64(unsigned char* p, uint64_t x) noexcept nogil:
    cdef int i
    for i in range(8):
        p[i] = <unsigned char>(x >> (56 - 8 * i))


cdef inline unsigned char check_hops(object hops) except? 0:
    cdef long long value
    try:
        value = PyNumber_Index(hops)
    except OverflowError:
        value = -1
    if not 0 <= value <= 255:
        raise ValueError(f"HopsToLive must be in 0..255, not {hops}")
    return <unsigned char>value


cdef inline uint64_t to_uint64(object number) except? 0:
    try:
        return PyNumber_Index(number)
    except OverflowError:
        raise ValueError("node hashes must be in 0..2**64-1") from None


cdef inline int put_service(unsigned char* field, str name) except -1:
    """Write ``name`` UTF-8 encoded into the NUL-padded 8-byte ``field``."""
    cdef const char* encoded
    cdef Py_ssize_t size
    cdef bytes escaped
    try:
        # No copy: CPython keeps (and caches) the UTF-8 form of the str.
        encoded = PyUnicode_AsUTF8AndSize(name, &size)
    except UnicodeEncodeError:
        # Lone surrogates: bytes that were not UTF-8 when decode_data read them.
        escaped = name.encode("utf-8", "surrogateescape")
        encoded = PyBytes_AS_STRING(escaped)
        size = PyBytes_GET_SIZE(escaped)
    if size > C_SERVICE_NAME_MAX:
        raise ProtocolError("service name too long")
    memcpy(field, encoded, size)
    return 0


cdef inline str get_service(const unsigned char* field):
    cdef Py_ssize_t size = C_SERVICE_NAME_MAX
    while size and field[size - 1] == 0:
        size -= 1
    return PyUnicode_DecodeUTF8(<const char*>field, size, "surrogateescape")


def encode_data(
    hops,
    from_hash,
    to_hash,
    str from_service not None,
    str to_service not None,
    payload,
):
    """Return a data message (``spec/wire.md`` §3): 36-byte header, then ``payload``.

    Node hashes go big-endian; service names are UTF-8 (``surrogateescape``, so names
    that came from ``decode_data`` re-encode to the same bytes) right-padded with NUL to
    8 bytes. The reserved bytes are written as ``00 00``.

    Raises ``ProtocolError("service name too long")`` when a name encodes to more than 8
    bytes, ``ValueError`` when ``hops`` is outside 0..255 or a hash outside 0..2**64-1.
    """
    cdef unsigned char hop_count = check_hops(hops)
    cdef uint64_t from_value = to_uint64(from_hash)
    cdef uint64_t to_value = to_uint64(to_hash)
    cdef unsigned char header[C_HEADER_LEN]
    cdef Py_buffer view
    cdef ByteSpan body
    cdef bytes message
    cdef unsigned char* out

    memset(header, 0, C_HEADER_LEN)
    header[1] = hop_count
    store_be64(header + 4, from_value)
    store_be64(header + 12, to_value)
    put_service(header + 20, from_service)
    put_service(header + 28, to_service)

    open_span(payload, &view, &body)
    try:
        message = PyBytes_FromStringAndSize(NULL, C_HEADER_LEN + body.size)
        out = <unsigned char*>PyBytes_AS_STRING(message)
        memcpy(out, header, C_HEADER_LEN)
        memcpy(out + C_HEADER_LEN, body.data, body.size)
    finally:
        close_span(&view, &body)
    return message


def decode_data(message):
    """Split a data message into its header fields and payload.

    Returns ``(hops, from_hash, to_hash, from_service, to_service, payload)``.
    Accepts any bytes-like object. Trailing NULs (only trailing ones) are stripped from
    the service names, which are decoded as UTF-8 with ``surrogateescape`` so that any
    bytes survive a round trip through ``encode_data``. The reserved bytes 2-3 are
    ignored, as upstream does.

    Raises ``ProtocolError`` if the message is shorter than 36 bytes or is not of type
    data.
    """
    cdef Py_buffer view
    cdef ByteSpan msg
    cdef const unsigned char* p
    open_span(message, &view, &msg)
    try:
        p = msg.data
        if msg.size < C_HEADER_LEN:
            raise ProtocolError("data too short to be a valid message")
        if p[0] != C_MSG_DATA:
            raise ProtocolError(f"not a data message (type {p[0]})")
        return (
            p[1],
            load_be64(p + 4),
            load_be64(p + 12),
            get_service(p + 20),
            get_service(p + 28),
            PyBytes_FromStringAndSize(
                <const char*>p + C_HEADER_LEN, msg.size - C_HEADER_LEN
            ),
        )
    finally:
        close_span(&view, &msg)


def with_hops(message, hops):
    """Return a copy of the data ``message`` with HopsToLive (byte 1) set to ``hops``.

    Everything else, the reserved bytes and the payload included, is passed through
    untouched: forwarding never re-encodes a message. Raises ``ProtocolError`` if
    ``message`` is not a data message of at least 36 bytes, ``ValueError`` if ``hops``
    is outside 0..255.
    """
    cdef unsigned char hop_count = check_hops(hops)
    cdef Py_buffer view
    cdef ByteSpan msg
    cdef bytes copy
    cdef unsigned char* out
    open_span(message, &view, &msg)
    try:
        if msg.size < C_HEADER_LEN:
            raise ProtocolError("data too short to be a valid message")
        if msg.data[0] != C_MSG_DATA:
            raise ProtocolError(f"not a data message (type {msg.data[0]})")
        copy = PyBytes_FromStringAndSize(NULL, msg.size)
        out = <unsigned char*>PyBytes_AS_STRING(copy)
        memcpy(out, msg.data, msg.size)
        out[1] = hop_count
    finally:
        close_span(&view, &msg)
    return copy


def frame(message):
    """Return ``message`` framed for TCP: 2-byte little-endian length, then the bytes.

    Raises ``ProtocolError`` for an empty message (a Go receiver panics on a zero-length
    backend message) and for one longer than 65535 bytes (the length would wrap and
    desynchronise the stream, as upstream's sender lets happen).
    """
    cdef Py_buffer view
    cdef ByteSpan msg
    cdef bytes framed
    cdef unsigned char* out
    open_span(message, &view, &msg)
    try:
        if msg.size == 0:
            raise ProtocolError("refusing to send an empty backend message")
        if msg.size > C_MAX_FRAME:
            raise ProtocolError(
                f"backend message of {msg.size} bytes exceeds {C_MAX_FRAME}"
            )
        framed = PyBytes_FromStringAndSize(NULL, msg.size + 2)
        out = <unsigned char*>PyBytes_AS_STRING(framed)
        out[0] = <unsigned char>(msg.size & 0xFF)
        out[1] = <unsigned char>(msg.size >> 8)
        memcpy(out + 2, msg.data, msg.size)
    finally:
        close_span(&view, &msg)
    return framed


cdef class Framer:
    """Incremental de-framer for a TCP backend stream (``spec/wire.md`` §1.1).

    ``feed`` takes whatever the socket returned and hands back every frame completed by
    it. Bytes of an incomplete frame are kept until later feeds complete it;
    ``buffered`` says how many, so at EOF a caller can tell a clean end (0) from a peer
    that stopped mid-frame.
    """

    cdef unsigned char* _pending
    cdef Py_ssize_t _held

    def __dealloc__(self):
        PyMem_Free(self._pending)

    @property
    def buffered(self):
        """Number of bytes held that belong to a frame not yet complete."""
        return self._held

    cdef int _hold(self, const unsigned char* data, Py_ssize_t size) except -1:
        # Allocated on first use: one fixed block is enough, as an incomplete frame
        # never exceeds C_PENDING_MAX bytes.
        if self._pending == NULL:
            self._pending = <unsigned char*>PyMem_Malloc(C_PENDING_MAX)
            if self._pending == NULL:
                raise MemoryError()
        memcpy(self._pending + self._held, data, size)
        self._held += size
        return 0

    def feed(self, data):
        """Consume ``data``; return the frames it completed, in order, without prefix.

        Zero-length frames come back as ``b""``: they are not valid backend messages,
        and the caller decides how to report them.
        """
        cdef list frames = []
        cdef Py_buffer view
        cdef ByteSpan span
        cdef const unsigned char* p
        cdef Py_ssize_t pos = 0
        cdef Py_ssize_t size, take, need, length
        open_span(data, &view, &span)
        try:
            p = span.data
            size = span.size
            if self._held:
                # Complete the held frame with as few bytes as it needs, then read the
                # rest of this chunk in place.
                if self._held < 2:
                    take = min(2 - self._held, size)
                    self._hold(p, take)
                    pos = take
                    if self._held < 2:
                        return frames
                need = 2 + (self._pending[0] | (self._pending[1] << 8)) - self._held
                take = min(need, size - pos)
                self._hold(p + pos, take)
                pos += take
                if take < need:
                    return frames
                frames.append(
                    PyBytes_FromStringAndSize(
                        <const char*>self._pending + 2, self._held - 2
                    )
                )
                self._held = 0
            while size - pos >= 2:
                length = p[pos] | (p[pos + 1] << 8)
                if size - pos - 2 < length:
                    break
                frames.append(
                    PyBytes_FromStringAndSize(<const char*>p + pos + 2, length)
                )
                pos += 2 + length
            if pos < size:
                self._hold(p + pos, size - pos)
            return frames
        finally:
            close_span(&view, &span)
