"""`python -m receptorctl`."""

from receptorctl.cli import main

if __name__ == "__main__":
    main()
