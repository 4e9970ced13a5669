"""Control characters in a request's path or query are refused (422) before any route runs: no
identifier or filter has one, and a NUL reaching PostgreSQL is an error, not a miss."""

from __future__ import annotations

import json
import re
from urllib.parse import unquote

from starlette.types import ASGIApp, Receive, Scope, Send

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class RequestGuardMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            query = unquote(scope.get("query_string", b"").decode("latin-1"))
            where = "path" if _CONTROL.search(scope["path"]) else None
            where = where or ("query" if _CONTROL.search(query) else None)
            if where:
                await _refuse(send, where)
                return
        await self.app(scope, receive, send)


async def _refuse(send: Send, where: str) -> None:
    item = {"loc": [where], "msg": "control characters are not allowed", "type": "value_error"}
    body = json.dumps({"detail": [item]}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 422, "headers": headers})
    await send({"type": "http.response.body", "body": body})
