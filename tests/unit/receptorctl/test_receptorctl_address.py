"""Control socket addresses, and what connecting to a bad one says."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from receptorctl import ControlAddressError, ReceptorControl
from receptorctl._address import ControlAddress, parse_control_address

HOME = os.path.expanduser("~")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "/var/run/receptor/receptor.sock",
            ControlAddress("unix", path="/var/run/receptor/receptor.sock"),
        ),
        ("relative.sock", ControlAddress("unix", path="relative.sock")),
        ("unix:/var/run/r.sock", ControlAddress("unix", path="/var/run/r.sock")),
        ("unix:///var/run/r.sock", ControlAddress("unix", path="/var/run/r.sock")),
        ("unix://relative", ControlAddress("unix", path="relative")),
        ("~/r.sock", ControlAddress("unix", path=f"{HOME}/r.sock")),
        ("unix:~/r.sock", ControlAddress("unix", path=f"{HOME}/r.sock")),
        ("/with space/r.sock", ControlAddress("unix", path="/with space/r.sock")),
        ("tcp://localhost:2222", ControlAddress("tcp", host="localhost", port=2222)),
        ("tcp:localhost:2222", ControlAddress("tcp", host="localhost", port=2222)),
        ("tcp://10.0.0.1:0", ControlAddress("tcp", host="10.0.0.1", port=0)),
        (
            "tcp://my-host.example.com:65535",
            ControlAddress("tcp", host="my-host.example.com", port=65535),
        ),
        ("tcp://::1:2222", ControlAddress("tcp", host="::1", port=2222)),
        ("tcp://[::1]:2222", ControlAddress("tcp", host="::1", port=2222)),
        ("tls://controller:27199", ControlAddress("tls", host="controller", port=27199)),
        ("tls:controller:27199", ControlAddress("tls", host="controller", port=27199)),
    ],
)
def test_good_addresses(text: str, expected: ControlAddress) -> None:
    assert parse_control_address(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "unix:",
        "a:b",
        "/path/with:colon",
        "tcp://host",
        "tcp://host:",
        "tcp://host:port",
        "tcp://under_score:1",
        "tcp://host:99999",
        "udp://host:1",
        "http://host:80",
        "tls://[::1]",
    ],
)
def test_bad_addresses(text: str) -> None:
    with pytest.raises(ControlAddressError) as caught:
        parse_control_address(text)
    assert str(caught.value) == f"Invalid socket address {text}"
    assert isinstance(caught.value, ValueError)


@given(st.text(alphabet=st.characters(exclude_characters=":\x00"), min_size=1))
def test_anything_without_a_colon_is_a_unix_path(text: str) -> None:
    assert parse_control_address(text) == ControlAddress("unix", path=os.path.expanduser(text))


@given(st.text())
def test_parsing_never_fails_otherwise(text: str) -> None:
    try:
        address = parse_control_address(text)
    except ControlAddressError:
        return
    assert address.kind in ("unix", "tcp", "tls")
    assert parse_control_address(str(address)) == address or address.kind == "unix"


def test_str_round_trips() -> None:
    for text in ("tcp://h:1", "tls://[::1]:5"):
        assert str(parse_control_address(text)) == text


def test_missing_socket_path() -> None:
    rc = ReceptorControl("/nonexistent/dir/r.sock")
    with pytest.raises(
        ControlAddressError, match=r"^Socket path does not exist: /nonexistent/dir/r.sock$"
    ):
        rc.connect()


def test_nobody_listening_on_the_unix_socket(tmp_path: Any) -> None:
    path = tmp_path / "dead.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.close()  # the file stays, nobody listens
    with pytest.raises(ConnectionRefusedError) as caught:
        ReceptorControl(str(path)).connect()
    assert str(caught.value) == f"[Errno 111] Connection refused: '{path}'"


def test_nobody_listening_on_tcp() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    rc = ReceptorControl(f"tcp://127.0.0.1:{port}")
    with pytest.raises(ControlAddressError) as caught:
        rc.connect()
    assert str(caught.value) == (
        f"Could not connect to host 127.0.0.1 port {port}: [Errno 111] Connection refused"
    )


def test_unknown_host() -> None:
    with pytest.raises(
        ControlAddressError, match=r"^Could not connect to host nosuchhost.invalid port 1: "
    ):
        ReceptorControl("tcp://nosuchhost.invalid:1").connect()


@pytest.mark.parametrize("form", ["{path}", "unix:{path}", "unix://{path}"])
def test_unix_forms_connect(form: str, receptor: Any) -> None:
    receptor.on("work list", b"{}\n")
    with ReceptorControl(form.format(path=receptor.path)) as rc:
        assert rc.simple_command("work list") == {}


@pytest.mark.parametrize("form", ["tcp://127.0.0.1:{port}", "tcp:localhost:{port}"])
def test_tcp_forms_connect(form: str, make_receptor: Callable[..., Any]) -> None:
    server = make_receptor("n1", transport="tcp")
    server.on("work list", b"{}\n")
    with ReceptorControl(form.format(port=server.port)) as rc:
        assert rc.simple_command("work list") == {}
