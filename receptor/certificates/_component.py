"""The daemon component for cert-init, cert-makereq and cert-signreq."""

from receptor._daemon import Component


class CertificateEntities(Component):
    """Not built yet: owns no entities."""
