"""The CLI with typer's CliRunner: validation exit codes, and `run` against a served API."""

from __future__ import annotations

import copy
import json
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from entrypoints.cli import app
from sipflow.spec_file import SpecFileError, format_loc, load_spec
from tests.api_fixtures import (
    VALID_SPEC,
    ApiServer,
    api_server_fixture,  # noqa: F401
    dead_address,
    finish,
    seed_session,
    temporal_stack_fixture,  # noqa: F401
    wait_for_row,
)

EXAMPLES = Path(__file__).parent.parent / "examples"
runner = CliRunner()


def write(tmp_path: Path, spec: Any, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(spec) if name.endswith(".json") else yaml.safe_dump(spec))
    return path


def bad_rate(tmp_path: Path) -> Path:
    spec = copy.deepcopy(VALID_SPEC)
    spec["roles"]["callers"]["rate"] = 0
    return write(tmp_path, spec)


def test_validate_accepts_the_examples() -> None:
    for path in sorted(EXAMPLES.glob("*.yaml")):
        result = runner.invoke(app, ["validate", str(path)])
        assert result.exit_code == 0, (path, result.output)
        assert "valid" in result.stdout


def test_validate_names_the_wrong_field(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(bad_rate(tmp_path))])
    assert result.exit_code == 2
    assert "roles.callers.rate: Input should be greater than 0" in result.stderr
    assert result.stdout == ""


def test_validate_lists_every_error_and_model_errors(tmp_path: Path) -> None:
    spec = copy.deepcopy(VALID_SPEC)
    spec["roles"]["callers"]["agents"] = 0
    spec["roles"]["callers"]["colour"] = "red"
    spec["thresholds"] = ["success_rate >= 90", "mos > 4"]
    result = runner.invoke(app, ["validate", str(write(tmp_path, spec, "s.json"))])
    assert result.exit_code == 2
    assert "roles.callers.agents: Input should be greater than or equal to 1" in result.stderr
    assert "roles.callers.colour: Extra inputs are not permitted" in result.stderr
    assert "thresholds[1]: unknown metric 'mos'" in result.stderr

    spec = copy.deepcopy(VALID_SPEC)
    del spec["roles"]["callees"]
    result = runner.invoke(app, ["validate", str(write(tmp_path, spec))])
    assert result.exit_code == 2
    assert "roles.callees: a 'call' session needs callees or a target" in result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("roles: [unclosed", "not valid YAML"),
        ("- a\n- b\n", "must be a mapping"),
        ("", "must be a mapping"),
    ],
)
def test_validate_unreadable_file_is_2(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "spec.yaml"
    if content is not None:
        path.write_text(content)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert message in result.stderr


def test_spec_file_module(tmp_path: Path) -> None:
    assert format_loc(("body", "roles", "callers", "rate")) == "roles.callers.rate"
    assert format_loc(("thresholds", 2)) == "thresholds[2]"
    with pytest.raises(SpecFileError) as exc:
        load_spec(bad_rate(tmp_path))
    assert exc.value.errors == ["roles.callers.rate: Input should be greater than 0"]
    assert load_spec(write(tmp_path, VALID_SPEC, "ok.json")).tenant == "team-a"


def test_run_invalid_spec_is_2_and_submits_nothing(tmp_path: Path) -> None:
    # An API that is down: submitting would exit 3, so exit 2 shows nothing was sent.
    api = f"http://{dead_address()}"
    result = runner.invoke(app, ["run", str(bad_rate(tmp_path)), "--api", api])
    assert result.exit_code == 2
    assert "roles.callers.rate" in result.stderr
    result = runner.invoke(app, ["run", str(tmp_path / "missing.yaml"), "--api", api])
    assert result.exit_code == 2


def test_run_with_the_api_down_is_3(tmp_path: Path) -> None:
    api = f"http://{dead_address()}"
    result = runner.invoke(app, ["run", str(write(tmp_path, VALID_SPEC)), "--api", api])
    assert result.exit_code == 3
    assert "cannot reach the sipflow API" in result.stderr


def _finish_in_background(server: ApiServer, verdict: str) -> threading.Thread:
    """Play the worker's part on the database: intervals and runners, then the verdict."""
    url = server.settings.resolved_database_url

    def work() -> None:
        sid = wait_for_row(url)
        seed_session(url, sid)
        finish(url, sid, verdict, measured={"success_rate": 90.0})

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize(("verdict", "code"), [("pass", 0), ("fail", 1)])
def test_run_follows_the_session_to_its_verdict(
    api_server: ApiServer, tmp_path: Path, verdict: str, code: int
) -> None:
    thread = _finish_in_background(api_server, verdict)
    spec = write(tmp_path, VALID_SPEC)
    env = {"SIPFLOW_API_KEY": api_server.api_key}
    result = runner.invoke(app, ["run", str(spec), "--api", api_server.url], env=env)
    thread.join(5)
    assert result.exit_code == code, result.output
    out = result.stdout
    assert f"verdict {verdict.upper()}" in out
    assert "success_rate >= 90" in out and "response_time_p95_ms <= 100" in out
    assert "caller" in out and "callee" in out
    assert "/namespaces/default/workflows/session-" in out
    if verdict == "fail":
        assert "response_time_p95_ms <= 100 not met" in out
        assert "unexpected_message" in out


def test_run_json_and_sessions_commands(api_server: ApiServer, tmp_path: Path) -> None:
    thread = _finish_in_background(api_server, "pass")
    spec = write(tmp_path, VALID_SPEC)
    env = {"SIPFLOW_API_KEY": api_server.api_key}
    result = runner.invoke(app, ["run", str(spec), "--api", api_server.url, "--json"], env=env)
    thread.join(5)
    assert result.exit_code == 0, result.output
    detail = json.loads(result.stdout)
    assert (detail["status"], detail["verdict"]) == ("completed", "pass")
    sid = detail["id"]

    listed = runner.invoke(app, ["sessions", "list", "--api", api_server.url, "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    assert [s["id"] for s in json.loads(listed.stdout)["items"]] == [sid]
    table = runner.invoke(
        app, ["sessions", "list", "--status", "completed", "--api", api_server.url], env=env
    )
    assert table.exit_code == 0 and sid in table.stdout
    show = runner.invoke(app, ["sessions", "show", sid, "--api", api_server.url], env=env)
    assert show.exit_code == 0, show.output
    assert "caller-1" in show.stdout and "verdict PASS" in show.stdout
    missing = runner.invoke(app, ["sessions", "show", "nope", "--api", api_server.url], env=env)
    assert missing.exit_code == 3 and "no session" in missing.stderr
