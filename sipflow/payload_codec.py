"""Temporal payloads encrypted with AES-GCM (sipflow.crypto), so histories hold no secret in clear.

Every client and the worker use `data_converter(settings)`: the pydantic converter plus this
codec. An encrypted payload is {encoding: binary/encrypted, encryption-key-id: <id>} and the
nonce + ciphertext of the whole original payload (its metadata too). A payload without that
encoding decodes unchanged, so histories recorded before the codec (tests/data/histories) and
search attributes keep working.

Runner hosts (docs/runner-hosts.md) hold no key of the stack. Each host gets keys of its own,
derived from the stack's keys and its host id (HKDF; id `h:<host>:<stack key id>`), from the
API with its heartbeat answer. The worker encrypts what it sends to a host's task queue (the
activities' input: the spec with its accounts' passwords, the runners' broker logins) under that
host's key, and the host encrypts its answers under it too; everything else (workflow inputs,
the main queue's activities, other hosts' work) stays under the stack's keys, which no host
has. So a host decodes only what was addressed to it, never another host's or another tenant's
payloads. Holders of the stack's keys (worker, API, codec endpoint) derive every host's key
from the id in the payload, so they decode everything as before.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Sequence
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    ActivitySerializationContext,
    DataConverter,
    PayloadCodec,
    SerializationContext,
    WithSerializationContext,
)

from sipflow.crypto import KEY_BYTES, CryptoError, Keyring, keyring
from sipflow.settings import Settings

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
HOST_KEY_PREFIX = "h:"


def host_key_id(host_id: str, stack_key_id: str) -> str:
    return f"{HOST_KEY_PREFIX}{host_id}:{stack_key_id}"


@lru_cache(maxsize=1024)
def host_key(stack_key: bytes, host_id: str) -> bytes:
    """A runner host's codec key: HKDF-SHA256 of a stack key, bound to the host id."""
    info = b"sipflow runner host codec key\0" + host_id.encode()
    return HKDF(hashes.SHA256(), KEY_BYTES, salt=None, info=info).derive(stack_key)


def host_keyring(stack: Keyring, host_id: str) -> Keyring:
    """The keys a runner host gets (one per stack key, the current one first)."""
    return Keyring(
        {host_key_id(host_id, kid): host_key(k, host_id) for kid, k in stack.keys.items()}
    )


def host_key_entries(stack: Keyring, host_id: str) -> list[str]:
    """host_keyring as "id:base64" entries (the heartbeat answer carries them)."""
    ring = host_keyring(stack, host_id)
    return [f"{kid}:{base64.b64encode(k).decode()}" for kid, k in ring.keys.items()]


def parse_host_keys(entries: list[str]) -> Keyring:
    keys: dict[str, bytes] = {}
    for entry in entries:
        kid, sep, encoded = entry.rpartition(":")
        if not sep or not kid.startswith(HOST_KEY_PREFIX):
            raise CryptoError("a runner host key is h:<host>:<id>:base64")
        key = base64.b64decode(encoded, validate=True)
        if len(key) != KEY_BYTES:
            raise CryptoError(f"runner host key {kid!r} must be {KEY_BYTES} bytes")
        keys[kid] = key
    return Keyring(keys)


class EncryptionCodec(PayloadCodec, WithSerializationContext):
    """`keys`: the stack's keyring (worker, API, CLI) or a runner host's (host_keyring).
    With the stack's keys and `host_task_queue_of` (the stack's task queue), payloads for a
    runner host's task queue are encrypted under that host's key."""

    def __init__(
        self,
        keys: Keyring,
        stack_task_queue: str | None = None,
        encrypt_for_host: str | None = None,
    ) -> None:
        self.keys = keys
        self.stack_task_queue = stack_task_queue
        self.encrypt_for_host = encrypt_for_host

    def with_context(self, context: SerializationContext) -> EncryptionCodec:
        host = None
        if self.stack_task_queue is not None and isinstance(context, ActivitySerializationContext):
            # sipflow.runner_hosts.host_task_queue: <stack task queue>-host-<host id>
            prefix = f"{self.stack_task_queue}-host-"
            queue = context.activity_task_queue or ""
            if queue.startswith(prefix) and len(queue) > len(prefix):
                host = queue[len(prefix) :]
        if host == self.encrypt_for_host:
            return self
        return EncryptionCodec(self.keys, self.stack_task_queue, host)

    def _key_for(self, key_id: str) -> tuple[Keyring, str]:
        """The keyring that holds `key_id`: ours, or a host key derived from ours."""
        if key_id in self.keys.keys or not key_id.startswith(HOST_KEY_PREFIX):
            return self.keys, key_id
        host, _, stack_id = key_id[len(HOST_KEY_PREFIX) :].rpartition(":")
        stack_key = self.keys.keys.get(stack_id)
        if not host or stack_key is None:
            return self.keys, key_id  # not ours: decrypt says "unknown encryption key id"
        return Keyring({key_id: host_key(stack_key, host)}), key_id

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encode_one(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decode_one(p) for p in payloads]

    def encode_one(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") == ENCODING:
            return payload  # never twice
        keys = self.keys
        if self.encrypt_for_host is not None:
            keys = host_keyring(self.keys, self.encrypt_for_host)
        key_id, blob = keys.encrypt(payload.SerializeToString(), aad=ENCODING)
        return Payload(metadata={"encoding": ENCODING, KEY_ID: key_id.encode()}, data=blob)

    def decode_one(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        keys, key_id = self._key_for(payload.metadata.get(KEY_ID, b"").decode())
        return Payload.FromString(keys.decrypt(key_id, payload.data, aad=ENCODING))


def data_converter(settings: Settings) -> DataConverter:
    """The stack's converter: its keys; a runner host's task queue gets that host's key."""
    codec = EncryptionCodec(keyring(settings), stack_task_queue=settings.task_queue)
    return dataclasses.replace(pydantic_data_converter, payload_codec=codec)


def host_data_converter(keys: Keyring) -> DataConverter:
    """A runner host's converter: only its own keys (from its heartbeat answer)."""
    return dataclasses.replace(pydantic_data_converter, payload_codec=EncryptionCodec(keys))
