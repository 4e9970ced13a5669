"""The interface every runner backend implements: provision a session's network, start the
runners of a role, stop them, tear down, and say what it holds for the sweeper.

Every method is idempotent, because the activities that call them are retried: starting a
runner that runs (or ran) does not start it again, stopping or tearing down what is gone
succeeds. `teardown` and `stop` work from a placement that holds only the session id (what the
sweeper has for a session that left something behind).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import ClassVar, Self

from sipflow.messages import Role
from sipflow.placement import Placement, StartedRunner
from sipflow.settings import Settings
from sipflow.spec import SessionSpec


class PermanentBackendError(Exception):
    """Retrying cannot help (e.g. the runner image is missing): the session ends in error."""


class RunnerBackend(ABC):
    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Settings) -> Self:
        """The backend as the worker's settings configure it; connects lazily or here."""

    @abstractmethod
    def provision(
        self, session_id: str, runner_ids: list[str], spec: SessionSpec | None = None
    ) -> Placement:
        """The network for these runners of the session, made unless it exists, impaired as
        the spec says (a backend that cannot raises PermanentBackendError, making nothing)."""

    @abstractmethod
    def start(
        self,
        placement: Placement,
        spec: SessionSpec,
        role: Role,
        peers: Mapping[str, str],
        hold: bool = False,
    ) -> list[StartedRunner]:
        """Start the placement's runners of `role` unless they run or ran; their addresses.

        `peers` maps runners started before (callees) to their addresses: callers that call
        callees directly send to them. `hold` (only where the placement says `prestart`): the
        runners start up and wait for a `go` control message before placing calls. A backend
        whose placements `prestart` knows its callees' addresses itself: held callers may be
        started at the same time as their callees, with `peers` empty.
        """

    @abstractmethod
    def running(self, placement: Placement) -> list[str]:
        """Ids of the placement's runners that still run."""

    @abstractmethod
    def stop(
        self, placement: Placement, runner_ids: list[str] | None = None, grace_s: float = 20
    ) -> None:
        """SIGTERM (an agent stops SIPp and reports `done`), kill after `grace_s`; wait until
        they are gone. runner_ids None: all of the session's runners."""

    def recover_intervals(self, placement: Placement, runner_ids: list[str]) -> dict[str, int]:
        """Stopped runners whose agent died: publish the statistics rows their SIPp wrote that
        the agent may not have sent (same seqs: stored once); runner -> rows published. Only a
        backend that can read the runners' work directories does (default: none)."""
        return {}

    @abstractmethod
    def teardown(self, placement: Placement) -> list[str]:
        """Remove everything the session has here; what was removed (names, addresses)."""

    @abstractmethod
    def sessions_present(self) -> set[str]:
        """Sessions that have something (runners, networks) on this backend now."""
