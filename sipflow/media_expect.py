"""A call script's media steps (expect_dtmf, expect audio) judged per call from its media rows,
at the moment of the step (docs/call-script.md "Media steps"). Pure: rows in, judgement out.

- `expect_dtmf D`: the far end's digits that arrived after the previous expect_dtmf of the call
  (its moment plus the tolerance; the call's start for the first) and by this step's moment plus
  the tolerance are exactly D. The digits a step does not wait for count for none.
- `expect audio`: each direction received audio (a packet) in the second before the step (to
  the tolerance after it).

A step without a moment (an XML compiled before moments, or a runner that predates them), or a
call whose rows lack the arrival times, is judged over the whole call, as before.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from sipflow.models import CallMediaRow

WINDOW_S = 1.0  # expect audio: the second before its step
DIRECTIONS = ("caller_to_callee", "callee_to_caller")


class ExpectOut(BaseModel):
    """A call script's expectation in this call (expect_dtmf, expect audio) and its judgement."""

    step: str
    expected: str  # "dtmf 12#" | "audio"
    passed: bool
    reason: str | None  # why it failed, for this call
    kind: str | None  # the failure's kind, as the step table counts it
    at_s: float | None = None  # the step's moment, seconds after the call's answer (None: unknown)


def has_audio(row: CallMediaRow) -> bool:
    return bool(row.received)


def is_dtmf(row: CallMediaRow) -> bool:
    return row.dtmf_sent is not None or row.dtmf_received is not None


def is_audio(row: CallMediaRow) -> bool:
    return not is_dtmf(row) and row.expect_step is None


def clock(seconds: float) -> str:
    """mm:ss.s (00:03.2)."""
    tenths = round(max(0.0, seconds) * 10)
    minutes, rest = divmod(tenths, 600)
    return f"{minutes:02d}:{rest // 10:02d}.{rest % 10}"


def _since_answer(expect: CallMediaRow) -> float | None:
    if expect.expect_at is None or expect.answered_at is None:
        return None
    return expect.expect_at - expect.answered_at


def _moment(expect: CallMediaRow) -> str:
    """The step's moment in a reason: '00:03.2 after the answer' (the step, without the answer)."""
    since = _since_answer(expect)
    return "the step" if since is None else f"{clock(since)} after the answer"


def _arrivals(expect: CallMediaRow, rows: Sequence[CallMediaRow]) -> list[tuple[float, str]] | None:
    """(arrival, digit) of the far end's digits detected in this call, by arrival; None when a
    play that was detected has no arrival times (an older runner)."""
    out: list[tuple[float, str]] = []
    for r in rows:
        if r.dtmf_sent is None or r.direction != expect.direction or not r.dtmf_received:
            continue
        if r.dtmf_times is None or len(r.dtmf_times) != len(r.dtmf_received):
            return None
        out.extend(zip(r.dtmf_times, r.dtmf_received, strict=True))
    return sorted(out, key=lambda a: a[0])


def _whole_call_digits(expect: CallMediaRow, rows: Sequence[CallMediaRow]) -> str:
    plays = [r for r in rows if r.dtmf_sent is not None and r.direction == expect.direction]
    return "".join(r.dtmf_received or "" for r in plays)


def _previous_dtmf_at(expect: CallMediaRow, rows: Sequence[CallMediaRow]) -> float | None:
    """The moment of the call's expect_dtmf before this one (same direction), if any."""
    assert expect.expect_at is not None
    earlier = [
        r.expect_at
        for r in rows
        if r.expect_step is not None
        and r is not expect
        and (r.expect_what or "").startswith("dtmf ")
        and r.direction == expect.direction
        and r.expect_at is not None
        and r.expect_at < expect.expect_at
    ]
    return max(earlier) if earlier else None


def judge_dtmf(
    expect: CallMediaRow, rows: Sequence[CallMediaRow], tolerance_s: float
) -> tuple[str, str] | None:
    """(kind, reason) when `expect_dtmf D` failed, else None."""
    want = (expect.expect_what or "")[5:]
    arrivals = _arrivals(expect, rows) if expect.expect_at is not None else None
    if arrivals is None or expect.expect_at is None:
        got = _whole_call_digits(expect, rows)
        by = ""
    else:
        end = expect.expect_at + tolerance_s
        previous = _previous_dtmf_at(expect, rows)
        start = previous + tolerance_s if previous is not None else float("-inf")
        got = "".join(d for t, d in arrivals if start < t <= end)
        by = f" by {_moment(expect)}"
    if got == want:
        return None
    kind = "dtmf mismatch" if got else "no dtmf"
    return kind, f"expected DTMF {want}, received {got or 'none'}{by}"


def _heard(row: CallMediaRow, start: float, end: float) -> bool:
    return has_audio(row) and any(a <= end and b >= start for a, b in row.spans or [])


def judge_audio(
    expect: CallMediaRow, rows: Sequence[CallMediaRow], tolerance_s: float
) -> tuple[str, str] | None:
    """(kind, reason) when `expect audio` failed, else None."""
    audio = [r for r in rows if is_audio(r)]
    at = expect.expect_at
    timed = at is not None and all(r.spans is not None for r in audio if has_audio(r))
    if at is not None and timed:
        heard = {r.direction for r in audio if _heard(r, at - WINDOW_S, at + tolerance_s)}
        where = f" in the second before {_moment(expect)}"
    else:
        heard = {r.direction for r in audio if has_audio(r)}
        where = ""
    missing = [d for d in sorted(DIRECTIONS) if d not in heard]
    if not missing:
        return None
    kind = "no audio" if len(missing) == len(DIRECTIONS) else "one-way audio"
    return kind, "no audio " + " nor ".join(m.replace("_", " ") for m in missing) + where


def judge(expect: CallMediaRow, rows: Sequence[CallMediaRow], tolerance_s: float) -> ExpectOut:
    """An expectation against the call's other rows, at the step's moment when it has one."""
    what = expect.expect_what or ""
    judge_one = judge_dtmf if what.startswith("dtmf ") else judge_audio
    failed = judge_one(expect, rows, tolerance_s)
    since = _since_answer(expect)
    return ExpectOut(
        step=expect.expect_step or "",
        expected=what,
        passed=failed is None,
        reason=failed[1] if failed else None,
        kind=failed[0] if failed else None,
        at_s=round(since, 3) if since is not None else None,
    )
