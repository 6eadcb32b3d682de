"""How Go's ``crypto/x509`` shows and rebuilds names (the cert-signreq prompt, certs.md §3).

Upstream prints the request's subject with ``pkix.Name.String()``, IP addresses with
``net.IP.String()`` and the algorithms with their Go names; and the signed certificate's
subject is not copied from the CSR but rebuilt from Go's parsed ``pkix.Name`` (standard
attributes only, in Go's fixed order, strings re-typed). This module reproduces those.
"""

import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID

__all__ = [
    "go_ip_string",
    "go_name_string",
    "go_public_key_algorithm",
    "go_rebuilt_name",
    "go_signature_algorithm",
    "go_string_type",
]

#: The attributes Go parses into named fields, in the order ``ToRDNSequence`` writes them.
_FIELD_ORDER = [
    NameOID.COUNTRY_NAME,
    NameOID.STATE_OR_PROVINCE_NAME,
    NameOID.LOCALITY_NAME,
    NameOID.STREET_ADDRESS,
    NameOID.POSTAL_CODE,
    NameOID.ORGANIZATION_NAME,
    NameOID.ORGANIZATIONAL_UNIT_NAME,
    NameOID.COMMON_NAME,
    NameOID.SERIAL_NUMBER,
]
#: Fields holding one value (the last one seen wins); the others are lists.
_SINGLE = {NameOID.COMMON_NAME, NameOID.SERIAL_NUMBER}
_SHORT_NAMES = {
    NameOID.COUNTRY_NAME: "C",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COMMON_NAME: "CN",
    NameOID.SERIAL_NUMBER: "SERIALNUMBER",
    NameOID.LOCALITY_NAME: "L",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.STREET_ADDRESS: "STREET",
    NameOID.POSTAL_CODE: "POSTALCODE",
}

_PRINTABLE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 '()+,-./:=?")


def go_string_type(value: str) -> _ASN1Type:
    """Go marshals a string as PrintableString when it can, else as UTF8String."""
    if all(char in _PRINTABLE for char in value):
        return _ASN1Type.PrintableString
    return _ASN1Type.UTF8String


def _go_fields(name: x509.Name) -> list[tuple[x509.ObjectIdentifier, list[str]]]:
    """``pkix.Name.FillFromRDNSequence`` then ``ToRDNSequence``: (OID, values) per RDN."""
    values: dict[x509.ObjectIdentifier, list[str]] = {oid: [] for oid in _FIELD_ORDER}
    for attribute in name:
        if attribute.oid in values and isinstance(attribute.value, str):
            if attribute.oid in _SINGLE:
                values[attribute.oid] = [attribute.value]
            else:
                values[attribute.oid].append(attribute.value)
    fields = []
    for oid in _FIELD_ORDER:
        found = values[oid]
        if oid in _SINGLE and found == [""]:
            continue
        if found:
            fields.append((oid, found))
    return fields


def go_rebuilt_name(name: x509.Name) -> x509.Name:
    """The subject Go writes into a certificate signed from a CSR with this subject."""
    rdns = []
    for oid, found in _go_fields(name):
        attributes = [x509.NameAttribute(oid, v, _type=go_string_type(v)) for v in found]
        rdns.append(x509.RelativeDistinguishedName(attributes))
    return x509.Name(rdns)


def _escape(value: str) -> str:
    out = []
    last = len(value) - 1
    for index, char in enumerate(value):
        escape = char in ',+"\\<>;' or (char == " " and index in (0, last))
        escape = escape or (char == "#" and index == 0)
        out.append("\\" + char if escape else char)
    return "".join(out)


def _marshalled_hex(value: str | bytes) -> str:
    """Hex of Go's ``asn1.Marshal`` of an attribute value of an unknown type."""
    if isinstance(value, bytes):
        content, tag = b"\x00" + value, 0x03
    else:
        content = value.encode("utf-8", "surrogateescape")
        tag = 0x13 if go_string_type(value) is _ASN1Type.PrintableString else 0x0C
    length = len(content)
    if length < 0x80:
        header = bytes([tag, length])
    else:
        body = length.to_bytes((length.bit_length() + 7) // 8, "big")
        header = bytes([tag, 0x80 | len(body)]) + body
    return (header + content).hex()


def go_name_string(name: x509.Name) -> str:
    """``pkix.Name.String()``: RFC 2253 style, Go's attribute order, most specific first."""
    rdns: list[list[tuple[x509.ObjectIdentifier, str | bytes]]] = []
    for attribute in name:
        if attribute.oid not in _SHORT_NAMES:
            rdns.append([(attribute.oid, attribute.value)])
    rdns.extend([(oid, v) for v in found] for oid, found in _go_fields(name))
    parts = []
    for rdn in reversed(rdns):
        values = []
        for oid, value in rdn:
            short = _SHORT_NAMES.get(oid)
            if short is None:
                values.append(f"{oid.dotted_string}=#{_marshalled_hex(value)}")
            else:
                assert isinstance(value, str)
                values.append(f"{short}={_escape(value)}")
        parts.append("+".join(values))
    return ",".join(parts)


def go_ip_string(packed: bytes) -> str:
    """``net.IP.String()``: dotted quad for IPv4 (also IPv4-mapped), RFC 5952 for IPv6."""
    address = ipaddress.ip_address(packed)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


_SIGNATURE_NAMES = {
    SignatureAlgorithmOID.RSA_WITH_MD5: "MD5-RSA",
    SignatureAlgorithmOID.RSA_WITH_SHA1: "SHA1-RSA",
    SignatureAlgorithmOID.RSA_WITH_SHA256: "SHA256-RSA",
    SignatureAlgorithmOID.RSA_WITH_SHA384: "SHA384-RSA",
    SignatureAlgorithmOID.RSA_WITH_SHA512: "SHA512-RSA",
    SignatureAlgorithmOID.DSA_WITH_SHA1: "DSA-SHA1",
    SignatureAlgorithmOID.DSA_WITH_SHA256: "DSA-SHA256",
    SignatureAlgorithmOID.ECDSA_WITH_SHA1: "ECDSA-SHA1",
    SignatureAlgorithmOID.ECDSA_WITH_SHA256: "ECDSA-SHA256",
    SignatureAlgorithmOID.ECDSA_WITH_SHA384: "ECDSA-SHA384",
    SignatureAlgorithmOID.ECDSA_WITH_SHA512: "ECDSA-SHA512",
    SignatureAlgorithmOID.ED25519: "Ed25519",
    x509.ObjectIdentifier("1.2.840.113549.1.1.2"): "MD2-RSA",
}


def go_signature_algorithm(csr: x509.CertificateSigningRequest) -> str:
    """Go's name of the request's signature algorithm (``0`` when Go does not know it)."""
    oid = csr.signature_algorithm_oid
    if oid == SignatureAlgorithmOID.RSASSA_PSS:
        try:
            digest = csr.signature_hash_algorithm
        except Exception:  # an unsupported hash inside the PSS parameters
            return "0"
        names = {"sha256": "SHA256", "sha384": "SHA384", "sha512": "SHA512"}
        if digest is None or digest.name not in names:
            return "0"
        return f"{names[digest.name]}-RSAPSS"
    return _SIGNATURE_NAMES.get(oid, "0")


def go_public_key_algorithm(csr: x509.CertificateSigningRequest) -> str:
    """``Encryption Algorithm`` of the prompt: Go's name, with the size for RSA."""
    try:
        key = csr.public_key()
    except Exception:  # a key type cryptography does not know: Go's "unknown" is 0
        return "0"
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA ({(key.key_size + 7) // 8 * 8} bits)"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ECDSA"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA"
    return "0"


#: Hashes Go will sign with, by the request's Go signature algorithm name.
SigningHash = hashes.SHA256 | hashes.SHA384 | hashes.SHA512
SIGNING_HASHES: dict[str, type[SigningHash]] = {
    "SHA256-RSA": hashes.SHA256,
    "SHA384-RSA": hashes.SHA384,
    "SHA512-RSA": hashes.SHA512,
    "SHA256-RSAPSS": hashes.SHA256,
    "SHA384-RSAPSS": hashes.SHA384,
    "SHA512-RSAPSS": hashes.SHA512,
}
