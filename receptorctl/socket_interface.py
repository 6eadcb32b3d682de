"""`ReceptorControl`: a client session on a Receptor control service.

The same public API and wire behaviour as upstream receptorctl 1.6.9 (AWX and ansible-runner
program against it): one connection per session, reused for every command; a command is one
line, its reply one line; `work submit` and `work results` half-close the connection to end
their byte streams. Differences, all where upstream would crash, hang or hide the cause:

* replies are read without buffering past their newline, so bytes that follow `Connecting` or
  the results header are never lost (upstream's buffered `makefile` could swallow them);
* a reply line is limited to `max_line_length` bytes; a connection closed before or in the
  middle of a reply, a reply that is not JSON or not UTF-8, all raise `ControlProtocolError`
  with a clear message instead of `json.JSONDecodeError` on an empty string;
* a failed handshake closes the connection (upstream kept the half-open session);
* connection failures keep their reason: `Could not connect to host h port p: <why>`, and a
  Unix socket error names the path;
* `tlsclient=None` for `connect_to_service` means no TLS client (upstream sent `None`);
* payloads may be any object with `read()` returning bytes or text, and an unusable payload is
  refused before the work unit is created (upstream created the unit first);
* `tcp://[v6addr]:port` is accepted besides upstream's bracket-less `tcp://v6addr:port`.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import ssl
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import yaml

from receptorctl._address import ControlAddress, parse_control_address
from receptorctl._errors import ControlAddressError, ControlProtocolError, ReceptorControlError
from receptorctl._wire import LineTooLong, read_line, shutdown_write

__all__ = ["ReceptorControl"]

_GREETING = re.compile(r"Receptor Control, node (.+)")
_WORK_CREATED = re.compile(r"Work unit created with ID (.+)\. Send stdin data and EOF\.")
_STREAMING = re.compile(r"Streaming results for work unit (.+)")
_ERROR_PREFIX = "ERROR:"
_COPY_CHUNK = 65536


def _preview(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _error_text(line: str) -> str:
    """The message of an `ERROR: <message>` line."""
    return line[len(_ERROR_PREFIX) :].removeprefix(" ")


class ReceptorControl:
    """A session on the control service at `socketaddress`.

    `socketaddress` is a Unix socket path (`/path`, `unix:/path`, `unix:///path`, `~` expanded),
    `tcp://host:port` or `tls://host:port`. For `tls:` the server certificate is checked against
    `rootcas` (else the system trust store) and, unless `insecureskipverify`, its host name; `key`
    and `cert` give a client certificate. Alternatively `config` (a receptor YAML file) and
    `tlsclient` (the name of a `tls-client` item in it) supply `rootcas`, `key`, `cert` and
    `insecureskipverify`.

    Nothing is opened until the first command (or `connect()`). The session can be used as a
    context manager, which closes it.
    """

    #: Longest reply line accepted, in bytes (a `work list` of many units is a long line).
    max_line_length = 64 * 1024 * 1024

    def __init__(
        self,
        socketaddress: str,
        config: str | None = None,
        tlsclient: str | None = None,
        rootcas: str | None = None,
        key: str | None = None,
        cert: str | None = None,
        insecureskipverify: bool = False,
    ) -> None:
        if config and any((rootcas, key, cert)):
            raise ReceptorControlError("Cannot specify both config and rootcas, key, cert")
        if config and not tlsclient:
            raise ReceptorControlError("Must specify both config and tlsclient")
        self._socket: socket.socket | None = None
        self._remote_node: str | None = None
        self._socketaddress = socketaddress
        self._rootcas = rootcas
        self._key = key
        self._cert = cert
        self._insecureskipverify = insecureskipverify
        self._tls_minimum_version = ssl.TLSVersion.TLSv1_2
        if config and tlsclient:
            self.readconfig(config, tlsclient)

    def __enter__(self) -> ReceptorControl:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- configuration ------------------------------------------------------------------------

    def readconfig(self, config: str, tlsclient: str) -> None:
        """Take TLS settings from the `tls-client` item named `tlsclient` in a receptor config.

        The first item with that name wins; settings it lacks keep their current values. A
        config without such an item changes nothing (as upstream; it only matters for `tls:`).
        """
        try:
            with open(config, encoding="utf-8") as f:
                items = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise ReceptorControlError(f"Cannot parse config file {config}: {e}") from None
        if not isinstance(items, list):
            raise ReceptorControlError(
                f"Config file {config} is not a receptor configuration (a list of items)"
            )
        for item in items:
            entry = item.get("tls-client") if isinstance(item, Mapping) else None
            if isinstance(entry, Mapping) and entry.get("name") == tlsclient:
                self._rootcas = entry.get("rootcas", self._rootcas)
                self._key = entry.get("key", self._key)
                self._cert = entry.get("cert", self._cert)
                self._insecureskipverify = entry.get("insecureskipverify", self._insecureskipverify)
                return

    # -- the connection -----------------------------------------------------------------------

    def connect(self) -> None:
        """Open the connection and read the greeting, unless already connected.

        Raises `ControlAddressError` for an invalid or unreachable address, `OSError` if a Unix
        socket refuses the connection, `ControlProtocolError` if the greeting is wrong.
        """
        if self._socket is not None:
            return
        address = parse_control_address(self._socketaddress)
        if address.kind == "unix":
            self._socket = self._connect_unix(address.path)
        else:
            self._socket = self._connect_inet(address)
        try:
            self.handshake()
        except BaseException:
            self.close()
            raise

    def _connect_unix(self, path: str) -> socket.socket:
        if not os.path.exists(path):
            raise ControlAddressError(f"Socket path does not exist: {path}")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
        except OSError as e:
            sock.close()
            if e.errno is None:
                raise
            raise type(e)(e.errno, e.strerror, path) from None
        return sock

    def _connect_inet(self, address: ControlAddress) -> socket.socket:
        context = self._tls_context() if address.kind == "tls" else None
        failure = f"Could not connect to host {address.host} port {address.port}"
        try:
            candidates = socket.getaddrinfo(
                address.host, address.port, socket.AF_UNSPEC, socket.SOCK_STREAM
            )
        except OSError as e:
            raise ControlAddressError(f"{failure}: {e}") from None
        reason: OSError | None = None
        for family, kind, proto, _, sockaddr in candidates:
            sock: socket.socket | None = None
            try:
                sock = socket.socket(family, kind, proto)
                if context is not None:
                    sock = context.wrap_socket(sock, server_hostname=address.host)
                sock.connect(sockaddr)
            except OSError as e:
                if sock is not None:
                    sock.close()
                reason = e
                continue
            return sock
        raise ControlAddressError(f"{failure}: {reason}" if reason else failure)

    def _tls_context(self) -> ssl.SSLContext:
        # insecureskipverify only turns off the host name check, as upstream: the chain is
        # still verified.
        try:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self._rootcas)
            context.minimum_version = self._tls_minimum_version
            if self._key and self._cert:
                context.load_cert_chain(certfile=self._cert, keyfile=self._key)
        except (OSError, ValueError) as e:
            raise ReceptorControlError(f"Cannot set up TLS: {e}") from None
        context.check_hostname = not self._insecureskipverify
        return context

    def close(self) -> None:
        """Close the connection (if open); the next command opens a new one."""
        sock, self._socket = self._socket, None
        if sock is not None:
            sock.close()

    def _detach(self) -> socket.socket:
        """Hand the connection over to the caller; this session forgets it."""
        sock, self._socket = self._connected_socket(), None
        return sock

    def _connected_socket(self) -> socket.socket:
        if self._socket is None:
            raise ReceptorControlError("Not connected to the Receptor control service")
        return self._socket

    # -- lines --------------------------------------------------------------------------------

    def _protocol_error(self, message: str) -> ControlProtocolError:
        """Give up the connection: after a protocol violation its state is unknown."""
        self.close()
        return ControlProtocolError(message)

    def _read_raw_line(self) -> bytes:
        try:
            return read_line(self._connected_socket(), self.max_line_length)
        except LineTooLong:
            raise self._protocol_error(
                f"Receptor sent a line longer than {self.max_line_length} bytes"
            ) from None

    def _decode(self, line: bytes) -> str:
        try:
            return line.decode().strip()
        except UnicodeDecodeError:
            raise self._protocol_error(
                f"Receptor sent a line that is not UTF-8: {line[:60]!r}"
            ) from None

    def _expect_reply(self, pattern: re.Pattern[str], failure: str, what: str) -> str:
        """Read a reply that must match ``pattern``; otherwise raise ``failure``, with the
        server's error text appended when it sent one."""
        try:
            text = self._read_reply(what)
        except ControlProtocolError as e:
            raise ControlProtocolError(f"{failure}: {e}") from None
        if pattern.fullmatch(text) is None:
            if text.startswith("ERROR: "):
                failure += ": " + text[7:]
            raise ReceptorControlError(failure)
        return text

    def _read_reply(self, what: str = "a reply") -> str:
        """The next line, stripped; an error if the connection ends before its newline."""
        line = self._read_raw_line()
        if not line.endswith(b"\n"):
            if line:
                detail = f"in the middle of {what}: {_preview(self._decode(line))}"
            else:
                detail = f"without sending {what}"
            raise self._protocol_error(f"Receptor closed the connection {detail}")
        return self._decode(line)

    def readstr(self) -> str:
        """Read one line and return it stripped; `""` once the connection has ended."""
        return self._decode(self._read_raw_line())

    def writestr(self, str: str) -> None:
        """Send `str` (UTF-8) as it is; commands must end with a newline."""
        self._connected_socket().sendall(str.encode())

    def handshake(self) -> None:
        """Read and check the greeting `Receptor Control, node <id>`."""
        failure = "Failed to connect to Receptor socket"
        text = self.readstr()
        m = _GREETING.fullmatch(text)
        if m is None:
            if not text:
                raise self._protocol_error(f"{failure}: the connection closed without a greeting")
            raise self._protocol_error(f"{failure}: unexpected greeting {_preview(text)}")
        self._remote_node = m[1]

    def read_and_parse_json(self) -> Any:
        """Read a reply line and return its JSON value.

        An `ERROR: <message>` line raises `ReceptorControlError(<message>)`.
        """
        text = self._read_reply()
        if text.startswith(_ERROR_PREFIX):
            raise ReceptorControlError(_error_text(text))
        try:
            return json.loads(text)
        except ValueError:
            raise self._protocol_error(
                f"Receptor sent a reply that is not JSON: {_preview(text)}"
            ) from None

    # -- commands -----------------------------------------------------------------------------

    def simple_command(self, command: str) -> Any:
        """Send one command line (connecting first if needed) and return the parsed reply."""
        self.connect()
        self.writestr(f"{command}\n")
        return self.read_and_parse_json()

    def connect_to_service(self, node: str, service: str, tlsclient: str | None) -> None:
        """Turn this connection into a pipe to `service` on `node` (`connect` command).

        On success the connection carries the remote service's bytes from here on (for the
        `control` service: a new greeting, then commands to that node). An error reply raises
        `ReceptorControlError` with the whole reply line, as upstream.
        """
        self.connect()
        self.writestr(f"connect {node} {service} {tlsclient or ''}\n")
        text = self._read_reply()
        if not text.startswith("Connecting"):
            raise ReceptorControlError(text)

    def submit_work(
        self,
        worktype: str,
        payload: Any,
        node: str | None = None,
        tlsclient: str | None = None,
        ttl: str | None = None,
        signwork: bool = False,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """Create a work unit, send `payload` as its stdin and return the reply.

        The reply is `{"result": "Job Started" | "Job Submitted", "unitid": <id>}`. `node`
        defaults to `localhost`. `payload` is bytes, text or a readable file object. A `params`
        value `@file` is replaced by the file's contents (`@@…` is sent as is). The connection
        is closed afterwards.
        """
        _check_payload(payload)
        self.connect()
        request: dict[str, Any] = {
            "command": "work",
            "subcommand": "submit",
            "node": "localhost" if node is None else node,
            "worktype": worktype,
        }
        if tlsclient:
            request["tlsclient"] = tlsclient
        if ttl:
            request["ttl"] = ttl
        if signwork:
            request["signwork"] = "true"
        for name, value in (params or {}).items():
            if name in request:
                raise ReceptorControlError(f"Duplicate or illegal parameter {name}")
            request[name] = _param_value(value)
        self.writestr(json.dumps(request) + "\n")
        # On a refusal the session stays usable, as upstream.
        self._expect_reply(_WORK_CREATED, "Failed to start work unit", "the work unit ID")
        try:
            sock = self._connected_socket()
            _send_payload(sock, payload)
            shutdown_write(sock)
            text = self._read_reply("the work submission result")
        finally:
            self.close()
        if text.startswith(_ERROR_PREFIX):
            raise ReceptorControlError(f"Remote error: {text}")
        try:
            return json.loads(text)
        except ValueError:
            raise ControlProtocolError(
                f"Receptor sent a reply that is not JSON: {_preview(text)}"
            ) from None

    def get_work_results(
        self,
        unit_id: str,
        startpos: int = 0,
        return_socket: bool = False,
        return_sockfile: bool = True,
    ) -> Any:
        """Start streaming a unit's stdout from byte `startpos`.

        Returns a binary file object (default), the socket (`return_socket`), or both as
        `(socket, file)`; they are positioned right after the header line and end when the
        unit is complete. This session lets go of the connection: the next command opens a new
        one. Closing the returned object(s) closes the connection.
        """
        self.connect()
        self.writestr(f"work results {unit_id} {startpos}\n")
        self._expect_reply(_STREAMING, "Failed to get results", "the results header")
        sock = self._detach()
        shutdown_write(sock)
        sockfile = sock.makefile("rb") if return_sockfile else None
        if not return_socket:
            sock.close()  # the file keeps the connection open until it is closed
        if return_socket and sockfile is not None:
            return sock, sockfile
        return sock if return_socket else sockfile


def _param_value(value: Any) -> Any:
    """A work parameter as sent: `@path` becomes the file's contents."""
    if not isinstance(value, str) or not value.startswith("@") or value.startswith("@@"):
        return value
    path = value[1:]
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist")
    try:
        with open(path) as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        raise OSError(f"could not read from file {path}") from None


def _is_file(payload: Any) -> bool:
    return isinstance(payload, io.IOBase) or callable(getattr(payload, "read", None))


def _check_payload(payload: Any) -> None:
    # Checked before the unit is created (upstream checked after, leaving a unit behind).
    if not isinstance(payload, str | bytes | bytearray | memoryview) and not _is_file(payload):
        raise ReceptorControlError("Unknown payload type")


def _send_payload(sock: socket.socket, payload: Any) -> None:
    if isinstance(payload, str):
        sock.sendall(payload.encode())
    elif isinstance(payload, bytes | bytearray | memoryview):
        sock.sendall(payload)
    else:
        while chunk := payload.read(_COPY_CHUNK):
            sock.sendall(chunk.encode() if isinstance(chunk, str) else chunk)
