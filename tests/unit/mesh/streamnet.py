"""In-process mesh nodes joined over real loopback TCP backends, for the stream tests."""

import itertools
import time

from receptor.backends.tcp import TCPDialer, TCPListener
from receptor.netceptor import BackendInfo, Netceptor


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def chain(make_node, names: list[str]) -> list[Netceptor]:
    """Nodes n0 - n1 - ... linked in a line over TCP; returns once all routes are known."""
    nodes = [make_node(name) for name in names]
    for left, right in itertools.pairwise(nodes):
        listener = TCPListener("127.0.0.1", 0)
        left.add_backend(listener, BackendInfo())
        right.add_backend(TCPDialer(f"127.0.0.1:{listener.port}", redial=False), BackendInfo())
    for node in nodes:
        others = {n.node_id for n in nodes} - {node.node_id}
        wait_for(lambda node=node, others=others: others <= set(node.routes()))
    return nodes
