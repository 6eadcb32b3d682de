"""Logging in upstream's format: ``LEVEL yyyy/mm/dd hh:mm:ss message`` on standard output.

Every module logs through the ``receptor`` logger. Upstream's four levels map onto Python's:
ERROR, WARNING, INFO, DEBUG. Without a ``log-level`` entity the level is INFO; with the
entity and no value it is ERROR (config.md §3.2).
"""

import logging
import sys

logger = logging.getLogger("receptor")

LEVELS = {
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}


class _GoFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(levelname)s %(asctime)s %(message)s", datefmt="%Y/%m/%d %H:%M:%S")


def setup(level: int = logging.INFO) -> None:
    """Send the ``receptor`` logger to stdout in upstream's format (idempotent)."""
    if not any(getattr(h, "_receptor", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(_GoFormatter())
        handler._receptor = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level)


def set_level(name: str) -> None:
    """Set the level by upstream name (case-insensitive); ``ValueError`` with upstream's text."""
    level = LEVELS.get(name.lower())
    if level is None:
        raise ValueError(f"{name} is not a valid log level name")
    logger.setLevel(level)
