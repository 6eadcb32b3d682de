"""Shortest-path routes from the known link costs (``spec/wire.md`` §7.3).

Uses the compiled twin ``_routing_c`` unless ``RECEPTOR_NO_EXTENSIONS`` is set or it is not
built, then the pure-Python twin ``_routing_py``; both give identical results, ties included.
"""

from typing import TYPE_CHECKING

from receptor._core import NO_EXTENSIONS

if TYPE_CHECKING or NO_EXTENSIONS:
    from receptor._core._routing_py import compute_routes
else:
    try:
        from receptor._core._routing_c import compute_routes
    except ImportError:
        from receptor._core._routing_py import compute_routes

__all__ = ["compute_routes"]
