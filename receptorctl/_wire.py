"""Line reading and half-closing on a control connection.

The control protocol mixes lines with raw byte streams on one connection: after `Connecting` the
connection is a pipe to a remote service, after `Streaming results for work unit …` it carries
the unit's output. So a line reader must never consume bytes past the newline that ends the
line (the server side has the same rule, spec/control.md §2.2): the caller gets the bare socket
back with nothing hidden in a buffer. On plain sockets the reader peeks (`MSG_PEEK`) and then
takes exactly up to the newline; TLS sockets cannot peek, so they are read a byte at a time
(from the TLS layer's buffer, not one system call per byte).
"""

from __future__ import annotations

import socket
import ssl

_PEEK_CHUNK = 65536


class LineTooLong(Exception):
    """More than the allowed number of bytes arrived without a newline."""


def read_line(sock: socket.socket, limit: int) -> bytes:
    """Read one line, newline included, consuming nothing after it.

    Returns what arrived before end of stream if the stream ends first (`b""` at a clean end).
    Raises `LineTooLong` once more than `limit` bytes arrive without a newline.
    """
    if isinstance(sock, ssl.SSLSocket):
        return _read_line_bytewise(sock, limit)
    line = bytearray()
    while True:
        peeked = sock.recv(min(_PEEK_CHUNK, limit + 1 - len(line)), socket.MSG_PEEK)
        if not peeked:
            return bytes(line)
        end = peeked.find(b"\n") + 1 or len(peeked)
        taken = sock.recv(end)
        line += taken
        if taken.endswith(b"\n"):
            return bytes(line)
        if len(line) > limit:
            raise LineTooLong


def _read_line_bytewise(sock: socket.socket, limit: int) -> bytes:
    line = bytearray()
    while True:
        byte = sock.recv(1)
        if not byte:
            return bytes(line)
        line += byte
        if byte == b"\n":
            return bytes(line)
        if len(line) > limit:
            raise LineTooLong


def shutdown_write(sock: socket.socket) -> None:
    """Half-close: tell the server no more bytes come (TCP FIN), keep reading.

    On a TLS socket this is the raw TCP half-close without a TLS close_notify, as upstream
    receptorctl does (`ssl.SSLSocket.shutdown` would tear down the TLS session).
    """
    socket.socket.shutdown(sock, socket.SHUT_WR)
