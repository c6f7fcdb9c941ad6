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

What the schema-driven run did not find is tested here by hand (issue 19), on both engines:
the named text fields of every create route fed lone surrogates, NUL characters, combining
marks and strings of up to a megabyte (fixed cases, then Hypothesis strategies of such text)
must get 422, or their 201 with the text stored exactly, never a 5xx and never an answer that
echoes a megabyte back; and ten simultaneous creations of one unique name, sent to a real
uvicorn server, get exactly one 201 and nine 409s with a fixed detail.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import func, select

from backend.api.app import create_app
from backend.api.errors import DATASET_NAME_TAKEN
from backend.api.security import create_token
from backend.config import Settings
from backend.db.session import session_factory, session_scope
from backend.db.tables import ComparisonMemberRow, ComparisonRow, DatasetRow, ModelRow
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


# -- bad strings and races (issue 19) -----------------------------------------------------------

ANSWER_LIMIT = 64 * 1024  # an error answer stays small, whatever the request echoed
RACERS = 10
BAD_STRINGS = {
    "lone surrogate": "\ud800",
    "surrogates in text": "model \udfff b\udc00",
    "NUL": "a\x00b",
    "1 MB": "x" * 1_000_000,  # just under the default 1 MiB body limit, so it reaches validation
}


@dataclass
class World:
    """An app whose jobs are recorded, never run, over a dataset, three models (rows only, no
    weights) and a comparison of the first two: what the create routes need to get past their
    checks, without training anything."""

    settings: Settings
    client: TestClient
    dataset_id: int
    model_ids: list[int]
    comparison_id: int


@pytest.fixture
def world(settings: Settings) -> Iterator[World]:
    app = create_app(settings, executor=RecordingExecutor(), dashboard=False)
    # a 500 comes back as an answer to assert on, not as the server's exception
    with TestClient(app, raise_server_exceptions=False) as client:
        ds = client.post("/api/datasets", json={"builtin": "digits"}).json()
        with session_scope(settings.database_url) as s:
            models = [
                ModelRow(
                    name=f"seeded {i}",
                    architecture="digits_cnn",
                    dataset_id=ds["id"],
                    n_params=1,
                    n_nonzero=1,
                    checkpoint_sha="0" * 64,
                    input_shape=ds["input_shape"],
                    num_classes=ds["num_classes"],
                )
                for i in range(3)
            ]
            s.add_all(models)
            s.flush()
            ids = [m.id for m in models]
            comparison = ComparisonRow(name="seeded", dataset_id=ds["id"], model_a_id=ids[0])
            comparison.members = [ComparisonMemberRow(model_id=ids[1], position=0)]
            s.add(comparison)
            s.flush()
            comparison_id = comparison.id
        yield World(settings, client, ds["id"], ids, comparison_id)


@dataclass(frozen=True)
class NamedField:
    """One text field of a create route: ``build`` puts a text there in an otherwise valid
    request; ``limit`` is its length limit, None for a field no generated text can satisfy (an
    unknown kind, corruption or builtin). A text it accepts is stored as ``stored(text)`` and
    read back with ``read`` from the 201's body; ``conflicts``: a repeat may get 409."""

    label: str
    build: Callable[[World, str], tuple[str, dict[str, Any]]]
    limit: int | None = None
    read: Callable[[World, dict[str, Any]], str] | None = None
    stored: Callable[[str], str] = str
    conflicts: bool = False


def _dataset_name(w: World, answer: dict[str, Any]) -> str:
    return str(w.client.get(f"/api/datasets/{answer['id']}").json()["name"])


PROBES = itertools.count()


def _dataset(**fields: Any) -> tuple[str, dict[str, Any]]:
    # a name of its own, so that what is refused is the field, not a name taken before
    body = {"builtin": "digits", "name": f"probe {next(PROBES)}", **fields}
    return "/api/datasets", body


def _comparison(w: World, **fields: Any) -> tuple[str, dict[str, Any]]:
    base = {"model_a_id": w.model_ids[0], "model_b_ids": [w.model_ids[1]], "embedding": "pca"}
    return "/api/comparisons", {**base, **fields}


def _train(w: World, **fields: Any) -> tuple[str, dict[str, Any]]:
    spec = {"dataset_id": w.dataset_id, "architecture": "digits_cnn", "epochs": 1, **fields}
    return "/api/jobs", {"kind": "train", "spec": spec}


def _share(w: World, **fields: Any) -> tuple[str, dict[str, Any]]:
    return f"/api/comparisons/{w.comparison_id}/shares", fields


NAMED_FIELDS = [
    NamedField(
        "datasets: name",
        lambda w, t: ("/api/datasets", {"builtin": "digits", "name": t}),
        limit=200,
        read=_dataset_name,
        conflicts=True,
    ),
    NamedField("datasets: builtin", lambda w, t: _dataset(builtin=t)),
    NamedField("datasets: params key", lambda w, t: _dataset(params={t: 1})),
    NamedField("datasets: params value", lambda w, t: _dataset(params={"seed": t})),
    NamedField(
        "comparisons: name",
        lambda w, t: _comparison(w, name=t),
        limit=200,
        read=lambda w, a: str(a["name"]),
    ),
    NamedField("comparisons: corruptions", lambda w, t: _comparison(w, corruptions=[t])),
    NamedField("jobs: kind", lambda w, t: ("/api/jobs", {"kind": t, "spec": {}})),
    NamedField("jobs: spec key", lambda w, t: ("/api/jobs", {"kind": "ping", "spec": {t: 1}})),
    NamedField("jobs: spec.architecture", lambda w, t: _train(w, architecture=t)),
    NamedField(
        "jobs: spec.name",
        lambda w, t: _train(w, name=t),
        limit=200,
        read=lambda w, a: str(a["spec"]["name"]),
    ),
    NamedField(
        "shares: label",
        lambda w, t: _share(w, label=t),
        limit=200,
        read=lambda w, a: str(a["label"]),
        stored=str.strip,
    ),
    NamedField("shares: view value", lambda w, t: _share(w, view={"cls": t})),
    NamedField("shares: view key", lambda w, t: _share(w, view={t: "1"})),
]


def post_json(client: TestClient, path: str, body: object) -> httpx.Response:
    """POST ``body`` as JSON text exactly as a client may send it: lone surrogates as \\u
    escapes (valid JSON, which Python decodes to unpaired surrogates), NUL as \\u0000."""
    content = json.dumps(body).encode("ascii")
    return client.post(path, content=content, headers={"content-type": "application/json"})


def checked(resp: httpx.Response, what: str) -> Any:
    """The answer's JSON body, once it is known not to be a server error nor an echo of the
    request's megabyte."""
    assert resp.status_code < 500, f"{what}: {resp.status_code} {resp.text[:300]}"
    assert len(resp.content) <= ANSWER_LIMIT, f"{what}: {len(resp.content)} bytes answered"
    return resp.json()


def test_bad_strings_in_create_routes_get_422(world: World) -> None:
    failures = []
    for label, bad in BAD_STRINGS.items():
        # the issue's own requests: a body of one bad field, refused for what it lacks too
        bare = [
            (path, {"name": bad}) for path in ("/api/datasets", "/api/comparisons", "/api/jobs")
        ]
        built = [f.build(world, bad) for f in NAMED_FIELDS]
        for path, body in bare + built:
            what = f"{label} in {path} {list(body)}"
            resp = post_json(world.client, path, body)
            try:
                checked(resp, what)
                assert resp.status_code == 422, f"{what}: {resp.status_code} {resp.text[:300]}"
            except AssertionError as exc:
                failures.append(str(exc))
    assert not failures, "\n".join(failures)


def test_bad_strings_in_upload_forms_get_no_server_error(world: World) -> None:
    """Form fields are bytes: NUL and a megabyte are refused (422); a lone surrogate cannot be
    UTF-8, so its bytes (as CESU-8 writes them) are read as replacement characters."""
    import io

    import numpy as np

    npz = io.BytesIO()
    np.savez(npz, x=np.zeros((4, 2), np.float32), y=np.zeros(4, np.int64))
    uploads = {"/api/datasets/upload": npz.getvalue(), "/api/models/upload": b"not a model"}
    for label, bad in BAD_STRINGS.items():
        value = bad.encode("utf-8", "surrogatepass")
        for path, data in uploads.items():
            resp = world.client.post(path, files={"file": ("f.bin", data)}, data={"name": value})
            checked(resp, f"{label} in {path} name")
            if label in ("NUL", "1 MB"):
                assert resp.status_code == 422, resp.text[:300]


SURROGATES = st.characters(categories=["Cs"])
COMBINING = st.characters(categories=["Mn", "Me"])
EDGE_CHARS = st.one_of(SURROGATES, COMBINING, st.just("\x00"), st.characters())


def edge_strings(min_size: int, max_size: int) -> st.SearchStrategy[str]:
    # st.text() drops surrogates whatever its alphabet says: join the characters ourselves
    return st.lists(EDGE_CHARS, min_size=min_size, max_size=max_size).map("".join)


def unicode_edge_text() -> st.SearchStrategy[str]:
    """Text at the edges of Unicode: lone surrogates, NUL, combining marks (alone, stacked on
    one base, or leading), any other code point, and strings from past every length limit up
    to about a megabyte (past the body limit too, when escaped)."""
    short = edge_strings(1, 40)
    stacked = st.builds(
        lambda base, marks: base + marks, st.characters(), st.text(COMBINING, max_size=250)
    )
    long = st.builds(
        lambda unit, n: unit * n, edge_strings(1, 4), st.integers(min_value=60, max_value=250_000)
    )
    return st.one_of(short, stacked, long)


def acceptable(text: str, limit: int | None) -> bool:
    """Whether a field with this limit must take the text: no NUL, no unpaired surrogate (not
    Unicode text at all), not too long."""
    return (
        limit is not None
        and len(text) <= limit
        and "\x00" not in text
        and not any(0xD800 <= ord(c) <= 0xDFFF for c in text)
    )


@pytest.mark.slow
def test_create_routes_take_or_refuse_unicode_edge_cases(world: World) -> None:
    engine = "sqlite" if world.settings.database_url.startswith("sqlite") else "postgresql"

    @hypothesis.settings(
        max_examples={"sqlite": 150, "postgresql": 60}[engine],
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[hypothesis.HealthCheck.too_slow],
    )
    @hypothesis.given(field=st.sampled_from(NAMED_FIELDS), text=unicode_edge_text())
    def run(field: NamedField, text: str) -> None:
        path, body = field.build(world, text)
        resp = post_json(world.client, path, body)
        # the text as an escaped literal (the falsifying example prints it blank)
        what = f"{field.label} = {ascii(text[:80])} ({len(text)} characters)"
        answer = checked(resp, what)
        if len(json.dumps(body)) > world.settings.max_body_bytes:
            expected = {413}
        elif not acceptable(text, field.limit):
            expected = {422}
        else:
            expected = {201, 409} if field.conflicts else {201}
        assert resp.status_code in expected, f"{what}: {resp.text[:300]}"
        if resp.status_code == 201 and field.read is not None:
            assert field.read(world, answer) == field.stored(text)  # stored exactly

    run()


@contextmanager
def live_server(app: FastAPI, port: int) -> Iterator[str]:
    """The app behind a real uvicorn server (its own thread pool for the routes, as in
    production), in a thread of this process."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def race(url: str, path: str, body: dict[str, Any], n: int = RACERS) -> list[httpx.Response]:
    """``n`` identical POSTs from ``n`` threads, each on its own connection, released together."""
    start = threading.Barrier(n)

    def one(_: int) -> httpx.Response:
        with httpx.Client(base_url=url, timeout=120) as client:
            start.wait()
            return client.post(path, json=body)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_simultaneous_creations_of_one_name_get_one_201_and_409s(world: World) -> None:
    app = create_app(world.settings, executor=RecordingExecutor(), dashboard=False)
    with live_server(app, world.settings.port) as url:
        answers = race(url, "/api/datasets", {"builtin": "digits", "name": "raced"})
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] + [409] * (RACERS - 1), [a.text[:200] for a in answers]
    assert {a.json()["detail"] for a in answers if a.status_code == 409} == {DATASET_NAME_TAKEN}
    with session_scope(world.settings.database_url) as s:
        count = select(func.count()).select_from(DatasetRow).where(DatasetRow.name == "raced")
        assert s.scalar(count) == 1


def test_simultaneous_additions_of_one_model_get_one_201(world: World) -> None:
    """Adding one model B ten times at once: one 201; the others are refused as the state
    they meet says (the compare job it started: 409; already a member: 422; added at the same
    instant: 409), never a 500, and the model is a member once."""
    app = create_app(world.settings, executor=RecordingExecutor(), dashboard=False)
    added = world.model_ids[2]
    with live_server(app, world.settings.port) as url:
        path = f"/api/comparisons/{world.comparison_id}/models"
        answers = race(url, path, {"model_b_ids": [added]})
    codes = [a.status_code for a in answers]
    assert codes.count(201) == 1 and set(codes) <= {201, 409, 422}, [a.text[:200] for a in answers]
    with session_scope(world.settings.database_url) as s:
        members = (
            select(func.count())
            .select_from(ComparisonMemberRow)
            .where(
                ComparisonMemberRow.comparison_id == world.comparison_id,
                ComparisonMemberRow.model_id == added,
            )
        )
        assert s.scalar(members) == 1
