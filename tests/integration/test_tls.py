"""TLS over real daemons on loopback: backends, rejections, the TLS control service, reload.

Certificates come from ``tests/unit/tls/certs.py`` (a CA and node certificates with the
Receptor node-ID otherName, as ``receptor --cert-signreq`` makes them).
"""

import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509

from ..unit.tls.certs import Issued, fingerprint, make_ca, make_cert
from .harness import Mesh, ReceptorNode, free_port, listener, peer, wait_until

pytestmark = pytest.mark.integration


@dataclass
class PKI:
    directory: Path
    ca: Issued
    ca_file: str
    other_ca_file: str
    certs: dict[str, Issued]

    def files(self, stem: str) -> tuple[str, str]:
        return str(self.directory / f"{stem}.crt"), str(self.directory / f"{stem}.key")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    directory = tmp_path_factory.mktemp("pki")
    ca = make_ca()
    other_ca = make_ca("Some Other CA")
    ca.write(directory, "ca")
    other_ca.write(directory, "other-ca")
    certs = {
        "n1": make_cert(ca, "n1", ("n1",)),
        "n1-dns-only": make_cert(ca, "n1", ("n1",), ip_addresses=()),
        "n2": make_cert(ca, "n2", ("n2",)),
        "n2-expired": make_cert(ca, "n2", ("n2",), expired=True),
        "n2-other-ca": make_cert(other_ca, "n2", ("n2",)),
        "n2-no-node-id": make_cert(ca, "n2"),
        "n2-server-only": make_cert(ca, "n2", ("n2",), usages=(_server_auth(),)),
    }
    for stem, issued in certs.items():
        issued.write(directory, stem)
    return PKI(directory, ca, str(directory / "ca.crt"), str(directory / "other-ca.crt"), certs)


def _server_auth():
    from cryptography.x509.oid import ExtendedKeyUsageOID

    return ExtendedKeyUsageOID.SERVER_AUTH


def tls_server(pki: PKI, stem: str, name: str = "srv", **extra) -> dict:
    cert, key = pki.files(stem)
    return {"tls-server": {"name": name, "cert": cert, "key": key, **extra}}


def tls_client(pki: PKI, stem: str, name: str = "cli", **extra) -> dict:
    cert, key = pki.files(stem)
    return {"tls-client": {"name": name, "cert": cert, "key": key, **extra}}


def mutual_listener(mesh: Mesh, pki: PKI, **server_extra) -> ReceptorNode:
    """n1: a TLS tcp-listener requiring client certificates from our CA."""
    return mesh.node(
        "n1",
        tls_server(pki, "n1", requireclientcert=True, clientcas=pki.ca_file, **server_extra),
        listener(tls="srv"),
    )


def n2_peer(mesh: Mesh, pki: PKI, n1: ReceptorNode, stem: str = "n2", **client_extra):
    extra = {"skipreceptornamescheck": True} if stem == "n2-no-node-id" else {}
    return mesh.node(
        "n2",
        tls_client(pki, stem, rootcas=pki.ca_file, **extra, **client_extra),
        peer(n1.port(), tls="cli"),
    )


def assert_alive(node: ReceptorNode) -> None:
    assert node.process is not None and node.process.poll() is None
    assert node.status()["NodeID"] == node.node_id


# ---------------------------------------------------------------------- the mesh


def test_tls_mesh_with_node_certificates_converges_and_pings(mesh, pki):
    n1 = mutual_listener(mesh, pki)
    n2 = n2_peer(mesh, pki, n1)
    wait_until(lambda: "n2" in n1.routes())
    wait_until(lambda: "n1" in n2.routes())
    reply = n2.command("ping n1")
    assert reply["Success"] is True and reply["From"] == "n1"
    assert n1.command("ping n2")["Success"] is True


def test_pinned_server_and_client_fingerprints_that_match_connect(mesh, pki):
    n1 = mutual_listener(
        mesh, pki, pinnedclientcert=[fingerprint(pki.certs["n2"], "sha512", colons=False)]
    )
    n2 = n2_peer(mesh, pki, n1, pinnedservercert=[fingerprint(pki.certs["n1"]).lower()])
    wait_until(lambda: "n2" in n1.routes())
    assert n2.command("ping n1")["Success"] is True


def test_mintls13_mesh_connects(mesh, pki):
    n1 = mutual_listener(mesh, pki, mintls13=True)
    n2 = n2_peer(mesh, pki, n1, mintls13=True)
    wait_until(lambda: "n2" in n1.routes())
    assert n2.command("ping n1")["Success"] is True


# ---------------------------------------------------------------------- rejections

HANDSHAKE_FAILED = r"ERROR .*TLS handshake with 127\.0\.0\.1:\d+ failed \(tls-server srv\): "


@pytest.mark.parametrize(
    ("stem", "server_reason"),
    [
        ("n2-other-ca", "certificate verify failed: unable to get local issuer certificate"),
        ("n2-expired", "certificate verify failed: certificate has expired"),
        ("n2-server-only", "certificate verify failed: unsuitable certificate purpose"),
    ],
)
def test_listener_refuses_bad_client_certificates(mesh, pki, stem, server_reason):
    n1 = mutual_listener(mesh, pki)
    n2 = n2_peer(mesh, pki, n1, stem)
    n1.wait_for_log(HANDSHAKE_FAILED + server_reason)
    # TLS 1.3: the client finishes its handshake before the server judges its certificate,
    # so the client learns of the refusal at its first read or write.
    n2.wait_for_log(r"Backend (sending|receiving) error|Backend connection failed")
    assert "n2" not in n1.routes()
    assert_alive(n1)
    assert_alive(n2)


def test_listener_refuses_a_client_certificate_not_matching_the_pin(mesh, pki):
    n1 = mutual_listener(mesh, pki, pinnedclientcert=[fingerprint(pki.certs["n1"])])
    n2 = n2_peer(mesh, pki, n1)
    n1.wait_for_log(
        HANDSHAKE_FAILED + "RVF failed: presented certificate does not match any pinned fingerprint"
    )
    assert "n2" not in n1.routes()
    assert_alive(n1)
    assert_alive(n2)


def test_peer_refuses_a_server_certificate_not_matching_the_pin(mesh, pki):
    n1 = mutual_listener(mesh, pki)
    n2 = n2_peer(mesh, pki, n1, pinnedservercert=[fingerprint(pki.certs["n2"], "sha512")])
    n2.wait_for_log(
        r"Backend connection failed \(will retry\): TLS handshake with 127\.0\.0\.1:\d+ failed: "
        "RVF failed: presented certificate does not match any pinned fingerprint"
    )
    assert "n1" not in n2.routes()
    assert_alive(n1)
    assert_alive(n2)


def test_peer_refuses_a_server_certificate_from_another_ca(mesh, pki):
    n1 = mutual_listener(mesh, pki)
    n2 = mesh.node(
        "n2",
        tls_client(pki, "n2", rootcas=pki.other_ca_file),
        peer(n1.port(), tls="cli"),
    )
    n2.wait_for_log(
        r"Backend connection failed \(will retry\): TLS handshake with 127\.0\.0\.1:\d+ failed: "
        "certificate verify failed: "
    )
    assert_alive(n1)
    assert_alive(n2)


def test_peer_checks_the_server_host_name(mesh, pki):
    """tcp-peer verifies the host of its address (here ``localhost``, a DNS SAN) — and a
    name that the certificate does not carry is refused."""
    n1 = mesh.node(
        "n1",
        tls_server(pki, "n1-dns-only", requireclientcert=True, clientcas=pki.ca_file),
        listener(tls="srv"),
    )
    n2 = mesh.node(
        "n2",
        tls_client(pki, "n2", rootcas=pki.ca_file),
        {"tcp-peer": {"address": f"localhost:{n1.port()}", "tls": "cli"}},
    )
    wait_until(lambda: "n1" in n2.routes())
    n3 = mesh.node(
        "n3",
        {"tls-client": {"name": "cli", "cert": pki.files("n2")[0], "key": pki.files("n2")[1],
                        "rootcas": pki.ca_file, "skipreceptornamescheck": True}},
        peer(n1.port(), tls="cli"),
    )  # fmt: skip
    n3.wait_for_log(
        r"Backend connection failed \(will retry\): TLS handshake with 127\.0\.0\.1:\d+ "
        "failed: certificate verify failed: IP address mismatch"
    )
    assert_alive(n1)


def test_node_whose_certificate_lacks_its_node_id_does_not_start(mesh, pki):
    """Upstream checks node IDs of backend peers only through this start-up check of each
    node's own certificate (wire.md §12.3); the mesh-level check is in the unit tests."""
    n1 = mutual_listener(mesh, pki)
    cert, key = pki.files("n2-no-node-id")
    n2 = mesh.node(
        "n2",
        {"tls-client": {"name": "cli", "cert": cert, "key": key, "rootcas": pki.ca_file}},
        peer(n1.port(), tls="cli"),
        start=False,
    )
    n2.start(wait=False)
    assert n2.process is not None
    assert n2.process.wait(30) == 1
    n2.wait_for_log(
        r"^Error: error preparing tls client config: nodeID=n2 not found in certificate "
        rf"name\(s\); names found=\[\]; cfg section=cli; server cert={re.escape(cert)}$"
    )
    assert_alive(n1)


def test_plain_tcp_peer_on_a_tls_listener_is_refused(mesh, pki):
    n1 = mutual_listener(mesh, pki)
    n2 = mesh.node("n2", peer(n1.port()))
    n1.wait_for_log(HANDSHAKE_FAILED + "first record does not look like a TLS handshake")
    assert "n2" not in n1.routes()
    assert_alive(n1)
    assert_alive(n2)


def _raw_client(port: int, pki: PKI, cert: str | None = None, **context_settings) -> str:
    """Handshake with a plain Python TLS client; return the error text ('' if it worked)."""
    context = ssl.create_default_context(cafile=pki.ca_file)
    for key, value in context_settings.items():
        setattr(context, key, value)
    if cert is not None:
        context.load_cert_chain(*pki.files(cert))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"\x00\x00")
                tls.recv(1)  # TLS 1.3 client certificates are judged after the handshake
        except (ssl.SSLError, OSError) as err:
            return str(err)
    return ""


def test_client_without_a_certificate_is_refused_where_one_is_required(mesh, pki):
    n1 = mutual_listener(mesh, pki)
    assert _raw_client(n1.port(), pki) != ""
    n1.wait_for_log(HANDSHAKE_FAILED + "peer did not return a certificate")
    assert_alive(n1)


def test_clientcas_alone_also_requires_a_client_certificate(mesh, pki):
    """wire.md §12.2: upstream's verifier refuses a client without a certificate even when
    only ``clientcas`` is set."""
    n1 = mesh.node("n1", tls_server(pki, "n1", clientcas=pki.ca_file), listener(tls="srv"))
    assert _raw_client(n1.port(), pki) != ""
    n1.wait_for_log(HANDSHAKE_FAILED + "peer did not return a certificate")
    assert_alive(n1)


def test_tls12_client_is_refused_where_mintls13_is_set(mesh, pki):
    n1 = mutual_listener(mesh, pki, mintls13=True)
    error = _raw_client(n1.port(), pki, "n2", maximum_version=ssl.TLSVersion.TLSv1_2)
    assert error != ""
    n1.wait_for_log(HANDSHAKE_FAILED + "unsupported protocol")
    assert_alive(n1)


def test_tls12_client_is_served_by_default(mesh, pki):
    n1 = mutual_listener(mesh, pki)
    assert _raw_client(n1.port(), pki, "n2", maximum_version=ssl.TLSVersion.TLSv1_2) == ""


def test_hostile_record_header_ends_only_that_connection(mesh, pki):
    n1 = mutual_listener(mesh, pki)
    with socket.create_connection(("127.0.0.1", n1.port()), timeout=10) as raw:
        try:
            raw.sendall(b"\x16\x03\x01\xff\xff" + b"\x00" * 64)  # an oversized record
            raw.shutdown(socket.SHUT_WR)
            raw.recv(4096)
        except OSError:
            pass  # the server may already have reset the connection
    n1.wait_for_log(HANDSHAKE_FAILED)
    n2 = n2_peer(mesh, pki, n1)
    wait_until(lambda: "n1" in n2.routes())
    assert_alive(n1)


# ---------------------------------------------------------------------- control service


def receptorctl_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "receptorctl", *args]


def tls_control(mesh: Mesh, pki: PKI) -> tuple[ReceptorNode, int, int]:
    tls_port, tcp_port = free_port(), free_port()
    node = mesh.node(
        "n1",
        tls_server(pki, "n1", requireclientcert=True, clientcas=pki.ca_file),
        {"control-service": {"service": "ctls", "tcplisten": f"127.0.0.1:{tls_port}",
                             "tcptls": "srv"}},
        {"control-service": {"service": "ctcp", "tcplisten": f"127.0.0.1:{tcp_port}"}},
        listener(tls="srv"),
    )  # fmt: skip
    return node, tls_port, tcp_port


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("client", ["ours", "upstream"])
def test_tls_control_service_with_receptorctl(mesh, pki, client, request):
    node, tls_port, tcp_port = tls_control(mesh, pki)
    if client == "ours":
        base = receptorctl_command()
    else:
        base = [str(request.getfixturevalue("upstream_receptorctl"))]
    cert, key = pki.files("n2")
    secure = [f"--socket=tls://127.0.0.1:{tls_port}", "--rootcas", pki.ca_file]
    done = run([*base, *secure, "--cert", cert, "--key", key, "status", "--json"])
    assert done.returncode == 0, done.stderr
    assert '"NodeID": "n1"' in done.stdout
    refused = run([*base, *secure, "status"])
    assert refused.returncode != 0
    node.wait_for_log(r"TLS handshake with 127\.0\.0\.1:\d+ failed \(tls-server srv\): ")
    wrong_ca = run(
        [*base, f"--socket=tls://127.0.0.1:{tls_port}", "--rootcas", pki.other_ca_file,
         "--cert", cert, "--key", key, "status"]
    )  # fmt: skip
    assert wrong_ca.returncode != 0
    plain = run([*base, f"--socket=tcp://127.0.0.1:{tcp_port}", "status", "--json"])
    assert plain.returncode == 0, plain.stderr
    assert '"NodeID": "n1"' in plain.stdout
    assert_alive(node)


def test_plain_client_on_the_tls_control_port_is_closed(mesh, pki):
    node, tls_port, _ = tls_control(mesh, pki)
    with socket.create_connection(("127.0.0.1", tls_port), timeout=10) as sock:
        sock.sendall(b'{"command":"status"}\n')
        try:
            reply = sock.recv(4096)
        except ConnectionResetError:
            reply = b""
        assert b"Receptor Control" not in reply
    node.wait_for_log(r"TLS handshake with 127\.0\.0\.1:\d+ failed \(tls-server srv\): ")
    assert_alive(node)


# ---------------------------------------------------------------------- reload


def _served_certificate(port: int, pki: PKI) -> bytes:
    context = ssl.create_default_context(cafile=pki.ca_file)
    context.load_cert_chain(*pki.files("n2"))
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def _served_certificate_when_listening(port: int, pki: PKI) -> bytes | None:
    """As above, or None while a reload restarts the listener (upstream's reload cancels
    the backends and starts them again, so a connection in between is cut)."""
    try:
        return _served_certificate(port, pki)
    except OSError:
        return None


def test_reload_uses_rotated_certificates_and_refuses_broken_ones(mesh, pki):
    live = pki.directory / "live"
    live.mkdir(exist_ok=True)
    first = pki.certs["n1"]
    cert_path, key_path = first.write(live, "n1")
    port = free_port()
    control_port = free_port()
    n1 = mesh.node(
        "n1",
        {"tls-server": {"name": "srv", "cert": cert_path, "key": key_path,
                        "requireclientcert": True, "clientcas": pki.ca_file}},
        {"control-service": {"service": "ctls", "tcplisten": f"127.0.0.1:{control_port}",
                             "tcptls": "srv"}},
        listener(port, tls="srv"),
    )  # fmt: skip
    n2 = n2_peer(mesh, pki, n1)
    wait_until(lambda: "n2" in n1.routes())
    assert _served_certificate(port, pki) == first.der
    cert, key = pki.files("n2")
    ctl = receptorctl_command(
        f"--socket=tls://127.0.0.1:{control_port}", "--rootcas", pki.ca_file,
        "--cert", cert, "--key", key,
    )  # fmt: skip

    rotated = make_cert(pki.ca, "n1", ("n1",))
    rotated.write(live, "n1")
    done = run([*ctl, "reload"])
    assert done.returncode == 0, done.stderr
    assert "Reload successful" in done.stdout
    assert _served_certificate(port, pki) == rotated.der
    assert _served_certificate(control_port, pki) == rotated.der
    wait_until(lambda: "n2" in n1.routes() and n2.command("ping n1")["Success"])

    Path(cert_path).write_text("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n")
    refused = run([*ctl, "reload"])
    assert refused.returncode == 4, (refused.stdout, refused.stderr)
    assert "error preparing tls server config: tls: failed to find certificate PEM data" in (
        refused.stderr
    )
    assert cert_path in refused.stderr
    n1.wait_for_log(r"WARNING .*Reload not successful: error preparing tls server config: ")
    # The running config keeps working: same certificate, mesh and control still up.
    assert _served_certificate(port, pki) == rotated.der
    assert run([*ctl, "status"]).returncode == 0
    assert n1.command("ping n2")["Success"] is True

    first.write(live, "n1")  # a certificate that does not match the key any more
    Path(key_path).write_bytes(rotated.key_pem)
    mismatch = run([*ctl, "reload"])
    assert "tls: private key does not match public key" in mismatch.stderr
    assert _served_certificate(port, pki) == rotated.der
    shutil.rmtree(live, ignore_errors=True)


def test_sighup_rereads_the_certificate_files(mesh, pki):
    live = pki.directory / "hup"
    live.mkdir(exist_ok=True)
    cert_path, key_path = pki.certs["n1"].write(live, "n1")
    port = free_port()
    n1 = mesh.node(
        "n1",
        {"tls-server": {"name": "srv", "cert": cert_path, "key": key_path}},
        listener(port, tls="srv"),
    )
    assert _served_certificate(port, pki) == pki.certs["n1"].der
    rotated = make_cert(pki.ca, "n1", ("n1",))
    rotated.write(live, "n1")
    assert n1.process is not None
    n1.process.send_signal(signal.SIGHUP)
    wait_until(lambda: _served_certificate_when_listening(port, pki) == rotated.der)
    assert_alive(n1)
    shutil.rmtree(live, ignore_errors=True)


# ---------------------------------------------------------------------- upstream material

UPSTREAM = Path(__file__).resolve().parents[1] / "data" / "tls" / "upstream"


def test_mesh_with_certificates_made_by_upstream_receptor(mesh):
    """tests/data/tls/upstream: a CA and node1/node2 certificates made by the Go daemon (valid
    until 2027-11-28; after that the peer must be refused for the expiry instead)."""
    ca = str(UPSTREAM / "ca.crt")
    node1 = mesh.node(
        "node1",
        {"tls-server": {"name": "srv", "cert": str(UPSTREAM / "node1.crt"),
                        "key": str(UPSTREAM / "node1.key"), "requireclientcert": True,
                        "clientcas": ca}},
        listener(tls="srv"),
    )  # fmt: skip
    node2 = mesh.node(
        "node2",
        {"tls-client": {"name": "cli", "cert": str(UPSTREAM / "node2.crt"),
                        "key": str(UPSTREAM / "node2.key"), "rootcas": ca}},
        {"tcp-peer": {"address": f"localhost:{node1.port()}", "tls": "cli"}},
    )  # fmt: skip
    expiry = x509.load_pem_x509_certificate((UPSTREAM / "node1.crt").read_bytes())
    if datetime.now(UTC) < expiry.not_valid_after_utc:
        wait_until(lambda: "node1" in node2.routes())
        assert node2.command("ping node1")["Success"] is True
    else:
        node2.wait_for_log("certificate has expired")


def test_tls_control_client_may_half_close_without_close_notify(mesh, pki):
    """receptorctl shuts the raw socket down for writing (no close_notify); the server
    takes that as the end of the input and still answers."""
    node, tls_port, _ = tls_control(mesh, pki)
    context = ssl.create_default_context(cafile=pki.ca_file)
    context.load_cert_chain(*pki.files("n2"))
    with (
        socket.create_connection(("127.0.0.1", tls_port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(b"status\n")
        socket.socket.shutdown(tls, socket.SHUT_WR)
        reply = b""
        while True:
            try:
                chunk = tls.recv(65536)
            except ssl.SSLEOFError:
                break
            if not chunk:
                break
            reply += chunk
    greeting, _, rest = reply.decode().partition("\n")
    assert greeting == "Receptor Control, node n1"
    assert '"NodeID":"n1"' in rest.replace(" ", "")
    assert_alive(node)


def _receptor(*args: str, cwd: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "receptor", *args], cwd=cwd, capture_output=True, timeout=120
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)


def test_mesh_with_certificates_made_by_our_cert_commands(mesh, tmp_path):
    """The operator's path: cert-init, cert-makereq and cert-signreq, then a mutual-TLS mesh
    whose certificates carry the node IDs, checked by openssl too."""
    _receptor("--cert-init", "commonname=Test CA", "bits=2048", "outcert=ca.crt",
              "outkey=ca.key", cwd=tmp_path)  # fmt: skip
    for node in ("n1", "n2"):
        _receptor("--cert-makereq", "bits=2048", f"commonname={node}", f"nodeid={node}",
                  "dnsname=localhost", "ipaddress=127.0.0.1", f"outreq={node}.csr",
                  f"outkey={node}.key", cwd=tmp_path)  # fmt: skip
        _receptor("--cert-signreq", f"req={node}.csr", "cacert=ca.crt", "cakey=ca.key",
                  f"outcert={node}.crt", "verify=yes", cwd=tmp_path)  # fmt: skip
        verified = subprocess.run(
            ["openssl", "verify", "-CAfile", "ca.crt", f"{node}.crt"],
            cwd=tmp_path, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert verified.stdout.strip() == f"{node}.crt: OK", verified
    ca = str(tmp_path / "ca.crt")
    n1 = mesh.node(
        "n1",
        {"tls-server": {"name": "srv", "cert": str(tmp_path / "n1.crt"),
                        "key": str(tmp_path / "n1.key"), "requireclientcert": True,
                        "clientcas": ca}},
        listener(tls="srv"),
    )  # fmt: skip
    n2 = mesh.node(
        "n2",
        {"tls-client": {"name": "cli", "cert": str(tmp_path / "n2.crt"),
                        "key": str(tmp_path / "n2.key"), "rootcas": ca}},
        peer(n1.port(), tls="cli"),
    )  # fmt: skip
    wait_until(lambda: "n1" in n2.routes() and "n2" in n1.routes())
    assert n2.command("ping n1")["Success"] is True


# ---------------------------------------------------------------------- mesh services with mTLS


def mtls_control_mesh(mesh: Mesh, pki: PKI) -> tuple[ReceptorNode, ReceptorNode]:
    """n1: AWX's control service (a tls-server with requireclientcert and clientcas) and a
    work type; n2: peers with n1 and holds a tls-client with a good certificate and two
    without (a tls-client cannot be configured without a certificate: that case is in
    tests/unit/mesh/test_streams.py)."""
    other_cert, other_key = pki.files("n2-other-ca")
    noid_cert, noid_key = pki.files("n2-no-node-id")
    n1 = mesh.node(
        "n1",
        tls_server(pki, "n1", requireclientcert=True, clientcas=pki.ca_file),
        tls_server(pki, "n1", name="tls_server", requireclientcert=True, clientcas=pki.ca_file,
                   mintls13=False),
        {"control-service": {"service": "control", "filename": "n1.sock",
                             "permissions": 0o660, "tls": "tls_server"}},
        {"work-command": {"worktype": "cat", "command": "cat"}},
        listener(tls="srv"),
        control=False,
    )  # fmt: skip
    n2 = mesh.node(
        "n2",
        tls_client(pki, "n2", rootcas=pki.ca_file),
        {"tls-client": {"name": "noid", "cert": noid_cert, "key": noid_key,
                        "rootcas": pki.ca_file, "skipreceptornamescheck": True}},
        {"tls-client": {"name": "stranger", "cert": other_cert, "key": other_key,
                        "rootcas": pki.ca_file}},
        peer(n1.port(), tls="cli"),
    )  # fmt: skip
    wait_until(lambda: "n1" in n2.routes() and "n2" in n1.routes())
    wait_until(lambda: any(ad["Service"] == "control" and ad["NodeID"] == "n1"
                           for ad in n2.status()["Advertisements"] or []))  # fmt: skip
    return n1, n2


def test_mesh_control_service_with_client_certificates(mesh, pki):
    n1, n2 = mtls_control_mesh(mesh, pki)
    # A nested control session through the mesh, with n2's certificate.
    reply = n2.session(b"connect n1 control cli\nstatus\n").decode()
    assert "Receptor Control, node n1" in reply
    assert '"NodeID":"n1"' in reply.replace(" ", "")
    # Remote work submitted with the tls-client, results streamed back.
    done = run(
        [*receptorctl_command(), "--socket", n2.socket_path, "work", "submit", "cat",
         "--node", "n1", "--tls-client", "cli", "--payload-literal", "mutual", "-f"]
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "mutual\n"  # --payload-literal ends the payload with a newline
    assert_alive(n1)


@pytest.mark.parametrize(
    ("tlsclient", "reason"),
    [
        (
            "noid",
            "CRYPTO_ERROR 0x12a (remote): x509: certificate is not valid for any Receptor "
            "node IDs, but wanted to match n2",
        ),
        (
            "stranger",
            "CRYPTO_ERROR 0x130 (remote): tls: failed to verify certificate: "
            "x509: certificate signed by unknown authority",
        ),
    ],
)
def test_mesh_control_service_refuses_bad_client_certificates(mesh, pki, tlsclient, reason):
    n1, n2 = mtls_control_mesh(mesh, pki)
    reply = n2.session(f"connect n1 control {tlsclient}\n".encode()).decode()
    assert reply.endswith(f"ERROR: {reason}\n"), reply
    n1.wait_for_log(
        r"Refused a connection from n2:\S+ to mesh service control \(tls-server tls_server\): "
        + re.escape(reason.split(": ", 1)[1])
    )
    # Both nodes keep serving: a good client still gets in.
    assert "Receptor Control, node n1" in n2.session(b"connect n1 control cli\n").decode()
    assert_alive(n1)
    assert_alive(n2)


def test_a_mesh_service_tls_key_qh3_cannot_use_is_a_plain_start_up_error(mesh, tmp_path):
    """An Ed448 key serves TCP (OpenSSL) but not QUIC (qh3): the start-up error names the
    TLS config, without upstream's unrelated "error opening Unix socket" prefix."""
    from datetime import timedelta

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed448
    from cryptography.x509.oid import NameOID

    from ..unit.tls.certs import node_id_san

    key = ed448.Ed448PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "n1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([node_id_san("n1")]), critical=False)
        .sign(key, None)
    )
    cert_file, key_file = tmp_path / "ed448.crt", tmp_path / "ed448.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    node = mesh.node(
        "n1",
        {"tls-server": {"name": "edwards", "cert": str(cert_file), "key": str(key_file)}},
        {"control-service": {"service": "ctl", "tls": "edwards"}},
        start=False,
    )
    node.start(wait=False)
    assert node.process is not None
    assert node.process.wait(30) == 1
    node.wait_for_log(
        r"^Error: TLS config edwards: its certificate or key cannot be used for mesh streams: "
    )
    assert "error opening Unix socket" not in node.log
