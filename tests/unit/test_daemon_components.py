"""The daemon's table of components (``receptor._daemon.COMPONENTS``) matches the components:
a component is loaded only for the entities listed there, so a missing name would leave an
entity without its handler."""

from importlib import import_module

import pytest

from receptor._daemon import COMPONENTS, Daemon
from receptor.config import ENTITIES, parse_command_line


@pytest.mark.parametrize(("module", "name", "entities"), COMPONENTS)
def test_each_components_entities_are_exactly_those_it_handles(module, name, entities):
    cls = getattr(import_module(module), name)
    component = cls.__new__(cls)  # handlers() only names bound methods
    component.daemon = None
    handled = set()
    for phase in cls.handlers(component).values():
        handled.update(phase)
    assert handled == entities


def test_every_entity_of_the_configuration_has_a_home():
    daemon = Daemon(parse_command_line(["--node", "id=n1"]), [], "receptor")
    assert {entity.name for entity in ENTITIES} <= daemon.implemented() | {
        "command-service",
        "ip-router",
    }


def test_only_the_components_a_configuration_names_are_loaded():
    command_line = parse_command_line(
        ["--node", "id=n1", "--tls-client", "name=x", "cert=c", "key=k", "--local-only"]
    )
    daemon = Daemon(command_line, [], "receptor")
    assert daemon.components == []
    daemon._load_components(command_line.items)
    assert [type(c).__name__ for c in daemon.components] == ["TLSEntities"]
