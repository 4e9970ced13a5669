"""Paths inside the runner image (deploy/runner/Containerfile), known to the agent that runs
there and to the backends that start its containers."""

from __future__ import annotations

from pathlib import Path

# The agent's writable home: runs/<session>/<runner>/ holds SIPp's files.
CONTAINER_RUNS_DIR = Path("/home/sipflow/runs")
# The runner token, copied in before the container starts.
TOKEN_PATH = "/home/sipflow/runner.token"
# Touched by the agent while it reaches the broker; read by the image's health check.
HEARTBEAT_PATH = "/tmp/sipflow-agent.alive"
