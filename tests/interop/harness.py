"""Mixed meshes: nodes of ours and nodes of the upstream Go daemon, as real processes on loopback.

The Go binary comes from ``$RECEPTOR_GO`` (see conftest.py). Both kinds of node are run by
``tests/integration/harness.py``'s ``ReceptorNode`` — the Go daemon accepts the same
``-c <config>`` command line, YAML file and control protocol, and logs the same
``Listening on …`` / ``Initialization complete`` lines the harness waits for.
"""

import hashlib
import os
import re
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..integration.harness import Mesh, ReceptorNode, wait_until

GO_ENV = "RECEPTOR_GO"

#: Generous: the machine may be shared and loaded; nothing here measures speed.
LONG = 60.0


def go_binary() -> Path:
    """The upstream daemon named by ``$RECEPTOR_GO``; a missing one is an error, never a skip."""
    value = os.environ.get(GO_ENV, "")
    if not value:
        raise RuntimeError(
            f"{GO_ENV} is not set: the interop tests need the upstream Go receptor binary "
            f"(e.g. {GO_ENV}=$(realpath ../shared/peers/receptor-go-1.4.9) tox -e interop)"
        )
    path = Path(value)
    if not path.is_file() or not os.access(path, os.X_OK):
        raise RuntimeError(f"{GO_ENV}={value} is not an executable file")
    return path.resolve()


class InteropMesh(Mesh):
    """A ``Mesh`` that also starts Go nodes; every node is stopped through its handle."""

    def __init__(self, go: Path) -> None:
        super().__init__()
        self.go = go

    def py(self, node_id: str, *items: Any, **kwargs: Any) -> ReceptorNode:
        return self.node(node_id, *items, **kwargs)

    def gonode(self, node_id: str, *items: Any, **kwargs: Any) -> ReceptorNode:
        return self.node(node_id, *items, command=(str(self.go),), **kwargs)


def is_go(node: ReceptorNode) -> bool:
    return node.argv0[0] != sys.executable


# ---------------------------------------------------------------------------------- config


def udp_listener(**extra: Any) -> dict[str, Any]:
    return {"udp-listener": {"port": 0, "bindaddr": "127.0.0.1", **extra}}


def udp_peer(port: int, **extra: Any) -> dict[str, Any]:
    return {"udp-peer": {"address": f"127.0.0.1:{port}", **extra}}


def ws_listener(**extra: Any) -> dict[str, Any]:
    return {"ws-listener": {"port": 0, "bindaddr": "127.0.0.1", **extra}}


def ws_peer(port: int, **extra: Any) -> dict[str, Any]:
    return {"ws-peer": {"address": f"ws://127.0.0.1:{port}/", **extra}}


def udp_port(node: ReceptorNode) -> int:
    return int(node.wait_for_log(r"Listening on UDP [^\s]+:(\d+)", LONG).group(1))


def ws_port(node: ReceptorNode) -> int:
    return int(node.wait_for_log(r"Listening on (?:Websocket|WSS?) [^\s]+:(\d+)", LONG).group(1))


def converged(nodes: list[ReceptorNode]) -> None:
    """Wait until every node's routing table names every other node."""
    names = {n.node_id for n in nodes}
    for node in nodes:
        wait_until(lambda node=node: names - {node.node_id} <= set(node.routes()), timeout=LONG)


# ---------------------------------------------------------------------------------- clients


def receptorctl(
    node: ReceptorNode, *args: str, stdin: bytes = b"", timeout: float = 180.0
) -> subprocess.CompletedProcess[bytes]:
    """Our ``receptorctl`` against ``node``'s Unix control socket (Go's or ours)."""
    return subprocess.run(
        [sys.executable, "-m", "receptorctl", "--socket", node.socket_path, *args],
        input=stdin,
        capture_output=True,
        timeout=timeout,
    )


def ok(done: subprocess.CompletedProcess[bytes]) -> bytes:
    assert done.returncode == 0, (done.args, done.stdout[-2000:], done.stderr[-2000:])
    return done.stdout


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------- certificates


@dataclass
class PKI:
    """A CA and one certificate per node (node ID otherName, DNS localhost, IP 127.0.0.1)."""

    directory: Path
    maker: str

    @property
    def ca(self) -> str:
        return str(self.directory / "ca.crt")

    def cert(self, node_id: str) -> str:
        return str(self.directory / f"{node_id}.crt")

    def key(self, node_id: str) -> str:
        return str(self.directory / f"{node_id}.key")

    def tls_server(self, node_id: str, name: str = "srv", **extra: Any) -> dict[str, Any]:
        cert, key = self.cert(node_id), self.key(node_id)
        return {"tls-server": {"name": name, "cert": cert, "key": key, **extra}}

    def mutual_server(self, node_id: str, name: str = "srv") -> dict[str, Any]:
        """A tls-server that requires client certificates from this CA."""
        return self.tls_server(node_id, name, requireclientcert=True, clientcas=self.ca)

    def tls_client(self, node_id: str, name: str = "cli", **extra: Any) -> dict[str, Any]:
        cert, key = self.cert(node_id), self.key(node_id)
        return {"tls-client": {"name": name, "cert": cert, "key": key, "rootcas": self.ca, **extra}}


def cert_tool(command: list[str], cwd: Path, *words: str) -> None:
    done = subprocess.run(
        [*command, *words], cwd=cwd, capture_output=True, timeout=120, stdin=subprocess.DEVNULL
    )
    assert (done.returncode, done.stderr) == (0, b""), (words, done.stdout, done.stderr)


def make_pki(
    directory: Path,
    ca_maker: list[str],
    nodes: list[str],
    req_maker: list[str] | None = None,
    label: str = "",
) -> PKI:
    """``--cert-init`` with ``ca_maker``; ``--cert-makereq`` with ``req_maker`` (default: the
    same binary); ``--cert-signreq`` with ``ca_maker``."""
    directory.mkdir(parents=True, exist_ok=True)
    req_maker = req_maker or ca_maker
    cert_tool(
        ca_maker,
        directory,
        "--cert-init",
        "commonname=Interop CA",
        "bits=2048",
        "outcert=ca.crt",
        "outkey=ca.key",
    )
    for node_id in nodes:
        cert_tool(
            req_maker,
            directory,
            "--cert-makereq",
            "bits=2048",
            f"commonname={node_id}",
            f"dnsname={node_id}",
            "dnsname=localhost",
            "ipaddress=127.0.0.1",
            f"nodeid={node_id}",
            f"outreq={node_id}.csr",
            f"outkey={node_id}.key",
        )
        cert_tool(
            ca_maker,
            directory,
            "--cert-signreq",
            f"req={node_id}.csr",
            "cacert=ca.crt",
            "cakey=ca.key",
            f"outcert={node_id}.crt",
            "verify=yes",
        )
    return PKI(directory, label)


def openssl_rsa_pair(directory: Path, name: str) -> tuple[Path, Path]:
    """A work-signing key pair made with openssl: RSA private key and public key, PEM."""
    private, public = directory / f"{name}.key", directory / f"{name}.pub"
    for words in (
        ["genrsa", "-out", str(private), "2048"],
        ["rsa", "-in", str(private), "-pubout", "-out", str(public)],
    ):
        done = subprocess.run(["openssl", *words], capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr
    return private, public


# ---------------------------------------------------------------------------------- TCP ends


class ExchangeServer:
    """A TCP server on 127.0.0.1 for proxy tests: each client sends an 8-byte length and that
    many bytes while the server sends its own 8-byte length and data back at the same time;
    the server then answers with the SHA-256 of what it received. Nothing depends on
    half-closes (upstream's proxies close both directions at the first end of input)."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.received: list[bytes] = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self.port = int(self._sock.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(LONG)
            sender = threading.Thread(
                target=conn.sendall, args=(len(self.reply).to_bytes(8, "big") + self.reply,)
            )
            sender.start()
            try:
                size = int.from_bytes(recv_exactly(conn, 8), "big")
                data = recv_exactly(conn, size)
            except OSError:
                return
            sender.join()
            self.received.append(data)
            conn.sendall(hashlib.sha256(data).digest())
            # Wait for the client to finish reading before closing.
            try:
                conn.recv(1)
            except OSError:
                pass

    def close(self) -> None:
        self._sock.close()


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(min(size, 1 << 20))
        if not chunk:
            raise ConnectionError(f"connection ended with {size} bytes to go")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def exchange(port: int, payload: bytes) -> tuple[bytes, bytes]:
    """Client side of ``ExchangeServer`` through a proxy at ``port``: (what the server sent,
    the server's SHA-256 of what it received)."""
    with socket.create_connection(("127.0.0.1", port), timeout=LONG) as sock:
        sender = threading.Thread(
            target=sock.sendall, args=(len(payload).to_bytes(8, "big") + payload,)
        )
        sender.start()
        size = int.from_bytes(recv_exactly(sock, 8), "big")
        data = recv_exactly(sock, size)
        sender.join()
        digest = recv_exactly(sock, 32)
    return data, digest


def parse_ping(text: str) -> str:
    """The node named by receptorctl's ``Reply from <node> in <time>`` lines."""
    match = re.search(r"Reply from (\S+) in ", text)
    assert match, text
    return match.group(1)
