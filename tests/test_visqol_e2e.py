"""ViSQOL (`mos: visqol`) on real SIPp through Kamailio: two calls with audio both ways, each
runner scores the audio it rebuilt from the RTP it received against the reference."""

from __future__ import annotations

import pytest

from runners import media_visqol
from tests.conftest import RunningStack
from tests.test_media_e2e import calls, media_spec, sut  # noqa: F401

pytestmark = pytest.mark.skipif(
    not media_visqol.available(), reason="visqol-python[lattice] is not installed"
)
CALLS = 2


def test_visqol_of_clean_calls(sqlite_stack: RunningStack, sut: tuple[str, int]) -> None:  # noqa: F811
    spec = media_spec(*sut, mos="visqol")
    spec["roles"]["callers"].update(max_calls=CALLS, rate=2, hold_ms=3000)
    # Usable in thresholds: the first passes on clean G.711, the second cannot.
    spec["thresholds"] = ["success_rate >= 100", "visqol_median >= 3.5", "visqol_p5 > 5"]
    body = sqlite_stack.run(spec)
    assert body["status"] == "completed", body
    m = body["measured"]
    print("visqol median/p5", m["visqol_median"], m["visqol_p5"], "pesq", m["pesq_median"])
    assert m["media_calls"] == CALLS and m["rtp_loss_pct"] == 0, m
    assert 3.5 < m["visqol_p5"] <= m["visqol_median"] <= 5.0, m
    assert m["pesq_median"] is not None and m["pesq_median"] >= 3.5, m  # scored beside it
    failed = {t["threshold"] for t in body["thresholds"] if not t["passed"]}
    assert failed == {"visqol_p5 > 5"}, body["thresholds"]
    rows = calls(sqlite_stack, body["id"])
    assert len(rows) == CALLS
    for row in rows:  # both directions of every call scored and stored
        assert len(row["directions"]) == 2
        for d in row["directions"]:
            assert d["visqol"] is not None and 3.5 < d["visqol"] <= 5.0, d
