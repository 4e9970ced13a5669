"""Writes a caller's call options (RunnerConfig.messages, already SIPp text) into the built-in
call scenario: the Request-URI of its INVITEs (and of the ACK of a challenge), From and To in
every message of the dialog, the custom headers in every INVITE.

The built-in scenarios (and compiled call scripts) write these lines in one canonical form,
which is what is replaced here; tests/test_call_options.py checks that every form is found.
"""

from __future__ import annotations

import re

from sipflow.runner_config import MessageConfig

REQUEST_URI = "sip:[field3]@[field4]"
FROM = "From: <sip:[field0]@[field1]>"
TO = "To: <sip:[field3]@[field4]>"
_REQUEST_LINE = re.compile(r"^(\s*)(INVITE|ACK|CANCEL) sip:\[field3\]@\[field4\] SIP/2\.0$", re.M)
# Custom headers go after this line, which every INVITE of the built-in scenarios has.
_INVITE_ANCHOR = re.compile(r"^(\s*)Subject: sipflow$", re.M)


def apply(text: str, messages: MessageConfig) -> str:
    """The scenario text with the options in place; ValueError if a line is not found."""
    # Header values may be UTF-8 (display names); SIPp sends the file's bytes as they are.
    text = text.replace('encoding="ISO-8859-1"', 'encoding="UTF-8"', 1)
    if messages.request_uri is not None:
        ruri = messages.request_uri
        text, n = _REQUEST_LINE.subn(lambda m: f"{m.group(1)}{m.group(2)} {ruri} SIP/2.0", text)
        _found(n, "Request-URI")
    if messages.from_uri is not None:
        _found(text.count(FROM), "From")
        text = text.replace(FROM, f"From: <{messages.from_uri}>")
    if messages.to_uri is not None:
        _found(text.count(TO), "To")
        text = text.replace(TO, f"To: <{messages.to_uri}>")
    if messages.headers:
        lines = messages.headers
        text, n = _INVITE_ANCHOR.subn(
            lambda m: m.group(0) + "".join(f"\n{m.group(1)}{h}" for h in lines), text
        )
        _found(n, "INVITE headers")
    return text


def _found(n: int, what: str) -> None:
    if n == 0:
        raise ValueError(f"the scenario has no {what} line in sipflow's form to replace")
