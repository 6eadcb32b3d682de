"""The status record of a work unit and its file (work.md §2–§3).

The file ``<unitdir>/status`` holds one line of compact JSON with Go's key order (``State``,
``Detail``, ``StdoutSize``, ``WorkType``, ``ExtraData``). Every read and read-modify-write holds
an exclusive ``flock`` on ``<unitdir>/status.lock``, as upstream does, because the command runner
(another process) writes the same file.

This module is shared with the command runner, which runs with ``python -I -S``: it may only
import the standard library.
"""

import fcntl
import json
import os
from collections.abc import Callable
from typing import Any

PENDING, RUNNING, SUCCEEDED, FAILED, CANCELED = 0, 1, 2, 3, 4

STATE_NAMES = {
    PENDING: "Pending",
    RUNNING: "Running",
    SUCCEEDED: "Succeeded",
    FAILED: "Failed",
    CANCELED: "Canceled",
}

_GO_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def state_name(state: int) -> str:
    return STATE_NAMES.get(state, f"Unknown: {state}")


def is_complete(state: int) -> bool:
    """Upstream's "complete": Succeeded or Failed only (Canceled is not)."""
    return state in (SUCCEEDED, FAILED)


def go_json(value: Any) -> str:
    """Compact JSON escaped as Go's encoder does (key order as given)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.translate(_GO_ESCAPES)


class Status:
    """One unit's status record.

    A plain class rather than a dataclass: the command runner's fork server imports this
    module, and every module it imports makes each fork of it slower.
    """

    __slots__ = ("detail", "extra_data", "state", "stdout_size", "work_type")

    def __init__(
        self,
        state: int = PENDING,
        detail: str = "",
        stdout_size: int = 0,
        work_type: str = "",
        extra_data: Any = None,
    ) -> None:
        self.state = state
        self.detail = detail
        self.stdout_size = stdout_size
        self.work_type = work_type
        self.extra_data = extra_data

    def _fields(self) -> tuple[int, str, int, str, Any]:
        return (self.state, self.detail, self.stdout_size, self.work_type, self.extra_data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Status):
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        state, detail, size, work_type, extra = self._fields()
        return (
            f"Status(state={state!r}, detail={detail!r}, stdout_size={size!r}, "
            f"work_type={work_type!r}, extra_data={extra!r})"
        )

    def encode(self) -> bytes:
        record = {
            "State": self.state,
            "Detail": self.detail,
            "StdoutSize": self.stdout_size,
            "WorkType": self.work_type,
            "ExtraData": self.extra_data,
        }
        return (go_json(record) + "\n").encode("utf-8", errors="surrogateescape")

    @classmethod
    def decode(cls, raw: bytes) -> "Status":
        """Parse a status file; ``ValueError`` when it is not a status record."""
        data = json.loads(raw.decode("utf-8", errors="surrogateescape"))
        if not isinstance(data, dict):
            raise ValueError("status file is not a JSON object")
        state, size = data.get("State", 0), data.get("StdoutSize", 0)
        if not isinstance(state, int) or not isinstance(size, int):
            raise ValueError("status file has non-integer State or StdoutSize")
        return cls(
            state=state,
            detail=str(data.get("Detail", "")),
            stdout_size=size,
            work_type=str(data.get("WorkType", "")),
            extra_data=data.get("ExtraData"),
        )

    def copy(self) -> "Status":
        extra = dict(self.extra_data) if isinstance(self.extra_data, dict) else self.extra_data
        return Status(self.state, self.detail, self.stdout_size, self.work_type, extra)


_READ_SIZE = 65536


def _read_all(fd: int) -> bytes:
    """A regular file's contents from the current offset: a short read is its end, so a
    small status file costs one ``read``."""
    chunk = os.read(fd, _READ_SIZE)
    if len(chunk) < _READ_SIZE:
        return chunk
    chunks = [chunk]
    while chunk := os.read(fd, _READ_SIZE):
        chunks.append(chunk)
    return b"".join(chunks)


class StatusFile:
    """``status`` plus its ``status.lock`` in one unit directory."""

    def __init__(self, unit_dir: str) -> None:
        self.path = os.path.join(unit_dir, "status")
        self.lock_path = os.path.join(unit_dir, "status.lock")

    def _locked(self) -> int:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def read(self, apply: Callable[[Status], None] | None = None) -> Status:
        """The record on disk; ``FileNotFoundError`` if there is none, ``ValueError`` if bad.

        ``apply`` is called with the record while the lock is still held, so that copies kept
        elsewhere are updated in the same order as the file.
        """
        fd = self._locked()
        try:
            handle = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                raw = _read_all(handle)
            finally:
                os.close(handle)
            status = Status.decode(raw)
            if apply is not None:
                apply(status)
            return status
        finally:
            os.close(fd)

    def update(self, change: Callable[[Status], None]) -> Status:
        """Read-modify-write under the lock; a missing or empty file starts from defaults.

        ``change`` runs under the lock (callers also update their in-memory copy there).

        The file is rewritten in place (write, then truncate to length) rather than opened
        with O_TRUNC: ext4 flushes files truncated that way on close, which made every
        update cost a third of a millisecond. Readers hold the same lock, so they never see
        a half-written record.
        """
        fd = self._locked()
        try:
            out = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                raw = _read_all(out)
                status = Status.decode(raw) if raw.strip() else Status()
                change(status)
                record = status.encode()
                os.pwrite(out, record, 0)
                os.ftruncate(out, len(record))
            finally:
                os.close(out)
            return status
        finally:
            os.close(fd)
