"""Node firewall rules (config.md §4.1, wire.md §11).

Rules are checked in order against every data message this node originates, receives or
forwards; the first rule whose conditions all match decides (``accept``, ``reject`` or
``drop``); no match accepts.

Deliberate difference from upstream: a ``/regex/`` value that does not compile is a start-up
error here (``error in rule <i>: invalid regular expression …``). Upstream silently drops
the condition, which turns e.g. a narrow ``reject`` rule into one that matches everything.
Go's RE2 syntax and Python's ``re`` agree on the common subset (classes, ``(?i)``,
alternation, repetition); patterns are matched in full, as upstream anchors them.
"""

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from receptor._errors import ConfigError

_KEYS = ("fromnode", "tonode", "fromservice", "toservice")


class Action(enum.Enum):
    ACCEPT = "accept"
    REJECT = "reject"
    DROP = "drop"


@dataclass(frozen=True, slots=True)
class _Condition:
    literal: str | None
    pattern: re.Pattern[str] | None

    def matches(self, value: str) -> bool:
        if self.pattern is not None:
            return self.pattern.fullmatch(value) is not None
        return value == self.literal


@dataclass(frozen=True, slots=True)
class FirewallRule:
    """One rule: an action and up to four conditions (absent = matches anything)."""

    action: Action
    fromnode: _Condition | None = None
    tonode: _Condition | None = None
    fromservice: _Condition | None = None
    toservice: _Condition | None = None

    def matches(self, from_node: str, to_node: str, from_service: str, to_service: str) -> bool:
        return (
            (self.fromnode is None or self.fromnode.matches(from_node))
            and (self.tonode is None or self.tonode.matches(to_node))
            and (self.fromservice is None or self.fromservice.matches(from_service))
            and (self.toservice is None or self.toservice.matches(to_service))
        )


def _condition(value: str) -> _Condition:
    if len(value) >= 2 and value.startswith("/") and value.endswith("/"):
        try:
            return _Condition(None, re.compile(value[1:-1]))
        except re.error as err:
            raise ValueError(f"invalid regular expression {value}: {err}") from None
    return _Condition(value, None)


def parse_rule(data: Any) -> FirewallRule:
    """Build a rule from one YAML mapping; ``ValueError`` with upstream's wording."""
    if not isinstance(data, Mapping):
        raise ValueError("invalid firewall rule. rule must be a mapping")
    action: Action | None = None
    conditions: dict[str, _Condition] = {}
    for raw_key, value in data.items():
        key = str(raw_key).lower()
        if key != "action" and key not in _KEYS:
            raise ValueError(f"invalid filewall rule. unknown key: {raw_key}")
        if not isinstance(value, str):
            raise ValueError(f"invalid firewall rule. {raw_key} must be a string")
        if key == "action":
            try:
                action = Action(value.lower())
            except ValueError:
                raise ValueError(f"unknown action: {value}") from None
        else:
            conditions[key] = _condition(value)
    if action is None:
        raise ValueError("invalid firewall rule. action is required")
    return FirewallRule(action, **conditions)


def parse_rules(rules: Sequence[Any] | None) -> list[FirewallRule]:
    """Parse the ``firewallrules`` list; ``ConfigError("error in rule <i>: …")``."""
    parsed = []
    for index, rule in enumerate(rules or ()):
        try:
            parsed.append(parse_rule(rule))
        except ValueError as err:
            raise ConfigError(f"error in rule {index}: {err}") from None
    return parsed


def decide(
    rules: Iterable[FirewallRule], from_node: str, to_node: str, from_service: str, to_service: str
) -> Action:
    """The action of the first matching rule, ``ACCEPT`` when none matches."""
    for rule in rules:
        if rule.matches(from_node, to_node, from_service, to_service):
            return rule.action
    return Action.ACCEPT
