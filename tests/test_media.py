"""Media without a network: G.711, RTP stream statistics, the E-model, the scenarios' media
variant, the spec's `media:`, and the per-call store on real SQLite and PostgreSQL."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from runners.media_audio import alaw_byte, encode, speech_like, ulaw_byte, ulaw_sample
from runners.media_emodel import mos_cqe, r_factor
from runners.media_rtp import RtpReceiver, StreamStats, sampled
from runners.media_session import SSRC_BASE, media_variant, sent_streams, started_streams
from runners.scenario_files import built_in_path
from sipflow import media_store, store
from sipflow.db import session_scope
from sipflow.messages import MediaReport, MediaSent, MediaStream
from sipflow.runner_config import MediaConfig
from sipflow.spec import SessionSpec
from sipflow.thresholds import parse_threshold


# -- G.711 and the reference audio -------------------------------------------------------------
def test_g711_reference_values() -> None:
    assert [ulaw_byte(s) for s in (0, 32767, -32768)] == [0xFF, 0x80, 0x00]
    assert [alaw_byte(s) for s in (0, -1, 32767, -32768)] == [0xD5, 0x55, 0xAA, 0x2A]
    for s in (0, 100, -100, 1000, -5000, 30000):
        assert abs(ulaw_sample(ulaw_byte(s)) - s) <= max(8, abs(s) // 16)


def test_reference_audio_is_deterministic_and_speech_level() -> None:
    a, b = encode(speech_like(), "PCMU"), encode(speech_like(), "PCMU")
    assert a == b and len(a) == 32000
    assert encode(speech_like(), "PCMA") != a
    level = sum(abs(ulaw_sample(x)) for x in a) / len(a)
    assert 300 < level < 8000  # neither silence nor clipping


# -- RTP statistics ------------------------------------------------------------------------------
def feed(seqs: list[int], spacing_s: float = 0.02, jitter_s: float = 0.0) -> StreamStats:
    s = StreamStats("10.0.0.1:6000", 1, 0, 0.0)
    for i, seq in enumerate(seqs):
        arrival = i * spacing_s + (jitter_s if i % 2 else 0.0)
        s.add(seq % 65536, (seq * 160) % (1 << 32), 100.0 + arrival)
    return s


def test_loss_duplicates_reordering() -> None:
    s = feed([1, 2, 3, 5, 4, 4, 7, 8, 10])  # 6 and 9 lost, 4 late and then duplicated
    assert (s.expected, s.received, s.lost) == (10, 8, 2)
    assert (s.duplicates, s.reordered) == (1, 1)
    assert s.loss_pct == pytest.approx(20.0)


def test_sequence_wraps_around() -> None:
    s = feed(list(range(65530, 65540)))
    assert (s.expected, s.received, s.lost, s.reordered) == (10, 10, 0, 0)


def test_rfc3550_jitter() -> None:
    assert feed(list(range(200))).jitter_ms == pytest.approx(0.0, abs=1e-6)
    # every other packet 5 ms late: |D| = 5 ms per packet, J converges to 5 ms
    assert feed(list(range(400)), jitter_s=0.005).jitter_ms == pytest.approx(5.0, rel=0.02)


def test_receiver_samples_and_ignores_what_is_no_rtp() -> None:
    rx = RtpReceiver("127.0.0.1", 0, sample_pct=50)
    try:
        keys = [f"10.0.0.{i}:6000" for i in range(200)]
        for src in keys:
            rx.handle(struct.pack("!BBHII", 0x80, 0, 1, 160, SSRC_BASE), src, 1.0)
        rx.handle(b"\x00" * 20, "10.0.0.1:6000", 1.0)
        assert rx.invalid == 1
        analysed = {src for src, _ in rx.streams}
        assert analysed == {k for k in keys if sampled(k, SSRC_BASE, 50)}
        assert 60 < len(analysed) < 140 and len(rx.not_sampled) == 200 - len(analysed)
    finally:
        rx.sock.close()


def test_pesq_of_rebuilt_audio() -> None:
    pytest.importorskip("pesq")
    from runners.media_pesq import score

    ref = speech_like()
    data = encode(ref, "PCMU")
    packets = {k: data[(k * 160) % len(data) :][:160] for k in range(300)}  # 6 s, looped
    clean = score(packets, 299, ref, "PCMU")
    lossy = score({k: v for k, v in packets.items() if k % 20 != 7}, 299, ref, "PCMU")
    assert clean is not None and clean >= 4.0
    assert lossy is not None and lossy < clean - 0.5  # 5 % of the frames lost, concealed
    assert score(packets, 40, ref, "PCMU") is None  # 0.8 s: too short to score
    assert score(packets, 60, ref, "PCMU") is not None
    # A stream heard from packet 37 on (sent on to a transfer target mid-way) is scored from
    # there, against the reference from there: clean. (From packet 0 it scored 3.1.)
    later = {k: v for k, v in packets.items() if k >= 37}
    from_37 = score(later, 299, ref, "PCMU")
    assert from_37 is not None and from_37 >= 4.0, from_37
    assert score(later, 37 + 40, ref, "PCMU") is None  # 0.8 s heard: too short


# -- E-model -----------------------------------------------------------------------------------
def test_emodel_g711() -> None:
    assert mos_cqe(r_factor("PCMU", 0, 0)) == pytest.approx(4.41, abs=0.01)
    # G.711 with PLC (Bpl 25.1), 5 % random loss: about 3.9
    assert mos_cqe(r_factor("PCMA", 5, 0)) == pytest.approx(3.9, abs=0.05)
    scores = [mos_cqe(r_factor("PCMU", p, 0)) for p in (0, 1, 2, 5, 10, 20)]
    assert scores == sorted(scores, reverse=True)
    assert mos_cqe(r_factor("PCMU", 0, 100)) < mos_cqe(r_factor("PCMU", 0, 0))  # deep buffer


# -- the scenarios -----------------------------------------------------------------------------
def test_media_variant_of_the_built_ins(tmp_path: Path) -> None:
    audio = tmp_path / "reference.alaw"
    call = media_variant(built_in_path("call").read_text(), MediaConfig(codec="PCMA"), audio)
    # [media_port+1000]: SIPp writes 7000 (the receiver) and sends play_dtmf from it
    assert call.count("m=audio [media_port+1000] RTP/AVP 8 96") == 2 and "PCMU" not in call
    assert call.count("a=rtpmap:96 telephone-event/8000") == 2 and "play_dtmf" not in call
    assert call.count(f'rtp_stream="{audio},-1,8"') == 2  # the answer to either INVITE
    answer = media_variant(built_in_path("answer").read_text(), MediaConfig(), audio)
    assert answer.count("rtp_stream=") == 1 and "m=audio [media_port+1000] RTP/AVP 0 96" in answer
    with pytest.raises(ValueError, match="no SDP"):
        media_variant(built_in_path("register").read_text(), MediaConfig(), audio)


def test_sent_streams_follow_the_log_order(tmp_path: Path) -> None:
    log = tmp_path / "media.log"
    log.write_text("sipflow-media a@x\nnoise\nsipflow-media b@x\nsipflow-media c@x\n")
    got = sent_streams(log, "10.0.0.100:6000", MediaConfig())
    assert got == [("a@x", SSRC_BASE), ("b@x", SSRC_BASE + 1), ("c@x", SSRC_BASE + 2)]
    assert sent_streams(tmp_path / "none.log", "x", MediaConfig()) == []


# -- the spec ----------------------------------------------------------------------------------
def spec(**callers: Any) -> dict[str, Any]:
    return {
        "roles": {
            "callees": {"media": {}},
            "callers": {"max_calls": 5, "hold_ms": 2000, "media": {}, **callers},
        },
        "thresholds": ["mos_p5 >= 3.5", "rtp_loss_pct < 1", "one_way_audio_calls == 0"],
    }


def messages(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as info:
        SessionSpec.model_validate(data)
    return [".".join(map(str, e["loc"])) + ": " + e["msg"] for e in info.value.errors()]


def test_media_spec() -> None:
    pcma = spec(media={"codec": "PCMA", "sample_pct": 10})
    pcma["roles"]["callees"]["media"] = {"codec": "PCMA", "sample_pct": 10}
    parsed = SessionSpec.model_validate(pcma)
    assert parsed.roles.callers.media is not None
    assert parsed.roles.callers.media.runner_config().sample_pct == 10
    assert "roles.callers.media.codec" in messages(spec(media={"codec": "G729"}))[0]
    assert "roles.callers.media.sample_pct" in messages(spec(media={"sample_pct": 0}))[0]
    assert "roles.callers.media.mos" in messages(spec(media={"mos": "polqa"}))[0]
    assert "roles.callers.hold_ms" in messages(spec(hold_ms=0))[0]
    no_callee_media = spec()
    no_callee_media["roles"]["callees"] = {}
    assert "roles.callees.media" in messages(no_callee_media)[0]
    no_callees = spec(call_to=["ivr"])
    no_callees["roles"].pop("callees")
    no_callees["target"] = {"host": "127.0.0.1", "registrar": False}
    assert "roles.callees.media" in messages(no_callees)[0]
    other_codec = spec()
    other_codec["roles"]["callees"]["media"] = {"codec": "PCMA"}
    assert "roles.callees.media.codec" in messages(other_codec)[0]
    other_sample = spec(media={"sample_pct": 50})
    assert "roles.callees.media.sample_pct" in messages(other_sample)[0]
    for metric in ("mos_p5", "mos_median", "rtp_loss_pct", "jitter_p95_ms", "no_audio_calls"):
        parse_threshold(f"{metric} >= 0")


# -- the store ---------------------------------------------------------------------------------
def stream(src: str, ssrc: int, received: int, lost: int = 0, mos: float = 4.41) -> MediaStream:
    return MediaStream(
        src=src,
        ssrc=ssrc,
        payload_type=0,
        received=received,
        expected=received + lost,
        lost=lost,
        duplicates=0,
        reordered=0,
        jitter_ms=0.5,
        r_factor=93.2,
        mos=mos,
        first_time=1.0,
        last_time=3.0,
    )


CALLER, CALLEE = "10.250.1.100:6000", "10.250.1.10:6000"


def reports() -> list[MediaReport]:
    caller = MediaReport(
        session_id="m1",
        runner_id="caller-0",
        role="caller",
        sent=[MediaSent(call_id=f"c{i}", src=CALLER, ssrc=SSRC_BASE + i) for i in range(3)],
        # c0 heard; c1 heard with loss; c2: nothing from the callee (one-way)
        received=[stream(CALLEE, SSRC_BASE, 100), stream(CALLEE, SSRC_BASE + 1, 95, 5, 3.9)],
    )
    callee = MediaReport(
        session_id="m1",
        runner_id="callee-0",
        role="callee",
        sent=[MediaSent(call_id=f"c{i}", src=CALLEE, ssrc=SSRC_BASE + i) for i in range(3)],
        received=[stream(CALLER, SSRC_BASE + i, 100) for i in range(3)],
    )
    return [caller, callee]


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_store_joins_sender_and_receiver(database_url: str, order: tuple[int, int]) -> None:
    with session_scope(database_url) as db:
        store.create_session(db, "m1", "default", "m", {}, None)
        msgs = reports()
        for i in (*order, *order):  # and each redelivered once
            media_store.store_media_report(db, msgs[i])
        page = media_store.calls_page(db, "m1", limit=2, offset=0)
        assert page.total == 3 and [c.call_id for c in page.items] == ["c0", "c1"]
        rest = media_store.calls_page(db, "m1", limit=2, offset=2).items
        assert [(c.call_id, c.audio) for c in rest] == [("c2", "one_way")]
        assert [c.audio for c in page.items] == ["both", "both"]
        assert page.items[1].mos == pytest.approx(3.9)
        m = media_store.measured(db, "m1")
        assert m["media_calls"] == 3
        assert (m["one_way_audio_calls"], m["no_audio_calls"]) == (1, 0)
        assert m["rtp_loss_pct"] == pytest.approx(100 * 5 / 500)
        assert m["mos_p5"] == pytest.approx(3.9) and m["mos_median"] == pytest.approx(4.41)
        assert media_store.measured(db, "other") == {}


def test_visqol_of_rebuilt_audio_and_its_cap() -> None:
    """Clean G.711 scores high, 5 % lost frames lower; a receiver keeping the audio of one
    stream (MediaConfig.visqol_streams) scores only that one."""
    pytest.importorskip("visqol")
    from runners import media_visqol
    from runners.media_session import stream_result

    if not media_visqol.available():
        pytest.skip("visqol-python without its lattice extra")
    ref = speech_like()
    data = encode(ref, "PCMU")
    rx = RtpReceiver("127.0.0.1", 0, 100.0, 1)
    try:
        for ssrc, lose in ((SSRC_BASE, False), (SSRC_BASE + 1, True)):
            for k in range(200):  # 4 s; every 20th frame lost in the second stream
                if lose and k % 20 == 7:
                    continue
                payload = data[(k * 160) % len(data) :][:160]
                rx.handle(
                    struct.pack("!BBHII", 0x80, 0, k, k * 160, ssrc) + payload, "x:1", 1 + k / 50
                )
    finally:
        rx.sock.close()
    streams = sorted(rx.streams.values(), key=lambda s: s.ssrc)
    results = [stream_result(s, "PCMU", mos="visqol") for s in streams]
    clean = results[0].visqol
    assert clean is not None and clean >= 4.0
    assert results[1].visqol is None  # beyond the cap: E-model only
    assert results[1].mos < results[0].mos
    lossy = media_visqol.score(
        {k: data[(k * 160) % len(data) :][:160] for k in range(200) if k % 20 != 7},
        199,
        ref,
        "PCMU",
    )
    assert lossy is not None and lossy < clean - 0.1
    assert media_visqol.score({}, 40, ref, "PCMU") is None  # 0.8 s: too short


def test_a_stream_s_ssrc_is_its_call_number_not_its_place_in_the_log(tmp_path: Path) -> None:
    """SIPp numbers calls and gives them SSRCs as it makes them: call 3 streams with
    0xCA110002 even when call 2 never streamed and call 4 started before it."""
    log = tmp_path / "sipp_logs.log"
    log.write_text(
        "sipflow-media c1 #1\nsipflow-media c4 #4\nsipflow-media c3 #3 198.18.0.9:30000\n"
        "sipflow-media old\n"  # a line without the number (an older scenario): start order
    )
    assert started_streams(log) == [
        ("c1", SSRC_BASE, ""),
        ("c4", SSRC_BASE + 3, ""),
        ("c3", SSRC_BASE + 2, "198.18.0.9:30000"),
        ("old", SSRC_BASE + 3, ""),
    ]
