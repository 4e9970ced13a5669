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

from sipflow.runner_config import RunnerConfig
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


# -- broker credentials (backends/broker_auth.py) ----------------------------------------------
# A runner's MQTT password is derived like its token, under the same key but with a label of its
# own, so a broker password is never a valid API token and the other way round. Every holder of
# the key (worker, API, the stack writing the broker's file) derives the same credentials and
# nothing has to be stored or handed over besides the runner's config.
ADMIN_USER = "sipflow-admin"  # creates and removes runner clients (dynamic security)
INGEST_USER = "sipflow-ingest"  # the worker's ingest: reads every session's runner topics
CONTROL_USER = "sipflow-control"  # the worker: publishes control messages
LIVE_USER = "sipflow-live"  # the API's dashboard: reads runner topics for the live view
RUNNER_USER_PREFIX = "runner/"


def runner_broker_user(session_id: str, runner_id: str) -> str:
    return f"{RUNNER_USER_PREFIX}{session_id}/{runner_id}"


def broker_password(key: bytes, username: str) -> str:
    mac = hmac.new(key, b"mqtt\0" + username.encode(), hashlib.sha256).digest()
    return "sfm1." + base64.urlsafe_b64encode(mac).decode().rstrip("=")


def with_broker_login(key: bytes, cfg: RunnerConfig) -> RunnerConfig:
    user = runner_broker_user(cfg.session_id, cfg.runner_id)
    return with_password(cfg, broker_password(key, user))


def with_password(cfg: RunnerConfig, password: str) -> RunnerConfig:
    """The runner's login with a password made elsewhere (a runner host's, by the stack)."""
    user = runner_broker_user(cfg.session_id, cfg.runner_id)
    return cfg.model_copy(update={"mqtt_username": user, "mqtt_password": password})
