"""Media in the blind_transfer flow (sipflow/transfer_flows.py), as runners/media_session.py gives
the built-in call: where each side's audio starts, and how the transferred leg is told apart.

- transferor (callers): streams from the transferee's 200 until its BYE;
- transferee (callees): streams from the transferor's ACK. SIPp 3.6.1 gives a call one stream
  (one SSRC, from its media socket) and sends it wherever the last SDP the call received names:
  the target's 200 (with SDP) turns the same stream to the target. The scenario logs
  `sipflow-media-leg <Call-ID> party` there, so the runner reports the stream a second time
  for that leg (MediaSent.leg);
- target (a named party): streams from the transferee's ACK. Its receiver gets only the
  transferee's stream sent on to it, which it reports as that leg (MediaReport.party): the
  transferor's receiver reports the same source and SSRC for the leg before the transfer.
"""

from __future__ import annotations

import re
from pathlib import Path

TRANSFEROR = '<scenario name="sipflow blind_transfer transferor">'
TRANSFEREE = '<scenario name="sipflow blind_transfer transferee">'
TARGET = '<scenario name="sipflow blind_transfer target">'
LEG_TAG = "sipflow-media-leg"
PARTY_LEG = "party"
# The transferor's 200 of its INVITE (its action reads the To tag): the audio starts there.
_CALLER_ANSWERED = re.compile(r'(<recv response="200" rtd="invite" rrs="true">\s*<action>)')
_CALLEE_ACK = '<recv request="ACK" rtd="invite" crlf="true"/>'
# The target's 200 to the transferee's INVITE: SIPp turns the call's stream to the target.
_TARGET_ANSWERED = re.compile(r'(<recv response="200" rtd="call_target">\s*<action>)')
_TARGET_ACK = '<recv request="ACK" rtd="target_answer" crlf="true"/>'


def is_transfer_flow(xml: str) -> bool:
    return any(name in xml for name in (TRANSFEROR, TRANSFEREE, TARGET))


def _with_action(recv: str, action: str) -> str:
    return recv[:-2] + f"><action>{action}</action></recv>"


def _once(pattern: re.Pattern[str], repl: str, xml: str) -> str:
    out, n = pattern.subn(lambda m: m[1] + repl, xml, count=1)
    if n != 1:
        raise ValueError(f"the transfer scenario has no {pattern.pattern!r}")
    return out


def transfer_variant(xml: str, stream: str) -> str:
    """The side's XML with its audio started (`stream`: the action that starts it and logs
    its Call-ID) and, on the transferee, the transferred leg logged."""
    if TRANSFEROR in xml:
        return _once(_CALLER_ANSWERED, stream, xml)
    if TRANSFEREE in xml:
        out = xml.replace(_CALLEE_ACK, _with_action(_CALLEE_ACK, stream), 1)
        leg = f'<log message="{LEG_TAG} [call_id] {PARTY_LEG}"/>'
        return _once(_TARGET_ANSWERED, leg, out)
    if _TARGET_ACK not in xml:
        raise ValueError("the transfer target's scenario has no ACK to start its audio at")
    return xml.replace(_TARGET_ACK, _with_action(_TARGET_ACK, stream), 1)


def legs(log_file: Path) -> list[str]:
    """The Call-IDs whose stream SIPp turned to the named party, from the log, in order."""
    if not log_file.exists():
        return []
    out = []
    for line in log_file.read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == LEG_TAG and parts[2] == PARTY_LEG:
            out.append(parts[1])
    return out
