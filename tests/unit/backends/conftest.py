from collections.abc import Callable, Iterator

import pytest

from receptor.netceptor import Backend, BackendInfo, Netceptor


@pytest.fixture
def make_node() -> Iterator[Callable[..., Netceptor]]:
    """In-process mesh nodes, shut down (with their backends) after the test."""
    nodes: list[Netceptor] = []

    def make(node_id: str, *backends: Backend, **kwargs) -> Netceptor:
        node = Netceptor(node_id, **kwargs)
        nodes.append(node)
        for backend in backends:
            node.add_backend(backend, BackendInfo())
        return node

    yield make
    for node in nodes:
        node.shutdown()
