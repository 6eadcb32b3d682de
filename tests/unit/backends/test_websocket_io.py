"""The WebSocket backend on real sockets: sessions against a raw peer, in-process mesh nodes
linked over ws, wss (real TLS, certificates made by cryptography) and an HTTP CONNECT proxy."""

import logging
import socket
import threading
import time

import pytest

from receptor.backends import _ws, websocket
from receptor.backends._redial import DialError
from receptor.backends.websocket import WebSocketDialer, WebSocketListener, WebSocketSession
from receptor.netceptor import BackendInfo, SessionClosed

from .certs import make_pki
from .httpproxy import ConnectProxy

KEY = b"\x01\x02\x03\x04"


def wait_until(predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout} s")


def read_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    sock.settimeout(10)
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            break
        data += chunk
    return data


@pytest.fixture
def server_and_raw():
    """A listener-side session and the raw client socket on the other end."""
    ours, raw = socket.socketpair()
    session = WebSocketSession(ours, "test", server=True)
    yield session, raw
    session.release()
    raw.close()


# ------------------------------------------------------------------------------ sessions


def test_messages_both_ways_in_any_size():
    a, b = socket.socketpair()
    server = WebSocketSession(a, "server", server=True)
    client = WebSocketSession(b, "client", server=False)
    try:
        for message in (b"\x01{}", bytes(126), bytes(70000)):
            client.send(message)
            assert server.recv(10) == message
            server.send(message)
            assert client.recv(10) == message
        assert server.recv(0.05) is None
    finally:
        client.release()
        server.release()


def test_ping_is_answered_with_pong(server_and_raw):
    session, raw = server_and_raw
    raw.sendall(_ws.encode_frame(_ws.OP_PING, b"hello", KEY))
    assert session.recv(0.3) is None
    assert read_exactly(raw, 7) == b"\x8a\x05hello"


def test_client_close_is_answered_and_reported(server_and_raw):
    session, raw = server_and_raw
    raw.sendall(bytes.fromhex("88850102030402ea617d64"))
    with pytest.raises(_ws.CloseReceived, match=r"^websocket: close 1000 \(normal\): bye$"):
        session.recv(5)
    assert read_exactly(raw, 4) == bytes.fromhex("880203e8")


def test_unmasked_frame_gets_close_1002_bad_mask(server_and_raw):
    session, raw = server_and_raw
    raw.sendall(bytes.fromhex("8203017b7d"))
    with pytest.raises(_ws.FrameError, match=r"^websocket: bad MASK$"):
        session.recv(5)
    session.close()
    assert read_exactly(raw, 12) == b"\x88\n\x03\xeabad MASK"
    assert raw.recv(10) == b""


def test_eof_is_abnormal_closure(server_and_raw):
    session, raw = server_and_raw
    raw.sendall(b"\x82\x85" + KEY)  # a frame cut short
    raw.shutdown(socket.SHUT_WR)
    with pytest.raises(_ws.CloseReceived, match=r"close 1006 \(abnormal closure\): unexpected EOF"):
        session.recv(5)


def test_close_wakes_a_blocked_reader_and_sends_close_1000(server_and_raw):
    session, raw = server_and_raw
    outcome: list[BaseException] = []

    def reader():
        try:
            session.recv(30)
        except BaseException as err:  # handed to the test thread
            outcome.append(err)

    thread = threading.Thread(target=reader)
    thread.start()
    time.sleep(0.1)
    session.close()
    thread.join(10)
    assert not thread.is_alive()
    assert isinstance(outcome[0], SessionClosed)
    assert read_exactly(raw, 4) == bytes.fromhex("880203e8")
    with pytest.raises(ConnectionError):
        session.send(b"late")


# ------------------------------------------------------------------------------ mesh links


def test_ws_link_between_two_nodes(make_node):
    listener = WebSocketListener("127.0.0.1", 0, "/mesh")
    a = make_node("a", listener)
    b = make_node("b", WebSocketDialer(f"ws://127.0.0.1:{listener.port}/mesh"))
    wait_until(lambda: "b" in a.routes() and "a" in b.routes())
    assert b.ping("a").error is None
    assert a.ping("b").error is None


def test_wss_link_with_real_certificates(make_node, tmp_path):
    pki = make_pki()
    listener = WebSocketListener("127.0.0.1", 0, tls=pki.server_context(tmp_path))
    a = make_node("a", listener)
    dialer = WebSocketDialer(f"wss://localhost:{listener.port}/", tls=pki.client_context())
    b = make_node("b", dialer)
    wait_until(lambda: "b" in a.routes() and "a" in b.routes())
    assert b.ping("a").error is None


def test_wss_with_an_untrusted_certificate_fails_and_the_listener_carries_on(make_node, tmp_path):
    pki, other = make_pki(), make_pki()
    listener = WebSocketListener("127.0.0.1", 0, tls=pki.server_context(tmp_path))
    a = make_node("a", listener)
    untrusting = WebSocketDialer(f"wss://127.0.0.1:{listener.port}/", tls=other.client_context())
    with pytest.raises(DialError, match=r"certificate|verify"):
        untrusting.dial()
    plain = WebSocketDialer(f"ws://127.0.0.1:{listener.port}/")
    with pytest.raises(DialError):
        plain.dial()
    b = make_node(
        "b", WebSocketDialer(f"wss://127.0.0.1:{listener.port}/", tls=pki.client_context())
    )
    wait_until(lambda: "b" in a.routes())
    assert b.ping("a").error is None


def test_ws_peer_through_a_connect_proxy(make_node):
    listener = WebSocketListener("127.0.0.1", 0)
    a = make_node("a", listener)
    with ConnectProxy() as proxy:
        dialer = WebSocketDialer(
            f"ws://receptor.test:{listener.port}/", environ={"HTTP_PROXY": proxy.url}
        )
        b = make_node("b", dialer)
        wait_until(lambda: "b" in a.routes())
        assert b.ping("a").error is None
        target = f"receptor.test:{listener.port}".encode()
        assert proxy.requests[0] == (
            b"CONNECT " + target + b" HTTP/1.1\r\nHost: " + target + b"\r\n"
            b"User-Agent: Go-http-client/1.1\r\n\r\n"
        )


def test_wss_peer_through_an_authenticating_proxy(make_node, tmp_path):
    pki = make_pki()
    listener = WebSocketListener("127.0.0.1", 0, tls=pki.server_context(tmp_path))
    a = make_node("a", listener)
    with ConnectProxy(credentials="dTpw") as proxy:  # base64 of "u:p"
        env = {"HTTPS_PROXY": f"http://u:p@127.0.0.1:{proxy.port}", "HTTP_PROXY": "http://x:1"}
        dialer = WebSocketDialer(
            f"wss://receptor.test:{listener.port}/", tls=pki.client_context(), environ=env
        )
        b = make_node("b", dialer)
        wait_until(lambda: "b" in a.routes())
        assert b.ping("a").error is None


@pytest.mark.parametrize(
    ("proxy_kwargs", "env", "message"),
    [
        ({"refuse": b"403 Forbidden"}, {}, "^Forbidden$"),
        ({"credentials": "dTpw"}, {}, "^Proxy Authentication Required$"),
        ({}, {"HTTP_PROXY": "socks5://127.0.0.1:1"}, "^proxy: unknown scheme: socks5$"),
    ],
)
def test_proxy_failures_are_dial_errors(proxy_kwargs, env, message):
    with ConnectProxy(**proxy_kwargs) as proxy:
        environ = env or {"HTTP_PROXY": proxy.url}
        dialer = WebSocketDialer("ws://receptor.test:1/", environ=environ)
        with pytest.raises(DialError, match=message):
            dialer.dial()


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "^websocket: bad handshake$"),
        (b"", "^unexpected EOF$"),
        (b"x" * 20000, "^too large$"),
    ],
)
def test_bad_listener_answers_are_dial_errors(answer, message):
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def answer_once():
            conn, _ = server.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(answer)

        thread = threading.Thread(target=answer_once)
        thread.start()
        with pytest.raises(DialError, match=message):
            WebSocketDialer(f"ws://127.0.0.1:{port}/").dial()
        thread.join(10)


def test_malformed_url_and_refused_connection():
    with pytest.raises(DialError, match=r"^malformed ws or wss URL$"):
        WebSocketDialer("http://127.0.0.1:1/").dial()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(
        DialError, match=f"^dial tcp 127.0.0.1:{port}: connect: connection refused$"
    ):
        WebSocketDialer(f"ws://127.0.0.1:{port}/").dial()


def test_no_redial_stops_after_the_first_failure(make_node, caplog):
    caplog.set_level(logging.DEBUG, logger="receptor")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dialer = WebSocketDialer(f"ws://127.0.0.1:{port}/", redial=False)
    make_node("a", dialer)
    assert dialer._thread is not None
    dialer._thread.join(10)
    assert not dialer._thread.is_alive()
    assert "Backend connection failed: dial tcp" in caplog.text


def test_extra_header_needs_a_colon():
    with pytest.raises(ValueError, match=r"extra header must be in the form key:value"):
        WebSocketDialer("ws://h/", extra_header="foo")


def test_a_silent_client_is_dropped_after_the_header_timeout(make_node, monkeypatch):
    monkeypatch.setattr(websocket, "HEADER_TIMEOUT", 0.3)
    listener = WebSocketListener("127.0.0.1", 0)
    make_node("a", listener)
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # never finished
        assert sock.recv(100) == b""


def test_stop_aborts_connections_still_in_the_handshake(monkeypatch, make_node):
    monkeypatch.setattr(websocket, "HEADER_TIMEOUT", 600)
    listener = WebSocketListener("127.0.0.1", 0)
    listener.start(make_node("a"), BackendInfo())
    with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as sock:
        sock.sendall(b"GET / HTT")
        wait_until(lambda: listener._connections)
        listener.stop()  # returns: the waiting thread was woken (pytest-timeout guards)
        assert sock.recv(100) == b""
    assert not listener._threads
