"""Go time.ParseDuration and Duration.String(), checked against outputs of Go itself."""

import pytest

from receptor._goduration import MAX_DURATION, MIN_DURATION, format_duration, parse_duration

NS = 1
US = 1000
MS = 1000 * US
S = 1000 * MS
M = 60 * S
H = 60 * M


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0", 0),
        ("+0", 0),
        ("-0", 0),
        ("0s", 0),
        ("5s", 5 * S),
        ("30s", 30 * S),
        ("1478s", 1478 * S),
        ("-5s", -5 * S),
        ("+5s", 5 * S),
        ("-0s", 0),
        ("5.0s", 5 * S),
        ("5.6s", 5 * S + 600 * MS),
        ("5.s", 5 * S),
        (".5s", 500 * MS),
        ("1.0s", S),
        ("1.00s", S),
        ("1.004s", S + 4 * MS),
        ("1.0040s", S + 4 * MS),
        ("100.00100s", 100 * S + 1 * MS),
        ("10ns", 10 * NS),
        ("11us", 11 * US),
        ("12µs", 12 * US),
        ("12μs", 12 * US),
        ("13ms", 13 * MS),
        ("14s", 14 * S),
        ("15m", 15 * M),
        ("16h", 16 * H),
        ("3h30m", 3 * H + 30 * M),
        ("10.5s4m", 4 * M + 10 * S + 500 * MS),
        ("-2m3.4s", -(2 * M + 3 * S + 400 * MS)),
        ("1h2m3s4ms5us6ns", 1 * H + 2 * M + 3 * S + 4 * MS + 5 * US + 6 * NS),
        ("39h9m14.425s", 39 * H + 9 * M + 14 * S + 425 * MS),
        ("52763797000ns", 52763797000 * NS),
        ("0.3333333333333333333h", 20 * M),
        ("9007199254740993ns", (1 << 53) + 1),
        ("9223372036854775807ns", (1 << 63) - 1),
        ("9223372036854775.807us", (1 << 63) - 1),
        ("9223372036s854ms775us807ns", (1 << 63) - 1),
        ("-9223372036854775808ns", -(1 << 63)),
        ("-9223372036854775.808us", -(1 << 63)),
        ("-9223372036s854ms775us808ns", -(1 << 63)),
        ("-2562047h47m16.854775808s", -(1 << 63)),
        ("0.100000000000000000000h", 6 * M),
        ("0.830103483285477580700h", 49 * M + 48 * S + 372539827 * NS),
        ("1.5h", 90 * M),
        ("30m10s", 30 * M + 10 * S),
    ],
)
def test_parse(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'time: invalid duration ""'),
        ("3", 'time: missing unit in duration "3"'),
        ("-", 'time: invalid duration "-"'),
        ("s", 'time: invalid duration "s"'),
        (".", 'time: invalid duration "."'),
        ("-.", 'time: invalid duration "-."'),
        (".s", 'time: invalid duration ".s"'),
        ("+.s", 'time: invalid duration "+.s"'),
        ("1d", 'time: unknown unit "d" in duration "1d"'),
        ("1.1.1s", 'time: missing unit in duration "1.1.1s"'),
        # Go's raw bytes are the surrogate escapes of an undecodable argument.
        ("\udc85\udc85", 'time: invalid duration "\\x85\\x85"'),
        ("\udcffff", 'time: invalid duration "\\xffff"'),
        ("hello \udcffff world", 'time: invalid duration "hello \\xffff world"'),
        ("\xff", 'time: invalid duration "\\xc3\\xbf"'),
        ("\ufffd", 'time: invalid duration "\\xef\\xbf\\xbd"'),
        (
            "\ufffd hello \ufffd world",
            'time: invalid duration "\\xef\\xbf\\xbd hello \\xef\\xbf\\xbd world"',
        ),
        ("1µ", 'time: unknown unit "\\xc2\\xb5" in duration "1\\xc2\\xb5"'),
        ('1"', 'time: unknown unit "\\"" in duration "1\\""'),
        ("9223372036854775810ns", 'time: invalid duration "9223372036854775810ns"'),
        ("9223372036854775808ns", 'time: invalid duration "9223372036854775808ns"'),
        ("-9223372036854775809ns", 'time: invalid duration "-9223372036854775809ns"'),
        ("9223372036854776us", 'time: invalid duration "9223372036854776us"'),
        ("3000000h", 'time: invalid duration "3000000h"'),
        ("9223372036854775.808us", 'time: invalid duration "9223372036854775.808us"'),
        ("9223372036854ms775us808ns", 'time: invalid duration "9223372036854ms775us808ns"'),
        ("bogus", 'time: invalid duration "bogus"'),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(text)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (1 * NS, "1ns"),
        (1100 * NS, "1.1µs"),
        (2200 * US, "2.2ms"),
        (3300 * MS, "3.3s"),
        (4 * M + 5 * S, "4m5s"),
        (4 * M + 5001 * MS, "4m5.001s"),
        (5 * H + 6 * M + 7001 * MS, "5h6m7.001s"),
        (8 * M + 1 * NS, "8m0.000000001s"),
        ((1 << 63) - 1, "2562047h47m16.854775807s"),
        (-(1 << 63), "-2562047h47m16.854775808s"),
        (1234567, "1.234567ms"),
        (493965, "493.965µs"),
        (60 * S, "1m0s"),
        (2 * H + 3 * M + 4500 * MS, "2h3m4.5s"),
        (-1500, "-1.5µs"),
        (-S, "-1s"),
        (999, "999ns"),
        (21 * S, "21s"),
        (H, "1h0m0s"),
    ],
)
def test_format(ns: int, text: str) -> None:
    assert format_duration(ns) == text


def test_format_uses_the_micro_sign() -> None:
    assert format_duration(1000) == "1\u00b5s"


def test_format_out_of_range() -> None:
    with pytest.raises(ValueError):
        format_duration(MAX_DURATION + 1)
    with pytest.raises(ValueError):
        format_duration(MIN_DURATION - 1)
