"""The CI gate (deploy/ci/): the GitHub Action and the GitLab template validated against their
published schemas (check-jsonschema's bundled copies, offline), and the script they run,
deploy/ci/sipflow-gate.sh, against a running sipflow (the embedded stack, local runners): exit
0 and a clean JUnit report on pass, 1 on a fail verdict, 2 on an invalid spec (nothing submitted).

Neither GitHub nor GitLab runs here: what their runners would do beyond the schema (setup-python,
upload-artifact, GitLab's junit report) is not exercised.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import RunningStack

ROOT = Path(__file__).resolve().parent.parent
CI = ROOT / "deploy" / "ci"
ACTION = CI / "github-action" / "action.yml"
GITLAB = CI / "gitlab-ci.yml"
GATE = CI / "sipflow-gate.sh"


def check_jsonschema(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("check-jsonschema")
    return subprocess.run(
        [str(exe), "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("schema", "path", "break_it"),
    [
        ("vendor.github-actions", ACTION, lambda d: d["runs"].update(using="docker-compose")),
        ("vendor.gitlab-ci", GITLAB, lambda d: d["sipflow-gate"]["artifacts"].update(when="later")),
    ],
)
def test_ci_files_match_their_published_schemas(
    tmp_path: Path, schema: str, path: Path, break_it: Any
) -> None:
    ok = check_jsonschema(schema, path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # The check can fail: a broken copy is refused.
    doc = yaml.safe_load(path.read_text())
    break_it(doc)
    broken = tmp_path / path.name
    broken.write_text(yaml.safe_dump(doc))
    assert check_jsonschema(schema, broken).returncode != 0


@pytest.mark.parametrize(
    ("schema", "name"),
    [("vendor.github-workflows", "github-workflow.yml"), ("vendor.gitlab-ci", "gitlab-ci.yml")],
)
def test_the_readme_examples_of_using_the_gate_are_valid(schema: str, name: str) -> None:
    res = check_jsonschema(schema, ROOT / "examples" / "ci" / name)
    assert res.returncode == 0, res.stdout + res.stderr


def test_both_ci_files_run_the_gate_command() -> None:
    action = yaml.safe_load(ACTION.read_text())
    steps = action["runs"]["steps"]
    assert any("sipflow-gate.sh" in s.get("run", "") for s in steps)
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["if"] == "always()"
    gitlab = yaml.safe_load(GITLAB.read_text())["sipflow-gate"]
    (command,) = gitlab["script"]
    assert (
        command == 'sipflow run --api "$SIPFLOW_API_URL" --junit "$SIPFLOW_JUNIT" "$SIPFLOW_SPEC"'
    )
    assert 'run --api "$api" --junit "$junit" "$spec"' in GATE.read_text()
    assert gitlab["artifacts"]["reports"]["junit"] == "$SIPFLOW_JUNIT"
    assert gitlab["artifacts"]["when"] == "always"


def gate_spec(thresholds: list[str]) -> dict[str, Any]:
    return {
        "name": "ci-gate",
        "roles": {
            "callees": {"agents": 1, "scenario": "answer"},
            "callers": {"agents": 1, "scenario": "call", "rate": 20, "max_calls": 20},
        },
        "thresholds": thresholds,
    }


def run_gate(stack: RunningStack, tmp_path: Path, spec: Any, name: str) -> tuple[int, str, Path]:
    spec_file = tmp_path / f"{name}.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    junit = tmp_path / f"{name}-junit.xml"
    # This checkout's CLI (not whatever `sipflow` is installed), as the action installs it.
    sipflow = f"{shlex.quote(sys.executable)} -m entrypoints.cli"
    env = {
        **os.environ,
        "SIPFLOW_API_KEY": stack.stack.api_key,
        "SIPFLOW": sipflow,
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.run(
        ["bash", str(GATE), stack.stack.api_url, str(spec_file), str(junit)],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        cwd=tmp_path,
    )
    return proc.returncode, proc.stdout + proc.stderr, junit


def suite(junit: Path) -> dict[str, str]:
    root = ET.parse(junit).getroot()
    (ts,) = root.iter("testsuite")
    return dict(ts.attrib)


def test_the_gate_passes_fails_and_refuses_by_exit_code(
    sqlite_stack: RunningStack, tmp_path: Path
) -> None:
    code, out, junit = run_gate(sqlite_stack, tmp_path, gate_spec(["success_rate >= 100"]), "pass")
    assert code == 0, out
    assert "sipflow-gate: pass" in out
    assert suite(junit)["failures"] == "0" and suite(junit)["errors"] == "0"

    code, out, junit = run_gate(sqlite_stack, tmp_path, gate_spec(["total_calls >= 1000"]), "fail")
    assert code == 1, out
    assert "verdict is fail" in out
    assert int(suite(junit)["failures"]) >= 1
    messages = [f.get("message", "") for f in ET.parse(junit).getroot().iter("failure")]
    assert any("total_calls >= 1000" in m for m in messages), messages

    before = sqlite_stack.http.get("/v1/sessions").json()
    bad = gate_spec(["success_rate >= 100"])
    bad["roles"]["callers"]["rate"] = 0
    code, out, junit = run_gate(sqlite_stack, tmp_path, bad, "invalid")
    assert code == 2, out
    assert "roles.callers.rate" in out
    text = junit.read_text()
    assert suite(junit)["errors"] == "1" and 'type="invalid-spec"' in text
    assert "roles.callers.rate" in text
    assert sqlite_stack.http.get("/v1/sessions").json() == before  # nothing submitted


def test_the_pipelines_images_share_one_version_tag() -> None:
    """deploy/build_images.sh names (and pushes) both images with pyproject's version."""
    version = next(
        line.split('"')[1]
        for line in (ROOT / "pyproject.toml").read_text().splitlines()
        if line.startswith("version = ")
    )
    script = ROOT / "deploy" / "build_images.sh"
    out = subprocess.run(
        ["bash", str(script), "--print", "--push", "registry.example/team/"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout.split()  # fmt: skip
    assert out == [
        f"sipflow:{version}",
        f"sipflow-runner:{version}",
        f"registry.example/team/sipflow:{version}",
        f"registry.example/team/sipflow-runner:{version}",
    ]
    bad = subprocess.run(["bash", str(script), "--print", "--version", "a b"], capture_output=True)
    assert bad.returncode == 2
