"""The audit log's keys, all kept outside the database.

- The signing key (Ed25519, PEM): signs every record's hash and every checkpoint. Only the public
  half is needed to verify, so an auditor can check a log without being able to write one.
- The pseudonym key (any secret text): keys the lookup from a person to their pseudonym, so the
  database alone does not tell whose pseudonym is whose by trying ids.

Each comes from the config (`audit.signing_key`, `audit.pseudonym_key`: a file path or the value
itself, usually `${ENV_VAR}`), else from ESCALATOR_AUDIT_SIGNING_KEY / ESCALATOR_AUDIT_PSEUDONYM_KEY.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SIGNING_KEY_ENV = "ESCALATOR_AUDIT_SIGNING_KEY"
PSEUDONYM_KEY_ENV = "ESCALATOR_AUDIT_PSEUDONYM_KEY"


class AuditKeyError(Exception):
    """A key that cannot be read or used; the message says which and why."""


def key_id(public: Ed25519PublicKey) -> str:
    """A short, stable name for a public key: records and checkpoints say which key signed them."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class Signer:
    private: Ed25519PrivateKey
    key_id: str

    def sign(self, message: bytes) -> str:
        return base64.b64encode(self.private.sign(message)).decode()


@dataclass(frozen=True)
class AuditKeys:
    """What appending needs from outside the database; both parts are optional."""

    signer: Signer | None = None
    pseudonym_key: bytes | None = None

    @classmethod
    def load(cls, signing_key: str | None = None, pseudonym_key: str | None = None) -> AuditKeys:
        """From config values (a path or the value itself), falling back to the environment."""
        signing = signing_key or os.environ.get(SIGNING_KEY_ENV) or None
        secret = pseudonym_key or os.environ.get(PSEUDONYM_KEY_ENV) or None
        return cls(
            signer=load_signer(signing) if signing else None,
            pseudonym_key=_read_secret(secret) if secret else None,
        )

    def lookup(self, platform: str, person_id: str) -> str:
        """The key a person is found under in the pseudonym table (HMAC when a key is set)."""
        message = f"{platform}\0{person_id}".encode()
        if self.pseudonym_key is None:
            return "sha256:" + hashlib.sha256(message).hexdigest()
        return "hmac:" + hmac.new(self.pseudonym_key, message, hashlib.sha256).hexdigest()


def load_signer(value: str) -> Signer:
    """The private key from PEM text or from a file holding it."""
    if value.lstrip().startswith("-----BEGIN"):
        data, where = value.encode(), "the signing key given as text"
    else:
        where = f"signing key file {value}"
        try:
            data = Path(value).read_bytes()
        except OSError as exc:
            raise AuditKeyError(f"cannot read the {where}: {exc.strerror}") from exc
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise AuditKeyError(f"{where} is not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(private, Ed25519PrivateKey):
        raise AuditKeyError(f"{where} is not an Ed25519 key (`escalator audit keygen` makes one)")
    return Signer(private, key_id(private.public_key()))


def load_public_keys(paths: Iterable[str]) -> dict[str, Ed25519PublicKey]:
    """Public keys by key id, from PEM files (several: keys rotated over the log's life)."""
    keys: dict[str, Ed25519PublicKey] = {}
    for path in paths:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise AuditKeyError(f"cannot read the public key file {path}: {exc.strerror}") from exc
        try:
            public = serialization.load_pem_public_key(data)
        except ValueError as exc:
            raise AuditKeyError(f"public key file {path} is not a PEM public key: {exc}") from exc
        if not isinstance(public, Ed25519PublicKey):
            raise AuditKeyError(f"public key file {path} is not an Ed25519 key")
        keys[key_id(public)] = public
    return keys


def check_signature(keys: Mapping[str, Ed25519PublicKey], kid: str, message: bytes, signature: str) -> str:
    """'' when `signature` is `kid`'s over `message`, else what is wrong."""
    public = keys.get(kid)
    if public is None:
        return f"signed by key {kid}, which is not among the public keys given"
    try:
        public.verify(base64.b64decode(signature, validate=True), message)
    except (InvalidSignature, ValueError):
        return f"the signature is not key {kid}'s"
    return ""


def generate(private_path: Path, public_path: Path) -> str:
    """Write a new Ed25519 key pair (the private file readable by its owner only); returns its key id.
    Never overwrites a file."""
    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for path in (private_path, public_path):
        if path.exists():
            raise AuditKeyError(f"{path} already exists: a key file is never overwritten")
    try:
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(private_pem)
        with open(public_path, "xb") as out:
            out.write(public_pem)
    except OSError as exc:
        raise AuditKeyError(f"cannot write the key pair: {exc}") from exc
    return key_id(private.public_key())


def _read_secret(value: str) -> bytes:
    """A pseudonym key: the text itself, or the contents of the file it names."""
    path = Path(value)
    if len(value) < 4096 and "\n" not in value and path.is_file():
        secret = path.read_bytes().strip()
    else:
        secret = value.encode()
    if len(secret) < 16:
        raise AuditKeyError("the pseudonym key is shorter than 16 bytes: use a long random secret")
    return secret
