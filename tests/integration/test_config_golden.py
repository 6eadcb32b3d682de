"""Replay every upstream configuration capture (tests/data/config) through the real binary.

Each case runs ``python -m receptor`` with the recorded arguments in an empty directory
holding the recorded files. A case either reproduces upstream's stdout, stderr and exit
status (log timestamps normalised), or is listed below with the reason it differs:
entities that later issues build are refused by name, and upstream crashes are answered
with a clear error instead.
"""

import ast
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from receptor import __version__

from ..unit.config._golden import index, load

pytestmark = pytest.mark.integration

#: Cases whose entities are not built yet: the daemon must refuse them by name.
NOT_YET: dict[str, str] = {}

#: Upstream crashes (Go panic, exit status 2); we exit 1 with a clear message instead.
OUR_ANSWER = {
    "empty_argument": (1, b"Error: empty argument at position 3\n"),
}

#: Upstream crashes (Go panic) and we start normally instead: the daemon must keep running
#: until SIGTERM, logging only that it started. The files the capture describes but does not
#: hold are made here.
OUR_START = {
    # No tokenexpiration: upstream dereferences nil; we default to 5 minutes.
    "work_signing_no_expiration": "key.pem",
}

#: Needs a daemon already running in the same directory: tested in test_control_service.
ELSEWHERE = {"control_socket_locked"}


def normalise(output: bytes) -> bytes:
    return re.sub(
        rb"^(ERROR|WARNING|INFO|DEBUG) \d{4}/\d\d/\d\d \d\d:\d\d:\d\d ",
        rb"\1 T ",
        output,
        flags=re.M,
    )


def _probe(socket_path: Path) -> tuple[bytes, int]:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(socket_path))
        sock.sendall(b'{"command":"status","requested_fields":["NodeID"]}\n')
        sock.shutdown(socket.SHUT_WR)
        reply = b"".join(iter(lambda: sock.recv(4096), b""))
    return reply, stat.S_IMODE(os.stat(socket_path).st_mode)


def run_case(name: str):
    case = load(name)
    workdir = Path(tempfile.mkdtemp(prefix="rcfg", dir="/tmp"))
    try:
        _prepare(name, workdir)
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    try:
        for file_name, body in case.files.items():
            (workdir / file_name).write_bytes(body)
        if name in OUR_START:
            (workdir / OUR_START[name]).write_bytes(_rsa_key_pem())
        stdin = _golden_stdin(name)
        process = subprocess.Popen(
            [sys.executable, "-m", "receptor", *case.argv],
            cwd=workdir,
            stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(os.environ, TZ="UTC", PYTHONUNBUFFERED="1"),
        )
        probe = None
        if case.exit_code is None or name in OUR_START:
            # Upstream kept running until the harness sent SIGTERM: so must we.
            sock = workdir / "c.sock"
            deadline = time.monotonic() + 15
            while _wants_socket(case) and not sock.exists() and time.monotonic() < deadline:
                if process.poll() is not None:
                    break
                time.sleep(0.05)
            time.sleep(1.0)
            if process.poll() is None:
                if sock.exists():
                    probe = _probe(sock)
                process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(input=stdin, timeout=30)
        return case, process.returncode, stdout, stderr, probe
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def _prepare(name: str, workdir: Path) -> None:
    """Run the case's ``### prepared with: receptor ...`` commands (certificates) with our
    receptor, in order, in the case's directory. While the command itself is not built
    yet (refused by name) the files are left out: the case then fails unless it is one
    that must be refused by name too."""
    text = (Path(__file__).parent.parent / "data" / "config" / f"{name}.txt").read_text()
    for line in re.findall(r"^### prepared with: (.*)$", text, flags=re.M):
        if not line.startswith("receptor "):  # e.g. "cat ca.crt ca.crt > two.crt"
            subprocess.run(["/bin/sh", "-c", line], cwd=workdir, check=True, timeout=60)
            continue
        done = subprocess.run(
            [sys.executable, "-m", "receptor", *shlex.split(line)[1:]],
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
        )
        if done.returncode != 0 and b"is not implemented yet" in done.stdout:
            return
        assert done.returncode == 0, (line, done.stdout, done.stderr)


def _golden_stdin(name: str) -> bytes | None:
    """What the capture fed on stdin (``### stdin: b'yes\\n'``); None for /dev/null."""
    text = (Path(__file__).parent.parent / "data" / "config" / f"{name}.txt").read_text()
    match = re.search(r"^### stdin: (b'.*')$", text, flags=re.M)
    return None if match is None else ast.literal_eval(match.group(1))


def _rsa_key_pem() -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _wants_socket(case) -> bool:
    return "filename=c.sock" in case.argv or any(b"c.sock" in b for b in case.files.values())


def _golden_probe(name: str) -> tuple[bytes, int] | None:
    text = (Path(__file__).parent.parent / "data" / "config" / f"{name}.txt").read_text()
    match = re.search(r"control socket session: (b'.*?'); socket file mode (0o\d+)", text)
    if match is None:
        return None
    return ast.literal_eval(match.group(1)), int(match.group(2), 8)


def _implemented() -> frozenset[str]:
    from receptor._daemon import Daemon
    from receptor.config import parse_command_line

    return Daemon(parse_command_line(["--local-only"]), [], "receptor").implemented()


@pytest.mark.parametrize("name", sorted(index()))
def test_config_golden_case(name):
    if name in ELSEWHERE:
        return
    case, status, stdout, stderr, probe = run_case(name)
    if name in NOT_YET:
        assert status == 1, (stdout, stderr)
        assert stdout.decode().startswith(f"Error: {NOT_YET[name]} is not implemented yet"), stdout
        assert stderr == b""
        return
    if name in OUR_ANSWER:
        assert (status, stdout, stderr) == (*OUR_ANSWER[name], b"")
        return
    if name in OUR_START:
        assert (status, normalise(stdout), stderr) == (
            -signal.SIGTERM,
            b"INFO T Initialization complete\n",
            b"",
        )
        return
    if case.exit_code is None:
        assert status == -signal.SIGTERM
    else:
        assert status == case.exit_code
    assert normalise(stdout) == normalise(case.stdout.replace(b"1.4.9", __version__.encode()))
    assert stderr == case.stderr
    expected_probe = _golden_probe(name)
    if expected_probe is not None:
        assert probe == expected_probe


def test_the_exception_lists_name_real_cases():
    names = set(index())
    assert set(NOT_YET) <= names
    # An entity that is built must replay its cases exactly: no stale "not yet" entries.
    assert not set(NOT_YET.values()) & _implemented()
    assert set(OUR_ANSWER) <= names
    assert set(OUR_START) <= names
    assert names >= ELSEWHERE
