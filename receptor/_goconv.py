"""Go's text conversions, as the upstream configuration parser applies them.

``strconv.ParseInt(s, 0, 64)``, ``strconv.ParseFloat(s, 64)``, ``strconv.Quote``, the cmdline
library's boolean spellings and the ``fmt`` verbs its error messages use (``%s`` of arbitrary
values, ``%v`` and ``%f`` of floats).  Errors are :class:`ValueError` whose text is Go's.

Go works on bytes: a Python string is turned into the bytes Go would have seen (UTF-8, with the
``surrogateescape`` bytes of undecodable command-line arguments restored).
"""

import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

__all__ = [
    "format_float_f",
    "format_float_v",
    "format_s",
    "go_bytes",
    "go_quote",
    "parse_bool",
    "parse_float",
    "parse_int",
    "quote_char",
]

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
UINT64_MAX = (1 << 64) - 1

_TRUE = frozenset(("1", "t", "T", "Y", "true", "TRUE", "True", "yes", "Yes", "YES"))
_FALSE = frozenset(("0", "f", "F", "N", "false", "FALSE", "False", "no", "No", "NO"))

_DIGITS = frozenset(b"0123456789")
_SIMPLE_ESCAPES = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v"}


def go_bytes(s: str) -> bytes:
    """The bytes a Go program would hold for ``s``."""
    try:
        return s.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return s.encode("utf-8", "surrogatepass")


def _escape_rune(code: int) -> str:
    """One rune as ``strconv.Quote`` writes it (quote and backslash handled by the caller)."""
    ch = chr(code)
    if ch.isprintable():
        return ch
    if code in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[code]
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def go_quote(s: str | bytes) -> str:
    """``strconv.Quote``: a double-quoted Go string literal; invalid UTF-8 bytes as ``\\xNN``."""
    raw = s if isinstance(s, bytes) else go_bytes(s)
    out = ['"']
    for ch in raw.decode("utf-8", "surrogateescape"):
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch in '"\\':
            out.append("\\" + ch)
        else:
            out.append(_escape_rune(code))
    out.append('"')
    return "".join(out)


def quote_char(byte: int) -> str:
    """``quoteChar`` of encoding/json: the offending byte of a JSON syntax error."""
    if byte == 0x27:
        return "'\\''"
    if byte == 0x22:
        return "'\"'"
    if byte == 0x5C:
        return "'\\\\'"
    return "'" + _escape_rune(byte) + "'"


def parse_bool(s: str) -> bool:
    """The cmdline library's ``betterParseBool``: stricter than YAML (no ``on``, ``y``)."""
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise ValueError(f"could not parse {s} as boolean")


def _lower(c: int) -> int:
    return c | 0x20


def underscore_ok(s: bytes) -> bool:
    """``strconv.underscoreOK``: underscores only between digits or after a base prefix."""
    saw = "^"
    i = 0
    if s[:1] in (b"-", b"+"):
        s = s[1:]
    hexa = False
    if len(s) >= 2 and s[0] == 0x30 and _lower(s[1]) in b"box":
        i = 2
        saw = "0"
        hexa = _lower(s[1]) == 0x78
    while i < len(s):
        c = s[i]
        i += 1
        if c in _DIGITS or (hexa and 0x61 <= _lower(c) <= 0x66):
            saw = "0"
            continue
        if c == 0x5F:
            if saw != "0":
                return False
            saw = "_"
            continue
        if saw == "_":
            return False
        saw = "!"
    return saw != "_"


def _parse_uint(s: bytes) -> tuple[int, str | None]:
    """``strconv.ParseUint(s, 0, 64)``: (value, None) or (value, "syntax" | "range")."""
    if not s:
        return 0, "syntax"
    s0 = s
    base = 10
    if s[0] == 0x30:
        if len(s) >= 3 and _lower(s[1]) == 0x62:
            base, s = 2, s[2:]
        elif len(s) >= 3 and _lower(s[1]) == 0x6F:
            base, s = 8, s[2:]
        elif len(s) >= 3 and _lower(s[1]) == 0x78:
            base, s = 16, s[2:]
        else:
            base, s = 8, s[1:]
    cutoff = UINT64_MAX // base + 1
    n = 0
    underscores = False
    for c in s:
        if c == 0x5F:
            underscores = True
            continue
        if c in _DIGITS:
            d = c - 0x30
        elif 0x61 <= _lower(c) <= 0x7A:
            d = _lower(c) - 0x61 + 10
        else:
            return 0, "syntax"
        if d >= base:
            return 0, "syntax"
        if n >= cutoff:
            return UINT64_MAX, "range"
        n = n * base + d
        if n > UINT64_MAX:
            return UINT64_MAX, "range"
    if underscores and not underscore_ok(s0):
        return 0, "syntax"
    return n, None


def parse_int(s: str) -> int:
    """``strconv.ParseInt(s, 0, 64)``: base from the prefix (``0x``, ``0o``, ``0b``, leading ``0``
    for octal), underscores between digits, int64 range."""
    raw = go_bytes(s)
    kind: str | None = None
    value = 0
    if not raw:
        kind = "syntax"
    else:
        neg = raw[:1] == b"-"
        body = raw[1:] if raw[:1] in (b"-", b"+") else raw
        un, kind = _parse_uint(body)
        if kind != "syntax":
            if (not neg and un > INT64_MAX) or (neg and un > -INT64_MIN):
                kind = "range"
            else:
                value = -un if neg else un
    if kind is None:
        return value
    reason = "invalid syntax" if kind == "syntax" else "value out of range"
    raise ValueError(f"strconv.ParseInt: parsing {go_quote(raw)}: {reason}")


def parse_uint_ok(s: str) -> int | None:
    """``strconv.ParseUint(s, 0, 64)`` or None on any error (used by the YAML resolver)."""
    value, err = _parse_uint(go_bytes(s))
    return None if err else value


def parse_int_ok(s: str) -> int | None:
    """``strconv.ParseInt(s, 0, 64)`` or None on any error (used by the YAML resolver)."""
    try:
        return parse_int(s)
    except ValueError:
        return None


def _special(s: bytes) -> tuple[float, int] | None:
    """``strconv.special``: inf/infinity (signed) and nan, case-insensitive."""
    if not s:
        return None
    sign = 1.0
    nsign = 0
    body = s
    if s[:1] in (b"+", b"-"):
        sign = -1.0 if s[:1] == b"-" else 1.0
        nsign = 1
        body = s[1:]
    low = body.lower()
    if nsign or low[:1] == b"i":
        n = 0
        while n < len(low) and n < 8 and low[n] == b"infinity"[n]:
            n += 1
        if 3 < n < 8:
            n = 3
        if n in (3, 8):
            return sign * math.inf, nsign + n
        return None
    if low[:3] == b"nan":
        return math.nan, 3
    return None


def _read_float(s: bytes) -> tuple[bool, int, bool]:
    """``strconv.readFloat``: (well-formed, bytes consumed, hexadecimal)."""
    i = 0
    n = len(s)
    underscores = False
    if i >= n:
        return False, i, False
    if s[i] in b"+-":
        i += 1
    base = 10
    exp_char = 0x65
    hexa = False
    if i + 2 < n and s[i] == 0x30 and _lower(s[i + 1]) == 0x78:
        base = 16
        i += 2
        exp_char = 0x70
        hexa = True
    sawdot = False
    sawdigits = False
    while i < n:
        c = s[i]
        if c == 0x5F:
            underscores = True
        elif c == 0x2E:
            if sawdot:
                break
            sawdot = True
        elif c in _DIGITS or (base == 16 and 0x61 <= _lower(c) <= 0x66):
            sawdigits = True
        else:
            break
        i += 1
    if not sawdigits:
        return False, i, hexa
    if i < n and _lower(s[i]) == exp_char:
        i += 1
        if i >= n:
            return False, i, hexa
        if s[i] in b"+-":
            i += 1
        if i >= n or s[i] not in _DIGITS:
            return False, i, hexa
        while i < n and (s[i] in _DIGITS or s[i] == 0x5F):
            if s[i] == 0x5F:
                underscores = True
            i += 1
    elif base == 16:
        return False, i, hexa
    if underscores and not underscore_ok(s[:i]):
        return False, i, hexa
    return True, i, hexa


def parse_float(s: str) -> float:
    """``strconv.ParseFloat(s, 64)``: decimal or hexadecimal (``0x1.8p3``) literals, ``inf``,
    ``infinity`` and ``nan`` in any case; overflow is an error, underflow rounds to zero."""
    raw = go_bytes(s)

    def fail(reason: str) -> ValueError:
        return ValueError(f"strconv.ParseFloat: parsing {go_quote(raw)}: {reason}")

    special = _special(raw)
    if special is not None:
        if special[1] != len(raw):
            raise fail("invalid syntax")
        return special[0]
    ok, used, hexa = _read_float(raw)
    if not ok or used != len(raw):
        raise fail("invalid syntax")
    text = raw.replace(b"_", b"").decode("ascii")
    try:
        value = float.fromhex(text) if hexa else float(text)
    except OverflowError:
        raise fail("value out of range") from None
    if math.isinf(value):
        raise fail("value out of range")
    return value


def parse_float_ok(s: str) -> float | None:
    """``strconv.ParseFloat(s, 64)`` or None on any error (used by the YAML resolver)."""
    try:
        return parse_float(s)
    except ValueError:
        return None


def _shortest_digits(x: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits of a finite non-zero ``abs(x)`` and the position of
    the decimal point relative to the first digit (Go's ``digs.d`` and ``digs.dp``)."""
    _, digit_tuple, exponent = Decimal(repr(abs(x))).as_tuple()
    digits = "".join(map(str, digit_tuple)).lstrip("0")
    stripped = digits.rstrip("0")
    assert isinstance(exponent, int)
    dp = len(digit_tuple) + exponent - (len(digit_tuple) - len(digits))
    return stripped, dp


def format_float_v(x: float) -> str:
    """Go's ``%v`` of a float64 (``strconv.FormatFloat(x, 'g', -1, 64)``): ``1.5``, ``1e+06``."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, x) < 0 else ""
    if x == 0:
        return sign + "0"
    digits, dp = _shortest_digits(x)
    exp = dp - 1
    # Shortest %g: exponent form when exp < -4 or exp >= 6 (Go's eprec for shortest output).
    if exp < -4 or exp >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        esign = "-" if exp < 0 else "+"
        return f"{sign}{mantissa}e{esign}{abs(exp):02d}"
    if dp <= 0:
        return f"{sign}0.{'0' * -dp}{digits}"
    if dp >= len(digits):
        return f"{sign}{digits}{'0' * (dp - len(digits))}"
    return f"{sign}{digits[:dp]}.{digits[dp:]}"


def format_float_f(x: float) -> str:
    """Go's ``%f`` of a float64: six decimals, ``+Inf``/``-Inf``/``NaN`` for the specials."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return f"{x:f}"


def _go_type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if INT64_MIN <= value <= INT64_MAX else "uint64"
    return "float64"


def _sort_key(value: Any) -> tuple[int, Any]:
    """A total order on map keys like Go's ``fmtsort`` (which orders mixed types arbitrarily)."""
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, int):
        return (2, value)
    if isinstance(value, float):
        return (3, (not math.isnan(value), value if not math.isnan(value) else 0.0))
    if isinstance(value, str):
        return (4, value)
    return (5, repr(value))


def sorted_items(mapping: dict[Any, Any]) -> list[tuple[Any, Any]]:
    """Map entries in the order Go's fmt prints them."""
    return sorted(mapping.items(), key=lambda kv: _sort_key(kv[0]))


def render_nested(
    value: Any,
    scalar: Callable[[Any], str],
    brackets: tuple[str, str, str, str],
    item_sep: str,
    key_sep: str,
) -> str:
    """Render nested lists and dicts (dict entries in Go's order) with the given punctuation:
    ``brackets`` = (list open, list close, map open, map close); every other value goes
    through ``scalar``. Iterative, so any nesting the decoders accept is fine."""
    list_open, list_close, map_open, map_close = brackets
    parts: list[str] = []
    stack: list[tuple[bool, Any]] = [(False, value)]
    while stack:
        literal, item = stack.pop()
        if literal:
            parts.append(item)
        elif isinstance(item, list):
            stack.append((True, list_close))
            for index in range(len(item) - 1, -1, -1):
                stack.append((False, item[index]))
                if index:
                    stack.append((True, item_sep))
            stack.append((True, list_open))
        elif isinstance(item, dict):
            entries = sorted_items(item)
            stack.append((True, map_close))
            for index in range(len(entries) - 1, -1, -1):
                key, val = entries[index]
                stack.append((False, val))
                stack.append((True, key_sep))
                stack.append((False, key))
                if index:
                    stack.append((True, item_sep))
            stack.append((True, map_open))
        else:
            parts.append(scalar(item))
    return "".join(parts)


def _format_s_scalar(item: Any) -> str:
    if isinstance(item, str):
        return item
    if item is None:
        return "%!s(<nil>)"
    if isinstance(item, bool):
        return f"%!s(bool={'true' if item else 'false'})"
    if isinstance(item, int):
        return f"%!s({_go_type_name(item)}={item})"
    if isinstance(item, float):
        return f"%!s(float64={format_float_v(item)})"
    return f"%!s({type(item).__name__}={item!r})"


def format_s(value: Any) -> str:
    """Go's ``%s`` of a value decoded from YAML or JSON: ``map[a:b]``, ``[x y]``,
    ``%!s(int=5)``, ``%!s(float64=1.5)``, ``%!s(bool=true)``, ``%!s(<nil>)``."""
    return render_nested(value, _format_s_scalar, ("[", "]", "map[", "]"), " ", ":")
