"""Replay the TCP backend session captured between two upstream Go nodes (golden/wire/).

``tcp-session-frames.jsonl`` holds each backend message (length prefix removed) as hex;
``tcp-session-decoded.txt`` is the same capture decoded by hand, one line per frame.
"""

import json
import random
import re
from pathlib import Path
from types import ModuleType

import pytest

from receptor._errors import ProtocolError

WIRE = Path(__file__).parents[2] / "data" / "wire"
ALPHA = 0x65EFB30772DE1513  # listener
BETA = 0x28501ABA8F06EBDA  # dialer
SENDER = {"dialer->listener": (BETA, ALPHA), "listener->dialer": (ALPHA, BETA)}
NODE_NAME = {"dialer->listener": "beta", "listener->dialer": "alpha"}

DATA_LINE = re.compile(
    r"len=\s*(?P<len>\d+) DATA hops=(?P<hops>\d+) reserved=(?P<reserved>[0-9a-f]{4}) "
    r"fromhash=(?P<from>[0-9a-f]{16}) tohash=(?P<to>[0-9a-f]{16}) "
    r"fromsvc='(?P<fromsvc>[^']*)' tosvc='(?P<tosvc>[^']*)' "
    r"payload\[(?P<plen>\d+)\]=(?P<payload>[0-9a-f]*)(?P<cut>\.\.\.)?$"
)
JSON_LINE = re.compile(r"len=\s*(?P<len>\d+) (?P<kind>ROUTE|SERVICEAD) (?P<json>\{.*\})$")
KIND_TYPE = {"ROUTE": 1, "SERVICEAD": 2}


def load_frames() -> list[tuple[str, bytes]]:
    frames = []
    with open(WIRE / "tcp-session-frames.jsonl") as capture:
        for line in capture:
            record = json.loads(line)
            message = bytes.fromhex(record["hex"])
            assert len(message) == record["len"]
            frames.append((record["dir"], message))
    return frames


FRAMES = load_frames()
DECODED = (WIRE / "tcp-session-decoded.txt").read_text().splitlines()
DATA_FRAMES = [(d, m) for d, m in FRAMES if m[0] == 0]


def test_capture_is_complete() -> None:
    assert len(FRAMES) == len(DECODED) == 89
    assert len(DATA_FRAMES) == 81
    assert {m[0] for _, m in FRAMES} == {0, 1, 2}


def test_every_frame_has_a_known_type(codec: ModuleType) -> None:
    known = {codec.MSG_DATA, codec.MSG_ROUTING_UPDATE, codec.MSG_SERVICE_ADVERTISEMENT}
    known.add(codec.MSG_REJECT)
    for _, message in FRAMES:
        assert message[0] in known


def test_node_hashes_match_the_capture(highwayhash: ModuleType) -> None:
    assert highwayhash.node_hash("alpha") == ALPHA
    assert highwayhash.node_hash("beta") == BETA


@pytest.mark.parametrize("index", range(len(FRAMES)))
def test_frame_matches_decoded_line(codec: ModuleType, index: int) -> None:
    direction, message = FRAMES[index]
    line = DECODED[index]
    assert direction in line
    if message[0] == codec.MSG_DATA:
        match = DATA_LINE.search(line)
        assert match, line
        hops, from_hash, to_hash, from_svc, to_svc, payload = codec.decode_data(message)
        assert int(match["len"]) == len(message)
        assert hops == int(match["hops"])
        assert message[2:4].hex() == match["reserved"]
        assert (from_hash, to_hash) == (int(match["from"], 16), int(match["to"], 16))
        assert (from_hash, to_hash) == SENDER[direction]
        assert (from_svc, to_svc) == (match["fromsvc"], match["tosvc"])
        assert len(payload) == int(match["plen"])
        assert payload.hex().startswith(match["payload"])
        assert (match["cut"] is None) == (payload.hex() == match["payload"])
    else:
        match = JSON_LINE.search(line)
        assert match, line
        assert message[0] == KIND_TYPE[match["kind"]]
        assert int(match["len"]) == len(message)
        body = json.loads(message[1:])
        assert body == json.loads(match["json"])
        assert body["NodeID"] == NODE_NAME[direction]
        with pytest.raises(ProtocolError, match="not a data message"):
            codec.decode_data(message)


def test_data_frames_re_encode_byte_exactly(codec: ModuleType) -> None:
    for _, message in DATA_FRAMES:
        if message[2:4] == b"\x00\x00":
            assert codec.encode_data(*codec.decode_data(message)) == message


@pytest.mark.parametrize("hops", [0, 28, 29, 30, 255])
def test_with_hops_changes_only_byte_1(codec: ModuleType, hops: int) -> None:
    for _, message in DATA_FRAMES:
        rewritten = codec.with_hops(message, hops)
        assert len(rewritten) == len(message)
        assert rewritten[1] == hops
        assert rewritten[:1] == message[:1]
        assert rewritten[2:] == message[2:]


def test_reject_message_constant(codec: ModuleType) -> None:
    assert codec.frame(codec.REJECT_MESSAGE) == bytes.fromhex("03 00 03 5b 5d")


@pytest.mark.parametrize("seed", range(8))
def test_stream_in_random_chunks(codec: ModuleType, seed: int) -> None:
    messages = [message for _, message in FRAMES]
    stream = b"".join(codec.frame(m) for m in messages)
    assert len(stream) == sum(2 + len(m) for m in messages)
    rng = random.Random(seed)
    # Seeds alternate between tiny pieces (every boundary case) and socket-sized reads.
    limit = 8 if seed % 2 else 70000
    framer = codec.Framer()
    frames = []
    pos = 0
    while pos < len(stream):
        size = rng.randint(1, limit)
        frames.extend(framer.feed(stream[pos : pos + size]))
        pos += size
    assert frames == messages
    assert framer.buffered == 0
