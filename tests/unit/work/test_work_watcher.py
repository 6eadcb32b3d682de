"""The process watcher: exits of real processes, children and not, reported once each."""

import os
import subprocess
import sys
import threading
import time

from receptor.workceptor._watcher import ProcessWatcher


def test_reports_each_exit_once_and_reaps_children():
    watcher = ProcessWatcher()
    exited: list[int] = []
    lock = threading.Lock()
    try:
        pids = []
        for delay in (0.0, 0.05, 0.1, 0.2):
            pid = os.posix_spawn(
                sys.executable,
                [sys.executable, "-c", f"import time; time.sleep({delay})"],
                os.environ,
            )
            pids.append(pid)

            def record(pid: int = pid) -> None:
                with lock:
                    exited.append(pid)

            assert watcher.watch(pid, record, child=True)
        deadline = time.monotonic() + 10
        while len(exited) < len(pids) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
        assert sorted(exited) == sorted(pids)
        for pid in pids:  # reaped by the watcher: no zombies left
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                continue
            raise AssertionError(f"{pid} was not reaped")
    finally:
        watcher.stop()


def test_a_process_that_is_gone_is_not_watched():
    watcher = ProcessWatcher()
    try:
        proc = subprocess.Popen([sys.executable, "-c", "pass"])
        proc.wait()
        assert watcher.watch(proc.pid, lambda: None) is False
    finally:
        watcher.stop()


def test_a_failing_callback_is_logged_and_watching_goes_on(caplog):
    watcher = ProcessWatcher()
    done = threading.Event()
    try:
        first = subprocess.Popen([sys.executable, "-c", "pass"])
        assert watcher.watch(first.pid, lambda: 1 / 0)
        first.wait()
        second = subprocess.Popen([sys.executable, "-c", "pass"])
        assert watcher.watch(second.pid, done.set)
        second.wait()
        assert done.wait(10)
        assert "Error handling the exit of process" in caplog.text
    finally:
        watcher.stop()


def test_stop_closes_the_pidfds_of_processes_still_running():
    watcher = ProcessWatcher()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        before = len(os.listdir("/proc/self/fd"))
        assert watcher.watch(proc.pid, lambda: None)
        assert len(os.listdir("/proc/self/fd")) == before + 1
        watcher.stop()
        assert len(os.listdir("/proc/self/fd")) < before
        calls: list[int] = []
        watcher.watch_fd(proc.pid, os.pidfd_open(proc.pid), lambda: calls.append(1))
        assert calls == []  # after stop: the pidfd is closed, nothing is watched
    finally:
        proc.kill()
        proc.wait()
