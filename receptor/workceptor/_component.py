"""The daemon component for work-command, work-signing and work-verification."""

from receptor._daemon import Component


class WorkEntities(Component):
    """Not built yet: owns no entities."""
