"""Signed work: RS512 JSON web tokens (work.md §7).

A signing node holds an RSA private key (``work-signing``) and makes a fresh token for every
message: header ``{"alg":"RS512","typ":"JWT"}``, claims ``{"aud":[<target node>],"exp":<unix
seconds>}``. A verifying node holds the public key (``work-verification``) and checks the
signature with any RSA algorithm (as golang-jwt v4 does: the header's algorithm is not pinned),
the time claims without leeway and the audience. Error texts are upstream's.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from receptor._errors import ReceptorError
from receptor._goduration import format_duration
from receptor._lazy import LazyModule

if TYPE_CHECKING:
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
else:
    # PyJWT and cryptography are loaded with the first key, not by every daemon.
    jwt = LazyModule("jwt", globals(), "jwt")
    serialization = LazyModule(
        "cryptography.hazmat.primitives.serialization", globals(), "serialization"
    )
    rsa = LazyModule("cryptography.hazmat.primitives.asymmetric.rsa", globals(), "rsa")

#: golang-jwt accepts every RSA method when the key is an RSA public key.
_RSA_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]

#: Token lifetime when ``work-signing`` gives no ``tokenexpiration`` (upstream crashes there;
#: its built-in default without the entity is five minutes).
DEFAULT_TOKEN_EXPIRATION = 5 * 60.0


class SignatureError(ReceptorError):
    """A signature is missing, malformed, expired, for another node or not expected."""


class WorkSigner:
    """Makes tokens with the ``work-signing`` private key."""

    def __init__(self, key_path: str, expiration: float = DEFAULT_TOKEN_EXPIRATION) -> None:
        self.key_path = key_path
        self.expiration = expiration
        self._key: rsa.RSAPrivateKey | None = None

    def _load(self) -> rsa.RSAPrivateKey:
        if self._key is None:
            try:
                with open(self.key_path, "rb") as handle:
                    key = serialization.load_pem_private_key(handle.read(), password=None)
            except (OSError, ValueError, TypeError) as err:
                raise SignatureError(f"could not load signing key file: {err}") from None
            if not isinstance(key, rsa.RSAPrivateKey):
                raise SignatureError("could not load signing key file: key is not an RSA key")
            self._key = key
        return self._key

    def sign(self, audience: str, now: float | None = None) -> str:
        if not self.key_path:
            raise SignatureError("cannot sign work: signing key is empty")
        issued = time.time() if now is None else now
        claims = {"aud": [audience], "exp": int(issued + self.expiration)}
        return jwt.encode(claims, self._load(), algorithm="RS512")


class WorkVerifier:
    """Checks tokens with the ``work-verification`` public key."""

    def __init__(self, key_path: str) -> None:
        self.key_path = key_path
        self._key: Any = None

    def _load(self) -> Any:
        if self._key is None:
            try:
                with open(self.key_path, "rb") as handle:
                    self._key = serialization.load_pem_public_key(handle.read())
            except (OSError, ValueError, TypeError) as err:
                raise SignatureError(f"could not load verifying key file: {err}") from None
        return self._key

    def verify(self, token: str, node_id: str, now: float | None = None) -> None:
        """Raise :class:`SignatureError` with upstream's text unless ``token`` is valid for us."""
        if token == "":
            raise SignatureError("could not verify signature: signature is empty")
        if not self.key_path:
            raise SignatureError("could not verify signature: verifying key not specified")
        key = self._load()
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=_RSA_ALGORITHMS,
                options={"verify_aud": False, "verify_exp": False, "verify_nbf": False},
            )
        except jwt.InvalidSignatureError:
            raise SignatureError(
                "could not verify signature: crypto/rsa: verification error"
            ) from None
        except jwt.InvalidAlgorithmError:
            raise SignatureError(
                "could not verify signature: signing method (alg) is unavailable."
            ) from None
        except jwt.DecodeError as err:
            detail = str(err)
            if token.count(".") != 2:
                detail = "token contains an invalid number of segments"
            raise SignatureError(f"could not verify signature: {detail}") from None
        except jwt.PyJWTError as err:
            raise SignatureError(f"could not verify signature: {err}") from None
        _check_times(claims, time.time() if now is None else now)
        audience = claims.get("aud")
        if isinstance(audience, str):
            audience = [audience]
        if not isinstance(audience, list) or node_id not in audience:
            raise SignatureError("token audience did not match node ID")


def _check_times(claims: dict[str, Any], now: float) -> None:
    """golang-jwt v4's RegisteredClaims checks: exp, iat, nbf, each only if present."""
    exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf")
    if exp is not None:
        if not isinstance(exp, int | float):
            raise SignatureError("could not verify signature: token is malformed: exp is invalid")
        if now >= exp:
            delta = format_duration(int((now - exp) * 1e9))
            raise SignatureError(f"could not verify signature: token is expired by {delta}")
    if isinstance(iat, int | float) and now < iat:
        raise SignatureError("could not verify signature: token used before issued")
    if isinstance(nbf, int | float) and now < nbf:
        raise SignatureError("could not verify signature: token is not valid yet")
