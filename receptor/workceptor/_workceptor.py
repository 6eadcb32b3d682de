"""The work manager: work-type registry, unit allocation and lookup, discovery on disk.

Units live in ``<datadir>/<node id>/<unit id>/``. At creation the manager scans that
directory (work.md §8); units whose type is not registered yet are kept as placeholders and
picked up when their type registers. Submissions for another node go to :attr:`remote_submit`,
the hook the remote-work module (work.md §6) fills in.

How the remote-work module plugs in: it registers a :class:`WorkType` named ``remote`` with
``advertise = False`` (so units of type ``remote`` found on disk are adopted and restarted by
its ``new_unit``/``restart``), sets :attr:`Workceptor.remote_submit` to a function that makes
the unit (``new_unit_id``, write its status, ``add_unit``) and returns it; the ``work`` command
then receives stdin into it and calls its ``start``. Signatures come from :attr:`signer`;
``should_verify_signature("remote", sign_work)`` already follows the unit's ``SignWork``.
"""

import logging
import os
import string
import threading
from collections.abc import Callable, Mapping

from receptor._log import logger
from receptor.workceptor._launcher import RunnerLauncher
from receptor.workceptor._signing import SignatureError, WorkSigner, WorkVerifier
from receptor.workceptor._status import FAILED, PENDING
from receptor.workceptor._unit import UnknownTypeUnit, WorkError, WorkType, WorkUnit
from receptor.workceptor._watcher import ProcessWatcher

_ID_ALPHABET = string.ascii_letters + string.digits
_ID_LENGTH = 8


def _random_id() -> str:
    """Eight characters from ``_ID_ALPHABET``, uniformly, from one read of the system RNG
    (``secrets.choice`` per character would read it eight times; ``os.urandom`` is what
    ``secrets`` reads, without its import of ``hashlib``, which maps libcrypto: 3 MiB of an
    idle node's RSS)."""
    value = int.from_bytes(os.urandom(16), "big")
    characters = []
    for _ in range(_ID_LENGTH):
        value, index = divmod(value, len(_ID_ALPHABET))
        characters.append(_ID_ALPHABET[index])
    return "".join(characters)


#: ``remote_submit(manager, node, work_type, params, tlsclient, ttl, signwork) -> WorkUnit``.
RemoteSubmit = Callable[["Workceptor", str, str, dict[str, str], str, str, bool], WorkUnit]


def log_level_name() -> str:
    """The daemon's log level by upstream name (passed on to command runners)."""
    level = logger.getEffectiveLevel()
    for name, value in (("debug", logging.DEBUG), ("info", logging.INFO)):
        if level <= value:
            return name
    return "warning" if level <= logging.WARNING else "error"


class Workceptor:
    """All work units of one node."""

    def __init__(self, node_id: str, datadir: str) -> None:
        self.node_id = node_id
        self.datadir = datadir
        self.data_dir = os.path.join(datadir, node_id)
        self.types: dict[str, WorkType] = {}
        self.units: dict[str, WorkUnit] = {}
        self.signer: WorkSigner | None = None
        self.verifier: WorkVerifier | None = None
        #: Filled in by the remote-work module; None means remote work is not available.
        self.remote_submit: RemoteSubmit | None = None
        self._lock = threading.RLock()
        self.watcher = ProcessWatcher()
        self.launcher = RunnerLauncher()
        self.scan()

    # ------------------------------------------------------------------ registry

    def register(self, work_type: WorkType) -> None:
        """Add a work type; units on disk waiting for it are picked up and restarted."""
        with self._lock:
            if work_type.name in self.types:
                raise WorkError(f"work type {work_type.name} already registered")
            self.types[work_type.name] = work_type
            waiting = [
                unit
                for unit in self.units.values()
                if isinstance(unit, UnknownTypeUnit) and unit.status.work_type == work_type.name
            ]
        for unit in waiting:
            self._adopt(unit.id)

    def should_verify_signature(self, work_type: str, sign_work: bool) -> bool:
        if work_type == "remote":
            return sign_work
        registered = self.types.get(work_type)
        return registered is not None and registered.verify_signature

    def verify_signature(self, signature: str) -> None:
        if signature == "":
            raise SignatureError("could not verify signature: signature is empty")
        if self.verifier is None:
            raise SignatureError("could not verify signature: verifying key not specified")
        self.verifier.verify(signature, self.node_id)

    # ------------------------------------------------------------------ units

    def _make_dirs(self) -> None:
        for path in (self.datadir, self.data_dir):
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                pass
            except FileNotFoundError:
                os.makedirs(path, 0o700, exist_ok=True)

    def new_unit_id(self) -> str:
        """An unused ID whose directory this call created (so no other allocation gets it)."""
        made_dirs = False
        while True:
            unit_id = _random_id()
            with self._lock:
                if unit_id in self.units:
                    continue
                try:
                    os.mkdir(os.path.join(self.data_dir, unit_id), 0o700)
                except FileExistsError:
                    continue
                except (FileNotFoundError, NotADirectoryError):
                    # The data directory is made on first use (and again if removed); if
                    # that cannot be done, its error (naming the directory) is the answer.
                    if made_dirs:
                        raise
                    self._make_dirs()
                    made_dirs = True
                    continue
                return unit_id

    def allocate(
        self, work_type: str, params: Mapping[str, str], detail: str = "Unit Created"
    ) -> WorkUnit:
        """A new local unit of ``work_type`` in state Pending ``detail``.

        A submit passes ``Waiting for Input Data``, the state its unit would be in a few
        microseconds later anyway: one status write fewer per unit.
        """
        registered = self.types.get(work_type)
        if registered is None or work_type == "remote":
            raise WorkError(f"unknown work type {work_type}")
        registered.check_params(params)
        unit_id = self.new_unit_id()
        unit = registered.new_unit(self, unit_id)
        set_params = getattr(unit, "set_params", None)
        if set_params is not None:
            set_params(params)
        extra = getattr(unit, "initial_extra", lambda: None)()
        unit.save(state=PENDING, detail=detail, stdout_size=0, extra_data=extra)
        with self._lock:
            self.units[unit_id] = unit
        return unit

    def add_unit(self, unit: WorkUnit) -> None:
        """Register a unit made elsewhere (the remote-work module)."""
        with self._lock:
            self.units[unit.id] = unit

    def forget(self, unit_id: str) -> None:
        with self._lock:
            self.units.pop(unit_id, None)

    def list_ids(self) -> list[str]:
        with self._lock:
            return sorted(self.units)

    def find(self, unit_id: str) -> WorkUnit:
        """The unit with this ID, picked up from disk if it is there but not in memory."""
        with self._lock:
            unit = self.units.get(unit_id)
        if unit is not None:
            return unit
        on_disk = unit_id and "/" not in unit_id and unit_id not in (".", "..")
        if on_disk and os.path.isdir(os.path.join(self.data_dir, unit_id)):
            found = self._adopt(unit_id)
            if found is not None:
                return found
        logger.error("Error locating unit: %s", unit_id)
        raise WorkError(f"unknown work unit {unit_id}")

    # ------------------------------------------------------------------ discovery

    def scan(self) -> None:
        """Pick up every unit directory on disk (at start-up)."""
        try:
            names = sorted(os.listdir(self.data_dir))
        except OSError:
            return
        for name in names:
            if os.path.isdir(os.path.join(self.data_dir, name)):
                with self._lock:
                    known = name in self.units
                if not known:
                    self._adopt(name)

    def _adopt(self, unit_id: str) -> WorkUnit | None:
        """Load one unit from disk and restart it (work.md §8)."""
        unit_dir = os.path.join(self.data_dir, unit_id)
        probe = UnknownTypeUnit(self, unit_id, "")
        try:
            probe.load()
        except FileNotFoundError:
            logger.warning("Status file has disappeared for %s.", unit_id)
            return None
        except (OSError, ValueError) as err:
            logger.error("Error loading unit %s from %s: %s", unit_id, unit_dir, err)
            return None
        registered = self.types.get(probe.status.work_type)
        unit: WorkUnit
        if registered is None:
            unit = probe
        else:
            unit = registered.new_unit(self, unit_id)
            unit.status = probe.status.copy()
            try:
                unit.restart()
            except (OSError, WorkError) as err:
                unit.save_basic(FAILED, f"Failed to restart: {err}")
        with self._lock:
            self.units[unit_id] = unit
        return unit

    def stop(self) -> None:
        for work_type in list(self.types.values()):
            work_type.stop()
        self.launcher.stop()
        self.watcher.stop()
