"""HighwayHash-64, pure-Python twin of ``_highwayhash_c`` (same API, same results).

Follows minio/highwayhash (the library upstream receptor hashes node names with); the algorithm
is summarised in ``spec/wire.md`` §4.1. Python integers are unbounded, so every lane operation is
masked back to 64 bits.
"""

__all__ = ["ZERO_KEY", "hash64", "node_hash"]

ZERO_KEY = bytes(32)
"""The all-zero 32-byte key receptor hashes node names with."""

_MASK = 0xFFFFFFFFFFFFFFFF
_INIT0 = (0xDBE6D5D5FE4CCE2F, 0xA4093822299F31D0, 0x13198A2E03707344, 0x243F6A8885A308D3)
_INIT1 = (0x3BD39E10CB0EF593, 0xC0ACF169B5F18A8C, 0xBE5466CF34E90C6C, 0x452821E638D01377)


def _rot32(x: int) -> int:
    return ((x >> 32) | (x << 32)) & _MASK


def _zipper_merge(x: int, y: int) -> tuple[int, int]:
    """The two addends the zipper merge of lanes ``(x, y)`` adds to the destination pair."""
    d0 = (
        (x & 0xFF0000)
        + ((y & 0xFF00000000000000) >> 8)
        + (((x & 0xFF0000000000) + (y & 0xFF000000000000)) >> 16)
        + (((x & 0xFF000000) + (y & 0xFF00000000)) >> 24)
        + ((x & 0xFF00) << 32)
        + ((x << 56) & _MASK)
    )
    d1 = (
        (x & 0xFF00000000000000)
        + (y & 0xFF0000)
        + ((x & 0xFF000000000000) >> 8)
        + ((y & 0xFF0000000000) >> 16)
        + (((y & 0xFF000000) + (x & 0xFF00000000)) >> 24)
        + ((y & 0xFF) << 48)
        + ((y & 0xFF00) << 24)
    )
    return d0, d1


def _update(v0: list[int], v1: list[int], mul0: list[int], mul1: list[int], block: bytes) -> None:
    for i in range(4):
        m = int.from_bytes(block[8 * i : 8 * i + 8], "little")
        v1[i] = (v1[i] + m + mul0[i]) & _MASK
        mul0[i] ^= (v1[i] & 0xFFFFFFFF) * (v0[i] >> 32)
        v0[i] = (v0[i] + mul1[i]) & _MASK
        mul1[i] ^= (v0[i] & 0xFFFFFFFF) * (v1[i] >> 32)
    for a, b in ((0, 1), (2, 3)):
        d0, d1 = _zipper_merge(v1[a], v1[b])
        v0[a] = (v0[a] + d0) & _MASK
        v0[b] = (v0[b] + d1) & _MASK
    for a, b in ((0, 1), (2, 3)):
        d0, d1 = _zipper_merge(v0[a], v0[b])
        v1[a] = (v1[a] + d0) & _MASK
        v1[b] = (v1[b] + d1) & _MASK


def _rotate_halves(x: int, count: int) -> int:
    """Rotate each 32-bit half of ``x`` left by ``count`` (1..31) bits."""
    lo = x & 0xFFFFFFFF
    hi = x >> 32
    lo = ((lo << count) | (lo >> (32 - count))) & 0xFFFFFFFF
    hi = ((hi << count) | (hi >> (32 - count))) & 0xFFFFFFFF
    return (hi << 32) | lo


def hash64(
    data: bytes | bytearray | memoryview, key: bytes | bytearray | memoryview = ZERO_KEY
) -> int:
    """Return the HighwayHash-64 of ``data`` under the 32-byte ``key`` as an unsigned integer.

    This is the value minio/highwayhash's ``Sum64`` returns (its 8-byte digest read
    little-endian). Raises ``ValueError`` if ``key`` is not 32 bytes long.
    """
    if type(data) is not bytes:
        data = memoryview(data).tobytes()
    if type(key) is not bytes:
        key = memoryview(key).tobytes()
    if len(key) != 32:
        raise ValueError("HighwayHash key must be 32 bytes")
    k = [int.from_bytes(key[8 * i : 8 * i + 8], "little") for i in range(4)]
    mul0 = list(_INIT0)
    mul1 = list(_INIT1)
    v0 = [_INIT0[i] ^ k[i] for i in range(4)]
    v1 = [_INIT1[i] ^ _rot32(k[i]) for i in range(4)]

    full = len(data) & ~31
    for offset in range(0, full, 32):
        _update(v0, v1, mul0, mul1, data[offset : offset + 32])

    rest = len(data) - full
    if rest:
        tail = data[full:]
        for i in range(4):
            v0[i] = (v0[i] + (rest << 32) + rest) & _MASK
            v1[i] = _rotate_halves(v1[i], rest)
        mod4 = rest & 3
        aligned = rest - mod4
        block = bytearray(32)
        block[:aligned] = tail[:aligned]
        if rest >= 16:
            block[28:32] = tail[rest - 4 :]
        elif mod4:
            block[16] = tail[aligned]
            block[17] = tail[aligned + (mod4 >> 1)]
            block[18] = tail[rest - 1]
        _update(v0, v1, mul0, mul1, bytes(block))

    for _ in range(4):
        permuted = (_rot32(v0[2]), _rot32(v0[3]), _rot32(v0[0]), _rot32(v0[1]))
        block = bytearray()
        for lane in permuted:
            block += lane.to_bytes(8, "little")
        _update(v0, v1, mul0, mul1, bytes(block))

    return (v0[0] + v1[0] + mul0[0] + mul1[0]) & _MASK


def node_hash(node_id: str) -> int:
    """Return the hash receptor puts on the wire for ``node_id`` (UTF-8, zero key).

    The caller replaces ``localhost`` by the local node ID first (``spec/wire.md`` §4.1).
    """
    if not isinstance(node_id, str):
        raise TypeError(f"node ID must be str, not {type(node_id).__name__}")
    return hash64(node_id.encode("utf-8"), ZERO_KEY)
