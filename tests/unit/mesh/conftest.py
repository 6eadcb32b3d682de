import pytest

from receptor.netceptor import Netceptor


@pytest.fixture
def make_node():
    """Create Netceptor instances that are shut down after the test."""
    nodes: list[Netceptor] = []

    def make(node_id: str, **kwargs) -> Netceptor:
        node = Netceptor(node_id, **kwargs)
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.shutdown()
