"""`media:` of a role in the session spec: audio in the calls of the built-in scenarios."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from sipflow.media_upload import MAX_DATA_CHARS, AudioFormat, decode_data, linear_samples
from sipflow.runner_config import (
    DTMF_MAX_MS,
    DTMF_MIN_MS,
    DtmfConfig,
    MediaConfig,
    dtmf_play_ms,
)

# Media needs audio long enough to judge: the callers' hold_ms is the call's audio duration.
MIN_HOLD_MS = 1000
# After the last DTMF digit, before the BYE (the far end's receiver must see the end packets).
DTMF_MARGIN_MS = 300


class DtmfSpec(BaseModel):
    """DTMF each call sends as RFC 4733 telephone-events (payload type 96, volume 10: SIPp's
    play_dtmf) once answered; the far end's runner detects the digits (dtmf_calls,
    dtmf_mismatch_calls). The call must last long enough: 400 ms + 2 x duration_ms per digit
    and one more (the callers' hold_ms is checked against it)."""

    model_config = ConfigDict(extra="forbid")

    digits: Annotated[str, Field(pattern=r"^[0-9*#A-D]{1,32}$", description="0-9 * # A-D")]
    duration_ms: Annotated[
        int, Field(ge=DTMF_MIN_MS, le=DTMF_MAX_MS, description="each tone, in ms")
    ] = 100

    def play_ms(self) -> int:
        return dtmf_play_ms(self.digits, self.duration_ms)


class UploadedAudio(BaseModel):
    """Reference audio of your own (sipflow/media_upload.py): base64 of a WAV (16-bit PCM,
    8000 Hz, mono) or of headerless G.711 bytes, 1 to 10 s; looped for the call's hold time."""

    model_config = ConfigDict(extra="forbid")

    format: AudioFormat
    data: Annotated[str, Field(min_length=1, max_length=MAX_DATA_CHARS, repr=False)]

    @field_validator("data")
    @classmethod
    def _valid_audio(cls, v: str, info: ValidationInfo) -> str:
        fmt = info.data.get("format")
        if fmt is not None:
            linear_samples(fmt, decode_data(v))
        return v


def _audio_kind(v: Any) -> str:
    return "builtin" if isinstance(v, str) else "upload"


Audio = Annotated[
    Annotated[Literal["builtin"], Tag("builtin")] | Annotated[UploadedAudio, Tag("upload")],
    Discriminator(_audio_kind),
]


class MediaSpec(BaseModel):
    """Audio both ways in every call: the callers' and callees' SIPp stream the reference audio
    (built-in: a deterministic speech-like signal; or an uploaded clip), G.711, for the call's
    hold time, directly or through a relay (`relay: true`); each runner
    analyses what it receives (loss, duplicates, reordering, RFC 3550 jitter, E-model MOS;
    with `mos: pesq` also PESQ-NB against the reference, for up to 50 streams per runner, where
    the runner has the `pesq` package: else its pesq metrics stay empty; with `mos: visqol` also
    ViSQOL speech MOS-LQO (and PESQ), for SIPFLOW_MEDIA_VISQOL_MAX_CLIPS streams per runner)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    codec: Literal["PCMU", "PCMA"] = "PCMU"
    audio: Audio = "builtin"
    analyse: bool = True
    mos: Literal["emodel", "pesq", "visqol"] = "emodel"
    sample_pct: Annotated[
        float, Field(gt=0, le=100, description="% of the calls whose audio is analysed")
    ] = 100
    relay: bool = Field(
        default=False,
        description="the system under test relays the media (e.g. Kamailio + rtpengine): "
        "streams are tied to their calls by the SDP of the relayed leg, not by the sender",
    )
    dtmf: DtmfSpec | None = None

    @model_validator(mode="after")
    def _dtmf_needs_analysis(self) -> MediaSpec:
        if self.dtmf is not None and not self.analyse:
            # The far end's receiver detects the digits; without analysis there is none.
            raise ValueError("dtmf: needs analyse: true (the far end detects the digits)")
        return self

    def runner_config(self, visqol_streams: int = 5) -> MediaConfig:
        """visqol_streams: how many streams each runner scores with ViSQOL (mos: visqol)."""
        return MediaConfig(
            visqol_streams=visqol_streams,
            codec=self.codec,
            analyse=self.analyse,
            mos=self.mos,
            sample_pct=self.sample_pct,
            relay=self.relay,
            audio_format=None if isinstance(self.audio, str) else self.audio.format,
            audio_data=None if isinstance(self.audio, str) else self.audio.data,
            dtmf=None if self.dtmf is None else DtmfConfig(**self.dtmf.model_dump()),
        )
