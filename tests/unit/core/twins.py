"""The two implementations of each core module, as the tests load them.

Both twins whenever the compiled modules are installed, whatever ``RECEPTOR_NO_EXTENSIONS``
says (it only changes what the dispatchers pick, so the pure-Python tox environment still
compares the twins). Only a build made without extensions, with the variable set, has just
the pure-Python twin. When the compiled modules are expected but do not import, loading
raises and the tests ERROR: a broken build must never turn into a silent skip.
"""

import importlib
from types import ModuleType

import pytest

from receptor._core import NO_EXTENSIONS


def _compiled_installed() -> bool:
    try:
        for module in ("highwayhash", "codec", "routing"):
            importlib.import_module(f"receptor._core._{module}_c")
    except ImportError:
        return False
    return True


TWINS = ("cython", "python") if not NO_EXTENSIONS or _compiled_installed() else ("python",)
_SUFFIX = {"cython": "c", "python": "py"}


def load_twin(module: str, twin: str) -> ModuleType:
    """Import ``receptor._core._<module>_c`` (twin "cython") or ``_<module>_py`` ("python")."""
    return importlib.import_module(f"receptor._core._{module}_{_SUFFIX[twin]}")


def both_twins(module: str) -> tuple[ModuleType, ModuleType]:
    """The compiled and the pure-Python twin, for tests that compare them."""
    if "cython" not in TWINS:
        pytest.skip("built without extensions: only the pure-Python twin exists")
    return load_twin(module, "cython"), load_twin(module, "python")
