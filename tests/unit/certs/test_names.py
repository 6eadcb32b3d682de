"""Node-ID otherName encoding and decoding (certs.md §4), with hostile inputs."""

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtensionOID, NameOID
from hypothesis import given
from hypothesis import strategies as st

from receptor.certificates import (
    ReceptorNameError,
    certificate_names,
    go_ip_string,
    node_ids_from_certificate,
)
from receptor.certificates import node_ids_from_san as public_node_ids_from_san
from receptor.certificates._asn1 import ASN1Error
from receptor.certificates._names import encode_san, node_ids_from_san, parse_ip, parse_san

DATA = Path(__file__).resolve().parents[2] / "data" / "certs"
OID = x509.ObjectIdentifier("1.3.6.1.4.1.2312.19.1")
OID_DER = bytes.fromhex("06092b0601040192081301")

#: certs.md §4 / golden README: the SAN values upstream wrote.
NODE1_SAN = bytes.fromhex(
    "302e82056e6f64653182096c6f63616c686f737487047f000001"
    "a01406092b0601040192081301a0070c056e6f646531"
)
NODE2_SAN = bytes.fromhex(
    "303582056e6f64653287047f000001871000000000000000000000000000000001"
    "a01406092b0601040192081301a0070c056e6f646532"
)
LONG_ID_MESSAGE = (
    "asn1: structure error: tags don't match (6 vs {class:2 tag:0 length:6 isCompound:false}) "
    "{optional:false explicit:false application:false private:false defaultValue:<nil> "
    "tag:<nil> stringType:0 timeType:0 set:false omitEmpty:false} ObjectIdentifier @2"
)


def _seq(*entries: bytes) -> bytes:
    body = b"".join(entries)
    assert len(body) < 128
    return bytes([0x30, len(body)]) + body


def _other_name(value: bytes, oid_der: bytes = OID_DER) -> bytes:
    body = oid_der + bytes([0xA0, len(value)]) + value
    return bytes([0xA0, len(body)]) + body


# ---------------------------------------------------------------------------- encoding


def test_encoding_matches_upstream_bytes():
    assert encode_san(["node1", "localhost"], [parse_ip("127.0.0.1")], ["node1"]) == NODE1_SAN
    ips = [parse_ip("127.0.0.1"), parse_ip("::1")]
    assert encode_san(["node2"], ips, ["node2"]) == NODE2_SAN
    spec_example = bytes.fromhex(
        "302582096c6f63616c686f737487047f000001a01206092b0601040192081301a0050c03666f6f"
    )
    assert encode_san(["localhost"], [parse_ip("127.0.0.1")], ["foo"]) == spec_example


def test_no_names_is_an_empty_sequence():
    assert encode_san([], [], []) == b"\x30\x00"


def test_encoding_equals_cryptography_other_name():
    """The standard OtherName encoding (certs.md §4), for IDs up to the 112-byte limit."""
    for node_id in ["a", "node-1.example", "ünïcødé", "x" * 112]:
        raw = node_id.encode()
        value = b"\x0c" + bytes([len(raw)]) + raw if len(raw) < 128 else None
        assert value is not None
        general = x509.SubjectAlternativeName([x509.OtherName(OID, value)])
        assert encode_san([], [], [node_id]) == general.public_bytes()
        assert node_ids_from_san(encode_san([], [], [node_id])) == [node_id]


def test_long_node_id_keeps_upstream_defect():
    encoded = encode_san([], [], ["a" * 113])
    assert encoded[:3] == b"\x30\x81\x84"  # the SAN itself is fine
    assert encoded[3:9] == bytes.fromhex("a08181800609")
    with pytest.raises(ASN1Error) as caught:
        node_ids_from_san(encoded)
    assert str(caught.value) == LONG_ID_MESSAGE
    with pytest.raises(ReceptorNameError) as public:
        public_node_ids_from_san(encoded)
    assert str(public.value) == LONG_ID_MESSAGE


def test_ip_parsing_as_go():
    assert parse_ip("127.0.0.1") == b"\x7f\x00\x00\x01"
    assert parse_ip("::ffff:10.0.0.1") == b"\x0a\x00\x00\x01"
    assert parse_ip("::1") == bytes(15) + b"\x01"
    for bad in ["1.2.3", "01.2.3.4", "256.1.1.1", "fe80::1%eth0", "", "host", "1.2.3.4/24"]:
        assert parse_ip(bad) is None


def test_ip_strings_as_go():
    assert go_ip_string(b"\x7f\x00\x00\x01") == "127.0.0.1"
    assert go_ip_string(bytes(10) + b"\xff\xff\x01\x02\x03\x04") == "1.2.3.4"
    assert go_ip_string(bytes.fromhex("20010db8000000000000000000000001")) == "2001:db8::1"


# ---------------------------------------------------------------------------- decoding


def test_decoding_skips_other_names_and_oids():
    other_oid = bytes.fromhex("06032a0304")
    san = _seq(
        b"\x82\x03abc",
        _other_name(b"\x0c\x03bad", other_oid),
        _other_name(b"\x0c\x04good"),
        _other_name(b"\x0c\x00"),  # empty IDs are dropped
        b"\x87\x04\x01\x02\x03\x04",
    )
    assert node_ids_from_san(san) == ["good"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"\x13\x04ab-c", "ab-c"),  # PrintableString
        (b"\x16\x03n_1", "n_1"),  # IA5String
        (b"\x14\x02xy", "xy"),  # T61String
        (b"\x1b\x02xy", "xy"),  # GeneralString
        (b"\x12\x03123", "123"),  # NumericString
        (b"\x1e\x04\x00n\x00d", "nd"),  # BMPString
        (b"\x0c\x02ok\x05\x00", "ok"),  # bytes after the string are ignored, as by Go
    ],
)
def test_decoding_accepts_go_string_types(value, expected):
    assert node_ids_from_san(_seq(_other_name(value))) == [expected]


@pytest.mark.parametrize(
    ("san", "message"),
    [
        (b"", "asn1: syntax error: sequence truncated"),
        (b"\x30", "asn1: syntax error: truncated tag or length"),
        (b"\x30\x05\x82\x01", "asn1: syntax error: data truncated"),
        (b"\x30\x03\x82\x05a", "asn1: syntax error: truncated sequence"),
        (b"\x30\x80\x00\x00", "asn1: syntax error: indefinite length found (not DER)"),
        (b"\x30\x81\x03\x82\x01a", "asn1: structure error: non-minimal length"),
        (
            b"\x31\x00",
            "asn1: structure error: tags don't match (16 vs {class:0 tag:17 length:0 "
            "isCompound:true}) {optional:false explicit:false application:false "
            "private:false defaultValue:<nil> tag:<nil> stringType:0 timeType:0 set:false "
            "omitEmpty:false}  @2",
        ),
        (_seq(b"\xa0\x00"), "asn1: syntax error: sequence truncated"),
        (_seq(b"\xa0\x02\x06\x00"), "asn1: syntax error: zero length OBJECT IDENTIFIER"),
        (_seq(b"\xa0\x0b" + OID_DER), "asn1: syntax error: sequence truncated"),
        (_seq(_other_name(b"")), "asn1: syntax error: sequence truncated"),
        (_seq(_other_name(b"\x0c\x05ab")), "asn1: syntax error: data truncated"),
        (_seq(_other_name(b"\x0c\x02\xff\xfe")), "asn1: invalid UTF-8 string"),
        (
            _seq(_other_name(b"\x13\x02a@")),
            "asn1: syntax error: PrintableString contains invalid character",
        ),
        (
            _seq(_other_name(b"\x16\x01\xe9")),
            "asn1: syntax error: IA5String contains invalid character",
        ),
        (
            _seq(_other_name(b"\x12\x01a")),
            "asn1: syntax error: NumericString contains invalid character",
        ),
        (_seq(_other_name(b"\x1e\x03abc")), "pkcs12: odd-length BMP string"),
        (
            _seq(_other_name(b"\x02\x01\x05")),
            "asn1: structure error: tags don't match (19 vs {class:0 tag:2 length:1 "
            "isCompound:false}) {optional:false explicit:false application:false "
            "private:false defaultValue:<nil> tag:<nil> stringType:0 timeType:0 set:false "
            "omitEmpty:false} string @2",
        ),
        (_seq(b"\xa0\x03\x06\x01\x81"), "asn1: syntax error: truncated base 128 integer"),
        (_seq(b"\xa0\x03\x06\x01\x80"), "asn1: syntax error: integer is not minimally encoded"),
        (_seq(b"\x1f\x01\x00"), "asn1: syntax error: non-minimal tag"),
    ],
)
def test_decoding_refuses_malformed_entries(san, message):
    with pytest.raises(ASN1Error) as caught:
        node_ids_from_san(san)
    assert str(caught.value) == message


def test_primitive_tag_zero_entry_is_refused():
    with pytest.raises(ASN1Error, match=r"tags don't match \(0 vs \{class:2 tag:0 length:1"):
        node_ids_from_san(_seq(b"\x80\x01a"))


@given(st.binary(max_size=64))
def test_decoding_garbage_raises_only_asn1_errors(data):
    try:
        names = node_ids_from_san(data)
    except ASN1Error:
        return
    assert all(isinstance(name, str) for name in names)


@given(st.text(min_size=1, max_size=300).filter(lambda s: "\x00" not in s))
def test_huge_node_ids_decode_from_standard_encoding(node_id):
    """Decoding has no length limit (certs.md §4): IDs over 112 bytes, DER long form."""
    raw = node_id.encode()
    if len(raw) < 128:
        length = bytes([len(raw)])
    else:
        size = (len(raw).bit_length() + 7) // 8
        length = bytes([0x80 | size]) + len(raw).to_bytes(size, "big")
    san = x509.SubjectAlternativeName([x509.OtherName(OID, b"\x0c" + length + raw)])
    assert node_ids_from_san(san.public_bytes()) == [node_id]


def test_san_parse_as_go_x509():
    names = parse_san(NODE2_SAN)
    assert names.dns_names == ["node2"]
    assert names.ip_addresses == [b"\x7f\x00\x00\x01", bytes(15) + b"\x01"]
    with pytest.raises(ValueError, match="cannot parse IP address of length 3"):
        parse_san(_seq(b"\x87\x03\x01\x02\x03"))
    with pytest.raises(ValueError, match="SAN dNSName is malformed"):
        parse_san(_seq(b"\x82\x01\xe9"))
    with pytest.raises(ValueError, match="invalid subject alternative names"):
        parse_san(b"\x04\x00")


# ---------------------------------------------------------------------------- certificates


def _load(name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((DATA / name).read_bytes())


def test_golden_certificates():
    node1 = _load("node1.crt")
    assert node_ids_from_certificate(node1) == ["node1"]
    assert node_ids_from_certificate(node1.public_bytes(Encoding.DER)) == ["node1"]
    names = certificate_names(_load("node2.crt"))
    assert (names.dns_names, names.node_ids) == (["node2"], ["node2"])
    assert [go_ip_string(ip) for ip in names.ip_addresses] == ["127.0.0.1", "::1"]
    assert node_ids_from_certificate(_load("ca.crt")) == []


def _self_signed(san_value: bytes) -> x509.Certificate:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t")])
    now = datetime.datetime.now(datetime.UTC)
    extension = x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, san_value)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(extension, critical=False)
        .sign(key, hashes.SHA256())
    )


def test_malformed_certificate_san_fails_the_whole_check():
    cert = _self_signed(encode_san(["x"], [], ["ok", "b" * 113]))
    with pytest.raises(ReceptorNameError) as caught:
        node_ids_from_certificate(cert)
    assert str(caught.value) == LONG_ID_MESSAGE
    assert isinstance(caught.value, ValueError)


def test_truncated_certificate_der_is_refused():
    der = _load("node1.crt").public_bytes(Encoding.DER)
    with pytest.raises(ReceptorNameError):
        node_ids_from_certificate(der[:200])


def test_very_long_node_id_with_three_byte_length():
    raw = b"n" * 70000
    value = b"\x0c\x83" + len(raw).to_bytes(3, "big") + raw
    san = x509.SubjectAlternativeName([x509.OtherName(OID, value)]).public_bytes()
    assert node_ids_from_san(san) == ["n" * 70000]
    with pytest.raises(ASN1Error, match="data truncated"):
        node_ids_from_san(san[:-1])
