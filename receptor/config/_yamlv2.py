"""Configuration files read as ``gopkg.in/yaml.v2`` (v2.4.0) reads them.

The upstream daemon unmarshals a config file into a Go ``[]interface{}``.  What a scalar becomes
there differs from PyYAML's YAML 1.1 resolver (``y``/``n`` are booleans, ``1e3`` and ``08`` are
floats, base-60 numbers do not exist, timestamps stay strings...), and so do the error texts.
So PyYAML is used only as a tokenizer: libyaml's event parser (``CSafeLoader``) when present,
whose error texts are yaml.v2's own (yaml.v2 is a port of libyaml), else the pure-Python parser
with its messages translated.  From the events a node graph is composed and decoded here, with
yaml.v2's resolution rules, merge keys (``<<``), aliases and its guard against alias bombs
("document contains excessive aliasing").  Composing and decoding are iterative, so deep
nesting cannot exhaust the Python stack; more than 1000 levels are refused, as libyaml does
(yaml.v2 allows 10000).

Values come out as Python ``str``, ``int`` (Go ``int``, or ``uint64`` above the int64 range),
``float``, ``bool``, ``None``, ``list`` and ``dict`` (keys of any scalar type).
"""

import base64
import binascii
import errno
import os
import re
from typing import Any

import yaml

from receptor._goconv import format_s, parse_float_ok, parse_int_ok, parse_uint_ok

__all__ = ["MAX_CONFIG_BYTES", "YamlError", "decode_config", "read_config_file"]

#: Largest configuration file accepted (upstream has no limit; a config is a few kilobytes).
MAX_CONFIG_BYTES = 16 * 1024 * 1024

# libyaml's own limit (yaml.v2 allows 10000 levels; no config comes near either).
_MAX_DEPTH = 1000
_TAG_PREFIX = "tag:yaml.org,2002:"
_STR = _TAG_PREFIX + "str"
_INT = _TAG_PREFIX + "int"
_FLOAT = _TAG_PREFIX + "float"
_BOOL = _TAG_PREFIX + "bool"
_NULL = _TAG_PREFIX + "null"
_TIMESTAMP = _TAG_PREFIX + "timestamp"
_BINARY = _TAG_PREFIX + "binary"
_MERGE = _TAG_PREFIX + "merge"
_MAP = _TAG_PREFIX + "map"
_SEQ = _TAG_PREFIX + "seq"
_RESOLVABLE = frozenset(("", _STR, _BOOL, _INT, _FLOAT, _TIMESTAMP))


def _resolve_map() -> dict[str, tuple[str, Any]]:
    """yaml.v2's table of special spellings (its YAML 1.1 booleans include y/n and on/off)."""
    table: dict[str, tuple[str, Any]] = {}
    for value, tag, spellings in (
        (True, _BOOL, ("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON")),
        (
            False,
            _BOOL,
            ("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"),
        ),
        (None, _NULL, ("", "~", "null", "Null", "NULL")),
        (float("nan"), _FLOAT, (".nan", ".NaN", ".NAN")),
        (float("inf"), _FLOAT, (".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF")),
        (float("-inf"), _FLOAT, ("-.inf", "-.Inf", "-.INF")),
        ("<<", _MERGE, ("<<",)),
    ):
        table.update(dict.fromkeys(spellings, (tag, value)))
    return table


_RESOLVE_MAP = _resolve_map()

_HINTS: dict[str, str] = {"+": "S", "-": "S", ".": "."}
_HINTS.update(dict.fromkeys("0123456789", "D"))
_HINTS.update(dict.fromkeys("yYnNtTfFoO~", "M"))

_YAML_STYLE_FLOAT = r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z"  # re caches it
_DATE = r"([0-9]{4})-([0-9][0-9]?)-([0-9][0-9]?)"
_TIME = r"([0-9][0-9]?):([0-9][0-9]?):([0-9][0-9]?)(?:[.,][0-9]+)?"
_TIMESTAMP_FORMATS = (
    re.compile(_DATE + r"[Tt]" + _TIME + r"(Z|[-+]([0-9]{2}):([0-9]{2}))\Z"),
    re.compile(_DATE + " " + _TIME + r"\Z"),
    re.compile(_DATE + r"\Z"),
)

# Pure-Python PyYAML problems, as libyaml (and so yaml.v2) words them.
_PURE_PROBLEMS = (
    (re.compile(r"expected ',' or '\]'"), "did not find expected ',' or ']'"),
    (re.compile(r"expected ',' or '\}'"), "did not find expected ',' or '}'"),
    (re.compile(r"expected the node content"), "did not find expected node content"),
    (re.compile(r"expected '<document start>'"), "did not find expected <document start>"),
    (
        re.compile(r"mapping values are not allowed"),
        "mapping values are not allowed in this context",
    ),
    (
        re.compile(r"sequence entries are not allowed"),
        "block sequence entries are not allowed in this context",
    ),
    (
        re.compile(r"found character .* that cannot start any token"),
        "found character that cannot start any token",
    ),
    (re.compile(r"found unknown escape character"), "found unknown escape character"),
    (re.compile(r"expected escape sequence of"), "did not find expected hexdecimal number"),
    (re.compile(r"found unexpected document separator"), "found unexpected document indicator"),
    (
        re.compile(r"expected alphabetic or numeric character"),
        "did not find expected alphabetic or numeric character",
    ),
    (
        re.compile(r"expected a comment or a line break"),
        "did not find expected comment or line break",
    ),
    (re.compile(r"expected ' ', but found"), "did not find expected whitespace or line break"),
    (re.compile(r"expected '!', but found"), "did not find expected '!'"),
    (re.compile(r"expected URI, but found"), "did not find expected tag URI"),
    (re.compile(r"expected '>', but found"), "did not find the expected '>'"),
    (re.compile(r"expected URI escape sequence"), "did not find URI escaped octet"),
    (re.compile(r"found undefined tag handle"), "found undefined tag handle"),
    (re.compile(r"found duplicate YAML directive"), "found duplicate %YAML directive"),
    (re.compile(r"found incompatible YAML document"), "found incompatible YAML document"),
    (re.compile(r"duplicate tag handle"), "found duplicate %TAG directive"),
)
_PURE_READER = (
    ("special characters are not allowed", "control characters are not allowed"),
    ("invalid start byte", "invalid leading UTF-8 octet"),
    ("invalid continuation byte", "invalid trailing UTF-8 octet"),
    ("unexpected end of data", "incomplete UTF-8 octet sequence"),
)


class YamlError(ValueError):
    """A file that yaml.v2 would refuse; the text is yaml.v2's (``yaml: line 4: ...``)."""


def _fail(message: str) -> YamlError:
    return YamlError("yaml: " + message)


def read_config_file(path: str) -> bytes:
    """Read a config file; errors worded like Go's ``ioutil.ReadFile`` (``open x: no such file or
    directory``), plus a size limit of :data:`MAX_CONFIG_BYTES`."""

    def os_error(op: str, exc: OSError) -> ValueError:
        text = os.strerror(exc.errno) if exc.errno else str(exc)
        return ValueError(f"{op} {path}: {text[:1].lower()}{text[1:]}")

    try:
        handle = open(path, "rb")  # noqa: SIM115 - the two error kinds need separate handling
    except IsADirectoryError as exc:
        raise os_error("read", exc) from None
    except OSError as exc:
        raise os_error("open", exc) from None
    except ValueError:
        raise ValueError(f"open {path}: {os.strerror(errno.EINVAL).lower()}") from None
    with handle:
        try:
            data = handle.read(MAX_CONFIG_BYTES + 1)
        except OSError as exc:
            raise os_error("read", exc) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ValueError(f"read {path}: file too large (more than {MAX_CONFIG_BYTES} bytes)")
    return data


class _Node:
    __slots__ = ("children", "kind", "line", "plain", "tag", "target", "value")

    SCALAR, SEQUENCE, MAPPING, ALIAS = range(4)

    def __init__(self, kind: int, line: int, tag: str, value: str = "", plain: bool = False):
        self.kind = kind
        self.line = line
        self.tag = tag
        self.value = value
        self.plain = plain
        self.children: list[_Node] = []
        self.target: _Node | None = None


def _translate(exc: yaml.YAMLError, pure: bool) -> YamlError:
    """The yaml.v2 message for a parse error raised by PyYAML."""
    if isinstance(exc, yaml.reader.ReaderError):
        reason = str(exc.reason)
        if pure:
            for needle, replacement in _PURE_READER:
                if needle in reason:
                    reason = replacement
                    break
        return _fail(reason)
    if not isinstance(exc, yaml.MarkedYAMLError):
        return _fail(str(exc))
    problem = exc.problem or ""
    if pure:
        for pattern, text in _PURE_PROBLEMS:
            if pattern.search(problem):
                problem = text
                break
        else:
            if problem.startswith("expected <block end>"):
                if (exc.context or "").startswith("while parsing a block mapping"):
                    problem = "did not find expected key"
                else:
                    problem = "did not find expected '-' indicator"
            else:
                problem = re.sub(r", but (found|got) .*\Z", "", problem, flags=re.S)
    # yaml.v2's parser.fail(): the problem line (0-based, +1 for scanner errors only), else
    # the context line.
    scanner = isinstance(exc, yaml.scanner.ScannerError)
    problem_line = exc.problem_mark.line if exc.problem_mark is not None else 0
    context_line = exc.context_mark.line if exc.context_mark is not None else 0
    line = 0
    if problem_line != 0:
        line = problem_line + 1 if scanner else problem_line
    elif context_line != 0:
        line = context_line
    where = f"line {line}: " if line else ""
    return _fail(where + (problem or "unknown problem parsing YAML content"))


def _loader() -> tuple[type, bool]:
    loader = getattr(yaml, "CSafeLoader", None)
    if loader is not None:
        return loader, False
    return yaml.SafeLoader, True


def _compose(data: bytes, pure: bool | None = None) -> _Node | None:
    """The node graph of the first document, as yaml.v2's parser builds it."""
    if pure is None:
        loader_class, pure = _loader()
    else:
        loader_class = yaml.SafeLoader if pure else yaml.CSafeLoader
    anchors: dict[str, _Node] = {}
    stack: list[_Node] = []
    root: _Node | None = None
    loader = None
    try:
        loader = loader_class(data)
        while True:
            event = loader.get_event()
            if isinstance(event, yaml.StreamEndEvent | yaml.DocumentEndEvent):
                return root
            if isinstance(event, yaml.StreamStartEvent | yaml.DocumentStartEvent):
                continue
            if isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
                stack.pop()
                continue
            line = event.start_mark.line if event.start_mark is not None else 0
            if isinstance(event, yaml.AliasEvent):
                name = event.anchor or ""
                target = anchors.get(name)
                if target is None:
                    raise _fail(f"unknown anchor '{name}' referenced")
                node = _Node(_Node.ALIAS, line, "", name)
                node.target = target
            else:
                tag = event.tag or ""
                if isinstance(event, yaml.ScalarEvent):
                    node = _Node(
                        _Node.SCALAR, line, tag, event.value or "", bool(event.implicit[0])
                    )
                elif isinstance(event, yaml.SequenceStartEvent):
                    node = _Node(_Node.SEQUENCE, line, tag)
                else:
                    node = _Node(_Node.MAPPING, line, tag)
                if event.anchor is not None:
                    anchors[event.anchor] = node
            if stack:
                stack[-1].children.append(node)
            else:
                root = node
            if node.kind in (_Node.SEQUENCE, _Node.MAPPING):
                if len(stack) >= _MAX_DEPTH:
                    where = f"line {line + 1}: " if line else ""
                    raise _fail(where + "exceeded maximum nesting depth")
                stack.append(node)
    except yaml.YAMLError as exc:
        raise _translate(exc, pure) from None
    finally:
        if loader is not None:
            loader.dispose()


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _is_timestamp(s: str) -> bool:
    """yaml.v2's ``parseTimestamp`` (Go ``time.Parse`` with four layouts)."""
    for pattern in _TIMESTAMP_FORMATS:
        m = pattern.match(s)
        if m is None:
            continue
        year, month, day = int(m[1]), int(m[2]), int(m[3])
        if not 1 <= month <= 12 or not 1 <= day <= _days_in_month(year, month):
            continue
        if m.lastindex and m.lastindex >= 6:
            hour, minute, second = int(m[4]), int(m[5]), int(m[6])
            if hour >= 24 or minute >= 60 or second >= 60:
                continue
            if m.lastindex >= 9 and m[8] is not None and (int(m[8]) > 24 or int(m[9]) > 60):
                continue
        return True
    return False


def _resolve_plain(tag: str, s: str) -> tuple[str, Any]:
    """yaml.v2's ``resolve`` before the tag check: the tag and value a scalar resolves to."""
    hint = _HINTS.get(s[0]) if s else "M"
    if hint is None or tag == _STR:
        return _STR, s
    found = _RESOLVE_MAP.get(s)
    if found is not None:
        return found
    if hint == ".":
        value = parse_float_ok(s)
        if value is not None:
            return _FLOAT, value
    elif hint in "DS":
        if tag in ("", _TIMESTAMP) and s[:4].isdigit() and s[4:5] == "-" and _is_timestamp(s):
            return _TIMESTAMP, s
        plain = s.replace("_", "")
        number = parse_int_ok(plain)
        if number is None:
            number = parse_uint_ok(plain)
        if number is not None:
            return _INT, number
        if re.match(_YAML_STYLE_FLOAT, plain):
            value = parse_float_ok(plain)
            if value is not None:
                return _FLOAT, value
    return _STR, s


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_TAG_PREFIX) :] if tag.startswith(_TAG_PREFIX) else tag


def _resolve(tag: str, s: str) -> tuple[str, Any]:
    """yaml.v2's ``resolve``: untagged plain scalars by their spelling, explicit core tags
    checked (``!!float`` also takes an int)."""
    if tag not in _RESOLVABLE:
        return tag, s
    rtag, value = _resolve_plain(tag, s)
    if tag in ("", rtag, _STR):
        return rtag, value
    if tag == _FLOAT and rtag == _INT:
        return _FLOAT, float(value)
    raise _fail(f"cannot decode {_short_tag(rtag)} `{s}` as a {_short_tag(tag)}")


def _scalar(node: _Node) -> tuple[str, Any]:
    """The tag and the ``interface{}`` value of a scalar node (timestamps stay strings)."""
    if node.tag == "" and not node.plain:
        return _STR, node.value
    if node.tag == _BINARY:
        text = node.value.replace("\r", "").replace("\n", "")
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise _fail("!!binary value contains invalid base64 data") from None
        return _BINARY, raw.decode("utf-8", "surrogateescape")
    tag, value = _resolve(node.tag, node.value)
    if tag == _TIMESTAMP:
        return tag, node.value
    return tag, value


def _allowed_alias_ratio(decode_count: int) -> float:
    """yaml.v2's tolerance for alias expansion, shrinking as documents grow."""
    low, high = 400_000, 4_000_000
    if decode_count <= low:
        return 0.99
    if decode_count >= high:
        return 0.10
    return 0.99 - 0.89 * ((decode_count - low) / (high - low))


def _is_merge(node: _Node) -> bool:
    return node.kind == _Node.SCALAR and node.value == "<<" and (node.plain or node.tag == _MERGE)


def _merge_sources(node: _Node) -> list[_Node]:
    """The mappings a ``<<`` value merges, in yaml.v2's order (later first, earlier win)."""

    def want_map() -> YamlError:
        return _fail("map merge requires map or sequence of maps as the value")

    if node.kind == _Node.MAPPING:
        return [node]
    if node.kind == _Node.ALIAS:
        assert node.target is not None
        if node.target.kind != _Node.MAPPING:
            raise want_map()
        return [node]
    if node.kind != _Node.SEQUENCE:
        raise want_map()
    sources = []
    for child in reversed(node.children):
        kind = child.target.kind if child.kind == _Node.ALIAS and child.target else child.kind
        if kind != _Node.MAPPING:
            raise want_map()
        sources.append(child)
    return sources


_EVAL, _BUILD_SEQ, _BUILD_MAP, _EXIT_ALIAS = range(4)


class _Decoder:
    """yaml.v2's ``decoder`` into ``interface{}``, driven by an explicit work stack."""

    def __init__(self) -> None:
        self.decode_count = 0
        self.alias_count = 0
        self.alias_depth = 0
        self.active_aliases: set[int] = set()

    def _count(self) -> None:
        self.decode_count += 1
        if self.alias_depth > 0:
            self.alias_count += 1
        if (
            self.alias_count > 100
            and self.decode_count > 1000
            and self.alias_count / self.decode_count > _allowed_alias_ratio(self.decode_count)
        ):
            raise _fail("document contains excessive aliasing")

    def decode(self, root: _Node) -> Any:
        work: list[tuple[int, Any]] = [(_EVAL, root)]
        values: list[Any] = []
        while work:
            op, arg = work.pop()
            if op == _EVAL:
                node: _Node = arg
                self._count()
                if node.kind == _Node.SCALAR:
                    values.append(_scalar(node)[1])
                elif node.kind == _Node.SEQUENCE:
                    work.append((_BUILD_SEQ, len(node.children)))
                    work.extend((_EVAL, child) for child in reversed(node.children))
                elif node.kind == _Node.MAPPING:
                    plan: list[int] = []
                    order: list[_Node] = []
                    pairs = node.children
                    for i in range(0, len(pairs) - 1, 2):
                        if _is_merge(pairs[i]):
                            sources = _merge_sources(pairs[i + 1])
                            plan.append(len(sources))
                            order.extend(sources)
                        else:
                            plan.append(-1)
                            order.extend(pairs[i : i + 2])
                    work.append((_BUILD_MAP, plan))
                    work.extend((_EVAL, child) for child in reversed(order))
                else:
                    if id(node) in self.active_aliases:
                        raise _fail(f"anchor '{node.value}' value contains itself")
                    self.active_aliases.add(id(node))
                    self.alias_depth += 1
                    work.append((_EXIT_ALIAS, node))
                    work.append((_EVAL, node.target))
            elif op == _BUILD_SEQ:
                start = len(values) - arg
                items = values[start:]
                del values[start:]
                values.append(items)
            elif op == _BUILD_MAP:
                values.append(self._build_map(arg, values))
            else:
                self.alias_depth -= 1
                self.active_aliases.discard(id(arg))
        return values[0]

    @staticmethod
    def _build_map(plan: list[int], values: list[Any]) -> dict[Any, Any]:
        needed = sum(2 if entry < 0 else entry for entry in plan)
        start = len(values) - needed
        items = values[start:]
        del values[start:]
        result: dict[Any, Any] = {}
        pos = 0
        for entry in plan:
            if entry < 0:
                key, value = items[pos], items[pos + 1]
                pos += 2
                if isinstance(key, list | dict):
                    raise _fail(f"invalid map key: {format_s(key)}")
                result[key] = value
            else:
                for source in items[pos : pos + entry]:
                    result.update(source)
                pos += entry
        return result


def decode_config(data: bytes, *, pure: bool | None = None) -> list[Any]:
    """``yaml.Unmarshal(data, &[]interface{}{})``: the items of a config file.

    Only the first document is read (as yaml.v2 does); an empty document is an empty list.
    ``pure`` forces (True) or forbids (False) the pure-Python PyYAML parser; by default
    libyaml is used when PyYAML was built with it.  Raises :class:`YamlError`.
    """
    root = _compose(data, pure)
    if root is None:
        return []
    if root.kind == _Node.SEQUENCE:
        result = _Decoder().decode(root)
        assert isinstance(result, list)
        return result
    if root.kind == _Node.MAPPING:
        tag = root.tag or _MAP
    else:
        rtag, value = _scalar(root)
        if value is None:
            return []
        tag = root.tag or rtag
    shown = ""
    if tag not in (_SEQ, _MAP):
        raw = root.value.encode("utf-8", "surrogatepass")
        text = raw[:7].decode("utf-8", "replace") + "..." if len(raw) > 10 else root.value
        shown = f" `{text}`"
    raise YamlError(
        "yaml: unmarshal errors:\n"
        f"  line {root.line + 1}: cannot unmarshal {_short_tag(tag)}{shown} into []interface {{}}"
    )
