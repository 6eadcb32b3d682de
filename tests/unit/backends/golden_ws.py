"""The upstream WebSocket capture (tests/data/wire/ws-handshake.txt), parsed for the tests."""

import ast
import re
from dataclasses import dataclass
from pathlib import Path

PATH = Path(__file__).parent.parent.parent / "data" / "wire" / "ws-handshake.txt"
TEXT = PATH.read_text()


def _hexdump(section: str) -> bytes:
    rows = re.findall(r"^    [0-9a-f]{4}  ((?:[0-9a-f]{2} )+)", section, flags=re.M)
    return bytes.fromhex("".join(rows))


def _section(start: str, end: str) -> str:
    return TEXT[TEXT.index(start) : TEXT.index(end)]


#: Setup 1: request for ws://127.0.0.1:31701/ and the listener's 101 answer, byte-exact.
REQUEST_1 = _hexdump(_section("## 1. Upgrade request", "## 2. Upgrade response"))
RESPONSE_1 = _hexdump(_section("## 2. Upgrade response", "## 3. Frames"))


def _lines(section: str, first: str) -> bytes:
    """A request/response printed one ``...\\r\\n`` line per row, starting at ``first``."""
    rows = section[section.index(first) :].splitlines()
    out = []
    for row in rows:
        row = row.strip()
        if not row.endswith("\\r\\n"):
            break
        out.append(row[: -len("\\r\\n")] + "\r\n")
    return "".join(out).encode()


#: Setup 2: path /receptor and ``extraheader=X-Example-Token:abc 123``.
SETUP_2 = _section("## 4. Setup 2", "## 5. What the Go listener")
REQUEST_2 = _lines(SETUP_2, "GET /receptor")
RESPONSE_2 = _lines(SETUP_2, "HTTP/1.1 101")


def key_of(request: bytes) -> str:
    match = re.search(rb"Sec-WebSocket-Key: (\S+)\r\n", request)
    assert match is not None
    return match.group(1).decode()


def accept_of(response: bytes) -> str:
    match = re.search(rb"Sec-WebSocket-Accept: (\S+)\r\n", response)
    assert match is not None
    return match.group(1).decode()


@dataclass
class Exchange:
    title: str
    request: bytes
    frame: bytes | None
    received: bytes


def _exchanges() -> list[Exchange]:
    section = TEXT[TEXT.index("## 5. What the Go listener") :]
    out = []
    for block in section.split("\n### ")[1:]:
        title = block.splitlines()[0]
        request = re.search(r"^request:  (b'.*')$", block, flags=re.M)
        received = re.search(r"^received: (b'.*')(<server closed>)?$", block, flags=re.M)
        if request is None or received is None:
            continue
        frame = re.search(r"^then sent frame: ([0-9a-f ]+)$", block, flags=re.M)
        out.append(
            Exchange(
                title,
                ast.literal_eval(request.group(1)),
                bytes.fromhex(frame.group(1)) if frame else None,
                ast.literal_eval(received.group(1)),
            )
        )
    return out


#: Section 5: raw requests against a Go listener with path=/receptor and what it answered.
EXCHANGES = {e.title: e for e in _exchanges()}


def without_date(response: bytes) -> bytes:
    return re.sub(rb"Date: [^\r]*\r\n", b"Date: X\r\n", response)
