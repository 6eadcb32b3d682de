"""systemd's notify protocol (``sd_notify(3)``), spoken directly: no libsystemd.

With ``Type=notify`` systemd passes ``NOTIFY_SOCKET`` (a datagram socket path, or an
abstract one when it starts with ``@``); the daemon sends ``READY=1`` once it serves (its
control sockets answer and its backends are started) and ``STATUS=`` lines to show in
``systemctl status``. With ``WatchdogSec=`` systemd also passes ``WATCHDOG_USEC`` (and
``WATCHDOG_PID``); the daemon must then send ``WATCHDOG=1`` more often than that, or be
restarted. We send it from the mesh's scheduler thread at half the interval, so a
daemon whose timers have stopped (a deadlock, a hung scheduler) is restarted.

Without ``NOTIFY_SOCKET`` every call does nothing. A failed send is logged once and
otherwise ignored: the notification is advisory, the daemon's work is not.
"""

import os
import socket

from receptor._log import logger

_warned = False


def _address() -> str | None:
    path = os.environ.get("NOTIFY_SOCKET", "")
    if not path or path[0] not in "/@":
        return None
    return "\0" + path[1:] if path[0] == "@" else path


def notify(*fields: str) -> bool:
    """Send ``fields`` (``READY=1``, ``STATUS=…``, ``WATCHDOG=1``) as one datagram; True
    if it was sent."""
    global _warned
    address = _address()
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto("\n".join(fields).encode(), address)
    except OSError as err:
        if not _warned:
            _warned = True
            logger.warning("Could not notify systemd (NOTIFY_SOCKET): %s", err)
        return False
    return True


def watchdog_period() -> float | None:
    """How often to send ``WATCHDOG=1`` (half of ``WATCHDOG_USEC``), or None when systemd
    does not watch this process."""
    pid = os.environ.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0 or _address() is None:
        return None
    return usec / 2e6
