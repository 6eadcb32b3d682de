"""Mesh streams between a Go node and ours: control ``connect`` and TCP proxy pairs.

``g1`` (Go) and ``p1`` (ours) share a TCP link. Each offers a tcp-client proxy service
toward a local TCP server of the test, and a tcp-server that forwards to the other node's
service, without TLS, with a tls-server on the mesh service, and with one that also requires
a client certificate. Data moves both directions at once and is checked by SHA-256 on each
end. ``connect`` is run from either node to the other's control service, as a raw control
session and through our ``receptorctl connect`` on either node's socket.
"""

import json
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..integration.harness import OUR_DAEMON, ReceptorNode, free_port, listener, peer
from .harness import (
    LONG,
    PKI,
    ExchangeServer,
    InteropMesh,
    converged,
    exchange,
    make_pki,
    ok,
    receptorctl,
    sha,
)

pytestmark = pytest.mark.go_interop

MIB = 1024 * 1024
#: Mesh-side TLS of the proxies in the shared pair: none, or a tls-server (no client
#: certificates) on the tcp-client's service and a tls-client on the tcp-server.
VARIANTS = ["plain", "tls"]
#: The other node of the pair.
OTHER = {"g1": "p1", "p1": "g1"}


def proxy_items(
    name: str, pki: PKI, servers: dict[str, ExchangeServer], ports: dict[tuple[str, str], int]
) -> list[dict[str, object]]:
    """TLS configs; per variant a tcp-client service ``px<variant>`` toward ``name``'s test
    server and a tcp-server on ``ports[(name, variant)]`` toward the other node's service.
    Variant ``mtls``: the service's tls-server requires client certificates."""
    tls_server = {"tls": "meshsrv", "mtls": "mutualsrv"}
    config: list[dict[str, object]] = [pki.tls_server(name, "meshsrv"), pki.tls_client(name, "cli")]
    if (name, "mtls") in ports:
        config.append(pki.mutual_server(name, "mutualsrv"))
    for (owner, variant), port in ports.items():
        if owner != name:
            continue
        client: dict[str, object] = {
            "service": f"px{variant}",
            "address": f"127.0.0.1:{servers[name].port}",
        }
        forward: dict[str, object] = {
            "port": port,
            "bindaddr": "127.0.0.1",
            "remotenode": OTHER[name],
            "remoteservice": f"px{variant}",
        }
        if variant in tls_server:
            client["tlsserver"] = tls_server[variant]
            forward["tlsclient"] = "cli"
        config += [{"tcp-client": client}, {"tcp-server": forward}]
    return config


@dataclass
class Pair:
    nodes: dict[str, ReceptorNode]
    ports: dict[tuple[str, str], int]
    servers: dict[str, ExchangeServer]


def start_pair(
    mesh: InteropMesh, pki: PKI, variants: list[str]
) -> tuple[dict[str, ReceptorNode], dict[tuple[str, str], int], dict[str, ExchangeServer]]:
    servers = {name: ExchangeServer(os.urandom(3 * MIB)) for name in OTHER}
    ports = {(name, variant): free_port() for name in OTHER for variant in variants}
    try:
        g1 = mesh.gonode("g1", listener(), *proxy_items("g1", pki, servers, ports))
        p1 = mesh.py("p1", peer(g1.port()), *proxy_items("p1", pki, servers, ports))
        converged([g1, p1])
    except BaseException:
        for server in servers.values():
            server.close()
        raise
    return {"g1": g1, "p1": p1}, ports, servers


@pytest.fixture(scope="module")
def module_pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"), list(OUR_DAEMON), ["g1", "p1"])


@pytest.fixture(scope="module")
def pair(go: Path, module_pki: PKI) -> Iterator[Pair]:
    mesh = InteropMesh(go)
    try:
        nodes, ports, servers = start_pair(mesh, module_pki, VARIANTS)
        try:
            yield Pair(nodes, ports, servers)
        finally:
            for server in servers.values():
                server.close()
    finally:
        mesh.close()


# ------------------------------------------------------------------------------ connect


def connect_session(node: ReceptorNode, target: str, line: bytes) -> tuple[str, bytes]:
    """``connect <target> control`` on ``node``'s socket, then one command in the nested
    session; (the nested greeting, the rest of the reply)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(LONG)
        sock.connect(node.socket_path)
        reader = sock.makefile("rb")
        assert reader.readline() == f"Receptor Control, node {node.node_id}\n".encode()
        sock.sendall(f"connect {target} control\n".encode())
        assert reader.readline() == b"Connecting\n"
        greeting = reader.readline().decode()
        sock.sendall(line)
        sock.shutdown(socket.SHUT_WR)
        return greeting, reader.read()


@pytest.mark.parametrize("source", ["p1", "g1"])
def test_control_connect_gives_the_other_kinds_control_session(pair, source):
    target = OTHER[source]
    greeting, rest = connect_session(pair.nodes[source], target, b"ping " + source.encode() + b"\n")
    assert greeting == f"Receptor Control, node {target}\n"
    assert b'"Success":true' in rest and f'"From":"{source}"'.encode() in rest, rest


@pytest.mark.parametrize("source", ["p1", "g1"])
def test_receptorctl_connect_both_ways(pair, source):
    """Our receptorctl on either node's socket: ``connect <other> control`` pipes stdin to the
    other node's control service and its replies to stdout."""
    target = OTHER[source]
    out = ok(
        receptorctl(pair.nodes[source], "connect", target, "control", stdin=b"status\n")
    ).decode()
    greeting, _, body = out.partition("\n")
    assert greeting == f"Receptor Control, node {target}"
    status = json.loads(body)
    assert status["NodeID"] == target
    assert source in status["RoutingTable"]


# ------------------------------------------------------------------------------ proxies


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("entry", ["p1", "g1"])
def test_tcp_proxy_pair_moves_data_both_ways(pair, entry, variant):
    """A TCP client of ``entry``'s tcp-server reaches the test's server behind the other
    node's tcp-client; 3 MiB go each way at the same time."""
    exit_node = OTHER[entry]
    target = pair.servers[exit_node]
    payload = os.urandom(3 * MIB)
    before = len(target.received)
    received, digest = exchange(pair.ports[(entry, variant)], payload)
    assert sha(received) == sha(target.reply)
    assert digest.hex() == sha(payload)
    assert sha(target.received[before]) == sha(payload)


def test_many_proxy_connections_at_once(pair):
    """Eight connections through each direction's plain proxy, interleaved."""
    results: list[tuple[str, bool]] = []

    def one(entry: str) -> None:
        payload = os.urandom(256 * 1024)
        received, digest = exchange(pair.ports[(entry, "plain")], payload)
        good = received == pair.servers[OTHER[entry]].reply and digest.hex() == sha(payload)
        results.append((entry, good))

    threads = [threading.Thread(target=one, args=(e,)) for e in ("p1", "g1") * 8]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(LONG * 2)
    assert sorted(results) == sorted((e, True) for e in ("p1", "g1") * 8)


@pytest.mark.parametrize("entry", ["p1", "g1"])
def test_tcp_proxy_pair_with_client_certificates(mesh: InteropMesh, module_pki: PKI, entry):
    """The tcp-client service's tls-server requires client certificates: entry ``p1``: Go's
    service checks the certificate our tcp-server presents; entry ``g1``: ours checks Go's."""
    nodes, ports, servers = start_pair(mesh, module_pki, ["mtls"])
    try:
        payload = os.urandom(MIB)
        received, digest = exchange(ports[(entry, "mtls")], payload)
        assert sha(received) == sha(servers[OTHER[entry]].reply)
        assert digest.hex() == sha(payload)
        assert nodes[OTHER[entry]].status()["NodeID"] == OTHER[entry]
    finally:
        for server in servers.values():
            server.close()
