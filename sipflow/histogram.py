"""Response-time histogram with fixed bucket bounds, so histograms from any runner can be summed.

Percentiles are computed on the merged counts; a percentile is reported as the upper bound of
the bucket that holds it (conservative: never lower than the true value).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

# Upper bounds in milliseconds; the last bucket catches everything above the last bound.
BOUNDS_MS: tuple[float, ...] = (
    1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100, 120, 150, 200, 250,
    300, 400, 500, 600, 800, 1000, 1500, 2000, 3000, 5000, 10000, 30000,
)  # fmt: skip
N_BUCKETS = len(BOUNDS_MS) + 1
# Call durations (answer -> hang-up) last seconds to hours: bounds of their own, in ms.
DURATION_BOUNDS_MS: tuple[float, ...] = (
    1000, 2000, 3000, 5000, 10000, 15000, 20000, 30000, 45000, 60000, 90000, 120000, 180000,
    300000, 600000, 1200000, 1800000, 3600000, 7200000,
)  # fmt: skip


def empty(bounds: Sequence[float] = BOUNDS_MS) -> list[int]:
    return [0] * (len(bounds) + 1)


def bucket_index(value_ms: float, bounds: Sequence[float] = BOUNDS_MS) -> int:
    for i, bound in enumerate(bounds):
        if value_ms <= bound:
            return i
    return len(bounds)


def from_samples(samples_ms: Iterable[float], bounds: Sequence[float] = BOUNDS_MS) -> list[int]:
    counts = empty(bounds)
    for s in samples_ms:
        counts[bucket_index(s, bounds)] += 1
    return counts


def merge(histograms: Iterable[Sequence[int]], bounds: Sequence[float] = BOUNDS_MS) -> list[int]:
    total = empty(bounds)
    for h in histograms:
        if len(h) != len(total):
            raise ValueError(f"histogram has {len(h)} buckets, expected {len(total)}")
        for i, c in enumerate(h):
            total[i] += c
    return total


def percentile(
    counts: Sequence[int], p: float, bounds: Sequence[float] = BOUNDS_MS
) -> float | None:
    """The p-th percentile (0 < p <= 100) in ms, or None when there are no samples."""
    n = sum(counts)
    if n == 0:
        return None
    rank = p / 100.0 * n
    seen = 0
    for i, c in enumerate(counts):
        seen += c
        if seen >= rank and c > 0:
            return float(bounds[i]) if i < len(bounds) else float("inf")
    return float("inf")
