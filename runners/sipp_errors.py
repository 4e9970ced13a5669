"""Failure reasons from SIPp's -error_file.

Entries start with `date<TAB>time<TAB>epoch: ` and can span lines (a received message is quoted
in full); SIPp does not end an entry with a newline. Reasons:

- `Aborting call on unexpected message ... received 'SIP/2.0 401 Unauthorized ... CSeq: 2
  REGISTER'` -> `REGISTER: 401 Unauthorized`; an unexpected request -> `unexpected OPTIONS request`
- `Aborting call on UDP retransmission timeout ...` -> `UDP retransmission timeout`
- `... receive timeout ... aborting call` -> `receive timeout`
- `Failed regexp match: looking in 'SIP/2.0 403 Forbidden ... CSeq: 2 REFER ...'` (a check_it on
  a whole response failed, e.g. a flow's "the REFER is accepted") -> `REFER: 403 Forbidden`
- entries that are not call failures (a receive timeout that jumps to a label, messages for dead
  calls, out-of-call messages) are ignored; anything else is kept, shortened, with call ids
  removed.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

_ENTRY = re.compile(r"\d{4}-\d{2}-\d{2}\t\d{2}:\d{2}:\d{2}\.\d+\t\d+\.\d+: ")
_RECEIVED = re.compile(r"received '(?P<msg>.*)", re.S)
_CHECKED = re.compile(r"Failed regexp match: looking in '(?P<msg>SIP/2\.0 .*)", re.S)
_CSEQ = re.compile(r"^CSeq:\s*\d+\s+(?P<method>\S+)", re.M | re.I)
_QUOTED = re.compile(r"'[^']*'")
_IGNORED = ("Dead call", "Discarding message", "jumping to label", "The following events")
MAX_BYTES = 64 * 1024 * 1024


def _entries(text: str) -> list[str]:
    starts = [m.end() for m in _ENTRY.finditer(text)]
    ends = [*[m.start() for m in _ENTRY.finditer(text)][1:], len(text)]
    return [text[s:e] for s, e in zip(starts, ends, strict=True)]


def _unexpected(entry: str) -> str:
    m = _RECEIVED.search(entry)
    if not m:
        return "unexpected message"
    return _message(m.group("msg"))


def _message(msg: str) -> str:
    """`METHOD: status` for a response (its CSeq's method), `unexpected METHOD request`."""
    first = msg.splitlines()[0].strip() if msg.strip() else ""
    if first.startswith("SIP/2.0 "):
        status = first[len("SIP/2.0 ") :].strip()
        cseq = _CSEQ.search(msg)
        method = cseq.group("method") if cseq else "?"
        return f"{method}: {status}"
    method = first.split(" ", 1)[0] if first else "?"
    return f"unexpected {method} request"


def reason_of(entry: str) -> str | None:
    head = entry.strip().splitlines()[0] if entry.strip() else ""
    if not head or any(s in head for s in _IGNORED):
        return None
    if head.startswith("Aborting call on unexpected message"):
        return _unexpected(entry)
    checked = _CHECKED.match(entry.strip())
    if checked and _CSEQ.search(checked.group("msg")):
        return _message(checked.group("msg"))
    if "retransmission timeout" in head:
        return "UDP retransmission timeout"
    if "receive timeout" in head:
        return "receive timeout"
    if "send timeout" in head:
        return "send timeout"
    short = _QUOTED.sub("''", head)
    short = re.sub(r"\b\d+-\d+@\S+", "", short)
    return short[:120].strip()


def parse_error_text(text: str) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for entry in _entries(text):
        reason = reason_of(entry)
        if reason:
            counts[reason] += 1
    return dict(counts)


def parse_error_file(path: Path) -> dict[str, int]:
    if not path.exists():
        return {}
    with path.open("r", errors="replace") as f:
        return parse_error_text(f.read(MAX_BYTES))
