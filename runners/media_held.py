"""Media in the callees' side of a call script that holds (sipflow/held_callee.py): the audio
starts at the first ACK, and the stream pauses with each recvonly answer (a held party must not
send) and resumes with each sendrecv one, like the hold_resume flow's callee
(runners/media_hold.py). The caller keeps sending while it holds (sendonly: music on hold).

The constants repeat sipflow/held_callee.py's (the runner image holds no more of sipflow);
tests/test_call_script_hold.py checks they are found in its XML.
"""

from __future__ import annotations

NAME = '<scenario name="sipflow held callee">'
ANSWERED = '<recv request="ACK" rtd="true" crlf="true" next="in_call"/>'
HELD_MEDIA = "<!-- sipflow-media: held -->"
RESUMED_MEDIA = "<!-- sipflow-media: resumed -->"


def is_held_callee(xml: str) -> bool:
    return NAME in xml


def _exec(what: str) -> str:
    return f'<nop><action><exec rtp_stream="{what}"/></action></nop>'


def held_variant(xml: str, stream: str) -> str:
    """The stream starts at the answer's ACK, pauses on hold, resumes on resume."""
    if ANSWERED not in xml or HELD_MEDIA not in xml or RESUMED_MEDIA not in xml:
        raise ValueError("the held callee's scenario lacks the points media needs")
    out = xml.replace(ANSWERED, ANSWERED[:-2] + f"><action>{stream}</action></recv>", 1)
    return out.replace(HELD_MEDIA, _exec("pause")).replace(RESUMED_MEDIA, _exec("resume"))
