"""Telecom KPIs (sipflow/kpis.py): ASR, NER, PDD and per-code counts, as formulas and from a
session through a Kamailio that answers every 10th INVITE with 503."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from sipflow import histogram
from sipflow.kpis import invite_codes, telecom_kpis
from sipflow.thresholds import evaluate, parse_threshold
from tests.conftest import RunningStack
from tests.runner_fixtures import free_port
from tests.sut.kamailio import kamailio

DEGRADED = Path(__file__).parent / "sut" / "kamailio-degraded.cfg"


def test_codes_from_failure_reasons() -> None:
    reasons = [
        {"INVITE: 503 Service Unavailable": 7, "UDP retransmission timeout": 2},
        {"INVITE: 486 Busy Here": 3, "INVITE: 503 Service Unavailable": 1, "BYE: 481 x": 1},
        {"REGISTER: 401 Unauthorized": 1},
    ]
    assert invite_codes(reasons) == Counter({503: 8, 486: 3})


def test_asr_ner_pdd_formulas() -> None:
    pdd = [histogram.from_samples([40, 60]), histogram.from_samples([50]), []]
    k = telecom_kpis(
        attempted=100, answered=80, codes={503: 12, 486: 5, 603: 3}, pdd_histograms=pdd
    )
    assert k["asr"] == 80.0
    assert k["ner"] == 88.0  # 486 and 603 are the callee's doing; 503 is the network's
    assert (k["code_200"], k["code_503"], k["code_486"]) == (80, 12, 5)
    assert k["pdd_p50_ms"] is not None and 40 <= k["pdd_p50_ms"] <= 60
    none = telecom_kpis(attempted=0, answered=0, codes={}, pdd_histograms=[])
    assert none["asr"] is None and none["ner"] is None and none["pdd_p50_ms"] is None


def test_code_thresholds() -> None:
    assert str(parse_threshold("code_503 <= 10")) == "code_503 <= 10"
    with pytest.raises(ValueError, match="code_NNN"):
        parse_threshold("code_999 == 0")
    results = evaluate([parse_threshold("code_486 == 0"), parse_threshold("asr >= 99")], {})
    assert [r.passed for r in results] == [True, False]  # a code never seen is 0; asr unknown


def test_kpis_of_a_session_through_a_degraded_kamailio(
    sqlite_stack: RunningStack, tmp_path: Path
) -> None:
    port = free_port()
    spec = {
        "name": "kpis",
        "target": {"host": "127.0.0.1", "port": port, "domain": "127.0.0.1", "registrar": True},
        "roles": {
            "callees": {"agents": 1, "accounts": [{"user": "bob", "password": "secret"}]},
            "callers": {"rate": 20, "max_calls": 100, "accounts": [{"user": "alice"}]},
        },
        "thresholds": ["code_503 <= 15", "code_486 == 0", "asr >= 85", "pdd_p95_ms < 500"],
    }
    with kamailio(port, tmp_path / "kamailio", config=DEGRADED):
        body = sqlite_stack.run(spec)
    m = body["summary"]["measured"]
    # Kamailio counts INVITEs (every 10th gets 503), so about one call in ten fails.
    assert 5 <= m["code_503"] <= 15, json.dumps([body["reasons"], body["roles"]["caller"]])
    assert m["code_200"] == m["successful_calls"] and m["code_200"] + m["code_503"] == 100
    assert m["asr"] == pytest.approx(m["code_200"]) and m["ner"] == pytest.approx(m["asr"])
    assert m["pdd_p50_ms"] is not None and m["pdd_p50_ms"] <= m["response_time_p50_ms"]
    assert body["verdict"] == "pass", body["reasons"]
    assert all(t["passed"] for t in body["summary"]["thresholds"])
