"""`ReceptorControl`, the API AWX and ansible-runner use."""

from __future__ import annotations

import io
import json
import socket
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import receptorctl
from receptor import ProtocolError, ReceptorError
from receptorctl import (
    ControlAddressError,
    ControlProtocolError,
    ReceptorControl,
    ReceptorControlError,
    socket_interface,
)

SUBMIT_CAT = (
    b'{"command": "work", "subcommand": "submit", "node": "localhost", "worktype": "cat"}\n'
)


def script_submit(server: Any, steps: Any, request: bytes = SUBMIT_CAT) -> None:
    server.on(
        request,
        b"Work unit created with ID u1. Send stdin data and EOF.\n",
        steps.READ_PAYLOAD,
        b'{"result":"Job Started","unitid":"u1"}\n',
    )


def test_public_names() -> None:
    assert receptorctl.ReceptorControl is socket_interface.ReceptorControl
    assert set(receptorctl.__all__) >= {"ReceptorControl", "run"}
    assert callable(receptorctl.run)


def test_exception_types() -> None:
    """What upstream raises as RuntimeError / ValueError still is one."""
    assert issubclass(ReceptorControlError, RuntimeError)
    assert issubclass(ReceptorControlError, ReceptorError)
    assert issubclass(ControlProtocolError, ReceptorControlError)
    assert issubclass(ControlProtocolError, ProtocolError)
    assert issubclass(ControlAddressError, ValueError)
    assert issubclass(ControlAddressError, ReceptorError)


# -- construction and configuration -----------------------------------------------------------


def test_config_needs_a_tls_client() -> None:
    with pytest.raises(RuntimeError, match=r"^Must specify both config and tlsclient$"):
        ReceptorControl("/x", config="/etc/receptor/receptor.conf")


@pytest.mark.parametrize("option", ["rootcas", "key", "cert"])
def test_config_excludes_tls_files(option: str) -> None:
    with pytest.raises(RuntimeError, match=r"^Cannot specify both config and rootcas, key, cert$"):
        files: dict[str, Any] = {option: "f"}
        ReceptorControl("/x", config="c.yml", tlsclient="t", **files)


def test_nothing_happens_before_the_first_command() -> None:
    rc = ReceptorControl("/nonexistent.sock")
    rc.close()  # nothing open: fine


def _write_config(path: Path, items: Any) -> str:
    path.write_text(json.dumps(items))  # JSON is YAML
    return str(path)


def test_config_tls_client(tmp_path: Path) -> None:
    config = _write_config(
        tmp_path / "receptor.conf",
        [
            {"node": {"id": "n1"}},
            "local-only",
            {"tls-client": {"name": "other", "rootcas": "/other/ca.crt"}},
            {
                "tls-client": {
                    "name": "tlsc",
                    "rootcas": "/ca.crt",
                    "cert": "/c.crt",
                    "key": "/c.key",
                    "insecureskipverify": True,
                }
            },
            {"tls-client": {"name": "tlsc", "rootcas": "/second.crt"}},
        ],
    )
    rc = ReceptorControl("/x", config=config, tlsclient="tlsc")
    assert (rc._rootcas, rc._cert, rc._key, rc._insecureskipverify) == (
        "/ca.crt",
        "/c.crt",
        "/c.key",
        True,
    )


def test_config_without_the_tls_client_changes_nothing(tmp_path: Path) -> None:
    config = _write_config(tmp_path / "r.yml", [{"tls-client": {"name": "other", "key": "/k"}}])
    rc = ReceptorControl("/x", config=config, tlsclient="tlsc")
    assert (rc._rootcas, rc._cert, rc._key, rc._insecureskipverify) == (None, None, None, False)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- node: [", "Cannot parse config file"),
        ("node: {id: x}", "is not a receptor configuration"),
    ],
)
def test_bad_config_files(text: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "r.yml"
    path.write_text(text)
    with pytest.raises(ReceptorControlError, match=message):
        ReceptorControl("/x", config=str(path), tlsclient="t")


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ReceptorControl("/x", config=str(tmp_path / "none.yml"), tlsclient="t")


# -- sessions ---------------------------------------------------------------------------------


def test_commands_share_one_connection(any_receptor: Any) -> None:
    any_receptor.on("status", b'{"NodeID":"n1"}\n').on("work list", b"{}\n")
    rc = ReceptorControl(any_receptor.address)
    assert rc.simple_command("status") == {"NodeID": "n1"}
    assert rc.simple_command("work list") == {}
    rc.close()
    assert rc.simple_command("work list") == {}  # reconnects
    rc.close()
    assert any_receptor.connections == 2


def test_readstr_and_writestr(receptor: Any, steps: Any) -> None:
    receptor.on("hello", b"  one  \r\n", b"two", steps.CLOSE)
    rc = ReceptorControl(receptor.address)
    rc.connect()
    rc.writestr("hello\n")
    assert rc.readstr() == "one"
    assert rc.readstr() == "two"
    assert rc.readstr() == ""  # the end, as upstream
    rc.close()


def test_error_reply_keeps_the_session(receptor: Any) -> None:
    receptor.on("work status x", b"ERROR: unknown work unit x\n").on("work list", b"{}\n")
    rc = ReceptorControl(receptor.address)
    with pytest.raises(ReceptorControlError, match=r"^unknown work unit x$"):
        rc.simple_command("work status x")
    assert rc.simple_command("work list") == {}
    assert receptor.connections == 1


def test_protocol_error_drops_the_session(receptor: Any) -> None:
    receptor.on("status", b"<html>\n").on("work list", b"{}\n")
    rc = ReceptorControl(receptor.address)
    with pytest.raises(ControlProtocolError, match=r"not JSON: '<html>'"):
        rc.simple_command("status")
    assert rc._socket is None
    assert rc.simple_command("work list") == {}
    assert receptor.connections == 2


def test_failed_handshake_closes(make_receptor: Callable[..., Any]) -> None:
    server = make_receptor("n1", on_connect=[b"SSH-2.0-OpenSSH_9.6\r\n"])
    rc = ReceptorControl(server.address)
    with pytest.raises(ControlProtocolError, match=r"unexpected greeting 'SSH-2.0-OpenSSH_9.6'"):
        rc.connect()
    assert rc._socket is None


def test_context_manager_closes(receptor: Any) -> None:
    receptor.on("work list", b"{}\n")
    with ReceptorControl(receptor.address) as rc:
        rc.simple_command("work list")
        sock = rc._socket
    assert rc._socket is None
    assert sock is not None and sock.fileno() == -1


def test_not_connected() -> None:
    with pytest.raises(ReceptorControlError, match=r"Not connected"):
        ReceptorControl("/x").writestr("status\n")


# -- submit_work ------------------------------------------------------------------------------


class ReadOnly:
    """Has `read` and nothing else (duck-typed file)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._data.read(size)


@pytest.mark.parametrize(
    ("make_payload", "sent"),
    [
        (lambda: "text é\n", "text é\n".encode()),
        (lambda: b"\x00bytes", b"\x00bytes"),
        (lambda: bytearray(b"array"), b"array"),
        (lambda: memoryview(b"view"), b"view"),
        (lambda: io.BytesIO(b"x" * 200_000), b"x" * 200_000),
        (lambda: io.StringIO("text file"), b"text file"),
        (lambda: ReadOnly(b"duck"), b"duck"),
        (lambda: b"", b""),
    ],
)
def test_payload_types(
    make_payload: Callable[[], Any], sent: bytes, any_receptor: Any, steps: Any
) -> None:
    script_submit(any_receptor, steps)
    rc = ReceptorControl(any_receptor.address)
    assert rc.submit_work("cat", make_payload()) == {"result": "Job Started", "unitid": "u1"}
    assert any_receptor.payloads == [sent]
    assert rc._socket is None


def test_payload_from_a_socketpair_like_awx(receptor: Any, steps: Any) -> None:
    """AWX streams the payload through a socketpair while another thread writes it."""
    script_submit(receptor, steps)
    sockin, sockout = socket.socketpair()
    data = b"zipped private data dir" * 10000

    def transmit() -> None:
        with sockin.makefile("wb") as f:
            f.write(data)
        sockin.shutdown(socket.SHUT_WR)

    writer = threading.Thread(target=transmit)
    writer.start()
    result = ReceptorControl(receptor.address).submit_work("cat", sockout.makefile("rb"))
    writer.join()
    sockin.close()
    sockout.close()
    assert result["unitid"] == "u1"
    assert receptor.payloads == [data]


def test_unknown_payload_type_sends_nothing(receptor: Any) -> None:
    rc = ReceptorControl(receptor.address)
    with pytest.raises(ReceptorControlError, match=r"^Unknown payload type$"):
        rc.submit_work("cat", 42)
    assert receptor.connections == 0


def test_submit_options_and_params(receptor: Any, steps: Any, tmp_path: Path) -> None:
    (tmp_path / "kube.yml").write_text("apiVersion: v1\n")
    request = {
        "command": "work",
        "subcommand": "submit",
        "node": "n2",
        "worktype": "kube",
        "tlsclient": "tlsc",
        "ttl": "30s",
        "signwork": "true",
        "secret_kube_pod": "apiVersion: v1\n",
        "literal": "@@x",
        "empty": "",
    }
    script_submit(receptor, steps, json.dumps(request).encode() + b"\n")
    params = {"secret_kube_pod": f"@{tmp_path / 'kube.yml'}", "literal": "@@x", "empty": ""}
    rc = ReceptorControl(receptor.address)
    rc.submit_work(
        "kube", b"", node="n2", tlsclient="tlsc", ttl="30s", signwork=True, params=params
    )
    assert receptor.unexpected == []


def test_submit_param_file_missing(receptor: Any) -> None:
    rc = ReceptorControl(receptor.address)
    with pytest.raises(FileNotFoundError, match=r"^/nonexistent/f does not exist$"):
        rc.submit_work("cat", b"", params={"x": "@/nonexistent/f"})


@pytest.mark.parametrize("name", ["command", "subcommand", "node", "worktype"])
def test_submit_reserved_param(name: str, receptor: Any) -> None:
    with pytest.raises(ReceptorControlError, match=f"^Duplicate or illegal parameter {name}$"):
        ReceptorControl(receptor.address).submit_work("cat", b"", params={name: "x"})


def test_submit_connection_lost(receptor: Any, steps: Any) -> None:
    receptor.on(SUBMIT_CAT, steps.CLOSE)
    with pytest.raises(ControlProtocolError) as caught:
        ReceptorControl(receptor.address).submit_work("cat", b"")
    assert str(caught.value) == (
        "Failed to start work unit: Receptor closed the connection without sending the work unit ID"
    )


# -- get_work_results -------------------------------------------------------------------------

OUTPUT = b"".join(b"line %d\n" % i for i in range(20000))


def _script_results(server: Any, steps: Any) -> None:
    # The header and the first output bytes go out in one write, so they arrive together.
    server.on("work results u1 0", b"Streaming results for work unit u1\n" + OUTPUT, steps.CLOSE)
    server.on("work status u1", b'{"State":2}\n')


def test_results_as_file(any_receptor: Any, steps: Any) -> None:
    _script_results(any_receptor, steps)
    rc = ReceptorControl(any_receptor.address)
    results = rc.get_work_results("u1")
    assert rc._socket is None
    assert rc.simple_command("work status u1") == {"State": 2}  # a new connection, as AWX does
    assert results.read() == OUTPUT
    results.close()
    assert any_receptor.connections == 2


def test_results_as_socket(any_receptor: Any, steps: Any) -> None:
    """Nothing after the header is lost in a buffer: the bare socket has every byte."""
    _script_results(any_receptor, steps)
    sock = ReceptorControl(any_receptor.address).get_work_results(
        "u1", return_socket=True, return_sockfile=False
    )
    received = bytearray()
    while chunk := sock.recv(65536):
        received += chunk
    sock.close()
    assert bytes(received) == OUTPUT


def test_results_as_socket_and_file(receptor: Any, steps: Any) -> None:
    _script_results(receptor, steps)
    sock, results = ReceptorControl(receptor.address).get_work_results(
        "u1", startpos=0, return_socket=True, return_sockfile=True
    )
    assert results.readline() == b"line 0\n"
    sock.shutdown(socket.SHUT_RDWR)  # what AWX does to cancel
    results.close()
    sock.close()


def test_results_as_nothing(receptor: Any, steps: Any) -> None:
    _script_results(receptor, steps)
    rc = ReceptorControl(receptor.address)
    assert rc.get_work_results("u1", return_sockfile=False) is None


def test_results_startpos_and_half_close(receptor: Any, steps: Any) -> None:
    receptor.on(
        "work results u1 15",
        b"Streaming results for work unit u1\n",
        steps.READ_PAYLOAD,  # returns once the client has half-closed
        b"tail",
        steps.CLOSE,
    )
    results = ReceptorControl(receptor.address).get_work_results("u1", startpos=15)
    assert results.read() == b"tail"
    assert receptor.payloads == [b""]


def test_results_refused_keeps_the_session(receptor: Any) -> None:
    receptor.on("work results x 0", b"ERROR: unknown work unit x\n").on("work list", b"{}\n")
    rc = ReceptorControl(receptor.address)
    with pytest.raises(ReceptorControlError, match=r"^Failed to get results: unknown work unit x$"):
        rc.get_work_results("x")
    assert rc.simple_command("work list") == {}


# -- connect_to_service -----------------------------------------------------------------------


def test_connect_to_service_without_tls_client(receptor: Any, steps: Any) -> None:
    receptor.on("connect n2 echo ", b"Connecting\n", b"remote says hi\n", steps.CLOSE)
    rc = ReceptorControl(receptor.address)
    rc.connect_to_service("n2", "echo", None)
    assert rc.readstr() == "remote says hi"


def test_connect_to_service_refused(receptor: Any) -> None:
    receptor.on("connect n2 nosvc x", b"ERROR: unknown TLS config x\n")
    with pytest.raises(ReceptorControlError, match=r"^ERROR: unknown TLS config x$"):
        ReceptorControl(receptor.address).connect_to_service("n2", "nosvc", "x")


# -- TLS --------------------------------------------------------------------------------------


def test_tls(make_receptor: Callable[..., Any], tls_files: Any, steps: Any) -> None:
    server = make_receptor("n1", transport="tcp", tls_context=tls_files.server_context())
    server.on("work list", b"{}\n")
    _script_results(server, steps)
    script_submit(server, steps)
    rc = ReceptorControl(server.address, rootcas=str(tls_files.ca))
    assert rc.simple_command("work list") == {}
    assert rc.submit_work("cat", b"over tls") == {"result": "Job Started", "unitid": "u1"}
    assert server.payloads == [b"over tls"]
    results = rc.get_work_results("u1")
    assert results.read() == OUTPUT


def test_tls_client_certificate(make_receptor: Callable[..., Any], tls_files: Any) -> None:
    context = tls_files.server_context(require_client_cert=True)
    server = make_receptor("n1", transport="tcp", tls_context=context)
    server.on("work list", b"{}\n")
    rc = ReceptorControl(
        server.address,
        rootcas=str(tls_files.ca),
        cert=str(tls_files.cert("client")),
        key=str(tls_files.key("client")),
    )
    assert rc.simple_command("work list") == {}
    with pytest.raises((ControlAddressError, ControlProtocolError, ssl.SSLError, OSError)):
        ReceptorControl(server.address, rootcas=str(tls_files.ca)).simple_command("work list")


def test_tls_from_receptor_config(
    make_receptor: Callable[..., Any], tls_files: Any, tmp_path: Path
) -> None:
    server = make_receptor("n1", transport="tcp", tls_context=tls_files.server_context())
    server.on("work list", b"{}\n")
    config = _write_config(
        tmp_path / "receptor.conf",
        [{"tls-client": {"name": "ctl", "rootcas": str(tls_files.ca)}}],
    )
    rc = ReceptorControl(server.address, config=config, tlsclient="ctl")
    assert rc.simple_command("work list") == {}


def test_tls_untrusted_server(make_receptor: Callable[..., Any], tls_files: Any) -> None:
    server = make_receptor("n1", transport="tcp", tls_context=tls_files.server_context())
    rc = ReceptorControl(server.address, rootcas=str(tls_files.other_ca), insecureskipverify=True)
    with pytest.raises(ControlAddressError) as caught:
        rc.connect()
    assert str(caught.value).startswith(f"Could not connect to host localhost port {server.port}: ")
    assert "certificate verify failed" in str(caught.value)


def test_tls_insecureskipverify_skips_only_the_name(
    make_receptor: Callable[..., Any], tls_files: Any
) -> None:
    context = tls_files.server_context("wrongname")
    server = make_receptor("n1", transport="tcp", tls_context=context)
    server.on("work list", b"{}\n")
    with pytest.raises(ControlAddressError, match=r"Hostname mismatch|doesn't match"):
        ReceptorControl(server.address, rootcas=str(tls_files.ca)).connect()
    rc = ReceptorControl(server.address, rootcas=str(tls_files.ca), insecureskipverify=True)
    assert rc.simple_command("work list") == {}


def test_tls_bad_ca_file(make_receptor: Callable[..., Any], tmp_path: Path) -> None:
    server = make_receptor("n1", transport="tcp")
    rc = ReceptorControl(server.address.replace("tcp:", "tls:"), rootcas=str(tmp_path / "no.crt"))
    with pytest.raises(ReceptorControlError, match=r"^Cannot set up TLS: "):
        rc.connect()


def test_tls_cli(
    make_receptor: Callable[..., Any],
    tls_files: Any,
    tmp_path: Path,
    any_rc: Callable[..., Any],
) -> None:
    context = tls_files.server_context(require_client_cert=True)
    server = make_receptor("n1", transport="tcp", tls_context=context)
    server.on_version("1.4.9").on("work list", b"{}\n")
    config = _write_config(
        tmp_path / "receptor.conf",
        [
            {
                "tls-client": {
                    "name": "ctl",
                    "rootcas": str(tls_files.ca),
                    "cert": str(tls_files.cert("client")),
                    "key": str(tls_files.key("client")),
                }
            }
        ],
    )
    env = {"RECEPTORCTL_CONFIG": config, "RECEPTORCTL_TLSCLIENT": "ctl"}
    result = any_rc(["--socket", server.address, "work", "list"], env=env)
    assert (result.stdout, result.exit_code) == ("{}\n", 0)
    args = [
        "--socket",
        server.address,
        "--rootcas",
        str(tls_files.ca),
        "--cert",
        str(tls_files.cert("client")),
        "--key",
        str(tls_files.key("client")),
        "work",
        "list",
    ]
    result = any_rc(args)
    assert (result.stdout, result.exit_code) == ("{}\n", 0)


def test_tls_cli_insecureskipverify(
    make_receptor: Callable[..., Any], tls_files: Any, any_rc: Callable[..., Any]
) -> None:
    server = make_receptor("n1", transport="tcp", tls_context=tls_files.server_context("wrongname"))
    server.on_version("1.4.9").on("work list", b"{}\n")
    args = ["--socket", server.address, "--rootcas", str(tls_files.ca)]
    refused = any_rc([*args, "work", "list"])
    assert refused.exit_code == 1
    assert refused.stderr.startswith(
        f"ERROR: Could not connect to host localhost port {server.port}"
    )
    result = any_rc([*args, "--insecureskipverify", "true", "work", "list"])
    assert (result.stdout, result.exit_code) == ("{}\n", 0)
