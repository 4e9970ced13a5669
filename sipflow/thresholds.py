"""Pass/fail conditions such as `success_rate >= 99.5`, evaluated on a session's stored metrics.

A threshold on a metric that sipflow does not compute is a validation error, never a silent pass.
Pure functions: the workflow evaluates thresholds deterministically.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping

from pydantic import BaseModel

METRICS: dict[str, str] = {
    "success_rate": "successful / (successful + failed) calls of the callers, in %",
    "successful_calls": "calls that completed as the scenario expects",
    "failed_calls": "calls that failed (unexpected response, timeout, ...)",
    "total_calls": "calls created by the callers",
    "retransmissions": "SIP retransmissions of all runners",
    "response_time_p50_ms": "median response time (request to final response)",
    "response_time_p95_ms": "95th percentile response time",
    "response_time_p99_ms": "99th percentile response time",
    "achieved_rate": "calls created per second of the callers' run time",
    "lost_runners": "runners whose agent vanished (MQTT Last Will)",
    "asr": "answer-seizure ratio: answered / attempted calls of the callers, in %",
    "ner": "network effectiveness ratio: (answered + busy/no-answer/declined) / attempted, in %",
    "pdd_mean_ms": "mean post-dial delay (first INVITE to first 180/183)",
    "pdd_p50_ms": "median post-dial delay (a bucket bound, see sipflow.histogram)",
    "pdd_p95_ms": "95th percentile post-dial delay",
    "acd_s": "average call duration: answered calls' 200 OK to BYE, in seconds",
    "duration_p50_s": "median answered-call duration (a bucket bound), in seconds",
    "duration_p95_s": "95th percentile answered-call duration (a bucket bound), in seconds",
    # Audio (roles' `media:`, sipflow/media_store.py).
    "media_calls": "calls with audio analysed (in the sample)",
    "mos_median": "median E-model MOS-CQE of the calls' audio directions",
    "mos_p5": "5th percentile E-model MOS-CQE of the calls' audio directions",
    "pesq_median": "median PESQ-NB of the directions scored (media mos: pesq)",
    "pesq_p5": "5th percentile PESQ-NB of the directions scored (media mos: pesq)",
    "visqol_median": "median ViSQOL speech MOS-LQO of the directions scored (media mos: visqol)",
    "visqol_p5": "5th percentile ViSQOL MOS-LQO of the directions scored (media mos: visqol)",
    "rtp_loss_pct": "RTP packets lost of those expected, in %",
    "jitter_p95_ms": "95th percentile RFC 3550 jitter of the audio streams",
    "one_way_audio_calls": "analysed calls with audio in one direction only",
    "no_audio_calls": "analysed calls with audio in neither direction",
    "dtmf_calls": "calls that sent DTMF (media dtmf or a script's send_dtmf)",
    "dtmf_mismatch_calls": "calls whose DTMF did not arrive at the far end as sent",
}
# Besides METRICS: code_NNN, the callers' calls that ended on final response NNN (e.g. code_503).
CODE_METRIC = re.compile(r"^code_([1-6][0-9]{2})$")
# And the steps of a scenario with step marks (sipflow/step_results.py): step_failed_hold,
# step_passed_prack, step_time_ms_refresh. A step the session did not have has no value (fails).
STEP_METRIC = re.compile(r"^step_(passed|failed|time_ms)_([a-z0-9_]+)$")


OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    "<": operator.lt,
}
_RE = re.compile(r"^\s*([a-z0-9_]+)\s*(>=|<=|==|!=|>|<)\s*(-?[0-9]+(?:\.[0-9]+)?)\s*$")


class Threshold(BaseModel):
    metric: str
    op: str
    value: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


class ThresholdResult(BaseModel):
    threshold: str
    measured: float | None
    passed: bool


def parse_threshold(text: str) -> Threshold:
    m = _RE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not '<metric> <op> <number>' (ops: {' '.join(OPS)})")
    metric, op, value = m.groups()
    if metric not in METRICS and not CODE_METRIC.match(metric) and not STEP_METRIC.match(metric):
        known = ", ".join([*METRICS, "code_NNN", "step_failed_STEP", "step_passed_STEP"])
        raise ValueError(f"unknown metric {metric!r}; known: {known}")
    return Threshold(metric=metric, op=op, value=float(value))


def evaluate(
    thresholds: list[Threshold], measured: Mapping[str, float | None]
) -> list[ThresholdResult]:
    """A threshold whose metric has no value (e.g. no response times) fails."""
    results = []
    for t in thresholds:
        # A code never seen is 0 calls, not an unknown.
        value = measured.get(t.metric, 0.0 if CODE_METRIC.match(t.metric) else None)
        passed = value is not None and OPS[t.op](value, t.value)
        results.append(ThresholdResult(threshold=str(t), measured=value, passed=passed))
    return results
