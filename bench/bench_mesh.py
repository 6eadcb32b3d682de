"""Benchmark a running mesh of real receptor processes on loopback.

Prints, for this machine and this run:

* ping round trip over 1 and 3 hops (the daemon's own measurement, as ``receptorctl ping``
  shows it), beside a raw loopback TCP round trip of the same 36-byte message between two
  threads measured in the same run;
* convergence of an 8-node line whose nodes are started one after another (each dialling the
  previous one): the time from the last node's start until every node routes to every other
  node, and the same from the moment the last node reported "Initialization complete";
* idle RSS per node.

Upstream Go figures on this kind of machine (from the issue) are printed for comparison:
ping 0.19 ms (1 hop) / 0.55 ms (3 hops), an 8-node line converging in 0.26 s, 14 MiB RSS.

Run: ``python bench/bench_mesh.py [--pings N]``. Set ``RECEPTOR_NO_EXTENSIONS=1`` to measure
the pure-Python core.
"""

import argparse
import json
import os
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.harness import Mesh, free_port, listener, peer, wait_until

UPSTREAM = {"ping1": 0.19, "ping3": 0.55, "converge": 0.26, "rss": 14.0}


def raw_round_trip_ms(count: int) -> float:
    """Median round trip of a 36-byte message over a loopback TCP connection."""
    server = socket.create_server(("127.0.0.1", 0))

    def echo() -> None:
        conn, _ = server.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn:
            while data := conn.recv(64):
                conn.sendall(data)

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    client = socket.create_connection(server.getsockname())
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    samples = []
    message = b"\x00" * 36
    for _ in range(count):
        start = time.perf_counter()
        client.sendall(message)
        received = 0
        while received < len(message):
            received += len(client.recv(64))
        samples.append(time.perf_counter() - start)
    client.close()
    thread.join()
    server.close()
    return statistics.median(samples) * 1000


def control_session(path: str) -> tuple[socket.socket, "socket.SocketIO"]:
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(path)
    reader = sock.makefile("rb")
    reader.readline()
    return sock, reader


def ping_ms(node, target: str, count: int) -> float:
    sock, reader = control_session(node.socket_path)
    samples = []
    for _ in range(count):
        sock.sendall(f"ping {target}\n".encode())
        reply = json.loads(reader.readline())
        assert reply["Success"], reply
        samples.append(reply["Time"] / 1e6)
    sock.close()
    return statistics.median(samples)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def converged(nodes) -> bool:
    names = {n.node_id for n in nodes}
    for node in nodes:
        sock, reader = control_session(node.socket_path)
        sock.sendall(b'{"command":"status","requested_fields":["RoutingTable"]}\n')
        routes = json.loads(reader.readline())["RoutingTable"]
        sock.close()
        if set(routes) != names - {node.node_id}:
            return False
    return True


def bench_line(count: int) -> dict[str, float]:
    mesh = Mesh()
    try:
        ports = [free_port() for _ in range(count)]
        nodes = [mesh.node("n1", listener(ports[0]), log_level="info")]
        for index in range(2, count + 1):
            node = mesh.node(
                f"n{index}",
                peer(ports[index - 2]),
                listener(ports[index - 1]),
                log_level="info",
                start=False,
            )
            started = time.perf_counter()
            node.start(wait=index < count)
            nodes.append(node)
        node.wait_for_log("Initialization complete", 20)
        ready = time.perf_counter()
        wait_until(lambda: converged(nodes), timeout=60, interval=0.005)
        done = time.perf_counter()
        time.sleep(2)
        rss = statistics.mean(rss_mib(n.process.pid) for n in nodes if n.process)
        return {"from_start": done - started, "from_ready": done - ready, "rss": rss}
    finally:
        mesh.close()


def bench_pings(count: int) -> dict[str, float]:
    mesh = Mesh()
    try:
        p1, p2, p3 = free_port(), free_port(), free_port()
        n1 = mesh.node("n1", listener(p1), log_level="info")
        n2 = mesh.node("n2", peer(p1), listener(p2), log_level="info")
        n3 = mesh.node("n3", peer(p2), listener(p3), log_level="info")
        n4 = mesh.node("n4", peer(p3), log_level="info")
        wait_until(lambda: converged([n1, n2, n3, n4]), timeout=30)
        ping_ms(n1, "n4", 20)  # warm up
        return {"ping1": ping_ms(n1, "n2", count), "ping3": ping_ms(n1, "n4", count)}
    finally:
        mesh.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pings", type=int, default=500)
    parser.add_argument("--nodes", type=int, default=8)
    args = parser.parse_args()
    from receptor._core import IMPLEMENTATION

    raw = raw_round_trip_ms(args.pings)
    pings = bench_pings(args.pings)
    line = bench_line(args.nodes)
    print(f"receptor mesh benchmark (core: {IMPLEMENTATION}, {os.cpu_count()} CPUs)")
    print(f"{'measure':<44}{'ours':>10}{'upstream':>10}{'ratio':>8}")
    rows = [
        ("ping round trip, 1 hop (ms, median)", pings["ping1"], UPSTREAM["ping1"]),
        ("ping round trip, 3 hops (ms, median)", pings["ping3"], UPSTREAM["ping3"]),
        (
            f"{args.nodes}-node line convergence from last start (s)",
            line["from_start"],
            UPSTREAM["converge"],
        ),
        (
            f"{args.nodes}-node line convergence from last ready (s)",
            line["from_ready"],
            UPSTREAM["converge"],
        ),
        ("idle RSS per node (MiB)", line["rss"], UPSTREAM["rss"]),
    ]
    for name, ours, theirs in rows:
        print(f"{name:<44}{ours:>10.3f}{theirs:>10.2f}{ours / theirs:>7.2f}x")
    print(f"{'raw loopback TCP round trip, 36 B (ms)':<44}{raw:>10.3f}")
    print(f"ping 1 hop / raw loopback round trip: {pings['ping1'] / raw:.1f}x")


if __name__ == "__main__":
    main()
