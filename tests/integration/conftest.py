"""Fixtures for the integration tests: see harness.py for the process handling."""

from collections.abc import Iterator

import pytest

from .harness import Mesh


@pytest.fixture
def mesh() -> Iterator[Mesh]:
    m = Mesh()
    try:
        yield m
    finally:
        m.close()
