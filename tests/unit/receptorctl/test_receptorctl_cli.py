"""The `receptorctl` command line against a scripted daemon.

Tests that take `any_rc` also run the upstream client when `RECEPTORCTL_UPSTREAM` is set: there
the two must agree. Tests that take `rc_run` cover our own choices (see `receptorctl.cli`).
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from receptor._version import __version__

WARNING = "Warning: receptorctl and receptor are different versions, they may not be compatible\n"
VERSION_REQUEST = b'{"command":"status","requested_fields":["Version"]}\n'
SUCCEEDED = b'{"Detail":"exit status 0","ExtraData":null,"State":2,"StateName":"Succeeded","StdoutSize":6,"WorkType":"echo"}\n'  # noqa: E501
FAILED = b'{"Detail":"exit status 3","ExtraData":null,"State":3,"StateName":"Failed","StdoutSize":12,"WorkType":"exit3"}\n'  # noqa: E501

# Reload replies observed from the Go daemon (spec/config.md §5).
RELOAD_CODE_3 = (
    b'{"Error":"a non-reloadable config action \'work-command\' was modified or added. Must '
    b'restart receptor for these changes to take effect ERRORCODE 3","Success":false}\n'
)
RELOAD_CODE_4 = (
    b'{"Error":"no configuration file was provided, reload function not set ERRORCODE 4",'
    b'"Success":false}\n'
)


def submit_line(**members: str) -> bytes:
    """A work-submit request as receptorctl writes it (Python's JSON spacing, its key order)."""
    request = {"command": "work", "subcommand": "submit", **members}
    return json.dumps(request).encode() + b"\n"


def script_submit(server: Any, steps: Any, request: bytes, unit: str = "GZ2jZnmz") -> None:
    server.on(
        request,
        f"Work unit created with ID {unit}. Send stdin data and EOF.\n".encode(),
        steps.READ_PAYLOAD,
        steps.go_json({"result": "Job Started", "unitid": unit}),
    )


def script_results(server: Any, steps: Any, unit: str, output: bytes, status: bytes) -> None:
    server.on(
        f"work results {unit} 0",
        f"Streaming results for work unit {unit}\n".encode(),
        output,
        steps.CLOSE,
    )
    server.on(f"work status {unit}", status)


# -- the version check ------------------------------------------------------------------------


def test_no_warning_when_versions_match(any_receptor: Any, rc_run: Callable[..., Any]) -> None:
    any_receptor.on_version(__version__).on("reload", b'{"Success":true}\n')
    result = rc_run(["--socket", any_receptor.address, "reload"])
    assert (result.stdout, result.stderr, result.exit_code) == ("Reload successful\n", "", 0)
    assert any_receptor.request_lines() == [VERSION_REQUEST, b"reload\n"]
    assert any_receptor.connections == 1


def test_warning_when_versions_differ(any_receptor: Any, rc_run: Callable[..., Any]) -> None:
    any_receptor.on_version("1.4.9").on("reload", b'{"Success":true}\n')
    result = rc_run(["--socket", any_receptor.address, "reload"])
    assert (result.stdout, result.stderr, result.exit_code) == ("Reload successful\n", WARNING, 0)


def test_version_command(receptor: Any, rc_run: Callable[..., Any]) -> None:
    receptor.on_version("1.4.9")
    result = rc_run(["--socket", receptor.address, "version"])
    assert result.stdout == f"receptorctl  {__version__}\nreceptor     1.4.9\n"
    assert (result.stderr, result.exit_code) == (WARNING, 0)
    assert receptor.request_lines() == [VERSION_REQUEST]


def test_version_command_without_warning(receptor: Any, rc_run: Callable[..., Any]) -> None:
    receptor.on_version(__version__)
    result = rc_run(["--socket", receptor.address, "version"])
    assert result.stdout == f"receptorctl  {__version__}\nreceptor     {__version__}\n"
    assert result.stderr == ""


def test_socket_from_the_environment(receptor: Any, any_rc: Callable[..., Any]) -> None:
    receptor.on_version("1.4.9").on("reload", b'{"Success":true}\n')
    env = {**os.environ, "RECEPTORCTL_SOCKET": receptor.address}
    result = any_rc(["reload"], env=env)
    assert (result.stdout, result.stderr, result.exit_code) == ("Reload successful\n", WARNING, 0)


# -- reload -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "stderr", "code"),
    [
        (
            RELOAD_CODE_3,
            "ERROR: a non-reloadable config action 'work-command' was modified or added. Must "
            "restart receptor for these changes to take effect ERRORCODE 3\n",
            3,
        ),
        (
            RELOAD_CODE_4,
            "ERROR: no configuration file was provided, reload function not set ERRORCODE 4\n",
            4,
        ),
        (b'{"Error":"something else","Success":false}\n', "ERROR: something else\n", 5),
        (b"ERROR: Unknown command\n", "ERROR: Unknown command\n", 1),
    ],
)
def test_reload_exit_codes(
    reply: bytes, stderr: str, code: int, receptor: Any, any_rc: Callable[..., Any]
) -> None:
    receptor.on_version("1.4.9").on("reload", reply)
    result = any_rc(["--socket", receptor.address, "reload"])
    assert (result.stdout, result.stderr, result.exit_code) == ("", WARNING + stderr, code)


# -- usage --------------------------------------------------------------------------------------


def test_help_needs_no_socket(any_rc: Callable[..., Any]) -> None:
    result = any_rc(["work", "submit", "--help"])
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: receptorctl work submit [OPTIONS] WORKTYPE [CMDPARAMS]")
    assert "-a, --param TEXT" in result.stdout


def test_root_help_marks_socket_required(any_rc: Callable[..., Any]) -> None:
    result = any_rc(["--help"])
    assert result.exit_code == 0
    assert (
        "[env\n                                var: RECEPTORCTL_SOCKET; required]" in result.stdout
    )


def test_python_dash_m() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "receptorctl", "--help"], capture_output=True, timeout=30
    )
    assert done.returncode == 0
    assert done.stdout.startswith(b"Usage: python -m receptorctl [OPTIONS] COMMAND [ARGS]...")


def test_help_does_not_connect(receptor: Any, rc_run: Callable[..., Any]) -> None:
    """Ours differs: upstream connects (and checks the version) before showing the help."""
    result = rc_run(["--socket", receptor.address, "ping", "--help"])
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: receptorctl ping [OPTIONS] NODE")
    assert receptor.connections == 0


@pytest.mark.parametrize(
    ("args", "stderr"),
    [
        (["status"], "ERROR: Missing parameter: socket\n"),
        (
            ["--socket", "/nonexistent/x.sock", "status"],
            "ERROR: Socket path does not exist: /nonexistent/x.sock\n",
        ),
        (["--socket", "tcp://host", "status"], "ERROR: Invalid socket address tcp://host\n"),
        (["--socket", "a:b", "status"], "ERROR: Invalid socket address a:b\n"),
        (
            ["-c", "x.yml", "--socket", "/x", "status"],
            "ERROR: Must specify both config and tlsclient\n",
        ),
        (
            ["-c", "x.yml", "--rootcas", "ca", "--socket", "/x", "status"],
            "ERROR: Cannot specify both config and rootcas, key, cert\n",
        ),
        (["--socket", "/x", "bogus"], "ERROR: No such command 'bogus'.\n"),
        (["--socket", "/x"], "ERROR: Missing command.\n"),
    ],
)
def test_usage_errors(args: list[str], stderr: str, any_rc: Callable[..., Any]) -> None:
    result = any_rc(args)
    assert (result.stdout, result.stderr, result.exit_code) == ("", stderr, 1)


def test_no_arguments_prints_the_help_as_an_error(any_rc: Callable[..., Any]) -> None:
    result = any_rc([])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("ERROR: Usage: receptorctl [OPTIONS] COMMAND [ARGS]...\n")
    assert result.stderr.endswith("  work        Commands related to unit-of-work processing\n")


def test_work_without_a_subcommand(receptor: Any, any_rc: Callable[..., Any]) -> None:
    receptor.on_version("1.4.9")
    result = any_rc(["--socket", receptor.address, "work"])
    assert result.exit_code == 1
    assert result.stderr.startswith(WARNING + "ERROR: Usage: receptorctl work [OPTIONS] COMMAND")


# -- work submit --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "stderr"),
    [
        ([], "ERROR: Must provide one of --payload, --no-payload or --payload-literal.\n"),
        (
            ["-n", "-l", "x"],
            "ERROR: Cannot provide more than one of --payload, --no-payload and "
            "--payload-literal.\n",
        ),
        (["-l", ""], "ERROR: Must provide one of --payload, --no-payload or --payload-literal.\n"),
        (
            ["-p", "/nonexistent/payload"],
            "ERROR: Failed to load payload file: [Errno 2] No such file or directory: "
            "'/nonexistent/payload'\n",
        ),
    ],
)
def test_submit_payload_errors(
    args: list[str], stderr: str, receptor: Any, any_rc: Callable[..., Any]
) -> None:
    receptor.on_version("1.4.9")
    result = any_rc(["--socket", receptor.address, "work", "submit", "echo", *args])
    assert (result.stdout, result.stderr, result.exit_code) == ("", WARNING + stderr, 1)
    assert receptor.request_lines() == [VERSION_REQUEST]


def test_submit_with_every_option(
    receptor: Any, steps: Any, any_rc: Callable[..., Any], tmp_path: Path
) -> None:
    """Key order and spacing of the request are upstream's; `@file` values are read,
    `@@` values sent as they are; command parameters are appended to `params`."""
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret\n")
    payload = tmp_path / "payload.bin"
    payload.write_bytes(b"\x00\x01binary\xff")
    receptor.on_version("1.4.9")
    request = submit_line(
        node="n2",
        worktype="echo",
        tlsclient="tlsc",
        ttl="1h20m30s",
        signwork="true",
        params="base extra1 extra2",
        secret_x="s3cret\n",
        literal="@@kept",
    )
    script_submit(receptor, steps, request)
    args = [
        "--socket",
        receptor.address,
        "work",
        "submit",
        "echo",
        "--node",
        "n2",
        "-p",
        str(payload),
        "--tls-client",
        "tlsc",
        "--ttl",
        "1h20m30s",
        "--signwork",
        "-a",
        "params=base",
        "-a",
        f"secret_x=@{secret}",
        "--param",
        "literal=@@kept",
        "extra1",
        "extra2",
    ]
    result = any_rc(args)
    assert (result.stdout, result.stderr, result.exit_code) == (
        "Result: Job Started\nUnit ID: GZ2jZnmz\n",
        WARNING,
        0,
    )
    assert receptor.request_lines() == [VERSION_REQUEST, request]
    assert receptor.payloads == [b"\x00\x01binary\xff"]


def test_submit_payload_from_stdin(receptor: Any, steps: Any, any_rc: Callable[..., Any]) -> None:
    receptor.on_version("1.4.9")
    script_submit(receptor, steps, submit_line(node="localhost", worktype="cat"))
    result = any_rc(
        ["--socket", receptor.address, "work", "submit", "cat", "-p", "-"], input=b"in\n"
    )
    assert result.exit_code == 0, result.stderr
    assert receptor.payloads == [b"in\n"]


@pytest.mark.parametrize(
    ("reply", "stderr"),
    [
        (
            b"ERROR: unknown work type nosuch\n",
            "ERROR: Failed to start work unit: unknown work type nosuch\n",
        ),
        (b"something else\n", "ERROR: Failed to start work unit\n"),
    ],
)
def test_submit_refused(
    reply: bytes, stderr: str, receptor: Any, any_rc: Callable[..., Any]
) -> None:
    receptor.on_version("1.4.9").on(submit_line(node="localhost", worktype="nosuch"), reply)
    result = any_rc(["--socket", receptor.address, "work", "submit", "nosuch", "-n"])
    assert (result.stdout, result.stderr, result.exit_code) == ("", WARNING + stderr, 101)


def test_submit_remote_error_after_payload(
    receptor: Any, steps: Any, any_rc: Callable[..., Any]
) -> None:
    receptor.on_version("1.4.9")
    receptor.on(
        submit_line(node="localhost", worktype="cat"),
        b"Work unit created with ID abc. Send stdin data and EOF.\n",
        steps.READ_PAYLOAD,
        b"ERROR: Error starting worker: boom\n",
    )
    result = any_rc(["--socket", receptor.address, "work", "submit", "cat", "-l", "x"])
    assert result.stderr == WARNING + "ERROR: Remote error: ERROR: Error starting worker: boom\n"
    assert result.exit_code == 101


def test_submit_illegal_parameter(receptor: Any, any_rc: Callable[..., Any]) -> None:
    receptor.on_version("1.4.9")
    result = any_rc(["--socket", receptor.address, "work", "submit", "cat", "-n", "-a", "node=x"])
    assert result.stderr == WARNING + "ERROR: Duplicate or illegal parameter node\n"
    assert result.exit_code == 101


def test_submit_parameter_without_equals(receptor: Any, rc_run: Callable[..., Any]) -> None:
    receptor.on_version("1.4.9")
    result = rc_run(["--socket", receptor.address, "work", "submit", "cat", "-n", "-a", "novalue"])
    assert result.stderr == WARNING + "ERROR: --param 'novalue' is not in key=value format\n"
    assert result.exit_code == 101


def test_submit_job_submitted(
    golden_work: Callable[[str], Any], receptor: Any, steps: Any, any_rc: Callable[..., Any]
) -> None:
    """A remote node that cannot be reached yet (recorded: work/remote_unreachable)."""
    submit = golden_work("remote_unreachable")[0]
    created, result_line = submit.reply_lines
    receptor.on_version("1.4.9")
    request = submit_line(node="far", worktype="echo")
    assert json.loads(request) == json.loads(submit.request)
    receptor.on(request, created, steps.READ_PAYLOAD, result_line)
    result = any_rc(["--socket", receptor.address, "work", "submit", "echo", "--node", "far", "-n"])
    assert result.stdout == "Result: Job Submitted\nUnit ID: zTHOBmJc\n"
    assert receptor.payloads == [b""]


def test_submit_follow_a_failing_unit(
    golden_work: Callable[[str], Any], receptor: Any, steps: Any, any_rc: Callable[..., Any]
) -> None:
    """Recorded: work/exit_nonzero. The unit's output, then its failure, exit 1."""
    sessions = {s.name.split()[0]: s for s in golden_work("exit_nonzero")}
    receptor.on_version("1.4.9")
    created, started = sessions["submit"].reply_lines
    receptor.on(
        submit_line(node="localhost", worktype="exit3"), created, steps.READ_PAYLOAD, started
    )
    header, _, output = sessions["results"].reply.partition(b"\n")
    receptor.on(sessions["results"].request, header + b"\n", output, steps.CLOSE)
    receptor.on(sessions["status"].request, sessions["status"].reply)
    result = any_rc(["--socket", receptor.address, "work", "submit", "exit3", "-n", "-f"])
    assert (result.stdout, result.stderr, result.exit_code) == (
        "before-exit\n",
        WARNING + "ERROR: Remote unit failed: exit status 3\n\n",
        1,
    )
    assert receptor.connections == 3


def test_submit_rm_without_follow(receptor: Any, steps: Any, any_rc: Callable[..., Any]) -> None:
    receptor.on_version("1.4.9")
    script_submit(receptor, steps, submit_line(node="localhost", worktype="echo"))
    receptor.on("work release GZ2jZnmz", b'{"released":"GZ2jZnmz"}\n')
    result = any_rc(["--socket", receptor.address, "work", "submit", "echo", "-n", "--rm"])
    assert result.stdout == "Result: Job Started\nUnit ID: GZ2jZnmz\n(GZ2jZnmz, released)\n"
    assert result.stderr == (
        WARNING + "Warning: using --rm without --follow. Unit results will never be seen.\n"
    )
    assert result.exit_code == 0
    assert receptor.connections == 2


def test_submit_follow_and_rm(receptor: Any, steps: Any, any_rc: Callable[..., Any]) -> None:
    receptor.on_version("1.4.9")
    script_submit(receptor, steps, submit_line(node="localhost", worktype="echo"))
    script_results(receptor, steps, "GZ2jZnmz", b"hello\n", SUCCEEDED)
    receptor.on("work release GZ2jZnmz", b'{"released":"GZ2jZnmz"}\n')
    result = any_rc(["--socket", receptor.address, "work", "submit", "echo", "-n", "-f", "--rm"])
    assert (result.stdout, result.stderr, result.exit_code) == (
        "hello\n(GZ2jZnmz, released)\n",
        WARNING,
        0,
    )
    # submit; results; status and release on one connection
    assert receptor.connections == 3
    assert receptor.request_lines()[-2:] == [b"work status GZ2jZnmz\n", b"work release GZ2jZnmz\n"]


# -- work results, cancel, release ------------------------------------------------------------


def test_results_pass_bytes_through(receptor: Any, steps: Any, any_rc: Callable[..., Any]) -> None:
    output = "héllo wörld\n".encode() * 5000 + b"no newline at end"
    receptor.on_version("1.4.9")
    script_results(receptor, steps, "u1", output, SUCCEEDED)
    result = any_rc(["--socket", receptor.address, "work", "results", "u1"])
    assert (result.stdout_bytes, result.stderr, result.exit_code) == (output, WARNING, 0)
    assert receptor.connections == 2


def test_results_of_a_failed_unit(receptor: Any, steps: Any, any_rc: Callable[..., Any]) -> None:
    receptor.on_version("1.4.9")
    script_results(receptor, steps, "u1", b"before-exit\n", FAILED)
    result = any_rc(["--socket", receptor.address, "work", "results", "u1"])
    assert (result.stdout, result.exit_code) == ("before-exit\n", 1)
    assert result.stderr == WARNING + "ERROR: Remote unit failed: exit status 3\n\n"


@pytest.mark.parametrize("command", ["cancel", "release"])
def test_nothing_to_do(command: str, receptor: Any, any_rc: Callable[..., Any]) -> None:
    receptor.on_version("1.4.9")
    result = any_rc(["--socket", receptor.address, "work", command])
    assert (result.stdout, result.exit_code) == ("", 0)
    assert result.stderr == WARNING + "Warning: No unit IDs supplied: Not doing anything\n"
    assert receptor.request_lines() == [VERSION_REQUEST]


def test_cancel_several_stops_at_the_first_error(receptor: Any, any_rc: Callable[..., Any]) -> None:
    receptor.on_version("1.4.9")
    receptor.on("work cancel a", b'{"cancelled":"a"}\n')
    receptor.on("work cancel b", b'{"cancel pending":"b"}\n')
    receptor.on("work cancel c", b"ERROR: unknown work unit c\n")
    result = any_rc(["--socket", receptor.address, "work", "cancel", "a", "b", "c", "d"])
    assert result.stdout == "Cancelled:\n(a, cancelled)\n(b, cancel pending)\n"
    assert result.stderr == WARNING + "ERROR: c: ERROR: unknown work unit c\n"
    assert result.exit_code == 1
    assert receptor.request_lines()[-1] == b"work cancel c\n"
    assert receptor.connections == 1


@pytest.mark.parametrize(("flags", "op"), [([], "release"), (["--force"], "force-release")])
def test_release_all(
    flags: list[str],
    op: str,
    golden: Callable[[str], Any],
    receptor: Any,
    any_rc: Callable[..., Any],
) -> None:
    units = golden("work_list_after_release").reply_json
    receptor.on_version("1.4.9").on("work list", golden("work_list_after_release").reply)
    for unit in units:
        receptor.on(f"work {op} {unit}", f'{{"released":"{unit}"}}\n'.encode())
    result = any_rc(["--socket", receptor.address, "work", "release", "--all", *flags, "ignored"])
    assert result.stdout == "Released:\n" + "".join(f"({u}, released)\n" for u in units)
    assert result.exit_code == 0
    assert receptor.request_lines()[2:] == [f"work {op} {u}\n".encode() for u in units]


def test_work_list_of_another_node(
    golden: Callable[[str], Any], receptor: Any, steps: Any, any_rc: Callable[..., Any]
) -> None:
    receptor.on_version("1.4.9")
    receptor.on("connect n2 control tlsc", b"Connecting\n", steps.Switch("n2"))
    receptor.on("work list zP9YZeOm", golden("work_list_n2").reply, node="n2")
    args = ["work", "list", "--node", "n2", "--tls-client", "tlsc", "--unit_id", "zP9YZeOm"]
    result = any_rc(["--socket", receptor.address, *args])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == golden("work_list_n2").reply_json
    assert receptor.request_lines("n2") == [b"work list zP9YZeOm\n"]


# -- connect ----------------------------------------------------------------------------------


def _script_connect(receptor: Any, steps: Any, golden: Callable[[str], Any]) -> bytes:
    status = golden("status_n2_text").reply
    receptor.on_version("1.4.9")
    receptor.on("connect n2 control ", b"Connecting\n", steps.Switch("n2"))
    receptor.on("status", status, node="n2")
    return status


def test_connect_through_pipes(
    receptor: Any, steps: Any, golden: Callable[[str], Any], rc_script: Callable[..., Any]
) -> None:
    """stdin is sent, and once it ends the connection is half-closed and the rest of the
    remote output still arrives (upstream needs a terminal here)."""
    status = _script_connect(receptor, steps, golden)
    result = rc_script(
        ["--socket", receptor.address, "connect", "n2", "control"], input=b"status\n"
    )
    assert (result.stderr, result.exit_code) == (WARNING, 0)
    assert result.stdout_bytes == b"Receptor Control, node n2\n" + status
    assert receptor.request_lines("n2") == [b"status\n"]


def test_connect_on_a_terminal(
    receptor: Any, steps: Any, golden: Callable[[str], Any], console_script_path: Path
) -> None:
    """On a terminal the session ends at Ctrl-D, as upstream, and a newline follows."""
    status = _script_connect(receptor, steps, golden)
    expected = b"Receptor Control, node n2\n" + status
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [str(console_script_path), "--socket", receptor.address, "connect", "n2", "control"],
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    os.close(slave)
    assert proc.stdout is not None
    out = b""
    try:
        os.write(master, b"status\n")
        deadline = time.monotonic() + 20
        while len(out) < len(expected) and time.monotonic() < deadline:
            if select.select([proc.stdout], [], [], 0.1)[0]:
                out += os.read(proc.stdout.fileno(), 65536)
        os.write(master, b"\x04")  # Ctrl-D
        rest, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert (err.decode(), proc.returncode) == (WARNING, 0)
    assert out + rest == expected + b"\n"
