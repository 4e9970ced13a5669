"""/v1/retention on a real database and real folders: what a pass would purge (dry run), a pass
by an admin (audited), 403 for others, 422 with the field for bad input."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from api.main import create_app
from sipflow.accounts import Role
from tests.api_fixtures import bearer, dead_address, mint_key
from tests.test_retention import _session, _settings


def test_retention_route_shows_dry_runs_and_purges(tmp_path: Path, database_url: str) -> None:
    s = _settings(tmp_path, database_url, temporal_address=dead_address())
    _session(
        s, "old000000001", "completed", age_days=200, kb=8
    )  # older than runs_days and rows_days
    _session(s, "new000000001", "completed", age_days=1, kb=8)
    admin = TestClient(create_app(s), headers=bearer(mint_key(database_url)))
    with admin:
        shown = admin.get("/v1/retention")
        assert shown.status_code == 200, shown.text
        body = shown.json()
        assert body["usage"]["runs_sessions"] == 2 and body["usage"]["fs_free_bytes"] > 0
        assert body["policy"]["runs_days"] == 30
        assert body["would_purge"]["folders_removed"] == 1 and body["last_pass"] is None
        assert "old000000001" not in shown.text  # no session ids (they are every tenant's)

        dry = admin.post("/v1/retention/run", json={"dry_run": True}).json()
        assert dry["dry_run"] and dry["folders_removed"] == 1
        assert (s.runs_dir / "old000000001").is_dir()

        done = admin.post("/v1/retention/run", json={})
        assert done.status_code == 200, done.text
        assert done.json()["folders_removed"] == 1 and done.json()["rows_deleted"] > 0
        assert not (s.runs_dir / "old000000001").exists()
        assert (s.runs_dir / "new000000001").is_dir()
        assert admin.get("/v1/retention").json()["last_pass"]["folders_removed"] == 1
        events = admin.get("/v1/audit", params={"action": "retention.run"}).json()["items"]
        assert len(events) == 1

        bad = admin.post("/v1/retention/run", json={"dry_run": "maybe"})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "dry_run"]
        extra = admin.post("/v1/retention/run", json={"dryrun": True})
        assert extra.status_code == 422 and extra.json()["detail"][0]["loc"] == ["body", "dryrun"]

        viewer = {"Authorization": f"Bearer {mint_key(database_url, 'team-a', Role.viewer)}"}
        assert admin.get("/v1/retention", headers=viewer).status_code == 403
        assert admin.post("/v1/retention/run", json={}, headers=viewer).status_code == 403
