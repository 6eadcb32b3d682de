"""What an idle daemon loads: the heavy libraries wait until something needs them."""

import pytest

from .harness import Mesh, free_port, listener, peer, wait_until

pytestmark = pytest.mark.integration

HEAVY = ("qh3", "cryptography", "jwt")


def _loaded(pid: int) -> set[str]:
    with open(f"/proc/{pid}/maps") as handle:
        maps = handle.read()
    return {name for name in HEAVY if f"/{name}/" in maps or f"/{name}." in maps}


def test_an_idle_node_loads_no_quic_tls_or_jwt_until_a_stream_needs_them(mesh: Mesh):
    port = free_port()
    a = mesh.node("a", listener(port))
    b = mesh.node("b", peer(port))
    wait_until(lambda: "b" in a.routes() and "a" in b.routes())
    for node in (a, b):
        assert node.process is not None
        # Both advertise their control service, and neither has loaded QUIC or crypto.
        assert _loaded(node.process.pid) == set()
    # The first mesh stream (a nested control session) brings QUIC and its certificate.
    reply = a.session(b"connect b control\n", timeout=30)
    assert b"Receptor Control, node b" in reply
    assert {"qh3", "cryptography"} <= _loaded(a.process.pid)
    assert {"qh3", "cryptography"} <= _loaded(b.process.pid)
