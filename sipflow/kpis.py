"""Telecom KPIs from stored data (docs/kpis.md has each one's formula).

- ASR (answer-seizure ratio) = answered / attempted calls x 100: the callers' successful calls
  over the calls they created.
- NER (network effectiveness ratio, after ITU-T E.411) = (answered + calls that ended on the
  called user's side) / attempted x 100: a busy, unavailable, declined or unanswered callee
  (USER_SIDE_CODES) is the network doing its job; every other failure (5xx, 404, timeouts) is not.
- PDD (post-dial delay) = first INVITE -> first 180/183, from SIPp's rtd 2 (mean, p50, p95: the
  percentiles are bucket bounds, the mean is exact); setup time
  = first INVITE -> 200 is the response time (response_time_*).
- ACD (average call duration) = the answered calls' durations (their 200 OK -> the caller's BYE,
  SIPp's rtd 3) / answered calls, in seconds; duration_p50_s/p95_s their percentiles.
- code_NNN = the callers' calls that ended on final response NNN to their INVITE (code_200: the
  answered ones), from the failure reasons each runner reports (`INVITE: 503 Service ...`).
Pure functions: the workflow's summary calls them.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from sipflow import histogram

# Final responses that are the called user's doing, not the network's (E.411's "user busy",
# "no answer", "terminal reject"): 480 Temporarily Unavailable, 486 Busy Here, 487 Request
# Terminated (caller gave up ringing), 600 Busy Everywhere, 603 Decline.
USER_SIDE_CODES = frozenset({480, 486, 487, 600, 603})
_INVITE_REASON = re.compile(r"^INVITE: ([1-6][0-9]{2})\b")


def invite_codes(failure_reasons: Iterable[Mapping[str, int]]) -> Counter[int]:
    """Final INVITE responses of failed calls, counted, from runners' failure reasons."""
    codes: Counter[int] = Counter()
    for reasons in failure_reasons:
        for reason, n in reasons.items():
            m = _INVITE_REASON.match(reason)
            if m:
                codes[int(m.group(1))] += n
    return codes


def telecom_kpis(
    attempted: int,
    answered: int,
    codes: Mapping[int, int],
    pdd_histograms: Iterable[Sequence[int]],
    pdd_sum_ms: float = 0.0,
    duration_histograms: Iterable[Sequence[int]] = (),
    duration_sum_ms: float = 0.0,
) -> dict[str, float | None]:
    """ASR, NER, PDD mean and percentiles, ACD and call-duration percentiles, code_NNN counts
    (code_200 = answered)."""
    pdd = histogram.merge(h for h in pdd_histograms if len(h) == histogram.N_BUCKETS)
    bounds = histogram.DURATION_BOUNDS_MS
    durations = histogram.merge(
        (h for h in duration_histograms if len(h) == len(bounds) + 1), bounds
    )
    ended = sum(durations)
    user_side = sum(n for code, n in codes.items() if code in USER_SIDE_CODES)
    out: dict[str, float | None] = {
        "asr": 100.0 * answered / attempted if attempted else None,
        "ner": 100.0 * (answered + user_side) / attempted if attempted else None,
        "pdd_mean_ms": pdd_sum_ms / sum(pdd) if sum(pdd) else None,
        "pdd_p50_ms": histogram.percentile(pdd, 50) if sum(pdd) else None,
        "pdd_p95_ms": histogram.percentile(pdd, 95) if sum(pdd) else None,
        "acd_s": duration_sum_ms / ended / 1000.0 if ended else None,
        "duration_p50_s": _seconds(histogram.percentile(durations, 50, bounds)),
        "duration_p95_s": _seconds(histogram.percentile(durations, 95, bounds)),
        "code_200": float(answered),
    }
    out.update({f"code_{code}": float(n) for code, n in sorted(codes.items())})
    return out


def _seconds(ms: float | None) -> float | None:
    return None if ms is None else ms / 1000.0
