"""Parsing of the ``work`` command's text and JSON forms (control.md §3.6–§3.7)."""

import pytest

from receptor.controlsvc import CommandError
from receptor.workceptor._control import parse_json, parse_text


@pytest.mark.parametrize(
    "text,expected",
    [
        ("submit n1 echo", ("submit", {"node": "n1", "worktype": "echo"})),
        (
            "submit n1 echo a b  c",
            ("submit", {"node": "n1", "worktype": "echo", "params": "a b  c"}),
        ),
        ("SUBMIT n1 echo", ("submit", {"node": "n1", "worktype": "echo"})),
        ("list", ("list", {})),
        ("list x y", ("list", {"unitid": "x"})),
        ("list  x", ("list", {"unitid": ""})),
        ("status abc", ("status", {"unitid": "abc"})),
        ("force-release abc", ("force-release", {"unitid": "abc"})),
        ("results abc", ("results", {"unitid": "abc", "startpos": 0})),
        ("results abc 12", ("results", {"unitid": "abc", "startpos": 12})),
        ("results abc +7", ("results", {"unitid": "abc", "startpos": 7})),
        ("", ("", {})),
        ("bogus", ("bogus", {})),
    ],
)
def test_text_forms(text, expected):
    assert parse_text(text) == expected


@pytest.mark.parametrize(
    "text,error",
    [
        ("submit n1", "work submit requires a target node and work type"),
        ("status", "work status requires a unit ID"),
        ("status  x", "work status does not take parameters after the unit ID"),
        ("release a b", "work release does not take parameters after the unit ID"),
        ("results", "work results requires a unit ID"),
        ("results a 1 2", "work results only takes a unit ID and optional start position"),
        (
            "results a 1.5",
            "error converting start position to integer: "
            'strconv.ParseInt: parsing "1.5": invalid syntax',
        ),
        (
            "results a 9223372036854775808",
            "error converting start position to integer: "
            'strconv.ParseInt: parsing "9223372036854775808": value out of range',
        ),
        (
            "results a ",
            'error converting start position to integer: strconv.ParseInt: parsing "": '
            "invalid syntax",
        ),
    ],
)
def test_text_errors(text, error):
    with pytest.raises(CommandError) as info:
        parse_text(text)
    assert str(info.value) == error


@pytest.mark.parametrize(
    "request_,expected",
    [
        (
            {"command": "work", "subcommand": "Submit", "node": "n", "worktype": "w", "x": "1"},
            (
                "submit",
                {"command": "work", "subcommand": "Submit", "node": "n", "worktype": "w", "x": "1"},
            ),
        ),
        ({"subcommand": "list", "unitid": 5}, ("list", {})),
        (
            {"subcommand": "status", "unitid": "u", "signature": "s"},
            ("status", {"unitid": "u", "signature": "s"}),
        ),
        (
            {"subcommand": "results", "unitid": "u", "startpos": 3.9},
            ("results", {"unitid": "u", "startpos": 3}),
        ),
    ],
)
def test_json_forms(request_, expected):
    assert parse_json(request_) == expected


@pytest.mark.parametrize(
    "request_,error",
    [
        ({}, "field subcommand missing"),
        ({"subcommand": 5}, "field subcommand must be a string"),
        ({"subcommand": "submit", "worktype": "w"}, "field node missing"),
        (
            {"subcommand": "submit", "node": "n", "worktype": 1.0},
            "submit parameters must all be strings and worktype is not",
        ),
        ({"subcommand": "cancel"}, "field unitid missing"),
        ({"subcommand": "results", "unitid": "u"}, "field startpos missing"),
        (
            {"subcommand": "results", "unitid": "u", "startpos": "1"},
            "field startpos value 1 is not convertible to an int",
        ),
        (
            {"subcommand": "results", "unitid": "u", "startpos": True},
            "field startpos value %!s(bool=true) is not convertible to an int",
        ),
        (
            {"subcommand": "results", "unitid": "u", "startpos": [1.0]},
            "field startpos value [%!s(float64=1)] is not convertible to an int",
        ),
        (
            {"subcommand": "results", "unitid": "u", "startpos": 1e300},
            "field startpos value %!s(float64=1e+300) is not convertible to an int",
        ),
    ],
)
def test_json_errors(request_, error):
    with pytest.raises(CommandError) as info:
        parse_json(request_)
    assert str(info.value) == error
