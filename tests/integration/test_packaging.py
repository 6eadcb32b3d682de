"""The shipped configurations parse, and the README's example node starts and answers."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from receptor.config import parse_command_line

from .harness import wait_until

pytestmark = pytest.mark.integration

PACKAGING = Path(__file__).resolve().parents[2] / "packaging"


@pytest.mark.parametrize("name", ["receptor.conf", "example.yml"])
def test_shipped_configs_parse(name):
    items = parse_command_line(["-c", str(PACKAGING / name)]).items
    assert {"node", "log-level", "tcp-listener", "control-service"} <= {
        item.entity.name for item in items
    }


def test_example_node_starts(mesh):
    items = yaml.safe_load((PACKAGING / "example.yml").read_text())
    for item in items:
        if "tcp-listener" in item:
            item["tcp-listener"]["port"] = 0
        if "control-service" in item:
            item["control-service"]["filename"] = str(mesh.workdir / "example.sock")
        if "node" in item:
            item["node"]["datadir"] = str(mesh.workdir / "data")
    config = mesh.workdir / "example.yml"
    config.write_text(yaml.safe_dump(items))
    process = subprocess.Popen(
        [sys.executable, "-m", "receptor", "-c", str(config)], stdout=subprocess.DEVNULL
    )
    try:
        sock = mesh.workdir / "example.sock"
        wait_until(sock.exists)
        status = subprocess.run(
            [sys.executable, "-m", "receptorctl", "--socket", str(sock), "status"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert status.returncode == 0, status.stderr
        assert status.stdout.startswith("Node ID: example\n")
        # The README's work example.
        submit = ["work", "submit", "cat", "-p", "-", "-f", "--rm"]
        work = subprocess.run(
            [sys.executable, "-m", "receptorctl", "--socket", str(sock), *submit],
            input="hello\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert work.returncode == 0, work.stderr
        assert work.stdout.startswith("hello\n")
    finally:
        process.kill()
        process.wait()
