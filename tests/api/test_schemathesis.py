"""Property-based run over the whole OpenAPI schema: no input makes the server fail (5xx)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.api.conftest import Server, running_server


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(Path(tmp_path_factory.mktemp("fuzz"))) as server:
        yield server


@pytest.fixture(scope="module")
def api_schema(fuzz_server: Server) -> schemathesis.schemas.BaseSchema:
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_server.app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_input_makes_the_server_fail(case: schemathesis.Case, fuzz_server: Server) -> None:
    response = case.call(headers=fuzz_server.headers("admin"))
    assert response.status_code < 500, (case.method, case.path, response.status_code,
                                        response.text[:500])
