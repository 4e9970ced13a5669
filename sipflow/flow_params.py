"""The base of every built-in flow's parameter model (sipflow/flows.py, transfer_flows.py)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class FlowParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    def call_extra_s(self) -> float:
        """How much longer than a basic call one call of the flow takes (its pauses): the
        session's expected duration, hence its timeouts and deadlines, grows by it."""
        return 0.0

    def party(self) -> str | None:
        """The named party (roles.parties) the flow's third side runs on, if it has one."""
        return None

    def with_party_user(self, user: str) -> FlowParams:
        """These parameters with the SIP user of their named party: a user, or the injection
        field that names it per call (flow_xml.PARTY_USER, set by the session's plan)."""
        return self
