"""The work manager in process: allocation, the registry, runners, discovery after restart.

Real command runners run here (they are the unit's processes); no daemon is involved.
"""

import os
import re
import socket
import sys
import threading

import pytest

from receptor.workceptor import CommandWorkType, Workceptor, WorkError
from receptor.workceptor._status import CANCELED, FAILED, PENDING, RUNNING, SUCCEEDED
from receptor.workceptor._unit import UnknownTypeUnit

from .process_tree import SCRIPT as TREE_SCRIPT
from .process_tree import Tree


@pytest.fixture
def managers(tmp_path):
    made: list[Workceptor] = []

    def make() -> Workceptor:
        manager = Workceptor("node1", str(tmp_path / "data"))
        manager.register(CommandWorkType("cat", "cat"))
        manager.register(CommandWorkType("sleep", "sleep", "30"))
        made.append(manager)
        return manager

    yield make
    for manager in made[-1:]:  # the earlier ones were stopped by the test (a "restart")
        for unit_id in manager.list_ids():
            try:
                manager.find(unit_id).release(force=True)
            except WorkError:
                pass
    for manager in made:
        manager.stop()


def _run(manager: Workceptor, work_type: str, stdin: bytes = b"", **params: str):
    unit = manager.allocate(work_type, params)
    with open(os.path.join(unit.dir, "stdin"), "wb") as handle:
        handle.write(stdin)
    unit.start()
    return unit


def _wait(unit, states, timeout=20.0):
    deadline = threading.Event()
    timer = threading.Timer(timeout, deadline.set)
    timer.start()
    try:
        while True:
            seen = unit.changes
            if unit.current().state in states:
                break
            assert not deadline.is_set(), unit.current()
            unit.wait_change(0.02, seen)
    finally:
        timer.cancel()
    return unit.current()


def test_ids_and_layout(managers):
    manager = managers()
    unit = manager.allocate("cat", {})
    assert re.fullmatch(r"[0-9A-Za-z]{8}", unit.id)
    assert unit.dir == os.path.join(manager.data_dir, unit.id)
    assert os.stat(unit.dir).st_mode & 0o777 == 0o700
    status = unit.current()
    assert (status.state, status.detail, status.extra_data) == (
        PENDING,
        "Unit Created",
        {"Pid": 0, "Params": ""},
    )
    assert len({manager.allocate("cat", {}).id for _ in range(50)}) == 50


def test_registry_rules(managers):
    manager = managers()
    with pytest.raises(WorkError, match=r"^work type cat already registered$"):
        manager.register(CommandWorkType("cat", "cat"))
    with pytest.raises(WorkError, match=r"^unknown work type nope$"):
        manager.allocate("nope", {})
    with pytest.raises(WorkError, match=r"^extra params provided but not allowed$"):
        manager.allocate("cat", {"params": "x"})
    manager.allocate("cat", {"params": ""})  # empty params are not "extra"


def test_run_stream_and_release(managers):
    manager = managers()
    payload = os.urandom(200_000)
    unit = _run(manager, "cat", payload)
    final = _wait(unit, (SUCCEEDED, FAILED))
    assert (final.state, final.detail, final.stdout_size, final.extra_data) == (
        SUCCEEDED,
        "exit status 0",
        len(payload),
        None,
    )
    ours, theirs = socket.socketpair()
    received = bytearray()
    reader = threading.Thread(target=lambda: received.extend(iter_recv(theirs)))
    reader.start()
    unit.stream_results(ours, 1000)
    ours.close()
    reader.join()
    theirs.close()
    assert bytes(received) == payload[1000:]
    unit.release(force=False)
    assert not os.path.exists(unit.dir)
    with pytest.raises(WorkError, match=f"^unknown work unit {unit.id}$"):
        manager.find(unit.id)


def iter_recv(sock):
    while chunk := sock.recv(65536):
        yield from chunk


def test_cancel_running(managers):
    manager = managers()
    unit = _run(manager, "sleep")
    running = _wait(unit, (RUNNING,))
    runner = running.extra_data["Pid"]
    unit.cancel()
    status = unit.current()
    assert (status.state, status.detail, status.extra_data) == (CANCELED, "Canceled", None)
    assert not _running(runner)


def _running(pid: int) -> bool:
    """Whether ``pid`` still runs: an exited runner may be a zombie for a moment, until the
    fork server (its parent) reaps it."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _tree_type() -> CommandWorkType:
    return CommandWorkType("tree", sys.executable, f"-I {TREE_SCRIPT}", allow_runtime_params=True)


@pytest.mark.parametrize("how", ["cancel", "release", "force-release"])
def test_cancel_and_release_end_the_whole_process_tree(managers, tmp_path, how):
    """The runner the fork server picks (C, or Python with RECEPTOR_NO_EXTENSIONS) ends the
    command's process group and the orphans it adopted: nothing of the unit runs on."""
    manager = managers()
    manager.register(_tree_type())
    pid_file = str(tmp_path / "pids")
    unit = _run(manager, "tree", params=pid_file)
    tree = Tree.wait_for(pid_file)
    try:
        _wait(unit, (RUNNING,))
        if how == "cancel":
            unit.cancel()
            status = unit.current()
            assert (status.state, status.detail, status.extra_data) == (CANCELED, "Canceled", None)
        else:
            unit.release(force=how == "force-release")
            assert not os.path.exists(unit.dir)
        assert tree.wait_gone() == []
    finally:
        tree.kill()


def test_cancel_after_a_restart_ends_the_whole_process_tree(managers, tmp_path):
    """A runner the daemon found again after a restart is not its child; it ends the tree
    all the same."""
    first = managers()
    first.register(_tree_type())
    pid_file = str(tmp_path / "pids")
    unit = _run(first, "tree", params=pid_file)
    tree = Tree.wait_for(pid_file)
    try:
        _wait(unit, (RUNNING,))
        first.stop()
        second = managers()
        second.register(_tree_type())
        second.find(unit.id).cancel()
        assert second.find(unit.id).current().state == CANCELED
        assert tree.wait_gone() == []
    finally:
        tree.kill()


def test_restart_discovery(managers, tmp_path):
    first = managers()
    running = _run(first, "sleep")
    _wait(running, (RUNNING,))
    done = _run(first, "cat", b"x")
    _wait(done, (SUCCEEDED,))
    waiting = first.allocate("cat", {})
    first.stop()
    second = managers()
    assert set(second.list_ids()) == {running.id, done.id, waiting.id}
    assert second.find(running.id).current().state == RUNNING
    assert second.find(done.id).current().detail == "exit status 0"
    assert second.find(waiting.id).current().detail == "Pending at restart"
    again = second.find(running.id)
    again.cancel()
    assert again.current().state == CANCELED


def test_unknown_type_placeholder_then_registration(tmp_path):
    first = Workceptor("node1", str(tmp_path / "data"))
    first.register(CommandWorkType("later", "cat"))
    unit = _run(first, "later", b"y")
    _wait(unit, (SUCCEEDED,))
    first.stop()
    second = Workceptor("node1", str(tmp_path / "data"))
    try:
        placeholder = second.find(unit.id)
        assert isinstance(placeholder, UnknownTypeUnit)
        assert placeholder.api_status()["ExtraData"] == "Unknown WorkType"
        placeholder.cancel()  # a no-op
        second.register(CommandWorkType("later", "cat"))
        adopted = second.find(unit.id)
        assert not isinstance(adopted, UnknownTypeUnit)
        assert adopted.api_status()["ExtraData"] is None
        adopted.release(force=False)
    finally:
        second.stop()


def test_lookup_refuses_paths(managers):
    manager = managers()
    for bad in ("", ".", "..", "../node1", "a/b"):
        with pytest.raises(WorkError):
            manager.find(bad)


def test_remote_submit_hook_is_empty_until_remote_work_exists(managers):
    assert managers().remote_submit is None
