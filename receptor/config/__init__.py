"""Receptor configuration: the command line and YAML files, parsed into typed entities.

Pure parsing and declarations, as upstream's v1 configuration front-end (the ``cmdline``
library over ``yaml.v2``) does it: this package starts nothing and opens no sockets or
certificates.  The daemon runs the Init/Prepare/Run phases on the items it returns.
"""

from receptor._lazy import lazy_exports
from receptor.config._entities import (
    ENTITIES,
    RELOADABLE_ENTITIES,
    EntityType,
    Field,
    FieldType,
    Section,
    entity_by_name,
)
from receptor.config._help import bash_completion, help_sections, help_text
from receptor.config._parser import CommandLine, ConfigItem, load_config_file, parse_command_line
from receptor.config._reload import reload_changes, reload_snapshot

__all__ = [
    "ENTITIES",
    "MAX_CONFIG_BYTES",
    "RELOADABLE_ENTITIES",
    "CommandLine",
    "ConfigItem",
    "EntityType",
    "Field",
    "FieldType",
    "Section",
    "bash_completion",
    "entity_by_name",
    "help_sections",
    "help_text",
    "load_config_file",
    "parse_command_line",
    "reload_changes",
    "reload_snapshot",
]

#: A configuration file needs PyYAML, a command line does not: loaded on first use.
__getattr__ = lazy_exports(__name__, {"MAX_CONFIG_BYTES": "receptor.config._yamlv2"})
