"""The standard control commands: status, ping, traceroute, reload, connect (control.md §3).

Each handler takes ``(session, text_params, json_request)``, exactly one of the last two
set, and returns the reply object (a dict; the session sorts its keys as Go does) or raises
:class:`CommandError`.
"""

import os
import socket
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from receptor._errors import MeshError
from receptor._goduration import format_duration
from receptor._log import logger
from receptor.controlsvc._session import TAKEN_OVER, CommandError, ControlSession, Handler

if TYPE_CHECKING:
    from receptor.netceptor import Conn

_STATUS_FIELDS = (
    "Advertisements",
    "Connections",
    "KnownConnectionCosts",
    "NodeID",
    "RoutingTable",
    "SystemCPUCount",
    "SystemMemoryMiB",
    "Version",
)


def _memory_mib() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // (1024 * 1024)
    except (ValueError, OSError):
        return 0


def status(session: ControlSession, params: str | None, request: Mapping[str, Any] | None) -> Any:
    wanted: list[str] | None = None
    if request is None:
        if params:
            raise CommandError("status command does not take parameters")
    elif "requested_fields" in request:
        fields = request["requested_fields"]
        # Upstream crashes on a non-list here; we answer with an error instead.
        if not isinstance(fields, list):
            raise CommandError("requested_fields must be a list of strings")
        if not all(isinstance(field, str) for field in fields):
            raise CommandError("each element of requested_fields must be a string")
        wanted = fields
    node = session.server.netceptor
    reply: dict[str, Any] = {}
    needs_mesh = wanted is None or any(
        f in ("Advertisements", "Connections", "KnownConnectionCosts", "RoutingTable")
        for f in wanted
    )
    if needs_mesh:
        reply.update(node.status())
    reply["NodeID"] = node.node_id
    reply["SystemCPUCount"] = os.cpu_count() or 0
    reply["SystemMemoryMiB"] = _memory_mib()
    reply["Version"] = session.server.version
    if wanted is not None:
        reply = {key: reply[key] for key in _STATUS_FIELDS if key in wanted and key in reply}
    return reply


def _target(params: str | None, request: Mapping[str, Any] | None, key: str, command: str) -> str:
    if request is None:
        target = params or ""
    else:
        target = _json_string(request, key, f"no {command} target", f"{command} target")
    if not target:
        raise CommandError(f"no {command} target")
    return target


def _timing(time_ns: int) -> dict[str, Any]:
    return {"Time": time_ns, "TimeStr": format_duration(time_ns)}


def ping(session: ControlSession, params: str | None, request: Mapping[str, Any] | None) -> Any:
    target = _target(params, request, "target", "ping")
    result = session.server.netceptor.ping(target)
    if result.error is not None:
        return {"Error": result.error, "Success": False}
    return {"From": result.from_node, "Success": True, **_timing(result.time_ns)}


def traceroute(
    session: ControlSession, params: str | None, request: Mapping[str, Any] | None
) -> Any:
    target = _target(params, request, "target", "traceroute")
    reply: dict[str, Any] = {}
    for hop, result in enumerate(session.server.netceptor.traceroute(target)):
        entry: dict[str, Any] = {"From": result.from_node, **_timing(result.time_ns)}
        if result.error is not None:
            entry = {"Error": result.error, **entry}
        reply[str(hop)] = entry
    return reply


def reload(session: ControlSession, params: str | None, request: Mapping[str, Any] | None) -> Any:
    handler = session.server.reload_handler
    error = (
        "no configuration file was provided, reload function not set ERRORCODE 4"
        if handler is None
        else handler()
    )
    if error is None:
        return {"Success": True}
    return {"Error": error, "Success": False}


def connect(session: ControlSession, params: str | None, request: Mapping[str, Any] | None) -> Any:
    """Dial a mesh stream and turn this control connection into a pipe to it (§3.4)."""
    if request is None:
        tokens = (params or "").split(" ") if params else []
        if len(tokens) < 2:
            raise CommandError("no connect target")
        if len(tokens) > 3:
            raise CommandError("too many parameters")
        node, service = tokens[0], tokens[1]
        tls = tokens[2] if len(tokens) == 3 else ""
    else:
        node = _json_string(request, "node", "no connect target node", "connect target node")
        service = _json_string(
            request, "service", "no connect target service", "connect target service"
        )
        tls_value = request.get("tls", "")  # null counts as "not a string", as in Go
        if not isinstance(tls_value, str):
            raise CommandError("connect tls name must be string")
        tls = tls_value
    netceptor = session.server.netceptor
    client_tls = None
    if tls:
        registry = getattr(session.server, "tls_registry", None)
        if registry is None or tls not in registry.clients:
            raise CommandError(f"unknown TLS config {tls}")
        client_tls = registry.clients[tls]
    if node.lower() == "localhost":
        node = netceptor.node_id
    if node == netceptor.node_id:
        if service not in netceptor.services():
            raise CommandError("INTERNAL_ERROR (local): service unknown")
    elif node not in netceptor.routes():
        raise CommandError("INTERNAL_ERROR (local): no route to node")
    from receptor.netceptor import ServiceUnknownError  # the stream layer, on first use

    try:
        conn = netceptor.dial(node, service, tls=client_tls)
    except ServiceUnknownError:
        raise CommandError("context canceled") from None
    except TimeoutError:
        raise CommandError("timeout: handshake did not complete in time") from None
    except (OSError, MeshError) as err:
        raise CommandError(str(err)) from None
    session.write("Connecting\n")
    _bridge(session, conn)
    return TAKEN_OVER


#: Each direction of a ``connect`` pipe is copied in pieces of at most this size.
BRIDGE_CHUNK = 65536


def _bridge(session: ControlSession, conn: "Conn") -> None:
    """Copy bytes both ways until the remote side ends (control.md §3.4).

    Client EOF half-closes the stream (FIN) and the remote side keeps flowing; remote EOF
    or an error ends the whole control connection (the server closes it after we return).
    """
    client = session.sock

    def upstream() -> None:
        try:
            if session.buffered:
                conn.sendall(bytes(session.buffered))
                session.buffered.clear()
            while data := client.recv(BRIDGE_CHUNK):
                conn.sendall(data)
        except OSError as err:
            logger.debug("connect: client side ended: %s", err)
        try:
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    thread = threading.Thread(target=upstream, name="control-connect", daemon=True)
    thread.start()
    try:
        while data := conn.recv(BRIDGE_CHUNK):
            client.sendall(data)
    except OSError as err:
        logger.debug("connect: remote side ended: %s", err)
    finally:
        try:
            client.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        thread.join(5.0)
        conn.close()


def _json_string(request: Mapping[str, Any], key: str, missing: str, name: str) -> str:
    if key not in request:
        raise CommandError(missing)
    value = request[key]
    if not isinstance(value, str):
        raise CommandError(f"{name} must be string")
    return value


def standard_commands() -> dict[str, Handler]:
    return {
        "status": status,
        "ping": ping,
        "traceroute": traceroute,
        "reload": reload,
        "connect": connect,
    }
