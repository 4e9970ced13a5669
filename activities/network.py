"""Activities that create and delete a session's network: loopback aliases (local backend) or a
labelled bridge network (docker backend)."""

from __future__ import annotations

from pydantic import BaseModel
from temporalio import activity

from runners.docker_backend import LazyDockerBackend
from runners.docker_plan import session_backend
from runners.local_network import LocalNetworks
from sipflow.plan import CALLEE_HOST_BASE, CALLER_HOST_BASE, SessionNetwork
from sipflow.settings import Settings


class ProvisionNetwork(BaseModel):
    session_id: str
    callees: int
    callers: int


class NetworkActivities:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.networks = LocalNetworks(
            settings.data_dir.resolve() / "networks", settings.local_net_octet
        )
        self.docker = LazyDockerBackend(settings)

    @activity.defn
    def provision_network(self, req: ProvisionNetwork) -> SessionNetwork:
        if session_backend(self.settings, req.session_id) == "docker":
            return self.docker.get().provision(req.session_id)
        hosts = [CALLEE_HOST_BASE + i for i in range(req.callees)]
        hosts += [CALLER_HOST_BASE + i for i in range(req.callers)]
        subnet = self.networks.provision(req.session_id, hosts)
        return SessionNetwork(session_id=req.session_id, subnet=subnet)

    @activity.defn
    def teardown_network(self, session_id: str) -> list[str]:
        """Idempotent: removes what the session has (containers too, on the docker backend)."""
        removed = self.networks.teardown(session_id)
        if session_backend(self.settings, session_id) == "docker":
            removed += self.docker.get().teardown(session_id)
        return removed
