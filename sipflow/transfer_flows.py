"""Transfer flows: blind transfer (REFER) of a call to a named third party (roles.parties).

Three SIPp scenarios per flow, one per party:

    transferor (the callers)   calls the transferee, REFERs it to the target, waits for the
                               NOTIFYs (sipfrag 100, then 200), hangs up
    transferee (the callees)   answers, accepts the REFER (202), NOTIFYs, calls the Refer-To
                               target (Referred-By copied), NOTIFYs the outcome, ends both calls
    target (a named party)     answers the transferee's INVITE (its Referred-By checked)

SIPp 3.6.1 maps every message to a call by its Call-ID alone and cannot give a call a second
Call-ID: the transferee's INVITE to the target is sent in the same SIPp call, so it carries the
Call-ID of the transferred call (a new dialog: its own From tag, the target's To tag). A proxy
(Kamailio here) carries that; a B2BUA keying calls by Call-ID alone may not.

A refused REFER (any answer of REFER_REFUSALS) fails the transferor's `transfer` step alone
(counted `refused`, runners/scenario_steps.py): the transferor keeps its calls and ends them
itself (RFC 5589 section 5: after a failed transfer the transferor still holds both calls and may
end them), so the transferee and the target see an ordinary BYE where the transfer would have
gone on, which is not a failure of theirs. An answer outside that list still aborts the call (an
`unexpected` failure of `transfer`; the target of an attended transfer then waits in vain).

Dialog state is kept in SIPp variables taken by `ereg` (the peer's tag, contact and route), not
SIPp's [peer_tag_param]/[next_url]: a party here takes part in two dialogs, or receives requests
inside its own.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PrivateAttr

from sipflow import flow_xml as x
from sipflow.flow_params import FlowParams

PartyName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]

SIPFRAG = "message/sipfrag;version=2.0"
# Every Via line of a request (one per hop), to answer it later (sipflow/flows.py's prack does
# the same).
_VIA_RE = "Via:[^\\r\\n]*(\\r?\\n[Vv]ia:[^\\r\\n]*)*"
_TAG_RE = ";tag=([^;> \\r\\n]+)"


class BlindTransfer(FlowParams):
    name: Literal["blind_transfer"]
    transfer_to: Annotated[
        PartyName,
        Field(description="the named party (roles.parties) the call is transferred to"),
    ] = "target"
    talk_s: Annotated[
        float, Field(ge=0, le=300, description="time in the call before the REFER")
    ] = 0.5
    # The SIP user the Refer-To names: the session's plan (sipflow/plan.py) sets the injection
    # field of the party's user per call (flow_xml.PARTY_USER: the party's agents in turn);
    # the party's name when the flow is rendered on its own.
    _user: str | None = PrivateAttr(default=None)

    def call_extra_s(self) -> float:
        return self.talk_s

    def refer_after_s(self) -> float:
        """How long after the answer the transferor sends its REFER."""
        return self.talk_s

    def party(self) -> str:
        return self.transfer_to

    def with_party_user(self, user: str) -> BlindTransfer:
        copy = self.model_copy()
        copy._user = user
        return copy

    @property
    def target_user(self) -> str:
        return self._user or self.transfer_to


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _ereg(header: str, regexp: str, *vars_: str) -> str:
    """Variables from a header (the first the whole match, then the groups), each read once
    more so SIPp does not refuse a variable set but never used."""
    ereg = (
        f'<ereg regexp="{regexp}" search_in="hdr" header="{header}" check_it="true" '
        f'assign_to="{",".join(vars_)}"/>'
    )
    return ereg + "".join(f'<assignstr assign_to="{v}" value="[${v}]"/>' for v in vars_)


def _send(
    lines: list[str],
    body: str = "",
    ctype: str = "application/sdp",
    *,
    step: str | None = None,
    retrans: bool = True,
    **attrs: str | None,
) -> str:
    """A <send> with any body type (flow_xml.send writes SDP only)."""
    head = list(lines)
    if body:
        head.append(f"Content-Type: {ctype}")
    head.append("Content-Length: [len]" if body else "Content-Length: 0")
    text = "\n".join(f"      {h}" for h in head) + "\n\n"
    text += "".join(f"      {b}\n" for b in body.splitlines())
    mark = f"  <!-- sipflow-step: {step} -->\n" if step else ""
    all_attrs = {"retrans": "500" if retrans else None, **attrs}
    attr_text = "".join(f' {k}="{v}"' for k, v in all_attrs.items() if v is not None)
    return f"{mark}  <send{attr_text}>\n    <![CDATA[\n\n{text}\n    ]]>\n  </send>\n"


VIA = "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]"

# Final answers refusing a REFER the transferor takes to end its calls (SIPp matches one exact
# code per <recv>): bad request, forbidden, not found, not allowed, bad extension, unavailable,
# no dialog, not acceptable, bad event, server errors, not implemented, decline.
REFER_REFUSALS = (400, 403, 404, 405, 420, 480, 481, 488, 489, 500, 501, 503, 603)
# The kind of the transferor's `transfer` failure on a refused REFER (runners/scenario_steps.py).
REFUSED = "refused"
# Labels: the transferor's hangup (a refused REFER jumps there); the answer to the BYE that
# ends the call of the transferee or the target (the transferor's, where the transfer would go on).
HANGUP_LABEL = "hangup"
RELEASED_LABEL = "released"
END_LABEL = "end"
# Flag variables (SIPp `condexec`/`test` read them; SIPp refuses a variable never read).
REFUSED_VAR = "refused"
RELEASED_VAR = "released"


def _set(var: str) -> str:
    """Set a flag variable (SIPp `condexec`/`test` read it)."""
    return f'<assign assign_to="{var}" value="1"/>'


def _refer_answer(*, flag: bool) -> str:
    """The REFER's answer: a refusal jumps to the hangup (a `refused` failure of `transfer`,
    the call counted failed by a check that the answer is a 2xx), else its 202. flag: set
    REFUSED_VAR on a refusal (for a hangup that reads it)."""
    refused = (_set(REFUSED_VAR) if flag else "") + (
        '<ereg regexp="^SIP/2\\.0 2" search_in="msg" check_it="true" '
        'assign_to="refer_accepted"/><assignstr assign_to="refer_accepted" '
        'value="[$refer_accepted]"/>'
    )
    out = ""
    for code in REFER_REFUSALS:
        out += f"  <!-- sipflow-fails: {REFUSED} -->\n"
        out += x.recv(str(code), optional="true", next=HANGUP_LABEL, actions=refused)
    return out + x.recv("202", rtd="transfer", start_rtd="notify")


def _released_bye(after_ms: int, *, flag: bool) -> str:
    """Before a request the transfer brings: the transferor's BYE instead (its transfer
    refused), which jumps to the answer of the scenario's last BYE. The wait for either is
    bounded here: SIPp arms the timeout of the message it waits at, this optional one.
    flag: set RELEASED_VAR (for a scenario going on past that answer)."""
    return x.recv(
        "BYE",
        optional="true",
        next=RELEASED_LABEL,
        timeout=x.callee_wait(after_ms),
        actions=_set(RELEASED_VAR) if flag else "",
    )


# -- transferor (callers) -------------------------------------------------------------------------
def _alice_request(method: str, cseq: int, extra: list[str] | None = None) -> list[str]:
    return [
        f"{method} [next_url] SIP/2.0",
        VIA,
        "[routes]",
        x.FROM,
        f"{x.TO};tag=[$peer_tag]",
        "Call-ID: [call_id]",
        f"CSeq: {cseq} {method}",
        x.CONTACT,
        "Max-Forwards: 70",
        *(extra or []),
    ]


def blind_transferor(p: FlowParams) -> str:
    assert isinstance(p, BlindTransfer)
    refer = [
        f"Refer-To: <sip:{p.target_user}@[field4]>",
        "Referred-By: <sip:[field0]@[field1]>",
    ]
    body = [
        x.invite(step="invite", rtd="invite"),
        x.recv("100", optional="true"),
        x.recv("180", optional="true"),
        x.recv(
            "200", rtd="invite", rrs="true", actions=_ereg("To:", _TAG_RE, "to_all", "peer_tag")
        ),
        _send(_alice_request("ACK", 1), retrans=False),
        x.pause(_ms(p.talk_s)),
        _send(_alice_request("REFER", 2, refer), step="transfer", start_rtd="transfer"),
        _refer_answer(flag=False),
        # RFC 3515: the transferee reports progress in NOTIFYs carrying a sipfrag; the last one
        # the target's final answer.
        x.recv(
            "NOTIFY",
            step="notify",
            actions=x.check_body("SIP/2.0 1[0-9][0-9]", "trying"),
        ),
        x.response("200 OK", tag=False),
        x.recv("NOTIFY", rtd="notify", actions=x.check_body("SIP/2.0 200", "transferred")),
        x.response("200 OK", tag=False),
        x.pause(step="hangup"),
        _hangup(),
    ]
    return x.scenario(
        "sipflow blind_transfer transferor",
        "call, REFER (Refer-To the target), NOTIFY 100 and 200, BYE (a refused REFER: BYE)",
        body,
    )


def _hangup(consult_user: str | None = None) -> str:
    """The transferor's BYE of its call; a refused REFER jumps here, past the hold time. With
    `consult_user` (attended), first the BYE of the consultation call, sent only then (the
    target ends it when the transfer goes on)."""
    out = f'  <label id="{HANGUP_LABEL}"/>\n'
    if consult_user is not None:
        out += _send(_consult_request("BYE", 2, consult_user), condexec=REFUSED_VAR)
        out += x.recv("100", optional="true", condexec=REFUSED_VAR)
        out += x.recv("200", condexec=REFUSED_VAR)
    return (
        out
        + _send(_alice_request("BYE", 3), start_rtd="hangup")
        + x.recv("100", optional="true")
        + x.recv("200", rtd="hangup", crlf="true")
    )


# -- transferee (callees) -------------------------------------------------------------------------
BOB_FROM = "From: <sip:[field0]@[field1]>;tag=[pid]SIPpTag01[call_number]"
# The transferee's own tag in its call to the target (its first dialog's tag is SIPpTag01).
BOB_NEW_FROM = "From: <sip:[field0]@[field1]>;tag=[pid]SIPpTag02[call_number]"


def _notify(cseq: int, fragment: str, state: str, *, step: str | None = None) -> str:
    lines = [
        "NOTIFY [next_url] SIP/2.0",
        VIA,
        "[routes]",
        BOB_FROM,
        "To:[$caller_from]",
        "Call-ID: [call_id]",
        f"CSeq: {cseq} NOTIFY",
        x.UAS_CONTACT,
        "Event: refer",
        f"Subscription-State: {state}",
        "Max-Forwards: 70",
    ]
    return _send(lines, f"{fragment}\n", SIPFRAG, step=step)


def _target_request(method: str, cseq: int) -> list[str]:
    """A request of the transferee's dialog with the target (its contact and route kept)."""
    return [
        f"{method} [$target_contact] SIP/2.0",
        VIA,
        "Route: <[$target_route]>",
        BOB_NEW_FROM,
        "To:[$target_to]",
        "Call-ID: [call_id]",
        f"CSeq: {cseq} {method}",
        x.UAS_CONTACT,
        "Max-Forwards: 70",
    ]


def blind_transferee(p: FlowParams) -> str:
    assert isinstance(p, BlindTransfer)
    return _transferee(p, replaces=False)


def script_transferee(p: BlindTransfer) -> str:
    """The blind transferee for a call script's transfer_to (sipflow/call_script.py): it rings
    (180) before it answers, as the built-in answer does, since a script may `expect 180`."""
    return _transferee(p, replaces=False, ringing=True)


def _transferee(p: BlindTransfer, *, replaces: bool, ringing: bool = False) -> str:
    """The transferee of either transfer; `replaces`: the Refer-To carries a Replaces header
    (escaped, RFC 3891), which its INVITE to the target carries unescaped; `ringing`: a 180
    before the 200."""
    refer_actions = _ereg(
        "Refer-To:", "sip:([^@>;?]+)@([^>;?]+)", "refer_to", "refer_user", "refer_host"
    ) + _ereg("Referred-By:", ".*", "referred_by")
    extra: list[str] = []
    if replaces:
        refer_actions += _ereg(
            "Refer-To:",
            "Replaces=([^%]+)%40([^%]+)%3Bto-tag%3D([^%]+)%3Bfrom-tag%3D([^>]+)",
            "rep_all",
            "rep_cid_user",
            "rep_cid_host",
            "rep_to_tag",
            "rep_from_tag",
        )
        extra = [
            "Replaces: [$rep_cid_user]@[$rep_cid_host];to-tag=[$rep_to_tag];"
            "from-tag=[$rep_from_tag]"
        ]
    invite_target = [
        "INVITE sip:[$refer_user]@[$refer_host] SIP/2.0",
        VIA,
        BOB_NEW_FROM,
        "To: <sip:[$refer_user]@[$refer_host]>",
        "Call-ID: [call_id]",
        "CSeq: 1 INVITE",
        x.UAS_CONTACT,
        "Referred-By:[$referred_by]",
        *extra,
        "Max-Forwards: 70",
        "Subject: sipflow transfer",
    ]
    target_answer = (
        _ereg("Contact:", "sip:[^>]+", "target_contact")
        + _ereg("Record-Route:", "sip:[^>]+", "target_route")
        + _ereg("To:", ".*", "target_to")
    )
    body = [
        x.recv(
            "INVITE",
            step="invite",
            crlf="true",
            start_rtd="invite",
            rrs="true",
            actions=_ereg("From:", ".*", "caller_from"),
        ),
        *([x.response("180 Ringing")] if ringing else []),
        x.response("200 OK", x.sdp(), retrans=True),
        x.recv("ACK", rtd="invite", crlf="true"),
        "  <!-- sipflow-step: transfer -->\n",
        _released_bye(_ms(p.refer_after_s()), flag=True),
        x.recv("REFER", timeout=x.callee_wait(_ms(p.refer_after_s())), actions=refer_actions),
        x.response("202 Accepted", tag=False),
        _notify(1, "SIP/2.0 100 Trying", "active;expires=60"),
        x.recv("200"),
        _send(invite_target, x.sdp(), step="call_target", start_rtd="call_target"),
        x.recv("100", optional="true"),
        x.recv("180", optional="true"),
        x.recv("200", rtd="call_target", actions=target_answer),
        _send(_target_request("ACK", 1), retrans=False),
        _notify(2, "SIP/2.0 200 OK", "terminated;reason=noresource", step="notify"),
        x.recv("200"),
        x.recv("BYE", step="hangup", timeout=x.callee_wait()),
        f'  <label id="{RELEASED_LABEL}"/>\n',
        # Released (the transfer refused): no call to the target to end.
        x.response("200 OK", tag=False, next=END_LABEL, test=RELEASED_VAR),
        _send(_target_request("BYE", 2), step="target_hangup", start_rtd="target_hangup"),
        x.recv("100", optional="true"),
        x.recv("200", rtd="target_hangup", crlf="true"),
        f'  <label id="{END_LABEL}"/>\n',
    ]
    kind = "attended_transfer" if replaces else "blind_transfer"
    return x.scenario(
        f"sipflow {kind} transferee",
        "answers, accepts the REFER (202), calls the Refer-To target"
        + (" (with its Replaces)" if replaces else "")
        + ", NOTIFYs 100 and 200 (or takes the transferor's BYE)",
        body,
    )


# -- target (the named party) ---------------------------------------------------------------------
def blind_target(p: FlowParams) -> str:
    body = [
        x.recv(
            "INVITE",
            step="target_answer",
            crlf="true",
            start_rtd="target_answer",
            actions=x.check_header("Referred-By:", "sip:", "referred"),
        ),
        x.response("200 OK", x.sdp(), retrans=True),
        x.recv("ACK", rtd="target_answer", crlf="true"),
        x.recv("BYE", step="target_hangup", timeout=x.callee_wait()),
        x.response("200 OK", tag=False),
    ]
    return x.scenario(
        "sipflow blind_transfer target",
        "answers the transferee's INVITE (with Referred-By), then its BYE",
        body,
    )


BLIND_MESSAGES = (
    "transferor -> INVITE (to the transferee)",
    "transferee -> 200 OK",
    "transferor -> ACK",
    "transferor -> REFER (Refer-To: target, Referred-By) (after talk_s)",
    "transferee -> 202 Accepted",
    "transferee -> NOTIFY (sipfrag: SIP/2.0 100 Trying)",
    "transferor -> 200 OK (NOTIFY)",
    "transferee -> INVITE (to the target, Referred-By)",
    "target -> 200 OK",
    "transferee -> ACK",
    "transferee -> NOTIFY (sipfrag: SIP/2.0 200 OK)",
    "transferor -> 200 OK (NOTIFY)",
    "transferor -> BYE (to the transferee)",
    "transferee -> 200 OK",
    "transferee -> BYE (to the target)",
    "target -> 200 OK",
)


# -- attended transfer (REFER with Replaces, RFC 3891) ---------------------------------------------
class AttendedTransfer(BlindTransfer):
    name: Literal["attended_transfer"]  # type: ignore[assignment]

    def call_extra_s(self) -> float:
        return 2 * self.talk_s

    def refer_after_s(self) -> float:
        return 2 * self.talk_s  # talk, consult the target, talk: then the REFER


# The transferor's own tag in its consultation call to the target.
CONSULT_FROM = "From: <sip:[field0]@[field1]>;tag=[pid]SIPpTag03[call_number]"


def _consult_request(method: str, cseq: int, user: str) -> list[str]:
    """A request of the transferor's consultation dialog with the target."""
    return [
        f"{method} [$target_contact] SIP/2.0",
        VIA,
        "Route: <[$target_route]>",
        CONSULT_FROM,
        f"To: <sip:{user}@[field4]>;tag=[$target_tag]",
        "Call-ID: [call_id]",
        f"CSeq: {cseq} {method}",
        x.CONTACT,
        "Max-Forwards: 70",
    ]


def attended_transferor(p: FlowParams) -> str:
    assert isinstance(p, AttendedTransfer)
    user = p.target_user
    consult = [
        f"INVITE sip:{user}@[field4] SIP/2.0",
        VIA,
        CONSULT_FROM,
        f"To: <sip:{user}@[field4]>",
        "Call-ID: [call_id]",
        "CSeq: 1 INVITE",
        x.CONTACT,
        "Max-Forwards: 70",
        "Subject: sipflow consultation",
    ]
    consult_answer = (
        _ereg("To:", _TAG_RE, "t_all", "target_tag")
        + _ereg("Contact:", "sip:[^>]+", "target_contact")
        + _ereg("Record-Route:", "sip:[^>]+", "target_route")
        + _ereg("Call-ID:", "([^@ ]+)@([^ \\r\\n]+)", "cid", "cid_user", "cid_host")
    )
    # The Replaces of the consultation dialog, escaped into the Refer-To URI (RFC 3891 3).
    replaces = (
        "Replaces=[$cid_user]%40[$cid_host]%3Bto-tag%3D[$target_tag]"
        "%3Bfrom-tag%3D[pid]SIPpTag03[call_number]"
    )
    refer = [
        f"Refer-To: <sip:{user}@[field4]?{replaces}>",
        "Referred-By: <sip:[field0]@[field1]>",
    ]
    body = [
        x.invite(step="invite", rtd="invite"),
        x.recv("100", optional="true"),
        x.recv("180", optional="true"),
        x.recv(
            "200", rtd="invite", rrs="true", actions=_ereg("To:", _TAG_RE, "to_all", "peer_tag")
        ),
        _send(_alice_request("ACK", 1), retrans=False),
        x.pause(_ms(p.talk_s)),
        _send(consult, x.sdp(), step="consult", start_rtd="consult"),
        x.recv("100", optional="true"),
        x.recv("180", optional="true"),
        x.recv("200", rtd="consult", actions=consult_answer),
        _send(_consult_request("ACK", 1, user), retrans=False),
        x.pause(_ms(p.talk_s)),
        _send(_alice_request("REFER", 2, refer), step="transfer", start_rtd="transfer"),
        _refer_answer(flag=True),
        x.recv("NOTIFY", step="notify", actions=x.check_body("SIP/2.0 1[0-9][0-9]", "trying")),
        x.response("200 OK", tag=False),
        # The target ends the consultation call it replaced (before it answers the transferee,
        # so this BYE comes before the NOTIFY of the 200: ordered by cause, not by time).
        x.recv("BYE", step="replaced", timeout=x.callee_wait()),
        x.response("200 OK", tag=False),
        x.recv(
            "NOTIFY",
            step="notify",
            rtd="notify",
            actions=x.check_body("SIP/2.0 200", "transferred"),
        ),
        x.response("200 OK", tag=False),
        x.pause(step="hangup"),
        _hangup(consult_user=user),
    ]
    return x.scenario(
        "sipflow attended_transfer transferor",
        "call, consultation call to the target, REFER with Replaces, BYE from the target, NOTIFYs "
        "(a refused REFER: BYE of both calls)",
        body,
    )


def attended_transferee(p: FlowParams) -> str:
    assert isinstance(p, AttendedTransfer)
    return _transferee(p, replaces=True)


# The target's tag in the call from the transferee (SIPpTag01: in the consultation call).
TARGET_NEW_TAG = ";tag=[pid]SIPpTag04[call_number]"


def attended_target(p: FlowParams) -> str:
    assert isinstance(p, AttendedTransfer)
    # The transferee's INVITE, kept: the target answers it after its BYE of the replaced call
    # (when its last message is that BYE's 200).
    keep_invite = (
        f'<ereg regexp="{_VIA_RE}" search_in="msg" '
        'check_it="true" assign_to="xfer_via"/>'
        '<assignstr assign_to="xfer_via" value="[$xfer_via]"/>'
        + _ereg("From:", ".*", "xfer_from")
        + _ereg("To:", ".*", "xfer_to")
        + '<ereg regexp="Record-Route:[^\\r\\n]*" search_in="msg" check_it="true" '
        'assign_to="xfer_rr"/><assignstr assign_to="xfer_rr" value="[$xfer_rr]"/>'
        + x.check_header("Replaces:", "to-tag=.*from-tag=", "replaces")
        + x.check_header("Referred-By:", "sip:", "referred")
    )
    answer_transferee = [
        "SIP/2.0 200 OK",
        "[$xfer_via]",
        "From:[$xfer_from]",
        f"To:[$xfer_to]{TARGET_NEW_TAG}",
        "Call-ID: [call_id]",
        "CSeq: 1 INVITE",
        "[$xfer_rr]",
        x.UAS_CONTACT,
    ]
    bye_consult = [
        "BYE [$consult_contact] SIP/2.0",
        VIA,
        "Route: <[$consult_route]>",
        f"From: <sip:[field0]@[field1]>{x.UAS_TAG}",
        "To:[$consult_from]",
        "Call-ID: [call_id]",
        "CSeq: 1 BYE",
        x.UAS_CONTACT,
        "Max-Forwards: 70",
    ]
    consult_actions = (
        _ereg("From:", ".*", "consult_from")
        + _ereg("Contact:", "sip:[^>]+", "consult_contact")
        + _ereg("Record-Route:", "sip:[^>]+", "consult_route")
    )
    body = [
        x.recv(
            "INVITE",
            step="consult_answer",
            crlf="true",
            start_rtd="consult_answer",
            actions=consult_actions,
        ),
        x.response("200 OK", x.sdp(), retrans=True),
        x.recv("ACK", rtd="consult_answer", crlf="true"),
        "  <!-- sipflow-step: target_answer -->\n",
        # The transfer refused, the transferor ends the consultation call instead.
        _released_bye(_ms(p.talk_s), flag=False),
        x.recv(
            "INVITE",
            start_rtd="target_answer",
            timeout=x.callee_wait(_ms(p.talk_s)),
            actions=keep_invite,
        ),
        x.response("100 Trying", tag=False),
        # RFC 3891: the replaced dialog ends (its BYE), then the new one is answered.
        _send(bye_consult),
        x.recv("200"),
        _send(answer_transferee, x.sdp()),
        x.recv("ACK", rtd="target_answer", crlf="true"),
        x.recv("BYE", step="target_hangup", timeout=x.callee_wait()),
        f'  <label id="{RELEASED_LABEL}"/>\n',
        x.response("200 OK", tag=False),
    ]
    return x.scenario(
        "sipflow attended_transfer target",
        "answers the consultation call, then the transferee's INVITE with Replaces: BYE of the "
        "replaced call, 200 (or the transferor's BYE of the consultation call)",
        body,
    )


ATTENDED_MESSAGES = (
    "transferor -> INVITE (to the transferee)",
    "transferee -> 200 OK",
    "transferor -> ACK",
    "transferor -> INVITE (consultation, to the target) (after talk_s)",
    "target -> 200 OK",
    "transferor -> ACK",
    "transferor -> REFER (Refer-To: target?Replaces=consultation dialog, Referred-By)",
    "transferee -> 202 Accepted",
    "transferee -> NOTIFY (sipfrag: SIP/2.0 100 Trying)",
    "transferor -> 200 OK (NOTIFY)",
    "transferee -> INVITE (to the target, Replaces, Referred-By)",
    "target -> 100 Trying",
    "target -> BYE (the replaced consultation call, to the transferor)",
    "transferor -> 200 OK (BYE)",
    "target -> 200 OK (INVITE)",
    "transferee -> ACK",
    "transferee -> NOTIFY (sipfrag: SIP/2.0 200 OK)",
    "transferor -> 200 OK (NOTIFY)",
    "transferor -> BYE (to the transferee)",
    "transferee -> 200 OK",
    "transferee -> BYE (to the target)",
    "target -> 200 OK",
)
