"""Many concurrent mesh streams between real daemons on a loaded machine (issue 10 item 5).

Three daemons in a line, ``dialer - relay - target``: ``dialer`` runs a ``tcp-server``
whose every connection dials a mesh stream to ``target``'s ``tcp-client`` service, which
connects to a local echo server of this test. Each client sends its own random payload,
reads the echo and the SHA-256 the echo server computed, and checks both. CPU-burning
processes keep every core busy throughout. (Between two of our daemons streams use
16 000-byte datagrams; the first dial is a 1200-byte probe. The 1200-byte mode on both
ends, and the condition itself, are covered deterministically by
tests/unit/mesh/test_quic_transmit.py.)

The second round starves the dialing daemon (SIGSTOP for a few seconds) just after it has
sent the ClientHellos of a burst of streams: each listener then resends its handshake
flight on every PTO until its anti-amplification allowance no longer admits the next
packet, the state in which qh3 raised ``packet builder capacity exhausted`` and the
stream died (see ``MeshQuicConnection.datagram_payloads``). No daemon may log a failed
stream, and every exchange must complete intact.
"""

import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from .harness import Mesh, ReceptorNode, free_port, listener, peer, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

#: Concurrent streams per round, and what each client sends.
STREAMS = 60
PAYLOAD = 160 * 1024
#: How long the dialing daemon is stopped in the second round: past the ~6 s after which
#: a listener's PTOs have spent its allowance, well within the 15 s handshake timeout.
STARVED = 8.0
EXCHANGE_TIMEOUT = 90.0


class EchoDigestServer:
    """Echoes what each connection sends as it arrives, then at EOF appends the SHA-256
    (hex) of all it read and closes."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=256)
        self._threads: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(EXCHANGE_TIMEOUT)
            digest = hashlib.sha256()
            while chunk := conn.recv(65536):
                digest.update(chunk)
                conn.sendall(chunk)
            conn.sendall(digest.hexdigest().encode())
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._thread.join(5)
        self.sock.close()
        for thread in self._threads:
            thread.join(5)


@pytest.fixture
def echo_server() -> Iterator[EchoDigestServer]:
    server = EchoDigestServer()
    yield server
    server.close()


@pytest.fixture
def cpu_load() -> Iterator[None]:
    """One busy-looping process per available core (at most 8), stopped after the test."""
    cores = min(len(os.sched_getaffinity(0)), 8)
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores)]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
        for burner in burners:
            burner.wait(10)


class Exchange(threading.Thread):
    """One client: connect, send a random payload, half-close, read to EOF, check."""

    def __init__(self, port: int, index: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.payload = os.urandom(PAYLOAD + 997 * index)
        self.error: str | None = "did not finish"
        self.connected = threading.Event()

    def run(self) -> None:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
                self.connected.set()
                sock.settimeout(EXCHANGE_TIMEOUT)
                sender = threading.Thread(target=self._send, args=(sock,), daemon=True)
                sender.start()
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
                sender.join(EXCHANGE_TIMEOUT)
            reply = b"".join(chunks)
            expected = hashlib.sha256(self.payload)
            if len(reply) != len(self.payload) + 64:
                self.error = f"{len(reply)} bytes back, expected {len(self.payload) + 64}"
            elif hashlib.sha256(reply[:-64]).digest() != expected.digest():
                self.error = "echo differs from the payload"
            elif reply[-64:] != expected.hexdigest().encode():
                self.error = "the server's digest differs"
            else:
                self.error = None
        except OSError as err:
            self.error = repr(err)
        finally:
            self.connected.set()

    def _send(self, sock: socket.socket) -> None:
        try:
            sock.sendall(self.payload)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the reader reports what is missing


def run_round(exchanges: list[Exchange]) -> list[str]:
    for exchange in exchanges:
        exchange.join(EXCHANGE_TIMEOUT + 30)
    return [f"#{i}: {e.error}" for i, e in enumerate(exchanges) if e.error is not None]


def capacity_failures(node: ReceptorNode) -> list[str]:
    """Log lines of a stream that died of the qh3 condition (its traceback names it)."""
    return [line for line in node.log.splitlines() if "capacity exhausted" in line]


def test_many_streams_on_a_loaded_machine(mesh: Mesh, echo_server: EchoDigestServer, cpu_load):
    port = free_port()
    target = mesh.node(
        "target", listener(), {"tcp-client": {"service": "echo", "address": echo_server.address}}
    )
    relay = mesh.node("relay", peer(target.port()), listener())
    dialer = mesh.node(
        "dialer",
        peer(relay.port()),
        {
            "tcp-server": {
                "port": port,
                "bindaddr": "127.0.0.1",
                "remotenode": "target",
                "remoteservice": "echo",
            }
        },
    )
    nodes = (dialer, relay, target)
    wait_until(lambda: {"target", "relay"} <= set(dialer.routes()), timeout=60)
    wait_until(
        lambda: any(
            ad["NodeID"] == "target" and ad["Service"] == "echo"
            for ad in dialer.status()["Advertisements"] or []
        ),
        timeout=60,
    )
    assert dialer.process is not None

    # Round 1: every stream at once, everything busy.
    exchanges = [Exchange(port, i) for i in range(STREAMS)]
    for exchange in exchanges:
        exchange.start()
    first_round = run_round(exchanges)

    # Round 2: the dialing daemon is starved in the middle of a burst of handshakes.
    exchanges = [Exchange(port, i) for i in range(STREAMS)]
    try:
        dialer.process.send_signal(signal.SIGSTOP)
        for exchange in exchanges:
            exchange.start()  # accepted by the kernel; the daemon sees them all at once
        for exchange in exchanges:
            exchange.connected.wait(30)
        dialer.process.send_signal(signal.SIGCONT)
        time.sleep(0.3)  # accepts, dials: ClientHellos leave, answers are on their way
        dialer.process.send_signal(signal.SIGSTOP)
        time.sleep(STARVED)
    finally:
        dialer.process.send_signal(signal.SIGCONT)
    second_round = run_round(exchanges)

    for node in nodes:
        assert capacity_failures(node) == [], node.log[-5000:]
    assert first_round == []
    assert second_round == []
    for node in nodes:
        assert node.process is not None and node.process.poll() is None
        assert node.status()["NodeID"] == node.node_id
