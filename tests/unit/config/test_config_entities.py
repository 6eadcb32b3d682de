"""Entity declarations, help text and bash completion."""

import pytest

from receptor.config import (
    ENTITIES,
    RELOADABLE_ENTITIES,
    FieldType,
    bash_completion,
    entity_by_name,
    help_text,
)

from ._golden import load


def test_registration_order() -> None:
    assert [e.name for e in ENTITIES] == [
        "node",
        "local-only",
        "version",
        "log-level",
        "trace",
        "tls-server",
        "tls-client",
        "cert-init",
        "cert-makereq",
        "cert-signreq",
        "control-service",
        "command-service",
        "ip-router",
        "tcp-server",
        "tcp-client",
        "udp-server",
        "udp-client",
        "unix-socket-server",
        "unix-socket-client",
        "tcp-listener",
        "tcp-peer",
        "udp-listener",
        "udp-peer",
        "ws-listener",
        "ws-peer",
        "work-signing",
        "work-verification",
        "work-command",
        "command-runner",
        "work-kubernetes",
        "work-python",
    ]


@pytest.mark.parametrize(
    ("name", "flags"),
    [
        ("node", {"required", "singleton"}),
        ("local-only", {"singleton"}),
        ("log-level", {"singleton"}),
        ("trace", {"singleton"}),
        ("work-signing", {"singleton"}),
        ("work-verification", {"singleton"}),
        ("version", {"exclusive"}),
        ("cert-init", {"exclusive"}),
        ("cert-makereq", {"exclusive"}),
        ("cert-signreq", {"exclusive"}),
        ("command-runner", {"hidden"}),
        ("tcp-listener", set()),
        ("control-service", set()),
        ("work-kubernetes", set()),
    ],
)
def test_flags(name: str, flags: set[str]) -> None:
    entity = entity_by_name(name)
    assert entity is not None
    actual = {f for f in ("required", "singleton", "exclusive", "hidden") if getattr(entity, f)}
    assert actual == flags


def test_lookup() -> None:
    udp = entity_by_name("UDP-Listener")
    assert udp is not None
    assert udp.name == "udp-listener"
    assert udp.registered_name == "UDP-listener"
    assert entity_by_name("udp-peer") is entity_by_name("UDP-peer")
    assert entity_by_name("config") is None
    assert entity_by_name("--node") is None


def test_bare_fields() -> None:
    bare = {e.name: e.bare_field.name for e in ENTITIES if e.bare_field is not None}
    assert bare == {
        "node": "id",
        "log-level": "level",
        "tcp-listener": "port",
        "tcp-peer": "address",
        "udp-listener": "port",
        "udp-peer": "address",
        "ws-listener": "port",
        "ws-peer": "address",
        "work-signing": "privatekey",
        "work-verification": "publickey",
    }


def test_field_types_and_defaults() -> None:
    node = entity_by_name("node")
    assert node is not None
    assert [f.name for f in node.fields][:4] == [
        "id",
        "datadir",
        "firewallrules",
        "maxidleconnectiontimeout",
    ]
    assert node.field("FirewallRules").type is FieldType.FIREWALL_RULES
    control = entity_by_name("control-service")
    assert control is not None
    permissions = control.field("permissions")
    assert permissions.default == 0o600
    assert permissions.default_text == "0600"
    listener = entity_by_name("tcp-listener")
    assert listener is not None
    assert listener.field("cost").default == 1.0
    assert listener.field("nodecost").type is FieldType.FLOAT_MAP
    assert listener.field("port").required and listener.field("port").bare
    assert entity_by_name("cert-signreq").field("verify").default is False
    assert entity_by_name("work-python").field("config").type is FieldType.ANY_MAP


def test_every_field_name_is_unique_per_entity() -> None:
    for entity in ENTITIES:
        names = [f.name for f in entity.fields]
        assert len(names) == len(set(names)), entity.name


def test_reloadable_entities_exist() -> None:
    for name in RELOADABLE_ENTITIES:
        assert entity_by_name(name) is not None


def test_help_is_byte_exact() -> None:
    assert help_text("receptor").encode() == load("help_long").stdout


def test_completion_is_byte_exact() -> None:
    assert bash_completion("receptor").encode() == load("bash_completion").stdout


def test_help_uses_the_base_name() -> None:
    text = help_text("/usr/local/bin/receptor-1.4")
    assert text.startswith("Usage: receptor-1.4 [--<action> [<param>=<value> ...] ...]\n\n")
    assert 'Run ". <(receptor-1.4 --bash-completion)" to activate now' in text
    assert help_text("").startswith("Usage: . ")
    assert help_text("/").startswith("Usage: / ")
    assert help_text("bin/receptor/").startswith("Usage: receptor ")


def test_completion_uses_the_base_name() -> None:
    script = bash_completion("./bin/rcpt")
    assert script.startswith("_rcpt()\n")
    assert script.endswith("complete -F _rcpt rcpt\n")


def test_hidden_and_undocumented_entities() -> None:
    text = help_text("receptor")
    script = bash_completion("receptor")
    assert "--command-runner" not in text
    assert "--command-runner " in script  # listed among the commands, without a case
    assert "--command-runner)" not in script
    assert "kubernetes" not in text
    assert "kubernetes" not in script
