"""Benchmark mesh stream throughput (QUIC over the mesh, wire.md §14).

Prints, for this machine and this run, beside a raw loopback TCP push of the same payload
between two threads measured in the same run:

* in-process: the throughput of one stream pushing a payload from the first to the last
  node of a line of in-process nodes (one Python process, so one GIL for all of them)
  joined by real loopback TCP backends, over 1 and 3 hops. Each is measured twice: the
  run between our nodes uses large datagrams (after a probe handshake, see
  ``receptor/netceptor/_quic.py``), the other makes both sides behave as toward upstream
  nodes (1200-byte datagrams both ways), which is what a Go peer gets;
* daemons: real ``receptor`` processes in a line, a ``tcp-server`` proxy on the first and a
  ``tcp-client`` proxy on the last: bytes pushed into the first daemon's TCP port cross the
  mesh as one stream and leave the last daemon to a local TCP sink (two proxies included).
  Also measured twice: between our nodes, and with every daemon treating its peers as
  upstream nodes (``bench/as_upstream/sitecustomize.py`` on ``PYTHONPATH``), which is the
  1200-byte path with one process per node as in a real mesh.

Upstream Go figures (from the issue): 20 MB/s over 1 hop, 8.7 MB/s over 3 hops; the target
is five times that between our own nodes.

Run: ``python bench/bench_streams.py [--mib N]``. Set ``RECEPTOR_NO_EXTENSIONS=1`` to measure
with the pure-Python core.
"""

import argparse
import logging
import os
import socket
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from receptor.netceptor import Netceptor
from tests.integration.harness import Mesh, free_port, listener, peer, wait_until
from tests.unit.mesh.streamnet import chain

UPSTREAM = {1: 20.0, 3: 8.7}
DAEMON_PATH = "tcp-server->mesh->tcp-client"
BLOCK = 1 << 20


def raw_push_mbps(total: int) -> float:
    """MB/s of a one-way push over a loopback TCP connection between two threads."""
    server = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def sink() -> None:
        conn, _ = server.accept()
        with conn:
            while conn.recv(BLOCK):
                pass
        done.set()

    threading.Thread(target=sink, daemon=True).start()
    block = b"\x5a" * BLOCK
    start = time.perf_counter()
    with socket.create_connection(server.getsockname()) as client:
        for _ in range(total // BLOCK):
            client.sendall(block)
    done.wait()
    elapsed = time.perf_counter() - start
    server.close()
    return total / elapsed / 1e6


def stream_push_mbps(hops: int, total: int, small: bool) -> float:
    """MB/s of a one-way push over ``hops`` hops between in-process nodes. With ``small``
    both sides act as toward upstream nodes (1200-byte datagrams both ways)."""
    from receptor.netceptor import _quic

    nodes: list[Netceptor] = []
    saved = (_quic.initial_is_marked, _quic.MeshQuicConnection.peer_is_receptor_py)
    if small:
        _quic.initial_is_marked = lambda datagram: False  # type: ignore[assignment]
        _quic.MeshQuicConnection.peer_is_receptor_py = lambda self: False  # type: ignore[method-assign]

    def make(name: str) -> Netceptor:
        node = Netceptor(name)
        nodes.append(node)
        return node

    try:
        line = chain(make, [f"b{i}" for i in range(hops + 1)])
        first, last = line[0], line[-1]
        with last.listen("sink") as listener:

            def sink() -> None:
                conn = listener.accept(timeout=30)
                with conn:
                    while conn.recv(BLOCK):
                        pass
                    conn.sendall(b"k")

            thread = threading.Thread(target=sink, daemon=True)
            thread.start()
            block = b"\x5a" * BLOCK
            start = time.perf_counter()
            conn = first.dial(last.node_id, "sink", timeout=15)
            assert conn.large is not small
            for _ in range(total // BLOCK):
                conn.sendall(block)
            conn.shutdown(socket.SHUT_WR)
            assert conn.recv(1) == b"k"
            elapsed = time.perf_counter() - start
            conn.close()
            thread.join(30)
        return total / elapsed / 1e6
    finally:
        _quic.initial_is_marked, _quic.MeshQuicConnection.peer_is_receptor_py = saved  # type: ignore[method-assign]
        for node in nodes:
            node.shutdown()


def daemon_push_mbps(hops: int, total: int, small: bool = False) -> float:
    """MB/s through ``hops + 1`` daemons: tcp-server proxy → mesh stream → tcp-client proxy.
    With ``small`` the daemons act as toward upstream nodes (1200-byte datagrams)."""
    saved = os.environ.get("PYTHONPATH")
    if small:
        extra = str(Path(__file__).resolve().parent / "as_upstream")
        os.environ["PYTHONPATH"] = extra + (os.pathsep + saved if saved else "")
    try:
        return _daemon_push_mbps(hops, total)
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def _daemon_push_mbps(hops: int, total: int) -> float:
    sink = socket.create_server(("127.0.0.1", 0))
    received = threading.Event()
    counted = [0]

    def drain() -> None:
        conn, _ = sink.accept()
        with conn:
            while data := conn.recv(BLOCK):
                counted[0] += len(data)
                if counted[0] >= total:
                    received.set()
                    break

    threading.Thread(target=drain, daemon=True).start()
    mesh = Mesh()
    try:
        port = free_port()
        first = mesh.node(
            "d0",
            listener(),
            {"tcp-server": {"port": port, "remotenode": f"d{hops}", "remoteservice": "sink"}},
        )
        previous = first
        for i in range(1, hops + 1):
            items: list = [peer(previous.port())]
            if i < hops:
                items.append(listener())
            else:
                address = f"127.0.0.1:{sink.getsockname()[1]}"
                items.append({"tcp-client": {"address": address, "service": "sink"}})
            previous = mesh.node(f"d{i}", *items)
        wait_until(lambda: f"d{hops}" in first.routes(), timeout=30)
        block = b"\x5a" * BLOCK
        with socket.create_connection(("127.0.0.1", port)) as client:
            start = time.perf_counter()
            for _ in range(total // BLOCK):
                client.sendall(block)
            if not received.wait(300):
                raise RuntimeError(f"only {counted[0]} of {total} bytes arrived")
            elapsed = time.perf_counter() - start
        return total / elapsed / 1e6
    finally:
        mesh.close()
        sink.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=100, help="payload per measurement")
    args = parser.parse_args()
    logging.getLogger("receptor").setLevel(logging.CRITICAL)  # in-process nodes' chatter
    total = args.mib * BLOCK
    raw = raw_push_mbps(total)
    print(f"payload {args.mib} MiB per run")
    print(f"raw loopback TCP push (same run): {raw:8.1f} MB/s")
    for hops in (1, 3):
        for small in (False, True):
            mbps = stream_push_mbps(hops, total, small)
            kind = "1200-byte datagrams (as to Go)" if small else "between our nodes"
            target = f", target {5 * UPSTREAM[hops]:.0f} MB/s" if not small else ""
            print(
                f"in-process, {hops} hop{'s' if hops > 1 else ' '}, {kind:31s}: {mbps:8.1f} MB/s"
                f"   (upstream Go {UPSTREAM[hops]} MB/s{target})"
            )
    for hops in (1, 3):
        for small in (False, True):
            kind = "1200-byte datagrams (as to Go)" if small else "between our nodes"
            try:
                mbps = daemon_push_mbps(hops, total, small)
            except Exception as err:
                print(f"daemons, {hops} hop(s), {kind}: not measured ({err})")
                continue
            target = f", target {5 * UPSTREAM[hops]:.0f} MB/s" if not small else ""
            print(
                f"daemons,    {hops} hop{'s' if hops > 1 else ' '}, {kind:31s}: {mbps:8.1f} MB/s"
                f"   (upstream Go {UPSTREAM[hops]} MB/s{target})"
            )
    print(f"(daemons: {DAEMON_PATH}, two proxies included)")


if __name__ == "__main__":
    main()
