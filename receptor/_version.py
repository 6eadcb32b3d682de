"""The package version, reported by `receptor --version` and the control `status` command."""

__version__ = "0.1.0"
