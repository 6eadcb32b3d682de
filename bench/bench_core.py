"""Benchmark the compiled core against its pure-Python twin.

Run ``python bench/bench_core.py``. For each operation it prints the time per operation of each
twin (best of several runs, Python loop overhead included) and the Cython/Python speed-up.
"""

import importlib
import random
import sys
import time
from collections.abc import Callable
from types import ModuleType

from receptor._core import NO_EXTENSIONS

REPEATS = 5
RUN_SECONDS = 0.05  # target length of one timed run


def load(module: str) -> dict[str, ModuleType]:
    twins = {"python": importlib.import_module(f"receptor._core._{module}_py")}
    if not NO_EXTENSIONS:
        try:
            twins["cython"] = importlib.import_module(f"receptor._core._{module}_c")
        except ImportError as exc:
            print(f"note: compiled {module} unavailable ({exc})", file=sys.stderr)
    return twins


def best_time_per_op(operation: Callable[[], object]) -> float:
    """Seconds per call: calibrate a loop count, then keep the fastest of REPEATS runs."""
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            operation()
        elapsed = time.perf_counter() - start
        if elapsed >= RUN_SECONDS / 5 or loops >= 1 << 22:
            break
        loops *= 4
    loops = max(1, int(loops * RUN_SECONDS / max(elapsed, 1e-9)))
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(loops):
            operation()
        best = min(best, time.perf_counter() - start)
    return best / loops


def random_graph(size: int, degree: int, seed: int) -> dict[str, dict[str, float]]:
    """A connected undirected mesh: a ring plus random chords, integer costs (many ties)."""
    rng = random.Random(seed)
    names = [f"node-{i}" for i in range(size)]
    graph: dict[str, dict[str, float]] = {name: {} for name in names}
    for i, name in enumerate(names):
        for other in {names[(i + 1) % size], *rng.sample(names, min(degree, size))} - {name}:
            cost = float(rng.randint(1, 3))
            graph[name][other] = cost
            graph[other][name] = cost
    return graph


def framed_stream(codec: ModuleType, total: int, seed: int) -> tuple[bytes, int]:
    rng = random.Random(seed)
    parts = []
    size = count = 0
    while size < total:
        part = codec.frame(rng.randbytes(rng.randint(36, 1236)))
        parts.append(part)
        size += len(part)
        count += 1
    return b"".join(parts), count


def cases() -> list[tuple[str, str, dict[str, Callable[[], object]]]]:
    """(name, unit note, {twin: operation}) for every benchmark."""
    codecs = load("codec")
    hashes = load("highwayhash")
    routings = load("routing")
    result: list[tuple[str, str, dict[str, Callable[[], object]]]] = []

    payload = bytes(range(256)) * 4 + bytes(176)  # 1200 bytes, a typical QUIC datagram
    args = (29, 0x28501ABA8F06EBDA, 0x65EFB30772DE1513, "418XREUR", "echo", payload)
    message = codecs["python"].encode_data(*args)
    result.append(
        (
            "encode_data",
            "1200 B payload",
            {t: _bind(c.encode_data, *args) for t, c in codecs.items()},
        )
    )
    result.append(
        (
            "decode_data",
            "1236 B message",
            {t: _bind(c.decode_data, message) for t, c in codecs.items()},
        )
    )
    result.append(
        (
            "with_hops",
            "1236 B message",
            {t: _bind(c.with_hops, message, 28) for t, c in codecs.items()},
        )
    )
    result.append(
        ("frame", "1236 B message", {t: _bind(c.frame, message) for t, c in codecs.items()})
    )

    stream, count = framed_stream(codecs["python"], 1 << 20, seed=1)
    chunks = [stream[i : i + 65536] for i in range(0, len(stream), 65536)]
    result.append(
        (
            "Framer.feed",
            f"1 MiB stream, {count} frames of 36-1236 B, 64 KiB reads; per MiB",
            {t: _bind(_deframe, c, chunks) for t, c in codecs.items()},
        )
    )

    result.append(
        (
            "node_hash",
            "'node-12345'",
            {t: _bind(h.node_hash, "node-12345") for t, h in hashes.items()},
        )
    )
    result.append(
        (
            "hash64",
            "1 KiB",
            {t: _bind(h.hash64, bytes(1024)) for t, h in hashes.items()},
        )
    )

    for size in (8, 100, 1000):
        graph = random_graph(size, 3, seed=size)
        result.append(
            (
                f"compute_routes {size}",
                f"{size} nodes, {sum(map(len, graph.values()))} directed edges",
                {t: _bind(r.compute_routes, "node-0", graph) for t, r in routings.items()},
            )
        )
    return result


def _bind(function: Callable[..., object], *args: object) -> Callable[[], object]:
    return lambda: function(*args)


def _deframe(codec: ModuleType, chunks: list[bytes]) -> int:
    framer = codec.Framer()
    frames = 0
    for chunk in chunks:
        frames += len(framer.feed(chunk))
    return frames


def format_time(seconds: float) -> str:
    if seconds >= 1e-3:
        return f"{seconds * 1e3:9.2f} ms"
    return f"{seconds * 1e6:9.2f} µs"


def main() -> None:
    started = time.perf_counter()
    rows = []
    for name, note, operations in cases():
        times = {twin: best_time_per_op(op) for twin, op in operations.items()}
        rows.append((name, note, times))

    heading = f"{'operation':<20} {'cython':>12} {'python':>12} {'speed-up':>9}"
    print(f"{heading}  {'ops/s (cython)':>15}  note")
    print("-" * 110)
    for name, note, times in rows:
        compiled = times.get("cython")
        pure = times["python"]
        ratio = f"{pure / compiled:8.1f}x" if compiled else "      n/a"
        ops = f"{1 / compiled:15,.0f}" if compiled else f"{'':>15}"
        cython_col = format_time(compiled) if compiled else f"{'n/a':>12}"
        print(f"{name:<20} {cython_col:>12} {format_time(pure):>12} {ratio:>9}  {ops}  {note}")
    print(f"\n(best of {REPEATS} runs; total {time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
