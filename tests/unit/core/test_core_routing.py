"""Shortest-path routes (spec/wire.md §7.3): hand-made graphs, brute force, twin agreement."""

import math
import random
from collections.abc import Mapping
from types import MappingProxyType, ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .twins import both_twins

Costs = Mapping[str, Any]  # inner maps of mixed, possibly invalid costs
INVALID_COSTS = [math.nan, math.inf, -math.inf, -1, -0.5, True, False, "1", None, 10**400]

SETTINGS = settings(max_examples=200, deadline=None)


def usable(cost: object) -> bool:
    """The documented rule, written independently of the implementations."""
    if type(cost) not in (int, float):
        return False
    try:
        value = float(cost)  # type: ignore[arg-type]
    except OverflowError:
        return False
    return 0 <= value < math.inf


def all_pairs(costs: Costs) -> dict[str, dict[str, float]]:
    """Floyd–Warshall over the edges compute_routes is documented to use."""
    nodes = list(costs)
    dist = {u: {v: 0.0 if u == v else math.inf for v in nodes} for u in nodes}
    for u, neighbours in costs.items():
        for v, cost in neighbours.items():
            if v in costs and usable(cost):
                dist[u][v] = min(dist[u][v], float(cost))
    for k in nodes:
        for i in nodes:
            for j in nodes:
                if dist[i][k] + dist[k][j] < dist[i][j]:
                    dist[i][j] = dist[i][k] + dist[k][j]
    return dist


def check_against_brute_force(routing: ModuleType, self_node: str, costs: Costs) -> None:
    next_hop, path_cost = routing.compute_routes(self_node, costs)
    if self_node not in costs:
        assert (next_hop, path_cost) == ({}, {})
        return
    dist = all_pairs(costs)
    reachable = {v for v, d in dist[self_node].items() if d < math.inf}
    assert set(path_cost) == reachable
    assert set(next_hop) == reachable - {self_node}
    assert path_cost[self_node] == 0.0
    for dest, cost in path_cost.items():
        assert math.isclose(cost, dist[self_node][dest], rel_tol=1e-9, abs_tol=1e-9)
    for dest, hop in next_hop.items():
        # The hop is a usable neighbour of self and starts a shortest path to dest.
        edge = costs[self_node][hop]
        assert usable(edge)
        via = float(edge) + dist[hop][dest]
        assert math.isclose(via, path_cost[dest], rel_tol=1e-9, abs_tol=1e-9)


def routes(routing: ModuleType, self_node: str, costs: Costs) -> tuple[dict, dict]:
    result = routing.compute_routes(self_node, costs)
    check_against_brute_force(routing, self_node, costs)
    return result


# --- hand-made graphs ----------------------------------------------------------------------


def test_single_node(routing: ModuleType) -> None:
    assert routes(routing, "a", {"a": {}}) == ({}, {"a": 0.0})


def test_self_missing(routing: ModuleType) -> None:
    assert routes(routing, "x", {"a": {"b": 1}, "b": {"a": 1}}) == ({}, {})
    assert routes(routing, "x", {}) == ({}, {})


def test_line(routing: ModuleType) -> None:
    costs = {"a": {"b": 1}, "b": {"a": 1, "c": 2}, "c": {"b": 2, "d": 0.5}, "d": {"c": 0.5}}
    assert routes(routing, "a", costs) == (
        {"b": "b", "c": "b", "d": "b"},
        {"a": 0.0, "b": 1.0, "c": 3.0, "d": 3.5},
    )
    assert routes(routing, "d", costs) == (
        {"a": "c", "b": "c", "c": "c"},
        {"a": 3.5, "b": 2.5, "c": 0.5, "d": 0.0},
    )


def test_ring_goes_the_short_way(routing: ModuleType) -> None:
    names = [f"r{i}" for i in range(6)]
    costs = {n: {names[(i + 1) % 6]: 1.0, names[(i - 1) % 6]: 1.0} for i, n in enumerate(names)}
    next_hop, path_cost = routes(routing, "r0", costs)
    assert next_hop == {"r1": "r1", "r2": "r1", "r3": "r1", "r4": "r5", "r5": "r5"}
    assert path_cost == {"r0": 0.0, "r1": 1.0, "r2": 2.0, "r3": 3.0, "r4": 2.0, "r5": 1.0}


def test_star(routing: ModuleType) -> None:
    leaves = [f"leaf{i}" for i in range(5)]
    costs: dict[str, dict[str, object]] = {"hub": {leaf: 1 for leaf in leaves}}
    costs.update({leaf: {"hub": 1} for leaf in leaves})
    next_hop, path_cost = routes(routing, "leaf0", costs)
    assert next_hop == {"hub": "hub", **{leaf: "hub" for leaf in leaves[1:]}}
    assert path_cost == {"hub": 1.0, "leaf0": 0.0, **{leaf: 2.0 for leaf in leaves[1:]}}


def test_equal_cost_diamond_prefers_the_smaller_name(routing: ModuleType) -> None:
    # Both b and c reach d at 2; b is popped first (same distance, smaller name).
    costs = {"a": {"c": 1, "b": 1}, "b": {"d": 1}, "c": {"d": 1}, "d": {}}
    assert routes(routing, "a", costs) == (
        {"b": "b", "c": "c", "d": "b"},
        {"a": 0.0, "b": 1.0, "c": 1.0, "d": 2.0},
    )


def test_equal_cost_tie_goes_to_the_node_popped_first(routing: ModuleType) -> None:
    # d is reached at 3 through z (popped at 1) and through b (popped at 2): z wins, although
    # "b" < "z", because the pop order is by distance first.
    costs = {"a": {"z": 1, "b": 2}, "z": {"d": 2}, "b": {"d": 1}, "d": {}}
    next_hop, _ = routes(routing, "a", costs)
    assert next_hop["d"] == "z"


def test_asymmetric_directed_costs(routing: ModuleType) -> None:
    costs = {"a": {"b": 10, "c": 1}, "b": {"a": 1}, "c": {"b": 1, "a": 5}}
    assert routes(routing, "a", costs) == (
        {"b": "c", "c": "c"},
        {"a": 0.0, "b": 2.0, "c": 1.0},
    )
    assert routes(routing, "b", costs) == (
        {"a": "a", "c": "a"},
        {"a": 1.0, "b": 0.0, "c": 2.0},
    )


def test_one_way_edge(routing: ModuleType) -> None:
    # b advertises nothing back: a reaches b, b reaches nobody.
    costs = {"a": {"b": 1}, "b": {}}
    assert routes(routing, "a", costs) == ({"b": "b"}, {"a": 0.0, "b": 1.0})
    assert routes(routing, "b", costs) == ({}, {"b": 0.0})


def test_unreachable_component(routing: ModuleType) -> None:
    costs = {"a": {"b": 1}, "b": {"a": 1}, "x": {"y": 1}, "y": {"x": 1}}
    assert routes(routing, "a", costs) == ({"b": "b"}, {"a": 0.0, "b": 1.0})


def test_nodes_only_inside_maps_are_unreachable(routing: ModuleType) -> None:
    costs = {"a": {"b": 1, "ghost": 1}, "b": {"a": 1, "phantom": 0}}
    assert routes(routing, "a", costs) == ({"b": "b"}, {"a": 0.0, "b": 1.0})


def test_zero_costs(routing: ModuleType) -> None:
    costs = {"a": {"b": 0, "c": 0.0}, "b": {"d": 0}, "c": {"d": 0}, "d": {"a": 0}}
    assert routes(routing, "a", costs) == (
        {"b": "b", "c": "c", "d": "b"},
        {"a": 0.0, "b": 0.0, "c": 0.0, "d": 0.0},
    )


@pytest.mark.parametrize("bad", INVALID_COSTS, ids=repr)
def test_invalid_costs_are_ignored(routing: ModuleType, bad: object) -> None:
    costs = {"a": {"b": bad, "c": 1}, "b": {"a": 1}, "c": {"b": 5}}
    assert routes(routing, "a", costs) == (
        {"b": "c", "c": "c"},
        {"a": 0.0, "b": 6.0, "c": 1.0},
    )
    assert routes(routing, "a", {"a": {"b": bad}, "b": {}}) == ({}, {"a": 0.0})


def test_overflowing_path_is_unreachable(routing: ModuleType) -> None:
    costs = {"a": {"b": 1e308}, "b": {"c": 1e308}, "c": {}}
    assert routes(routing, "a", costs) == ({"b": "b"}, {"a": 0.0, "b": 1e308})


def test_self_loops_and_edges_back_to_self(routing: ModuleType) -> None:
    costs = {"a": {"a": 0, "b": 1}, "b": {"b": 0, "a": 0}}
    assert routes(routing, "a", costs) == ({"b": "b"}, {"a": 0.0, "b": 1.0})


def test_accepts_any_mapping(routing: ModuleType) -> None:
    costs = MappingProxyType({"a": MappingProxyType({"b": 2}), "b": MappingProxyType({})})
    assert routes(routing, "a", costs) == ({"b": "b"}, {"a": 0.0, "b": 2.0})


def test_results_are_plain_dicts_in_name_order(routing: ModuleType) -> None:
    costs = {"m": {"z": 1, "b": 1, "k": 1}, "z": {}, "b": {}, "k": {}}
    next_hop, path_cost = routing.compute_routes("m", costs)
    assert type(next_hop) is dict and type(path_cost) is dict
    assert list(next_hop) == ["b", "k", "z"]
    assert list(path_cost) == ["b", "k", "m", "z"]
    assert all(type(cost) is float for cost in path_cost.values())


def test_input_is_not_modified(routing: ModuleType) -> None:
    costs = {"a": {"b": 1, "ghost": 2}, "b": {"a": math.nan}}
    snapshot = repr(costs)
    routing.compute_routes("a", costs)
    assert repr(costs) == snapshot


def assert_identical(first: tuple[dict, dict], second: tuple[dict, dict]) -> None:
    """Same next hops, bit-identical costs, same order."""
    assert [list(part.items()) for part in first] == [list(part.items()) for part in second]


# --- properties ----------------------------------------------------------------------------

NAMES = [f"n{i:02d}" for i in range(12)]
valid_costs = st.one_of(
    st.integers(min_value=0, max_value=4),
    st.floats(min_value=0, max_value=10, allow_nan=False, allow_infinity=False),
)
any_costs = st.one_of(valid_costs, valid_costs, valid_costs, st.sampled_from(INVALID_COSTS))


@st.composite
def graphs(draw: st.DrawFn, costs: st.SearchStrategy[object] = any_costs) -> tuple[str, Costs]:
    size = draw(st.integers(min_value=1, max_value=len(NAMES)))
    nodes = NAMES[:size]
    # Inner maps may name nodes that are not keys ("ghost").
    targets = st.sampled_from([*nodes, "ghost"])
    graph = {u: draw(st.dictionaries(targets, costs, max_size=size)) for u in nodes}
    self_node = draw(st.sampled_from([*nodes, "missing"]))
    return self_node, graph


@SETTINGS
@given(case=graphs())
def test_matches_brute_force(routing: ModuleType, case: tuple[str, Costs]) -> None:
    check_against_brute_force(routing, *case)


@SETTINGS
@given(case=graphs(costs=st.integers(min_value=0, max_value=2)))
def test_twins_agree_with_many_ties(case: tuple[str, Costs]) -> None:
    compiled, pure = both_twins("routing")
    assert_identical(compiled.compute_routes(*case), pure.compute_routes(*case))


@SETTINGS
@given(case=graphs())
def test_twins_agree(case: tuple[str, Costs]) -> None:
    compiled, pure = both_twins("routing")
    assert_identical(compiled.compute_routes(*case), pure.compute_routes(*case))


def random_graph(rng: random.Random, size: int, degree: int, integer: bool) -> dict:
    names = [f"node-{i}" for i in range(size)]
    graph: dict[str, dict[str, float]] = {name: {} for name in names}
    for i, name in enumerate(names):
        # A ring keeps it connected; random chords add alternatives (and ties, if integer).
        neighbours = {names[(i + 1) % size], *rng.sample(names, min(degree, size))}
        for other in neighbours - {name}:
            cost = rng.randint(1, 3) if integer else rng.uniform(0.1, 5.0)
            graph[name][other] = cost
            graph[other][name] = cost
    return graph


@pytest.mark.parametrize(("size", "integer"), [(100, True), (100, False), (600, True)])
def test_twins_agree_on_large_graphs(size: int, integer: bool) -> None:
    compiled, pure = both_twins("routing")
    rng = random.Random(size)
    graph = random_graph(rng, size, 4, integer)
    for self_node in rng.sample(sorted(graph), 3):
        result = compiled.compute_routes(self_node, graph)
        assert_identical(result, pure.compute_routes(self_node, graph))
        assert len(result[1]) == size
