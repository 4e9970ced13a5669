"""The callee-side call script (issue 13): how the callees answer a call, as a YAML list of
steps, validated step by step (an error names the step: `script[2]`) and compiled to the SIPp XML
the callees run. The callers' grammar (sipflow/call_script.py) is the model: the same words where
they mean the same thing (wait, send_dtmf, expect_dtmf, expect audio, hangup); its builder, SDP
and media steps are shared by import.

Steps compiled (the INVITE's arrival is implicit before the first step, or `expect call`):
  expect call       the INVITE arrives (optional, first step only); a 100 Trying answers it
  ring              180 Ringing
  early_media       183 Session Progress with SDP
  wait 2s | 500ms   pause (before the answer: the caller hears the ringing that long)
  answer            200 OK with SDP, then the ACK
  reject NNN        a final 400-699 answer, then its ACK; ends the call
  send_dtmf 12*#    RFC 4733 events in the call's RTP (as the callers' step)
  expect_dtmf 9*0   the caller's DTMF in this call, and
  expect audio      audio both ways: judged from the media analysis (callees' media, analyse)
  hangup            the callee sends BYE, waits for its 200; ends the call
  expect hangup     waits for the caller's BYE, answers 200; ends the call. `expect hangup
  [within 5s]       within 5s` fails the step when no BYE came in that time (default: no bound
                    beyond the session's, like the built-in callee)

Step names (the XML's `<!-- sipflow-step: NAME -->` marks, the step results' names) are
`callee_s<index from 1>_<verb>[_<code>]`, so they never mix with the callers' `s<i>_...` in
the step metrics (`step_failed_callee_s3_answer`).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Annotated

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
)

from sipflow.call_script import (
    _SDP,
    DTMF_TONE_MS,
    MAX_STEPS,
    MAX_WAIT_MS,
    MEDIA_VERBS,
    _Builder,
    _expect,
    _send_dtmf,
)
from sipflow.runner_config import dtmf_play_ms
from sipflow.script_grammar import START, Grammar, ScriptStep, ends_the_call, with_states

SCENARIO_NAME = "sipflow callee script"  # runners/media_session.py knows it by this name
STEP_PREFIX = "callee_"
# How long the callee waits for a response or an ACK of its own transaction: SIPp's UDP
# retransmissions give up after 64*T1 (32 s); over TCP nothing else would end the wait.
TRANSACTION_MS = 32_000

_WAIT = r"(?P<{n}>[0-9]+(?:\.[0-9]+)?)(?P<{n}_unit>ms|s)"
_STEP_RE = re.compile(
    r"^(?:(?P<expect_call>expect call)|(?P<ring>ring)|(?P<early_media>early_media)"
    rf"|wait {_WAIT.format(n='wait')}|(?P<answer>answer)|reject (?P<code>[0-9]{{3}})"
    r"|send_dtmf (?P<digits>[0-9*#]{1,32})|expect_dtmf (?P<expect_digits>[0-9*#A-D]{1,32})"
    r"|(?P<expect_audio>expect audio)|(?P<hangup>hangup)"
    rf"|(?P<expect_hangup>expect hangup)(?: within {_WAIT.format(n='within')})?)$"
)
KNOWN = (
    "expect call, ring, early_media, wait 2s|500ms, answer, reject NNN, send_dtmf DIGITS, "
    "expect_dtmf DIGITS, expect audio, hangup, expect hangup [within 5s]"
)
# The caller's words a callee cannot use, and what to write instead.
CALLER_WORDS = {
    "call": "the callee does not call: the INVITE's arrival is implicit (or 'expect call')",
    "expect": "a callee answers: 'ring', 'early_media', 'answer' or 'reject NNN'",
    "hold": "the callers hold ('hold' in roles.callers.script): their callees answer it",
    "resume": "the callers resume ('resume' in roles.callers.script): their callees answer it",
    "transfer_to": "the callers transfer ('transfer_to' in roles.callers.script, or a flow)",
}
REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    480: "Temporarily Unavailable",
    486: "Busy Here",
    488: "Not Acceptable Here",
    500: "Server Internal Error",
    503: "Service Unavailable",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
}


@dataclass(frozen=True)
class Parsed:
    # expect_call, ring, early_media, wait, answer, reject, send_dtmf, expect_dtmf,
    # expect_audio, hangup, expect_hangup
    verb: str
    code: int = 0
    wait_ms: int = 0  # wait: its length; expect_hangup: its bound (0: none)
    digits: str = ""


def _ms(value: str, unit: str) -> int:
    ms = float(value) * (1000 if unit == "s" else 1)
    if not 1 <= ms <= MAX_WAIT_MS:
        raise ValueError(f"a wait lasts between 1 ms and {MAX_WAIT_MS // 1000} s")
    return round(ms)


def parse(text: str) -> Parsed:
    """One step's text, or ValueError with the reason."""
    words = " ".join(text.split())
    m = _STEP_RE.match(words)
    if m is None:
        for prefix, why in CALLER_WORDS.items():
            if words == prefix or words.startswith(prefix + " "):
                raise ValueError(f"{words!r} is not a callee step: {why}")
        raise ValueError(f"unknown step {text!r}; callee steps are: {KNOWN}")
    if m["wait"]:
        return Parsed("wait", wait_ms=_ms(m["wait"], m["wait_unit"]))
    if m["code"]:
        code = int(m["code"])
        if not 400 <= code <= 699:
            raise ValueError(f"'reject {code}': a rejection is a final 400-699")
        return Parsed("reject", code=code)
    if m["digits"]:
        return Parsed("send_dtmf", digits=m["digits"])
    if m["expect_digits"]:
        return Parsed("expect_dtmf", digits=m["expect_digits"])
    if m["expect_hangup"]:
        within = _ms(m["within"], m["within_unit"]) if m["within"] else 0
        return Parsed("expect_hangup", wait_ms=within)
    verbs = ("expect_call", "ring", "early_media", "answer", "expect_audio", "hangup")
    verb = next(v for v in verbs if m[v])
    return Parsed(verb)


# The call's state before a step: what may follow.
_START, _OFFERED, _UP, _ENDED = START, "offered", "answered", "ended"
_EARLY = ("ring", "early_media", "answer", "reject")  # answers to the INVITE
_IN_CALL = ("send_dtmf", "hangup", "expect_hangup", *MEDIA_VERBS)


def _after(state: str, step: Parsed) -> str:
    if state == _START:
        state = _OFFERED  # `expect call`, or the implicit arrival before the first step
    if step.verb == "answer" and state == _OFFERED:
        return _UP
    if step.verb in ("reject", "hangup", "expect_hangup"):
        return _ENDED
    return state


def _shown(step: Parsed) -> str:
    return step.verb.replace("expect_audio", "expect audio").replace(
        "expect_hangup", "expect hangup"
    )


def _check_order(state: str, step: Parsed) -> None:
    if state == _ENDED:
        raise ValueError("the call has ended: no step may follow")
    if step.verb == "expect_call" and state != _START:
        raise ValueError("'expect call' only as the first step (the call's INVITE arrives once)")
    if step.verb in _EARLY and state == _UP:
        raise ValueError(f"'{_shown(step)}' comes too late: the call is already answered")
    if step.verb in _IN_CALL and state != _UP:
        raise ValueError(f"'{_shown(step)}' needs an answered call (answer first)")


class CalleeStep(ScriptStep):
    """One step of a callees' script (its state: the call's before it)."""

    grammar = Grammar(
        parse=parse,
        after=_after,
        check_order=_check_order,
        ended=_ENDED,
        never_ends="the call never ends: finish with 'expect hangup', 'hangup' or 'reject NNN'",
    )

    @property
    def parsed(self) -> Parsed:
        return parse(self.text)


CalleeScript = Annotated[
    list[CalleeStep],
    BeforeValidator(with_states(CalleeStep)),
    Field(min_length=1, max_length=MAX_STEPS),
    AfterValidator(ends_the_call(CalleeStep)),
]


def step_names(steps: list[CalleeStep]) -> list[str]:
    """The steps' names in the XML marks: callee_s<index from 1>_<verb>[_<code>]."""
    names = []
    for i, step in enumerate(steps, 1):
        p = step.parsed
        names.append(f"{STEP_PREFIX}s{i}_{p.verb}" + (f"_{p.code}" if p.verb == "reject" else ""))
    return names


def media_steps(steps: list[CalleeStep]) -> list[str]:
    """The script's steps judged from the media analysis (expect_dtmf, expect audio)."""
    return [s.text for s in steps if s.parsed.verb in MEDIA_VERBS]


def outcome(steps: list[CalleeStep]) -> int:
    """The final answer the callee gives the INVITE: 200, or its rejection's code."""
    return next((s.parsed.code for s in steps if s.parsed.verb == "reject"), 200)


def ends_call(steps: list[CalleeStep]) -> str:
    """Who ends an answered call: 'callee' (hangup), 'caller' (expect hangup), or '' when the
    callee rejects it."""
    last = steps[-1].parsed.verb
    return {"hangup": "callee", "expect_hangup": "caller"}.get(last, "")


def in_call_ms(steps: list[CalleeStep]) -> int:
    """How much the script lengthens a call: its waits and DTMF plays."""
    total = 0
    for step in steps:
        p = step.parsed
        if p.verb == "wait":
            total += p.wait_ms
        elif p.verb == "send_dtmf":
            total += dtmf_play_ms(p.digits, DTMF_TONE_MS)
    return total


# -- the messages (constants: responses to the last request, the callee's own BYE) -------------
def _response(status: str, *, tag: bool = True, body: str = "") -> str:
    """A response to the last request received; `tag`: the callee's To tag (the INVITE's To
    has none; its dialog's requests carry it already)."""
    head = f"""
      SIP/2.0 {status}
      [last_Via:]
      [last_From:]
      [last_To:]{";tag=[pid]SIPpTag01[call_number]" if tag else ""}
      [last_Call-ID:]
      [last_CSeq:]
      [last_Record-Route:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
"""
    if not body:
        return head + "      Content-Length: 0\n"
    return head + "      Content-Type: application/sdp\n      Content-Length: [len]\n" + body


TRYING = _response("100 Trying", tag=False)
RINGING = _response("180 Ringing")
SESSION_PROGRESS = _response("183 Session Progress", body=_SDP)
OK_SDP = _response("200 OK", body=_SDP)
OK_BYE = _response("200 OK", tag=False)
# The callee's BYE: its From is the INVITE's To with its tag, its To the INVITE's From (both
# taken by `ereg` when the INVITE arrived); the remote target and route set are the INVITE's
# Contact and Record-Route (rrs).
BYE = """
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From:[$callee_to];tag=[pid]SIPpTag01[call_number]
      To:[$caller_from]
      Call-ID: [call_id]
      CSeq: 1 BYE
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Length: 0
"""


def _reject(code: int) -> str:
    return _response(f"{code} {REASONS.get(code, 'Rejected')}")


def compile_script(steps: list[CalleeStep]) -> str:
    """SIPp XML for a validated callee script (one SIPp call per INVITE received)."""
    b = _Builder(SCENARIO_NAME)
    for i, (name, step) in enumerate(zip(step_names(steps), steps, strict=True)):
        p = step.parsed
        b.mark(name)
        if i == 0:
            _invite(b, keep_parties=ends_call(steps) == "callee")
            if p.verb == "expect_call":
                continue
        if p.verb == "ring":
            b.send(RINGING)
        elif p.verb == "early_media":
            b.send(SESSION_PROGRESS)
        elif p.verb == "wait":
            b.add("pause", milliseconds=str(p.wait_ms))
        elif p.verb == "answer":
            # retransmitted until the ACK (UDP); the audio (callees' media) starts at this ACK
            # (runners/media_session.py CALLEE_SCRIPT_ACKED: its exact form, `crlf` included)
            b.send(OK_SDP, retrans="500")
            b.add("recv", request="ACK", crlf="true", timeout=str(TRANSACTION_MS))
        elif p.verb == "reject":
            b.send(_reject(p.code), retrans="500")
            b.add("recv", request="ACK", timeout=str(TRANSACTION_MS))
        elif p.verb == "send_dtmf":
            _send_dtmf(b, p.digits)
        elif p.verb in MEDIA_VERBS:
            _expect(b, name, f"dtmf {p.digits}" if p.verb == "expect_dtmf" else "audio")
        elif p.verb == "hangup":
            b.send(BYE, retrans="500")
            b.add("recv", response="100", optional="true")
            b.add("recv", response="200", crlf="true", timeout=str(TRANSACTION_MS))
        else:  # expect_hangup
            bound = {"timeout": str(p.wait_ms)} if p.wait_ms else {}
            b.add("recv", request="BYE", **bound)
            b.send(OK_BYE)
    return b.xml()


def _invite(b: _Builder, *, keep_parties: bool) -> None:
    """The INVITE that starts the SIPp call, with its Contact and Record-Route as the dialog's
    (rrs); answered 100 Trying at once (no retransmissions of the caller's while the script
    rings or waits). keep_parties: its From and To are kept for the callee's BYE (only then:
    SIPp refuses a variable set but never read)."""
    recv = b.add("recv", request="INVITE", crlf="true", rrs="true")
    if not keep_parties:
        b.send(TRYING)
        return
    action = ET.SubElement(recv, "action")
    for header, var in (("From:", "caller_from"), ("To:", "callee_to")):
        ET.SubElement(
            action,
            "ereg",
            regexp=".*",
            search_in="hdr",
            header=header,
            check_it="true",
            assign_to=var,
        )
    b.send(TRYING)
