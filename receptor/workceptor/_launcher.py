"""Starting command runners: through the fork server, or a fresh interpreter as a fallback.

The fork server (``_forkserver.py``) is started on first use and reused; if it cannot be used
the runner script is started directly with ``posix_spawn`` in a new session (slower, same
behaviour). Either way the caller gets the runner's PID and a pidfd for it.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading

from receptor._log import logger
from receptor.workceptor import _forkserver, _runner

RUNNER_SCRIPT = os.path.abspath(_runner.__file__)
FORKSERVER_SCRIPT = os.path.abspath(_forkserver.__file__)


class RunnerLauncher:
    """Starts command runners; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._server: subprocess.Popen[bytes] | None = None
        self._broken = False

    def launch(self, unit_dir: str, command: str, params: str, log_level: str) -> tuple[int, int]:
        """Start the runner of ``unit_dir``; returns ``(pid, pidfd)``."""
        request = {"unitdir": unit_dir, "command": command, "params": params}
        request["loglevel"] = log_level
        with self._lock:
            if not self._broken:
                for _ in range(2):
                    try:
                        return self._via_server(json.dumps(request).encode() + b"\n")
                    except (OSError, ValueError) as err:
                        logger.warning("Runner fork server failed (%s); restarting it", err)
                        self._close()
                self._broken = True
        return self._spawn(unit_dir, command, params, log_level)

    def prestart(self) -> None:
        """Start the fork server now, so the first unit does not wait for it."""
        with self._lock:
            if self._sock is None and not self._broken:
                try:
                    self._start_server()
                except OSError as err:
                    logger.warning("Could not start the runner fork server: %s", err)
                    self._broken = True

    def _via_server(self, line: bytes) -> tuple[int, int]:
        if self._sock is None:
            self._start_server()
        assert self._sock is not None
        self._sock.sendall(line)
        message, fds, _, _ = socket.recv_fds(self._sock, 64, 1)
        if not message or not fds:
            for fd in fds:
                os.close(fd)
            raise OSError("the fork server went away")
        return int(message), fds[0]

    def _start_server(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            self._server = subprocess.Popen(
                [sys.executable, "-I", "-S", FORKSERVER_SCRIPT, str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
            )
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        self._sock = ours

    def _spawn(self, unit_dir: str, command: str, params: str, log_level: str) -> tuple[int, int]:
        argv = [sys.executable, "-I", "-S", RUNNER_SCRIPT, unit_dir, command, params, log_level]
        pid = os.posix_spawn(
            sys.executable,
            argv,
            os.environ,
            setsid=True,
            file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)],
            # Held until the runner has its handlers (see _runner.hold_signals).
            setsigmask=(signal.SIGINT, signal.SIGTERM),
            setsigdef=(signal.SIGINT, signal.SIGTERM),
        )
        # Our own child: it cannot be reaped (and its PID reused) before this pidfd exists.
        return pid, os.pidfd_open(pid)

    def _close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._server is not None:
            try:
                self._server.wait(5.0)
            except subprocess.TimeoutExpired:
                self._server.kill()
                self._server.wait()
            self._server = None

    def stop(self) -> None:
        with self._lock:
            self._close()
