"""Test certificates made with ``cryptography``: a CA and node certificates carrying Receptor
node IDs as otherName SANs (certs.md §4), like ``receptor --cert-signreq`` makes them.

Used by the unit tests here and by ``tests/integration/test_tls.py``.
"""

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from receptor.netceptor.tls import NODE_ID_OID

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def node_id_san(node_id: str) -> x509.OtherName:
    """The otherName for one node ID: the value is the DER of a UTF8String."""
    raw = node_id.encode()
    return x509.OtherName(x509.ObjectIdentifier(NODE_ID_OID), b"\x0c" + _der_len(len(raw)) + raw)


def _der_len(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def new_key(kind: str = "rsa") -> PrivateKey:
    """``rsa`` (2048 bits), ``ec`` (P-256), ``ec384`` (P-384) or ``ed25519``."""
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Issued:
    cert: x509.Certificate
    key: PrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        # PKCS#8 for Ed25519, which has no "traditional" format.
        traditional = not isinstance(self.key, ed25519.Ed25519PrivateKey)
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL
            if traditional
            else serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    def write(self, directory: Path, stem: str) -> tuple[str, str]:
        """Write ``<stem>.crt`` and ``<stem>.key``; return their paths."""
        cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
        cert_path.write_bytes(self.cert_pem)
        key_path.write_bytes(self.key_pem)
        return str(cert_path), str(key_path)


def make_ca(common_name: str = "Receptor Test CA") -> Issued:
    key = new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert, key)


def make_cert(
    ca: Issued,
    common_name: str,
    node_ids: tuple[str, ...] = (),
    dns_names: tuple[str, ...] = ("localhost",),
    ip_addresses: tuple[str, ...] = ("127.0.0.1",),
    expired: bool = False,
    usages: tuple[x509.ObjectIdentifier, ...] | None = (
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    ),
    key_kind: str = "rsa",
) -> Issued:
    """A certificate signed by ``ca`` with receptor's SAN layout (DNS, IP, then node IDs)."""
    key = new_key(key_kind)
    now = datetime.now(UTC)
    if expired:
        start, end = now - timedelta(days=30), now - timedelta(days=1)
    else:
        start, end = now - timedelta(days=1), now + timedelta(days=30)
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
    names += [node_id_san(n) for n in node_ids]
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if usages is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


def fingerprint(issued: Issued, algorithm: str = "sha256", colons: bool = True) -> str:
    """The fingerprint as ``openssl x509 -fingerprint`` prints it (upper case, colons)."""
    digest = issued.cert.fingerprint(hashes.SHA256() if algorithm == "sha256" else hashes.SHA512())
    text = digest.hex().upper()
    return ":".join(text[i : i + 2] for i in range(0, len(text), 2)) if colons else text
