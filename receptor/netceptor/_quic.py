"""qh3 configuration for mesh streams (wire.md §14.1, §14.2, §14.6).

Everything that touches qh3's configuration or its internals lives here, so the stream
layer itself only sees a ``QuicConnection``.

Large packets between our own nodes
-----------------------------------
Upstream (quic-go) peers must receive datagrams of at most 1200 bytes. Between two of our
nodes 16 000-byte datagrams move several times the data per CPU second, but qh3 fixes
``max_datagram_size`` when a connection is created, so each side must know beforehand:

* **Dialer → listener:** our dialers put a marker in the *original destination connection
  ID* of their first Initial packet (8 random bytes after the magic ``b"RcPy"``). quic-go
  treats that ID as opaque random bytes, so upstream listeners are unaffected. Our listener
  sees the marker before it creates its connection and then sends large datagrams (our
  dialers advertise a matching ``max_udp_payload_size``; qh3 clients otherwise say 1472).
* **Learning:** both sides add a transport parameter (id ``RECEPTOR_TP``) that quic-go
  ignores, as RFC 9000 §7.4.2 requires of unknown parameters. A node that sees it in any
  handshake (as dialer or listener) remembers the peer node as one of ours (for an hour
  after the last such handshake); later dials to that node start large.
* **First contact:** a dial to a node not known yet is a *probe*: 1200-byte datagrams,
  and the stream (its leading 0x00 byte) is opened only once the handshake is complete.
  If the peer's parameters show one of ours, the probe is closed unused (code 0,
  ``normal close``; the listener never sees a stream, so no application notices) and
  the stream is dialed again, large. Toward quic-go the probe simply becomes the
  connection (its 0x00 byte leaves with the client's Finished flight). Cost: one extra
  handshake on first contact with each of our nodes. A remembered node that does not
  answer a large dial is forgotten again.

The hooks rely on qh3 2.x internals (``_create_tls``, the original destination connection
ID attribute); when they are missing the layer stays at 1200 bytes, which is always safe.
"""

import datetime
import os
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID
from qh3.quic.configuration import QuicConfiguration
from qh3.quic.connection import QuicConnection, QuicConnectionError
from qh3.quic.packet import QuicErrorCode
from qh3.tls import (
    CryptoError,
    ExtensionType,
    SignatureAlgorithm,
    load_pem_private_key,
    load_pem_x509_certificates,
)

from receptor.netceptor._quic_tls import ClientAuthContext, Verifier

ALPN = "netceptor"
#: What qh3's certificate and key loaders raise for input they cannot use.
LOAD_ERRORS = (ValueError, TypeError, CryptoError)
INSECURE_CN = "netceptor-insecure-common-name"
#: Toward any peer that may be an upstream node.
SMALL_DATAGRAM = 1200
#: Between our own nodes.
LARGE_DATAGRAM = 16000
IDLE_TIMEOUT = 30.0
HANDSHAKE_TIMEOUT = 15.0
KEEPALIVE_PERIOD = 15.0
#: Per-stream and per-connection flow-control windows (quic-go's maxima are 6 / 15 MiB).
STREAM_WINDOW = 8 * 1024 * 1024
CONNECTION_WINDOW = 16 * 1024 * 1024
#: quic-go's CRYPTO_ERROR for a failed certificate check (wire.md §14.2).
CRYPTO_ERROR_CERT = 0x12A
#: Marks a dialer's original destination connection ID as one of ours.
DCID_MAGIC = b"RcPy"
#: A transport parameter id unknown to quic-go (ignored there), sent by our listeners.
RECEPTOR_TP = 0x52435059
#: A QUIC address for qh3, which wants an IP literal; the real path is node:service.
FAKE_ADDR = ("192.0.2.1", 1)


def _varint(value: int) -> bytes:
    if value < 0x40:
        return value.to_bytes(1, "big")
    if value < 0x4000:
        return (value | 0x4000).to_bytes(2, "big")
    if value < 0x40000000:
        return (value | 0x80000000).to_bytes(4, "big")
    return (value | 0xC000000000000000).to_bytes(8, "big")


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise ValueError("truncated varint")
    length = 1 << (data[pos] >> 6)
    if pos + length > len(data):
        raise ValueError("truncated varint")
    value = int.from_bytes(data[pos : pos + length], "big") & ((1 << (8 * length - 2)) - 1)
    return value, pos + length


def transport_parameter_ids(data: bytes) -> dict[int, bytes]:
    """The raw transport parameters (id → value); ValueError when malformed."""
    params: dict[int, bytes] = {}
    pos = 0
    while pos < len(data):
        param_id, pos = _read_varint(data, pos)
        length, pos = _read_varint(data, pos)
        if pos + length > len(data):
            raise ValueError("truncated transport parameter")
        params[param_id] = data[pos : pos + length]
        pos += length
    return params


def _rewrite_parameters(data: bytes, max_udp_payload: int | None, marker: bool) -> bytes:
    out = bytearray()
    for param_id, value in transport_parameter_ids(data).items():
        if param_id == 0x03 and max_udp_payload is not None:
            value = _varint(max_udp_payload)
        out += _varint(param_id) + _varint(len(value)) + value
    if marker:
        out += _varint(RECEPTOR_TP) + _varint(0)
    return bytes(out)


class MeshQuicConnection(QuicConnection):
    """A qh3 connection with the hooks described in the module docstring."""

    def __init__(
        self,
        *,
        configuration: QuicConfiguration,
        client_auth: "Verifier | None" = None,
        **kwargs: object,
    ) -> None:
        #: For a listener whose tls-server asks for client certificates: judges the
        #: client's chain (see ``_quic_tls``).
        self._client_auth = client_auth
        super().__init__(configuration=configuration, **kwargs)  # type: ignore[arg-type]
        if configuration.is_client and hasattr(self, "_original_destination_connection_id"):
            self._original_destination_connection_id = DCID_MAGIC + os.urandom(8)

    def _create_tls(self, remote_source_cid: bytes | None):  # type: ignore[no-untyped-def]
        bridge = super()._create_tls(remote_source_cid)
        if self._client_auth is not None and not self._configuration.is_client:
            ClientAuthContext.adopt(bridge.tls, self._client_auth)
        try:
            extensions = bridge.tls.handshake_extensions
            (kind, data), *rest = extensions
            if kind == ExtensionType.QUIC_TRANSPORT_PARAMETERS:
                is_client = self._configuration.is_client
                data = _rewrite_parameters(data, LARGE_DATAGRAM if is_client else None, marker=True)
                bridge.tls.handshake_extensions = [(kind, data), *rest]
        except (AttributeError, ValueError):
            pass
        return bridge

    def receive_datagrams(self, datagrams: list[bytes], now: float) -> None:
        """Take several datagrams in one pass. Once the handshake is complete they go to
        qh3's native core in one call (no per-datagram header parsing in Python), and
        the core acknowledges them together; before that, one by one as qh3 requires."""
        if getattr(self, "_handshake_complete", False) and self._core is not None:
            self.receive_many_datagrams(datagrams, FAKE_ADDR, now)
            return
        for datagram in datagrams:
            self.receive_datagram(datagram, FAKE_ADDR, now)

    def datagram_payloads(self, now: float) -> list[bytes]:
        """``datagrams_to_send`` without the addresses (and without qh3's per-datagram
        header parsing for its logger unless a QUIC logger is configured; ours never is).

        **A listener blocked by the anti-amplification limit.** Until a listener has
        received a Handshake packet from the dialer, RFC 9000 §8.1 lets it send at most
        three times the bytes it has received. qh3 2.1.0's ``poll_transmit`` only checks
        that this allowance still admits a minimal (about 30-byte) packet, then asks its
        packet builder for one packet of at most the allowance; when the first queued frame
        (a CRYPTO chunk of up to 900 bytes, a padded Initial, stream data) is larger, the
        builder fails with ``packet builder capacity exhausted`` (a ``RuntimeError`` that
        qh3's own ``datagrams_to_send`` turns into ``QuicConnectionError``; qh3 does not
        catch it). It happens when the dialer goes unheard for a while: every PTO makes the
        listener resend its handshake flight, which spends the allowance, and after a few
        the remainder is too small for the next packet (deterministically after about
        6 s of silence with our certificates; under load, when the dialer's datagrams are
        dropped from full queues or its process is starved).

        Nothing is lost when it happens: qh3's builder is transactional (a failed build
        consumes no frame, no packet number and no send budget, and ``poll_transmit``
        puts its stream reservations back), so the condition only means "nothing more may
        be sent now". The listener sends again once the dialer's next datagram (its
        retransmission, or its Handshake packet, which validates the address) raises the
        allowance. So in that state we stop polling and return what was built; the
        timers and the next datagram resume sending. Anywhere else the error would be a
        real fault (no other queued frame exceeds the datagram size) and still ends the
        connection. tests/unit/mesh/test_quic_transmit.py reproduces the condition and
        checks that the connection completes afterwards (SHA-256 of the data both ways).
        """
        core = self._core
        if core is None:
            return []
        poll = core.poll_transmit
        out = []
        try:
            while (transmit := poll(now)) is not None:
                out.append(transmit[0])
        except RuntimeError as exc:
            blocked = (
                str(exc) == "packet builder capacity exhausted"
                and not self._configuration.is_client
                and not getattr(self, "_handshake_complete", True)
            )
            if not blocked:
                raise QuicConnectionError(QuicErrorCode.INTERNAL_ERROR, None, str(exc)) from exc
        if self._quic_logger is not None:
            for datagram in out:
                self._log_datagram("datagrams_sent", datagram)
                self._log_packets("packet_sent", datagram)
        return out

    def peer_is_receptor_py(self) -> bool:
        """After the handshake: did the peer send our transport parameter?"""
        context = self.tls
        if context is None:
            return False
        for kind, data in getattr(context, "received_extensions", None) or ():
            if kind == ExtensionType.QUIC_TRANSPORT_PARAMETERS:
                try:
                    return RECEPTOR_TP in transport_parameter_ids(data)
                except ValueError:
                    return False
        return False

    def server_asked_for_certificate(self) -> bool:
        """A dialer: did the server send a CertificateRequest?"""
        context = self.tls
        return context is not None and context._certificate_request is not None

    def handshake_confirmed(self) -> bool:
        """A dialer: has the server confirmed the handshake (HANDSHAKE_DONE)?"""
        return bool(self._handshake_confirmed)

    def peer_der_chain(self) -> list[bytes]:
        """The peer's certificate chain, leaf first, as DER."""
        leaf = self.get_peercert()
        if leaf is None:
            return []
        return [leaf.public_bytes()] + [c.public_bytes() for c in self.get_issuercerts()]


def initial_is_marked(datagram: bytes) -> bool:
    """True when a client Initial's destination connection ID carries our magic."""
    if len(datagram) < 6 + len(DCID_MAGIC) or not datagram[0] & 0x80:
        return False
    dcid_len = datagram[5]
    return dcid_len >= len(DCID_MAGIC) and datagram[6 : 6 + len(DCID_MAGIC)] == DCID_MAGIC


def initial_dcid(datagram: bytes) -> bytes | None:
    """The destination connection ID of a long-header Initial packet, else None."""
    if len(datagram) < 7 or not datagram[0] & 0x80:
        return None
    if datagram[1:5] != b"\x00\x00\x00\x01":
        return None
    if (datagram[0] & 0x30) >> 4 != 0:  # packet type Initial (v1)
        return None
    dcid_len = datagram[5]
    if dcid_len > 20 or len(datagram) < 6 + dcid_len:
        return None
    return datagram[6 : 6 + dcid_len]


def self_signed_pem() -> tuple[bytes, bytes]:
    """The certificate of a service without TLS: serial 1, CN only, valid from a minute ago
    for 24 hours, as upstream's (wire.md §14.2), but with an Ed25519 key instead of RSA-2048.

    The server signs every handshake with it: 0.02 ms with Ed25519 against 2.8 ms with
    RSA-2048 in qh3 (and 1.3 ms with P-256), which made the signature most of a remote work
    unit's cost on the target node. Dialers do not verify this certificate beyond its CN;
    quic-go offers ed25519 in its ClientHello (0x0807, seen in the golden capture), so
    upstream nodes accept it.
    """
    key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, INSECURE_CN)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=24))
        .sign(key, None)
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def chain_has_insecure_cn(der_chain: list[bytes]) -> bool:
    """The dialer's check for services without TLS: some certificate has upstream's CN."""
    for der in der_chain:
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            continue
        for attribute in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
            if attribute.value == INSECURE_CN:
                return True
    return False


#: What our dialers offer: qh3's default list with ed25519 first (quic-go offers it too).
CLIENT_SIGNATURE_ALGORITHMS: list[int] = [
    SignatureAlgorithm.ED25519,
    SignatureAlgorithm.ECDSA_SECP256R1_SHA256,
    SignatureAlgorithm.RSA_PSS_RSAE_SHA256,
    SignatureAlgorithm.RSA_PKCS1_SHA256,
    SignatureAlgorithm.ECDSA_SECP384R1_SHA384,
    SignatureAlgorithm.RSA_PSS_RSAE_SHA384,
    SignatureAlgorithm.RSA_PKCS1_SHA384,
    SignatureAlgorithm.RSA_PSS_RSAE_SHA512,
    SignatureAlgorithm.RSA_PKCS1_SHA512,
    SignatureAlgorithm.RSA_PKCS1_SHA1,
]


def _base(is_client: bool, datagram: int) -> QuicConfiguration:
    config = QuicConfiguration(
        is_client=is_client,
        alpn_protocols=[ALPN],
        idle_timeout=IDLE_TIMEOUT,
        max_datagram_size=datagram,
        probe_datagram_size=False,
        max_data=CONNECTION_WINDOW,
        max_stream_data=STREAM_WINDOW,
    )
    return config


def server_configuration(cert_pem: bytes, key_pem: bytes, large: bool) -> QuicConfiguration:
    config = _base(False, LARGE_DATAGRAM if large else SMALL_DATAGRAM)
    certificates = load_pem_x509_certificates(cert_pem)
    config.certificate = certificates[0]
    config.certificate_chain = certificates[1:]
    config.private_key = load_pem_private_key(key_pem)
    return config


def client_configuration(
    server_name: str,
    large: bool,
    cert_pem: bytes | None = None,
    key_pem: bytes | None = None,
    ca_pem: bytes | None = None,
    nist_key_shares: bool = False,
) -> QuicConfiguration:
    """A dialer's configuration; certificate checks are made by the stream layer after the
    handshake (qh3 has no verification hook), so qh3's own verification is off unless CAs
    are given. ``nist_key_shares`` for a dialer with a tls-client (see below)."""
    config = _base(True, LARGE_DATAGRAM if large else SMALL_DATAGRAM)
    config.server_name = server_name
    # qh3 leaves ed25519 out of its ClientHello by default; our services' certificates
    # use it (see self_signed_pem), and users' certificates may too.
    config.signature_algorithms = CLIENT_SIGNATURE_ALGORITHMS
    config.verify_mode = ssl.CERT_NONE
    config.verify_hostname = False
    if nist_key_shares:
        # A dialer with a tls-client: upstream's tls-server accepts only the NIST curves
        # (P-521/384/256, wire.md §12.1), and qh3 offers only X25519 (and its ML-KEM hybrid)
        # unless told; quic-go would answer with a HelloRetryRequest, which qh3 2.1 cannot
        # read ("Read out of bounds"). So offer the EC key shares at once.
        config.offer_ec_key_shares = True
    if cert_pem and key_pem:
        certificates = load_pem_x509_certificates(cert_pem)
        config.certificate = certificates[0]
        config.certificate_chain = certificates[1:]
        config.private_key = load_pem_private_key(key_pem)
    if ca_pem:
        config.cadata = ca_pem
        config.verify_mode = ssl.CERT_REQUIRED
    return config
