"""RS512 work signatures (work.md §7)."""

import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from receptor.workceptor._signing import SignatureError, WorkSigner, WorkVerifier


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    directory = tmp_path_factory.mktemp("keys")
    paths = {}
    for name in ("good", "other"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private = directory / f"{name}.pem"
        private.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        public = directory / f"{name}.pub"
        public.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        paths[name] = (str(private), str(public))
    return paths


def _parts(token):
    header, claims, _ = token.split(".")
    decode = lambda part: json.loads(jwt.utils.base64url_decode(part))  # noqa: E731
    return decode(header), decode(claims)


def test_token_shape(keys):
    signer = WorkSigner(keys["good"][0], expiration=90)
    token = signer.sign("node2", now=1000.0)
    header, claims = _parts(token)
    assert header == {"alg": "RS512", "typ": "JWT"}
    assert claims == {"aud": ["node2"], "exp": 1090}


def test_sign_and_verify(keys):
    token = WorkSigner(keys["good"][0]).sign("n1")
    WorkVerifier(keys["good"][1]).verify(token, "n1")


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda k: "", "could not verify signature: signature is empty"),
        (
            lambda k: "a.b",
            "could not verify signature: token contains an invalid number of segments",
        ),
        (
            lambda k: WorkSigner(k["other"][0]).sign("n1"),
            "could not verify signature: crypto/rsa: verification error",
        ),
        (lambda k: WorkSigner(k["good"][0]).sign("n2"), "token audience did not match node ID"),
        (
            lambda k: WorkSigner(k["good"][0], -10).sign("n1"),
            "could not verify signature: token is expired by 1",
        ),
    ],
)
def test_verification_errors(keys, make, message):
    with pytest.raises(SignatureError) as info:
        WorkVerifier(keys["good"][1]).verify(make(keys), "n1")
    assert str(info.value).startswith(message)


def test_time_claims_without_leeway(keys):
    with open(keys["good"][0], "rb") as handle:
        private = serialization.load_pem_private_key(handle.read(), None)
    verifier = WorkVerifier(keys["good"][1])
    now = time.time()
    future = jwt.encode({"aud": "n1", "nbf": int(now) + 100}, private, algorithm="RS256")
    with pytest.raises(SignatureError, match="token is not valid yet"):
        verifier.verify(future, "n1", now=now)
    no_aud = jwt.encode({"exp": int(now) + 100}, private, algorithm="PS256")
    with pytest.raises(SignatureError, match="token audience did not match node ID"):
        verifier.verify(no_aud, "n1", now=now)


def test_missing_keys():
    with pytest.raises(SignatureError, match=r"^cannot sign work: signing key is empty$"):
        WorkSigner("").sign("n1")
    with pytest.raises(SignatureError, match=r"^could not verify signature: verifying key not"):
        WorkVerifier("").verify("x.y.z", "n1")
    with pytest.raises(SignatureError, match=r"^could not load verifying key file: "):
        WorkVerifier("/nonexistent/key.pub").verify("x.y.z", "n1")
