"""The status record and file (work.md §2–§3)."""

import json
import os
import threading

import pytest

from receptor.workceptor._status import (
    CANCELED,
    FAILED,
    RUNNING,
    SUCCEEDED,
    Status,
    StatusFile,
    is_complete,
    state_name,
)


def test_encoding_matches_upstream_bytes():
    status = Status(2, "exit status 0", 6, "echo", None)
    assert status.encode() == (
        b'{"State":2,"Detail":"exit status 0","StdoutSize":6,"WorkType":"echo","ExtraData":null}\n'
    )
    running = Status(1, "Running: PID 21175", 0, "sleep", {"Pid": 21168, "Params": "30"})
    assert running.encode() == (
        b'{"State":1,"Detail":"Running: PID 21175","StdoutSize":0,"WorkType":"sleep",'
        b'"ExtraData":{"Pid":21168,"Params":"30"}}\n'
    )


def test_go_escapes_and_round_trip():
    status = Status(3, 'exec: "<x>" & \u2028', 0, "t", {"Params": "a<b"})
    raw = status.encode()
    assert b"\\u003cx\\u003e" in raw and b"\\u0026" in raw and b"\\u2028" in raw
    assert Status.decode(raw) == status


@pytest.mark.parametrize(
    "raw", [b"", b"[]", b"{", b'{"State":"x"}', b'{"StdoutSize":1.5}', b"\xff"]
)
def test_bad_status_files_are_refused(raw):
    with pytest.raises(ValueError):
        Status.decode(raw)


def test_state_names():
    assert [state_name(n) for n in range(6)] == [
        "Pending",
        "Running",
        "Succeeded",
        "Failed",
        "Canceled",
        "Unknown: 5",
    ]
    assert is_complete(SUCCEEDED) and is_complete(FAILED)
    assert not is_complete(CANCELED) and not is_complete(RUNNING)


def test_file_update_is_read_modify_write(tmp_path):
    status_file = StatusFile(str(tmp_path))
    with pytest.raises(FileNotFoundError):
        status_file.read()

    def first(s):
        s.work_type, s.extra_data = "cat", {"Pid": 0, "Params": ""}

    status_file.update(first)

    def second(s):
        s.state, s.detail = RUNNING, "Running: PID 1"

    record = status_file.update(second)
    assert record == Status(RUNNING, "Running: PID 1", 0, "cat", {"Pid": 0, "Params": ""})
    assert status_file.read() == record
    for name in ("status", "status.lock"):
        assert os.stat(tmp_path / name).st_mode & 0o777 == 0o600


def test_concurrent_updates_lose_nothing(tmp_path):
    status_file = StatusFile(str(tmp_path))

    def bump(s):
        s.stdout_size += 1

    def worker():
        for _ in range(200):
            status_file.update(bump)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert json.loads((tmp_path / "status").read_bytes())["StdoutSize"] == 800
