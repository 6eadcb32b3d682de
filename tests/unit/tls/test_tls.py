"""receptor.netceptor.tls: configs, node IDs, pins, real handshakes over socket pairs."""

import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from receptor._errors import ConfigError
from receptor.netceptor.tls import (
    ClientTLS,
    ServerTLS,
    TLSPeerError,
    TLSRegistry,
    decode_fingerprints,
    decode_node_id_value,
    fingerprint_matches,
    load_client,
    load_server,
    receptor_names,
    verify_chain,
)

from .certs import Issued, fingerprint, make_ca, make_cert, node_id_san


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("tlsunit")
    ca = make_ca()
    other = make_ca("Other CA")
    ca.write(directory, "ca")
    other.write(directory, "other-ca")
    made = {
        "n1": make_cert(ca, "n1", ("n1",)),
        "n2": make_cert(ca, "n2", ("n2",)),
        "bc": make_cert(ca, "b", ("b", "c")),
        "none": make_cert(ca, "x"),
        "expired": make_cert(ca, "n2", ("n2",), expired=True),
        "other": make_cert(other, "n2", ("n2",)),
        "ec": make_cert(ca, "n1", ("n1",), key_kind="ec"),
    }
    for stem, issued in made.items():
        issued.write(directory, stem)
    return {"dir": directory, "ca": ca, "other": other, **made}


def files(pki: dict[str, Any], stem: str) -> tuple[str, str]:
    return str(pki["dir"] / f"{stem}.crt"), str(pki["dir"] / f"{stem}.key")


def server(pki, stem="n1", node="n1", **extra) -> ServerTLS:
    cert, key = files(pki, stem)
    return load_server({"name": "srv", "cert": cert, "key": key, **extra}, node)


def client(pki, stem="n2", node="n2", **extra) -> ClientTLS:
    cert, key = files(pki, stem)
    values = {"name": "cli", "cert": cert, "key": key, "rootcas": str(pki["dir"] / "ca.crt")}
    values.update(extra)
    return load_client(values, node)


# ---------------------------------------------------------------------- node IDs


def test_node_id_otherName_bytes_match_the_spec():
    san = x509.SubjectAlternativeName([node_id_san("foo")])
    ext = x509.Extension(san.oid, False, san)
    assert ext.value.public_bytes() == bytes.fromhex("3014a01206092b0601040192081301a0050c03666f6f")


def test_receptor_names_in_order_and_none(pki):
    assert receptor_names(pki["bc"].cert) == ["b", "c"]
    assert receptor_names(pki["none"].cert) == []
    assert receptor_names(pki["ca"].cert) == []


def test_node_id_values_of_every_string_kind_and_length():
    assert decode_node_id_value(b"\x0c\x03foo") == "foo"
    assert decode_node_id_value(b"\x13\x03foo") == "foo"  # PrintableString
    assert decode_node_id_value(b"\x16\x03foo") == "foo"  # IA5String
    assert decode_node_id_value(b"\xa0\x05\x0c\x03foo") == "foo"  # still wrapped
    long_id = "n" * 300
    assert decode_node_id_value(b"\x0c\x82\x01\x2c" + long_id.encode()) == long_id
    assert decode_node_id_value("\u00e9t\u00e9".encode().join([b"\x0c\x05", b""])) == "été"


@pytest.mark.parametrize(
    "value",
    [b"", b"\x0c", b"\x0c\x05foo", b"\x02\x01\x01", b"\x0c\x03foo!", b"\x0c\x02\xff\xfe",
     b"\x0c\x85\xff\xff\xff\xff\xff", b"\xa0\x03\x0c\x05f"],
)  # fmt: skip
def test_malformed_node_id_values_raise(value):
    with pytest.raises(ValueError):
        decode_node_id_value(value)


# ---------------------------------------------------------------------- fingerprints


def test_fingerprints_decode_with_or_without_colons_any_case(pki):
    sha256 = fingerprint(pki["n1"])
    sha512 = fingerprint(pki["n1"], "sha512", colons=False).lower()
    pins = decode_fingerprints([sha256, sha512])
    assert [len(p) for p in pins] == [32, 64]
    assert fingerprint_matches(pki["n1"].der, pins[:1])
    assert fingerprint_matches(pki["n1"].der, pins[1:])
    assert not fingerprint_matches(pki["n2"].der, pins)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("zz", "error decoding fingerprints: error decoding fingerprint"),
        ("abc", "error decoding fingerprints: error decoding fingerprint"),
        ("abcd", "fingerprints must be 32 or 64 bytes for sha256 or sha512"),
        ("ab" * 48, "fingerprints must be 32 or 64 bytes for sha256 or sha512"),
        ("ab" * 100000, "fingerprints must be 32 or 64 bytes for sha256 or sha512"),
    ],
)
def test_bad_fingerprints_are_refused(value, message):
    with pytest.raises(ConfigError, match=message):
        decode_fingerprints([value])


# ---------------------------------------------------------------------- loading


def test_server_config_loads_with_its_raw_materials(pki):
    loaded = server(pki, requireclientcert=True, clientcas=str(pki["dir"] / "ca.crt"))
    assert loaded.verify_clients and loaded.require_client_cert
    assert loaded.cert_pem == pki["n1"].cert_pem
    assert loaded.key_pem == pki["n1"].key_pem
    assert loaded.client_cas_pem == pki["ca"].cert_pem
    assert loaded.context.verify_mode == ssl.CERT_REQUIRED
    assert loaded.context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert server(pki, mintls13=True).context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert not server(pki).verify_clients


def test_server_without_the_node_id_is_refused_with_upstream_text(pki):
    cert, key = files(pki, "bc")
    with pytest.raises(ConfigError) as info:
        load_server({"name": "srv", "cert": cert, "key": key}, "a")
    assert str(info.value) == (
        "error preparing tls server config: nodeID=a not found in certificate name(s); "
        f"names found=[b c]; cfg section=srv; server cert={cert}"
    )
    assert load_server(
        {"name": "srv", "cert": cert, "key": key, "skipreceptornamescheck": True}, "a"
    ).skip_names_check
    with pytest.raises(ConfigError, match=r"names found=\[\]; cfg section=cli"):
        client(pki, "none", "x")


def test_missing_switched_and_mismatched_files(pki, tmp_path):
    cert, key = files(pki, "n1")
    with pytest.raises(ConfigError) as info:
        load_server({"name": "s", "cert": "nope.crt", "key": key}, "n1")
    assert str(info.value) == (
        "error preparing tls server config: open nope.crt: no such file or directory"
    )
    with pytest.raises(ConfigError, match="PEM inputs may have been switched; cfg section=s"):
        load_server({"name": "s", "cert": key, "key": cert}, "n1")
    other_key = files(pki, "n2")[1]
    with pytest.raises(ConfigError, match="private key does not match public key"):
        load_server({"name": "s", "cert": cert, "key": other_key}, "n1")
    empty = tmp_path / "empty.pem"
    empty.write_bytes(b"")
    with pytest.raises(ConfigError, match="failed to find certificate PEM data"):
        load_server({"name": "s", "cert": str(empty), "key": key}, "n1")
    with pytest.raises(ConfigError, match="failed to find any PEM data in key input"):
        load_server({"name": "s", "cert": cert, "key": str(empty)}, "n1")
    with pytest.raises(ConfigError, match=f"read {tmp_path}: is a directory"):
        load_server({"name": "s", "cert": str(tmp_path), "key": key}, "n1")
    with pytest.raises(ConfigError, match="error reading client CAs file: no PEM certificates"):
        load_server({"name": "s", "cert": cert, "key": key, "clientcas": str(empty)}, "n1")
    with pytest.raises(ConfigError, match="error reading root CAs file: open nope"):
        client(pki, rootcas="nope")
    with pytest.raises(
        ConfigError,
        match="error preparing tls client config: cert and key must both be supplied or neither",
    ):
        load_client({"name": "c", "cert": cert}, "n1")


def test_client_without_a_certificate_is_allowed_by_the_loader(pki):
    loaded = load_client({"name": "c", "rootcas": str(pki["dir"] / "ca.crt")}, "n1")
    assert loaded.cert_pem is None and loaded.root_cas_pem == pki["ca"].cert_pem


def test_registry_names_and_in_place_updates(pki):
    registry = TLSRegistry()
    with pytest.raises(ConfigError, match=r"^unknown TLS config nope$"):
        registry.server("nope")
    with pytest.raises(ConfigError, match=r"^unknown TLS config nope$"):
        registry.client("nope")
    first = server(pki)
    registry.add_server(first)
    registry.add_server(server(pki, "ec"))
    assert registry.server("srv") is first
    assert first.cert_pem == pki["ec"].cert_pem


# ---------------------------------------------------------------------- handshakes


def pair(
    server_side: Callable[[socket.socket], Any], client_side: Callable[[socket.socket], Any]
) -> tuple[Any, Any]:
    """Run both ends over a socket pair; return (server result, client result), where a
    result is the value or the exception raised."""
    a, b = socket.socketpair()
    results: dict[str, Any] = {}

    def run(name: str, fn: Callable[[socket.socket], Any], sock: socket.socket) -> None:
        try:
            results[name] = fn(sock)
        except Exception as err:  # the test inspects it
            results[name] = err
            sock.close()

    thread = threading.Thread(target=run, args=("server", server_side, a))
    thread.start()
    run("client", client_side, b)
    thread.join(30)
    return results["server"], results["client"]


@pytest.fixture
def closing() -> Iterator[list[socket.socket]]:
    socks: list[socket.socket] = []
    yield socks
    for sock in socks:
        sock.close()


def test_mutual_tls_exchanges_data_both_ways_concurrently(pki, closing):
    srv = server(pki, requireclientcert=True, clientcas=str(pki["dir"] / "ca.crt"))
    cli = client(pki)
    tls_server, tls_client = pair(lambda s: srv.wrap(s, "peer"), lambda s: cli.wrap(s, "localhost"))
    closing.extend([tls_server, tls_client])
    for sock in (tls_server, tls_client):
        sock.settimeout(60)  # a lost record would hang both sides: fail instead
    payload = bytes(range(256)) * 4096  # 1 MiB each way, while the other side also writes

    def pump(sock: socket.socket) -> None:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)

    def drain(sock: socket.socket, into: list[bytes]) -> None:
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        into.append(b"".join(chunks))

    by_client: list[bytes] = []
    by_server: list[bytes] = []
    threads = [
        threading.Thread(target=pump, args=(tls_server,)),
        threading.Thread(target=drain, args=(tls_client, by_client)),
        threading.Thread(target=drain, args=(tls_server, by_server)),
    ]
    for thread in threads:
        thread.start()
    pump(tls_client)
    for thread in threads:
        thread.join(30)
    assert by_server == [payload]
    assert by_client == [payload]
    assert tls_client.peer_der() == pki["n1"].der
    assert tls_server.peer_der() == pki["n2"].der


def test_dontwait_send_is_all_or_nothing(pki, closing):
    srv, cli = server(pki), client(pki)
    tls_server, tls_client = pair(lambda s: srv.wrap(s, "peer"), lambda s: cli.wrap(s, "localhost"))
    closing.extend([tls_server, tls_client])
    assert tls_client.send(b"hello", socket.MSG_DONTWAIT) == 5
    assert tls_server.recv(100) == b"hello"
    with pytest.raises(BlockingIOError):
        tls_client.send(b"x" * 100000, socket.MSG_DONTWAIT)


def test_mesh_level_client_requires_the_target_node_id(pki, closing):
    srv = server(pki, "bc", "b")
    cli = client(pki)
    _, err = pair(lambda s: srv.wrap(s, "peer"), lambda s: cli.wrap(s, "", node_id="n1"))
    assert isinstance(err, TLSPeerError)
    assert str(err) == "x509: certificate is valid for Receptor node IDs b, c, not n1"
    srv = server(pki, "n1")
    _, err = pair(lambda s: srv.wrap(s, "peer"), lambda s: cli.wrap(s, "", node_id="x"))
    assert str(err) == "x509: certificate is valid for Receptor node ID n1, not x"
    srv = server(pki, "none", "x", skipreceptornamescheck=True)
    _, err = pair(lambda s: srv.wrap(s, "peer"), lambda s: cli.wrap(s, "", node_id="x"))
    assert str(err) == (
        "x509: certificate is not valid for any Receptor node IDs, but wanted to match x"
    )
    srv = server(pki, "n1")
    tls_server, tls_client = pair(
        lambda s: srv.wrap(s, "peer"), lambda s: cli.wrap(s, "", node_id="n1")
    )
    closing.extend([tls_server, tls_client])
    assert tls_client.peer_der() == pki["n1"].der


def test_mesh_level_server_check_of_the_client_node_id(pki):
    srv = server(pki, pinnedclientcert=[fingerprint(pki["n2"])])
    srv.check_peer([pki["n2"].der], node_id="n2")
    with pytest.raises(TLSPeerError, match="not n3"):
        srv.check_peer([pki["n2"].der], node_id="n3")
    # Pins apply on this path too (upstream skips them: README, differences).
    with pytest.raises(TLSPeerError, match="pinned fingerprint"):
        srv.check_peer([pki["n1"].der], node_id="n1")
    srv = server(pki, pinnedclientcert=[fingerprint(pki["n1"])])
    with pytest.raises(TLSPeerError, match="pinned fingerprint"):
        srv.check_peer([pki["n2"].der])
    with pytest.raises(TLSPeerError, match=r"^RVF failed: peer certificate missing$"):
        srv.check_peer([])
    with pytest.raises(TLSPeerError, match="failed to parse certificate"):
        srv.check_peer([b"\x30\x03\x02\x01\x01"])


def test_client_refuses_wrong_host_other_ca_and_pin(pki):
    srv = server(pki)
    _, err = pair(lambda s: srv.wrap(s, "p"), lambda s: client(pki).wrap(s, "example.com"))
    assert isinstance(err, ssl.SSLCertVerificationError) and "mismatch" in str(err)
    other = client(pki, rootcas=str(pki["dir"] / "other-ca.crt"))
    _, err = pair(lambda s: srv.wrap(s, "p"), lambda s: other.wrap(s, "localhost"))
    assert isinstance(err, ssl.SSLCertVerificationError)
    pinned = client(pki, pinnedservercert=[fingerprint(pki["n2"])])
    _, err = pair(lambda s: srv.wrap(s, "p"), lambda s: pinned.wrap(s, "localhost"))
    assert isinstance(err, TLSPeerError) and "pinned fingerprint" in str(err)


def test_insecureskipverify_accepts_anything(pki, closing):
    srv = server(pki, "other", "n2")
    insecure = client(pki, insecureskipverify=True, pinnedservercert=[fingerprint(pki["n1"])])
    tls_server, tls_client = pair(
        lambda s: srv.wrap(s, "p"), lambda s: insecure.wrap(s, "wrong.name", node_id="zz")
    )
    closing.extend([tls_server, tls_client])
    assert tls_client.peer_der() == pki["other"].der


@pytest.mark.parametrize(
    "hostile",
    [
        b"GET / HTTP/1.1\r\n\r\n",
        b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00",  # a truncated ClientHello
        b"\x16\x03\x01\xff\xff" + b"\x00" * 100,  # oversized record, then EOF
        b"\x16\x03",  # EOF inside the header
        b"",
    ],
)
def test_hostile_clients_fail_the_server_handshake_cleanly(pki, hostile):
    srv = server(pki)

    def send_garbage(sock: socket.socket) -> None:
        sock.sendall(hostile)
        sock.shutdown(socket.SHUT_WR)
        sock.recv(4096)
        sock.close()

    err, _ = pair(lambda s: srv.wrap(s, "hostile", timeout=10), send_garbage)
    assert isinstance(err, OSError)


def test_silent_client_times_out(pki):
    srv = server(pki)
    a, b = socket.socketpair()
    try:
        with pytest.raises(TimeoutError):
            srv.wrap(a, "silent", timeout=0.2)
    finally:
        a.close()
        b.close()


def test_verify_chain_for_the_quic_layer(pki):
    ca_pem = pki["ca"].cert_pem
    verify_chain([pki["n1"].der], ca_pem)
    with pytest.raises(TLSPeerError, match="unknown authority"):
        verify_chain([pki["other"].der], ca_pem)
    with pytest.raises(TLSPeerError, match="expired"):
        verify_chain([pki["expired"].der], ca_pem)
    with pytest.raises(TLSPeerError, match="peer certificate missing"):
        verify_chain([], ca_pem)


def test_files_are_written_where_asked(pki):
    cert, key = files(pki, "n1")
    assert Path(cert).read_bytes() == Issued.cert_pem.fget(pki["n1"])  # type: ignore[attr-defined]
    assert Path(key).exists()


# ---------------------------------------------------------------------- upstream-made material

UPSTREAM = Path(__file__).resolve().parents[2] / "data" / "tls" / "upstream"


def upstream_server(node: str = "node1", **extra) -> ServerTLS:
    values = {"name": "srv", "cert": str(UPSTREAM / f"{node}.crt")}
    values.update(key=str(UPSTREAM / f"{node}.key"), **extra)
    return load_server(values, node)


def upstream_client(node: str = "node2", **extra) -> ClientTLS:
    values = {"name": "cli", "cert": str(UPSTREAM / f"{node}.crt")}
    values.update(key=str(UPSTREAM / f"{node}.key"), rootcas=str(UPSTREAM / "ca.crt"), **extra)
    return load_client(values, node)


def test_certificates_made_by_upstream_receptor_load_and_carry_their_node_ids():
    assert upstream_server("node1").cert_file.endswith("node1.crt")
    assert upstream_client("node2").root_cas_pem == (UPSTREAM / "ca.crt").read_bytes()
    for node in ("node1", "node2"):
        cert = x509.load_pem_x509_certificate((UPSTREAM / f"{node}.crt").read_bytes())
        assert receptor_names(cert) == [node]
    with pytest.raises(ConfigError, match=r"nodeID=node2 not found .*names found=\[node1\]"):
        load_server(
            {"name": "s", "cert": str(UPSTREAM / "node1.crt"), "key": str(UPSTREAM / "node1.key")},
            "node2",
        )


def test_mutual_tls_with_upstream_made_certificates(closing):
    """The upstream material was made on 2026-11-28 and is valid for one year; after that
    the same handshake must fail on the expiry instead."""
    srv = upstream_server(requireclientcert=True, clientcas=str(UPSTREAM / "ca.crt"))
    cli = upstream_client()
    cert = x509.load_pem_x509_certificate((UPSTREAM / "node1.crt").read_bytes())
    valid = datetime.now(UTC) < cert.not_valid_after_utc
    server_end, client_end = pair(
        lambda s: srv.wrap(s, "peer"), lambda s: cli.wrap(s, "", node_id="node1")
    )
    if valid:
        closing.extend([server_end, client_end])
        client_end.sendall(b"ping")
        assert server_end.recv(10) == b"ping"
        srv.check_peer([server_end.peer_der()], node_id="node2")
    else:
        assert isinstance(client_end, ssl.SSLCertVerificationError)
        assert "expired" in str(client_end)
