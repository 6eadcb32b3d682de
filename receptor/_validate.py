"""``receptor --validate``: check a configuration without starting anything.

The configuration is parsed as start-up parses it, then the daemon's own ``init`` and
``prepare`` handlers run on every entity (they only read and check: node ID, firewall rules,
idle timeout, log level, TLS files with their node-ID check, costs, signing keys, the
``work-kubernetes`` and ``cert-makereq`` option checks). The ``run`` phase starts listeners,
dialers and workers, so it is not run: :class:`_RunChecks` checks the same values with the
same error texts and binds, dials and registers nothing. Where start-up stops at the first
error, validation goes on and reports every problem it can, in the order start-up would meet
them, so the first one printed is the one start-up would have stopped on.

Validation goes further than start-up where start-up would only fail later (a work command
that is not on ``PATH``, ``params`` that do not split, a key that does not load, a socket
directory that does not exist, a ``ws-peer`` URL that can never be dialled). It leaves out
what depends on the moment (a port or socket lock held by the running node being restarted,
whether a peer answers).

The command line is ``receptor --validate <the daemon's arguments>``, typically
``receptor --validate -c /etc/receptor/receptor.conf``; exit status 0 when the
configuration is valid, 1 otherwise.
"""

import dataclasses
import importlib.metadata
import operator
import os
import re
import shutil
import socket
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from receptor._daemon import BACKEND_ENTITIES
from receptor._errors import ConfigError, ReceptorError
from receptor.config import CommandLine, ConfigItem, load_config_file, parse_command_line

__all__ = ["Problem", "main", "validate"]

#: The longest Unix socket path the kernel takes (``sun_path`` less its final NUL).
_MAX_UNIX_PATH = 107
#: Mesh service names taken before any entity runs (wire.md §13).
_RESERVED_SERVICES = frozenset({"ping", "unreach"})
#: Entities that add a backend when they run (``local-only`` adds the null backend).
_BACKENDS = BACKEND_ENTITIES | {"local-only"}
_NO_BACKENDS = "Nothing to do - no backends are running."
#: The libraries (distribution names of our requirements) an entity cannot work without.
#: The daemon loads them when first needed, so a distribution package can recommend the
#: ones its distribution lacks instead of depending on them (packaging/README.md).
_LIBRARIES = {
    "tls-server": ("cryptography",),
    "tls-client": ("cryptography",),
    "cert-init": ("cryptography",),
    "cert-makereq": ("cryptography",),
    "cert-signreq": ("cryptography",),
    "work-signing": ("cryptography", "PyJWT"),
    "work-verification": ("cryptography", "PyJWT"),
    "ws-listener": ("simple-websocket",),
    "ws-peer": ("simple-websocket",),
    "tcp-server": ("qh3", "cryptography"),
    "tcp-client": ("qh3", "cryptography"),
    "unix-socket-server": ("qh3", "cryptography"),
    "unix-socket-client": ("qh3", "cryptography"),
}
_COMPARE = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the configuration.

    ``source`` is the YAML file the entity (or the parse error) comes from, None for the
    command line; ``entity`` the entity as written (``tcp-listener`` in a file,
    ``--tcp-listener`` on the command line), None when the problem is not one entity's;
    ``position`` the entity's 1-based position in its file.  ``message`` is the text start-up
    prints after ``Error: `` for the same problem.
    """

    message: str
    source: str | None = None
    entity: str | None = None
    position: int | None = None

    def __str__(self) -> str:
        where = self.source if self.source is not None else "command line"
        if self.entity is None:
            return f"{where}: {self.message}"
        what = self.entity if self.position is None else f"{self.entity} (item {self.position})"
        return f"{where}: {what}: {self.message}"


def _config_file_arguments(argv: list[str]) -> list[str]:
    """The files ``argv`` names with ``--config``/``-c`` (the parser's rule: the next
    argument not starting with ``-`` after one of them)."""
    files: list[str] = []
    pending = False
    for arg in argv:
        if arg.startswith("-"):
            name = arg.lower()[1:]
            name = name[1:] if name.startswith("-") else name
            if name in ("config", "c"):
                pending = True
        elif pending:
            files.append(arg)
            pending = False
    return files


def _parse_problem(argv: list[str], err: ConfigError) -> Problem:
    """A parse error, attributed to the file that causes it when it is a file's."""
    message = str(err)
    if message.startswith("error loading config file: "):
        for path in _config_file_arguments(argv):
            try:
                load_config_file(path)
            except ConfigError as file_err:
                if str(file_err) == message:
                    return Problem(message, source=path)
    return Problem(message)


def _release(version: str) -> tuple[int, ...]:
    """The release numbers of a version (``42.0.5rc1`` -> ``(42, 0, 5)``)."""
    numbers = []
    for part in version.split("."):
        digits = re.match(r"\d+", part)
        if digits is None:
            break
        numbers.append(int(digits.group()))
        if digits.group() != part:
            break
    while len(numbers) > 1 and numbers[-1] == 0:
        numbers.pop()  # 2.1.0 == 2.1
    return tuple(numbers)


def _requirements() -> dict[str, str]:
    """Our run-time requirements, ``{normalised name: specifiers}`` (empty when this copy
    runs without its distribution's metadata, e.g. from a source tree)."""
    try:
        declared = importlib.metadata.requires("receptor") or []
    except importlib.metadata.PackageNotFoundError:
        return {}
    found = {}
    for requirement in declared:
        if ";" in requirement:
            continue  # an extra (test, lint): not needed to run
        match = re.match(r"\s*([A-Za-z0-9_.-]+)\s*(.*)", requirement)
        if match:
            # Older metadata writes "cryptography (>=42)".
            found[_normalise(match.group(1))] = re.sub(r"[\s()]", "", match.group(2))
    return found


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _library_problem(name: str, specifiers: str) -> str | None:
    """Why the installed ``name`` does not meet ``specifiers`` (``>=42,<43``), or None."""
    wanted = f"{name}{specifiers}"
    try:
        installed = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return f"needs the Python package {wanted}, which is not installed"
    for specifier in filter(None, specifiers.split(",")):
        match = re.match(r"(>=|<=|==|!=|>|<)(.+)", specifier)
        if match is None:
            continue  # ~= and other forms: not used by our requirements
        compare = _COMPARE[match.group(1)]
        if not compare(_release(installed), _release(match.group(2))):
            return f"needs the Python package {wanted}; {installed} is installed"
    return None


def _describe(err: Exception) -> str:
    """The text of an error raised by a check: ours as they are, anything else named."""
    if isinstance(err, ReceptorError):
        return str(err)
    if isinstance(err, ImportError):
        # A library the entity needs (TLS: cryptography, ws: simple-websocket) is missing.
        return f"cannot be prepared: {err}"
    return f"cannot be prepared: {type(err).__name__}: {err}"


def _bind_problem(network: str, host: str, port: int) -> str | None:
    """Why ``host`` cannot be bound to (it does not resolve), without binding."""
    try:
        socket.getaddrinfo(host.strip("[]") or None, port, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        return f"listen {network} {host}:{port}: lookup {host}: {reason}"
    return None


def _socket_problem(filename: str) -> str | None:
    """Why a Unix socket cannot be created at ``filename``, in the daemon's words, without
    creating it (the daemon first creates ``<filename>.lock``, then binds)."""
    directory = os.path.dirname(filename) or "."
    if not os.path.isdir(directory):
        return "could not acquire lock on socket file: no such file or directory"
    if not os.access(directory, os.W_OK | os.X_OK):
        return "could not acquire lock on socket file: permission denied"
    if len(os.fsencode(filename)) > _MAX_UNIX_PATH:
        return f"listen unix {filename}: bind: af_unix path too long"
    if os.path.isdir(filename):
        return f"listen unix {filename}: bind: is a directory"
    return None


def _executable_problem(command: str) -> str | None:
    """Why ``command`` cannot be run (Go's ``exec`` wording), or None."""
    if "/" not in command:
        if shutil.which(command) is None:
            return f'exec: "{command}": executable file not found in $PATH'
        return None
    if not os.path.exists(command):
        return f'exec: "{command}": stat {command}: no such file or directory'
    if os.path.isdir(command) or not os.access(command, os.X_OK):
        return f'exec: "{command}": permission denied'
    return None


def _directory_problem(path: str) -> str | None:
    """Why the daemon could not create and write into directory ``path``, or None."""
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        return f"datadir {path}: {existing} is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"datadir {path}: permission denied on {existing}"
    return None


class _RunChecks:
    """The checks of the ``run`` phase, one method per entity, in the daemon's order.

    Each method raises :class:`ConfigError` with the text the daemon's ``run`` handler
    raises for the same problem.  State (TLS names, mesh services, work types) is what the
    earlier entities would have registered.
    """

    def __init__(self, items: list[ConfigItem], tls_servers: set[str], tls_clients: set[str]):
        self.tls_servers = tls_servers
        self.tls_clients = tls_clients
        self.services: set[str] = set(_RESERVED_SERVICES)
        self.work_types: set[str] = {"remote"}  # registered by the work manager itself
        self.verification_key = any(
            item.entity.name == "work-verification" and item.values.get("publickey")
            for item in items
        )

    def checks(self) -> dict[str, Callable[[ConfigItem], None]]:
        return {
            "control-service": self.control_service,
            "tcp-listener": self.tcp_listener,
            "udp-listener": self.udp_listener,
            "ws-listener": self.ws_listener,
            "tcp-peer": self.tcp_peer,
            "udp-peer": self.udp_peer,
            "ws-peer": self.ws_peer,
            "work-command": self.work_command,
            "work-python": self.work_python,
            "work-kubernetes": self.work_kubernetes,
            "tcp-server": self.tcp_server,
            "tcp-client": self.tcp_client,
            "udp-server": self.udp_server,
            "udp-client": self.udp_client,
            "unix-socket-server": self.unix_socket_server,
            "unix-socket-client": self.unix_socket_client,
        }

    # ------------------------------------------------------------------ shared

    def _server(self, name: str | None) -> None:
        if name and name not in self.tls_servers:
            raise ConfigError(f"unknown TLS config {name}")

    def _client(self, name: str | None) -> None:
        if name and name not in self.tls_clients:
            raise ConfigError(f"unknown TLS config {name}")

    def _listener(self, network: str, item: ConfigItem) -> None:
        port = item.values["port"]
        if not 0 <= port <= 65535:
            raise ConfigError(f"listen {network}: address {port}: invalid port")
        problem = _bind_problem(network, item.values["bindaddr"], port)
        if problem:
            raise ConfigError(problem)

    def _mesh_service(self, service: str, wrap: str) -> None:
        if len(service.encode()) > 8:
            raise ConfigError(f"{wrap}service name {service} too long")
        if service in self.services:
            raise ConfigError(f"{wrap}service {service} is already listening")
        self.services.add(service)

    # ------------------------------------------------------------------ control service

    def control_service(self, item: ConfigItem) -> None:
        values = item.values
        service = values["service"]
        if not (service or values.get("filename") or values.get("tcplisten")):
            raise ConfigError("no listeners specified")
        self._server(values.get("tls"))
        if values.get("tcplisten"):
            self._server(values.get("tcptls"))
        if values.get("filename"):
            problem = _socket_problem(values["filename"])
            if problem:
                raise ConfigError(f"error opening Unix socket: {problem}")
        if values.get("tcplisten"):
            address = str(values["tcplisten"])
            host, _, port_text = address.rpartition(":") if ":" in address else ("", "", address)
            if not port_text.isdigit() or int(port_text) > 65535:
                raise ConfigError(
                    f"error listening on TCP socket: listen tcp: address tcp/{port_text}: "
                    "unknown port"
                )
            problem = _bind_problem("tcp", host or "0.0.0.0", int(port_text))
            if problem:
                raise ConfigError(f"error listening on TCP socket: {problem}")
        if service:
            self._mesh_service(service, "error opening Unix socket: ")

    # ------------------------------------------------------------------ backends

    def tcp_listener(self, item: ConfigItem) -> None:
        self._server(item.values.get("tls"))
        self._listener("tcp", item)

    def udp_listener(self, item: ConfigItem) -> None:
        self._listener("udp", item)

    def ws_listener(self, item: ConfigItem) -> None:
        self._server(item.values.get("tls"))
        self._listener("tcp", item)

    def tcp_peer(self, item: ConfigItem) -> None:
        from receptor.backends.tcp import split_host_port

        split_host_port(item.values["address"])
        self._client(item.values.get("tls"))

    def udp_peer(self, item: ConfigItem) -> None:
        from receptor.backends.udp import UDPDialer

        # Resolves the address (a start-up error upstream too); dials nothing.
        UDPDialer(item.values["address"], item.values["redial"])

    def ws_peer(self, item: ConfigItem) -> None:
        address = item.values["address"]
        scheme = urllib.parse.urlsplit(address).scheme
        name = item.values.get("tls")
        if not name and scheme == "wss" and "default" not in self.tls_clients:
            raise ConfigError("pinned fingerprints missing for default")
        self._client(name)
        if scheme not in ("ws", "wss"):
            # Start-up accepts it; every dial then fails with this text.
            raise ConfigError("malformed ws or wss URL")

    # ------------------------------------------------------------------ work

    def work_command(self, item: ConfigItem) -> None:
        from receptor.workceptor._shlex import SplitError, split

        values = item.values
        name = values["worktype"]
        if values.get("verifysignature") and not self.verification_key:
            raise ConfigError(
                f"VerifySignature for work command '{name}' is true, but the work "
                "verification public key is not specified"
            )
        if name in self.work_types:
            raise ConfigError(f"work type {name} already registered")
        self.work_types.add(name)
        problem = _executable_problem(values["command"])
        if problem:
            raise ConfigError(problem)
        try:
            split(values.get("params") or "")
        except SplitError as err:
            raise ConfigError(f"params: {err}") from None

    def work_python(self, item: ConfigItem) -> None:
        from receptor.workceptor._component import _PYTHON_DEPRECATED

        raise ConfigError(_PYTHON_DEPRECATED)

    def work_kubernetes(self, item: ConfigItem) -> None:
        raise ConfigError(
            "work-kubernetes is not supported by this version of receptor; "
            "use upstream receptor for Kubernetes work types"
        )

    # ------------------------------------------------------------------ services

    def tcp_server(self, item: ConfigItem) -> None:
        values = item.values
        self._client(values.get("tlsclient"))
        self._server(values.get("tlsserver"))
        port = values["port"]
        if not 0 <= port <= 65535:
            raise ConfigError(f"error listening on TCP: listen tcp: address {port}: invalid port")
        problem = _bind_problem("tcp", values["bindaddr"], port)
        if problem:
            raise ConfigError(f"error listening on TCP: {problem}")

    def tcp_client(self, item: ConfigItem) -> None:
        from receptor.backends.tcp import split_host_port

        values = item.values
        self._server(values.get("tlsserver"))
        split_host_port(values["address"])
        self._client(values.get("tlsclient"))
        self._mesh_service(values["service"], "error listening on Receptor network: ")

    def udp_server(self, item: ConfigItem) -> None:
        values = item.values
        address = f"{values['bindaddr']}:{values['port']}"
        if not 0 <= values["port"] <= 65535 or _bind_problem(
            "udp", values["bindaddr"], values["port"]
        ):
            raise ConfigError(f"could not resolve address {address}")

    def udp_client(self, item: ConfigItem) -> None:
        from receptor.backends.tcp import split_host_port

        values = item.values
        address = values["address"]
        try:
            host, port = split_host_port(address)
            socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_DGRAM)
        except (ConfigError, OSError):
            raise ConfigError(f"could not resolve UDP address {address}") from None
        self._mesh_service(values["service"], f"error listening on service {values['service']}: ")

    def unix_socket_server(self, item: ConfigItem) -> None:
        values = item.values
        self._client(values.get("tls"))
        problem = _socket_problem(values["filename"])
        if problem:
            raise ConfigError(f"error opening Unix socket: {problem}")

    def unix_socket_client(self, item: ConfigItem) -> None:
        values = item.values
        self._server(values.get("tls"))
        self._mesh_service(values["service"], "error listening on Receptor network: ")


class _Validation:
    """One validation of a parsed command line; :meth:`problems` yields what is wrong."""

    def __init__(self, command_line: CommandLine, argv: list[str]) -> None:
        from receptor._daemon import Daemon

        self.items = command_line.items
        # A Daemon that is never run: its handler tables are the start-up code itself.
        self.daemon = Daemon(command_line, argv, "receptor")
        # A daemon that makes its components on demand makes those the items need.
        load_components = getattr(self.daemon, "_load_components", None)
        if load_components is not None:
            load_components(self.items)
        self._requirements = _requirements()
        self._positions = self._number_items()

    def _number_items(self) -> dict[int, int]:
        """The 1-based position of each file item in its file, by index in ``items``."""
        counters: dict[str, int] = {}
        positions: dict[int, int] = {}
        for index, item in enumerate(self.items):
            if item.source is not None:
                counters[item.source] = counters.get(item.source, 0) + 1
                positions[index] = counters[item.source]
        return positions

    def _problem(self, index: int, message: str) -> Problem:
        item = self.items[index]
        return Problem(message, item.source, item.arg, self._positions.get(index))

    def _check(
        self,
        index: int,
        check: Callable[[ConfigItem], None] | None,
        item: ConfigItem | None = None,
    ) -> list[Problem]:
        """Run ``check`` on item ``index`` (or on ``item`` standing for it)."""
        if check is None:
            return []
        try:
            check(self.items[index] if item is None else item)
        except Exception as err:  # every failure, expected or not, is a problem to report
            return [self._problem(index, _describe(err))]
        return []

    def _available(self, item: ConfigItem) -> None:
        """The entity is built in this version and the libraries it needs are installed."""
        self.daemon._check_implemented([item])
        for library in _LIBRARIES.get(item.entity.name, ()):
            specifiers = self._requirements.get(_normalise(library))
            problem = None if specifiers is None else _library_problem(library, specifiers)
            if problem:
                raise ConfigError(problem)

    def problems(self) -> Iterator[Problem]:
        """Each problem, phase by phase, in the order of the items within a phase."""
        daemon = self.daemon
        broken: set[int] = set()
        for index in range(len(self.items)):
            found = self._check(index, self._available)
            if found:
                broken.add(index)
            yield from found
        node_ok = True
        init = daemon._handlers("init")
        for index, item in enumerate(self.items):
            if index in broken:
                continue
            found = self._check(index, init.get(item.entity.name))
            if item.entity.name == "node":
                node_ok = not found
                if node_ok:
                    found = self._check(index, self._check_datadir)
            yield from found
        prepare = daemon._handlers("prepare")
        # Named even when they fail: the entities naming them are not wrong too.
        tls_servers = {i.values["name"] for i in self.items if i.entity.name == "tls-server"}
        tls_clients = {i.values["name"] for i in self.items if i.entity.name == "tls-client"}
        for index, item in enumerate(self.items):
            if index in broken:
                continue
            name = item.entity.name
            target = item
            if name in ("tls-server", "tls-client") and not node_ok:
                # No node ID to look for: the other checks of the files still run.
                values = dict(item.values, skipreceptornamescheck=True)
                target = dataclasses.replace(item, values=values)
            found = self._check(index, prepare.get(name), target)
            if not found and name in ("work-signing", "work-verification"):
                found = self._check(index, self._check_work_key)
            yield from found
        if any(item.entity.exclusive for item in self.items):
            return  # version and cert-* run alone: nothing starts
        run = _RunChecks(self.items, tls_servers, tls_clients).checks()
        for index, item in enumerate(self.items):
            if index not in broken:
                yield from self._check(index, run.get(item.entity.name))
        if not any(item.entity.name in _BACKENDS for item in self.items):
            yield Problem(_NO_BACKENDS, self.items[0].source if self.items else None)

    def _check_datadir(self, item: ConfigItem) -> None:
        problem = _directory_problem(item.values["datadir"])
        if problem:
            raise ConfigError(problem)

    def _check_work_key(self, item: ConfigItem) -> None:
        """The key loads (start-up only checks that the file exists)."""
        from receptor.workceptor._signing import WorkSigner

        if item.entity.name == "work-signing":
            if item.values.get("privatekey"):
                # Signing a token loads the key exactly as signed work will.
                WorkSigner(item.values["privatekey"]).sign("validate")
            return
        path = item.values.get("publickey")
        if path:
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric import rsa

            try:
                with open(path, "rb") as handle:
                    key = serialization.load_pem_public_key(handle.read())
            except (OSError, ValueError, TypeError) as err:
                raise ConfigError(f"could not load verifying key file: {err}") from None
            if not isinstance(key, rsa.RSAPublicKey):
                raise ConfigError("could not load verifying key file: key is not an RSA key")


def validate(argv: list[str]) -> list[Problem]:
    """Every problem of the configuration ``argv`` (the daemon's arguments) describes, in the
    order start-up would meet them; empty when it is valid."""
    try:
        command_line = parse_command_line(argv)
    except ConfigError as err:
        return [_parse_problem(argv, err)]
    if command_line.action != "run":
        return [Problem("no configuration to validate: give it with -c FILE or --<entity> ...")]
    return list(_Validation(command_line, argv).problems())


def main(argv: list[str]) -> int:
    """``receptor --validate <argv>``: print each problem, exit 0 when there is none."""
    problems = validate(argv)
    for problem in problems:
        print(problem, flush=True)
    if problems:
        count = len(problems)
        print(f"{count} problem{'s' if count > 1 else ''} found", flush=True)
        return 1
    sources = _config_file_arguments(argv) or ["command line"]
    print(f"{', '.join(sources)}: configuration is valid", flush=True)
    return 0
