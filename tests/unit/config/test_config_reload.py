"""Reload snapshots (config.md section 5, step 2)."""

from pathlib import Path

import pytest

from receptor import ConfigError
from receptor.config import reload_changes, reload_snapshot

BASE = """\
---
- node:
    id: n1
    datadir: /tmp/r
- log-level: info
- tcp-listener:
    port: 2222
- work-command:
    worktype: echo
    command: bash
    params: "-c 'cat'"
"""


@pytest.fixture
def snapshot(tmp_path: Path):
    def snapshot(text: str) -> list[tuple[str, str]]:
        path = tmp_path / "r.yml"
        path.write_text(text)
        return reload_snapshot(str(path))

    return snapshot


def test_keys_and_texts(snapshot) -> None:
    items = snapshot(BASE + "- local-only\n")
    assert [key for key, _ in items] == [
        "node",
        "log-level",
        "tcp-listener",
        "work-command",
        "local-only",
    ]
    assert items[0][1] == '{"node": {"datadir": "/tmp/r", "id": "n1"}}'
    assert items[4][1] == '"local-only"'


def test_unchanged(snapshot) -> None:
    assert reload_changes(snapshot(BASE), snapshot(BASE)) is None


def test_layout_comments_order_and_number_spelling_do_not_matter(snapshot) -> None:
    changed = """\
# a comment
- node: {datadir: /tmp/r,   id: n1}   # flow style now
- log-level: info
- tcp-listener: {port: 0x8AE}
- work-command:
    params: "-c 'cat'"
    command: bash
    worktype: echo
"""
    assert reload_changes(snapshot(BASE), snapshot(changed)) is None


def test_key_spelling_matters(snapshot) -> None:
    changed = BASE.replace("worktype", "workType")
    assert reload_changes(snapshot(BASE), snapshot(changed)) == (
        "a non-reloadable config action 'work-command' was modified or added. "
        "Must restart receptor for these changes to take effect"
    )


def test_value_type_matters(snapshot) -> None:
    old = snapshot("- control-service:\n    permissions: 600\n")
    new = snapshot("- control-service:\n    permissions: '600'\n")
    assert reload_changes(old, new) is not None


def test_changed_log_level(snapshot) -> None:
    changed = BASE.replace("log-level: info", "log-level: debug")
    assert reload_changes(snapshot(BASE), snapshot(changed)) == (
        "a non-reloadable config action 'log-level' was modified or added. "
        "Must restart receptor for these changes to take effect"
    )


def test_removed(snapshot) -> None:
    removed = BASE[: BASE.index("- work-command:")]
    assert reload_changes(snapshot(BASE), snapshot(removed)) == (
        "a non-reloadable config action 'work-command' was removed. "
        "Must restart receptor for changes to take effect"
    )


def test_added_string_item(snapshot) -> None:
    assert reload_changes(snapshot(BASE), snapshot(BASE + "- trace\n")) == (
        "a non-reloadable config action 'trace' was modified or added. "
        "Must restart receptor for these changes to take effect"
    )


@pytest.mark.parametrize(
    "extra",
    [
        "- tcp-listener:\n    port: 3333\n",
        "- local-only\n",
        "- local-only:\n",
        "- tcp-peer: h:1\n",
        "- ws-peer:\n    address: ws://h:1/\n",
        "- ws-listener: '1'\n",
        "- udp-peer: h:1\n",
        "- udp-listener: '1'\n",
    ],
)
def test_reloadable_items_may_change(snapshot, extra: str) -> None:
    assert reload_changes(snapshot(BASE), snapshot(BASE + extra)) is None
    assert reload_changes(snapshot(BASE + extra), snapshot(BASE)) is None


def test_changed_backend_is_reloadable(snapshot) -> None:
    assert reload_changes(snapshot(BASE), snapshot(BASE.replace("2222", "2223"))) is None


def test_added_item_reported_before_removed(snapshot) -> None:
    new = BASE.replace("log-level: info", "log-level: debug")
    new = new[: new.index("- work-command:")]
    message = reload_changes(snapshot(BASE), snapshot(new))
    assert message is not None and "'log-level' was modified or added" in message


def test_duplicate_items(snapshot) -> None:
    doubled = BASE + "- log-level: info\n"
    assert reload_changes(snapshot(BASE), snapshot(doubled)) is None
    assert reload_changes(snapshot(doubled), snapshot(BASE)) is None


def test_special_values(snapshot) -> None:
    items = snapshot('- node:\n    id: "é\\u0000"\n    x: [.nan, -.inf, ~, yes, 1.5, 2]\n')
    assert items[0][1] == (
        '{"node": {"id": "\\u00e9\\u0000", "x": [.nan, -.inf, null, true, 1.5, 2]}}'
    )


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "gone.yml"
    with pytest.raises(ConfigError) as caught:
        reload_snapshot(str(missing))
    assert str(caught.value) == (
        f"error loading config file: open {missing}: no such file or directory"
    )


def test_syntax_error(snapshot) -> None:
    text = BASE + "- tcp-peer:\n    address: [\n" + "\n" * 3
    with pytest.raises(ConfigError) as caught:
        snapshot(text + "- x: ]\n")
    assert str(caught.value).startswith("error loading config file: yaml: line ")


def test_deeply_nested_item(snapshot) -> None:
    items = snapshot("- node:\n    id: " + "[" * 900 + "]" * 900 + "\n")
    assert items[0][1] == '{"node": {"id": ' + "[" * 900 + "]" * 900 + "}}"
