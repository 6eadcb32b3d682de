"""The proxy services between real daemons (config.md §3.12): real TCP, UDP and Unix sockets.

Node ``a`` runs the ``*-client`` side (a mesh service in front of a real server), node ``b``
the ``*-server`` side (a local port that tunnels to ``a``). Every test also checks that the
daemons still serve after whatever abuse it applied.
"""

import errno
import hashlib
import os
import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..unit.tls.certs import make_ca, make_cert
from .harness import Mesh, ReceptorNode, free_port, listener, peer, wait_until

pytestmark = pytest.mark.integration

CLIENTS = 25


# --------------------------------------------------------------------------- real servers


class StreamServer:
    """A threaded server that reads each connection to EOF, then answers the SHA-256 of what
    it read (so the answer only comes if the client's half-close got through), then closes.
    """

    def __init__(
        self, sock: socket.socket, tls: ssl.SSLContext | None = None, echo: bool = False
    ) -> None:
        """``echo``: send back what is read, as it comes, instead of the final digest."""
        self.sock = sock
        self.tls = tls
        self.echo = echo
        self.accepted = 0
        self._threads: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    @classmethod
    def tcp(cls, tls: ssl.SSLContext | None = None, echo: bool = False) -> "StreamServer":
        return cls(socket.create_server(("127.0.0.1", 0)), tls, echo)

    @classmethod
    def unix(cls, path: str) -> "StreamServer":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path)
        sock.listen(64)
        return cls(sock)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            conn.settimeout(60)
            digest = hashlib.sha256()
            while chunk := conn.recv(65536):
                if self.echo:
                    conn.sendall(chunk)
                digest.update(chunk)
            conn.sendall(digest.hexdigest().encode())
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)
        self.sock.close()
        for thread in self._threads:
            thread.join(5)


class UDPEcho:
    """A real UDP echo server that records its clients' addresses."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sources: set[Any] = set()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.sock.getsockname()[1]}"

    def _run(self) -> None:
        while True:
            data, source = self.sock.recvfrom(65536)
            if not source:
                return  # shut down
            self.sources.add(source)
            self.sock.sendto(data, source)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # ENOTCONN, but it wakes recvfrom
        except OSError:
            pass
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def stream_server() -> Iterator[StreamServer]:
    server = StreamServer.tcp()
    yield server
    server.close()


@pytest.fixture
def udp_echo() -> Iterator[UDPEcho]:
    server = UDPEcho()
    yield server
    server.close()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- clients


def exchange(connect: Any, payload: bytes, timeout: float = 60) -> bytes:
    """Connect, send ``payload``, half-close, return everything read until EOF."""
    with connect() as sock:
        sock.settimeout(timeout)
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def tcp_client(port: int) -> Any:
    """A ``connect`` function for a plain TCP client of 127.0.0.1:``port``."""
    return lambda: socket.create_connection(("127.0.0.1", port))


def closed_without_answer(connect: Any) -> bool:
    """The proxy closes the connection: EOF, or, since our bytes went unread, a reset that
    shows up in ``sendall`` (EPIPE), ``shutdown`` (ENOTCONN) or ``recv`` (ECONNRESET),
    depending on how far the client got when it arrived."""
    try:
        return exchange(connect, b"anyone there?") == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except OSError as err:
        if err.errno == errno.ENOTCONN:
            return True
        raise


def many_exchanges(connect: Any, count: int = CLIENTS) -> None:
    """``count`` clients at once, each with its own payload; every answer must match."""
    payloads = [os.urandom(100_000 + 997 * i) for i in range(count)]
    answers: dict[int, bytes | Exception] = {}

    def run(index: int) -> None:
        try:
            answers[index] = exchange(connect, payloads[index])
        except Exception as err:  # reported below with the others
            answers[index] = err

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    expected = {i: hashlib.sha256(p).hexdigest().encode() for i, p in enumerate(payloads)}
    assert answers == expected


def advertisement(node: ReceptorNode, origin: str, service: str) -> dict[str, Any] | None:
    for ad in node.status()["Advertisements"] or []:
        if ad["NodeID"] == origin and ad["Service"] == service:
            return ad
    return None


def still_serves(*nodes: ReceptorNode) -> None:
    for node in nodes:
        assert node.process is not None and node.process.poll() is None
        assert node.status()["NodeID"] == node.node_id


def two_nodes(mesh: Mesh, a_items: list[Any], b_items: list[Any]) -> tuple[ReceptorNode, ...]:
    port = free_port()
    a = mesh.node("a", listener(port), *a_items)
    b = mesh.node("b", peer(port), *b_items)
    wait_until(lambda: "a" in b.routes() and "b" in a.routes())
    return a, b


def proxy_pair(
    mesh: Mesh, kind: str, service: str, address: str, port: int, conn_type: int, tag: str
) -> tuple[ReceptorNode, ...]:
    """a runs ``<kind>-client`` to ``address`` as ``service``; b runs ``<kind>-server`` on
    ``port`` towards it. Returns once b has a's advertisement (checked on a)."""
    a, b = two_nodes(
        mesh,
        [{f"{kind}-client": {"service": service, "address": address}}],
        [
            {
                f"{kind}-server": {
                    "port": port,
                    "bindaddr": "127.0.0.1",
                    "remotenode": "a",
                    "remoteservice": service,
                }
            }
        ],
    )
    ad = advertisement(a, "a", service)
    assert ad is not None
    assert ad["ConnType"] == conn_type
    assert ad["Tags"] == {"type": tag, "address": address}
    # b started within 5 s of a, so a's first advertising run reaches it.
    wait_until(lambda: advertisement(b, "a", service), timeout=20)
    return a, b


# --------------------------------------------------------------------------- TCP


def test_tcp_proxy_tunnels_many_clients(mesh: Mesh, stream_server: StreamServer) -> None:
    tcp_port = free_port()
    a, b = proxy_pair(mesh, "tcp", "sink", stream_server.address, tcp_port, 1, "TCP Proxy")

    def connect() -> socket.socket:
        return socket.create_connection(("127.0.0.1", tcp_port))

    # A client that connects and never sends must not hold anyone else up.
    with connect():
        many_exchanges(connect)
        assert exchange(connect, b"") == hashlib.sha256(b"").hexdigest().encode()
    many_exchanges(connect, 3)
    still_serves(a, b)


def test_tcp_proxy_failures_close_the_client(mesh: Mesh) -> None:
    """Remote node missing, remote service missing, target refusing: the local connection is
    closed with a log line, never left hanging; the daemon serves on."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead_address = f"127.0.0.1:{closed.getsockname()[1]}"
    ports = {name: free_port() for name in ("ghost", "nosvc", "dead")}

    def server(name: str, node: str, service: str) -> dict[str, Any]:
        return {
            "tcp-server": {
                "port": ports[name],
                "bindaddr": "127.0.0.1",
                "remotenode": node,
                "remoteservice": service,
            }
        }

    a, b = two_nodes(
        mesh,
        [{"tcp-client": {"service": "dead", "address": dead_address}}],
        [
            server("ghost", "ghost", "x"),
            server("nosvc", "a", "nosuch"),
            server("dead", "a", "dead"),
        ],
    )
    for name in ports:
        assert closed_without_answer(tcp_client(ports[name]))
    b.wait_for_log("ERROR .*Error connecting on Receptor network: ")
    a.wait_for_log(
        f"ERROR .*Error connecting via TCP: dial tcp {dead_address}: connect: connection refused"
    )
    still_serves(a, b)


def test_tcp_proxy_start_up_errors(mesh: Mesh) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        node = mesh.node(
            "a",
            {"local-only": None},
            {
                "tcp-server": {
                    "port": port,
                    "bindaddr": "127.0.0.1",
                    "remotenode": "b",
                    "remoteservice": "x",
                }
            },
            start=False,
        )
        node.start(wait=False)
        assert node.process is not None
        assert node.process.wait(20) == 1
    assert (
        f"Error: error listening on TCP: listen tcp 127.0.0.1:{port}: bind: address already in use"
        in node.log
    )
    bad = mesh.node(
        "c",
        {"local-only": None},
        {"tcp-client": {"service": "x", "address": "nowhere"}},
        start=False,
    )
    bad.start(wait=False)
    assert bad.process is not None and bad.process.wait(20) == 1
    assert "Error: address nowhere: missing port in address" in bad.log
    too_big = mesh.node(
        "d",
        {"local-only": None},
        {"tcp-server": {"port": 70000, "remotenode": "b", "remoteservice": "x"}},
        start=False,
    )
    too_big.start(wait=False)
    assert too_big.process is not None and too_big.process.wait(20) == 1
    assert "Error: error listening on TCP: listen tcp: address 70000: invalid port" in too_big.log


def test_tcp_proxy_with_tls_on_every_leg(mesh: Mesh, tmp_path: Path) -> None:
    """TLS client → tcp-server (tlsserver) → mesh stream with TLS (tlsclient → tlsserver)
    → tcp-client (tlsclient, verified as DNS ``localhost``) → TLS server."""
    ca = make_ca()
    ca_path = str(tmp_path / "ca.crt")
    Path(ca_path).write_bytes(ca.cert_pem)
    certs = {name: make_cert(ca, name, node_ids=(name,)).write(tmp_path, name) for name in "ab"}
    target_cert = make_cert(ca, "localhost").write(tmp_path, "target")
    target_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    target_context.load_cert_chain(*target_cert)
    target = StreamServer.tcp(target_context, echo=True)
    target_address = f"localhost:{target.sock.getsockname()[1]}"
    tcp_port, untrusted_port, no_mesh_tls_port = free_port(), free_port(), free_port()

    def tls(kind: str, name: str, node: str, **extra: Any) -> dict[str, Any]:
        cert, key = certs[node]
        return {kind: {"name": name, "cert": cert, "key": key, **extra}}

    try:
        a, b = two_nodes(
            mesh,
            [
                tls("tls-server", "mesh", "a"),
                tls("tls-client", "target", "a", rootcas=ca_path),
                tls("tls-client", "system", "a"),  # the system trust store: our CA is unknown
                {
                    "tcp-client": {
                        "service": "tls",
                        "address": target_address,
                        "tlsserver": "mesh",
                        "tlsclient": "target",
                    }
                },
                {
                    "tcp-client": {
                        "service": "untrust",
                        "address": target_address,
                        "tlsclient": "system",
                    }
                },
            ],
            [
                tls("tls-server", "local", "b"),
                tls("tls-client", "mesh", "b", rootcas=ca_path),
                {
                    "tcp-server": {
                        "port": tcp_port,
                        "bindaddr": "127.0.0.1",
                        "remotenode": "a",
                        "remoteservice": "tls",
                        "tlsserver": "local",
                        "tlsclient": "mesh",
                    }
                },
                {
                    "tcp-server": {
                        "port": untrusted_port,
                        "bindaddr": "127.0.0.1",
                        "remotenode": "a",
                        "remoteservice": "untrust",
                    }
                },
                {
                    "tcp-server": {
                        "port": no_mesh_tls_port,
                        "bindaddr": "127.0.0.1",
                        "remotenode": "a",
                        "remoteservice": "tls",
                    }
                },
            ],
        )
        ad = advertisement(a, "a", "tls")
        assert ad is not None and ad["ConnType"] == 2
        client_context = ssl.create_default_context(cafile=ca_path)

        def talk(payload: bytes) -> bytes:
            raw = socket.create_connection(("127.0.0.1", tcp_port))
            with client_context.wrap_socket(raw, server_hostname="localhost") as sock:
                sock.settimeout(60)
                sock.sendall(payload)
                received = bytearray()
                while len(received) < len(payload):
                    chunk = sock.recv(65536)
                    assert chunk, "connection closed early"
                    received += chunk
                return bytes(received)

        for size in (1, 300_000):
            payload = os.urandom(size)
            assert talk(payload) == payload

        # A plain-text client on the TLS port: refused with a log line, nothing reaches a.
        accepted = target.accepted
        assert closed_without_answer(tcp_client(tcp_port))
        b.wait_for_log("ERROR .*TLS handshake with .* failed")
        assert target.accepted == accepted

        # The target's certificate is not trusted by tcp-client's tls-client: refused.
        assert closed_without_answer(tcp_client(untrusted_port))
        a.wait_for_log("ERROR .*Error connecting via TCP: .*certificate verify failed")
        # No tls-client for a TLS mesh service: the dial fails (wire.md §14.2).
        assert closed_without_answer(tcp_client(no_mesh_tls_port))
        b.wait_for_log("ERROR .*Error connecting on Receptor network: ")
        still_serves(a, b)
    finally:
        target.close()


# --------------------------------------------------------------------------- UDP


def test_udp_proxy_tunnels_many_clients(mesh: Mesh, udp_echo: UDPEcho) -> None:
    udp_port = free_udp_port()
    a, b = proxy_pair(mesh, "udp", "uecho", udp_echo.address, udp_port, 0, "UDP Proxy")
    target = ("127.0.0.1", udp_port)
    answers: dict[int, list[bytes] | Exception] = {}

    def run(index: int) -> None:
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.settimeout(20)
                got = []
                for n in range(5):
                    sock.sendto(f"{index}/{n}".encode(), target)
                    got.append(sock.recv(100))
                answers[index] = got
        except Exception as err:
            answers[index] = err

    threads = [threading.Thread(target=run, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert answers == {i: [f"{i}/{n}".encode() for n in range(5)] for i in range(CLIENTS)}
    # One UDP socket towards the target per client: replies cannot cross.
    assert len(udp_echo.sources) == CLIENTS

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(20)
        for garbage in (b"\x00", os.urandom(1200), os.urandom(30_000)):
            sock.sendto(garbage, target)
            assert sock.recv(65536) == garbage
        sock.sendto(os.urandom(65_507), target)  # more than a mesh message can carry
        b.wait_for_log("ERROR .*Error sending packet on Receptor network: datagram of 65507")
        sock.sendto(b"still here", target)
        assert sock.recv(100) == b"still here"
    still_serves(a, b)


def test_udp_server_with_remote_node_missing(mesh: Mesh) -> None:
    udp_port = free_udp_port()
    node = mesh.node(
        "b",
        listener(0),
        {
            "udp-server": {
                "port": udp_port,
                "bindaddr": "127.0.0.1",
                "remotenode": "ghost",
                "remoteservice": "uecho",
            }
        },
    )
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _ in range(50):
            sock.sendto(os.urandom(64), ("127.0.0.1", udp_port))
    node.wait_for_log("ERROR .*Error sending packet on Receptor network: no route to node")
    still_serves(node)


def test_udp_proxy_start_up_errors(mesh: Mesh) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        node = mesh.node(
            "a",
            {"local-only": None},
            {
                "udp-server": {
                    "port": port,
                    "bindaddr": "127.0.0.1",
                    "remotenode": "b",
                    "remoteservice": "x",
                }
            },
            start=False,
        )
        node.start(wait=False)
        assert node.process is not None and node.process.wait(20) == 1
    assert (
        f"Error: error listening on UDP: listen udp 127.0.0.1:{port}: bind: address already in use"
        in node.log
    )
    bad = mesh.node(
        "c", {"local-only": None}, {"udp-client": {"service": "x", "address": "x"}}, start=False
    )
    bad.start(wait=False)
    assert bad.process is not None and bad.process.wait(20) == 1
    assert "Error: could not resolve UDP address x" in bad.log


# --------------------------------------------------------------------------- Unix sockets


def test_unix_proxy_tunnels_many_clients(mesh: Mesh) -> None:
    target_path = str(mesh.workdir / "target.sock")
    proxy_path = str(mesh.workdir / "proxy.sock")
    target = StreamServer.unix(target_path)
    try:
        a, b = two_nodes(
            mesh,
            [{"unix-socket-client": {"service": "usock", "filename": target_path}}],
            [
                {
                    "unix-socket-server": {
                        "filename": proxy_path,
                        "permissions": 0o660,
                        "remotenode": "a",
                        "remoteservice": "usock",
                    }
                }
            ],
        )
        assert stat.S_IMODE(os.stat(proxy_path).st_mode) == 0o660
        assert stat.S_IMODE(os.stat(proxy_path + ".lock").st_mode) == 0o600
        ad = advertisement(a, "a", "usock")
        assert ad is not None
        assert ad["ConnType"] == 1
        assert ad["Tags"] == {"type": "Unix Proxy", "filename": target_path}

        def connect() -> socket.socket:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(proxy_path)
            return sock

        many_exchanges(connect)
        still_serves(a, b)

        # A second daemon cannot take the same socket file.
        other = mesh.node(
            "c",
            {"local-only": None},
            {
                "unix-socket-server": {
                    "filename": proxy_path,
                    "remotenode": "a",
                    "remoteservice": "usock",
                }
            },
            start=False,
        )
        other.start(wait=False)
        assert other.process is not None and other.process.wait(20) == 1
        assert (
            "Error: error opening Unix socket: could not acquire lock on socket file: "
            "fslock is already locked" in other.log
        )
        exchange(connect, b"after")
    finally:
        target.close()


def test_unix_proxy_target_missing(mesh: Mesh) -> None:
    missing = str(mesh.workdir / "missing.sock")
    proxy_path = str(mesh.workdir / "proxy.sock")
    a, b = two_nodes(
        mesh,
        [{"unix-socket-client": {"service": "usock", "filename": missing}}],
        [
            {
                "unix-socket-server": {
                    "filename": proxy_path,
                    "remotenode": "a",
                    "remoteservice": "usock",
                }
            }
        ],
    )
    assert stat.S_IMODE(os.stat(proxy_path).st_mode) == 0o600

    def connect() -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(proxy_path)
        return sock

    assert closed_without_answer(connect)
    a.wait_for_log(
        f"ERROR .*Error connecting via Unix socket: dial unix {missing}: connect: "
        "no such file or directory"
    )
    still_serves(a, b)


# --------------------------------------------------------------------------- several hops


def test_tcp_and_udp_across_three_hops(
    mesh: Mesh, stream_server: StreamServer, udp_echo: UDPEcho
) -> None:
    """n0 ─ n1 ─ n2 ─ n3: the proxies on n0 reach the services on n3 through two relays."""
    ports = [free_port() for _ in range(3)]
    tcp_port, udp_port = free_port(), free_udp_port()
    n0 = mesh.node(
        "n0",
        listener(ports[0]),
        {"tcp-server": {"port": tcp_port, "bindaddr": "127.0.0.1", "remotenode": "n3",
                        "remoteservice": "sink"}},
        {"udp-server": {"port": udp_port, "bindaddr": "127.0.0.1", "remotenode": "n3",
                        "remoteservice": "uecho"}},
    )  # fmt: skip
    n1 = mesh.node("n1", peer(ports[0]), listener(ports[1]))
    n2 = mesh.node("n2", peer(ports[1]), listener(ports[2]))
    n3 = mesh.node(
        "n3",
        peer(ports[2]),
        {"tcp-client": {"service": "sink", "address": stream_server.address}},
        {"udp-client": {"service": "uecho", "address": udp_echo.address}},
    )
    wait_until(lambda: n0.routes().get("n3") == "n1", timeout=30)
    many_exchanges(tcp_client(tcp_port), 5)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(20)
        for size in (1, 1200, 40_000):
            payload = os.urandom(size)
            sock.sendto(payload, ("127.0.0.1", udp_port))
            assert sock.recv(65536) == payload
    still_serves(n0, n1, n2, n3)


def test_connection_ends_when_the_far_node_dies(mesh: Mesh, stream_server: StreamServer) -> None:
    """The far node vanishes mid-connection: the local client is closed once the mesh stream
    times out (30 s of silence, wire.md §14.1), not left hanging; b serves on."""
    tcp_port = free_port()
    a, b = two_nodes(
        mesh,
        [{"tcp-client": {"service": "sink", "address": stream_server.address}}],
        [{"tcp-server": {"port": tcp_port, "bindaddr": "127.0.0.1", "remotenode": "a",
                         "remoteservice": "sink"}}],
    )  # fmt: skip
    with socket.create_connection(("127.0.0.1", tcp_port)) as sock:
        sock.sendall(b"partial request")
        wait_until(lambda: stream_server.accepted == 1)
        a.kill()
        sock.settimeout(90)
        try:
            assert sock.recv(100) == b""
        except ConnectionResetError:
            pass
    still_serves(b)
