"""HighwayHash-64 and receptor's node-name hash (``spec/wire.md`` §4.1).

Uses the compiled twin ``_highwayhash_c`` unless ``RECEPTOR_NO_EXTENSIONS`` is set or it is not
built, then the pure-Python twin ``_highwayhash_py``; both give the same results.
"""

from typing import TYPE_CHECKING

from receptor._core import load_twin

if TYPE_CHECKING:
    from receptor._core._highwayhash_py import ZERO_KEY, hash64, node_hash
else:
    _twin = load_twin("highwayhash")
    globals().update((name, getattr(_twin, name)) for name in _twin.__all__)

__all__ = ["ZERO_KEY", "hash64", "node_hash"]
