"""Data message encoding/decoding, HopsToLive rewriting and TCP framing (spec/wire.md §1-§3)."""

from collections.abc import Callable
from functools import partial
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from receptor._errors import ProtocolError

from .twins import both_twins

FOO = 0xEF7A78B67F92BDF7
BAR = 0x14EF88CA522894D1

# spec/wire.md §3 worked example: an empty ping from foo:h73opPEh to bar:ping, hops 29.
PING_FOO_TO_BAR = bytes.fromhex(
    "001d0000 ef7a78b67f92bdf7 14ef88ca522894d1 6837336f70504568 70696e6700000000"
)

SETTINGS = settings(max_examples=200, deadline=None)

uint64 = st.integers(min_value=0, max_value=2**64 - 1)
hops = st.integers(min_value=0, max_value=255)
# Names as decode_data returns them: any bytes (up to 8) without trailing NULs.
service_bytes = st.binary(max_size=8).map(lambda b: b.rstrip(b"\x00"))
service_names = service_bytes.map(lambda b: b.decode("utf-8", "surrogateescape"))


def header(
    hop_count: int = 30,
    reserved: bytes = b"\x00\x00",
    from_service: bytes = b"",
    to_service: bytes = b"",
    msg_type: int = 0,
) -> bytes:
    return (
        bytes((msg_type, hop_count))
        + reserved
        + FOO.to_bytes(8, "big")
        + BAR.to_bytes(8, "big")
        + from_service.ljust(8, b"\x00")
        + to_service.ljust(8, b"\x00")
    )


def test_constants(codec: ModuleType) -> None:
    assert (codec.MSG_DATA, codec.MSG_ROUTING_UPDATE) == (0, 1)
    assert (codec.MSG_SERVICE_ADVERTISEMENT, codec.MSG_REJECT) == (2, 3)
    assert (codec.HEADER_LEN, codec.MAX_FRAME, codec.SERVICE_NAME_MAX) == (36, 65535, 8)
    assert bytes.fromhex("035b5d") == codec.REJECT_MESSAGE


# --- worked example ------------------------------------------------------------------------


def test_worked_example_encodes_byte_exactly(codec: ModuleType) -> None:
    message = codec.encode_data(29, FOO, BAR, "h73opPEh", "ping", b"")
    assert type(message) is bytes
    assert message == PING_FOO_TO_BAR
    assert codec.frame(message) == b"\x24\x00" + PING_FOO_TO_BAR


def test_worked_example_decodes(codec: ModuleType) -> None:
    assert codec.decode_data(PING_FOO_TO_BAR) == (29, FOO, BAR, "h73opPEh", "ping", b"")


# --- encode_data ---------------------------------------------------------------------------


def test_encode_payload_follows_header(codec: ModuleType) -> None:
    message = codec.encode_data(0, 0, 2**64 - 1, "", "abcdefgh", b"payload")
    assert message[:4] == b"\x00\x00\x00\x00"
    assert message[4:20] == bytes(8) + b"\xff" * 8
    assert message[20:36] == bytes(8) + b"abcdefgh"
    assert message[36:] == b"payload"


@pytest.mark.parametrize("payload", [bytearray(b"xyz"), memoryview(b"--xyz")[2:]])
def test_encode_accepts_bytes_like_payload(codec: ModuleType, payload: object) -> None:
    assert codec.encode_data(1, 2, 3, "a", "b", payload)[36:] == b"xyz"


@pytest.mark.parametrize("name", ["123456789", "ééééé", "\udcff" * 9, "servicename"])
def test_encode_rejects_long_service_names(codec: ModuleType, name: str) -> None:
    with pytest.raises(ProtocolError, match=r"^service name too long$"):
        codec.encode_data(30, FOO, BAR, name, "ping", b"")
    with pytest.raises(ProtocolError, match=r"^service name too long$"):
        codec.encode_data(30, FOO, BAR, "ping", name, b"")


def test_encode_accepts_eight_byte_names(codec: ModuleType) -> None:
    message = codec.encode_data(30, FOO, BAR, "éééé", "12345678", b"")
    assert message[20:36] == "éééé".encode() + b"12345678"


@pytest.mark.parametrize("bad_hops", [-1, 256, 2**70, -(2**70)])
def test_encode_rejects_hops_out_of_range(codec: ModuleType, bad_hops: int) -> None:
    with pytest.raises(ValueError, match="HopsToLive"):
        codec.encode_data(bad_hops, FOO, BAR, "a", "b", b"")


@pytest.mark.parametrize("bad_hash", [-1, 2**64, 2**100])
def test_encode_rejects_hashes_out_of_range(codec: ModuleType, bad_hash: int) -> None:
    with pytest.raises(ValueError, match="hash"):
        codec.encode_data(30, bad_hash, BAR, "a", "b", b"")
    with pytest.raises(ValueError, match="hash"):
        codec.encode_data(30, FOO, bad_hash, "a", "b", b"")


def test_encode_rejects_wrong_types(codec: ModuleType) -> None:
    with pytest.raises(TypeError):
        codec.encode_data(1.0, FOO, BAR, "a", "b", b"")
    with pytest.raises(TypeError):
        codec.encode_data(1, 1.5, BAR, "a", "b", b"")
    with pytest.raises(TypeError):
        codec.encode_data(1, FOO, BAR, b"a", "b", b"")
    with pytest.raises(TypeError):
        codec.encode_data(1, FOO, BAR, "a", None, b"")
    with pytest.raises(TypeError):
        codec.encode_data(1, FOO, BAR, "a", "b", "text")


# --- decode_data ---------------------------------------------------------------------------


@pytest.mark.parametrize("length", range(36))
def test_decode_rejects_truncated(codec: ModuleType, length: int) -> None:
    with pytest.raises(ProtocolError, match=r"^data too short to be a valid message$"):
        codec.decode_data(PING_FOO_TO_BAR[:length])


@pytest.mark.parametrize("msg_type", [1, 2, 3, 4, 0x7F, 0xFF])
def test_decode_rejects_other_types(codec: ModuleType, msg_type: int) -> None:
    with pytest.raises(ProtocolError, match="not a data message"):
        codec.decode_data(header(msg_type=msg_type))


def test_decode_ignores_reserved_bytes(codec: ModuleType) -> None:
    message = header(reserved=b"\xab\xcd", from_service=b"x", to_service=b"y") + b"!"
    assert codec.decode_data(message) == (30, FOO, BAR, "x", "y", b"!")


def test_decode_strips_only_trailing_nuls(codec: ModuleType) -> None:
    message = header(from_service=b"\x00a\x00b", to_service=b"abcdefg\x00")
    _, _, _, from_service, to_service, payload = codec.decode_data(message)
    assert (from_service, to_service, payload) == ("\x00a\x00b", "abcdefg", b"")
    assert codec.encode_data(30, FOO, BAR, from_service, to_service, b"") == message


def test_decode_full_and_empty_service_fields(codec: ModuleType) -> None:
    message = header(from_service=b"12345678", to_service=b"")
    assert codec.decode_data(message)[3:5] == ("12345678", "")


def test_non_utf8_service_bytes_round_trip(codec: ModuleType) -> None:
    raw_from, raw_to = b"\xff\xfe\x80abc", b"\xc3(\xe2\x82"
    message = header(from_service=raw_from, to_service=raw_to) + b"body"
    decoded = codec.decode_data(message)
    assert decoded[3] == raw_from.decode("utf-8", "surrogateescape")
    assert codec.encode_data(*decoded) == message


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview])
def test_decode_accepts_bytes_like(codec: ModuleType, wrap: type) -> None:
    decoded = codec.decode_data(wrap(PING_FOO_TO_BAR + b"tail"))
    assert decoded == (29, FOO, BAR, "h73opPEh", "ping", b"tail")
    assert type(decoded[5]) is bytes


def test_decode_of_memoryview_slice(codec: ModuleType) -> None:
    view = memoryview(b"\xff\xff" + PING_FOO_TO_BAR + b"p")[2:]
    assert codec.decode_data(view)[5] == b"p"


def test_decode_rejects_text(codec: ModuleType) -> None:
    with pytest.raises(TypeError):
        codec.decode_data("\x00" * 40)


@SETTINGS
@given(
    hop_count=hops,
    from_hash=uint64,
    to_hash=uint64,
    from_service=service_names,
    to_service=service_names,
    payload=st.binary(max_size=300),
)
def test_round_trip(
    codec: ModuleType,
    hop_count: int,
    from_hash: int,
    to_hash: int,
    from_service: str,
    to_service: str,
    payload: bytes,
) -> None:
    fields = (hop_count, from_hash, to_hash, from_service, to_service, payload)
    message = codec.encode_data(*fields)
    assert len(message) == 36 + len(payload)
    assert codec.decode_data(message) == fields
    assert codec.encode_data(*codec.decode_data(message)) == message


@SETTINGS
@given(message=st.binary(min_size=36, max_size=80).map(lambda b: b"\x00\x1e\x00\x00" + b[4:]))
def test_decode_then_encode_is_identity(codec: ModuleType, message: bytes) -> None:
    assert codec.encode_data(*codec.decode_data(message)) == message


@SETTINGS
@given(garbage=st.binary(max_size=120))
def test_garbage_never_crashes(codec: ModuleType, garbage: bytes) -> None:
    is_data = len(garbage) >= 36 and garbage[0] == 0
    try:
        decoded = codec.decode_data(garbage)
    except ProtocolError:
        assert not is_data
    else:
        assert decoded[5] == garbage[36:]
    try:
        rewritten = codec.with_hops(garbage, 7)
    except ProtocolError:
        assert not is_data
    else:
        assert rewritten[1] == 7
    try:
        framed = codec.frame(garbage)
    except ProtocolError:
        assert garbage == b""
    else:
        assert framed[2:] == garbage


def _outcome(call: Callable[[], bytes]) -> object:
    try:
        return call()
    except ValueError as exc:  # ProtocolError included
        return (type(exc).__name__, str(exc))


@SETTINGS
@given(
    hop_count=st.integers(min_value=-300, max_value=300),
    from_hash=st.integers(min_value=-(2**65), max_value=2**65),
    from_service=st.text(max_size=10),
    to_service=st.text(max_size=10),
)
def test_twins_agree_on_random_arguments(
    hop_count: int, from_hash: int, from_service: str, to_service: str
) -> None:
    compiled, pure = both_twins("codec")
    args = (hop_count, from_hash, 1, from_service, to_service, b"x")
    assert _outcome(lambda: compiled.encode_data(*args)) == _outcome(
        lambda: pure.encode_data(*args)
    )


@SETTINGS
@given(garbage=st.binary(max_size=60))
def test_twins_agree_on_garbage(garbage: bytes) -> None:
    compiled, pure = both_twins("codec")
    assert _outcome(lambda: compiled.decode_data(garbage)) == _outcome(
        lambda: pure.decode_data(garbage)
    )
    assert _outcome(lambda: compiled.with_hops(garbage, 3)) == _outcome(
        lambda: pure.with_hops(garbage, 3)
    )


def test_twins_agree_on_error_messages() -> None:
    compiled, pure = both_twins("codec")
    cases = [
        lambda c: c.decode_data(b""),
        lambda c: c.decode_data(header(msg_type=2)),
        lambda c: c.with_hops(header(msg_type=9), 1),
        lambda c: c.with_hops(PING_FOO_TO_BAR, 256),
        lambda c: c.encode_data(300, 1, 1, "a", "b", b""),
        lambda c: c.encode_data(1, -1, 1, "a", "b", b""),
        lambda c: c.encode_data(1, 1, 1, "a" * 9, "b", b""),
        lambda c: c.frame(b""),
        lambda c: c.frame(bytes(65536)),
    ]
    for case in cases:
        compiled_error = _outcome(partial(case, compiled))
        assert isinstance(compiled_error, tuple)
        assert compiled_error == _outcome(partial(case, pure))


# --- with_hops -----------------------------------------------------------------------------


@pytest.mark.parametrize("new_hops", [0, 1, 29, 255])
def test_with_hops_changes_only_byte_1(codec: ModuleType, new_hops: int) -> None:
    message = header(hop_count=30, reserved=b"\x12\x34", from_service=b"a") + b"payload"
    rewritten = codec.with_hops(message, new_hops)
    assert type(rewritten) is bytes
    assert rewritten[1] == new_hops
    assert rewritten[:1] + rewritten[2:] == message[:1] + message[2:]


@pytest.mark.parametrize("wrap", [bytearray, memoryview])
def test_with_hops_accepts_bytes_like(codec: ModuleType, wrap: type) -> None:
    rewritten = codec.with_hops(wrap(PING_FOO_TO_BAR), 28)
    assert rewritten == PING_FOO_TO_BAR[:1] + b"\x1c" + PING_FOO_TO_BAR[2:]


def test_with_hops_rejects_bad_messages(codec: ModuleType) -> None:
    with pytest.raises(ProtocolError, match="too short"):
        codec.with_hops(PING_FOO_TO_BAR[:35], 1)
    with pytest.raises(ProtocolError, match="not a data message"):
        codec.with_hops(header(msg_type=1), 1)
    with pytest.raises(ValueError, match="HopsToLive"):
        codec.with_hops(PING_FOO_TO_BAR, -1)
    with pytest.raises(ValueError, match="HopsToLive"):
        codec.with_hops(PING_FOO_TO_BAR, 256)


# --- frame ---------------------------------------------------------------------------------


def test_frame_prefix_is_little_endian(codec: ModuleType) -> None:
    assert codec.frame(b"\x03[]") == b"\x03\x00\x03[]"
    assert codec.frame(bytes(258))[:2] == b"\x02\x01"


def test_frame_largest_message(codec: ModuleType) -> None:
    framed = codec.frame(bytes(65535))
    assert framed[:2] == b"\xff\xff"
    assert len(framed) == 65537


@pytest.mark.parametrize("size", [65536, 65537, 70000, 2**17])
def test_frame_rejects_oversized(codec: ModuleType, size: int) -> None:
    with pytest.raises(ProtocolError, match="exceeds 65535"):
        codec.frame(bytes(size))


@pytest.mark.parametrize("empty", [b"", bytearray(), memoryview(b"")])
def test_frame_rejects_empty(codec: ModuleType, empty: object) -> None:
    with pytest.raises(ProtocolError, match="empty"):
        codec.frame(empty)


@pytest.mark.parametrize("wrap", [bytearray, memoryview])
def test_frame_accepts_bytes_like(codec: ModuleType, wrap: type) -> None:
    framed = codec.frame(wrap(b"abc"))
    assert type(framed) is bytes
    assert framed == b"\x03\x00abc"
