"""boto3 clients of the fargate backend, and what an AWS error means for a session.

Every call goes through botocore's `standard` retry mode: throttling (ThrottlingException,
TooManyRequestsException, ...) and transient errors are retried with exponential backoff and
jitter, `settings.fargate_api_attempts` attempts in all. What is left after that (throttling that
persists, access denied, an invalid parameter) is permanent for the session: `permanent` turns
it into a PermanentBackendError carrying AWS's reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from backends.base import PermanentBackendError
from sipflow.settings import Settings

THROTTLING = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
}


@dataclass
class Clients:
    ecs: Any
    secrets: Any


def clients(settings: Settings) -> Clients:
    config = Config(
        region_name=settings.fargate_region,
        retries={"mode": "standard", "total_max_attempts": settings.fargate_api_attempts},
        connect_timeout=10,
        read_timeout=60,
    )
    session = boto3.session.Session()
    kw: dict[str, Any] = {"config": config}
    if settings.fargate_endpoint_url:
        kw["endpoint_url"] = settings.fargate_endpoint_url
    return Clients(
        ecs=session.client("ecs", **kw),
        secrets=session.client("secretsmanager", **kw),
    )


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def permanent(exc: ClientError, what: str, attempts: int) -> PermanentBackendError:
    code = error_code(exc)
    message = exc.response.get("Error", {}).get("Message", "") or str(exc)
    if code in THROTTLING:
        return PermanentBackendError(
            f"AWS throttled {what} through {attempts} attempts with backoff: {code}: {message}"
        )
    return PermanentBackendError(f"AWS refused {what}: {code}: {message}")
