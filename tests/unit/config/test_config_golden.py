"""Replay of the upstream daemon's configuration captures (``tests/data/config``).

Every case of ``INDEX`` is classified here.  ``parse-error`` cases fail while parsing: our
``ConfigError`` text must equal what upstream printed after ``Error: `` (help and bash
completion cases compare the whole output).  ``parses-ok`` cases are accepted by the parser -
their outcome (an error or a running daemon) comes from the Init/Prepare/Run phases, which the
daemon's tests replay - so here parsing must succeed with the right typed values.
"""

from collections.abc import Callable

import pytest

from receptor import ConfigError
from receptor.config import CommandLine, bash_completion, help_text, parse_command_line

from ._golden import GoldenCase, index, load

PARSE_ERROR = "parse-error"
PARSES_OK = "parses-ok"

CLASSIFICATION: dict[str, str] = {
    "noargs": PARSES_OK,
    "help_long": PARSES_OK,
    "help_short": PARSES_OK,
    "help_after_bad_entity": PARSE_ERROR,
    "help_before_bad_entity": PARSES_OK,
    "version": PARSES_OK,
    "version_single_dash_upper": PARSES_OK,
    "version_with_other": PARSE_ERROR,
    "bash_completion": PARSES_OK,
    "unknown_entity": PARSE_ERROR,
    "unknown_entity_triple_dash": PARSE_ERROR,
    "config_equals_form": PARSE_ERROR,
    "unknown_field": PARSE_ERROR,
    "bare_value_not_allowed": PARSE_ERROR,
    "param_before_entity": PARSE_ERROR,
    "empty_argument": PARSE_ERROR,
    "singleton_cli": PARSE_ERROR,
    "required_param_missing": PARSE_ERROR,
    "required_params_missing": PARSE_ERROR,
    "bool_invalid": PARSE_ERROR,
    "bool_on_invalid": PARSE_ERROR,
    "int_invalid": PARSE_ERROR,
    "float_invalid": PARSE_ERROR,
    "no_backends": PARSES_OK,
    "no_backends_loglevel_error": PARSES_OK,
    "node_id_localhost": PARSES_OK,
    "log_level_invalid": PARSES_OK,
    "idle_timeout_too_small": PARSES_OK,
    "idle_timeout_unparsable": PARSES_OK,
    "cost_zero": PARSES_OK,
    "nodecost_zero": PARSES_OK,
    "work_python": PARSES_OK,
    "worktype_duplicate": PARSES_OK,
    "wss_peer_without_tls": PARSES_OK,
    "ws_extraheader_bad": PARSES_OK,
    "unknown_tls_config": PARSES_OK,
    "work_signing_missing_key": PARSES_OK,
    "work_signing_no_expiration": PARSES_OK,
    "verifysignature_without_key": PARSES_OK,
    "startup_ok_local_only": PARSES_OK,
    "startup_ok_case_insensitive": PARSES_OK,
    "config_missing_arg": PARSES_OK,
    "yaml_file_missing": PARSE_ERROR,
    "yaml_top_level_mapping": PARSE_ERROR,
    "yaml_syntax_error": PARSE_ERROR,
    "yaml_item_multiple_keys": PARSE_ERROR,
    "yaml_entity_uppercase": PARSE_ERROR,
    "yaml_unknown_entity": PARSE_ERROR,
    "yaml_unknown_field": PARSE_ERROR,
    "yaml_bare_not_allowed": PARSE_ERROR,
    "yaml_singleton": PARSE_ERROR,
    "yaml_singleton_loglevel": PARSE_ERROR,
    "yaml_required_missing": PARSE_ERROR,
    "yaml_bool_invalid": PARSE_ERROR,
    "yaml_int_invalid": PARSE_ERROR,
    "yaml_exclusive_with_other": PARSE_ERROR,
    "yaml_exclusive_alone": PARSES_OK,
    "yaml_then_cli_singleton": PARSE_ERROR,
    "yaml_twice": PARSES_OK,
    "yaml_ok_forms": PARSES_OK,
    "cli_then_yaml_singleton_which": PARSES_OK,
    "yaml_float_to_string": PARSES_OK,
    "yaml_int_decimal_permissions": PARSES_OK,
    "yaml_int_octal_permissions": PARSES_OK,
    "firewallrules_cli": PARSE_ERROR,
    "firewallrules_bad_action": PARSES_OK,
    "firewallrules_unknown_key": PARSES_OK,
    "firewallrules_nonstring": PARSES_OK,
    "tls_server_nodeid_not_in_cert": PARSES_OK,
    "tls_client_nodeid_not_in_cert": PARSES_OK,
    "tls_client_bad_fingerprint": PARSES_OK,
    "tls_server_missing_file": PARSES_OK,
    "tls_server_ok": PARSES_OK,
    "tcp_peer_address_no_port": PARSES_OK,
    "udp_peer_address_no_port": PARSES_OK,
    "ws_peer_bad_url": PARSES_OK,
    "listener_port_out_of_range": PARSES_OK,
    "control_service_name_too_long": PARSES_OK,
    "control_tcplisten_bad": PARSES_OK,
    "control_socket_locked": PARSES_OK,
    "control_service_duplicate_service": PARSES_OK,
    "cert_init_with_other_entity": PARSE_ERROR,
    "cert_init_empty_commonname": PARSES_OK,
    "cert_init_bad_time": PARSES_OK,
    "cert_init_missing_required": PARSE_ERROR,
    "cert_makereq_no_key_option": PARSES_OK,
    "cert_makereq_both_key_options": PARSES_OK,
    "cert_makereq_bits_with_inkey": PARSES_OK,
    "cert_makereq_outkey_without_bits": PARSES_OK,
    "cert_makereq_bad_ip": PARSES_OK,
    "cert_signreq_no_names": PARSES_OK,
    "cert_signreq_prompt_yes": PARSES_OK,
    "cert_signreq_prompt_declined": PARSES_OK,
    "cert_signreq_prompt_eof": PARSES_OK,
    "cert_signreq_prompt_two_words": PARSES_OK,
    "cert_signreq_two_certs_in_cacert": PARSES_OK,
    "cert_signreq_cert_as_key": PARSES_OK,
    "cert_signreq_cert_as_req": PARSES_OK,
    "cert_signreq_wrong_ca_key": PARSES_OK,
    "cert_signreq_long_nodeid": PARSES_OK,
}

# Upstream panics on an empty argument (Go stack trace, exit 2); we refuse it cleanly.
OUR_ERRORS = {"empty_argument": "empty argument at position 3"}


def test_every_index_case_is_classified() -> None:
    assert set(index()) == set(CLASSIFICATION)


def test_index_cases_have_captures() -> None:
    for name in index():
        assert load(name).argv is not None


def run_case(case: GoldenCase, tmp_path, monkeypatch) -> CommandLine:
    """Parse the case's command in a directory holding its files, like the recording."""
    monkeypatch.chdir(tmp_path)
    for file_name, content in case.files.items():
        (tmp_path / file_name).write_bytes(content)
    return parse_command_line(case.argv)


ERROR_CASES = sorted(name for name, kind in CLASSIFICATION.items() if kind == PARSE_ERROR)
OK_CASES = sorted(name for name, kind in CLASSIFICATION.items() if kind == PARSES_OK)


@pytest.mark.parametrize("name", ERROR_CASES)
def test_parse_error_matches_upstream(name: str, tmp_path, monkeypatch) -> None:
    case = load(name)
    expected = OUR_ERRORS.get(name, case.error)
    assert expected is not None
    with pytest.raises(ConfigError) as caught:
        run_case(case, tmp_path, monkeypatch)
    assert str(caught.value) == expected


def _values(result: CommandLine, entity: str, index: int = 0) -> dict:
    return [item for item in result.items if item.entity.name == entity][index].values


def _entities(result: CommandLine) -> list[str]:
    return [item.entity.name for item in result.items]


def _check_help(result: CommandLine, case: GoldenCase) -> None:
    assert result.action == "help"
    assert result.items == []
    assert help_text("receptor").encode() == case.stdout


def _check_completion(result: CommandLine, case: GoldenCase) -> None:
    assert result.action == "bash-completion"
    assert bash_completion("receptor").encode() == case.stdout


def _check_version(result: CommandLine, case: GoldenCase) -> None:
    assert _entities(result) == ["version"]
    assert result.items[0].values == {}


def _check_node_a(result: CommandLine, case: GoldenCase) -> None:
    node = _values(result, "node")
    assert node["id"] == "a"
    assert node["datadir"] == "/tmp/receptor"
    assert node["firewallrules"] is None


def _check(**expected: object) -> Callable[[CommandLine, GoldenCase], None]:
    """Check ``entity__field=value`` pairs (first item of that entity) and the entity list."""

    def check(result: CommandLine, case: GoldenCase) -> None:
        assert result.action == "run"
        for key, value in expected.items():
            if key == "entities":
                assert _entities(result) == value
                continue
            entity, field = key.split("__")
            actual = _values(result, entity.replace("_", "-"))[field]
            assert actual == value and type(actual) is type(value), (key, actual)

    return check


def _check_cert_signreq(result: CommandLine, case: GoldenCase) -> None:
    assert _entities(result) == ["cert-signreq"]
    values = result.items[0].values
    assert values["cacert"] == "ca.crt" or values["cacert"] == "two.crt"
    assert values["outcert"].endswith(".crt")
    verify_given = any(arg.startswith("verify=") for arg in case.argv)
    assert values["verify"] is verify_given
    assert ("verify" in result.items[0].explicit) is verify_given


def _check_cert_makereq(result: CommandLine, case: GoldenCase) -> None:
    assert _entities(result) == ["cert-makereq"]
    values = result.items[0].values
    assert values["commonname"] == "x"
    assert values["outreq"] == "x.csr"
    assert values["bits"] == (2048 if "bits=2048" in case.argv else None)
    assert values["ipaddress"] == (["1.2.3"] if "ipaddress=1.2.3" in case.argv else None)
    assert values["dnsname"] is None


OK_CHECKS: dict[str, Callable[[CommandLine, GoldenCase], None]] = {
    "noargs": _check_help,
    "help_long": _check_help,
    "help_short": _check_help,
    "help_before_bad_entity": _check_help,
    "bash_completion": _check_completion,
    "version": _check_version,
    "version_single_dash_upper": _check_version,
    "yaml_exclusive_alone": _check_version,
    "no_backends": _check(entities=["node"], node__id="a"),
    "no_backends_loglevel_error": _check(entities=["node", "log-level"], log_level__level="error"),
    "node_id_localhost": _check(entities=["node", "local-only"], node__id="LocalHost"),
    "log_level_invalid": _check(log_level__level="foo"),
    "idle_timeout_too_small": _check(node__maxidleconnectiontimeout="5s"),
    "idle_timeout_unparsable": _check(node__maxidleconnectiontimeout="bogus"),
    "cost_zero": _check(
        tcp_listener__port=31997, tcp_listener__cost=0.0, tcp_listener__bindaddr="127.0.0.1"
    ),
    "nodecost_zero": _check(tcp_listener__nodecost={"b": 0.0}, tcp_listener__cost=1.0),
    "work_python": _check(
        entities=["node", "work-python", "local-only"],
        work_python__worktype="x",
        work_python__plugin="y",
        work_python__function="z",
    ),
    "worktype_duplicate": _check(
        entities=["node", "work-command", "work-command", "local-only"],
        work_command__worktype="x",
        work_command__command="cat",
        work_command__allowruntimeparams=False,
    ),
    "wss_peer_without_tls": _check(ws_peer__address="wss://127.0.0.1:31996/", ws_peer__redial=True),
    "ws_extraheader_bad": _check(ws_peer__extraheader="foo"),
    "ws_peer_bad_url": _check(ws_peer__address="http://127.0.0.1:31993/"),
    "unknown_tls_config": _check(tcp_listener__tls="nope"),
    "work_signing_missing_key": _check(
        work_signing__privatekey="/nonexistent/key.pem", work_signing__tokenexpiration="1h"
    ),
    "work_signing_no_expiration": _check(work_signing__privatekey="key.pem"),
    "verifysignature_without_key": _check(work_command__verifysignature=True),
    "startup_ok_local_only": _check(entities=["node", "local-only"], node__id="a"),
    "startup_ok_case_insensitive": _check(
        entities=["tcp-listener", "node"],
        tcp_listener__port=31337,
        tcp_listener__bindaddr="127.0.0.1",
        tcp_listener__cost=1.0,
        node__id="a",
    ),
    "config_missing_arg": _check(entities=["node"], node__datadir="/tmp/receptor"),
    "yaml_twice": _check(entities=["node", "local-only", "node", "local-only"], node__id="a"),
    "yaml_ok_forms": _check(
        entities=["node", "log-level", "trace", "local-only", "tcp-listener"],
        log_level__level="debug",
        tcp_listener__port=31994,
        tcp_listener__allowedpeers=["b", "c"],
        tcp_listener__nodecost={"b": 1.5},
    ),
    "cli_then_yaml_singleton_which": _check(
        entities=["node", "node", "local-only", "control-service"],
        control_service__filename="c.sock",
        control_service__service="control",
        control_service__permissions=0o600,
    ),
    "yaml_float_to_string": _check(node__id="1.500000"),
    "yaml_int_decimal_permissions": _check(control_service__permissions=600),
    "yaml_int_octal_permissions": _check(control_service__permissions=0o640),
    "firewallrules_bad_action": _check(node__firewallrules=[{"action": "allow"}]),
    "firewallrules_unknown_key": _check(
        node__firewallrules=[{"action": "accept", "fromhost": "b"}]
    ),
    "firewallrules_nonstring": _check(node__firewallrules=[{"action": "accept", "fromnode": 5}]),
    "tls_server_nodeid_not_in_cert": _check(
        tls_server__name="srv",
        tls_server__cert="b.crt",
        tls_server__key="b.key",
        tls_server__skipreceptornamescheck=False,
    ),
    "tls_client_nodeid_not_in_cert": _check(tls_client__name="cli", tls_client__cert="b.crt"),
    "tls_client_bad_fingerprint": _check(tls_client__pinnedservercert=["abcd"]),
    "tls_server_missing_file": _check(tls_server__cert="nope.crt", tls_server__mintls13=False),
    "tls_server_ok": _check(node__id="c", tls_server__name="srv"),
    "tcp_peer_address_no_port": _check(tcp_peer__address="foo", tcp_peer__redial=True),
    "udp_peer_address_no_port": _check(udp_peer__address="foo", udp_peer__cost=1.0),
    "listener_port_out_of_range": _check(tcp_listener__port=99999),
    "control_service_name_too_long": _check(control_service__service="toolongname"),
    "control_tcplisten_bad": _check(control_service__tcplisten="abc"),
    "control_socket_locked": _check(node__id="b", control_service__filename="c.sock"),
    "control_service_duplicate_service": _check(control_service__filename="c1.sock"),
    "cert_init_empty_commonname": _check(cert_init__commonname="", cert_init__bits=2048),
    "cert_init_bad_time": _check(
        cert_init__notbefore="2024-01-01", cert_init__outkey="ca.key", cert_init__notafter=None
    ),
    "cert_makereq_no_key_option": _check_cert_makereq,
    "cert_makereq_both_key_options": _check_cert_makereq,
    "cert_makereq_bits_with_inkey": _check_cert_makereq,
    "cert_makereq_outkey_without_bits": _check_cert_makereq,
    "cert_makereq_bad_ip": _check_cert_makereq,
    "cert_signreq_no_names": _check_cert_signreq,
    "cert_signreq_prompt_yes": _check_cert_signreq,
    "cert_signreq_prompt_declined": _check_cert_signreq,
    "cert_signreq_prompt_eof": _check_cert_signreq,
    "cert_signreq_prompt_two_words": _check_cert_signreq,
    "cert_signreq_two_certs_in_cacert": _check_cert_signreq,
    "cert_signreq_cert_as_key": _check_cert_signreq,
    "cert_signreq_cert_as_req": _check_cert_signreq,
    "cert_signreq_wrong_ca_key": _check_cert_signreq,
    "cert_signreq_long_nodeid": _check_cert_signreq,
}


def test_every_ok_case_has_a_check() -> None:
    assert set(OK_CHECKS) == set(OK_CASES)


@pytest.mark.parametrize("name", OK_CASES)
def test_parses_ok_with_typed_values(name: str, tmp_path, monkeypatch) -> None:
    case = load(name)
    result = run_case(case, tmp_path, monkeypatch)
    OK_CHECKS[name](result, case)
    if result.action == "run":
        for item in result.items:
            assert set(item.values) == {f.name for f in item.entity.fields}


def test_cli_then_yaml_singleton_order(tmp_path, monkeypatch) -> None:
    """Both nodes are kept, the file's last: the daemon's last Init wins (node ID "file")."""
    result = run_case(load("cli_then_yaml_singleton_which"), tmp_path, monkeypatch)
    nodes = [item for item in result.items if item.entity.name == "node"]
    assert [n.values["id"] for n in nodes] == ["cli", "file"]
    assert [n.source for n in nodes] == [None, "c.yml"]
    assert nodes[0].arg == "--node"
    assert nodes[1].arg == "node"
    assert result.reload_file == "c.yml"
    assert result.config_files == ["c.yml"]


def test_yaml_twice_loads_both_copies(tmp_path, monkeypatch) -> None:
    result = run_case(load("yaml_twice"), tmp_path, monkeypatch)
    assert result.config_files == ["c.yml", "c.yml"]
    assert result.reload_file == "c.yml"


def test_config_missing_arg_has_implicit_node(tmp_path, monkeypatch) -> None:
    result = run_case(load("config_missing_arg"), tmp_path, monkeypatch)
    (node,) = result.items
    assert node.arg == "implicit node"
    assert node.explicit == frozenset()
    assert node.values["id"] is None
    assert result.config_files == []
    assert result.reload_file is None


def test_case_insensitive_names_keep_the_argument(tmp_path, monkeypatch) -> None:
    result = run_case(load("startup_ok_case_insensitive"), tmp_path, monkeypatch)
    assert [item.arg for item in result.items] == ["--TCP-Listener", "-NODE"]
    assert result.items[0].explicit == frozenset({"port", "bindaddr"})
