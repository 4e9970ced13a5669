"""The callees' side of a call script that holds (`hold` / `resume` steps, sipflow/call_script.py):
the built-in answer (180, 200 with SDP, ACK), then ANY number of re-INVITEs, each answered 200
with the SDP direction mirroring the offer (recvonly to a sendonly offer, sendrecv otherwise:
RFC 3264 6.1), until the BYE. Built from the hold_resume flow's pieces (sipflow/flow_xml.py).

SIPp has no loop but `next`: the re-INVITE is an optional <recv> before the BYE that jumps to the
answer, which jumps back. The offer's direction picks the answer: a `sendonly` in the body sets a
variable (reset before each match, so a resume after a hold does not see the hold's), and a
<nop test next> jumps to the recvonly answer. The answer's o= version counts up per re-INVITE.

With media (runners/media_session.py), the comments HELD_MEDIA and RESUMED_MEDIA become the
stream's pause and resume (the held party must not send, like the hold_resume flow's callee).
"""

from __future__ import annotations

from sipflow import flow_xml as x

NAME = "sipflow held callee"
HELD_MEDIA = "<!-- sipflow-media: held -->"
RESUMED_MEDIA = "<!-- sipflow-media: resumed -->"
_VERSION = "[last_cseq_number]"

# The offer's direction: "sendonly" sets `held` (1), anything else leaves it 0.
_DIRECTION = (
    '<assignstr assign_to="offer" value="sendrecv"/>'
    '<ereg regexp="a=sendonly" search_in="body" check_it="false" assign_to="offer"/>'
    '<strcmp assign_to="not_held" variable="offer" value="a=sendonly"/>'
    '<test assign_to="held" variable="not_held" compare="equal" value="0"/>'
)


def _sdp(direction: str) -> str:
    """flow_xml's SDP (media's port rewrite finds it) with the re-INVITE's o= version."""
    return x.sdp(direction).replace(" 1 IN IP", f" {_VERSION} IN IP", 1)


def held_callee(quiet_ms: int = 0) -> str:
    """quiet_ms: the longest the caller stays silent in the dialog (its waits between two
    requests); the callee waits that and flow_xml's CALLEE_WAIT_MS for the next re-INVITE or
    the BYE, so a call the caller gave up (a refused hold: SIPp sends no BYE) fails here by
    timeout instead of staying open until the session stops."""
    body = [
        x.recv("INVITE", crlf="true"),
        x.response("180 Ringing"),
        x.response("200 OK", x.sdp("sendrecv"), retrans=True),
        # Media starts the callee's audio here (runners/media_held.py ANSWERED). The ACK jumps
        # itself: a <nop> after it would be where an immediate re-INVITE arrives (unexpected).
        x.recv("ACK", rtd="true", crlf="true", next="in_call"),
        '  <label id="reinvite"/>\n',
        '  <nop test="held" next="answer_held"/>\n',
        f"  {RESUMED_MEDIA}\n",
        x.response("200 OK", _sdp("sendrecv"), tag=False, retrans=True, next="answered"),
        '  <label id="answer_held"/>\n',
        f"  {HELD_MEDIA}\n",
        x.response("200 OK", _sdp("recvonly"), tag=False, retrans=True),
        '  <label id="answered"/>\n',
        x.recv("ACK", crlf="true"),
        '  <label id="in_call"/>\n',
        x.recv(
            "INVITE",
            optional="true",
            next="reinvite",
            timeout=x.callee_wait(quiet_ms),
            actions=_DIRECTION,
        ),
        x.recv("BYE"),
        x.response("200 OK", tag=False),
    ]
    return x.scenario(
        NAME, "answers, then any number of re-INVITEs (sendonly -> recvonly), until the BYE", body
    )
