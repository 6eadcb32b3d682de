"""The package tests build and install distribution packages: only ``tox -e package`` runs them.

They need root (an overlay of the machine in a mount namespace), the Debian build and lint
tools (``packaging/install-tools``) and a few minutes, so a plain ``pytest`` does not collect
them (``--ignore`` in pyproject.toml); ``tox -e package`` names this folder explicitly.
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def debs() -> Path:
    """The Debian packages built from this tree by packaging/build-deb."""
    if os.geteuid() != 0:
        pytest.fail("the package tests need root (tox -e package runs as root in CI)")
    out = Path(tempfile.mkdtemp(prefix="receptor-debs", dir="/tmp"))
    try:
        done = subprocess.run(
            [str(REPO / "packaging" / "build-deb"), str(out)],
            capture_output=True,
            text=True,
            timeout=1200,
        )
        assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-5000:]
        yield out
    finally:
        shutil.rmtree(out, ignore_errors=True)
