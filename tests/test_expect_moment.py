"""A call script's expect_dtmf / expect audio judged at the moment of the step (issue 13):
the pure judging (sipflow/media_expect.py), what the runner keeps per stream (digit arrivals,
runs of audio: runners/media_rtp.py, media_dtmf.py) and the moments from SIPp's log
(runners/media_moments.py), the store's round trip, old rows judged over the whole call, and a
real SIPp pair on loopback whose script expects the far end's digits before and after they
arrive."""

from __future__ import annotations

import itertools
import json
import struct
import subprocess
from pathlib import Path

import pytest
from pydantic import TypeAdapter

from entrypoints.stack import free_port
from runners import media_moments
from runners.media_dtmf import DTMF_PT, SSRC_BASE, EventStream
from runners.media_rtp import MAX_SPANS, SPAN_GAP_S, RtpReceiver, StreamStats
from runners.media_session import MediaSession
from runners.scenario_files import built_in_path
from sipflow import media_store, store
from sipflow.call_script import CallScript, compile_script
from sipflow.db import session_scope
from sipflow.media_expect import clock, judge
from sipflow.messages import DtmfReceived, DtmfSent, Expectation, MediaReport, MediaSent
from sipflow.messages import MediaStream as Stream
from sipflow.models import CallMediaRow
from sipflow.runner_config import DtmfConfig, MediaConfig, RunnerConfig
from tests.runner_fixtures import loopback_ip

ANSWER = 100.0
IN = "callee_to_caller"  # what the caller expects arrives in this direction
OUT = "caller_to_callee"


def expect(step: str, what: str, at: float | None, answered: float | None = ANSWER) -> CallMediaRow:
    return CallMediaRow(
        session_id="s",
        stream_key=f"expect/{step}",
        call_id="c",
        direction=IN,
        expect_step=step,
        expect_what=what,
        expect_at=at,
        answered_at=answered if at is not None else None,
    )


def play(digits: str, times: list[float] | None, direction: str = IN) -> CallMediaRow:
    return CallMediaRow(
        session_id="s",
        stream_key=f"play/{digits}",
        call_id="c",
        direction=direction,
        dtmf_sent=digits,
        dtmf_received=digits,
        dtmf_times=times,
    )


def audio(direction: str, spans: list[list[float]] | None, received: int = 100) -> CallMediaRow:
    return CallMediaRow(
        session_id="s",
        stream_key=f"audio/{direction}",
        call_id="c",
        direction=direction,
        received=received,
        spans=spans,
    )


def verdict(e: CallMediaRow, rows: list[CallMediaRow], tol: float = 0.1) -> tuple[str | None, ...]:
    out = judge(e, [*rows, e], tol)
    return out.kind, out.reason


# -- judging DTMF ------------------------------------------------------------------------------
def test_expect_dtmf_counts_the_digits_that_arrived_by_its_step() -> None:
    rows = [play("9*0", [100.40, 100.52, 100.64])]
    assert verdict(expect("s3_expect_dtmf", "dtmf 9*0", 100.0), rows) == (
        "no dtmf",
        "expected DTMF 9*0, received none by 00:00.0 after the answer",
    )
    assert verdict(expect("s3_expect_dtmf", "dtmf 9*0", 100.45), rows) == (
        "dtmf mismatch",
        "expected DTMF 9*0, received 9* by 00:00.5 after the answer",  # 100.52 within 0.1 s
    )
    done = judge(e := expect("s3_expect_dtmf", "dtmf 9*0", 101.5), [*rows, e], 0.1)
    assert (done.passed, done.reason, done.at_s) == (True, None, 1.5)


def test_the_tolerance_counts_what_arrives_just_after_the_step() -> None:
    rows = [play("9*0", [100.40, 100.52, 100.64])]
    step = expect("s3_expect_dtmf", "dtmf 9*0", 100.6)
    assert verdict(step, rows, tol=0.1) == (None, None)
    assert verdict(step, rows, tol=0.0)[1] == (
        "expected DTMF 9*0, received 9* by 00:00.6 after the answer"
    )


def test_each_expect_dtmf_counts_the_digits_since_the_previous_one() -> None:
    """IVR style: 1 arrives, the script answers, 23 arrives: each step sees its own digits."""
    rows = [play("1", [100.5]), play("23", [102.5, 102.7])]
    first = expect("s3_expect_dtmf", "dtmf 1", 101.0)
    second = expect("s6_expect_dtmf", "dtmf 23", 103.0)
    everything = expect("s6_expect_dtmf", "dtmf 123", 103.0)
    assert judge(first, [*rows, first, second], 0.1).passed
    assert judge(second, [*rows, first, second], 0.1).passed
    assert verdict(everything, [*rows, first]) == (
        "dtmf mismatch",
        "expected DTMF 123, received 23 by 00:03.0 after the answer",
    )
    # digits the caller sent (the other direction) are not the far end's
    mine = [*rows, play("55", [100.1, 100.2], direction=OUT)]
    assert judge(first, [*mine, first, second], 0.1).passed


def test_without_moments_the_whole_call_is_judged_as_before() -> None:
    """Rows of an older runner or XML: no step moment, or digits without arrival times."""
    late = [play("9*0", [110.0, 110.1, 110.2])]
    assert verdict(expect("s3_expect_dtmf", "dtmf 9*0", None), late) == (None, None)
    assert verdict(expect("s3_expect_dtmf", "dtmf 777", None), late) == (
        "dtmf mismatch",
        "expected DTMF 777, received 9*0",
    )
    untimed = [play("9*0", None)]
    assert verdict(expect("s3_expect_dtmf", "dtmf 9*0", 100.0), untimed) == (None, None)
    # a play the far end detected nothing of needs no times
    nothing = [
        CallMediaRow(session_id="s", stream_key="p", call_id="c", direction=IN, dtmf_sent="1")
    ]
    assert verdict(expect("s3_expect_dtmf", "dtmf 1", 105.0), nothing) == (
        "no dtmf",
        "expected DTMF 1, received none by 00:05.0 after the answer",
    )
    # a step moment without the call's answer: said as "by the step"
    no_answer = expect("s3_expect_dtmf", "dtmf 1", 105.0, answered=None)
    assert verdict(no_answer, nothing)[1] == "expected DTMF 1, received none by the step"


# -- judging audio -----------------------------------------------------------------------------
def test_expect_audio_looks_at_the_second_before_its_step() -> None:
    rows = [audio(OUT, [[100.0, 105.0]]), audio(IN, [[100.0, 102.0]])]
    assert verdict(expect("s4_expect_audio", "audio", 101.5), rows) == (None, None)
    assert verdict(expect("s4_expect_audio", "audio", 102.9), rows) == (None, None)
    assert verdict(expect("s4_expect_audio", "audio", 104.0), rows) == (
        "one-way audio",
        "no audio callee to caller in the second before 00:04.0 after the answer",
    )
    # audio that starts within the tolerance after the step counts
    starts = [audio(OUT, [[100.0, 105.0]]), audio(IN, [[102.05, 104.0]])]
    assert verdict(expect("s4_expect_audio", "audio", 101.0), starts)[0] == "one-way audio"
    assert verdict(expect("s4_expect_audio", "audio", 102.0), starts) == (None, None)
    assert verdict(expect("s4_expect_audio", "audio", 107.0), rows) == (
        "no audio",
        "no audio callee to caller nor caller to callee in the second before 00:07.0 after the"
        " answer",
    )
    # a hold: a silence in the middle of a run list
    held = [audio(OUT, [[100.0, 110.0]]), audio(IN, [[100.0, 102.0], [105.0, 110.0]])]
    assert verdict(expect("s4_expect_audio", "audio", 104.0), held)[0] == "one-way audio"
    assert verdict(expect("s4_expect_audio", "audio", 106.0), held) == (None, None)


def test_expect_audio_without_runs_is_judged_over_the_whole_call() -> None:
    old = [audio(OUT, None), audio(IN, None)]
    assert verdict(expect("s4_expect_audio", "audio", 130.0), old) == (None, None)
    assert verdict(expect("s4_expect_audio", "audio", None), [audio(OUT, [[1.0, 2.0]])]) == (
        "one-way audio",
        "no audio callee to caller",
    )
    silent = [audio(OUT, [[100.0, 105.0]]), audio(IN, None, received=0)]
    assert verdict(expect("s4_expect_audio", "audio", 101.0), silent)[1] == (
        "no audio callee to caller in the second before 00:01.0 after the answer"
    )


def test_clock() -> None:
    assert [clock(s) for s in (0.0, 3.24, 59.96, 125.0, -1.0)] == [
        "00:00.0",
        "00:03.2",
        "01:00.0",
        "02:05.0",
        "00:00.0",
    ]


# -- what the runner keeps ---------------------------------------------------------------------
def test_runs_of_audio_split_at_silences_and_stay_bounded() -> None:
    s = StreamStats("10.0.0.1:6000", 7, 0, 1.0)
    for seq, t in enumerate((1.0, 1.02, 1.04, 1.04 + SPAN_GAP_S, 2.0, 2.02)):
        s.add(seq, 160 * seq, t)
    assert s.spans == [(1.0, 1.04 + SPAN_GAP_S), (2.0, 2.02)]
    # many short silences and one long one: the long one survives the bound
    s = StreamStats("10.0.0.1:6000", 8, 0, 0.3)
    t = 0.0
    for i in range(3 * MAX_SPANS):
        t += 5.0 if i == MAX_SPANS else 0.3 + 0.001 * i
        s.add(i, 160 * i, t)
    spans = s.spans
    assert len(spans) == MAX_SPANS
    gaps = [b[0] - a[1] for a, b in itertools.pairwise(spans)]
    assert max(gaps) == pytest.approx(5.0)
    assert spans[0][0] == 0.3 and spans[-1][1] == t  # the whole stream still covered


def test_receiver_stamps_each_digit_and_each_run() -> None:
    rx = RtpReceiver("127.0.0.1", 0)
    try:
        for i in range(10):
            rtp = struct.pack("!BBHII", 0x80, 0, i, 160 * i, 7) + b"\xff" * 160
            rx.handle(rtp, "10.0.0.1:6000", 50.0 + i / 50 + (1.0 if i >= 5 else 0.0))
        for seq, (ts, digit, at) in enumerate(((800, 9, 50.4), (800, 9, 50.42), (1600, 10, 50.6))):
            ev = struct.pack("!BBH", digit, 10, 160)
            rx.handle(struct.pack("!BBHII", 0x80, DTMF_PT, seq, ts, 9) + ev, "10.0.0.1:7000", at)
        spans = rx.streams[("10.0.0.1:6000", 7)].spans
        assert spans == [(50.0, 50.08), (51.1, 51.18)]
        events = rx.dtmf[("10.0.0.1:7000", 9)]
        assert (events.digits, events.times) == ("9*", [50.4, 50.6])
    finally:
        rx.sock.close()
    assert EventStream("x", 1).times == []


def test_moments_from_sipps_log(tmp_path: Path) -> None:
    log = tmp_path / "media.log"
    log.write_text(
        "sipflow-answered c1@x 2026-12-07\t06:04:56.100000\t1796623496.100000\n"
        "sipflow-expect c1@x s3_expect_dtmf dtmf 9\n"
        "sipflow-expect-at c1@x s3_expect_dtmf 2026-12-07\t06:04:57.470559\t1796623497.470559\n"
        "sipflow-expect-at c2@x s3_expect_dtmf not-a-time\n"
        "sipflow-answered c1@x 2026-12-07\t06:04:59.000000\t1796623499.000000\n"
    )
    assert media_moments.expect_moments(log) == {("c1@x", "s3_expect_dtmf"): 1796623497.470559}
    assert media_moments.answers(log) == {"c1@x": 1796623496.1}  # the first start
    assert media_moments.answers(tmp_path / "none.log") == {}


# -- the store ---------------------------------------------------------------------------------
def timed_reports(with_moments: bool) -> list[MediaReport]:
    """One call c0: the callee played 9*0 (arrived 100.4 .. 100.64 at the caller), audio both
    ways from 100.0 to 104.0; the caller's script expected 9*0 at 100.1 and audio at 103.0.
    Without moments: what an older runner reports."""
    callee_src, caller_src, dtmf_src = "10.0.0.2:6000", "10.0.0.1:6000", "10.0.0.2:7000"
    span = [(100.0, 104.0)] if with_moments else None

    def stream(src: str) -> Stream:
        return Stream(
            src=src, ssrc=SSRC_BASE, payload_type=0, received=200, expected=200, lost=0,
            duplicates=0, reordered=0, jitter_ms=0.1, r_factor=93.2, mos=4.41,
            first_time=100.0, last_time=104.0, spans=span,
        )  # fmt: skip

    at = {"at": 100.1, "answered": 100.0} if with_moments else {}
    caller = MediaReport(
        session_id="m1",
        runner_id="caller-0",
        role="caller",
        sent=[MediaSent(call_id="c0", src=caller_src, ssrc=SSRC_BASE)],
        received=[stream(callee_src)],
        dtmf_received=[
            DtmfReceived(
                src=dtmf_src,
                ssrc=0x01020305,
                digits="9*0",
                times=[100.4, 100.52, 100.64] if with_moments else None,
            )
        ],
        expected=[
            Expectation(call_id="c0", step="s3_expect_dtmf", what="dtmf 9*0", **at),
            Expectation(
                call_id="c0",
                step="s5_expect_audio",
                what="audio",
                **({"at": 103.0, "answered": 100.0} if with_moments else {}),
            ),
        ],
    )
    callee = MediaReport(
        session_id="m1",
        runner_id="callee-0",
        role="callee",
        sent=[MediaSent(call_id="c0", src=callee_src, ssrc=SSRC_BASE)],
        received=[stream(caller_src)],
        dtmf_sent=[DtmfSent(call_id="c0", src=dtmf_src, ssrc=0x01020305, digits="9*0")],
    )
    return [caller, callee]


@pytest.mark.parametrize(("with_moments", "order"), [(True, 1), (True, -1), (False, 1)])
def test_store_keeps_the_moments_and_old_reports_judge_the_whole_call(
    database_url: str, with_moments: bool, order: int
) -> None:
    with session_scope(database_url) as db:
        store.create_session(db, "m1", "default", "m", {}, None)
        msgs = timed_reports(with_moments)[::order]  # either runner's report first
        for msg in (*msgs, *msgs):  # and each redelivered
            media_store.store_media_report(db, msg)
        (call,) = media_store.dtmf_calls(db, "m1", tolerance_s=0.1)
        got = [(e.step, e.passed, e.reason, e.at_s) for e in call.expectations]
        if with_moments:  # the digits came after the step; the audio flowed at 103 s
            assert got == [
                (
                    "s3_expect_dtmf",
                    False,
                    "expected DTMF 9*0, received none by 00:00.1 after the answer",
                    0.1,
                ),
                ("s5_expect_audio", True, None, 3.0),
            ]
        else:
            assert got == [
                ("s3_expect_dtmf", True, None, None),
                ("s5_expect_audio", True, None, None),
            ]
        assert [d.received for d in call.dtmf] == ["9*0"]  # the play itself arrived whole
        measured = media_store.measured(db, "m1")
        assert measured["dtmf_mismatch_calls"] == (1.0 if with_moments else 0.0)
        # the setting's default (100 ms) when no tolerance is given
        page = media_store.calls_page(db, "m1", limit=5, offset=0)
        assert [e.passed for e in page.items[0].expectations] == [not with_moments, True]


# -- a real SIPp pair --------------------------------------------------------------------------
def runner(role: str, ip: str, work: Path, media: MediaConfig, xml: str) -> MediaSession:
    cfg = RunnerConfig.model_construct(
        session_id="m2",
        runner_id=f"{role}-0",
        role=role,
        local_ip=ip,
        work_dir=work,
        media=media,
        scenario_xml=xml,
    )
    scenario = work / "s.xml"
    scenario.write_text(xml)
    return MediaSession(cfg, media, scenario)


def test_sipp_pair_judges_a_script_at_its_steps(tmp_path: Path, database_url: str) -> None:
    """The callee plays 9*0 right after its ACK (digits from ~0.4 s on); the caller's script
    expects them at once (too early: none yet), and again after a wait (since the first: all
    three), then audio both ways. Moments come from SIPp's [timestamp] on the runner's clock."""
    calls = 2
    script = [
        "call",
        "expect 200",
        "expect_dtmf 9*0",
        "wait 1500ms",
        "expect_dtmf 9*0",
        "expect audio",
        "hangup",
    ]
    xml = compile_script(TypeAdapter(CallScript).validate_python(script))
    ips = {"caller": loopback_ip(), "callee": loopback_ip()}
    sessions = {}
    for role, role_xml, media in (
        ("caller", xml, MediaConfig()),
        (
            "callee",
            built_in_path("answer").read_text(),
            MediaConfig(dtmf=DtmfConfig(digits="9*0", duration_ms=60)),
        ),
    ):
        work = tmp_path / role
        work.mkdir()
        sessions[role] = runner(role, ips[role], work, media, role_xml)
    sip_port = free_port()
    common = ["-nostdin", "-trace_logs", "-log_file", "media.log", "-mp", "6000"]
    uas = subprocess.Popen(
        ["sipp", *common, "-sf", "s.xml", "-i", ips["callee"], "-p", str(sip_port),
         "-mi", ips["callee"], "-cp", str(free_port()), "-ci", ips["callee"], "-timeout", "40s"],
        cwd=tmp_path / "callee", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    inj = tmp_path / "caller" / "inj.csv"
    row = f"alice;{ips['callee']};;bob;{ips['callee']}:{sip_port};{ips['caller']}:5070;0"
    inj.write_text("SEQUENTIAL\n" + "\n".join([row] * calls) + "\n")
    try:
        uac = subprocess.run(
            ["sipp", *common, "-sf", "s.xml", "-inf", str(inj), "-i", ips["caller"], "-p", "5070",
             "-mi", ips["caller"], "-cp", str(free_port()), "-ci", ips["caller"],
             "-m", str(calls), "-r", "2", "-timeout", "40s", f"{ips['callee']}:{sip_port}"],
            cwd=tmp_path / "caller", capture_output=True, timeout=60,
        )  # fmt: skip
        assert uac.returncode == 0, uac.stderr.decode(errors="replace")[-2000:]
    finally:
        uas.terminate()
        uas.wait(timeout=10)
    reports = [r for s in sessions.values() for r in s.finish()]
    expected = [e for r in reports for e in r.expected]
    assert len(expected) == 3 * calls
    assert all(e.at is not None and e.answered is not None for e in expected)
    for e in expected:  # SIPp's [timestamp] and the receiver's clock: one clock
        assert e.answered is not None and e.at is not None and 0 <= e.at - e.answered < 3
    with session_scope(database_url) as db:
        store.create_session(db, "m2", "default", "m", {}, None)
        for msg in reports:
            media_store.store_media_report(db, msg)
        judged = media_store.dtmf_calls(db, "m2", tolerance_s=0.1)
    assert len(judged) == calls
    for call in judged:
        first, second, heard = call.expectations
        assert (first.step, first.passed, first.kind) == ("s3_expect_dtmf", False, "no dtmf")
        assert first.reason is not None and first.reason.startswith(
            "expected DTMF 9*0, received none by 00:00."
        ), first.reason
        assert (second.step, second.passed) == ("s5_expect_dtmf", True), second.reason
        assert (heard.step, heard.passed) == ("s6_expect_audio", True), heard.reason
        assert second.at_s is not None and second.at_s >= 1.5
        assert [(d.sent, d.received) for d in call.dtmf] == [("9*0", "9*0")]


def test_reports_stay_readable_across_runner_versions() -> None:
    """An older runner's report (no moments) reads with them unknown; fields a report carries
    that the reader does not know (an older worker reading ours) are ignored, not refused."""
    old = {
        "schema": 1,
        "session_id": "s",
        "runner_id": "caller-0",
        "role": "caller",
        "expected": [{"call_id": "c", "step": "s3_expect_dtmf", "what": "dtmf 9"}],
        "dtmf_received": [{"src": "10.0.0.1:7000", "ssrc": 1, "digits": "9"}],
    }
    m = MediaReport.model_validate_json(json.dumps(old))
    assert (m.expected[0].at, m.expected[0].answered, m.dtmf_received[0].times) == (
        None,
        None,
        None,
    )
    newer = {**old, "expected": [{**old["expected"][0], "at": 1.5, "later_field": 2}]}
    assert MediaReport.model_validate_json(json.dumps(newer)).expected[0].at == 1.5
