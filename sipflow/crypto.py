"""AES-256-GCM under a keyring: the current key encrypts, every known key decrypts.

Keys come from SIPFLOW_ENCRYPTION_KEYS ("id1:base64,id2:base64", the first one encrypts) or,
when that is not set, from one random key kept in data_dir/secrets/encryption.keys (0600), made
by whichever process needs it first: the API, the worker and the CLI of one data_dir share it,
as they share the runner token key. Each ciphertext names the id of its key, so rotation is
putting a new key in front; the old ones keep decrypting what they encrypted.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sipflow.settings import Settings

NONCE_BYTES = 12  # GCM's standard nonce, random per message
KEY_BYTES = 32
_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


class CryptoError(Exception):
    """A key that cannot be used, or a ciphertext that does not decrypt (never says more)."""


@dataclass(frozen=True)
class Keyring:
    keys: dict[str, bytes]  # id -> key, in order: the first is the current one

    def __post_init__(self) -> None:
        if not self.keys:
            raise CryptoError("a keyring needs at least one key")

    @property
    def current(self) -> str:
        return next(iter(self.keys))

    def encrypt(self, plaintext: bytes, aad: bytes = b"") -> tuple[str, bytes]:
        """(key id, nonce + ciphertext + tag) under the current key; `aad` binds the ciphertext
        to its context (e.g. the row it belongs to), which decrypt must name again."""
        nonce = os.urandom(NONCE_BYTES)
        return self.current, nonce + AESGCM(self.keys[self.current]).encrypt(nonce, plaintext, aad)

    def decrypt(self, key_id: str, blob: bytes, aad: bytes = b"") -> bytes:
        key = self.keys.get(key_id)
        if key is None:
            raise CryptoError(f"unknown encryption key id {key_id!r}")
        try:
            return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except InvalidTag as exc:
            raise CryptoError(f"does not decrypt under key {key_id!r}") from exc


def parse_keys(text: str) -> Keyring:
    """ "id1:base64,id2:base64" -> Keyring; the error names the entry, never the key."""
    keys: dict[str, bytes] = {}
    for n, entry in enumerate(e.strip() for e in text.split(",") if e.strip()):
        key_id, sep, encoded = entry.partition(":")
        if not sep or not _KEY_ID.match(key_id):
            raise CryptoError(f"encryption key {n + 1}: expected id:base64 (id of [A-Za-z0-9_.-])")
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except binascii.Error as exc:
            raise CryptoError(f"encryption key {key_id!r} is not base64") from exc
        if len(key) != KEY_BYTES:
            raise CryptoError(f"encryption key {key_id!r} must be {KEY_BYTES} bytes")
        if key_id in keys:
            raise CryptoError(f"encryption key id {key_id!r} is listed twice")
        keys[key_id] = key
    return Keyring(keys)


def new_key_entry() -> str:
    """A fresh "id:base64" entry (what `sipflow keys`-style tooling or an operator adds)."""
    return f"k{secrets.token_hex(4)}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()}"


def keyring(settings: Settings) -> Keyring:
    if settings.encryption_keys is not None:
        return _parsed(settings.encryption_keys.get_secret_value())
    return _from_file(settings.data_dir.resolve() / "secrets" / "encryption.keys")


@lru_cache
def _parsed(text: str) -> Keyring:
    return parse_keys(text)


@lru_cache
def _from_file(path: Path) -> Keyring:
    """The keyring in `path`, made (owner-only) by whichever process needs it first: written
    whole to a file of its own, then linked into place, so no reader sees half a key."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(new_key_entry() + "\n")
        try:
            with contextlib.suppress(FileExistsError):  # another process was first: keep its key
                os.link(tmp, path)
        finally:
            tmp.unlink()
    return parse_keys(path.read_text())
