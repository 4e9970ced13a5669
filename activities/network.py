"""Activities that make and remove the network a session's runners live on, on the backend the
session runs on (resolved here, once, and carried in the returned placement)."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import legacy
from backends import broker_auth
from backends.base import PermanentBackendError
from backends.registry import Backends
from sipflow.placement import Placement
from sipflow.settings import Settings
from sipflow.spec import SessionSpec

log = logging.getLogger(__name__)


class ProvisionNetwork(BaseModel):
    session_id: str
    runner_ids: list[str] = []
    backend: str | None = None  # the spec's choice; None: the worker's default
    spec: dict[str, Any] | None = None  # for the network's impairment
    # What sessions started before placements existed send instead of runner_ids.
    callees: int = 0
    callers: int = 0


class NetworkActivities:
    def __init__(
        self, settings: Settings, backends: Backends, on_runner_host: bool = False
    ) -> None:
        """`on_runner_host`: a runner host's worker: it makes and removes no broker logins (it
        holds no admin credential; the main queue does that, activities/pools.py)."""
        self.settings = settings
        self.backends = backends
        self.on_runner_host = on_runner_host

    @activity.defn
    def provision_network(self, req: ProvisionNetwork) -> Placement:
        """Idempotent: the session's placement, its network made unless it exists."""
        if req.runner_ids:
            runner_ids, name = req.runner_ids, self.backends.resolve(req.backend)
        else:
            runner_ids = legacy.runner_ids(req.callees, req.callers)
            name = legacy.stored_backend(self.settings, req.session_id)
        spec = SessionSpec.model_validate(req.spec) if req.spec is not None else None
        # The runners' broker logins are made beside the network (a broker round trip that
        # otherwise sits on the start of the runners).
        with ThreadPoolExecutor(max_workers=1) as pool:
            logins = pool.submit(self._add_logins, req.session_id, runner_ids)
            try:
                placement = self.backends.get(name).provision(req.session_id, runner_ids, spec)
            except PermanentBackendError as exc:
                if logins.result():  # nothing of a refused session stays
                    self._remove_logins(req.session_id)
                raise ApplicationError(str(exc), non_retryable=True) from exc
            return placement.model_copy(update={"broker_logins": logins.result()})

    def _add_logins(self, session_id: str, runner_ids: list[str]) -> bool:
        """Whether the logins were made; if not, starting the runners makes them."""
        if self.on_runner_host:
            return False
        try:
            broker_auth.add_runners(self.settings, session_id, runner_ids)
        except (broker_auth.BrokerAuthError, OSError) as exc:
            log.warning("runner logins of %s not made yet: %s", session_id, exc)
            return False
        return True

    def _remove_logins(self, session_id: str) -> list[str]:
        if self.on_runner_host:
            return []
        try:
            return broker_auth.remove_session(self.settings, session_id)
        except (broker_auth.BrokerAuthError, OSError) as exc:
            # A broker that is down must not hold the session's end: the sweeper removes them.
            log.warning("runner logins of %s stay on the broker: %s", session_id, exc)
            return []

    @activity.defn
    def teardown_network(self, req: Placement | str) -> list[str]:
        """Idempotent: removes what the session has on its placement's backend (containers too,
        on the docker backend) and its runners' broker credentials."""
        placement = req if isinstance(req, Placement) else legacy.placement(self.settings, req)
        gone = self.backends.get(placement.backend).teardown(placement)
        return gone + self._remove_logins(placement.session_id)
