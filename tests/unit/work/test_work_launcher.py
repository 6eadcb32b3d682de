"""Starting runners: the fork server, its restart, and the direct-spawn fallback."""

import os
import select
import signal

import pytest

from receptor.workceptor._launcher import RunnerLauncher
from receptor.workceptor._status import SUCCEEDED, StatusFile


def _unit(tmp_path, name: str) -> str:
    unit_dir = tmp_path / name
    unit_dir.mkdir()
    (unit_dir / "stdin").write_bytes(b"data")
    StatusFile(str(unit_dir)).update(lambda s: None)
    return str(unit_dir)


def _wait_exit(pidfd: int) -> None:
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    assert poller.poll(20_000), "runner did not exit"
    os.close(pidfd)


@pytest.fixture
def launcher():
    made = RunnerLauncher()
    yield made
    made.stop()


def _run_one(launcher: RunnerLauncher, unit_dir: str) -> int:
    pid, pidfd = launcher.launch(unit_dir, "cat", "", "error")
    _wait_exit(pidfd)
    status = StatusFile(unit_dir).read()
    assert (status.state, status.stdout_size) == (SUCCEEDED, 4)
    with open(os.path.join(unit_dir, "stdout"), "rb") as handle:
        assert handle.read() == b"data"
    return pid


def test_fork_server_runs_units(launcher, tmp_path):
    pids = {_run_one(launcher, _unit(tmp_path, f"u{i}")) for i in range(5)}
    assert len(pids) == 5
    assert launcher._server is not None and launcher._server.poll() is None


def test_fork_server_is_restarted(launcher, tmp_path):
    _run_one(launcher, _unit(tmp_path, "a"))
    assert launcher._server is not None
    launcher._server.send_signal(signal.SIGKILL)
    launcher._server.wait()
    _run_one(launcher, _unit(tmp_path, "b"))
    assert launcher._server is not None and launcher._server.poll() is None


def test_direct_spawn_fallback(launcher, tmp_path):
    launcher._broken = True
    pid = _run_one(launcher, _unit(tmp_path, "c"))
    os.waitpid(pid, 0)  # our own child in this mode
    assert launcher._server is None


def test_runner_is_named_before_its_pid_is_known(launcher, tmp_path):
    unit_dir = _unit(tmp_path, "named0001")
    pid, pidfd = launcher.launch(unit_dir, "sleep", "30", "error")
    with open(f"/proc/{pid}/comm") as comm:
        assert comm.read().strip() == "rcpt-named0001"
    assert os.getsid(pid) == pid
    os.kill(pid, signal.SIGINT)
    _wait_exit(pidfd)
    assert StatusFile(unit_dir).read().detail == "Killed"
