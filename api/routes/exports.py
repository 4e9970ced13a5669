"""/v1/sessions/{id}/report.json, report.csv, junit.xml: a stored session as files to keep."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse, Response

from api import report
from api import session_views as views
from api.auth import AUTH_RESPONSES, PrincipalDep
from api.deps import DbDep, SettingsDep, session_or_404
from api.responses import media
from api.routes.sessions import NOT_FOUND
from sipflow.models import FINAL_STATUSES
from sipflow.settings import Settings

router = APIRouter(prefix="/sessions", tags=["exports"], responses=AUTH_RESPONSES)


def _report(
    request: Request, db: DbDep, settings: Settings, sid: str, tenant: str
) -> dict[str, Any]:
    row = session_or_404(db, sid, tenant)
    return report.build_report(db, row, views.links(request, settings, sid).temporal_ui)


def _attachment(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{filename}"'}


@router.get(
    "/{session_id}/report.json",
    summary="The session's report: metadata, metrics, thresholds, runners, time series",
    responses=NOT_FOUND,
)
def report_json(
    session_id: str, request: Request, db: DbDep, settings: SettingsDep, principal: PrincipalDep
) -> JSONResponse:
    body = _report(request, db, settings, session_id, principal.tenant)
    return JSONResponse(body, headers=_attachment(f"sipflow-{session_id}.json"))


@router.get(
    "/{session_id}/report.csv",
    summary="The session's time series as CSV (per role and second, or per runner interval)",
    response_class=Response,
    responses={**media("text/csv"), **NOT_FOUND},
)
def report_csv(
    session_id: str,
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    per: Annotated[str, Query(pattern="^(role|runner)$")] = "role",
) -> Response:
    body = report.report_csv(_report(request, db, settings, session_id, principal.tenant), per)
    name = f"sipflow-{session_id}{'-runners' if per == 'runner' else ''}.csv"
    return Response(body, media_type="text/csv; charset=utf-8", headers=_attachment(name))


@router.get(
    "/{session_id}/junit.xml",
    summary="The verdict as JUnit XML (one test case per threshold, one for the verdict)",
    response_class=Response,
    responses={
        **media("application/xml"),
        **NOT_FOUND,
        409: {"description": "the session has not finished yet"},
    },
)
def junit(
    session_id: str, request: Request, db: DbDep, settings: SettingsDep, principal: PrincipalDep
) -> Response:
    body = _report(request, db, settings, session_id, principal.tenant)
    if body["session"]["status"] not in FINAL_STATUSES:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"session {session_id} is {body['session']['status']}"
        )
    return Response(
        report.junit_xml(body),
        media_type="application/xml",
        headers=_attachment(f"sipflow-{session_id}.xml"),
    )
