"""A work command that leaves a process tree below it, and the checks that the tree is gone.

Run as a command (``python -I process_tree.py <pid file> [exit|ignore-sigint]``) it starts

* ``plain``: a ``sleep`` in the command's process group (SIGINT ends it),
* ``deaf``: a ``sleep`` in the group that ignores SIGINT (as ``sh`` makes ``cmd &``),
* ``daemon``: a ``sleep`` that left through a double fork and ``setsid``: a session of its
  own, and an orphan (its parent exited),
* ``daemon-child``: a ``sleep`` started by the daemon,

then writes ``<role> <pid> <start time>`` for each, and for itself (``command``), to the pid
file (by a rename: the file is complete once it exists), prints ``ready`` and sleeps. With
``exit`` it exits 0 instead of sleeping; with ``ignore-sigint`` it ignores SIGINT.

Processes are identified by PID and start time, so a reused PID is never taken for one of
them, and cleaned up through pidfds (never by name).
"""

import os
import signal
import sys
import time

SCRIPT = os.path.abspath(__file__)
ROLES = ("command", "plain", "deaf", "daemon", "daemon-child")
#: How long each ``sleep`` of the tree would run if nothing ended it.
SLEEP = "300"


def start_time(pid: int) -> int | None:
    """Field 22 of ``/proc/<pid>/stat``; None once the process is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):
        return None  # exited; waiting for its reaper
    return int(fields[19])


def parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as handle:
        data = handle.read()
    return int(data[data.rfind(b")") + 2 :].split()[1])


class Tree:
    """The processes a pid file names."""

    def __init__(self, members: dict[str, tuple[int, int]]) -> None:
        self.members = members

    @classmethod
    def wait_for(cls, pid_file: str, timeout: float = 60.0) -> "Tree":
        deadline = time.monotonic() + timeout
        while not os.path.exists(pid_file):
            assert time.monotonic() < deadline, f"no pid file {pid_file} within {timeout} s"
            time.sleep(0.02)
        members = {}
        with open(pid_file) as handle:
            for line in handle:
                role, pid, start = line.split()
                members[role] = (int(pid), int(start))
        assert set(members) == set(ROLES), members
        return cls(members)

    def pid(self, role: str) -> int:
        return self.members[role][0]

    def alive(self) -> list[str]:
        """Roles whose process still runs (a zombie has exited: it counts as gone)."""
        return [role for role, (pid, start) in self.members.items() if start_time(pid) == start]

    def wait_gone(self, roles: tuple[str, ...] = ROLES, timeout: float = 60.0) -> list[str]:
        """Poll until none of ``roles`` runs; the ones still running after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            left = [role for role in self.alive() if role in roles]
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL whatever still runs (test clean-up)."""
        for pid, start in self.members.values():
            try:
                pidfd = os.pidfd_open(pid)
            except OSError:
                continue
            try:
                if start_time(pid) == start:
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            finally:
                os.close(pidfd)


def _sleep(report: int, role: str) -> None:
    """In a forked child: report the role and PID, become ``sleep``."""
    os.write(report, f"{role} {os.getpid()}\n".encode())
    os.execvp("sleep", ["sleep", SLEEP])


def main(pid_file: str, mode: str = "") -> int:
    if mode == "ignore-sigint":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    read_end, report = os.pipe()
    if os.fork() == 0:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        _sleep(report, "plain")
    if os.fork() == 0:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _sleep(report, "deaf")
    middle = os.fork()
    if middle == 0:
        os.setsid()
        if os.fork() == 0:
            if os.fork() == 0:
                _sleep(report, "daemon-child")
            _sleep(report, "daemon")
        os._exit(0)
    os.waitpid(middle, 0)  # the daemon is an orphan from here on
    os.close(report)
    pids = {"command": os.getpid()}
    with os.fdopen(read_end) as reports:
        while len(pids) < len(ROLES):
            role, pid = reports.readline().split()
            pids[role] = int(pid)
    lines = []
    for role, pid in pids.items():
        start = start_time(pid)
        assert start is not None, f"{role} {pid} is already gone"
        lines.append(f"{role} {pid} {start}\n")
    with open(pid_file + ".tmp", "w") as handle:
        handle.writelines(lines)
    os.rename(pid_file + ".tmp", pid_file)
    print("ready", flush=True)
    if mode == "exit":
        return 0
    time.sleep(float(SLEEP))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
