"""A module imported on its first use.

``LazyModule("qh3.quic.events", globals(), "events")`` stands in for the module under the
global name ``events``; the first attribute looked up imports the module and puts it in
that name's place, so later look-ups cost nothing extra. Used where a heavy library is
needed only once the node does something with it (the daemon's idle size).
"""

import importlib
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any


class LazyModule:
    def __init__(self, name: str, namespace: dict[str, Any], alias: str) -> None:
        self._name = name
        self._namespace = namespace
        self._alias = alias

    def load(self) -> ModuleType:
        module = importlib.import_module(self._name)
        self._namespace[self._alias] = module
        return module

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.load(), attribute)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562) for ``package``: each name in ``exports`` (name →
    module) is imported from its module on first use and kept in the package's namespace,
    so that importing the package itself costs nothing (the daemon's start-up time)."""
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
