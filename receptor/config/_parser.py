"""The command line and the YAML files it names, parsed into configuration items.

This follows the upstream cmdline library (``ParseAndRun`` before the phases run) rule by rule,
error text by error text; see ``spec/config.md`` sections 1 and 2.  Nothing is started here:
the result is a list of typed items for the daemon to run its Init/Prepare/Run phases on.
"""

from dataclasses import dataclass
from typing import Any

from receptor._errors import ConfigError
from receptor.config._convert import convert
from receptor.config._entities import ENTITIES, EntityType, Field

__all__ = ["CommandLine", "ConfigItem", "load_config_file", "parse_command_line"]

_BY_LOWER_NAME = {entity.name: entity for entity in ENTITIES}


@dataclass(frozen=True)
class ConfigItem:
    """One configured entity.

    ``values`` holds every declared field by its lower-case name: the converted value where the
    user set it, else the field's default, else None (so an omitted ``allowedpeers`` is None
    while ``allowedpeers=[]`` is an empty list).  ``explicit`` names the fields the user set.
    ``arg`` is the entity argument as written (``--TCP-Listener``, or the YAML key, or
    ``implicit node``); ``source`` the YAML file it came from (None: the command line).
    """

    entity: EntityType
    values: dict[str, Any]
    explicit: frozenset[str]
    arg: str
    source: str | None = None


@dataclass(frozen=True)
class CommandLine:
    """A parsed command line.

    ``action`` is ``"help"`` or ``"bash-completion"`` (print and exit 0; ``items`` is then
    empty) or ``"run"``.  ``items`` are in order of appearance, a file's entities at the
    position of its ``--config``, the implicit ``node`` last.  ``config_files`` lists every file
    loaded, in order; ``reload_file`` is the file loaded by the first argument spelled exactly
    ``--config`` or ``-c`` (the only way upstream enables the control ``reload`` command).
    """

    action: str
    items: list[ConfigItem]
    config_files: list[str]
    reload_file: str | None


class _Builder:
    """An entity being filled in (upstream's ``cfgObjInfo``)."""

    def __init__(self, entity: EntityType, arg: str, source: str | None) -> None:
        self.entity = entity
        self.arg = arg
        self.source = source
        self.values: dict[str, Any] = {}
        self.explicit: set[str] = set()

    def assign(self, fld: Field, value: Any) -> None:
        self.values[fld.name] = convert(fld, self.values.get(fld.name), value)
        self.explicit.add(fld.name)

    def missing_error(self) -> str | None:
        missing = [f.name for f in self.entity.fields if f.required and f.name not in self.explicit]
        if not missing:
            return None
        plural = "s" if len(missing) > 1 else ""
        return f"error in {self.arg}: required parameter{plural} missing: {', '.join(missing)}"

    def item(self) -> ConfigItem:
        values = {
            f.name: self.values[f.name] if f.name in self.explicit else f.default
            for f in self.entity.fields
        }
        return ConfigItem(self.entity, values, frozenset(self.explicit), self.arg, self.source)


def _file_error(detail: str) -> ConfigError:
    return ConfigError(f"error loading config file: {detail}")


def load_config_file(path: str) -> list[ConfigItem]:
    """The items of one YAML config file, checked as upstream checks a file on its own
    (singletons only against the same file).  Raises :class:`ConfigError`
    (``error loading config file: ...``)."""
    from receptor.config._yamlv2 import YamlError, decode_config, read_config_file

    try:
        raw_items = decode_config(read_config_file(path))
    except YamlError as exc:
        raise _file_error(str(exc)) from None
    except ValueError as exc:
        raise _file_error(str(exc)) from None
    items: list[ConfigItem] = []
    for raw in raw_items:
        raw_params: Any
        if isinstance(raw, str):
            command, raw_params = raw, None
        elif isinstance(raw, dict):
            if len(raw) != 1:
                raise _file_error("config format invalid: item has multiple names")
            ((key, raw_params),) = raw.items()
            if not isinstance(key, str):
                raise _file_error("section key is not a string")
            command = key
        else:
            raise _file_error("unknown config file format")
        # YAML keys are compared with the lower-cased registered name, without lower-casing
        # the key itself.
        entity = _BY_LOWER_NAME.get(command)
        if entity is None:
            raise _file_error(
                f"could not get config type for command {command}: unknown config type {command}"
            )
        params: list[tuple[str, Any]] = []
        if isinstance(raw_params, str):
            bare = entity.bare_field
            if bare is None:
                raise _file_error(
                    f"could not get barevalue for command {command}: "
                    "command does not allow bare values"
                )
            params.append((bare.go_name, raw_params))
        elif isinstance(raw_params, dict):
            for key, value in raw_params.items():
                if not isinstance(key, str):
                    raise _file_error(f"invalid config format for {command}")
                params.append((key, value))
        elif raw_params is not None:
            raise _file_error(f"invalid config format for {command}")
        if entity.singleton and any(item.entity is entity for item in items):
            raise _file_error(f"only one {command} directive is allowed")
        builder = _Builder(entity, command, path)
        for key, value in params:
            fld = entity.field(key)
            if fld is None:
                raise _file_error(
                    f"field {key} not defined for command {command}: unknown field name {key}"
                )
            try:
                builder.assign(fld, value)
            except ValueError as exc:
                raise _file_error(
                    f"error setting field {key} in command {command}: {exc}"
                ) from None
        missing = builder.missing_error()
        if missing is not None:
            raise _file_error(missing)
        items.append(builder.item())
    return items


def _strip_dashes(lower_arg: str) -> str:
    """Upstream strips at most two leading dashes: ``---node`` names the entity ``-node``."""
    name = lower_arg[1:]
    return name[1:] if name.startswith("-") else name


def parse_command_line(argv: list[str]) -> CommandLine:
    """Parse ``argv`` (without the program name) and the config files it names.

    Arguments are processed left to right: ``-h``/``--help`` and ``--bash-completion`` (any
    case) take effect when reached; ``-<entity>``/``--<entity>`` (any case) starts an entity,
    ``key=value`` (split at the first ``=``) or a bare value fills it; ``--config``/``-c`` (any
    case, at most two dashes) loads the next non-dash argument as a YAML file.  No arguments at
    all means help.  Raises :class:`ConfigError` with upstream's message.

    Deviation: upstream panics on an empty-string argument (index out of range); here it is
    ``ConfigError("empty argument at position <n>")``, ``n`` counting arguments from 1.
    """
    if not argv:
        return CommandLine("help", [], [], None)
    items: list[ConfigItem] = []
    config_files: list[str] = []
    builder: _Builder | None = None
    config_pending = False
    exact_config_seen = False
    # The pending file is the one loaded by the first exactly spelled --config/-c.
    pending_is_reload_file = False
    reload_file: str | None = None

    def store_builder() -> None:
        nonlocal builder
        if builder is not None:
            missing = builder.missing_error()
            if missing is not None:
                raise ConfigError(missing)
            items.append(builder.item())
            builder = None

    for index, arg in enumerate(argv):
        if arg == "":
            raise ConfigError(f"empty argument at position {index + 1}")
        lower_arg = arg.lower()
        if lower_arg in ("-h", "--help"):
            return CommandLine("help", [], config_files, None)
        if lower_arg == "--bash-completion":
            return CommandLine("bash-completion", [], config_files, None)
        if lower_arg.startswith("-"):
            name = _strip_dashes(lower_arg)
            store_builder()
            if name in ("config", "c"):
                config_pending = True
                if not exact_config_seen and arg in ("--config", "-c"):
                    exact_config_seen = pending_is_reload_file = True
                continue
            entity = _BY_LOWER_NAME.get(name)
            if entity is None:
                raise ConfigError(f"command error: unknown config type {name}")
            if entity.singleton and any(item.entity is entity for item in items):
                raise ConfigError(f'directive "{entity.registered_name}" is only allowed once')
            builder = _Builder(entity, arg, None)
            continue
        if config_pending:
            # The file is loaded even when entity arguments came in between (upstream quirk:
            # "-c --node id=a" loads the file "id=a").
            if pending_is_reload_file:
                reload_file = arg
            config_pending = pending_is_reload_file = False
            items.extend(load_config_file(arg))
            config_files.append(arg)
            continue
        if builder is None:
            raise ConfigError("parameter specified before command")
        key, has_value, value = arg.partition("=")
        if not has_value:
            bare = builder.entity.bare_field
            if bare is None:
                raise ConfigError("config error: command does not allow bare values")
            try:
                builder.assign(bare, arg)
            except ValueError as exc:
                raise ConfigError(
                    f"error setting config value for field {bare.go_name}: {exc}"
                ) from None
            continue
        field_name = key.lower()
        fld = builder.entity.field(field_name)
        if fld is None:
            raise ConfigError(f"config error: unknown field name {field_name}")
        try:
            builder.assign(fld, value)
        except ValueError as exc:
            raise ConfigError(f"error setting config value for field {field_name}: {exc}") from None
    store_builder()

    exclusive = next((item.entity for item in items if item.entity.exclusive), None)
    if exclusive is not None:
        if len(items) > 1:
            raise ConfigError(f"cannot specify any other options with {exclusive.registered_name}")
    else:
        for entity in ENTITIES:
            if entity.required and entity.singleton and not any(i.entity is entity for i in items):
                items.append(_Builder(entity, f"implicit {entity.registered_name}", None).item())
    return CommandLine("run", items, config_files, reload_file)
