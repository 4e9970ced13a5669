"""Hold and resume with media through Kamailio (tests/sut/kamailio-flows.cfg): the hold_resume
flow with audio both ways (runners/media_hold.py). While held the callee (recvonly) sends
nothing, after the resume audio flows both ways: the flow passes with its media judged per call.
A callee that answers the resume but stays silent (resume_audio: false) fails exactly the resume
step, with its reason. The two sessions run at once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from defusedxml import ElementTree as safe_xml
from pydantic import ValidationError

from entrypoints.stack import free_port
from runners.media_hold import TALK_MS
from runners.media_session import media_variant
from sipflow.flows import FLOWS, HoldResume
from sipflow.media_store import hold_s_of, judge_hold
from sipflow.models import CallMediaRow
from sipflow.runner_config import MediaConfig
from sipflow.spec import SessionSpec
from tests.conftest import RunningStack
from tests.sut.kamailio import kamailio
from tests.test_media_e2e import calls

FLOWS_CFG = Path(__file__).resolve().parent / "sut" / "kamailio-flows.cfg"
CALLS = 3
HOLD_S = 1.0


def hold_spec(sut: str, user: str, resume_audio: bool) -> dict[str, Any]:
    host, port = sut.rsplit(":", 1)
    return {
        "name": "hold-with-media",
        "target": {"host": host, "port": int(port), "domain": host, "registrar": True},
        "roles": {
            "callees": {"accounts": [{"user": user, "password": "secret"}], "media": {}},
            "callers": {
                "rate": 3,
                "max_calls": CALLS,
                "accounts": [{"user": "alice"}],
                "media": {},
                "flow": {"name": "hold_resume", "hold_s": HOLD_S, "resume_audio": resume_audio},
            },
        },
        "thresholds": ["success_rate >= 100", "step_failed_hold == 0", "step_failed_resume == 0"],
    }


@pytest.fixture(scope="module")
def sessions(
    sqlite_stack: RunningStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, tuple[str, dict[str, Any]]]]:
    with ExitStack() as stack:
        work = tmp_path_factory.mktemp("kamailio-hold")
        sut = stack.enter_context(kamailio(free_port(), work, config=FLOWS_CFG))
        ids = {
            "resumes": sqlite_stack.submit(hold_spec(sut, "held1", True)),
            "silent": sqlite_stack.submit(hold_spec(sut, "held2", False)),
        }
        yield {k: (sid, sqlite_stack.wait(sid, 180)) for k, sid in ids.items()}


def steps(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["step"]: s for s in body["steps"] if s["role"] == "caller"}


def test_hold_and_resume_with_audio_pass(
    sqlite_stack: RunningStack, sessions: dict[str, tuple[str, dict[str, Any]]]
) -> None:
    sid, body = sessions["resumes"]
    assert (body["status"], body["verdict"]) == ("completed", "pass"), body["reasons"]
    caller = steps(body)
    assert all((s["passed"], s["failed"]) == (CALLS, 0) for s in caller.values()), caller
    assert body["measured"]["one_way_audio_calls"] == 0
    for row in calls(sqlite_stack, sid):
        held = {d["direction"]: d for d in row["directions"]}["callee_to_caller"]
        assert held["audio"] and held["lost"] == 0, row  # a paused stream loses nothing
        assert held["max_gap_ms"] >= 800 and held["after_gap_ms"] >= 800, held  # held, resumed
        other = {d["direction"]: d for d in row["directions"]}["caller_to_callee"]
        assert other["max_gap_ms"] < 300, other  # the holder kept sending


def test_a_callee_that_does_not_resume_audio_fails_the_resume_step(
    sessions: dict[str, tuple[str, dict[str, Any]]],
) -> None:
    _, body = sessions["silent"]
    assert body["verdict"] == "fail", body
    failed = {t["threshold"] for t in body["thresholds"] if not t["passed"]}
    assert failed == {"step_failed_resume == 0"}, body["thresholds"]
    caller = steps(body)
    resume = caller.pop("resume")
    assert (resume["passed"], resume["failed"]) == (0, CALLS), resume
    assert resume["failed_by"] == {"no audio after resume": CALLS}
    assert all(s["failed"] == 0 for s in caller.values()), caller  # the hold itself passed
    assert body["measured"]["successful_calls"] == CALLS  # SIP-wise every call was fine


# -- without a network: the XML and the judgement ------------------------------------------------
def test_hold_variant_pauses_and_resumes_the_callee(tmp_path: Path) -> None:
    flow = FLOWS["hold_resume"]
    audio = tmp_path / "reference.ulaw"
    for resume_audio in (True, False):
        params = HoldResume(name="hold_resume", hold_s=2, resume_audio=resume_audio)
        assert flow.callee is not None
        callee = media_variant(flow.callee(params), MediaConfig(), audio)
        assert "m=audio [media_port+1000] RTP/AVP 0 96" in callee
        assert callee.count(f'rtp_stream="{audio},-1,0"') == 1
        assert callee.count('<exec rtp_stream="pause"/>') == 1
        assert callee.count('<exec rtp_stream="resume"/>') == (1 if resume_audio else 0)
        safe_xml.fromstring(callee)  # still well-formed
    caller = media_variant(flow.caller(params), MediaConfig(), audio)
    assert caller.count(f'<pause milliseconds="{TALK_MS}"/>') == 2  # before hold, after resume
    assert 'rtp_stream="pause"' not in caller
    safe_xml.fromstring(caller)


def row(direction: str, received: int, gap: float, after: float, last: float) -> CallMediaRow:
    return CallMediaRow(
        session_id="s",
        stream_key=direction,
        call_id="c",
        direction=direction,
        received=received,
        max_gap_ms=gap,
        after_gap_ms=after,
        first_time=0.0,
        last_time=last,
    )


def test_judge_hold() -> None:
    other = row("caller_to_callee", 150, 20, 0, 3.0)
    ok = row("callee_to_caller", 100, 1000, 1000, 3.0)
    assert judge_hold([other, ok], 1.0) == {}
    silent = row("callee_to_caller", 50, 20, 0, 1.0)  # stopped at the hold, never resumed
    assert judge_hold([other, silent], 1.0) == {"resume": "no audio after resume"}
    talking = row("callee_to_caller", 150, 20, 0, 3.0)  # never paused
    assert judge_hold([other, talking], 1.0) == {
        "hold": "audio during hold",
        "resume": "no audio after resume",
    }
    assert set(judge_hold([other], 1.0)) == {"hold", "resume"}
    assert hold_s_of({"roles": {"callers": {"flow": {"name": "hold_resume"}, "media": {}}}}) == 1
    assert hold_s_of({"roles": {"callers": {"flow": {"name": "hold_resume"}}}}) is None


def test_media_goes_with_the_hold_flow_only() -> None:
    def spec(flow: dict[str, Any], callee_media: dict[str, Any]) -> dict[str, Any]:
        return {
            "target": {"host": "127.0.0.1", "port": 5090, "registrar": True},
            "roles": {
                "callees": {"media": callee_media, "accounts": [{"user": "b", "password": "s"}]},
                "callers": {"max_calls": 1, "media": {}, "flow": flow},
            },
        }

    SessionSpec.model_validate(spec({"name": "hold_resume"}, {}))
    for bad, where in (
        (spec({"name": "prack"}, {}), "only hold_resume and blind_transfer carry audio"),
        (spec({"name": "hold_resume"}, {"dtmf": {"digits": "1"}}), "media.dtmf: not with a flow"),
    ):
        with pytest.raises(ValidationError, match=where):
            SessionSpec.model_validate(bad)
