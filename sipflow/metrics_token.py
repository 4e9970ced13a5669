"""The bearer token Prometheus scrapes the API's /metrics with (the series span all tenants,
so a tenant's API key does not open them). SIPFLOW_METRICS_TOKEN, or a random token kept in
data_dir/secrets/metrics.token (0600): point Prometheus' `credentials_file` at it."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from sipflow.settings import Settings

MIN_LENGTH = 16


def token_file(settings: Settings) -> Path:
    return settings.data_dir.resolve() / "secrets" / "metrics.token"


def metrics_token(settings: Settings) -> str:
    if settings.metrics_token is not None:
        token = settings.metrics_token.get_secret_value()
        if len(token) < MIN_LENGTH:
            raise ValueError(f"SIPFLOW_METRICS_TOKEN must have at least {MIN_LENGTH} characters")
        return token
    path = token_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"sfm_{secrets.token_urlsafe(32)}")
    for _ in range(50):  # another process may be between creating and writing it
        token = path.read_text().strip()
        if token:
            return token
        os.sched_yield()
    raise RuntimeError(f"metrics token file {path} is empty")
