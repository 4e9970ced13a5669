"""Replays saved session histories against today's workflow code: a change that breaks
determinism for sessions already running fails here."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.session import SessionWorkflow

HISTORIES = sorted((Path(__file__).parent / "data" / "histories").glob("*.json"))


def test_histories_exist() -> None:
    names = {p.stem for p in HISTORIES}
    assert {"session_pass", "session_cancelled"} <= names, names


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: p.stem)
async def test_replay(path: Path) -> None:
    history = WorkflowHistory.from_json(f"session-{path.stem}", path.read_text())
    replayer = Replayer(workflows=[SessionWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)
