# The compiled twin has exactly the API of the pure-Python one.
from receptor._core._highwayhash_py import ZERO_KEY as ZERO_KEY
from receptor._core._highwayhash_py import hash64 as hash64
from receptor._core._highwayhash_py import node_hash as node_hash

__all__ = ["ZERO_KEY", "hash64", "node_hash"]
