"""schemathesis over the whole OpenAPI (but the never-ending live event stream): generated
requests against the API on real databases and a real Temporal server, every tenant under a
tiny loopback-only policy. No server error, every reply as documented (status, media type,
body schema). Bounded: a fixed number of examples per operation, no deadline per example."""

from __future__ import annotations

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.main import create_app
from sipflow.settings import Settings
from tests.api_fixtures import (
    temporal_stack_fixture,  # noqa: F401
    tiny_api_client_fixture,  # noqa: F401
)

EXAMPLES_PER_OPERATION = 30
# What the API promises: no 5xx but the documented 503, and replies as documented. (Not: that
# every input its schema would not generate is refused; pydantic is lenient on purpose, e.g. a
# timestamp for `since`.)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


# The schema does not depend on the settings; the requests go to the fixture's app.
OPENAPI = create_app(Settings()).openapi()
SCHEDULE_PUT = {"path": "/v1/schedules/{schedule_id}", "method": "PUT"}
schema = (
    schemathesis.openapi.from_dict(OPENAPI).exclude(path_regex=r"/live$").exclude(**SCHEDULE_PUT)
)
# PUT /v1/schedules/{id}: schemathesis 4.32's negative (schema-mutating) generator raises its own
# InvalidSchema ("Cannot generate an array with 1 demanded elements") on this operation's body
# since 0.5.0's spec grew (no check failed, no server error): valid bodies only here; invalid
# ones are tested in tests/test_schedules_api.py.
schedule_put = schemathesis.openapi.from_dict(OPENAPI).include(**SCHEDULE_PUT)
schedule_put.config.generation.update(modes=["positive"])


def conforms(case: schemathesis.Case, client: TestClient) -> None:
    kwargs = case.as_transport_kwargs(base_url=str(client.base_url))
    kwargs.pop("auth", None)
    if not kwargs.get("cookies"):
        kwargs.pop("cookies", None)
    if "data" in kwargs:  # requests' name for a raw body
        kwargs["content"] = kwargs.pop("data")
    response = client.request(**kwargs)
    case.validate_response(response, checks=CHECKS)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_conforms_to_its_openapi(case: schemathesis.Case, tiny_api_client: TestClient) -> None:
    conforms(case, tiny_api_client)


@schedule_put.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_schedule_put_conforms_to_its_openapi(
    case: schemathesis.Case, tiny_api_client: TestClient
) -> None:
    conforms(case, tiny_api_client)
