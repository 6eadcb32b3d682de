"""Benchmark local work units through a real receptor daemon.

Each unit is what a client does end to end: ``work submit`` of an ``echo`` unit with a small
stdin payload over the Unix control socket, then ``work results`` streamed until the unit is
complete (so the figure includes starting the command runner, the command, its final status
and the output), then ``work release``. Measured sequentially and with 50 concurrent clients.

Reference in the same run: starting the same ``echo`` directly with ``subprocess.run`` (the
floor any process-per-unit design pays). Upstream Go figures (from the issue): 42 units/s
sequential, 230 units/s with 50 concurrent clients.

Run: ``python bench/bench_work.py [--units N]``.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.harness import Mesh, ReceptorNode

UPSTREAM = {"sequential": 42.0, "concurrent": 230.0}
CONCURRENCY = 50


def _session(path: str, request: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(path)
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def one_unit(node: ReceptorNode, index: int) -> None:
    submit = {"command": "work", "subcommand": "submit", "node": "localhost", "worktype": "echo"}
    submit["params"] = f"unit-{index}"
    reply = _session(node.socket_path, json.dumps(submit).encode() + b"\npayload\n")
    unit_id = json.loads(reply.split(b"\n")[2])["unitid"]
    output = _session(node.socket_path, f"work results {unit_id} 0\n".encode())
    if not output.endswith(f"unit-{index}\n".encode()):
        raise RuntimeError(f"unexpected results for {unit_id}: {output!r}")
    released = _session(node.socket_path, f"work release {unit_id}\n".encode())
    if b'"released"' not in released:
        raise RuntimeError(f"release of {unit_id} failed: {released!r}")


def rate(node: ReceptorNode, units: int, workers: int) -> float:
    start = time.perf_counter()
    if workers == 1:
        for index in range(units):
            one_unit(node, index)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda i: one_unit(node, i), range(units)))
    return units / (time.perf_counter() - start)


def raw_spawn_rate(units: int) -> float:
    start = time.perf_counter()
    for index in range(units):
        subprocess.run(["echo", f"unit-{index}"], stdout=subprocess.DEVNULL, check=True)
    return units / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--units", type=int, default=300, help="units per measurement")
    args = parser.parse_args()
    mesh = Mesh()
    try:
        node = mesh.node(
            "bench",
            {"local-only": None},
            {"work-command": {"worktype": "echo", "command": "echo", "allowruntimeparams": True}},
            log_level="info",
        )
        rate(node, 20, 1)  # warm up
        sequential = rate(node, args.units, 1)
        concurrent = rate(node, args.units, CONCURRENCY)
        leftover = os.listdir(mesh.workdir / "data" / "bench")
        raw = raw_spawn_rate(args.units)
    finally:
        mesh.close()
    print(f"receptor work benchmark ({os.cpu_count()} CPUs, {args.units} units per figure)")
    print(f"{'measure':<46}{'ours':>9}{'upstream':>10}{'ratio':>8}")
    for name, ours, key in (
        ("units/s, sequential (submit+results+release)", sequential, "sequential"),
        (f"units/s, {CONCURRENCY} concurrent clients", concurrent, "concurrent"),
    ):
        print(f"{name:<46}{ours:>9.1f}{UPSTREAM[key]:>10.1f}{ours / UPSTREAM[key]:>7.2f}x")
    print(f"{'reference: subprocess.run(echo) per second':<46}{raw:>9.1f}")
    if leftover:
        print(f"WARNING: {len(leftover)} unit directories left behind")


if __name__ == "__main__":
    main()
