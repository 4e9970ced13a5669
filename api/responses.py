"""OpenAPI entries of the replies many routes share, so the schema lists every status the API
returns (schemathesis checks that it does)."""

from __future__ import annotations

from typing import Any

Responses = dict[int | str, dict[str, Any]]

# Every route: an undecodable body, one over SIPFLOW_API_MAX_BODY_BYTES, the database busy
# or unreachable.
COMMON: Responses = {
    400: {"description": "a body that cannot be decoded (not UTF-8, not JSON)"},
    413: {"description": "request body too large (SIPFLOW_API_MAX_BODY_BYTES)"},
    503: {"description": "the database (or Temporal) is busy or unreachable; retry later"},
}
# Routes that reach Temporal.
UNAVAILABLE: Responses = {503: {"description": "Temporal is unreachable"}}
REFUSED: Responses = {
    422: {
        "description": "invalid spec, or a target the tenant's policy does not allow; "
        "`loc` names the field"
    },
    429: {"description": "over a quota of the tenant's policy; `ctx.limit` names it"},
}
# Offsets of list pages beyond this are refused (422): no database takes 2**63.
MAX_OFFSET = 1_000_000_000


def media(*types: str, description: str = "OK") -> Responses:
    """A 200 whose body is text of the given media types."""
    return {
        200: {
            "description": description,
            "content": {t: {"schema": {"type": "string"}} for t in types},
        }
    }
