"""Per-call evidence (issue 12 item 5): a SIP capture per session, ring-buffered and bounded on
disk, and at the end each failed call's (and a sample of answered calls') messages kept as a
pcap and a ladder, reachable by API, CLI and the report.

Real parts: SIPp runners in the session's namespace, Kamailio answering a known mix of codes
(`-A MIXED_CODES`: the 5th of every ten INVITEs 486, the 10th 503), the capture process, tcpdump
reading the pcaps, and a capture of our own on the host (tests/sip_wire.py) to compare with."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from backends import evidence_capture
from backends.sip_capture import Ring
from entrypoints.cli import app
from sipflow.evidence import choose, extract
from sipflow.sip_pcap import parse_ip, read_pcap
from tests.conftest import RunningStack, start_stack
from tests.dashboard_fixtures import (  # noqa: F401
    browser_fixture,
    page_fixture,
    screenshot,
    sign_in,
)
from tests.runner_fixtures import free_port
from tests.sip_wire import sip_wire
from tests.sut.kamailio import kamailio

DEGRADED = Path(__file__).parent / "sut" / "kamailio-degraded.cfg"


def _udp_sip(src: bytes, dst: bytes, text: str) -> bytes:
    """An IPv4/UDP packet (checksums left 0) carrying `text`."""
    payload = text.encode()
    udp = (5060).to_bytes(2, "big") * 2 + (8 + len(payload)).to_bytes(2, "big") + b"\0\0"
    ip = bytes([0x45, 0]) + (20 + len(udp) + len(payload)).to_bytes(2, "big") + b"\0" * 4
    ip += bytes([64, 17, 0, 0]) + src + dst
    return ip + udp + payload


def _invite(cid: str) -> str:
    return f"INVITE sip:bob@x SIP/2.0\r\nCall-ID: {cid}\r\nCSeq: 1 INVITE\r\n\r\n"


def _final(cid: str, status: str, method: str = "INVITE") -> str:
    return f"SIP/2.0 {status}\r\nCall-ID: {cid}\r\nCSeq: 1 {method}\r\n\r\n"


def test_ring_stays_under_its_bound_and_extraction_keeps_failed_calls(tmp_path: Path) -> None:
    """The ring drops its oldest file, never holds more than max_bytes; the extraction keeps
    the failed calls of what is left (each reason first), a sample of answered ones, and no
    ring."""
    a, b = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    ring = Ring(tmp_path / "s1" / "capture", max_bytes=12000, max_files=3)
    for i in range(200):
        ring.add(1000.0 + i, _udp_sip(a, b, _invite(f"c{i}")))
        status = "486 Busy Here" if i % 10 == 5 else "200 OK"
        if i % 10 == 0:
            status = "503 Service Unavailable"
        if i % 7 == 3:  # a challenge before the final: not the call's reason
            ring.add(1000.0 + i, _udp_sip(b, a, _final(f"c{i}", "401 Unauthorized")))
        ring.add(1000.1 + i, _udp_sip(b, a, _final(f"c{i}", status)))
        on_disk = sum(p.stat().st_size for p in ring.folder.glob("*.pcap"))
        assert on_disk <= 12000 and len(list(ring.folder.glob("*.pcap"))) <= 3
    ring.close()
    assert ring.dropped_files > 0 and ring.held_bytes_max <= 12000
    survivors = {
        p.payload.split(b"Call-ID: ")[1].split(b"\r")[0].decode()
        for f in sorted(ring.folder.glob("*.pcap"))
        for _, raw in read_pcap(f)
        if (p := parse_ip(raw)) is not None
    }
    assert "c0" not in survivors  # the oldest went
    kept, _ = extract(tmp_path / "s1", max_failed=4, good=2)
    failed = [k for k in kept if k.outcome == "failed"]
    assert len(failed) == 4
    assert {k.reason for k in failed} == {
        "INVITE: 486 Busy Here",
        "INVITE: 503 Service Unavailable",
    }
    assert all(int(k.call_id[1:]) % 5 == 0 for k in failed)
    assert [k.outcome for k in kept].count("answered") == 2
    assert not (tmp_path / "s1" / "capture").exists()
    assert sorted(p.name for p in (tmp_path / "s1" / "evidence").iterdir()) == sorted(
        [f"{k.key}.{ext}" for k in kept for ext in ("json", "pcap")] + ["index.json"]
    )
    again, _ = extract(tmp_path / "s1", max_failed=4, good=2)  # a retried activity
    assert [k.call_id for k in again] == [k.call_id for k in kept]


def test_a_call_the_ring_kept_only_the_end_of_is_not_a_failed_call(tmp_path: Path) -> None:
    """The ring's oldest kept file can start between a call's BYE and its 200: that tail is
    an answered call's end, not a call without a final response (a CI run kept it as failed)."""
    a, b = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    ring = Ring(tmp_path / "s1" / "capture", max_bytes=100000, max_files=3)
    ring.add(1000.0, _udp_sip(b, a, _final("tail", "200 OK", "BYE")))
    ring.add(1000.1, _udp_sip(a, b, _invite("whole")))
    ring.add(1000.2, _udp_sip(b, a, _final("whole", "200 OK")))
    ring.close()
    kept, _ = extract(tmp_path / "s1", max_failed=4, good=1)
    assert [(k.call_id, k.outcome) for k in kept] == [("whole", "answered")]


def test_choose_spreads_the_bound_over_the_reasons() -> None:
    from sipflow.evidence import CallTrace

    calls = [CallTrace(f"a{i}", i, "INVITE", [(503, "Service Unavailable")]) for i in range(10)]
    calls.append(CallTrace("b", 20, "INVITE", [(486, "Busy Here")]))
    calls.append(CallTrace("c", 21, "INVITE", []))
    calls.append(CallTrace("d", 22, "INVITE", [], bye=True))  # its 200 was not captured
    picked = choose(calls, max_failed=3, good=5)
    assert [c.call_id for c, *_ in picked] == ["a0", "b", "c", "d"]
    assert picked[2][2] == "INVITE: no final response"
    assert picked[3][1] == "answered"
    # A busy flow's 486 is its success: sampled, not failed.
    as_busy = choose(calls, max_failed=3, good=1, expected=486)
    outcomes = [(c.call_id, o) for c, o, *_ in as_busy]
    assert outcomes == [("a0", "failed"), ("c", "failed"), ("a1", "failed"), ("b", "expected")]


def _spec(port: int, calls: int, rate: float) -> dict[str, Any]:
    return {
        "name": "evidence",
        "target": {"host": "127.0.0.1", "port": port, "domain": "127.0.0.1", "registrar": True},
        "roles": {
            "callees": {"agents": 1, "accounts": [{"user": "bob", "password": "secret"}]},
            "callers": {"rate": rate, "max_calls": calls, "accounts": [{"user": "alice"}]},
        },
        "thresholds": ["total_calls >= 1"],
    }


def _tcpdump_call_ids(pcap: Path) -> set[str]:
    """Call-IDs in a pcap as tcpdump reads it (an independent pcap reader)."""
    if shutil.which("tcpdump") is None:
        pytest.fail("tcpdump is missing: run deploy/setup.sh")
    out = subprocess.run(
        ["tcpdump", "-nn", "-r", str(pcap), "-A"], capture_output=True, text=True, check=True
    )
    return {
        line.split(":", 1)[1].strip()
        for line in out.stdout.splitlines()
        if line.lower().startswith("call-id:")
    }


def _no_capture_left(rs: RunningStack, sid: str) -> None:
    assert evidence_capture.running(sid) == []
    session_dir = rs.runs_dir / sid
    assert not (session_dir / "capture").exists()
    kept = json.loads((session_dir / "evidence" / "index.json").read_text())["calls"]
    assert sorted(p.name for p in (session_dir / "evidence").iterdir()) == sorted(
        [f"{k['key']}.{ext}" for k in kept for ext in ("json", "pcap")] + ["index.json"]
    )


def test_failed_calls_through_kamailio_have_ladders_and_pcaps(
    sqlite_stack: RunningStack, tmp_path: Path, page: Any
) -> None:
    rs = sqlite_stack
    port = free_port()
    with (
        kamailio(port, tmp_path / "kamailio", defines=("MIXED_CODES",), config=DEGRADED),
        sip_wire(port) as wire,
    ):
        body = rs.run(_spec(port, 20, 10))
    sid = body["id"]
    listing = rs.http.get(f"/v1/sessions/{sid}/evidence").json()
    failed = [c for c in listing["calls"] if c["outcome"] == "failed"]
    answered = [c for c in listing["calls"] if c["outcome"] == "answered"]
    # Every failed call has evidence, with the reason SIPp gave it (the report's failure
    # reasons, per role: they link), as often as SIPp counted it; 3 answered ones (the default).
    sipp = body["roles"]["caller"]["failure_reasons"]
    assert set(sipp) == {"INVITE: 486 Busy Here", "INVITE: 503 Service Unavailable"}, sipp
    assert Counter(c["reason"] for c in failed) == sipp
    assert {r: len(ids) for r, ids in listing["by_reason"].items()} == sipp
    assert len(answered) == 3 and all(c["final_code"] == 200 for c in answered)
    # What our host-wide wire capture saw fail (it may drop packets on a loaded machine: a
    # subset) was kept, with the same code.
    codes = {c["call_id"]: c["final_code"] for c in failed}
    for cid, finals in wire.invite_finals.items():
        if finals & {486, 503}:
            assert codes.get(cid) in finals, (cid, finals, codes)
    for c in failed:
        lad = rs.http.get(f"/v1/sessions/{sid}/calls/{c['call_id']}/ladder").json()
        firsts = [m["first_line"] for m in lad["messages"]]
        assert firsts[0].startswith("INVITE sip:"), firsts
        code = c["final_code"]
        answer = [m for m in lad["messages"] if m["first_line"].startswith(f"SIP/2.0 {code} ")]
        assert len(answer) == 1 and answer[0]["src"].endswith(f":{port}"), lad["messages"]
        assert not any(f.startswith("SIP/2.0 200") for f in firsts), firsts
        assert f"INVITE: {answer[0]['first_line'][8:]}" == c["reason"]
        assert all(("Call-ID", c["call_id"]) in [tuple(h) for h in m["headers"]]
                   for m in lad["messages"])  # fmt: skip
        r = rs.http.get(f"/v1/sessions/{sid}/calls/{c['call_id']}/pcap")
        assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.tcpdump.pcap"
        pcap = tmp_path / f"{c['final_code']}-{c['call_id']}.pcap"
        pcap.write_bytes(r.content)
        assert _tcpdump_call_ids(pcap) == {c["call_id"]}
        assert len(list(read_pcap(pcap))) == len(lad["messages"])
    good = rs.http.get(f"/v1/sessions/{sid}/calls/{answered[0]['call_id']}/ladder").json()
    firsts = [m["first_line"].split(" ")[0] for m in good["messages"]]
    assert {"INVITE", "ACK", "BYE"} <= set(firsts), firsts
    # Another tenant sees none of it; a call without evidence is a 404.
    other = rs.client_for("evidence-other")
    cid = failed[0]["call_id"]
    for path in ("evidence", f"calls/{cid}/ladder", f"calls/{cid}/pcap"):
        assert other.get(f"/v1/sessions/{sid}/{path}").status_code == 404, path
    assert rs.http.get(f"/v1/sessions/{sid}/calls/nope@x/ladder").status_code == 404
    # The CLI prints the ladder and saves the pcap.
    out_pcap = tmp_path / "cli.pcap"
    env = {"SIPFLOW_API_KEY": rs.stack.api_key}
    result = CliRunner().invoke(
        app,
        ["sessions", "ladder", sid, cid, "--pcap", str(out_pcap), "--api", rs.stack.api_url],
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert "INVITE sip:" in result.output and str(failed[0]["final_code"]) in result.output
    assert (
        out_pcap.read_bytes() == (tmp_path / f"{failed[0]['final_code']}-{cid}.pcap").read_bytes()
    )
    _no_capture_left(rs, sid)
    # The report: each failure reason links to its example calls; a link draws that call.
    sign_in(page, rs.stack.api_url, str(rs.stack.api_key))
    page.goto(f"{rs.stack.api_url}/dashboard/sessions/{sid}")
    link = page.locator(
        '#reasons li[data-reason="INVITE: 503 Service Unavailable"] a.evidence-link'
    )
    link.first.wait_for()
    assert link.count() == 2
    wanted = link.first.get_attribute("data-call")
    link.first.click()
    page.wait_for_function(f"document.body.dataset.evidenceCall === {json.dumps(wanted)}")
    lines = page.eval_on_selector_all(
        "#evidence-ladder g.ladder-msg", "gs => gs.map(g => g.dataset.firstLine)"
    )
    assert lines[0].startswith("INVITE ") and "SIP/2.0 503 Service Unavailable" in lines, lines
    screenshot(page, "dashboard-report-evidence.png")


@pytest.fixture(scope="module")
def bounded_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    env = {
        "SIPFLOW_EVIDENCE_MAX_BYTES": "24576",
        "SIPFLOW_EVIDENCE_MAX_FILES": "3",
        "SIPFLOW_EVIDENCE_GOOD_CALLS": "1",
    }
    yield from start_stack(tmp_path_factory.mktemp("stack-evidence"), extra_env=env)


def test_capture_stays_under_its_bound_on_a_longer_run_and_nothing_is_left(
    bounded_stack: RunningStack,
) -> None:
    """400 direct calls (~3 kB of SIP each) through a 24 kB ring of 3 files: the folder never
    holds more, the capture says it dropped files, and after the session only the kept call's
    files remain: no capture process, no ring."""
    rs = bounded_stack
    spec = {
        "name": "evidence-bound",
        "roles": {
            "callees": {"agents": 1, "scenario": "answer"},
            "callers": {"agents": 1, "scenario": "call", "rate": 80, "max_calls": 400},
        },
        "thresholds": ["failed_calls == 0"],
    }
    sid = rs.submit(spec)
    ring = rs.runs_dir / sid / "capture"
    sizes: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            files = list(ring.glob("ring-*.pcap")) if ring.exists() else []
            total = 0
            for f in files:
                with contextlib.suppress(FileNotFoundError):  # dropped since the listing
                    total += f.stat().st_size
            sizes.append(total)
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        body = rs.wait(sid)
    finally:
        done.set()
        watcher.join(2)
    assert body["verdict"] == "pass", body["reasons"]
    assert max(sizes) > 0, "the ring was never seen"
    assert max(sizes) <= 24576, max(sizes)
    index = json.loads((rs.runs_dir / sid / "evidence" / "index.json").read_text())
    stats = index["capture"]
    shown = rs.http.get(f"/v1/sessions/{sid}/evidence").json()["capture"]
    assert shown["files_dropped"] == stats["files_dropped"] and shown["max_bytes"] == 24576
    assert stats["files_dropped"] > 0 and stats["held_bytes_max"] <= 24576, stats
    assert stats["sip_packets"] >= 400 * 6, stats  # INVITE 100 180 200 ACK BYE 200 per call
    assert [c["outcome"] for c in index["calls"]] == ["answered"]
    _no_capture_left(rs, sid)


@pytest.fixture(scope="module")
def loopback_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    env = {"SIPFLOW_LOCAL_NETWORK": "loopback", "SIPFLOW_EVIDENCE_GOOD_CALLS": "1"}
    yield from start_stack(tmp_path_factory.mktemp("stack-evidence-lo"), extra_env=env)


def test_a_cancelled_loopback_session_stops_its_capture_and_keeps_its_evidence(
    loopback_stack: RunningStack,
) -> None:
    """Loopback mode: the capture runs on the host, filtered to the session's 127.201.N.0/24."""
    rs = loopback_stack
    spec = {
        "name": "evidence-cancel",
        "roles": {
            "callees": {"agents": 1, "scenario": "answer"},
            "callers": {"agents": 1, "scenario": "call", "rate": 10, "duration_s": 120},
        },
    }
    sid = rs.submit(spec)
    rs.wait_phase(sid, "running callers")
    time.sleep(2)
    assert evidence_capture.running(sid), "no capture beside the runners"
    assert rs.http.post(f"/v1/sessions/{sid}/cancel").status_code in (200, 202)
    body = rs.wait(sid, timeout=90)
    assert body["status"] == "cancelled"
    listing = rs.http.get(f"/v1/sessions/{sid}/evidence").json()
    assert [c["outcome"] for c in listing["calls"]][:1] == ["answered"], listing
    lad = rs.http.get(f"/v1/sessions/{sid}/calls/{listing['calls'][0]['call_id']}/ladder").json()
    ends = {m[k].split(":")[0] for m in lad["messages"] for k in ("src", "dst")}
    subnet = {r["address"].rsplit(".", 1)[0] for r in body["runners"]}
    assert {e.rsplit(".", 1)[0] for e in ends} == subnet and subnet.pop().startswith("127."), ends
    _no_capture_left(rs, sid)
