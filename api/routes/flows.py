"""/v1/flows: the built-in call flows (sipflow/flows.py), their parameters and SIPp XML."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field, TypeAdapter

from api.auth import AUTH_RESPONSES, PrincipalDep
from sipflow.flows import FLOWS, FlowSpec, render

router = APIRouter(prefix="/flows", tags=["flows"], responses=AUTH_RESPONSES)
_FLOW_SPEC: TypeAdapter[Any] = TypeAdapter(FlowSpec)


class FlowParam(BaseModel):
    name: str
    type: str
    default: Any = None
    description: str = ""
    minimum: float | None = None
    maximum: float | None = None
    exclusiveMinimum: float | None = None
    enum: list[str] | None = None


class FlowInfo(BaseModel):
    name: str
    title: str
    parameters: list[FlowParam]
    steps: list[str]
    messages: list[str] = Field(description="the ladder of one call")
    success: str = Field(description="the outcome that counts as a successful call")
    callee_side: bool = Field(description="false: the target answers (no callees)")
    party_side: bool = Field(
        default=False,
        description="true: a named party (roles.parties, e.g. a transfer target) runs a third side",
    )
    callee_steps: list[str] = Field(default=[], description="the callee side's steps")
    party_steps: list[str] = Field(default=[], description="the named party's steps")


class FlowXml(BaseModel):
    flow: dict[str, Any] = Field(description="the flow with every parameter")
    caller: str
    callee: str | None
    party: str | None = Field(default=None, description="the named party's side, if any")


@router.get("", response_model=list[FlowInfo], summary="The built-in call flows")
def list_flows(principal: PrincipalDep) -> list[FlowInfo]:
    return [FlowInfo.model_validate(f.describe()) for f in FLOWS.values()]


@router.get(
    "/{name}",
    response_model=FlowInfo,
    responses={404: {"description": "no built-in flow of this name"}},
    summary="One built-in flow: parameters, steps, messages, success",
)
def get_flow(name: str, principal: PrincipalDep) -> FlowInfo:
    if name not in FLOWS:
        raise HTTPException(404, f"no flow {name!r}; built-ins: {', '.join(FLOWS)}")
    return FlowInfo.model_validate(FLOWS[name].describe())


@router.post(
    "/xml",
    response_model=FlowXml,
    summary="The SIPp XML of a flow with parameters (as `roles.callers.flow` takes them)",
)
def flow_xml(body: dict[str, Any], principal: PrincipalDep) -> FlowXml:
    """Bad parameters: 422 with the parameter's path (e.g. `["ring_no_answer",
    "cancel_after_s"]`)."""
    from fastapi.exceptions import RequestValidationError
    from pydantic import ValidationError

    try:
        params = _FLOW_SPEC.validate_python(body)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from None
    flow = FLOWS[params.name]
    return FlowXml(
        flow=params.model_dump(),
        caller=render(params, "caller"),
        callee=render(params, "callee") if flow.callee is not None else None,
        party=render(params, "party") if flow.party is not None else None,
    )
