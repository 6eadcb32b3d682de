"""Named TLS configurations (``tls-server`` / ``tls-client``, config.md §3.6–§3.7, wire.md §12).

The registry is filled in the ``prepare`` phase by the TLS component and read by everything
that takes a ``tls=`` / ``tlsserver=`` / ``tlsclient=`` name: backends, the control service,
proxy services and mesh stream services (whose QUIC TLS uses the raw materials, not the
``ssl`` contexts: see the ``cert_file`` / ``cert_pem`` / ``pinned`` ... fields).

Python's ``ssl`` has no verify callback, so receptor's own checks (upstream's "RVF": pinned
fingerprints, extended key usage, Receptor node IDs) run right after the handshake on the
peer's DER certificate, with ``cryptography``; a failure closes the connection and is logged
with the peer and the reason.

Connections are :class:`TLSSocket` objects: a ``socket.socket`` whose ``send``/``recv`` go
through an ``ssl.SSLObject`` over memory BIOs. Unlike ``ssl.SSLSocket`` one thread may read
while another writes (the backends' reader and writer threads), and a ``poll`` on the
descriptor stays truthful: ``recv`` decrypts everything it read, and the handshake reads
record by record so that no application data is left hidden inside the TLS layer.
"""

from __future__ import annotations

import hashlib
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from receptor._errors import ConfigError, ReceptorError
from receptor._lazy import LazyModule
from receptor._log import logger
from receptor.netceptor._tls_registry import TLSRegistry

if TYPE_CHECKING:
    from cryptography import exceptions, x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509 import oid
else:
    # cryptography (about 15 MiB) is loaded when a TLS config is, not by every daemon.
    x509 = LazyModule("cryptography.x509", globals(), "x509")
    exceptions = LazyModule("cryptography.exceptions", globals(), "exceptions")
    serialization = LazyModule(
        "cryptography.hazmat.primitives.serialization", globals(), "serialization"
    )
    oid = LazyModule("cryptography.x509.oid", globals(), "oid")

#: The otherName type-id of a Receptor node ID (certs.md §4).
#: The otherName type of Receptor node IDs in subjectAltName (certs.md §4.1), dotted.
NODE_ID_OID = "1.3.6.1.4.1.2312.19.1"

#: wire.md §12.1: the only TLS 1.2 suites upstream enables.
TLS12_CIPHERS = ":".join(
    [
        "ECDHE-RSA-AES256-GCM-SHA384",
        "AES256-GCM-SHA384",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
    ]
)

#: control.md §1: a TLS control client must finish its handshake within this time; the
#: backends use the same bound (upstream has none there, but a silent peer must not hold a
#: thread forever).
HANDSHAKE_TIMEOUT = 10.0
#: How long a write that the kernel only partly took may wait for the rest.
SEND_TIMEOUT = 30.0
#: Plaintext larger than this never takes the non-blocking fast path of ``send``.
FAST_SEND_MAX = 16384


class TLSPeerError(ReceptorError):
    """The peer's certificate failed one of receptor's own checks (pin, node ID, ...)."""


# ---------------------------------------------------------------------- node IDs


def _der_length(data: bytes, pos: int) -> tuple[int, int]:
    """A DER length at ``pos``: (length, position after it); ValueError when malformed."""
    if pos >= len(data):
        raise ValueError("asn1: syntax error: data truncated")
    first = data[pos]
    pos += 1
    if first < 0x80:
        return first, pos
    count = first & 0x7F
    if count == 0 or count > 4 or pos + count > len(data):
        raise ValueError("asn1: syntax error: invalid length")
    return int.from_bytes(data[pos : pos + count], "big"), pos + count


def _der_tlv(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """(tag byte, contents, position after) of the element at ``pos``."""
    if pos >= len(data):
        raise ValueError("asn1: syntax error: data truncated")
    tag = data[pos]
    length, start = _der_length(data, pos + 1)
    end = start + length
    if end > len(data):
        raise ValueError("asn1: syntax error: data truncated")
    return tag, data[start:end], end


#: ASN.1 string types accepted inside the otherName value (certs.md §4.1): UTF8String,
#: NumericString, PrintableString, T61String, IA5String, VisibleString.
_STRING_TAGS = {0x0C: "utf-8", 0x12: "ascii", 0x13: "ascii", 0x14: "latin-1", 0x16: "ascii",
                0x1A: "ascii"}  # fmt: skip


def decode_node_id_value(value: bytes) -> str:
    """The node ID in an otherName value; ValueError when malformed.

    ``cryptography`` hands over the DER inside the ``[0] EXPLICIT`` wrapper (the bare
    string); a value still wrapped is accepted too.
    """
    tag, contents, end = _der_tlv(value, 0)
    if tag == 0xA0:
        value = contents
        tag, contents, end = _der_tlv(value, 0)
    if end != len(value):
        raise ValueError("asn1: syntax error: trailing data")
    encoding = _STRING_TAGS.get(tag)
    if encoding is None:
        raise ValueError(f"asn1: structure error: tags don't match (string vs tag {tag:#x})")
    try:
        return contents.decode(encoding)
    except UnicodeDecodeError:
        raise ValueError("asn1: structure error: invalid string encoding") from None


def receptor_names(cert: x509.Certificate) -> list[str]:
    """Every Receptor node ID in the certificate's subjectAltName, in order (wire.md §12.5).

    A malformed entry raises ValueError, as the whole check fails upstream.
    """
    try:
        san = cert.extensions.get_extension_for_oid(oid.ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    except x509.ExtensionNotFound:
        return []
    names: list[str] = []
    value = san.value
    assert isinstance(value, x509.SubjectAlternativeName)
    for other in value.get_values_for_type(x509.OtherName):
        if other.type_id.dotted_string == NODE_ID_OID:
            names.append(decode_node_id_value(other.value))
    return names


def go_list(names: list[str]) -> str:
    """Go's ``fmt.Sprint`` of a ``[]string``: ``[a b]``."""
    return "[" + " ".join(names) + "]"


def node_id_error(expected: str, names: list[str]) -> str:
    """Upstream's ``ReceptorCertNameError`` text."""
    if not names:
        return (
            "x509: certificate is not valid for any Receptor node IDs, but wanted to match "
            f"{expected}"
        )
    plural = "s" if len(names) > 1 else ""
    valid = ", ".join(names)
    return f"x509: certificate is valid for Receptor node ID{plural} {valid}, not {expected}"


# ---------------------------------------------------------------------- fingerprints


def decode_fingerprints(values: list[str] | None) -> list[bytes]:
    """Config fingerprints (hex, colons optional) → bytes; ConfigError in upstream's words."""
    result = []
    for text in values or []:
        try:
            raw = bytes.fromhex(text.replace(":", ""))
        except ValueError:
            raise ConfigError("error decoding fingerprints: error decoding fingerprint") from None
        if len(raw) not in (32, 64):
            raise ConfigError(
                "error decoding fingerprints: fingerprints must be 32 or 64 bytes for sha256 "
                "or sha512"
            )
        result.append(raw)
    return result


def fingerprint_matches(leaf_der: bytes, pinned: list[bytes]) -> bool:
    """Whether the leaf's SHA-256 or SHA-512 digest equals a pinned value (wire.md §12.4)."""
    digests = {32: hashlib.sha256(leaf_der).digest(), 64: hashlib.sha512(leaf_der).digest()}
    return any(digests.get(len(pin)) == pin for pin in pinned)


# ---------------------------------------------------------------------- peer checks


def _parse_peer(der_chain: list[bytes]) -> x509.Certificate:
    if not der_chain or not der_chain[0]:
        raise TLSPeerError("RVF failed: peer certificate missing")
    try:
        cert = x509.load_der_x509_certificate(der_chain[0])
        _ = cert.extensions  # parsed lazily: a malformed extension fails here, not later
    except ValueError as err:
        raise TLSPeerError(f"failed to parse certificate from peer: {err}") from None
    return cert


def _check_eku(cert: x509.Certificate, usage: x509.ObjectIdentifier, role: str) -> None:
    """Go's rule: no EKU extension, ``anyExtendedKeyUsage`` or the wanted one passes."""
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return
    if usage in eku or oid.ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in eku:
        return
    raise TLSPeerError(
        f"RVF failed verify: x509: certificate specifies an incompatible key usage ({role})"
    )


def _check_validity(cert: x509.Certificate) -> None:
    now = datetime.now(UTC)
    if now < cert.not_valid_before_utc or now > cert.not_valid_after_utc:
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        raise TLSPeerError(
            "RVF failed verify: x509: certificate has expired or is not yet valid: current "
            f"time {stamp} is outside {cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ} .. "
            f"{cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}"
        )


def _check_node_id(cert: x509.Certificate, node_id: str) -> None:
    try:
        names = receptor_names(cert)
    except ValueError as err:
        raise TLSPeerError(f"RVF failed to get ReceptorNames: {err}") from None
    if node_id not in names:
        logger.error("RVF ReceptorNameError: expected %s but found %s", node_id, ", ".join(names))
        raise TLSPeerError(node_id_error(node_id, names))


def verify_chain(der_chain: list[bytes], ca_pem: bytes) -> None:
    """A lenient Go-like chain check for callers without OpenSSL's (the QUIC layer).

    The leaf (and each certificate the peer sent after it) must be directly signed by the
    next one or by a CA in ``ca_pem``, every certificate in its validity period.
    TLSPeerError names what failed.
    """
    chain = [_parse_peer(der_chain)]
    try:
        chain.extend(x509.load_der_x509_certificate(der) for der in der_chain[1:])
    except ValueError as err:
        raise TLSPeerError(f"failed to parse certificate from peer: {err}") from None
    try:
        roots = x509.load_pem_x509_certificates(ca_pem) if ca_pem else []
    except ValueError as err:
        raise TLSPeerError(f"cannot read the CA bundle: {err}") from None
    current = chain[0]
    intermediates = chain[1:]
    for _ in range(len(chain) + 1):
        _check_validity(current)
        for root in roots:
            if _signed_by(current, root):
                return
        issuer = next((c for c in intermediates if _signed_by(current, c)), None)
        if issuer is None:
            break
        intermediates.remove(issuer)
        current = issuer
    raise TLSPeerError("RVF failed verify: x509: certificate signed by unknown authority")


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, exceptions.InvalidSignature):
        return False
    return True


# ---------------------------------------------------------------------- loading files


def _read_file(path: str) -> bytes:
    """Read a file; ConfigError worded like Go's ``os.ReadFile``."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except IsADirectoryError:
        raise ConfigError(f"read {path}: is a directory") from None
    except OSError as err:
        reason = (err.strerror or str(err)).lower()
        raise ConfigError(f"open {path}: {reason}") from None


def _load_key_pair(
    cert_path: str, key_path: str, section: str
) -> tuple[bytes, bytes, list[x509.Certificate]]:
    """Read and check a certificate chain and its key, as Go's ``tls.X509KeyPair`` does."""
    cert_pem = _read_file(cert_path)
    key_pem = _read_file(key_path)
    where = f"cfg section={section}; cert={cert_path}; key={key_path}"
    try:
        certs = x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        certs = []
    if not certs:
        hint = ""
        if b"PRIVATE KEY-----" in cert_pem:
            hint = ", but did find a private key; PEM inputs may have been switched"
        raise ConfigError(
            f"tls: failed to find certificate PEM data in certificate input{hint}; {where}"
        )
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise ConfigError(f"tls: private key is encrypted (no password support); {where}") from None
    except (ValueError, exceptions.UnsupportedAlgorithm) as err:
        hint = "failed to find any PEM data in key input"
        if b"CERTIFICATE-----" in key_pem and b"PRIVATE KEY" not in key_pem:
            hint = "found a certificate rather than a key in the PEM for the private key"
        elif b"PRIVATE KEY-----" in key_pem:
            hint = f"failed to parse private key: {err}"
        raise ConfigError(f"tls: {hint}; {where}") from None
    leaf_public = (
        certs[0]
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    key_public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if leaf_public != key_public:
        raise ConfigError(f"tls: private key does not match public key; {where}")
    return cert_pem, key_pem, certs


def _check_own_node_id(cert: x509.Certificate, node_id: str, section: str, path: str) -> None:
    """The startup check of config.md §3.6 on the first certificate of ``cert``."""
    try:
        names = receptor_names(cert)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if node_id not in names:
        raise ConfigError(
            f"nodeID={node_id} not found in certificate name(s); names found={go_list(names)}; "
            f"cfg section={section}; server cert={path}"
        )


def _read_ca_bundle(path: str, what: str) -> bytes:
    """A CA bundle that must hold at least one certificate.

    Upstream silently ignores a bundle without certificates (and then refuses every
    peer); an operator is better served by an error at startup naming the file.
    """
    try:
        pem = _read_file(path)
    except ConfigError as err:
        raise ConfigError(f"error reading {what} file: {err}") from None
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError:
        certs = []
    if not certs:
        raise ConfigError(f"error reading {what} file: no PEM certificates found in {path}")
    return pem


def _base_context(protocol: int, min_tls13: bool) -> ssl.SSLContext:
    """wire.md §12.1: TLS 1.2+ with upstream's suites, or TLS 1.3 only."""
    context = ssl.SSLContext(protocol)
    if min_tls13:
        context.minimum_version = ssl.TLSVersion.TLSv1_3
    else:
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers(TLS12_CIPHERS)
    return context


# ---------------------------------------------------------------------- configs


@dataclass
class ServerTLS:
    """A loaded ``tls-server`` config: the ``ssl`` context plus the raw materials."""

    name: str
    context: ssl.SSLContext
    cert_file: str = ""
    key_file: str = ""
    #: PEM bytes as read at load time (the chain may hold intermediates).
    cert_pem: bytes = b""
    key_pem: bytes = b""
    client_cas_file: str | None = None
    #: PEM bytes of ``clientcas``; None means the system trust store.
    client_cas_pem: bytes | None = None
    require_client_cert: bool = False
    #: Whether client certificates are asked for (``requireclientcert`` or ``clientcas``;
    #: upstream's verifier then refuses clients without one, wire.md §12.2).
    verify_clients: bool = False
    pinned: list[bytes] = field(default_factory=list)
    min_tls13: bool = False
    skip_names_check: bool = False

    def wrap(
        self, sock: socket.socket, peer: str = "", timeout: float = HANDSHAKE_TIMEOUT
    ) -> TLSSocket:
        """Server-side handshake on an accepted socket, then receptor's own peer checks.

        On failure the socket is closed, an ERROR line names ``peer`` and the reason, and
        the ``ssl.SSLError`` / ``TLSPeerError`` / ``OSError`` is raised.
        """
        peer = peer or _peer_name(sock)
        return self.handshake(self.socket(sock), peer, timeout)

    def socket(self, sock: socket.socket) -> TLSSocket:
        """The TLS socket for an accepted connection, before its handshake (so that another
        thread can ``shutdown`` it to abort a slow handshake)."""
        return TLSSocket(sock, self.context, server_side=True)

    def handshake(self, tls: TLSSocket, peer: str, timeout: float = HANDSHAKE_TIMEOUT) -> TLSSocket:
        """Handshake and check ``tls`` (see :meth:`wrap`)."""
        try:
            tls.handshake(timeout)
            if self.verify_clients:
                self.check_peer([tls.peer_der()])
        except (OSError, TLSPeerError, ValueError) as err:
            logger.error(
                "TLS handshake with %s failed (tls-server %s): %s",
                peer,
                self.name,
                describe_error(err),
            )
            tls.close()
            raise
        return tls

    def check_peer(self, der_chain: list[bytes], node_id: str | None = None) -> None:
        """Receptor's checks beyond the ``ssl`` module's: TLSPeerError.

        The client certificate must exist, allow clientAuth and match a pinned fingerprint
        if any are configured. Mesh-level services with ``requireclientcert`` (wire.md
        §12.6, ``node_id`` = the connecting node): it must also carry that node ID. Upstream
        does not apply pins on that path; we do (README: differences from upstream).
        """
        cert = _parse_peer(der_chain)
        if self.pinned and not fingerprint_matches(der_chain[0], self.pinned):
            raise TLSPeerError(
                "RVF failed: presented certificate does not match any pinned fingerprint"
            )
        _check_eku(cert, oid.ExtendedKeyUsageOID.CLIENT_AUTH, "client")
        if node_id is not None:
            _check_node_id(cert, node_id)


@dataclass
class ClientTLS:
    """A loaded ``tls-client`` config: ``ssl`` contexts plus the raw materials."""

    name: str
    #: For backends: chain and host name verified (wire.md §12.3).
    context: ssl.SSLContext
    #: For mesh-level streams: chain verified, no host name (the node ID is checked instead).
    mesh_context: ssl.SSLContext | None = None
    cert_file: str | None = None
    key_file: str | None = None
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    root_cas_file: str | None = None
    #: PEM bytes of ``rootcas``; None means the system trust store.
    root_cas_pem: bytes | None = None
    insecure_skip_verify: bool = False
    pinned: list[bytes] = field(default_factory=list)
    min_tls13: bool = False
    skip_names_check: bool = False

    def wrap(
        self,
        sock: socket.socket,
        server_name: str,
        node_id: str | None = None,
        timeout: float = HANDSHAKE_TIMEOUT,
    ) -> TLSSocket:
        """Client handshake on a connected socket, then receptor's own checks.

        Without ``node_id`` (backends, proxies): SNI and host-name verification use
        ``server_name``. With ``node_id`` (mesh-level streams, wire.md §12.3): no SNI, no
        host name, the certificate must carry ``node_id``. Failure: the socket is closed
        and the error raised (its text says why; the caller logs it in its own words).
        """
        return self.handshake(self.socket(sock, server_name, node_id), node_id, timeout)

    def socket(
        self, sock: socket.socket, server_name: str, node_id: str | None = None
    ) -> TLSSocket:
        """The TLS socket for a connected socket, before its handshake (see :meth:`wrap`)."""
        mesh = node_id is not None
        context = (self.mesh_context or self.context) if mesh else self.context
        hostname = None if mesh or not server_name else server_name
        return TLSSocket(sock, context, server_side=False, server_hostname=hostname)

    def handshake(
        self, tls: TLSSocket, node_id: str | None = None, timeout: float = HANDSHAKE_TIMEOUT
    ) -> TLSSocket:
        """Handshake and check ``tls``; on failure close it and raise (see :meth:`wrap`)."""
        try:
            tls.handshake(timeout)
            self.check_peer([tls.peer_der()], node_id)
        except (OSError, TLSPeerError, ValueError):
            tls.close()
            raise
        return tls

    def check_peer(self, der_chain: list[bytes], node_id: str | None = None) -> None:
        """Receptor's checks beyond the ``ssl`` module's (pins, EKU, node ID): TLSPeerError.

        Nothing is checked with ``insecureskipverify`` (upstream: it disables everything).
        """
        if self.insecure_skip_verify:
            return
        cert = _parse_peer(der_chain)
        if self.pinned and not fingerprint_matches(der_chain[0], self.pinned):
            logger.error("RVF failed: presented certificate does not match any pinned fingerprint")
            raise TLSPeerError(
                "RVF failed: presented certificate does not match any pinned fingerprint"
            )
        _check_eku(cert, oid.ExtendedKeyUsageOID.SERVER_AUTH, "server")
        if node_id is not None:
            _check_node_id(cert, node_id)


def load_server(values: dict, node_id: str) -> ServerTLS:
    """Build a ``tls-server`` from its parsed config values (config.md §3.6).

    Errors: ConfigError with upstream's text, prefixed ``error preparing tls server config: ``.
    """
    try:
        return _load_server(values, node_id)
    except ConfigError as err:
        raise ConfigError(f"error preparing tls server config: {err}") from None


def _load_server(values: dict, node_id: str) -> ServerTLS:
    name = values["name"]
    cert_file, key_file = values["cert"], values["key"]
    cert_pem, key_pem, certs = _load_key_pair(cert_file, key_file, name)
    skip = bool(values.get("skipreceptornamescheck"))
    if not skip:
        _check_own_node_id(certs[0], node_id, name, cert_file)
    client_cas_file = values.get("clientcas") or None
    client_cas_pem = None
    if client_cas_file:
        client_cas_pem = _read_ca_bundle(client_cas_file, "client CAs")
    pinned = decode_fingerprints(values.get("pinnedclientcert"))
    require = bool(values.get("requireclientcert"))
    min_tls13 = bool(values.get("mintls13"))
    context = _base_context(ssl.PROTOCOL_TLS_SERVER, min_tls13)
    # receptorctl half-closes a TLS control connection without close_notify.
    context.options |= ssl.OP_IGNORE_UNEXPECTED_EOF
    # No session tickets: nothing arrives after the handshake but application data.
    context.num_tickets = 0
    _load_chain(context, cert_file, key_file, name)
    verify_clients = require or client_cas_file is not None
    if verify_clients:
        context.verify_mode = ssl.CERT_REQUIRED
        if client_cas_pem is not None:
            context.load_verify_locations(cadata=client_cas_pem.decode("ascii", "replace"))
        else:
            context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    return ServerTLS(
        name=name,
        context=context,
        cert_file=cert_file,
        key_file=key_file,
        cert_pem=cert_pem,
        key_pem=key_pem,
        client_cas_file=client_cas_file,
        client_cas_pem=client_cas_pem,
        require_client_cert=require,
        verify_clients=verify_clients,
        pinned=pinned,
        min_tls13=min_tls13,
        skip_names_check=skip,
    )


def _load_chain(context: ssl.SSLContext, cert_file: str, key_file: str, section: str) -> None:
    try:
        context.load_cert_chain(cert_file, key_file)
    except (ssl.SSLError, OSError) as err:
        raise ConfigError(
            f"tls: cannot use certificate/key: {describe_error(err)}; cfg section={section}; "
            f"cert={cert_file}; key={key_file}"
        ) from None


def load_client(values: dict, node_id: str) -> ClientTLS:
    """Build a ``tls-client`` from its parsed config values (config.md §3.7)."""
    try:
        return _load_client(values, node_id)
    except ConfigError as err:
        raise ConfigError(f"error preparing tls client config: {err}") from None


def _load_client(values: dict, node_id: str) -> ClientTLS:
    name = values["name"]
    cert_file = values.get("cert") or None
    key_file = values.get("key") or None
    min_tls13 = bool(values.get("mintls13"))
    skip = bool(values.get("skipreceptornamescheck"))
    cert_pem = key_pem = None
    if cert_file or key_file:
        if not (cert_file and key_file):
            raise ConfigError("cert and key must both be supplied or neither")
        cert_pem, key_pem, certs = _load_key_pair(cert_file, key_file, name)
        if not skip:
            _check_own_node_id(certs[0], node_id, name, cert_file)
    root_cas_file = values.get("rootcas") or None
    root_cas_pem = _read_ca_bundle(root_cas_file, "root CAs") if root_cas_file else None
    pinned = decode_fingerprints(values.get("pinnedservercert"))
    insecure = bool(values.get("insecureskipverify"))
    contexts = []
    for check_hostname in (True, False):
        context = _base_context(ssl.PROTOCOL_TLS_CLIENT, min_tls13)
        if insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            context.check_hostname = check_hostname
            if root_cas_pem is not None:
                context.load_verify_locations(cadata=root_cas_pem.decode("ascii", "replace"))
            else:
                context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        if cert_file and key_file:
            _load_chain(context, cert_file, key_file, name)
        contexts.append(context)
    return ClientTLS(
        name=name,
        context=contexts[0],
        mesh_context=contexts[1],
        cert_file=cert_file,
        key_file=key_file,
        cert_pem=cert_pem,
        key_pem=key_pem,
        root_cas_file=root_cas_file,
        root_cas_pem=root_cas_pem,
        insecure_skip_verify=insecure,
        pinned=pinned,
        min_tls13=min_tls13,
        skip_names_check=skip,
    )


# ---------------------------------------------------------------------- the socket


def describe_error(err: BaseException) -> str:
    """A one-line reason for a TLS failure (OpenSSL's ``reason`` plus its detail)."""
    verify_message = getattr(err, "verify_message", None)
    if isinstance(err, ssl.SSLCertVerificationError) and verify_message:
        return f"certificate verify failed: {verify_message}"
    if isinstance(err, ssl.SSLError):
        reason = getattr(err, "reason", None)
        if reason:
            return str(reason).replace("_", " ").lower()
        return str(err.strerror or err)
    if isinstance(err, TimeoutError):
        return "handshake timed out"
    return str(err) or type(err).__name__


def _peer_name(sock: socket.socket) -> str:
    try:
        peer = sock.getpeername()
    except OSError:
        return "unknown peer"
    if isinstance(peer, tuple):
        return f"{peer[0]}:{peer[1]}"
    return str(peer) or "unix peer"


class TLSSocket(socket.socket):
    """A TLS connection that still is a ``socket.socket`` (see the module docstring).

    Thread rules: one reader and any number of writers at a time. Writers serialise on a
    write lock held from encryption to the last byte handed to the kernel, so records
    leave in order; the ``SSLObject`` itself is only touched under a short lock.
    """

    def __init__(
        self,
        raw: socket.socket,
        context: ssl.SSLContext,
        server_side: bool,
        server_hostname: str | None = None,
    ) -> None:
        timeout = raw.gettimeout()
        super().__init__(raw.family, raw.type, raw.proto, fileno=raw.detach())
        self.settimeout(timeout)
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._obj = context.wrap_bio(
            self._incoming, self._outgoing, server_side=server_side,
            server_hostname=server_hostname,
        )  # fmt: skip
        self._obj_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._closed_write = False
        self._seen_record = False

    # ------------------------------------------------------------------ handshake

    def handshake(self, timeout: float = HANDSHAKE_TIMEOUT) -> None:
        """Run the handshake, reading exactly one record at a time (module docstring)."""
        saved = self.gettimeout()
        deadline = time.monotonic() + timeout
        try:
            while True:
                with self._obj_lock:
                    try:
                        self._obj.do_handshake()
                        done = True
                    except ssl.SSLWantReadError:
                        done = False
                    except ssl.SSLError:
                        pending = self._outgoing.read()
                        self._send_quietly(pending)  # the alert tells the peer why
                        raise
                    pending = self._outgoing.read()
                if pending:
                    socket.socket.sendall(self, pending)
                if done:
                    return
                header = self._read_exact(5, deadline)
                if self._obj.server_side and not self._seen_record and header[0] != 0x16:
                    # OpenSSL would take a high first byte for an SSLv2 hello and wait.
                    raise ssl.SSLError(1, "first record does not look like a TLS handshake")
                self._seen_record = True
                self._incoming.write(header)
                with self._obj_lock:
                    try:
                        self._obj.do_handshake()  # a non-TLS peer fails on the header
                    except ssl.SSLWantReadError:
                        pass
                    except ssl.SSLError:
                        self._send_quietly(self._outgoing.read())
                        raise
                    else:
                        continue
                length = int.from_bytes(header[3:5], "big")
                self._incoming.write(self._read_exact(length, deadline))
        finally:
            if self.fileno() >= 0:
                self.settimeout(saved)

    def _send_quietly(self, data: bytes) -> None:
        if not data:
            return
        try:
            socket.socket.send(self, data, socket.MSG_DONTWAIT)
        except OSError:
            pass

    def _read_exact(self, size: int, deadline: float) -> bytes:
        data = bytearray()
        while len(data) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("TLS handshake timed out")
            self.settimeout(remaining)
            chunk = socket.socket.recv(self, size - len(data))
            if not chunk:
                raise ssl.SSLEOFError(8, "EOF during the TLS handshake (peer closed)")
            data += chunk
        return bytes(data)

    # ------------------------------------------------------------------ peer

    def peer_der(self) -> bytes:
        """The peer's leaf certificate (DER), or empty bytes if it sent none."""
        return self._obj.getpeercert(binary_form=True) or b""

    def getpeercert(self, binary_form: bool = False):  # type: ignore[no-untyped-def]
        return self._obj.getpeercert(binary_form)

    def version(self) -> str | None:
        return self._obj.version()

    def cipher(self) -> tuple[str, str, int] | None:
        return self._obj.cipher()

    def pending(self) -> int:
        return self._obj.pending()

    # ------------------------------------------------------------------ reading

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """Up to ``bufsize`` bytes of plaintext; ``b""`` at the end of the stream.

        Reads at most ``bufsize`` minus the undecrypted bytes already buffered, so that all
        the plaintext obtained fits in the answer and nothing stays behind.
        """
        if flags:
            raise ValueError("flags are not supported on a TLS socket")
        while True:
            data, outgoing, eof = self._decrypt(bufsize)
            if outgoing:
                with self._write_lock:
                    socket.socket.sendall(self, outgoing)
            if data or eof:
                return data
            raw = socket.socket.recv(self, max(1, bufsize - self._incoming.pending))
            if not raw:
                return b""  # EOF without close_notify counts as EOF (receptorctl does it)
            # Under the object lock: a writer's SSL_write may read this BIO at the same time
            # (TLS 1.3 post-handshake messages), and MemoryBIO is not thread-safe.
            with self._obj_lock:
                self._incoming.write(raw)

    def _decrypt(self, bufsize: int) -> tuple[bytes, bytes, bool]:
        """(plaintext, bytes the TLS layer wants sent, end of stream)."""
        chunks = []
        total = 0
        eof = False
        with self._obj_lock:
            while total < bufsize:
                try:
                    chunk = self._obj.read(bufsize - total)
                except ssl.SSLWantReadError:
                    break
                except ssl.SSLZeroReturnError:
                    eof = True
                    break
                if not chunk:
                    eof = True
                    break
                chunks.append(chunk)
                total += len(chunk)
            outgoing = self._outgoing.read()
        return b"".join(chunks), outgoing, eof and not chunks

    def recv_into(self, buffer, nbytes: int = 0, flags: int = 0) -> int:  # type: ignore[no-untyped-def]
        view = memoryview(buffer)
        data = self.recv(nbytes or len(view), flags)
        view[: len(data)] = data
        return len(data)

    # ------------------------------------------------------------------ writing

    def _encrypt(self, data: bytes) -> bytes:
        with self._obj_lock:
            view = memoryview(data)
            while view:
                written = self._obj.write(view)
                view = view[written:]
            return self._outgoing.read()

    def sendall(self, data, flags: int = 0) -> None:  # type: ignore[no-untyped-def]
        if flags:
            raise ValueError("flags are not supported on a TLS socket")
        with self._write_lock:
            socket.socket.sendall(self, self._encrypt(bytes(data)))

    def send(self, data, flags: int = 0) -> int:  # type: ignore[no-untyped-def]
        """With ``MSG_DONTWAIT``: all of ``data`` or BlockingIOError (never a part, since a
        TLS record cannot be split); the rare remainder the kernel did not take is pushed
        within :data:`SEND_TIMEOUT`, else the connection is shut down."""
        data = bytes(data)
        if not flags & socket.MSG_DONTWAIT:
            self.sendall(data)
            return len(data)
        if len(data) > FAST_SEND_MAX or not self._write_lock.acquire(blocking=False):
            raise BlockingIOError("TLS send would block")
        try:
            poller = select.poll()
            poller.register(self.fileno(), select.POLLOUT)
            if not poller.poll(0):
                raise BlockingIOError("TLS send would block")
            record = self._encrypt(data)
            try:
                sent = socket.socket.send(self, record, socket.MSG_DONTWAIT)
            except BlockingIOError:
                sent = 0
            if sent < len(record):
                self._push(memoryview(record)[sent:], poller)
            return len(data)
        finally:
            self._write_lock.release()

    def _push(self, rest: memoryview, poller: select.poll) -> None:
        deadline = time.monotonic() + SEND_TIMEOUT
        while rest:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not poller.poll(remaining * 1000):
                self.shutdown(socket.SHUT_RDWR)
                raise TimeoutError("TLS send timed out with a record half written")
            try:
                rest = rest[socket.socket.send(self, rest, socket.MSG_DONTWAIT) :]
            except BlockingIOError:
                continue

    # ------------------------------------------------------------------ closing

    def shutdown(self, how: int) -> None:
        """``SHUT_WR`` sends close_notify first (if no write is in progress); ``SHUT_RDWR``
        never waits, since other threads use it to wake a blocked reader or writer."""
        if (
            how == socket.SHUT_WR
            and not self._closed_write
            and self._write_lock.acquire(timeout=1.0)
        ):
            try:
                self._closed_write = True
                with self._obj_lock:
                    try:
                        self._obj.unwrap()
                    except ssl.SSLError:
                        pass
                    pending = self._outgoing.read()
                if pending:
                    socket.socket.sendall(self, pending)
            except OSError:
                pass
            finally:
                self._write_lock.release()
        super().shutdown(how)


__all__ = [
    "HANDSHAKE_TIMEOUT",
    "NODE_ID_OID",
    "ClientTLS",
    "ServerTLS",
    "TLSPeerError",
    "TLSRegistry",
    "TLSSocket",
    "decode_fingerprints",
    "decode_node_id_value",
    "describe_error",
    "fingerprint_matches",
    "load_client",
    "load_server",
    "node_id_error",
    "receptor_names",
    "verify_chain",
]
