"""The client's response types (frontend/client/types.py) follow the server's OpenAPI document.

Every ``TypedDict`` there is checked against the component schema of the same name (or the one
:data:`SCHEMA_OF` names): each field it declares exists in the schema, the client's type accepts
every JSON value the schema allows (integer/number/string/boolean/array/object/null, enums and
nested schemas included), and a field the client reads as always present is required by the
schema or always sent (a default). Types of routes that answer free-form JSON are listed in
:data:`FREE_FORM`; a type in neither list fails the test.
"""

from __future__ import annotations

import copy
import types
from collections.abc import Iterator
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints, is_typeddict

import pytest

from backend.api.app import create_app
from backend.config import Settings
from backend.jobs.executor import InlineExecutor
from frontend.client import types as client_types

Schemas = dict[str, dict[str, Any]]

# client type -> server schema, where the names differ
SCHEMA_OF = {
    "Health": "HealthPublic",
    "SessionInfo": "SessionPublic",
    "SampleRecord": "SamplePublic",
    "FlipRecord": "FlipPublic",
    "ArchitecturesPage": "ArchitecturesPublic",
    "TableColumns": "TablePage",
    "ComparisonDryRun": "ComparisonCreate",  # a dry run answers the body, normalised
}
# routes that declare no response schema: their types are the client's reading of free-form JSON
FREE_FORM = {
    "RecallDistortionResult": "GET /api/comparisons/{id}/results, its recall_distortion",
    "DirectionAngles": "GET /api/comparisons/{id}/results, its direction_angles",
    "RobustnessTable": "GET /api/analyses/{id}/robustness",
    "SimilarityMapPublic": "GET /api/comparisons/{id}/similarity",
    "SimilarityEdge": "GET /api/comparisons/{id}/similarity, its mst_edges",
    "SimilarityPoint": "GET /api/comparisons/{id}/similarity, its points",
    "RegionResult": "GET /api/comparisons/{id}/regions",
    "RegionSliceSummary": "GET /api/comparisons/{id}/regions, each entry's slice",
    "RegionMapCounts": "what RegionSliceSummary and RegionMap share",
    "RegionMap": "GET /api/comparisons/{id}/regions/{model_id}/slice",
    "PruningLimitPublic": "GET /api/models/{id}/pruning-limit",
    "InstabilityPublic": "GET /api/models/{id}/instability",
}
# (type, field): why the client may read it narrower than the schema allows
NARROWED = {
    ("TableColumns", "columns"): "format=columns, which the client always asks for, fills it",
}


def client_typed_dicts() -> dict[str, type]:
    return {
        name: value
        for name, value in vars(client_types).items()
        if is_typeddict(value) and value.__name__ == name
    }


def schema_of(name: str, schemas: Schemas) -> str | None:
    wanted = SCHEMA_OF.get(name, name)
    return next((n for n in (wanted, f"{wanted}-Output") if n in schemas), None)


# ------------------------------------------------------------------------------------ checker
def _alternatives(annotation: Any) -> tuple[Any, ...]:
    if get_origin(annotation) in (Union, types.UnionType):
        return tuple(a for arg in get_args(annotation) for a in _alternatives(arg))
    return (annotation,)


def _accepts(annotation: Any) -> set[str]:
    """The JSON kinds a client type holds ("ref": a nested schema)."""
    origin = get_origin(annotation) or annotation
    if is_typeddict(annotation) or origin is dict:
        return {"object", "ref"}
    kinds = {type(None): "null", bool: "boolean", int: "integer", str: "string", list: "array"}
    return (
        {"integer", "number"}
        if origin is float
        else {"string"}
        if origin is Literal
        else {kinds.get(origin, "?")}
    )


def _show(annotation: Any) -> str:
    return annotation.__name__ if isinstance(annotation, type) else str(annotation)


def _nullable(schema: dict[str, Any]) -> bool:
    return any(o.get("type") == "null" for o in schema.get("anyOf") or schema.get("oneOf") or [])


def mismatch(annotation: Any, schema: dict[str, Any], schemas: Schemas) -> str | None:
    """Why ``annotation`` cannot hold every value ``schema`` allows; None when it can."""
    alternatives = _alternatives(annotation)
    if Any in alternatives or not schema:
        return None
    if options := schema.get("anyOf") or schema.get("oneOf"):
        return next((m for o in options if (m := mismatch(annotation, o, schemas))), None)
    ref = schema.get("$ref", "").rsplit("/", 1)[-1]
    if ref and schemas[ref].get("type") != "object":  # an enum, say: read it in place
        return mismatch(annotation, schemas[ref], schemas)
    kind = "ref" if ref else schema.get("type", "?")
    matching = [a for a in alternatives if kind in _accepts(a)]
    values = schema.get("enum") or ([schema["const"]] if "const" in schema else None)
    if not matching:
        return f"the server sends {values or kind}, the client reads {_show(annotation)}"
    args = get_args(matching[0])
    if kind == "ref" and not any(get_origin(a) is dict or a is dict for a in matching):
        if all(schema_of(a.__name__, schemas) != ref for a in matching):
            return f"the server sends {ref}, the client reads {_show(annotation)}"
    if kind == "string" and str not in matching and values is not None:
        literals = {v for a in matching for v in get_args(a)}
        if not set(values) <= literals:  # a plain string's values are documented: trusted
            return f"the server sends {values}, the client reads {_show(annotation)}"
    if kind == "array" and args:
        return mismatch(args[0], schema.get("items", {}), schemas)
    values_schema = schema.get("additionalProperties")
    if kind == "object" and len(args) == 2 and isinstance(values_schema, dict):
        return mismatch(args[1], values_schema, schemas)
    return None


def check(typed: type, schema_name: str, schemas: Schemas) -> list[str]:
    """Every way ``typed`` disagrees with the component schema ``schema_name``."""
    schema = schemas[schema_name]
    properties, required = schema.get("properties", {}), set(schema.get("required", []))
    problems, required_here = [], typed.__required_keys__  # type: ignore[attr-defined]
    for field, annotation in get_type_hints(typed).items():
        where = f"{typed.__name__}.{field}"
        if field not in properties:
            problems.append(f"{where}: not in the server's {schema_name}")
            continue
        prop = properties[field]
        narrowed = (typed.__name__, field) in NARROWED
        # FastAPI leaves "default": null out of the document: an optional nullable field's
        # default is null, and a response always holds it
        always_sent = field in required or "default" in prop or _nullable(prop)
        if field in required_here and not always_sent and not narrowed:
            problems.append(
                f"{where}: required here, may be left out by the server's {schema_name}"
            )
        if not narrowed and (why := mismatch(annotation, prop, schemas)):
            problems.append(f"{where}: {why}")
    return problems


# -------------------------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def schemas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Schemas]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("openapi") / "data", warm_embeddings=False)
    app = create_app(settings, executor=InlineExecutor(settings), dashboard=False)
    yield app.openapi()["components"]["schemas"]


def test_every_type_is_tied_to_a_schema_or_listed_as_free_form(schemas: Schemas) -> None:
    names = set(client_typed_dicts())
    assert not set(FREE_FORM) - names and not set(SCHEMA_OF) - names, "stale entries"
    untied = sorted(n for n in names - set(FREE_FORM) if schema_of(n, schemas) is None)
    assert untied == [], f"no server schema for {untied}: map them in SCHEMA_OF or FREE_FORM"
    # a route that gains a schema moves its types out of FREE_FORM
    assert [n for n in FREE_FORM if schema_of(n, schemas)] == []


@pytest.mark.parametrize("name", sorted(set(client_typed_dicts()) - set(FREE_FORM)))
def test_the_type_follows_the_server(name: str, schemas: Schemas) -> None:
    typed = client_typed_dicts()[name]
    schema_name = schema_of(name, schemas)
    assert schema_name is not None
    assert check(typed, schema_name, schemas) == []


def test_the_checker_reports_a_dropped_renamed_or_changed_field(schemas: Schemas) -> None:
    models = client_types.ModelPublic
    assert check(models, "ModelPublic", schemas) == []
    changed = copy.deepcopy(schemas)
    model = changed["ModelPublic"]
    del model["properties"]["sparsity"]  # dropped
    model["properties"]["parent"] = model["properties"].pop("parent_id")  # renamed
    model["properties"]["n_params"] = {"type": "number"}  # an int becomes a float
    model["properties"]["name"] = {"anyOf": [{"type": "string"}, {"type": "null"}]}  # nullable
    model["required"].remove("architecture")  # may be left out
    changed["TopClass"]["properties"]["prob"]["type"] = "string"  # a nested schema changes
    changed["JobPublic"]["properties"]["status"]["enum"].append("paused")  # a new status
    assert check(models, "ModelPublic", changed) == [
        "ModelPublic.name: the server sends null, the client reads str",
        "ModelPublic.architecture: required here, may be left out by the server's ModelPublic",
        "ModelPublic.parent_id: not in the server's ModelPublic",
        "ModelPublic.sparsity: not in the server's ModelPublic",
        "ModelPublic.n_params: the server sends number, the client reads int",
    ]
    assert check(client_types.TopClass, "TopClass", changed) == [
        "TopClass.prob: the server sends string, the client reads float"
    ]
    (problem,) = check(client_types.JobPublic, "JobPublic", changed)
    assert problem.startswith("JobPublic.status: the server sends [") and "'paused'" in problem


def test_a_nested_schema_must_be_the_mapped_type(schemas: Schemas) -> None:
    changed = copy.deepcopy(schemas)
    changed["FlipsPage"]["properties"]["data"]["items"]["$ref"] = (
        "#/components/schemas/SamplePublic"
    )
    assert check(client_types.FlipsPage, "FlipsPage", changed) == [
        "FlipsPage.data: the server sends SamplePublic, the client reads FlipRecord"
    ]


def test_not_required_fields_are_optional_at_run_time() -> None:
    """types.py must not defer its annotations, or every field would look required here."""
    assert client_types.DatasetPublic.__optional_keys__ == {"params"}  # type: ignore[attr-defined]
    assert "model_a_id" in client_types.ComparisonDryRun.__required_keys__  # type: ignore[attr-defined]
