"""Thresholds judge measured values; histograms merge across runners and give percentiles."""

from __future__ import annotations

import pytest

from sipflow import histogram
from sipflow.thresholds import evaluate, parse_threshold


def test_evaluate_each_operator() -> None:
    ts = [
        parse_threshold(t)
        for t in ["success_rate >= 99.5", "failed_calls == 0", "retransmissions <= 10"]
    ]
    ok = evaluate(ts, {"success_rate": 99.5, "failed_calls": 0, "retransmissions": 10})
    assert [r.passed for r in ok] == [True, True, True]
    bad = evaluate(ts, {"success_rate": 99.4, "failed_calls": 1, "retransmissions": 11})
    assert [r.passed for r in bad] == [False, False, False]
    assert bad[0].measured == 99.4


def test_missing_measurement_fails() -> None:
    (r,) = evaluate([parse_threshold("response_time_p95_ms < 300")], {"response_time_p95_ms": None})
    assert not r.passed


def test_unknown_metric_rejected() -> None:
    with pytest.raises(ValueError, match="unknown metric"):
        parse_threshold("jitter_ms < 3")


def test_percentiles_from_merged_histograms() -> None:
    a = histogram.from_samples([1.0] * 90)  # 90 fast answers on one runner
    b = histogram.from_samples([250.0] * 10)  # 10 slow ones on another
    merged = histogram.merge([a, b])
    assert sum(merged) == 100
    assert histogram.percentile(merged, 50) == 1.0
    assert histogram.percentile(merged, 90) == 1.0
    assert histogram.percentile(merged, 95) == 250.0
    assert histogram.percentile(histogram.empty(), 95) is None
    assert histogram.percentile(histogram.from_samples([10**6]), 99) == float("inf")


def test_merge_rejects_foreign_bucket_layout() -> None:
    with pytest.raises(ValueError):
        histogram.merge([[1, 2, 3]])
