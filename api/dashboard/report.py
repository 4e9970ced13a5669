"""A stored session as one report (JSON), its time series as CSV, its verdict as JUnit XML."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session

from api.routes.sessions import _brief, _finite, _merged, _per_runner, _thresholds
from api.schemas import MetricPoint
from sipflow import store
from sipflow.models import SessionRow
from sipflow.summary import failure_reasons, summarize
from sipflow.workflow_types import workflow_id

MERGED_COLUMNS = (
    "role", "time", "t_s", "runners", "call_rate", "current_calls", "calls_created",
    "successful_calls", "failed_calls", "retransmissions",
    "response_time_p50_ms", "response_time_p95_ms", "response_time_p99_ms",
)  # fmt: skip
RUNNER_COLUMNS = (
    "runner_id", "role", "seq", "time", "t_s",
    *(f for f in MetricPoint.model_fields if f not in ("seq", "time")),
)  # fmt: skip


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt is not None else None


def duration_s(row: SessionRow, now: datetime | None = None) -> float | None:
    brief = _brief(row)
    if brief.started_at is None:
        return None
    end = brief.finished_at or (now or datetime.now(UTC))
    return round((end - brief.started_at).total_seconds(), 3)


def build_report(db: Session, row: SessionRow, temporal_ui: str) -> dict[str, Any]:
    """Everything the report page shows, from the database (no live workflow query)."""
    sid = row.id
    ivs = store.intervals(db, sid)
    runner_rows = store.runners(db, sid)
    metrics = summarize(ivs, runner_rows)
    measured = {k: _finite(v) for k, v in metrics.measured.items()}
    thresholds, final = _thresholds(row, metrics.measured)
    reasons = row.reasons if row.reasons is not None else failure_reasons(metrics, runner_rows)
    return {
        "report_version": 1,
        "exported_at": datetime.now(UTC).isoformat(),
        "session": {
            **_brief(row).model_dump(mode="json"),
            "workflow_id": workflow_id(sid),
            "duration_s": duration_s(row),
            "spec": row.spec,
        },
        "measured": measured,
        "thresholds": [t.model_dump(mode="json") for t in thresholds],
        "thresholds_final": final,
        "reasons": reasons,
        "roles": {k: v.model_dump(mode="json") for k, v in metrics.roles.items()},
        "runners": [
            {
                "runner_id": r.runner_id,
                "role": r.role,
                "address": r.address,
                "state": r.state,
                "detail": r.detail,
                "exit_code": r.exit_code,
                "ok": r.ok,
                "last_seq": r.last_seq,
                "failure_reasons": r.failure_reasons or {},
            }
            for r in runner_rows
        ],
        "series": {
            "merged": {
                role: [p.model_dump(mode="json") for p in points]
                for role, points in _merged(ivs).items()
            },
            "runners": [s.model_dump(mode="json") for s in _per_runner(ivs)],
        },
        "links": {"temporal_ui": temporal_ui},
    }


def _start(report: dict[str, Any]) -> int | float | None:
    times = [p["time"] for pts in report["series"]["merged"].values() for p in pts]
    return min(times) if times else None


def _cell(v: Any) -> Any:
    return "" if v is None else v


def report_csv(report: dict[str, Any], per: str = "role") -> str:
    """per=role: one row per role and second (merged); per=runner: one row per stats interval.
    `t_s` is seconds since the session's first interval."""
    t0 = _start(report) or 0
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    if per == "runner":
        w.writerow(RUNNER_COLUMNS)
        for series in report["series"]["runners"]:
            for p in series["points"]:
                row = {**p, "runner_id": series["runner_id"], "role": series["role"]}
                row["t_s"] = round(p["time"] - t0, 3)
                causes = p.get("failed_by_cause") or {}
                row["failed_by_cause"] = ";".join(f"{k}={v}" for k, v in sorted(causes.items()))
                w.writerow([_cell(row.get(c)) for c in RUNNER_COLUMNS])
        return out.getvalue()
    w.writerow(MERGED_COLUMNS)
    for role, points in sorted(report["series"]["merged"].items()):
        for p in points:
            row = {**p, "role": role, "t_s": p["time"] - t0}
            w.writerow([_cell(row.get(c)) for c in MERGED_COLUMNS])
    return out.getvalue()


def _fmt(v: float | None) -> str:
    return "none" if v is None else f"{v:g}"


def junit_xml(report: dict[str, Any]) -> str:
    """One test case per threshold (failure: not met, with the measured value) and one for the
    verdict (failure on `fail` with the reasons, error on `error`)."""
    s = report["session"]
    suite_name = f"sipflow.{s['tenant']}.{s['name']}"
    cases: list[ET.Element] = []
    failures = errors = 0
    for t in report["thresholds"]:
        case = ET.Element(
            "testcase", {"classname": suite_name, "name": f"threshold: {t['threshold']}"}
        )
        out = ET.SubElement(case, "system-out")
        out.text = f"measured {_fmt(t['measured'])}"
        if not t["passed"]:
            failures += 1
            ET.SubElement(
                case,
                "failure",
                {
                    "type": "threshold",
                    "message": f"{t['threshold']} not met: measured {_fmt(t['measured'])}",
                },
            ).text = f"threshold {t['threshold']}\nmeasured {_fmt(t['measured'])}"
        cases.append(case)
    verdict = s.get("verdict")
    case = ET.Element("testcase", {"classname": suite_name, "name": "verdict"})
    reasons = report.get("reasons") or []
    detail = "\n".join(reasons)
    if verdict == "fail":
        failures += 1
        msg = f"session {s['id']} failed ({s['status']})" + (f": {reasons[0]}" if reasons else "")
        ET.SubElement(case, "failure", {"type": "verdict", "message": msg}).text = detail
    elif verdict != "pass":
        errors += 1
        msg = f"session {s['id']} ended with {verdict or 'no verdict'} ({s['status']})"
        ET.SubElement(case, "error", {"type": "verdict", "message": msg}).text = detail
    cases.append(case)

    duration = s.get("duration_s") or 0.0
    attrs = {
        "name": suite_name,
        "tests": str(len(cases)),
        "failures": str(failures),
        "errors": str(errors),
        "skipped": "0",
        "time": f"{duration:.3f}",
    }
    suites = ET.Element("testsuites", {"name": "sipflow", **attrs})
    suite = ET.SubElement(
        suites,
        "testsuite",
        {**attrs, "id": s["id"], "timestamp": s.get("started_at") or s["created_at"]},
    )
    props = ET.SubElement(suite, "properties")
    for key in ("id", "status", "verdict", "target", "workflow_id"):
        ET.SubElement(props, "property", {"name": f"sipflow.{key}", "value": str(s.get(key))})
    ET.SubElement(
        props, "property", {"name": "sipflow.temporal_ui", "value": report["links"]["temporal_ui"]}
    )
    suite.extend(cases)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode")
