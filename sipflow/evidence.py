"""Per-call evidence: from the session's capture ring (backends/sip_capture.py) to a pcap and a
ladder (parsed message list) per kept call, in `runs_dir/<session>/evidence/`, indexed in the
`call_evidence` table. Run by the evidence activity after teardown (the capture has stopped).

Which calls: a call is a Call-ID whose first request is an INVITE, REGISTER, OPTIONS, ... Its
outcome is the final response to that first request's method as seen on the wire: 2xx ->
`answered`; a final >= 300 (a 401/407 challenge followed by another final does not count) ->
`failed` with the reason worded as SIPp's failure reasons are (`INVITE: 503 Service Unavailable`),
so the report links a reason to its calls; no final at all -> `failed`, `INVITE: no final
response` (unless a BYE was seen: answered, its 2xx not captured). Kept: every failed INVITE call
(up to max_failed, spread over the reasons), the first `good` answered ones, and failed calls of
other methods within the same bound. A call whose first messages the ring dropped is marked
`partial`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sipflow.sip_pcap import Packet, call_id_of, parse_sip, sip_packets, write_pcap

EVIDENCE_DIR = "evidence"
CAPTURE_DIR = "capture"
CHALLENGES = (401, 407)


def key_of(call_id: str) -> str:
    """File stem of a call's evidence (Call-IDs hold any character)."""
    return hashlib.sha256(call_id.encode()).hexdigest()[:24]


@dataclass
class CallTrace:
    call_id: str
    first_time: float
    method: str = ""  # the first request's method ("" when only responses were seen)
    finals: list[tuple[int, str]] = field(default_factory=list)  # (code, status line rest)
    messages: int = 0
    partial: bool = False
    bye: bool = False  # a BYE: the call was answered even if its 200 was not captured

    def outcome(self, expected: int | None = None) -> tuple[str, str | None, int | None]:
        """(answered | expected | failed, reason, final code). `expected`: a flow's expected
        rejection (busy: 486), a success of that session, not a failure."""
        method = self.method or "?"
        if not self.finals:
            if self.bye:
                return "answered", None, None
            return "failed", f"{method}: no final response", None
        ok = [c for c, _ in self.finals if 200 <= c < 300]
        if ok:
            return "answered", None, ok[0]
        ended = [(c, t) for c, t in self.finals if c not in CHALLENGES] or self.finals
        code, text = ended[-1]
        if expected is not None and code == expected and method == "INVITE":
            return "expected", None, code
        return "failed", f"{method}: {code} {text}".rstrip(), code


@dataclass
class Kept:
    call_id: str
    key: str
    outcome: str
    reason: str | None
    final_code: int | None
    method: str
    first_time: float
    messages: int
    partial: bool


def ring_files(capture_dir: Path) -> list[Path]:
    return sorted(capture_dir.glob("ring-*.pcap"))


def _survey(paths: list[Path]) -> OrderedDict[str, CallTrace]:
    calls: OrderedDict[str, CallTrace] = OrderedDict()
    for p in sip_packets(paths):
        cid = call_id_of(p.payload)
        if cid is None:
            continue
        msg = parse_sip(p)
        trace = calls.get(cid)
        if trace is None:
            trace = calls[cid] = CallTrace(cid, p.time)
            trace.partial = msg.status is not None  # its request was dropped by the ring
        trace.messages += 1
        if msg.status is None:
            trace.bye = trace.bye or msg.method == "BYE"
            if not trace.method and msg.method not in ("ACK", "CANCEL"):
                trace.method = msg.method
        elif msg.method == "BYE":
            trace.bye = True  # the ring kept only the call's end (its BYE's answer): answered
        elif not trace.method and msg.method not in ("ACK", "CANCEL", "?"):
            trace.method = msg.method  # its request was not captured: the response's CSeq says
        if msg.status is not None and msg.status >= 200 and msg.method == trace.method:
            rest = msg.first_line[12:].strip()
            if (msg.status, rest) not in trace.finals:
                trace.finals.append((msg.status, rest))
    return calls


def choose(
    calls: Iterable[CallTrace], max_failed: int, good: int, expected: int | None = None
) -> list[tuple[CallTrace, str, str | None, int | None]]:
    """Failed calls round-robin over their reasons (every reason gets examples first), then
    the first `good` successful INVITE calls (answered, or ended on the `expected` code)."""
    by_reason: OrderedDict[str, list[tuple[CallTrace, int | None]]] = OrderedDict()
    answered: list[tuple[CallTrace, str, int | None]] = []
    for c in calls:
        outcome, reason, code = c.outcome(expected)
        if outcome == "failed" and reason is not None:
            by_reason.setdefault(reason, []).append((c, code))
        elif c.method == "INVITE" and len(answered) < good:
            answered.append((c, outcome, code))
    picked: list[tuple[CallTrace, str, str | None, int | None]] = []
    queues = [list(v) for v in by_reason.values()]
    reasons = list(by_reason)
    i = 0
    while len(picked) < max_failed and any(queues):
        q = queues[i % len(queues)]
        if q:
            c, code = q.pop(0)
            picked.append((c, "failed", reasons[i % len(queues)], code))
        i += 1
    for c, outcome, code in answered:
        picked.append((c, outcome, None, code))
    return picked


def extract(
    session_dir: Path, max_failed: int, good: int, expected: int | None = None
) -> tuple[list[Kept], dict[str, Any]]:
    """Keeps the chosen calls' evidence in session_dir/evidence and removes the capture ring.
    Idempotent: a second run finds the evidence already kept (and no ring)."""
    capture = session_dir / CAPTURE_DIR
    out = session_dir / EVIDENCE_DIR
    index_file = out / "index.json"
    if not capture.exists():
        if index_file.exists():
            data = json.loads(index_file.read_text())
            return [Kept(**k) for k in data["calls"]], data["capture"]
        return [], {}
    paths = ring_files(capture)
    stats: dict[str, Any] = {}
    if (capture / "capture.json").exists():
        stats = json.loads((capture / "capture.json").read_text())
    chosen = choose(_survey(paths).values(), max_failed, good, expected)
    wanted = {c.call_id: c for c, *_ in chosen}
    packets: dict[str, list[Packet]] = {cid: [] for cid in wanted}
    for p in sip_packets(paths):
        cid = call_id_of(p.payload)
        if cid in packets:
            packets[cid].append(p)
    tmp = session_dir / (EVIDENCE_DIR + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    kept: list[Kept] = []
    for c, outcome, reason, code in chosen:
        key = key_of(c.call_id)
        write_pcap(tmp / f"{key}.pcap", packets[c.call_id])
        ladder = {
            "call_id": c.call_id,
            "outcome": outcome,
            "reason": reason,
            "final_code": code,
            "partial": c.partial,
            "messages": [parse_sip(p).as_dict() for p in packets[c.call_id]],
        }
        (tmp / f"{key}.json").write_text(json.dumps(ladder))
        kept.append(Kept(c.call_id, key, outcome, reason, code, c.method, c.first_time,
                         len(packets[c.call_id]), c.partial))  # fmt: skip
    stats["ring_files"] = len(paths)
    stats["ring_bytes"] = sum(p.stat().st_size for p in paths)
    (tmp / "index.json").write_text(
        json.dumps({"calls": [k.__dict__ for k in kept], "capture": stats})
    )
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    shutil.rmtree(capture, ignore_errors=True)  # the ring: only the kept calls stay
    return kept, stats


def capture_stats(session_dir: Path) -> dict[str, Any]:
    """What the capture said (counts, kernel drops, files dropped), once extracted."""
    index = session_dir / EVIDENCE_DIR / "index.json"
    if not index.exists():
        return {}
    stats: dict[str, Any] = json.loads(index.read_text()).get("capture", {})
    return stats


def ladder_file(session_dir: Path, key: str) -> Path:
    return session_dir / EVIDENCE_DIR / f"{key}.json"


def pcap_file(session_dir: Path, key: str) -> Path:
    return session_dir / EVIDENCE_DIR / f"{key}.pcap"
