"""Fixtures that run every core test against each available implementation (see ``twins``)."""

from types import ModuleType

import pytest

from .twins import TWINS, load_twin


# Module-scoped: the twins are stateless modules, and hypothesis refuses function-scoped
# fixtures under @given.
@pytest.fixture(scope="module", params=TWINS)
def twin(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def highwayhash(twin: str) -> ModuleType:
    return load_twin("highwayhash", twin)


@pytest.fixture(scope="module")
def codec(twin: str) -> ModuleType:
    return load_twin("codec", twin)


@pytest.fixture(scope="module")
def routing(twin: str) -> ModuleType:
    return load_twin("routing", twin)
