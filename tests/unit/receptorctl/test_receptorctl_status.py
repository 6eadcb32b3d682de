"""The `status` table, and the Go time format its `Last Seen` column is parsed from."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from receptor._gotime import parse_datetime as parse_go_time
from receptorctl._status import status_lines

WARNING = "Warning: receptorctl and receptor are different versions, they may not be compatible\n"

RICH_STATUS = {
    "NodeID": "controller-with-a-long-name",
    "Version": "1.4.9",
    "SystemCPUCount": 8,
    "SystemMemoryMiB": 15876,
    "Connections": [
        {"NodeID": "hop", "Cost": 1},
        {"NodeID": "execution-node-number-one", "Cost": 2.5},
    ],
    "KnownConnectionCosts": {
        "controller-with-a-long-name": {"hop": 1, "execution-node-number-one": 2.5},
        "hop": {"controller-with-a-long-name": 1},
        "gone": {},
    },
    "RoutingTable": {"hop": "hop", "execution-node-number-one": "execution-node-number-one"},
    "Advertisements": [
        {
            "NodeID": "controller-with-a-long-name",
            "Service": "control",
            "Time": "2024-10-24T16:36:52.123456789-04:00",
            "ConnType": 1,
            "Tags": {"type": "Control Service"},
            "WorkCommands": [
                {"WorkType": "echo", "Secure": False},
                {"WorkType": "signed", "Secure": True},
            ],
        },
        {
            "NodeID": "hop",
            "Service": "dgram",
            "Time": "2024-10-24T20:36:52Z",
            "ConnType": 0,
            "Tags": None,
            "WorkCommands": None,
        },
        {
            "NodeID": "execution-node-number-one",
            "Service": "tlsctl",
            "Time": "2024-10-25T02:06:52.5+05:30",
            "ConnType": 2,
            "Tags": {"type": "Control Service", "extra": [1, 2]},
            "WorkCommands": [{"WorkType": "ansible-runner", "Secure": True}],
        },
        {
            "NodeID": "controller-with-a-long-name",
            "Service": "other",
            "Time": "2024-10-24T16:36:53-04:00",
            "ConnType": 1,
            "Tags": {},
            "WorkCommands": [{"WorkType": "ignored", "Secure": False}],
        },
    ],
    "Metrics": {"uptime": 5},
}

W = 27  # the longest node ID among connections and known nodes
RICH_TABLE = [
    "Node ID: controller-with-a-long-name",
    "Version: 1.4.9",
    "System CPU Count: 8",
    "System Memory MiB: 15876",
    "",
    f"{'Connection':<{W}} Cost",
    f"{'hop':<{W}} 1",
    f"{'execution-node-number-one':<{W}} 2.5",
    "",
    f"{'Known Node':<{W}} Known Connections",
    f"{'controller-with-a-long-name':<{W}} hop: 1 execution-node-number-one: 2.5 ",
    f"{'hop':<{W}} controller-with-a-long-name: 1 ",
    f"{'gone':<{W}} ",
    "",
    f"{'Route':<{W}} Via",
    f"{'hop':<{W}} hop",
    f"{'execution-node-number-one':<{W}} execution-node-number-one",
    "",
    f"{'Node':<{W}} Service   Type       Last Seen             Tags",
    f"{'controller-with-a-long-name':<{W}} control   Stream     2024-10-24 16:36:52   "
    "{'type': 'Control Service'}",
    f"{'hop':<{W}} dgram     Datagram   2024-10-24 20:36:52   -               ",
    f"{'execution-node-number-one':<{W}} tlsctl    StreamTLS  2024-10-25 02:06:52   "
    "{'type': 'Control Service', 'extra': [1, 2]}",
    f"{'controller-with-a-long-name':<{W}} other     Stream     2024-10-24 16:36:53   "
    "{}              ",
    "",
    f"{'Node':<{W}} Work Types",
    f"{'controller-with-a-long-name':<{W}} echo",
    "",
    f"{'Node':<{W}} Secure Work Types",
    f"{'controller-with-a-long-name':<{W}} signed",
    f"{'execution-node-number-one':<{W}} ansible-runner",
    "Additional data returned from Receptor:",
    "{",
    '    "Metrics": {',
    '        "uptime": 5',
    "    }",
    "}",
]

MINIMAL_STATUS = {"NodeID": "n", "Version": "", "SystemCPUCount": 1, "SystemMemoryMiB": 2}
MINIMAL_TABLE = ["Node ID: n", "Version: ", "System CPU Count: 1", "System Memory MiB: 2"]


@pytest.mark.parametrize(
    ("status", "table"),
    [
        (RICH_STATUS, RICH_TABLE),
        (MINIMAL_STATUS, MINIMAL_TABLE),
        (
            {**MINIMAL_STATUS, "Connections": [], "KnownConnectionCosts": None, "RoutingTable": {}},
            MINIMAL_TABLE,
        ),
    ],
)
def test_status_table(
    status: dict[str, Any],
    table: list[str],
    receptor: Any,
    steps: Any,
    any_rc: Callable[..., Any],
) -> None:
    assert status_lines(status) == table
    receptor.on_version("1.4.9").on("status", steps.go_json(status))
    result = any_rc(["--socket", receptor.address, "status"])
    assert (result.stdout, result.stderr, result.exit_code) == ("\n".join(table) + "\n", WARNING, 0)


def test_status_json(receptor: Any, steps: Any, any_rc: Callable[..., Any]) -> None:
    receptor.on_version("1.4.9").on("status", steps.go_json(RICH_STATUS))
    result = any_rc(["--socket", receptor.address, "status", "--json"])
    assert result.stdout == json.dumps(RICH_STATUS, indent=4, sort_keys=True) + "\n"
    assert result.exit_code == 0


def test_status_json_escapes_non_ascii(receptor: Any, any_rc: Callable[..., Any]) -> None:
    receptor.on_version("1.4.9").on("status", '{"NodeID":"nœud","TimeStr":"1µs"}\n'.encode())
    result = any_rc(["--socket", receptor.address, "status", "--json"])
    assert result.stdout == '{\n    "NodeID": "n\\u0153ud",\n    "TimeStr": "1\\u00b5s"\n}\n'


def test_status_does_not_change_the_reply() -> None:
    status = json.loads(json.dumps(RICH_STATUS))
    status_lines(status)
    assert status == RICH_STATUS


# -- Go times ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-28T01:15:03.391400144Z", datetime(2026, 11, 28, 1, 15, 3, 391400, tzinfo=UTC)),
        ("2026-11-28T01:15:03Z", datetime(2026, 11, 28, 1, 15, 3, tzinfo=UTC)),
        ("2026-11-28t01:15:03.5z", datetime(2026, 11, 28, 1, 15, 3, 500000, tzinfo=UTC)),
        (
            "2024-10-24T16:36:52.123456789-04:00",
            datetime(2024, 10, 24, 16, 36, 52, 123456, tzinfo=timezone(timedelta(hours=-4))),
        ),
        (
            "2024-10-25T02:06:52.1+05:30",
            datetime(
                2024, 10, 25, 2, 6, 52, 100000, tzinfo=timezone(timedelta(hours=5, minutes=30))
            ),
        ),
        ("0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=UTC)),
    ],
)
def test_go_times(text: str, expected: datetime) -> None:
    parsed = parse_go_time(text)
    assert parsed == expected
    assert parsed.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2026-11-28",
        "2026-11-28T01:15:03",  # no zone
        "2026-11-28T01:15:03.Z",
        "2026-11-28T01:15:03.1234567890Z",  # ten digits
        "2026-13-28T01:15:03Z",
        "2026-02-30T01:15:03Z",
        "2026-11-28T24:15:03Z",
        "2026-11-28T01:15:03+24:00",
        "2026-11-28T01:15:03+01:60",
        "2026-11-28T01:15:03+0100",
        "2026-11-28 01:15:03Z",
        "٢٠٢٦-11-28T01:15:03Z",  # non-ASCII digits
        " 2026-11-28T01:15:03Z",
    ],
)
def test_not_go_times(text: str) -> None:
    with pytest.raises(ValueError, match=r"not an RFC 3339 time"):
        parse_go_time(text)


def _go_format(moment: datetime, digits: int) -> str:
    """Format like Go's RFC3339Nano (fraction with trailing zeros removed)."""
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{moment.microsecond:06d}{'123'}"[:digits].rstrip("0")
    if fraction:
        text += "." + fraction
    offset = moment.utcoffset()
    assert offset is not None
    if not offset:
        return text + "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"{text}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


@given(
    st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31)),
    st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59),
    st.integers(min_value=0, max_value=9),
)
def test_go_times_round_trip(moment: datetime, offset_minutes: int, digits: int) -> None:
    aware = moment.replace(tzinfo=timezone(timedelta(minutes=offset_minutes)))
    parsed = parse_go_time(_go_format(aware, digits))
    assert parsed.strftime("%Y-%m-%d %H:%M:%S") == aware.strftime("%Y-%m-%d %H:%M:%S")
    assert parsed.utcoffset() == aware.utcoffset()
    kept = f"{aware.microsecond:06d}"[: min(digits, 6)]
    assert parsed.microsecond == int(kept.ljust(6, "0"))
