"""Command-line parsing rules (config.md section 1)."""

import pytest

from receptor import ConfigError
from receptor.config import CommandLine, ConfigItem, parse_command_line


def parse(*argv: str) -> CommandLine:
    return parse_command_line(list(argv))


def error(*argv: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_command_line(list(argv))
    return str(caught.value)


def item(result: CommandLine, entity: str, index: int = 0) -> ConfigItem:
    return [i for i in result.items if i.entity.name == entity][index]


def values(*argv: str, entity: str | None = None) -> dict:
    result = parse(*argv)
    return (result.items[0] if entity is None else item(result, entity)).values


class TestArguments:
    def test_no_arguments_is_help(self) -> None:
        assert parse().action == "help"

    @pytest.mark.parametrize("flag", ["-h", "-H", "--help", "--HELP", "--Help"])
    def test_help_spellings(self, flag: str) -> None:
        assert parse("--node", "id=a", flag, "--bogus").action == "help"

    @pytest.mark.parametrize("flag", ["--bash-completion", "--BASH-Completion"])
    def test_completion_spellings(self, flag: str) -> None:
        assert parse(flag, "--help").action == "bash-completion"

    def test_help_after_completion(self) -> None:
        assert parse("--help", "--bash-completion").action == "help"

    @pytest.mark.parametrize("arg", ["-help", "---help", "-bash-completion", "help"])
    def test_not_help(self, arg: str) -> None:
        with pytest.raises(ConfigError):
            parse(arg)

    def test_errors_before_help_win(self) -> None:
        assert error("--node", "bogus=1", "--help") == "config error: unknown field name bogus"

    def test_required_check_happens_before_help(self) -> None:
        # The accumulated entity is only checked when the next dash argument arrives, and
        # --help returns before that.
        assert parse("--tcp-listener", "--help").action == "help"

    @pytest.mark.parametrize("arg", ["-node", "--node", "-NODE", "--Node"])
    def test_one_or_two_dashes(self, arg: str) -> None:
        assert parse(arg, "id=x").items[0].values["id"] == "x"

    def test_three_dashes_are_not_stripped(self) -> None:
        assert error("---node") == "command error: unknown config type -node"

    @pytest.mark.parametrize("arg", ["-", "--"])
    def test_lone_dashes(self, arg: str) -> None:
        assert error(arg) == "command error: unknown config type "

    def test_unknown_entity_is_lower_cased(self) -> None:
        assert error("--FooBar") == "command error: unknown config type foobar"

    def test_config_equals_is_an_entity_name(self) -> None:
        assert error("--CONFIG=x.yml") == "command error: unknown config type config=x.yml"

    def test_parameter_before_entity(self) -> None:
        assert error("id=a") == "parameter specified before command"

    def test_parameter_after_config_file(self, tmp_path) -> None:
        cfg = tmp_path / "c.yml"
        cfg.write_text("- local-only\n")
        assert error("--node", "-c", str(cfg), "id=a") == "parameter specified before command"

    @pytest.mark.parametrize(
        ("argv", "position"),
        [([""], 1), (["--node", "id=a", ""], 3), (["--node", "", "id=a"], 2), (["-c", ""], 2)],
    )
    def test_empty_argument(self, argv: list[str], position: int) -> None:
        assert error(*argv) == f"empty argument at position {position}"

    def test_empty_argument_after_help_is_never_seen(self) -> None:
        assert parse("--help", "").action == "help"

    def test_entity_without_parameters(self) -> None:
        result = parse("--node", "--local-only")
        assert [i.entity.name for i in result.items] == ["node", "local-only"]
        assert result.items[1].values == {"local": None}
        assert result.items[1].explicit == frozenset()


class TestParameters:
    def test_split_at_first_equals(self) -> None:
        result = parse("--node", "--work-command", "worktype=a", "command=sh", "params=-c 'x=1'")
        assert item(result, "work-command").values["params"] == "-c 'x=1'"

    def test_field_names_are_case_insensitive(self) -> None:
        result = parse("--work-command", "WorkType=a", "COMMAND=b")
        assert result.items[0].values["worktype"] == "a"
        assert result.items[0].explicit == frozenset({"worktype", "command"})

    def test_unknown_field_is_lower_cased(self) -> None:
        assert error("--node", "FooBar=1") == "config error: unknown field name foobar"

    def test_empty_key(self) -> None:
        assert error("--node", "=x") == "config error: unknown field name "

    def test_empty_value(self) -> None:
        assert values("--node", "id=")["id"] == ""

    def test_bare_value(self) -> None:
        assert values("--tcp-listener", "2222")["port"] == 2222
        assert values("--log-level", "debug")["level"] == "debug"
        assert values("--work-signing", "k.pem")["privatekey"] == "k.pem"

    def test_bare_value_error_names_the_go_field(self) -> None:
        assert error("--tcp-listener", "abc") == (
            'error setting config value for field Port: strconv.ParseInt: parsing "abc": '
            "invalid syntax"
        )

    def test_bare_value_not_allowed(self) -> None:
        assert error("--version", "x") == "config error: command does not allow bare values"

    def test_keyed_error_names_the_key_lower_cased(self) -> None:
        assert error("--tcp-listener", "PORT=x").startswith(
            "error setting config value for field port: "
        )

    def test_last_assignment_wins(self) -> None:
        assert values("--node", "id=a", "id=b")["id"] == "b"
        assert values("--node", "a", "id=b", "c")["id"] == "c"

    def test_bare_value_counts_as_the_required_field(self) -> None:
        assert values("--tcp-peer", "h:1")["address"] == "h:1"


class TestRequired:
    def test_single(self) -> None:
        assert (
            error("--tcp-listener") == "error in --tcp-listener: required parameter missing: port"
        )

    def test_several_in_declaration_order(self) -> None:
        assert error("--TLS-Server", "cert=x") == (
            "error in --TLS-Server: required parameters missing: name, key"
        )

    def test_checked_when_the_next_entity_starts(self) -> None:
        assert error("--tcp-listener", "--node") == (
            "error in --tcp-listener: required parameter missing: port"
        )

    def test_command_runner_params_may_be_empty(self) -> None:
        result = parse("--command-runner", "command=x", "params=", "unitdir=/u")
        assert result.items[0].values == {"command": "x", "params": "", "unitdir": "/u"}


class TestSingletonAndExclusive:
    def test_singleton_twice(self) -> None:
        assert error("--log-level", "info", "--LOG-LEVEL") == (
            'directive "log-level" is only allowed once'
        )

    def test_singleton_message_uses_registered_name(self) -> None:
        assert error("--trace", "--trace") == 'directive "trace" is only allowed once'

    def test_not_singleton(self) -> None:
        result = parse("--udp-listener", "1", "--UDP-Listener", "2")
        assert [i.values["port"] for i in result.items if i.entity.name == "udp-listener"] == [
            1,
            2,
        ]

    def test_cli_then_file_is_accepted(self, tmp_path) -> None:
        cfg = tmp_path / "c.yml"
        cfg.write_text("- node:\n    id: file\n")
        result = parse("--node", "id=cli", "-c", str(cfg))
        assert [i.values["id"] for i in result.items] == ["cli", "file"]

    def test_file_then_cli_is_refused(self, tmp_path) -> None:
        cfg = tmp_path / "c.yml"
        cfg.write_text("- trace\n")
        assert error("-c", str(cfg), "--trace") == 'directive "trace" is only allowed once'

    def test_two_files_are_not_compared(self, tmp_path) -> None:
        first = tmp_path / "a.yml"
        first.write_text("- log-level: info\n")
        second = tmp_path / "b.yml"
        second.write_text("- log-level: debug\n")
        result = parse("-c", str(first), "--config", str(second))
        assert [i.values["level"] for i in result.items if i.entity.name == "log-level"] == [
            "info",
            "debug",
        ]

    @pytest.mark.parametrize(
        "argv",
        [["--version", "--node"], ["--node", "--version"], ["--version", "--version"]],
    )
    def test_exclusive_with_anything(self, argv: list[str]) -> None:
        assert error(*argv) == "cannot specify any other options with version"

    def test_first_exclusive_is_named(self) -> None:
        argv = ["--cert-makereq", "commonname=a", "outreq=r", "--version"]
        assert error(*argv) == "cannot specify any other options with cert-makereq"

    def test_exclusive_alone_has_no_implicit_node(self) -> None:
        assert [i.entity.name for i in parse("-Version").items] == ["version"]

    def test_implicit_node_is_last(self) -> None:
        result = parse("--local-only", "--trace")
        assert [i.entity.name for i in result.items] == ["local-only", "trace", "node"]
        node = result.items[-1]
        assert node.arg == "implicit node"
        assert node.source is None
        assert node.values == {
            "id": None,
            "datadir": "/tmp/receptor",
            "firewallrules": None,
            "maxidleconnectiontimeout": None,
            "receptorkubesupportreconnect": None,
            "receptorkubeclientsetqps": None,
            "receptorkubeclientsetburst": None,
            "receptorkubeclientsetratelimiter": None,
        }


class TestConfigArgument:
    @pytest.fixture
    def cfg(self, tmp_path) -> str:
        path = tmp_path / "c.yml"
        path.write_text("- local-only\n")
        return str(path)

    @pytest.mark.parametrize("flag", ["-c", "--config"])
    def test_exact_spelling_enables_reload(self, cfg: str, flag: str) -> None:
        result = parse(flag, cfg)
        assert result.reload_file == cfg
        assert result.config_files == [cfg]

    @pytest.mark.parametrize("flag", ["-C", "--CONFIG", "--Config", "-config", "--c"])
    def test_other_spellings_load_without_reload(self, cfg: str, flag: str) -> None:
        result = parse(flag, cfg)
        assert result.reload_file is None
        assert result.config_files == [cfg]
        assert [i.entity.name for i in result.items] == ["local-only", "node"]

    def test_first_exact_spelling_wins(self, cfg: str, tmp_path) -> None:
        other = tmp_path / "d.yml"
        other.write_text("- trace\n")
        result = parse("-C", cfg, "--config", str(other), "-c", cfg)
        assert result.reload_file == str(other)
        assert result.config_files == [cfg, str(other), cfg]

    @pytest.mark.parametrize("flags", [["-c", "-c"], ["-C", "-c"], ["-c", "--CONFIG"]])
    def test_repeated_config_flags(self, cfg: str, flags: list[str]) -> None:
        result = parse(*flags, cfg)
        assert result.reload_file == cfg
        assert result.config_files == [cfg]

    def test_trailing_config_is_ignored(self) -> None:
        result = parse("--node", "id=a", "--config")
        assert result.reload_file is None
        assert result.config_files == []
        assert [i.entity.name for i in result.items] == ["node"]

    def test_file_items_at_the_config_position(self, cfg: str) -> None:
        result = parse("--node", "id=a", "-c", cfg, "--trace")
        assert [i.entity.name for i in result.items] == ["node", "local-only", "trace"]
        assert [i.source for i in result.items] == [None, cfg, None]

    def test_config_stays_pending_across_entities(self) -> None:
        # Upstream quirk: the next non-dash argument is the file, even after an entity.
        assert error("-c", "--node", "id=a") == (
            "error loading config file: open id=a: no such file or directory"
        )

    def test_missing_file(self, tmp_path) -> None:
        missing = tmp_path / "nope.yml"
        assert error("-c", str(missing)) == (
            f"error loading config file: open {missing}: no such file or directory"
        )


class TestValues:
    @pytest.mark.parametrize(
        ("text", "port"),
        [("0x7A69", 31337), ("075000", 31232), ("0o17", 15), ("0b101", 5), ("1_000", 1000)],
    )
    def test_int_base_detection(self, text: str, port: int) -> None:
        assert values("--tcp-listener", f"port={text}")["port"] == port

    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            ("08", "invalid syntax"),
            ("1.5", "invalid syntax"),
            ("", "invalid syntax"),
            ("9223372036854775808", "value out of range"),
            ("-9223372036854775809", "value out of range"),
        ],
    )
    def test_int_errors(self, text: str, reason: str) -> None:
        assert error("--tcp-listener", f"port={text}") == (
            f'error setting config value for field port: strconv.ParseInt: parsing "{text}": '
            f"{reason}"
        )

    @pytest.mark.parametrize(
        ("text", "cost"), [("2", 2.0), ("1.5e1", 15.0), (".5", 0.5), ("0x1p-2", 0.25), ("-1", -1.0)]
    )
    def test_float(self, text: str, cost: float) -> None:
        assert values("--tcp-listener", "1", f"cost={text}")["cost"] == cost

    @pytest.mark.parametrize(("text", "shown"), [("NaN", "NaN"), ("inf", "+Inf"), ("-Inf", "-Inf")])
    def test_float_must_be_finite(self, text: str, shown: str) -> None:
        assert error("--tcp-listener", "1", f"cost={text}") == (
            f"error setting config value for field cost: invalid value {shown}: "
            "must be a finite number"
        )

    def test_float_out_of_range(self) -> None:
        assert error("--tcp-listener", "1", "cost=1e400") == (
            'error setting config value for field cost: strconv.ParseFloat: parsing "1e400": '
            "value out of range"
        )

    @pytest.mark.parametrize(
        "text", ["1", "t", "T", "Y", "true", "TRUE", "True", "yes", "Yes", "YES"]
    )
    def test_true_spellings(self, text: str) -> None:
        assert values("--tcp-peer", "h:1", f"redial={text}")["redial"] is True

    @pytest.mark.parametrize(
        "text", ["0", "f", "F", "N", "false", "FALSE", "False", "no", "No", "NO"]
    )
    def test_false_spellings(self, text: str) -> None:
        assert values("--tcp-peer", "h:1", f"redial={text}")["redial"] is False

    @pytest.mark.parametrize("text", ["y", "n", "on", "off", "tRUE", "yEs", "", "2"])
    def test_refused_bool_spellings(self, text: str) -> None:
        assert error("--tcp-peer", "h:1", f"redial={text}") == (
            f"error setting config value for field redial: could not parse {text} as boolean"
        )

    def test_strings_are_kept_verbatim(self) -> None:
        assert values("--node", "id=0x10")["id"] == "0x10"
        assert values("--node", "id={not json")["id"] == "{not json"

    def test_list_appends(self) -> None:
        result = values("--tcp-listener", "1", "allowedpeers=a", "AllowedPeers=b")
        assert result["allowedpeers"] == ["a", "b"]

    def test_list_json_replaces(self) -> None:
        argv = ["--tcp-listener", "1", "allowedpeers=a", 'allowedpeers=["b","c"]']
        assert values(*argv)["allowedpeers"] == ["b", "c"]
        argv = ["--tcp-listener", "1", 'allowedpeers=["b"]', "allowedpeers=a"]
        assert values(*argv)["allowedpeers"] == ["b", "a"]

    def test_omitted_list_differs_from_empty_list(self) -> None:
        assert values("--tcp-listener", "1")["allowedpeers"] is None
        assert values("--tcp-listener", "1", "allowedpeers=[]")["allowedpeers"] == []

    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            ("[1]", "invalid value %!s(float64=1): must be type string"),
            ("[true]", "invalid value %!s(bool=true): must be type string"),
            ("[null]", "invalid value %!s(<nil>): must be type string"),
            ('[["a"]]', "invalid value [a]: must be type string"),
            ('[{"a":1}]', "invalid value map[a:%!s(float64=1)]: must be type string"),
            ("[a]", "invalid character 'a' looking for beginning of value"),
            ('["a"', "unexpected end of JSON input"),
            ('["a"] x', "invalid character 'x' after top-level value"),
        ],
    )
    def test_list_json_errors(self, text: str, reason: str) -> None:
        assert error("--tcp-listener", "1", f"allowedpeers={text}") == (
            f"error setting config value for field allowedpeers: {reason}"
        )

    def test_float_map(self) -> None:
        result = values("--tcp-listener", "1", 'nodecost={"a":2,"b":0.5}')
        assert result["nodecost"] == {"a": 2.0, "b": 0.5}

    def test_float_map_replaces(self) -> None:
        argv = ["--tcp-listener", "1", 'nodecost={"a":2}', 'nodecost={"b":3}']
        assert values(*argv)["nodecost"] == {"b": 3.0}

    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            ("a:1", "type error (expected map[string]float64)"),
            ('{"a":"x"}', "invalid value x: must be type float64"),
            ('{"a":true}', "invalid value %!s(bool=true): must be type float64"),
            ('{"a":null}', "invalid value %!s(<nil>): must be type float64"),
            ('{"a":[1]}', "invalid value [%!s(float64=1)]: must be type float64"),
            ('{"a":1e999}', "json: cannot unmarshal number 1e999 into Go value of type float64"),
            ("{a:1}", "invalid character 'a' looking for beginning of object key string"),
            ('{"a" 1}', "invalid character '1' after object key"),
            ('{"a":1,}', "invalid character '}' looking for beginning of object key string"),
        ],
    )
    def test_float_map_errors(self, text: str, reason: str) -> None:
        assert error("--tcp-listener", "1", f"nodecost={text}") == (
            f"error setting config value for field nodecost: {reason}"
        )

    def test_any_map(self) -> None:
        argv = ["--work-python", "worktype=w", "plugin=p", "function=f"]
        result = values(*argv, 'config={"a":{"b":[1,null]},"c":"d"}', entity="work-python")
        assert result["config"] == {"a": {"b": [1.0, None]}, "c": "d"}

    def test_any_map_needs_json(self) -> None:
        argv = ["--work-python", "worktype=w", "plugin=p", "function=f", "config=x"]
        assert error(*argv) == (
            "error setting config value for field config: "
            "type error (expected map[string]interface {})"
        )

    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            (
                '[{"action":"accept"}]',
                "invalid value map[action:accept]: must be type netceptor.FirewallRuleData",
            ),
            (
                '[{"tonode":"b","action":1}]',
                "invalid value map[action:%!s(float64=1) tonode:b]: "
                "must be type netceptor.FirewallRuleData",
            ),
            ('["a"]', "invalid value a: must be type netceptor.FirewallRuleData"),
            ("accept", "type error (expected []netceptor.FirewallRuleData)"),
        ],
    )
    def test_firewall_rules_are_refused(self, text: str, reason: str) -> None:
        assert error("--node", f"firewallrules={text}") == (
            f"error setting config value for field firewallrules: {reason}"
        )

    def test_empty_firewall_rules(self) -> None:
        assert values("--node", "firewallrules=[]")["firewallrules"] == []


class TestDeclarations:
    def test_defaults(self) -> None:
        listener = values("--tcp-listener", "1")
        assert listener == {
            "bindaddr": "0.0.0.0",
            "port": 1,
            "tls": None,
            "cost": 1.0,
            "nodecost": None,
            "allowedpeers": None,
        }
        assert values("--ws-listener", "1")["path"] == "/"
        control = values("--control-service")
        assert control["service"] == "control"
        assert control["permissions"] == 0o600
        assert (
            values("--cert-signreq", "req=r", "cacert=c", "cakey=k", "outcert=o")["verify"] is False
        )
        assert values("--log-level")["level"] == "error"
        assert values("--tls-client", "name=n", "cert=c", "key=k")["skipreceptornamescheck"] is None

    def test_explicit_value_equal_to_default_is_explicit(self) -> None:
        result = parse("--tcp-listener", "1", "cost=1.0")
        assert result.items[0].explicit == frozenset({"port", "cost"})

    def test_work_kubernetes(self) -> None:
        result = values("--work-kubernetes", "worktype=k", "namespace=ns", "image=busybox")
        assert result["authmethod"] == "incluster"
        assert result["streammethod"] == "logger"
        assert result["deletepodonrestart"] is True
        assert result["allowruntimepod"] is False
        assert result["kubeconfig"] is None

    def test_udp_entities_any_case(self) -> None:
        result = parse("--UDP-listener", "1", "--udp-PEER", "h:2")
        assert [i.entity.registered_name for i in result.items[:2]] == ["UDP-listener", "UDP-peer"]
