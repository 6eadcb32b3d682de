"""Benchmark stream throughput through the TCP proxy services of real receptor processes.

A client pushes N MiB into a ``tcp-server`` port; the bytes cross the mesh as one mesh stream
(QUIC over the backends) to a ``tcp-client`` service that forwards them to a local sink. The
sink counts the bytes and, at end of input, answers the count, so a run is timed from connect
to the moment the last byte has provably reached the sink. Prints, for this machine and run:

* throughput over 1 hop (two nodes) and 3 hops (a line of four nodes);
* the daemons' CPU seconds per GiB moved (utime + stime of every node of the run, from
  ``/proc/<pid>/stat``; the mesh nodes in between included);
* the same push over a plain loopback TCP connection to the same sink, measured in the same run.

Upstream Go figures on this kind of machine (from the issue) are printed for comparison:
about 20 MB/s over 1 hop, 8.7 MB/s over 3 hops and 80 CPU seconds per GiB.

Run: ``python bench/bench_proxy.py [--mib N]``. Set ``RECEPTOR_NO_EXTENSIONS=1`` to measure
the pure-Python core.
"""

import argparse
import os
import socket
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.harness import Mesh, ReceptorNode, free_port, listener, peer, wait_until

UPSTREAM = {"hop1": 20.0, "hop3": 8.7, "cpu": 80.0}
CHUNK = 256 * 1024
GIB = 1 << 30


class Sink:
    """Reads each connection to EOF and answers the number of bytes it read."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._drain, args=(conn,), daemon=True).start()

    @staticmethod
    def _drain(conn: socket.socket) -> None:
        total = 0
        buffer = bytearray(CHUNK)
        with conn:
            while count := conn.recv_into(buffer):
                total += count
            conn.sendall(str(total).encode())

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)
        self.sock.close()


def push(port: int, size: int) -> float:
    """Seconds to push ``size`` bytes to the sink behind ``port`` (until it confirms)."""
    block = os.urandom(CHUNK)
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sent = 0
        while sent < size:
            sock.sendall(block)
            sent += len(block)
        sock.shutdown(socket.SHUT_WR)
        reply = b"".join(iter(lambda: sock.recv(64), b""))
    elapsed = time.perf_counter() - start
    if int(reply or b"0") != sent:
        raise RuntimeError(f"sink received {reply!r} bytes of {sent}")
    return elapsed


def cpu_seconds(nodes: list[ReceptorNode]) -> float:
    """utime + stime of the nodes' processes (fields 14 and 15 of /proc/<pid>/stat)."""
    ticks = 0
    for node in nodes:
        assert node.process is not None
        stat = Path(f"/proc/{node.process.pid}/stat").read_text()
        fields = stat.rpartition(")")[2].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def bench_line(hops: int, sink: Sink, size: int) -> tuple[float, float]:
    """(MB/s, CPU seconds per GiB) through a line of ``hops + 1`` nodes."""
    mesh = Mesh()
    try:
        ports = [free_port() for _ in range(hops)]
        proxy_port = free_port()
        nodes = []
        for index in range(hops + 1):
            items: list[object] = []
            if index > 0:
                items.append(peer(ports[index - 1]))
            if index < hops:
                items.append(listener(ports[index]))
            if index == 0:
                items.append(
                    {
                        "tcp-server": {
                            "port": proxy_port,
                            "bindaddr": "127.0.0.1",
                            "remotenode": f"n{hops}",
                            "remoteservice": "sink",
                        }
                    }
                )
            if index == hops:
                items.append({"tcp-client": {"service": "sink", "address": sink.address}})
            nodes.append(mesh.node(f"n{index}", *items, log_level="info"))
        wait_until(lambda: f"n{hops}" in nodes[0].routes(), timeout=30)
        push(proxy_port, 4 * CHUNK)  # warm up: first stream, routes, QUIC handshake
        before = cpu_seconds(nodes)
        elapsed = push(proxy_port, size)
        used = cpu_seconds(nodes) - before
        return size / elapsed / 1e6, used / (size / GIB)
    finally:
        mesh.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=64, help="MiB pushed per measurement")
    args = parser.parse_args()
    from receptor._core import IMPLEMENTATION

    size = args.mib * (1 << 20)
    sink = Sink()
    try:
        raw_port = int(sink.address.rpartition(":")[2])
        raw = size / push(raw_port, size) / 1e6
        hop1, cpu1 = bench_line(1, sink, size)
        hop3, cpu3 = bench_line(3, sink, size)
    finally:
        sink.close()
    print(
        f"receptor proxy benchmark (core: {IMPLEMENTATION}, {os.cpu_count()} CPUs, {args.mib} MiB)"
    )
    print(f"{'measure':<48}{'ours':>10}{'upstream':>10}{'ratio':>8}")
    rows = [
        ("tcp-server → tcp-client, 1 hop (MB/s)", hop1, UPSTREAM["hop1"]),
        ("tcp-server → tcp-client, 3 hops (MB/s)", hop3, UPSTREAM["hop3"]),
        ("daemon CPU per GiB, 1 hop (s, both nodes)", cpu1, UPSTREAM["cpu"]),
        ("daemon CPU per GiB, 3 hops (s, all 4 nodes)", cpu3, UPSTREAM["cpu"]),
    ]
    for name, ours, theirs in rows:
        print(f"{name:<48}{ours:>10.1f}{theirs:>10.1f}{ours / theirs:>7.2f}x")
    print(f"{'plain loopback TCP push to the same sink (MB/s)':<48}{raw:>10.1f}")
    print(f"1 hop / plain loopback: {hop1 / raw:.3f}")


if __name__ == "__main__":
    main()
