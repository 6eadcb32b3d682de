"""Benchmark work units through real receptor daemons, local and remote.

Each unit is what a client does end to end: ``work submit`` of an ``echo`` unit with a small
stdin payload over the Unix control socket, then ``work results`` streamed until the unit is
complete (so the figure includes starting the command runner, the command, its final status
and the output), then ``work release``. Measured sequentially and with 50 concurrent clients.

Remote units: the same client on node ``n1`` submits with ``"node": "n2"``, so the unit runs
on ``n2`` one hop away (n1 sends it over a mesh stream to n2's control service, and mirrors
its status and output back); measured sequentially, with 50 concurrent clients, as the
median submit-to-complete latency of the sequential run, and as results MB/s of one remote
unit whose command writes 64 MiB (submit to the last byte of ``work results`` on n1).

Reference in the same run: starting the same ``echo`` directly with ``subprocess.run`` (the
floor any process-per-unit design pays). For the concurrent runs it also prints the CPU time
per unit of the daemons with their runners and commands (read from /proc), and so the most
units per second that this machine's CPUs could give at that cost. Upstream Go figures (from
the issue): local 42 units/s sequential, 230 units/s with 50 concurrent clients; remote
1 unit/s sequential (1.03 s from submit to complete), 29 units/s with 50 concurrent clients.

Run: ``python bench/bench_work.py [--units N] [--remote-units N]``.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.harness import Mesh, ReceptorNode, free_port, listener, peer, wait_until

UPSTREAM = {
    "sequential": 42.0,
    "concurrent": 230.0,
    "remote sequential": 1.0,
    "remote concurrent": 29.0,
    "remote latency": 1.03,
}
CONCURRENCY = 50
BIG_OUTPUT = 64 * 1024 * 1024


def _session(path: str, request: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(path)
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def one_unit(node: ReceptorNode, index: int, target: str = "localhost") -> float:
    """Submit, stream the results to completion, release; the seconds from submit to the
    last byte of the results (the unit is complete then)."""
    submit = {"command": "work", "subcommand": "submit", "node": target, "worktype": "echo"}
    submit["params"] = f"unit-{index}"
    start = time.perf_counter()
    reply = _session(node.socket_path, json.dumps(submit).encode() + b"\npayload\n")
    unit_id = json.loads(reply.split(b"\n")[2])["unitid"]
    expected = f"unit-{index}\n".encode()
    output = _session(node.socket_path, f"work results {unit_id} 0\n".encode())
    latency = time.perf_counter() - start
    if not output.endswith(expected):
        state = _session(node.socket_path, f"work status {unit_id}\n".encode())
        raise RuntimeError(f"unexpected results for {unit_id}: {output!r} ({state!r})")
    released = _session(node.socket_path, f"work release {unit_id}\n".encode())
    if b'"released"' not in released:
        raise RuntimeError(f"release of {unit_id} failed: {released!r}")
    return latency


_TICKS = os.sysconf("SC_CLK_TCK")


def _process_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and of its children that it has reaped."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(field) for field in fields[11:15]) / _TICKS


def daemon_cpu(*nodes: ReceptorNode) -> float:
    """CPU seconds of the daemons and everything they started: the fork server (alive,
    read directly) and, through it, the runners and commands it has reaped."""
    total = 0.0
    for node in nodes:
        assert node.process is not None
        pid = node.process.pid
        total += _process_cpu(pid)
        for task in os.listdir(f"/proc/{pid}/task"):
            for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split():
                try:
                    total += _process_cpu(int(child))
                except OSError:
                    pass  # exited just now (and counted by the daemon once reaped)
    return total


def rate(
    node: ReceptorNode,
    units: int,
    workers: int,
    target: str = "localhost",
    measured: tuple[ReceptorNode, ...] = (),
) -> tuple[float, list[float], float]:
    """Units per second, each unit's submit-to-complete latency, and the CPU milliseconds
    per unit of the daemons in ``measured`` (with their runners and commands)."""
    cpu_before = daemon_cpu(*measured)
    start = time.perf_counter()
    if workers == 1:
        latencies = [one_unit(node, index, target) for index in range(units)]
    else:
        with ThreadPoolExecutor(workers) as pool:
            latencies = list(pool.map(lambda i: one_unit(node, i, target), range(units)))
    elapsed = time.perf_counter() - start
    cpu_ms = (daemon_cpu(*measured) - cpu_before) * 1000 / units
    return units / elapsed, latencies, cpu_ms


def remote_results_mbps(node: ReceptorNode) -> float:
    """MB/s of one remote unit writing ``BIG_OUTPUT`` bytes: submit on n1 to the last
    byte of its results on n1."""
    submit = {"command": "work", "subcommand": "submit", "node": "n2", "worktype": "zeros"}
    start = time.perf_counter()
    reply = _session(node.socket_path, json.dumps(submit).encode() + b"\n")
    unit_id = json.loads(reply.split(b"\n")[2])["unitid"]
    header = f"Receptor Control, node n1\nStreaming results for work unit {unit_id}\n"
    received = 0
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(node.socket_path)
        sock.sendall(f"work results {unit_id} 0\n".encode())
        sock.shutdown(socket.SHUT_WR)
        while chunk := sock.recv(1 << 20):
            received += len(chunk)
    elapsed = time.perf_counter() - start
    if received != len(header) + BIG_OUTPUT:
        raise RuntimeError(f"remote results: {received - len(header)} of {BIG_OUTPUT} bytes")
    _session(node.socket_path, f"work release {unit_id}\n".encode())
    return BIG_OUTPUT / elapsed / 1e6


def remote_figures(units: int) -> dict[str, float]:
    """Remote units between two daemons one hop apart (n1 submits, n2 runs)."""
    mesh = Mesh()
    try:
        port = free_port()
        n1 = mesh.node("n1", listener(port), log_level="info")
        n2 = mesh.node(
            "n2",
            peer(port),
            {"work-command": {"worktype": "echo", "command": "echo", "allowruntimeparams": True}},
            {
                "work-command": {
                    "worktype": "zeros",
                    "command": "head",
                    "params": f"-c {BIG_OUTPUT} /dev/zero",
                }
            },
            log_level="info",
        )
        wait_until(lambda: "n2" in n1.routes() and "n1" in n2.routes(), timeout=30)
        rate(n1, 5, 1, "n2")  # warm up (the first dial learns the peer)
        sequential, latencies, _ = rate(n1, units, 1, "n2")
        concurrent, _, cpu_ms = rate(n1, units, CONCURRENCY, "n2", (n1, n2))
        mbps = remote_results_mbps(n1)
    finally:
        mesh.close()
    return {
        "remote sequential": sequential,
        "remote concurrent": concurrent,
        "remote latency": statistics.median(latencies),
        "remote results": mbps,
        "remote cpu": cpu_ms,
    }


def raw_spawn_rate(units: int) -> float:
    start = time.perf_counter()
    for index in range(units):
        subprocess.run(["echo", f"unit-{index}"], stdout=subprocess.DEVNULL, check=True)
    return units / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--units", type=int, default=300, help="units per measurement")
    parser.add_argument(
        "--remote-units", type=int, default=100, help="units per remote measurement"
    )
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
        sequential, _, _ = rate(node, args.units, 1)
        concurrent, _, local_cpu = rate(node, args.units, CONCURRENCY, measured=(node,))
        leftover = os.listdir(mesh.workdir / "data" / "bench")
        raw = raw_spawn_rate(args.units)
    finally:
        mesh.close()
    remote = remote_figures(args.remote_units)
    print(
        f"receptor work benchmark ({os.cpu_count()} CPUs, {args.units} local and "
        f"{args.remote_units} remote units per figure)"
    )
    print(f"{'measure':<52}{'ours':>9}{'upstream':>10}{'ratio':>8}")
    for name, ours, key in (
        ("local units/s, sequential (submit+results+release)", sequential, "sequential"),
        (f"local units/s, {CONCURRENCY} concurrent clients", concurrent, "concurrent"),
        ("remote units/s (1 hop), sequential", remote["remote sequential"], "remote sequential"),
        (
            f"remote units/s (1 hop), {CONCURRENCY} concurrent clients",
            remote["remote concurrent"],
            "remote concurrent",
        ),
        ("remote submit-to-complete, median (s)", remote["remote latency"], "remote latency"),
    ):
        print(f"{name:<52}{ours:>9.3g}{UPSTREAM[key]:>10.3g}{ours / UPSTREAM[key]:>7.2f}x")
    print(f"{'remote results, 64 MiB unit (MB/s)':<52}{remote['remote results']:>9.1f}")
    cpus = os.cpu_count() or 1
    print(f"{'CPU ms per unit, local, concurrent (daemon+runners)':<52}{local_cpu:>9.2f}")
    print(f"{'CPU ms per unit, remote, concurrent (both daemons)':<52}{remote['remote cpu']:>9.2f}")
    print(
        f"{'  so at most, with every CPU busy: local / remote':<52}"
        f"{cpus * 1000 / local_cpu:>9.0f} / {cpus * 1000 / remote['remote cpu']:.0f} units/s"
    )
    print(f"{'reference: subprocess.run(echo) per second':<52}{raw:>9.1f}")
    if leftover:
        print(f"WARNING: {len(leftover)} unit directories left behind")


if __name__ == "__main__":
    main()
