"""One control session: greeting, command lines, replies (control.md §2).

Lines are read through a buffer rather than upstream's one byte per ``read``; whatever was
read past the current command's newline stays in :attr:`ControlSession.buffered` and is
handed to the command that takes the connection over (work-submit stdin, ``connect``), so
no byte a client sends early is lost.
"""

import socket
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from receptor import _gojson
from receptor._errors import ReceptorError
from receptor._log import logger

if TYPE_CHECKING:
    from receptor.controlsvc._server import ControlServer

#: Longest command line accepted; longer lines are answered with an error and skipped.
MAX_LINE = 4 * 1024 * 1024
READ_SIZE = 65536


class CommandError(ReceptorError):
    """A command failed; the client gets ``ERROR: <message>``."""


class TakenOver:
    """Returned by a command that now owns the connection; the session ends."""


TAKEN_OVER = TakenOver()

#: A command handler: (session, text parameters or None, JSON object or None) → reply.
Handler = Callable[["ControlSession", str | None, Mapping[str, Any] | None], Any]


class ControlSession:
    """The server side of one control connection."""

    def __init__(self, server: "ControlServer", sock: socket.socket, transport: str) -> None:
        self.server = server
        self.sock = sock
        #: ``unix``, ``tcp``, ``tls`` or ``mesh``; work signing rules depend on it.
        self.transport = transport
        self.buffered = bytearray()
        self._eof = False

    @property
    def is_unix_socket(self) -> bool:
        return self.transport == "unix"

    # ------------------------------------------------------------------ I/O

    def write(self, text: str) -> None:
        self.sock.sendall(text.encode("utf-8", errors="surrogateescape"))

    def _fill(self) -> bool:
        data = self.sock.recv(READ_SIZE)
        if not data:
            self._eof = True
            return False
        self.buffered += data
        return True

    def read_line(self) -> bytes | None:
        """The next line without ``\\r`` and ``\\n``; None at end of stream.

        At end of stream a partial line is still returned (upstream executes it). A line
        over :data:`MAX_LINE` raises ``CommandError`` after its bytes have been skipped.
        """
        scanned = 0
        oversized = False
        while True:
            index = self.buffered.find(b"\n", scanned)
            if index >= 0:
                line = bytes(self.buffered[:index])
                del self.buffered[: index + 1]
                break
            if len(self.buffered) > MAX_LINE:
                oversized = True
                self.buffered.clear()
            scanned = len(self.buffered)
            if self._eof or not self._fill():
                line = bytes(self.buffered)
                self.buffered.clear()
                if not line and not oversized:
                    return None
                break
        if oversized:
            raise CommandError(f"command line longer than {MAX_LINE} bytes")
        return line.replace(b"\r", b"")

    # ------------------------------------------------------------------ protocol

    def run(self) -> None:
        self.write(f"Receptor Control, node {self.server.netceptor.node_id}\n")
        while True:
            try:
                line = self.read_line()
            except CommandError as err:
                self._reply_error(str(err))
                continue
            if line is None:
                return
            if line and self.execute(line) is TAKEN_OVER:
                return

    def execute(self, line: bytes) -> Any:
        text = line.decode("utf-8", errors="replace")
        params: str | None = None
        request: Mapping[str, Any] | None = None
        command = ""
        if text.startswith("{"):
            error = None
            try:
                # Go decodes into map[string]interface{}: numbers arrive as floats.
                data = _gojson.decode_go(line)
            except ValueError as err:
                error = str(err)
            else:
                if not isinstance(data, dict):
                    error = "json: cannot unmarshal into Go value of type map[string]interface {}"
                elif "command" not in data:
                    error = "JSON did not contain a command"
                elif not isinstance(data["command"], str):
                    error = "command must be a string"
                else:
                    command = data["command"]
                    request = data
            if error is not None:
                self.write(f"ERROR: {error}\n")
        else:
            word, _, params = text.partition(" ")
            command = word.lower()
        handler = self.server.commands.get(command)
        if handler is None:
            self.write("ERROR: Unknown command\n")
            return None
        try:
            result = handler(self, params if request is None else None, request)
        except CommandError as err:
            self._reply_error(str(err))
            return None
        if result is TAKEN_OVER:
            return TAKEN_OVER
        if result is not None:
            # Go marshals the reply map with its keys sorted.
            self.write(_gojson.dumps(dict(sorted(result.items()))) + "\n")
        return None

    def _reply_error(self, message: str) -> None:
        logger.error(": %s", message)
        self.write(f"ERROR: {message}\n")
