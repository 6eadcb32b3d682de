"""Go's strconv, fmt and encoding/json behaviour as reproduced for the config parser."""

import math

import pytest

from receptor._goconv import (
    format_float_f,
    format_float_v,
    format_s,
    go_quote,
    parse_bool,
    parse_float,
    parse_int,
)
from receptor._gojson import decode_go as decode


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("-0", 0),
        ("+7", 7),
        ("600", 600),
        ("0600", 384),
        ("0x7A69", 31337),
        ("0X7a69", 31337),
        ("075000", 31232),
        ("0o17", 15),
        ("0O17", 15),
        ("0b101", 5),
        ("1_000", 1000),
        ("0x_1F", 31),
        ("0_600", 384),
        ("9223372036854775807", (1 << 63) - 1),
        ("-9223372036854775808", -(1 << 63)),
        ("-0x8000000000000000", -(1 << 63)),
    ],
)
def test_parse_int(text: str, value: int) -> None:
    assert parse_int(text) == value


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "invalid syntax"),
        ("-", "invalid syntax"),
        ("+", "invalid syntax"),
        ("abc", "invalid syntax"),
        ("08", "invalid syntax"),
        ("0x", "invalid syntax"),
        ("0b", "invalid syntax"),
        ("0b2", "invalid syntax"),
        ("1.0", "invalid syntax"),
        (" 1", "invalid syntax"),
        ("1 ", "invalid syntax"),
        ("_1", "invalid syntax"),
        ("1_", "invalid syntax"),
        ("1__0", "invalid syntax"),
        ("٣", "invalid syntax"),
        ("9223372036854775808", "value out of range"),
        ("-9223372036854775809", "value out of range"),
        ("18446744073709551616", "value out of range"),
        ("99999999999999999999x", "value out of range"),
    ],
)
def test_parse_int_errors(text: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_int(text)
    assert str(caught.value) == f"strconv.ParseInt: parsing {go_quote(text)}: {reason}"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", 1.0),
        ("1.5", 1.5),
        (".5", 0.5),
        ("5.", 5.0),
        ("-1e3", -1000.0),
        ("1E+2", 100.0),
        ("1_000.5", 1000.5),
        ("0x1p-2", 0.25),
        ("0x1.8p3", 12.0),
        ("0X.8P1", 1.0),
        ("1e-400", 0.0),
        ("inf", math.inf),
        ("+Inf", math.inf),
        ("-INFINITY", -math.inf),
    ],
)
def test_parse_float(text: str, value: float) -> None:
    assert parse_float(text) == value


def test_parse_float_nan() -> None:
    assert math.isnan(parse_float("NaN"))
    assert math.isnan(parse_float("nan"))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "invalid syntax"),
        ("cheap", "invalid syntax"),
        (".", "invalid syntax"),
        ("1e", "invalid syntax"),
        ("1e+", "invalid syntax"),
        ("0x1", "invalid syntax"),
        ("0x", "invalid syntax"),
        ("infinit", "invalid syntax"),
        ("+nan", "invalid syntax"),
        ("nanx", "invalid syntax"),
        ("1__0", "invalid syntax"),
        ("1.5.", "invalid syntax"),
        ("1e400", "value out of range"),
        ("-1e400", "value out of range"),
        ("0x1p2000", "value out of range"),
    ],
)
def test_parse_float_errors(text: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_float(text)
    assert str(caught.value) == f"strconv.ParseFloat: parsing {go_quote(text)}: {reason}"


def test_parse_bool() -> None:
    assert parse_bool("Yes") is True
    assert parse_bool("N") is False
    with pytest.raises(ValueError, match=r"^could not parse YeS as boolean$"):
        parse_bool("YeS")


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("abc", '"abc"'),
        ('a"b\\c', '"a\\"b\\\\c"'),
        ("\n\t\x07\x01\x7f", '"\\n\\t\\a\\x01\\x7f"'),
        ("é\u00a0\u200b", '"é\\u00a0\\u200b"'),
        ("\U0001f600", '"\U0001f600"'),
        ("\udcff\udc80", '"\\xff\\x80"'),
    ],
)
def test_go_quote(text: str, quoted: str) -> None:
    assert go_quote(text) == quoted


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (-2.5, "-2.5"),
        (0.1, "0.1"),
        (100000.0, "100000"),
        (1e6, "1e+06"),
        (1234567.0, "1.234567e+06"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (1e21, "1e+21"),
        (1e300, "1e+300"),
        (5e-324, "5e-324"),
        (0.0, "0"),
        (-0.0, "-0"),
        (math.nan, "NaN"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
    ],
)
def test_format_float_v(value: float, text: str) -> None:
    assert format_float_v(value) == text


def test_format_float_f() -> None:
    assert format_float_f(1.5) == "1.500000"
    assert format_float_f(1e20) == "100000000000000000000.000000"
    assert format_float_f(-math.inf) == "-Inf"
    assert format_float_f(math.nan) == "NaN"


def test_format_s() -> None:
    assert format_s({"b": 1, "a": [True, None, 1.5, "x"]}) == (
        "map[a:[%!s(bool=true) %!s(<nil>) %!s(float64=1.5) x] b:%!s(int=1)]"
    )
    assert format_s(1 << 63) == "%!s(uint64=9223372036854775808)"
    assert format_s([]) == "[]"
    assert format_s({}) == "map[]"
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    assert format_s(deep) == "[" * 5001 + "]" * 5001


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"a":1}', {"a": 1.0}),
        (' [ 1 , -2.5e1 , true , false , null , "x" ] ', [1.0, -25.0, True, False, None, "x"]),
        ('{"a":1,"a":2}', {"a": 2.0}),
        ('"\\u00e9\\ud83d\\ude00\\ud800\\/\\b"', "é\U0001f600\ufffd/\b"),
        ("[]", []),
        ("{}", {}),
        ("0", 0.0),
        ('"\udcff"', "\ufffd"),
    ],
)
def test_json(text: str, value: object) -> None:
    assert decode(text) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "unexpected end of JSON input"),
        ("[", "unexpected end of JSON input"),
        ('{"a"', "unexpected end of JSON input"),
        ('"abc', "unexpected end of JSON input"),
        ("-", "invalid character ' ' in numeric literal"),
        ("1.", "invalid character ' ' after decimal point in numeric literal"),
        ("1e+", "invalid character ' ' in exponent of numeric literal"),
        ("-x", "invalid character 'x' in numeric literal"),
        ("1.x", "invalid character 'x' after decimal point in numeric literal"),
        ("tru", "invalid character ' ' in literal true (expecting 'e')"),
        ("fals3", "invalid character '3' in literal false (expecting 'e')"),
        ("nil", "invalid character 'i' in literal null (expecting 'u')"),
        ("01", "invalid character '1' after top-level value"),
        ("[1 2]", "invalid character '2' after array element"),
        ('{"a":1 "b"}', "invalid character '\"' after object key:value pair"),
        ('{"a" 1}', "invalid character '1' after object key"),
        ("{1:2}", "invalid character '1' looking for beginning of object key string"),
        ("{'a':1}", "invalid character '\\'' looking for beginning of object key string"),
        ("[,]", "invalid character ',' looking for beginning of value"),
        ("NaN", "invalid character 'N' looking for beginning of value"),
        ('"\\x"', "invalid character 'x' in string escape code"),
        ('"\\u12g4"', "invalid character 'g' in \\u hexadecimal character escape"),
        ('"a\nb"', "invalid character '\\n' in string literal"),
        ("é", "invalid character 'Ã' looking for beginning of value"),
        ("\\", "invalid character '\\\\' looking for beginning of value"),
        ("[1e999]", "json: cannot unmarshal number 1e999 into Go value of type float64"),
        ("[1e999, x]", "invalid character 'x' looking for beginning of value"),
        ("[" * 10001 + "]" * 10001, "invalid character '[' exceeded max depth"),
    ],
)
def test_json_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        decode(text)
    assert str(caught.value) == message


def test_json_nesting_at_the_limit() -> None:
    value = decode("[" * 10000 + "]" * 10000)
    depth = 1
    while value:
        value = value[0]
        depth += 1
    assert depth == 10000
