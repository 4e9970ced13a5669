"""The built-in call flows: each a caller-side and a callee-side SIPp scenario, its parameters,
its steps, the SIP messages it expects and which outcome counts as success (docs/flows.md).

A spec names a flow with its parameters on the callers (`roles.callers.flow: {name: busy}`); the
callees run the matching callee side. Both sides are rendered to SIPp XML here and run as the
roles' scenarios; their `sipflow-step` marks give the per-step results.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import Field

from sipflow import call_script
from sipflow import flow_xml as x
from sipflow import transfer_flows as xfer
from sipflow.flow_params import FlowParams

__all__ = ["FLOWS", "Flow", "FlowParams", "FlowSpec"]


class RingNoAnswer(FlowParams):
    name: Literal["ring_no_answer"]
    cancel_after_s: Annotated[
        float, Field(gt=0, le=300, description="the caller cancels this long after the 180")
    ] = 3.0

    def call_extra_s(self) -> float:
        return self.cancel_after_s


class Busy(FlowParams):
    name: Literal["busy"]


class Decline(FlowParams):
    name: Literal["decline"]


class EarlyMedia(FlowParams):
    name: Literal["early_media"]
    early_media_s: Annotated[
        float, Field(ge=0, le=300, description="time between the 183 and the 200")
    ] = 0.5

    def call_extra_s(self) -> float:
        return self.early_media_s


class Prack(FlowParams):
    name: Literal["prack"]


# With media (runners/media_hold.py): a callee that answers the resume but keeps its audio paused.
NO_RESUME = "<!-- sipflow-media: no-resume -->"


class HoldResume(FlowParams):
    name: Literal["hold_resume"]
    hold_s: Annotated[float, Field(ge=0, le=3600, description="time on hold")] = 1.0
    resume_audio: Annotated[
        bool,
        Field(
            description="with media: the callee resumes its audio on the resume (false: a peer "
            "that answers the resume but stays silent, to test the media checks)"
        ),
    ] = True

    def call_extra_s(self) -> float:
        return self.hold_s


class SessionTimer(FlowParams):
    name: Literal["session_timer"]
    session_expires_s: Annotated[
        int,
        Field(
            ge=2,
            le=86400,
            description="Session-Expires; the caller refreshes at half of it (RFC 4028 asks "
            "for at least 90, a proxy without a session-timer module does not check)",
        ),
    ] = 90
    refresh: Annotated[
        Literal["reinvite", "update"], Field(description="refresh by re-INVITE or UPDATE")
    ] = "reinvite"

    def call_extra_s(self) -> float:
        return self.session_expires_s / 2


class OptionsKeepalive(FlowParams):
    name: Literal["options_keepalive"]
    pings: Annotated[int, Field(ge=2, le=100, description="OPTIONS per call")] = 3
    interval_s: Annotated[float, Field(ge=0, le=3600, description="between pings")] = 1.0

    def call_extra_s(self) -> float:
        return (self.pings - 1) * self.interval_s


FlowSpec = Annotated[
    Union[  # noqa: UP007 (a discriminated union needs the Union form for pydantic's schema)
        RingNoAnswer,
        Busy,
        Decline,
        EarlyMedia,
        Prack,
        HoldResume,
        SessionTimer,
        OptionsKeepalive,
        xfer.BlindTransfer,
        xfer.AttendedTransfer,
    ],
    Field(discriminator="name"),
]


@dataclass(frozen=True)
class Flow:
    name: str
    title: str
    params: type[FlowParams]
    steps: tuple[str, ...]
    messages: tuple[str, ...]  # the ladder: "caller -> INVITE", "callee -> 180 Ringing", ...
    success: str
    caller: Callable[[FlowParams], str]
    callee: Callable[[FlowParams], str] | None  # None: no callee side (the SUT answers)
    # The final answer to the INVITE of a successful call (the KPIs' code_NNN, ASR): 200, or the
    # flow's expected rejection; None: the flow places no call (OPTIONS).
    final_code: int | None = 200
    # A third side, run by the named party (roles.parties) the parameters name (the transfer
    # target); its own steps (callee-side runners).
    party: Callable[[FlowParams], str] | None = None
    party_steps: tuple[str, ...] = ()
    callee_steps: tuple[str, ...] = ()  # when the callee side's steps are not `steps`

    def describe(self) -> dict[str, object]:
        """The catalogue entry the API and CLI show."""
        schema = self.params.model_json_schema()
        props = {k: v for k, v in schema.get("properties", {}).items() if k != "name"}
        params = [
            {
                "name": k,
                "type": v.get("type") or "/".join(v.get("enum", [])),
                "default": v.get("default"),
                "description": v.get("description", ""),
                **{b: v[b] for b in ("minimum", "maximum", "exclusiveMinimum", "enum") if b in v},
            }
            for k, v in props.items()
        ]
        return {
            "name": self.name,
            "title": self.title,
            "parameters": params,
            "steps": list(self.steps),
            "messages": list(self.messages),
            "success": self.success,
            "callee_side": self.callee is not None,
            "party_side": self.party is not None,
            "callee_steps": list(self.callee_steps or (self.steps if self.callee else ())),
            "party_steps": list(self.party_steps),
        }


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


# -- ring_no_answer -------------------------------------------------------------------------------
def _rna_caller(p: FlowParams) -> str:
    assert isinstance(p, RingNoAnswer)
    body = [
        x.invite(step="ring", rtd="ring"),
        x.recv("100", optional="true"),
        x.recv("180", rtd="ring"),
        x.pause(_ms(p.cancel_after_s)),
        x.cancel(step="cancel", rtd="cancel"),
        x.recv("200"),
        x.recv("487", rtd="cancel"),
        x.ack_non_2xx(),
    ]
    return x.scenario("sipflow ring_no_answer caller", "INVITE, 180, CANCEL, 200, 487, ACK", body)


def _rna_callee(p: FlowParams) -> str:
    assert isinstance(p, RingNoAnswer)
    body = [
        x.recv("INVITE", step="ring", crlf="true"),
        x.response("180 Ringing"),
        x.recv("CANCEL", step="cancel", timeout=x.callee_wait(_ms(p.cancel_after_s))),
        x.response("200 OK"),
        x.response("487 Request Terminated", cseq="CSeq: [last_cseq_number] INVITE"),
        x.recv("ACK", crlf="true"),
    ]
    return x.scenario("sipflow ring_no_answer callee", "rings until cancelled", body)


# -- busy / decline -------------------------------------------------------------------------------
def _reject_caller(step: str, code: str) -> Callable[[FlowParams], str]:
    def caller(p: FlowParams) -> str:
        body = [
            x.invite(step=step, rtd=step),
            x.recv("100", optional="true"),
            x.recv("180", optional="true"),
            x.recv(code, rtd=step),
            x.ack_non_2xx(),
        ]
        return x.scenario(f"sipflow {step} caller", f"INVITE answered {code}: success", body)

    return caller


def _reject_callee(step: str, status: str) -> Callable[[FlowParams], str]:
    def callee(p: FlowParams) -> str:
        body = [
            x.recv("INVITE", step=step, crlf="true"),
            x.response(status, retrans=True),
            x.recv("ACK", crlf="true"),
        ]
        return x.scenario(f"sipflow {step} callee", f"answers every INVITE {status}", body)

    return callee


# -- early_media ----------------------------------------------------------------------------------
def _em_caller(p: FlowParams) -> str:
    # A 200 with no 183 before it (a SUT that swallows early media) fails `early_media`, and the
    # call is still ended cleanly (ACK, BYE) so that the callee's side passes: SIPp would answer
    # an unexpected 200 with a CANCEL and leave the callee's 200 unacknowledged. The step's
    # failure is a 1 ms wait for the 183 that never came (SIPp counts that timeout on the step;
    # its last required message, so the step has not passed); the call fails by a check that the
    # answer was a 183 (SIPp 3.6.1 goes on after a failed check and fails the call at its end).
    body = [
        x.invite(step="early_media", rtd="early_media"),
        x.recv("100", optional="true"),
        x.recv("180", optional="true"),
        x.recv(
            "200",
            optional="true",
            rrs="true",
            next="no_early_media",
            actions=x.check_msg("^SIP/2.0 183", "early_answer"),
        ),
        x.recv(
            "183",
            rtd="early_media",
            start_rtd="answer",
            next="answered",
            actions=x.check_body("m=audio", "early_sdp"),
        ),
        x.label("no_early_media"),
        x.ack_2xx(1),
        x.in_dialog("BYE", 2),
        x.recv("100", optional="true"),
        x.recv("200", crlf="true"),
        x.recv("183", timeout="1", ontimeout="failed"),
        x.label("answered"),
        x.recv("200", step="answer", rrs="true", rtd="answer"),
        x.ack_2xx(1),
        x.bye_and_ok(2),
        x.label("failed"),
        x.nop(),
    ]
    return x.scenario("sipflow early_media caller", "INVITE, 183 with SDP, 200, BYE", body)


def _em_callee(p: FlowParams) -> str:
    assert isinstance(p, EarlyMedia)
    body = [
        x.recv("INVITE", step="early_media", crlf="true"),
        x.response("183 Session Progress", x.sdp()),
        x.pause(_ms(p.early_media_s)),
        x.response("200 OK", x.sdp(), step="answer", retrans=True),
        x.recv("ACK", crlf="true"),
        x.hangup_uas(),
    ]
    return x.scenario("sipflow early_media callee", "183 with SDP, then 200", body)


# -- prack (RFC 3262) -----------------------------------------------------------------------------
# The callee answers the INVITE after the PRACK; by then its last message is the PRACK, so the
# INVITE's Via lines (one per hop) are kept in a variable for the 200.
_VIA_RE = "Via:[^\\r\\n]*(\\r?\\n[Vv]ia:[^\\r\\n]*)*"


def _prack_caller(p: FlowParams) -> str:
    body = [
        x.invite(["Supported: 100rel", "Require: 100rel"], step="invite", rtd="invite"),
        x.recv("100", optional="true"),
        x.recv(
            "183",
            rtd="invite",
            rrs="true",
            actions=x.check_header("RSeq:", "[0-9]+", "rseq")
            + x.check_header("Require:", "100rel", "rel"),
        ),
        x.in_dialog("PRACK", 2, extra=["RAck: [$rseq] 1 INVITE"], step="prack", rtd="prack"),
        x.recv(
            "200",
            rtd="prack",
            start_rtd="answer",
            actions=x.check_header("CSeq:", "PRACK", "prack_ok"),
        ),
        x.recv("200", step="answer", rrs="true", rtd="answer"),
        x.ack_2xx(1),
        x.bye_and_ok(3),
    ]
    return x.scenario("sipflow prack caller", "INVITE (100rel), reliable 183, PRACK", body)


def _prack_callee(p: FlowParams) -> str:
    keep_via = f'<ereg regexp="{_VIA_RE}" search_in="msg" assign_to="invite_via"/>'
    body = [
        x.recv("INVITE", step="invite", crlf="true", actions=keep_via),
        x.response("183 Session Progress", x.sdp(), ["Require: 100rel", "RSeq: 1"], retrans=True),
        x.recv("PRACK", step="prack", timeout=x.callee_wait()),
        x.response("200 OK", tag=False),
        x.send(
            [
                "SIP/2.0 200 OK",
                "[$invite_via]",
                "[last_From:]",
                "[last_To:]",
                "[last_Call-ID:]",
                "CSeq: 1 INVITE",
                "[last_Record-Route:]",
                x.UAS_CONTACT,
            ],
            x.sdp(),
            step="answer",
            retrans=True,
        ),
        x.recv("ACK", crlf="true"),
        x.hangup_uas(),
    ]
    return x.scenario("sipflow prack callee", "reliable 183 (RSeq), 200 PRACK, 200", body)


# -- hold_resume ----------------------------------------------------------------------------------
def _hold_caller(p: FlowParams) -> str:
    assert isinstance(p, HoldResume)
    body = [
        x.invite(step="invite", rtd="invite"),
        x.recv("100", optional="true"),
        x.recv("180", optional="true"),
        x.recv("200", rtd="invite", rrs="true"),
        x.ack_2xx(1),
        x.in_dialog("INVITE", 2, x.sdp("sendonly", 2), step="hold", rtd="hold"),
        x.recv("100", optional="true"),
        x.recv("200", rtd="hold", actions=x.check_body("a=(recvonly|inactive)", "held")),
        x.ack_2xx(2),
        x.pause(_ms(p.hold_s)),
        x.in_dialog("INVITE", 3, x.sdp("sendrecv", 3), step="resume", rtd="resume"),
        x.recv("100", optional="true"),
        x.recv("200", rtd="resume", actions=x.check_body("a=sendrecv", "resumed")),
        x.ack_2xx(3),
        x.bye_and_ok(4),
    ]
    return x.scenario("sipflow hold_resume caller", "call, re-INVITE sendonly, sendrecv", body)


def _hold_callee(p: FlowParams) -> str:
    assert isinstance(p, HoldResume)
    body = [
        x.answer_call(step="invite"),
        x.answer_in_dialog("INVITE", "recvonly", 2, step="hold"),
        x.answer_in_dialog("INVITE", "sendrecv", 3, step="resume", after_ms=_ms(p.hold_s)),
        x.hangup_uas(),
    ]
    if not p.resume_audio:
        body.append(NO_RESUME + "\n")  # runners/media_hold.py: the stream stays paused
    return x.scenario("sipflow hold_resume callee", "answers hold (recvonly), resume", body)


# -- session_timer (RFC 4028) ---------------------------------------------------------------------
def _timer_headers(p: SessionTimer) -> list[str]:
    return [f"Session-Expires: {p.session_expires_s};refresher=uac", "Supported: timer"]


def _st_caller(p: FlowParams) -> str:
    assert isinstance(p, SessionTimer)
    method = "INVITE" if p.refresh == "reinvite" else "UPDATE"
    refresh = [
        x.in_dialog(
            method,
            2,
            x.sdp("sendrecv", 2) if method == "INVITE" else "",
            _timer_headers(p),
            step="refresh",
            rtd="refresh",
        ),
        x.recv("100", optional="true"),
        x.recv("200", rtd="refresh", actions=x.check_header("Session-Expires:", "[0-9]+", "se2")),
    ]
    if method == "INVITE":
        refresh.append(x.ack_2xx(2))
    body = [
        x.invite(_timer_headers(p), step="invite", rtd="invite"),
        x.recv("100", optional="true"),
        x.recv("180", optional="true"),
        x.recv(
            "200",
            rtd="invite",
            rrs="true",
            actions=x.check_header("Session-Expires:", "[0-9]+", "se"),
        ),
        x.ack_2xx(1),
        x.pause(_ms(p.session_expires_s / 2)),
        *refresh,
        x.bye_and_ok(3),
    ]
    return x.scenario("sipflow session_timer caller", f"refresh by {method}", body)


def _st_callee(p: FlowParams) -> str:
    assert isinstance(p, SessionTimer)
    method = "INVITE" if p.refresh == "reinvite" else "UPDATE"
    headers = [f"Session-Expires: {p.session_expires_s};refresher=uac", "Require: timer"]
    body = [
        x.answer_call(step="invite", extra=headers),
        x.answer_in_dialog(
            method,
            "sendrecv",
            2,
            step="refresh",
            extra=headers,
            after_ms=_ms(p.session_expires_s / 2),
        ),
        x.hangup_uas(),
    ]
    return x.scenario("sipflow session_timer callee", f"answers the {method} refresh", body)


# -- options_keepalive ----------------------------------------------------------------------------
def _options(cseq: int, *, step: str | None, rtd: str | None) -> str:
    lines = [
        "OPTIONS sip:[field4] SIP/2.0",
        "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]",
        x.FROM,
        "To: <sip:[field4]>",
        "Call-ID: [call_id]",
        f"CSeq: {cseq} OPTIONS",
        x.CONTACT,
        "Accept: application/sdp",
        "Max-Forwards: 70",
    ]
    return x.send(lines, step=step, retrans=True, start_rtd=rtd)


def _ka_caller(p: FlowParams) -> str:
    assert isinstance(p, OptionsKeepalive)
    body = [
        _options(1, step="ping", rtd="ping"),
        x.recv("100", optional="true"),
        x.recv("200", rtd="ping"),
    ]
    for n in range(2, p.pings + 1):
        # The keepalive step's time: its first ping's round trip.
        rtd = "keepalive" if n == 2 else None
        body.append(x.pause(_ms(p.interval_s), step=rtd))
        body.append(_options(n, step=None, rtd=rtd))
        body.append(x.recv("100", optional="true"))
        body.append(x.recv("200", rtd=rtd, crlf=None if n < p.pings else "true"))
    return x.scenario("sipflow options_keepalive", f"{p.pings} OPTIONS, each answered", body)


FLOWS: dict[str, Flow] = {
    f.name: f
    for f in (
        Flow(
            "ring_no_answer",
            "Ring, no answer: the caller cancels",
            RingNoAnswer,
            ("ring", "cancel"),
            (
                "caller -> INVITE",
                "callee -> 180 Ringing",
                "caller -> CANCEL (after cancel_after_s)",
                "callee -> 200 OK (CANCEL)",
                "callee -> 487 Request Terminated",
                "caller -> ACK",
            ),
            "the INVITE ends with 487 after the CANCEL",
            _rna_caller,
            _rna_callee,
            final_code=487,
        ),
        Flow(
            "busy",
            "Busy: the callee answers 486",
            Busy,
            ("busy",),
            ("caller -> INVITE", "callee -> 486 Busy Here", "caller -> ACK"),
            "the INVITE ends with 486 Busy Here",
            _reject_caller("busy", "486"),
            _reject_callee("busy", "486 Busy Here"),
            final_code=486,
        ),
        Flow(
            "decline",
            "Decline: the callee answers 603",
            Decline,
            ("decline",),
            ("caller -> INVITE", "callee -> 603 Decline", "caller -> ACK"),
            "the INVITE ends with 603 Decline",
            _reject_caller("decline", "603"),
            _reject_callee("decline", "603 Decline"),
            final_code=603,
        ),
        Flow(
            "early_media",
            "Early media: 183 with SDP before the 200",
            EarlyMedia,
            ("early_media", "answer", "hangup"),
            (
                "caller -> INVITE",
                "callee -> 183 Session Progress (SDP)",
                "callee -> 200 OK (after early_media_s)",
                "caller -> ACK",
                "caller -> BYE",
                "callee -> 200 OK",
            ),
            "a 183 with an SDP body arrives before the 200; the call is answered and ended",
            _em_caller,
            _em_callee,
        ),
        Flow(
            "prack",
            "PRACK (100rel): a reliable provisional answer",
            Prack,
            ("invite", "prack", "answer", "hangup"),
            (
                "caller -> INVITE (Supported/Require: 100rel)",
                "callee -> 183 Session Progress (Require: 100rel, RSeq: 1, SDP)",
                "caller -> PRACK (RAck: 1 1 INVITE)",
                "callee -> 200 OK (PRACK)",
                "callee -> 200 OK (INVITE)",
                "caller -> ACK",
                "caller -> BYE",
                "callee -> 200 OK",
            ),
            "the reliable 183 is PRACKed and the PRACK answered 200 before the call's 200",
            _prack_caller,
            _prack_callee,
        ),
        Flow(
            "hold_resume",
            "Hold and resume by re-INVITE",
            HoldResume,
            ("invite", "hold", "resume", "hangup"),
            (
                "caller -> INVITE",
                "callee -> 200 OK",
                "caller -> ACK",
                "caller -> INVITE (a=sendonly)",
                "callee -> 200 OK (a=recvonly)",
                "caller -> ACK",
                "caller -> INVITE (a=sendrecv, after hold_s)",
                "callee -> 200 OK (a=sendrecv)",
                "caller -> ACK",
                "caller -> BYE",
                "callee -> 200 OK",
            ),
            "both re-INVITEs answered 200 with the matching direction (recvonly, sendrecv)",
            _hold_caller,
            _hold_callee,
        ),
        Flow(
            "session_timer",
            "Session timer: refreshed by re-INVITE or UPDATE",
            SessionTimer,
            ("invite", "refresh", "hangup"),
            (
                "caller -> INVITE (Session-Expires, Supported: timer)",
                "callee -> 200 OK (Session-Expires, Require: timer)",
                "caller -> ACK",
                "caller -> re-INVITE or UPDATE (at session_expires_s / 2)",
                "callee -> 200 OK (Session-Expires)",
                "caller -> ACK (re-INVITE only)",
                "caller -> BYE",
                "callee -> 200 OK",
            ),
            "the 200s carry Session-Expires and the refresh is answered 200",
            _st_caller,
            _st_callee,
        ),
        Flow(
            "options_keepalive",
            "OPTIONS keep-alive to the target",
            OptionsKeepalive,
            ("ping", "keepalive"),
            ("caller -> OPTIONS", "target -> 200 OK", "(again every interval_s, pings in all)"),
            "every OPTIONS is answered 200 by the target",
            _ka_caller,
            None,
            final_code=None,
        ),
        Flow(
            "blind_transfer",
            "Blind transfer (REFER) to a named party",
            xfer.BlindTransfer,
            ("invite", "transfer", "notify", "hangup"),
            xfer.BLIND_MESSAGES,
            "the REFER is accepted (202), the NOTIFYs report 100 then 200 (the target answered "
            "the transferee, Referred-By passed), every call is ended",
            xfer.blind_transferor,
            xfer.blind_transferee,
            party=xfer.blind_target,
            callee_steps=("invite", "transfer", "call_target", "notify", "hangup", "target_hangup"),
            party_steps=("target_answer", "target_hangup"),
        ),
        Flow(
            "attended_transfer",
            "Attended transfer (REFER with Replaces) to a named party",
            xfer.AttendedTransfer,
            ("invite", "consult", "transfer", "notify", "replaced", "hangup"),
            xfer.ATTENDED_MESSAGES,
            "the consultation call is answered, the REFER (Refer-To with Replaces) accepted, the "
            "target ends the replaced call and answers the transferee's INVITE (Replaces and "
            "Referred-By passed), the NOTIFYs report 100 then 200, every call is ended",
            xfer.attended_transferor,
            xfer.attended_transferee,
            party=xfer.attended_target,
            callee_steps=("invite", "transfer", "call_target", "notify", "hangup", "target_hangup"),
            party_steps=("consult_answer", "target_answer", "target_hangup"),
        ),
    )
}


def flow_of(params: FlowParams) -> Flow:
    return FLOWS[params.name]  # type: ignore[attr-defined]


def render(params: FlowParams, side: Literal["caller", "callee", "party"]) -> str:
    """The SIPp XML of one side of the flow with these parameters ("party": the named party's,
    e.g. a transfer target)."""
    flow = flow_of(params)
    make = {"caller": flow.caller, "callee": flow.callee, "party": flow.party}[side]
    if make is None:
        raise ValueError(f"flow {flow.name!r} has no {side} side")
    return make(params)


def default_params(name: str) -> FlowParams:
    if name not in FLOWS:
        raise KeyError(name)
    return FLOWS[name].params(name=name)  # type: ignore[call-arg]


def final_code_of(spec: Mapping[str, Any] | None) -> int | None:
    """The final INVITE answer of a successful call of a stored session spec: its callers'
    flow's (final_code), the final answer its callers' script expects (`expect 486`), else 200."""
    callers = ((spec or {}).get("roles") or {}).get("callers") or {}
    flow = callers.get("flow")
    name = flow.get("name") if isinstance(flow, dict) else None
    if name in FLOWS:
        return FLOWS[name].final_code
    return script_final_code(callers.get("script")) or 200


def script_final_code(script: Any) -> int | None:
    """The first final answer (2xx-6xx) a stored call script expects, None without one."""
    for text in script if isinstance(script, list) else []:
        try:
            step = call_script.parse(text) if isinstance(text, str) else None
        except ValueError:
            continue
        if step is not None and step.verb == "expect" and step.code >= 200:
            return step.code
    return None
