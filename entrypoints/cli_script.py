"""`sipflow script compile FILE`: a call script (sipflow/call_script.py) as SIPp XML, compiled
here (no stack needed). FILE: YAML/JSON with a `script:` list, or a session spec whose
roles.callers has one (its named parties' users are then what a transfer_to refers to, as in
the session). A wrong step: its path and reason, exit code 2."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel, ConfigDict, ValidationError
from rich.console import Console

from sipflow.call_script import CallScript, compile_script, is_user
from sipflow.spec_file import SpecFileError, format_validation_error, load_spec_data

err = Console(stderr=True)
script_app = typer.Typer(help="Declarative call scripts.", no_args_is_help=True)


class _ScriptFile(BaseModel):
    model_config = ConfigDict(extra="allow")
    script: CallScript


def _script_data(data: dict[str, Any]) -> dict[str, Any]:
    if "script" in data:
        return data
    callers = (data.get("roles") or {}).get("callers") or {}
    if isinstance(callers, dict) and "script" in callers:
        return {"script": callers["script"]}
    raise SpecFileError(["script: the file has no `script:` (nor roles.callers.script)"])


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
        if isinstance(user, str) and is_user(user):
            out[str(name)] = user
    return out


@script_app.command("compile")
def compile_cmd(
    file: Annotated[Path, typer.Argument(help="YAML/JSON with `script:` or a session spec")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the XML here (default: stdout)")
    ] = None,
) -> None:
    """Compile a call script to the SIPp XML a session with it runs."""
    try:
        data = load_spec_data(file)
        parsed = _ScriptFile.model_validate(_script_data(data))
    except SpecFileError as exc:
        for line in exc.errors:
            err.print(line, markup=False)
        raise typer.Exit(2) from None
    except ValidationError as exc:
        for line in format_validation_error(exc):
            err.print(line, markup=False)
        raise typer.Exit(2) from None
    xml = compile_script(parsed.script, _party_users(data))
    if output is None:
        typer.echo(xml, nl=False)
    else:
        output.write_text(xml)
        err.print(f"wrote {output} ({len(parsed.script)} steps)")
