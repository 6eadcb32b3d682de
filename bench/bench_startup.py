"""Start-up latency, idle memory and the cost of idle peers, for our daemon and upstream's.

Prints, for this machine and this run:

* start-up: from ``exec`` until the control socket exists, one node alone and the last of
  three nodes started at once (median of several runs), beside ``python -c pass`` (the
  floor for any Python program) measured in the same run;
* idle RSS per node of a 2-node TCP mesh with a control service, after it converged;
* a hub node with 1, 100 and 500 idle TCP peers: its RSS and threads, and the cost per peer.
  The peers are the same for every hub: in-process nodes of ours (``Netceptor`` objects, up
  to 100 per helper process), so only the hub differs.

With ``RECEPTOR_GO`` naming the upstream binary (``../shared/peers/receptor-go-1.4.9``),
every figure is also measured for it, in the same run. Run: ``python bench/bench_startup.py
[--peers 100,500] [--runs N]``.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.harness import Mesh, free_port, listener, peer, wait_until

OURS = (sys.executable, "-m", "receptor")
#: Peers per helper process of the peer farm.
FARM_SIZE = 100


def go_binary() -> tuple[str, ...] | None:
    path = os.environ.get("RECEPTOR_GO")
    return (str(Path(path).resolve()),) if path else None


def proc_status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def rss_mib(pid: int) -> float:
    return proc_status(pid, "VmRSS") / 1024


def threads(pid: int) -> int:
    return proc_status(pid, "Threads")


# ------------------------------------------------------------------------------ start-up


def _config(directory: str, name: str, port: int, peer_port: int | None) -> str:
    path = f"{directory}/{name}.yml"
    lines = [
        "- node:",
        f"    id: {name}",
        f"    datadir: {directory}/{name}-data",
        "- control-service:",
        f"    filename: {directory}/{name}.sock",
        "- tcp-listener:",
        f"    port: {port}",
    ]
    if peer_port is not None:
        lines += ["- tcp-peer:", f"    address: 127.0.0.1:{peer_port}"]
    Path(path).write_text("\n".join(lines) + "\n")
    return path


def time_to_sockets(command: tuple[str, ...], count: int) -> float:
    """Milliseconds from starting ``count`` nodes at once until the last control socket
    exists."""
    with tempfile.TemporaryDirectory(prefix="rcpt-bench") as directory:
        ports = [free_port() for _ in range(count)]
        configs = [
            _config(directory, f"n{i}", ports[i], ports[i - 1] if i else None) for i in range(count)
        ]
        sockets = [f"{directory}/n{i}.sock" for i in range(count)]
        started = time.perf_counter()
        processes = [
            subprocess.Popen(
                [*command, "-c", config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            for config in configs
        ]
        try:
            while not all(os.path.exists(s) for s in sockets):
                if time.perf_counter() - started > 30:
                    raise RuntimeError("a control socket did not appear in 30 s")
                time.sleep(0.0002)
            return (time.perf_counter() - started) * 1000
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait()


def time_python_pass() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return (time.perf_counter() - started) * 1000


def median_of(runs: int, measure) -> float:  # type: ignore[no-untyped-def]
    return statistics.median(measure() for _ in range(runs))


# ------------------------------------------------------------------------------ memory


def idle_pair_rss(command: tuple[str, ...]) -> float:
    """Mean RSS (MiB) of the two nodes of an idle 2-node TCP mesh with control services."""
    mesh = Mesh()
    try:
        a = mesh.node("a", listener(), command=command)
        b = mesh.node("b", peer(a.port()), command=command)
        wait_until(lambda: "b" in a.routes() and "a" in b.routes(), timeout=30)
        time.sleep(3)  # idle
        return statistics.mean(rss_mib(node.process.pid) for node in (a, b))  # type: ignore[union-attr]
    finally:
        mesh.close()


FARM = """
import logging, sys, time
logging.getLogger("receptor").setLevel(logging.CRITICAL)  # redials of 100 nodes: no noise
from receptor.backends import TCPDialer
from receptor.netceptor import BackendInfo, Netceptor
port, first, count = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
nodes = []
for i in range(first, first + count):
    node = Netceptor(f"peer{i}")
    node.add_backend(TCPDialer(f"127.0.0.1:{port}"), BackendInfo())
    nodes.append(node)
print("up", flush=True)
sys.stdin.read()
for node in nodes:
    node.shutdown()
"""


def hub_with_peers(command: tuple[str, ...], counts: list[int]) -> list[tuple[int, float, int]]:
    """(peers, hub RSS MiB, hub threads) for each count, peers added in steps; stops at the
    first count whose peers do not all appear in the hub's routes within 5 minutes (the peer
    farm itself is Python on the same two cores)."""
    results = []
    mesh = Mesh()
    farms: list[subprocess.Popen[str]] = []
    try:
        port = free_port()
        hub = mesh.node("hub", listener(port), command=command, log_level="info")
        assert hub.process is not None
        connected = 0
        for count in counts:
            while connected < count:
                batch = min(FARM_SIZE, count - connected)
                farm = subprocess.Popen(
                    [sys.executable, "-c", FARM, str(port), str(connected), str(batch)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                farms.append(farm)
                assert farm.stdout is not None
                farm.stdout.readline()
                connected += batch

            def all_routed(count: int = count) -> bool:
                try:
                    return len(hub.routes()) >= count
                except TimeoutError:  # a hub too busy to answer its control socket in 30 s
                    return False

            try:
                wait_until(all_routed, timeout=300, interval=0.5)
            except AssertionError:
                print(f"  ({count} peers did not all appear in the hub's routes in 300 s)")
                break
            time.sleep(3)  # idle
            results.append((count, rss_mib(hub.process.pid), threads(hub.process.pid)))
    finally:
        for farm in farms:
            if farm.stdin is not None:
                farm.stdin.close()
        for farm in farms:
            try:
                farm.wait(30)
            except subprocess.TimeoutExpired:
                farm.kill()
                farm.wait()
        mesh.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--peers", default="1,100,500")
    args = parser.parse_args()
    counts = [int(c) for c in args.peers.split(",")]
    daemons = [("ours", OURS)]
    go = go_binary()
    if go is not None:
        daemons.append(("upstream", go))
    print(f"receptor start-up and footprint ({os.cpu_count()} CPUs, {args.runs} runs each)")
    floor = median_of(args.runs, time_python_pass)
    print(f"{'python -c pass (ms, median)':48} {floor:9.1f}")
    figures: dict[str, dict[str, float]] = {}
    for name, command in daemons:
        one = median_of(args.runs, lambda command=command: time_to_sockets(command, 1))
        three = median_of(args.runs, lambda command=command: time_to_sockets(command, 3))
        rss = idle_pair_rss(command)
        figures[name] = {"one": one, "three": three, "rss": rss}
        print(f"{name}: control socket, 1 node (ms, median)      {one:9.1f}")
        print(f"{name}: last of 3 sockets, started at once (ms)  {three:9.1f}")
        print(f"{name}: idle RSS per node, 2-node mesh (MiB)      {rss:9.1f}")
        hub = hub_with_peers(command, counts)
        for peers, hub_rss, hub_threads in hub:
            print(
                f"{name}: hub with {peers:3d} peers: RSS {hub_rss:7.1f} MiB, {hub_threads} threads"
            )
        if len(hub) > 1:
            (p0, r0, t0), (p1, r1, t1) = hub[0], hub[-1]
            per_peer_kib = (r1 - r0) * 1024 / (p1 - p0)
            per_peer_threads = (t1 - t0) / (p1 - p0)
            figures[name]["peer_kib"] = per_peer_kib
            print(
                f"{name}: per peer ({p0}..{p1}): {per_peer_kib:.0f} KiB, "
                f"{per_peer_threads:.2f} threads"
            )
    ours = figures["ours"]
    print(f"ours / python -c pass, 1 node: {ours['one'] / floor:.1f}x")
    if "upstream" in figures:
        theirs = figures["upstream"]
        for key, label in (("one", "1 node"), ("three", "3 nodes"), ("rss", "idle RSS")):
            print(f"ours / upstream, {label}: {ours[key] / theirs[key]:.1f}x")
        if "peer_kib" in ours and "peer_kib" in theirs:
            print(f"ours / upstream, memory per peer: {ours['peer_kib'] / theirs['peer_kib']:.1f}x")


if __name__ == "__main__":
    main()
