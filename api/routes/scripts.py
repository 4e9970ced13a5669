"""POST /v1/scripts/compile: a call script (sipflow/call_script.py) as the SIPp XML a session
with that script runs, to read, download and edit (then upload as a custom scenario)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict

from api.auth import AUTH_RESPONSES, operator
from sipflow.call_script import CallScript, compile_script, step_names

router = APIRouter(
    prefix="/scripts", tags=["scripts"], dependencies=[Depends(operator)], responses=AUTH_RESPONSES
)


class ScriptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    script: CallScript


class CompiledScript(BaseModel):
    xml: str
    steps: Annotated[list[str], "the step names of the XML's sipflow-step marks, in order"]


@router.post(
    "/compile",
    response_model=CompiledScript,
    summary="Compile a call script to SIPp XML (a wrong step: 422 at body.script[i])",
)
def compile_route(body: ScriptIn) -> CompiledScript:
    return CompiledScript(xml=compile_script(body.script), steps=step_names(body.script))
