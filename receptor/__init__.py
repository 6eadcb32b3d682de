"""A Python implementation of Receptor, the mesh overlay network used by Ansible AWX/AAP."""

from receptor._errors import ConfigError, MeshError, ProtocolError, ReceptorError
from receptor._version import __version__

__all__ = ["ConfigError", "MeshError", "ProtocolError", "ReceptorError", "__version__"]
