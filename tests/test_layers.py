"""The house's layers, read from the import statements: arrows only run downwards.

entrypoints  ->  api, workflows, activities, backends, sipflow
workflows    ->  activities (types and method references), sipflow
activities   ->  backends, sipflow
backends     ->  runners.image (paths in the runner image), sipflow
api          ->  backends.container_plan / runner_tokens (files for runner containers),
                 backends.host_logins (a revoked runner host's broker logins), sipflow
runners      ->  only the parts of sipflow the runner image holds
sipflow      ->  nothing of the above
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("sipflow", "runners", "backends", "activities", "workflows", "api", "entrypoints")
# What each package may import from the others (its own modules always).
ALLOWED: dict[str, set[str]] = {
    "sipflow": set(),
    "runners": {
        "sipflow.addresses",
        "sipflow.messages",
        "sipflow.runner_config",
        "sipflow.histogram",
        "sipflow.g711",
        "sipflow.media_upload",
    },
    "backends": {"sipflow", "runners.image"},
    "activities": {"sipflow", "backends"},
    "workflows": {"sipflow", "activities"},
    "api": {
        "sipflow",
        "runners.scenario_files",
        "backends.container_plan",
        "backends.runner_tokens",
        "backends.host_logins",
    },
    "entrypoints": {"sipflow", "backends", "activities", "workflows", "api"},
}
# The runner image copies exactly these files of sipflow (deploy/runner/Containerfile).
RUNNER_IMAGE_SIPFLOW = {
    "sipflow.addresses",
    "sipflow.messages",
    "sipflow.runner_config",
    "sipflow.histogram",
    "sipflow.g711",
    "sipflow.media_upload",
}


def imports_of(path: Path) -> set[str]:
    """Dotted names a module imports: `import a.b` gives a.b, `from a import b` gives a.b."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in PACKAGES}


def allowed(package: str, name: str) -> bool:
    if name.split(".")[0] == package:
        return True
    return any(name == rule or name.startswith(rule + ".") for rule in ALLOWED[package])


def modules(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts)


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_run_downwards(package: str) -> None:
    wrong = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in modules(package)
        for name in imports_of(path)
        if not allowed(package, name)
    }
    assert not wrong, sorted(wrong)


def test_runner_image_gets_what_the_agent_imports() -> None:
    """The image copies runners/ whole and these sipflow modules; the agent needs no more."""
    needed = {
        ".".join(name.split(".")[:2])
        for path in modules("runners")
        for name in imports_of(path)
        if name.startswith("sipflow.")
    }
    assert needed <= RUNNER_IMAGE_SIPFLOW, needed - RUNNER_IMAGE_SIPFLOW
    containerfile = (ROOT / "deploy" / "runner" / "Containerfile").read_text()
    for module in RUNNER_IMAGE_SIPFLOW:
        assert module.replace(".", "/") + ".py" in containerfile, module
    assert "COPY runners/ " in containerfile and "rm -f /opt/sipflow/app/runners" not in (
        containerfile
    )
