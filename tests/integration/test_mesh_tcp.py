"""Real receptor processes meshed over TCP on loopback."""

import signal
import socket
import time

import pytest

from receptor._core import codec
from receptor._core.highwayhash import node_hash
from receptor.netceptor import RoutingUpdate

from .harness import listener, peer, wait_until

pytestmark = pytest.mark.integration


def line3(mesh):
    """n1 and n3 listen; n2 (the middle) dials both."""
    n1 = mesh.node("n1", listener())
    n3 = mesh.node("n3", listener())
    n2 = mesh.node("n2", peer(n1.port()), peer(n3.port()))
    return n1, n2, n3


def routes_to(node, *targets):
    return lambda: set(targets) <= set(node.routes())


def test_three_node_line_converges_and_pings_across(mesh):
    n1, _, n3 = line3(mesh)
    wait_until(routes_to(n1, "n2", "n3"))
    wait_until(routes_to(n3, "n1", "n2"))
    assert n1.routes() == {"n2": "n2", "n3": "n2"}
    status = n1.status()
    assert status["KnownConnectionCosts"]["n2"] == {"n1": 1, "n3": 1}
    assert [c["NodeID"] for c in status["Connections"]] == ["n2"]
    ping = n1.command("ping n3")
    assert ping["Success"] is True and ping["From"] == "n3" and ping["Time"] > 0
    trace = n1.command("traceroute n3")
    assert [trace[k]["From"] for k in sorted(trace)] == ["n1", "n2", "n3"]
    # The control services are advertised across the mesh.
    wait_until(
        lambda: (
            {("n3", "control")}
            <= {(a["NodeID"], a["Service"]) for a in n1.status()["Advertisements"]}
        )
    )


def test_killing_the_middle_node_drops_routes_and_restart_restores_them(mesh):
    n1, n2, _ = line3(mesh)
    wait_until(routes_to(n1, "n3"))
    n2.kill()
    wait_until(lambda: "n3" not in n1.routes(), timeout=21)
    assert n1.command("ping n3") == {"Error": "no route to node", "Success": False}
    n2.start()
    wait_until(routes_to(n1, "n2", "n3"))
    assert n1.command("ping n3")["Success"] is True


def test_a_hung_middle_node_is_timed_out_within_the_idle_timeout(mesh):
    n1, n2, _ = line3(mesh)
    wait_until(routes_to(n1, "n3"))
    assert n2.process is not None
    n2.process.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        n1.wait_for_log("Timing out connection n2, idle for the past 21s", timeout=30)
        wait_until(lambda: "n3" not in n1.routes(), timeout=5)
        assert time.monotonic() - started < 28
    finally:
        n2.process.send_signal(signal.SIGCONT)


def test_duplicate_node_id_newer_process_exits(mesh):
    hub = mesh.node("A", listener(), listener())
    first = mesh.node("dup", peer(hub.port(0)), control=False)
    wait_until(routes_to(hub, "dup"))
    # The second "dup" joins through another node, so that the first one sees its updates.
    m = mesh.node("M", peer(hub.port(1)), listener())
    wait_until(routes_to(hub, "M"))
    time.sleep(1.1)  # a later second: the newcomer's epoch is larger
    second = mesh.node("dup", peer(m.port(0)), control=False, start=False)
    second.workdir = mesh.workdir
    second.start(wait=False)
    second.wait_for_log(r"We are a duplicate node with ID dup and epoch \d+\.  Shutting down\.", 20)
    assert second.process is not None
    assert second.process.wait(10) == 0
    first.wait_for_log("Duplicate node ID dup detected via A")
    assert first.process is not None and first.process.poll() is None


def test_allowed_peers_rejection(mesh):
    a = mesh.node("A", listener(allowedpeers=["x"]))
    b = mesh.node("B", peer(a.port()))
    a.wait_for_log("A: rejected connection with node B because it is not in the allowed peers list")
    b.wait_for_log("Received a rejection message from peer.")
    assert "B" not in a.routes()


def test_cost_disagreement_rejection(mesh):
    a = mesh.node("A", listener(cost=2))
    b = mesh.node("B", peer(a.port(), cost=1))
    # Both establish; each side rejects when it sees the other's cost, unless the other's
    # rejection arrives first (upstream races the same way).
    for node, other in ((a, b), (b, a)):
        rejecting = f"rejected connection with node {other.node_id} because we disagree about"
        wait_until(
            lambda node=node, rejecting=rejecting: (
                rejecting in node.log or "Received a rejection message from peer." in node.log
            )
        )
    assert "disagree about the connection cost" in a.log + b.log


def test_nodecost_agreement(mesh):
    a = mesh.node("A", listener(cost=1, nodecost={"B": 2.5}))
    b = mesh.node("B", peer(a.port(), cost=2.5))
    wait_until(routes_to(b, "A"))
    assert b.status()["Connections"] == [{"NodeID": "A", "Cost": 2.5}]


def test_firewall_rules_drop_and_reject(mesh):
    rules = [
        {"action": "drop", "tonode": "n3", "toservice": "ping"},
        {"action": "reject", "fromnode": "/n1/", "tonode": "n4"},
    ]
    n2 = mesh.node("n2", listener(), listener(), listener())
    n2.items[0]["node"]["firewallrules"] = rules
    n2.stop()
    n2.write_config(n2.items)
    n2.start()
    n1 = mesh.node("n1", peer(n2.port(0)))
    mesh.node("n3", peer(n2.port(1)))
    mesh.node("n4", peer(n2.port(2)))
    wait_until(routes_to(n1, "n2", "n3", "n4"))
    assert n1.command("ping n4") == {"Error": "blocked by firewall", "Success": False}
    started = time.monotonic()
    assert n1.command("ping n3") == {"Error": "timeout", "Success": False}
    assert time.monotonic() - started >= 9.5
    assert n1.command("ping n2")["Success"] is True


# --------------------------------------------------------------------------- bad wire input


def raw_peer(port: int, name: str = "raw", connections: dict | None = None) -> socket.socket:
    """A hand-rolled peer: connect, introduce ourselves, return the socket."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    update = RoutingUpdate(name, "AbCdEfGh", 1 << 58, 1, connections or {}, name).encode()
    sock.sendall(codec.frame(update))
    return sock


def establish(sock: socket.socket, name: str, remote: str) -> None:
    update = RoutingUpdate(name, "AbCdEfGi", 1 << 58, 2, {remote: 1.0}, name).encode()
    sock.sendall(codec.frame(update))


BAD_FRAMES = [
    b"\x00\x00",  # zero-length frame: upstream panics
    codec.frame(b"\x00" * 10),  # data too short
    codec.frame(b"\x00\x1e\x00\x00" + b"\x11" * 32),  # unknown hashes
    codec.frame(b"\x01not json"),
    codec.frame(b'\x01{"NodeID":"raw","UpdateEpoch":"soon"}'),
    codec.frame(b'\x01{"NodeID":"q","Connections":{"a":1e999}}'),
    codec.frame(b"\x02{}"),
    codec.frame(b"\x09what is this"),
    codec.frame(b"\x00" * 65535),  # a maximal frame, far over the 16 KiB "MTU"
    codec.frame(bytes(range(256)) * 200),
]


def test_bad_frames_are_survived_and_the_node_keeps_routing(mesh):
    n1, _, _ = line3(mesh)
    wait_until(routes_to(n1, "n3"))
    sock = raw_peer(n1.port())
    establish(sock, "raw", "n1")
    wait_until(routes_to(n1, "raw"))
    for frame in BAD_FRAMES:
        sock.sendall(frame)
    # A ping from raw through n1 is answered: the link survived all of the above.
    ping = codec.encode_data(30, node_hash("raw"), node_hash("n1"), "probe", "ping", b"")
    sock.sendall(codec.frame(ping))
    framer = codec.Framer()
    deadline = time.monotonic() + 10
    reply = None
    while reply is None and time.monotonic() < deadline:
        for frame in framer.feed(sock.recv(65536)):
            if frame[:1] == b"\x00":
                reply = codec.decode_data(frame)
    assert reply is not None and reply[3:5] == ("ping", "probe")
    # Stop in the middle of a frame, then vanish.
    sock.sendall(b"\x40\x00" + b"\x00" * 10)
    sock.close()
    n1.wait_for_log("connection closed in the middle of a frame")
    assert n1.command("ping n3")["Success"] is True
    assert n1.process is not None and n1.process.poll() is None
    for text in (
        "zero-length message",
        "data too short",
        "hash not found",
        "Error unpacking routing update",
        "Unknown message type",
    ):
        assert text in n1.log, text


def test_garbage_before_the_handshake_is_survived(mesh):
    n1 = mesh.node("n1", listener())
    for payload in (b"\x00\x00", b"GET / HTTP/1.1\r\n\r\n", bytes(range(256)) * 4, b"\xff\xff\x01"):
        with socket.create_connection(("127.0.0.1", n1.port()), timeout=5) as sock:
            sock.sendall(payload)
            time.sleep(0.2)
    assert n1.status()["NodeID"] == "n1"


def test_peer_that_never_introduces_itself_is_dropped(mesh):
    n1 = mesh.node("n1", listener())
    with socket.create_connection(("127.0.0.1", n1.port()), timeout=20) as sock:
        n1.wait_for_log("Giving up on connection initialization", timeout=20)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    frames = codec.Framer().feed(data)
    assert len(frames) == 11 and all(f[:1] == b"\x01" for f in frames)
    sequences = [RoutingUpdate.decode(f[1:]).sequence for f in frames]
    assert sequences == list(range(sequences[0], sequences[0] + 11))


@pytest.mark.parametrize(
    "args, prefix",
    [
        (["--tcp-listener", "port={port}", "bindaddr=127.0.0.1"], ""),
        (
            ["--local-only", "--control-service", "tcplisten=127.0.0.1:{port}"],
            "error listening on TCP socket: ",
        ),
    ],
)
def test_port_in_use_is_a_clear_startup_error(tmp_path, args, prefix):
    import subprocess
    import sys

    with socket.create_server(("127.0.0.1", 0)) as held:
        port = held.getsockname()[1]
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "receptor",
                "--node",
                "id=a",
                *(a.format(port=port) for a in args),
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=30,
        )
    assert done.returncode == 1
    assert done.stdout.endswith(
        f"Error: {prefix}listen tcp 127.0.0.1:{port}: bind: address already in use\n"
    )
