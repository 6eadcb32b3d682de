"""The UDP proxies inside one real node: real UDP sockets, real mesh datagrams to itself."""

import logging
import os
import socket
import threading
from collections.abc import Iterator

import pytest

from receptor._errors import ConfigError
from receptor.netceptor import Netceptor
from receptor.services import _udp_proxy
from receptor.services._udp_proxy import MAX_PAYLOAD, MeshToUDP, UDPToMesh

from ...integration.harness import wait_until


class UDPEcho:
    """A real UDP echo server on 127.0.0.1 that records who sent what."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.sources: set[tuple[str, int]] = set()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                data, source = self.sock.recvfrom(65536)
            except OSError:
                return
            if not source:
                return  # shut down
            self.sources.add(source)
            self.sock.sendto(data, source)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # ENOTCONN, but wakes recvfrom all the same
        except OSError:
            pass
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def node() -> Iterator[Netceptor]:
    n = Netceptor("solo")
    yield n
    n.shutdown()


@pytest.fixture
def echo() -> Iterator[UDPEcho]:
    e = UDPEcho()
    yield e
    e.close()


@pytest.fixture
def proxies(node: Netceptor, echo: UDPEcho) -> Iterator[tuple[UDPToMesh, MeshToUDP]]:
    """udp-server on 127.0.0.1:<any> → mesh service ``uecho`` → udp-client → echo server."""
    outbound = MeshToUDP(node, "uecho", echo.address).start()
    inbound = UDPToMesh(node, "127.0.0.1", 0, "solo", "uecho").start()
    yield inbound, outbound
    inbound.stop()
    outbound.stop()


def client() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(10)
    return sock


def round_trip(sock: socket.socket, inbound: UDPToMesh, payload: bytes) -> bytes:
    sock.sendto(payload, inbound.sock.getsockname())
    return sock.recv(65536)


def test_round_trip(proxies: tuple[UDPToMesh, MeshToUDP]) -> None:
    inbound, _ = proxies
    with client() as sock:
        assert round_trip(sock, inbound, b"hello") == b"hello"
        big = os.urandom(MAX_PAYLOAD)
        assert round_trip(sock, inbound, big) == big


def test_each_source_gets_its_own_session(
    proxies: tuple[UDPToMesh, MeshToUDP], echo: UDPEcho
) -> None:
    """Replies go back to the right client: one mesh endpoint and one UDP socket per source."""
    inbound, outbound = proxies
    socks = [client() for _ in range(25)]
    try:
        results: dict[int, list[bytes]] = {}

        def talk(index: int) -> None:
            results[index] = [
                round_trip(socks[index], inbound, f"{index}:{n}".encode()) for n in range(5)
            ]

        threads = [threading.Thread(target=talk, args=(i,)) for i in range(len(socks))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for index in range(len(socks)):
            assert results[index] == [f"{index}:{n}".encode() for n in range(5)]
        assert len(inbound._sessions.sessions) == len(socks)
        assert len(outbound._sessions.sessions) == len(socks)
        assert len(echo.sources) == len(socks)
    finally:
        for sock in socks:
            sock.close()


def test_garbage_and_oversized_datagrams(
    proxies: tuple[UDPToMesh, MeshToUDP], caplog: pytest.LogCaptureFixture
) -> None:
    """Bytes are forwarded as they are; a datagram no mesh message can hold is dropped."""
    inbound, _ = proxies
    with client() as sock:
        for payload in (b"\x00", b"\xff" * 1500, os.urandom(9000)):
            assert round_trip(sock, inbound, payload) == payload
        with caplog.at_level(logging.ERROR, logger="receptor"):
            sock.sendto(b"x" * (MAX_PAYLOAD + 1), inbound.sock.getsockname())
            wait_until(lambda: "larger than" in caplog.text)
        assert round_trip(sock, inbound, b"after") == b"after"


def test_least_recently_used_session_makes_room(
    proxies: tuple[UDPToMesh, MeshToUDP], monkeypatch: pytest.MonkeyPatch
) -> None:
    inbound, _ = proxies
    monkeypatch.setattr(_udp_proxy, "MAX_SESSIONS", 3)
    socks = [client() for _ in range(5)]
    try:
        for index, sock in enumerate(socks):
            assert round_trip(sock, inbound, b"%d" % index) == b"%d" % index
        assert len(inbound._sessions.sessions) == 3
        # The evicted first client simply gets a new session.
        assert round_trip(socks[0], inbound, b"again") == b"again"
    finally:
        for sock in socks:
            sock.close()


def test_idle_sessions_end(node: Netceptor, echo: UDPEcho, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both ends drop a quiet session: the mesh endpoint and the UDP socket are released."""
    monkeypatch.setattr(_udp_proxy, "SESSION_IDLE", 0.3)
    outbound = MeshToUDP(node, "uecho", echo.address).start()
    inbound = UDPToMesh(node, "127.0.0.1", 0, "solo", "uecho").start()
    services = node.services()
    try:
        with client() as sock:
            assert round_trip(sock, inbound, b"ping") == b"ping"
            assert len(node.services()) == len(services) + 1  # the session's own endpoint
            wait_until(lambda: not inbound._sessions.sessions and not outbound._sessions.sessions)
            wait_until(lambda: node.services() == services)
            assert round_trip(sock, inbound, b"back") == b"back"  # a new session
    finally:
        inbound.stop()
        outbound.stop()


def test_reply_from_unexpected_source_is_ignored(
    proxies: tuple[UDPToMesh, MeshToUDP], node: Netceptor
) -> None:
    inbound, _ = proxies
    with client() as sock:
        assert round_trip(sock, inbound, b"open") == b"open"
        (session,) = inbound._sessions.sessions.values()
        with node.listen_packet("intruder") as intruder:
            intruder.write_to(b"spoofed", "solo", session.conn.service)
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(100)
        sock.settimeout(10)
        assert round_trip(sock, inbound, b"real") == b"real"


def test_stop_ends_every_thread(node: Netceptor, echo: UDPEcho) -> None:
    before = set(threading.enumerate())
    outbound = MeshToUDP(node, "uecho", echo.address).start()
    inbound = UDPToMesh(node, "127.0.0.1", 0, "solo", "uecho").start()
    socks = [client() for _ in range(5)]
    for sock in socks:
        assert round_trip(sock, inbound, b"x") == b"x"
    inbound.stop()
    outbound.stop()
    for sock in socks:
        sock.close()
    assert set(threading.enumerate()) <= before
    assert "uecho" not in node.services()


def test_start_up_errors(node: Netceptor, echo: UDPEcho) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError) as err:
            UDPToMesh(node, "127.0.0.1", port, "solo", "uecho")
        assert str(err.value) == (
            f"error listening on UDP: listen udp 127.0.0.1:{port}: bind: address already in use"
        )
    cases = [
        (lambda: MeshToUDP(node, "uecho", "nope"), "could not resolve UDP address nope"),
        (
            lambda: MeshToUDP(node, "uecho", "no.such.host.invalid:53"),
            "could not resolve UDP address no.such.host.invalid:53",
        ),
        (
            lambda: MeshToUDP(node, "toolongname", echo.address),
            "error listening on service toolongname: service name toolongname too long",
        ),
        (
            lambda: UDPToMesh(node, "300.1.1.1", 9, "solo", "uecho"),
            "could not resolve address 300.1.1.1:9",
        ),
        (
            lambda: UDPToMesh(node, "127.0.0.1", 70000, "solo", "uecho"),
            "could not resolve address 127.0.0.1:70000",
        ),
        (
            lambda: UDPToMesh(node, "127.0.0.1", -1, "solo", "uecho"),
            "could not resolve address 127.0.0.1:-1",
        ),
    ]
    for start, message in cases:
        with pytest.raises(ConfigError) as err:
            start()
        assert str(err.value) == message


def test_target_not_listening(node: Netceptor) -> None:
    """ICMP port unreachable on the target: logged, the proxy keeps working."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as gone:
        gone.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{gone.getsockname()[1]}"
    outbound = MeshToUDP(node, "uecho", address).start()
    inbound = UDPToMesh(node, "127.0.0.1", 0, "solo", "uecho").start()
    try:
        with client() as sock:
            for _ in range(3):
                sock.sendto(b"anyone?", inbound.sock.getsockname())
            wait_until(lambda: outbound._sessions.sessions)
            assert outbound._thread.is_alive() and inbound._thread.is_alive()
    finally:
        inbound.stop()
        outbound.stop()
