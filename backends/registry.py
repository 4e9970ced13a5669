"""Backends by name. Adding one: write its module (a `RunnerBackend`), add a line here and its
name to `sipflow.spec.BackendName` (the names a spec may ask for; a test keeps both equal).

Modules are imported on first use, so a worker without a Docker engine (or SDK) runs local
sessions, and the API, which never starts runners, imports none of them.
"""

from __future__ import annotations

import importlib
import threading

from backends.base import RunnerBackend
from sipflow.settings import Settings

BUILT_IN: dict[str, str] = {
    "local": "backends.local:LocalBackend",
    "docker": "backends.docker:DockerBackend",
    "fargate": "backends.fargate:FargateBackend",
}


class UnknownBackend(ValueError):
    pass


def names() -> list[str]:
    return list(BUILT_IN)


def backend_class(name: str) -> type[RunnerBackend]:
    try:
        module_name, class_name = BUILT_IN[name].split(":")
    except KeyError:
        raise UnknownBackend(f"unknown backend {name!r}; known: {', '.join(BUILT_IN)}") from None
    cls: type[RunnerBackend] = getattr(importlib.import_module(module_name), class_name)
    return cls


class Backends:
    """A worker's backends, each made (and connected) once, on first use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._made: dict[str, RunnerBackend] = {}
        self._lock = threading.Lock()

    def resolve(self, requested: str | None) -> str:
        """The backend a new session runs on: its spec's choice, else the settings' default."""
        name = requested or self.settings.default_backend
        backend_class(name)  # unknown names fail here, before anything is made
        return name

    def get(self, name: str) -> RunnerBackend:
        with self._lock:
            if name not in self._made:
                self._made[name] = backend_class(name).from_settings(self.settings)
            return self._made[name]
