"""The JSON messages of the mesh: routing updates, service advertisements, unreachables.

Decoding follows Go's ``encoding/json`` into upstream's structs: object keys match field
names case-insensitively, unknown keys are ignored, missing keys get zero values, and a value
of the wrong type rejects the whole message. Encoding writes the fields in Go's struct order
so that upstream peers (and the golden captures) see the same bytes.
"""

import math
import os
import string
from dataclasses import dataclass, field
from typing import Any

from receptor import _gojson
from receptor._errors import ProtocolError
from receptor._gotime import format_rfc3339nano, parse_rfc3339

_ID_ALPHABET = string.digits + string.ascii_letters
_UINT64_MAX = (1 << 64) - 1

CONN_TYPE_DATAGRAM = 0
CONN_TYPE_STREAM = 1
CONN_TYPE_STREAM_TLS = 2

PROBLEM_SERVICE_UNKNOWN = "service unknown"
PROBLEM_EXPIRED = "message expired"
PROBLEM_REJECTED = "blocked by firewall"


def random_id(length: int = 8) -> str:
    """Crypto-random ``[0-9a-zA-Z]`` string: update IDs and ephemeral service names.

    Drawn from ``os.urandom`` with rejection sampling (uniform over the 62 characters);
    the ``secrets`` module would do the same but loads OpenSSL, about 4 MiB per node.
    """
    chars: list[str] = []
    while len(chars) < length:
        for byte in os.urandom(length * 2):
            if byte < 248:  # 248 = 4 * 62: keeps the draw uniform
                chars.append(_ID_ALPHABET[byte % 62])
    return "".join(chars[:length])


def _object(body: bytes | str, what: str) -> dict[str, Any]:
    try:
        value = _gojson.loads(body)
    except ValueError as err:
        raise ProtocolError(f"invalid {what} JSON: {err}") from None
    if not isinstance(value, dict):
        raise ProtocolError(f"invalid {what}: expected a JSON object")
    # Go matches keys case-insensitively; when a key appears twice the last one wins.
    return {str(key).lower(): item for key, item in value.items()}


def _string(obj: dict[str, Any], key: str, what: str) -> str:
    value = obj.get(key.lower())
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ProtocolError(f"invalid {what}: {key} must be a string")
    return value


def _uint64(obj: dict[str, Any], key: str, what: str) -> int:
    value = obj.get(key.lower())
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _UINT64_MAX:
        raise ProtocolError(f"invalid {what}: {key} must be an unsigned 64-bit integer")
    return value


def _bool(obj: dict[str, Any], key: str, what: str) -> bool:
    value = obj.get(key.lower())
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ProtocolError(f"invalid {what}: {key} must be a boolean")
    return value


@dataclass(slots=True)
class RoutingUpdate:
    """A link-state update (message type 1, wire.md §6)."""

    node_id: str
    update_id: str
    epoch: int
    sequence: int
    connections: dict[str, float]
    forwarding_node: str
    suspected_duplicate: int = 0

    def encode(self) -> bytes:
        """Type byte + JSON in upstream's field order, connections sorted by name."""
        body = _gojson.dumps(
            {
                "NodeID": self.node_id,
                "UpdateID": self.update_id,
                "UpdateEpoch": self.epoch,
                "UpdateSequence": self.sequence,
                "Connections": dict(sorted(self.connections.items())),
                "ForwardingNode": self.forwarding_node,
                "SuspectedDuplicate": self.suspected_duplicate,
            }
        )
        return b"\x01" + body.encode("utf-8")

    @classmethod
    def decode(cls, body: bytes) -> "RoutingUpdate":
        """Parse the JSON after the type byte; ``ProtocolError`` for anything Go refuses.

        Costs must be JSON numbers (Go float64); non-finite values cannot occur in JSON and
        overflowing ones are refused. Negative or zero costs are kept as sent: the routing
        computation ignores such edges.
        """
        what = "routing update"
        obj = _object(body, what)
        raw_connections = obj.get("connections")
        connections: dict[str, float] = {}
        if raw_connections is not None:
            if not isinstance(raw_connections, dict):
                raise ProtocolError(f"invalid {what}: Connections must be an object")
            for node, cost in raw_connections.items():
                if isinstance(cost, bool) or not isinstance(cost, int | float):
                    raise ProtocolError(f"invalid {what}: cost for {node!r} must be a number")
                cost = float(cost)
                if not math.isfinite(cost):
                    raise ProtocolError(f"invalid {what}: cost for {node!r} is out of range")
                connections[node] = cost
        return cls(
            node_id=_string(obj, "NodeID", what),
            update_id=_string(obj, "UpdateID", what),
            epoch=_uint64(obj, "UpdateEpoch", what),
            sequence=_uint64(obj, "UpdateSequence", what),
            connections=connections,
            forwarding_node=_string(obj, "ForwardingNode", what),
            suspected_duplicate=_uint64(obj, "SuspectedDuplicate", what),
        )


@dataclass(slots=True)
class WorkCommand:
    """A work type listed in a control service's advertisement."""

    work_type: str
    secure: bool

    def to_json(self) -> dict[str, Any]:
        return {"WorkType": self.work_type, "Secure": self.secure}


@dataclass(slots=True)
class ServiceAdvertisement:
    """A service advertisement (message type 2, wire.md §8).

    ``time`` is ``(unix_ns, zone_offset_seconds)`` as read from or written to the wire.
    """

    node_id: str
    service: str
    time: tuple[int, int]
    conn_type: int
    tags: dict[str, str] | None = None
    work_commands: list[WorkCommand] | None = None
    cancel: bool = False

    def to_json(self) -> dict[str, Any]:
        """The object as ``status`` shows it (no ``Cancel`` key)."""
        return {
            "NodeID": self.node_id,
            "Service": self.service,
            "Time": format_rfc3339nano(self.time),
            "ConnType": self.conn_type,
            "Tags": None if self.tags is None else dict(sorted(self.tags.items())),
            "WorkCommands": None
            if self.work_commands is None
            else [command.to_json() for command in self.work_commands],
        }

    def encode(self) -> bytes:
        body = self.to_json()
        body["Cancel"] = self.cancel
        return b"\x02" + _gojson.dumps(body).encode("utf-8")

    @classmethod
    def decode(cls, body: bytes) -> "ServiceAdvertisement":
        what = "service advertisement"
        obj = _object(body, what)
        raw_time = obj.get("time")
        if raw_time is None:
            stamp = (-62135596800 * 1_000_000_000, 0)  # Go's zero time.Time
        elif isinstance(raw_time, str):
            try:
                stamp = parse_rfc3339(raw_time)
            except ValueError as err:
                raise ProtocolError(f"invalid {what}: {err}") from None
        else:
            raise ProtocolError(f"invalid {what}: Time must be a string")
        conn_type = _uint64(obj, "ConnType", what)
        if conn_type > 255:
            raise ProtocolError(f"invalid {what}: ConnType must fit in a byte")
        tags = obj.get("tags")
        if tags is not None and (
            not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values())
        ):
            raise ProtocolError(f"invalid {what}: Tags must map strings to strings")
        raw_commands = obj.get("workcommands")
        commands: list[WorkCommand] | None = None
        if raw_commands is not None:
            if not isinstance(raw_commands, list):
                raise ProtocolError(f"invalid {what}: WorkCommands must be a list")
            commands = []
            for item in raw_commands:
                if not isinstance(item, dict):
                    raise ProtocolError(f"invalid {what}: WorkCommands entries must be objects")
                entry = {str(k).lower(): v for k, v in item.items()}
                commands.append(
                    WorkCommand(_string(entry, "WorkType", what), _bool(entry, "Secure", what))
                )
        return cls(
            node_id=_string(obj, "NodeID", what),
            service=_string(obj, "Service", what),
            time=stamp,
            conn_type=conn_type,
            tags=tags,
            work_commands=commands,
            cancel=_bool(obj, "Cancel", what),
        )


@dataclass(slots=True)
class UnreachableMessage:
    """The payload of a message to the ``unreach`` service (wire.md §9.1)."""

    from_node: str
    to_node: str
    from_service: str
    to_service: str
    problem: str
    received_from: str = field(default="", compare=False)

    def encode(self) -> bytes:
        return _gojson.dumps(
            {
                "FromNode": self.from_node,
                "ToNode": self.to_node,
                "FromService": self.from_service,
                "ToService": self.to_service,
                "Problem": self.problem,
            }
        ).encode("utf-8")

    @classmethod
    def decode(cls, body: bytes, received_from: str) -> "UnreachableMessage":
        what = "unreachable message"
        obj = _object(body, what)
        return cls(
            _string(obj, "FromNode", what),
            _string(obj, "ToNode", what),
            _string(obj, "FromService", what),
            _string(obj, "ToService", what),
            _string(obj, "Problem", what),
            received_from,
        )
