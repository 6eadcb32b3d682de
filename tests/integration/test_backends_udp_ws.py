"""UDP and WebSocket backends between real receptor daemons on loopback.

A mesh mixing tcp, udp and ws links; wss with real certificates; a ws-peer through a real
HTTP CONNECT proxy; the upgrade request compared byte for byte with the upstream capture;
and hostile input (bad datagrams, bad upgrade requests, bad frames) answered as upstream
does while the node keeps serving.
"""

import re
import socket
import threading

import pytest

from ..unit.backends.certs import make_pki
from ..unit.backends.golden_ws import EXCHANGES, REQUEST_1, REQUEST_2, key_of, without_date
from ..unit.backends.httpproxy import ConnectProxy
from .harness import Mesh, ReceptorNode, free_port, listener, peer, wait_until

pytestmark = pytest.mark.integration

#: Generous: the machine is shared and loaded; nothing here measures speed.
LONG = 40.0


def udp_listener(**extra):
    return {"udp-listener": {"port": 0, "bindaddr": "127.0.0.1", **extra}}


def udp_peer(port: int, **extra):
    return {"udp-peer": {"address": f"127.0.0.1:{port}", **extra}}


def ws_listener(**extra):
    return {"ws-listener": {"port": 0, "bindaddr": "127.0.0.1", **extra}}


def ws_peer(address: str, **extra):
    return {"ws-peer": {"address": address, **extra}}


def wait_log(node: ReceptorNode, pattern: str, start: int = 0) -> re.Match[str]:
    return node.wait_for_log(pattern, LONG, start)


def udp_port(node: ReceptorNode) -> int:
    return int(wait_log(node, r"Listening on UDP [^\s]+:(\d+)").group(1))


def ws_port(node: ReceptorNode) -> int:
    return int(wait_log(node, r"Listening on WSS? [^\s]+:(\d+)").group(1))


def connected(node: ReceptorNode, *names: str):
    return lambda: set(names) <= set(node.routes())


# ------------------------------------------------------------------------------ mesh


def test_mixed_mesh_converges_and_pings_across_every_link_kind(mesh: Mesh):
    hub = mesh.node("hub", listener(), udp_listener(), ws_listener())
    t = mesh.node("t", peer(hub.port()))
    u = mesh.node("u", udp_peer(udp_port(hub)))
    w = mesh.node("w", ws_peer(f"ws://127.0.0.1:{ws_port(hub)}/"))
    wait_until(connected(hub, "t", "u", "w"), timeout=LONG)
    wait_until(connected(w, "hub", "t", "u"), timeout=LONG)
    wait_until(connected(u, "hub", "t", "w"), timeout=LONG)
    wait_until(connected(t, "hub", "u", "w"), timeout=LONG)
    assert sorted(c["NodeID"] for c in hub.status()["Connections"]) == ["t", "u", "w"]
    for source, target in ((w, "u"), (u, "t"), (t, "w"), (u, "w")):
        reply = source.command(f"ping {target}")
        assert reply["Success"] is True and reply["From"] == target, (source.node_id, reply)
    trace = w.command("traceroute u")
    assert [trace[k]["From"] for k in sorted(trace)] == ["w", "hub", "u"]


def test_wss_link_between_daemons(mesh: Mesh, tmp_path):
    pki = make_pki(node_ids=("s1", "s2"))
    ca, cert, key = pki.write(tmp_path)
    s1 = mesh.node(
        "s1",
        {"tls-server": {"name": "srv", "cert": cert, "key": key}},
        ws_listener(tls="srv", path="/mesh"),
    )
    port = ws_port(s1)
    s2 = mesh.node(
        "s2",
        {"tls-client": {"name": "cli", "cert": cert, "key": key, "rootcas": ca}},
        ws_peer(f"wss://localhost:{port}/mesh", tls="cli"),
    )
    wait_until(connected(s2, "s1"), timeout=LONG)
    assert s2.command("ping s1")["Success"] is True
    # A plain ws:// dialer cannot talk to the wss listener; the listener carries on.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(REQUEST_1)
        assert raw.recv(4096) == (
            b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
        )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(b"\x16\x03\x01\x00\x05hello garbage")
        try:
            assert raw.recv(4096)[:1] in (b"", b"\x15")  # nothing, or a TLS alert
        except ConnectionResetError:
            pass
    assert s1.command("ping s2")["Success"] is True


def test_ws_peer_through_an_http_connect_proxy(mesh: Mesh, monkeypatch):
    hub = mesh.node("hub", ws_listener())
    port = ws_port(hub)
    with ConnectProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "example.org")
        w = mesh.node("w", ws_peer(f"ws://receptor.test:{port}/"))
        monkeypatch.delenv("HTTP_PROXY")
        wait_until(connected(w, "hub"), timeout=LONG)
        assert w.command("ping hub")["Success"] is True
        assert proxy.requests[0].startswith(f"CONNECT receptor.test:{port} HTTP/1.1\r\n".encode())
        w.kill()


def test_proxy_refusal_is_a_retried_dial_failure(mesh: Mesh, monkeypatch):
    with ConnectProxy(refuse=b"403 Forbidden") as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        w = mesh.node("w", ws_peer("ws://receptor.test:1/"))
        monkeypatch.delenv("HTTP_PROXY")
        wait_log(w, r"WARNING .* Backend connection failed \(will retry\): Forbidden$")
        w.kill()


# ------------------------------------------------------------------------------ wire bytes


class RequestCatcher:
    """A TCP server that records the first HTTP request head it receives, then hangs up."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.request = b""
        self.thread = threading.Thread(target=self._catch, daemon=True)
        self.thread.start()

    def _catch(self) -> None:
        self.server.settimeout(30)
        conn, _ = self.server.accept()
        with conn:
            conn.settimeout(10)
            while b"\r\n\r\n" not in self.request:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                self.request += chunk

    def close(self) -> None:
        self.thread.join(30)
        self.server.close()


@pytest.mark.parametrize(
    ("golden", "golden_port", "path", "extra"),
    [
        (REQUEST_1, 31701, "/", {}),
        (REQUEST_2, 31703, "/receptor", {"extraheader": "X-Example-Token:abc 123"}),
    ],
)
def test_upgrade_request_is_byte_exact_with_upstream(mesh: Mesh, golden, golden_port, path, extra):
    catcher = RequestCatcher()
    try:
        mesh.node("wspeer", ws_peer(f"ws://127.0.0.1:{catcher.port}{path}", **extra))
    finally:
        catcher.close()
    request = catcher.request
    expected = golden.replace(str(golden_port).encode(), str(catcher.port).encode())
    expected = expected.replace(key_of(golden).encode(), key_of(request).encode())
    assert request == expected


# ------------------------------------------------------------------------------ hostile input


def exchange(port: int, request: bytes, frame: bytes | None = None, until: bytes = b"") -> bytes:
    """Send a request (and a frame after the 101); read until EOF or until ``until`` shows."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        if frame is not None:
            while b"\r\n\r\n" not in received:
                received += sock.recv(65536)
            sock.sendall(frame)
        try:
            while not (until and until in received):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
        except ConnectionResetError:
            pass
    return received


def test_ws_listener_answers_hostile_requests_like_upstream(mesh: Mesh):
    node = mesh.node("wsodd", ws_listener(path="/receptor"))
    port = ws_port(node)
    for title in (
        "Origin that does not match Host",
        "plain GET without upgrade headers",
        "upgrade for a path the listener does not serve (path: /receptor)",
    ):
        golden = EXCHANGES[title]
        assert without_date(exchange(port, golden.request)) == without_date(golden.received)
    wait_log(
        node,
        "ERROR .* Error upgrading websocket connection: websocket: request origin not allowed"
        " by Upgrader.CheckOrigin",
    )
    wait_log(
        node,
        "ERROR .* Error upgrading websocket connection: websocket: the client is not using the"
        " websocket protocol: 'upgrade' token not found in 'Connection' header",
    )

    valid = EXCHANGES["valid upgrade without Origin header (first listener frame follows the 101)"]
    prefix = valid.received[: valid.received.index(b'"UpdateID"')]
    assert exchange(port, valid.request, until=b'"UpdateID"').startswith(prefix)

    ping = EXCHANGES["after the upgrade the client sends a masked ping frame with payload 'hello'"]
    assert b"\x8a\x05hello" in exchange(port, ping.request, ping.frame, until=b"\x8a\x05hello")

    close = EXCHANGES["after the upgrade the client sends a masked close frame (1000, 'bye')"]
    received = exchange(port, close.request, close.frame)
    assert received.endswith(b"\x88\x02\x03\xe8")
    wait_log(node, "ERROR .* Backend receiving error websocket: close 1000 \\(normal\\): bye")

    unmasked = EXCHANGES["after the upgrade the client sends an UNMASKED binary frame"]
    assert exchange(port, unmasked.request, unmasked.frame).endswith(b"\x88\n\x03\xeabad MASK")
    wait_log(node, "ERROR .* Backend receiving error websocket: bad MASK")

    # More than upstream was asked: an oversized head, data before the handshake completed,
    # and a client that vanishes mid-request. Each gets a clean close.
    huge = b"GET /receptor HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 20000 + b"\r\n\r\n"
    assert exchange(port, huge).startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert exchange(port, valid.request + b"\x82\x80\x00\x00\x00\x00") == b""
    wait_log(node, "client sent data before handshake is complete")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET /rec")

    # A text frame is taken as data, as upstream: a raw peer joins with a routing update.
    update = (
        b'\x01{"NodeID":"rawpeer","UpdateID":"abcdefgh","UpdateEpoch":1,"UpdateSequence":1,'
        b'"Connections":{"wsodd":1},"ForwardingNode":"rawpeer","SuspectedDuplicate":0}'
    )
    text_frame = bytes((0x81, 0xFE)) + len(update).to_bytes(2, "big") + bytes(4) + update
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(valid.request)
        sock.recv(4096)
        sock.sendall(text_frame)
        wait_until(
            lambda: "rawpeer" in [c["NodeID"] for c in node.status()["Connections"]],
            timeout=LONG,
        )

    # The node still serves real peers.
    other = mesh.node("peer", ws_peer(f"ws://127.0.0.1:{port}/receptor"))
    wait_until(connected(other, "wsodd"), timeout=LONG)
    assert other.command("ping wsodd")["Success"] is True


def test_udp_listener_drops_hostile_datagrams_and_keeps_serving(mesh: Mesh):
    node = mesh.node("u1", udp_listener())
    port = udp_port(node)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        raw.sendto(b"", ("127.0.0.1", port))
        raw.sendto(b"\x01" + b"{" * 30000, ("127.0.0.1", port))
        raw.sendto(b"\x7fgarbage", ("127.0.0.1", port))
        raw.sendto(b"\x01{not json", ("127.0.0.1", port))
    wait_log(node, r"ERROR .* UDP datagram from 127\.0\.0\.1:\d+ dropped: empty")
    wait_log(node, r"ERROR .* UDP datagram from 127\.0\.0\.1:\d+ dropped: longer than 16384")
    other = mesh.node("u2", udp_peer(port))
    wait_until(connected(other, "u1"), timeout=LONG)
    assert other.command("ping u1")["Success"] is True


def test_udp_peer_with_no_listener_retries_until_one_appears(mesh: Mesh):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dialer = mesh.node("d", udp_peer(port))
    wait_log(dialer, r"ERROR .* Backend receiving error read udp .*: read: connection refused")
    wait_log(dialer, r"WARNING .* Backend connection exited \(will retry\)")
    mesh.node("l", udp_listener(port=port))
    wait_until(connected(dialer, "l"), timeout=LONG)
    assert dialer.command("ping l")["Success"] is True


def test_reload_restarts_udp_and_ws_listeners_and_peers_come_back(mesh: Mesh):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        udp = probe.getsockname()[1]
    hub = mesh.node("hub", udp_listener(port=udp), ws_listener(port=free_port()))
    u = mesh.node("u", udp_peer(udp))
    w = mesh.node("w", ws_peer(f"ws://127.0.0.1:{ws_port(hub)}/"))
    wait_until(connected(hub, "u", "w"), timeout=LONG)
    start = len(hub.lines)
    assert hub.command("reload") == {"Success": True}
    wait_log(hub, "Listening on UDP", start=start)
    wait_log(w, "Backend connection exited \\(will retry\\)")
    wait_until(connected(hub, "u", "w"), timeout=LONG)
    # Routes may briefly rest on pre-reload knowledge: retry the ping until it crosses.
    wait_until(lambda: u.command("ping w")["Success"], timeout=LONG, interval=0.5)
