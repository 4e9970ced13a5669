"""A blind transfer with media on all three sides through Kamailio (tests/sut/kamailio-flows.cfg):
alice (callers) talks with bob (callees), REFERs him to carol (a named party); bob's one SIPp
stream turns to carol at her answer (runners/media_transfer.py). Per call the calls API shows
four directions: the first call's two, and the transferred leg's two (bob -> carol reported by
carol's receiver, carol -> bob by bob's), each from its own sender to its own receiver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from defusedxml import ElementTree as safe_xml
from pydantic import ValidationError

from entrypoints.stack import free_port
from runners import media_pesq
from runners.media_session import media_variant
from runners.media_transfer import LEG_TAG, legs
from sipflow.flows import FLOWS
from sipflow.media_store import FROM_PARTY, TO_PARTY
from sipflow.runner_config import MediaConfig
from sipflow.spec import SessionSpec
from sipflow.transfer_flows import BlindTransfer
from tests.conftest import RunningStack
from tests.sut.kamailio import kamailio
from tests.test_media_e2e import calls
from tests.test_transfer_flows import FLOWS_CFG, transfer_spec

CALLS = 3
HOLD_MS = 2000  # the transferred call's length: from the transfer to the transferor's BYE


def media_transfer_spec(sut: str, n: str) -> dict[str, Any]:
    spec = transfer_spec(sut, n)
    roles = spec["roles"]
    roles["callers"].update(max_calls=CALLS, rate=2, hold_ms=HOLD_MS, media={"mos": "pesq"})
    roles["callees"]["media"] = {"mos": "pesq"}
    roles["parties"]["carol"]["media"] = {"mos": "pesq"}
    spec["thresholds"] += ["one_way_audio_calls == 0", "no_audio_calls == 0", "rtp_loss_pct < 1"]
    return spec


@pytest.fixture(scope="module")
def session(
    sqlite_stack: RunningStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, Any]]]:
    work = tmp_path_factory.mktemp("kamailio-transfer-media")
    with kamailio(free_port(), work, config=FLOWS_CFG) as sut:
        sid = sqlite_stack.submit(media_transfer_spec(sut, "m1"))
        yield sid, sqlite_stack.wait(sid, 240)


def test_transferred_call_has_audio_both_ways(
    sqlite_stack: RunningStack, session: tuple[str, dict[str, Any]]
) -> None:
    sid, body = session
    assert (body["status"], body["verdict"]) == ("completed", "pass"), body["reasons"]
    assert body["measured"]["successful_calls"] == CALLS
    assert body["measured"]["media_calls"] == CALLS
    items = calls(sqlite_stack, sid)
    assert len(items) == CALLS, items
    for call in items:
        assert call["audio"] == "both", call
        dirs = {d["direction"]: d for d in call["directions"]}
        assert set(dirs) == {"caller_to_callee", "callee_to_caller", TO_PARTY, FROM_PARTY}, call
        ends = {k: (d["sender_runner"], d["receiver_runner"]) for k, d in dirs.items()}
        assert ends == {
            "caller_to_callee": ("caller-0", "callee-0"),
            "callee_to_caller": ("callee-0", "caller-0"),
            TO_PARTY: ("callee-0", "callee-1"),  # bob's stream, sent on to carol
            FROM_PARTY: ("callee-1", "callee-0"),
        }, call
        for leg in (TO_PARTY, FROM_PARTY):
            d = dirs[leg]
            # About hold_ms of audio (50 packets/s) on the transferred leg, nothing lost.
            assert d["audio"] and d["lost"] == 0, d
            assert d["received"] >= 0.5 * HOLD_MS / 20, d
            # Clean: carol hears bob's stream from its first packet to her, against the
            # reference from there (from packet 0 it scored 3.1 here).
            if media_pesq.available():
                assert d["pesq"] is not None and d["pesq"] >= 4.0, d
        # bob's one SIPp stream: to alice before the transfer, to carol after it. carol got its
        # later packets only (its sequence numbers go on), alice its earlier ones.
        assert dirs["callee_to_caller"]["received"] > 0
    # The transferee's log tied each call's stream to the transfer target once.
    log = (sqlite_stack.runs_dir / sid / "callee-0" / "media.log").read_text()
    assert log.count(LEG_TAG) == CALLS, log


# -- without a network: the XML, the log and the spec ---------------------------------------------
def test_transfer_variant_starts_audio_on_every_side(tmp_path: Path) -> None:
    flow = FLOWS["blind_transfer"]
    params = BlindTransfer(name="blind_transfer")
    audio = tmp_path / "reference.ulaw"
    assert flow.callee is not None and flow.party is not None
    sides = {
        "caller": flow.caller(params),
        "callee": flow.callee(params),
        "party": flow.party(params),
    }
    for side, xml in sides.items():
        out = media_variant(xml, MediaConfig(), audio)
        assert out.count(f'rtp_stream="{audio},-1,0"') == 1, side
        assert "m=audio [media_port+1000] RTP/AVP 0 96" in out, side
        assert out.count(LEG_TAG) == (1 if side == "callee" else 0), side
        safe_xml.fromstring(out)
    log = tmp_path / "media.log"
    log.write_text(f"sipflow-media c1\n{LEG_TAG} c1 party\nsipflow-media c2\n{LEG_TAG} c2 party\n")
    assert legs(log) == ["c1", "c2"]


def test_media_on_a_party_is_validated() -> None:
    ok = media_transfer_spec("127.0.0.1:5090", "v")
    SessionSpec.model_validate(ok)

    def error(spec: dict[str, Any]) -> str:
        with pytest.raises(ValidationError) as exc:
            SessionSpec.model_validate(spec)
        return str(exc.value)

    no_party = media_transfer_spec("127.0.0.1:5090", "v")
    del no_party["roles"]["parties"]["carol"]["media"]
    assert "roles.parties.carol.media: the callers have media" in error(no_party)
    only_party = transfer_spec("127.0.0.1:5090", "v")
    only_party["roles"]["parties"]["carol"]["media"] = {}
    assert "roles.callers.media: the party has media" in error(only_party)
    codec = media_transfer_spec("127.0.0.1:5090", "v")
    codec["roles"]["parties"]["carol"]["media"] = {"codec": "PCMA"}
    assert "roles.parties.carol.media.codec: must be the callers' codec" in error(codec)
    short = media_transfer_spec("127.0.0.1:5090", "v")
    short["roles"]["callers"]["hold_ms"] = 500
    assert "roles.callers.hold_ms: the transferred call's audio" in error(short)
    attended = media_transfer_spec("127.0.0.1:5090", "v")
    attended["roles"]["callers"]["flow"]["name"] = "attended_transfer"
    assert "only hold_resume and blind_transfer carry audio" in error(attended)
