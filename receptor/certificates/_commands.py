"""The three certificate commands with their files, clock and prompt (certs.md §1–§3).

Each step happens in upstream's order, so that the first problem reported is the one
upstream reports: times are parsed first, then files are read (CA certificate, CA key,
request), then names are checked, the operator asked, the certificate made and written.
"""

import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from receptor.certificates._names import parse_ip
from receptor.certificates._pem import CertError, encode_pem, load_pem_items, write_file
from receptor.certificates._rfc3339 import parse_rfc3339
from receptor.certificates._tooling import (
    Validity,
    create_ca,
    create_request,
    describe_request,
    generate_key,
    key_pem,
    request_names,
    sign_request,
)

__all__ = [
    "InitCA",
    "MakeRequest",
    "SignRequest",
    "make_validity",
    "read_answer",
]

#: Go's zero ``time.Time``: upstream treats it as "not given" (``IsZero``).
_GO_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)


def _optional_time(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = parse_rfc3339(text)
    return None if moment == _GO_ZERO_TIME else moment


def _add_years(now: float, years: int) -> datetime:
    """Go's ``time.Now().AddDate(years, 0, 0)``: same local wall time, Feb 29 → Mar 1."""
    local = datetime.fromtimestamp(math.floor(now))
    try:
        later = local.replace(year=local.year + years)
    except ValueError:
        later = local.replace(year=local.year + years, month=3, day=1)
    return later.astimezone(UTC)


def make_validity(
    not_before: datetime | None, not_after: datetime | None, years: int, now: float
) -> Validity:
    """Serial = Unix seconds now; defaults: from now, for ``years`` (no back-dating)."""
    return Validity(
        serial=math.floor(now),
        not_before=not_before or datetime.fromtimestamp(math.floor(now), UTC),
        not_after=not_after or _add_years(now, years),
    )


def _pem_der(item: x509.Certificate | x509.CertificateSigningRequest) -> bytes:
    return item.public_bytes(serialization.Encoding.DER)


@dataclass
class InitCA:
    """``cert-init``: a new self-signed CA certificate and its key."""

    common_name: str
    bits: int
    out_cert: str
    out_key: str
    not_before: str | None = None
    not_after: str | None = None

    def run(self, now: Callable[[], float] = time.time) -> None:
        not_before = _optional_time(self.not_before)
        not_after = _optional_time(self.not_after)
        if not self.common_name:
            raise CertError("must provide CommonName")
        key = generate_key(self.bits or 2048)
        cert = create_ca(self.common_name, key, make_validity(not_before, not_after, 10, now()))
        write_file(self.out_cert, [encode_pem("CERTIFICATE", _pem_der(cert))])
        write_file(self.out_key, [key_pem(key)])


@dataclass
class MakeRequest:
    """``cert-makereq``: a certificate request for a new or an existing key."""

    common_name: str
    out_req: str
    bits: int = 0
    dns_names: list[str] = field(default_factory=list)
    ip_addresses: list[str] = field(default_factory=list)
    node_ids: list[str] = field(default_factory=list)
    in_key: str = ""
    out_key: str = ""

    def validate(self) -> None:
        """Upstream's Prepare checks (certs.md §2), in its order."""
        if not self.in_key and not self.out_key:
            raise CertError("must provide either InKey or OutKey")
        if self.in_key and self.out_key:
            raise CertError("cannot use both InKey and OutKey")
        if self.in_key and self.bits != 0:
            raise CertError("cannot specify key bits when reading an already-existing key")
        if self.out_key and self.bits == 0:
            raise CertError("must specify key bits when creating a new key")

    def _existing_key(self) -> rsa.RSAPrivateKey:
        """The one RSA private key among the items of ``in_key``."""
        found = None
        for item in load_pem_items(self.in_key):
            if not isinstance(item, rsa.RSAPrivateKey):
                continue
            if found is not None:
                raise CertError(f"multiple private keys in file {self.in_key}")
            found = item
        if found is None:
            raise CertError(f"no private keys in file {self.in_key}")
        return found

    def run(self) -> None:
        ips = []
        for text in self.ip_addresses:
            packed = parse_ip(text)
            if packed is None:
                raise CertError(f"invalid IP address: {text}")
            ips.append(packed)
        key = self._existing_key() if self.in_key else generate_key(self.bits)
        csr = create_request(self.common_name, key, self.dns_names, ips, self.node_ids)
        write_file(self.out_req, [encode_pem("CERTIFICATE REQUEST", _pem_der(csr))])
        if self.out_key:
            write_file(self.out_key, [key_pem(key)])


def _only_item(path: str, kind: type, one: str, wrong: str) -> object:
    """The single item of a PEM file, which must be a ``kind`` (upstream's Load* helpers)."""
    items = load_pem_items(path)
    if len(items) != 1:
        raise CertError(one)
    if not isinstance(items[0], kind):
        raise CertError(wrong)
    return items[0]


@dataclass
class SignRequest:
    """``cert-signreq``: sign a request with the CA, asking first unless ``verify``."""

    req: str
    ca_cert: str
    ca_key: str
    out_cert: str
    verify: bool = False
    not_before: str | None = None
    not_after: str | None = None

    def run(
        self,
        now: Callable[[], float] = time.time,
        ask: Callable[[str], str] | None = None,
    ) -> None:
        not_before = _optional_time(self.not_before)
        not_after = _optional_time(self.not_after)
        ca_cert = _only_item(
            self.ca_cert,
            x509.Certificate,
            "certificate file should contain exactly one item",
            "certificate file does not contain certificate data",
        )
        ca_key = _only_item(
            self.ca_key,
            rsa.RSAPrivateKey,
            "private key file should contain exactly one item",
            "private key file does not contain private key data",
        )
        csr = _only_item(
            self.req,
            x509.CertificateSigningRequest,
            "certificate request file should contain exactly one item",
            "certificate request file does not contain certificate request data",
        )
        assert isinstance(ca_cert, x509.Certificate)  # checked by _only_item; for mypy
        assert isinstance(ca_key, rsa.RSAPrivateKey)
        assert isinstance(csr, x509.CertificateSigningRequest)
        names = request_names(csr)
        if names.empty:
            raise CertError("cannot sign: no names found in certificate")
        if not self.verify:
            answer = (ask or ask_on_terminal)(describe_request(csr, names))
            if answer.lower() not in ("y", "yes"):
                raise CertError("user declined")
        cert = sign_request(csr, ca_cert, ca_key, make_validity(not_before, not_after, 1, now()))
        write_file(self.out_cert, [encode_pem("CERTIFICATE", _pem_der(cert))])


# ---------------------------------------------------------------------------- the prompt


#: Go's ``fmt`` white space (``\n`` included), as ranges of code points.
_SPACE_RANGES = (
    (0x09, 0x0D),
    (0x20, 0x20),
    (0x85, 0x85),
    (0xA0, 0xA0),
    (0x1680, 0x1680),
    (0x2000, 0x200A),
    (0x2028, 0x2029),
    (0x202F, 0x202F),
    (0x205F, 0x205F),
    (0x3000, 0x3000),
)


def _is_space(char: str) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in _SPACE_RANGES)


class _RuneReader:
    """Runes from a file descriptor, one byte read at a time like Go's ``fmt.Scanln``.

    Reading byte by byte leaves whatever follows the answer unread in the descriptor.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pending: str | None = None

    def _byte(self) -> int | None:
        try:
            data = os.read(self.fd, 1)
        except OSError as err:
            raise CertError(f"read /dev/stdin: {os.strerror(err.errno or 0).lower()}") from None
        return data[0] if data else None

    def get(self) -> str | None:
        if self.pending is not None:
            char, self.pending = self.pending, None
            return char
        first = self._byte()
        if first is None:
            return None
        size = 1 if first < 0x80 else 2 if first >> 5 == 6 else 3 if first >> 4 == 14 else 4
        raw = bytes([first])
        while len(raw) < size and first >= 0xC0:
            following = self._byte()
            if following is None:
                break
            raw += bytes([following])
        return raw.decode("utf-8", "replace")[0]

    def unget(self, char: str) -> None:
        self.pending = char


def read_answer(fd: int) -> str:
    """One word from ``fd`` the way Go's ``fmt.Scanln(&s)`` reads it, or CertError.

    Errors are Go's: ``EOF`` (nothing but blanks), ``unexpected newline`` (an empty line),
    ``expected newline`` (more than one word on the line).
    """
    reader = _RuneReader(fd)
    while True:
        char = reader.get()
        if char is None:
            raise CertError("EOF")
        if char == "\n":
            raise CertError("unexpected newline")
        if not _is_space(char):
            break
    word = char
    while True:
        char = reader.get()
        if char is None:
            return word
        if _is_space(char):
            reader.unget(char)
            break
        word += char
    while True:
        char = reader.get()
        if char is None or char == "\n":
            return word
        if not _is_space(char):
            raise CertError("expected newline")


def ask_on_terminal(text: str) -> str:
    """Show the request on stdout (no newline after the question) and read the answer."""
    sys.stdout.write(text)
    sys.stdout.flush()
    return read_answer(0)
