"""Real ``receptor`` processes on loopback, started from YAML files and torn down after the test.

Every node gets its own temporary directory (kept short: Unix socket paths are limited to
108 bytes), its listeners bind 127.0.0.1 port 0, and the harness reads the actual port from
the node's debug log. Processes are only ever stopped through the handles this harness
keeps (never by name).
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

READY_TIMEOUT = 20.0


#: How a node of ours is started; ``ReceptorNode(command=...)`` runs another daemon (e.g. the
#: upstream Go binary, tests/interop) with the same ``-c <config> <args>`` command line.
OUR_DAEMON = (sys.executable, "-m", "receptor")


class ReceptorNode:
    """A receptor process and its control socket."""

    def __init__(
        self,
        workdir: Path,
        node_id: str,
        items: list[Any],
        args: list[str],
        command: Sequence[str] = OUR_DAEMON,
    ) -> None:
        self.node_id = node_id
        self.argv0 = list(command)
        self.workdir = workdir
        self.socket_path = str(workdir / f"{node_id}.sock")
        self.config_path = workdir / f"{node_id}.yml"
        self.items = items
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None
        self._pump_thread: threading.Thread | None = None
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.write_config(items)

    # ------------------------------------------------------------------ process

    def write_config(self, items: list[Any]) -> None:
        self.items = items
        self.config_path.write_text(yaml.safe_dump(items, sort_keys=False))

    def start(self, wait: bool = True) -> "ReceptorNode":
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.lines = []
        self.process = subprocess.Popen(
            [*self.argv0, "-c", str(self.config_path), *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            env=env,
        )
        self._pump_thread = threading.Thread(target=self._pump, args=(self.process,), daemon=True)
        self._pump_thread.start()
        if wait:
            self.wait_for_log("Initialization complete", READY_TIMEOUT)
        return self

    def _pump(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            with self._cond:
                self.lines.append(raw.decode("utf-8", errors="replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def log(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_for_log(self, pattern: str, timeout: float = 10.0, start: int = 0) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[start:]:
                    match = regex.search(line)
                    if match:
                        return match
                remaining = deadline - time.monotonic()
                finished = self._pump_thread is not None and not self._pump_thread.is_alive()
                if remaining <= 0 or finished:
                    status = self.process.poll() if self.process else None
                    log = "\n".join(self.lines)
                    raise AssertionError(
                        f"{self.node_id}: no log line matching {pattern!r} within {timeout} s"
                        f" (exit status {status}); log:\n{log}"
                    )
                self._cond.wait(min(remaining, 0.2))

    def port(self, index: int = 0) -> int:
        """The port of the index-th TCP listener, from its debug log line."""
        self.wait_for_log("Listening on TCP", 10)
        ports = re.findall(r"Listening on TCP [^\s]+:(\d+)", self.log)
        return int(ports[index])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    # ------------------------------------------------------------------ control socket

    def session(self, request: bytes, timeout: float = 30.0) -> bytes:
        """Send raw bytes, half-close, read everything until the server closes."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(self.socket_path)
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)

    def command(self, line: str, timeout: float = 30.0) -> Any:
        """Run one command; return the parsed JSON reply or the ``ERROR:`` text."""
        reply = self.session(line.encode() + b"\n", timeout).decode()
        greeting, _, rest = reply.partition("\n")
        assert greeting == f"Receptor Control, node {self.node_id}"
        rest = rest.rstrip("\n")
        if rest.startswith("ERROR: "):
            return rest
        return json.loads(rest)

    def status(self) -> dict[str, Any]:
        return self.command("status")

    def routes(self) -> dict[str, str]:
        return self.status()["RoutingTable"]


def wait_until(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s (last value {last!r})")


class Mesh:
    """Creates nodes and guarantees they are stopped."""

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="rcpt", dir="/tmp"))
        self.nodes: list[ReceptorNode] = []

    def node(
        self,
        node_id: str,
        *items: Any,
        control: bool = True,
        log_level: str = "debug",
        args: tuple[str, ...] = (),
        start: bool = True,
        command: Sequence[str] = OUR_DAEMON,
    ) -> ReceptorNode:
        config: list[Any] = [{"node": {"id": node_id, "datadir": str(self.workdir / "data")}}]
        config.append({"log-level": log_level})
        if control:
            config.append({"control-service": {"filename": str(self.workdir / f"{node_id}.sock")}})
        config.extend(items)
        node = ReceptorNode(self.workdir, node_id, config, list(args), command)
        self.nodes.append(node)
        if start:
            node.start()
        return node

    def close(self) -> None:
        for node in self.nodes:
            node.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


def free_port() -> int:
    """A TCP port that was free a moment ago (for configs that must survive a reload)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listener(port: int = 0, **extra: Any) -> dict[str, Any]:
    return {"tcp-listener": {"port": port, "bindaddr": "127.0.0.1", **extra}}


def peer(port: int, **extra: Any) -> dict[str, Any]:
    return {"tcp-peer": {"address": f"127.0.0.1:{port}", **extra}}
