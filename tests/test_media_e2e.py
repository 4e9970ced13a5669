"""Audio through a real system under test: callees register at Kamailio, callers call them
through it, both stream G.711 (direct RTP between the runners), each runner measures what it
receives. Clean: MOS ~ 4.4 (E-model, G.711); 5 % loss on the way in: loss ~ 5 %, MOS lower;
RTP to the callers blocked: every call one-way."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from entrypoints.cli import app
from entrypoints.stack import free_port
from tests.conftest import RunningStack
from tests.dashboard_fixtures import (  # noqa: F401
    browser_fixture,
    page_fixture,
    sign_in,
)
from tests.sut.kamailio import kamailio

CALLS = 10


@pytest.fixture(scope="module")
def sut(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    port = free_port()
    with kamailio(port, tmp_path_factory.mktemp("kamailio")):
        yield "127.0.0.1", port


def media_spec(host: str, port: int, mos: str = "emodel", **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": "media-through-kamailio",
        "target": {"host": host, "port": port, "domain": host, "registrar": True},
        "roles": {
            "callees": {
                "agents": 1,
                "accounts": [{"user": "bob", "password": "secret"}],
                "media": {"codec": "PCMU", "mos": mos},
            },
            "callers": {
                "rate": 5,
                "max_calls": CALLS,
                "hold_ms": 2000,
                "accounts": [{"user": "alice"}],
                "media": {"codec": "PCMU", "mos": mos},
            },
        },
        "thresholds": ["success_rate >= 100", "mos_p5 >= 4.3", "one_way_audio_calls == 0"],
    }
    spec.update(extra)
    return spec


def calls(stack: RunningStack, sid: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = stack.http.get(f"/v1/sessions/{sid}/calls", params={"limit": 4, "offset": offset})
        assert page.status_code == 200, page.text
        body = page.json()
        items += body["items"]
        offset += 4
        if offset >= body["total"]:
            return items


def test_clean_audio_both_ways(sqlite_stack: RunningStack, sut: tuple[str, int]) -> None:
    spec = media_spec(*sut, mos="pesq")
    spec["thresholds"].append("pesq_median >= 3.5")
    body = sqlite_stack.run(spec)
    assert (body["status"], body["verdict"]) == ("completed", "pass"), body
    m = body["measured"]
    assert m["media_calls"] == CALLS
    assert m["rtp_loss_pct"] == 0
    assert m["mos_median"] == pytest.approx(4.41, abs=0.02)
    assert (m["one_way_audio_calls"], m["no_audio_calls"]) == (0, 0)
    rows = calls(sqlite_stack, body["id"])
    assert len(rows) == CALLS and len({r["call_id"] for r in rows}) == CALLS
    for row in rows:
        assert row["audio"] == "both"
        assert sorted(d["direction"] for d in row["directions"]) == [
            "callee_to_caller",
            "caller_to_callee",
        ]
        for d in row["directions"]:
            assert d["received"] >= 80  # 2 s of 20 ms packets, less set-up
            assert (d["lost"], d["duplicates"]) == (0, 0)
            assert d["pesq"] >= 4.0
    # The CLI shows the same calls.
    env = {"SIPFLOW_API_KEY": str(sqlite_stack.stack.api_key)}
    argv = ["sessions", "calls", body["id"], "--api", sqlite_stack.stack.api_url, "--json"]
    shown = CliRunner().invoke(app, argv, env=env)
    assert shown.exit_code == 0, shown.output
    assert '"total": 10' in shown.stdout
    table = CliRunner().invoke(app, argv[:-1], env=env)
    assert table.exit_code == 0 and "10 of 10 calls" in table.stdout


def test_five_percent_loss_lowers_mos(sqlite_stack: RunningStack, sut: tuple[str, int]) -> None:
    spec = media_spec(*sut, mos="pesq", network={"loss_pct": 5})
    spec["thresholds"] = ["mos_p5 >= 4.3", "pesq_median >= 3.5"]  # both fail with loss
    spec["roles"]["callers"]["hold_ms"] = 4000
    body = sqlite_stack.run(spec)
    assert body["status"] == "completed" and body["verdict"] == "fail", body
    m = body["measured"]
    assert 3.0 <= m["rtp_loss_pct"] <= 7.0, m
    assert m["mos_median"] < 4.2, m  # E-model, G.711 + PLC: ~3.9 at 5 % random loss
    assert 1.0 <= m["pesq_median"] < 3.5, m  # clean: ~4.5
    failed = {t["threshold"] for t in body["thresholds"] if not t["passed"]}
    assert failed == {"mos_p5 >= 4.3", "pesq_median >= 3.5"}
    assert m["media_calls"] >= 1
    # The report's media panel: every scored direction in one MOS bin, loss seen over time, the
    # worst calls first.
    p = sqlite_stack.http.get(f"/v1/sessions/{body['id']}/media").json()
    scored = sum(1 for c in calls(sqlite_stack, body["id"]) for d in c["directions"] if d["mos"])
    assert sum(b["directions"] for b in p["mos"]) == scored > 0
    assert any(s["loss_pct"] for s in p["over_time"]), p["over_time"]
    worst = [c["mos"] for c in p["worst"]]
    assert worst == sorted(worst) and worst[0] == min(
        c["mos"] for c in calls(sqlite_stack, body["id"])
    )


def _block_rtp_to_callers(sid: str, port: int, deadline_s: float = 30) -> None:
    """Once the session's namespace exists: drop every RTP packet to the callers' receivers (a
    firewall that lets one direction through)."""
    ns = f"sipflow-{sid}"
    deadline = time.monotonic() + deadline_s
    rules = (
        "table inet mediatest {\n chain input {\n  type filter hook input priority -10;"
        f" policy accept;\n  ip daddr 10.0.0.0/8 ip daddr & 0.0.0.255 >= 100 udp dport {port}"
        " drop\n }\n}\n"
    )
    while time.monotonic() < deadline:
        res = subprocess.run(
            ["ip", "netns", "exec", ns, "nft", "-f", "-"],
            input=rules,
            text=True,
            check=False,
            capture_output=True,
        )
        if res.returncode == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"namespace {ns} never came: {res.stderr}")


def test_one_way_audio_is_detected(
    sqlite_stack: RunningStack, sut: tuple[str, int], page: Any
) -> None:
    spec = media_spec(*sut)
    spec["roles"]["callers"]["max_calls"] = 4
    sid = sqlite_stack.submit(spec)
    _block_rtp_to_callers(sid, 7000)
    body = sqlite_stack.wait(sid)
    assert body["verdict"] == "fail", body
    m = body["measured"]
    assert m["one_way_audio_calls"] == 4, m
    assert m["no_audio_calls"] == 0
    assert "one_way_audio_calls == 0" in [
        t["threshold"] for t in body["thresholds"] if not t["passed"]
    ]
    for row in calls(sqlite_stack, sid):
        got = {d["direction"]: d["audio"] for d in row["directions"]}
        assert row["audio"] == "one_way", row
        assert got["caller_to_callee"] is True
        assert got.get("callee_to_caller", False) is False
    # The dashboard's report lists the calls, each one-way, both directions shown.
    api = sqlite_stack.stack.api_url
    sign_in(page, api, str(sqlite_stack.stack.api_key))
    page.goto(f"{api}/dashboard/sessions/{sid}")
    page.wait_for_selector("#media:not([hidden]) #calls tbody tr")
    shown = page.eval_on_selector_all("#calls tbody tr", "rows => rows.map(r => r.dataset.audio)")
    assert shown == ["one_way"] * 8  # 4 calls x 2 directions
    page.wait_for_selector("body[data-media-loaded]")
    worst = page.eval_on_selector_all(
        "#worst-calls tbody tr", "rows => rows.map(r => r.dataset.audio)"
    )
    assert worst == ["one_way"] * 4


def test_calls_that_never_stream_do_not_shift_the_streams_of_later_calls(
    sqlite_stack: RunningStack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """SIPp gives a call its SSRC when the call is made (0xCA110000 + the call's number - 1),
    not when its stream starts: the proxy answering the 5th and 10th of every ten INVITEs itself
    (486, 503) leaves those calls without a stream, and every later call's stream must still be
    tied to its own call (each answered call audio both ways, none one-way)."""
    port = free_port()
    degraded = Path(__file__).parent / "sut" / "kamailio-degraded.cfg"
    work = tmp_path_factory.mktemp("kamailio-mixed")
    with kamailio(port, work, config=degraded, defines=("MIXED_CODES",)):
        spec = media_spec("127.0.0.1", port)
        spec["roles"]["callers"]["max_calls"] = 20
        spec["roles"]["callers"]["rate"] = 10
        spec["thresholds"] = ["one_way_audio_calls == 0", "code_486 == 2", "code_503 == 2"]
        body = sqlite_stack.run(spec)
    assert body["verdict"] == "pass", body["reasons"]
    m = body["measured"]
    assert (m["successful_calls"], m["media_calls"], m["one_way_audio_calls"]) == (16, 16, 0), m
    answered = [c for c in calls(sqlite_stack, body["id"]) if c.get("audio")]
    assert len(answered) == 16 and all(c["audio"] == "both" for c in answered), answered
