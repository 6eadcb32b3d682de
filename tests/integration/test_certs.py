"""The real ``receptor --cert-init/--cert-makereq/--cert-signreq`` commands, checked with openssl.

Each test runs the daemon in a temporary directory (umask 022, as the golden captures) and
compares what it wrote with upstream's certificates (tests/data/certs) through
``openssl x509 -text``, with the parts that differ from run to run (keys, serials, dates,
signatures) masked.
"""

import os
import re
import shlex
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtensionOID, NameOID

from receptor.certificates import make_test_pki, node_ids_from_certificate
from receptor.certificates._pem import encode_pem

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed"),
]

DATA = Path(__file__).resolve().parents[1] / "data" / "certs"
#: Signing node1's request with the CA made by the ``pki`` fixture.
SIGN1 = "--cert-signreq req=node1.csr cacert=ca.crt cakey=ca.key"
SIGN = "cacert=ca.crt cakey=ca.key verify=yes"
LONG_ID_ERROR = (
    "Error: asn1: structure error: tags don't match (6 vs {class:2 tag:0 length:6 "
    "isCompound:false}) {optional:false explicit:false application:false private:false "
    "defaultValue:<nil> tag:<nil> stringType:0 timeType:0 set:false omitEmpty:false} "
    "ObjectIdentifier @2\n"
)


def receptor(cwd: Path, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    """Run ``receptor`` in ``cwd`` (umask 022); (status, stdout, stderr).

    Each of ``args`` is split like a shell would split it.
    """
    words = [word for arg in args for word in shlex.split(arg)]
    done = subprocess.run(
        [sys.executable, "-m", "receptor", *words],
        cwd=cwd,
        input=stdin if stdin is not None else b"",
        capture_output=True,
        timeout=120,
        env=dict(os.environ, TZ="UTC"),
        preexec_fn=lambda: os.umask(0o022),
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def ok(cwd: Path, *args: str, stdin: bytes | None = None) -> str:
    status, stdout, stderr = receptor(cwd, *args, stdin=stdin)
    assert (status, stderr) == (0, ""), (stdout, stderr)
    return stdout


def fails(cwd: Path, *args: str, stdin: bytes | None = None) -> str:
    status, stdout, stderr = receptor(cwd, *args, stdin=stdin)
    assert (status, stderr) == (1, ""), (stdout, stderr)
    return stdout


def openssl(*args: str) -> str:
    done = subprocess.run(["openssl", *args], capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.decode()


def masked_dump(text: str) -> str:
    """An ``openssl -text`` dump without what changes from run to run."""
    text = re.sub(r"(Modulus:|Signature Value:)\n(\s+[0-9a-f:]+\n)+", r"\1 <bytes>\n", text)
    text = re.sub(r"Serial Number: \d+ \(0x[0-9a-f]+\)", "Serial Number: <serial>", text)
    text = re.sub(r"(Not Before|Not After) ?: .*", r"\1: <date>", text)
    text = re.sub(r"([0-9A-F]{2}:){19}[0-9A-F]{2}", "<key id>", text)
    return text


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    """A CA and a node1 request/key/certificate made by our receptor, as in golden/certs."""
    ok(tmp_path, "--cert-init 'commonname=Receptor Test CA' bits=2048 outcert=ca.crt outkey=ca.key")
    ok(
        tmp_path,
        "--cert-makereq bits=2048 commonname=node1 dnsname=node1 dnsname=localhost",
        "ipaddress=127.0.0.1 nodeid=node1 outreq=node1.csr outkey=node1.key",
    )
    ok(tmp_path, SIGN1, "outcert=node1.crt verify=yes")
    return tmp_path


def test_full_flow_matches_upstream(pki: Path):
    for name in ("ca.crt", "node1.crt"):
        ours = openssl("x509", "-in", str(pki / name), "-noout", "-text")
        theirs = (DATA / f"{name}.txt").read_text()
        assert masked_dump(ours) == masked_dump(theirs)
    ours = openssl("req", "-in", str(pki / "node1.csr"), "-noout", "-text")
    assert masked_dump(ours) == masked_dump((DATA / "node1.csr.txt").read_text())
    assert "node1.crt: OK" in openssl(
        "verify", "-CAfile", str(pki / "ca.crt"), str(pki / "node1.crt")
    )
    for name in ("ca.crt", "ca.key", "node1.csr", "node1.key", "node1.crt"):
        assert stat.S_IMODE(os.stat(pki / name).st_mode) == 0o600, name
    for name in ("ca.key", "node1.key"):
        assert (pki / name).read_text().startswith("-----BEGIN RSA PRIVATE KEY-----\n")


def test_certificate_details(pki: Path):
    ca = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    node = x509.load_pem_x509_certificate((pki / "node1.crt").read_bytes())
    assert ca.serial_number == int(ca.not_valid_before_utc.timestamp())
    assert ca.not_valid_after_utc.year == ca.not_valid_before_utc.year + 10
    assert node.not_valid_after_utc.year == node.not_valid_before_utc.year + 1
    san = node.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    csr = x509.load_pem_x509_csr((pki / "node1.csr").read_bytes())
    assert san.value.public_bytes() == csr.extensions[0].value.public_bytes()
    assert node_ids_from_certificate(node) == ["node1"]
    text = openssl("x509", "-in", str(pki / "node1.crt"), "-noout", "-text")
    assert "othername: 1.3.6.1.4.1.2312.19.1::node1" in text


def test_prompt_yes_signs_and_no_declines(pki: Path):
    shown = ok(
        pki,
        SIGN1,
        "outcert=p.crt",
        stdin=b"  YES \n",
    )
    assert shown == (
        "Requested certificate:\n  Subject: CN=node1\n  Encryption Algorithm: RSA (2048 bits)\n"
        "  Signature Algorithm: SHA256-RSA\n  Names:\n    DNS Name: node1\n"
        "    DNS Name: localhost\n    IP Address: 127.0.0.1\n    Receptor Node ID: node1\n"
        "Sign certificate (yes/no)? "
    )
    assert "p.crt: OK" in openssl("verify", "-CAfile", str(pki / "ca.crt"), str(pki / "p.crt"))
    for answer, error in [(b"no\n", "user declined"), (b"", "EOF"), (b"y y\n", "expected newline")]:
        out = fails(
            pki,
            SIGN1,
            "outcert=q.crt",
            stdin=answer,
        )
        assert out.endswith(f"Sign certificate (yes/no)? Error: {error}\n")
        assert not (pki / "q.crt").exists()


def test_yaml_form_and_validity(tmp_path: Path):
    (tmp_path / "init.yml").write_text(
        "- cert-init:\n    commonname: YAML CA\n    bits: 0\n    outcert: ca.crt\n"
        "    outkey: ca.key\n    notbefore: 2024-02-01T00:00:00.5+02:00\n"
        "    notafter: 2034-01-01T00:00:00Z\n"
    )
    ok(tmp_path, "-c init.yml")
    text = openssl("x509", "-in", str(tmp_path / "ca.crt"), "-noout", "-text")
    assert "Not Before: Jan 31 22:00:00 2024 GMT" in text
    assert "Not After : Jan  1 00:00:00 2034 GMT" in text
    assert "Public-Key: (2048 bit)" in text  # bits=0 means 2048
    ok(tmp_path, "--cert-makereq bits=2048 commonname=n nodeid=n outreq=n.csr outkey=n.key")
    ok(tmp_path, "--cert-signreq req=n.csr outcert=n.crt", SIGN, "notafter=2030-01-01T00:00:00Z")
    text = openssl("x509", "-in", str(tmp_path / "n.crt"), "-noout", "-text")
    assert "Not After : Jan  1 00:00:00 2030 GMT" in text


def test_load_errors(pki: Path):
    sign = ["--cert-signreq", "outcert=x.crt", "verify=yes"]
    (pki / "two.crt").write_bytes((pki / "ca.crt").read_bytes() * 2)
    cases = [
        (
            ["req=missing.csr", "cacert=ca.crt", "cakey=ca.key"],
            "open missing.csr: no such file or directory",
        ),
        (
            ["req=node1.csr", "cacert=two.crt", "cakey=ca.key"],
            "certificate file should contain exactly one item",
        ),
        (
            ["req=node1.csr", "cacert=node1.key", "cakey=ca.key"],
            "certificate file does not contain certificate data",
        ),
        (
            ["req=node1.csr", "cacert=ca.crt", "cakey=ca.crt"],
            "private key file does not contain private key data",
        ),
        (
            ["req=ca.crt", "cacert=ca.crt", "cakey=ca.key"],
            "certificate request file does not contain certificate request data",
        ),
        (
            ["req=node1.csr", "cacert=ca.crt", "cakey=node1.key"],
            "x509: provided PrivateKey doesn't match parent's PublicKey",
        ),
        (["req=node1.csr", "cacert=ca.crt", "cakey=."], "read .: is a directory"),
    ]
    for args, error in cases:
        assert fails(pki, *sign, *args) == f"Error: {error}\n", args
    assert not (pki / "x.crt").exists()
    (pki / "blank.crt").write_bytes((pki / "ca.crt").read_bytes() + b"\n")
    out = fails(pki, *sign, "req=node1.csr", "cacert=blank.crt", "cakey=ca.key")
    assert out == "Error: failed to decode PEM block\n"


def test_hostile_files_are_refused(pki: Path):
    """Garbage inside well-formed PEM, and a request whose names Go cannot parse."""
    (pki / "junk.csr").write_bytes(encode_pem("CERTIFICATE REQUEST", b"\x30\x03\x02\x01"))
    (pki / "junk.key").write_bytes(encode_pem("RSA PRIVATE KEY", b"\x30\x00"))
    (pki / "empty.csr").write_bytes(b"")
    cases = [
        ("req=junk.csr cakey=ca.key", "x509: malformed certificate request"),
        ("req=node1.csr cakey=junk.key", "x509: failed to parse private key"),
        ("req=empty.csr cakey=ca.key", "certificate request file should contain exactly one item"),
    ]
    for args, error in cases:
        out = fails(pki, "--cert-signreq outcert=h.crt cacert=ca.crt verify=yes", args)
        assert out == f"Error: {error}\n", args
    key = serialization.load_pem_private_key((pki / "node1.key").read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    bad_ip = x509.UnrecognizedExtension(
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b"\x30\x07\x82\x00\x87\x03\x01\x02\x03"
    )
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "h")]))
        .add_extension(bad_ip, critical=False)
        .sign(key, hashes.SHA256())
    )
    (pki / "badip.csr").write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    out = fails(pki, "--cert-signreq req=badip.csr outcert=h.crt", SIGN)
    assert out == "Error: x509: cannot parse IP address of length 3\n"
    assert not (pki / "h.crt").exists()


def test_makereq_key_handling(pki: Path):
    req = ["--cert-makereq", "commonname=r", "nodeid=r", "outreq=r.csr"]
    assert fails(pki, *req, "inkey=ca.crt") == "Error: no private keys in file ca.crt\n"
    (pki / "both.pem").write_bytes(
        (pki / "ca.key").read_bytes() + b"\n" + (pki / "node1.key").read_bytes()
    )
    assert fails(pki, *req, "inkey=both.pem") == "Error: multiple private keys in file both.pem\n"
    # A bundle with a certificate and one key works; so does a PKCS #8 key.
    (pki / "bundle.pem").write_bytes(
        (pki / "node1.crt").read_bytes() + b"\n" + (pki / "node1.key").read_bytes()
    )
    ok(pki, *req, "inkey=bundle.pem")
    key = serialization.load_pem_private_key((pki / "node1.key").read_bytes(), None)
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (pki / "k8.pem").write_bytes(pkcs8)
    ok(pki, *req, "inkey=k8.pem")
    csr = x509.load_pem_x509_csr((pki / "r.csr").read_bytes())
    assert csr.public_key().public_numbers() == key.public_key().public_numbers()
    assert fails(pki, *req, "outkey=z.key", "bits=512").startswith("Error: crypto/rsa: 512-bit")
    assert fails(pki, *req, "inkey=k8.pem", "ipaddress=1.2.3") == (
        "Error: invalid IP address: 1.2.3\n"
    )
    assert fails(pki, "--cert-makereq commonname= outreq=e.csr inkey=k8.pem") == (
        "Error: must provide CommonName\n"
    )


def test_no_names_and_long_node_ids(pki: Path):
    ok(pki, "--cert-makereq commonname=n inkey=node1.key outreq=n.csr")
    out = fails(pki, "--cert-signreq req=n.csr outcert=n.crt", SIGN)
    assert out == "Error: cannot sign: no names found in certificate\n"
    longest = "a" * 112
    ok(pki, f"--cert-makereq commonname=l inkey=node1.key nodeid={longest} outreq=l.csr")
    ok(pki, "--cert-signreq req=l.csr outcert=l.crt", SIGN)
    text = openssl("x509", "-in", str(pki / "l.crt"), "-noout", "-text")
    assert f"othername: 1.3.6.1.4.1.2312.19.1::{longest}" in text
    ok(pki, f"--cert-makereq commonname=l inkey=node1.key nodeid={longest}a outreq=m.csr")
    openssl("req", "-in", str(pki / "m.csr"), "-noout", "-text")  # openssl still parses it
    out = fails(pki, "--cert-signreq req=m.csr outcert=m.crt", SIGN)
    assert out == LONG_ID_ERROR


def test_request_signature_is_not_checked(pki: Path):
    pem = (pki / "node1.csr").read_text()
    der = bytearray(x509.load_pem_x509_csr(pem.encode()).public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0xFF
    tampered = x509.load_der_x509_csr(bytes(der))
    (pki / "t.csr").write_bytes(tampered.public_bytes(serialization.Encoding.PEM))
    assert not tampered.is_signature_valid
    ok(pki, "--cert-signreq req=t.csr outcert=t.crt", SIGN)


def test_exclusive_and_existing_files(pki: Path):
    out = fails(pki, "--cert-init commonname=CA bits=2048 outcert=a.crt outkey=a.key --node id=a")
    assert out == "Error: cannot specify any other options with cert-init\n"
    # As Go's os.WriteFile: an existing file is overwritten but keeps its mode.
    (pki / "keep.crt").write_text("old")
    os.chmod(pki / "keep.crt", 0o644)
    ok(pki, SIGN1, "outcert=keep.crt verify=yes")
    assert stat.S_IMODE(os.stat(pki / "keep.crt").st_mode) == 0o644
    assert (pki / "keep.crt").read_text().startswith("-----BEGIN CERTIFICATE-----\n")
    out = fails(pki, SIGN1, "outcert=nodir/x.crt verify=yes")
    assert out == "Error: open nodir/x.crt: no such file or directory\n"


# ---------------------------------------------------------------------------- test PKI


def test_make_test_pki_gives_working_tls_certificates(tmp_path: Path):
    pki = make_test_pki(tmp_path, ["alpha", "beta"])
    for node in ("alpha", "beta"):
        assert f"{node}.crt: OK" in openssl(
            "verify", "-CAfile", str(pki.ca_cert), str(pki[node].cert)
        )
        text = openssl("x509", "-in", str(pki[node].cert), "-noout", "-text")
        assert f"othername: 1.3.6.1.4.1.2312.19.1::{node}" in text
        assert stat.S_IMODE(os.stat(pki[node].key).st_mode) == 0o600
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(pki["alpha"].cert, pki["alpha"].key)
    server_ctx.load_verify_locations(pki.ca_cert)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_cert_chain(pki["beta"].cert, pki["beta"].key)
    client_ctx.load_verify_locations(pki.ca_cert)
    seen: dict[str, list[str]] = {}
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                der = tls.getpeercert(binary_form=True)
                seen["client"] = node_ids_from_certificate(der)
                tls.sendall(b"ok")

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=30) as raw,
                client_ctx.wrap_socket(raw, server_hostname="localhost") as tls,
            ):
                seen["server"] = node_ids_from_certificate(tls.getpeercert(binary_form=True))
                assert tls.recv(2) == b"ok"
        finally:
            thread.join(timeout=30)
    assert seen == {"client": ["beta"], "server": ["alpha"]}
