"""Replays session histories saved by every release (tests/data/histories/<release>/) against
today's workflow code, through the worker's data converter (the encrypting payload codec): a
change that breaks determinism for sessions already running fails here. The saved histories hold
clear payloads (recorded before the codec), which the codec passes unchanged; encrypted copies of
them replay with the keys that encrypted them.
Record a release's histories with `python -m tests.save_history record <release>`."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from sipflow.crypto import new_key_entry, parse_keys
from sipflow.payload_codec import ENCODING, EncryptionCodec, data_converter
from sipflow.settings import Settings
from tests.history_payloads import map_payloads, payloads
from workflows.capacity_search import CapacitySearchWorkflow
from workflows.session import SessionWorkflow

ROOT = Path(__file__).parent / "data" / "histories"
HISTORIES = sorted(ROOT.glob("*/*.json"))
RELEASES = sorted({p.parent.name for p in HISTORIES})


def _history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def test_every_release_has_its_histories() -> None:
    # 0.2.1 and 0.2.2: main before the admission and before the load profile changes.
    assert {"0.1.0", "0.2.0", "0.2.1", "0.2.2", "0.3.0", "0.4.0", "0.5.0"} <= set(RELEASES), (
        RELEASES
    )
    for release in RELEASES:
        names = {p.stem for p in HISTORIES if p.parent.name == release}
        expected = {"session_pass", "session_cancelled", "session_fail_threshold"}
        assert expected <= names, (release, names)


@pytest.mark.parametrize("path", HISTORIES, ids=lambda p: f"{p.parent.name}/{p.stem}")
async def test_replay(path: Path, tmp_path: Path) -> None:
    replayer = Replayer(
        workflows=[SessionWorkflow, CapacitySearchWorkflow],
        data_converter=data_converter(Settings(data_dir=tmp_path)),
    )
    await replayer.replay_workflow(_history(path))


async def test_encrypted_history_replays_with_its_keys_only() -> None:
    history = _history(ROOT / "0.2.0" / "session_pass.json")
    keys = parse_keys(new_key_entry())
    codec = EncryptionCodec(keys)
    for event in history.events:
        map_payloads(event, codec.encode_one)
    encrypted = list(payloads(history.events[0]))
    assert encrypted and all(p.metadata["encoding"] == ENCODING for p in encrypted)
    assert b"session_id" not in b"".join(p.data for p in encrypted)  # no clear JSON left

    converter = pydantic_data_converter.__class__(
        payload_converter_class=pydantic_data_converter.payload_converter_class,
        payload_codec=codec,
    )
    await Replayer(workflows=[SessionWorkflow], data_converter=converter).replay_workflow(history)
    # Without the codec the workflow cannot read its input: the replay fails.
    result = await Replayer(
        workflows=[SessionWorkflow], data_converter=pydantic_data_converter
    ).replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is not None


def test_codec_passes_clear_payloads_unchanged() -> None:
    codec = EncryptionCodec(parse_keys(new_key_entry()))
    clear = Payload(metadata={"encoding": b"json/plain"}, data=b'{"a": 1}')
    assert codec.decode_one(clear) == clear
    assert codec.decode_one(codec.encode_one(clear)) == clear
