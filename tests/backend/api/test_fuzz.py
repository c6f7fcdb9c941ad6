"""Property-based fuzzing of the REST API against its own OpenAPI schema (schemathesis).

Every operation of ``/api/openapi.json`` gets requests generated from its schema, both valid
ones (positive mode) and ones that break it (negative mode: wrong types, out-of-range numbers,
missing fields, undecodable bodies), sent to an app over a data folder with real rows (a
dataset, a trained and a pruned model, their analyses and a finished comparison). Each answer
must pass four checks:

- ``not_a_server_error``: no 5xx, whatever the input.
- ``response_schema_conformance``: the body matches the schema declared for its status,
  errors included (``ErrorPublic``: a fixed message, or FastAPI's list of validation issues).
- ``status_code_conformance``: the status is one the route declares. Legitimate 404, 409 and
  422 answers are declared with ``responses=errors(...)``, so this is not noise: it is what
  keeps the schema honest about every status a client can get.
- ``content_type_conformance``: the media type is the declared one (JSON, or PNG for images).

Left out: ``positive_data_acceptance`` (a well-typed id of a row that does not exist is rightly
refused with 404, a built-in name that is not a dataset with 422), ``negative_data_rejection``
(unknown query parameters and headers are ignored, as HTTP allows), and the stateful checks.

The uploads are fuzzed too: their body is declared as multipart without a schema, so what they
get is mostly malformed forms, which must be refused with 422, never 500.

schemathesis's pytest integration (``schemathesis.pytest.from_fixture``) cannot run under
pytest >= 9.2 (it writes ``Function._nodeid``, which pytest removed), so each operation's
documented Hypothesis strategy (``APIOperation.as_strategy``) is driven here directly, and
the failures of all operations are reported together. Runs are reproducible
(``derandomize=True``, no example database) and short: a few examples per operation and mode;
PostgreSQL, which runs the same code, gets fewer.
"""

from __future__ import annotations

from collections.abc import Iterator

import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from backend.api.app import create_app
from backend.api.security import create_token
from backend.config import Settings
from backend.db.session import session_factory
from backend.jobs.executor import InlineExecutor
from tests.conftest import build_pipeline

CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]
EXAMPLES = {"sqlite": 25, "postgresql": 10}  # per operation and generation mode


class RecordingExecutor:
    """Takes job ids and runs nothing: a fuzzed submission must not start real training."""

    def __init__(self) -> None:
        self.submitted: list[int] = []

    def start(self) -> None:
        pass

    def submit(self, job_id: int, queue: str | None = None) -> None:
        self.submitted.append(job_id)

    def shutdown(self) -> None:
        pass

    def health(self) -> str:
        return "ok: jobs are recorded, never run"


def fuzz_app(settings: Settings) -> tuple[FastAPI, dict[str, str]]:
    """The app under test, over a data folder with a finished pipeline, and the headers every
    fuzzed request carries (the one place to add a token once the API asks for one)."""
    seed_app = create_app(settings, executor=InlineExecutor(settings), dashboard=False)
    with TestClient(seed_app) as c:
        build_pipeline(c, epochs=1, sparsities=(0.5,))
    # the app people reach on a team server: authentication on, fuzzed with a write token
    # (no submission limit, so that the fuzzer keeps reaching the job routes' validation)
    guarded = settings.model_copy(update={"auth": "on", "job_rate_limit": 0})
    with session_factory(guarded.database_url)() as session:
        _row, token = create_token(session, "fuzzer")
    app = create_app(guarded, executor=RecordingExecutor(), dashboard=False)
    return app, {"Authorization": f"Bearer {token}"}


@pytest.fixture
def api(settings: Settings) -> Iterator[tuple[schemathesis.BaseSchema, dict[str, str]]]:
    app, headers = fuzz_app(settings)
    yield schemathesis.openapi.from_asgi("/api/openapi.json", app), headers


def fuzz(
    operation: schemathesis.APIOperation,
    mode: GenerationMode,
    headers: dict[str, str],
    max_examples: int,
) -> None:
    """Send ``max_examples`` generated requests to one operation; raise on the first failure
    (shrunk to a minimal request, with a curl command that reproduces it)."""

    @hypothesis.settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[hypothesis.Phase.generate, hypothesis.Phase.shrink],
        suppress_health_check=[
            hypothesis.HealthCheck.too_slow,
            hypothesis.HealthCheck.filter_too_much,
            hypothesis.HealthCheck.data_too_large,
        ],
    )
    @hypothesis.given(case=operation.as_strategy(mode))
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=CHECKS, headers=headers)

    run()


@pytest.mark.slow
def test_api_conforms_to_its_schema(api, settings: Settings) -> None:
    schema, headers = api
    engine = "sqlite" if settings.database_url.startswith("sqlite") else "postgresql"
    failures = []
    tags: set[str] = set()
    for result in schema.get_all_operations():
        operation = result.ok()  # raises if the schema itself is invalid
        tags.update(operation.tags or ())
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                fuzz(operation, mode, headers, EXAMPLES[engine])
            except hypothesis.errors.Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # no parameters: nothing to break
            except (Exception, BaseExceptionGroup) as exc:
                message = exc.message if isinstance(exc, BaseExceptionGroup) else str(exc)
                failures.append(f"{operation.label} ({mode} data): {message}")
    assert tags >= {"uploads", "datasets", "models", "jobs", "analyses", "comparisons"}
    assert not failures, "\n\n".join(failures)
