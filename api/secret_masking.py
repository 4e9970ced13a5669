"""422 replies without secrets: pydantic's errors echo the `input` they judged, which may be a
password or a whole spec holding passwords. Every value under a secret's key becomes "***"."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sipflow.session_secrets import MASK

SECRET_KEYS = frozenset({"password", "secret", "token", "api_key"})


def masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: MASK if k in SECRET_KEYS and v is not None else masked(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [masked(v) for v in value]
    return value


def masked_errors(errors: Sequence[Any]) -> list[Any]:
    out = []
    for error in errors:
        error = dict(error)
        if "input" in error:
            on_secret = any(str(p) in SECRET_KEYS for p in error.get("loc", ()))
            error["input"] = MASK if on_secret else masked(error["input"])
        out.append(error)
    return out
