"""Shortest-path routes from the known link costs (``spec/wire.md`` §7.3).

Uses the compiled twin ``_routing_c`` unless ``RECEPTOR_NO_EXTENSIONS`` is set or it is not
built, then the pure-Python twin ``_routing_py``; both give identical results, ties included.
"""

from typing import TYPE_CHECKING

from receptor._core import load_twin

if TYPE_CHECKING:
    from receptor._core._routing_py import compute_routes
else:
    _twin = load_twin("routing")
    globals().update((name, getattr(_twin, name)) for name in _twin.__all__)

__all__ = ["compute_routes"]
