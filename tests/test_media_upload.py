"""Uploaded reference audio (sipflow/media_upload.py, `media.audio`) and the relay join
(`media.relay`: streams tied to calls by the relayed leg's SDP), without a network: spec errors
at the field, conversion, the scenario's relay variant, and the store on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import io
import wave
from pathlib import Path
from typing import Any

import pytest

from runners.media_audio import encode, speech_like, ulaw_sample
from runners.media_rtp import StreamStats
from runners.media_session import SSRC_BASE, MediaSession, media_variant, relayed_calls
from runners.scenario_files import built_in_path
from sipflow import media_store, store
from sipflow.db import session_scope
from sipflow.media_upload import g711, linear_samples
from sipflow.messages import MediaReport, MediaSent
from sipflow.runner_config import MediaConfig
from sipflow.spec import SessionSpec
from sipflow.spec_file import SpecFileError, load_spec
from tests.api_fixtures import api_client_fixture  # noqa: F401
from tests.test_media import messages, spec, stream


def wav(samples: list[int], rate: int = 8000, channels: int = 1) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(s.to_bytes(2, "little", signed=True) * channels for s in samples))
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def with_audio(audio: Any, callee_audio: Any = None) -> dict[str, Any]:
    data = spec(media={"audio": audio})
    data["roles"]["callees"]["media"] = {"audio": callee_audio or audio}
    return data


def test_uploaded_audio_is_checked_at_the_field() -> None:
    ref = speech_like(2)
    ok = SessionSpec.model_validate(with_audio({"format": "wav", "data": b64(wav(ref))}))
    assert ok.roles.callers.media is not None
    cfg = ok.roles.callers.media.runner_config()
    assert cfg.audio_format == "wav" and cfg.audio_data is not None
    field = "roles.callers.media.audio.upload.data"
    header = messages(with_audio({"format": "ulaw", "data": b64(wav(ref))}))
    assert any(m.startswith(field) and "WAV file, not raw ulaw" in m for m in header), header
    stereo = messages(with_audio({"format": "wav", "data": b64(wav(ref[:8000], 16000, 2))}))
    assert any(m.startswith(field) and "16000 Hz, 2 channel" in m for m in stereo), stereo
    short = messages(with_audio({"format": "alaw", "data": b64(b"\xd5" * 4000)}))
    assert any(m.startswith(field) and "0.50 s" in m for m in short), short
    bad = messages(with_audio({"format": "ulaw", "data": "not base64!"}))
    assert any(m.startswith(field) and "base64" in m for m in bad), bad
    mp3 = messages(with_audio({"format": "mp3", "data": "AAAA"}))
    assert any(m.startswith("roles.callers.media.audio.upload.format") for m in mp3), mp3
    other = with_audio({"format": "wav", "data": b64(wav(ref))}, "builtin")
    assert "roles.callees.media.audio: must be the callers' audio" in messages(other)[0]


def test_uploaded_audio_is_422_at_the_field_through_the_api(api_client: Any) -> None:
    data = with_audio({"format": "ulaw", "data": b64(wav(speech_like(2)))})
    data |= {"name": "bad-audio", "target": {"host": "127.0.0.1", "port": 5090}}
    r = api_client.post("/v1/sessions", json=data)
    assert r.status_code == 422, r.text
    locs = [d["loc"] for d in r.json()["detail"]]
    assert ["body", "roles", "callers", "media", "audio", "upload", "data"] in locs, locs
    assert "WAV file" in r.text
    # The ~21 kB clip is not echoed back whole (every echoed string is cut at 200 characters).
    clip = data["roles"]["callers"]["media"]["audio"]["data"]
    assert len(r.content) < 8000 and clip not in r.text
    assert "characters)" in r.text


def test_conversion_g711_and_whole_frames() -> None:
    ref = speech_like(2)[:12345]  # not a whole number of 20 ms frames
    from_wav = linear_samples("wav", wav(ref))
    assert len(from_wav) == 12480 and from_wav[:12345] == ref and set(from_wav[12345:]) == {0}
    ulaw = encode(ref, "PCMU")
    from_ulaw = linear_samples("ulaw", ulaw)
    assert from_ulaw[:12345] == [ulaw_sample(b) for b in ulaw]
    # Streamed in the session's codec: a µ-law upload becomes A-law for PCMA.
    assert g711(from_ulaw, "PCMA") == encode(from_ulaw, "PCMA") != g711(from_ulaw, "PCMU")


def test_spec_file_names_an_audio_file(tmp_path: Path) -> None:
    (tmp_path / "clip.wav").write_bytes(wav(speech_like(2)))
    text = """
name: uploaded
target: {host: 127.0.0.1, port: 5090}
roles:
  callees: {accounts: [{user: bob, password: secret}], media: {audio: {file: clip.wav}}}
  callers: {max_calls: 1, hold_ms: 2000, media: {audio: {file: clip.wav}}}
"""
    (tmp_path / "s.yaml").write_text(text)
    parsed = load_spec(tmp_path / "s.yaml")
    assert parsed.roles.callers.media is not None
    assert parsed.roles.callers.media.runner_config().audio_format == "wav"
    (tmp_path / "s.yaml").write_text(
        text.replace("clip.wav}}}\n  callers", "gone.wav}}}\n  callers", 1)
    )
    with pytest.raises(SpecFileError) as info:
        load_spec(tmp_path / "s.yaml")
    assert info.value.errors[0].startswith("roles.callees.media.audio.file: cannot read")


def test_runner_streams_the_uploaded_clip(tmp_path: Path) -> None:
    from sipflow.runner_config import RunnerConfig

    ref = speech_like(2)
    media = MediaConfig(codec="PCMA", analyse=False, audio_format="wav", audio_data=b64(wav(ref)))
    cfg = RunnerConfig.model_construct(
        session_id="s",
        runner_id="caller-0",
        role="caller",
        local_ip="127.0.0.1",
        work_dir=tmp_path,
        media=media,
    )
    scenario = tmp_path / "call.xml"
    scenario.write_text(built_in_path("call").read_text())
    session = MediaSession(cfg, media, scenario)
    assert session.reference == ref
    assert (tmp_path / "uploaded.alaw").read_bytes() == encode(ref, "PCMA")
    assert f'rtp_stream="{tmp_path / "uploaded.alaw"},-1,8"' in scenario.read_text()


def test_relay_variant_reads_the_peer_sdp() -> None:
    relay = MediaConfig(relay=True)
    caller = media_variant(built_in_path("call").read_text(), relay, Path("ref.ulaw"))
    callee = media_variant(built_in_path("answer").read_text(), relay, Path("ref.ulaw"))
    for xml in (caller, callee):
        assert 'regexp="c=IN IP4 ([0-9.]+)"' in xml and 'regexp="m=audio ([0-9]+)"' in xml
        assert "sipflow-media [call_id] #[call_number] [$sfm_ip]:[$sfm_port]" in xml
    assert '<recv request="INVITE" crlf="true"><action><ereg' in callee
    direct = media_variant(built_in_path("call").read_text(), MediaConfig(), Path("ref.ulaw"))
    assert "ereg" not in direct and "[$sfm_ip]" not in direct


def test_relayed_streams_are_paired_with_calls_in_order(tmp_path: Path) -> None:
    log = tmp_path / "media.log"
    # c3 reuses c1's relay port (after c1 ended); c4's stream never came.
    log.write_text(
        "sipflow-media c1 198.18.5.1:30000\nsipflow-media c2 198.18.5.1:30002\n"
        "sipflow-media c3 198.18.5.1:30000\nsipflow-media c4 198.18.5.1:30004\n"
    )

    def s(src: str, ssrc: int, first: float) -> StreamStats:
        return StreamStats(src, ssrc, 0, first)

    streams = [
        s("198.18.5.1:30000", SSRC_BASE + 7, 9.0),
        s("198.18.5.1:30002", SSRC_BASE + 1, 2.0),
        s("198.18.5.1:30000", SSRC_BASE, 1.0),
        s("10.0.0.9:6000", SSRC_BASE, 1.5),  # not from the relay: no call
    ]
    assert relayed_calls(streams, log) == {
        ("198.18.5.1:30000", SSRC_BASE): "c1",
        ("198.18.5.1:30002", SSRC_BASE + 1): "c2",
        ("198.18.5.1:30000", SSRC_BASE + 7): "c3",
    }


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_store_joins_relayed_streams_by_call(database_url: str, order: tuple[int, int]) -> None:
    relay_src = "198.18.5.1:3000"

    def received(call_id: str, port: int, lost: int = 0) -> Any:
        return stream(f"{relay_src}{port}", SSRC_BASE, 100 - lost, lost).model_copy(
            update={"call_id": call_id}
        )

    # The same SSRC everywhere (each SIPp process counts from 0xCA110000), one relay address:
    # only the Call-IDs tell the streams apart.
    caller = MediaReport(
        session_id="r1",
        runner_id="caller-0",
        role="caller",
        relay=True,
        sent=[
            MediaSent(call_id=f"c{i}", src="10.250.1.100:6000", ssrc=SSRC_BASE + i)
            for i in range(2)
        ],
        received=[received("c0", 0)],  # c1: nothing came back (one-way)
    )
    callee = MediaReport(
        session_id="r1",
        runner_id="callee-0",
        role="callee",
        relay=True,
        sent=[
            MediaSent(call_id=f"c{i}", src="10.250.1.10:6000", ssrc=SSRC_BASE + i) for i in range(2)
        ],
        received=[received("c0", 2, lost=5), received("c1", 4)],
    )
    msgs = [caller, callee]
    with session_scope(database_url) as db:
        store.create_session(db, "r1", "default", "m", {}, None)
        for i in (*order, *order):
            media_store.store_media_report(db, msgs[i])
        page = media_store.calls_page(db, "r1", limit=10, offset=0)
        assert [(c.call_id, c.audio) for c in page.items] == [("c0", "both"), ("c1", "one_way")]
        c0 = {d.direction: d for d in page.items[0].directions}
        assert c0["caller_to_callee"].lost == 5 and c0["callee_to_caller"].lost == 0
        assert c0["caller_to_callee"].sender_runner == "caller-0"
        assert c0["caller_to_callee"].receiver_runner == "callee-0"
        m = media_store.measured(db, "r1")
        assert (m["media_calls"], m["one_way_audio_calls"]) == (2, 1)
