"""The daemon: runs the configured entities through upstream's phases (config.md §1.3–§1.4, §5).

After parsing, every entity goes through ``init``, then every entity through ``prepare``,
then every entity through ``run`` (so TLS configs exist before the backends that name them,
whatever the order in the file). ``reload`` re-parses the original arguments, refuses
changes to non-reloadable entities, and restarts the backends.

Entities of the spec that this version does not implement yet are refused up front with a
message that names them, before anything starts; nothing is ever silently ignored.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from types import FrameType
from typing import TYPE_CHECKING, Any

from receptor import _log
from receptor._errors import ConfigError, MeshError, ReceptorError
from receptor._log import logger
from receptor._version import __version__
from receptor.config import (
    CommandLine,
    ConfigItem,
    parse_command_line,
    reload_changes,
    reload_snapshot,
)
from receptor.netceptor._tls_registry import TLSRegistry

if TYPE_CHECKING:
    from receptor.controlsvc import ControlServer
    from receptor.netceptor import Backend, Netceptor
    from receptor.workceptor._component import WorkEntities

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

    def __init__(self, daemon: Daemon) -> None:
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


#: The entities that add a backend when they run, besides ``local-only`` (a core entity).
BACKEND_ENTITIES = frozenset(
    {"tcp-listener", "tcp-peer", "udp-listener", "udp-peer", "ws-listener", "ws-peer"}
)

#: Every component: its module, its class and the entities it has handlers for, in the
#: order their handlers are merged. A component is imported and made only when the
#: configuration names one of its entities (start-up time: a node loads only what it uses);
#: the work component also for the control service's ``work`` command. The entity names
#: are checked against each component's ``handlers()`` in tests/unit/test_daemon_components.py.
COMPONENTS: tuple[tuple[str, str, frozenset[str]], ...] = (
    (
        "receptor.certificates._component",
        "CertificateEntities",
        frozenset({"cert-init", "cert-makereq", "cert-signreq"}),
    ),
    ("receptor.netceptor._tls_component", "TLSEntities", frozenset({"tls-client", "tls-server"})),
    ("receptor.backends._component", "BackendEntities", BACKEND_ENTITIES),
    (
        "receptor.services._component",
        "ServiceEntities",
        frozenset(
            {
                "tcp-client",
                "tcp-server",
                "udp-client",
                "udp-server",
                "unix-socket-client",
                "unix-socket-server",
            }
        ),
    ),
    (
        "receptor.workceptor._component",
        "WorkEntities",
        frozenset(
            {
                "command-runner",
                "work-command",
                "work-kubernetes",
                "work-python",
                "work-signing",
                "work-verification",
            }
        ),
    ),
)
_WORK_COMPONENT = "WorkEntities"


class ExitRequest(Exception):
    """An exclusive entity (``version``) ran: exit with this status."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


@dataclass
class NodeSettings:
    node_id: str = ""
    datadir: str = "/tmp/receptor"
    idle_timeout: float | None = None  # the mesh's default
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
        #: The components made so far (see COMPONENTS), in COMPONENTS order.
        self.components: list[Component] = []
        self._components_lock = threading.Lock()
        #: The control-service items whose Unix socket is open (see ``_run_phases``).
        self._unix_opened: set[int] = set()

    # ------------------------------------------------------------------ components

    def _load_components(self, items: list[ConfigItem]) -> None:
        """Make the components that handle any of ``items``' entities."""
        names = {item.entity.name for item in items}
        for _module, class_name, entities in COMPONENTS:
            if names & entities:
                self._component(class_name)

    def _component(self, class_name: str) -> Component:
        """The component of that class, made (and its module imported) on first use."""
        with self._components_lock:
            for component in self.components:
                if type(component).__name__ == class_name:
                    return component
            order = [name for _module, name, _entities in COMPONENTS]
            module = next(m for m, name, _e in COMPONENTS if name == class_name)
            component = getattr(import_module(module), class_name)(self)
            self.components.append(component)
            self.components.sort(key=lambda c: order.index(type(c).__name__))
        if self.control is not None:
            component.control_started(self.control)
        return component

    def work(self) -> WorkEntities:
        """The work component (and the node's work manager behind it)."""
        from receptor.workceptor._component import WorkEntities

        component = self._component(_WORK_COMPONENT)
        assert isinstance(component, WorkEntities)
        return component

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
        for phase in self._core_handlers().values():
            names.update(phase)
        for _module, _name, entities in COMPONENTS:
            names.update(entities)
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
        self._load_components(items)
        for phase in ("init", "prepare", "run"):
            handlers = self._handlers(phase)
            if phase == "run":
                # The control services' other listeners before backends dial.
                items = sorted(items, key=lambda item: item.entity.name != "control-service")
            for item in items:
                handler = handlers.get(item.entity.name)
                if handler is not None:
                    handler(item)
            exclusive = any(item.entity.exclusive for item in items)
            if phase == "init" and self.netceptor is None and not exclusive:
                # An exclusive entity (version, cert-*) runs alone: no node, so no node ID
                # either (a host named localhost can still make certificates).
                self._create_netceptor()
            if phase == "init" and self.netceptor is not None:
                # The control services' Unix sockets as soon as the node exists (they need
                # no TLS config): scripts and service managers that start a node and talk
                # to it at once find them before certificates load, backends dial or the
                # work manager looks at its units (upstream binds them in ``run``).
                for item in items:
                    if item.entity.name == "control-service" and item.values.get("filename"):
                        self._open_unix_control(item)

    # ------------------------------------------------------------------ node and logging

    def _init_node(self, item: ConfigItem) -> None:
        values = item.values
        settings = NodeSettings(node_id=_resolve_node_id(values.get("id")))
        settings.datadir = values["datadir"]
        if values.get("firewallrules"):
            from receptor.netceptor import parse_rules

            settings.firewall_rules = parse_rules(values.get("firewallrules"))
        timeout = values.get("maxidleconnectiontimeout")
        if timeout:
            from receptor._goduration import parse_duration
            from receptor.netceptor._node import DEFAULT_IDLE_TIMEOUT

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
        from receptor.netceptor import Netceptor

        if not self.settings.node_id:
            self.settings.node_id = _resolve_node_id(None)
        options: dict[str, Any] = {"firewall_rules": self.settings.firewall_rules}
        if self.settings.idle_timeout is not None:
            options["idle_timeout"] = self.settings.idle_timeout
        self.netceptor = Netceptor(self.settings.node_id, **options)

    def _init_log_level(self, item: ConfigItem) -> None:
        try:
            _log.set_level(item.values["level"])
        except ValueError as err:
            raise ConfigError(str(err)) from None

    # ------------------------------------------------------------------ backends

    def add_backend(self, backend: Backend, item: ConfigItem) -> None:
        """Start ``backend`` with the connection settings of ``item`` (cost, nodecost, ...)."""
        from receptor.netceptor import BackendInfo

        assert self.netceptor is not None
        peers = item.values.get("allowedpeers")
        info = BackendInfo(
            cost=item.values.get("cost", 1.0),  # local-only has no cost field
            node_cost=dict(item.values.get("nodecost") or {}),
            allowed_peers=None if peers is None else tuple(peers),
        )
        self.netceptor.add_backend(backend, info)

    def _run_local_only(self, item: ConfigItem) -> None:
        from receptor.backends import NullBackend

        self.add_backend(NullBackend(), item)

    # ------------------------------------------------------------------ control service

    def _control_server(self) -> ControlServer:
        from receptor.controlsvc import ControlServer

        assert self.netceptor is not None
        if self.control is None:
            self.control = ControlServer(
                self.netceptor,
                __version__,
                self.reload if self.command_line.reload_file else None,
            )
            self.control.tls_registry = self.tls  # for ``connect <node> <svc> <tlsclient>``
            # ``work`` is always there (upstream's node always has its work manager); the
            # work component is loaded by its first use or at the end of start-up.
            self.control.add_command(
                "work", lambda session, text, params: self.work().command(session, text, params)
            )
            for component in self.components:
                component.control_started(self.control)
        return self.control

    def _open_unix_control(self, item: ConfigItem) -> None:
        from receptor.controlsvc import ControlServiceError

        values = item.values
        try:
            self._control_server().listen_unix(values["filename"], values["permissions"])
        except ControlServiceError as err:
            raise ConfigError(f"error opening Unix socket: {err}") from None
        self._unix_opened.add(id(item))

    def _run_control(self, item: ConfigItem) -> None:
        from receptor.controlsvc import ControlServiceError

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
        control = self._control_server()
        if values.get("filename") and id(item) not in self._unix_opened:
            self._open_unix_control(item)
        try:
            if values.get("tcplisten"):
                control.listen_tcp(str(values["tcplisten"]), tcp_tls)
        except ControlServiceError as err:
            raise ConfigError(f"error listening on TCP socket: {err}") from None
        try:
            if service:  # upstream: an empty service name means no mesh listener
                control.listen_mesh(
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
        # A reloaded file may name entities of a component the first one did not need
        # (the first tcp-peer of a node that had only local-only).
        self._load_components(items)
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
        if self.control is not None:
            # The work manager picks up the units on disk (remote ones resume) now that the
            # control sockets answer.
            self.work().manager  # noqa: B018
        if self.netceptor.backend_count == 0:
            logger.warning("Nothing to do - no backends are running.")
            print(f"Run {self.program} --help for command line instructions.", flush=True)
            self.stop()
            return 1
        logger.info("Initialization complete")
        self._install_signal_handlers()
        self._notify_systemd()
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

    def _notify_systemd(self) -> None:
        """READY=1 for ``Type=notify``, and WATCHDOG=1 from the mesh's scheduler thread for
        ``WatchdogSec=`` (see :mod:`receptor._systemd`)."""
        from receptor import _systemd

        netceptor = self.netceptor
        assert netceptor is not None
        _systemd.notify("READY=1", f"STATUS=Node {netceptor.node_id} running")
        period = _systemd.watchdog_period()
        if period is None:
            return

        def beat() -> None:
            _systemd.notify("WATCHDOG=1")
            netceptor.call_later(period, beat)

        beat()

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
