"""The control service of a real daemon: bad input, concurrency, reload, socket handling."""

import os
import signal
import socket
import stat
import subprocess
import sys
import threading

import pytest

from .harness import free_port, listener, peer, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def node(mesh):
    return mesh.node("n1", listener())


def greeting(node) -> bytes:
    return f"Receptor Control, node {node.node_id}\n".encode()


@pytest.mark.parametrize(
    "request_bytes, expected",
    [
        (b"\x00\x01\x02\xff\xfe\n", b"ERROR: Unknown command\n"),
        (
            b"{\x00}\n",
            b"ERROR: invalid character '\\x00' looking for beginning of object key string\n"
            b"ERROR: Unknown command\n",
        ),
        (
            b'{"command":"status","requested_fields":"Version"}\n',
            b"ERROR: requested_fields must be a list of strings\n",
        ),
        (b'{"command":"ping","target":["n1"]}\n', b"ERROR: ping target must be string\n"),
        (
            b"{" * 3 + b"\n",
            b"ERROR: invalid character '{' looking for beginning of object key string\n"
            b"ERROR: Unknown command\n",
        ),
        (
            b'{"a":' + b"[" * 100000 + b"\n",
            b"ERROR: invalid character '[' exceeded max depth\nERROR: Unknown command\n",
        ),
        (
            b'{"command":"status"} trailing\n',
            b"ERROR: invalid character 't' after top-level value\nERROR: Unknown command\n",
        ),
        (b"connect a b c d\n", b"ERROR: too many parameters\n"),
        (b'{"command":"connect","node":"x"}\n', b"ERROR: no connect target service\n"),
        (
            b'{"command":"connect","node":5,"service":"s"}\n',
            b"ERROR: connect target node must be string\n",
        ),
        (b"connect n1 control nope\n", b"ERROR: unknown TLS config nope\n"),
        (b"connect localhost nosvc\n", b"ERROR: INTERNAL_ERROR (local): service unknown\n"),
    ],
)
def test_bad_commands_get_errors(node, request_bytes, expected):
    assert node.session(request_bytes) == greeting(node) + expected


def test_over_long_line_is_refused_and_the_session_continues(node):
    reply = node.session(b"x" * (5 * 1024 * 1024) + b"\nstatus foo\n")
    assert reply == greeting(node) + (
        b"ERROR: command line longer than 4194304 bytes\n"
        b"ERROR: status command does not take parameters\n"
    )


def test_client_that_vanishes_mid_command_does_not_hurt(node):
    for partial in (b"stat", b'{"command":"pi', b"ping n1"):
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(node.socket_path)
            sock.recv(100)
            sock.sendall(partial)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(node.socket_path)  # connect and close without reading
    assert node.status()["NodeID"] == "n1"


def test_many_concurrent_sessions(node):
    results: list[object] = []

    def client() -> None:
        results.append(node.command("ping n1")["Success"])

    threads = [threading.Thread(target=client) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == [True] * 50


def test_several_commands_on_one_connection(node):
    reply = node.session(b"status foo\r\n\r\n\nping n1\nbogus\n").decode()
    lines = reply.split("\n")
    assert lines[1] == "ERROR: status command does not take parameters"
    assert lines[2].startswith('{"From":"n1","Success":true,"Time":')
    assert lines[3] == "ERROR: Unknown command"


def test_socket_permissions_and_lock(mesh):
    node = mesh.node("n1", {"local-only": None})
    mode = stat.S_IMODE(os.stat(node.socket_path).st_mode)
    assert mode == 0o600
    assert stat.S_IMODE(os.stat(node.socket_path + ".lock").st_mode) == 0o600
    second = mesh.node("n2", {"local-only": None}, control=False, start=False)
    second.items.append({"control-service": {"filename": node.socket_path}})
    second.write_config(second.items)
    second.start(wait=False)
    assert second.process is not None and second.process.wait(20) == 1
    second.wait_for_log(
        "Error: error opening Unix socket: could not acquire lock on socket file: "
        "fslock is already locked"
    )


def test_reload_restarts_backends_and_refuses_non_reloadable_changes(mesh):
    # A fixed port: the reloaded listener must come back where n2 redials.
    n1 = mesh.node("n1", listener(free_port()))
    n2 = mesh.node("n2", peer(n1.port()))
    wait_until(lambda: "n2" in n1.routes())
    assert n1.command("reload") == {"Success": True}
    n2.wait_for_log("Backend connection exited \\(will retry\\)")
    wait_until(lambda: "n2" not in n1.routes())
    # n2 redials after upstream's 5 s delay.
    wait_until(lambda: "n2" in n1.routes(), timeout=30)
    # A changed non-reloadable entity is refused with code 3 and the old config keeps working.
    n1.write_config([{"log-level": "info"} if "log-level" in i else i for i in n1.items])
    reply = n1.command("reload")
    assert reply == {
        "Error": "a non-reloadable config action 'log-level' was modified or added. Must "
        "restart receptor for these changes to take effect ERRORCODE 3",
        "Success": False,
    }
    # A broken file is refused with code 4.
    n1.config_path.write_text("- node: [unclosed\n")
    reply = n1.command("reload")
    assert reply["Success"] is False and reply["Error"].endswith("ERRORCODE 4")
    assert reply["Error"].startswith("error loading config file: yaml: ")
    n1.wait_for_log("Reload not successful: error loading config file")
    assert n1.command("ping n2")["Success"] is True


def test_reload_adds_a_listener_and_sighup_reloads(mesh):
    n1 = mesh.node("n1", listener())
    n1.write_config([*n1.items, listener()])
    assert n1.command("reload") == {"Success": True}
    wait_until(lambda: n1.log.count("Listening on TCP") >= 3)
    assert n1.process is not None
    start = len(n1.lines)
    n1.process.send_signal(signal.SIGHUP)
    n1.wait_for_log("Canceling backends", start=start)


def test_reload_adds_the_first_backend_of_a_node_that_had_only_local_only(mesh):
    """Components are loaded for the entities a configuration names: one that a reloaded
    file names first (the backends here) is loaded then, and its entities run."""
    n1 = mesh.node("n1", listener(free_port()))
    n2 = mesh.node("n2", {"local-only": {}})
    n2.write_config([*n2.items, peer(n1.port())])
    assert n2.command("reload") == {"Success": True}
    wait_until(lambda: "n1" in n2.routes(), timeout=30)
    assert n2.command("ping n1")["Success"] is True


def test_reload_without_config_file(mesh):
    sock = str(mesh.workdir / "cli.sock")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "receptor",
            "--node",
            "id=n1",
            "--local-only",
            "--control-service",
            f"filename={sock}",
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: os.path.exists(sock))
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(sock)
            s.sendall(b"reload\n")
            s.shutdown(socket.SHUT_WR)
            reply = b"".join(iter(lambda: s.recv(1000), b""))
        assert reply == (
            b"Receptor Control, node n1\n"
            b'{"Error":"no configuration file was provided, reload function not set ERRORCODE 4",'
            b'"Success":false}\n'
        )
    finally:
        process.kill()
        process.wait()


def test_control_service_without_any_listener_is_refused(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "receptor",
            "--node",
            "id=a",
            "--local-only",
            "--control-service",
            "service=",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=30,
    )
    assert (done.returncode, done.stdout) == (1, "Error: no listeners specified\n")
