"""Temporal payloads encrypted with AES-GCM (sipflow.crypto), so histories hold no secret in clear.

Every client and the worker use `data_converter(settings)`: the pydantic converter plus this
codec. An encrypted payload is {encoding: binary/encrypted, encryption-key-id: <id>} and the
nonce + ciphertext of the whole original payload (its metadata too). A payload without that
encoding decodes unchanged, so histories recorded before the codec (tests/data/histories) and
search attributes keep working.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, PayloadCodec

from sipflow.crypto import Keyring, keyring
from sipflow.settings import Settings

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: Keyring) -> None:
        self.keys = keys

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encode_one(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decode_one(p) for p in payloads]

    def encode_one(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") == ENCODING:
            return payload  # never twice
        key_id, blob = self.keys.encrypt(payload.SerializeToString(), aad=ENCODING)
        return Payload(metadata={"encoding": ENCODING, KEY_ID: key_id.encode()}, data=blob)

    def decode_one(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID, b"").decode()
        return Payload.FromString(self.keys.decrypt(key_id, payload.data, aad=ENCODING))


def data_converter(settings: Settings) -> DataConverter:
    return dataclasses.replace(
        pydantic_data_converter, payload_codec=EncryptionCodec(keyring(settings))
    )
