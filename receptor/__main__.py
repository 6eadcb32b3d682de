"""The ``receptor`` command (also ``python -m receptor``)."""

import sys


def main() -> None:
    from receptor._daemon import main as run

    sys.exit(run())


if __name__ == "__main__":
    main()
