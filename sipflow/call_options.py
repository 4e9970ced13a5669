"""Call options of a caller: custom headers, From/To/Request-URI templates, an outbound proxy.

A template is text with `{variable}` placeholders. The variables are filled per call by SIPp
itself: each becomes the SIPp keyword that holds the value in that call (the injection row's
fields, SIPp's own call number), so no value is ever written into a file SIPp splits on `;`.
Literal text goes into the scenario XML as it is, so it must not hold what SIPp would read as a
keyword (`[` and `]`) or what would end a header (control characters).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

# Variable -> SIPp keyword (injection fields as runners/injection.py writes them). {session} is
# filled in when the session is planned (render(..., session=)).
VARIABLES: dict[str, str] = {
    "caller": "[field0]",  # the calling account's user
    "caller_domain": "[field1]",  # that account's domain
    "callee": "[field3]",  # the called user
    "domain": "[field4]",  # the request-URI host: the target's SIP domain (or host:port)
    "call_number": "[call_number]",  # 1, 2, 3 ... per SIPp process
    "call_id": "[call_id]",  # the call's Call-ID
    "session": "",  # the session id
}
_VAR_RE = re.compile(r"\{([^{}]*)\}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# RFC 3261 token characters.
_HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9!%*_+`'~.-]+$")
# The headers sipflow's scenarios write themselves (a second copy would break the dialog or the
# framing); From/To/Request-URI have templates of their own.
RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        "Via",
        "From",
        "f",
        "To",
        "t",
        "Call-ID",
        "i",
        "CSeq",
        "Contact",
        "m",
        "Content-Length",
        "l",
        "Content-Type",
        "c",
        "Max-Forwards",
        "Route",
        "Record-Route",
        "Authorization",
        "Proxy-Authorization",
    )
)
_URI_RE = re.compile(r"^(sips?|tel):[^\s<>\"]+$")
MAX_HEADERS = 50
MAX_TEMPLATE_CHARS = 512


def check_template(text: str) -> str:
    """The template, or ValueError with the reason (a control character, `[`/`]`, an unknown
    variable, an unmatched brace)."""
    if _CONTROL_RE.search(text):
        raise ValueError("must not contain control characters (CR, LF, NUL, ...)")
    for name in _VAR_RE.findall(text):
        if name not in VARIABLES:
            known = ", ".join("{" + v + "}" for v in VARIABLES)
            raise ValueError(f"unknown template variable {{{name}}}; known: {known}")
    rest = _VAR_RE.sub("", text)
    if "{" in rest or "}" in rest:
        raise ValueError("unmatched '{' or '}'")
    if "[" in rest or "]" in rest:
        raise ValueError("'[' and ']' are not allowed (SIPp reads them as keywords)")
    return text


def check_uri_template(text: str) -> str:
    check_template(text)
    if not _URI_RE.match(_VAR_RE.sub("x", text)):
        raise ValueError("not a sip:, sips: or tel: URI (no spaces, no <>)")
    return text


def check_header_name(name: str) -> str:
    if not _HEADER_NAME_RE.match(name):
        raise ValueError(f"{name!r} is not a header name (RFC 3261 token characters only)")
    if name.lower() in RESERVED_HEADERS:
        raise ValueError(f"{name!r} is written by sipflow; use from/to/request_uri for those")
    return name


def render(template: str, session: str) -> str:
    """The template as SIPp scenario text: each variable its SIPp keyword."""

    def keyword(m: re.Match[str]) -> str:
        name = m.group(1)
        return session if name == "session" else VARIABLES[name]

    return _VAR_RE.sub(keyword, template)


Template = Annotated[str, Field(max_length=MAX_TEMPLATE_CHARS), AfterValidator(check_template)]
UriTemplate = Annotated[
    str, Field(min_length=4, max_length=MAX_TEMPLATE_CHARS), AfterValidator(check_uri_template)
]
HeaderName = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(check_header_name)]


class MessageOptions(BaseModel):
    """What a caller's INVITEs carry beyond the defaults, per call (the spec's CallOptions adds
    where they are sent)."""

    headers: Annotated[dict[HeaderName, Template], Field(max_length=MAX_HEADERS)] = {}
    from_uri: Annotated[UriTemplate | None, Field(alias="from")] = None
    to_uri: Annotated[UriTemplate | None, Field(alias="to")] = None
    request_uri: UriTemplate | None = None
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _distinct_names(self) -> MessageOptions:
        seen: set[str] = set()
        for name in self.headers:
            if name.lower() in seen:
                raise ValueError(f"headers: {name!r} given twice (names are case-insensitive)")
            seen.add(name.lower())
        return self

    def shapes_messages(self) -> bool:
        """Whether the options change the scenario's text (not only where it is sent)."""
        return bool(self.headers or self.from_uri or self.to_uri or self.request_uri)
