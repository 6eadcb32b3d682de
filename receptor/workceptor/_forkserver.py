"""The runner fork server: starts command runners in milliseconds instead of a new Python.

Starting a fresh interpreter for every unit costs tens of milliseconds; forking this small,
single-threaded helper (started once by the daemon, standard library only) costs about one.
Each request is one JSON line ``{"unitdir","command","params","loglevel"}``; the server forks,
the child becomes a session leader and supervises the command (in C, ``_runner_c``, when it
is built and extensions are on; else, or for a unit whose parameters or command are at
fault, by :func:`_runner.run`), and the server answers
``<pid>\\n`` with a pidfd of the child attached (SCM_RIGHTS), so the daemon can watch it with
no PID-reuse race. The server reaps its children and exits when the daemon's end closes
(runners live on: they are in sessions of their own).
"""

import importlib
import json
import os
import select
import signal
import socket
import sys
from typing import Any

if __package__:
    from receptor.workceptor import _runner
    from receptor.workceptor._shlex import SplitError, split
    from receptor.workceptor._status import go_json
else:  # run as a script by path (python -I does not put its folder on sys.path)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _runner  # type: ignore[no-redef]
    from _shlex import SplitError, split  # type: ignore[no-redef]
    from _status import go_json  # type: ignore[no-redef]


def _load_c_runner() -> Any:
    """The C runner (``_runner_c``), or None: extensions off or not built."""
    if os.environ.get("RECEPTOR_NO_EXTENSIONS", "") not in ("", "0"):
        return None
    try:
        return importlib.import_module(f"{__package__}._runner_c" if __package__ else "_runner_c")
    except ImportError:
        return None


_runner_c = _load_c_runner()


def _child(
    sock: socket.socket, close: tuple[int, ...], named: int, request: dict[str, str]
) -> None:
    """In the forked child: detach, take the runner's name, tell the server (by closing
    ``named``), then run the unit's command. Never returns."""
    code = 1
    try:
        # Detached and named before the daemon learns the PID (and records it), and a
        # SIGINT/SIGTERM sent from then on is held for the runner (see _runner.hold_signals).
        os.setsid()
        _runner.name_process(request["unitdir"])
        _runner.hold_signals()
        os.close(named)
        sock.close()
        signal.set_wakeup_fd(-1)
        for fd in close:
            os.close(fd)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        code = _runner.run(
            request["unitdir"], request["command"], request["params"], request["loglevel"]
        )
    except BaseException as err:  # report anything, then exit
        try:
            sys.stdout.write(f"ERROR command runner failed: {err}\n")
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
    finally:
        os._exit(code)


#: Longest ``"fork/exec <path>: `` the C runner takes (its Detail buffer is 256 bytes).
SPAWN_ERROR_MAX = 200


def _fork_c(request: dict[str, str], close: tuple[int, ...], named: int) -> int | None:
    """Fork a C runner (``_runner_c``) for ``request``; its PID, or None when the Python
    runner is to run the unit: no C runner here, or a case whose Detail the Python runner
    words (parameters that cannot be split, a command not found).

    The C child does what ``_runner.run`` does; this part, in the fork server, does the
    steps before the fork that need Python (and whose errors the Python runner reports).
    """
    if _runner_c is None:
        return None
    unit_dir, command = request["unitdir"], request["command"]
    try:
        args = split(request["params"])
        path = _runner.look_path(command)
    except (SplitError, LookupError):
        return None
    argv = [os.fsencode(word) for word in (command, *args)]
    if any(b"\0" in word for word in (*argv, os.fsencode(unit_dir))):
        return None  # C strings cannot carry it; the Python runner reports the error
    out_fd = os.open(
        os.path.join(unit_dir, "stdout"), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600
    )
    try:
        try:
            in_fd = os.open(os.path.join(unit_dir, "stdin"), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            in_fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            spawn_error = go_json(f"fork/exec {path}: ")[:-1].encode("utf-8", "surrogateescape")
            if len(spawn_error) > SPAWN_ERROR_MAX:
                return None  # the C runner's Detail buffer is small; Python words this one
            return int(
                _runner_c.fork_runner(
                    _runner.process_name(unit_dir).encode(),
                    os.fsencode(os.path.join(unit_dir, "status")),
                    os.fsencode(os.path.join(unit_dir, "status.lock")),
                    os.fsencode(path),
                    argv,
                    in_fd,
                    out_fd,
                    named,
                    close,
                    spawn_error,
                    request["loglevel"],
                )
            )
        finally:
            os.close(in_fd)
    finally:
        os.close(out_fd)


def serve(sock: socket.socket) -> None:
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C in the daemon's terminal
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    poller.register(wake_r, select.POLLIN)
    buffer = b""
    while True:
        ready = {fd for fd, _ in poller.poll()}
        if wake_r in ready:
            try:
                while os.read(wake_r, 256):
                    pass
            except BlockingIOError:
                pass
            _runner.reap_children()
        if sock.fileno() not in ready:
            continue
        data = sock.recv(65536)
        if not data:
            return
        buffer += data
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            request = json.loads(line)
            named_r, named_w = os.pipe2(os.O_CLOEXEC)
            pid = _fork_c(request, (sock.fileno(), wake_r, wake_w, named_r), named_w)
            if pid is None:
                pid = os.fork()
                if pid == 0:
                    _child(sock, (wake_r, wake_w, named_r), named_w, request)
            os.close(named_w)
            os.read(named_r, 1)  # end of file once the child is named (or gone)
            os.close(named_r)
            pidfd = os.pidfd_open(pid)
            try:
                socket.send_fds(sock, [f"{pid}\n".encode()], [pidfd])
            finally:
                os.close(pidfd)
        _runner.reap_children()


def main() -> int:
    fd = int(sys.argv[1])
    sock = socket.socket(fileno=fd)
    serve(sock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
