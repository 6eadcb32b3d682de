"""The UDP backend on real sockets: in-process mesh nodes over UDP, hostile datagrams, limits."""

import logging
import socket
import time

import pytest

from receptor._errors import ConfigError
from receptor.backends import udp
from receptor.backends.udp import UDPDialer, UDPListener


def wait_until(predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout} s")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_udp_link_between_two_nodes(make_node):
    listener = UDPListener("127.0.0.1", 0)
    a = make_node("a", listener)
    b = make_node("b", UDPDialer(f"127.0.0.1:{listener.port}"))
    wait_until(lambda: "b" in a.routes() and "a" in b.routes())
    assert b.ping("a").error is None
    assert a.ping("b").error is None


def test_hostile_datagrams_are_dropped_and_the_listener_carries_on(make_node, caplog):
    caplog.set_level(logging.DEBUG, logger="receptor")
    listener = UDPListener("127.0.0.1", 0)
    a = make_node("a", listener)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        target = ("127.0.0.1", listener.port)
        raw.sendto(b"", target)
        raw.sendto(b"\x01" + b"x" * 20000, target)
        raw.sendto(b"\x01" + b"x" * 65000, target)
        wait_until(lambda: caplog.text.count("dropped: longer than 16384 bytes") == 2)
        wait_until(lambda: "dropped: empty" in caplog.text)
        for garbage in (b"\xff\x00garbage", b"\x01{not json", b"\x00short", b"\x03[]"):
            raw.sendto(garbage, target)
        # The garbage source got a session of its own: the node answers it.
        raw.settimeout(10)
        first = raw.recv(65536)
        assert first.startswith(b'\x01{"NodeID":"a"')
    b = make_node("b", UDPDialer(f"127.0.0.1:{listener.port}"))
    wait_until(lambda: "b" in a.routes())
    assert b.ping("a").error is None


def test_session_limit(make_node, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG, logger="receptor")
    monkeypatch.setattr(udp, "MAX_SESSIONS", 2)
    listener = UDPListener("127.0.0.1", 0)
    make_node("a", listener)
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
    try:
        for sock in sockets:
            sock.sendto(b"\x09unknown type", ("127.0.0.1", listener.port))
        wait_until(lambda: "dropped: 2 sessions already" in caplog.text)
    finally:
        for sock in sockets:
            sock.close()


def test_dialer_session_send_limit_and_refused_port():
    dialer = UDPDialer(f"127.0.0.1:{free_udp_port()}")
    session = dialer.dial()
    try:
        with pytest.raises(OSError, match=r"data too large"):
            session.send(bytes(udp.MAX_SEND + 1))
        session.send(b"\x01{}")
        with pytest.raises(OSError, match=r"^read udp 127\.0\.0\.1:\d+->127\.0\.0\.1:\d+: read: "):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                session.recv(0.2)
    finally:
        session.release()


def test_listener_session_send_limit(make_node):
    listener = UDPListener("127.0.0.1", 0)
    make_node("a", listener)
    session = udp.UDPListenerSession(listener, ("127.0.0.1", 9))
    with pytest.raises(OSError, match=r"data too large"):
        session.send(bytes(udp.MAX_SEND + 1))
    session.close()
    with pytest.raises(ConnectionError):
        session.send(b"x")


def test_address_errors():
    with pytest.raises(ConfigError, match=r"^address foo: missing port in address$"):
        UDPDialer("foo")
    with pytest.raises(ConfigError, match=r"^lookup no-such-host.invalid: "):
        UDPDialer("no-such-host.invalid:5")


def test_bind_error_is_reported_in_gos_words(make_node):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        listener = UDPListener("127.0.0.1", port)
        with pytest.raises(ConfigError, match=f"^listen udp 127.0.0.1:{port}: bind: address"):
            listener.start(make_node("a"), udp_info())
        listener.stop()


def udp_info():
    from receptor.netceptor import BackendInfo

    return BackendInfo()
