"""Fixtures for the integration tests: see harness.py for the process handling."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..conftest import REPO
from .harness import Mesh

ANSIBLE_RUNNER_VERSION = "2.4.3"
ANSIBLE_CORE_VERSION = "2.19.14"


@pytest.fixture
def mesh() -> Iterator[Mesh]:
    m = Mesh()
    try:
        yield m
    finally:
        m.close()


@pytest.fixture(scope="session")
def ansible_venv() -> Path:
    """The ``bin`` directory of a virtualenv with ansible-runner and ansible-core from PyPI.

    Created on first use under ``.cache/`` (or ``$RECEPTOR_ANSIBLE_VENV``) and reused after;
    PyPI must be reachable the first time. Never skipped: a missing runner is an error.
    """
    venv = Path(os.environ.get("RECEPTOR_ANSIBLE_VENV", REPO / ".cache" / "ansible-runner"))
    wanted = {"ansible-runner": ANSIBLE_RUNNER_VERSION, "ansible-core": ANSIBLE_CORE_VERSION}
    if not (venv / "bin" / "ansible-runner").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [
                str(venv / "bin" / "pip"),
                "install",
                "-q",
                *(f"{name}=={version}" for name, version in wanted.items()),
            ],
            check=True,
        )
    versions = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import importlib.metadata as m, sys;"
            " print(*(m.version(name) for name in sys.argv[1:]))",
            *wanted,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert dict(zip(wanted, versions, strict=True)) == wanted
    return venv / "bin"
