"""Shortest-path route computation, pure-Python twin of ``_routing_c`` (same API, same results).

``spec/wire.md`` §7.3 describes what upstream computes. This is a pure function of the known
link costs: the caller takes a snapshot, computes outside its locks and swaps the result in.
"""

import math
from collections.abc import Mapping
from heapq import heappop, heappush

__all__ = ["compute_routes"]


def _edge_cost(cost: object) -> float | None:
    """``cost`` as a float if it is a usable edge weight (a finite int or float >= 0), else None.

    ``bool`` is not a cost, although Python counts it as an int.
    """
    if type(cost) is bool or not isinstance(cost, int | float):
        return None
    try:
        value = float(cost)
    except OverflowError:
        return None
    if 0.0 <= value < math.inf:
        return value
    return None


def compute_routes(
    self_node: str, costs: Mapping[str, Mapping[str, float]]
) -> tuple[dict[str, str], dict[str, float]]:
    """Shortest paths from ``self_node`` over the directed link costs ``costs[u][v]``.

    ``costs[u][v]`` is the cost of the edge u → v as advertised by ``u``. Only nodes that are
    keys of ``costs`` take part: an edge to a node that is not a key is ignored, so a node that
    appears only inside the inner maps is unreachable. An edge whose cost is not a finite
    ``int`` or ``float`` ≥ 0 (NaN, ±inf, negative, ``bool``, anything else) is ignored. If
    ``self_node`` is not a key, both results are empty.

    Returns ``(next_hop, path_cost)``: ``next_hop[dest]`` is the first node after ``self_node`` on
    a shortest path, for every reachable ``dest`` other than ``self_node``; ``path_cost[node]`` is
    the shortest distance for every reachable node, ``self_node`` included (0.0). Both dicts list
    nodes in sorted name order.

    Equal-cost paths (any choice interoperates, ``spec/wire.md`` §7.3) are resolved by one fixed
    rule, the same in both implementations: Dijkstra pops nodes in (distance, name) order,
    relaxes the popped node's edges in sorted neighbour-name order, and replaces a node's
    distance and predecessor only on a strict improvement. A node's route therefore goes through
    the first node, in that pop order, whose edge reaches it at its final distance. Distances are
    float sums of the edge costs along the path, added from ``self_node`` outwards.
    """
    if self_node not in costs:
        return {}, {}

    distance: dict[str, float] = {self_node: 0.0}
    first_hop: dict[str, str] = {}
    settled: set[str] = set()
    queue: list[tuple[float, str]] = [(0.0, self_node)]
    while queue:
        dist_u, u = heappop(queue)
        if u in settled:
            continue  # a stale entry, left behind by a later strict improvement
        settled.add(u)
        hop = first_hop.get(u)
        edges = []
        for v, cost in costs[u].items():
            weight = _edge_cost(cost)
            if weight is not None and v in costs:
                edges.append((v, weight))
        edges.sort()
        for v, weight in edges:
            candidate = dist_u + weight
            # Unreached counts as +inf, so a sum that overflows to inf reaches nothing.
            if candidate < distance.get(v, math.inf):
                distance[v] = candidate
                first_hop[v] = v if hop is None else hop
                heappush(queue, (candidate, v))

    next_hop = {node: first_hop[node] for node in sorted(first_hop)}
    path_cost = {node: distance[node] for node in sorted(distance)}
    return next_hop, path_cost
