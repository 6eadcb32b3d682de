"""HighwayHash-64, Cython twin of ``_highwayhash_py`` (same API, same results).

Follows minio/highwayhash (the library upstream receptor hashes node names with); the
algorithm is summarised in ``spec/wire.md`` §4.1. The lanes are C ``uint64_t``, so the
arithmetic wraps mod 2**64 by itself.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcpy, memset

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object text, Py_ssize_t* size) except NULL

__all__ = ["ZERO_KEY", "hash64", "node_hash"]

ZERO_KEY = bytes(32)

cdef uint64_t[4] INIT0 = [
    0xdbe6d5d5fe4cce2f, 0xa4093822299f31d0, 0x13198a2e03707344, 0x243f6a8885a308d3
]
cdef uint64_t[4] INIT1 = [
    0x3bd39e10cb0ef593, 0xc0acf169b5f18a8c, 0xbe5466cf34e90c6c, 0x452821e638d01377
]


cdef struct HHState:
    uint64_t v0[4]
    uint64_t v1[4]
    uint64_t mul0[4]
    uint64_t mul1[4]


cdef inline uint64_t load_le64(const unsigned char* p) noexcept nogil:
    # Byte-wise so it is correct on any host; compilers fold it into one load.
    return (
        <uint64_t>p[0] | (<uint64_t>p[1] << 8) | (<uint64_t>p[2] << 16)
        | (<uint64_t>p[3] << 24) | (<uint64_t>p[4] << 32) | (<uint64_t>p[5] << 40)
        | (<uint64_t>p[6] << 48) | (<uint64_t>p[7] << 56)
    )


cdef inline void store_le64(unsigned char* p, uint64_t x) noexcept nogil:
    cdef int i
    for i in range(8):
        p[i] = <unsigned char>(x >> (8 * i))


cdef inline uint64_t rot32(uint64_t x) noexcept nogil:
    return (x >> 32) | (x << 32)


cdef inline void zipper_merge(
    uint64_t x, uint64_t y, uint64_t* d0, uint64_t* d1
) noexcept nogil:
    d0[0] += (
        (x & 0xFF0000ULL)
        + ((y & 0xFF00000000000000ULL) >> 8)
        + (((x & 0xFF0000000000ULL) + (y & 0xFF000000000000ULL)) >> 16)
        + (((x & 0xFF000000ULL) + (y & 0xFF00000000ULL)) >> 24)
        + ((x & 0xFF00ULL) << 32)
        + (x << 56)
    )
    d1[0] += (
        (x & 0xFF00000000000000ULL)
        + (y & 0xFF0000ULL)
        + ((x & 0xFF000000000000ULL) >> 8)
        + ((y & 0xFF0000000000ULL) >> 16)
        + (((y & 0xFF000000ULL) + (x & 0xFF00000000ULL)) >> 24)
        + ((y & 0xFFULL) << 48)
        + ((y & 0xFF00ULL) << 24)
    )


cdef inline void update(HHState* s, const unsigned char* block) noexcept nogil:
    cdef int i
    for i in range(4):
        s.v1[i] += load_le64(block + 8 * i) + s.mul0[i]
        s.mul0[i] ^= (s.v1[i] & 0xFFFFFFFFULL) * (s.v0[i] >> 32)
        s.v0[i] += s.mul1[i]
        s.mul1[i] ^= (s.v0[i] & 0xFFFFFFFFULL) * (s.v1[i] >> 32)
    zipper_merge(s.v1[0], s.v1[1], &s.v0[0], &s.v0[1])
    zipper_merge(s.v1[2], s.v1[3], &s.v0[2], &s.v0[3])
    zipper_merge(s.v0[0], s.v0[1], &s.v1[0], &s.v1[1])
    zipper_merge(s.v0[2], s.v0[3], &s.v1[2], &s.v1[3])


cdef inline uint32_t rotl32(uint32_t x, int count) noexcept nogil:
    return (x << count) | (x >> (32 - count))


cdef uint64_t c_hash64(
    const unsigned char* data, Py_ssize_t length, const unsigned char* key
) noexcept nogil:
    cdef HHState s
    cdef unsigned char block[32]
    cdef uint64_t k
    cdef Py_ssize_t offset, full, rest, mod4, aligned
    cdef const unsigned char* tail
    cdef int i
    for i in range(4):
        k = load_le64(key + 8 * i)
        s.mul0[i] = INIT0[i]
        s.mul1[i] = INIT1[i]
        s.v0[i] = INIT0[i] ^ k
        s.v1[i] = INIT1[i] ^ rot32(k)

    full = length & ~(<Py_ssize_t>31)
    offset = 0
    while offset < full:
        update(&s, data + offset)
        offset += 32

    rest = length - full
    if rest:
        tail = data + full
        for i in range(4):
            s.v0[i] += (<uint64_t>rest << 32) + <uint64_t>rest
            s.v1[i] = (
                (<uint64_t>rotl32(<uint32_t>(s.v1[i] >> 32), <int>rest) << 32)
                | <uint64_t>rotl32(<uint32_t>s.v1[i], <int>rest)
            )
        mod4 = rest & 3
        aligned = rest - mod4
        memset(block, 0, 32)
        memcpy(block, tail, aligned)
        if rest >= 16:
            memcpy(block + 28, tail + rest - 4, 4)
        elif mod4:
            block[16] = tail[aligned]
            block[17] = tail[aligned + (mod4 >> 1)]
            block[18] = tail[rest - 1]
        update(&s, block)

    for _ in range(4):
        store_le64(block, rot32(s.v0[2]))
        store_le64(block + 8, rot32(s.v0[3]))
        store_le64(block + 16, rot32(s.v0[0]))
        store_le64(block + 24, rot32(s.v0[1]))
        update(&s, block)

    return s.v0[0] + s.v1[0] + s.mul0[0] + s.mul1[0]


cdef unsigned char ZERO_KEY_BYTES[32]
memset(ZERO_KEY_BYTES, 0, 32)


def hash64(data, key=ZERO_KEY):
    """Return the HighwayHash-64 of ``data`` under the 32-byte ``key`` as an unsigned
    integer.

    This is the value minio/highwayhash's ``Sum64`` returns (its 8-byte digest read
    little-endian). Raises ``ValueError`` if ``key`` is not 32 bytes long.
    """
    if type(data) is not bytes:
        data = memoryview(data).tobytes()
    if type(key) is not bytes:
        key = memoryview(key).tobytes()
    if PyBytes_GET_SIZE(key) != 32:
        raise ValueError("HighwayHash key must be 32 bytes")
    return c_hash64(
        <const unsigned char*>PyBytes_AS_STRING(data),
        PyBytes_GET_SIZE(data),
        <const unsigned char*>PyBytes_AS_STRING(key),
    )


def node_hash(str node_id not None):
    """Return the hash receptor puts on the wire for ``node_id`` (UTF-8, zero key).

    The caller replaces ``localhost`` by the local node ID first (``spec/wire.md``
    §4.1).
    """
    cdef Py_ssize_t size
    # No copy: CPython keeps (and caches) the UTF-8 form of the str.
    cdef const char* encoded = PyUnicode_AsUTF8AndSize(node_id, &size)
    return c_hash64(<const unsigned char*>encoded, size, ZERO_KEY_BYTES)
