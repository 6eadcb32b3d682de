"""Receptor names in subjectAltName: encoding (cert-makereq) and decoding (certs.md §4).

Everything here works on DER bytes, so the TLS code can check a peer's certificate straight
from the handshake (``ssl`` gives the DER) and the tooling can check a CSR before signing.

Encoding reproduces upstream's ``MakeReceptorSAN`` byte for byte, including its quirk for
node IDs longer than 112 bytes (certs.md §4: the otherName keeps a stray length byte, and
such a CSR is later refused by ``cert-signreq`` with Go's ASN.1 error). Decoding follows
what Go nodes accept (§4.1) and fails with Go's message on a malformed entry.
"""

import ipaddress
from dataclasses import dataclass, field

from receptor.certificates._asn1 import (
    CLASS_CONTEXT,
    CLASS_UNIVERSAL,
    TAG_OID,
    TAG_SEQUENCE,
    ASN1Error,
    RawValue,
    parse_object_identifier,
    parse_tag_and_length,
    unmarshal_other_name,
    unmarshal_raw_values,
    unmarshal_string,
)

__all__ = [
    "NODE_ID_OID",
    "SAN_OID",
    "CertNames",
    "Extension",
    "certificate_extensions",
    "encode_san",
    "node_ids_from_san",
    "parse_ip",
    "parse_san",
    "request_extensions",
]

#: The otherName type-id of a Receptor node ID: 1.3.6.1.4.1.2312.19.1.
NODE_ID_OID = (1, 3, 6, 1, 4, 1, 2312, 19, 1)
#: subjectAltName: 2.5.29.17.
SAN_OID = (2, 5, 29, 17)
#: PKCS #9 extensionRequest: the CSR attribute holding the requested extensions.
EXTENSION_REQUEST_OID = (1, 2, 840, 113549, 1, 9, 14)

_NODE_ID_OID_DER = bytes.fromhex("06092b0601040192081301")


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(content)) + content


# ---------------------------------------------------------------------------- encoding


def parse_ip(text: str) -> bytes | None:
    """Go's ``net.ParseIP`` then ``To4()``: 4 bytes for IPv4 (also IPv4-mapped), else 16.

    None for anything Go refuses (zones such as ``fe80::1%eth0`` included).
    """
    if "%" in text:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.packed
    return address.packed


def _other_name_entry(node_id: str) -> bytes:
    """One node ID as upstream writes it: the OtherName SEQUENCE minus its first two bytes.

    Dropping two bytes is only right while the SEQUENCE has a one-byte length (node IDs up
    to 112 bytes); longer IDs keep part of the length inside the ``[0]``, as upstream's do.
    """
    utf8 = _tlv(0x0C, node_id.encode("utf-8", "surrogateescape"))
    sequence = _tlv(0x30, _NODE_ID_OID_DER + _tlv(0xA0, utf8))
    return _tlv(0xA0, sequence[2:])


def encode_san(dns_names: list[str], ips: list[bytes], node_ids: list[str]) -> bytes:
    """The subjectAltName extension value: DNS names, then IP addresses, then node IDs.

    With no names at all this is an empty SEQUENCE (``30 00``), as upstream writes it.
    """
    entries = [_tlv(0x82, name.encode("utf-8", "surrogateescape")) for name in dns_names]
    entries += [_tlv(0x87, ip) for ip in ips]
    entries += [_other_name_entry(node_id) for node_id in node_ids]
    return _tlv(0x30, b"".join(entries))


# ---------------------------------------------------------------------------- decoding


def node_ids_from_san(value: bytes) -> list[str]:
    """The Receptor node IDs in one subjectAltName extension value (certs.md §4.1).

    Every GeneralName with tag number 0 is read as an OtherName; those whose type-id is the
    Receptor OID contribute their string value. Other names and OIDs are skipped, empty IDs
    are dropped. A malformed entry raises :class:`ASN1Error` with Go's message.
    """
    names = []
    for entry in unmarshal_raw_values(value):
        if entry.tag != 0:
            continue
        oid, inner = unmarshal_other_name(entry.full)
        if oid != NODE_ID_OID:
            continue
        name = unmarshal_string(inner.content)
        if name:
            names.append(name)
    return names


@dataclass
class CertNames:
    """The names of a certificate or request, as upstream reads them."""

    dns_names: list[str] = field(default_factory=list)
    ip_addresses: list[bytes] = field(default_factory=list)
    node_ids: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    uris: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.dns_names or self.ip_addresses or self.node_ids)


def _read_strict_element(data: bytes, offset: int) -> tuple[int, bytes, int] | None:
    """Go's ``cryptobyte`` ``ReadAnyASN1``: (tag byte, content, next offset) or None."""
    if len(data) - offset < 2:
        return None
    tag, length_byte = data[offset], data[offset + 1]
    if tag & 0x1F == 0x1F:
        return None
    if length_byte & 0x80 == 0:
        header, length = 2, length_byte
    else:
        count = length_byte & 0x7F
        if count == 0 or count > 4 or len(data) - offset < 2 + count:
            return None
        length = int.from_bytes(data[offset + 2 : offset + 2 + count], "big")
        if length < 0x80 or length >> ((count - 1) * 8) == 0:
            return None
        header = 2 + count
    end = offset + header + length
    if end > len(data):
        return None
    return tag, data[offset + header : end], end


def parse_san(value: bytes) -> CertNames:
    """DNS names, IP addresses, emails and URIs of a SAN value, as Go's x509 parses them.

    Raises ValueError with Go's ``x509: ...`` message for what Go refuses. URIs are only
    checked for IA5 characters (Go also parses them as URLs).
    """
    top = _read_strict_element(value, 0)
    if top is None or top[0] != 0x30:
        raise ValueError("x509: invalid subject alternative names")
    content = top[1]
    names = CertNames()
    offset = 0
    while offset < len(content):
        element = _read_strict_element(content, offset)
        if element is None:
            raise ValueError("x509: invalid subject alternative name")
        tag, data, offset = element
        kind = tag ^ 0x80
        if kind in (1, 2, 6) and any(b >= 0x80 for b in data):
            what = {1: "rfc822Name", 2: "dNSName", 6: "uniformResourceIdentifier"}[kind]
            raise ValueError(f"x509: SAN {what} is malformed")
        if kind == 1:
            names.emails.append(data.decode("ascii"))
        elif kind == 2:
            names.dns_names.append(data.decode("ascii"))
        elif kind == 6:
            names.uris.append(data.decode("ascii"))
        elif kind == 7:
            if len(data) not in (4, 16):
                raise ValueError(f"x509: cannot parse IP address of length {len(data)}")
            names.ip_addresses.append(data)
    return names


# ---------------------------------------------------------------------------- extensions


@dataclass(frozen=True)
class Extension:
    """One X.509 extension as found in the DER: OID, criticality and raw value."""

    oid: tuple[int, ...]
    critical: bool
    value: bytes


def _elements(data: bytes) -> list[RawValue]:
    """The consecutive DER elements of ``data`` (ASN1Error when they do not fill it)."""
    elements = []
    offset = 0
    while offset < len(data):
        start = offset
        header, offset = parse_tag_and_length(data, offset)
        end = offset + header.length
        if end > len(data):
            raise ASN1Error("asn1: syntax error: data truncated")
        elements.append(
            RawValue(header.cls, header.tag, header.compound, data[offset:end], data[start:end])
        )
        offset = end
    return elements


def _single(data: bytes) -> RawValue:
    elements = _elements(data)
    if len(elements) != 1:
        raise ASN1Error("asn1: syntax error: trailing data")
    return elements[0]


def _is(element: RawValue, cls: int, tag: int) -> bool:
    return element.cls == cls and element.tag == tag


def _parse_extensions(data: bytes) -> list[Extension]:
    """``Extensions ::= SEQUENCE OF Extension`` from its full DER."""
    outer = _single(data)
    if not _is(outer, CLASS_UNIVERSAL, TAG_SEQUENCE):
        raise ASN1Error("asn1: structure error: extensions are not a SEQUENCE")
    extensions = []
    for item in _elements(outer.content):
        fields = _elements(item.content) if _is(item, CLASS_UNIVERSAL, TAG_SEQUENCE) else []
        if len(fields) == 2:
            oid_field, critical, value_field = fields[0], False, fields[1]
        elif len(fields) == 3 and _is(fields[1], CLASS_UNIVERSAL, 1):
            oid_field, critical, value_field = fields[0], fields[1].content != b"\x00", fields[2]
        else:
            raise ASN1Error("asn1: structure error: malformed extension")
        if not _is(oid_field, CLASS_UNIVERSAL, TAG_OID) or not _is(value_field, CLASS_UNIVERSAL, 4):
            raise ASN1Error("asn1: structure error: malformed extension")
        oid = parse_object_identifier(oid_field.content)
        extensions.append(Extension(oid, critical, value_field.content))
    return extensions


def certificate_extensions(tbs: bytes) -> list[Extension]:
    """The extensions of a TBSCertificate (its ``[3]`` field); [] when it has none."""
    for element in _elements(_single(tbs).content):
        if _is(element, CLASS_CONTEXT, 3):
            return _parse_extensions(element.content)
    return []


def request_extensions(tbs: bytes) -> list[Extension]:
    """The requested extensions of a CertificationRequestInfo, as Go collects them.

    Every extensionRequest attribute counts; attributes that do not parse are skipped and
    an extension requested twice is refused, as in Go's ``parseCSRExtensions``.
    """
    fields = _elements(_single(tbs).content)
    attributes = [f for f in fields if _is(f, CLASS_CONTEXT, 0)]
    if not attributes:
        return []
    extensions: list[Extension] = []
    for attribute in _elements(attributes[0].content):
        try:
            parts = _elements(attribute.content)
            oid = parse_object_identifier(parts[0].content) if parts else ()
            values = _elements(parts[1].content) if len(parts) == 2 else []
        except ASN1Error:
            continue
        if oid != EXTENSION_REQUEST_OID or not values:
            continue
        extensions.extend(_parse_extensions(values[0].full))
    oids = [extension.oid for extension in extensions]
    if len(set(oids)) != len(oids):
        raise ValueError("x509: certificate request contains duplicate requested extensions")
    return extensions
