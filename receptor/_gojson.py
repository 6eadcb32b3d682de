"""JSON as Go's ``encoding/json`` writes and reads it.

Upstream peers and clients compare some of these bytes exactly (golden captures), so the
encoder reproduces Go's choices: compact separators, ``<``, ``>``, ``&``, U+2028 and U+2029
escaped as ``\\u003c`` and so on, floats in Go's shortest form (``1`` for 1.0, ``1e+21``,
``1e-7``), and key order as given by the caller (Go sorts map keys and keeps struct field
order; callers pass dicts in the order Go would write them).

The decoder is the stdlib one, made strict where Go is: no ``NaN``/``Infinity`` literals, no
numbers that overflow a float64.
"""

import json
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from receptor._goconv import go_bytes, quote_char

_ENCODE_STRING = json.JSONEncoder(ensure_ascii=False).encode
_GO_ESCAPES = str.maketrans(
    {
        "<": "\\u003c",
        ">": "\\u003e",
        "&": "\\u0026",
        "\u2028": "\\u2028",
        "\u2029": "\\u2029",
        "\b": "\\u0008",
        "\f": "\\u000c",
    }
)


def format_float(value: float) -> str:
    """Format a float64 as Go's encoding/json does (strconv 'f' or 'e', shortest digits)."""
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"json: unsupported value: {value!r}")
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        mantissa, _, exponent = repr(value).partition("e")
        if mantissa.endswith(".0"):
            mantissa = mantissa[:-2]
        exp = int(exponent)
        # Go writes at least two exponent digits, then trims "e-07" to "e-7".
        return f"{mantissa}e+{exp:02d}" if exp >= 0 else f"{mantissa}e-{-exp}"
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def format_string(value: str) -> str:
    """A JSON string literal with Go's escaping."""
    return _ENCODE_STRING(value).translate(_GO_ESCAPES)


def dumps(value: Any) -> str:
    """Encode ``value`` compactly, Go style. Dict keys keep the caller's order."""
    parts: list[str] = []
    _encode(value, parts)
    return "".join(parts)


def _encode(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(format_string(value))
    elif isinstance(value, int):
        out.append(str(int(value)))
    elif isinstance(value, float):
        out.append(format_float(value))
    elif isinstance(value, Mapping):
        out.append("{")
        first = True
        for key, item in value.items():
            if not first:
                out.append(",")
            first = False
            out.append(format_string(str(key)))
            out.append(":")
            _encode(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"json: cannot unmarshal number {text} into a float64 (out of range)")
    return value


_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def loads(text: str | bytes) -> Any:
    """Decode JSON strictly: raises ``ValueError`` for anything Go's decoder would refuse.

    Integers are kept exact (epochs exceed 2**53); floats that overflow are refused; deep
    nesting that exhausts the recursion limit is reported as a ValueError too.
    """
    if isinstance(text, bytes | bytearray | memoryview):
        # Go's decoder replaces invalid UTF-8 with U+FFFD rather than failing.
        text = bytes(text).decode("utf-8", errors="replace")
    try:
        return _DECODER.decode(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


# --------------------------------------------------------------------------- Go's decoder
# Go's scanner reproduced, for input whose error text reaches a user (control commands,
# JSON values on the command line). Iterative, so hostile nesting cannot exhaust the stack;
# like Go it refuses more than 10000 levels.

_MAX_DEPTH = 10000
_SPACE = frozenset(b" \t\r\n")
_DIGITS = frozenset(b"0123456789")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_SIMPLE_ESCAPES = {
    0x62: "\b",
    0x66: "\f",
    0x6E: "\n",
    0x72: "\r",
    0x74: "\t",
    0x5C: "\\",
    0x2F: "/",
    0x22: '"',
}
_LITERALS = {0x74: (b"true", True), 0x66: (b"false", False), 0x6E: (b"null", None)}


class _Eof(Exception):
    """The input ended in the middle of a value."""


def _syntax(c: int, context: str) -> ValueError:
    return ValueError(f"invalid character {quote_char(c)} {context}")


def _unquote(raw: bytes) -> str:
    """Go's ``unquote`` of a scanned string body: escapes, surrogate pairs, and U+FFFD for each
    invalid UTF-8 byte or unpaired surrogate."""
    parts: list[str] = []
    i = 0
    n = len(raw)
    while i < n:
        j = raw.find(b"\\", i)
        chunk = raw[i:] if j < 0 else raw[i:j]
        text = chunk.decode("utf-8", "surrogateescape")
        parts.append("".join("\ufffd" if 0xDC80 <= ord(ch) <= 0xDCFF else ch for ch in text))
        if j < 0:
            break
        esc = raw[j + 1]
        if esc != 0x75:
            parts.append(_SIMPLE_ESCAPES[esc])
            i = j + 2
            continue
        code = int(raw[j + 2 : j + 6], 16)
        i = j + 6
        if 0xD800 <= code < 0xDC00:
            if raw[i : i + 2] == b"\\u":
                low = int(raw[i + 2 : i + 6], 16)
                if 0xDC00 <= low < 0xE000:
                    parts.append(chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)))
                    i += 6
                    continue
            parts.append("\ufffd")
        elif 0xDC00 <= code < 0xE000:
            parts.append("\ufffd")
        else:
            parts.append(chr(code))
    return "".join(parts)


class _Scanner:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.number_error: ValueError | None = None

    def peek_nonspace(self) -> int:
        data = self.data
        while self.pos < len(data) and data[self.pos] in _SPACE:
            self.pos += 1
        if self.pos >= len(data):
            raise _Eof
        return data[self.pos]

    def take(self) -> int:
        """The next byte; at the end of input Go's scanner is fed a space, which either
        completes the value or is the offending character."""
        if self.pos >= len(self.data):
            return 0x20
        c = self.data[self.pos]
        self.pos += 1
        return c

    def string(self) -> str:
        """Scan a string whose opening quote was consumed."""
        start = self.pos
        data = self.data
        while True:
            if self.pos >= len(data):
                raise _Eof
            c = data[self.pos]
            self.pos += 1
            if c == 0x22:
                return _unquote(self.data[start : self.pos - 1])
            if c == 0x5C:
                e = self.take()
                if e == 0x75:
                    for _ in range(4):
                        h = self.take()
                        if h not in _HEX:
                            raise _syntax(h, "in \\u hexadecimal character escape")
                elif e not in _SIMPLE_ESCAPES:
                    raise _syntax(e, "in string escape code")
            elif c < 0x20:
                raise _syntax(c, "in string literal")

    def number(self) -> float | None:
        """Scan a number whose first byte is at ``pos``."""
        data = self.data
        start = self.pos

        def digits() -> None:
            while self.pos < len(data) and data[self.pos] in _DIGITS:
                self.pos += 1

        if data[self.pos] == 0x2D:
            self.pos += 1
            if self.pos >= len(data) or data[self.pos] not in _DIGITS:
                raise _syntax(self.take(), "in numeric literal")
        if data[self.pos] == 0x30:
            self.pos += 1
        else:
            digits()
        if self.pos < len(data) and data[self.pos] == 0x2E:
            self.pos += 1
            c = self.take()
            if c not in _DIGITS:
                raise _syntax(c, "after decimal point in numeric literal")
            digits()
        if self.pos < len(data) and data[self.pos] in b"eE":
            self.pos += 1
            c = self.take()
            if c in b"+-":
                c = self.take()
            if c not in _DIGITS:
                raise _syntax(c, "in exponent of numeric literal")
            digits()
        text = data[start : self.pos].decode("ascii")
        value = float(text)
        if value in (float("inf"), float("-inf")):
            if self.number_error is None:
                self.number_error = ValueError(
                    f"json: cannot unmarshal number {text} into Go value of type float64"
                )
            return None
        return value

    def literal(self) -> Any:
        first = self.data[self.pos]
        word, value = _LITERALS[first]
        self.pos += 1
        for expected in word[1:]:
            c = self.take()
            if c != expected:
                raise _syntax(c, f"in literal {word.decode()} (expecting {quote_char(expected)})")
        return value


def decode_go(text: str | bytes) -> Any:
    """Decode ``text`` as ``json.Unmarshal`` into an ``interface{}`` would: numbers become
    floats, and :class:`ValueError` carries Go's message (``invalid character 'x' looking for
    beginning of value``, ``unexpected end of JSON input``)."""
    sc = _Scanner(text if isinstance(text, bytes) else go_bytes(text))
    data = sc.data
    # Each open container: [container, pending key (objects only)].
    stack: list[list[Any]] = []
    result: Any = None
    try:
        while True:
            # Expect a value.
            c = sc.peek_nonspace()
            value: Any
            if c == 0x7B or c == 0x5B:
                if len(stack) >= _MAX_DEPTH:
                    raise _syntax(c, "exceeded max depth")
                sc.pos += 1
                container: Any = {} if c == 0x7B else []
                close = 0x7D if c == 0x7B else 0x5D
                nxt = sc.peek_nonspace()
                if nxt == close:
                    sc.pos += 1
                    value = container
                else:
                    if c == 0x7B:
                        if nxt != 0x22:
                            raise _syntax(nxt, "looking for beginning of object key string")
                        sc.pos += 1
                        key = sc.string()
                        colon = sc.peek_nonspace()
                        if colon != 0x3A:
                            raise _syntax(colon, "after object key")
                        sc.pos += 1
                        stack.append([container, key])
                    else:
                        stack.append([container, None])
                    continue
            elif c == 0x22:
                sc.pos += 1
                value = sc.string()
            elif c == 0x2D or c in _DIGITS:
                value = sc.number()
            elif c in _LITERALS:
                value = sc.literal()
            else:
                raise _syntax(c, "looking for beginning of value")
            # A value is complete: store it and close finished containers.
            while True:
                if not stack:
                    result = value
                    while sc.pos < len(data):
                        c = data[sc.pos]
                        if c not in _SPACE:
                            raise _syntax(c, "after top-level value")
                        sc.pos += 1
                    if sc.number_error is not None:
                        raise sc.number_error
                    return result
                frame = stack[-1]
                container = frame[0]
                if isinstance(container, dict):
                    container[frame[1]] = value
                    c = sc.peek_nonspace()
                    if c == 0x2C:
                        sc.pos += 1
                        nxt = sc.peek_nonspace()
                        if nxt != 0x22:
                            raise _syntax(nxt, "looking for beginning of object key string")
                        sc.pos += 1
                        frame[1] = sc.string()
                        colon = sc.peek_nonspace()
                        if colon != 0x3A:
                            raise _syntax(colon, "after object key")
                        sc.pos += 1
                        break
                    if c != 0x7D:
                        raise _syntax(c, "after object key:value pair")
                else:
                    container.append(value)
                    c = sc.peek_nonspace()
                    if c == 0x2C:
                        sc.pos += 1
                        break
                    if c != 0x5D:
                        raise _syntax(c, "after array element")
                sc.pos += 1
                stack.pop()
                value = container
    except _Eof:
        raise ValueError("unexpected end of JSON input") from None
