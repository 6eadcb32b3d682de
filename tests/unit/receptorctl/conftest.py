"""A scripted stand-in for the upstream daemon's control service, and the golden captures.

`FakeReceptor` listens on a real Unix socket or on TCP 127.0.0.1 port 0 (optionally TLS) and
answers each request line with what the test scripted, taken from the recordings of the Go
daemon v1.4.9 in `tests/data/control` and `tests/data/work` where they cover the request. It
reads requests one byte at a time up to the newline, as the Go daemon does, and records every
request line and every payload exactly as received, so tests can compare the bytes our client
sends with the recorded ones.

Everything is handed to the tests through fixtures (no helper imports), so the test modules
work whether or not this directory is a package.
"""

from __future__ import annotations

import ast
import functools
import json
import re
import select
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

DATA = Path(__file__).resolve().parents[2] / "data"

#: Reply step: read everything the client sends until it half-closes (the work payload).
READ_PAYLOAD = "read-payload"
#: Reply step: close the connection (end of a results stream, or a daemon going away).
CLOSE = "close"


@dataclass(frozen=True)
class Switch:
    """Reply step: from here on this connection is a control session on another node
    (what `connect <node> control` does); its greeting is sent at once."""

    node: str


def greeting(node: str) -> bytes:
    return f"Receptor Control, node {node}\n".encode()


def go_json(value: Any) -> bytes:
    """A reply line as the Go daemon writes it: compact JSON, raw UTF-8, newline."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


class FakeReceptor:
    """A control service that replays scripted replies.

    `on(request, *steps)` queues one reply to a request line on a node (default: the node
    this server greets as). A step is bytes to send, `READ_PAYLOAD`, `CLOSE` or `Switch`.
    Replies to one request are used in order; the last one repeats. A request nothing was
    scripted for gets `ERROR: Unknown command` and is listed in `unexpected`.
    """

    def __init__(
        self,
        node: str = "n1",
        *,
        transport: str = "unix",
        on_connect: list[Any] | None = None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.node = node
        self.on_connect = [greeting(node)] if on_connect is None else on_connect
        self.requests: list[tuple[str, bytes]] = []
        self.payloads: list[bytes] = []
        self.unexpected: list[tuple[str, bytes]] = []
        self.errors: list[BaseException] = []
        self.connections = 0
        self._replies: dict[tuple[str, bytes], deque[list[Any]]] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._open: list[socket.socket] = []
        self._tls = tls_context
        self._dir = tempfile.mkdtemp(prefix="rctl", dir="/tmp")
        if transport == "unix":
            self.path = f"{self._dir}/ctl.sock"
            self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._listener.bind(self.path)
            self.address = self.path
        else:
            self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self._listener.bind(("127.0.0.1", 0))
            self.port = self._listener.getsockname()[1]
            scheme = "tls" if tls_context else "tcp"
            self.address = f"{scheme}://localhost:{self.port}"
        self._listener.listen(16)
        self._wake_r, self._wake_w = socket.socketpair()
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()

    # -- scripting ------------------------------------------------------------------------

    def on(self, request: bytes | str, *steps: Any, node: str | None = None) -> FakeReceptor:
        line = request.encode() if isinstance(request, str) else request
        if not line.endswith(b"\n"):
            line += b"\n"
        key = (node or self.node, line)
        self._replies.setdefault(key, deque()).append(list(steps))
        return self

    def on_version(self, version: str = "1.4.9", node: str | None = None) -> FakeReceptor:
        """The `status` request every receptorctl invocation starts with."""
        return self.on(
            b'{"command":"status","requested_fields":["Version"]}\n',
            go_json({"Version": version}),
            node=node,
        )

    def request_lines(self, node: str | None = None) -> list[bytes]:
        return [line for n, line in self.requests if node is None or n == node]

    # -- serving --------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while True:
            ready, _, _ = select.select([self._listener, self._wake_r], [], [])
            if self._wake_r in ready:
                return
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._open.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            if self._tls is not None:
                conn = self._tls.wrap_socket(conn, server_side=True)
                with self._lock:
                    self._open.append(conn)
            node = self.node
            if self._run(conn, self.on_connect, node) is None:
                return
            while True:
                line = self._read_line(conn)
                if line is None:
                    return
                if line in (b"\n", b"\r\n"):
                    continue
                with self._lock:
                    self.requests.append((node, line))
                    queue = self._replies.get((node, line))
                    steps = None
                    if queue:
                        steps = queue.popleft() if len(queue) > 1 else queue[0]
                    else:
                        self.unexpected.append((node, line))
                if steps is None:
                    conn.sendall(b"ERROR: Unknown command\n")
                    continue
                next_node = self._run(conn, steps, node)
                if next_node is None:
                    return
                node = next_node
        except OSError:
            pass  # the client went away, or refused our TLS certificate
        except Exception as e:
            self.errors.append(e)
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def _run(self, conn: socket.socket, steps: list[Any], node: str) -> str | None:
        """Play reply steps; the node the session is on afterwards, None once closed."""
        for step in steps:
            if isinstance(step, bytes):
                conn.sendall(step)
            elif isinstance(step, Switch):
                node = step.node
                conn.sendall(greeting(node))
            elif step == READ_PAYLOAD:
                chunks = []
                while chunk := conn.recv(65536):
                    chunks.append(chunk)
                with self._lock:
                    self.payloads.append(b"".join(chunks))
            elif step == CLOSE:
                return None
            else:
                raise AssertionError(f"unknown step {step!r}")
        return node

    @staticmethod
    def _read_line(conn: socket.socket) -> bytes | None:
        line = bytearray()
        while True:
            byte = conn.recv(1)
            if not byte:
                return bytes(line) + b"\n" if line else None
            line += byte
            if byte == b"\n":
                return bytes(line)

    def close(self) -> None:
        self._wake_w.send(b"x")
        self._acceptor.join(timeout=5)
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()
        with self._lock:
            conns = list(self._open)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self._threads:
            thread.join(timeout=5)
        shutil.rmtree(self._dir, ignore_errors=True)


# -- golden captures ------------------------------------------------------------------------


@dataclass
class GoldenSession:
    """One recorded control connection: request bytes and response bytes."""

    name: str
    request: bytes
    response: bytes

    @property
    def greeting(self) -> bytes:
        return self.response.split(b"\n", 1)[0] + b"\n"

    @property
    def reply(self) -> bytes:
        """The response after the greeting."""
        return self.response.split(b"\n", 1)[1]

    @property
    def reply_lines(self) -> list[bytes]:
        return self.reply.splitlines(keepends=True)

    @property
    def reply_json(self) -> Any:
        return json.loads(self.reply_lines[0])


def load_golden_control(name: str) -> GoldenSession:
    text = (DATA / "control" / f"{name}.txt").read_text(encoding="utf-8")
    request = re.search(r"^### request bytes: (b.*)$", text, re.M)
    response = re.search(r"^### response bytes: (b.*)$", text, re.M)
    assert request and response, name
    return GoldenSession(
        name, ast.literal_eval(request.group(1)), ast.literal_eval(response.group(1))
    )


def load_golden_work(case: str) -> list[GoldenSession]:
    """The request/response exchanges of a `tests/data/work` case, in order."""
    text = (DATA / "work" / f"{case}.txt").read_text(encoding="utf-8")
    sessions = []
    pattern = r"^--- (.*?) \(t=.*?\n\s*request bytes:\s+(b.*)\n\s*response bytes:\s+(b.*)$"
    for m in re.finditer(pattern, text, re.M):
        sessions.append(
            GoldenSession(m.group(1), ast.literal_eval(m.group(2)), ast.literal_eval(m.group(3)))
        )
    return sessions


@dataclass
class TranscriptCase:
    """One command of the upstream receptorctl 1.6.9 transcript and what it printed."""

    index: int
    node: str
    args: list[str]
    stdout: str
    stderr: str
    exit_code: int
    output: str = field(repr=False, default="")


def load_transcript() -> list[TranscriptCase]:
    """The transcript's commands; `Warning:`/`ERROR:` lines are the stderr part."""
    text = (DATA / "receptorctl" / "receptorctl-1.6.9-transcript.txt").read_text("utf-8")
    cases = []
    command = r"^\$ venv/bin/receptorctl ([^\n]*)\n(.*?)^\[rc=(\d+)\]\n"
    blocks = re.finditer(command, text, re.M | re.S)
    for index, m in enumerate(blocks):
        argv = shlex.split(m.group(1))
        assert argv[0] == "--socket", argv
        node = Path(argv[1]).stem
        lines = m.group(2).splitlines(keepends=True)
        stderr = "".join(ln for ln in lines if ln.startswith(("Warning:", "ERROR:")))
        stdout = "".join(ln for ln in lines if not ln.startswith(("Warning:", "ERROR:")))
        cases.append(
            TranscriptCase(index, node, argv[2:], stdout, stderr, int(m.group(3)), m.group(2))
        )
    return cases


# -- running receptorctl --------------------------------------------------------------------


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str
    stdout_bytes: bytes = b""


def run_in_process(args: list[str], input: bytes | str | None = None, env: Any = None) -> Run:
    """Run `receptorctl.cli.main` (the console script's function) in an isolated click I/O."""
    from receptorctl.cli import main

    runner = CliRunner()
    with runner.isolation(input=input, env=env) as streams:
        code: Any = 0
        try:
            main(args)
        except SystemExit as e:
            code = e.code
        out, err = streams[0].getvalue(), streams[1].getvalue()
    exit_code = code if isinstance(code, int) else (0 if code is None else 1)
    return Run(exit_code, out.decode(), err.decode(), out)


def console_script() -> Path:
    return Path(sys.executable).parent / "receptorctl"


def run_console_script(
    args: list[str], input: bytes | None = None, timeout: float = 30, env: Any = None
) -> Run:
    """Run the installed `receptorctl` console script as a separate process."""
    script = console_script()
    if not script.exists():
        pytest.skip("the receptorctl console script is not installed")
    done = subprocess.run(
        [str(script), *args], input=input, capture_output=True, timeout=timeout, env=env
    )
    return Run(done.returncode, done.stdout.decode(), done.stderr.decode(), done.stdout)


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def make_receptor() -> Iterator[Callable[..., FakeReceptor]]:
    """A factory of `FakeReceptor`s, all closed after the test."""
    made: list[FakeReceptor] = []

    def make(*args: Any, **kwargs: Any) -> FakeReceptor:
        server = FakeReceptor(*args, **kwargs)
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()
    for server in made:
        assert not server.errors, server.errors


@pytest.fixture
def receptor(make_receptor: Callable[..., FakeReceptor]) -> FakeReceptor:
    """A fake node `n1` on a Unix socket."""
    return make_receptor("n1")


@pytest.fixture(params=["unix", "tcp"])
def any_receptor(
    request: pytest.FixtureRequest, make_receptor: Callable[..., FakeReceptor]
) -> FakeReceptor:
    """A fake node `n1` on a Unix socket, then on TCP."""
    return make_receptor("n1", transport=request.param)


@pytest.fixture(scope="session")
def golden() -> Callable[[str], GoldenSession]:
    return load_golden_control


@pytest.fixture(scope="session")
def golden_work() -> Callable[[str], list[GoldenSession]]:
    return load_golden_work


@pytest.fixture(scope="session")
def transcript() -> list[TranscriptCase]:
    return load_transcript()


@pytest.fixture(scope="session")
def rc_run() -> Callable[..., Run]:
    """Run our receptorctl in-process; `rc_run(args, input=None, env=None)`."""
    return run_in_process


@pytest.fixture(scope="session")
def console_script_path() -> Path:
    """The installed `receptorctl` console script (skip if it is not installed)."""
    script = console_script()
    if not script.exists():
        pytest.skip("the receptorctl console script is not installed")
    return script


@pytest.fixture(scope="session")
def rc_script() -> Callable[..., Run]:
    """Run the installed console script; `rc_script(args, input=None, timeout=30)`."""
    return run_console_script


def run_upstream(
    upstream: Path, args: list[str], input: bytes | None = None, env: Any = None
) -> Run:
    """Run the upstream receptorctl 1.6.9 (the ``upstream_receptorctl`` fixture's)."""
    done = subprocess.run(
        [str(upstream), *args], input=input, capture_output=True, timeout=60, env=env
    )
    return Run(done.returncode, done.stdout.decode(), done.stderr.decode(), done.stdout)


@pytest.fixture(params=["ours", pytest.param("upstream", marks=pytest.mark.interop)])
def any_rc(request: pytest.FixtureRequest) -> Callable[..., Run]:
    """Our receptorctl in-process, then upstream 1.6.9: for behaviour where the two must
    agree."""
    if request.param == "ours":
        return run_in_process
    return functools.partial(run_upstream, request.getfixturevalue("upstream_receptorctl"))


@pytest.fixture(scope="session")
def steps() -> Any:
    """The reply step markers and helpers, for scripting a `FakeReceptor`."""

    class Steps:
        READ_PAYLOAD = READ_PAYLOAD
        CLOSE = CLOSE
        Switch = Switch
        greeting = staticmethod(greeting)
        go_json = staticmethod(go_json)

    return Steps


@dataclass
class TLSFiles:
    """Certificates made for the tests: `server` is valid for localhost and 127.0.0.1,
    `wrongname` only for example.invalid, both signed by `ca`; `other_ca` signed nothing."""

    dir: Path
    ca: Path
    other_ca: Path

    def cert(self, name: str) -> Path:
        return self.dir / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.dir / f"{name}.key"

    def server_context(
        self, name: str = "server", require_client_cert: bool = False
    ) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        # receptorctl ends a payload with a bare TCP half-close, no TLS close_notify (as
        # upstream); Go reads that as EOF, OpenSSL 3 as an error unless told otherwise.
        context.options |= getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
        context.load_cert_chain(self.cert(name), self.key(name))
        if require_client_cert:
            context.load_verify_locations(self.ca)
            context.verify_mode = ssl.CERT_REQUIRED
        return context


def _openssl(*args: str | Path, cwd: Path) -> None:
    subprocess.run(["openssl", *map(str, args)], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """Made with the openssl command at the start of the session, so they never expire."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    d = tmp_path_factory.mktemp("tls")
    for ca in ("ca", "other"):
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key",
            "-out", f"{ca}.crt", "-days", "2", "-subj", f"/CN=Test {ca}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            cwd=d,
        )  # fmt: skip
    names = {
        "server": "DNS:localhost,IP:127.0.0.1",
        "client": "DNS:client",
        "wrongname": "DNS:example.invalid",
    }
    for leaf, san in names.items():
        (d / f"{leaf}.ext").write_text(
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=serverAuth,clientAuth\nauthorityKeyIdentifier=keyid\n"
            f"subjectAltName={san}\n"
        )
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{leaf}.key",
            "-out", f"{leaf}.csr", "-subj", f"/CN={leaf}", cwd=d,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{leaf}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{leaf}.crt", "-days", "2", "-extfile", f"{leaf}.ext",
            cwd=d,
        )  # fmt: skip
    return TLSFiles(d, d / "ca.crt", d / "other.crt")
