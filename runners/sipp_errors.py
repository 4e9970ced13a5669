"""Failure reasons from SIPp's -error_file.

Entries start with `date<TAB>time<TAB>epoch: ` and can span lines (a received message is quoted
in full); SIPp does not end an entry with a newline. Reasons:

- `Aborting call on unexpected message ... received 'SIP/2.0 401 Unauthorized ... CSeq: 2
  REGISTER'` -> `REGISTER: 401 Unauthorized`; an unexpected request -> `unexpected OPTIONS request`
- `Aborting call on UDP retransmission timeout ...` -> `UDP retransmission timeout`
- `... receive timeout ... aborting call` -> `receive timeout`
- `Failed regexp match: looking in 'SIP/2.0 200 OK ... CSeq: 1 INVITE ...', with regexp 'X'` (a
  check_it action; SIPp fails the call at its end) -> `check 'X' failed on INVITE: 200 OK`
- a check that an answer is a success (`with regexp '^SIP/2\\.0 2'`, e.g. a flow's "the REFER is
  accepted") failing -> the answer itself: `REFER: 403 Forbidden`
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
_CSEQ = re.compile(r"^CSeq:\s*\d+\s+(?P<method>\S+)", re.M | re.I)
_QUOTED = re.compile(r"'[^']*'")
_CHECK = re.compile(r"looking in '(?P<hay>.*)', with regexp '(?P<re>.*)'\s*$", re.S)
_SUCCESS_CHECK = r"^SIP/2\.0 2"
_IGNORED = ("Dead call", "Discarding message", "jumping to label", "The following events")
MAX_BYTES = 64 * 1024 * 1024


def _entries(text: str) -> list[str]:
    starts = [m.end() for m in _ENTRY.finditer(text)]
    ends = [*[m.start() for m in _ENTRY.finditer(text)][1:], len(text)]
    return [text[s:e] for s, e in zip(starts, ends, strict=True)]


def _response(msg: str) -> str | None:
    """`METHOD: status` of a quoted SIP response, None for anything else."""
    first = msg.splitlines()[0].strip() if msg.strip() else ""
    if not first.startswith("SIP/2.0 "):
        return None
    cseq = _CSEQ.search(msg)
    method = cseq.group("method") if cseq else "?"
    return f"{method}: {first[len('SIP/2.0 ') :].strip()}"


def _unexpected(entry: str) -> str:
    m = _RECEIVED.search(entry)
    if not m:
        return "unexpected message"
    msg = m.group("msg")
    response = _response(msg)
    if response:
        return response
    first = msg.splitlines()[0].strip() if msg.strip() else ""
    method = first.split(" ", 1)[0] if first else "?"
    return f"unexpected {method} request"


def _failed_check(entry: str) -> str | None:
    m = _CHECK.search(entry)
    if not m:
        return None  # not SIPp's whole sentence: kept as written
    # The haystack is the whole message, a header or a body: name the message when it can.
    on = _response(m.group("hay"))
    if on and m.group("re") == _SUCCESS_CHECK:
        return on  # "the answer is a 2xx" failed: the answer says why
    return f"check '{m.group('re')}' failed" + (f" on {on}" if on else "")


def reason_of(entry: str) -> str | None:
    head = entry.strip().splitlines()[0] if entry.strip() else ""
    if not head or any(s in head for s in _IGNORED):
        return None
    if head.startswith("Aborting call on unexpected message"):
        return _unexpected(entry)
    checked = _failed_check(entry) if head.startswith("Failed regexp match") else None
    if checked:
        return checked
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
