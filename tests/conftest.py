"""Fixtures shared by every test package."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UPSTREAM_RECEPTORCTL_VERSION = "1.6.9"


@pytest.fixture(scope="session")
def upstream_receptorctl() -> Path:
    """The upstream ``receptorctl`` 1.6.9 from PyPI, in a virtualenv of its own.

    Created on first use under ``.cache/`` (or ``$RECEPTOR_UPSTREAM_VENV``) and reused after;
    PyPI must be reachable the first time. Never skipped: a missing client is an error.
    """
    venv = Path(os.environ.get("RECEPTOR_UPSTREAM_VENV", REPO / ".cache" / "upstream-receptorctl"))
    exe = venv / "bin" / "receptorctl"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [
                str(venv / "bin" / "pip"),
                "install",
                "-q",
                f"receptorctl=={UPSTREAM_RECEPTORCTL_VERSION}",
            ],
            check=True,
        )
    version = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import importlib.metadata as m; print(m.version('receptorctl'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert version == UPSTREAM_RECEPTORCTL_VERSION
    return exe
