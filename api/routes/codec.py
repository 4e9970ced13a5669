"""Temporal's remote codec protocol, for the Temporal Web UI's "codec endpoint" setting:

    POST /v1/codec/decode   {"payloads": [{"metadata": {k: base64}, "data": base64}, ...]}
    POST /v1/codec/encode   the same shape, the other way

with sipflow.payload_codec's keys, so the Web UI shows the clear payloads of sessions'
histories to an admin. Browsers call it from the UI's origin (settings.temporal_ui_url): CORS
with credentials for that origin only. `sipflow up` starts the dev server with
`--ui-codec-endpoint <api>/v1/codec`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from pydantic import BaseModel, Field
from temporalio.api.common.v1 import Payloads

from api.auth import AUTH_RESPONSES, admin_without_csrf
from api.deps import SettingsDep
from sipflow.crypto import CryptoError, keyring
from sipflow.payload_codec import EncryptionCodec
from sipflow.settings import Settings

# Admins only; without the CSRF header: the Web UI cannot send it, and decoding changes nothing.
router = APIRouter(
    prefix="/codec",
    tags=["codec"],
    dependencies=[Depends(admin_without_csrf)],
    responses=AUTH_RESPONSES,
)
# Browsers send the CORS preflight without credentials: it answers without the admin check.
preflight = APIRouter(prefix="/codec", tags=["codec"], include_in_schema=False)

ALLOW_HEADERS = "Content-Type, Authorization, X-Namespace"


class CodecPayload(BaseModel):
    metadata: dict[str, str] = Field(default={}, description="values base64")
    data: str = Field(default="", description="base64")


class CodecPayloads(BaseModel):
    payloads: list[CodecPayload]


def _ui_origin(settings: Settings) -> str:
    return settings.temporal_ui_url.rstrip("/")


def cors(request: Request, response: Response, settings: SettingsDep) -> None:
    """The UI's origin may read the answer, with credentials (the dashboard's session cookie
    or an Authorization header)."""
    origin = request.headers.get("origin")
    if origin is not None and origin == _ui_origin(settings):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
    response.headers["Vary"] = "Origin"


CorsDep = Annotated[None, Depends(cors)]


@preflight.options("/encode")
@preflight.options("/decode")
def codec_preflight(request: Request, settings: SettingsDep) -> Response:
    origin = request.headers.get("origin")
    if origin != _ui_origin(settings):
        return Response(status_code=status.HTTP_403_FORBIDDEN)
    return Response(
        status_code=status.HTTP_204_NO_CONTENT,
        headers={
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true",
            "Access-Control-Allow-Methods": "POST",
            "Access-Control-Allow-Headers": ALLOW_HEADERS,
            "Access-Control-Max-Age": "600",
            "Vary": "Origin",
        },
    )


def _payloads(body: CodecPayloads) -> Payloads:
    try:
        return ParseDict(body.model_dump(), Payloads())
    except ParseError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"not payloads: {exc}") from exc


def _answer(payloads: Payloads) -> CodecPayloads:
    # Protobuf's JSON leaves an empty list out; the protocol's answer always has one.
    return CodecPayloads.model_validate({"payloads": [], **MessageToDict(payloads)})


BAD: dict[int | str, dict[str, str]] = {
    400: {"description": "not payloads, or a payload that does not decrypt"},
    403: {"description": "not an admin"},
}


@router.post("/decode", response_model=CodecPayloads, responses=BAD, summary="Decode payloads")
async def decode(body: CodecPayloads, settings: SettingsDep, _: CorsDep) -> CodecPayloads:
    codec = EncryptionCodec(keyring(settings))
    try:
        decoded = await codec.decode(list(_payloads(body).payloads))
    except CryptoError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    return _answer(Payloads(payloads=decoded))


@router.post("/encode", response_model=CodecPayloads, responses=BAD, summary="Encode payloads")
async def encode(body: CodecPayloads, settings: SettingsDep, _: CorsDep) -> CodecPayloads:
    codec = EncryptionCodec(keyring(settings))
    return _answer(Payloads(payloads=await codec.encode(list(_payloads(body).payloads))))
