"""The compiled core: node-name hashing, the message codec and the routing computation.

Each module is a dispatcher (``highwayhash``, ``codec``, ``routing``) that imports the Cython
twin ``_<name>_c`` and falls back to the pure-Python twin ``_<name>_py``. Both twins have the
same API and pass the same tests. ``RECEPTOR_NO_EXTENSIONS=1`` selects pure Python, as does a
non-CPython interpreter. ``IMPLEMENTATION`` says which one is in use: ``"cython"`` only when
every compiled module imported.
"""

import importlib
import os
import sys
from types import ModuleType

NO_EXTENSIONS = (
    os.environ.get("RECEPTOR_NO_EXTENSIONS", "") not in ("", "0")
    or sys.implementation.name != "cpython"
)

_MODULES = ("highwayhash", "codec", "routing")


def load_twin(name: str) -> ModuleType:
    """The twin a dispatcher re-exports: ``_<name>_c`` unless extensions are off or not
    built, else ``_<name>_py``."""
    if not NO_EXTENSIONS:
        try:
            return importlib.import_module(f"receptor._core._{name}_c")
        except ImportError:
            pass
    return importlib.import_module(f"receptor._core._{name}_py")


IMPLEMENTATION = (
    "cython" if all(load_twin(name).__name__.endswith("_c") for name in _MODULES) else "python"
)

__all__ = ["IMPLEMENTATION", "NO_EXTENSIONS", "load_twin"]
