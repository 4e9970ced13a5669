"""What encryption costs: the payload codec (encode + decode of a session's workflow input, as
the API and worker do it) and the secret store (put + get of a password, SQLite), per operation.

    .venv/bin/python -m bench.codec_overhead [--n 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter

from api.schemas import EXAMPLE_SPEC_PROXY
from sipflow import secret_store
from sipflow.crypto import new_key_entry, parse_keys
from sipflow.db import migrate, session_scope
from sipflow.payload_codec import EncryptionCodec
from sipflow.workflow_types import SessionInput


def per_op_us(seconds: float, n: int) -> float:
    return seconds / n * 1e6


async def codec(n: int) -> None:
    keys = parse_keys(new_key_entry())
    codec = EncryptionCodec(keys)
    payload = pydantic_data_converter.payload_converter.to_payloads(
        [SessionInput(session_id="x" * 12, tenant="default", spec=EXAMPLE_SPEC_PROXY)]
    )
    size = payload[0].ByteSize()
    t0 = time.perf_counter()
    for _ in range(n):
        encoded = await codec.encode(payload)
    t1 = time.perf_counter()
    for _ in range(n):
        await codec.decode(encoded)
    t2 = time.perf_counter()
    print(f"payload {size} B -> {encoded[0].ByteSize()} B encrypted")
    print(f"codec encode {per_op_us(t1 - t0, n):.1f} us, decode {per_op_us(t2 - t1, n):.1f} us")


def store(n: int) -> None:
    keys = parse_keys(new_key_entry())
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        migrate(url)
        with session_scope(url) as db:
            t0 = time.perf_counter()
            for i in range(n):
                secret_store.put(db, keys, "t", f"s/{i}", "hunter2")
            t1 = time.perf_counter()
            for i in range(n):
                secret_store.get(db, keys, "t", f"s/{i}")
            t2 = time.perf_counter()
    put, get = per_op_us(t1 - t0, n), per_op_us(t2 - t1, n)
    print(f"secret store (SQLite) put {put:.0f} us, get {get:.0f} us")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args()
    asyncio.run(codec(args.n))
    store(min(args.n, 500))


if __name__ == "__main__":
    main()
