"""Run every benchmark: the core (Cython against pure Python), the mesh with each core,
mesh streams, the TCP proxy services, work units (local and remote) and start-up/footprint.

Each script runs in its own process, one after the other; a script that fails is reported
and the others still run (the exit status is 1 then). Extra arguments go to ``bench_mesh``.
"""

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

SCRIPTS = (
    "bench_core.py",
    "bench_mesh.py",
    "bench_streams.py",
    "bench_proxy.py",
    "bench_work.py",
    "bench_startup.py",
)


def run(script: str, *args: str, pure: bool = False) -> bool:
    env = dict(os.environ)
    if pure:
        env["RECEPTOR_NO_EXTENSIONS"] = "1"
    print(
        f"\n$ {'RECEPTOR_NO_EXTENSIONS=1 ' if pure else ''}python bench/{script} {' '.join(args)}"
    )
    sys.stdout.flush()
    result = subprocess.run([sys.executable, str(HERE / script), *args], env=env, check=False)
    if result.returncode != 0:
        print(f"bench/{script} failed (exit status {result.returncode})")
    return result.returncode == 0


def main() -> int:
    ok = run("bench_core.py")
    ok &= run("bench_mesh.py", *sys.argv[1:])
    ok &= run("bench_mesh.py", *sys.argv[1:], pure=True)
    for script in SCRIPTS[2:]:
        ok &= run(script)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
