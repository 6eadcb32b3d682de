"""Client certificates on QUIC mesh services: the server half of TLS 1.3 client
authentication (RFC 8446 §4.3.2, §4.4.2, §4.4.3) for qh3's TLS context.

qh3 2.x clients answer a CertificateRequest, but its servers never send one. A mesh
service whose ``tls-server`` asks for client certificates (``requireclientcert`` or
``clientcas``, wire.md §12.2, §12.6) needs both, so :class:`ClientAuthContext` extends qh3's
``tls.Context`` for one connection at a time:

* **The request.** qh3's server writes its flight in ``_server_handle_hello``:
  EncryptedExtensions, Certificate, CertificateVerify, Finished, each added to the
  transcript as it is written. The CertificateRequest belongs between the first two. The
  server reads ``certificate_chain`` exactly once in that flight, while it builds the
  Certificate message and after it has marked where that message starts in the transcript;
  here that attribute is a property which, during the flight, first writes the
  CertificateRequest into the handshake buffer. The transcript then covers
  EncryptedExtensions, CertificateRequest, Certificate in that order, as RFC 8446 requires.
* **The client's answer.** qh3's server expects the client's Finished right after its own
  flight and precomputes it from the transcript as it stands. With a request outstanding
  the client first sends Certificate and (with a certificate) CertificateVerify, so the
  transcript is wound back to before that precomputed Finished (a copy of the hash taken
  when it was added), the client's Certificate and CertificateVerify are read and checked
  here, and the Finished is computed over the full transcript before qh3 checks it.
* **Checks.** The CertificateVerify signature is checked against the certificate's key for
  the schemes quic-go's clients use (RSA-PSS, ECDSA P-256/P-384/P-521, Ed25519; TLS 1.3
  forbids PKCS#1 v1.5 there). The certificate itself (chain, dates, pins, node ID) is
  judged by the ``verify`` callback that the stream layer gives each connection; its
  :class:`ClientCertificateError` becomes the TLS alert the client sees.

Only our own connections use this class (the stream layer switches a fresh server
context to it in ``MeshQuicConnection._create_tls``); nothing in qh3 is changed globally.
It relies on qh3 2.1's context internals (``_server_handle_hello``, ``key_schedule``,
``_expected_verify_data``, ``_dec_key``), which is why ``pyproject.toml`` pins qh3 to the
versions the tests cover; ``tests/unit/tls/test_quic_client_auth.py`` checks each step.
"""

from collections.abc import Callable
from typing import Any

from qh3 import tls
from qh3.tls import (
    Alert,
    AlertBadCertificate,
    AlertDecodeError,
    AlertDecryptError,
    AlertDescription,
    AlertIllegalParameter,
    AlertInternalError,
    AlertUnexpectedMessage,
    Buffer,
    BufferReadError,
    CertificateRequest,
    Epoch,
    ExtensionType,
    HandshakeType,
    SignatureAlgorithm,
    State,
    push_block,
    push_extension,
    push_list,
    push_opaque,
)

#: The schemes in our CertificateRequest, in quic-go's order (Go's
#: ``supportedSignatureAlgorithms``): PKCS#1 v1.5 is listed because the list also speaks for
#: signatures inside certificate chains (RFC 8446 §4.2.3), but never accepted in a
#: CertificateVerify.
REQUEST_SIGNATURE_ALGORITHMS: tuple[int, ...] = (
    SignatureAlgorithm.RSA_PSS_RSAE_SHA256,
    SignatureAlgorithm.ECDSA_SECP256R1_SHA256,
    SignatureAlgorithm.ED25519,
    SignatureAlgorithm.RSA_PSS_RSAE_SHA384,
    SignatureAlgorithm.RSA_PSS_RSAE_SHA512,
    SignatureAlgorithm.RSA_PKCS1_SHA256,
    SignatureAlgorithm.RSA_PKCS1_SHA384,
    SignatureAlgorithm.RSA_PKCS1_SHA512,
    SignatureAlgorithm.ECDSA_SECP384R1_SHA384,
    SignatureAlgorithm.ECDSA_SECP521R1_SHA512,
)

#: What a client's CertificateVerify may use (RFC 8446 §4.4.3).
VERIFY_SIGNATURE_ALGORITHMS = frozenset(
    {
        SignatureAlgorithm.RSA_PSS_RSAE_SHA256,
        SignatureAlgorithm.RSA_PSS_RSAE_SHA384,
        SignatureAlgorithm.RSA_PSS_RSAE_SHA512,
        SignatureAlgorithm.ECDSA_SECP256R1_SHA256,
        SignatureAlgorithm.ECDSA_SECP384R1_SHA384,
        SignatureAlgorithm.ECDSA_SECP521R1_SHA512,
        SignatureAlgorithm.ED25519,
    }
)

CLIENT_VERIFY_CONTEXT = b"TLS 1.3, client CertificateVerify"
#: Largest client Certificate or CertificateVerify accepted (Go's limit for any handshake
#: message): a client does not get to make the server buffer more.
MAX_MESSAGE = 65536 + 4


class ClientCertificateError(Exception):
    """A client certificate refused by the ``verify`` callback; ``alert`` is the TLS
    alert description sent to the client (``bad_certificate`` unless said otherwise)."""

    def __init__(self, message: str, alert: int = AlertDescription.bad_certificate) -> None:
        super().__init__(message)
        self.alert = alert


class _RefusedCertificate(Alert):
    """An alert whose description is chosen per refusal (qh3's alerts fix it per class)."""

    def __init__(self, message: str, description: int) -> None:
        super().__init__(message)
        self.description = AlertDescription(description)


#: Gets the client's chain (DER, leaf first; empty when it sent none) and raises
#: ClientCertificateError to refuse it.
Verifier = Callable[[list[bytes]], None]

# Where a connection is in the client's second flight.
_IDLE = 0  # not yet asked, or asking is over
_CERTIFICATE = 1  # Certificate expected
_CERTIFICATE_VERIFY = 2  # CertificateVerify expected


def _parse(message: bytes, kind: int, pull: Callable[[Buffer], Any]) -> Any:
    """One whole handshake message of the ``kind`` the client must send next."""
    if message[0] != kind:
        raise AlertUnexpectedMessage(f"expected the client's {HandshakeType(kind).name}")
    buf = Buffer(data=message)
    try:
        parsed = pull(buf)
    except BufferReadError:  # a length inside that runs past the message's end
        raise AlertDecodeError("truncated handshake message") from None
    if not buf.eof():
        raise AlertDecodeError("extra bytes at the end of a handshake message")
    return parsed


def push_certificate_request(buf: Buffer, request: CertificateRequest) -> None:
    """Write a TLS 1.3 CertificateRequest handshake message (qh3 only reads them)."""
    buf.push_uint8(HandshakeType.CERTIFICATE_REQUEST)
    with push_block(buf, 3):
        push_opaque(buf, 1, request.request_context)
        with push_block(buf, 2):
            with push_extension(buf, ExtensionType.SIGNATURE_ALGORITHMS):
                push_list(buf, 2, buf.push_uint16, request.signature_algorithms or [])
            for extension_type, data in request.other_extensions:
                with push_extension(buf, extension_type):
                    buf.push_bytes(data)


class ClientAuthContext(tls.Context):
    """A server-side qh3 TLS context that asks for, and checks, a client certificate.

    Make one with :meth:`adopt` from the context a ``QuicTlsBridge`` has just created.
    """

    _verify: Verifier
    _chain: list
    _flight_buffer: Buffer | None
    _request_sent: bool
    _stage: int
    _hash_before_update: Any
    _failure: Alert | None

    @classmethod
    def adopt(cls, context: tls.Context, verify: Verifier) -> "ClientAuthContext":
        """Turn a fresh server ``context`` (no ClientHello seen yet) into one of ours."""
        if context.state != State.SERVER_EXPECT_CLIENT_HELLO:
            raise ValueError("client authentication is set up on a fresh server context")
        chain = context.__dict__.pop("certificate_chain", [])
        context.__class__ = cls
        assert isinstance(context, cls)
        context._verify = verify
        context._chain = list(chain)
        context._flight_buffer = None
        context._request_sent = False
        context._stage = _IDLE
        context._hash_before_update = None
        context._failure = None
        return context

    # qh3 reads this while it writes the server's Certificate message: see the module
    # docstring. Outside that moment it is the plain attribute qh3 has.
    @property
    def certificate_chain(self) -> list:
        buf = self._flight_buffer
        if buf is not None:
            self._flight_buffer = None
            self._send_request(buf)
        return self._chain

    @certificate_chain.setter
    def certificate_chain(self, value: list) -> None:
        self._chain = value

    def _schedule(self) -> tls.KeySchedule:
        """The key schedule, chosen once the ServerHello is out (true from the
        CertificateRequest on)."""
        schedule = self.key_schedule
        assert isinstance(schedule, tls.KeySchedule)
        return schedule

    def _send_request(self, buf: Buffer) -> None:
        push_certificate_request(
            buf,
            CertificateRequest(
                request_context=b"", signature_algorithms=list(REQUEST_SIGNATURE_ALGORITHMS)
            ),
        )
        self._request_sent = True
        # From here on, remember the transcript before each addition, so that the Finished
        # qh3 precomputes for the client (the last addition) can be taken back.
        schedule = self._schedule()
        plain_update = schedule.update_hash

        def update_hash(data: bytes) -> None:
            self._hash_before_update = schedule.hash.copy()
            plain_update(data)

        schedule.update_hash = update_hash  # type: ignore[method-assign]

    def _server_handle_hello(
        self, input_buf: Buffer, initial_buf: Buffer, handshake_buf: Buffer, onertt_buf: Buffer
    ) -> None:
        self._flight_buffer = handshake_buf
        try:
            super()._server_handle_hello(input_buf, initial_buf, handshake_buf, onertt_buf)
        finally:
            self._flight_buffer = None
            schedule = self.key_schedule
            if isinstance(schedule, tls.KeySchedule):
                schedule.__dict__.pop("update_hash", None)
        if not self._request_sent or self._alps_negotiated:
            # A resumed session (no Certificate flight) or ALPS: neither is offered by our
            # servers, so neither is expected here.
            raise AlertInternalError("cannot request a client certificate in this handshake")
        # Take back qh3's precomputed client Finished: the client's certificate comes first.
        self._schedule().hash = self._hash_before_update
        self._hash_before_update = None
        self._expected_verify_data = None
        self._stage = _CERTIFICATE

    def handle_message(
        self, input_data: bytes, output_buf: dict[Epoch, Buffer], epoch: int = -1
    ) -> None:
        if self._failure is not None:
            # A refused client stays refused, whatever else it sends before the close.
            raise self._failure
        if self._stage == _IDLE:
            super().handle_message(input_data, output_buf, epoch)
            return
        try:
            self._handle_client_auth(input_data, output_buf, epoch)
        except Alert as alert:
            self._failure = alert
            raise

    def _handle_client_auth(
        self, input_data: bytes, output_buf: dict[Epoch, Buffer], epoch: int
    ) -> None:
        self._receive_buffer += input_data
        while self._stage != _IDLE and len(self._receive_buffer) >= 4:
            length = 4 + int.from_bytes(self._receive_buffer[1:4], byteorder="big")
            if length > MAX_MESSAGE:
                raise AlertDecodeError(f"client handshake message of {length} bytes")
            if len(self._receive_buffer) < length:
                return
            message = self._receive_buffer[:length]
            self._receive_buffer = self._receive_buffer[length:]
            if epoch >= 0 and epoch != Epoch.HANDSHAKE:
                raise AlertUnexpectedMessage
            if self._stage == _CERTIFICATE:
                self._handle_client_certificate(message)
            else:
                self._handle_client_certificate_verify(message)
        if self._stage == _IDLE and self._receive_buffer:
            rest, self._receive_buffer = self._receive_buffer, b""
            super().handle_message(rest, output_buf, epoch)

    def _handle_client_certificate(self, message: bytes) -> None:
        certificate = _parse(message, HandshakeType.CERTIFICATE, tls.pull_certificate)
        if certificate.request_context != b"":
            raise AlertIllegalParameter("certificate request context does not match")
        self._schedule().update_hash(message)
        chain = [entry[0] for entry in certificate.certificates]
        try:
            self._verify(chain)
        except ClientCertificateError as err:
            raise _RefusedCertificate(str(err), err.alert) from None
        if not chain:  # the verifier allowed no certificate: no CertificateVerify follows
            self._finish_client_auth()
            return
        try:
            self._process_certificate(certificate)
        except Exception as err:  # qh3's parser: a certificate the verifier did not parse
            raise AlertBadCertificate(f"cannot read the client certificate: {err}") from None
        self._stage = _CERTIFICATE_VERIFY

    def _handle_client_certificate_verify(self, message: bytes) -> None:
        verify = _parse(message, HandshakeType.CERTIFICATE_VERIFY, tls.pull_certificate_verify)
        if verify.algorithm not in VERIFY_SIGNATURE_ALGORITHMS:
            raise AlertIllegalParameter(
                "tls: client certificate used with invalid signature algorithm"
            )
        peer = self._peer_certificate
        assert peer is not None
        try:
            tls.verify_with_public_key(
                peer.public_key(),
                verify.algorithm,
                self._schedule().certificate_verify_data(CLIENT_VERIFY_CONTEXT),
                verify.signature,
            )
        except Exception as err:  # qh3's SignatureError, or a key of another type
            raise AlertDecryptError(
                f"tls: invalid signature by the client certificate: {err}"
            ) from None
        self._schedule().update_hash(message)
        self._finish_client_auth()

    def _finish_client_auth(self) -> None:
        """The transcript now holds the client's certificate messages: what its Finished
        must prove is known (qh3's ``_server_handle_finished`` compares it)."""
        assert self._dec_key is not None
        self._expected_verify_data = self._schedule().finished_verify_data(self._dec_key)
        self._stage = _IDLE
