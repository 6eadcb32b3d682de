"""Cancel and release end a unit's whole process tree, through a real daemon.

The unit runs tests/unit/work/process_tree.py, which leaves children in its process group
(one ignoring SIGINT) and a daemon in a session of its own. The daemon's fork server starts
the runner this test run selects: the C one, or the Python one under
``RECEPTOR_NO_EXTENSIONS=1`` (tox ``py3-pure``); each test checks which one it got.
"""

import importlib.util
import os
import re
import sys
from pathlib import Path

import pytest

from ..unit.work.process_tree import SCRIPT, Tree, parent
from .harness import Mesh, ReceptorNode, free_port, listener, peer, wait_until
from .test_remote_work import submit_remote
from .test_work import release_all, status, submit, unit_dir, wait_done, wait_state

pytestmark = pytest.mark.integration

TREE_TYPE = {
    "worktype": "tree",
    "command": sys.executable,
    "params": f"-I {SCRIPT}",
    "allowruntimeparams": True,
}


def expected_runner() -> str:
    if os.environ.get("RECEPTOR_NO_EXTENSIONS", "") not in ("", "0"):
        return "python"
    built = importlib.util.find_spec("receptor.workceptor._runner_c") is not None
    return "c" if built else "python"


def runner_kind(pid: int) -> str:
    """The C runner keeps SIGINT blocked (it reads it from a signalfd); the Python runner
    takes it with a handler."""
    text = Path(f"/proc/{pid}/status").read_text()
    blocked = int(re.search(r"SigBlk:\s*([0-9a-f]+)", text).group(1), 16)  # type: ignore[union-attr]
    return "c" if blocked & (1 << 1) else "python"


@pytest.fixture
def trees():
    """The trees a test started; whatever still runs of them is killed after it."""
    started: list[Tree] = []
    try:
        yield started
    finally:
        for tree in started:
            tree.kill()


@pytest.fixture
def tree_node(mesh: Mesh):
    node = mesh.node(
        "w1", {"local-only": None}, {"work-command": dict(TREE_TYPE)}, log_level="info"
    )
    try:
        yield node
    finally:
        release_all(node)


def start_tree(node: ReceptorNode, pid_file: Path, trees: list[Tree]) -> tuple[str, Tree]:
    """Submit a tree unit; (unit ID, its tree) once it runs."""
    unit_id = submit(node, "tree", params=str(pid_file))
    tree = Tree.wait_for(str(pid_file))
    trees.append(tree)
    running = wait_state(node, unit_id, (1,))
    runner = running["ExtraData"]["Pid"]
    assert runner_kind(runner) == expected_runner()
    command = tree.pid("command")
    assert running["Detail"] == f"Running: PID {command}"
    assert os.getpgid(command) == command != os.getpgid(runner)  # a group of its own
    assert parent(tree.pid("daemon")) == runner  # the runner adopted the orphan
    return unit_id, tree


def test_cancel_ends_the_whole_process_tree(tree_node, trees, tmp_path):
    unit_id, tree = start_tree(tree_node, tmp_path / "pids", trees)
    assert tree_node.command(f"work cancel {unit_id}") == {"cancelled": unit_id}
    final = status(tree_node, unit_id)
    assert (final["State"], final["Detail"], final["ExtraData"]) == (4, "Canceled", None)
    assert tree.wait_gone() == []


@pytest.mark.parametrize("verb", ["release", "force-release"])
def test_release_of_a_running_unit_ends_the_whole_process_tree(tree_node, trees, tmp_path, verb):
    unit_id, tree = start_tree(tree_node, tmp_path / "pids", trees)
    assert tree_node.command(f"work {verb} {unit_id}") == {"released": unit_id}
    assert not unit_dir(tree_node, unit_id).exists()
    assert tree.wait_gone() == []


def test_a_command_that_exits_leaves_its_background_running(tree_node, trees, tmp_path):
    """As upstream: only cancel and release end the tree."""
    unit_id = submit(tree_node, "tree", params=f"{tmp_path / 'pids'} exit")
    trees.append(tree := Tree.wait_for(str(tmp_path / "pids")))
    final = wait_done(tree_node, unit_id)
    assert (final["State"], final["Detail"]) == (2, "exit status 0")
    assert tree.wait_gone(("command",)) == []
    assert sorted(tree.alive()) == ["daemon", "daemon-child", "deaf", "plain"]


def test_cancel_of_a_remote_unit_ends_the_tree_on_the_target(mesh, trees, tmp_path):
    n1 = mesh.node("n1", listener(free_port()))
    n2 = mesh.node("n2", peer(n1.port()), {"work-command": dict(TREE_TYPE)})
    try:
        wait_until(lambda: "n2" in n1.routes() and "n1" in n2.routes())
        unit_id, result = submit_remote(n1, "n2", "tree", params=str(tmp_path / "pids"))
        assert result == "Job Started"
        trees.append(tree := Tree.wait_for(str(tmp_path / "pids")))
        assert n1.command(f"work cancel {unit_id}") == {"cancelled": unit_id}
        assert tree.wait_gone() == []
    finally:
        release_all(n1)
        release_all(n2)
