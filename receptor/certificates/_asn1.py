"""The part of Go's ``encoding/asn1`` that upstream uses on subjectAltName bytes.

Upstream reads Receptor node IDs (certs.md §4.1) with ``encoding/asn1``: the SAN value is
unmarshalled into ``[]asn1.RawValue``, each ``[0]`` entry into ``{ID OID; Value RawValue}``
with the parameter ``tag:0``, and the value's content into a Go ``string``. A malformed entry
fails the whole check with the ASN.1 error, and that error text reaches the operator (e.g.
``cert-signreq`` prints it). This module reproduces those decoders and their messages so that
a hostile or truncated certificate is refused with the words upstream uses.

Only decoding lives here, and only what the name checks need; it takes bytes and returns
values (no cryptography objects).
"""

from dataclasses import dataclass

__all__ = [
    "ASN1Error",
    "RawValue",
    "TagAndLength",
    "parse_object_identifier",
    "parse_tag_and_length",
    "unmarshal_other_name",
    "unmarshal_raw_values",
    "unmarshal_string",
]

CLASS_UNIVERSAL = 0
CLASS_CONTEXT = 2

TAG_OID = 6
TAG_UTF8_STRING = 12
TAG_SEQUENCE = 16
TAG_NUMERIC_STRING = 18
TAG_PRINTABLE_STRING = 19
TAG_T61_STRING = 20
TAG_IA5_STRING = 22
TAG_GENERAL_STRING = 27
TAG_BMP_STRING = 30

#: The string types Go turns into a Go ``string`` (besides PrintableString itself).
_STRING_TAGS = frozenset(
    {
        TAG_IA5_STRING,
        TAG_GENERAL_STRING,
        TAG_T61_STRING,
        TAG_UTF8_STRING,
        TAG_NUMERIC_STRING,
        TAG_BMP_STRING,
    }
)

#: Go's ``%+v`` of an empty ``fieldParameters`` (no ``asn1:"..."`` tag on the field).
_NO_PARAMS = (
    "{optional:false explicit:false application:false private:false defaultValue:<nil> "
    "tag:<nil> stringType:0 timeType:0 set:false omitEmpty:false}"
)
#: The same with ``tag:0``. Go prints the address of the tag number here (a pointer that
#: differs from run to run); a fixed address of the same shape stands in for it.
_TAG0_PARAMS = _NO_PARAMS.replace("tag:<nil>", "tag:0xc000012345")


class ASN1Error(ValueError):
    """Malformed ASN.1, with Go's message (``asn1: syntax error: ...`` and the like)."""


def _syntax(msg: str) -> ASN1Error:
    return ASN1Error(f"asn1: syntax error: {msg}")


def _structure(msg: str) -> ASN1Error:
    return ASN1Error(f"asn1: structure error: {msg}")


@dataclass(frozen=True)
class TagAndLength:
    """An element header as Go reads it."""

    cls: int
    tag: int
    length: int
    compound: bool

    def go_repr(self) -> str:
        """Go's ``%+v`` of its ``tagAndLength`` struct."""
        compound = "true" if self.compound else "false"
        return f"{{class:{self.cls} tag:{self.tag} length:{self.length} isCompound:{compound}}}"


@dataclass(frozen=True)
class RawValue:
    """Go's ``asn1.RawValue``: header fields, the content and the whole element."""

    cls: int
    tag: int
    compound: bool
    content: bytes
    full: bytes


def _parse_base128(data: bytes, offset: int) -> tuple[int, int]:
    value = 0
    shifted = 0
    while offset < len(data):
        if shifted == 5:
            raise _structure("base 128 integer too large")
        value <<= 7
        byte = data[offset]
        if shifted == 0 and byte == 0x80:
            raise _syntax("integer is not minimally encoded")
        value |= byte & 0x7F
        offset += 1
        if byte & 0x80 == 0:
            if value > 0x7FFFFFFF:
                raise _structure("base 128 integer too large")
            return value, offset
        shifted += 1
    raise _syntax("truncated base 128 integer")


def parse_tag_and_length(data: bytes, offset: int) -> tuple[TagAndLength, int]:
    """Read one DER header at ``offset``; returns it and the offset of the content."""
    if offset >= len(data):
        raise ASN1Error("asn1: internal error in parseTagAndLength")
    byte = data[offset]
    offset += 1
    cls = byte >> 6
    compound = bool(byte & 0x20)
    tag = byte & 0x1F
    if tag == 0x1F:
        tag, offset = _parse_base128(data, offset)
        if tag < 0x1F:
            raise _syntax("non-minimal tag")
    if offset >= len(data):
        raise _syntax("truncated tag or length")
    byte = data[offset]
    offset += 1
    if byte & 0x80 == 0:
        return TagAndLength(cls, tag, byte & 0x7F, compound), offset
    count = byte & 0x7F
    if count == 0:
        raise _syntax("indefinite length found (not DER)")
    length = 0
    for _ in range(count):
        if offset >= len(data):
            raise _syntax("truncated tag or length")
        byte = data[offset]
        offset += 1
        if length >= 1 << 23:
            raise _structure("length too large")
        length = (length << 8) | byte
        if length == 0:
            raise _structure("superfluous leading zeros in length")
    if length < 0x80:
        raise _structure("non-minimal length")
    return TagAndLength(cls, tag, length, compound), offset


def _check_length(offset: int, length: int, size: int, message: str) -> None:
    if offset + length > size:
        raise _syntax(message)


def _mismatch(
    expected: int, header: TagAndLength, params: str, type_name: str, at: int
) -> ASN1Error:
    return _structure(
        f"tags don't match ({expected} vs {header.go_repr()}) {params} {type_name} @{at}"
    )


def _parse_raw_value(data: bytes, offset: int) -> tuple[RawValue, int]:
    start = offset
    if offset == len(data):
        raise _syntax("sequence truncated")
    header, offset = parse_tag_and_length(data, offset)
    _check_length(offset, header.length, len(data), "data truncated")
    end = offset + header.length
    value = RawValue(header.cls, header.tag, header.compound, data[offset:end], data[start:end])
    return value, end


def unmarshal_raw_values(data: bytes) -> list[RawValue]:
    """``asn1.Unmarshal(data, &[]asn1.RawValue{})``: the elements of a SEQUENCE.

    Bytes after the SEQUENCE are ignored, as upstream ignores Unmarshal's ``rest``.
    """
    if not data:
        raise _syntax("sequence truncated")
    header, offset = parse_tag_and_length(data, 0)
    if header.cls != CLASS_UNIVERSAL or header.tag != TAG_SEQUENCE or not header.compound:
        raise _mismatch(TAG_SEQUENCE, header, _NO_PARAMS, "", offset)
    _check_length(offset, header.length, len(data), "data truncated")
    inner = data[offset : offset + header.length]
    position = 0
    while position < len(inner):  # Go first walks the headers, then parses each element
        element, position = parse_tag_and_length(inner, position)
        _check_length(position, element.length, len(inner), "truncated sequence")
        position += element.length
    values = []
    position = 0
    while position < len(inner):
        value, position = _parse_raw_value(inner, position)
        values.append(value)
    return values


def parse_object_identifier(content: bytes) -> tuple[int, ...]:
    """The arcs of an OBJECT IDENTIFIER's content octets."""
    if not content:
        raise _syntax("zero length OBJECT IDENTIFIER")
    first, offset = _parse_base128(content, 0)
    arcs = [first // 40, first % 40] if first < 80 else [2, first - 80]
    while offset < len(content):
        arc, offset = _parse_base128(content, offset)
        arcs.append(arc)
    return tuple(arcs)


def unmarshal_other_name(full: bytes) -> tuple[tuple[int, ...], RawValue]:
    """``asn1.UnmarshalWithParams(full, &OtherNameDecode{}, "tag:0")``: (type-id, value).

    As in Go, the value may be any element (it is not required to be ``[0]``), and bytes
    after it inside the SEQUENCE are ignored.
    """
    header, offset = parse_tag_and_length(full, 0)
    if header.cls != CLASS_CONTEXT or header.tag != 0 or not header.compound:
        raise _mismatch(0, header, _TAG0_PARAMS, "OtherNameDecode", offset)
    _check_length(offset, header.length, len(full), "data truncated")
    inner = full[offset : offset + header.length]
    if not inner:
        raise _syntax("sequence truncated")
    oid_header, position = parse_tag_and_length(inner, 0)
    if oid_header.cls != CLASS_UNIVERSAL or oid_header.tag != TAG_OID or oid_header.compound:
        raise _mismatch(TAG_OID, oid_header, _NO_PARAMS, "ObjectIdentifier", position)
    _check_length(position, oid_header.length, len(inner), "data truncated")
    oid = parse_object_identifier(inner[position : position + oid_header.length])
    value, _ = _parse_raw_value(inner, position + oid_header.length)
    return oid, value


def unmarshal_string(data: bytes) -> str:
    """``asn1.Unmarshal(data, &s)`` for a Go ``string``.

    UTF8String, PrintableString, IA5String, NumericString, T61String, GeneralString and
    BMPString are accepted, each checked as Go checks it. T61String and GeneralString bytes
    are taken as they are (Go keeps the raw bytes): bytes that are not UTF-8 come back as
    surrogate escapes, so such a name never equals a real node ID.
    """
    if not data:
        raise _syntax("sequence truncated")
    header, offset = parse_tag_and_length(data, 0)
    expected = TAG_PRINTABLE_STRING
    if header.cls == CLASS_UNIVERSAL and header.tag in _STRING_TAGS:
        expected = header.tag
    if header.cls != CLASS_UNIVERSAL or header.tag != expected or header.compound:
        raise _mismatch(expected, header, _NO_PARAMS, "string", offset)
    _check_length(offset, header.length, len(data), "data truncated")
    return _decode_string(expected, data[offset : offset + header.length])


def _is_printable(byte: int) -> bool:
    return (
        0x61 <= byte <= 0x7A
        or 0x41 <= byte <= 0x5A
        or 0x30 <= byte <= 0x39
        or byte in b" '()+,-./:=?*&"
    )


def _decode_string(tag: int, content: bytes) -> str:
    if tag == TAG_PRINTABLE_STRING:
        if not all(_is_printable(b) for b in content):
            raise _syntax("PrintableString contains invalid character")
        return content.decode("ascii")
    if tag == TAG_NUMERIC_STRING:
        if not all(0x30 <= b <= 0x39 or b == 0x20 for b in content):
            raise _syntax("NumericString contains invalid character")
        return content.decode("ascii")
    if tag == TAG_IA5_STRING:
        if any(b >= 0x80 for b in content):
            raise _syntax("IA5String contains invalid character")
        return content.decode("ascii")
    if tag == TAG_UTF8_STRING:
        try:
            return content.decode("utf-8")
        except UnicodeDecodeError:
            raise ASN1Error("asn1: invalid UTF-8 string") from None
    if tag == TAG_BMP_STRING:
        return _decode_bmp(content)
    return content.decode("utf-8", "surrogateescape")  # T61String, GeneralString


def _decode_bmp(content: bytes) -> str:
    if len(content) % 2:
        raise ASN1Error("pkcs12: odd-length BMP string")
    if len(content) >= 2 and content[-2:] == b"\x00\x00":
        content = content[:-2]
    return content.decode("utf-16-be", "replace")
