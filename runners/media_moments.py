"""The moments a call script's media steps are judged at (docs/call-script.md "Media steps").

SIPp writes them in its log with the `[timestamp]` keyword ("2026-12-07<TAB>06:04:56.470559<TAB>
1796623496.470559": date, time and epoch seconds of gettimeofday): the clock of time.time(), which
the RTP receiver stamps each packet's arrival with, so a step's moment and what arrived before
it compare directly on one host.

- `sipflow-expect-at <Call-ID> <step> [timestamp]`: the moment of an expect_dtmf / expect audio
  (sipflow/call_script.py writes it next to the step's `sipflow-expect` line).
- `sipflow-answered <Call-ID> [timestamp]`: when the call's audio started (the caller's 200, the
  callee's ACK): the zero a step's moment is shown from ("received 12 by 00:03.2 after the
  answer"). runners/media_session.py puts it in the action that starts the stream.
"""

from __future__ import annotations

from pathlib import Path

from sipflow.runner_config import EXPECT_AT_LOG

ANSWER_TAG = "sipflow-answered"
ANSWER_LOG = f'<log message="{ANSWER_TAG} [call_id] [timestamp]"/>'


def _epoch(field: str) -> float | None:
    """The epoch seconds of a [timestamp] (its last field), or None for a malformed one."""
    try:
        return float(field)
    except ValueError:
        return None


def _lines(log_file: Path, tag: str) -> list[list[str]]:
    if not log_file.exists():
        return []
    out = []
    for line in log_file.read_text(errors="replace").splitlines():
        parts = line.split()
        if parts and parts[0] == tag:
            out.append(parts[1:])
    return out


def expect_moments(log_file: Path) -> dict[tuple[str, str], float]:
    """{(Call-ID, step): epoch seconds} of the script's media steps."""
    out: dict[tuple[str, str], float] = {}
    for parts in _lines(log_file, EXPECT_AT_LOG):
        at = _epoch(parts[-1]) if len(parts) >= 3 else None
        if at is not None:
            out.setdefault((parts[0], parts[1]), at)
    return out


def answers(log_file: Path) -> dict[str, float]:
    """{Call-ID: epoch seconds} when each call's audio started (its first start)."""
    out: dict[str, float] = {}
    for parts in _lines(log_file, ANSWER_TAG):
        at = _epoch(parts[-1]) if len(parts) >= 2 else None
        if at is not None:
            out.setdefault(parts[0], at)
    return out
