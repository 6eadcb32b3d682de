"""The `receptorctl status` table, rendered from a `status` reply.

The layout is upstream receptorctl 1.6.9's, byte for byte (trailing spaces included). Upstream
prints as it goes and dies with a traceback halfway through on a reply it cannot handle (a
missing key, an unknown `ConnType`, an unparsable `Time`); here the whole reply is checked while
the lines are built, so a bad reply prints nothing but one clear error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from receptor._gotime import parse_datetime as parse_go_time
from receptorctl._errors import ControlProtocolError

_CONN_TYPES = {0: "Datagram", 1: "Stream", 2: "StreamTLS"}
_REQUIRED = ("NodeID", "Version", "SystemCPUCount", "SystemMemoryMiB")
_AD_KEYS = ("NodeID", "Service", "ConnType", "Time", "Tags", "WorkCommands")
_MIN_WIDTH = 12


def _bad(detail: str) -> ControlProtocolError:
    return ControlProtocolError(f"malformed status reply from receptor: {detail}")


def _expect(value: Any, kind: type, what: str) -> Any:
    if not isinstance(value, kind):
        raise _bad(f"{what} is {json.dumps(value)[:60]}")
    return value


def format_json(data: Any) -> str:
    """JSON as receptorctl prints it: four-space indent, sorted keys, ASCII only."""
    return json.dumps(data, indent=4, sort_keys=True)


def status_lines(reply: Any) -> list[str]:
    """The lines `receptorctl status` prints for a `status` reply (without newlines).

    Raises `ControlProtocolError` naming the first thing in the reply that does not fit.
    """
    status = dict(_expect(reply, dict, "the reply"))
    missing = [key for key in _REQUIRED if key not in status]
    if missing:
        raise _bad(f"no {missing[0]}")
    lines = [
        f"Node ID: {status.pop('NodeID')}",
        f"Version: {status.pop('Version')}",
        f"System CPU Count: {status.pop('SystemCPUCount')}",
        f"System Memory MiB: {status.pop('SystemMemoryMiB')}",
    ]

    connections = status.pop("Connections", None) or []
    costs = status.pop("KnownConnectionCosts", None) or {}
    routes = status.pop("RoutingTable", None) or {}
    ads = status.pop("Advertisements", None) or []
    _expect(connections, list, "Connections")
    _expect(costs, dict, "KnownConnectionCosts")
    _expect(routes, dict, "RoutingTable")
    _expect(ads, list, "Advertisements")

    conn_rows = []
    for conn in connections:
        _expect(conn, dict, "a connection")
        if "NodeID" not in conn or "Cost" not in conn:
            raise _bad(f"connection {json.dumps(conn)[:60]} lacks NodeID or Cost")
        conn_rows.append((_expect(conn["NodeID"], str, "a connection's NodeID"), conn["Cost"]))
    for node, peers in costs.items():
        _expect(peers, dict, f"KnownConnectionCosts of {node}")
    width = max([_MIN_WIDTH] + [len(node) for node, _ in conn_rows] + [len(n) for n in costs])

    if conn_rows:
        lines += ["", f"{'Connection':<{width}} Cost"]
        lines += [f"{node:<{width}} {cost}" for node, cost in conn_rows]
    if costs:
        lines += ["", f"{'Known Node':<{width}} Known Connections"]
        for node, peers in costs.items():
            lines.append(f"{node:<{width}} " + "".join(f"{p}: {c} " for p, c in peers.items()))
    if routes:
        lines += ["", f"{'Route':<{width}} Via"]
        lines += [f"{node:<{width}} {via}" for node, via in routes.items()]
    if ads:
        lines += ["", f"{'Node':<{width}} Service   Type       Last Seen             Tags"]
        lines += [_ad_line(ad, width) for ad in ads]
        lines += _work_type_lines(ads, width, "Work Types", secure=False)
        lines += _work_type_lines(ads, width, "Secure Work Types", secure=True)
    if status:
        lines += ["Additional data returned from Receptor:", *format_json(status).split("\n")]
    return lines


def _ad_line(ad: Any, width: int) -> str:
    _expect(ad, dict, "an advertisement")
    missing = [key for key in _AD_KEYS if key not in ad]
    if missing:
        raise _bad(f"advertisement {json.dumps(ad)[:60]} has no {missing[0]}")
    node = _expect(ad["NodeID"], str, "an advertisement's NodeID")
    service = _expect(ad["Service"], str, f"the Service of an advertisement from {node}")
    where = f"advertisement {node}/{service}"
    conn_type = ad["ConnType"]
    if not isinstance(conn_type, int | float) or conn_type not in _CONN_TYPES:
        raise _bad(f"{where} has unknown ConnType {json.dumps(conn_type)[:20]}")
    time = _expect(ad["Time"], str, f"the Time of {where}")
    try:
        seen = parse_go_time(time)
    except ValueError as e:
        raise _bad(f"{where}: {e}") from None
    kind = _CONN_TYPES[int(conn_type)]
    last_seen = f"{seen:%Y-%m-%d %H:%M:%S}"
    tags = "-" if ad["Tags"] is None else str(ad["Tags"])
    return f"{node:<{width}} {service:<9} {kind:<10} {last_seen:<21} {tags:<16}"


def _work_type_lines(
    ads: list[Mapping[str, Any]], width: int, header: str, *, secure: bool
) -> list[str]:
    """One line per node: the work types of its first ad that has any of this security."""
    lines: list[str] = []
    seen_nodes: set[str] = set()
    for ad in ads:
        commands = ad["WorkCommands"] or []
        _expect(commands, list, f"the WorkCommands of {ad['NodeID']}")
        names = []
        for command in commands:
            _expect(command, dict, f"a WorkCommand of {ad['NodeID']}")
            if "WorkType" not in command or "Secure" not in command:
                raise _bad(f"WorkCommand {json.dumps(command)[:60]} lacks WorkType or Secure")
            if command["Secure"] == secure:
                names.append(_expect(command["WorkType"], str, f"a WorkType of {ad['NodeID']}"))
        if not names or ad["NodeID"] in seen_nodes:
            continue
        seen_nodes.add(ad["NodeID"])
        if not lines:
            lines += ["", f"{'Node':<{width}} {header}"]
        lines.append(f"{ad['NodeID']:<{width}} {', '.join(names)}")
    return lines
