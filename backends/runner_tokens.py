"""Per-runner tokens: a containerized runner shows one to fetch its files from the API.

A token is an HMAC of (session id, runner id) under a key the worker and the API share
(SIPFLOW_RUNNER_TOKEN_SECRET, or a random key kept in data_dir/secrets). It is scoped to one
runner of one session; the API accepts it only while that session runs. It reaches the container
as a file copied in before the start, never through environment variables, command lines, image
layers or logs.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from sipflow.settings import Settings

PREFIX = "sfr1."


def token_key(settings: Settings) -> bytes:
    if settings.runner_token_secret is not None:
        secret = settings.runner_token_secret.get_secret_value()
        if len(secret) < 16:
            raise ValueError("SIPFLOW_RUNNER_TOKEN_SECRET must have at least 16 characters")
        return secret.encode()
    return _key_file(settings.data_dir.resolve() / "secrets" / "runner-token.key")


def _key_file(path: Path) -> bytes:
    """The key in `path`, made (owner-only) by whichever process needs it first."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    for _ in range(50):  # another process may be between creating and writing it
        key = path.read_bytes().strip()
        if key:
            return key
        os.sched_yield()
    raise RuntimeError(f"runner token key {path} is empty")


def runner_token(key: bytes, session_id: str, runner_id: str) -> str:
    mac = hmac.new(key, f"{session_id}/{runner_id}".encode(), hashlib.sha256).digest()
    return PREFIX + base64.urlsafe_b64encode(mac).decode().rstrip("=")


def token_matches(key: bytes, session_id: str, runner_id: str, token: str) -> bool:
    """Constant-time, on bytes: any text a header carries (non-ASCII too) just fails to match."""
    expected = runner_token(key, session_id, runner_id).encode()
    return hmac.compare_digest(expected, token.encode("utf-8", "surrogateescape"))
