"""Go ``time.Duration`` parsing and formatting.

Receptor configuration values such as ``maxidleconnectiontimeout`` and ``tokenexpiration`` are
parsed by the upstream daemon with Go's ``time.ParseDuration``, and durations are printed with
``Duration.String()`` (e.g. in the control ``status`` output).  Both are reproduced here exactly,
including Go's error texts and its overflow rules.  Durations are integer nanoseconds.
"""

__all__ = ["MAX_DURATION", "MIN_DURATION", "format_duration", "parse_duration"]

MAX_DURATION = (1 << 63) - 1
MIN_DURATION = -(1 << 63)

_NANOSECOND = 1
_MICROSECOND = 1000 * _NANOSECOND
_MILLISECOND = 1000 * _MICROSECOND
_SECOND = 1000 * _MILLISECOND
_MINUTE = 60 * _SECOND
_HOUR = 60 * _MINUTE

_UNITS: dict[bytes, int] = {
    b"ns": _NANOSECOND,
    b"us": _MICROSECOND,
    "\u00b5s".encode(): _MICROSECOND,  # micro sign
    "\u03bcs".encode(): _MICROSECOND,  # Greek small letter mu
    b"ms": _MILLISECOND,
    b"s": _SECOND,
    b"m": _MINUTE,
    b"h": _HOUR,
}

_LIMIT = 1 << 63
_DIGITS = b"0123456789"


def _quote(raw: bytes) -> str:
    """The ``quote`` helper of Go's time package: ASCII kept, anything else as ``\\xNN``."""
    out = ['"']
    text = raw.decode("utf-8", "surrogateescape")
    i = 0
    for ch in text:
        width = len(ch.encode("utf-8", "surrogateescape"))
        code = ord(ch)
        if code >= 0x80 or code < 0x20:
            out.extend(f"\\x{b:02x}" for b in raw[i : i + width])
        else:
            if ch in '"\\':
                out.append("\\")
            out.append(ch)
        i += width
    out.append('"')
    return "".join(out)


def _invalid(orig: bytes) -> ValueError:
    return ValueError(f"time: invalid duration {_quote(orig)}")


def parse_duration(s: str) -> int:
    """Parse a duration like ``"1.5h"``, ``"-2m3s"`` or ``"300ms"`` into nanoseconds.

    Same grammar and errors as Go's ``time.ParseDuration``: a possibly signed sequence of
    decimal numbers, each with an optional fraction and a unit (``ns``, ``us``/``µs``/``μs``,
    ``ms``, ``s``, ``m``, ``h``); the bare string ``"0"`` is zero.  Raises :class:`ValueError`
    with Go's message (``time: invalid duration "x"``, ``time: missing unit in duration "1"``,
    ``time: unknown unit "d" in duration "1d"``).
    """
    orig = s.encode("utf-8", "surrogateescape")
    rest = orig
    neg = False
    if rest[:1] in (b"-", b"+"):
        neg = rest[:1] == b"-"
        rest = rest[1:]
    if rest == b"0":
        return 0
    if not rest:
        raise _invalid(orig)
    total = 0
    while rest:
        if rest[0] != 0x2E and rest[0] not in _DIGITS:
            raise _invalid(orig)
        # Leading integer: Go refuses one that overflows.
        i = 0
        whole = 0
        while i < len(rest) and rest[i] in _DIGITS:
            if whole > _LIMIT // 10:
                raise _invalid(orig)
            whole = whole * 10 + rest[i] - 0x30
            if whole > _LIMIT:
                raise _invalid(orig)
            i += 1
        pre = i > 0
        rest = rest[i:]
        # Fraction: precision simply stops accumulating on overflow.
        frac = 0
        scale = 1.0
        post = False
        if rest[:1] == b".":
            rest = rest[1:]
            i = 0
            overflow = False
            while i < len(rest) and rest[i] in _DIGITS:
                if not overflow:
                    if frac > (_LIMIT - 1) // 10:
                        overflow = True
                    else:
                        nxt = frac * 10 + rest[i] - 0x30
                        if nxt > _LIMIT:
                            overflow = True
                        else:
                            frac = nxt
                            scale *= 10
                i += 1
            post = i > 0
            rest = rest[i:]
        if not pre and not post:
            raise _invalid(orig)
        i = 0
        while i < len(rest) and rest[i] != 0x2E and rest[i] not in _DIGITS:
            i += 1
        if i == 0:
            raise ValueError(f"time: missing unit in duration {_quote(orig)}")
        unit_name = rest[:i]
        rest = rest[i:]
        unit = _UNITS.get(unit_name)
        if unit is None:
            raise ValueError(f"time: unknown unit {_quote(unit_name)} in duration {_quote(orig)}")
        if whole > _LIMIT // unit:
            raise _invalid(orig)
        value = whole * unit
        if frac > 0:
            # Go computes the fraction in float64 (exact to the nanosecond for hours).
            value += int(float(frac) * (float(unit) / scale))
            if value > _LIMIT:
                raise _invalid(orig)
        total += value
        if total > _LIMIT:
            raise _invalid(orig)
    if neg:
        return -total
    if total > MAX_DURATION:
        raise _invalid(orig)
    return total


def _frac(value: int, prec: int) -> tuple[str, int]:
    """Go's ``fmtFrac``: ``.digits`` of value/10**prec without trailing zeros, and the quotient."""
    digits = []
    printing = False
    for _ in range(prec):
        digit = value % 10
        printing = printing or digit != 0
        if printing:
            digits.append(chr(0x30 + digit))
        value //= 10
    if not printing:
        return "", value
    return "." + "".join(reversed(digits)), value


def format_duration(ns: int) -> str:
    """Format nanoseconds like Go's ``Duration.String()``: ``0s``, ``1.5µs``, ``-2h3m4.5s``.

    The microsecond unit is written with U+00B5 (micro sign), as Go does.  Values outside the
    int64 range raise :class:`ValueError`.
    """
    if not MIN_DURATION <= ns <= MAX_DURATION:
        raise ValueError(f"duration {ns} out of range")
    u = -ns if ns < 0 else ns
    if u < _SECOND:
        if u == 0:
            return "0s"
        if u < _MICROSECOND:
            prec, unit = 0, "ns"
        elif u < _MILLISECOND:
            prec, unit = 3, "\u00b5s"
        else:
            prec, unit = 6, "ms"
        frac, u = _frac(u, prec)
        text = f"{u}{frac}{unit}"
    else:
        frac, u = _frac(u, 9)
        text = f"{u % 60}{frac}s"
        u //= 60
        if u > 0:
            text = f"{u % 60}m{text}"
            u //= 60
            if u > 0:
                text = f"{u}h{text}"
    return "-" + text if ns < 0 else text
