"""Replays session histories saved by every release (tests/data/histories/<release>/) against
today's workflow code: a change that breaks determinism for sessions already running fails here.
Record a release's histories with `python -m tests.save_history record <release>`."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.session import SessionWorkflow

ROOT = Path(__file__).parent / "data" / "histories"
HISTORIES = sorted(ROOT.glob("*/*.json"))
RELEASES = sorted({p.parent.name for p in HISTORIES})


def test_every_release_has_its_histories() -> None:
    assert {"0.1.0", "0.2.0"} <= set(RELEASES), RELEASES
    for release in RELEASES:
        names = {p.stem for p in HISTORIES if p.parent.name == release}
        expected = {"session_pass", "session_cancelled", "session_fail_threshold"}
        assert expected <= names, (release, names)


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: f"{p.parent.name}/{p.stem}")
async def test_replay(path: Path) -> None:
    history = WorkflowHistory.from_json(f"session-{path.stem}", path.read_text())
    replayer = Replayer(workflows=[SessionWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)
