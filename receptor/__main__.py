"""The ``receptor`` command (also ``python -m receptor``).

``--validate`` anywhere on the command line (ours, not upstream's) checks the configuration
given by the other arguments instead of running it (:mod:`receptor._validate`).
"""

import sys


def main() -> None:
    args = sys.argv[1:]
    if "--validate" in args:
        from receptor._validate import main as validate

        sys.exit(validate([arg for arg in args if arg != "--validate"]))
    from receptor._daemon import main as run

    sys.exit(run())


if __name__ == "__main__":
    main()
