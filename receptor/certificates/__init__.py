"""Certificate tooling (cert-init, cert-makereq, cert-signreq) and Receptor node-ID names.

Public helpers for the rest of the code and for tests:

* :func:`node_ids_from_certificate` — the Receptor node IDs a certificate names (the
  otherName ``1.3.6.1.4.1.2312.19.1`` entries of its subjectAltName, certs.md §4.1),
  decoded as Go nodes decode them; :class:`ReceptorNameError` on a malformed entry.
* :func:`certificate_names` — DNS names, IP addresses and node IDs together.
* :func:`make_test_pki` — a CA plus node certificates written to a directory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from receptor._lazy import LazyModule
from receptor.certificates._asn1 import ASN1Error, parse_tag_and_length
from receptor.certificates._names import (
    NODE_ID_OID,
    SAN_OID,
    CertNames,
    certificate_extensions,
    encode_san,
    parse_ip,
    parse_san,
)
from receptor.certificates._names import (
    node_ids_from_san as _node_ids_from_san,
)

if TYPE_CHECKING:
    from cryptography import x509

    from receptor.certificates._gofmt import go_ip_string
    from receptor.certificates._testpki import NodeCertificate, TestPKI, make_test_pki
else:
    # cryptography is loaded when a certificate is handled, not by every daemon.
    x509 = LazyModule("cryptography.x509", globals(), "x509")


def __getattr__(name: str) -> object:
    """The helpers that need cryptography, imported on first use."""
    if name in ("NodeCertificate", "TestPKI", "make_test_pki"):
        from receptor.certificates import _testpki

        return getattr(_testpki, name)
    if name == "go_ip_string":
        from receptor.certificates import _gofmt

        return _gofmt.go_ip_string
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "NODE_ID_OID_STRING",
    "CertNames",
    "NodeCertificate",
    "ReceptorNameError",
    "TestPKI",
    "certificate_names",
    "encode_san",
    "go_ip_string",
    "make_test_pki",
    "node_ids_from_certificate",
    "node_ids_from_san",
    "parse_ip",
]

#: The otherName type-id of a Receptor node ID, dotted.
NODE_ID_OID_STRING = ".".join(str(arc) for arc in NODE_ID_OID)


class ReceptorNameError(ValueError):
    """A certificate whose names cannot be read; the message is Go's (e.g. ``asn1: ...``)."""


def _tbs(cert: x509.Certificate | bytes) -> bytes:
    """The TBSCertificate DER of a certificate object or of a whole certificate's DER."""
    if isinstance(cert, x509.Certificate):
        return cert.tbs_certificate_bytes
    _, offset = parse_tag_and_length(cert, 0)
    inner, start = parse_tag_and_length(cert, offset)
    return bytes(cert[offset : start + inner.length])


def _san_values(cert: x509.Certificate | bytes) -> list[bytes]:
    try:
        extensions = certificate_extensions(_tbs(cert))
    except ASN1Error as err:
        raise ReceptorNameError(str(err)) from None
    return [extension.value for extension in extensions if extension.oid == SAN_OID]


def node_ids_from_san(value: bytes) -> list[str]:
    """The node IDs of one subjectAltName extension value (DER); see below for the rules."""
    try:
        return _node_ids_from_san(value)
    except ASN1Error as err:
        raise ReceptorNameError(str(err)) from None


def node_ids_from_certificate(cert: x509.Certificate | bytes) -> list[str]:
    """The Receptor node IDs named by ``cert`` (a ``cryptography`` certificate or its DER).

    Follows upstream's ``utils.ReceptorNames`` (certs.md §4.1): every subjectAltName entry
    with tag number 0 is an OtherName; those of type 1.3.6.1.4.1.2312.19.1 give their
    string (UTF8String, or PrintableString, IA5String and the other string types Go
    accepts); other names are ignored; empty IDs are dropped. Compare the result with a
    node ID byte-exactly (case-sensitive). Raises :class:`ReceptorNameError` with Go's
    ASN.1 message when an entry is malformed: the whole check fails, as upstream's does.
    """
    names: list[str] = []
    for value in _san_values(cert):
        names.extend(node_ids_from_san(value))
    return names


def certificate_names(cert: x509.Certificate | bytes) -> CertNames:
    """DNS names, IP addresses (packed bytes) and node IDs of ``cert``.

    DNS names and addresses are read as Go's ``crypto/x509`` reads them; use
    :func:`go_ip_string` to show an address as upstream does. Raises
    :class:`ReceptorNameError` when the subjectAltName is malformed.
    """
    names = CertNames()
    for value in _san_values(cert):
        try:
            parsed = parse_san(value)
        except ValueError as err:
            raise ReceptorNameError(str(err)) from None
        names.dns_names, names.ip_addresses = parsed.dns_names, parsed.ip_addresses
        names.emails, names.uris = parsed.emails, parsed.uris
    names.node_ids = node_ids_from_certificate(cert)
    return names
