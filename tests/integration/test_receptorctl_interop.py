"""Both receptorctl clients against our daemon: upstream's 1.6.9 from PyPI, unchanged, and ours.

The upstream client comes from the ``upstream_receptorctl`` fixture (tests/conftest.py),
which installs it from PyPI into a virtualenv of its own. Both clients must print the same
thing, apart from the round-trip times and the upstream client's warning that its version
differs from the daemon's.
"""

import os
import re
import subprocess
import sys

import pytest

from receptor import __version__

from .harness import listener, peer, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.interop]

UPSTREAM_VERSION = "1.6.9"
VERSION_WARNING = (
    "Warning: receptorctl and receptor are different versions, they may not be compatible"
)


@pytest.fixture(scope="module")
def two_nodes():
    from .harness import Mesh

    mesh = Mesh()
    try:
        n1 = mesh.node("n1", listener())
        n2 = mesh.node("n2", peer(n1.port()))
        wait_until(lambda: "n2" in n1.routes() and "n1" in n2.routes())
        wait_until(lambda: len(n1.status()["Advertisements"]) == 2)
        yield n1, n2
    finally:
        mesh.close()


def run(cmd: list[str], socket_path: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, RECEPTORCTL_SOCKET=socket_path)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)


def ours() -> list[str]:
    return [sys.executable, "-m", "receptorctl"]


def normalise(text: str) -> str:
    text = re.sub(r"in [0-9.]+(ns|µs|ms|s)\b", "in T", text)
    text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", "DATE", text)
    return re.sub(r'"Time": "[^"]+"', '"Time": "DATE"', text)


@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["status", "--json"],
        ["ping", "n2", "--count", "2", "--delay", "0.1"],
        ["traceroute", "n2"],
        ["version"],
    ],
    ids=lambda a: " ".join(a),
)
def test_upstream_and_our_receptorctl_agree(upstream_receptorctl, two_nodes, args):
    n1, _ = two_nodes
    theirs = run([str(upstream_receptorctl), *args], n1.socket_path)
    mine = run([*ours(), *args], n1.socket_path)
    assert theirs.returncode == 0, theirs.stderr
    assert mine.returncode == 0, mine.stderr
    assert VERSION_WARNING in theirs.stderr
    assert VERSION_WARNING not in mine.stderr
    if args == ["version"]:
        assert theirs.stdout == f"receptorctl  {UPSTREAM_VERSION}\nreceptor     {__version__}\n"
        assert mine.stdout == f"receptorctl  {__version__}\nreceptor     {__version__}\n"
        return
    assert normalise(mine.stdout) == normalise(theirs.stdout)


def test_upstream_status_table(upstream_receptorctl, two_nodes):
    n1, _ = two_nodes
    out = run([str(upstream_receptorctl), "status"], n1.socket_path).stdout
    assert out.startswith(f"Node ID: n1\nVersion: {__version__}\nSystem CPU Count: ")
    assert "\nConnection   Cost\nn2           1\n" in out
    assert "\nKnown Node   Known Connections\nn1           n2: 1 \nn2           n1: 1 \n" in out
    assert "\nRoute        Via\nn2           n2\n" in out
    assert re.search(
        r"\nn1           control   Stream     DATE   \{'type': 'Control Service'\}", normalise(out)
    )


def test_upstream_ping_and_traceroute_output(upstream_receptorctl, two_nodes):
    n1, _ = two_nodes
    ping = run(
        [str(upstream_receptorctl), "ping", "n2", "--count", "3", "--delay", "0.1"], n1.socket_path
    )
    assert re.fullmatch(r"(Reply from n2 in [0-9.]+(µs|ms)\n){3}", ping.stdout), ping.stdout
    trace = run([str(upstream_receptorctl), "traceroute", "n2"], n1.socket_path)
    assert re.fullmatch(r"0: n1 in [0-9.]+(ns|µs|ms)\n1: n2 in [0-9.]+(µs|ms)\n", trace.stdout)
    failed = run([str(upstream_receptorctl), "ping", "nowhere", "--count", "1"], n1.socket_path)
    assert failed.returncode == 2
    assert "ERROR: no route to node" in failed.stderr


def test_upstream_reload(upstream_receptorctl, mesh):
    node = mesh.node("solo", listener())
    done = run([str(upstream_receptorctl), "reload"], node.socket_path)
    assert done.returncode == 0 and done.stdout == "Reload successful\n"
    node.write_config([*node.items, {"trace": None}])
    refused = run([str(upstream_receptorctl), "reload"], node.socket_path)
    assert refused.returncode == 3
    assert "non-reloadable config action 'trace' was modified or added" in refused.stderr
    mine = run([*ours(), "reload"], node.socket_path)
    assert (mine.returncode, mine.stdout) == (refused.returncode, refused.stdout)
