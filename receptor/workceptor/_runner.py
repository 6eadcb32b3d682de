"""The command runner: the per-unit supervisor process of a ``work-command`` unit (work.md §4.2).

The daemon starts it in a new session (``python -I -S _runner.py <unitdir> <command> <params>
<loglevel>``, or ``receptor --command-runner ...`` as upstream does), so the command survives a
daemon restart. It splits ``params``, runs the command with ``stdin`` as input and ``stdout``
receiving both output streams, keeps ``Running: PID <pid>`` and the output size in the status
file (every 250 ms while the size changes), and writes the final state itself. A daemon that
was down while the command finished therefore finds the true outcome on disk.

SIGINT or SIGTERM to the runner (a cancel, a release, a stop) ends the command's whole process
tree, then the runner writes Failed ``Killed``. Upstream signals only the command, so what it
started (``ansible-playbook`` under ``ansible-runner worker``, ssh masters, anything in the
background) kept running; here:

* The command leads a process group of its own (the runner, which must live on to write the
  final state, is not in it). SIGINT goes to that group, so the command and its ordinary
  children can clean up; if the command has not exited after 10 s the group gets SIGKILL.
  Being a group leader is what every job started from an interactive shell is; a command
  that calls ``setsid()`` itself (``setsid prog``) now forks first, as it does there.
* The runner is the subreaper of its descendants (``PR_SET_CHILD_SUBREAPER``): whatever is
  orphaned below it, a daemon that left for a session of its own included, is reparented to
  the runner, not to init, and is reaped by it while the unit runs.
* Once the command has exited (or been killed), every process still below the runner, in the
  group or not, gets SIGKILL at once: the command had its chance to stop its children, and
  what it left is abandoned. The ``/proc`` walk that finds them is repeated until nothing
  is left (a process may fork meanwhile), for at most :data:`TREE_TIMEOUT`; each process is
  signalled through a pidfd after checking its start time, so a reused PID is never hit.
  A process the runner may not signal (one that changed its user) is logged and left.

A command that exits by itself leaves its background children running, as upstream: only a
stop ends the tree. A runner killed with SIGKILL cannot do any of this; the daemon only does
that to a runner that has not exited long after its own deadlines.

Standard library only, and no package imports when run as a script: it starts in a few
milliseconds instead of importing the daemon. ``_runner_c.pyx`` is its twin in C, which the
fork server uses when it is built (the two are tested against each other).
"""

import os
import select
import signal
import sys
import time

if __package__:
    from receptor.workceptor._shlex import SplitError, split
    from receptor.workceptor._status import FAILED, RUNNING, SUCCEEDED, Status, StatusFile
else:  # run as a script by path (python -I does not put its folder on sys.path)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from _shlex import SplitError, split  # type: ignore[no-redef]
    from _status import FAILED, RUNNING, SUCCEEDED, Status, StatusFile  # type: ignore[no-redef]

#: How long the command gets to exit after SIGINT before SIGKILL.
KILL_TIMEOUT = 10.0
#: How long the runner keeps killing what the command left behind before it gives up.
TREE_TIMEOUT = 2.0
#: How often the output size is brought up to date in the status file.
SIZE_INTERVAL = 0.25
#: ``prctl`` option (linux/prctl.h): orphaned descendants are reparented to this process.
PR_SET_CHILD_SUBREAPER = 36

#: Go's names for signals (``ProcessState.String()`` prints ``signal: <name>``).
GO_SIGNAL_NAMES = {
    1: "hangup",
    2: "interrupt",
    3: "quit",
    4: "illegal instruction",
    5: "trace/breakpoint trap",
    6: "aborted",
    7: "bus error",
    8: "floating point exception",
    9: "killed",
    10: "user defined signal 1",
    11: "segmentation fault",
    12: "user defined signal 2",
    13: "broken pipe",
    14: "alarm clock",
    15: "terminated",
    16: "stack fault",
    17: "child exited",
    18: "continued",
    19: "stopped (signal)",
    20: "stopped",
    21: "stopped (tty input)",
    22: "stopped (tty output)",
    23: "urgent I/O condition",
    24: "CPU time limit exceeded",
    25: "file size limit exceeded",
    26: "virtual timer expired",
    27: "profiling timer expired",
    28: "window changed",
    29: "I/O possible",
    30: "power failure",
    31: "bad system call",
}

_LEVELS = {"error": 0, "warning": 1, "info": 2, "debug": 3}


def _log(level_name: str, wanted: str, message: str) -> None:
    if _LEVELS.get(wanted, 2) < _LEVELS[level_name]:
        return
    stamp = time.strftime("%Y/%m/%d %H:%M:%S")
    try:
        sys.stdout.write(f"{level_name.upper()} {stamp} {message}\n")
        sys.stdout.flush()
    except (OSError, ValueError):
        pass  # the daemon (and its log) may be gone: the unit still finishes


def look_path(name: str) -> str:
    """Go's ``exec.LookPath``: names with a slash are used as given, others searched in PATH."""
    if "/" in name:
        return name
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(directory or ".", name)
        try:
            mode = os.stat(candidate).st_mode
        except OSError:
            continue
        if not (mode & 0o040000) and mode & 0o111:
            return candidate
    raise LookupError(f'exec: "{name}": executable file not found in $PATH')


def exit_detail(raw_status: int) -> tuple[int, str]:
    """State and Detail for a wait status, worded as Go's ``ProcessState.String()``."""
    if os.WIFSIGNALED(raw_status):
        number = os.WTERMSIG(raw_status)
        text = f"signal: {GO_SIGNAL_NAMES.get(number, f'signal {number}')}"
        if os.WCOREDUMP(raw_status):
            text += " (core dumped)"
        return FAILED, text
    code = os.WEXITSTATUS(raw_status)
    return (SUCCEEDED if code == 0 else FAILED), f"exit status {code}"


def _set(status_file: StatusFile, state: int, detail: str, size: int) -> None:
    def change(status: Status) -> None:
        status.state, status.detail, status.stdout_size = state, detail, size

    status_file.update(change)


def _set_size(status_file: StatusFile, size: int) -> None:
    def change(status: Status) -> None:
        status.stdout_size = size

    status_file.update(change)


class _Interrupted:
    def __init__(self) -> None:
        self.flag = False

    def __call__(self, signum: int, frame: object) -> None:
        self.flag = True


def process_name(unit_dir: str) -> str:
    """The name a runner gives itself (``/proc/<pid>/comm``, at most 15 bytes)."""
    return ("rcpt-" + os.path.basename(os.path.normpath(unit_dir)))[:15]


#: The signals that stop a runner (and its command).
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def hold_signals() -> None:
    """Block SIGINT and SIGTERM with their default action, until :func:`run` has its
    handlers: a cancel sent the moment the daemon learns the runner's PID is then held,
    not lost (the fork server ignores SIGINT, and an ignored signal is dropped even when
    blocked) and not fatal (which would orphan the command)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    for number in _STOP_SIGNALS:
        signal.signal(number, signal.SIG_DFL)


def name_process(unit_dir: str) -> None:
    """Take :func:`process_name`: how a restarted daemon tells this runner from a process
    that reused its PID."""
    try:
        with open("/proc/self/comm", "w") as comm:
            comm.write(process_name(unit_dir))
    except OSError:
        pass


def run(unit_dir: str, command: str, params: str, log_level: str = "info") -> int:
    """Supervise one command; returns the runner's exit status."""
    name_process(unit_dir)
    status_file = StatusFile(unit_dir)
    interrupted = _Interrupted()
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    # A signal held since before the daemon knew our PID is delivered now, to the handler.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    try:
        args = split(params)
    except SplitError as err:
        _set(status_file, FAILED, str(err), 0)
        return 1
    out_fd = os.open(
        os.path.join(unit_dir, "stdout"), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600
    )
    try:
        in_fd = os.open(os.path.join(unit_dir, "stdin"), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        in_fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        path = look_path(command)
        become_subreaper()
        pid = spawn(path, [command, *args], in_fd, out_fd)
    except LookupError as err:
        _set(status_file, FAILED, str(err), 0)
        return 1
    except OSError as err:
        reason = os.strerror(err.errno).lower() if err.errno else str(err)
        _set(status_file, FAILED, f"fork/exec {path}: {reason}", 0)
        return 1
    finally:
        os.close(in_fd)
    size = os.fstat(out_fd).st_size
    _set(status_file, RUNNING, f"Running: PID {pid}", size)
    pidfd = os.pidfd_open(pid)
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    poller.register(wake_r, select.POLLIN)
    while True:
        ready = {fd for fd, _ in poller.poll(SIZE_INTERVAL * 1000)}
        if pidfd in ready:
            break
        if wake_r in ready:
            while True:
                try:
                    if not os.read(wake_r, 64):
                        break
                except BlockingIOError:
                    break
        if interrupted.flag:
            _stop(pid, pidfd, log_level)
            # Before the command is reaped: its PID, the group's ID, cannot be reused yet.
            end_tree(pid, log_level)
            os.waitpid(pid, 0)
            reap_children()
            _set(status_file, FAILED, "Killed", os.fstat(out_fd).st_size)
            return 1
        reap_orphans(pid)
        current = os.fstat(out_fd).st_size
        if current != size:
            size = current
            _set_size(status_file, size)
    if interrupted.flag:  # a stop that crossed the command's own exit still ends the tree
        end_tree(pid, log_level)
    _, raw = os.waitpid(pid, 0)
    reap_children()
    state, detail = exit_detail(raw)
    _set(status_file, state, detail, os.fstat(out_fd).st_size)
    code = os.waitstatus_to_exitcode(raw)
    return code if code >= 0 else 128 - code


#: Signals the command starts with at their default action (Python ignores SIGPIPE and
#: SIGXFSZ, the fork server ignores SIGINT; a command must not inherit any of that).
_DEFAULT_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE, signal.SIGXFSZ)


def spawn(path: str, argv: list[str], in_fd: int, out_fd: int) -> int:
    """Start the command with ``in_fd`` as stdin and ``out_fd`` as stdout and stderr.

    ``posix_spawn`` (a vfork and exec in glibc) rather than ``subprocess``: it copies no page
    tables, reports a failed exec as an ``OSError`` here, and ``subprocess`` would import
    ``threading``, whose fork hooks slow down every fork of the fork server.
    Every other descriptor the runner holds is close-on-exec.
    """
    return os.posix_spawn(
        path,
        argv,
        os.environ,
        file_actions=[
            (os.POSIX_SPAWN_DUP2, in_fd, 0),
            (os.POSIX_SPAWN_DUP2, out_fd, 1),
            (os.POSIX_SPAWN_DUP2, out_fd, 2),
        ],
        setsigmask=(),
        setsigdef=_DEFAULT_SIGNALS,
        setpgroup=0,  # a process group of its own, which a stop signals as a whole
    )


def become_subreaper() -> None:
    """Have the command's orphans reparented to this process instead of init, so that a stop
    finds them (and a running unit reaps them). Where this fails, orphans that left the
    command's process group are only out of reach. (ctypes is imported here, in the runner
    process: the daemon imports this module too and should not map libffi for nothing.)"""
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl(PR_SET_CHILD_SUBREAPER, *(ctypes.c_ulong(arg) for arg in (1, 0, 0, 0)))


def reap_orphans(command: int) -> None:
    """Reap every child that has exited, up to the command (which :func:`run` reaps)."""
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if info is None or info.si_pid == command:
            return
        os.waitpid(info.si_pid, 0)


def reap_children() -> None:
    """Reap every child that has exited (a runner leaves no zombies to its parent's reaper)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _stat(pid: int) -> tuple[int, bytes, int] | None:
    """``(ppid, state, start time)`` from ``/proc/<pid>/stat``; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()  # the name may hold spaces and ")"
    if len(fields) < 20:
        return None
    return int(fields[1]), fields[0], int(fields[19])


def live_descendants(root: int) -> dict[int, int]:
    """``{pid: start time}`` of the processes below ``root`` that have not exited."""
    children: dict[int, list[int]] = {}
    table: dict[int, tuple[bytes, int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (stat := _stat(int(name))) is not None:
            children.setdefault(stat[0], []).append(int(name))
            table[int(name)] = stat[1:]
    found: dict[int, int] = {}
    parents = [root]
    while parents:
        for pid in children.pop(parents.pop(), ()):
            state, start = table[pid]
            if state not in (b"Z", b"X"):
                found[pid] = start
            parents.append(pid)
    return found


def _kill_exactly(pid: int, start: int) -> bool:
    """SIGKILL ``pid`` if it is still the process that started at ``start``, through a pidfd
    so that a reused PID is never hit; False when it may not be signalled."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    except OSError:  # no pidfd (an old kernel, no descriptor left): a kill after the check
        pidfd = -1
    try:
        stat = _stat(pid)
        if stat is not None and stat[2] == start:
            if pidfd >= 0:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    except PermissionError:
        return False
    finally:
        if pidfd >= 0:
            os.close(pidfd)
    return True


def end_tree(command: int, log_level: str) -> None:
    """SIGKILL the command's process group and every process below the runner, until none is
    left (or :data:`TREE_TIMEOUT` has passed)."""
    deadline = time.monotonic() + TREE_TIMEOUT
    first = True
    while True:
        try:
            os.killpg(command, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        left = 0
        for pid, start in sorted(live_descendants(os.getpid()).items()):
            if first and pid != command:
                _log("debug", log_level, f"sending SIGKILL to pid {pid}, left by the command")
            if _kill_exactly(pid, start):
                left += 1
            elif first:
                _log("warning", log_level, f"not permitted to kill pid {pid}")
        first = False
        if not left:
            return
        if time.monotonic() > deadline:
            _log("warning", log_level, f"{left} processes left by the command are still there")
            return
        time.sleep(0.01)


def _stop(pid: int, pidfd: int, log_level: str) -> None:
    """SIGINT to the command's process group, then SIGKILL after :data:`KILL_TIMEOUT`
    (upstream's runner, which signals only the command)."""
    try:
        os.killpg(pid, signal.SIGINT)
    except ProcessLookupError:
        return
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    deadline = time.monotonic() + KILL_TIMEOUT
    while (remaining := deadline - time.monotonic()) > 0:
        if poller.poll(remaining * 1000):
            return
    _log("warning", log_level, f"timed out waiting for pid {pid} to terminate with SIGINT")
    _log("info", log_level, f"sending SIGKILL to pid {pid}")
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def main(argv: list[str]) -> int:
    if len(argv) not in (3, 4):
        sys.stderr.write("usage: _runner.py <unitdir> <command> <params> [<loglevel>]\n")
        return 2
    return run(*argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
