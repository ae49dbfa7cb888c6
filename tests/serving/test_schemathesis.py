"""Property-based API testing from the server's own OpenAPI document: no input gives a 5xx.

Driven through Hypothesis directly (schemathesis' pytest plugin does not work with pytest 9's
node API): every operation, valid (positive) and schema-violating (negative) inputs.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests.serving.conftest import ServerProcess, http

EXAMPLES = 12  # per operation and mode: bounded so the test stays a few seconds


def test_no_request_from_the_schema_gets_a_5xx(server: ServerProcess) -> None:
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    paths = {op.path for op in operations}
    assert {"/v1/predict", "/health/ready", "/metadata", "/v2/models/{name}/infer"} <= paths
    calls = 0
    accepted = 0
    for operation in operations:
        # Operations without parameters or body have no invalid inputs to generate.
        modes = [GenerationMode.POSITIVE]
        if operation.method.lower() == "post":
            modes.append(GenerationMode.NEGATIVE)
        for mode in modes:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case: schemathesis.Case) -> None:
                nonlocal calls, accepted
                calls += 1
                response = case.call_and_validate(checks=[not_a_server_error])
                accepted += response.status_code == 200 and case.path == "/v1/predict"

            check()
    assert calls >= EXAMPLES
    assert accepted >= EXAMPLES // 5  # valid generated records do reach the models
    metrics = http("GET", server.url + "/metrics")[2].decode()
    assert 'status="500"' not in metrics
