"""Property tests: whatever the input, the parser answers with a result or a ConfigError."""

import json
import math
import os
import string
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receptor import ConfigError
from receptor._goconv import parse_float, parse_int
from receptor._goduration import MAX_DURATION, MIN_DURATION, format_duration, parse_duration
from receptor._gojson import decode_go as decode
from receptor.config import (
    ENTITIES,
    CommandLine,
    load_config_file,
    parse_command_line,
    reload_changes,
    reload_snapshot,
)
from receptor.config._yamlv2 import YamlError, decode_config

# RECEPTOR_FUZZ_EXAMPLES raises the number of examples for a longer hunt.
FUZZ = settings(
    max_examples=int(os.environ.get("RECEPTOR_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

VALID = """\
- node:
    id: a
    firewallrules:
      - action: accept
- log-level: debug
- tcp-listener:
    port: 2222
    allowedpeers: [b]
    nodecost: {b: 2}
- work-command: {worktype: w, command: cat}
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    base = tmp_path_factory.mktemp("fuzz")
    contents = {
        "valid.yml": VALID,
        "node.yml": "- node: x\n",
        "trace.yml": "- trace\n- local-only\n",
        "version.yml": "- version\n",
        "bad.yml": "- node: [\n",
        "mapping.yml": "node: {}\n",
        "empty.yml": "",
        "binary.yml": "\x00\xff",
    }
    paths = []
    for name, text in contents.items():
        path = base / name
        path.write_bytes(text.encode("latin-1"))
        paths.append(str(path))
    paths.append(str(base))
    paths.append(str(base / "missing.yml"))
    return paths


def _spellings(name: str) -> st.SearchStrategy[str]:
    return st.sampled_from(["-", "--", "---", ""]).flatmap(
        lambda dashes: st.sampled_from([name, name.upper(), name.title()]).map(lambda n: dashes + n)
    )


ENTITY_ARGS = st.sampled_from(ENTITIES).flatmap(lambda e: _spellings(e.registered_name))
FIELD_NAMES = st.sampled_from(sorted({f.name for e in ENTITIES for f in e.fields}))
VALUES = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        [
            "0x10",
            "0600",
            "1e400",
            "NaN",
            "inf",
            "yes",
            "Y",
            "on",
            "[]",
            '["a"]',
            "[1]",
            '{"a":1}',
            '{"a":null}',
            '[{"action":"accept"}]',
            "{",
            "[",
            "-1",
            "9223372036854775808",
        ]
    ),
)
KEYED = st.builds(lambda k, v: f"{k}={v}", FIELD_NAMES, VALUES)
SPECIAL = st.sampled_from(
    ["-c", "--config", "-C", "--CONFIG", "--config=x", "-h", "--help", "--bash-completion", ""]
)


def _check_result(result: CommandLine) -> None:
    assert result.action in ("help", "bash-completion", "run")
    if result.action != "run":
        assert result.items == []
        return
    assert result.items, "the implicit node or an exclusive entity is always there"
    for item in result.items:
        assert set(item.values) == {f.name for f in item.entity.fields}
        assert item.explicit <= set(item.values)
    exclusive = [i for i in result.items if i.entity.exclusive]
    if exclusive:
        assert len(result.items) == 1
    else:
        assert any(i.entity.name == "node" for i in result.items)
    if result.reload_file is not None:
        assert result.reload_file in result.config_files


@FUZZ
@given(data=st.data())
def test_command_line_never_crashes(files: list[str], data: st.DataObject) -> None:
    token = st.one_of(ENTITY_ARGS, KEYED, VALUES, SPECIAL, st.sampled_from(files))
    argv = data.draw(st.lists(token, max_size=12))
    try:
        result = parse_command_line(argv)
    except ConfigError as exc:
        assert str(exc)
    else:
        _check_result(result)


@FUZZ
@given(argv=st.lists(st.text(max_size=20), max_size=8))
def test_arbitrary_text_arguments(argv: list[str]) -> None:
    try:
        _check_result(parse_command_line(argv))
    except ConfigError:
        pass


def _load(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "f.yml"
    path.write_bytes(data)
    try:
        items = load_config_file(str(path))
    except ConfigError as exc:
        assert str(exc).startswith("error loading config file: ")
    else:
        for item in items:
            assert set(item.values) == {f.name for f in item.entity.fields}
    try:
        snapshot = reload_snapshot(str(path))
    except ConfigError as exc:
        assert str(exc).startswith("error loading config file: ")
    else:
        assert reload_changes(snapshot, snapshot) is None


@FUZZ
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_as_config(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    _load(tmp_path_factory.mktemp("bytes"), data)


YAML_TOKENS = st.sampled_from(
    [
        "- ",
        "\n",
        "  ",
        ": ",
        "[",
        "]",
        "{",
        "}",
        ", ",
        "&a ",
        "*a",
        "<<: ",
        "!!int ",
        "!!str ",
        "!!binary ",
        "'",
        '"',
        "#",
        "---\n",
        "~",
        "yes",
        "0x1F",
        "1e3",
        ".nan",
        "node",
        "tcp-listener",
        "port",
        "id",
        "nodecost",
        "allowedpeers",
        "firewallrules",
        "local-only",
        "log-level",
        "version",
        "\t",
        "|\n",
        ">\n",
        "?",
        "%YAML 1.1\n",
        "\x00",
        "é",
    ]
)


@FUZZ
@given(tokens=st.lists(YAML_TOKENS, max_size=40))
def test_yaml_like_text(tmp_path_factory: pytest.TempPathFactory, tokens: list[str]) -> None:
    _load(tmp_path_factory.mktemp("tokens"), "".join(tokens).encode())


@FUZZ
@given(position=st.integers(0, len(VALID)), junk=st.text(max_size=5))
def test_damaged_valid_config(
    tmp_path_factory: pytest.TempPathFactory, position: int, junk: str
) -> None:
    text = VALID[:position] + junk + VALID[position:]
    _load(tmp_path_factory.mktemp("damaged"), text.encode("utf-8", "surrogatepass"))


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=10),
    st.sampled_from(["port", "id", "allowedpeers", "nodecost", "0x1F", "y", "08"]),
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), children, max_size=4),
    ),
    max_leaves=20,
)
ITEMS = st.lists(
    st.one_of(
        st.sampled_from([e.name for e in ENTITIES]),
        st.builds(
            lambda name, params: {name: params},
            st.sampled_from([e.name for e in ENTITIES]),
            st.one_of(
                SCALARS,
                st.dictionaries(
                    st.sampled_from(sorted({f.name for e in ENTITIES for f in e.fields})),
                    DOCUMENTS,
                    max_size=4,
                ),
            ),
        ),
        DOCUMENTS,
    ),
    max_size=5,
)


@FUZZ
@given(items=ITEMS)
def test_structured_configs(tmp_path_factory: pytest.TempPathFactory, items: list) -> None:
    text = yaml.safe_dump(items, allow_unicode=True)
    _load(tmp_path_factory.mktemp("structured"), text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(data=st.binary(max_size=100))
def test_yaml_parsers_agree_on_acceptance(data: bytes) -> None:
    """The pure-Python fallback accepts what libyaml accepts (messages may differ)."""
    outcomes = []
    for pure in (False, True):
        try:
            outcomes.append(("ok", repr(decode_config(data, pure=pure))))
        except YamlError:
            outcomes.append(("error", ""))
    if outcomes[0][0] == outcomes[1][0] == "ok":
        assert outcomes[0] == outcomes[1]


@FUZZ
@given(text=st.text(max_size=40))
def test_json_never_crashes(text: str) -> None:
    try:
        decode(text)
    except ValueError as exc:
        assert str(exc)


JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**20), 10**20),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=10),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


@FUZZ
@given(value=JSON_VALUES)
def test_json_matches_python_on_valid_input(value: object) -> None:
    text = json.dumps(value)
    assert decode(text) == json.loads(text, parse_int=float)


@FUZZ
@given(ns=st.integers(MIN_DURATION, MAX_DURATION))
def test_duration_round_trip(ns: int) -> None:
    assert parse_duration(format_duration(ns)) == ns


@FUZZ
@given(text=st.text(alphabet=string.digits + ".+-nsuµμmh", max_size=16))
def test_duration_never_crashes(text: str) -> None:
    try:
        value = parse_duration(text)
    except ValueError as exc:
        assert str(exc).startswith("time: ")
    else:
        assert MIN_DURATION <= value <= MAX_DURATION


@FUZZ
@given(value=st.integers(-(1 << 63), (1 << 63) - 1))
def test_int_round_trip(value: int) -> None:
    assert parse_int(str(value)) == value
    assert parse_int(hex(value)) == value
    assert parse_int(oct(value)) == value


@FUZZ
@given(value=st.floats(allow_nan=False, allow_infinity=False))
def test_float_round_trip(value: float) -> None:
    assert parse_float(repr(value)) == value
    assert parse_float(value.hex()) == value or value == 0


NUMBERISH = st.text(alphabet=string.digits + "+-._xXoObBeEpPaAfFnNiItTyY ", max_size=12)


@FUZZ
@given(text=st.one_of(NUMBERISH, st.text(max_size=12)))
def test_numbers_never_crash(text: str) -> None:
    try:
        number = parse_int(text)
    except ValueError as exc:
        assert str(exc).startswith("strconv.ParseInt: parsing ")
    else:
        assert -(1 << 63) <= number < (1 << 63)
    try:
        value = parse_float(text)
    except ValueError as exc:
        assert str(exc).startswith("strconv.ParseFloat: parsing ")
    else:
        assert isinstance(value, float)
        assert math.isnan(value) or math.isinf(value) == ("inf" in text.lower())
