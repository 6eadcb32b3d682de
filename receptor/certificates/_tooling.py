"""Making a CA, requests and signed certificates exactly as upstream does (certs.md §1–§3).

The functions take keys, names and the moment to use and return ``cryptography`` objects;
files, the clock and the prompt belong to the component. With the same key and the same
second, :func:`create_ca`, :func:`create_request` and :func:`sign_request` give the same
bytes as upstream's Go code (checked against the golden certificates in the tests).
"""

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from receptor.certificates._asn1 import ASN1Error
from receptor.certificates._gofmt import (
    SIGNING_HASHES,
    SigningHash,
    go_ip_string,
    go_name_string,
    go_public_key_algorithm,
    go_rebuilt_name,
    go_signature_algorithm,
    go_string_type,
)
from receptor.certificates._names import (
    SAN_OID,
    CertNames,
    encode_san,
    node_ids_from_san,
    parse_san,
    request_extensions,
)
from receptor.certificates._pem import CertError, encode_pem

__all__ = [
    "Validity",
    "create_ca",
    "create_request",
    "describe_request",
    "generate_key",
    "key_pem",
    "request_names",
    "sign_request",
]

_EKU = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH])


def _key_usage(cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass(frozen=True)
class Validity:
    """Serial number and validity period of a certificate about to be made."""

    serial: int
    not_before: datetime
    not_after: datetime


def generate_key(bits: int) -> rsa.RSAPrivateKey:
    """A new RSA key (exponent 65537); sizes under 1024 bits are refused as by current Go."""
    if bits < 1024:
        raise CertError(
            f"crypto/rsa: {bits}-bit keys are insecure "
            "(see https://go.dev/pkg/crypto/rsa#hdr-Minimum_key_size)"
        )
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def key_pem(key: rsa.RSAPrivateKey) -> bytes:
    """PEM ``RSA PRIVATE KEY`` (PKCS #1), as upstream saves every key it makes."""
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return encode_pem("RSA PRIVATE KEY", der)


def _common_name(common_name: str) -> x509.Name:
    attribute = x509.NameAttribute(
        NameOID.COMMON_NAME, common_name, _type=go_string_type(common_name)
    )
    return x509.Name([attribute])


def _builder(validity: Validity) -> x509.CertificateBuilder:
    try:
        return (
            x509.CertificateBuilder()
            .serial_number(validity.serial)
            .not_valid_before(validity.not_before)
            .not_valid_after(validity.not_after)
        )
    except ValueError as err:
        raise CertError(f"invalid validity period: {err}") from None


def create_ca(common_name: str, key: rsa.RSAPrivateKey, validity: Validity) -> x509.Certificate:
    """The self-signed CA certificate of ``cert-init`` (certs.md §1)."""
    if not common_name:
        raise CertError("must provide CommonName")
    name = _common_name(common_name)
    builder = (
        _builder(validity)
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(_EKU, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return builder.sign(key, hashes.SHA256())


def create_request(
    common_name: str,
    key: rsa.RSAPrivateKey,
    dns_names: list[str],
    ips: list[bytes],
    node_ids: list[str],
) -> x509.CertificateSigningRequest:
    """The CSR of ``cert-makereq`` (certs.md §2): CN plus a SAN built as upstream builds it.

    The SAN is always present, even empty, and node IDs over 112 bytes are encoded with
    upstream's defect (see :func:`receptor.certificates._names.encode_san`).
    """
    if not common_name:
        raise CertError("must provide CommonName")
    san = x509.UnrecognizedExtension(
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME, encode_san(dns_names, ips, node_ids)
    )
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_common_name(common_name))
        .add_extension(san, critical=False)
    )
    return builder.sign(key, hashes.SHA256())


def request_names(csr: x509.CertificateSigningRequest) -> CertNames:
    """Upstream's ``GetReqNames``: DNS names and IPs as Go parses them, plus node IDs."""
    try:
        extensions = request_extensions(csr.tbs_certrequest_bytes)
        names = CertNames()
        for extension in extensions:
            if extension.oid == SAN_OID:
                parsed = parse_san(extension.value)
                names.dns_names, names.ip_addresses = parsed.dns_names, parsed.ip_addresses
        for extension in extensions:
            if extension.oid == SAN_OID:
                names.node_ids.extend(node_ids_from_san(extension.value))
    except (ASN1Error, ValueError) as err:
        raise CertError(str(err)) from None
    return names


def describe_request(csr: x509.CertificateSigningRequest, names: CertNames) -> str:
    """The text cert-signreq shows before asking (certs.md §3), prompt included."""
    lines = [
        "Requested certificate:",
        f"  Subject: {go_name_string(csr.subject)}",
        f"  Encryption Algorithm: {go_public_key_algorithm(csr)}",
        f"  Signature Algorithm: {go_signature_algorithm(csr)}",
        "  Names:",
    ]
    lines += [f"    DNS Name: {name}" for name in names.dns_names]
    lines += [f"    IP Address: {go_ip_string(ip)}" for ip in names.ip_addresses]
    lines += [f"    Receptor Node ID: {node_id}" for node_id in names.node_ids]
    return "\n".join(lines) + "\nSign certificate (yes/no)? "


def _signing_parameters(
    csr: x509.CertificateSigningRequest,
) -> tuple[SigningHash, padding.PSS | padding.PKCS1v15]:
    """Hash and padding for the CA's RSA signature: the request's own algorithm (Go)."""
    algorithm = go_signature_algorithm(csr)
    if algorithm == "0":
        algorithm = "SHA256-RSA"  # Go signs with the key's default when it knows no better
    if algorithm == "MD5-RSA":
        raise CertError("x509: signing with MD5 is not supported")
    if algorithm in ("MD2-RSA", "SHA1-RSA"):
        # Go would still sign SHA-1; cryptography (and OpenSSL 3) will not.
        raise CertError("x509: cannot sign with hash function requested")
    if algorithm not in SIGNING_HASHES:
        raise CertError("x509: requested SignatureAlgorithm does not match private key type")
    digest = SIGNING_HASHES[algorithm]()
    if algorithm.endswith("-RSAPSS"):
        pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=padding.PSS.DIGEST_LENGTH)
        return digest, pss
    return digest, padding.PKCS1v15()


def _check_ca_key(ca_cert: x509.Certificate, ca_key: rsa.RSAPrivateKey) -> None:
    try:
        ca_public = ca_cert.public_key()
    except (UnsupportedAlgorithm, ValueError):
        return  # Go has no parsed key to compare with either
    if not (
        isinstance(ca_public, rsa.RSAPublicKey)
        and ca_public.public_numbers() == ca_key.public_key().public_numbers()
    ):
        raise CertError("x509: provided PrivateKey doesn't match parent's PublicKey")


def _san_extension(csr: x509.CertificateSigningRequest) -> tuple[bytes, bool] | None:
    for extension in request_extensions(csr.tbs_certrequest_bytes):
        if extension.oid == SAN_OID:
            return extension.value, extension.critical
    return None


def sign_request(
    csr: x509.CertificateSigningRequest,
    ca_cert: x509.Certificate,
    ca_key: rsa.RSAPrivateKey,
    validity: Validity,
) -> x509.Certificate:
    """The certificate of ``cert-signreq`` (certs.md §3); the CSR signature is not checked.

    The subject is Go's rebuilt form of the CSR subject; the SAN is the CSR's, byte for
    byte; the Authority Key Identifier is the CA's SKI (absent when the CA has none or the
    subject equals the issuer, as in Go).
    """
    digest, signature_padding = _signing_parameters(csr)
    try:
        public_key = csr.public_key()
    except (UnsupportedAlgorithm, ValueError):
        raise CertError("x509: unsupported public key type") from None
    _check_ca_key(ca_cert, ca_key)
    try:
        subject = go_rebuilt_name(csr.subject)
    except ValueError as err:
        raise CertError(f"x509: cannot encode the request's subject: {err}") from None
    builder = (
        _builder(validity)
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(_EKU, critical=False)
    )
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except (x509.ExtensionNotFound, ValueError):
        ski = None
    if ski is not None and subject.public_bytes() != ca_cert.subject.public_bytes():
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
        builder = builder.add_extension(aki, critical=False)
    san = _san_extension(csr)
    if san is not None:
        value, critical = san
        extension = x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, value)
        builder = builder.add_extension(extension, critical=critical)
    try:
        return builder.sign(ca_key, digest, rsa_padding=signature_padding)
    except (ValueError, TypeError, UnsupportedAlgorithm) as err:
        raise CertError(f"x509: cannot sign the certificate: {err}") from None
