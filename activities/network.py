"""Activities that create and delete a session's network (local backend: loopback aliases)."""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import activity

from runners.local_network import LocalNetworks
from sipflow.plan import CALLEE_HOST_BASE, CALLER_HOST_BASE, SessionNetwork
from sipflow.settings import Settings


class ProvisionNetwork(BaseModel):
    session_id: str
    callees: int
    callers: int


class NetworkActivities:
    def __init__(self, settings: Settings) -> None:
        self.networks = LocalNetworks(
            settings.data_dir.resolve() / "networks", settings.local_net_octet
        )

    @activity.defn
    def provision_network(self, req: ProvisionNetwork) -> SessionNetwork:
        hosts = [CALLEE_HOST_BASE + i for i in range(req.callees)]
        hosts += [CALLER_HOST_BASE + i for i in range(req.callers)]
        subnet = self.networks.provision(req.session_id, hosts)
        return SessionNetwork(session_id=req.session_id, subnet=subnet)

    @activity.defn
    def teardown_network(self, session_id: str) -> list[str]:
        return self.networks.teardown(session_id)
