"""Mesh streams end to end: control ``connect`` between daemons, and bulk transfers over
in-process nodes joined by real TCP backends."""

import hashlib
import json
import os
import socket
import threading

import pytest

from receptor.netceptor import Conn, Netceptor

from ..unit.mesh.streamnet import chain
from .harness import Mesh, listener, peer, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def line_mesh():
    """Daemons n1 - n2 - n3 in a line, each with the default mesh control service."""
    mesh = Mesh()
    try:
        n1 = mesh.node("n1", listener())
        n2 = mesh.node("n2", peer(n1.port()), listener())
        n3 = mesh.node("n3", peer(n2.port(0)))
        for node in (n1, n3):
            try:
                wait_until(
                    lambda node=node: (
                        {("n1", "control"), ("n3", "control")}
                        <= {(a["NodeID"], a["Service"]) for a in node.status()["Advertisements"]}
                    ),
                    timeout=60,
                )
            except AssertionError:
                print(n1.log[-3000:], n2.log[-3000:], n3.log[-3000:], node.status())
                raise
        yield {"n1": n1, "n2": n2, "n3": n3}
    finally:
        mesh.close()


def test_connect_gives_a_nested_control_session(line_mesh):
    reply = line_mesh["n1"].session(b"connect n3 control\nstatus\n").decode()
    lines = reply.split("\n")
    assert lines[:3] == ["Receptor Control, node n1", "Connecting", "Receptor Control, node n3"]
    status = json.loads(lines[3])
    assert status["NodeID"] == "n3"
    assert status["RoutingTable"] == {"n1": "n2", "n2": "n2"}
    assert lines[4:] == [""]


def test_connect_json_form_and_nested_connect_back(line_mesh):
    request = b'{"command":"connect","node":"n3","service":"control"}\nconnect n1 control\nstatus\n'
    reply = line_mesh["n1"].session(request).decode().split("\n")
    assert reply[:5] == [
        "Receptor Control, node n1",
        "Connecting",
        "Receptor Control, node n3",
        "Connecting",
        "Receptor Control, node n1",
    ]
    assert json.loads(reply[5])["NodeID"] == "n1"


def test_connect_localhost(line_mesh):
    reply = line_mesh["n2"].session(b"connect localhost control\nping n3\n").decode()
    lines = reply.split("\n")
    assert lines[:3] == ["Receptor Control, node n2", "Connecting", "Receptor Control, node n2"]
    assert json.loads(lines[3])["From"] == "n3"


def test_connect_errors(line_mesh):
    n1 = line_mesh["n1"]
    assert n1.command("connect n3 nosvc") == "ERROR: context canceled"
    assert n1.command("connect n1 nosvc") == "ERROR: INTERNAL_ERROR (local): service unknown"
    assert n1.command("connect n9 control") == "ERROR: INTERNAL_ERROR (local): no route to node"
    assert n1.command("connect n3 control nope") == "ERROR: unknown TLS config nope"
    # The daemon is still fine.
    assert n1.status()["NodeID"] == "n1"


def test_connect_keeps_the_remote_direction_after_client_eof(line_mesh):
    """Client EOF only half-closes: the remote reply still arrives (control.md §3.4)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(line_mesh["n1"].socket_path)
        sock.sendall(b"connect n3 control\ntraceroute n1\n")
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    lines = data.decode().split("\n")
    assert lines[2] == "Receptor Control, node n3"
    assert set(json.loads(lines[3])) == {"0", "1", "2"}


def test_100_mib_each_way_over_three_hops(tmp_path):
    """A large random payload both ways at once, checked with SHA-256."""
    nodes: list[Netceptor] = []

    def make(name: str) -> Netceptor:
        node = Netceptor(name)
        nodes.append(node)
        return node

    try:
        a, _, _, d = chain(make, ["b0", "b1", "b2", "b3"])
        size = 100 * 1024 * 1024
        results: dict[str, str] = {}

        def pump(conn: Conn, name: str) -> None:
            digest = hashlib.sha256()
            block = os.urandom(1 << 20)
            sent = hashlib.sha256()

            def send() -> None:
                for i in range(size // len(block)):
                    piece = block[i % 7 :] + block[: i % 7]
                    sent.update(piece)
                    conn.sendall(piece)
                conn.shutdown(socket.SHUT_WR)

            writer = threading.Thread(target=send)
            writer.start()
            total = 0
            while data := conn.recv(1 << 20):
                digest.update(data)
                total += len(data)
            writer.join()
            results[name + "-sent"] = sent.hexdigest()
            results[name + "-received"] = digest.hexdigest()
            results[name + "-total"] = str(total)

        with d.listen("bulk") as bulk:
            conn_a = a.dial("b3", "bulk", timeout=10)
            conn_d = bulk.accept(timeout=10)
            threads = [
                threading.Thread(target=pump, args=(conn_a, "a")),
                threading.Thread(target=pump, args=(conn_d, "d")),
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(280)
            conn_a.close()
            conn_d.close()
        assert results["a-total"] == results["d-total"] == str(size)
        assert results["a-sent"] == results["d-received"]
        assert results["d-sent"] == results["a-received"]
    finally:
        for node in nodes:
            node.shutdown()


CERTS = os.path.join(os.path.dirname(__file__), "..", "data", "certs")


def test_connect_to_a_tls_control_service():
    """``connect node1 ctls cli``: ConnType 2 with the node-ID check (wire.md §12.3)."""
    mesh = Mesh()
    try:
        server_tls = {
            "name": "srv",
            "cert": os.path.join(CERTS, "node1.crt"),
            "key": os.path.join(CERTS, "node1.key"),
        }
        client_tls = {
            "name": "cli",
            "cert": os.path.join(CERTS, "node2.crt"),
            "key": os.path.join(CERTS, "node2.key"),
            "rootcas": os.path.join(CERTS, "ca.crt"),
        }
        node1 = mesh.node(
            "node1",
            {"tls-server": server_tls},
            {"control-service": {"service": "ctls", "tls": "srv"}},
            listener(),
        )
        node2 = mesh.node("node2", {"tls-client": client_tls}, peer(node1.port()))
        wait_until(
            lambda: (
                ("node1", "ctls")
                in {(a["NodeID"], a["Service"]) for a in node2.status()["Advertisements"]}
            ),
            timeout=30,
        )
        ads = {(a["NodeID"], a["Service"]): a for a in node2.status()["Advertisements"]}
        assert ads[("node1", "ctls")]["ConnType"] == 2
        reply = node2.session(b"connect node1 ctls cli\nstatus\n").decode().split("\n")
        assert reply[:3] == [
            "Receptor Control, node node2",
            "Connecting",
            "Receptor Control, node node1",
        ]
        assert json.loads(reply[3])["NodeID"] == "node1"
        # Without the tls-client: upstream's error for a TLS service.
        assert node2.command("connect node1 ctls") == (
            "ERROR: CRYPTO_ERROR 0x12a (local): insecure connection to secure service"
        )
        # With the tls-client toward a service without TLS: the chain check fails.
        assert node2.command("connect node1 control cli") == (
            "ERROR: CRYPTO_ERROR 0x12a (local): x509: certificate signed by unknown authority"
        )
    finally:
        mesh.close()
