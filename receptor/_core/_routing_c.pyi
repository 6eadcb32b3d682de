# The compiled twin has exactly the API of the pure-Python one.
from receptor._core._routing_py import compute_routes as compute_routes

__all__ = ["compute_routes"]
