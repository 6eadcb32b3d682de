"""``notbefore`` / ``notafter``: Go's ``time.Parse(time.RFC3339, s)`` with its error texts.

Upstream prints Go's parse error verbatim (certs.md §1, e.g. ``parsing time "2024-01-01" as
"2006-01-02T15:04:05Z07:00": cannot parse "" as "T"``), so the layout is walked element by
element exactly as Go's generic parser does it, and each failure names the same element.
"""

import calendar
from datetime import UTC, datetime, timedelta, timezone

from receptor.certificates._pem import CertError

__all__ = ["parse_rfc3339"]

_LAYOUT = "2006-01-02T15:04:05Z07:00"
#: The layout as Go splits it: (literal prefix, element).
_CHUNKS = [
    ("", "2006"),
    ("-", "01"),
    ("-", "02"),
    ("T", "15"),
    (":", "04"),
    (":", "05"),
    ("", "Z07:00"),
]


def _quote(text: str) -> str:
    """Go's ``time`` package quoting: bytes outside printable ASCII become ``\\xNN``."""
    out = ['"']
    for char in text:
        if ord(char) < 0x20 or ord(char) >= 0x80:
            out.extend(f"\\x{b:02x}" for b in char.encode("utf-8", "surrogateescape"))
        else:
            out.append("\\" + char if char in '"\\' else char)
    out.append('"')
    return "".join(out)


class _Bad(Exception):
    """The element could not be parsed (Go's ``errBad``)."""


def _getnum(value: str, fixed: bool) -> tuple[int, str]:
    if not value[:1].isascii() or not value[:1].isdigit():
        raise _Bad
    if len(value) < 2 or not value[1].isascii() or not value[1].isdigit():
        if fixed:
            raise _Bad
        return int(value[0]), value[1:]
    return int(value[:2]), value[2:]


def _is_digit(value: str, index: int) -> bool:
    return len(value) > index and "0" <= value[index] <= "9"


class _Fields:
    def __init__(self) -> None:
        self.year = self.month = self.day = self.hour = self.minute = self.second = 0
        self.nanos = 0
        self.offset = 0


def _element(std: str, value: str, fields: _Fields) -> tuple[str, str]:
    """Parse one layout element; returns (rest, range error name or "")."""
    if std == "2006":
        if len(value) < 4 or not _is_digit(value, 0):
            raise _Bad
        digits, value = value[:4], value[4:]
        if not digits.isascii() or not digits.isdigit():
            raise _Bad
        fields.year = int(digits)
        return value, ""
    if std == "01":
        fields.month, value = _getnum(value, True)
        return value, "month" if not 1 <= fields.month <= 12 else ""
    if std == "02":
        fields.day, value = _getnum(value, True)
        return value, ""
    if std == "15":
        fields.hour, value = _getnum(value, False)
        return value, "hour" if fields.hour >= 24 else ""
    if std == "04":
        fields.minute, value = _getnum(value, True)
        return value, "minute" if fields.minute >= 60 else ""
    if std == "05":
        fields.second, value = _getnum(value, True)
        if fields.second >= 60:
            return value, "second"
        if len(value) >= 2 and value[0] in ".," and _is_digit(value, 1):
            end = 2
            while _is_digit(value, end):
                end += 1
            digits = value[1 : min(end, 10)]
            fields.nanos = int(digits) * 10 ** (9 - len(digits))
            value = value[end:]
        return value, ""
    # Z07:00
    if value[:1] == "Z":
        return value[1:], ""
    if len(value) < 6 or value[3] != ":":
        raise _Bad
    sign, hours, minutes, value = value[0], value[1:3], value[4:6], value[6:]
    hour = minute = 0
    bad = sign not in "+-"
    try:
        hour, _ = _getnum(hours, True)
        minute, _ = _getnum(minutes, True)
    except _Bad:
        bad = True
    out_of_range = ""
    if hour > 24:
        out_of_range = "time zone offset hour"
    if minute > 60:
        out_of_range = "time zone offset minute"
    if bad and not out_of_range:
        raise _Bad
    fields.offset = (hour * 60 + minute) * 60 * (-1 if sign == "-" else 1)
    return value, out_of_range


def parse_rfc3339(text: str) -> datetime:
    """An aware datetime (whole seconds kept, fraction truncated to microseconds)."""
    value = text
    fields = _Fields()
    for prefix, std in _CHUNKS:
        if not value.startswith(prefix):
            raise _error(text, prefix, value)
        value = value[len(prefix) :]
        hold = value
        try:
            value, out_of_range = _element(std, value, fields)
        except _Bad:
            raise _error(text, std, hold) from None
        if out_of_range:
            raise CertError(f"parsing time {_quote(text)}: {out_of_range} out of range")
    if value:
        raise CertError(f"parsing time {_quote(text)}: extra text: {_quote(value)}")
    if not 1 <= fields.day <= _days_in(fields.month, fields.year):
        raise CertError(f"parsing time {_quote(text)}: day out of range")
    try:
        moment = datetime(
            fields.year,
            fields.month,
            fields.day,
            fields.hour,
            fields.minute,
            fields.second,
            fields.nanos // 1000,
            tzinfo=timezone(timedelta(seconds=fields.offset)),
        )
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise CertError(f"time {_quote(text)} is outside the supported range") from None


def _days_in(month: int, year: int) -> int:
    if year == 0:
        year = 2000  # a leap year like year 0 of the proleptic calendar
    return calendar.monthrange(year, month)[1]


def _error(text: str, element: str, value: str) -> CertError:
    return CertError(
        f"parsing time {_quote(text)} as {_quote(_LAYOUT)}: cannot parse {_quote(value)} "
        f"as {_quote(element)}"
    )
