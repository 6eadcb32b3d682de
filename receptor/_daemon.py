"""The daemon: runs the configured entities through upstream's phases (config.md §1.3–§1.4, §5).

After parsing, every entity goes through ``init``, then every entity through ``prepare``,
then every entity through ``run`` (so TLS configs exist before the backends that name them,
whatever the order in the file). ``reload`` re-parses the original arguments, refuses
changes to non-reloadable entities, and restarts the backends.

Entities of the spec that this version does not implement yet are refused up front with a
message that names them, before anything starts; nothing is ever silently ignored.
"""

import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from receptor import _log
from receptor._errors import ConfigError, MeshError, ReceptorError
from receptor._goduration import parse_duration
from receptor._log import logger
from receptor._version import __version__
from receptor.backends import NullBackend
from receptor.config import (
    CommandLine,
    ConfigItem,
    parse_command_line,
    reload_changes,
    reload_snapshot,
)
from receptor.controlsvc import ControlServer, ControlServiceError
from receptor.netceptor import Backend, BackendInfo, Netceptor, parse_rules
from receptor.netceptor._node import DEFAULT_IDLE_TIMEOUT
from receptor.netceptor.tls import TLSRegistry

#: A phase handler: called with one configured entity.
Handler = Callable[["ConfigItem"], None]

#: Entities with no behaviour in the daemon's phases.
_NO_OP = frozenset({"trace"})


class Component:
    """A part of the daemon that owns some entities (config.md §1.3).

    Each feature area (TLS, certificates, services, work, ...) has one, in its own package,
    listed in :data:`COMPONENTS`. ``handlers`` maps a phase (``init``, ``prepare``, ``run``)
    to the entity names it handles; ``reloadable`` names the entities whose ``run`` handler
    ``reload`` calls again; ``stop`` releases what the component started.
    """

    #: Entities whose ``run`` handler is called again on reload.
    reloadable: frozenset[str] = frozenset()

    def __init__(self, daemon: "Daemon") -> None:
        self.daemon = daemon

    def handlers(self) -> dict[str, dict[str, Handler]]:
        return {}

    def before_reload(self, items: list[ConfigItem]) -> None:
        """Called with the re-parsed entities before reload restarts the backends.

        Raising ConfigError refuses the reload and leaves everything running as it was.
        """

    def control_started(self, control: ControlServer) -> None:
        """Called once the control server exists, to add the component's commands."""

    def stop(self) -> None:
        """Called when the daemon stops."""


def _component_classes() -> list[type[Component]]:
    """Every component, in the order their handlers are merged (imported late: they import us)."""
    from receptor.backends._component import BackendEntities
    from receptor.certificates._component import CertificateEntities
    from receptor.netceptor._tls_component import TLSEntities
    from receptor.services._component import ServiceEntities
    from receptor.workceptor._component import WorkEntities

    return [CertificateEntities, TLSEntities, BackendEntities, ServiceEntities, WorkEntities]


class ExitRequest(Exception):
    """An exclusive entity (``version``) ran: exit with this status."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


@dataclass
class NodeSettings:
    node_id: str = ""
    datadir: str = "/tmp/receptor"
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    firewall_rules: list[Any] = field(default_factory=list)


def _resolve_node_id(configured: str | None) -> str:
    node_id = configured or ""
    if node_id:
        if node_id.lower() == "localhost":
            raise ConfigError('node ID "localhost" is reserved')
        return node_id
    host = socket.gethostname()
    if host.lower() == "localhost" or host.lower().startswith("localhost."):
        raise ConfigError("no node ID specified and local host name is localhost")
    return host


class Daemon:
    """One run of ``receptor`` with a parsed command line."""

    def __init__(self, command_line: CommandLine, argv: list[str], program: str) -> None:
        self.command_line = command_line
        self.argv = argv
        self.program = program
        self.settings = NodeSettings()
        self.netceptor: Netceptor | None = None
        self.control: ControlServer | None = None
        self._reload_lock = threading.Lock()
        self._snapshot: list[tuple[str, str]] | None = None
        self._signal: int | None = None
        self._wake = threading.Event()
        #: The named tls-server / tls-client configs (filled by the TLS component).
        self.tls = TLSRegistry()
        self.components: list[Component] = [cls(self) for cls in _component_classes()]

    # ------------------------------------------------------------------ phases

    def _core_handlers(self) -> dict[str, dict[str, Handler]]:
        return {
            "init": {
                "node": self._init_node,
                "log-level": self._init_log_level,
            },
            "run": {
                "local-only": self._run_local_only,
                "control-service": self._run_control,
                "version": self._run_version,
            },
        }

    def _handlers(self, phase: str) -> dict[str, Handler]:
        table = dict(self._core_handlers().get(phase, {}))
        for component in self.components:
            table.update(component.handlers().get(phase, {}))
        return table

    def reloadable(self) -> frozenset[str]:
        names = {"local-only"}
        for component in self.components:
            names.update(component.reloadable)
        return frozenset(names)

    def implemented(self) -> frozenset[str]:
        names = set(_NO_OP)
        for phase in ("init", "prepare", "run"):
            names.update(self._handlers(phase))
        return frozenset(names)

    def _check_implemented(self, items: list[ConfigItem]) -> None:
        known = self.implemented()
        for item in items:
            if item.entity.name not in known:
                raise ConfigError(
                    f"{item.entity.name} is not implemented yet in this version of receptor "
                    f"({__version__}); remove it from the configuration or use upstream receptor"
                )

    def _run_phases(self, items: list[ConfigItem]) -> None:
        for phase in ("init", "prepare", "run"):
            handlers = self._handlers(phase)
            for item in items:
                handler = handlers.get(item.entity.name)
                if handler is not None:
                    handler(item)
            exclusive = any(item.entity.exclusive for item in items)
            if phase == "init" and self.netceptor is None and not exclusive:
                # An exclusive entity (version, cert-*) runs alone: no node, so no node ID
                # either (a host named localhost can still make certificates).
                self._create_netceptor()

    # ------------------------------------------------------------------ node and logging

    def _init_node(self, item: ConfigItem) -> None:
        values = item.values
        settings = NodeSettings(node_id=_resolve_node_id(values.get("id")))
        settings.datadir = values["datadir"]
        settings.firewall_rules = parse_rules(values.get("firewallrules"))
        timeout = values.get("maxidleconnectiontimeout")
        if timeout:
            try:
                nanoseconds = parse_duration(timeout)
            except ValueError:
                raise ConfigError(
                    "failed to parse MaxIdleConnectionTimeout from configuration file -- "
                    "valid examples include '1.5h', '30m', '30m10s'"
                ) from None
            default_ns = int(DEFAULT_IDLE_TIMEOUT * 1e9)
            if nanoseconds < default_ns:
                raise ConfigError(
                    f"user defined maxIdleConnectionTimeout [{nanoseconds}] is less than the "
                    f"default default timeout [{default_ns}]"
                )
            settings.idle_timeout = nanoseconds / 1e9
        self.settings = settings

    def _create_netceptor(self) -> None:
        if not self.settings.node_id:
            self.settings.node_id = _resolve_node_id(None)
        self.netceptor = Netceptor(
            self.settings.node_id,
            idle_timeout=self.settings.idle_timeout,
            firewall_rules=self.settings.firewall_rules,
        )

    def _init_log_level(self, item: ConfigItem) -> None:
        try:
            _log.set_level(item.values["level"])
        except ValueError as err:
            raise ConfigError(str(err)) from None

    # ------------------------------------------------------------------ backends

    def add_backend(self, backend: Backend, item: ConfigItem) -> None:
        """Start ``backend`` with the connection settings of ``item`` (cost, nodecost, ...)."""
        assert self.netceptor is not None
        peers = item.values.get("allowedpeers")
        info = BackendInfo(
            cost=item.values.get("cost", 1.0),  # local-only has no cost field
            node_cost=dict(item.values.get("nodecost") or {}),
            allowed_peers=None if peers is None else tuple(peers),
        )
        self.netceptor.add_backend(backend, info)

    def _run_local_only(self, item: ConfigItem) -> None:
        self.add_backend(NullBackend(), item)

    # ------------------------------------------------------------------ control service

    def _run_control(self, item: ConfigItem) -> None:
        assert self.netceptor is not None
        values = item.values
        service = values["service"]
        if not (service or values.get("filename") or values.get("tcplisten")):
            raise ConfigError("no listeners specified")
        if values.get("tls") and values.get("tcplisten") and not values.get("tcptls"):
            logger.warning(
                "Control service %s has TLS configured on the Receptor listener but not the "
                "TCP listener.",
                service,
            )
        if values.get("tls"):
            self.tls.server(values["tls"])
        tcp_tls = None
        if values.get("tcplisten") and values.get("tcptls"):
            tcp_tls = self.tls.server(values["tcptls"])
        if self.control is None:
            self.control = ControlServer(
                self.netceptor,
                __version__,
                self.reload if self.command_line.reload_file else None,
            )
            self.control.tls_registry = self.tls  # for ``connect <node> <svc> <tlsclient>``
            for component in self.components:
                component.control_started(self.control)
        try:
            if values.get("filename"):
                self.control.listen_unix(values["filename"], values["permissions"])
        except ControlServiceError as err:
            raise ConfigError(f"error opening Unix socket: {err}") from None
        try:
            if values.get("tcplisten"):
                self.control.listen_tcp(str(values["tcplisten"]), tcp_tls)
        except ControlServiceError as err:
            raise ConfigError(f"error listening on TCP socket: {err}") from None
        try:
            if service:  # upstream: an empty service name means no mesh listener
                self.control.listen_mesh(
                    service, tls=self.tls.server(values["tls"]) if values.get("tls") else None
                )
        except MeshError as err:
            raise ConfigError(f"error opening Unix socket: {err}") from None
        logger.info("Running control service %s", service)

    # ------------------------------------------------------------------ exclusive entities

    def _run_version(self, item: ConfigItem) -> None:
        print(__version__, flush=True)
        raise ExitRequest(0)

    # ------------------------------------------------------------------ reload

    def reload(self) -> str | None:
        """Upstream's reload (config.md §5); None on success, else the error with its code."""
        with self._reload_lock:
            error = self._reload()
        if error is not None:
            logger.warning("Reload not successful: %s", error.rpartition(" ERRORCODE ")[0])
        return error

    def _reload(self) -> str | None:
        assert self.netceptor is not None
        reload_file = self.command_line.reload_file
        if reload_file is None:
            return "no configuration file was provided, reload function not set ERRORCODE 4"
        try:
            items = self._reload_items()
            snapshot = reload_snapshot(reload_file)
        except ConfigError as err:
            return f"{err} ERRORCODE 4"
        change = reload_changes(self._snapshot or [], snapshot)
        if change is not None:
            return f"{change} ERRORCODE 3"
        try:
            for component in self.components:
                component.before_reload(items)
        except (ConfigError, ReceptorError) as err:
            return f"{err} ERRORCODE 4"
        self.netceptor.cancel_backends()
        reloadable = self.reloadable()
        run = self._handlers("run")
        try:
            for item in items:
                handler = run.get(item.entity.name)
                if item.entity.name in reloadable and handler is not None:
                    handler(item)
        except (ConfigError, ReceptorError) as err:
            return f"{err} ERRORCODE 4"
        return None

    def _reload_items(self) -> list[ConfigItem]:
        items = parse_command_line(self.argv).items
        self._check_implemented(items)
        reloadable = self.reloadable()
        prepare = self._handlers("prepare")
        for item in items:
            handler = prepare.get(item.entity.name)
            if item.entity.name in reloadable and handler is not None:
                handler(item)
        return items

    # ------------------------------------------------------------------ running

    def run(self) -> int:
        items = self.command_line.items
        try:
            self._check_implemented(items)
            if self.command_line.reload_file is not None:
                self._snapshot = reload_snapshot(self.command_line.reload_file)
            self._run_phases(items)
        except ExitRequest as request:
            self.stop()
            return request.status
        except (ConfigError, ReceptorError) as err:
            print(f"Error: {err}", flush=True)
            self.stop()
            return 1
        assert self.netceptor is not None
        if self.netceptor.backend_count == 0:
            logger.warning("Nothing to do - no backends are running.")
            print(f"Run {self.program} --help for command line instructions.", flush=True)
            self.stop()
            return 1
        logger.info("Initialization complete")
        self._install_signal_handlers()
        while not self.netceptor.done and self._signal is None:
            self._wake.wait(1.0)
            self._wake.clear()
        if self._signal is not None:
            # Die by the signal without a word, as upstream does (status 128 + n in a shell);
            # the kernel closes every socket, and work units outlive the daemon by design.
            signal.signal(self._signal, signal.SIG_DFL)
            os.kill(os.getpid(), self._signal)
        self.stop()
        return 0

    def _install_signal_handlers(self) -> None:
        def terminate(signum: int, frame: FrameType | None) -> None:
            self._signal = signum
            self._wake.set()

        def hangup(signum: int, frame: FrameType | None) -> None:
            threading.Thread(target=self.reload, name="reload-on-sighup", daemon=True).start()

        signal.signal(signal.SIGTERM, terminate)
        signal.signal(signal.SIGINT, terminate)
        signal.signal(signal.SIGHUP, hangup)

    def stop(self) -> None:
        for component in reversed(self.components):
            component.stop()
        if self.control is not None:
            self.control.stop()
            self.control = None
        if self.netceptor is not None:
            self.netceptor.shutdown()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``receptor`` command; returns the exit status."""
    from receptor.config import bash_completion, help_text

    _log.setup(logging.INFO)
    # Upstream prints argv[0] as typed; a console script only sees its full path, and the
    # name people type is the base name.
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "receptor"
    if program == "__main__.py":
        program = "receptor"
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        command_line = parse_command_line(args)
    except ConfigError as err:
        print(f"Error: {err}", flush=True)
        return 1
    if command_line.action == "help":
        sys.stdout.write(help_text(program))
        return 0
    if command_line.action == "bash-completion":
        sys.stdout.write(bash_completion(program))
        return 0
    return Daemon(command_line, args, program).run()
