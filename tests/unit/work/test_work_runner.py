"""The command runner, run as the daemon runs it: a real process in its own session."""

import os
import signal
import subprocess
import sys
import time

import pytest

from receptor.workceptor._launcher import RUNNER_SCRIPT
from receptor.workceptor._runner import exit_detail, look_path
from receptor.workceptor._status import FAILED, RUNNING, SUCCEEDED, Status, StatusFile

from .process_tree import SCRIPT, Tree, parent


@pytest.mark.parametrize(
    "raw,expected",
    [
        (0, (SUCCEEDED, "exit status 0")),
        (3 << 8, (FAILED, "exit status 3")),
        (255 << 8, (FAILED, "exit status 255")),
        (9, (FAILED, "signal: killed")),
        (15, (FAILED, "signal: terminated")),
        (2, (FAILED, "signal: interrupt")),
        (11 | 0x80, (FAILED, "signal: segmentation fault (core dumped)")),
    ],
)
def test_exit_detail(raw, expected):
    assert exit_detail(raw) == expected


def test_look_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    (tmp_path / "tool").write_text("#!/bin/sh\n")
    (tmp_path / "tool").chmod(0o644)  # not executable: skipped, as Go's LookPath does
    with pytest.raises(LookupError, match=r'^exec: "tool": executable file not found in'):
        look_path("tool")
    (tmp_path / "tool").chmod(0o755)
    assert look_path("tool") == str(tmp_path / "tool")
    assert look_path("./relative/x") == "./relative/x"
    assert look_path("sh").endswith("/sh")


def _unit(tmp_path, stdin: bytes = b"") -> StatusFile:
    status_file = StatusFile(str(tmp_path))

    def init(s: Status) -> None:
        s.work_type, s.extra_data = "t", {"Pid": 1, "Params": ""}

    status_file.update(init)
    (tmp_path / "stdin").write_bytes(stdin)
    return status_file


def _runner(tmp_path, command: str, params: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-I", "-S", RUNNER_SCRIPT, str(tmp_path), command, params, "info"],
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_runner_runs_the_command(tmp_path):
    status_file = _unit(tmp_path, b"in\n")
    proc = _runner(tmp_path, "sh", '-c "cat; echo err >&2; exit 4"')
    log, _ = proc.communicate(timeout=30)
    assert proc.returncode == 4, log
    assert (tmp_path / "stdout").read_bytes() == b"in\nerr\n"
    assert status_file.read() == Status(FAILED, "exit status 4", 7, "t", {"Pid": 1, "Params": ""})


def test_runner_sigint_kills_the_command(tmp_path):
    status_file = _unit(tmp_path)
    proc = _runner(tmp_path, "sleep", "30")
    deadline = time.monotonic() + 15
    while status_file.read().state != RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    command_pid = int(status_file.read().detail.removeprefix("Running: PID "))
    assert os.getsid(command_pid) == proc.pid
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    final = status_file.read()
    assert (final.state, final.detail) == (FAILED, "Killed")


def test_runner_unsplittable_params_create_no_stdout(tmp_path):
    status_file = _unit(tmp_path)
    proc = _runner(tmp_path, "echo", "'open")
    proc.communicate(timeout=30)
    assert status_file.read().detail == "EOF found when expecting closing quote"
    assert not (tmp_path / "stdout").exists()


def test_runner_stop_ends_the_whole_process_tree(tmp_path):
    """The command leads its own process group, the runner adopts the command's orphans,
    and a stop leaves none of them running (tests/unit/work/process_tree.py)."""
    status_file = _unit(tmp_path)
    pid_file = str(tmp_path / "pids")
    proc = _runner(tmp_path, sys.executable, f"-I {SCRIPT} {pid_file}")
    tree = None
    try:
        tree = Tree.wait_for(pid_file)
        command = tree.pid("command")
        assert os.getpgid(command) == command != os.getpgid(proc.pid)
        assert os.getsid(command) == proc.pid
        assert parent(tree.pid("daemon")) == proc.pid  # not init: the runner is the subreaper
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
        assert tree.wait_gone() == []
        final = status_file.read()
        assert (final.state, final.detail) == (FAILED, "Killed")
    finally:
        if tree is not None:
            tree.kill()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_runner_leaves_the_background_of_a_command_that_exits(tmp_path):
    """Only a stop ends the tree: a command that exits by itself leaves its background
    processes running, as upstream does."""
    status_file = _unit(tmp_path)
    pid_file = str(tmp_path / "pids")
    proc = _runner(tmp_path, sys.executable, f"-I {SCRIPT} {pid_file} exit")
    tree = None
    try:
        proc.communicate(timeout=60)
        tree = Tree.wait_for(pid_file)
        assert status_file.read().detail == "exit status 0"
        assert tree.wait_gone(("command",)) == []
        assert sorted(tree.alive()) == ["daemon", "daemon-child", "deaf", "plain"]
    finally:
        if tree is not None:
            tree.kill()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
