"""Error replies the routes share: validation (422, NaN-safe, secrets masked), a refused policy
(422/429), an exhausted or unreachable database (503)."""

from __future__ import annotations

import logging
import math
import re
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from api.deps import DatabaseBusy
from api.secret_masking import masked_errors
from sipflow.tenant_policy import PolicyViolation

log = logging.getLogger(__name__)
RETRY = {"Retry-After": "1"}
_SURROGATE = re.compile("[\ud800-\udfff]")
# A check across fields (a model validator) names the field it is about first: "roles.x: ...".
_FIELD_FIRST = re.compile(r"^Value error, ([a-z_]+(?:\.[a-z0-9_]+)*): ")
# An echoed input string longer than this is cut (an uploaded clip is ~100 KB of base64; the
# reply names the field, the client has the value).
ECHO_MAX_CHARS = 200


def json_safe(value: Any) -> Any:
    """`value` as JSON can carry it: NaN/Infinity as strings, lone surrogates (JSON's escapes
    can make them) as '?'. An error quotes the input, which may hold either."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode() if _SURROGATE.search(value) else value
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def shortened(value: Any) -> Any:
    """`value` with each string longer than ECHO_MAX_CHARS cut, saying how long it was."""
    if isinstance(value, str) and len(value) > ECHO_MAX_CHARS:
        return f"{value[:ECHO_MAX_CHARS]}... ({len(value)} characters)"
    if isinstance(value, dict):
        return {k: shortened(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shortened(v) for v in value]
    return value


def with_field_locations(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A model validator's error sits at the model's own loc; move it to the field its message
    names, so a client points at the field that is wrong (body.roles.callees.accounts)."""
    for e in errors:
        m = _FIELD_FIRST.match(str(e.get("msg", "")))
        if e.get("type") == "value_error" and m:
            e["loc"] = [*e["loc"], *m.group(1).split(".")]
    return errors


def policy_reply(exc: PolicyViolation) -> JSONResponse:
    item: dict[str, Any] = {
        "loc": ["body", *exc.loc],
        "msg": exc.message,
        "type": "target_not_allowed" if exc.kind == "target" else "quota_exceeded",
        "ctx": {"limit": exc.limit, "max": exc.maximum},
    }
    if exc.kind == "target":
        return JSONResponse({"detail": [item]}, status.HTTP_422_UNPROCESSABLE_CONTENT)
    return JSONResponse({"detail": [item]}, status.HTTP_429_TOO_MANY_REQUESTS, headers=RETRY)


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Pydantic's `input` echo without secrets, short, and as JSON can carry it.
        errors = json_safe(jsonable_encoder(with_field_locations(masked_errors(exc.errors()))))
        for e in errors:
            if "input" in e:
                e["input"] = shortened(e["input"])
        return JSONResponse({"detail": errors}, status.HTTP_422_UNPROCESSABLE_CONTENT)

    @app.exception_handler(PolicyViolation)
    async def _refused(_: Request, exc: PolicyViolation) -> JSONResponse:
        return policy_reply(exc)

    @app.exception_handler(DatabaseBusy)
    @app.exception_handler(PoolTimeout)
    async def _busy(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            {"detail": f"the database is busy: {exc}"}, status.HTTP_503_SERVICE_UNAVAILABLE, RETRY
        )

    @app.exception_handler(OperationalError)
    async def _unreachable(_: Request, exc: OperationalError) -> JSONResponse:
        log.warning("database error: %s", exc)
        first = str(exc.orig or exc).splitlines()[0]
        return JSONResponse(
            {"detail": f"the database is unavailable: {first}"},
            status.HTTP_503_SERVICE_UNAVAILABLE,
            RETRY,
        )
