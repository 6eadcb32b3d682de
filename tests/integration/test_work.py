"""Local work units through a real daemon: submit, status, results, cancel, release, restart.

Expected states, Detail strings and file layouts are those of upstream's captures
(tests/data/work). Command runners are detached from the daemon by design, so every test
releases its units before the mesh stops (the ``work_node`` fixture does it).
"""

import hashlib
import json
import os
import random
import socket
import stat
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from .harness import Mesh, ReceptorNode, wait_until

pytestmark = pytest.mark.integration

MIB = 1024 * 1024

WORK_TYPES: list[dict[str, Any]] = [
    {"worktype": "echo", "command": "echo", "params": "hello", "allowruntimeparams": True},
    {"worktype": "cat", "command": "cat"},
    {"worktype": "nosuchcmd", "command": "no-such-command-xyz"},
    {"worktype": "abspathmissing", "command": "/nonexistent/bin/tool"},
    {"worktype": "exit3", "command": "sh", "params": '-c "echo before-exit; exit 3"'},
    {"worktype": "sigkill", "command": "sh", "params": '-c "echo about-to-die; kill -KILL $$"'},
    {"worktype": "sigterm", "command": "sh", "params": '-c "kill -TERM $$"'},
    {"worktype": "sleep", "command": "sleep", "params": "30"},
    {
        "worktype": "ignint",
        "command": "sh",
        "params": "-c \"trap '' INT; echo started; exec sleep 30\"",
    },
    {"worktype": "mixed", "command": "sh", "params": '-c "echo out1; echo err1 >&2; echo out2"'},
    {"worktype": "badquote", "command": "echo", "params": "'unterminated"},
    {"worktype": "sh", "command": "sh", "allowruntimeparams": True},
]


def work_items(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [{"local-only": None}]
    items += [{"work-command": dict(t)} for t in WORK_TYPES]
    items += [{"work-command": dict(t)} for t in extra]
    return items


def release_all(node: ReceptorNode) -> None:
    """Force-release every unit (kills their runners) so nothing outlives the test."""
    if node.process is None or node.process.poll() is not None:
        return
    listing = node.command("work list")
    if isinstance(listing, dict):
        for unit_id in listing:
            node.command(f"work force-release {unit_id}")


@pytest.fixture
def work_node(mesh: Mesh):
    notexec = mesh.workdir / "notexec.sh"
    notexec.write_text("#!/bin/sh\necho hi\n")
    notexec.chmod(0o644)
    node = mesh.node(
        "w1", *work_items({"worktype": "notexec", "command": str(notexec)}), log_level="info"
    )
    try:
        yield node
    finally:
        release_all(node)


# ---------------------------------------------------------------------- helpers


def submit(node: ReceptorNode, work_type: str, payload: bytes = b"", **params: str) -> str:
    request = {"command": "work", "subcommand": "submit", "node": "localhost"}
    request.update(worktype=work_type, **params)
    reply = node.session(json.dumps(request).encode() + b"\n" + payload).decode()
    lines = reply.split("\n")
    assert lines[1].startswith("Work unit created with ID "), reply
    result = json.loads(lines[2])
    assert result["result"] == "Job Started", reply
    return result["unitid"]


def status(node: ReceptorNode, unit_id: str) -> dict[str, Any]:
    return node.command(f"work status {unit_id}")


def wait_state(
    node: ReceptorNode, unit_id: str, states: tuple[int, ...], timeout: float = 30.0
) -> dict[str, Any]:
    """The unit's status once its State is one of ``states``."""
    seen: list[dict[str, Any]] = []

    def reached() -> bool:
        seen.append(status(node, unit_id))
        return seen[-1]["State"] in states

    wait_until(reached, timeout)
    return seen[-1]


def wait_done(node: ReceptorNode, unit_id: str, timeout: float = 30.0) -> dict[str, Any]:
    return wait_state(node, unit_id, (2, 3, 4), timeout)


def results(node: ReceptorNode, unit_id: str, start: int = 0) -> bytes:
    reply = node.session(f"work results {unit_id} {start}\n".encode(), timeout=120)
    header = f"Receptor Control, node {node.node_id}\nStreaming results for work unit {unit_id}\n"
    assert reply.startswith(header.encode()), reply[:200]
    return reply[len(header) :]


def unit_dir(node: ReceptorNode, unit_id: str) -> Path:
    return node.workdir / "data" / node.node_id / unit_id


def listing(path: Path) -> dict[str, int]:
    return {entry.name: stat.S_IMODE(entry.stat().st_mode) for entry in path.iterdir()}


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for its reaper counts as exited)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return True
    return fields[0] in ("Z", "X")


def runner_pids(unit_ids: list[str]) -> list[int]:
    """PIDs of live command runners of these units (runners name themselves ``rcpt-<id>``)."""
    names = {f"rcpt-{unit_id}".encode() for unit_id in unit_ids}
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            comm = Path(f"/proc/{entry}/comm").read_bytes().rstrip(b"\n")
        except OSError:
            continue
        if comm in names and not gone(int(entry)):
            pids.append(int(entry))
    return pids


# ---------------------------------------------------------------------- states and details

FINAL_CASES = [
    # (work type, payload, params, State, Detail, stdout content or None if absent)
    ("echo", b"", None, 2, "exit status 0", b"hello\n"),
    ("cat", b"payload bytes\x00\xff", None, 2, "exit status 0", b"payload bytes\x00\xff"),
    (
        "nosuchcmd",
        b"",
        None,
        3,
        'exec: "no-such-command-xyz": executable file not found in $PATH',
        b"",
    ),
    (
        "abspathmissing",
        b"",
        None,
        3,
        "fork/exec /nonexistent/bin/tool: no such file or directory",
        b"",
    ),
    ("exit3", b"", None, 3, "exit status 3", b"before-exit\n"),
    ("sigkill", b"", None, 3, "signal: killed", b"about-to-die\n"),
    ("sigterm", b"", None, 3, "signal: terminated", b""),
    ("mixed", b"", None, 2, "exit status 0", b"out1\nerr1\nout2\n"),
    ("badquote", b"", None, 3, "EOF found when expecting closing quote", None),
    ("echo", b"", "a  'b c'", 2, "exit status 0", b"hello a b c\n"),
]


@pytest.mark.parametrize("work_type,payload,params,state,detail,output", FINAL_CASES)
def test_final_state_detail_and_files(work_node, work_type, payload, params, state, detail, output):
    extra = {} if params is None else {"params": params}
    unit_id = submit(work_node, work_type, payload, **extra)
    final = wait_done(work_node, unit_id)
    names = {2: "Succeeded", 3: "Failed"}
    assert final == {
        "Detail": detail,
        "ExtraData": None,
        "State": state,
        "StateName": names[state],
        "StdoutSize": len(output or b""),
        "WorkType": work_type,
    }
    path = unit_dir(work_node, unit_id)
    expected = {"status": 0o600, "status.lock": 0o600, "stdin": 0o600}
    if output is not None:
        expected["stdout"] = 0o600
        assert (path / "stdout").read_bytes() == output
    assert listing(path) == expected
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert (path / "stdin").read_bytes() == payload
    record = (path / "status").read_bytes()
    assert record == (
        json.dumps(
            {
                "State": state,
                "Detail": detail,
                "StdoutSize": len(output or b""),
                "WorkType": work_type,
                "ExtraData": None,
            },
            separators=(",", ":"),
        ).encode()
        + b"\n"
    )
    assert results(work_node, unit_id) == (output or b"")


def test_not_executable(work_node):
    unit_id = submit(work_node, "notexec")
    final = wait_done(work_node, unit_id)
    assert final["Detail"] == f"fork/exec {work_node.workdir / 'notexec.sh'}: permission denied"
    assert final["State"] == 3


def test_data_dirs_are_private(work_node):
    unit_id = submit(work_node, "echo")
    wait_done(work_node, unit_id)
    data = work_node.workdir / "data"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "w1").stat().st_mode) == 0o700


def test_waiting_for_input_then_close_runs_with_what_was_sent(work_node):
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(work_node.socket_path)
        sock.sendall(
            b'{"command":"work","subcommand":"submit","node":"localhost","worktype":"cat"}\n'
        )
        sock.sendall(b"partial")
        got = b""
        while got.count(b"\n") < 2:
            got += sock.recv(4096)
        unit_id = got.split(b"with ID ")[1][:8].decode()
        path = unit_dir(work_node, unit_id)
        wait_until(lambda: (path / "stdin").read_bytes() == b"partial")
        assert status(work_node, unit_id) == {
            "Detail": "Waiting for Input Data",
            "ExtraData": {"Pid": 0, "Params": ""},
            "State": 0,
            "StateName": "Pending",
            "StdoutSize": 0,
            "WorkType": "cat",
        }
        assert listing(path) == {"status": 0o600, "status.lock": 0o600, "stdin": 0o600}
    final = wait_done(work_node, unit_id)
    assert (final["State"], final["StdoutSize"]) == (2, 7)
    assert results(work_node, unit_id) == b"partial"


def test_client_reset_mid_stdin_fails_the_unit(work_node):
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(work_node.socket_path)
    sock.sendall(b'{"command":"work","subcommand":"submit","node":"localhost","worktype":"cat"}\n')
    got = b""
    while got.count(b"\n") < 2:
        got += sock.recv(4096)
    unit_id = got.split(b"with ID ")[1][:8].decode()
    sock.sendall(b"some bytes")
    # Unread data in our receive queue makes close() send a reset instead of a FIN.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()
    final = wait_done(work_node, unit_id)
    # A Unix-socket peer that closes never resets: the unit runs with what was sent.
    assert final["State"] == 2
    assert results(work_node, unit_id) == b"some bytes"


def test_tcp_client_reset_mid_stdin_fails_the_unit(mesh):
    port = _free_port()
    node = mesh.node(
        "w2",
        *work_items(),
        {"control-service": {"service": "control2", "tcplisten": f"127.0.0.1:{port}"}},
    )
    try:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.recv(4096)
        sock.sendall(
            b'{"command":"work","subcommand":"submit","node":"localhost","worktype":"cat"}\n'
        )
        got = b""
        while b"Send stdin" not in got:
            got += sock.recv(4096)
        unit_id = got.split(b"with ID ")[1][:8].decode()
        sock.sendall(b"some bytes")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
        final = wait_done(node, unit_id)
        assert final["State"] == 3
        assert final["Detail"] == "Error reading input data: read: connection reset by peer"
        assert node.process.poll() is None
        assert status(node, unit_id)["State"] == 3
    finally:
        release_all(node)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------- running and cancel


def test_running_unit_status_runner_and_cancel(work_node):
    unit_id = submit(work_node, "sleep")
    running = wait_state(work_node, unit_id, (1,))
    runner = running["ExtraData"]["Pid"]
    assert running["ExtraData"] == {"Pid": runner, "Params": "30"}
    command_pid = int(running["Detail"].removeprefix("Running: PID "))
    assert os.getsid(runner) == runner  # the runner leads its own session
    assert os.getsid(command_pid) == runner
    assert Path(f"/proc/{command_pid}/cmdline").read_bytes() == b"sleep\x0030\x00"
    path = unit_dir(work_node, unit_id)
    assert listing(path) == {
        "status": 0o600,
        "status.lock": 0o600,
        "stdin": 0o600,
        "stdout": 0o600,
    }
    assert work_node.command(f"work cancel {unit_id}") == {"cancelled": unit_id}
    assert status(work_node, unit_id) == {
        "Detail": "Canceled",
        "ExtraData": None,
        "State": 4,
        "StateName": "Canceled",
        "StdoutSize": 0,
        "WorkType": "sleep",
    }
    assert (path / "status").read_bytes() == (
        b'{"State":4,"Detail":"Canceled","StdoutSize":0,"WorkType":"sleep","ExtraData":null}\n'
    )
    assert gone(runner)
    assert work_node.command(f"work cancel {unit_id}") == {"cancelled": unit_id}
    # Results of a Canceled unit end (upstream would stream forever).
    assert results(work_node, unit_id) == b""


def test_cancel_of_finished_unit_keeps_its_state(work_node):
    unit_id = submit(work_node, "echo")
    before = wait_done(work_node, unit_id)
    assert work_node.command(f"work cancel {unit_id}") == {"cancelled": unit_id}
    assert status(work_node, unit_id) == before


def test_cancel_of_sigint_ignoring_command_kills_it_after_10s(work_node):
    unit_id = submit(work_node, "ignint")
    wait_until(lambda: status(work_node, unit_id)["StdoutSize"] == 8)
    assert work_node.command(f"work cancel {unit_id}") == {"cancelled": unit_id}
    final = status(work_node, unit_id)
    assert (final["State"], final["Detail"], final["StdoutSize"]) == (4, "Canceled", 8)
    work_node.wait_for_log(r"WARNING .* timed out waiting for pid \d+ to terminate with SIGINT")
    work_node.wait_for_log(r"INFO .* sending SIGKILL to pid \d+")


def test_runner_sigterm_fails_the_unit_killed(work_node):
    unit_id = submit(work_node, "sleep")
    running = wait_state(work_node, unit_id, (1,))
    os.kill(running["ExtraData"]["Pid"], 15)
    final = wait_done(work_node, unit_id)
    assert (final["State"], final["Detail"], final["ExtraData"]) == (3, "Killed", None)


@pytest.mark.parametrize("force", [False, True])
def test_release_of_running_unit(work_node, force):
    unit_id = submit(work_node, "sleep")
    running = wait_state(work_node, unit_id, (1,))
    verb = "force-release" if force else "release"
    assert work_node.command(f"work {verb} {unit_id}") == {"released": unit_id}
    assert not unit_dir(work_node, unit_id).exists()
    assert gone(running["ExtraData"]["Pid"])
    assert work_node.command(f"work status {unit_id}") == f"ERROR: unknown work unit {unit_id}"
    assert work_node.command(f"work release {unit_id}") == f"ERROR: unknown work unit {unit_id}"


def test_release_ends_a_results_stream(work_node):
    unit_id = submit(work_node, "sleep")
    wait_until(lambda: status(work_node, unit_id)["State"] == 1)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(results(work_node, unit_id)))
    reader.start()
    time.sleep(0.3)
    assert work_node.command(f"work release {unit_id}") == {"released": unit_id}
    reader.join(30)
    assert not reader.is_alive()
    assert got == [b""]


def test_abandoned_results_streams_end(work_node):
    unit_id = submit(work_node, "sleep")
    wait_state(work_node, unit_id, (1,))
    tasks = Path(f"/proc/{work_node.process.pid}/task")

    def threads() -> int:
        return len(list(tasks.iterdir()))

    # Sessions of earlier requests may still be finishing: take the quietest moment.
    samples = []
    for _ in range(10):
        samples.append(threads())
        time.sleep(0.03)
    baseline = min(samples)
    clients = []
    for _ in range(5):
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(work_node.socket_path)
        sock.sendall(f"work results {unit_id} 0\n".encode())
        got = b""
        while got.count(b"\n") < 2:
            got += sock.recv(4096)
        clients.append(sock)
    assert threads() > baseline  # the five streams are being served
    for sock in clients:
        sock.close()
    # The streams notice the closed connections although the unit keeps running.
    wait_until(lambda: threads() <= baseline)
    assert status(work_node, unit_id)["State"] == 1


# ---------------------------------------------------------------------- results


def test_results_from_offsets(work_node):
    payload = os.urandom(300_000)
    unit_id = submit(work_node, "cat", payload)
    wait_done(work_node, unit_id)
    rng = random.Random(7)
    offsets = [0, 1, 65535, 65536, 65537, len(payload) - 1, len(payload), len(payload) + 10]
    offsets += [rng.randrange(len(payload)) for _ in range(10)]
    for offset in offsets:
        assert results(work_node, unit_id, offset) == payload[offset:], offset


def test_results_follow_a_running_unit(work_node):
    script = "for i in $(seq 1 200); do echo line-$i; sleep 0.005; done"
    unit_id = submit(work_node, "sh", params=f'-c "{script}"')
    streamed = results(work_node, unit_id)
    assert streamed == b"".join(b"line-%d\n" % i for i in range(1, 201))
    assert status(work_node, unit_id)["State"] == 2


def test_results_stream_cut_and_resumed(work_node):
    script = "for i in $(seq 1 3000); do echo line-$i; done; sleep 0.5; seq 1 20000"
    unit_id = submit(work_node, "sh", params=f'-c "{script}"')
    received = b""
    for cut in (1000, 5000, 17, 20000):
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(work_node.socket_path)
            sock.sendall(f"work results {unit_id} {len(received)}\n".encode())
            sock.shutdown(socket.SHUT_WR)
            buffer = b""
            while buffer.count(b"\n") < 2:
                buffer += sock.recv(1)
            while len(buffer) - buffer.index(b"unit ") < cut + 14:
                chunk = sock.recv(min(4096, cut))
                if not chunk:
                    break
                buffer += chunk
            body = buffer.split(b"\n", 2)[2]
            received += body
    received += results(work_node, unit_id, len(received))
    expected = (unit_dir(work_node, unit_id) / "stdout").read_bytes()
    assert status(work_node, unit_id)["State"] == 2
    assert received == expected
    assert received.startswith(b"line-1\n") and received.endswith(b"\n20000\n")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_50_mib_through_cat(work_node):
    payload = os.urandom(50 * MIB)
    unit_id = submit(work_node, "cat", payload)
    final = wait_done(work_node, unit_id, timeout=120)
    assert (final["State"], final["StdoutSize"]) == (2, len(payload))
    assert _sha(results(work_node, unit_id)) == _sha(payload)


def _receptorctl(
    args: list[str], node: ReceptorNode, exe: list[str]
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*exe, "--socket", node.socket_path, *args],
        capture_output=True,
        timeout=300,
        check=False,
    )


def test_50_mib_with_receptorctl_submit_follow(work_node, tmp_path):
    payload = os.urandom(50 * MIB)
    source = tmp_path / "payload"
    source.write_bytes(payload)
    done = _receptorctl(
        ["work", "submit", "cat", "-p", str(source), "-f", "--rm"],
        work_node,
        [sys.executable, "-m", "receptorctl"],
    )
    assert done.returncode == 0, done.stderr
    # --rm prints the release outcome after the results.
    assert _sha(done.stdout[: len(payload)]) == _sha(payload)
    assert b"released" in done.stdout[len(payload) :]
    assert work_node.command("work list") == {}


def test_upstream_receptorctl_drives_work(upstream_receptorctl, work_node, tmp_path):
    exe = [str(upstream_receptorctl)]
    payload = os.urandom(5 * MIB)
    source = tmp_path / "payload"
    source.write_bytes(payload)
    done = _receptorctl(["work", "submit", "cat", "-p", str(source), "-f"], work_node, exe)
    assert done.returncode == 0, done.stderr
    assert _sha(done.stdout) == _sha(payload)
    listed = json.loads(_receptorctl(["work", "list"], work_node, exe).stdout)
    (unit_id,) = listed
    assert listed[unit_id]["StateName"] == "Succeeded"
    fetched = _receptorctl(["work", "results", unit_id], work_node, exe)
    assert fetched.returncode == 0 and _sha(fetched.stdout) == _sha(payload)
    started = _receptorctl(["work", "submit", "sleep", "-n"], work_node, exe)
    assert started.returncode == 0, started.stderr
    sleeper = next(u for u in work_node.command("work list") if u != unit_id)
    wait_until(lambda: status(work_node, sleeper)["State"] == 1)
    cancelled = _receptorctl(["work", "cancel", sleeper], work_node, exe)
    assert cancelled.returncode == 0, cancelled.stderr
    assert status(work_node, sleeper)["StateName"] == "Canceled"
    released = _receptorctl(["work", "release", unit_id, sleeper], work_node, exe)
    assert released.returncode == 0, released.stderr
    assert work_node.command("work list") == {}


# ---------------------------------------------------------------------- restart


def test_kill_9_daemon_while_units_run(work_node):
    payload = os.urandom(2 * MIB)
    slow = "sleep 1.5; seq 1 50000"
    quick = "sleep 0.3; echo finished-while-down"
    units = {
        submit(work_node, "sh", params=f'-c "{slow}"'): None,
        submit(work_node, "sh", params=f'-c "{quick}"'): b"finished-while-down\n",
        submit(work_node, "cat", payload): payload,
        submit(work_node, "exit3"): b"before-exit\n",
    }
    expected_slow = b"".join(b"%d\n" % i for i in range(1, 50001))
    work_node.kill()
    time.sleep(0.8)
    work_node.start()
    for unit_id, output in units.items():
        final = wait_done(work_node, unit_id, timeout=60)
        want = expected_slow if output is None else output
        assert final["StdoutSize"] == len(want), final
        assert results(work_node, unit_id) == want
        assert final["State"] == (3 if output == b"before-exit\n" else 2), final


def test_restart_pending_and_running_units(work_node):
    with socket.socket(socket.AF_UNIX) as waiting:
        waiting.connect(work_node.socket_path)
        waiting.sendall(
            b'{"command":"work","subcommand":"submit","node":"localhost","worktype":"cat"}\n'
        )
        got = b""
        while got.count(b"\n") < 2:
            got += waiting.recv(4096)
        pending_id = got.split(b"with ID ")[1][:8].decode()
        running_id = submit(work_node, "sleep")
        before = wait_state(work_node, running_id, (1,))
        work_node.stop()
    work_node.start()
    assert status(work_node, pending_id) == {
        "Detail": "Pending at restart",
        "ExtraData": {"Pid": 0, "Params": ""},
        "State": 3,
        "StateName": "Failed",
        "StdoutSize": 0,
        "WorkType": "cat",
    }
    assert status(work_node, running_id) == before
    assert work_node.command(f"work cancel {running_id}") == {"cancelled": running_id}
    after = status(work_node, running_id)
    assert (after["State"], after["Detail"], after["ExtraData"]) == (4, "Canceled", None)
    assert gone(before["ExtraData"]["Pid"])


# ---------------------------------------------------------------------- many units


def test_200_concurrent_units(work_node):
    def one(index: int) -> str:
        return submit(work_node, "echo", params=f"unit-{index}")

    with ThreadPoolExecutor(50) as pool:
        ids = list(pool.map(one, range(200)))
    assert len(set(ids)) == 200
    for index, unit_id in enumerate(ids):
        final = wait_done(work_node, unit_id)
        assert final["State"] == 2, final
        assert results(work_node, unit_id) == f"hello unit-{index}\n".encode()

    def release(unit_id: str) -> Any:
        return work_node.command(f"work release {unit_id}")

    with ThreadPoolExecutor(50) as pool:
        replies = list(pool.map(release, ids))
    assert replies == [{"released": unit_id} for unit_id in ids]
    assert work_node.command("work list") == {}
    assert list((work_node.workdir / "data" / "w1").iterdir()) == []
    assert runner_pids(ids) == []


# ---------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "request_bytes,reply",
    [
        (
            b'{"command":"work","subcommand":"submit","node":"w1","worktype":"nosuch"}',
            "ERROR: unknown work type nosuch",
        ),
        (
            b'{"command":"work","subcommand":"submit","node":"w1","worktype":"remote"}',
            "ERROR: unknown work type remote",
        ),
        (
            b'{"command":"work","subcommand":"submit","node":"w1","worktype":"cat","params":"x"}',
            "ERROR: extra params provided but not allowed",
        ),
        (
            b'{"command":"work","subcommand":"submit","node":"w1","worktype":"cat","params":["x"]}',
            "ERROR: submit parameters must all be strings and params is not",
        ),
        (
            b'{"command":"work","subcommand":"submit","node":"w1","worktype":7}',
            "ERROR: submit parameters must all be strings and worktype is not",
        ),
        (b'{"command":"work","subcommand":"submit","node":"w1"}', "ERROR: field worktype missing"),
        (
            b'{"command":"work","subcommand":"submit","node":"w1","worktype":"cat","ttl":"1s"}',
            "ERROR: ttl option is intended for remote work only",
        ),
        (
            b'{"command":"work","subcommand":"submit","node":"w1","worktype":"cat","signature":"x"}',
            "ERROR: work type did not expect a signature",
        ),
        (
            b'{"command":"work","subcommand":"submit","node":"elsewhere","worktype":"cat",'
            b'"secret_token":"x"}',
            "ERROR: cannot send secrets over a non-TLS connection",
        ),
        (b"work submit w1", "ERROR: work submit requires a target node and work type"),
        (b"work results abc", "ERROR: unknown work unit abc"),
        (
            b"work results abc x",
            "ERROR: error converting start position to integer: "
            'strconv.ParseInt: parsing "x": invalid syntax',
        ),
        (
            b"work results abc 99999999999999999999",
            "ERROR: error converting start position to integer: "
            'strconv.ParseInt: parsing "99999999999999999999": value out of range',
        ),
        (
            b"work results abc 1 2",
            "ERROR: work results only takes a unit ID and optional start position",
        ),
        (
            b'{"command":"work","subcommand":"results","unitid":"abc","startpos":"0"}',
            "ERROR: field startpos value 0 is not convertible to an int",
        ),
        (
            b'{"command":"work","subcommand":"results","unitid":"abc","startpos":null}',
            "ERROR: field startpos value %!s(<nil>) is not convertible to an int",
        ),
        (
            b'{"command":"work","subcommand":"results","unitid":5,"startpos":0}',
            "ERROR: field unitid must be a string",
        ),
        (
            b'{"command":"work","subcommand":"status","unitid":5}',
            "ERROR: field unitid must be a string",
        ),
        (b'{"command":"work","subcommand":"status"}', "ERROR: field unitid missing"),
        (b'{"command":"work","subcommand":5}', "ERROR: field subcommand must be a string"),
        (b"work status ../..", "ERROR: unknown work unit ../.."),
        (b"work status .", "ERROR: unknown work unit ."),
        (b"work cancel nosuch", "ERROR: unknown work unit nosuch"),
        (b"work force-release nosuch", "ERROR: unknown work unit nosuch"),
        (b"work list nosuch", "ERROR: unknown work unit nosuch"),
        (b"work status", "ERROR: work status requires a unit ID"),
        (b"work cancel a b", "ERROR: work cancel does not take parameters after the unit ID"),
        (b"work frobnicate", "ERROR: bad command"),
        (b"work", "ERROR: bad command"),
    ],
)
def test_bad_requests(work_node, request_bytes, reply):
    assert work_node.command(request_bytes.decode()) == reply
    assert work_node.process.poll() is None


def test_unwritable_data_dir(mesh):
    blocker = mesh.workdir / "not-a-dir"
    blocker.write_text("")
    node = mesh.node("w3", *work_items(), start=False)
    node.items[0]["node"]["datadir"] = str(blocker / "data")
    node.write_config(node.items)
    node.start()
    reply = node.command('{"command":"work","subcommand":"submit","node":"w3","worktype":"cat"}')
    assert reply == f"ERROR: {blocker / 'data'}: not a directory"
    assert node.command("work list") == {}
    assert node.process.poll() is None


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 512 KiB tmpfs: a disk that fills up (needs root and mount rights)."""
    mountpoint = tmp_path / "tiny"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_full_disk_fails_the_unit_and_frees_its_space(mesh, tiny_tmpfs):
    node = mesh.node("w4", *work_items(), start=False)
    node.items[0]["node"]["datadir"] = str(tiny_tmpfs / "data")
    node.write_config(node.items)
    node.start()
    request = b'{"command":"work","subcommand":"submit","node":"w4","worktype":"cat"}\n'
    reply = node.session(request + os.urandom(2 * MIB)).decode()
    assert "ERROR: write " in reply and reply.endswith(": no space left on device\n"), reply
    (unit_id,) = node.command("work list")
    failed = status(node, unit_id)
    assert failed["StateName"] == "Failed"
    assert failed["Detail"].startswith("Error writing input data: write ")
    # The partial input was given back: the next unit fits and runs.
    small = os.urandom(64 * 1024)
    second = submit(node, "cat", small)
    assert wait_done(node, second)["StateName"] == "Succeeded"
    assert results(node, second) == small
    assert node.process.poll() is None
    release_all(node)


def test_negative_and_garbage(work_node):
    unit_id = submit(work_node, "echo")
    wait_done(work_node, unit_id)
    assert work_node.command(f"work results {unit_id} -1") == "ERROR: start position -1 is negative"
    garbage = work_node.session(b'{"command":"work","subcommand":"submit",\n').decode()
    assert garbage.split("\n")[1].startswith("ERROR: ")
    assert garbage.split("\n")[2] == "ERROR: Unknown command"
    assert work_node.command("work list") == {unit_id: status(work_node, unit_id)}


# ---------------------------------------------------------------------- signed work


def _rsa_pair(directory: Path, name: str) -> tuple[Any, Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = directory / f"{name}.key"
    public = directory / f"{name}.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key, private, public


def _tcp_session(port: int, request: bytes) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        return b"".join(iter(lambda: sock.recv(65536), b"")).decode()


@pytest.fixture
def signed_node(mesh: Mesh):
    key, private, public = _rsa_pair(mesh.workdir, "good")
    other, _, _ = _rsa_pair(mesh.workdir, "other")
    port = _free_port()
    node = mesh.node(
        "s1",
        {"local-only": None},
        {"work-signing": {"privatekey": str(private), "tokenexpiration": "1h"}},
        {"work-verification": {"publickey": str(public)}},
        {"work-command": {"worktype": "signed", "command": "cat", "verifysignature": True}},
        {"work-command": {"worktype": "plain", "command": "cat"}},
        {"control-service": {"service": "ctl2", "tcplisten": f"127.0.0.1:{port}"}},
    )
    try:
        yield node, port, key, other
    finally:
        release_all(node)


def _token(key: Any, audience: Any, expires_in: float = 60.0, alg: str = "RS512") -> str:
    import jwt

    return jwt.encode({"aud": audience, "exp": int(time.time() + expires_in)}, key, algorithm=alg)


def _signed_submit(port: int, work_type: str, signature: str | None) -> str:
    request: dict[str, str] = {
        "command": "work",
        "subcommand": "submit",
        "node": "s1",
        "worktype": work_type,
    }
    if signature is not None:
        request["signature"] = signature
    reply = _tcp_session(port, json.dumps(request).encode() + b"\nsigned payload")
    return reply.split("\n", 1)[1]


def test_signed_submission_accepted(signed_node):
    node, port, key, _ = signed_node
    for token in (_token(key, ["s1"]), _token(key, "s1"), _token(key, ["x", "s1"], alg="RS256")):
        reply = _signed_submit(port, "signed", token)
        assert reply.startswith("Work unit created with ID "), reply
        unit_id = json.loads(reply.split("\n")[1])["unitid"]
        wait_done(node, unit_id)
        assert results(node, unit_id) == b"signed payload"
        # Later commands on the unit over TCP need a signature too.
        cancel = {"command": "work", "subcommand": "cancel", "unitid": unit_id}
        assert _tcp_session(port, json.dumps(cancel).encode() + b"\n").endswith(
            "ERROR: could not verify signature: signature is empty\n"
        )
        cancel["signature"] = _token(key, ["s1"])
        assert _tcp_session(port, json.dumps(cancel).encode() + b"\n").endswith(
            json.dumps({"cancelled": unit_id}, separators=(",", ":")) + "\n"
        )


@pytest.mark.parametrize(
    "case,expected",
    [
        ("missing", "ERROR: could not verify signature: signature is empty"),
        ("empty", "ERROR: could not verify signature: signature is empty"),
        ("expired", "ERROR: could not verify signature: token is expired by "),
        ("wrong key", "ERROR: could not verify signature: crypto/rsa: verification error"),
        ("wrong node", "ERROR: token audience did not match node ID"),
        (
            "garbage",
            "ERROR: could not verify signature: token contains an invalid number of segments",
        ),
    ],
)
def test_bad_signatures_refused(signed_node, case, expected):
    node, port, key, other = signed_node
    signature = {
        "missing": None,
        "empty": "",
        "expired": _token(key, ["s1"], expires_in=-5),
        "wrong key": _token(other, ["s1"]),
        "wrong node": _token(key, ["s2"]),
        "garbage": "not-a-token",
    }[case]
    reply = _signed_submit(port, "signed", signature)
    assert reply.startswith(expected), reply
    assert node.command("work list") == {}


def test_signature_rules_by_transport_and_type(signed_node):
    node, port, key, _ = signed_node
    # Unix-socket users are trusted: no signature needed for a verifying type.
    unit_id = submit(node, "signed", b"trusted")
    assert wait_done(node, unit_id)["State"] == 2
    # A signature for a type that does not verify is refused, whatever the transport.
    # (The payload bytes that follow are then read as a command, as upstream does.)
    assert _signed_submit(port, "plain", _token(key, ["s1"])).startswith(
        "ERROR: work type did not expect a signature\n"
    )
    assert node.command(
        '{"command":"work","subcommand":"submit","node":"s1","worktype":"plain","signature":"x"}'
    ) == ("ERROR: work type did not expect a signature")
    advertised = node.status()["Advertisements"]
    work = next(ad["WorkCommands"] for ad in advertised if ad["Service"] == "control")
    assert {"WorkType": "signed", "Secure": True} in work
    assert {"WorkType": "plain", "Secure": False} in work
