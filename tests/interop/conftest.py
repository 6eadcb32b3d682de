"""Live interop with the upstream Go daemon (tox -e interop).

Run only on request: the default test run ignores this directory (pyproject.toml ``addopts``),
and the ``interop`` tox environment runs it with ``$RECEPTOR_GO`` naming the upstream binary.
A missing or non-executable binary stops the run with an error; nothing here is skipped.
"""

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import InteropMesh, go_binary

GO_VERSION = "1.4.9"


def pytest_configure(config: pytest.Config) -> None:
    try:
        binary = go_binary()
    except RuntimeError as error:
        raise pytest.UsageError(str(error)) from None
    done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60)
    if done.returncode != 0 or done.stdout.strip() != GO_VERSION:
        raise pytest.UsageError(
            f"{binary} --version printed {done.stdout.strip()!r} (status {done.returncode}),"
            f" expected {GO_VERSION}"
        )


@pytest.fixture(scope="session")
def go() -> Path:
    return go_binary()


@pytest.fixture
def mesh(go: Path) -> Iterator[InteropMesh]:
    m = InteropMesh(go)
    try:
        yield m
    finally:
        m.close()
