"""The compiled core: node-name hashing, the message codec and the routing computation.

Each module is a dispatcher (``highwayhash``, ``codec``, ``routing``) that imports the Cython
twin ``_<name>_c`` and falls back to the pure-Python twin ``_<name>_py``. Both twins have the
same API and pass the same tests. ``RECEPTOR_NO_EXTENSIONS=1`` selects pure Python, as does a
non-CPython interpreter. ``IMPLEMENTATION`` says which one is in use: ``"cython"`` only when
every compiled module imported.
"""

import os
import sys

NO_EXTENSIONS = (
    os.environ.get("RECEPTOR_NO_EXTENSIONS", "") not in ("", "0")
    or sys.implementation.name != "cpython"
)


def _select() -> str:
    if NO_EXTENSIONS:
        return "python"
    try:
        from receptor._core import _codec_c, _highwayhash_c, _routing_c  # noqa: F401
    except ImportError:
        return "python"
    return "cython"


IMPLEMENTATION = _select()

__all__ = ["IMPLEMENTATION", "NO_EXTENSIONS"]
