"""A throw-away CA and node certificates for tests and demos (made like cert-init/-signreq).

Keys are generated fresh (2048-bit RSA by default; tests may pass a smaller ``bits`` only
down to 1024), certificates carry the profile upstream's tooling gives them, and the files
are written with the names the TLS tests expect.
"""

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from receptor.certificates._commands import make_validity
from receptor.certificates._names import parse_ip
from receptor.certificates._pem import encode_pem, write_file
from receptor.certificates._tooling import (
    create_ca,
    create_request,
    generate_key,
    key_pem,
    sign_request,
)

__all__ = ["NodeCertificate", "TestPKI", "make_test_pki"]


@dataclass(frozen=True)
class NodeCertificate:
    """One node's files: ``<dir>/<node>.crt`` and ``<dir>/<node>.key``."""

    node_id: str
    cert: Path
    key: Path


@dataclass
class TestPKI:
    """The CA files and one :class:`NodeCertificate` per node ID."""

    __test__ = False  # not a pytest test class despite its name

    directory: Path
    ca_cert: Path
    ca_key: Path
    nodes: dict[str, NodeCertificate] = field(default_factory=dict)

    def __getitem__(self, node_id: str) -> NodeCertificate:
        return self.nodes[node_id]


def _der(item: x509.Certificate) -> bytes:
    return item.public_bytes(serialization.Encoding.DER)


def make_test_pki(
    directory: str | os.PathLike[str],
    node_ids: list[str],
    *,
    dns_names: list[str] | None = None,
    ip_addresses: list[str] | None = None,
    bits: int = 2048,
    ca_name: str = "Receptor Test CA",
) -> TestPKI:
    """Write ``ca.crt``/``ca.key`` and ``<node>.crt``/``<node>.key`` for each node ID.

    Each node certificate names the node ID (otherName, certs.md §4), the DNS names
    (default ``localhost``) and IP addresses (default ``127.0.0.1``), and is valid for
    both server and client authentication, like one from ``cert-signreq``.
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    now = time.time()
    ca_key = generate_key(bits)
    ca = create_ca(ca_name, ca_key, make_validity(None, None, 10, now))
    pki = TestPKI(root, root / "ca.crt", root / "ca.key")
    write_file(str(pki.ca_cert), [encode_pem("CERTIFICATE", _der(ca))])
    write_file(str(pki.ca_key), [key_pem(ca_key)])
    dns = ["localhost"] if dns_names is None else list(dns_names)
    ips = [parse_ip(text) for text in (["127.0.0.1"] if ip_addresses is None else ip_addresses)]
    packed = [ip for ip in ips if ip is not None]
    for node_id in node_ids:
        key = generate_key(bits)
        csr = create_request(node_id, key, dns, packed, [node_id])
        cert = sign_request(csr, ca, ca_key, make_validity(None, None, 1, now))
        paths = NodeCertificate(node_id, root / f"{node_id}.crt", root / f"{node_id}.key")
        write_file(str(paths.cert), [encode_pem("CERTIFICATE", _der(cert))])
        write_file(str(paths.key), [key_pem(key)])
        pki.nodes[node_id] = paths
    return pki
