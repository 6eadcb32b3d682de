"""Timestamps as Go's ``time.Time`` writes them in JSON (RFC 3339 with nanoseconds).

A timestamp is kept as ``(unix_ns, offset_seconds)``: the instant, exact to the nanosecond,
and the zone offset it was written with, so that a time read from a peer is written back
the way Go would write it and compared at nanosecond precision.
"""

import re
import time
from datetime import UTC, datetime, timedelta, timezone

#: Compiled by ``re`` on first use (and cached there), not at import.
_RFC3339 = (
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)
_NS = 1_000_000_000


def now() -> tuple[int, int]:
    """The current instant with the local zone offset."""
    ns = time.time_ns()
    return ns, time.localtime(ns // _NS).tm_gmtoff


def format_rfc3339nano(stamp: tuple[int, int]) -> str:
    """Go's RFC3339Nano: trailing fractional zeros trimmed, ``Z`` for a zero offset."""
    unix_ns, offset = stamp
    seconds, fraction = divmod(unix_ns, _NS)
    moment = datetime.fromtimestamp(seconds, UTC) + timedelta(seconds=offset)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    if offset == 0:
        return text + "Z"
    sign = "+" if offset > 0 else "-"
    hours, minutes = divmod(abs(offset) // 60, 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


def parse_rfc3339(text: str) -> tuple[int, int]:
    """Parse an RFC 3339 timestamp into ``(unix_ns, offset)``; ``ValueError`` otherwise."""
    moment, fraction = _parse(text)
    offset = moment.utcoffset()
    assert offset is not None
    return int(moment.timestamp()) * _NS + fraction, int(offset.total_seconds())


def parse_datetime(text: str) -> datetime:
    """Parse an RFC 3339 timestamp into an aware datetime in its own zone offset.

    Fractions beyond microseconds are truncated (datetime holds no more).
    """
    moment, fraction = _parse(text)
    return moment.replace(microsecond=fraction // 1000)


def _parse(text: str) -> tuple[datetime, int]:
    match = re.fullmatch(_RFC3339, text, re.ASCII)
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction = int((match.group(7) or "0").ljust(9, "0"))
    offset = 0
    if match.group(9):
        hours, minutes = int(match.group(10)), int(match.group(11))
        if hours > 23 or minutes > 59:
            raise ValueError(f"not an RFC 3339 time: {text!r}")
        offset = (hours * 60 + minutes) * 60 * (1 if match.group(9) == "+" else -1)
    try:
        zone = UTC if match.group(8) else timezone(timedelta(seconds=offset))
        return datetime(year, month, day, hour, minute, second, tzinfo=zone), fraction
    except ValueError:
        raise ValueError(f"not an RFC 3339 time: {text!r}") from None
