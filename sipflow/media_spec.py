"""`media:` of a role in the session spec: audio in the calls of the built-in scenarios."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from sipflow.runner_config import MediaConfig

# Media needs audio long enough to judge: the callers' hold_ms is the call's audio duration.
MIN_HOLD_MS = 1000


class MediaSpec(BaseModel):
    """Audio both ways in every call: the callers' and callees' SIPp stream the built-in reference
    audio (a deterministic speech-like signal, G.711) for the call's hold time; each runner
    analyses what it receives (loss, duplicates, reordering, RFC 3550 jitter, E-model MOS;
    with `mos: pesq` also PESQ-NB against the reference, for up to 50 streams per runner, where
    the runner has the `pesq` package: else its pesq metrics stay empty)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    codec: Literal["PCMU", "PCMA"] = "PCMU"
    audio: Literal["builtin"] = "builtin"
    analyse: bool = True
    mos: Literal["emodel", "pesq"] = "emodel"
    sample_pct: Annotated[
        float, Field(gt=0, le=100, description="% of the calls whose audio is analysed")
    ] = 100
    relay: bool = Field(
        default=False,
        description="the system under test relays the media (e.g. Kamailio + rtpengine): "
        "streams are tied to their calls by the SDP of the relayed leg, not by the sender",
    )

    def runner_config(self) -> MediaConfig:
        return MediaConfig(
            codec=self.codec,
            analyse=self.analyse,
            mos=self.mos,
            sample_pct=self.sample_pct,
            relay=self.relay,
        )
