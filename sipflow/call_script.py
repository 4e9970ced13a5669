"""The declarative call script (issue 13 item 2): a caller's call as a YAML list of steps,
validated step by step (an error names the step: `script[2]`) and compiled to SIPp XML.

Steps compiled:
  call              send the INVITE (with SDP); a 100 Trying may come
  expect NNN        wait for response NNN: a 2xx is ACKed and the call is up; a final 3xx-6xx
                    is ACKed and ends the call (the expected outcome); 18x not named in the
                    script are accepted before an expected response
  wait 2s | 500ms   pause
  send_dtmf 12*#    RFC 4733 events in the call's RTP (SIPp's play_dtmf: payload type 96,
                    100 ms per digit, a new SSRC per play, logged with the Call-ID so the far
                    end's detection is tied to the call: runners/media_dtmf.py)
  hold, resume      re-INVITE in the dialog (CSeq one up, SDP a=sendonly / a=sendrecv), expect
                    200 (its direction checked: recvonly or inactive to a hold, not a held one
                    to a resume), ACK; any number of pairs, resume only while held; the callees
                    then answer re-INVITEs (sipflow/held_callee.py)
  transfer_to carol blind transfer to a named party (roles.parties): REFER (Refer-To the
                    party's user), 202, the transferee's NOTIFYs (sipfrag 100, 200) answered
                    200; the callees run the blind transferee, the party the target
                    (sipflow/transfer_flows.py); only hangup follows, not with hold or media
  hangup            send BYE, wait for its 200 (also while on hold, or after a transfer)
  expect hangup     wait for the far end's BYE (the callee script's hangup), answer 200
  expect_dtmf 9*0   the far end's DTMF in this call, and
  expect audio      audio both ways: SIPp judges nothing it receives in media, so these log
                    the expectation with the Call-ID and sipflow/media_store.py judges it from
                    the media analysis (they need roles.callers.media)
The INVITE answers one 401/407 digest challenge with the calling account's credentials, like the
built-in call scenario. Each step's first element is preceded by `<!-- sipflow-step: NAME -->`,
the mark the step results read (runners/scenario_steps.py).

The XML is built with xml.etree (attributes escaped by it); SIPp wants the messages as CDATA,
which etree cannot write: each message is a constant of this module, put in place of a
placeholder after serialisation. The one user value in a message, a REFER's party user, is a
SIP user part as the spec validates it (no CDATA end, no SIPp keyword).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
)

from sipflow.flow_xml import PARTY_USER
from sipflow.runner_config import EXPECT_AT_LOG, dtmf_play_ms
from sipflow.script_grammar import START, Grammar, ScriptStep, ends_the_call, with_states

MAX_STEPS = 100
MAX_WAIT_MS = 3_600_000
DTMF_TONE_MS = 100  # each digit's event; as long again before the next (SIPp's play_dtmf)
DTMF_PT = 96  # play_dtmf's payload type (fixed in SIPp 3.6.1), offered as telephone-event
DTMF_LOG = "sipflow-dtmf"  # the log line that ties a play's SSRC to its call (media_dtmf.py)

_STEP_RE = re.compile(
    r"^(?:(?P<call>call)|expect (?P<code>[1-6][0-9]{2})|wait (?P<wait>[0-9]+(?:\.[0-9]+)?)"
    r"(?P<unit>ms|s)|send_dtmf (?P<digits>[0-9*#]{1,32})|(?P<hangup>hangup)"
    r"|expect_dtmf (?P<expect_digits>[0-9*#A-D]{1,32})|(?P<expect_audio>expect audio)"
    r"|(?P<expect_hangup>expect hangup)|(?P<hold>hold)|(?P<resume>resume)"
    r"|transfer_to (?P<party>[a-z][a-z0-9_]{0,31}))$"
)
# Why a step that looks like a known one does not parse.
HINTS = {
    "transfer_to": "transfer_to names a party of roles.parties (a-z, 0-9, _; up to 32)",
}
KNOWN = (
    "call, expect NNN, wait 2s|500ms, send_dtmf DIGITS, expect_dtmf DIGITS, expect audio, "
    "hold, resume, transfer_to PARTY, hangup, expect hangup"
)
# Steps that re-INVITE the dialog: the callees then answer any number of re-INVITEs
# (sipflow/held_callee.py).
REINVITE_VERBS = ("hold", "resume")
# Steps judged from the media analysis, not by SIPp (they need roles.callers.media).
MEDIA_VERBS = ("expect_dtmf", "expect_audio")
EXPECT_LOG = "sipflow-expect"  # the log line of an expectation: Call-ID, step, what


@dataclass(frozen=True)
class Parsed:
    verb: str  # call, expect, wait, send_dtmf, expect_dtmf, expect_audio, hangup, expect_hangup
    code: int = 0
    wait_ms: int = 0
    digits: str = ""
    party: str = ""


def parse(text: str) -> Parsed:
    """One step's text, or ValueError with the reason."""
    words = " ".join(text.split())
    m = _STEP_RE.match(words)
    if m is None:
        for prefix, why in HINTS.items():
            if words == prefix or words.startswith(prefix + " "):
                raise ValueError(f"{text!r}: {why}")
        raise ValueError(f"unknown step {text!r}; steps are: {KNOWN}")
    if m["call"]:
        return Parsed("call")
    if m["code"]:
        return Parsed("expect", code=int(m["code"]))
    if m["wait"]:
        ms = float(m["wait"]) * (1000 if m["unit"] == "s" else 1)
        if not 1 <= ms <= MAX_WAIT_MS:
            raise ValueError(f"a wait lasts between 1 ms and {MAX_WAIT_MS // 1000} s")
        return Parsed("wait", wait_ms=round(ms))
    if m["digits"]:
        return Parsed("send_dtmf", digits=m["digits"])
    if m["expect_digits"]:
        return Parsed("expect_dtmf", digits=m["expect_digits"])
    if m["expect_audio"]:
        return Parsed("expect_audio")
    if m["expect_hangup"]:
        return Parsed("expect_hangup")
    if m["hold"] or m["resume"]:
        return Parsed("hold" if m["hold"] else "resume")
    if m["party"]:
        return Parsed("transfer_to", party=m["party"])
    return Parsed("hangup")


# The call's state before a step: what may follow.
_START, _CALLING, _UP, _HELD, _ENDED = START, "calling", "answered", "on hold", "ended"
_TRANSFERRED = "transferred"  # the REFER accepted and NOTIFYed: only hangup follows


def _after(state: str, step: Parsed) -> str:
    if step.verb == "call":
        return _CALLING if state == _START else state  # a second call is refused, not followed
    if state == _START:
        state = _CALLING  # no 'call' first: reported once, at this step; the rest as if called
    if step.verb == "expect" and state == _CALLING and step.code >= 200:
        return _UP if step.code < 300 else _ENDED
    if step.verb == "hold" and state == _UP:
        return _HELD
    if step.verb == "resume" and state == _HELD:
        return _UP
    if step.verb == "transfer_to" and state == _UP:
        return _TRANSFERRED
    if step.verb in ("hangup", "expect_hangup"):
        return _ENDED
    return state


def _check_order(state: str, step: Parsed) -> None:
    if state == _ENDED:
        raise ValueError("the call has ended: no step may follow")
    if state == _TRANSFERRED and step.verb != "hangup":
        raise ValueError(
            "after transfer_to only 'hangup' may follow (the transferee waits for the BYE)"
        )
    if step.verb == "call" and state != _START:
        raise ValueError("one call per script: 'call' only as the first step")
    if step.verb != "call" and state == _START:
        raise ValueError("the script starts with 'call'")
    if step.verb == "expect" and state != _CALLING:
        raise ValueError(f"'expect {step.code}' comes too late: the call is already answered")
    if step.verb == "expect" and step.code == 100:
        raise ValueError(
            "'expect 100' cannot be checked (a 100 is hop by hop): expect 180, 183 or a final"
        )
    _check_hold(state, step)
    # On hold the call is still answered: it may end, and the media checks judge the whole call.
    answered: tuple[str, ...] = (_UP,)
    if step.verb in (*MEDIA_VERBS, "expect_hangup"):
        answered = (_UP, _HELD)
    elif step.verb == "hangup":
        answered = (_UP, _HELD, _TRANSFERRED)
    needs_answer = ("send_dtmf", "hangup", "expect_hangup", "hold", "transfer_to", *MEDIA_VERBS)
    if step.verb in needs_answer and state not in answered:
        shown = step.verb.replace("expect_audio", "expect audio")
        shown = shown.replace("expect_hangup", "expect hangup")
        raise ValueError(f"'{shown}' needs an answered call (expect 200 first)")


def _check_hold(state: str, step: Parsed) -> None:
    """hold only while answered and not held, resume only while held; DTMF is not sent to a
    held party (resume first)."""
    if step.verb == "resume" and state != _HELD:
        raise ValueError("'resume' only while the call is on hold (hold first)")
    if step.verb in ("hold", "send_dtmf", "transfer_to") and state == _HELD:
        raise ValueError(f"'{step.verb}': the call is on hold (resume first)")


class Step(ScriptStep):
    """One step of a callers' script (its state: the call's before it)."""

    grammar = Grammar(
        parse=parse,
        after=_after,
        check_order=_check_order,
        ended=_ENDED,
        never_ends="the call never ends: finish with 'hangup' (or expect a final 3xx-6xx)",
    )

    @property
    def parsed(self) -> Parsed:
        return parse(self.text)


def check_transfer(steps: list[Step]) -> list[Step]:
    verbs = {step.parsed.verb for step in steps}
    if "transfer_to" in verbs and verbs & {"hold", *MEDIA_VERBS}:
        raise ValueError(
            "transfer_to with hold or a media step: not yet (the transferee's side answers no "
            "re-INVITE and a named party carries no media)"
        )
    return steps


CallScript = Annotated[
    list[Step],
    BeforeValidator(with_states(Step)),
    Field(min_length=1, max_length=MAX_STEPS),
    AfterValidator(ends_the_call(Step)),
    AfterValidator(check_transfer),
]


def step_names(steps: list[Step]) -> list[str]:
    """The steps' names in the XML marks: s<index from 1>_<verb>[_<code>]."""
    names = []
    for i, step in enumerate(steps, 1):
        p = step.parsed
        names.append(f"s{i}_{p.verb}" + (f"_{p.code}" if p.verb == "expect" else ""))
    return names


# -- the messages (constants: the canonical lines runners/call_options.py rewrites) -------------
_SDP = """
      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 96
      a=rtpmap:0 PCMU/8000
      a=rtpmap:96 telephone-event/8000
      a=fmtp:96 0-15
"""
INVITE = (
    """
      INVITE sip:[field3]@[field4] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[field0]@[field1]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[field3]@[field4]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:[field0]@[field5];transport=[transport]>
      Max-Forwards: 70
      Subject: sipflow
      Content-Type: application/sdp
      Content-Length: [len]
"""
    + _SDP
)
ACK_2XX = """
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: <sip:[field0]@[field1]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[field3]@[field4]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: [last_cseq_number] ACK
      Contact: <sip:[field0]@[field5];transport=[transport]>
      Max-Forwards: 70
      Content-Length: 0
"""
# The ACK of a final non-2xx answer: the INVITE's Via branch, the answer's To (RFC 3261 17.1.1.3).
ACK_FAILURE = """
      ACK sip:[field3]@[field4] SIP/2.0
      [last_Via:]
      From: <sip:[field0]@[field1]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: [last_cseq_number] ACK
      Max-Forwards: 70
      Content-Length: 0
"""
BYE = """
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: <sip:[field0]@[field1]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[field3]@[field4]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: [last_cseq_number+1] BYE
      Contact: <sip:[field0]@[field5];transport=[transport]>
      Max-Forwards: 70
      Content-Length: 0
"""
# The INVITE again after a 401/407, with the account's credentials ([field2], the injection's
# `[authentication ...]` keyword, runners/injection.py): a new transaction, CSeq 2.
INVITE_AUTH = INVITE.replace("CSeq: 1 INVITE", "CSeq: 2 INVITE").replace(
    "      Max-Forwards: 70\n", "      [field2]\n      Max-Forwards: 70\n", 1
)
# A re-INVITE of the dialog (hold: a=sendonly, resume: a=sendrecv), CSeq one above the last
# answer's; its SDP is the INVITE's (so media's port rewrite finds it) with the direction and the
# o= version raised by one per re-INVITE (RFC 3264 8).
REINVITE_HEAD = (
    BYE.replace("BYE [next_url]", "INVITE [next_url]")
    .replace("CSeq: [last_cseq_number+1] BYE", "CSeq: [last_cseq_number+1] INVITE")
    .replace(
        "      Max-Forwards: 70\n      Content-Length: 0\n",
        "      Max-Forwards: 70\n      Subject: sipflow\n      Content-Type: application/sdp\n"
        "      Content-Length: [len]\n",
    )
)
_SDP_VERSION = "2353687637"


def reinvite(direction: str, number: int) -> str:
    """The number-th re-INVITE of the call (from 1), offering `direction`."""
    sdp = _SDP.replace(_SDP_VERSION, str(int(_SDP_VERSION) + number))
    return REINVITE_HEAD + sdp + f"      a={direction}\n"


# transfer_to: a REFER in the dialog (RFC 3515; Refer-To the party's user at the target's
# domain, filled in by refer()), the 200 to the transferee's NOTIFYs, and the BYE after them:
# SIPp's [last_cseq_number] is the last received message's (a NOTIFY's) and its
# [peer_tag_param] may follow the NOTIFY, so the BYE's CSeq is written out (the REFER's, 2 or 3
# after a challenge, plus one) and its To tag is the one the 202 carried.
REFER_HEAD = (
    BYE.replace("BYE [next_url]", "REFER [next_url]")
    .replace("CSeq: [last_cseq_number+1] BYE", "CSeq: [last_cseq_number+1] REFER")
    .replace(
        "      Max-Forwards: 70\n",
        "      Refer-To: <sip:@@USER@@@[field4]>\n      Referred-By: <sip:[field0]@[field1]>\n"
        "      Max-Forwards: 70\n",
    )
)
# The 200 to a request of the far end in the dialog: its BYE (expect hangup), the transferee's
# NOTIFYs (transfer_to).
OK_IN_DIALOG = """
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[field0]@[field5];transport=[transport]>
      Content-Length: 0
"""
_USER = re.compile(r"^[A-Za-z0-9_.!~*'()&=+$,;?/%-]{1,64}$")  # the spec's SIP user part


def is_user(text: str) -> bool:
    """A SIP user part as the spec validates it (no SIPp keyword, no CDATA end in it)."""
    return _USER.match(text) is not None


def refer(user: str) -> str:
    """The REFER to `user`: a SIP user part as the spec validates it (no SIPp keyword in it), or
    PARTY_USER, the injection field of the party's user per call (its agents in turn)."""
    if user != PARTY_USER and not is_user(user):
        raise ValueError(f"{user!r} is not a SIP user part")
    return REFER_HEAD.replace("@@USER@@", user)


def bye_after_transfer(cseq: int) -> str:
    return BYE.replace("CSeq: [last_cseq_number+1] BYE", f"CSeq: {cseq} BYE").replace(
        "[peer_tag_param]", ";tag=[$peer_tag]"
    )


_MESSAGES = (
    INVITE,
    INVITE_AUTH,
    ACK_2XX,
    ACK_FAILURE,
    BYE,
    REINVITE_HEAD,
    REFER_HEAD,
    OK_IN_DIALOG,
    bye_after_transfer(3),
)
assert all("]]>" not in m for m in _MESSAGES)
assert "Content-Length: [len]" in REINVITE_HEAD and "INVITE [next_url]" in REINVITE_HEAD


class _Builder:
    """Shared with sipflow/callee_script.py (its scenario has its own name)."""

    def __init__(self, name: str = "sipflow call script") -> None:
        self.root = ET.Element("scenario", name=name)
        self.cdata: list[str] = []
        self._mark: str | None = None

    def mark(self, name: str) -> None:
        self._mark = name  # put before the step's first element

    def add(self, tag: str, **attrs: str) -> ET.Element:
        if self._mark is not None:
            self.root.append(ET.Comment(f" sipflow-step: {self._mark} "))
            self._mark = None
        return ET.SubElement(self.root, tag, attrs)

    def send(self, message: str, **attrs: str) -> None:
        el = self.add("send", **attrs)
        el.text = f"@@CDATA{len(self.cdata)}@@"
        self.cdata.append(message)

    def xml(self) -> str:
        ET.indent(self.root, space="  ")
        text = ET.tostring(self.root, encoding="unicode")
        for i, message in enumerate(self.cdata):
            text = text.replace(f"@@CDATA{i}@@", f"<![CDATA[\n{message}\n    ]]>", 1)
        return '<?xml version="1.0" encoding="UTF-8" ?>\n' + text + "\n"


def compile_script(steps: list[Step], party_users: Mapping[str, str] | None = None) -> str:
    """SIPp XML for a validated script (one call per injection row, like the built-in call).
    party_users: a named party's SIP user (its first account's), the Refer-To of transfer_to;
    a party not in it is referred to by its name (the script shown on its own)."""
    b = _Builder()
    reinvites = 0
    transferred = False
    for name, step in zip(step_names(steps), steps, strict=True):
        p = step.parsed
        if p.verb == "call":
            _call(b, name)
            continue
        b.mark(name)
        if p.verb == "expect":
            # Provisional answers the script does not name may come before the one it waits for.
            for early in ("100", "180", "183"):
                if early != str(p.code):
                    b.add("recv", response=early, optional="true")
            if p.code < 200:
                b.add("recv", response=str(p.code))
            elif p.code < 300:
                # the dialog's route set; media (roles.callers.media) starts the call's audio
                # here (runners/media_session.py SCRIPT_ANSWERED)
                b.add("recv", response=str(p.code), rrs="true")
                b.send(ACK_2XX)
            else:
                b.add("recv", response=str(p.code))
                b.send(ACK_FAILURE)
        elif p.verb == "wait":
            b.add("pause", milliseconds=str(p.wait_ms))
        elif p.verb == "send_dtmf":
            _send_dtmf(b, p.digits)
        elif p.verb in MEDIA_VERBS:
            _expect(b, name, f"dtmf {p.digits}" if p.verb == "expect_dtmf" else "audio")
        elif p.verb == "expect_hangup":
            b.add("recv", request="BYE")
            b.send(OK_IN_DIALOG)
        elif p.verb in REINVITE_VERBS:
            reinvites += 1
            _reinvite(b, p.verb, reinvites)
        elif p.verb == "transfer_to":
            _transfer(b, (party_users or {}).get(p.party, p.party))
            transferred = True
        elif transferred:  # hangup after the transfer
            _hangup_transferred(b)
        else:  # hangup
            b.send(BYE, retrans="500")
            b.add("recv", response="100", optional="true")
            b.add("recv", response="200", crlf="true")
    return b.xml()


def _call(b: _Builder, name: str) -> None:
    """The INVITE, answering one digest challenge like the built-in call scenario
    (runners/scenarios/call.xml): a row whose account has a password ([field6] "1") accepts a
    401/407 to its first INVITE, ACKs it and sends the INVITE again with the credentials
    ([field2]); a row without one, or a second challenge (a wrong password), fails the call on
    the challenge (SIPp's unexpected message, in the `call` step).

    Two first INVITEs, one per kind of row: the challenge answers are bound to the transaction
    of the credentialed one (`response_txn`). With one INVITE for both, a row without
    credentials would find the optional 401/407 contiguous behind the script's optional 18x
    and take the challenge branch (SIPp's backward search). The step's calls are those through
    either first INVITE (runners/scenario_steps.py counts a send that jumps as an end)."""
    b.mark(name)
    action = ET.SubElement(b.add("nop"), "action")
    ET.SubElement(action, "assignstr", assign_to="credentials", value="[field6]")
    ET.SubElement(action, "strcmp", assign_to="no_credentials", variable="credentials", value="1")
    for var, compare in (("plain", "not_equal"), ("credentialed", "equal")):
        ET.SubElement(
            action, "test", assign_to=var, variable="no_credentials", compare=compare, value="0"
        )
    b.add("nop", test="plain", next="invite_plain")
    # The transaction's first use must be its INVITE (SIPp types it from there).
    b.send(INVITE, retrans="500", start_txn="challengeable", next="invite_sent")
    b.add("label", id="challenged")
    b.send(ACK_FAILURE, ack_txn="challengeable")
    # Only credentialed rows get here; `test` keeps it out of the step's ends (counted once).
    b.send(INVITE_AUTH, retrans="500", test="credentialed", next="invited")
    b.add("label", id="invite_plain")
    b.send(INVITE, retrans="500")
    b.add("label", id="invite_sent")
    b.add("recv", response="100", optional="true")
    for code in ("401", "407"):
        b.add(
            "recv",
            response=code,
            auth="true",
            optional="true",
            response_txn="challengeable",
            next="challenged",
        )
    b.add("label", id="invited")
    b.add("recv", response="100", optional="true")


# The answer's direction: a held party receives only (or nothing); a resumed call may carry a
# direction attribute, but not one that keeps it on hold (none at all means sendrecv, RFC 4566).
HELD_ANSWER = "a=(recvonly|inactive)"
NOT_RESUMED = "a=(sendonly|recvonly|inactive)"


def _reinvite(b: _Builder, verb: str, number: int) -> None:
    """hold / resume: the re-INVITE, its 200 (direction checked: a wrong one fails the call in
    this step), the ACK. A 4xx-6xx answer fails the call here (SIPp's unexpected message)."""
    b.send(reinvite("sendonly" if verb == "hold" else "sendrecv", number), retrans="500")
    b.add("recv", response="100", optional="true")
    action = ET.SubElement(b.add("recv", response="200"), "action")
    var = f"{verb}_answer"
    check = "check_it" if verb == "hold" else "check_it_inverse"
    regexp = HELD_ANSWER if verb == "hold" else NOT_RESUMED
    attrs = {"regexp": regexp, "search_in": "body", "assign_to": var, check: "true"}
    ET.SubElement(action, "ereg", attrs)
    # SIPp refuses a variable set but never read: read once (it stays as it was).
    ET.SubElement(action, "assignstr", assign_to=var, value=f"[${var}]")
    b.send(ACK_2XX)


def _check(action: ET.Element, where: str, regexp: str, var: str, **attrs: str) -> None:
    """An ereg into var (check_it: the call fails without a match), read once more (SIPp
    refuses a variable set but never read)."""
    attrs = {"regexp": regexp, "search_in": where, "assign_to": var, **attrs}
    ET.SubElement(action, "ereg", attrs)


def _transfer(b: _Builder, user: str) -> None:
    """transfer_to: REFER, 202 (its To tag and CSeq kept for the BYE), then the transferee's
    NOTIFYs (sipfrag 1xx, then 200: the target answered), each answered 200 (the blind
    transferor of sipflow/transfer_flows.py, in the script's dialog)."""
    b.send(refer(user), retrans="500")
    b.add("recv", response="100", optional="true")
    action = ET.SubElement(b.add("recv", response="202"), "action")
    _check(action, "hdr", ";tag=([^;> \\r\\n]+)", "to_all,peer_tag", header="To:", check_it="true")
    _check(action, "hdr", "[0-9]+", "refer_cseq", header="CSeq:", check_it="true")
    ET.SubElement(action, "strcmp", assign_to="refer_vs_2", variable="refer_cseq", value="2")
    for var, compare in (("bye_cseq_3", "equal"), ("bye_cseq_4", "not_equal")):
        attrs = {"assign_to": var, "variable": "refer_vs_2", "compare": compare, "value": "0"}
        ET.SubElement(action, "test", attrs)
    ET.SubElement(action, "assignstr", assign_to="to_all", value="[$to_all]")
    for fragment, var in (("SIP/2.0 1[0-9][0-9]", "trying"), ("SIP/2.0 200", "transferred")):
        action = ET.SubElement(b.add("recv", request="NOTIFY"), "action")
        _check(action, "body", fragment, var, check_it="true")
        ET.SubElement(action, "assignstr", assign_to=var, value=f"[${var}]")
        b.send(OK_IN_DIALOG)


def _hangup_transferred(b: _Builder) -> None:
    """The BYE after transfer_to, CSeq the REFER's plus one (2 or 3 after a challenge). The
    BYE jumps itself (a <nop> after it would be where its 200 arrives: unexpected); `test`
    (true for every call there) keeps it out of the step's ends (counted once, at the 200)."""
    b.add("nop", test="bye_cseq_3", next="bye_cseq_3")
    b.send(bye_after_transfer(4), retrans="500", test="bye_cseq_4", next="bye_sent")
    b.add("label", id="bye_cseq_3")
    b.send(bye_after_transfer(3), retrans="500")
    b.add("label", id="bye_sent")
    b.add("recv", response="100", optional="true")
    b.add("recv", response="200", crlf="true")


def transfer_party(steps: list[Step]) -> str | None:
    """The named party the script transfers to, if it does."""
    return next((s.parsed.party for s in steps if s.parsed.verb == "transfer_to"), None)


def _pause_ms(p: Parsed) -> int:
    return p.wait_ms + (dtmf_play_ms(p.digits, DTMF_TONE_MS) if p.verb == "send_dtmf" else 0)


def quiet_ms(steps: list[Step]) -> int:
    """The longest the script pauses between two requests of the dialog (after the answer):
    how long the far end must wait for the next one."""
    longest = current = 0
    for step in steps:
        current += _pause_ms(step.parsed)
        if step.parsed.verb in (*REINVITE_VERBS, "transfer_to", "hangup"):
            longest, current = max(longest, current), 0
    return max(longest, current)


def script_ms(steps: list[Step]) -> int:
    """How long the script's own pauses hold a call: its waits and DTMF plays (the session's
    expected length counts them, like a flow's)."""
    return sum(_pause_ms(step.parsed) for step in steps)


def refer_after_ms(steps: list[Step]) -> int:
    """How long after the answer the script REFERs: its waits and DTMF plays before
    transfer_to (the transferee waits that long, and a margin, for the REFER)."""
    total = 0
    for step in steps:
        p = step.parsed
        if p.verb == "transfer_to":
            return total
        total += _pause_ms(p)
    return total


def _send_dtmf(b: _Builder, digits: str) -> None:
    """One play_dtmf of the digits, its log line (Call-ID and digits, for the far end's
    detection), and a pause while it plays (a next play would cut this one short)."""
    action = ET.SubElement(b.add("nop"), "action")
    ET.SubElement(action, "exec", play_dtmf=f"{digits},{DTMF_TONE_MS}")
    ET.SubElement(action, "log", message=f"{DTMF_LOG} [call_id] {digits}")
    b.add("pause", milliseconds=str(dtmf_play_ms(digits, DTMF_TONE_MS)))


def _expect(b: _Builder, step: str, what: str) -> None:
    """An expectation SIPp cannot check: logged with the Call-ID for the media analysis, which
    judges it once the far end's report is in (sipflow/media_store.py judge), and its moment
    (a second line: runners that predate it ignore it and judge the whole call)."""
    action = ET.SubElement(b.add("nop"), "action")
    ET.SubElement(action, "log", message=f"{EXPECT_LOG} [call_id] {step} {what}")
    ET.SubElement(action, "log", message=f"{EXPECT_AT_LOG} [call_id] {step} [timestamp]")


@dataclass(frozen=True)
class Holds:
    """How a script holds, for its media judgement (sipflow/media_store.py judge_hold): the
    shortest time on hold (the waits between a hold and its resume or the hangup), the first
    hold's step and the first resume's (None: no hold is resumed, or one is not)."""

    hold_s: float
    hold_step: str
    resume_step: str | None


def holds_of(texts: list[str]) -> Holds | None:
    """The script's holds (its step texts, validated before), or None when it does not hold."""
    parsed = [parse(t) for t in texts]
    names = [f"s{i}_{p.verb}" for i, p in enumerate(parsed, 1)]
    windows: list[float] = []
    held_ms: int | None = None
    all_resumed = True
    for p in parsed:
        if p.verb == "hold":
            held_ms = 0
        elif p.verb == "wait" and held_ms is not None:
            held_ms += p.wait_ms
        elif p.verb in ("resume", "hangup") and held_ms is not None:
            windows.append(held_ms / 1000)
            all_resumed = all_resumed and p.verb == "resume"
            held_ms = None
    if not windows:
        return None
    hold = names[[p.verb for p in parsed].index("hold")]
    verbs = [p.verb for p in parsed]
    resume = names[verbs.index("resume")] if all_resumed and "resume" in verbs else None
    return Holds(min(windows), hold, resume)


def reinvites(steps: list[Step]) -> bool:
    """Whether the script re-INVITEs (hold / resume): the callees must answer them."""
    return any(s.parsed.verb in REINVITE_VERBS for s in steps)


def media_steps(steps: list[Step]) -> list[str]:
    """The script's steps judged from the media analysis (expect_dtmf, expect audio)."""
    return [s.text for s in steps if s.parsed.verb in MEDIA_VERBS]
