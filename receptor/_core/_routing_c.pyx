"""Shortest-path route computation, Cython twin of ``_routing_py`` (same results).

``spec/wire.md`` §7.3 describes what upstream computes. Node names are mapped to integer
indices in sorted name order, so comparing indices compares names; the graph is held in
C arrays (compressed adjacency lists) and Dijkstra runs on a C binary heap without
touching Python objects.
"""

from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.math cimport INFINITY
from libc.stdlib cimport qsort

__all__ = ["compute_routes"]


cdef struct Edge:
    Py_ssize_t target
    double weight


cdef struct QueueEntry:
    double distance
    Py_ssize_t node


cdef int compare_edges(const void* a, const void* b) noexcept nogil:
    cdef Py_ssize_t x = (<const Edge*>a).target
    cdef Py_ssize_t y = (<const Edge*>b).target
    return (x > y) - (x < y)


cdef inline bint before(QueueEntry a, QueueEntry b) noexcept nogil:
    return a.distance < b.distance or (a.distance == b.distance and a.node < b.node)


cdef inline void heap_push(
    QueueEntry* heap, Py_ssize_t* size, QueueEntry item
) noexcept nogil:
    cdef Py_ssize_t pos = size[0]
    cdef Py_ssize_t parent
    size[0] += 1
    while pos > 0:
        parent = (pos - 1) >> 1
        if not before(item, heap[parent]):
            break
        heap[pos] = heap[parent]
        pos = parent
    heap[pos] = item


cdef inline QueueEntry heap_pop(QueueEntry* heap, Py_ssize_t* size) noexcept nogil:
    cdef QueueEntry top = heap[0]
    cdef QueueEntry last
    cdef Py_ssize_t pos = 0
    cdef Py_ssize_t child
    size[0] -= 1
    if size[0] == 0:
        return top
    last = heap[size[0]]
    while True:
        child = 2 * pos + 1
        if child >= size[0]:
            break
        if child + 1 < size[0] and before(heap[child + 1], heap[child]):
            child += 1
        if not before(heap[child], last):
            break
        heap[pos] = heap[child]
        pos = child
    heap[pos] = last
    return top


cdef inline bint edge_cost(object cost, double* weight) except -1:
    """Store ``cost`` in ``weight`` if it is a finite int or float >= 0 (not a bool)."""
    cdef double value
    if type(cost) is float:
        value = <double>cost
    elif type(cost) is bool or not isinstance(cost, (int, float)):
        return False
    else:
        try:
            value = float(cost)
        except OverflowError:
            return False
    if 0.0 <= value < INFINITY:
        weight[0] = value
        return True
    return False


def compute_routes(self_node, costs):
    """Shortest paths from ``self_node`` over the directed link costs ``costs[u][v]``.

    ``costs[u][v]`` is the cost of the edge u → v as advertised by ``u``. Only nodes
    that are keys of ``costs`` take part: an edge to a node that is not a key is
    ignored, so a node that appears only inside the inner maps is unreachable. An edge
    whose cost is not a finite ``int`` or ``float`` ≥ 0 (NaN, ±inf, negative, ``bool``,
    anything else) is ignored. If ``self_node`` is not a key, both results are empty.

    Returns ``(next_hop, path_cost)``: ``next_hop[dest]`` is the first node after
    ``self_node`` on a shortest path, for every reachable ``dest`` other than
    ``self_node``; ``path_cost[node]`` is the shortest distance for every reachable
    node, ``self_node`` included (0.0). Both dicts list nodes in sorted name order.

    Equal-cost paths (any choice interoperates, ``spec/wire.md`` §7.3) are resolved by
    one fixed rule, the same in both implementations: Dijkstra pops nodes in (distance,
    name) order, relaxes the popped node's edges in sorted neighbour-name order, and
    replaces a node's distance and predecessor only on a strict improvement. A node's
    route therefore goes through the first node, in that pop order, whose edge reaches
    it at its final distance. Distances are float sums of the edge costs along the path,
    added from ``self_node`` outwards.
    """
    cdef dict next_hop = {}
    cdef dict path_cost = {}
    if self_node not in costs:
        return next_hop, path_cost

    cdef list names = sorted(costs)
    cdef Py_ssize_t count = len(names)
    cdef dict index = {name: i for i, name in enumerate(names)}
    cdef Py_ssize_t capacity = 1
    for neighbours in costs.values():
        capacity += len(neighbours)

    cdef Py_ssize_t* start = NULL
    cdef Py_ssize_t* degree = NULL
    cdef Edge* edges = NULL
    cdef Edge* grown
    cdef double* distance = NULL
    cdef Py_ssize_t* first_hop = NULL
    cdef char* settled = NULL
    cdef QueueEntry* heap = NULL
    cdef Py_ssize_t heap_size = 0
    cdef Py_ssize_t edge_count = 0
    cdef Py_ssize_t u, v, e, root, hop
    cdef double weight, candidate
    cdef QueueEntry entry
    cdef QueueEntry pushed
    try:
        start = <Py_ssize_t*>PyMem_Malloc(count * sizeof(Py_ssize_t))
        degree = <Py_ssize_t*>PyMem_Malloc(count * sizeof(Py_ssize_t))
        edges = <Edge*>PyMem_Malloc(capacity * sizeof(Edge))
        distance = <double*>PyMem_Malloc(count * sizeof(double))
        first_hop = <Py_ssize_t*>PyMem_Malloc(count * sizeof(Py_ssize_t))
        settled = <char*>PyMem_Malloc(count)
        if not (start and degree and edges and distance and first_hop and settled):
            raise MemoryError()

        for name, neighbours in costs.items():
            u = index[name]
            start[u] = edge_count
            for target, cost in neighbours.items():
                found = index.get(target)
                if found is None or not edge_cost(cost, &weight):
                    continue
                if edge_count == capacity:
                    # Only a Mapping whose items() outnumber its len() gets here.
                    capacity *= 2
                    grown = <Edge*>PyMem_Realloc(edges, capacity * sizeof(Edge))
                    if grown == NULL:
                        raise MemoryError()
                    edges = grown
                edges[edge_count].target = <Py_ssize_t>found
                edges[edge_count].weight = weight
                edge_count += 1
            degree[u] = edge_count - start[u]
            qsort(edges + start[u], degree[u], sizeof(Edge), compare_edges)

        # Every push follows a strict improvement along one edge, plus the root.
        heap = <QueueEntry*>PyMem_Malloc((edge_count + 1) * sizeof(QueueEntry))
        if heap == NULL:
            raise MemoryError()

        root = index[self_node]
        with nogil:
            for u in range(count):
                distance[u] = INFINITY
                first_hop[u] = -1
                settled[u] = 0
            distance[root] = 0.0
            entry.distance = 0.0
            entry.node = root
            heap_push(heap, &heap_size, entry)
            while heap_size:
                entry = heap_pop(heap, &heap_size)
                u = entry.node
                if settled[u]:
                    continue  # a stale entry, left behind by a later strict improvement
                settled[u] = 1
                hop = first_hop[u]
                for e in range(start[u], start[u] + degree[u]):
                    v = edges[e].target
                    candidate = entry.distance + edges[e].weight
                    if candidate < distance[v]:
                        distance[v] = candidate
                        first_hop[v] = v if u == root else hop
                        # Field by field: Cython 0.29 (Debian 12's cython3) cannot
                        # call a struct constructor without the GIL.
                        pushed.distance = candidate
                        pushed.node = v
                        heap_push(heap, &heap_size, pushed)

        for u in range(count):
            if settled[u]:
                path_cost[names[u]] = distance[u]
                if u != root:
                    next_hop[names[u]] = names[first_hop[u]]
        return next_hop, path_cost
    finally:
        PyMem_Free(start)
        PyMem_Free(degree)
        PyMem_Free(edges)
        PyMem_Free(distance)
        PyMem_Free(first_hop)
        PyMem_Free(settled)
        PyMem_Free(heap)
