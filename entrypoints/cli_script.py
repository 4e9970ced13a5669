"""`sipflow script compile FILE`: a call script as SIPp XML, compiled here (no stack needed).
FILE: YAML/JSON with a `script:` list (and `side: callee` for a callees' one), or a session
spec with roles.callers.script and/or roles.callees.script (its named parties' users are then what
a transfer_to refers to, as in the session). `--side callee` reads the callees' grammar
(sipflow/callee_script.py); without it, a spec file's callers' script is compiled, else its
callees'. A wrong step: its path and reason, exit code 2."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel, ConfigDict, ValidationError
from rich.console import Console

from sipflow import call_script, callee_script
from sipflow.spec_file import SpecFileError, format_validation_error, load_spec_data

err = Console(stderr=True)
script_app = typer.Typer(help="Declarative call scripts.", no_args_is_help=True)


class Side(StrEnum):
    caller = "caller"
    callee = "callee"


class _CallerFile(BaseModel):
    model_config = ConfigDict(extra="allow")
    script: call_script.CallScript


class _CalleeFile(BaseModel):
    model_config = ConfigDict(extra="allow")
    script: callee_script.CalleeScript


def _script_data(data: dict[str, Any], side: Side | None) -> tuple[dict[str, Any], Side]:
    if "script" in data:  # a script file; its own `side:` key says whose, if --side does not
        named = Side.callee if data.get("side") == "callee" else Side.caller
        return data, side or named
    roles = data.get("roles") or {}
    for role, found in (("callers", Side.caller), ("callees", Side.callee)):
        spec = roles.get(role) if isinstance(roles, dict) else None
        if side in (None, found) and isinstance(spec, dict) and "script" in spec:
            return {"script": spec["script"]}, found
    where = f"roles.{side.value}s.script" if side else "roles.callers/callees.script"
    raise SpecFileError([f"script: the file has no `script:` (nor {where})"])


def _party_users(data: dict[str, Any]) -> dict[str, str]:
    """A session spec's named parties' users (their first account's), where well formed."""
    parties = (
        (data.get("roles") or {}).get("parties") if isinstance(data.get("roles"), dict) else None
    )
    out: dict[str, str] = {}
    for name, party in (parties or {}).items() if isinstance(parties, dict) else ():
        accounts = party.get("accounts") if isinstance(party, dict) else None
        first = accounts[0] if isinstance(accounts, list) and accounts else None
        user = first.get("user") if isinstance(first, dict) else None
        if isinstance(user, str) and call_script.is_user(user):
            out[str(name)] = user
    return out


@script_app.command("compile")
def compile_cmd(
    file: Annotated[Path, typer.Argument(help="YAML/JSON with `script:` or a session spec")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the XML here (default: stdout)")
    ] = None,
    side: Annotated[
        Side | None,
        typer.Option(help="caller or callee script (default: the callers', else the callees')"),
    ] = None,
) -> None:
    """Compile a call script to the SIPp XML a session with it runs."""
    try:
        spec_data = load_spec_data(file)
        data, chosen = _script_data(spec_data, side)
        if chosen is Side.callee:
            callee = _CalleeFile.model_validate(data).script
            xml, n = callee_script.compile_script(callee), len(callee)
        else:
            caller = _CallerFile.model_validate(data).script
            xml = call_script.compile_script(caller, _party_users(spec_data))
            n = len(caller)
    except SpecFileError as exc:
        for line in exc.errors:
            err.print(line, markup=False)
        raise typer.Exit(2) from None
    except ValidationError as exc:
        for line in format_validation_error(exc):
            err.print(line, markup=False)
        raise typer.Exit(2) from None
    if output is None:
        typer.echo(xml, nl=False)
    else:
        output.write_text(xml)
        err.print(f"wrote {output} ({n} steps, {chosen.value} side)")
