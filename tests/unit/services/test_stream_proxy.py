"""The stream proxies inside one real node that dials itself: real sockets, real mesh streams."""

import hashlib
import os
import socket
import threading
from collections.abc import Iterator

import pytest

from receptor.backends.tcp import listen_tcp
from receptor.netceptor import Netceptor
from receptor.services._stream_proxy import LocalToMesh, MeshToLocal, tcp_connector, unix_connector

from ...integration.harness import wait_until


class DigestServer:
    """Reads each connection to EOF, answers the SHA-256 of what it read, closes."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _serve(conn: socket.socket) -> None:
        with conn:
            digest = hashlib.sha256()
            while chunk := conn.recv(65536):
                digest.update(chunk)
            conn.sendall(digest.hexdigest().encode())

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.thread.join(5)
        self.sock.close()


def proxy_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith(("proxy", "bridge"))}


@pytest.fixture
def node() -> Iterator[Netceptor]:
    n = Netceptor("solo")
    yield n
    n.shutdown()


@pytest.fixture
def server() -> Iterator[DigestServer]:
    s = DigestServer(socket.create_server(("127.0.0.1", 0)))
    yield s
    s.close()


def exchange(address: object, family: int, payload: bytes) -> bytes:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(60)
        sock.connect(address)
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        return b"".join(iter(lambda: sock.recv(65536), b""))


def start_pair(node: Netceptor, server: DigestServer) -> tuple[LocalToMesh, MeshToLocal]:
    host, port = server.sock.getsockname()
    outbound = MeshToLocal(
        node,
        "sink",
        {"type": "TCP Proxy"},
        tcp_connector(f"{host}:{port}", host, port, None),
        "TCP",
    ).start()
    inbound = LocalToMesh(node, listen_tcp("127.0.0.1", 0), "TCP", "solo", "sink").start()
    return inbound, outbound


def test_many_clients_and_clean_stop(node: Netceptor, server: DigestServer) -> None:
    inbound, outbound = start_pair(node, server)
    address = inbound.listener.getsockname()
    payloads = [os.urandom(50_000 + i) for i in range(20)]
    answers: dict[int, bytes] = {}

    def run(index: int) -> None:
        answers[index] = exchange(address, socket.AF_INET, payloads[index])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(payloads))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert answers == {i: hashlib.sha256(p).hexdigest().encode() for i, p in enumerate(payloads)}
    wait_until(lambda: len(proxy_threads()) == 2)  # only the two accept loops
    inbound.stop()
    outbound.stop()
    assert not proxy_threads()
    assert "sink" not in node.services()


def test_stop_ends_live_connections(node: Netceptor, server: DigestServer) -> None:
    """A client that sent nothing is cut off by stop, and no thread is left behind."""
    inbound, outbound = start_pair(node, server)
    with socket.create_connection(inbound.listener.getsockname()) as idle:
        idle.settimeout(30)
        wait_until(lambda: len(proxy_threads()) >= 6)  # both sides bridged
        inbound.stop()
        outbound.stop()
        assert idle.recv(10) == b""
    assert not proxy_threads()


def test_unix_sockets(node: Netceptor, tmp_path) -> None:
    target = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    target.bind(str(tmp_path / "t.sock"))
    target.listen()
    server = DigestServer(target)
    front = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    front.bind(str(tmp_path / "f.sock"))
    front.listen()
    outbound = MeshToLocal(
        node, "usock", {}, unix_connector(str(tmp_path / "t.sock")), "Unix socket"
    ).start()
    inbound = LocalToMesh(node, front, "Unix socket", "solo", "usock").start()
    try:
        payload = os.urandom(200_000)
        answer = exchange(str(tmp_path / "f.sock"), socket.AF_UNIX, payload)
        assert answer == hashlib.sha256(payload).hexdigest().encode()
    finally:
        inbound.stop()
        outbound.stop()
        server.close()
