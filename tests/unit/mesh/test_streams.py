"""Mesh streams (wire.md §14) between in-process nodes joined over real loopback TCP."""

import hashlib
import os
import socket
import threading
import time

import pytest

from receptor.netceptor import Conn, Listener, ServiceUnknownError, _quic, _streams

from .streamnet import chain, wait_for

pytestmark = pytest.mark.timeout(120)


def _drain(conn: Conn) -> bytes:
    chunks = []
    while data := conn.recv(1 << 20):
        chunks.append(data)
    return b"".join(chunks)


def _hash_server(listener: Listener, count: int = 1) -> list[threading.Thread]:
    """Accept ``count`` streams; each replies with the SHA-256 of what it read, then its
    own random payload of the same size."""

    def serve(conn: Conn) -> None:
        with conn:
            data = _drain(conn)
            conn.sendall(hashlib.sha256(data).digest() + data[::-1])

    def loop() -> None:
        for _ in range(count):
            conn = listener.accept(timeout=30)
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return [thread]


def _exchange(conn: Conn, size: int) -> None:
    payload = os.urandom(size)
    conn.sendall(payload)
    conn.shutdown(socket.SHUT_WR)
    reply = _drain(conn)
    assert reply[:32] == hashlib.sha256(payload).digest()
    assert hashlib.sha256(reply[32:]).digest() == hashlib.sha256(payload[::-1]).digest()


@pytest.mark.parametrize("hops", [1, 3])
def test_payload_both_ways(make_node, hops):
    nodes = chain(make_node, [f"s{i}" for i in range(hops + 1)])
    first, last = nodes[0], nodes[-1]
    with last.listen("hash") as listener:
        _hash_server(listener, count=2)
        # Between our nodes every stream uses large datagrams, the first one included.
        for _ in range(2):
            with first.dial(last.node_id, "hash", timeout=10) as conn:
                assert conn.large
                assert (conn.remote_node, conn.remote_service) == (last.node_id, "hash")
                _exchange(conn, 3 * 1024 * 1024 + 17)


def test_many_concurrent_streams_through_one_node(make_node):
    a, _, c = chain(make_node, ["m0", "m1", "m2"])
    count = 50
    errors: list[BaseException] = []
    services, fds = a.services(), _fds()
    with c.listen("hash") as listener:
        _hash_server(listener, count=count)

        def client() -> None:
            try:
                with a.dial("m2", "hash", timeout=30) as conn:
                    _exchange(conn, 100_000)
            except BaseException as err:  # reported below
                errors.append(err)

        threads = [threading.Thread(target=client) for _ in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)
        assert not errors
        assert not any(thread.is_alive() for thread in threads)
        # Every connection ends once both sides closed: no dialer service, no state left.
        wait_for(lambda: not listener._endpoint.conns and a.services() == services)
    assert _fds() <= fds


def test_half_close_client_first(make_node):
    a, b = chain(make_node, ["h0", "h1"])
    with b.listen("half") as listener:
        conn = a.dial("h1", "half", timeout=10)
        server = listener.accept(timeout=10)
        conn.sendall(b"question")
        conn.shutdown(socket.SHUT_WR)
        assert _drain(server) == b"question"
        # The server can still talk after the client's EOF.
        server.sendall(b"answer")
        server.close()
        assert _drain(conn) == b"answer"
        with pytest.raises(BrokenPipeError):
            conn.sendall(b"more")
        conn.close()


def test_half_close_server_first(make_node):
    a, b = chain(make_node, ["k0", "k1"])
    with b.listen("half") as listener:
        conn = a.dial("k1", "half", timeout=10)
        conn.sendall(b"hello")
        server = listener.accept(timeout=10)
        server.shutdown(socket.SHUT_WR)
        assert _drain(conn) == b""
        conn.sendall(b" world")
        conn.close()
        assert _drain(server) == b"hello world"
        server.close()


@pytest.mark.parametrize("small", [False, True])
def test_writer_that_shuts_down_both_ways_still_delivers_everything(make_node, monkeypatch, small):
    """A results stream: the server writes, then shutdown(SHUT_RDWR) and close (it sends
    STOP_SENDING; the client's answering RESET_STREAM must not cut the server's data off,
    and the client keeps reading to EOF)."""
    if small:
        _pretend_peers_are_upstream(monkeypatch)
    a, b = chain(make_node, ["w0", "w1"])
    payload = os.urandom(300_000)
    with b.listen("res") as listener:
        for _ in range(5):
            conn = a.dial("w1", "res", timeout=10)
            conn.sendall(b"results\n")
            server = listener.accept(timeout=10)
            assert server.recv(100) == b"results\n"
            server.sendall(payload)
            server.shutdown(socket.SHUT_RDWR)
            server.close()
            conn.settimeout(30)
            assert _drain(conn) == payload
            with pytest.raises(BrokenPipeError):
                for _ in range(100):  # the peer's STOP_SENDING ends our writing only
                    conn.sendall(b"more")
                    time.sleep(0.01)
            conn.close()


def test_makefile_and_timeout(make_node):
    a, b = chain(make_node, ["f0", "f1"])
    with b.listen("lines") as listener:
        conn = a.dial("f1", "lines", timeout=10)
        server = listener.accept(timeout=10)
        writer = conn.makefile("wb")
        writer.write(b"one\ntwo\n")
        writer.flush()
        reader = server.makefile("rb")
        assert reader.readline() == b"one\n"
        assert reader.readline() == b"two\n"
        server.settimeout(0.2)
        with pytest.raises(TimeoutError):
            server.recv(10)
        conn.close()
        server.close()


def test_dial_unknown_remote_service_fails_promptly(make_node):
    a, _ = chain(make_node, ["u0", "u1"])
    start = time.monotonic()
    with pytest.raises(ServiceUnknownError):
        a.dial("u1", "nothere", timeout=10)
    assert time.monotonic() - start < _quic.HANDSHAKE_TIMEOUT
    with pytest.raises(ServiceUnknownError):
        a.dial("u0", "nothere", timeout=10)


def test_dial_without_route_times_out(make_node):
    (a,) = chain(make_node, ["r0"])
    with pytest.raises(TimeoutError):
        a.dial("nobody", "svc", timeout=0.5)


def test_listen_on_local_node_and_localhost(make_node):
    (a,) = chain(make_node, ["l0"])
    with a.listen("") as listener:
        assert len(listener.service) == 8
        _hash_server(listener)
        with a.dial("localhost", listener.service, timeout=10) as conn:
            _exchange(conn, 200_000)


@pytest.mark.parametrize("dies", ["peer", "route"])
def test_peer_or_route_that_dies_ends_the_stream_with_an_error(make_node, dies):
    a, b, c = chain(make_node, [f"{dies}0", f"{dies}1", f"{dies}2"])
    listener = c.listen("dies")
    conn = a.dial(c.node_id, "dies", timeout=10)
    conn.sendall(b"x")
    listener.accept(timeout=10)
    (c if dies == "peer" else b).shutdown()
    start = time.monotonic()
    with pytest.raises(ConnectionError):
        while True:
            conn.sendall(b"y" * 1000)
            conn.settimeout(0.5)
            try:
                conn.recv(10)
            except TimeoutError:
                pass
    assert time.monotonic() - start < _quic.IDLE_TIMEOUT + 10
    conn.close()


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_bad_input_is_dropped_and_the_node_keeps_serving(make_node, monkeypatch):
    monkeypatch.setattr(_quic, "HANDSHAKE_TIMEOUT", 1.0)
    a, b = chain(make_node, ["g0", "g1"])
    with b.listen("svc") as listener:
        threads, fds = threading.active_count(), _fds()
        raw = a.listen_packet("")
        try:
            initial = bytes([0xC0]) + b"\x00\x00\x00\x01" + bytes([8]) + os.urandom(8)
            for payload in (
                b"",
                b"\x00",
                os.urandom(40),
                os.urandom(1300),  # short-header garbage
                os.urandom(60000),  # oversized
                initial + b"\x00" * 1300,  # an Initial that cannot be decrypted
                initial[:10],  # truncated header
                bytes([0xC0]) + b"\x00\x00\x00\x02" + os.urandom(1300),  # unknown version
            ):
                raw.write_to(payload, "g1", "svc")
            # A handshake that never completes is given up after HANDSHAKE_TIMEOUT.
            wait_for(lambda: listener.pending_count == 0 and not listener._endpoint.conns)
        finally:
            raw.close()
        _hash_server(listener)
        with a.dial("g1", "svc", timeout=10) as conn:
            _exchange(conn, 100_000)
        wait_for(lambda: not listener._endpoint.conns)
        assert threading.active_count() <= threads + 1
        assert _fds() <= fds


def test_client_that_never_opens_its_stream_gets_accept_timeout(make_node, monkeypatch):
    monkeypatch.setattr(_streams, "ACCEPT_TIMEOUT", 1.0)
    monkeypatch.setattr(_streams.Conn, "_start_client", _start_without_stream)
    a, b = chain(make_node, ["q0", "q1"])
    with b.listen("svc") as listener:
        conn = a.dial("q1", "svc", timeout=10)
        with pytest.raises(ConnectionError, match="Accept Timeout"):
            conn.settimeout(10)
            conn.recv(10)
        with pytest.raises(TimeoutError):
            listener.accept(timeout=0.1)
        wait_for(lambda: listener.pending_count == 0 and not listener._endpoint.conns)


def _start_without_stream(self: Conn) -> None:
    def start() -> None:
        self._quic.connect(_quic.FAKE_ADDR, time.monotonic())

    self._post_op(start)


def test_first_byte_must_be_zero(make_node, monkeypatch):
    monkeypatch.setattr(_streams.Conn, "_start_client", _start_with_bad_byte)
    a, b = chain(make_node, ["z0", "z1"])
    with b.listen("svc") as listener:
        conn = a.dial("z1", "svc", timeout=10)
        with pytest.raises(ConnectionError, match="Read Data Error"):
            conn.settimeout(10)
            conn.recv(10)
        with pytest.raises(TimeoutError):
            listener.accept(timeout=0.1)


def _start_with_bad_byte(self: Conn) -> None:
    def start() -> None:
        self._quic.connect(_quic.FAKE_ADDR, time.monotonic())
        self._sid = self._quic.get_next_available_stream_id()
        self._quic.send_stream_data(self._sid, b"\x07hello")

    self._post_op(start)


def test_closed_listener_refuses_and_accept_raises(make_node):
    a, b = chain(make_node, ["c0", "c1"])
    listener = b.listen("gone")
    listener.close()
    with pytest.raises(OSError):
        listener.accept(timeout=1)
    with pytest.raises(ServiceUnknownError):
        a.dial("c1", "gone", timeout=10)


def test_linger_timeout_is_the_quic_idle_timeout():
    from receptor.netceptor import _streams

    assert _streams.LINGER_TIMEOUT == _quic.IDLE_TIMEOUT


def test_insecure_certificate_check():
    cert_pem, _ = _quic.self_signed_pem()
    from cryptography import x509

    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(
        __import__(
            "cryptography.hazmat.primitives.serialization"
        ).hazmat.primitives.serialization.Encoding.DER
    )
    assert _quic.chain_has_insecure_cn([der])
    assert not _quic.chain_has_insecure_cn([b"garbage"])
    assert not _quic.chain_has_insecure_cn([])


def test_transport_parameter_walker_rejects_truncation():
    with pytest.raises(ValueError):
        _quic.transport_parameter_ids(b"\x03\x05\x01")
    assert _quic.transport_parameter_ids(b"") == {}


# --------------------------------------------------------------------------- TLS services

CERTS = os.path.join(os.path.dirname(__file__), "..", "..", "data", "certs")


def _server_tls(node: str, **extra):
    from receptor.netceptor.tls import load_server

    values = {
        "name": "srv",
        "cert": os.path.join(CERTS, f"{node}.crt"),
        "key": os.path.join(CERTS, f"{node}.key"),
        **extra,
    }
    return load_server(values, node)


def _client_tls(node: str, **extra):
    from receptor.netceptor.tls import load_client

    values = {
        "name": "cli",
        "cert": os.path.join(CERTS, f"{node}.crt"),
        "key": os.path.join(CERTS, f"{node}.key"),
        "rootcas": os.path.join(CERTS, "ca.crt"),
        **extra,
    }
    return load_client(values, node)


def test_tls_service_with_node_id_check(make_node):
    a, b = chain(make_node, ["node2", "node1"])
    with b.listen("secure", tls=_server_tls("node1")) as listener:
        _hash_server(listener)
        with a.dial("node1", "secure", tls=_client_tls("node2"), timeout=10) as conn:
            _exchange(conn, 100_000)


def test_tls_service_refuses_wrong_node_id_and_insecure_dialer(make_node):
    from receptor.netceptor import HandshakeError

    a, b = chain(make_node, ["node2", "node1"])
    # node1's service presents node2's certificate: the dialer wants node1.
    wrong = _server_tls("node2", skipreceptornamescheck=True)
    with b.listen("secure", tls=wrong):
        with pytest.raises(HandshakeError, match="node ID node2, not node1"):
            a.dial("node1", "secure", tls=_client_tls("node2"), timeout=10)
        with pytest.raises(HandshakeError, match="insecure connection to secure service"):
            a.dial("node1", "secure", timeout=10)
    with b.listen("plain"), pytest.raises(HandshakeError, match="signed by unknown authority"):
        a.dial("node1", "plain", tls=_client_tls("node2"), timeout=10)


STRICT = {"requireclientcert": True, "clientcas": os.path.join(CERTS, "ca.crt")}


def _issued_client_tls(tmp_path, node: str, issued, **extra):
    """A tls-client for ``node`` with a certificate made by the test (tests/unit/tls/certs)."""
    cert, key = issued.write(tmp_path, f"client-{len(list(tmp_path.iterdir()))}")
    return _client_tls(node, cert=cert, key=key, skipreceptornamescheck=True, **extra)


def _refusal(make_node, server_extra: dict, client, caplog) -> str:
    """Dial node1's service as node2 with ``client``: the dial fails; node1 logged why and
    still serves a good client. Returns the dial error."""
    from receptor.netceptor import HandshakeError

    a, b = chain(make_node, ["node2", "node1"])
    with b.listen("strict", tls=_server_tls("node1", **server_extra)) as listener:
        _hash_server(listener, count=1)
        with pytest.raises(HandshakeError) as refused:
            a.dial("node1", "strict", tls=client, timeout=10)
        assert "Refused a connection from node2:" in caplog.text
        assert "to mesh service strict (tls-server srv)" in caplog.text
        # The service keeps serving others.
        with a.dial("node1", "strict", tls=_client_tls("node2"), timeout=10) as conn:
            _exchange(conn, 10_000)
    return str(refused.value)


def test_tls_service_requiring_client_certificates_accepts_a_good_one(make_node):
    a, b = chain(make_node, ["node2", "node1"])
    with b.listen("strict", tls=_server_tls("node1", **STRICT)) as listener:
        _hash_server(listener, count=2)
        for _ in range(2):
            with a.dial("node1", "strict", tls=_client_tls("node2"), timeout=10) as conn:
                _exchange(conn, 200_000)


def test_mtls_refuses_a_client_without_certificate(make_node, caplog):
    from receptor.netceptor.tls import load_client

    bare = load_client({"name": "bare", "rootcas": os.path.join(CERTS, "ca.crt")}, "node2")
    error = _refusal(make_node, STRICT, bare, caplog)
    assert error == "CRYPTO_ERROR 0x174 (remote): tls: client didn't provide a certificate"


def test_mtls_with_clientcas_only_still_wants_a_certificate(make_node, caplog):
    from receptor.netceptor.tls import load_client

    bare = load_client({"name": "bare", "rootcas": os.path.join(CERTS, "ca.crt")}, "node2")
    error = _refusal(make_node, {"clientcas": STRICT["clientcas"]}, bare, caplog)
    assert error == "CRYPTO_ERROR 0x12a (remote): RVF failed: peer certificate missing"


def test_mtls_refuses_a_certificate_from_another_ca(make_node, caplog, tmp_path):
    from tests.unit.tls.certs import make_ca, make_cert

    other = make_cert(make_ca("Another CA"), "node2", node_ids=("node2",))
    error = _refusal(make_node, STRICT, _issued_client_tls(tmp_path, "node2", other), caplog)
    assert error == (
        "CRYPTO_ERROR 0x130 (remote): tls: failed to verify certificate: "
        "x509: certificate signed by unknown authority"
    )


def test_mtls_refuses_an_expired_certificate(make_node, caplog, tmp_path):
    from cryptography.hazmat.primitives import serialization

    from tests.unit.tls.certs import Issued, make_cert

    with (
        open(os.path.join(CERTS, "ca.crt"), "rb") as f,
        open(os.path.join(CERTS, "ca.key"), "rb") as k,
    ):
        from cryptography import x509

        ca = Issued(
            x509.load_pem_x509_certificate(f.read()),
            serialization.load_pem_private_key(k.read(), None),  # type: ignore[arg-type]
        )
    expired = make_cert(ca, "node2", node_ids=("node2",), expired=True)
    error = _refusal(make_node, STRICT, _issued_client_tls(tmp_path, "node2", expired), caplog)
    assert error.startswith(
        "CRYPTO_ERROR 0x12d (remote): tls: failed to verify certificate: "
        "x509: certificate has expired or is not yet valid: current time "
    )


def test_mtls_refuses_a_certificate_without_the_dialers_node_id(make_node, caplog):
    # node1's certificate (same CA) presented by node2.
    client = _client_tls(
        "node2",
        cert=os.path.join(CERTS, "node1.crt"),
        key=os.path.join(CERTS, "node1.key"),
        skipreceptornamescheck=True,
    )
    error = _refusal(make_node, STRICT, client, caplog)
    assert error == (
        "CRYPTO_ERROR 0x12a (remote): x509: certificate is valid for Receptor node ID node1, "
        "not node2"
    )


def test_mtls_clientcas_only_does_not_check_node_ids(make_node):
    """Upstream checks the dialer's node ID only with ``requireclientcert`` (wire.md §12.6)."""
    a, b = chain(make_node, ["node2", "node1"])
    client = _client_tls(
        "node2",
        cert=os.path.join(CERTS, "node1.crt"),
        key=os.path.join(CERTS, "node1.key"),
        skipreceptornamescheck=True,
    )
    with b.listen("cas", tls=_server_tls("node1", clientcas=STRICT["clientcas"])) as listener:
        _hash_server(listener)
        with a.dial("node1", "cas", tls=client, timeout=10) as conn:
            _exchange(conn, 10_000)


def test_mtls_pinned_client_fingerprints(make_node, caplog):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    with open(os.path.join(CERTS, "node2.crt"), "rb") as f:
        pin = x509.load_pem_x509_certificate(f.read()).fingerprint(hashes.SHA256()).hex()
    a, b = chain(make_node, ["node2", "node1"])
    with b.listen("pinned", tls=_server_tls("node1", pinnedclientcert=[pin], **STRICT)) as listener:
        _hash_server(listener)
        with a.dial("node1", "pinned", tls=_client_tls("node2"), timeout=10) as conn:
            _exchange(conn, 10_000)


def test_mtls_refuses_a_pinned_fingerprint_mismatch(make_node, caplog):
    """Pins apply with ``requireclientcert`` too (upstream skips them there: README)."""
    from receptor.netceptor import HandshakeError

    a, b = chain(make_node, ["node2", "node1"])
    server = _server_tls("node1", pinnedclientcert=["ab" * 32], **STRICT)
    with b.listen("pinned", tls=server), pytest.raises(HandshakeError) as refused:
        a.dial("node1", "pinned", tls=_client_tls("node2"), timeout=10)
    assert str(refused.value) == (
        "CRYPTO_ERROR 0x12a (remote): RVF failed: presented certificate does not match any "
        "pinned fingerprint"
    )
    assert "Refused a connection from node2:" in caplog.text


def test_stalled_reader_holds_datagrams_and_survives_the_idle_timeout(make_node, monkeypatch):
    monkeypatch.setattr(_quic, "IDLE_TIMEOUT", 3.0)
    monkeypatch.setattr(_streams, "HOLD_TRICKLE", 0.5)
    monkeypatch.setattr(_streams, "RECV_HIGH", 256 * 1024)
    a, b = chain(make_node, ["w0", "w1"])
    with b.listen("slow") as listener:
        conn = a.dial("w1", "slow", timeout=10)
        payload = os.urandom(4 * 1024 * 1024)
        writer = threading.Thread(target=lambda: (conn.sendall(payload), conn.shutdown()))
        writer.start()
        server = listener.accept(timeout=10)
        # Not reading for twice the idle timeout: the receiver holds datagrams (bounded)
        # and lets one through now and then, so neither side times out.
        time.sleep(6.0)
        assert server._recv_bytes <= 256 * 1024 + 20 * 16000
        assert _drain(server) == payload
        writer.join(10)
        server.close()
        conn.close()


def test_node_shutdown_ends_streams_without_hanging(make_node):
    a, b = chain(make_node, ["x0", "x1"])
    listener = b.listen("svc")
    conn = a.dial("x1", "svc", timeout=10)
    conn.sendall(b"hi")
    server = listener.accept(timeout=10)
    threads = threading.active_count()
    b.shutdown()
    server.settimeout(10)
    with pytest.raises(ConnectionAbortedError):
        while server.recv(10):
            pass
    with pytest.raises(OSError):
        listener.accept(timeout=1)
    assert threading.active_count() <= threads
    conn.close()


def _record_sizes(node, monkeypatch) -> list[int]:
    """Sizes of the stream datagrams ``node`` originates (wraps its send_message and
    send_messages, which the stream layer uses for several datagrams at once)."""
    sizes: list[int] = []
    original = node.send_message
    original_many = node.send_messages

    def send_message(from_service, to_node, to_service, payload, *args, **kwargs):
        if from_service not in ("ping", "unreach"):
            sizes.append(len(payload))
        return original(from_service, to_node, to_service, payload, *args, **kwargs)

    def send_messages(from_service, to_node, to_service, payloads, *args, **kwargs):
        if len(payloads) > 1:  # a single one goes through send_message
            sizes.extend(len(payload) for payload in payloads)
        return original_many(from_service, to_node, to_service, payloads, *args, **kwargs)

    monkeypatch.setattr(node, "send_message", send_message)
    monkeypatch.setattr(node, "send_messages", send_messages)
    return sizes


def _pretend_peers_are_upstream(monkeypatch) -> None:
    """Both sides see no sign of the other being one of ours (as with quic-go peers)."""
    monkeypatch.setattr(_quic, "initial_is_marked", lambda datagram: False)
    monkeypatch.setattr(_quic.MeshQuicConnection, "peer_is_receptor_py", lambda self: False)


def test_datagrams_toward_possible_upstream_peers_stay_at_1200_bytes(make_node, monkeypatch):
    a, b = chain(make_node, ["p0", "p1"])
    _pretend_peers_are_upstream(monkeypatch)
    client_sizes = _record_sizes(a, monkeypatch)
    server_sizes = _record_sizes(b, monkeypatch)
    with b.listen("svc") as listener:
        _hash_server(listener)
        with a.dial("p1", "svc", timeout=10) as conn:
            assert not conn.large
            _exchange(conn, 500_000)
    assert max(client_sizes) <= 1200
    assert max(server_sizes) <= 1200
    assert len(server_sizes) > 10


def test_datagrams_between_our_nodes_grow_large(make_node, monkeypatch):
    a, b = chain(make_node, ["o0", "o1"])
    client_sizes = _record_sizes(a, monkeypatch)
    server_sizes = _record_sizes(b, monkeypatch)
    services = a.services()
    with b.listen("svc") as listener:
        _hash_server(listener, count=2)
        # First dial: a probe connection with 1200-byte datagrams learns that the peer is
        # one of ours and is closed before its stream opens; the stream then runs large.
        with a.dial("o1", "svc", timeout=10) as conn:
            assert conn.large
            _exchange(conn, 500_000)
        assert max(client_sizes) > 1200
        assert max(server_sizes) > 1200
        assert max(client_sizes + server_sizes) <= _quic.LARGE_DATAGRAM
        # The probe's server side ends once it has processed the close (at the latest
        # after QUIC's draining period).
        wait_for(lambda: listener.pending_count == 0)
        with pytest.raises(TimeoutError):
            listener.accept(timeout=0.1)
        # The second dial goes large at once: no probe.
        wait_for(lambda: not listener._endpoint.conns and a.services() == services)
        client_sizes.clear()
        with a.dial("o1", "svc", timeout=10) as conn:
            _exchange(conn, 100_000)
        assert client_sizes[0] > 1200


def test_listener_side_learns_its_dialers_are_ours(make_node, monkeypatch):
    a, b = chain(make_node, ["e0", "e1"])
    sizes = _record_sizes(b, monkeypatch)
    with b.listen("svc") as listener, a.listen("back") as back:
        _hash_server(listener)
        _hash_server(back)
        with a.dial("e1", "svc", timeout=10) as conn:
            _exchange(conn, 10_000)
        # e1 saw e0's transport parameter while accepting: its own first dial is large
        # from its first datagram on (no probe).
        wait_for(lambda: not listener._endpoint.conns)
        sizes.clear()
        with b.dial("e0", "back", timeout=10) as conn:
            assert conn.large
            _exchange(conn, 10_000)
        assert sizes[0] > 1200


# --------------------------------------------------------------------------- upstream capture

WIRE = os.path.join(os.path.dirname(__file__), "..", "..", "data", "wire")


def _golden_quic_go_initial() -> bytes:
    """The first QUIC datagram upstream's dialer (quic-go) sent to the ``echo`` service in
    the captured TCP session (tests/data/wire)."""
    import json

    with open(os.path.join(WIRE, "tcp-session-frames.jsonl")) as handle:
        for line in handle:
            frame = json.loads(line)
            message = bytes.fromhex(frame["hex"])
            if frame["dir"] == "dialer->listener" and message[0] == 0 and message[28:32] == b"echo":
                return message[36:]
    raise AssertionError("no QUIC datagram in the capture")


def test_golden_quic_go_initial_is_recognised_as_upstream():
    initial = _golden_quic_go_initial()
    assert len(initial) == 1200
    dcid = _quic.initial_dcid(initial)
    assert dcid is not None and len(dcid) == 10
    assert not _quic.initial_is_marked(initial)


def test_upstreams_client_hello_accepts_our_ed25519_service_certificate():
    """Our services without TLS sign handshakes with Ed25519 (upstream: RSA-2048). quic-go's
    real ClientHello offers ed25519, so our server answers it with its certificate (an
    unsupported key would end the handshake with an alert instead)."""
    import time

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from qh3.quic.connection import QuicConnection
    from qh3.quic.events import ConnectionTerminated, ProtocolNegotiated

    cert_pem, key_pem = _quic.self_signed_pem()
    assert isinstance(serialization.load_pem_private_key(key_pem, None), Ed25519PrivateKey)
    initial = _golden_quic_go_initial()
    server = QuicConnection(
        configuration=_quic.server_configuration(cert_pem, key_pem, large=False),
        original_destination_connection_id=_quic.initial_dcid(initial),
    )
    server.receive_datagram(initial, ("127.0.0.1", 4433), now=time.monotonic())
    events = []
    while (event := server.next_event()) is not None:
        events.append(event)
    assert not any(isinstance(event, ConnectionTerminated) for event in events)
    assert any(isinstance(event, ProtocolNegotiated) for event in events)
    answer = server.datagrams_to_send(now=time.monotonic())
    # ServerHello, then the Handshake flight carrying the certificate and its signature.
    assert len(answer) >= 2 and all(len(datagram) <= 1200 for datagram, _ in answer)


def test_listener_answers_upstreams_client_hello_with_small_datagrams(make_node):
    """quic-go's real ClientHello (Initial keys derive from its public connection ID, so our
    listener can read it): the answer is a QUIC v1 Initial to quic-go's connection ID, in
    datagrams of at most 1200 bytes."""
    initial = _golden_quic_go_initial()
    beta, alpha = chain(make_node, ["gbeta", "galpha"])
    with alpha.listen("echo"), beta.listen_packet("") as raw:
        raw.write_to(initial, "galpha", "echo")
        answers = []
        while True:
            try:
                payload, node, service = raw.read_from(timeout=2)
            except TimeoutError:
                break
            assert (node, service) == ("galpha", "echo")
            answers.append(payload)
    assert answers
    assert max(len(a) for a in answers) <= 1200
    first = answers[0]
    assert first[0] & 0xF0 == 0xC0 and first[1:5] == b"\x00\x00\x00\x01"  # long header Initial v1
    scid_len = initial[6 + initial[5]]
    quic_go_scid = initial[7 + initial[5] : 7 + initial[5] + scid_len]
    assert first[6 : 6 + first[5]] == quic_go_scid


def test_dialers_with_a_tls_client_offer_nist_key_shares():
    """Upstream's tls-servers accept only P-521/384/256 (wire.md §12.1) and qh3 cannot read
    quic-go's HelloRetryRequest: a dialer with a tls-client offers the EC shares at once
    (tests/interop checks it against the Go daemon)."""
    assert _streams._client_config("node2", False, _client_tls("node2")).offer_ec_key_shares
    assert not _streams._client_config("node2", False, None).offer_ec_key_shares
