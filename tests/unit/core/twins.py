"""The two implementations of each core module, as the tests load them.

Both twins normally; only the pure-Python one when ``RECEPTOR_NO_EXTENSIONS`` is set. When the
compiled modules are expected but do not import, loading raises and the tests ERROR: a broken
build must never turn into a silent skip.
"""

import importlib
from types import ModuleType

import pytest

from receptor._core import NO_EXTENSIONS

TWINS = ("python",) if NO_EXTENSIONS else ("cython", "python")
_SUFFIX = {"cython": "c", "python": "py"}


def load_twin(module: str, twin: str) -> ModuleType:
    """Import ``receptor._core._<module>_c`` (twin "cython") or ``_<module>_py`` ("python")."""
    return importlib.import_module(f"receptor._core._{module}_{_SUFFIX[twin]}")


def both_twins(module: str) -> tuple[ModuleType, ModuleType]:
    """The compiled and the pure-Python twin, for tests that compare them."""
    if NO_EXTENSIONS:
        pytest.skip("RECEPTOR_NO_EXTENSIONS is set: only the pure-Python twin exists")
    return load_twin(module, "cython"), load_twin(module, "python")
