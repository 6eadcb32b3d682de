"""``work-command`` units: a command run by a detached command runner (work.md §4).

The daemon spawns the runner (``_runner.py``) in a new session while holding the status lock,
records ``Launching command runner`` with the runner's PID, and watches the runner's exit
through a pidfd. The runner writes Running and the final state itself, so the outcome is right
even when the daemon was down at the time.
"""

import os
import signal
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from receptor._log import logger
from receptor.workceptor import _runner
from receptor.workceptor._status import (
    CANCELED,
    FAILED,
    PENDING,
    RUNNING,
    Status,
    is_complete,
)
from receptor.workceptor._unit import WorkError, WorkType, WorkUnit
from receptor.workceptor._workceptor import log_level_name

if TYPE_CHECKING:
    from receptor.workceptor._workceptor import Workceptor

#: How long cancel waits for a runner beyond its own deadlines (SIGINT→SIGKILL, then ending
#: what the command left) before killing it.
RUNNER_GRACE = 5.0
#: How long a status request waits for a runner that has written its final state to exit.
SETTLE_TIMEOUT = 2.0


class CommandWorkType(WorkType):
    """A ``work-command`` entity."""

    def __init__(
        self,
        name: str,
        command: str,
        params: str = "",
        allow_runtime_params: bool = False,
        verify_signature: bool = False,
    ) -> None:
        self.name = name
        self.command = command
        self.params = params
        self.allow_runtime_params = allow_runtime_params
        self.verify_signature = verify_signature

    def check_params(self, params: Mapping[str, str]) -> None:
        if params.get("params") and not self.allow_runtime_params:
            raise WorkError("extra params provided but not allowed")

    def combined_params(self, submitted: str) -> str:
        return " ".join(part for part in (self.params, submitted) if part)

    def new_unit(self, manager: "Workceptor", unit_id: str) -> "CommandUnit":
        return CommandUnit(manager, unit_id, self)


def _runner_alive(pid: int, unit_dir: str) -> bool:
    """Whether ``pid`` is the command runner of ``unit_dir`` (not a reused PID).

    Our runners name themselves after their unit; upstream's carry ``unitdir=`` in argv.
    """
    try:
        with open(f"/proc/{pid}/comm", "rb") as handle:
            if handle.read().rstrip(b"\n") == _runner.process_name(unit_dir).encode():
                return True
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            args = handle.read().split(b"\0")
    except OSError:
        return False
    path = os.fsencode(unit_dir)
    return path in args or b"unitdir=" + path in args


class CommandUnit(WorkUnit):
    """One unit of a :class:`CommandWorkType`."""

    start_writes_status = True  # "Launching command runner", under the status lock

    def __init__(self, manager: "Workceptor", unit_id: str, work_type: CommandWorkType) -> None:
        super().__init__(manager, unit_id, work_type.name)
        self.work_type = work_type
        self.submitted_params = ""
        self._runner_pid = 0
        self._runner_gone = threading.Event()
        self._runner_gone.set()
        self._cancelling = False
        self._cancel_lock = threading.Lock()

    # ------------------------------------------------------------------ status

    def may_change_on_disk(self) -> bool:
        return not self._runner_gone.is_set() and not self._cancelling

    def settle(self) -> bool:
        # The runner exits right after its final write; ExtraData turns null then.
        return self._runner_gone.wait(SETTLE_TIMEOUT)

    def initial_extra(self) -> dict[str, Any]:
        return {"Pid": 0, "Params": ""}

    def set_params(self, params: Mapping[str, str]) -> None:
        self.submitted_params = params.get("params", "")

    # ------------------------------------------------------------------ start

    def start(self) -> str:
        if self.released:
            raise WorkError("unit was released before it started")
        params = self.work_type.combined_params(self.submitted_params)

        def launch(status: Status) -> None:
            # Under the status lock: the runner's first write waits until this one is done.
            pid = self._spawn(params)
            status.state, status.detail = PENDING, "Launching command runner"
            status.stdout_size = 0
            status.extra_data = {"Pid": pid, "Params": params}

        try:
            self.update(launch)
        except OSError as err:
            raise WorkError(f"Failed to start command runner: {err}") from None
        return "Job Started"

    def _spawn(self, params: str) -> int:
        self._runner_gone.clear()
        try:
            pid, pidfd = self.manager.launcher.launch(
                self.dir, self.work_type.command, params, log_level_name()
            )
        except OSError:
            self._runner_gone.set()
            raise
        self._runner_pid = pid
        self.manager.watcher.watch_fd(pid, pidfd, self._runner_exited)
        return pid

    def _runner_exited(self) -> None:
        """The runner is gone: its final state is on disk; ExtraData becomes null."""
        if self._cancelling:
            self._runner_gone.set()
            return

        def change(status: Status) -> None:
            if status.state in (PENDING, RUNNING):
                status.state, status.detail = FAILED, "Command runner exited unexpectedly"
            status.extra_data = None

        try:
            self.update(change)
        except OSError as err:
            if not self.released:
                logger.error("Error updating status file %s: %s", self.status_file.path, err)
        self._runner_gone.set()
        self.notify_change()

    # ------------------------------------------------------------------ restart

    def restart(self) -> None:
        """Work.md §8, plus a liveness check: a runner that is gone cannot finish the unit."""
        status = self.status
        pid = status.extra_data.get("Pid", 0) if isinstance(status.extra_data, dict) else 0
        if is_complete(status.state) or status.state == CANCELED:
            return
        alive = isinstance(pid, int) and pid > 0 and _runner_alive(pid, self.dir)
        if alive:
            self._runner_gone.clear()
            self._runner_pid = pid
            if self.manager.watcher.watch(pid, self._runner_exited):
                return
            self._runner_gone.set()
        if status.state == PENDING and not pid:
            self.save_basic(FAILED, "Pending at restart")
            return
        # The runner is gone: whatever it wrote last is the outcome.
        self._runner_exited()

    # ------------------------------------------------------------------ cancel

    def cancel(self) -> str | None:
        """SIGINT to the runner, wait for it, then Canceled (work.md §4.3).

        The runner ends the command's whole process tree before it exits (see ``_runner``);
        release (and force-release) come through here too."""
        with self._cancel_lock:
            if self._runner_gone.is_set():
                return None
            self._cancelling = True
            try:
                pid = self._runner_pid
                try:
                    os.kill(pid, signal.SIGINT)
                except ProcessLookupError:
                    pass
                timeout = _runner.KILL_TIMEOUT + _runner.TREE_TIMEOUT + RUNNER_GRACE
                if not self._runner_gone.wait(timeout):
                    logger.warning("Command runner %d did not exit; killing it", pid)
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    if not self._runner_gone.wait(RUNNER_GRACE):
                        logger.error("Command runner %d is still there after SIGKILL", pid)

                def change(status: Status) -> None:
                    status.state, status.detail = CANCELED, "Canceled"
                    status.extra_data = None

                try:
                    self.update(change)
                except FileNotFoundError:
                    pass
            finally:
                self._cancelling = False
        return None
