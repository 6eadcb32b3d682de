"""Receptor configuration: the command line and YAML files, parsed into typed entities.

Pure parsing and declarations, as upstream's v1 configuration front-end (the ``cmdline``
library over ``yaml.v2``) does it: this package starts nothing and opens no sockets or
certificates.  The daemon runs the Init/Prepare/Run phases on the items it returns.
"""

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
from receptor.config._yamlv2 import MAX_CONFIG_BYTES

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
