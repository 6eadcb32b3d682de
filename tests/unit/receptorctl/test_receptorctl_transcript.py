"""Our receptorctl replays the upstream receptorctl 1.6.9 transcript exactly.

For each command of `tests/data/receptorctl/receptorctl-1.6.9-transcript.txt` a fake daemon is
scripted with the replies the Go daemon gave (recorded ones from `tests/data/control` where they
exist; otherwise rebuilt from what the transcript shows, in the daemon's own reply format), and
our stdout, stderr and exit code must equal the transcript's. The fake answers only the request
bytes upstream receptorctl sends, so any other request shows up as `unexpected`.

The same scripts also run the upstream client (installed by the `upstream_receptorctl`
fixture), as a check of the scripts themselves.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from receptor._version import __version__

VERSION_REQUEST = b'{"command":"status","requested_fields":["Version"]}\n'
WARNING = "Warning: receptorctl and receptor are different versions, they may not be compatible\n"

# The unit IDs the transcript's submissions got (from the `work list` that follows them).
SUBMITTED_UNITS = {6: "4INgOOoo", 7: "gecaDP6G", 8: "uNAjW1iO", 9: "qRdjJAtO", 10: "hoWZjXIZ"}


def _duration_ns(text: str) -> int:
    """Go `Duration.String()` back to nanoseconds (only the forms pings print)."""
    m = re.fullmatch(r"([0-9.]+)(ns|µs|ms|s)", text)
    assert m, text
    scale = {"ns": 1, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}[m.group(2)]
    return round(float(m.group(1)) * scale)


def _succeeded(size: int, work_type: str) -> dict[str, Any]:
    return {
        "Detail": "exit status 0",
        "ExtraData": None,
        "State": 2,
        "StateName": "Succeeded",
        "StdoutSize": size,
        "WorkType": work_type,
    }


def _submit_request(args: list[str]) -> tuple[bytes, bytes]:
    """The submit line upstream sends for `work submit …` (and the payload), built by hand."""
    worktype, rest = args[2], args[3:]
    node, payload, params = "localhost", b"", []
    i = 0
    while i < len(rest):
        if rest[i] == "--node":
            node, i = rest[i + 1], i + 2
        elif rest[i] in ("--payload-literal", "-l"):
            payload, i = rest[i + 1].encode() + b"\n", i + 2
        elif rest[i] in ("--no-payload", "-n", "-f", "--follow"):
            i += 1
        else:
            params.append(rest[i])
            i += 1
    request = (
        f'{{"command": "work", "subcommand": "submit", "node": "{node}", '
        f'"worktype": "{worktype}"' + (f', "params": "{" ".join(params)}"' if params else "") + "}"
    )
    return request.encode() + b"\n", payload


def script(case: Any, server: Any, steps: Any, golden: Callable[[str], Any]) -> dict[str, Any]:
    """Script `server` for one transcript command; what else the test should check."""
    go_json = steps.go_json
    server.on_version("1.4.9")
    args, out = case.args, case.stdout
    checks: dict[str, Any] = {}
    if args[0] == "status" and "--json" in args:
        server.on("status", go_json(json.loads(out)))
    elif args[0] == "status":
        reply = golden("status_text").reply_json
        reply["Advertisements"][0]["Time"] = "2026-11-28T01:15:03.217408553Z"
        reply["Advertisements"][0]["WorkCommands"] = [
            {"WorkType": "cat", "Secure": False},
            {"WorkType": "echo", "Secure": False},
        ]
        server.on("status", go_json(reply))
    elif args[0] == "ping" and case.exit_code == 2:
        server.on(f"ping {args[1]}", golden("ping_unknown_node").reply)
    elif args[0] == "ping":
        for line in out.splitlines():
            source, took = re.fullmatch(r"Reply from (\S+) in (\S+)", line).groups()  # type: ignore[union-attr]
            reply = {"From": source, "Success": True, "Time": _duration_ns(took), "TimeStr": took}
            server.on(f"ping {args[1]}", go_json(reply))
        checks["sleeps"] = [1.0] * (len(out.splitlines()) - 1)
    elif args[0] == "traceroute":
        hops = {}
        for line in out.splitlines():
            index, source, took = re.fullmatch(r"(\d+): (\S+) in (\S+)", line).groups()  # type: ignore[union-attr]
            hops[index] = {"From": source, "Time": _duration_ns(took), "TimeStr": took}
        server.on(f"traceroute {args[1]}", go_json(hops))
    elif args[:2] == ["work", "submit"]:
        unit = SUBMITTED_UNITS[case.index]
        request, payload = _submit_request(args)
        server.on(
            request,
            f"Work unit created with ID {unit}. Send stdin data and EOF.\n".encode(),
            steps.READ_PAYLOAD,
            go_json({"result": "Job Started", "unitid": unit}),
        )
        server.on(
            f"work results {unit} 0",
            f"Streaming results for work unit {unit}\n".encode(),
            out.encode(),
            steps.CLOSE,
        )
        worktype = args[2] if "--node" not in args else "remote"
        server.on(f"work status {unit}", go_json(_succeeded(len(out.encode()), worktype)))
        checks["payloads"] = [payload]
        checks["connections"] = 3 if "-f" in args else 1
    elif args[:2] == ["work", "results"]:
        unit = args[2]
        server.on(
            f"work results {unit} 0",
            f"Streaming results for work unit {unit}\n".encode(),
            out.encode(),
            steps.CLOSE,
        )
        server.on(f"work status {unit}", go_json(_succeeded(len(out.encode()), "remote")))
        checks["connections"] = 2
    elif args[:2] == ["work", "list"]:
        node = None
        if "--node" in args:
            node = args[args.index("--node") + 1]
            server.on(f"connect {node} control ", b"Connecting\n", steps.Switch(node))
        command = "work list"
        if "--unit_id" in args:
            command += " " + args[args.index("--unit_id") + 1]
        if "-q" in args:
            units = {unit: _succeeded(6, "cat") for unit in out.split()}
        else:
            units = json.loads(out)
        server.on(command, go_json(units), node=node)
    elif args[:2] == ["work", "cancel"]:
        server.on(f"work cancel {args[2]}", go_json({"cancelled": args[2]}))
    elif args[:2] == ["work", "release"]:
        server.on(f"work release {args[2]}", go_json({"released": args[2]}))
    else:
        raise AssertionError(f"no script for {args}")
    return checks


def _expected_stderr(case: Any) -> str:
    if __version__ == "1.4.9":
        return case.stderr.replace(WARNING, "")
    return case.stderr


def _check_server(server: Any, checks: dict[str, Any]) -> None:
    assert server.unexpected == []
    assert server.requests[0] == ("n1" if server.node == "n1" else server.node, VERSION_REQUEST)
    if "payloads" in checks:
        assert server.payloads == checks["payloads"]
    if "connections" in checks:
        assert server.connections == checks["connections"]


def test_transcript_is_complete(transcript: list[Any]) -> None:
    assert len(transcript) == 24
    assert sum(1 for case in transcript if case.stderr == WARNING) == 23


@pytest.mark.parametrize("index", range(24))
def test_transcript_in_process(
    index: int,
    transcript: list[Any],
    make_receptor: Callable[..., Any],
    steps: Any,
    golden: Callable[[str], Any],
    rc_run: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case = transcript[index]
    server = make_receptor(case.node)
    checks = script(case, server, steps, golden)
    sleeps: list[float] = []
    monkeypatch.setattr("receptorctl.cli.time.sleep", sleeps.append)
    result = rc_run(["--socket", server.address, *case.args])
    assert (result.stdout, result.stderr, result.exit_code) == (
        case.stdout,
        _expected_stderr(case),
        case.exit_code,
    )
    _check_server(server, checks)
    assert sleeps == checks.get("sleeps", [])


# A few of them through the installed console script, in a process of its own.
@pytest.mark.parametrize("index", [0, 1, 6, 10, 15, 17, 23])
def test_transcript_console_script(
    index: int,
    transcript: list[Any],
    make_receptor: Callable[..., Any],
    steps: Any,
    golden: Callable[[str], Any],
    rc_script: Callable[..., Any],
) -> None:
    case = transcript[index]
    server = make_receptor(case.node)
    checks = script(case, server, steps, golden)
    result = rc_script(["--socket", server.address, *case.args])
    assert (result.stdout, result.stderr, result.exit_code) == (
        case.stdout,
        _expected_stderr(case),
        case.exit_code,
    )
    _check_server(server, checks)


@pytest.mark.interop
@pytest.mark.parametrize("index", [i for i in range(24) if i not in (2, 3)])
def test_transcript_upstream(
    index: int,
    transcript: list[Any],
    make_receptor: Callable[..., Any],
    steps: Any,
    golden: Callable[[str], Any],
    upstream_receptorctl: Path,
) -> None:
    """The scripts make the upstream client print the transcript too (pings skipped: they
    sleep a second between requests)."""
    upstream = str(upstream_receptorctl)
    case = transcript[index]
    server = make_receptor(case.node)
    checks = script(case, server, steps, golden)
    done = subprocess.run(
        [upstream, "--socket", server.address, *case.args], capture_output=True, timeout=30
    )
    assert (done.stdout.decode(), done.stderr.decode(), done.returncode) == (
        case.stdout,
        case.stderr,
        case.exit_code,
    )
    _check_server(server, checks)
