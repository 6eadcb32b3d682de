"""The C runner (``_runner_c``) and the Python runner (``_runner.py``) behave the same.

Both are started the real way, through the fork server, on the same kinds of units; the
status records must match byte for byte (PIDs aside), and so must the output.
"""

import importlib.util
import json
import os
import re
import select
import signal
import sys
import time

import pytest

from receptor.workceptor._launcher import RunnerLauncher
from receptor.workceptor._status import RUNNING, StatusFile

from .process_tree import SCRIPT as TREE_SCRIPT
from .process_tree import Tree, parent

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("receptor.workceptor._runner_c") is None,
    reason="the C runner is not built here (RECEPTOR_NO_EXTENSIONS at build time)",
)

RUNNERS = ["c", "python"]


@pytest.fixture
def launchers(monkeypatch):
    """A fork server per runner kind (the fork server picks its runner at start-up)."""
    made = {}
    for kind in RUNNERS:
        if kind == "c":
            monkeypatch.delenv("RECEPTOR_NO_EXTENSIONS", raising=False)
        else:
            monkeypatch.setenv("RECEPTOR_NO_EXTENSIONS", "1")
        launcher = RunnerLauncher()
        launcher.prestart()
        made[kind] = launcher
    yield made
    for launcher in made.values():
        launcher.stop()


def _unit(base, name: str, stdin: bytes | None, params: str) -> str:
    unit_dir = base / name
    unit_dir.mkdir()
    if stdin is not None:
        (unit_dir / "stdin").write_bytes(stdin)

    def change(status) -> None:
        status.work_type = "twin"
        status.extra_data = {"Pid": 7, "Params": params, "Note": "<kept & verbatim>"}

    StatusFile(str(unit_dir)).update(change)
    return str(unit_dir)


def _wait(pidfd: int, timeout: float = 30.0) -> None:
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    assert poller.poll(timeout * 1000), "runner did not exit"
    os.close(pidfd)


def _outcome(unit_dir: str) -> tuple[bytes, bytes | None]:
    with open(os.path.join(unit_dir, "status"), "rb") as handle:
        status = re.sub(rb"PID \d+", b"PID N", handle.read())
    try:
        with open(os.path.join(unit_dir, "stdout"), "rb") as handle:
            output: bytes | None = handle.read()
    except FileNotFoundError:
        output = None
    return status, output


LONG_PATH = "/nonexistent/" + 'd\u00e9"<x>/' * 60 + "tool"

CASES = {
    "echo-quoted": ("echo", 'hello "world" \\ <&>', None),
    "cat-stdin": ("cat", "", b"line one\nline two\n"),
    "cat-no-stdin": ("cat", "", None),
    "stderr-and-exit-3": ("sh", "-c 'echo out; echo err >&2; exit 3'", None),
    "killed-by-signal": ("sh", "-c 'kill -TERM $$'", None),
    "not-executable": ("/etc/passwd", "", None),
    "no-such-file": ("/nonexistent/bin/tool", "", None),
    "not-in-path": ("no-such-command-xyz", "", None),
    "unsplittable": ("echo", "'unterminated", None),
    "sigpipe-default": ("sh", "-c 'yes | head -c 5'", None),
    "long-escaped-path": (LONG_PATH, "", None),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_record_and_output(launchers, tmp_path, case):
    command, params, stdin = CASES[case]
    outcomes = {}
    for kind, launcher in launchers.items():
        unit_dir = _unit(tmp_path, f"{kind}-{case}", stdin, params)
        _, pidfd = launcher.launch(unit_dir, command, params, "info")
        _wait(pidfd)
        outcomes[kind] = _outcome(unit_dir)
    assert outcomes["c"] == outcomes["python"]
    json.loads(outcomes["c"][0])  # a record any reader can parse
    assert b'"WorkType":"twin","ExtraData":{"Pid":7' in outcomes["c"][0]


def test_the_c_runner_is_the_one_in_use(launchers, tmp_path):
    """Guard for the test above: the "c" fork server really forks C children (their
    Python twin would have imported nothing from the extension; tell them apart by the
    interpreter's SIGINT handling: the C child blocks SIGINT and reads it from a
    signalfd, which /proc shows as a blocked signal)."""
    unit_dir = _unit(tmp_path, "probe", None, "30")
    pid, pidfd = launchers["c"].launch(unit_dir, "sleep", "30", "info")
    time.sleep(0.2)
    with open(f"/proc/{pid}/status") as handle:
        blocked = int(re.search(r"SigBlk:\s*([0-9a-f]+)", handle.read()).group(1), 16)
    assert blocked & (1 << (signal.SIGINT - 1))
    os.kill(pid, signal.SIGTERM)
    _wait(pidfd)


@pytest.mark.parametrize("kind", RUNNERS)
def test_output_size_is_kept_up_to_date_while_running(launchers, tmp_path, kind):
    unit_dir = _unit(tmp_path, f"grow-{kind}", None, "")
    script = "-c 'echo first; sleep 1; echo second; sleep 1'"
    _, pidfd = launchers[kind].launch(unit_dir, "sh", script, "info")
    deadline = time.monotonic() + 10
    seen = None
    while time.monotonic() < deadline:
        status = StatusFile(unit_dir).read()
        if status.state == RUNNING and status.stdout_size == len(b"first\n"):
            seen = status
            break
        time.sleep(0.05)
    assert seen is not None, "the size of the first line was never recorded while running"
    assert seen.detail.startswith("Running: PID ")
    _wait(pidfd)
    final = StatusFile(unit_dir).read()
    assert (final.detail, final.stdout_size) == ("exit status 0", len(b"first\nsecond\n"))


@pytest.mark.parametrize("kind", RUNNERS)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_the_runner_kills_the_command(launchers, tmp_path, kind, sig):
    unit_dir = _unit(tmp_path, f"stop-{kind}-{sig.name}", None, "30")
    pid, pidfd = launchers[kind].launch(unit_dir, "sleep", "30", "info")
    deadline = time.monotonic() + 10
    while StatusFile(unit_dir).read().state != RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    command = int(StatusFile(unit_dir).read().detail.rsplit(" ", 1)[1])
    os.kill(pid, sig)
    _wait(pidfd)
    status, _ = _outcome(unit_dir)
    assert status.startswith(b'{"State":3,"Detail":"Killed",')
    assert not os.path.exists(f"/proc/{command}")


def test_c_runner_kills_a_command_that_ignores_sigint_after_10_s(monkeypatch, tmp_path):
    monkeypatch.delenv("RECEPTOR_NO_EXTENSIONS", raising=False)
    log_path = tmp_path / "runner.log"
    saved = os.dup(1)
    try:  # the fork server (and so the runner) writes its log to the stdout it starts with
        with open(log_path, "wb") as log:
            os.dup2(log.fileno(), 1)
        launcher = RunnerLauncher()
        launcher.prestart()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    try:
        unit_dir = _unit(tmp_path, "stubborn", None, "")
        script = "-c 'trap \"\" INT; echo ready; sleep 60'"
        pid, pidfd = launcher.launch(unit_dir, "sh", script, "info")
        deadline = time.monotonic() + 10
        while StatusFile(unit_dir).read().stdout_size == 0:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        started = time.monotonic()
        os.kill(pid, signal.SIGINT)
        _wait(pidfd, timeout=20)
        assert time.monotonic() - started >= 9.5  # SIGINT first, SIGKILL only after 10 s
    finally:
        launcher.stop()
    assert StatusFile(unit_dir).read().detail == "Killed"
    log = log_path.read_text()
    assert re.search(r"WARNING \d{4}/\d\d/\d\d \d\d:\d\d:\d\d timed out waiting for pid \d+", log)
    assert re.search(r"INFO \d{4}/\d\d/\d\d \d\d:\d\d:\d\d sending SIGKILL to pid \d+", log)


@pytest.mark.parametrize("kind", RUNNERS)
def test_a_signal_sent_the_moment_the_pid_is_known_is_not_lost(launchers, tmp_path, kind):
    """The daemon may cancel a unit at once: the runner must not ignore (or die of) a
    SIGINT that arrives before it has set up its handling."""
    for attempt in range(5):
        unit_dir = _unit(tmp_path, f"early-{kind}-{attempt}", None, "30")
        pid, pidfd = launchers[kind].launch(unit_dir, "sleep", "30", "info")
        os.kill(pid, signal.SIGINT)
        _wait(pidfd, timeout=15)  # not the 30 s of the command
        status, _ = _outcome(unit_dir)
        # Killed (the runner stopped its command), or never started it: either way it
        # wrote its own final record instead of vanishing.
        assert status.startswith(b'{"State":3,"Detail":"Killed",'), status


def test_the_direct_spawn_fallback_holds_an_early_signal_too(tmp_path):
    launcher = RunnerLauncher()
    launcher._broken = True  # no fork server: the runner script is spawned directly
    try:
        unit_dir = _unit(tmp_path, "early-spawned", None, "30")
        pid, pidfd = launcher.launch(unit_dir, "sleep", "30", "info")
        os.kill(pid, signal.SIGINT)
        _wait(pidfd, timeout=15)
        os.waitpid(pid, 0)  # our own child in this mode
        status, _ = _outcome(unit_dir)
        assert status.startswith(b'{"State":3,"Detail":"Killed",'), status
    finally:
        launcher.stop()


# ---------------------------------------------------------------------- the process tree


def _tree_unit(launcher, base, name: str, mode: str = ""):
    """A unit of tests/unit/work/process_tree.py; its (runner PID, pidfd, Tree, unit dir)."""
    pid_file = str(base / f"{name}.pids")
    params = f"-I {TREE_SCRIPT} {pid_file} {mode}".rstrip()
    unit_dir = _unit(base, name, None, "process tree")  # the same record for both runners
    pid, pidfd = launcher.launch(unit_dir, sys.executable, params, "info")
    return pid, pidfd, Tree.wait_for(pid_file), unit_dir


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_ends_the_whole_tree_alike(launchers, tmp_path, sig):
    """Both runners: the command leads its own group, orphans are adopted by the runner, and
    a stop leaves nothing running, in the group or out of it; the records match."""
    records = {}
    for kind, launcher in launchers.items():
        pid, pidfd, tree, unit_dir = _tree_unit(launcher, tmp_path, f"tree-{kind}-{sig.name}")
        try:
            command = tree.pid("command")
            assert os.getpgid(command) == command != os.getpgid(pid)
            assert parent(tree.pid("daemon")) == pid
            os.kill(pid, sig)
            _wait(pidfd)
            assert tree.wait_gone() == [], kind
        finally:
            tree.kill()
        records[kind] = _outcome(unit_dir)[0]
    assert records["c"] == records["python"]
    assert records["c"].startswith(b'{"State":3,"Detail":"Killed",')


@pytest.mark.parametrize("kind", RUNNERS)
def test_a_command_that_ignores_sigint_dies_with_its_tree_after_10_s(launchers, tmp_path, kind):
    pid, pidfd, tree, unit_dir = _tree_unit(
        launchers[kind], tmp_path, f"deaf-{kind}", "ignore-sigint"
    )
    try:
        os.kill(pid, signal.SIGINT)
        _wait(pidfd, timeout=60)
        assert tree.wait_gone() == []
    finally:
        tree.kill()
    assert _outcome(unit_dir)[0].startswith(b'{"State":3,"Detail":"Killed",')


def test_a_command_that_exits_leaves_its_background_running_alike(launchers, tmp_path):
    """Only a stop ends the tree (upstream leaves the background of a finished command)."""
    records = {}
    for kind, launcher in launchers.items():
        _, pidfd, tree, unit_dir = _tree_unit(launcher, tmp_path, f"exit-{kind}", "exit")
        try:
            _wait(pidfd)
            assert tree.wait_gone(("command",)) == []
            assert sorted(tree.alive()) == ["daemon", "daemon-child", "deaf", "plain"], kind
        finally:
            tree.kill()
        records[kind] = _outcome(unit_dir)
    assert records["c"] == records["python"]
    assert records["c"][0].startswith(b'{"State":2,"Detail":"exit status 0",')


@pytest.mark.parametrize("kind", RUNNERS)
def test_the_runner_reaps_the_orphans_it_adopts(launchers, tmp_path, kind):
    """An orphan that exits while the unit runs does not stay a zombie of the runner."""
    orphan_file, go = tmp_path / f"orphan-{kind}", tmp_path / f"go-{kind}"
    script = (
        f'(sh -c "echo \\$\\$ > {orphan_file}.tmp; mv {orphan_file}.tmp {orphan_file};'
        f' while [ ! -e {go} ]; do sleep 0.05; done" &); exec sleep 300'
    )
    params = f"-c '{script}'"
    unit_dir = _unit(tmp_path, f"reap-{kind}", None, params)
    pid, pidfd = launchers[kind].launch(unit_dir, "sh", params, "info")
    try:
        deadline = time.monotonic() + 60
        while not orphan_file.exists():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        orphan = int(orphan_file.read_text())
        assert parent(orphan) == pid
        go.touch()

        def zombie_of_the_runner() -> bool:
            try:
                with open(f"/proc/{orphan}/stat", "rb") as handle:
                    fields = handle.read().rsplit(b")", 1)[1].split()
            except OSError:
                return False
            return int(fields[1]) == pid

        while zombie_of_the_runner():
            assert time.monotonic() < deadline, "the orphan was never reaped"
            time.sleep(0.05)
    finally:
        os.kill(pid, signal.SIGTERM)
        _wait(pidfd)
