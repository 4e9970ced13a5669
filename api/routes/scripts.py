"""POST /v1/scripts/compile: a call script as the SIPp XML a session with that script runs, to
read, download and edit (then upload as a custom scenario): the callers' script
(sipflow/call_script.py) or, with `side: callee`, the callees' (sipflow/callee_script.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from api.auth import AUTH_RESPONSES, operator
from sipflow import call_script, callee_script

router = APIRouter(
    prefix="/scripts", tags=["scripts"], dependencies=[Depends(operator)], responses=AUTH_RESPONSES
)
_CALLER: TypeAdapter[list[call_script.Step]] = TypeAdapter(call_script.CallScript)
_CALLEE: TypeAdapter[list[callee_script.CalleeStep]] = TypeAdapter(callee_script.CalleeScript)


class ScriptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    script: Annotated[
        list[Any],
        Field(
            min_length=1,
            max_length=call_script.MAX_STEPS,
            description="the steps, e.g. ['call', 'expect 200', 'hangup']",
        ),
    ]
    side: Literal["caller", "callee"] = Field(
        "caller", description="whose grammar: roles.callers.script or roles.callees.script"
    )


class CompiledScript(BaseModel):
    xml: str
    steps: Annotated[list[str], "the step names of the XML's sipflow-step marks, in order"]


@router.post(
    "/compile",
    response_model=CompiledScript,
    summary="Compile a call script to SIPp XML (a wrong step: 422 at body.script[i])",
)
def compile_route(body: ScriptIn) -> CompiledScript:
    try:
        if body.side == "callee":
            callee = _CALLEE.validate_python(body.script)
            return CompiledScript(
                xml=callee_script.compile_script(callee), steps=callee_script.step_names(callee)
            )
        caller = _CALLER.validate_python(body.script)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False)
        raise RequestValidationError(
            [{**e, "loc": ("body", "script", *e["loc"])} for e in errors]
        ) from None
    return CompiledScript(
        xml=call_script.compile_script(caller), steps=call_script.step_names(caller)
    )
