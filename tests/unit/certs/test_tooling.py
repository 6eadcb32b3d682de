"""cert-init / cert-makereq / cert-signreq building blocks against upstream's own output.

With upstream's keys and the second upstream used, our CA, requests and certificates must
be byte-identical to the golden files made by the Go daemon (tests/data/certs).
"""

import os
import stat
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from receptor.certificates._commands import InitCA, make_validity, read_answer
from receptor.certificates._gofmt import go_name_string, go_rebuilt_name
from receptor.certificates._names import parse_ip
from receptor.certificates._pem import CertError, decode_pem, encode_pem, load_pem_items
from receptor.certificates._rfc3339 import parse_rfc3339
from receptor.certificates._tooling import (
    Validity,
    create_ca,
    create_request,
    describe_request,
    key_pem,
    request_names,
    sign_request,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "certs"
#: The second the golden set was made in (serial 1795831909 of all three certificates).
GOLDEN_SECOND = datetime(2026, 11, 28, 2, 11, 49, tzinfo=UTC)
SERIAL = 1795831909


def _key(name: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key((DATA / name).read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def _pem(item: x509.Certificate | x509.CertificateSigningRequest, kind: str) -> bytes:
    return encode_pem(kind, item.public_bytes(serialization.Encoding.DER))


def _years(years: int) -> datetime:
    return GOLDEN_SECOND.replace(year=GOLDEN_SECOND.year + years)


def test_ca_is_byte_identical_to_upstream():
    validity = Validity(SERIAL, GOLDEN_SECOND, _years(10))
    ca = create_ca("Receptor Test CA", _key("ca.key"), validity)
    assert _pem(ca, "CERTIFICATE") == (DATA / "ca.crt").read_bytes()


def test_key_pem_is_byte_identical_to_upstream():
    for name in ("ca.key", "node1.key", "node2.key"):
        assert key_pem(_key(name)) == (DATA / name).read_bytes()


@pytest.mark.parametrize(
    ("node", "dns", "ips"),
    [
        ("node1", ["node1", "localhost"], ["127.0.0.1"]),
        ("node2", ["node2"], ["127.0.0.1", "::1"]),
    ],
)
def test_request_and_certificate_are_byte_identical_to_upstream(node, dns, ips):
    packed = [parse_ip(ip) for ip in ips]
    csr = create_request(node, _key(f"{node}.key"), dns, packed, [node])  # type: ignore[arg-type]
    assert _pem(csr, "CERTIFICATE REQUEST") == (DATA / f"{node}.csr").read_bytes()
    ca = x509.load_pem_x509_certificate((DATA / "ca.crt").read_bytes())
    cert = sign_request(csr, ca, _key("ca.key"), Validity(SERIAL, GOLDEN_SECOND, _years(1)))
    assert _pem(cert, "CERTIFICATE") == (DATA / f"{node}.crt").read_bytes()


def test_prompt_text_matches_upstream_transcript():
    csr = x509.load_pem_x509_csr((DATA / "node2.csr").read_bytes())
    transcript = (DATA / "commands-transcript.txt").read_text()
    start = transcript.index("Requested certificate:")
    expected = transcript[start : transcript.index("[exit code 0]", start)]
    assert describe_request(csr, request_names(csr)) == expected


def test_empty_common_name_is_refused():
    with pytest.raises(CertError, match=r"^must provide CommonName$"):
        create_ca("", _key("ca.key"), Validity(1, GOLDEN_SECOND, _years(1)))
    with pytest.raises(CertError, match=r"^must provide CommonName$"):
        create_request("", _key("ca.key"), [], [], [])


def test_wrong_ca_key_is_refused():
    csr = x509.load_pem_x509_csr((DATA / "node1.csr").read_bytes())
    ca = x509.load_pem_x509_certificate((DATA / "ca.crt").read_bytes())
    with pytest.raises(CertError) as caught:
        sign_request(csr, ca, _key("node1.key"), Validity(1, GOLDEN_SECOND, _years(1)))
    assert str(caught.value) == "x509: provided PrivateKey doesn't match parent's PublicKey"


def test_subject_rebuilt_and_shown_as_go():
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "first"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Org, Inc"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.EMAIL_ADDRESS, "a@b.c"),
            x509.NameAttribute(NameOID.COMMON_NAME, " last#"),
        ]
    )
    assert go_name_string(name) == (
        "CN=\\ last#,O=Org\\, Inc,C=US,1.2.840.113549.1.9.1=#0c056140622e63"
    )
    rebuilt = go_rebuilt_name(name)
    assert rebuilt.rfc4514_string() == "CN=\\ last#,O=Org\\, Inc,C=US"


def test_request_with_other_key_type_shows_go_names():
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "e")]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("e.example")]), False)
        .sign(key, hashes.SHA384())
    )
    text = describe_request(csr, request_names(csr))
    assert "  Encryption Algorithm: ECDSA\n  Signature Algorithm: ECDSA-SHA384\n" in text
    ca = x509.load_pem_x509_certificate((DATA / "ca.crt").read_bytes())
    with pytest.raises(CertError, match="does not match private key type"):
        sign_request(csr, ca, _key("ca.key"), Validity(1, GOLDEN_SECOND, _years(1)))


# ---------------------------------------------------------------------------- RFC 3339


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "2024-01-01",
            'parsing time "2024-01-01" as "2006-01-02T15:04:05Z07:00": cannot parse "" as "T"',
        ),
        (
            "24-01-01T00:00:00Z",
            'parsing time "24-01-01T00:00:00Z" as "2006-01-02T15:04:05Z07:00": '
            'cannot parse "24-01-01T00:00:00Z" as "2006"',
        ),
        (
            "2024-01-01T00:00:00",
            'parsing time "2024-01-01T00:00:00" as "2006-01-02T15:04:05Z07:00": '
            'cannot parse "" as "Z07:00"',
        ),
        ("2024-00-01T00:00:00Z", 'parsing time "2024-00-01T00:00:00Z": month out of range'),
        ("2023-02-29T00:00:00Z", 'parsing time "2023-02-29T00:00:00Z": day out of range'),
        ("2024-01-01T24:00:00Z", 'parsing time "2024-01-01T24:00:00Z": hour out of range'),
        ("2024-01-01T00:00:00Z ", 'parsing time "2024-01-01T00:00:00Z ": extra text: " "'),
        (
            "2024-01-01T00:00:00+01:61",
            'parsing time "2024-01-01T00:00:00+01:61": time zone offset minute out of range',
        ),
        (
            "2024\x01",
            'parsing time "2024\\x01" as "2006-01-02T15:04:05Z07:00": cannot parse "\\x01" as "-"',
        ),
    ],
)
def test_rfc3339_errors_are_go_errors(text, error):
    with pytest.raises(CertError) as caught:
        parse_rfc3339(text)
    assert str(caught.value) == error


def test_rfc3339_values():
    assert parse_rfc3339("2024-02-01T00:00:00.5+02:00") == datetime(
        2024, 1, 31, 22, 0, 0, 500000, tzinfo=UTC
    )
    assert parse_rfc3339("2030-01-01T00:00:00Z") == datetime(2030, 1, 1, tzinfo=UTC)
    assert parse_rfc3339("2024-02-29T23:59:59,25-00:30").minute == 29


# ---------------------------------------------------------------------------- PEM


def test_pem_reading_follows_go():
    block = (DATA / "ca.crt").read_bytes()
    assert [b.type for b in decode_pem(b"junk before\n" + block)] == ["CERTIFICATE"]
    assert len(decode_pem(block + b"\n" + block)) == 2
    with pytest.raises(CertError, match=r"^failed to decode PEM block$"):
        decode_pem(block + b"\n")  # a trailing blank line: upstream refuses it too
    with pytest.raises(CertError, match=r"^failed to decode PEM block$"):
        decode_pem(b"no pem here")
    with pytest.raises(CertError, match=r"^failed to decode PEM block$"):
        decode_pem(block.replace(b"MII", b"M!I", 1))


def test_pem_items_and_key_formats(tmp_path):
    pkcs8 = _key("node1.key").private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (tmp_path / "k8").write_bytes(pkcs8)
    assert isinstance(load_pem_items(str(tmp_path / "k8"))[0], rsa.RSAPrivateKey)
    (tmp_path / "mislabelled").write_bytes(pkcs8.replace(b" PRIVATE", b" RSA PRIVATE"))
    with pytest.raises(CertError, match=r"use ParsePKCS8PrivateKey instead"):
        load_pem_items(str(tmp_path / "mislabelled"))
    (tmp_path / "odd").write_bytes(encode_pem("OPENSSH PRIVATE KEY", b"x"))
    with pytest.raises(CertError, match=r"^unknown block type OPENSSH PRIVATE KEY$"):
        load_pem_items(str(tmp_path / "odd"))
    (tmp_path / "bad").write_bytes(encode_pem("CERTIFICATE", b"\x30\x03\x02\x01\x01"))
    with pytest.raises(CertError, match=r"^x509: malformed certificate$"):
        load_pem_items(str(tmp_path / "bad"))
    with pytest.raises(CertError, match=r"^open .*missing: no such file or directory$"):
        load_pem_items(str(tmp_path / "missing"))


# ---------------------------------------------------------------------------- the prompt


@pytest.mark.parametrize(
    ("stdin", "answer"),
    [
        (b"yes\n", "yes"),
        (b"  YES  \n", "YES"),
        (b"y", "y"),
        (b"no\r\n", "no"),
        (b"\tnon\xc2\xa0\n", "non"),
    ],
)
def test_answer_is_one_word(stdin, answer):
    assert _answer(stdin) == answer


@pytest.mark.parametrize(
    ("stdin", "error"),
    [
        (b"", "EOF"),
        (b"   ", "EOF"),
        (b"\n", "unexpected newline"),
        (b"Yes please\n", "expected newline"),
    ],
)
def test_answer_errors_are_go_errors(stdin, error):
    with pytest.raises(CertError) as caught:
        _answer(stdin)
    assert str(caught.value) == error


def test_answer_leaves_the_rest_unread():
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, b"yes\nrest")
        os.close(write_fd)
        assert read_answer(read_fd) == "yes"
        assert os.read(read_fd, 100) == b"rest"
    finally:
        os.close(read_fd)


def _answer(stdin: bytes) -> str:
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, stdin)
        os.close(write_fd)
        return read_answer(read_fd)
    finally:
        os.close(read_fd)


# ---------------------------------------------------------------------------- validity


@pytest.fixture
def utc_zone(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_default_validity_as_go(utc_zone):
    leap_day = datetime(2028, 2, 29, 12, 0, 0, 700000, tzinfo=UTC).timestamp()
    validity = make_validity(None, None, 1, leap_day)
    assert validity.serial == int(leap_day)
    assert validity.not_before == datetime(2028, 2, 29, 12, 0, 0, tzinfo=UTC)
    assert validity.not_after == datetime(2029, 3, 1, 12, 0, 0, tzinfo=UTC)  # Go's AddDate
    given = datetime(2030, 1, 1, tzinfo=UTC)
    assert make_validity(given, None, 10, leap_day).not_before == given


def test_init_ca_command_writes_pem_files(tmp_path, utc_zone):
    command = InitCA("Test CA", 1024, str(tmp_path / "ca.crt"), str(tmp_path / "ca.key"))
    command.run(now=lambda: GOLDEN_SECOND.timestamp() + 0.9)
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes())
    assert ca.serial_number == SERIAL
    assert ca.not_valid_before_utc == GOLDEN_SECOND
    assert ca.not_valid_after_utc == _years(10)
    assert (tmp_path / "ca.key").read_bytes().startswith(b"-----BEGIN RSA PRIVATE KEY-----\n")
    assert stat.S_IMODE(os.stat(tmp_path / "ca.key").st_mode) == 0o600
    zero = InitCA(
        "CA",
        1024,
        str(tmp_path / "z.crt"),
        str(tmp_path / "z.key"),
        not_before="0001-01-01T00:00:00Z",
    )
    zero.run(now=lambda: GOLDEN_SECOND.timestamp())  # Go's zero time means "now"
    assert x509.load_pem_x509_certificate((tmp_path / "z.crt").read_bytes()).serial_number == SERIAL
