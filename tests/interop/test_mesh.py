"""Routing, ping and traceroute in a mesh of Go nodes and ours.

One line of seven nodes alternating between the kinds, with every backend in both
directions between a Go node and one of ours::

    p1 -tcp-> g1 -tcp-> p2 <-udp- g2 <-udp- p3 <-ws- g3 <-ws- p4

(``a -x-> b``: ``a`` dials ``b``'s ``x`` listener). It contains py—go—py and go—py—go
chains; the ends are six hops apart with every hop changing kind.
"""

import json
from collections.abc import Iterator

import pytest

from ..integration.harness import ReceptorNode, listener, peer
from .harness import (
    InteropMesh,
    converged,
    ok,
    parse_ping,
    receptorctl,
    udp_listener,
    udp_peer,
    udp_port,
    ws_listener,
    ws_peer,
    ws_port,
)

pytestmark = pytest.mark.go_interop

ORDER = ["p1", "g1", "p2", "g2", "p3", "g3", "p4"]
#: Each node's neighbours in the line.
NEIGHBOURS = {
    name: {ORDER[i] for i in (index - 1, index + 1) if 0 <= i < len(ORDER)}
    for index, name in enumerate(ORDER)
}


def path(source: str, target: str) -> list[str]:
    """The nodes from ``source`` to ``target`` along the line, both included."""
    start, end = ORDER.index(source), ORDER.index(target)
    if start <= end:
        return ORDER[start : end + 1]
    return ORDER[end : start + 1][::-1]


@pytest.fixture(scope="module")
def line(go) -> Iterator[dict[str, ReceptorNode]]:
    mesh = InteropMesh(go)
    try:
        g1 = mesh.gonode("g1", listener())
        p2 = mesh.py("p2", peer(g1.port()), udp_listener())
        g2 = mesh.gonode("g2", udp_peer(udp_port(p2)), udp_listener())
        p3 = mesh.py("p3", udp_peer(udp_port(g2)), ws_listener())
        g3 = mesh.gonode("g3", ws_peer(ws_port(p3)), ws_listener())
        p4 = mesh.py("p4", ws_peer(ws_port(g3)))
        # g1 also dials p2 (over its own listener) and p1 dials g1.
        p1 = mesh.py("p1", peer(g1.port()))
        nodes = {n.node_id: n for n in (p1, g1, p2, g2, p3, g3, p4)}
        converged(list(nodes.values()))
        yield nodes
    finally:
        mesh.close()


def test_every_node_routes_to_every_other(line):
    for name, node in line.items():
        status = node.status()
        assert status["NodeID"] == name
        assert set(status["RoutingTable"]) == set(ORDER) - {name}, (name, status)
        assert {c["NodeID"] for c in status["Connections"]} == NEIGHBOURS[name], (name, status)
        # The whole line is known: each node's connection costs name its neighbours.
        costs = status["KnownConnectionCosts"]
        assert set(costs) == set(ORDER), (name, costs)
        for other in ORDER:
            assert set(costs[other]) == NEIGHBOURS[other], (name, other, costs)
        # Next hops along the line.
        for other in set(ORDER) - {name}:
            assert status["RoutingTable"][other] == path(name, other)[1], (name, other)


@pytest.mark.parametrize("source", ORDER)
def test_ping_from_each_node_to_both_ends(line, source):
    for target in ("p1", "p4", "g1", "g3"):
        if target == source:
            continue
        reply = line[source].command(f"ping {target}")
        assert reply["Success"] is True and reply["From"] == target, (source, target, reply)


@pytest.mark.parametrize(("source", "target"), [("p1", "p4"), ("p4", "p1"), ("g1", "g3")])
def test_traceroute_through_every_hop(line, source, target):
    trace = line[source].command(f"traceroute {target}")
    hops = [trace[str(k)] for k in range(len(trace))]
    assert all("Error" not in hop for hop in hops), trace
    assert [hop["From"] for hop in hops] == path(source, target)


@pytest.mark.parametrize("via", ["g1", "p1", "g3", "p4"])
def test_our_receptorctl_on_either_kind_of_node(line, via):
    node = line[via]
    far = "p4" if via in ("p1", "g1") else "p1"
    assert (
        parse_ping(ok(receptorctl(node, "ping", "--count", "2", "--delay", "0.2", far)).decode())
        == far
    )
    trace = ok(receptorctl(node, "traceroute", far)).decode()
    hops = [row.split(": ", 1)[1].split(" ")[0] for row in trace.splitlines() if ": " in row]
    assert hops == path(via, far), trace
    status = json.loads(ok(receptorctl(node, "status", "--json")))
    assert set(status["RoutingTable"]) == set(ORDER) - {via}
    assert ok(receptorctl(node, "status")).decode().startswith(f"Node ID: {via}\n")
