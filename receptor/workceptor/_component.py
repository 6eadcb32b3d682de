"""The daemon component for the work entities and the ``work`` control command.

Entities: ``work-command`` (registers a command work type), ``work-signing`` /
``work-verification`` (keys for signed work), ``work-python`` (upstream refuses it at start-up,
and so do we, with its text), ``work-kubernetes`` (validated as upstream does, then refused:
not built in this version), and the hidden ``command-runner`` (the per-unit supervisor,
upstream's way of starting it; our daemon starts ``_runner.py`` directly).

The work manager is created on first need after the init phase (the node ID and data dir are
known then); the ``work`` command is added when the control server starts.
"""

import os
import threading

from receptor._daemon import Component, ExitRequest, Handler
from receptor._errors import ConfigError
from receptor._goduration import parse_duration
from receptor.config import ConfigItem
from receptor.workceptor import _remote, _runner
from receptor.workceptor._command import CommandWorkType
from receptor.workceptor._control import WorkCommand
from receptor.workceptor._signing import DEFAULT_TOKEN_EXPIRATION, WorkSigner, WorkVerifier
from receptor.workceptor._unit import WorkError, WorkType
from receptor.workceptor._workceptor import Workceptor, log_level_name

_PYTHON_DEPRECATED = (
    "[DEPRECATION WARNING] 'work-python' option is not currently being used. "
    "This feature will be removed from receptor in a future release"
)


class WorkEntities(Component):
    """Owns the work entities and the node's :class:`Workceptor`."""

    def __init__(self, daemon) -> None:  # type: ignore[no-untyped-def]
        super().__init__(daemon)
        self._manager: Workceptor | None = None
        self._signer: WorkSigner | None = None
        self._verifier: WorkVerifier | None = None
        self._command: WorkCommand | None = None
        self._lock = threading.RLock()

    def handlers(self) -> dict[str, dict[str, Handler]]:
        return {
            "prepare": {
                "work-signing": self._prepare_signing,
                "work-verification": self._prepare_verification,
                "work-kubernetes": self._prepare_kubernetes,
            },
            "run": {
                "work-command": self._run_command,
                "work-python": self._run_python,
                "work-kubernetes": self._run_kubernetes,
                "command-runner": self._run_command_runner,
            },
        }

    @property
    def manager(self) -> Workceptor:
        with self._lock:  # control sessions may be first to ask, several at once
            return self._make_manager()

    def _make_manager(self) -> Workceptor:
        if self._manager is None:
            settings = self.daemon.settings
            self._manager = Workceptor(settings.node_id, settings.datadir)
            self._manager.signer = self._signer
            self._manager.verifier = self._verifier
            assert self.daemon.netceptor is not None
            # Registering "remote" also picks up the remote units found on disk.
            _remote.install(self._manager, self.daemon.netceptor, self.daemon.tls)
        return self._manager

    @property
    def command(self) -> WorkCommand:
        """The control service's ``work`` command (the daemon registers it)."""
        with self._lock:
            if self._command is None:
                self._command = WorkCommand(self._make_manager())
            return self._command

    def stop(self) -> None:
        with self._lock:
            if self._manager is not None:
                self._manager.stop()
                self._manager = None
            self._command = None

    # ------------------------------------------------------------------ signing

    def _prepare_signing(self, item: ConfigItem) -> None:
        path = item.values.get("privatekey") or ""
        if path and not os.path.exists(path):
            raise ConfigError(f"{path} does not exist")
        expiration = DEFAULT_TOKEN_EXPIRATION
        text = item.values.get("tokenexpiration") or ""
        if text:
            try:
                expiration = parse_duration(text) / 1e9
            except ValueError:
                raise ConfigError(
                    "failed to parse TokenExpiration -- valid examples include "
                    "'1.5h', '30m', '30m10s'"
                ) from None
        self._signer = WorkSigner(path, expiration)
        if self._manager is not None:
            self._manager.signer = self._signer

    def _prepare_verification(self, item: ConfigItem) -> None:
        path = item.values.get("publickey") or ""
        if path and not os.path.exists(path):
            raise ConfigError(f"{path} does not exist")
        self._verifier = WorkVerifier(path)
        if self._manager is not None:
            self._manager.verifier = self._verifier

    # ------------------------------------------------------------------ work types

    def _register(self, work_type: WorkType) -> None:
        try:
            self.manager.register(work_type)
        except WorkError as err:
            raise ConfigError(str(err)) from None
        assert self.daemon.netceptor is not None
        self.daemon.netceptor.add_work_command(work_type.name, work_type.verify_signature)

    def _run_command(self, item: ConfigItem) -> None:
        values = item.values
        name = values["worktype"]
        verify = bool(values.get("verifysignature"))
        if verify and (self._verifier is None or not self._verifier.key_path):
            raise ConfigError(
                f"VerifySignature for work command '{name}' is true, but the work "
                "verification public key is not specified"
            )
        self._register(
            CommandWorkType(
                name,
                values["command"],
                values.get("params") or "",
                bool(values.get("allowruntimeparams")),
                verify,
            )
        )

    def _run_python(self, item: ConfigItem) -> None:
        raise ConfigError(_PYTHON_DEPRECATED)

    def _prepare_kubernetes(self, item: ConfigItem) -> None:
        """Upstream's checks of the configuration (config.md §3.10)."""
        values = item.values
        method = (values.get("authmethod") or "incluster").lower()
        if method not in ("kubeconfig", "incluster", "runtime"):
            raise ConfigError(f"invalid AuthMethod: {values.get('authmethod')}")
        needs_namespace = method != "kubeconfig" and not values.get("allowruntimeauth")
        if needs_namespace and not values.get("namespace"):
            raise ConfigError("must provide namespace when AuthMethod is not kubeconfig")
        kubeconfig = values.get("kubeconfig") or ""
        if kubeconfig:
            if method != "kubeconfig":
                raise ConfigError("can only provide KubeConfig when AuthMethod=kubeconfig")
            try:
                os.stat(kubeconfig)
            except OSError as err:
                raise ConfigError(f"error accessing kubeconfig file: {err}") from None
        image, command, params = (values.get(k) or "" for k in ("image", "command", "params"))
        if values.get("pod") and (image or command or params):
            raise ConfigError("can only provide Pod when Image, Command, and Params are empty")
        runtime_image = values.get("allowruntimecommand") or values.get("allowruntimepod")
        if not image and not values.get("pod") and not runtime_image:
            raise ConfigError("must specify a container image to run")
        if (values.get("streammethod") or "logger").lower() not in ("logger", "tcp"):
            raise ConfigError("stream mode must be logger or tcp")

    def _run_kubernetes(self, item: ConfigItem) -> None:
        raise ConfigError(
            "work-kubernetes is not supported by this version of receptor; "
            "use upstream receptor for Kubernetes work types"
        )

    def _run_command_runner(self, item: ConfigItem) -> None:
        """Upstream's supervisor entry point: run one unit's command, then exit."""
        values = item.values
        status = _runner.run(
            values["unitdir"], values["command"], values.get("params") or "", log_level_name()
        )
        raise ExitRequest(status)
