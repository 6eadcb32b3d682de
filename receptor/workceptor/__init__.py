"""Workceptor: units of work, local and remote (work.md).

Local ``work-command`` units run under a detached command runner; the ``work`` control command
submits, lists, streams, cancels and releases them. Remote work registers its ``remote`` work
type and fills :attr:`Workceptor.remote_submit` from a module of its own.

Where we differ from upstream on purpose (the on-disk layout, status bytes, Detail strings and
control replies are upstream's):

* Runners are forked from a small fork server (or, failing that, started as
  ``python -I -S _runner.py``), not by re-executing the daemon; they name themselves
  ``rcpt-<unit id>`` so that a restarted daemon can tell a live runner from a reused PID.
  A forked runner runs C code only (``_runner_c.pyx``) unless the extensions are off or the
  unit's parameters or command are at fault; the Python runner does the same then.
  A runner that is gone while its unit is still Pending/Running makes the unit Failed
  ``Command runner exited unexpectedly`` (upstream leaves it Running forever).
* ExtraData becomes null once the runner has exited, also for units picked up after a restart
  (upstream keeps the Pid there), and a cancel after a restart waits for the runner.
* ``work results`` ends when the unit is Canceled or released, or when the client closed the
  connection (upstream streams forever); it refuses a negative start position.
* ``stdout`` is not opened with O_SYNC; readers follow it through the file.
* ``work-signing`` without ``tokenexpiration`` uses 5 minutes (upstream crashes).
* ``work-kubernetes`` is validated as upstream does, then refused: not built in this version.
"""

from receptor.workceptor._command import CommandUnit, CommandWorkType
from receptor.workceptor._signing import SignatureError, WorkSigner, WorkVerifier
from receptor.workceptor._status import Status, StatusFile, state_name
from receptor.workceptor._unit import WorkError, WorkType, WorkUnit
from receptor.workceptor._workceptor import Workceptor

__all__ = [
    "CommandUnit",
    "CommandWorkType",
    "SignatureError",
    "Status",
    "StatusFile",
    "WorkError",
    "WorkSigner",
    "WorkType",
    "WorkUnit",
    "WorkVerifier",
    "Workceptor",
    "state_name",
]
