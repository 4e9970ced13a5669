"""DTMF as RFC 4733 telephone-events (runners/media_dtmf.py): the event decoding, and a real SIPp
pair on loopback: the built-in call/answer media variants with `dtmf`, each end's RTP receiver,
and the join of what one end sent (Call-ID, SSRC from SIPp's log) with what the other detected."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from entrypoints.stack import free_port
from runners.media_audio import reference_file
from runners.media_dtmf import (
    DTMF_PT,
    NOOP_PT,
    SSRC_BASE,
    EventStream,
    expectations,
    play_ms,
    sent_events,
)
from runners.media_rtp import RtpReceiver
from runners.media_session import media_variant
from runners.scenario_files import built_in_path
from sipflow import media_store, store
from sipflow.call_script import compile_script, media_steps
from sipflow.db import session_scope
from sipflow.messages import DtmfReceived, DtmfSent, MediaReport
from sipflow.runner_config import DtmfConfig, MediaConfig
from sipflow.spec import SessionSpec
from tests.runner_fixtures import loopback_ip


def rtp(pt: int, seq: int, ts: int, ssrc: int, payload: bytes, marker: bool = False) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq, ts, ssrc) + payload


def event(digit: int, end: bool, duration: int) -> bytes:
    return struct.pack("!BBH", digit, (0x80 if end else 0) | 10, duration)


# -- decoding ----------------------------------------------------------------------------------
def test_events_are_counted_once_each_end_retransmission_deduplicated() -> None:
    s = EventStream("10.0.0.1:7000", 5)
    # "1", "1" again (a new timestamp: a second key press), then "#": three end packets each.
    for ts, digit in ((1000, 1), (1400, 1), (1800, 11)):
        for d in (0, 160, 320):
            s.add(ts, event(digit, False, d))
        for _ in range(3):
            s.add(ts, event(digit, True, 480))
    assert s.digits == "11#" and s.ended == 3
    s.add(2200, event(16, False, 0))  # an event that is no DTMF (RFC 4733 tone 16)
    s.add(2600, b"\x05")  # too short to be an event
    assert s.digits == "11#"
    late = EventStream("x", 1)
    late.add(10, event(4, True, 800))  # only the end arrived: still the digit
    assert (late.digits, late.ended) == ("4", 1)


def test_receiver_keeps_events_apart_from_the_audio() -> None:
    rx = RtpReceiver("127.0.0.1", 0)
    try:
        for i in range(5):
            rx.handle(rtp(0, i, 160 * i, 7, b"\xff" * 160), "10.0.0.1:6000", 1.0 + i / 50)
        rx.handle(rtp(NOOP_PT, 1, 1, 9, b"\0" * 4), "10.0.0.1:7000", 1.0)
        rx.handle(rtp(DTMF_PT, 2, 50, 9, event(5, False, 160), True), "10.0.0.1:7000", 1.1)
        rx.handle(rtp(DTMF_PT, 3, 50, 9, event(5, True, 800)), "10.0.0.1:7000", 1.2)
        assert list(rx.streams) == [("10.0.0.1:6000", 7)]  # the audio's loss is untouched
        assert rx.streams[("10.0.0.1:6000", 7)].lost == 0
        events = rx.dtmf[("10.0.0.1:7000", 9)]
        assert (events.digits, events.packets) == ("5", 3)
    finally:
        rx.sock.close()


def test_sent_events_follow_the_log_order(tmp_path: Path) -> None:
    log = tmp_path / "media.log"
    log.write_text("sipflow-media a@x\nsipflow-dtmf a@x 12#\nsipflow-dtmf b@x 9\n")
    assert sent_events(log) == [("a@x", SSRC_BASE, "12#"), ("b@x", SSRC_BASE + 1, "9")]


# -- a real SIPp pair --------------------------------------------------------------------------
def sipp(*args: str, cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["sipp", *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def test_sipp_pair_sends_and_detects_dtmf_both_ways(tmp_path: Path) -> None:
    """5 calls; the caller sends 1234#, the callee 9*0: every call's digits arrive, each at
    the other end's receiver, tied to the call through the sender's log."""
    calls = 5
    ips = {"caller": loopback_ip(), "callee": loopback_ip()}
    digits = {"caller": "1234#", "callee": "9*0"}
    dirs, receivers = {}, {}
    for role, builtin in (("caller", "call"), ("callee", "answer")):
        d = dirs[role] = tmp_path / role
        d.mkdir()
        media = MediaConfig(dtmf=DtmfConfig(digits=digits[role], duration_ms=60))
        audio = reference_file(d, "PCMU")
        (d / "s.xml").write_text(media_variant(built_in_path(builtin).read_text(), media, audio))
        receivers[role] = RtpReceiver(ips[role], media.rtp_port)
        receivers[role].start()
    hold_ms = play_ms("1234#", 60) + 600
    sip_port = free_port()
    common = ["-nostdin", "-trace_logs", "-log_file", "media.log", "-mp", "6000"]
    uas = sipp(
        *common, "-sf", "s.xml", "-i", ips["callee"], "-p", str(sip_port), "-mi", ips["callee"],
        "-cp", str(free_port()), "-ci", ips["callee"], "-timeout", "40s",
        cwd=dirs["callee"],
    )  # fmt: skip
    inj = dirs["caller"] / "inj.csv"
    row = f"alice;{ips['callee']};;bob;{ips['callee']}:{sip_port};{ips['caller']}:5070;0"
    inj.write_text("SEQUENTIAL\n" + "\n".join([row] * calls) + "\n")
    try:
        uac = sipp(
            *common, "-sf", "s.xml", "-inf", str(inj), "-i", ips["caller"], "-p", "5070",
            "-mi", ips["caller"], "-cp", str(free_port()), "-ci", ips["caller"],
            "-m", str(calls), "-r", "5", "-d", str(hold_ms), "-timeout", "40s",
            f"{ips['callee']}:{sip_port}",
            cwd=dirs["caller"],
        )  # fmt: skip
        _, err = uac.communicate(timeout=60)
        assert uac.returncode == 0, err.decode(errors="replace")[-2000:]
    finally:
        uas.terminate()
        uas.wait(timeout=10)
        for r in receivers.values():
            r.stop()
    for sender, receiver in (("caller", "callee"), ("callee", "caller")):
        sent = sent_events(dirs[sender] / "media.log")
        assert len(sent) == calls and len({c for c, _, _ in sent}) == calls
        got = receivers[receiver].dtmf
        src = f"{ips[sender]}:7000"  # play_dtmf leaves from the port the SDP names
        for call_id, ssrc, sent_digits in sent:
            assert sent_digits == digits[sender]
            assert (src, ssrc) in got, (call_id, hex(ssrc), sorted(got))
            assert got[src, ssrc].digits == digits[sender]
            assert got[src, ssrc].ended == len(digits[sender])
        assert len(got) == calls  # no stray event streams
        # the audio streams are untouched by the events: one per call, none lost
        audio = receivers[receiver].streams
        assert len(audio) == calls and all(s.lost == 0 for s in audio.values())


# -- the store ---------------------------------------------------------------------------------
def dtmf_reports() -> list[MediaReport]:
    """Caller-0 played 123 in c0, c1, c2; the callee detected 123, 12 (the 3 lost) and nothing
    for c2; a stream from a sender that never reported (no call) is left out."""
    a = "10.250.1.100:7000"
    caller = MediaReport(
        session_id="d1",
        runner_id="caller-0",
        role="caller",
        dtmf_sent=[
            DtmfSent(call_id=f"c{i}", src=a, ssrc=SSRC_BASE + i, digits="123") for i in range(3)
        ],
    )
    callee = MediaReport(
        session_id="d1",
        runner_id="callee-0",
        role="callee",
        dtmf_received=[
            DtmfReceived(src=a, ssrc=SSRC_BASE, digits="123", packets=30, ended=3),
            DtmfReceived(src=a, ssrc=SSRC_BASE + 1, digits="12", packets=20, ended=2),
            DtmfReceived(src="10.9.9.9:7000", ssrc=1, digits="9"),
        ],
    )
    return [caller, callee]


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_store_joins_dtmf_sent_and_detected(database_url: str, order: tuple[int, int]) -> None:
    with session_scope(database_url) as db:
        store.create_session(db, "d1", "default", "d", {}, None)
        msgs = dtmf_reports()
        for i in (*order, *order):  # and each redelivered once
            media_store.store_media_report(db, msgs[i])
        # DTMF alone is no audio: the DTMF metrics only, no audio directions
        assert media_store.measured(db, "d1") == {"dtmf_calls": 3, "dtmf_mismatch_calls": 2}
        calls = {c.call_id: c for c in media_store.dtmf_calls(db, "d1")}
        assert sorted(calls) == ["c0", "c1", "c2"]
        got = {
            c: [(d.direction, d.sent, d.received, d.match) for d in calls[c].dtmf] for c in calls
        }
        assert got == {
            "c0": [("caller_to_callee", "123", "123", True)],
            "c1": [("caller_to_callee", "123", "12", False)],
            "c2": [("caller_to_callee", "123", None, False)],
        }
        assert media_store.dtmf_measured(list(calls.values())) == {
            "dtmf_calls": 3.0,
            "dtmf_mismatch_calls": 2.0,
        }
        page = media_store.calls_page(db, "d1", limit=10, offset=0)
        assert [(c.call_id, c.directions, len(c.dtmf)) for c in page.items] == [
            ("c0", [], 1),
            ("c1", [], 1),
            ("c2", [], 1),
        ]


# -- the spec ----------------------------------------------------------------------------------
def test_media_dtmf_in_the_spec() -> None:
    def spec(callers: dict[str, Any], callees: dict[str, Any] | None = None) -> dict[str, Any]:
        return {
            "roles": {
                "callees": {"media": callees or {}},
                "callers": {"max_calls": 5, "hold_ms": 2000, "media": callers},
            },
            "thresholds": ["dtmf_mismatch_calls == 0", "dtmf_calls >= 5"],
        }

    ok = SessionSpec.model_validate(spec({"dtmf": {"digits": "12*#", "duration_ms": 80}}))
    media = ok.roles.callers.media
    assert media is not None and media.runner_config().dtmf == DtmfConfig(
        digits="12*#", duration_ms=80
    )
    assert "roles.callers.media.dtmf.digits" in messages(spec({"dtmf": {"digits": "12x"}}))[0]
    assert "roles.callers.media.dtmf.digits" in messages(spec({"dtmf": {"digits": ""}}))[0]
    too_short = messages(spec({"dtmf": {"digits": "1", "duration_ms": 20}}))[0]
    assert "roles.callers.media.dtmf.duration_ms" in too_short
    no_analysis = spec({"analyse": False, "dtmf": {"digits": "1"}}, {"analyse": False})
    assert "dtmf: needs analyse: true" in messages(no_analysis)[0]
    # 400 + 2 x 200 x 5 = 2400 ms of play + 300: more than the 2000 ms hold (either end's)
    long = messages(spec({}, {"dtmf": {"digits": "1234", "duration_ms": 200}}))
    assert "roles.callers.hold_ms: the callees' DTMF" in long[0] and "2700 ms" in long[0], long


def messages(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as info:
        SessionSpec.model_validate(data)
    out = []
    for e in info.value.errors():
        # a model-level message names its own field path first (api/errors.py does the same)
        out.append(".".join(map(str, e["loc"])) + ": " + e["msg"] if e["loc"] else e["msg"])
    return out


# -- the call script's media steps -------------------------------------------------------------
def test_script_steps_compile_to_plays_and_logged_expectations(tmp_path: Path) -> None:
    steps = ["call", "expect 200", "send_dtmf 12#", "expect_dtmf 9*0", "expect audio", "hangup"]
    script = SessionSpec.model_validate(
        {
            "roles": {
                "callees": {"media": {}},
                "callers": {"max_calls": 1, "media": {}, "script": steps},
            }
        }
    ).roles.callers.script
    assert script is not None and media_steps(script) == ["expect_dtmf 9*0", "expect audio"]
    xml = compile_script(script)
    assert '<exec play_dtmf="12#,100" />' in xml
    assert '<log message="sipflow-dtmf [call_id] 12#" />' in xml
    assert f'<pause milliseconds="{play_ms("12#", 100)}" />' in xml
    assert '<log message="sipflow-expect [call_id] s4_expect_dtmf dtmf 9*0" />' in xml
    assert '<log message="sipflow-expect [call_id] s5_expect_audio audio" />' in xml
    # With media: the receiver's port in the SDP (telephone-event kept), audio from the 200.
    audio = tmp_path / "reference.ulaw"
    out = media_variant(xml, MediaConfig(), audio)
    assert "m=audio [media_port+1000] RTP/AVP 0 96" in out and "[media_port] " not in out
    # once per INVITE (the first INVITE of either kind of row, and the one with credentials)
    assert out.count("telephone-event/8000") == out.count("INVITE sip:") == 3
    assert f'<recv response="200" rrs="true"><action><exec rtp_stream="{audio},-1,0"/>' in out
    log = tmp_path / "media.log"
    log.write_text(
        "sipflow-expect c1@x s4_expect_dtmf dtmf 9*0\nsipflow-expect c1@x s5_expect_audio audio\n"
    )
    assert expectations(log) == [
        ("c1@x", "s4_expect_dtmf", "dtmf 9*0"),
        ("c1@x", "s5_expect_audio", "audio"),
    ]


def test_script_media_steps_need_media() -> None:
    def spec(media: dict[str, Any] | None, step: str) -> dict[str, Any]:
        callers: dict[str, Any] = {"max_calls": 1, "script": ["call", "expect 200", step, "hangup"]}
        roles: dict[str, Any] = {"callers": callers, "callees": {}}
        if media is not None:
            callers["media"], roles["callees"]["media"] = media, dict(media)
        return {"roles": roles}

    assert messages(spec(None, "expect_dtmf 1"))[0].startswith(
        "roles.callers: Value error, media: 'expect_dtmf 1' is judged from the media analysis"
    )
    half = messages(spec({"sample_pct": 50}, "expect audio"))
    assert "media.sample_pct: 'expect audio' judges every call" in half[0]
    SessionSpec.model_validate(spec({"sample_pct": 50}, "expect_dtmf 1"))  # DTMF: every stream
