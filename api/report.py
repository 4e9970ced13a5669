"""A stored session as one report (JSON), its time series as CSV, its verdict as JUnit XML."""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlmodel import Session

from api import session_views as views
from api.schemas import MetricPoint
from sipflow import media_store, store
from sipflow.models import SessionRow
from sipflow.workflow_types import workflow_id

# Characters XML 1.0 cannot carry at all, not even escaped (a stored name or reason may hold
# one: rows written before specs refused control characters, a SUT's reason phrase).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

# The CSV's columns: one merged point per role and second, or one interval of one runner.
MERGED_COLUMNS = ("role", "time", "t_s", "runners", *views.SUMMED, *views.PERCENTILES)
RUNNER_COLUMNS = (
    "runner_id", "role", "seq", "time", "t_s",
    *(f for f in MetricPoint.model_fields if f not in ("seq", "time")),
)  # fmt: skip


def build_report(db: Session, row: SessionRow, temporal_ui: str) -> dict[str, Any]:
    """Everything the report page shows, from the database (no live workflow query)."""
    sid = row.id
    ivs = store.intervals(db, sid)
    runner_rows = store.runners(db, sid)
    media = media_store.measured(db, sid)
    judge = partial(media_store.judge_steps, db, sid, spec=row.spec)
    shown = views.outcome(row, ivs, runner_rows, media, judge)
    return {
        "report_version": 1,
        "exported_at": datetime.now(UTC).isoformat(),
        "session": {
            **views.brief(row).model_dump(mode="json"),
            "workflow_id": workflow_id(sid),
            "duration_s": views.duration_s(row),
            "spec": row.spec,
        },
        "measured": shown.measured,
        "thresholds": [t.model_dump(mode="json") for t in shown.thresholds],
        "thresholds_final": shown.thresholds_final,
        "reasons": shown.reasons,
        "roles": {k: v.model_dump(mode="json") for k, v in shown.metrics.roles.items()},
        "flow": views.flow_entry(row.spec),
        "steps": [s.model_dump(mode="json") for s in shown.metrics.steps],
        "runners": [
            {**r.model_dump(mode="json"), "failure_reasons": r.failure_reasons or {}}
            for r in views.runners_out(row.spec, runner_rows)
        ],
        "series": {
            "merged": {
                role: [p.model_dump(mode="json") for p in points]
                for role, points in views.merged_series(ivs).items()
            },
            "runners": [s.model_dump(mode="json") for s in views.runner_series(ivs)],
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
    text = ET.tostring(suites, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + _NOT_XML.sub("\ufffd", text)
