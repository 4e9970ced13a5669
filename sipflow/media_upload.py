"""Uploaded reference audio (`media.audio: {format, data}`): checked and converted when the spec
is validated, and again by the runner that streams it.

Accepted: a WAV file of 16-bit PCM, 8000 Hz, mono (`format: wav`), or headerless G.711 bytes
(`format: ulaw` or `alaw`; a RIFF/WAV header there is refused, since SIPp would send it as audio),
1 to MAX_SECONDS long, base64 in `data`. The runner streams it in the session's codec (transcoded
if the upload is in the other law) and scores PESQ against its linear samples. A spec file may
name a file instead (`audio: {file: clip.wav}`): `inline_audio_files` reads it (the CLI's spec
loader does, relative to the spec file) so the API only ever sees `data`.
"""

from __future__ import annotations

import base64
import binascii
import io
import wave
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, Literal

from sipflow.g711 import RATE, alaw_sample, encode, ulaw_sample

AudioFormat = Literal["wav", "ulaw", "alaw"]
FRAME_SAMPLES = 160  # 20 ms at 8 kHz: one RTP packet
MIN_SECONDS = 1
# Both roles carry the clip in the spec (which Temporal keeps in the session's history): bounded.
MAX_SECONDS = 10
# base64 of MAX_SECONDS of 16-bit PCM plus a generous WAV header.
MAX_DATA_CHARS = (MAX_SECONDS * RATE * 2 + 4096) * 4 // 3 + 4


def linear_samples(fmt: AudioFormat, data: bytes) -> list[int]:
    """The audio's 16-bit linear samples; ValueError (a message for the `data` field) if it is
    not what `fmt` says or not 1..MAX_SECONDS s at 8 kHz mono."""
    if fmt == "wav":
        samples = _wav_samples(data)
    else:
        if data[:4] == b"RIFF" or data[:4] == b"RIFX":
            raise ValueError(
                f"this is a WAV file, not raw {fmt} bytes (its header would be sent as audio):"
                " give format: wav, or strip the header"
            )
        decode = ulaw_sample if fmt == "ulaw" else alaw_sample
        table = [decode(b) for b in range(256)]
        samples = [table[b] for b in data]
    seconds = len(samples) / RATE
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise ValueError(
            f"the audio lasts {seconds:.2f} s at 8000 Hz: give {MIN_SECONDS} to {MAX_SECONDS} s"
        )
    # Whole 20 ms frames: packet k of the looped stream then holds samples 160k.. (PESQ's
    # alignment); the last frame is padded with silence.
    samples += [0] * (-len(samples) % FRAME_SAMPLES)
    return samples


def _wav_samples(data: bytes) -> list[int]:
    try:
        with wave.open(io.BytesIO(data)) as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise ValueError(
            f"not a PCM WAV file ({exc}): give 16-bit PCM, 8000 Hz, mono, or raw ulaw/alaw bytes"
        ) from exc
    if (channels, width, rate) != (1, 2, RATE):
        raise ValueError(
            f"the WAV is {width * 8}-bit, {rate} Hz, {channels} channel(s): give 16-bit PCM,"
            " 8000 Hz, mono (e.g. sox in.wav -r 8000 -c 1 -b 16 out.wav)"
        )
    return [
        int.from_bytes(frames[i : i + 2], "little", signed=True) for i in range(0, len(frames), 2)
    ]


def decode_data(data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not base64: {exc}") from exc


def g711(samples: list[int], codec: Literal["PCMU", "PCMA"]) -> bytes:
    """What SIPp streams: the samples in the session's codec, headerless."""
    return encode(samples, codec)


def inline_audio_files(data: MutableMapping[str, Any], base_dir: Path) -> list[str]:
    """Spec-file convenience: each role's `media.audio: {file: PATH}` becomes `{format, data}`
    (format from the suffix unless given: .wav, .ulaw/.ul/.pcmu, .alaw/.al/.pcma); PATH is
    relative to base_dir. Returns the errors (`path: message`) of files it could not read."""
    errors: list[str] = []
    roles = data.get("roles")
    if not isinstance(roles, dict):
        return errors
    for name, role in roles.items():
        media = role.get("media") if isinstance(role, dict) else None
        if not isinstance(media, dict):
            continue
        audio = media.get("audio")
        if not (isinstance(audio, dict) and isinstance(audio.get("file"), str)):
            continue
        path = (base_dir / audio["file"]).expanduser()
        try:
            raw = path.read_bytes()
        except OSError as exc:
            errors.append(f"roles.{name}.media.audio.file: cannot read {path}: {exc.strerror}")
            continue
        suffix = path.suffix.lower().lstrip(".")
        by_suffix = {"ul": "ulaw", "pcmu": "ulaw", "al": "alaw", "pcma": "alaw"}
        fmt = audio.get("format") or by_suffix.get(suffix, suffix)
        media["audio"] = {"format": fmt, "data": base64.b64encode(raw).decode("ascii")}
    return errors
