"""The bridge between two streams, on real socket pairs: copying, half-close, errors, abort."""

import hashlib
import os
import socket
import threading

import pytest

from receptor.services._bridge import Bridge


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def send_and_half_close(sock: socket.socket, data: bytes) -> None:
    sock.sendall(data)
    sock.shutdown(socket.SHUT_WR)


class Pair:
    """client ⇄ [a  bridge  b] ⇄ server, each ⇄ a real socket pair."""

    def __init__(self) -> None:
        self.client, self.a = socket.socketpair()
        self.b, self.server = socket.socketpair()
        for sock in (self.client, self.server):
            sock.settimeout(30)
        self.bridge = Bridge(self.a, "a", self.b, "b")
        self.thread = threading.Thread(target=self.bridge.run, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.bridge.abort()
        self.thread.join(10)
        self.client.close()
        self.server.close()


@pytest.fixture
def pair():
    p = Pair()
    yield p
    p.close()


def test_request_half_close_then_reply(pair: Pair) -> None:
    """The client half-closes after its request; the reply still comes back whole."""
    request = os.urandom(300_000)
    pair.client.sendall(request)
    pair.client.shutdown(socket.SHUT_WR)
    assert read_all(pair.server) == request  # EOF reached the server side
    reply = os.urandom(500_000)
    sender = threading.Thread(target=send_and_half_close, args=(pair.server, reply))
    sender.start()
    assert read_all(pair.client) == reply
    sender.join()
    pair.thread.join(10)
    assert pair.bridge.done.is_set()
    assert pair.a.fileno() == -1 and pair.b.fileno() == -1  # both closed at the end


def test_server_half_closes_first(pair: Pair) -> None:
    pair.server.sendall(b"banner\n")
    pair.server.shutdown(socket.SHUT_WR)
    assert read_all(pair.client) == b"banner\n"
    pair.client.sendall(b"still talking")
    pair.client.shutdown(socket.SHUT_WR)
    assert read_all(pair.server) == b"still talking"
    pair.thread.join(10)
    assert pair.bridge.done.is_set()


def test_peer_vanishing_aborts_both_sides(pair: Pair) -> None:
    """A write error (server gone) ends the bridge and closes the client's side too."""
    pair.server.close()
    with pytest.raises(OSError):
        for _ in range(1000):
            pair.client.sendall(b"x" * 65536)
    pair.thread.join(10)
    assert not pair.thread.is_alive()
    assert pair.bridge.done.is_set()


def test_abort_wakes_idle_pumps(pair: Pair) -> None:
    """Nobody sends anything: abort still ends both pump threads and closes the sockets."""
    pair.bridge.abort()
    pair.thread.join(10)
    assert not pair.thread.is_alive()
    assert read_all(pair.client) == b""
    assert read_all(pair.server) == b""


def test_many_bridges_at_once() -> None:
    before = threading.active_count()
    pairs = [Pair() for _ in range(40)]
    payloads = [os.urandom(200_000 + i) for i in range(len(pairs))]
    results: dict[int, str] = {}

    def talk(index: int) -> None:
        p = pairs[index]
        echo = threading.Thread(target=lambda: send_and_half_close(p.server, read_all(p.server)))
        echo.start()
        p.client.sendall(payloads[index])
        p.client.shutdown(socket.SHUT_WR)
        results[index] = hashlib.sha256(read_all(p.client)).hexdigest()
        echo.join()

    threads = [threading.Thread(target=talk, args=(i,)) for i in range(len(pairs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        for index, payload in enumerate(payloads):
            assert results[index] == hashlib.sha256(payload).hexdigest()
        for p in pairs:
            p.thread.join(10)
            assert p.bridge.done.is_set()
    finally:
        for p in pairs:
            p.close()
    assert threading.active_count() == before
