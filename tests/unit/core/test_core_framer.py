"""The incremental TCP de-framer (spec/wire.md §1.1): split, coalesced and broken streams."""

import random
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .twins import both_twins

SETTINGS = settings(max_examples=150, deadline=None)


def raw_frame(message: bytes) -> bytes:
    """Length-prefixed without ``frame``'s checks, so zero-length frames can be built."""
    return len(message).to_bytes(2, "little") + message


def chunked(stream: bytes, sizes: list[int]) -> list[bytes]:
    """``stream`` cut into pieces of the given sizes (cycled), the last one taking the rest."""
    chunks = []
    pos = 0
    index = 0
    while pos < len(stream):
        size = sizes[index % len(sizes)] if sizes else len(stream)
        chunks.append(stream[pos : pos + size])
        pos += size
        index += 1
    return chunks


def feed_all(framer: object, chunks: list[bytes]) -> list[bytes]:
    frames: list[bytes] = []
    for chunk in chunks:
        frames.extend(framer.feed(chunk))  # type: ignore[attr-defined]
    return frames


def test_single_frame(codec: ModuleType) -> None:
    framer = codec.Framer()
    assert framer.buffered == 0
    assert framer.feed(b"\x03\x00abc") == [b"abc"]
    assert framer.buffered == 0


def test_coalesced_frames(codec: ModuleType) -> None:
    framer = codec.Framer()
    stream = codec.frame(b"one") + codec.frame(b"two") + codec.frame(b"three")
    assert framer.feed(stream) == [b"one", b"two", b"three"]


def test_frames_are_bytes(codec: ModuleType) -> None:
    framer = codec.Framer()
    frames = framer.feed(bytearray(b"\x01\x00a\x02\x00") + b"bc")
    assert frames == [b"a", b"bc"]
    assert all(type(f) is bytes for f in frames)


def test_empty_feed(codec: ModuleType) -> None:
    framer = codec.Framer()
    assert framer.feed(b"") == []
    framer.feed(b"\x05")
    assert framer.feed(b"") == []
    assert framer.buffered == 1


def test_split_at_every_position(codec: ModuleType) -> None:
    stream = codec.frame(b"first message") + codec.frame(b"x") + codec.frame(bytes(300))
    expected = [b"first message", b"x", bytes(300)]
    for cut in range(len(stream) + 1):
        framer = codec.Framer()
        assert framer.feed(stream[:cut]) + framer.feed(stream[cut:]) == expected
        assert framer.buffered == 0


def test_one_byte_at_a_time(codec: ModuleType) -> None:
    messages = [b"a", bytes(range(200)), b"", b"last"]
    stream = b"".join(raw_frame(m) for m in messages)
    framer = codec.Framer()
    frames = []
    held = []
    for i in range(len(stream)):
        frames.extend(framer.feed(stream[i : i + 1]))
        held.append(framer.buffered)
    assert frames == messages
    assert held[-1] == 0
    assert max(held) == 201


def test_zero_length_frames_are_returned(codec: ModuleType) -> None:
    framer = codec.Framer()
    assert framer.feed(b"\x00\x00\x00\x00\x01\x00z\x00\x00") == [b"", b"", b"z", b""]
    assert framer.buffered == 0


def test_stream_ending_in_length_prefix(codec: ModuleType) -> None:
    framer = codec.Framer()
    assert framer.feed(codec.frame(b"done") + b"\x10") == [b"done"]
    assert framer.buffered == 1


def test_stream_ending_mid_frame(codec: ModuleType) -> None:
    framer = codec.Framer()
    partial = codec.frame(b"0123456789")[:7]
    assert framer.feed(partial) == []
    assert framer.buffered == 7
    assert framer.feed(b"5678") == []
    assert framer.buffered == 11
    assert framer.feed(b"9") == [b"0123456789"]
    assert framer.buffered == 0


def test_largest_frame_in_small_pieces(codec: ModuleType) -> None:
    message = bytes(range(256)) * 255 + bytes(range(255))
    assert len(message) == 65535
    stream = codec.frame(message) + codec.frame(b"next")
    framer = codec.Framer()
    frames = feed_all(framer, chunked(stream, [1, 7, 1000, 3]))
    assert frames == [message, b"next"]
    assert framer.buffered == 0


def test_largest_frame_held_then_completed(codec: ModuleType) -> None:
    framed = codec.frame(b"\xaa" * 65535)
    framer = codec.Framer()
    assert framer.feed(framed[:-1]) == []
    assert framer.buffered == 65536
    assert framer.feed(framed[-1:] + framed) == [b"\xaa" * 65535] * 2


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_accepts_bytes_like_chunks(codec: ModuleType, wrap: type) -> None:
    stream = codec.frame(b"hello") + codec.frame(b"world")
    framer = codec.Framer()
    frames = feed_all(framer, [wrap(chunk) for chunk in chunked(stream, [4, 3])])
    assert frames == [b"hello", b"world"]


def test_rejects_text(codec: ModuleType) -> None:
    with pytest.raises(TypeError):
        codec.Framer().feed("\x01\x00a")


def test_64k_reads_of_small_frames(codec: ModuleType) -> None:
    rng = random.Random(1)
    messages = [rng.randbytes(rng.randint(36, 1236)) for _ in range(1500)]
    stream = b"".join(codec.frame(m) for m in messages)
    framer = codec.Framer()
    assert feed_all(framer, chunked(stream, [65536])) == messages
    assert framer.buffered == 0


def test_framers_are_independent(codec: ModuleType) -> None:
    first, second = codec.Framer(), codec.Framer()
    first.feed(b"\x02\x00a")
    assert second.feed(b"\x01\x00b") == [b"b"]
    assert first.feed(b"a") == [b"aa"]


@SETTINGS
@given(
    messages=st.lists(st.binary(max_size=600), max_size=20),
    sizes=st.lists(st.integers(min_value=1, max_value=700), max_size=8),
)
def test_any_chunking_gives_the_frames_back(
    codec: ModuleType, messages: list[bytes], sizes: list[int]
) -> None:
    stream = b"".join(raw_frame(m) for m in messages)
    framer = codec.Framer()
    assert feed_all(framer, chunked(stream, sizes)) == messages
    assert framer.buffered == 0


@SETTINGS
@given(
    garbage=st.binary(max_size=2000),
    sizes=st.lists(st.integers(min_value=1, max_value=300), max_size=8),
)
def test_garbage_stream_is_accounted_for(
    codec: ModuleType, garbage: bytes, sizes: list[int]
) -> None:
    framer = codec.Framer()
    frames = feed_all(framer, chunked(garbage, sizes))
    # Every byte fed is either in a returned frame (plus its prefix) or still held.
    assert sum(2 + len(f) for f in frames) + framer.buffered == len(garbage)
    assert b"".join(raw_frame(f) for f in frames) == garbage[: len(garbage) - framer.buffered]


@SETTINGS
@given(
    garbage=st.binary(max_size=1500),
    sizes=st.lists(st.integers(min_value=1, max_value=200), max_size=8),
)
def test_twins_agree(garbage: bytes, sizes: list[int]) -> None:
    compiled, pure = both_twins("codec")
    chunks = chunked(garbage, sizes)
    framers = (compiled.Framer(), pure.Framer())
    for chunk in chunks:
        assert framers[0].feed(chunk) == framers[1].feed(chunk)
        assert framers[0].buffered == framers[1].buffered
