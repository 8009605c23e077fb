"""Model signatures: proof of origin, not only integrity.

The sha256 recorded for each artifact sits in the same database as its bytes, so it proves
that the bytes are the ones recorded, not who recorded them: anyone who can write to the
database could add a model (a pickle: code) and promote it. Training therefore signs each
model with an Ed25519 private key that only training holds (``VIGIL_MODEL_SIGNING_KEY``);
the service, the monitor and retraining hold only the public key
(``VIGIL_MODEL_VERIFY_KEY``) and verify before anything of the model is read or unpickled.

What is signed is the model's manifest: its tag and every artifact's name and sha256. Each
artifact's bytes are checked against that sha256 on every read (``vigil.registry.artifacts``), so
the signature covers every byte. The signature is stored as one more artifact, ``SIGNATURE``.

Ed25519 rather than HMAC: with HMAC every verifier would hold the key that also signs, so a
compromised replica could sign models of its own.

vigil keys keygen    # prints a new key pair (base64), for the two settings
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping

SIGNATURE = "signature.ed25519"


class ModelSignatureError(RuntimeError):
    """A model whose signature is missing (when one is required) or does not verify."""


def manifest(tag: str, artifacts: Mapping[str, str]) -> bytes:
    """The signed bytes: tag and artifact digests (the signature itself left out)."""
    body = {"tag": tag, "artifacts": {k: v for k, v in artifacts.items() if k != SIGNATURE}}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def sign(private_key_b64: str, tag: str, artifacts: Mapping[str, str]) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.from_private_bytes(_raw(private_key_b64, "VIGIL_MODEL_SIGNING_KEY"))
    return key.sign(manifest(tag, artifacts))


def verify(
    public_key_b64: str | None,
    tag: str,
    artifacts: Mapping[str, str],
    signature: bytes | None,
    *,
    required: bool,
) -> str:
    """How the model's origin stands: ``verified``, or ``unsigned`` (allowed only when not
    ``required``); ``ModelSignatureError`` for a signature that does not verify, and for an
    unsigned model, or no public key, when ``required``."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if signature is None:
        if required:
            raise ModelSignatureError(
                f"{tag} is not signed and VIGIL_REQUIRE_SIGNED_MODELS is set: refused"
            )
        return "unsigned"
    if not public_key_b64:
        if required:
            raise ModelSignatureError(
                f"{tag} cannot be verified: VIGIL_REQUIRE_SIGNED_MODELS is set but "
                "VIGIL_MODEL_VERIFY_KEY is not"
            )
        return "unsigned"  # nothing to check it with
    key = Ed25519PublicKey.from_public_bytes(_raw(public_key_b64, "VIGIL_MODEL_VERIFY_KEY"))
    try:
        key.verify(signature, manifest(tag, artifacts))
    except InvalidSignature:
        raise ModelSignatureError(
            f"{tag}: its signature does not verify with VIGIL_MODEL_VERIFY_KEY "
            "(signed with another key, or its artifacts changed): refused"
        ) from None
    return "verified"


def keygen() -> tuple[str, str]:
    """A new (private, public) key pair, each as base64 of its 32 raw bytes."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    raw = serialization.Encoding.Raw
    private = key.private_bytes(raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    public = key.public_key().public_bytes(raw, serialization.PublicFormat.Raw)
    return base64.b64encode(private).decode(), base64.b64encode(public).decode()


def _raw(value: str, name: str) -> bytes:
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ModelSignatureError(f"{name} must be the base64 of a 32-byte Ed25519 key")
    return raw
