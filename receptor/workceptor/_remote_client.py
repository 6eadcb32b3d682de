"""The submitting node's side of remote work: a control session with another node (work.md §6).

A remote unit talks to the target node's ``control`` service exactly as upstream does, so the
target can be an upstream Go node: it cannot tell us from a person with ``receptorctl``. This
module holds only that exchange, on any socket-like connection (a mesh stream in the daemon; a
Unix socket works the same, which is how the tests can drive it against a local daemon). The
unit's state machine lives in ``_remote.py``.
"""

import json
import re
import socket
from collections.abc import Callable
from typing import BinaryIO, Protocol

#: What the target answers to a submit (work.md §6.3 step 2).
_UNIT_ID = r"with ID ([a-zA-Z0-9]+)\."  # compiled (and cached) by re on first use

#: The longest reply line we accept; a status line is a few hundred bytes.
MAX_LINE = 1 << 20

#: Bytes per read and per write when copying stdin and results.
CHUNK = 256 * 1024

#: How long the greeting may take (work.md §6.2 step 3).
GREETING_TIMEOUT = 5.0


class StreamLike(Protocol):
    def recv(self, n: int) -> bytes: ...
    def sendall(self, data: bytes) -> None: ...
    def shutdown(self, how: int) -> None: ...
    def close(self) -> None: ...
    def settimeout(self, timeout: float | None) -> None: ...


class RemoteProtocolError(Exception):
    """The target answered something a start/cancel/release cannot go on from.

    Upstream fails the unit with this text (``Error starting worker: <text>``); retrying would
    get the same answer.
    """


class RemoteUnitGone(Exception):
    """The target no longer knows the unit (``ERROR: unknown work unit <id>``)."""


class RemoteControl:
    """One control session with the control service of ``node``.

    Every method raises ``OSError`` (or ``ConnectionError``) when the connection fails: the
    caller retries on a new session, as upstream does.
    """

    def __init__(self, conn: StreamLike, node: str) -> None:
        self.conn = conn
        self.node = node
        self._buffer = b""
        #: The unit's ID on the target, known as soon as the target answered the submit.
        self.remote_unit_id: str | None = None

    @classmethod
    def open(
        cls, dial: Callable[[], StreamLike], node: str, greeting_timeout: float = GREETING_TIMEOUT
    ) -> "RemoteControl":
        """Connect and check the greeting names ``node`` (work.md §6.2)."""
        conn = dial()
        session = cls(conn, node)
        try:
            conn.settimeout(greeting_timeout)
            greeting = session.read_line()
            conn.settimeout(None)
        except BaseException:
            conn.close()
            raise
        if node not in greeting:
            conn.close()
            raise ConnectionError(f"while expecting node ID {node}, got message: {greeting}")
        return session

    def close(self) -> None:
        try:
            self.conn.close()
        except OSError:
            pass

    def __enter__(self) -> "RemoteControl":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ lines

    def read_line(self) -> str:
        """The next reply line without its newline; EOF before a newline is a ConnectionError."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line, self._buffer = self._buffer[:end], self._buffer[end + 1 :]
                return line.decode("utf-8", "replace").rstrip("\r")
            if len(self._buffer) > MAX_LINE:
                raise RemoteProtocolError("reply line too long")
            data = self.conn.recv(CHUNK)
            if not data:
                raise ConnectionError("connection closed by the remote node")
            self._buffer += data

    def _send_json(self, request: dict[str, object]) -> None:
        self.conn.sendall(json.dumps(request, separators=(",", ":")).encode() + b"\n")

    # ------------------------------------------------------------------ commands

    def _send_unit_request(
        self, subcommand: str, unit_id: str, signature: str | None, **fields: object
    ) -> None:
        """``{"command":"work","subcommand":…,"unitid":…, fields…, "signature":…}``."""
        request: dict[str, object] = {"command": "work", "subcommand": subcommand}
        request["unitid"] = unit_id
        request.update(fields)
        if signature:
            request["signature"] = signature
        self._send_json(request)

    def submit(self, request: dict[str, object], stdin: BinaryIO) -> str:
        """Start the unit on the target with ``stdin``; its unit ID there (work.md §6.3).

        The caller records the returned ID before the start is confirmed, so a failure after
        it is known leaves a unit that can still be released.
        """
        self._send_json(request)
        line = self.read_line()
        match = re.search(_UNIT_ID, line)
        if match is None:
            raise RemoteProtocolError(f"could not parse response: {line}")
        unit_id = match.group(1)
        self.remote_unit_id = unit_id
        while chunk := stdin.read(CHUNK):
            self.conn.sendall(chunk)
        self.conn.shutdown(socket.SHUT_WR)
        line = self.read_line()
        if "ERROR: " in line:
            raise RemoteProtocolError(f"error from remote: {line.partition('ERROR: ')[2]}")
        return unit_id

    def status(self, unit_id: str) -> dict[str, object]:
        """``work status <id>`` in the text form, as upstream's status mirror sends it."""
        self.conn.sendall(f"work status {unit_id}\n".encode())
        line = self.read_line()
        if line.startswith("ERROR"):
            if "unknown work unit" in line:
                raise RemoteUnitGone(line)
            raise RemoteProtocolError(line)
        status = json.loads(line)
        if not isinstance(status, dict):
            raise RemoteProtocolError(f"could not parse status: {line}")
        return status

    def results(
        self,
        unit_id: str,
        startpos: int,
        sink: BinaryIO,
        signature: str | None = None,
        on_data: Callable[[int], None] | None = None,
    ) -> int:
        """Append the target's stdout from ``startpos`` to ``sink`` until it closes; bytes copied.

        The target closes the stream when the unit is complete, so returning means "probably
        done": the caller confirms with one status query instead of waiting a polling period.
        """
        self._send_unit_request("results", unit_id, signature, startpos=startpos)
        line = self.read_line()
        if "Streaming results" not in line:
            raise RemoteProtocolError(line)
        try:
            self.conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        copied = 0
        data, self._buffer = self._buffer, b""
        while True:
            if data:
                sink.write(data)
                sink.flush()
                copied += len(data)
                if on_data is not None:
                    on_data(len(data))
            data = self.conn.recv(CHUNK)
            if not data:
                return copied

    def unit_command(self, subcommand: str, unit_id: str, signature: str | None = None) -> str:
        """``cancel`` / ``release`` / ``force-release`` in the JSON form (work.md §6.5)."""
        self._send_unit_request(subcommand, unit_id, signature)
        line = self.read_line()
        if line.startswith("ERROR"):
            if "unknown work unit" in line:
                raise RemoteUnitGone(line)
            raise RemoteProtocolError(f"error cancelling remote unit: {line.partition(' ')[2]}")
        return line


class Backoff:
    """Upstream's reconnect policy for remote units (work.md §6.2): 1 s, × 1.5, at most 60 s."""

    def __init__(self, first: float = 1.0, factor: float = 1.5, cap: float = 60.0) -> None:
        self.first = first
        self.factor = factor
        self.cap = cap
        self.next = first

    def __call__(self) -> float:
        """The delay before the next attempt."""
        delay = self.next
        self.next = min(self.next * self.factor, self.cap)
        return delay

    def reset(self) -> None:
        self.next = self.first
