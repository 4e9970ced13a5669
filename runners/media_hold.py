"""Media in the hold_resume flow (sipflow/flows.py): the flow's XML with audio, as
runners/media_session.py gives the built-in call. Where each end's audio starts, and the callee's
stream paused while it is held (it answered recvonly: it must not send) and resumed when the
caller resumes (sendrecv). The caller keeps sending throughout (sendonly: music on hold) and, with
media, talks for TALK_MS before the hold and after the resume (before its BYE), so the audio on
either side of the hold can be judged (sipflow/media_store.py judge_hold).

A callee rendered with NO_RESUME (flow parameter resume_audio: false) answers the resume but
leaves its stream paused: a peer that does not resume audio, to test the checks.
"""

from __future__ import annotations

import re

CALLER_NAME = '<scenario name="sipflow hold_resume caller">'
CALLEE_NAME = '<scenario name="sipflow hold_resume callee">'
CALLER_ANSWERED = '<recv response="200" rtd="invite" rrs="true"/>'
CALLEE_ACK = '<recv request="ACK" rtd="invite" crlf="true"/>'
NO_RESUME = "<!-- sipflow-media: no-resume -->"
TALK_MS = 1000  # audio both ways before the hold and after the resume
HANGUP_MARK = "  <!-- sipflow-step: hangup -->\n"
HOLD_MARK = "  <!-- sipflow-step: hold -->\n"


def is_hold_flow(xml: str) -> bool:
    return CALLER_NAME in xml or CALLEE_NAME in xml


def _step_invite(step: str) -> re.Pattern[str]:
    """The callee's <recv request="INVITE" .../> that starts `step`."""
    return re.compile(rf'(<!-- sipflow-step: {step} -->\s*<recv request="INVITE"[^>]*?)\s*/>')


def start_points(xml: str, stream: str) -> str:
    """The audio (and DTMF) starts at the caller's 200 and the callee's ACK."""
    action = f"<action>{stream}</action>"
    if CALLER_NAME in xml:
        return xml.replace(CALLER_ANSWERED, CALLER_ANSWERED[:-2] + f">{action}</recv>", 1)
    return xml.replace(CALLEE_ACK, CALLEE_ACK[:-2] + f">{action}</recv>", 1)


def hold_variant(xml: str) -> str:
    """The held callee pauses its stream, resumes it on the resume; the caller stays a while."""
    if CALLER_NAME in xml:
        pause = f'  <pause milliseconds="{TALK_MS}"/>\n'
        out = xml.replace(HOLD_MARK, pause + HOLD_MARK, 1)
        return out.replace(HANGUP_MARK, pause + HANGUP_MARK, 1)
    out = _step_invite("hold").sub(
        r'\1><action><exec rtp_stream="pause"/></action></recv>', xml, count=1
    )
    if NO_RESUME not in xml:
        out = _step_invite("resume").sub(
            r'\1><action><exec rtp_stream="resume"/></action></recv>', out, count=1
        )
    return out
