"""A fargate session's task definitions: built from the settings, the role's size and the
session's token secret, named by the hash of their content.

The family is `sipflow-<session>-<hash>`: registering the same content again (an activity
retried, the next runner of the role) finds the family and reuses it, and teardown finds every
family of a session by its prefix. The token secret is referenced by ARN (`secrets`), so the
task definition holds no secret.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from backends.fargate_entry import ENTRY_POINT, TOKENS_ENV
from sipflow.settings import Settings

CONTAINER = "runner"
FAMILY_PREFIX = "sipflow-"


def family_prefix(session_id: str) -> str:
    return f"{FAMILY_PREFIX}{session_id}-"


def content(
    settings: Settings, session_id: str, cpu: int, memory: int, secret_arn: str
) -> dict[str, Any]:
    """RegisterTaskDefinition's arguments, but the family."""
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": settings.fargate_runner_image or settings.runner_image,
        "essential": True,
        # the whole task's size (also what moto needs to account a task's resources)
        "cpu": cpu,
        "memory": memory,
        "entryPoint": ENTRY_POINT,
        "secrets": [{"name": TOKENS_ENV, "valueFrom": secret_arn}],
        "stopTimeout": settings.fargate_stop_timeout_s,
        "readonlyRootFilesystem": False,
        "user": "10001:10001",
        "healthCheck": {
            "command": ["CMD", "python", "-m", "runners.agent", "--health-check"],
            "interval": 5,
            "timeout": 3,
            "retries": 3,
            "startPeriod": 20,
        },
    }
    if settings.fargate_log_group:
        container["logConfiguration"] = {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": settings.fargate_log_group,
                "awslogs-region": settings.fargate_region,
                "awslogs-stream-prefix": f"session-{session_id}",
            },
        }
    td: dict[str, Any] = {
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": str(cpu),
        "memory": str(memory),
        "containerDefinitions": [container],
    }
    if settings.fargate_execution_role_arn:
        td["executionRoleArn"] = settings.fargate_execution_role_arn
    if settings.fargate_task_role_arn:
        td["taskRoleArn"] = settings.fargate_task_role_arn
    return td


def content_hash(td: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(td, sort_keys=True).encode()).hexdigest()[:16]


def family(session_id: str, td: dict[str, Any]) -> str:
    return f"{family_prefix(session_id)}{content_hash(td)}"
