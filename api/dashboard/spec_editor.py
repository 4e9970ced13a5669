"""The New-session editor's checks: YAML text -> SessionSpec (the API's model), with each error
placed at the line of its field in the text."""

from __future__ import annotations

import re
from typing import Any

import yaml
from pydantic import ValidationError

from api.schemas import EXAMPLE_SPEC
from sipflow.spec import SessionSpec
from sipflow.spec_file import format_loc

_PATH_IN_MSG = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])*): ")


def example_yaml() -> str:
    return "# A session spec (YAML). Start it to watch it live.\n" + yaml.safe_dump(
        EXAMPLE_SPEC, sort_keys=False
    )


def field_lines(text: str) -> dict[str, int]:
    """`roles.callers.rate` -> the 1-based line of that key (list items as `[0]`)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    lines: dict[str, int] = {}

    def walk(node: yaml.Node | None, path: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                name = f"{path}.{key.value}" if path else str(key.value)
                lines.setdefault(name, key.start_mark.line + 1)
                walk(value, name)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                name = f"{path}[{i}]"
                lines.setdefault(name, item.start_mark.line + 1)
                walk(item, name)

    walk(root, "")
    return lines


def line_of(path: str, lines: dict[str, int]) -> int | None:
    """The line of a field, else of its closest parent that is in the text."""
    while path:
        if path in lines:
            return lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return None


_TYPE_TAGS = {"str", "int", "float", "bool", "CustomScenario"}


def _is_type_tag(p: Any) -> bool:
    return isinstance(p, str) and (p in _TYPE_TAGS or p.startswith(("function-", "literal[")))


def error_items(items: list[dict[str, Any]], lines: dict[str, int]) -> list[dict[str, Any]]:
    """pydantic errors (or the API's 422 `detail`) as {path, loc, msg, line}."""
    out = []
    for item in items:
        loc = [p for p in item.get("loc") or () if p != "body"]
        # Union members add their type to the path (`str`, `CustomScenario`): not a field.
        loc = [p for p in loc if not _is_type_tag(p)]
        msg = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        path = format_loc(loc)
        if not path:
            m = _PATH_IN_MSG.match(msg)
            if m:  # a model-level error that names its field: "roles.callees: ..."
                path, msg = m.group(1), msg[m.end() :]
        out.append({"path": path, "loc": loc, "msg": msg, "line": line_of(path, lines)})
    return out


def check(text: str) -> dict[str, Any]:
    """{ok, spec (JSON, when valid), errors [{path, loc, msg, line}], lines {path: line}}."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        msg = f"not valid YAML: {problem}"
        err: dict[str, Any] = {"path": "", "loc": [], "msg": msg, "line": line}
        return {"ok": False, "spec": None, "errors": [err], "lines": {}}
    lines = field_lines(text)
    if not isinstance(data, dict):
        msg = f"the spec must be a mapping, not {type(data).__name__}"
        return {
            "ok": False,
            "spec": None,
            "errors": [{"path": "", "loc": [], "msg": msg, "line": 1}],
            "lines": lines,
        }
    try:
        spec = SessionSpec.model_validate(data)
    except ValidationError as exc:
        errors = error_items([dict(e) for e in exc.errors()], lines)
        return {"ok": False, "spec": data, "errors": errors, "lines": lines}
    spec.model_dump()  # valid: the API gets the text's own mapping, as the CLI sends it
    return {"ok": True, "spec": data, "errors": [], "lines": lines}
