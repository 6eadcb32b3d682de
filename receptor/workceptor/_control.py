"""The ``work`` control command: text and JSON forms (control.md §3.6–§3.8)."""

import os
import socket
from collections.abc import Mapping
from typing import Any

from receptor._gojson import format_float
from receptor.controlsvc import TAKEN_OVER, CommandError, ControlSession
from receptor.workceptor._signing import SignatureError
from receptor.workceptor._status import FAILED, PENDING
from receptor.workceptor._unit import WorkError, WorkUnit
from receptor.workceptor._workceptor import Workceptor

#: Submit members that are not work parameters.
_NON_PARAMS = frozenset(
    {"command", "subcommand", "node", "worktype", "tlsclient", "ttl", "signwork", "signature"}
)
_ID_SUBCOMMANDS = ("status", "cancel", "release", "force-release")
WAITING_FOR_INPUT = "Waiting for Input Data"
_INT64_MAX = 2**63 - 1


def _go_parse_int(text: str) -> int:
    """``strconv.ParseInt(text, 10, 64)`` with its error text."""
    body = text[1:] if text[:1] in "+-" else text
    if not body or not body.isascii() or not body.isdigit():
        raise CommandError(
            "error converting start position to integer: "
            f'strconv.ParseInt: parsing "{text}": invalid syntax'
        )
    value = int(text)
    if not -_INT64_MAX - 1 <= value <= _INT64_MAX:
        raise CommandError(
            "error converting start position to integer: "
            f'strconv.ParseInt: parsing "{text}": value out of range'
        )
    return value


def _string(request: Mapping[str, Any], name: str) -> str:
    if name not in request:
        raise CommandError(f"field {name} missing")
    value = request[name]
    if not isinstance(value, str):
        raise CommandError(f"field {name} must be a string")
    return value


def _optional_string(request: Mapping[str, Any], name: str) -> str:
    value = request.get(name)
    return value if isinstance(value, str) else ""


def _go_value(value: Any) -> str:
    """How Go's ``%s`` shows a decoded JSON value in upstream's startpos error."""
    if isinstance(value, bool):
        return "%!s(bool=" + ("true" if value else "false") + ")"
    if value is None:
        return "%!s(<nil>)"
    if isinstance(value, float):
        return f"%!s(float64={format_float(value)})"
    if isinstance(value, list):
        return "[" + " ".join(_go_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = " ".join(f"{k}:{_go_value(v)}" for k, v in sorted(value.items()))
        return f"map[{items}]"
    return str(value)


def parse_text(params: str) -> tuple[str, dict[str, Any]]:
    tokens = params.split(" ")
    sub = tokens[0].lower()
    out: dict[str, Any] = {}
    if sub == "submit":
        if len(tokens) < 3:
            raise CommandError("work submit requires a target node and work type")
        out["node"], out["worktype"] = tokens[1], tokens[2]
        if len(tokens) > 3:
            out["params"] = " ".join(tokens[3:])
    elif sub == "list":
        if len(tokens) > 1:
            out["unitid"] = tokens[1]
    elif sub in _ID_SUBCOMMANDS:
        if len(tokens) < 2:
            raise CommandError(f"work {sub} requires a unit ID")
        if len(tokens) > 2:
            raise CommandError(f"work {sub} does not take parameters after the unit ID")
        out["unitid"] = tokens[1]
    elif sub == "results":
        if len(tokens) < 2:
            raise CommandError("work results requires a unit ID")
        if len(tokens) > 3:
            raise CommandError("work results only takes a unit ID and optional start position")
        out["unitid"] = tokens[1]
        out["startpos"] = _go_parse_int(tokens[2]) if len(tokens) > 2 else 0
    return sub, out


def parse_json(request: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    sub = _string(request, "subcommand").lower()
    out: dict[str, Any] = {}
    if sub == "submit":
        for key, value in request.items():
            if not isinstance(value, str):
                raise CommandError(f"submit parameters must all be strings and {key} is not")
            out[key] = value
        _string(out, "node")
        _string(out, "worktype")
    elif sub in _ID_SUBCOMMANDS:
        out["unitid"] = _string(request, "unitid")
        if isinstance(request.get("signature"), str):
            out["signature"] = request["signature"]
    elif sub == "list":
        if isinstance(request.get("unitid"), str):
            out["unitid"] = request["unitid"]
    elif sub == "results":
        out["unitid"] = _string(request, "unitid")
        if "startpos" not in request:
            raise CommandError("field startpos missing")
        startpos = request["startpos"]
        if isinstance(startpos, float) and startpos == startpos and abs(startpos) < 2**63:
            out["startpos"] = int(startpos)
        elif isinstance(startpos, int) and not isinstance(startpos, bool):
            out["startpos"] = startpos
        else:
            raise CommandError(
                f"field startpos value {_go_value(startpos)} is not convertible to an int"
            )
        if isinstance(request.get("signature"), str):
            out["signature"] = request["signature"]
    return sub, out


class WorkCommand:
    """The handler registered as the control command ``work``."""

    def __init__(self, manager: Workceptor) -> None:
        self.manager = manager

    def __call__(
        self, session: ControlSession, params: str | None, request: Mapping[str, Any] | None
    ) -> Any:
        sub, args = parse_text(params or "") if request is None else parse_json(request)
        try:
            if sub == "submit":
                return self.submit(session, args)
            if sub == "list":
                return self.list(args)
            if sub == "status":
                return self.manager.find(args["unitid"]).api_status()
            if sub in ("cancel", "release", "force-release"):
                return self.cancel_or_release(session, sub, args)
            if sub == "results":
                return self.results(session, args)
        except (WorkError, SignatureError) as err:
            raise CommandError(str(err)) from None
        except OSError as err:  # the data directory cannot be written, for instance
            raise CommandError(_os_error(err)) from None
        raise CommandError("bad command")

    # ------------------------------------------------------------------ signatures

    def _check_signature(
        self, session: ControlSession, work_type: str, signature: str, sign_work: bool
    ) -> None:
        verify = self.manager.should_verify_signature(work_type, sign_work)
        if not verify and signature != "":
            raise CommandError("work type did not expect a signature")
        if verify and not session.is_unix_socket:
            self.manager.verify_signature(signature)

    def _unit_signature(self, session: ControlSession, unit: WorkUnit, signature: str) -> None:
        status = unit.status
        extra = status.extra_data
        sign_work = bool(extra.get("SignWork")) if isinstance(extra, dict) else False
        self._check_signature(session, status.work_type, signature, sign_work)

    # ------------------------------------------------------------------ subcommands

    def submit(self, session: ControlSession, args: dict[str, Any]) -> Any:
        node, work_type = args["node"], args["worktype"]
        tlsclient = args.get("tlsclient", "")
        ttl = args.get("ttl", "")
        sign_work = args.get("signwork") == "true"
        work_params = {k: v for k, v in args.items() if k not in _NON_PARAMS}
        self._check_signature(session, work_type, args.get("signature", ""), sign_work)
        if node == self.manager.node_id or node.lower() == "localhost":
            if ttl:
                raise CommandError("ttl option is intended for remote work only")
            unit = self.manager.allocate(work_type, work_params, WAITING_FOR_INPUT)
        else:
            unit = self._remote_unit(node, work_type, work_params, tlsclient, ttl, sign_work)
        self._receive_stdin(session, unit)
        if not unit.start_writes_status:
            unit.save_basic(PENDING, "Starting Worker", 0)
        try:
            result = unit.start()
        except (WorkError, OSError) as err:
            unit.save_basic(FAILED, f"Error starting worker: {err}", 0)
            raise CommandError(str(err)) from None
        return {"result": result, "unitid": unit.id}

    def _remote_unit(
        self,
        node: str,
        work_type: str,
        params: dict[str, str],
        tlsclient: str,
        ttl: str,
        sign_work: bool,
    ) -> WorkUnit:
        """Remote work (work.md §6) is plugged in by its own module through this hook."""
        hook = self.manager.remote_submit
        if hook is None:
            raise CommandError(
                f"remote work to node {node} is not supported by this version of receptor yet"
            )
        return hook(self.manager, node, work_type, params, tlsclient, ttl, sign_work)

    def _receive_stdin(self, session: ControlSession, unit: WorkUnit) -> None:
        """Store every byte until the client half-closes as the unit's ``stdin``."""
        path = os.path.join(unit.dir, "stdin")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if unit.status.detail != WAITING_FOR_INPUT:
                unit.save_basic(PENDING, WAITING_FOR_INPUT, 0)
            session.write(f"Work unit created with ID {unit.id}. Send stdin data and EOF.\n")
            # Unbuffered: the bytes are on disk as they arrive (upstream shows them so).
            data = bytes(session.buffered)
            session.buffered.clear()
            while True:
                if not data:
                    try:
                        data = session.sock.recv(1024 * 1024)
                    except OSError as err:
                        detail = _read_error(err)
                        unit.save_basic(FAILED, f"Error reading input data: {detail}", 0)
                        raise CommandError(detail) from None
                    if not data:
                        break
                try:
                    _write_all(fd, data)
                    data = b""
                except OSError as err:
                    # A full disk: give the space back (the unit cannot run without
                    # all of its input) so that it does not stay full because of us.
                    os.ftruncate(fd, 0)
                    detail = f"write {path}: {os.strerror(err.errno or 0).lower()}"
                    unit.save_basic(FAILED, f"Error writing input data: {detail}", 0)
                    _discard_until_eof(session)
                    raise CommandError(detail) from None
        finally:
            os.close(fd)

    def list(self, args: dict[str, Any]) -> Any:
        if "unitid" in args:
            ids = [args["unitid"]]
        else:
            ids = self.manager.list_ids()
        reply: dict[str, Any] = {}
        for unit_id in ids:
            try:
                reply[unit_id] = self.manager.find(unit_id).api_status()
            except WorkError:
                if "unitid" in args:
                    raise
        return reply

    def cancel_or_release(self, session: ControlSession, sub: str, args: dict[str, Any]) -> Any:
        unit_id = args["unitid"]
        unit = self.manager.find(unit_id)
        self._unit_signature(session, unit, args.get("signature", ""))
        if sub == "cancel":
            return {unit.cancel() or "cancelled": unit_id}
        return {unit.release(force=sub == "force-release") or "released": unit_id}

    def results(self, session: ControlSession, args: dict[str, Any]) -> Any:
        unit = self.manager.find(args["unitid"])
        self._unit_signature(session, unit, args.get("signature", ""))
        if args["startpos"] < 0:
            # Upstream fails to seek and closes silently; we say why.
            raise CommandError(f"start position {args['startpos']} is negative")
        session.write(f"Streaming results for work unit {unit.id}\n")
        try:
            unit.stream_results(session.sock, args["startpos"])
        except OSError:
            pass  # the client went away: nothing left to do
        # The stream ends by closing the connection (the session closes it after this).
        shutdown = getattr(session.sock, "shutdown", None)
        if shutdown is not None:
            try:
                shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        return TAKEN_OVER


def _os_error(err: OSError) -> str:
    """An OS error worded as Go's ``*PathError`` (``<path>: <reason>``)."""
    reason = os.strerror(err.errno).lower() if err.errno else str(err)
    return f"{err.filename}: {reason}" if err.filename else reason


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _discard_until_eof(session: ControlSession) -> None:
    """Read and drop the rest of a payload: the client gets its answer after its EOF, as
    usual, and the payload is never taken for commands."""
    try:
        while session.sock.recv(1024 * 1024):
            pass
    except OSError:
        pass


def _read_error(err: OSError) -> str:
    reason = os.strerror(err.errno).lower() if err.errno else str(err)
    return f"read: {reason}"
