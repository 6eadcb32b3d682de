"""Client certificates on QUIC mesh services (``receptor/netceptor/_quic_tls.py``): two qh3
connections handshake in memory, the server asking for a client certificate.

The client is an unmodified qh3 client (as our dialers are); what quic-go's client does is
checked live in the interop tests.
"""

from collections.abc import Callable

import pytest
from qh3.quic import events
from qh3.tls import (
    AlertBadCertificate,
    AlertDecodeError,
    AlertDescription,
    AlertIllegalParameter,
    AlertUnexpectedMessage,
    Buffer,
    CertificateRequest,
    Epoch,
    SignatureAlgorithm,
    pull_certificate_request,
)

from receptor.netceptor import _quic
from receptor.netceptor._quic_tls import (
    REQUEST_SIGNATURE_ALGORITHMS,
    ClientAuthContext,
    ClientCertificateError,
    push_certificate_request,
)
from tests.unit.tls.certs import Issued, make_ca, make_cert

NOW = 1000.0


@pytest.fixture(scope="module")
def ca() -> Issued:
    return make_ca()


@pytest.fixture(scope="module")
def server_cert(ca: Issued) -> Issued:
    return make_cert(ca, "server", node_ids=("server",))


class Recorder:
    """A verifier that keeps what it was shown and refuses on request."""

    def __init__(self, refuse: ClientCertificateError | None = None) -> None:
        self.chains: list[list[bytes]] = []
        self.refuse = refuse

    def __call__(self, chain: list[bytes]) -> None:
        self.chains.append(chain)
        if self.refuse is not None:
            raise self.refuse


def start_pair(
    server_cert: Issued,
    client_config,
    verify: Callable[[list[bytes]], None] | None,
) -> tuple[_quic.MeshQuicConnection, _quic.MeshQuicConnection, list[bytes]]:
    """A connecting client and the server its first datagrams create (not yet fed to it)."""
    client = _quic.MeshQuicConnection(configuration=client_config)
    client.connect(_quic.FAKE_ADDR, now=NOW)
    first = client.datagram_payloads(NOW)
    server = _quic.MeshQuicConnection(
        configuration=_quic.server_configuration(server_cert.cert_pem, server_cert.key_pem, False),
        original_destination_connection_id=_quic.initial_dcid(first[0]),
        client_auth=verify,
    )
    return client, server, first


def client_config_with(issued: Issued | None):
    return _quic.client_configuration(
        "client",
        False,
        cert_pem=issued.cert_pem if issued else None,
        key_pem=issued.key_pem if issued else None,
    )


def handshake(
    server_cert: Issued,
    client_cert: Issued | None,
    verify: Callable[[list[bytes]], None],
    client_config: Callable | None = None,
) -> tuple[_quic.MeshQuicConnection, _quic.MeshQuicConnection, list, list]:
    """Run a handshake to its end; the events each side saw."""
    config = client_config_with(client_cert) if client_config is None else client_config()
    client, server, first = start_pair(server_cert, config, verify)
    client_events: list = []
    server_events: list = []
    to_server, to_client = first, []
    for step in range(8):  # a few rounds past the last datagram: qh3 reports closes late
        now = NOW + step * 0.1
        server.receive_datagrams(to_server, now)
        to_client = server.datagram_payloads(now)
        client.receive_datagrams(to_client, now)
        to_server = client.datagram_payloads(now)
        for conn, seen in ((client, client_events), (server, server_events)):
            while (event := conn.next_event()) is not None:
                seen.append(event)
    return client, server, client_events, server_events


def completed(seen: list) -> bool:
    return any(isinstance(e, events.HandshakeCompleted) for e in seen)


def terminated(seen: list) -> events.ConnectionTerminated | None:
    return next((e for e in seen if isinstance(e, events.ConnectionTerminated)), None)


def test_certificate_request_bytes_round_trip_through_qh3s_parser():
    buf = Buffer(capacity=256)
    request = CertificateRequest(
        request_context=b"",
        signature_algorithms=list(REQUEST_SIGNATURE_ALGORITHMS),
        other_extensions=[(0x1234, b"xy")],
    )
    push_certificate_request(buf, request)
    assert buf.data[0] == 13  # HandshakeType.certificate_request
    parsed = pull_certificate_request(Buffer(data=buf.data))
    assert parsed == request


@pytest.mark.parametrize("kind", ["rsa", "ec", "ec384", "ed25519"])
def test_client_certificate_of_each_key_kind_is_asked_for_checked_and_accepted(
    ca, server_cert, kind
):
    client_cert = make_cert(ca, "client", node_ids=("client",), key_kind=kind)
    verify = Recorder()
    client, server, client_events, server_events = handshake(server_cert, client_cert, verify)
    assert completed(client_events) and completed(server_events)
    assert terminated(client_events) is None and terminated(server_events) is None
    assert verify.chains == [[client_cert.der]]
    assert server.peer_der_chain() == [client_cert.der]
    assert isinstance(server.tls, ClientAuthContext)
    # The connection carries data both ways after the handshake.
    sid = client.get_next_available_stream_id()
    client.send_stream_data(sid, b"\x00hello", end_stream=False)
    received = []
    for step in range(1, 10):
        server.receive_datagrams(client.datagram_payloads(NOW + step), NOW + step)
        client.receive_datagrams(server.datagram_payloads(NOW + step), NOW + step)
        while (event := server.next_event()) is not None:
            if isinstance(event, events.StreamDataReceived):
                received.append(event.data)
    assert b"".join(received) == b"\x00hello"


def test_a_client_chain_with_its_intermediate_reaches_the_verifier(ca, server_cert):
    client_cert = make_cert(ca, "client", node_ids=("client",))

    def config():
        conf = _quic.client_configuration(
            "client",
            False,
            cert_pem=client_cert.cert_pem + ca.cert_pem,
            key_pem=client_cert.key_pem,
        )
        return conf

    verify = Recorder()
    _client, _server, _client_events, server_events = handshake(server_cert, None, verify, config)
    assert completed(server_events)
    assert verify.chains == [[client_cert.der, ca.der]]


def test_a_client_without_a_certificate_is_refused_with_the_verifiers_alert(server_cert):
    verify = Recorder(
        ClientCertificateError(
            "tls: client didn't provide a certificate", AlertDescription.certificate_required
        )
    )
    _client, server, _client_events, server_events = handshake(server_cert, None, verify)
    assert verify.chains == [[]]
    assert not completed(server_events)
    closed = server._close_event
    assert closed is not None
    assert closed.error_code == 0x100 + AlertDescription.certificate_required
    assert closed.reason_phrase == "tls: client didn't provide a certificate"
    # The client hears it as a CRYPTO_ERROR from the server (qh3 reports the event once
    # its closing period is over; the reason is known at once).
    ended = _client._close_event
    assert ended is not None and ended.error_code == 0x100 + 116
    assert ended.reason_phrase == "tls: client didn't provide a certificate"


def test_a_refused_certificate_ends_the_handshake_with_bad_certificate(ca, server_cert):
    client_cert = make_cert(ca, "client", node_ids=("client",))
    verify = Recorder(ClientCertificateError("x509: certificate signed by unknown authority"))
    _client, server, _client_events, server_events = handshake(server_cert, client_cert, verify)
    assert not completed(server_events)
    assert server._close_event.error_code == 0x100 + AlertDescription.bad_certificate
    assert "unknown authority" in server._close_event.reason_phrase


def test_a_verifier_that_allows_no_certificate_completes_without_certificate_verify(server_cert):
    verify = Recorder()
    _client, server, client_events, server_events = handshake(server_cert, None, verify)
    assert verify.chains == [[]]
    assert completed(client_events) and completed(server_events)
    assert server.peer_der_chain() == []


def test_a_certificate_whose_key_the_client_does_not_hold_fails_certificate_verify(ca, server_cert):
    """The client presents someone else's certificate and signs with its own key: the
    server's signature check fails, whatever the verifier thought of the certificate."""
    mine = make_cert(ca, "client", node_ids=("client",))
    stolen = make_cert(ca, "victim", node_ids=("victim",))

    def config():
        return _quic.client_configuration(
            "client", False, cert_pem=stolen.cert_pem, key_pem=mine.key_pem
        )

    verify = Recorder()
    _client, server, _client_events, server_events = handshake(server_cert, None, verify, config)
    assert verify.chains == [[stolen.der]]
    assert not completed(server_events)
    assert server._close_event.error_code == 0x100 + AlertDescription.decrypt_error
    assert "invalid signature by the client certificate" in server._close_event.reason_phrase


def test_pkcs1_in_certificate_verify_is_refused(ca, server_cert):
    """TLS 1.3 forbids PKCS#1 v1.5 signatures in CertificateVerify (RFC 8446 §4.4.3)."""
    client_cert = make_cert(ca, "client", node_ids=("client",))
    verify = Recorder()
    client, server, first = start_pair(server_cert, client_config_with(client_cert), verify)
    # The client picks PSS for an RSA key whenever offered: make it see a request that
    # offers PKCS#1 only (the server still holds to its own list).
    context = client.tls
    plain = context._client_handle_certificate_request

    def narrowed(input_buf):
        plain(input_buf)
        context._certificate_request.signature_algorithms = [SignatureAlgorithm.RSA_PKCS1_SHA256]

    context._client_handle_certificate_request = narrowed
    server.receive_datagrams(first, NOW)
    for step in range(8):
        now = NOW + step * 0.1
        client.receive_datagrams(server.datagram_payloads(now), now)
        server.receive_datagrams(client.datagram_payloads(now), now)
    assert verify.chains == [[client_cert.der]]
    if server._close_event is None:
        pytest.fail("the server accepted a PKCS#1 CertificateVerify")
    assert server._close_event.error_code == 0x100 + AlertDescription.illegal_parameter


def test_adopt_refuses_a_context_that_has_started(ca, server_cert):
    client = _quic.MeshQuicConnection(configuration=_quic.client_configuration("c", False))
    client.connect(_quic.FAKE_ADDR, now=NOW)
    with pytest.raises(ValueError):
        ClientAuthContext.adopt(client.tls, Recorder())


def test_a_server_without_client_auth_keeps_qh3s_plain_context(ca, server_cert):
    client_cert = make_cert(ca, "client", node_ids=("client",))
    _client, server, first = start_pair(server_cert, client_config_with(client_cert), None)
    server.receive_datagrams(first, NOW)
    assert type(server.tls) is not ClientAuthContext
    assert server.peer_der_chain() == []


def _server_waiting_for_the_clients_certificate(server_cert):
    _client, server, first = start_pair(server_cert, client_config_with(None), Recorder())
    server.receive_datagrams(first, NOW)
    assert isinstance(server.tls, ClientAuthContext) and server.tls._stage != 0
    return server.tls


def _feed(context, data: bytes) -> None:
    buffers = {
        epoch: Buffer(capacity=4096) for epoch in (Epoch.INITIAL, Epoch.HANDSHAKE, Epoch.ONE_RTT)
    }
    context.handle_message(data, buffers, epoch=Epoch.HANDSHAKE)


def _message(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + len(body).to_bytes(3, "big") + body


@pytest.mark.parametrize(
    ("data", "alert"),
    [
        # The Finished before any Certificate.
        (_message(20, b"\x00" * 32), AlertUnexpectedMessage),
        # A Certificate whose inner lengths run past its end.
        (_message(11, b"\x00\x00\x00\x50" + b"\x00" * 10), AlertDecodeError),
        # A Certificate with bytes after its list.
        (_message(11, b"\x00\x00\x00\x00junk"), AlertDecodeError),
        # A non-empty request context (ours is empty).
        (_message(11, b"\x01x\x00\x00\x00"), AlertIllegalParameter),
        # A "certificate" that is not DER.
        (_message(11, b"\x00\x00\x00\x0a\x00\x00\x05hello\x00\x00"), AlertBadCertificate),
        # A length no Certificate needs: refused before it is buffered.
        (b"\x0b\xff\xff\xff" + b"\x00" * 100, AlertDecodeError),
    ],
)
def test_hostile_client_certificate_messages_end_the_handshake_with_an_alert(
    server_cert, data, alert
):
    context = _server_waiting_for_the_clients_certificate(server_cert)
    with pytest.raises(alert):
        _feed(context, data)
    # The refusal sticks: whatever the client sends next gets the same answer.
    with pytest.raises(alert):
        _feed(context, b"")


def test_a_certificate_message_in_pieces_is_buffered_until_complete(server_cert):
    context = _server_waiting_for_the_clients_certificate(server_cert)
    whole = _message(11, b"\x00\x00\x00\x00")  # an empty certificate list
    _feed(context, whole[:3])
    assert context._stage != 0  # still waiting
    _feed(context, whole[3:])
    assert context._stage == 0  # the verifier (Recorder) allowed it; Finished comes next
