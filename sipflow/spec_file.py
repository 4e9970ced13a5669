"""Loading a session spec file (YAML or JSON) and formatting validation errors as `path: message`.

Used by the CLI (`sipflow validate`, `sipflow run`) and the tests; the same formatting is applied
to the API's 422 `detail` items, so a wrong field reads the same wherever it was caught.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sipflow.media_upload import inline_audio_files
from sipflow.spec import SessionSpec


class SpecFileError(Exception):
    """The spec file is unreadable, not YAML/JSON, or not a valid SessionSpec."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def format_loc(loc: Sequence[Any]) -> str:
    """`("body", "roles", "callers", "rate")` -> `roles.callers.rate`; list indices as `[0]`."""
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out


def format_error_items(items: Iterable[Mapping[str, Any]]) -> list[str]:
    """pydantic's `errors()` or the API's 422 `detail` items, one `path: message` line each.

    Model-level errors (empty loc) already name their field in the message (`roles.callees: ...`).
    """
    lines: list[str] = []
    for item in items:
        msg = str(item.get("msg", "invalid"))
        msg = msg.removeprefix("Value error, ")
        path = format_loc(item.get("loc") or ())
        lines.append(f"{path}: {msg}" if path else msg)
    return lines


def format_validation_error(exc: ValidationError) -> list[str]:
    return format_error_items(exc.errors())


def load_spec_data(path: Path) -> dict[str, Any]:
    """The raw mapping in a YAML or JSON file (JSON by suffix `.json`, else YAML)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecFileError([f"{path}: cannot read: {exc}"]) from exc
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SpecFileError([f"{path}: not valid {_kind(path)}: {exc}"]) from exc
    if not isinstance(data, dict):
        raise SpecFileError([f"{path}: the spec must be a mapping, not {type(data).__name__}"])
    errors = inline_audio_files(data, path.parent)  # media.audio: {file: clip.wav}
    if errors:
        raise SpecFileError(errors)
    return data


def validate_spec_data(data: Mapping[str, Any]) -> SessionSpec:
    try:
        return SessionSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecFileError(format_validation_error(exc)) from exc


def load_spec(path: Path) -> SessionSpec:
    """Read and validate a spec file; SpecFileError lists every problem as `path: message`."""
    return validate_spec_data(load_spec_data(path))


def _kind(path: Path) -> str:
    return "JSON" if path.suffix.lower() == ".json" else "YAML"
