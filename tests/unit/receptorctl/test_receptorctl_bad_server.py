"""A daemon that misbehaves gets one clear `ERROR:` line and exit code 1, never a traceback.

Upstream receptorctl 1.6.9 crashes on most of these (a `KeyError`, an `UnboundLocalError`, a
`json.JSONDecodeError` on an empty string); see the module docstring of `receptorctl.cli`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from receptorctl import ControlProtocolError, ReceptorControl

WARNING = "Warning: receptorctl and receptor are different versions, they may not be compatible\n"


def _status(golden: Callable[[str], Any], **changes: Any) -> dict[str, Any]:
    status: dict[str, Any] = golden("status_text").reply_json
    status.update(changes)
    return status


def _ad(golden: Callable[[str], Any], **changes: Any) -> dict[str, Any]:
    ad: dict[str, Any] = golden("status_text").reply_json["Advertisements"][0]
    ad.update(changes)
    return ad


@pytest.mark.parametrize(
    ("on_connect", "stderr"),
    [
        (
            [b"HTTP/1.1 400 Bad Request\r\n"],
            "ERROR: Failed to connect to Receptor socket: unexpected greeting "
            "'HTTP/1.1 400 Bad Request'\n",
        ),
        (
            [b"\n"],
            "ERROR: Failed to connect to Receptor socket: "
            "the connection closed without a greeting\n",
        ),
        (
            ["close"],
            "ERROR: Failed to connect to Receptor socket: "
            "the connection closed without a greeting\n",
        ),
        (
            [b"Receptor Control, no", "close"],
            "ERROR: Failed to connect to Receptor socket: "
            "unexpected greeting 'Receptor Control, no'\n",
        ),
    ],
)
def test_bad_greetings(
    on_connect: list[Any],
    stderr: str,
    make_receptor: Callable[..., Any],
    rc_run: Callable[..., Any],
) -> None:
    server = make_receptor("n1", on_connect=on_connect)
    result = rc_run(["--socket", server.address, "status"])
    assert (result.stdout, result.stderr, result.exit_code) == ("", stderr, 1)


@pytest.mark.parametrize(
    ("version_reply", "stderr"),
    [
        (["close"], "ERROR: Receptor closed the connection without sending a reply\n"),
        (
            [b'{"Vers', "close"],
            "ERROR: Receptor closed the connection in the middle of a reply: '{\"Vers'\n",
        ),
        ([b"hello\n"], "ERROR: Receptor sent a reply that is not JSON: 'hello'\n"),
        ([b"\xff\xfe\n"], "ERROR: Receptor sent a line that is not UTF-8: b'\\xff\\xfe\\n'\n"),
        ([b"ERROR: Unknown command\n"], "ERROR: Unknown command\n"),
        ([b'{"NodeID":"n1"}\n'], "ERROR: malformed status reply from receptor: no Version\n"),
        (
            [b"[1]\n"],
            "ERROR: malformed status reply from receptor: expected a JSON object, got list\n",
        ),
    ],
)
def test_bad_version_replies(
    version_reply: list[Any],
    stderr: str,
    receptor: Any,
    rc_run: Callable[..., Any],
) -> None:
    receptor.on(b'{"command":"status","requested_fields":["Version"]}\n', *version_reply)
    result = rc_run(["--socket", receptor.address, "reload"])
    assert (result.stdout, result.stderr, result.exit_code) == ("", stderr, 1)


def test_huge_reply_within_the_limit(receptor: Any, steps: Any, rc_run: Callable[..., Any]) -> None:
    units = {f"unit{i:07d}": {"State": 2, "Detail": "x" * 100} for i in range(60000)}
    reply = steps.go_json(units)
    assert len(reply) > 8_000_000
    receptor.on_version("1.4.9").on("work list", reply)
    result = rc_run(["--socket", receptor.address, "work", "list", "-q"])
    assert result.exit_code == 0
    assert result.stdout.split() == list(units)


def test_endless_line(
    receptor: Any, steps: Any, rc_run: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ReceptorControl, "max_line_length", 1_000_000)
    receptor.on_version("1.4.9").on("work list", b"[" + b"1," * 1_000_000)
    result = rc_run(["--socket", receptor.address, "work", "list"])
    assert (result.stdout, result.exit_code) == ("", 1)
    assert result.stderr == WARNING + "ERROR: Receptor sent a line longer than 1000000 bytes\n"


@pytest.mark.parametrize(
    ("change", "stderr"),
    [
        (
            {"Advertisements": [{"ConnType": 7}]},
            "advertisement n1/control has unknown ConnType 7",
        ),
        (
            {"Advertisements": [{"ConnType": "1"}]},
            'advertisement n1/control has unknown ConnType "1"',
        ),
        (
            {"Advertisements": [{"Time": "yesterday"}]},
            "advertisement n1/control: not an RFC 3339 time: 'yesterday'",
        ),
        ({"Advertisements": [{"Time": None}]}, "the Time of advertisement n1/control is null"),
        (
            {"Advertisements": [{"Service": None}]},
            "the Service of an advertisement from n1 is null",
        ),
        (
            {"Advertisements": [{"WorkCommands": [{"WorkType": "cat"}]}]},
            'WorkCommand {"WorkType": "cat"} lacks WorkType or Secure',
        ),
        (
            {"Advertisements": [{"WorkCommands": {"cat": 1}}]},
            'the WorkCommands of n1 is {"cat": 1}',
        ),
        ({"NodeID": None, "drop": "NodeID"}, "no NodeID"),
        ({"drop": "SystemMemoryMiB"}, "no SystemMemoryMiB"),
        ({"Connections": [{"NodeID": "n2"}]}, 'connection {"NodeID": "n2"} lacks NodeID or Cost'),
        ({"Connections": {"n2": 1}}, 'Connections is {"n2": 1}'),
        ({"KnownConnectionCosts": {"n1": 5}}, "KnownConnectionCosts of n1 is 5"),
        ({"RoutingTable": ["n2"]}, 'RoutingTable is ["n2"]'),
    ],
)
def test_bad_status_replies(
    change: dict[str, Any],
    stderr: str,
    golden: Callable[[str], Any],
    receptor: Any,
    steps: Any,
    rc_run: Callable[..., Any],
) -> None:
    status = _status(golden)
    if "drop" in change:
        del status[change.pop("drop")]
        change = {}
    if "Advertisements" in change:
        (ad_change,) = change.pop("Advertisements")
        status["Advertisements"] = [_ad(golden, **ad_change)]
    status.update(change)
    receptor.on_version("1.4.9").on("status", steps.go_json(status))
    result = rc_run(["--socket", receptor.address, "status"])
    assert (result.stdout, result.exit_code) == ("", 1)
    assert result.stderr == WARNING + f"ERROR: malformed status reply from receptor: {stderr}\n"


def test_bad_status_reply_is_still_printed_as_json(
    golden: Callable[[str], Any], receptor: Any, steps: Any, rc_run: Callable[..., Any]
) -> None:
    status = _status(golden, Advertisements=[_ad(golden, ConnType=7)])
    receptor.on_version("1.4.9").on("status", steps.go_json(status))
    result = rc_run(["--socket", receptor.address, "status", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == status


@pytest.mark.parametrize(
    ("args", "request_line", "reply", "stderr", "stdout"),
    [
        (
            ["ping", "n2", "--count", "1"],
            "ping n2",
            b'{"Success":true}\n',
            "malformed ping reply from receptor: no From",
            "",
        ),
        (
            ["ping", "n2", "--count", "1"],
            "ping n2",
            b'{"Success":false}\n',
            "malformed ping reply from receptor: no Error",
            "",
        ),
        (
            ["ping", "n2", "--count", "1"],
            "ping n2",
            b"[]\n",
            "malformed ping reply from receptor: expected a JSON object, got list",
            "",
        ),
        (
            ["traceroute", "n2"],
            "traceroute n2",
            b'{"x":{}}\n',
            "malformed traceroute reply from receptor: hop index 'x'",
            "",
        ),
        (
            ["traceroute", "n2"],
            "traceroute n2",
            b'{"0":{"From":"n1"}}\n',
            "malformed traceroute reply from receptor: no TimeStr",
            "",
        ),
        (
            ["reload"],
            "reload",
            b'{"Success":false}\n',
            "malformed reload reply from receptor: no Error",
            "",
        ),
        (
            ["work", "list", "-q"],
            "work list",
            b"[]\n",
            "malformed work list reply from receptor: expected a JSON object, got list",
            "",
        ),
        (
            ["work", "cancel", "u1"],
            "work cancel u1",
            b"{}\n",
            "u1: ERROR: malformed work cancel reply from receptor: an empty object",
            "Cancelled:\n",
        ),
        (
            ["work", "release", "--all"],
            "work list",
            b'"x"\n',
            "malformed work list reply from receptor: expected a JSON object, got str",
            "Released:\n",
        ),
    ],
)
def test_bad_command_replies(
    args: list[str],
    request_line: str,
    reply: bytes,
    stderr: str,
    stdout: str,
    receptor: Any,
    rc_run: Callable[..., Any],
) -> None:
    receptor.on_version("1.4.9").on(request_line, reply)
    result = rc_run(["--socket", receptor.address, *args])
    assert (result.stdout, result.stderr, result.exit_code) == (
        stdout,
        f"{WARNING}ERROR: {stderr}\n",
        1,
    )


def test_bad_submit_result(receptor: Any, steps: Any, rc_run: Callable[..., Any]) -> None:
    receptor.on_version("1.4.9")
    receptor.on(
        b'{"command": "work", "subcommand": "submit", "node": "localhost", "worktype": "cat"}\n',
        b"Work unit created with ID u1. Send stdin data and EOF.\n",
        steps.READ_PAYLOAD,
        b'{"result":"Job Started"}\n',
    )
    result = rc_run(["--socket", receptor.address, "work", "submit", "cat", "-n"])
    assert (
        result.stderr == WARNING + "ERROR: malformed work submit reply from receptor: no unitid\n"
    )
    assert result.exit_code == 101


def test_results_stream_cut_off_before_the_header(
    receptor: Any, steps: Any, rc_run: Callable[..., Any]
) -> None:
    receptor.on_version("1.4.9").on("work results u1 0", b"Streaming res", steps.CLOSE)
    result = rc_run(["--socket", receptor.address, "work", "results", "u1"])
    assert result.exit_code == 1
    assert result.stderr == WARNING + (
        "ERROR: Failed to get results: Receptor closed the connection in the middle of the "
        "results header: 'Streaming res'\n"
    )


@pytest.mark.parametrize(
    ("on_connect", "script"),
    [
        ([b"garbage\n"], None),
        (
            None,
            (
                "status",
                b'{"NodeID":"n1","Version":"1","SystemCPUCount":1,"SystemMemoryMiB":1,"Advertisements":[{"NodeID":"n1"}]}\n',
            ),
        ),
        (None, ("status", b'{"Version":"1"}\n')),
        (
            None,
            (
                "status",
                b'{"NodeID":"n1","Version":"1","SystemCPUCount":1,"SystemMemoryMiB":1,"Advertisements":[{"NodeID":"n1","Service":"c","Time":"2024-10-24T16:36:52Z","ConnType":9,"Tags":null,"WorkCommands":null}]}\n',
            ),
        ),
    ],
)
def test_no_traceback_from_the_console_script(
    on_connect: list[bytes] | None,
    script: tuple[str, bytes] | None,
    make_receptor: Callable[..., Any],
    rc_script: Callable[..., Any],
) -> None:
    server = make_receptor("n1", on_connect=on_connect)
    server.on_version("1.4.9")
    if script:
        server.on(*script)
    result = rc_script(["--socket", server.address, "status"])
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("ERROR: ")
    assert result.stdout == ""


def test_protocol_error_is_both_runtime_and_value_error() -> None:
    assert issubclass(ControlProtocolError, RuntimeError)
    assert issubclass(ControlProtocolError, ValueError)
