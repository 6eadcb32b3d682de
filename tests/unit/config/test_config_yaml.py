"""YAML config files (config.md section 2): yaml.v2 semantics, item forms, hostile input."""

import os
from pathlib import Path

import pytest
import yaml

from receptor import ConfigError
from receptor.config import ConfigItem, _yamlv2, load_config_file, parse_command_line
from receptor.config._yamlv2 import YamlError, decode_config


@pytest.fixture
def write(tmp_path: Path):
    def write(text: str | bytes, name: str = "c.yml") -> str:
        path = tmp_path / name
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        return str(path)

    return write


def load(write, text: str | bytes) -> list[ConfigItem]:
    return load_config_file(write(text))


def error(write, text: str | bytes) -> str:
    with pytest.raises(ConfigError) as caught:
        load(write, text)
    message = str(caught.value)
    assert message.startswith("error loading config file: ")
    return message[len("error loading config file: ") :]


def one(write, entity: str, body: str) -> dict:
    (item,) = load(write, f"- {entity}:\n" + "".join(f"    {line}\n" for line in body.split("\n")))
    return item.values


PARSERS = [pytest.param(False, id="libyaml"), pytest.param(True, id="pure")]
if getattr(yaml, "CSafeLoader", None) is None:
    PARSERS = [pytest.param(True, id="pure")]


class TestScalarResolution:
    """What yaml.v2 makes of plain scalars, seen through a string field (``%d``, ``%f``)."""

    @pytest.mark.parametrize(
        ("text", "node_id"),
        [
            ("yes", "true"),
            ("y", "true"),
            ("Y", "true"),
            ("on", "true"),
            ("OFF", "false"),
            ("n", "false"),
            ("tRUE", "tRUE"),
            ("0x10", "16"),
            ("0o17", "15"),
            ("0640", "416"),
            ("1_000", "1000"),
            ("1e3", "1000.000000"),
            ("08", "8.000000"),
            (".5", "0.500000"),
            ("+1.", "1.000000"),
            ("1.5", "1.500000"),
            ("1:30", "1:30"),
            ("2001-12-14", "2001-12-14"),
            ("2001-12-14T21:59:43.10Z", "2001-12-14T21:59:43.10Z"),
            ("9223372036854775808", "9223372036854775808"),
            ("18446744073709551616", "18446744073709551616.000000"),
            (".nan", "NaN"),
            ("-.inf", "-Inf"),
            ("'12'", "12"),
            ('""', ""),
            ("!!str 12", "12"),
            ("!!float 2", "2.000000"),
            ("!custom 12", "12"),
            ("<<", "<<"),
            ("1e400", "1e400"),
        ],
    )
    def test_string_field(self, write, text: str, node_id: str) -> None:
        assert one(write, "node", f"id: {text}")["id"] == node_id

    def test_explicit_tag_mismatch(self, write) -> None:
        assert error(write, "- node:\n    id: !!int abc\n") == (
            "yaml: cannot decode !!str `abc` as a !!int"
        )

    def test_binary(self, write) -> None:
        assert one(write, "node", "id: !!binary aGVsbG8=")["id"] == "hello"
        assert error(write, "- node:\n    id: !!binary '!!'\n") == (
            "yaml: !!binary value contains invalid base64 data"
        )

    def test_null_value_is_refused(self, write) -> None:
        assert error(write, "- node:\n    id:\n") == (
            "error setting field id in command node: type error (expected string): value is null"
        )


class TestFieldTypes:
    @pytest.mark.parametrize(
        ("text", "permissions"),
        [("600", 600), ("0600", 384), ("0640", 0o640), ("0x1A4", 420), ("'0600'", 384)],
    )
    def test_int(self, write, text: str, permissions: int) -> None:
        assert one(write, "control-service", f"permissions: {text}")["permissions"] == permissions

    def test_float_into_int_truncates(self, write) -> None:
        assert one(write, "tcp-listener", "port: 2222.9")["port"] == 2222

    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            ("1e300", "value 1e+300 out of range for type int"),
            (".nan", "value NaN out of range for type int"),
            (
                "9223372036854775808",
                'strconv.ParseInt: parsing "9223372036854775808": value out of range',
            ),
            ("true", "type error (expected int)"),
            ("[1]", "type error (expected int)"),
            ("{a: 1}", "type error (expected int)"),
        ],
    )
    def test_int_errors(self, write, text: str, reason: str) -> None:
        assert error(write, f"- tcp-listener:\n    port: {text}\n") == (
            f"error setting field port in command tcp-listener: {reason}"
        )

    @pytest.mark.parametrize(("text", "cost"), [("2", 2.0), ("0.5", 0.5), ("'3'", 3.0)])
    def test_float(self, write, text: str, cost: float) -> None:
        assert one(write, "tcp-listener", f"port: 1\ncost: {text}")["cost"] == cost

    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            (".nan", "invalid value NaN: must be a finite number"),
            (".inf", "invalid value +Inf: must be a finite number"),
            ("'nan'", "invalid value NaN: must be a finite number"),
            ("yes", "type error (expected float64)"),
            ("cheap", 'strconv.ParseFloat: parsing "cheap": invalid syntax'),
        ],
    )
    def test_float_errors(self, write, text: str, reason: str) -> None:
        assert error(write, f"- tcp-listener:\n    port: 1\n    cost: {text}\n") == (
            f"error setting field cost in command tcp-listener: {reason}"
        )

    @pytest.mark.parametrize(
        ("text", "redial"), [("on", True), ("n", False), ("'Y'", True), ("'0'", False)]
    )
    def test_bool(self, write, text: str, redial: bool) -> None:
        assert one(write, "tcp-peer", f"address: h:1\nredial: {text}")["redial"] is redial

    @pytest.mark.parametrize(
        ("text", "reason"),
        [("1", "type error (expected bool)"), ("'on'", "could not parse on as boolean")],
    )
    def test_bool_errors(self, write, text: str, reason: str) -> None:
        assert error(write, f"- tcp-peer:\n    address: h:1\n    redial: {text}\n") == (
            f"error setting field redial in command tcp-peer: {reason}"
        )

    def test_string_list(self, write) -> None:
        body = "port: 1\nallowedpeers: [a, 12, '3']"
        assert one(write, "tcp-listener", body)["allowedpeers"] == ["a", "12", "3"]
        body = "port: 1\nallowedpeers: a"
        assert one(write, "tcp-listener", body)["allowedpeers"] == ["a"]
        body = "port: 1\nallowedpeers: []"
        assert one(write, "tcp-listener", body)["allowedpeers"] == []
        body = 'port: 1\nallowedpeers: \'["x", "y"]\''
        assert one(write, "tcp-listener", body)["allowedpeers"] == ["x", "y"]

    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            ("[1.5]", "invalid value %!s(float64=1.5): must be type string"),
            ("[yes]", "invalid value %!s(bool=true): must be type string"),
            ("[~]", "invalid value %!s(<nil>): must be type string"),
            ("[[a, b]]", "invalid value [a b]: must be type string"),
            ("[{a: 1}]", "invalid value map[a:%!s(int=1)]: must be type string"),
            ("{a: b}", "type error (expected []string)"),
            ("5", "type error (expected []string)"),
        ],
    )
    def test_string_list_errors(self, write, text: str, reason: str) -> None:
        assert error(write, f"- tcp-listener:\n    port: 1\n    allowedpeers: {text}\n") == (
            f"error setting field allowedpeers in command tcp-listener: {reason}"
        )

    def test_float_map(self, write) -> None:
        body = "port: 1\nnodecost: {a: 1, b: 2.5}"
        assert one(write, "tcp-listener", body)["nodecost"] == {"a": 1.0, "b": 2.5}
        body = "port: 1\nnodecost: '{\"a\": 3}'"
        assert one(write, "tcp-listener", body)["nodecost"] == {"a": 3.0}

    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            ("{1: 2}", "invalid key %!s(int=1): must be type string"),
            ("{yes: 2}", "invalid key %!s(bool=true): must be type string"),
            ("{~: 2}", "invalid key %!s(<nil>): must be type string"),
            ("{a: x}", "invalid value x: must be type float64"),
            ("{a: yes}", "invalid value %!s(bool=true): must be type float64"),
            ("{a: }", "invalid value %!s(<nil>): must be type float64"),
            ("{a: .nan}", "invalid value NaN: must be a finite number"),
            ("[a]", "type error (expected map[string]float64)"),
            ("a", "type error (expected map[string]float64)"),
        ],
    )
    def test_float_map_errors(self, write, text: str, reason: str) -> None:
        assert error(write, f"- tcp-listener:\n    port: 1\n    nodecost: {text}\n") == (
            f"error setting field nodecost in command tcp-listener: {reason}"
        )

    def test_any_map(self, write) -> None:
        body = "worktype: w\nplugin: p\nfunction: f\nconfig: {a: [1, ~], b: {1: x}}"
        assert one(write, "work-python", body)["config"] == {"a": [1, None], "b": {1: "x"}}
        assert error(
            write,
            "- work-python:\n    worktype: w\n    plugin: p\n    function: f\n    config: {1: x}\n",
        ) == (
            "error setting field config in command work-python: "
            "invalid key %!s(int=1): must be type string"
        )

    def test_firewall_rules_kept_as_given(self, write) -> None:
        body = (
            "id: a\nfirewallrules:\n  - action: drop\n    fromnode: 5\n    ToNode: [x]\n"
            "  - {action: accept}"
        )
        assert one(write, "node", body)["firewallrules"] == [
            {"action": "drop", "fromnode": 5, "ToNode": ["x"]},
            {"action": "accept"},
        ]

    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            ("[accept]", "invalid value accept: must be type netceptor.FirewallRuleData"),
            ("[~]", "invalid value %!s(<nil>): must be type netceptor.FirewallRuleData"),
            (
                '\'[{"action": "accept"}]\'',
                "invalid value map[action:accept]: must be type netceptor.FirewallRuleData",
            ),
            ("{action: accept}", "type error (expected []netceptor.FirewallRuleData)"),
        ],
    )
    def test_firewall_rules_errors(self, write, text: str, reason: str) -> None:
        assert error(write, f"- node:\n    firewallrules: {text}\n") == (
            f"error setting field firewallrules in command node: {reason}"
        )


class TestItems:
    def test_item_forms(self, write) -> None:
        items = load(write, "- trace\n- log-level: debug\n- local-only:\n- node: {id: a}\n")
        assert [i.entity.name for i in items] == ["trace", "log-level", "local-only", "node"]
        assert items[1].values == {"level": "debug"}
        assert items[1].explicit == frozenset({"level"})
        assert items[2].explicit == frozenset()
        assert all(i.source and i.source.endswith("c.yml") for i in items)
        assert [i.arg for i in items] == ["trace", "log-level", "local-only", "node"]

    def test_parameter_keys_are_case_insensitive(self, write) -> None:
        items = load(write, "- work-command:\n    workType: w\n    COMMAND: c\n")
        assert items[0].values["worktype"] == "w"
        assert items[0].explicit == frozenset({"worktype", "command"})

    def test_unknown_field_keeps_the_spelling(self, write) -> None:
        assert error(write, "- node:\n    BoGus: 1\n") == (
            "field BoGus not defined for command node: unknown field name BoGus"
        )

    def test_bare_scalar_error_names_the_go_field(self, write) -> None:
        assert error(write, "- tcp-listener: abc\n") == (
            'error setting field Port in command tcp-listener: strconv.ParseInt: parsing "abc": '
            "invalid syntax"
        )

    def test_bare_string_number(self, write) -> None:
        assert load(write, "- tcp-listener: '2222'\n")[0].values["port"] == 2222

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("- tcp-listener: 2222\n", "invalid config format for tcp-listener"),
            ("- log-level: yes\n", "invalid config format for log-level"),
            ("- node: [a]\n", "invalid config format for node"),
            ("- node: {5: a}\n", "invalid config format for node"),
            ("- 5\n", "unknown config file format"),
            ("- [trace]\n", "unknown config file format"),
            ("- ~\n", "unknown config file format"),
            ("- {}\n", "config format invalid: item has multiple names"),
            ("- {5: a}\n", "section key is not a string"),
            ("- y: a\n", "section key is not a string"),
            (
                "- UDP-listener: 1\n",
                "could not get config type for command UDP-listener: "
                "unknown config type UDP-listener",
            ),
            ("- Trace\n", "could not get config type for command Trace: unknown config type Trace"),
            (
                "- --node\n",
                "could not get config type for command --node: unknown config type --node",
            ),
            ("- trace\n- trace\n", "only one trace directive is allowed"),
            (
                "- version: x\n",
                "could not get barevalue for command version: command does not allow bare values",
            ),
            (
                "- work-command:\n    worktype: a\n",
                "error in work-command: required parameter missing: command",
            ),
            (
                "- tls-client:\n    cert: x\n",
                "error in tls-client: required parameters missing: name, key",
            ),
        ],
    )
    def test_item_errors(self, write, text: str, message: str) -> None:
        assert error(write, text) == message

    def test_lowercase_udp_listener(self, write) -> None:
        (item,) = load(write, "- udp-listener: '9'\n")
        assert item.entity.registered_name == "UDP-listener"
        assert item.values["port"] == 9

    def test_work_kubernetes(self, write) -> None:
        (item,) = load(write, "- work-kubernetes:\n    worktype: k\n    deletepodonrestart: no\n")
        assert item.values["deletepodonrestart"] is False
        assert item.values["authmethod"] == "incluster"

    def test_empty_and_comment_only_files(self, write) -> None:
        assert load(write, b"") == []
        assert load(write, "# nothing\n") == []
        assert load(write, "---\n~\n") == []
        result = parse_command_line(["-c", write(b"")])
        assert [i.entity.name for i in result.items] == ["node"]

    def test_only_the_first_document(self, write) -> None:
        assert [i.entity.name for i in load(write, "- trace\n---\n- [broken\n")] == ["trace"]

    def test_anchors_and_merges(self, write) -> None:
        text = (
            "- tcp-listener: &base\n    port: 1\n    cost: 2\n"
            "- ws-listener:\n    <<: *base\n    cost: 3\n"
        )
        items = load(write, text)
        assert items[1].values["port"] == 1
        assert items[1].values["cost"] == 3.0

    def test_duplicate_keys_last_wins(self, write) -> None:
        assert one(write, "node", "id: a\nid: b")["id"] == "b"

    def test_utf16_with_bom(self, write) -> None:
        (item,) = load(write, "- node:\n    id: é\n".encode("utf-16"))
        assert item.values["id"] == "é"


class TestErrors:
    @pytest.mark.parametrize("pure", PARSERS)
    @pytest.mark.parametrize(
        ("text", "message"),
        [
            (
                b"- node:\n    id: a\n- tcp-listener:\n    port: [1\n",
                "yaml: line 4: did not find expected ',' or ']'",
            ),
            (
                b"node:\n  id: a\n",
                "yaml: unmarshal errors:\n  line 1: cannot unmarshal !!map into []interface {}",
            ),
            (
                b"trace\n",
                "yaml: unmarshal errors:\n"
                "  line 1: cannot unmarshal !!str `trace` into []interface {}",
            ),
            (
                b"\n\n12345678901\n",
                "yaml: unmarshal errors:\n"
                "  line 3: cannot unmarshal !!int `1234567...` into []interface {}",
            ),
            (b"- a\nb: c\n", "yaml: line 1: did not find expected '-' indicator"),
            (b"- a: b: c\n", "yaml: mapping values are not allowed in this context"),
            (
                b"- a\n- b: 1\n   c: 2\n",
                "yaml: line 3: mapping values are not allowed in this context",
            ),
            (b"- {a: b\n", "yaml: line 1: did not find expected ',' or '}'"),
            (b'- "abc\n', "yaml: line 2: found unexpected end of stream"),
            (b"- @x\n", "yaml: found character that cannot start any token"),
            (b"- *x\n", "yaml: unknown anchor 'x' referenced"),
            (b"- &a [*a]\n", "yaml: anchor 'a' value contains itself"),
            (b"- {<<: 5}\n", "yaml: map merge requires map or sequence of maps as the value"),
            (b"- {[a]: b}\n", "yaml: invalid map key: [a]"),
            (b"- a\n\x00\n", "yaml: control characters are not allowed"),
            (b"- a\n\xff\xfe\n", "yaml: invalid leading UTF-8 octet"),
        ],
    )
    def test_yaml_errors(self, pure: bool, text: bytes, message: str) -> None:
        with pytest.raises(YamlError) as caught:
            decode_config(text, pure=pure)
        assert str(caught.value) == message

    def test_directory(self, tmp_path) -> None:
        with pytest.raises(ConfigError) as caught:
            load_config_file(str(tmp_path))
        assert str(caught.value) == f"error loading config file: read {tmp_path}: is a directory"

    def test_permission_denied(self, write) -> None:
        path = write("- trace\n")
        os.chmod(path, 0)
        # Root reads everything: as root, load the file in a forked child running as nobody.
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                if os.geteuid() == 0:
                    os.setuid(65534)
                try:
                    load_config_file(path)
                    message = "no error"
                except ConfigError as err:
                    message = str(err)
                os.write(write_end, message.encode())
            finally:
                os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            message = pipe.read().decode()
        os.waitpid(pid, 0)
        assert message == f"error loading config file: open {path}: permission denied"

    def test_not_a_directory(self, write) -> None:
        path = write("- trace\n") + "/x.yml"
        with pytest.raises(ConfigError) as caught:
            load_config_file(path)
        assert str(caught.value) == f"error loading config file: open {path}: not a directory"

    def test_nul_in_path(self) -> None:
        with pytest.raises(ConfigError) as caught:
            load_config_file("a\0b")
        assert str(caught.value) == "error loading config file: open a\0b: invalid argument"


class TestHostileInput:
    def test_too_large(self, write, monkeypatch) -> None:
        monkeypatch.setattr(_yamlv2, "MAX_CONFIG_BYTES", 100)
        path = write("- trace\n" + "#" * 200 + "\n")
        with pytest.raises(ConfigError) as caught:
            load_config_file(path)
        assert str(caught.value) == (
            f"error loading config file: read {path}: file too large (more than 100 bytes)"
        )

    @pytest.mark.parametrize("pure", PARSERS)
    def test_deep_flow_nesting(self, pure: bool) -> None:
        with pytest.raises(YamlError) as caught:
            decode_config(b"- " + b"[" * 1100 + b"]" * 1100 + b"\n", pure=pure)
        assert str(caught.value) == "yaml: exceeded maximum nesting depth"

    @pytest.mark.parametrize("pure", PARSERS)
    def test_deep_block_nesting(self, pure: bool) -> None:
        text = "".join("  " * i + "- \n" for i in range(1100)).encode()
        with pytest.raises(YamlError) as caught:
            decode_config(text, pure=pure)
        assert str(caught.value).endswith(": exceeded maximum nesting depth")

    @pytest.mark.parametrize("pure", PARSERS)
    def test_deep_nesting_within_the_limit(self, pure: bool) -> None:
        value = decode_config(b"- " + b"[" * 990 + b"]" * 990 + b"\n", pure=pure)
        depth = 0
        while isinstance(value, list) and value:
            value = value[0]
            depth += 1
        assert depth == 990

    def test_deep_value_in_a_field(self, write) -> None:
        text = "- node:\n    id: " + "[" * 900 + "]" * 900 + "\n"
        assert error(write, text) == (
            "error setting field id in command node: type error (expected string)"
        )
        text = "- node:\n    firewallrules: [" + "[" * 900 + "]" * 900 + "]\n"
        message = error(write, text)
        assert message.startswith(
            "error setting field firewallrules in command node: invalid value [["
        )
        assert message.endswith("]]: must be type netceptor.FirewallRuleData")

    def test_billion_laughs(self) -> None:
        lines = ["- &a0 [x, x, x, x, x, x, x, x, x, x]"]
        for i in range(1, 10):
            lines.append(f"- &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
        with pytest.raises(YamlError) as caught:
            decode_config(("\n".join(lines) + "\n").encode())
        assert str(caught.value) == "yaml: document contains excessive aliasing"

    def test_moderate_aliasing_is_fine(self) -> None:
        text = "- &a {x: 1}\n" + "".join(f"- {{<<: *a, y: {i}}}\n" for i in range(200))
        assert len(decode_config(text.encode())) == 201

    @pytest.mark.parametrize(
        "data",
        [b"\x89PNG\r\n\x1a\n\x00\x00", bytes(range(256)), b"\xef\xbb\xbf- trace\n", b"- \t\n"],
    )
    def test_binary(self, write, data: bytes) -> None:
        try:
            load(write, data)
        except ConfigError as exc:
            assert str(exc).startswith("error loading config file: ")
