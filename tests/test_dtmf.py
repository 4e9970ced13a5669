"""DTMF as RFC 4733 telephone-events (runners/media_dtmf.py): the event decoding, and a real SIPp
pair on loopback: the built-in call/answer media variants with `dtmf`, each end's RTP receiver,
and the join of what one end sent (Call-ID, SSRC from SIPp's log) with what the other detected."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

from entrypoints.stack import free_port
from runners.media_audio import reference_file
from runners.media_dtmf import DTMF_PT, NOOP_PT, SSRC_BASE, EventStream, play_ms, sent_events
from runners.media_rtp import RtpReceiver
from runners.media_session import media_variant
from runners.scenario_files import built_in_path
from sipflow.runner_config import DtmfConfig, MediaConfig
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
