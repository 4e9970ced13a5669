"""/v1/retention: the machine's disk use, the retention policy, what a pass would purge now and
the last pass (GET); one pass now, or a dry run (POST /run). Admins only: the runs folders are
the machine's, and a pass purges by the settings' age and size rules, never by choice."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict

from api.auth import AUTH_RESPONSES, AdminDep
from api.deps import DbDep, SettingsDep
from sipflow import audit, retention

router = APIRouter(prefix="/retention", tags=["retention"], responses=AUTH_RESPONSES)


class RetentionPolicy(BaseModel):
    runs_days: float
    runs_max_bytes: int
    rows_days: float
    interval_s: float
    disk_warn_free_fraction: float


class DiskUsageOut(BaseModel):
    runs_bytes: int
    runs_sessions: int
    fs_total_bytes: int
    fs_free_bytes: int
    free_fraction: float
    low: bool  # below disk_warn_free_fraction


class RetentionPass(BaseModel):
    at: float  # epoch seconds
    dry_run: bool
    folders_removed: int
    bytes_freed: int
    sessions_rows_purged: int
    rows_deleted: int
    usage: DiskUsageOut


class RetentionOut(BaseModel):
    policy: RetentionPolicy
    usage: DiskUsageOut
    would_purge: RetentionPass  # a dry run now
    last_pass: RetentionPass | None  # the worker's (or a manual) last real pass


class RunRetention(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dry_run: bool = False


def _pass(result: dict[str, Any]) -> RetentionPass:
    # Session ids are left out: they are every tenant's.
    return RetentionPass.model_validate({k: v for k, v in result.items() if k != "purged"})


@router.get("", response_model=RetentionOut, summary="Disk use, policy, last retention pass")
async def show(settings: SettingsDep, principal: AdminDep) -> RetentionOut:
    s = settings
    result = await run_in_threadpool(retention.run, s, True)
    last = retention.read_state(s.data_dir)
    return RetentionOut(
        policy=RetentionPolicy(
            runs_days=s.retention_runs_days,
            runs_max_bytes=s.retention_runs_max_bytes,
            rows_days=s.retention_rows_days,
            interval_s=s.retention_interval_s,
            disk_warn_free_fraction=s.disk_warn_free_fraction,
        ),
        usage=DiskUsageOut.model_validate(result.usage),
        would_purge=_pass(asdict(result)),
        last_pass=_pass(last) if last else None,
    )


@router.post("/run", response_model=RetentionPass, summary="One retention pass now (admins)")
def run(body: RunRetention, db: DbDep, settings: SettingsDep, principal: AdminDep) -> RetentionPass:
    result = retention.run(settings, body.dry_run)
    out = _pass(asdict(result))
    if not body.dry_run:
        detail = {"folders_removed": out.folders_removed, "rows_deleted": out.rows_deleted}
        audit.record(db, principal.tenant, principal.key_id, "retention.run", None, detail)
    return out
