"""Work types and work units: the registry's contract (work.md §1, §3, §4.4, §5).

A :class:`WorkType` is what configuration registers under a name (``work-command`` today; the
``remote`` type of work.md §6 plugs in the same way from its own module). It validates submit
parameters and makes :class:`WorkUnit` objects. A unit owns ``<datadir>/<node id>/<unit id>/``
and keeps an in-memory copy of its status record; waiters (results streams, cancel) sleep on
the unit's condition variable and are woken by status changes instead of polling slowly.
"""

import errno
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from receptor._errors import ReceptorError
from receptor._log import logger
from receptor.workceptor._status import (
    CANCELED,
    PENDING,
    RUNNING,
    Status,
    StatusFile,
    is_complete,
    state_name,
)

if TYPE_CHECKING:
    from receptor.workceptor._workceptor import Workceptor

#: Bytes read from ``stdout`` per step of a results stream.
RESULTS_CHUNK = 256 * 1024
#: First and longest sleep of a results stream between looks at a growing ``stdout``.
#: Each status change the daemon makes (a unit's end included) and each chunk a remote
#: unit copies in wakes the stream at once; the sleep only paces looks at output that a
#: command writes while it runs, so it starts at 50 ms rather than waking fifty
#: concurrent streams every few milliseconds.
RESULTS_FIRST_WAIT = 0.05
RESULTS_MAX_WAIT = 0.25
#: Missing-``stdout`` checks before a results stream gives up (upstream: 4 checks 1 s apart).
MISSING_STDOUT_LIMIT = 4.0


class WorkError(ReceptorError):
    """A work request cannot be carried out; the text is upstream's."""


class WorkType:
    """A registered work type (``work-command``, ``remote``, ...)."""

    name: str = ""
    #: Whether submissions over non-Unix control connections must carry a signature.
    verify_signature: bool = False
    #: Listed in the node's control-service advertisement (all but ``remote``).
    advertise: bool = True

    def new_unit(self, manager: "Workceptor", unit_id: str) -> "WorkUnit":
        raise NotImplementedError

    def check_params(self, params: Mapping[str, str]) -> None:
        """Refuse submit parameters this type does not allow (raise :class:`WorkError`)."""

    def stop(self) -> None:
        """The daemon is stopping: end the type's background work."""


class WorkUnit:
    """One unit of work with its directory and status record."""

    #: Whether :meth:`start` writes the unit's next status at once; a submit then skips its
    #: transient ``Starting Worker`` write (upstream's state for the microseconds between).
    start_writes_status = False

    def __init__(self, manager: "Workceptor", unit_id: str, work_type: str) -> None:
        self.manager = manager
        self.id = unit_id
        self.dir = os.path.join(manager.data_dir, unit_id)
        self.status_file = StatusFile(self.dir)
        self.status = Status(work_type=work_type)
        self.cond = threading.Condition()
        #: Counts changes worth a look (status, new output, release); see wait_change.
        self.changes = 0
        self.released = False

    # ------------------------------------------------------------------ status

    def update(self, change: Callable[[Status], None]) -> Status:
        """Change the record on disk and in memory, both under the file lock.

        Publishing inside the lock keeps the in-memory copy in the same order as the file
        even when several threads (and the runner process) write one after another.
        """

        def locked(status: Status) -> None:
            change(status)
            self.publish(status)

        return self.status_file.update(locked)

    def save(self, **fields: Any) -> Status:
        """Set status fields in memory and on disk (read-modify-write under the file lock)."""

        def change(status: Status) -> None:
            for name, value in fields.items():
                setattr(status, name, value)
            status.work_type = status.work_type or self.status.work_type

        try:
            return self.update(change)
        except FileNotFoundError:
            if not self.released:
                raise
            return self.status.copy()

    def save_basic(self, state: int, detail: str, stdout_size: int | None = None) -> Status:
        fields: dict[str, Any] = {"state": state, "detail": detail}
        if stdout_size is not None:
            fields["stdout_size"] = stdout_size
        return self.save(**fields)

    def publish(self, record: Status) -> None:
        with self.cond:
            if record == self.status:
                return  # a re-read that found nothing new
            self.status = record.copy()
            self.changes += 1
            self.cond.notify_all()

    def notify_change(self, released: bool = False) -> None:
        """Wake every waiter: new output, or the unit ended or was released."""
        with self.cond:
            if released:
                self.released = True
            self.changes += 1
            self.cond.notify_all()

    def load(self) -> None:
        """Take the record on disk as the in-memory status."""
        self.status = self.status_file.read()

    def current(self) -> Status:
        """The status now (re-read from disk while another process may be writing it)."""
        if self.may_change_on_disk():
            try:
                record = self.status_file.read(apply=self._refreshed)
            except (OSError, ValueError):
                pass
            else:
                if is_complete(record.state) and self.settle():
                    return self.status.copy()
        return self.status.copy()

    def settle(self) -> bool:
        """The file shows a final state: let the process that wrote it finish its part.

        True when the in-memory status is then final (no half-finished state is shown).
        """
        return False

    def _refreshed(self, record: Status) -> None:
        """A re-read record (under the file lock): keep it unless it is a final state that
        the unit's own process has still to finish (see :meth:`settle`)."""
        if not is_complete(record.state) or not self.may_change_on_disk():
            self.publish(record)

    def may_change_on_disk(self) -> bool:
        return False

    def api_extra_data(self, status: Status) -> Any:
        return status.extra_data

    def api_status(self) -> dict[str, Any]:
        """The status object of the control API (keys sorted, ``StateName`` added)."""
        status = self.current()
        return {
            "Detail": status.detail,
            "ExtraData": self.api_extra_data(status),
            "State": status.state,
            "StateName": state_name(status.state),
            "StdoutSize": status.stdout_size,
            "WorkType": status.work_type,
        }

    # ------------------------------------------------------------------ life cycle

    def start(self) -> str:
        """Start the work; returns the submit result (``Job Started`` / ``Job Submitted``)."""
        raise NotImplementedError

    def restart(self) -> None:
        """Pick the unit up again after a daemon restart (work.md §8)."""

    def cancel(self) -> str | None:
        """Cancel the work; a reply key other than ``cancelled`` (``cancel pending``) or None."""
        raise NotImplementedError

    def release(self, force: bool) -> str | None:
        """Cancel, delete the directory and forget the unit (work.md §4.4).

        Returns a reply key other than ``released`` (``release pending``) or None.
        """
        try:
            self.cancel()
        except (WorkError, OSError):
            if not force:
                raise
        self.notify_change(released=True)
        attempts = 1 if force else 3
        for attempt in range(attempts):
            try:
                remove_unit_dir(self.dir)
                break
            except FileNotFoundError:
                break
            except OSError as err:
                if attempt == attempts - 1:
                    if not force:
                        raise WorkError(str(err)) from None
                    logger.error("Error removing unit directory %s: %s", self.dir, err)
                else:
                    time.sleep(1.0)
        self.manager.forget(self.id)
        return None

    # ------------------------------------------------------------------ results

    def snapshot(self) -> Status:
        """The in-memory status: every change that ends a unit is published to it."""
        with self.cond:
            return self.status.copy()

    def wait_change(self, timeout: float, seen: int) -> None:
        """Wait up to ``timeout`` for a change after the one counted as ``seen`` (read
        before the caller last looked), so a change made in between is not slept through."""
        with self.cond:
            if self.changes == seen:
                self.cond.wait(timeout)

    def stream_results(self, sock: socket.socket, start: int) -> None:
        """Send ``stdout`` from byte ``start`` until the unit is complete and fully sent.

        Ends (unlike upstream, which streams forever) when the unit is Canceled or released,
        or when the client has closed the connection.
        """
        path = os.path.join(self.dir, "stdout")
        delay = 0.005
        while True:
            seen = self.changes
            try:
                handle = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                break
            except FileNotFoundError:
                status = self.snapshot()
                # A remote unit's status can say "complete, N bytes" before the first of
                # those bytes has been copied here: only a unit with nothing (more) to show
                # ends its stream without a stdout file.
                ended = is_complete(status.state) or status.state == CANCELED
                if self.released or (ended and status.stdout_size <= max(start, 0)):
                    return
                self.wait_change(delay, seen)
                delay = min(delay * 2, RESULTS_MAX_WAIT)
        try:
            offset = max(start, 0)
            delay = RESULTS_FIRST_WAIT
            missing_since: float | None = None
            while True:
                seen = self.changes
                data = os.pread(handle, RESULTS_CHUNK, offset)
                if data:
                    sock.sendall(data)
                    offset += len(data)
                    delay = RESULTS_FIRST_WAIT
                    continue
                status = self.snapshot()
                if is_complete(status.state) and offset >= status.stdout_size:
                    return
                if status.state == CANCELED or self.released or _peer_gone(sock):
                    return
                if not os.path.exists(path):
                    now = time.monotonic()
                    missing_since = missing_since or now
                    if now - missing_since >= MISSING_STDOUT_LIMIT:
                        logger.error("Exceeded retries for reading stdout %s", path)
                        return
                else:
                    missing_since = None
                self.wait_change(delay, seen)
                delay = min(delay * 2, RESULTS_MAX_WAIT)
        finally:
            os.close(handle)


#: What a unit directory holds (work.md §2): removed by name, without listing the directory.
UNIT_FILES = ("stdout", "stdin", "status", "status.lock")


def remove_unit_dir(path: str) -> None:
    """Remove a unit directory: its usual files by name, then the directory (five system
    calls instead of ``shutil.rmtree``'s dozen); anything else in it falls back to rmtree.
    ``FileNotFoundError`` when the directory is gone."""
    for name in UNIT_FILES:
        try:
            os.unlink(os.path.join(path, name))
        except FileNotFoundError:
            pass
        except NotADirectoryError:
            raise FileNotFoundError(path) from None
    try:
        os.rmdir(path)
    except OSError as err:
        if err.errno != errno.ENOTEMPTY:
            raise
        import shutil  # (it imports zlib, bz2 and lzma: not for an idle node)

        shutil.rmtree(path)


def _peer_gone(sock: socket.socket) -> bool:
    """Whether the client closed the connection (Unix sockets report it; upstream keeps
    streaming to nobody until the unit ends)."""
    try:
        poller = select.poll()
        poller.register(sock, select.POLLHUP | select.POLLERR)
        return bool(poller.poll(0))
    except (OSError, TypeError, ValueError, AttributeError):
        return False


class UnknownTypeUnit(WorkUnit):
    """A unit on disk whose work type is not registered (yet): listed, releasable, inert."""

    def api_extra_data(self, status: Status) -> Any:
        return "Unknown WorkType"

    def start(self) -> str:
        raise WorkError(f"unknown work type {self.status.work_type}")

    def cancel(self) -> str | None:
        return None


def running_or_pending(state: int) -> bool:
    return state in (PENDING, RUNNING)
