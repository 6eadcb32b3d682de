"""What the control ``reload`` command compares (config.md section 5, step 2).

At startup the daemon snapshots the file of the first ``--config``/``-c``; on ``reload`` it
snapshots it again and refuses (error code 3) when a non-reloadable item was added, changed or
removed.  Items are compared by a canonical re-serialisation of their decoded YAML value, so
whitespace, comments, key order and number spelling (``0x10`` vs ``16``) do not matter, while
key spelling (``workType`` vs ``worktype``) and value types (``"16"`` vs ``16``) do.
"""

import json
import math
from typing import Any

from receptor._errors import ConfigError
from receptor._goconv import render_nested, sorted_items
from receptor.config._entities import RELOADABLE_ENTITIES

__all__ = ["canonical_yaml", "reload_changes", "reload_snapshot"]


def _scalar_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def canonical_yaml(value: Any) -> str:
    """A decoded YAML value as one line of flow-style YAML, mapping keys sorted: equal values
    give equal text.  Iterative, so any nesting depth the loader accepts is fine."""
    return render_nested(value, _scalar_text, ("[", "]", "{", "}"), ", ", ": ")


def _item_key(item: Any) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, dict) and item:
        key = sorted_items(item)[0][0]
        return key if isinstance(key, str) else canonical_yaml(key)
    return canonical_yaml(item)


def reload_snapshot(path: str) -> list[tuple[str, str]]:
    """For each top-level item of the YAML file ``path``: its entity key and its canonical text.

    Raises :class:`ConfigError` (``error loading config file: ...``) if the file cannot be read
    or parsed.
    """
    from receptor.config._yamlv2 import YamlError, decode_config, read_config_file

    try:
        items = decode_config(read_config_file(path))
    except (YamlError, ValueError) as exc:
        raise ConfigError(f"error loading config file: {exc}") from None
    return [(_item_key(item), canonical_yaml(item)) for item in items]


def _reloadable(key: str) -> bool:
    return any(key.startswith(name) for name in RELOADABLE_ENTITIES)


def reload_changes(old: list[tuple[str, str]], new: list[tuple[str, str]]) -> str | None:
    """The reason a reload from snapshot ``old`` to ``new`` needs a restart (the text of result
    code 3), or None when only reloadable items (backends, ``local-only``) differ.

    The first new or changed non-reloadable item of ``new`` is reported, else the first item of
    ``old`` that disappeared.  (Upstream reports the text of a string item up to its first
    ``:``, including its trailing newline; here it is the item's key.)
    """
    old_texts = {text for _, text in old}
    new_texts = {text for _, text in new}
    for key, text in new:
        if not _reloadable(key) and text not in old_texts:
            return (
                f"a non-reloadable config action '{key}' was modified or added. "
                "Must restart receptor for these changes to take effect"
            )
    for key, text in old:
        if not _reloadable(key) and text not in new_texts:
            return (
                f"a non-reloadable config action '{key}' was removed. "
                "Must restart receptor for changes to take effect"
            )
    return None
