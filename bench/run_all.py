"""Run every benchmark: the core (Cython against pure Python) and the mesh, with each core."""

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(script: str, *args: str, pure: bool = False) -> None:
    env = dict(os.environ)
    if pure:
        env["RECEPTOR_NO_EXTENSIONS"] = "1"
    print(
        f"\n$ {'RECEPTOR_NO_EXTENSIONS=1 ' if pure else ''}python bench/{script} {' '.join(args)}"
    )
    sys.stdout.flush()
    subprocess.run([sys.executable, str(HERE / script), *args], env=env, check=True)


if __name__ == "__main__":
    run("bench_core.py")
    run("bench_mesh.py", *sys.argv[1:])
    run("bench_mesh.py", *sys.argv[1:], pure=True)
