"""PEM files as upstream reads and writes them (``LoadFromPEMFile`` / ``SaveToPEMFile``).

Reading follows Go's ``encoding/pem``: text before a block is skipped, but anything after
the last block that is not another block is an error (``failed to decode PEM block``) —
so a trailing blank line makes upstream refuse a file, and so do we. Every block is parsed
by type; an unknown type is an error. Writing joins the blocks with a newline and writes the
file with mode 0600 (an existing file keeps its mode, as with Go's ``os.WriteFile``).
"""

import base64
import binascii
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from receptor.certificates._asn1 import ASN1Error, parse_tag_and_length

__all__ = [
    "CertError",
    "PEMBlock",
    "decode_pem",
    "encode_pem",
    "load_pem_items",
    "os_error",
    "read_file",
    "write_file",
]

PEMItem = x509.Certificate | x509.CertificateSigningRequest | PrivateKeyTypes | PublicKeyTypes


class CertError(ValueError):
    """A certificate command failed; the message is what upstream prints after ``Error: ``."""


@dataclass(frozen=True)
class PEMBlock:
    type: str
    data: bytes


_BEGIN = b"\n-----BEGIN "
_END = b"\n-----END "
_DASHES = b"-----"


def _get_line(data: bytes) -> tuple[bytes, bytes]:
    index = data.find(b"\n")
    if index < 0:
        line, rest = data, b""
    else:
        line, rest = data[:index], data[index + 1 :]
        if line.endswith(b"\r"):
            line = line[:-1]
    return line.rstrip(b" \t"), rest


def _decode_one(data: bytes) -> tuple[PEMBlock | None, bytes]:
    """Go's ``pem.Decode``: the first valid block and what follows it, or (None, data)."""
    rest = data
    while True:
        if rest.startswith(_BEGIN[1:]):
            rest = rest[len(_BEGIN) - 1 :]
        else:
            index = rest.find(_BEGIN)
            if index < 0:
                return None, data
            rest = rest[index + len(_BEGIN) :]
        type_line, rest = _get_line(rest)
        if not type_line.endswith(_DASHES):
            continue
        block_type = type_line[: -len(_DASHES)]
        headers = 0
        while True:
            if not rest:
                return None, data
            line, following = _get_line(rest)
            if b":" not in line:
                break
            headers += 1
            rest = following
        if headers == 0 and rest.startswith(_END[1:]):
            end_index, trailer_index = 0, len(_END) - 1
        else:
            end_index = rest.find(_END)
            trailer_index = end_index + len(_END)
        if end_index < 0:
            continue
        trailer = rest[trailer_index:]
        trailer_len = len(block_type) + len(_DASHES)
        if len(trailer) < trailer_len:
            continue
        rest_of_end_line, trailer = trailer[trailer_len:], trailer[:trailer_len]
        if not trailer.startswith(block_type) or not trailer.endswith(_DASHES):
            continue
        if _get_line(rest_of_end_line)[0]:
            continue
        body = rest[:end_index].replace(b" ", b"").replace(b"\t", b"")
        body = body.replace(b"\r", b"").replace(b"\n", b"")
        try:
            decoded = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            continue
        _, rest = _get_line(rest[end_index + len(_END) - 1 :])
        return PEMBlock(block_type.decode("latin-1"), decoded), rest


def decode_pem(content: bytes) -> list[PEMBlock]:
    """All blocks of a PEM file, the way upstream loops over ``pem.Decode``."""
    blocks = []
    while content:
        block, content = _decode_one(content)
        if block is None:
            raise CertError("failed to decode PEM block")
        blocks.append(block)
    return blocks


def encode_pem(block_type: str, data: bytes) -> bytes:
    """Go's ``pem.Encode``: 64-column base64 between BEGIN and END lines."""
    text = base64.b64encode(data)
    lines = [text[i : i + 64] + b"\n" for i in range(0, len(text), 64)]
    head = f"-----BEGIN {block_type}-----\n".encode()
    tail = f"-----END {block_type}-----\n".encode()
    return head + b"".join(lines) + tail


def os_error(op: str, path: str, err: OSError) -> CertError:
    """Go's ``*PathError`` text: ``open ca.key: no such file or directory``."""
    reason = os.strerror(err.errno) if err.errno else str(err)
    return CertError(f"{op} {path}: {reason[:1].lower()}{reason[1:]}")


def read_file(path: str) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise os_error("open", path, err) from None
    try:
        with os.fdopen(fd, "rb") as stream:
            return stream.read()
    except OSError as err:
        raise os_error("read", path, err) from None


def write_file(path: str, blocks: list[bytes]) -> None:
    """Write PEM blocks joined by a newline, mode 0600 for a new file (``os.WriteFile``)."""
    data = b"\n".join(blocks)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    except OSError as err:
        raise os_error("open", path, err) from None
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
    except OSError as err:
        raise os_error("write", path, err) from None


# ---------------------------------------------------------------------------- parsing


def _key_shape(der: bytes) -> str:
    """Which private key syntax DER looks like: ``pkcs1``, ``pkcs8``, ``ec`` or ``?``.

    Go names the right parser in its error when a key is in the wrong kind of block.
    """
    try:
        header, offset = parse_tag_and_length(der, 0)
        content = der[offset : offset + header.length]
        version, position = parse_tag_and_length(content, 0)
        second, _ = parse_tag_and_length(content, position + version.length)
    except ASN1Error:
        return "?"
    if version.tag != 2:
        return "?"
    if second.tag == 2:
        return "pkcs1"
    if second.tag == 16:
        return "pkcs8"
    if second.tag == 4:
        return "ec"
    return "?"


_WRONG_PARSER = {
    "pkcs8": "x509: failed to parse private key (use ParsePKCS8PrivateKey instead for this "
    "key format)",
    "ec": "x509: failed to parse private key (use ParseECPrivateKey instead for this key format)",
    "pkcs1": "x509: failed to parse private key (use ParsePKCS1PrivateKey instead for this "
    "key format)",
}


def _load_private_key(der: bytes, expect: str) -> PrivateKeyTypes:
    shape = _key_shape(der)
    if shape != expect:
        raise CertError(_WRONG_PARSER.get(shape, "x509: failed to parse private key"))
    try:
        key = serialization.load_der_private_key(der, password=None)
    except UnsupportedAlgorithm:
        raise CertError(
            "x509: PKCS#8 wrapping contained private key with unknown algorithm"
        ) from None
    except (ValueError, TypeError):
        raise CertError("x509: failed to parse private key") from None
    if expect == "pkcs1" and not isinstance(key, rsa.RSAPrivateKey):
        raise CertError("x509: failed to parse private key")
    return key


def _parse_block(block: PEMBlock) -> PEMItem:
    try:
        if block.type == "CERTIFICATE":
            return x509.load_der_x509_certificate(block.data)
        if block.type == "CERTIFICATE REQUEST":
            return x509.load_der_x509_csr(block.data)
        if block.type == "PUBLIC KEY":
            return serialization.load_der_public_key(block.data)
    except (ValueError, UnsupportedAlgorithm):
        what = {
            "CERTIFICATE": "x509: malformed certificate",
            "CERTIFICATE REQUEST": "x509: malformed certificate request",
            "PUBLIC KEY": "x509: malformed public key",
        }[block.type]
        raise CertError(what) from None
    if block.type == "RSA PRIVATE KEY":
        return _load_private_key(block.data, "pkcs1")
    if block.type == "PRIVATE KEY":
        return _load_private_key(block.data, "pkcs8")
    raise CertError(f"unknown block type {block.type}")


def load_pem_items(path: str) -> list[PEMItem]:
    """Every item of a PEM file, parsed (``LoadFromPEMFile``)."""
    return [_parse_block(block) for block in decode_pem(read_file(path))]
