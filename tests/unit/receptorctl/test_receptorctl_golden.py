"""Replays of the control sessions recorded from the upstream daemon v1.4.9.

The fake daemon answers with the recorded response bytes; the tests check that our client
sends exactly the recorded request bytes, and what it makes of the responses: the library's
return values and exceptions, the command line's output.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from receptorctl import ReceptorControl, ReceptorControlError

INDEX = (Path(__file__).resolve().parents[2] / "data" / "control" / "INDEX").read_text().split()

# Sessions that are not one command line answered by one reply line.
NOT_SIMPLE = {
    "greeting_only",  # no request
    "session_multi",  # three commands
    "session_crlf_blanklines",
    "malformed_no_newline",
    "connect_text_n2_control",  # a pipe to another node
}


def _simple_cases() -> list[str]:
    return [
        name
        for name in INDEX
        if name not in NOT_SIMPLE
        and not name.startswith(("work_submit", "work_results"))
        and name != "reload_text"
    ] + ["reload_text", "work_results_bad_startpos", "work_results_json_no_startpos"]


def test_index_lists_every_capture() -> None:
    files = {p.stem for p in (Path(__file__).resolve().parents[2] / "data" / "control").glob("*")}
    assert set(INDEX) == files - {"INDEX"}
    assert len(INDEX) == 89


@pytest.mark.parametrize("name", _simple_cases())
def test_simple_command_replays(
    name: str, golden: Callable[[str], Any], make_receptor: Callable[..., Any]
) -> None:
    """`simple_command(<recorded request>)` sends the recorded bytes and returns the recorded
    JSON reply, or raises `ReceptorControlError` with the text of the (first) ERROR line."""
    session = golden(name)
    server = make_receptor(session.greeting.decode().split()[-1])
    server.on(session.request, session.reply)
    rc = ReceptorControl(server.address)
    first = session.reply_lines[0].decode()
    if first.startswith("ERROR: "):
        with pytest.raises(ReceptorControlError) as caught:
            rc.simple_command(session.request[:-1].decode())
        assert str(caught.value) == first[len("ERROR: ") : -1]
    else:
        assert rc.simple_command(session.request[:-1].decode()) == json.loads(first)
    rc.close()
    assert server.request_lines() == [session.request]


def test_greeting_only(golden: Callable[[str], Any], make_receptor: Callable[..., Any]) -> None:
    session = golden("greeting_only")
    server = make_receptor("n1")
    with ReceptorControl(server.address) as rc:
        rc.connect()
        assert rc._remote_node == "n1"
    assert server.requests == []
    assert session.response == server.on_connect[0]


def test_session_multi_reuses_one_connection(
    golden: Callable[[str], Any], make_receptor: Callable[..., Any]
) -> None:
    session = golden("session_multi")
    server = make_receptor("n1")
    lines = session.reply_lines
    server.on("status", lines[0]).on("ping n2", lines[1]).on("foo", lines[2])
    with ReceptorControl(server.address) as rc:
        assert rc.simple_command("status")["NodeID"] == "n1"
        assert rc.simple_command("ping n2")["TimeStr"] == "403.196µs"
        with pytest.raises(ReceptorControlError, match=r"^Unknown command$"):
            rc.simple_command("foo")
    assert b"".join(server.request_lines()) == session.request
    assert server.connections == 1


def test_malformed_json_raises_the_first_error(
    golden: Callable[[str], Any], make_receptor: Callable[..., Any]
) -> None:
    """The daemon sends two ERROR lines for bad JSON; the first is the error."""
    session = golden("malformed_json")
    server = make_receptor("n1")
    server.on(session.request, session.reply)
    with ReceptorControl(server.address) as rc, pytest.raises(ReceptorControlError) as caught:
        rc.simple_command("{not json")
    assert str(caught.value) == "invalid character 'n' looking for beginning of object key string"


def test_connect_to_control_service_of_another_node(
    golden: Callable[[str], Any], make_receptor: Callable[..., Any], steps: Any
) -> None:
    session = golden("connect_text_n2_control")
    lines = session.reply_lines
    assert lines[:2] == [b"Connecting\n", b"Receptor Control, node n2\n"]
    server = make_receptor("n1")
    server.on("connect n2 control ", lines[0], steps.Switch("n2"))
    server.on("status", lines[2], node="n2")
    with ReceptorControl(server.address) as rc:
        rc.connect_to_service("n2", "control", "")
        rc.handshake()
        assert rc._remote_node == "n2"
        assert rc.simple_command("status")["NodeID"] == "n2"
    assert server.request_lines() == [b"connect n2 control \n", b"status\n"]


# -- work submit: same requests (Python's JSON spacing), recorded replies ---------------------


@pytest.mark.parametrize(
    ("name", "call"),
    [
        ("work_submit_json_local", dict(worktype="cat", payload="hello golden local\n", node="n1")),
        (
            "work_submit_json_localhost",
            dict(worktype="echo", payload=b"", params={"params": "p1 p2"}),
        ),
        (
            "work_submit_json_remote",
            dict(worktype="cat", payload=b"hello golden remote\n", node="n2"),
        ),
        (
            "work_submit_sleep_local",
            dict(worktype="sleep", payload="", node="n1", params={"params": "30"}),
        ),
        (
            "work_submit_sleep_remote",
            dict(worktype="sleep", payload="", node="n2", params={"params": "30"}),
        ),
    ],
)
def test_submit_work_replays(
    name: str,
    call: dict[str, Any],
    golden: Callable[[str], Any],
    make_receptor: Callable[..., Any],
    steps: Any,
) -> None:
    session = golden(name)
    request, _, payload = session.request.partition(b"\n")
    ours = json.dumps(json.loads(request)).encode() + b"\n"  # same keys, Python's spacing
    created, result = session.reply_lines
    server = make_receptor("n1")
    server.on(ours, created, steps.READ_PAYLOAD, result)
    rc = ReceptorControl(server.address)
    assert rc.submit_work(**call) == json.loads(result)
    assert server.request_lines() == [ours]
    assert server.payloads == [payload]
    assert rc._socket is None  # closed after the submission


@pytest.mark.parametrize(
    ("name", "call", "message"),
    [
        (
            "work_submit_unknown_worktype",
            dict(worktype="nosuch", node="n1"),
            "unknown work type nosuch",
        ),
        (
            "work_submit_params_not_allowed",
            dict(worktype="cat", node="n1", params={"params": "x"}),
            "extra params provided but not allowed",
        ),
        (
            "work_submit_ttl_local",
            dict(worktype="cat", node="n1", ttl="10s"),
            "ttl option is intended for remote work only",
        ),
        (
            "work_submit_nonstring_param",
            dict(worktype="cat", node="n1", params={"x": 1}),
            "submit parameters must all be strings and x is not",
        ),
    ],
)
def test_submit_work_refused(
    name: str,
    call: dict[str, Any],
    message: str,
    golden: Callable[[str], Any],
    make_receptor: Callable[..., Any],
) -> None:
    session = golden(name)
    ours = json.dumps(json.loads(session.request)).encode() + b"\n"
    server = make_receptor("n1")
    server.on(ours, session.reply)
    server.on("work list", b"{}\n")
    rc = ReceptorControl(server.address)
    with pytest.raises(ReceptorControlError) as caught:
        rc.submit_work(payload=b"", **call)
    assert str(caught.value) == f"Failed to start work unit: {message}"
    assert rc.simple_command("work list") == {}  # the session is still usable, as upstream
    assert server.request_lines() == [ours, b"work list\n"]
    assert server.connections == 1


# -- work results: the recorded `work results <id> <startpos>` sessions ----------------------


@pytest.mark.parametrize("case", ["succeeded", "stdin_payload", "exit_nonzero", "results_startpos"])
def test_get_work_results_replays(
    case: str, golden_work: Callable[[str], Any], make_receptor: Callable[..., Any], steps: Any
) -> None:
    for session in golden_work(case):
        if not session.request.startswith(b"work results "):
            continue
        unit, startpos = session.request.split()[2:]
        header, _, output = session.reply.partition(b"\n")
        server = make_receptor("w1")
        server.on(session.request, header + b"\n", output, steps.CLOSE)
        rc = ReceptorControl(server.address)
        with rc.get_work_results(unit.decode(), startpos=int(startpos)) as results:
            assert results.read() == output
        assert server.request_lines() == [session.request]


def test_results_of_an_unknown_unit(
    golden: Callable[[str], Any], make_receptor: Callable[..., Any]
) -> None:
    session = golden("work_results_unknown")
    server = make_receptor("n1")
    server.on("work results nosuchunit 0", session.reply)
    rc = ReceptorControl(server.address)
    with pytest.raises(ReceptorControlError) as caught:
        rc.get_work_results("nosuchunit")
    assert str(caught.value) == "Failed to get results: unknown work unit nosuchunit"


# -- the command line against recorded replies ------------------------------------------------

# Upstream prints a space after each known connection: written out with explicit line ends.
STATUS_N1 = "".join(
    line + "\n"
    for line in [
        "Node ID: n1",
        "Version: 1.4.9",
        "System CPU Count: 2",
        "System Memory MiB: 24105",
        "",
        "Connection   Cost",
        "n2           1",
        "",
        "Known Node   Known Connections",
        "n1           n2: 1 ",
        "n2           n1: 1 ",
        "",
        "Route        Via",
        "n2           n2",
        "",
        "Node         Service   Type       Last Seen             Tags",
        "n1           control   Stream     2026-11-28 01:14:06   {'type': 'Control Service'}",
        "",
        "Node         Work Types",
        "n1           cat, echo, sleep",
    ]
)


def _work_list_json(golden: Callable[[str], Any], name: str) -> str:
    return json.dumps(golden(name).reply_json, indent=4, sort_keys=True) + "\n"


CLI_CASES: list[tuple[str, list[str], Any, str, int]] = [
    ("ping_text", ["ping", "n2", "--count", "1"], "Reply from n2 in 480.217µs\n", "", 0),
    ("ping_self", ["ping", "n1", "--count", "1"], "Reply from n1 in 186.267µs\n", "", 0),
    (
        "ping_unknown_node",
        ["ping", "nosuchnode", "--count", "1"],
        "",
        "ERROR: no route to node\n",
        2,
    ),
    ("traceroute_text", ["traceroute", "n2"], "0: n1 in 200.158µs\n1: n2 in 616.623µs\n", "", 0),
    ("traceroute_self", ["traceroute", "n1"], "0: n1 in 21.423µs\n", "", 0),
    (
        "traceroute_unknown_node",
        ["traceroute", "nosuchnode"],
        "0: n1 in 85.619µs\n",
        "ERROR: 1: Error no route to node from n1 in 1.581µs\n",
        0,
    ),
    ("reload_text", ["reload"], "Reload successful\n", "", 0),
    ("status_text", ["status"], STATUS_N1, "", 0),
    ("work_list_empty_text", ["work", "list"], "{}\n", "", 0),
    ("work_list_text", ["work", "list"], "work_list_text", "", 0),
    ("work_list_one", ["work", "list", "--unit_id", "QPYW3e7w"], "work_list_one", "", 0),
    ("work_list_n2", ["work", "list", "-q"], "IbgEzkQg\nqXWsF1Ei\nzP9YZeOm\n", "", 0),
    (
        "work_list_unknown",
        ["work", "list", "--unit_id", "nosuchunit"],
        "",
        "ERROR: unknown work unit nosuchunit\n",
        1,
    ),
    (
        "work_cancel_text",
        ["work", "cancel", "FCiFGtNy"],
        "Cancelled:\n(FCiFGtNy, cancelled)\n",
        "",
        0,
    ),
    (
        "work_cancel_completed",
        ["work", "cancel", "676T9moJ"],
        "Cancelled:\n(676T9moJ, cancelled)\n",
        "",
        0,
    ),
    (
        "work_cancel_unknown",
        ["work", "cancel", "nosuchunit"],
        "Cancelled:\n",
        "ERROR: nosuchunit: ERROR: unknown work unit nosuchunit\n",
        1,
    ),
    (
        "work_release_text",
        ["work", "release", "PoaRp1hh"],
        "Released:\n(PoaRp1hh, released)\n",
        "",
        0,
    ),
    (
        "work_release_remote",
        ["work", "release", "QtVHZ91y"],
        "Released:\n(QtVHZ91y, released)\n",
        "",
        0,
    ),
    (
        "work_force_release_text",
        ["work", "release", "--force", "JK9OASEe"],
        "Released:\n(JK9OASEe, released)\n",
        "",
        0,
    ),
    (
        "work_release_again",
        ["work", "release", "PoaRp1hh"],
        "Released:\n",
        "ERROR: PoaRp1hh: ERROR: unknown work unit PoaRp1hh\n",
        1,
    ),
]


@pytest.mark.parametrize(("name", "args", "stdout", "stderr", "code"), CLI_CASES)
def test_cli_replays(
    name: str,
    args: list[str],
    stdout: str,
    stderr: str,
    code: int,
    golden: Callable[[str], Any],
    make_receptor: Callable[..., Any],
    any_rc: Callable[..., Any],
) -> None:
    session = golden(name)
    node = session.greeting.decode().split()[-1]
    server = make_receptor(node)
    server.on_version("1.4.9")
    server.on(session.request, session.reply)
    if stdout.startswith("work_list"):
        stdout = _work_list_json(golden, stdout)
    result = any_rc(["--socket", server.address, *args])
    warning = (
        "Warning: receptorctl and receptor are different versions, they may not be compatible\n"
    )
    assert (result.stdout, result.stderr, result.exit_code) == (stdout, warning + stderr, code)
    assert server.request_lines()[1:] == [session.request]


@pytest.mark.parametrize(
    ("name", "args", "request_line", "stderr"),
    [
        (
            "connect_unknown_node",
            ["connect", "nosuchnode", "control"],
            b"connect nosuchnode control \n",
            "ERROR: ERROR: INTERNAL_ERROR (local): no route to node\n",
        ),
        (
            "work_results_unknown",
            ["work", "results", "nosuchunit"],
            b"work results nosuchunit 0\n",
            "ERROR: Failed to get results: unknown work unit nosuchunit\n",
        ),
    ],
)
def test_cli_replays_errors_of_other_request_forms(
    name: str,
    args: list[str],
    request_line: bytes,
    stderr: str,
    golden: Callable[[str], Any],
    make_receptor: Callable[..., Any],
    any_rc: Callable[..., Any],
) -> None:
    """receptorctl words these requests a little differently from the recorded sessions (a
    trailing space for no TLS client, an explicit start position); the replies are the same."""
    session = golden(name)
    server = make_receptor("n1")
    server.on_version("0.0.0")
    server.on(request_line, session.reply)
    result = any_rc(["--socket", server.address, *args])
    warning = (
        "Warning: receptorctl and receptor are different versions, they may not be compatible\n"
    )
    assert (result.stdout, result.stderr, result.exit_code) == ("", warning + stderr, 1)
    assert server.request_lines()[1:] == [request_line]
