"""Building blocks of the built-in flows' SIPp scenarios (sipflow/flows.py puts them together).

Every scenario uses the injection CSV of the built-in ones (runners/injection.py): [field0] user,
[field1] domain, [field3] callee user, [field4] request-URI host, [field5] contact, [field7] the
named party's user (PARTY_USER: a transfer target, round robin over the party's agents). Steps are
marked with `<!-- sipflow-step: NAME -->` before their first element (runners/scenario_steps.py
counts them); an rtd named after a step times it (request sent -> its final response).
In-dialog requests carry fixed CSeq numbers (the flows send no digest retries) and follow the
route set of the answer marked `rrs`, so they work directly and through a proxy.
"""

from __future__ import annotations

from collections.abc import Sequence

HEADER = '<?xml version="1.0" encoding="ISO-8859-1" ?>\n<!DOCTYPE scenario SYSTEM "sipp.dtd">\n'
FOOTER = (
    '  <ResponseTimeRepartition value="10, 20, 30, 40, 50, 100, 150, 200"/>\n'
    '  <CallLengthRepartition value="10, 50, 100, 500, 1000, 5000, 10000"/>\n'
    "</scenario>\n"
)
# The user of the named party a call's flow refers to (RunnerConfig.party_to, per call).
PARTY_USER = "[field7]"
FROM = "From: <sip:[field0]@[field1]>;tag=[pid]SIPpTag00[call_number]"
TO = "To: <sip:[field3]@[field4]>"
CONTACT = "Contact: <sip:[field0]@[field5];transport=[transport]>"
UAS_CONTACT = "Contact: <sip:[local_ip]:[local_port];transport=[transport]>"
UAS_TAG = ";tag=[pid]SIPpTag01[call_number]"


def scenario(name: str, comment: str, body: list[str]) -> str:
    return f'{HEADER}<!--\n{comment}\n-->\n<scenario name="{name}">\n{"".join(body)}{FOOTER}'


def sdp(direction: str = "sendrecv", version: int = 1) -> str:
    return (
        f"v=0\no=sipflow 53655765 {version} IN IP[local_ip_type] [local_ip]\ns=-\n"
        "c=IN IP[media_ip_type] [media_ip]\nt=0 0\nm=audio [media_port] RTP/AVP 0\n"
        f"a=rtpmap:0 PCMU/8000\na={direction}\n"
    )


def _attrs(attrs: dict[str, str | None]) -> str:
    return "".join(f' {k}="{v}"' for k, v in attrs.items() if v is not None)


def _mark(step: str | None) -> str:
    return f"  <!-- sipflow-step: {step} -->\n" if step else ""


def send(
    lines: list[str],
    body: str = "",
    *,
    step: str | None = None,
    retrans: bool = False,
    **attrs: str | None,
) -> str:
    """A <send>: the start line and headers, then Content-Length (and the body, if any)."""
    head = list(lines)
    if body:
        head.append("Content-Type: application/sdp")
    head.append("Content-Length: [len]" if body else "Content-Length: 0")
    text = "\n".join(f"      {h}" for h in head) + "\n\n"
    text += "".join(f"      {b}\n" for b in body.splitlines())
    attrs = {"retrans": "500" if retrans else None, **attrs}
    return f"{_mark(step)}  <send{_attrs(attrs)}>\n    <![CDATA[\n\n{text}\n    ]]>\n  </send>\n"


def recv(what: str, *, step: str | None = None, actions: str = "", **attrs: str | None) -> str:
    """<recv response="NNN"> for digits, else <recv request="METHOD">."""
    kind = "response" if what.isdigit() else "request"
    head = f'{_mark(step)}  <recv {kind}="{what}"{_attrs(attrs)}'
    if not actions:
        return head + "/>\n"
    return f"{head}>\n    <action>{actions}</action>\n  </recv>\n"


# SIPp refuses a scenario with a variable set but never read: each check's variable is read
# once more by an assignstr (which leaves it as it was).
def _keep(var: str) -> str:
    return f'<assignstr assign_to="{var}" value="[${var}]"/>'


def check_body(regexp: str, var: str) -> str:
    """An action failing the call when the message's body does not match (SIPp check_it)."""
    ereg = f'<ereg regexp="{regexp}" search_in="body" check_it="true" assign_to="{var}"/>'
    return ereg + _keep(var)


def check_msg(regexp: str, var: str) -> str:
    """An action failing the call when the whole message does not match."""
    ereg = f'<ereg regexp="{regexp}" search_in="msg" check_it="true" assign_to="{var}"/>'
    return ereg + _keep(var)


def check_header(header: str, regexp: str, var: str) -> str:
    ereg = (
        f'<ereg regexp="{regexp}" search_in="hdr" header="{header}" check_it="true" '
        f'assign_to="{var}"/>'
    )
    return ereg + _keep(var)


def label(name: str) -> str:
    return f'  <label id="{name}"/>\n'


def nop() -> str:
    return "  <nop/>\n"


def pause(ms: int | None = None, *, step: str | None = None) -> str:
    """A pause of `ms`, or of the caller's hold time (-d) when None."""
    value = "" if ms is None else f' milliseconds="{ms}"'
    return f"{_mark(step)}  <pause{value}/>\n"


# -- caller side ----------------------------------------------------------------------------------
def invite(extra: Sequence[str] = (), *, step: str | None = None, rtd: str | None = None) -> str:
    lines = [
        "INVITE sip:[field3]@[field4] SIP/2.0",
        "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]",
        FROM,
        TO,
        "Call-ID: [call_id]",
        "CSeq: 1 INVITE",
        CONTACT,
        "Max-Forwards: 70",
        "Subject: sipflow",
        *extra,
    ]
    return send(lines, sdp(), step=step, retrans=True, start_rtd=rtd)


def in_dialog(
    method: str,
    cseq: int,
    body: str = "",
    extra: Sequence[str] = (),
    *,
    step: str | None = None,
    rtd: str | None = None,
) -> str:
    """A request inside the dialog: to the remote target along the route set."""
    lines = [
        f"{method} [next_url] SIP/2.0",
        "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]",
        "[routes]",
        FROM,
        f"{TO}[peer_tag_param]",
        "Call-ID: [call_id]",
        f"CSeq: {cseq} {method}",
        CONTACT,
        "Max-Forwards: 70",
        *extra,
    ]
    return send(lines, body, step=step, retrans=method != "ACK", start_rtd=rtd)


def ack_2xx(cseq: int, *, step: str | None = None) -> str:
    return in_dialog("ACK", cseq, step=step)


def ack_non_2xx() -> str:
    """The ACK of a final error response: same branch as the INVITE (hop by hop)."""
    lines = [
        "ACK sip:[field3]@[field4] SIP/2.0",
        "[last_Via:]",
        FROM,
        "[last_To:]",
        "Call-ID: [call_id]",
        "CSeq: 1 ACK",
        "Max-Forwards: 70",
    ]
    return send(lines)


def cancel(*, step: str | None = None, rtd: str | None = None) -> str:
    """CANCEL of the INVITE: its branch (the Via a provisional answer echoed), no To tag."""
    lines = [
        "CANCEL sip:[field3]@[field4] SIP/2.0",
        "[last_Via:]",
        FROM,
        TO,
        "Call-ID: [call_id]",
        "CSeq: 1 CANCEL",
        "Max-Forwards: 70",
    ]
    return send(lines, step=step, retrans=True, start_rtd=rtd)


def bye_and_ok(cseq: int, *, step: str = "hangup") -> str:
    """The hold time (-d), then BYE -> 200."""
    return (
        pause(step=step)
        + in_dialog("BYE", cseq, rtd=step)
        + recv("100", optional="true")
        + recv("200", rtd=step, crlf="true")
    )


# A callee waits this long (beyond the flow's own pause) for the caller's next request of the
# dialog: when the caller's call failed before it (e.g. a proxy refused the request), the callee's
# call then fails in the same step (a timeout) instead of staying open until the session stops.
CALLEE_WAIT_MS = 10_000


def callee_wait(after_ms: int = 0) -> str:
    return str(after_ms + CALLEE_WAIT_MS)


# -- callee side ----------------------------------------------------------------------------------
def response(
    code: str,
    body: str = "",
    extra: Sequence[str] = (),
    *,
    tag: bool = True,
    cseq: str = "[last_CSeq:]",
    step: str | None = None,
    retrans: bool = False,
    **attrs: str | None,
) -> str:
    """A response to the last request; tag: add our To tag (the request had none)."""
    lines = [
        f"SIP/2.0 {code}",
        "[last_Via:]",
        "[last_From:]",
        f"[last_To:]{UAS_TAG if tag else ''}",
        "[last_Call-ID:]",
        cseq,
        "[last_Record-Route:]",
        UAS_CONTACT,
        *extra,
    ]
    return send(lines, body, step=step, retrans=retrans, **attrs)


def answer_call(*, step: str = "answer", extra: Sequence[str] = ()) -> str:
    """INVITE -> 200 with SDP -> ACK (the callee's plain answer)."""
    return (
        recv("INVITE", step=step, crlf="true", start_rtd=step)
        + response("200 OK", sdp(), extra, retrans=True)
        + recv("ACK", rtd=step, crlf="true")
    )


def answer_in_dialog(
    method: str,
    direction: str,
    version: int,
    *,
    step: str,
    extra: Sequence[str] = (),
    after_ms: int = 0,
) -> str:
    """An in-dialog INVITE (with its ACK) or UPDATE answered 200 (SDP for an INVITE); waited
    for at most after_ms + CALLEE_WAIT_MS (callee_wait)."""
    body = sdp(direction, version) if method == "INVITE" else ""
    # Timed (request -> ACK) for an INVITE only: an UPDATE's step ends with the callee's 200.
    timed = step if method == "INVITE" else None
    out = recv(method, step=step, start_rtd=timed, timeout=callee_wait(after_ms)) + response(
        "200 OK", body, extra, tag=False, retrans=method == "INVITE"
    )
    if method == "INVITE":
        out += recv("ACK", rtd=step, crlf="true")
    return out


def hangup_uas(*, step: str = "hangup") -> str:
    return recv("BYE", step=step) + response("200 OK", tag=False)
