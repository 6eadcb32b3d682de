"""Assigning a command-line string or a decoded YAML value to a typed field.

This is the cmdline library's ``setValue`` with Go's conversion rules: strings are parsed with
``strconv`` (``0x1f``, ``0600`` octal, the exact boolean spellings), YAML ints and floats are
formatted into string fields with ``%d`` and ``%f``, list fields append a plain string or take a
JSON/YAML list, map fields take a JSON object string or a YAML mapping.  Errors are
:class:`ValueError` with upstream's text (``type error (expected int)``, ``could not parse y as
boolean``, ``invalid value map[action:accept]: must be type netceptor.FirewallRuleData``).

Where upstream crashes or silently corrupts a value, the conversion refuses it instead:

* a YAML null as a field value (upstream dereferences nil) ->
  ``type error (expected string): value is null``;
* NaN or an infinity for a float field (a connection cost) ->
  ``invalid value NaN: must be a finite number`` -- the daemon's ``cost > 0`` check would let
  ``+Inf`` through and a NaN compares false with everything;
* an integer outside int64, or a YAML float that is not finite or outside int64, for an int
  field (Go wraps it) -> ``strconv.ParseInt: ... value out of range`` /
  ``value 1e+300 out of range for type int``;
* a non-string key in a map field (Go converts an int key to the character with that code) ->
  ``invalid key %!s(int=1): must be type string``.

A YAML int inside a string list, or one above the int64 range (yaml.v2's ``uint64``) in a
string field, is formatted with ``%d`` like any YAML int in a string field (Go converts those to
the character with that code: ``allowedpeers: [65]`` would mean ``A``).
"""

import math
from typing import Any

from receptor import _gojson
from receptor._goconv import (
    INT64_MAX,
    INT64_MIN,
    format_float_f,
    format_float_v,
    format_s,
    go_quote,
    parse_bool,
    parse_float,
    parse_int,
)
from receptor.config._entities import Field, FieldType

__all__ = ["convert"]


def _type_error(kind: FieldType) -> ValueError:
    return ValueError(f"type error (expected {kind.go_type})")


def _finite(value: float) -> float:
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"invalid value {format_float_v(value)}: must be a finite number")
    return value


def _int_in_range(value: int) -> int:
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"strconv.ParseInt: parsing {go_quote(str(value))}: value out of range")
    return value


def _float_to_int(value: float) -> int:
    # Go converts a float to int by truncation; out of range the result is undefined.
    if not math.isfinite(value) or not -(2.0**63) <= value < 2.0**63:
        raise ValueError(f"value {format_float_v(value)} out of range for type int")
    return int(value)


def _copy_map(kind: FieldType, source: dict[Any, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in source.items():
        if not isinstance(key, str):
            raise ValueError(f"invalid key {format_s(key)}: must be type string")
        if kind is FieldType.FLOAT_MAP:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"invalid value {format_s(value)}: must be type float64")
            result[key] = _finite(float(value))
        else:
            result[key] = value
    return result


def _copy_list(kind: FieldType, source: list[Any], from_json: bool) -> list[Any]:
    result: list[Any] = []
    for item in source:
        if kind is FieldType.STRING_LIST:
            if isinstance(item, str):
                result.append(item)
            elif isinstance(item, int) and not isinstance(item, bool):
                result.append(str(item))
            else:
                raise ValueError(f"invalid value {format_s(item)}: must be type string")
        elif isinstance(item, dict) and not from_json:
            result.append(item)
        else:
            # JSON objects decode to map[string]interface{}, which Go cannot convert to a
            # firewall rule (map[interface{}]interface{}): rules only work from YAML.
            raise ValueError(
                f"invalid value {format_s(item)}: must be type netceptor.FirewallRuleData"
            )
    return result


def convert(fld: Field, current: Any, value: Any) -> Any:
    """The new value of ``fld`` (currently ``current``) after assigning ``value``: a str from
    the command line, or any value decoded from YAML."""
    kind = fld.type
    if value is None:
        raise ValueError(f"type error (expected {kind.go_type}): value is null")
    if kind is FieldType.STRING:
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float):
            return format_float_f(value)
        raise _type_error(kind)
    if kind is FieldType.INT:
        if isinstance(value, str):
            return parse_int(value)
        if isinstance(value, bool):
            raise _type_error(kind)
        if isinstance(value, int):
            return _int_in_range(value)
        if isinstance(value, float):
            return _float_to_int(value)
        raise _type_error(kind)
    if kind is FieldType.FLOAT:
        if isinstance(value, str):
            return _finite(parse_float(value))
        if isinstance(value, bool):
            raise _type_error(kind)
        if isinstance(value, int | float):
            return _finite(float(value))
        raise _type_error(kind)
    if kind is FieldType.BOOL:
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            return parse_bool(value)
        raise _type_error(kind)
    if kind in (FieldType.FLOAT_MAP, FieldType.ANY_MAP):
        if isinstance(value, str) and value.startswith("{"):
            value = _gojson.decode_go(value)
        if isinstance(value, dict):
            return _copy_map(kind, value)
        raise _type_error(kind)
    # STRING_LIST and FIREWALL_RULES
    from_json = False
    if isinstance(value, str) and value.startswith("["):
        value = _gojson.decode_go(value)
        from_json = True
    if isinstance(value, list):
        return _copy_list(kind, value, from_json)
    if isinstance(value, str) and kind is FieldType.STRING_LIST:
        return [*(current or ()), value]
    raise _type_error(kind)
