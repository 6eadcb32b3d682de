"""receptor._systemd with what systemd (or a confused environment) may put in NOTIFY_SOCKET,
WATCHDOG_USEC and WATCHDOG_PID; the protocol itself runs against a real socket in
tests/integration/test_startup.py."""

import os
import socket

import pytest

from receptor import _systemd


@pytest.mark.parametrize(
    ("env", "period"),
    [
        ({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "2000000"}, 1.0),
        ({"NOTIFY_SOCKET": "@abstract", "WATCHDOG_USEC": "500000"}, 0.25),
        ({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "self"}, 1.0),
        ({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}, None),
        ({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "abc"}, None),
        ({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "-5"}, None),
        ({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "0"}, None),
        ({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": ""}, None),
        ({"NOTIFY_SOCKET": "relative/path", "WATCHDOG_USEC": "2000000"}, None),
        ({"WATCHDOG_USEC": "2000000"}, None),
    ],
)
def test_watchdog_period_from_the_environment(monkeypatch, env, period):
    for key in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, str(os.getpid()) if value == "self" else value)
    assert _systemd.watchdog_period() == period


def test_notify_without_or_with_a_dead_socket_does_nothing_but_return_false(monkeypatch, tmp_path):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert _systemd.notify("READY=1") is False
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert _systemd.notify("READY=1") is False  # logged once, the daemon carries on
    assert _systemd.notify("WATCHDOG=1") is False


def test_notify_sends_one_datagram_of_newline_separated_fields(monkeypatch, tmp_path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(tmp_path / "notify"))
        monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
        assert _systemd.notify("READY=1", "STATUS=up") is True
        assert server.recv(4096) == b"READY=1\nSTATUS=up"
