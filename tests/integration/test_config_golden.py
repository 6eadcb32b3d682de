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
NOT_YET = {
    "work_python": "work-python",
    "worktype_duplicate": "work-command",
    "wss_peer_without_tls": "ws-peer",
    "ws_extraheader_bad": "ws-peer",
    "ws_peer_bad_url": "ws-peer",
    "udp_peer_address_no_port": "udp-peer",
    "work_signing_missing_key": "work-signing",
    "work_signing_no_expiration": "work-signing",
    "verifysignature_without_key": "work-command",
    "tls_server_nodeid_not_in_cert": "tls-server",
    "tls_client_nodeid_not_in_cert": "tls-client",
    "tls_client_bad_fingerprint": "tls-client",
    "tls_server_missing_file": "tls-server",
    "tls_server_ok": "tls-server",
    "cert_init_empty_commonname": "cert-init",
    "cert_init_bad_time": "cert-init",
    "cert_makereq_no_key_option": "cert-makereq",
    "cert_makereq_both_key_options": "cert-makereq",
    "cert_makereq_bits_with_inkey": "cert-makereq",
    "cert_makereq_outkey_without_bits": "cert-makereq",
    "cert_makereq_bad_ip": "cert-makereq",
    "cert_signreq_no_names": "cert-signreq",
    "cert_signreq_prompt_yes": "cert-signreq",
    "cert_signreq_prompt_declined": "cert-signreq",
    "cert_signreq_prompt_eof": "cert-signreq",
    "cert_signreq_prompt_two_words": "cert-signreq",
    "cert_signreq_two_certs_in_cacert": "cert-signreq",
    "cert_signreq_cert_as_key": "cert-signreq",
    "cert_signreq_cert_as_req": "cert-signreq",
    "cert_signreq_wrong_ca_key": "cert-signreq",
    "cert_signreq_long_nodeid": "cert-signreq",
}

#: Upstream crashes (Go panic, exit status 2); we exit 1 with a clear message instead.
OUR_ANSWER = {
    "empty_argument": (1, b"Error: empty argument at position 3\n"),
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
        for file_name, body in case.files.items():
            (workdir / file_name).write_bytes(body)
        process = subprocess.Popen(
            [sys.executable, "-m", "receptor", *case.argv],
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(os.environ, TZ="UTC", PYTHONUNBUFFERED="1"),
        )
        probe = None
        if case.exit_code is None:
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
        stdout, stderr = process.communicate(timeout=30)
        return case, process.returncode, stdout, stderr, probe
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        shutil.rmtree(workdir, ignore_errors=True)


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
    if name in NOT_YET and NOT_YET[name] not in _implemented():
        assert status == 1, (stdout, stderr)
        assert stdout.decode().startswith(f"Error: {NOT_YET[name]} is not implemented yet"), stdout
        assert stderr == b""
        return
    if name in OUR_ANSWER:
        assert (status, stdout, stderr) == (*OUR_ANSWER[name], b"")
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
    assert set(OUR_ANSWER) <= names
    assert names >= ELSEWHERE
