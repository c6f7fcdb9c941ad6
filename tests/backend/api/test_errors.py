"""Error answers that survive any input, and unique violations told from other integrity
errors on both engines (backend/api/errors.py)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.exc import IntegrityError

from backend.api.errors import (
    DETAIL_CHARS,
    ECHO_CHARS,
    ECHO_DEPTH,
    ECHO_ITEMS,
    echo,
    encodable,
    issue,
    public_detail,
    unique_violation_table,
)
from backend.config import Settings
from backend.db.session import migrate, session_scope
from backend.db.tables import AnalysisRow, DatasetRow


def utf8_json(value: object) -> bytes:
    """What Starlette's JSONResponse does with an answer (raises where it would 500)."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")


@pytest.mark.parametrize("text", ["\ud800", "a\udfffb", "a\x00b", "x" * 1_000_000, "e\u0301"])
def test_encodable_text_is_utf8_and_bounded(text: str) -> None:
    out = encodable(text, ECHO_CHARS)
    out.encode("utf-8")  # does not raise
    assert len(out) <= ECHO_CHARS + 40
    if len(text) <= ECHO_CHARS and not any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        assert out == text  # what is already fine is not touched (NUL and marks included)


def test_encodable_says_what_it_cut_and_escapes_surrogates() -> None:
    assert encodable("\ud800", 10) == "\\ud800"
    assert encodable("x" * 30, 10) == "x" * 10 + "... (30 characters)"


def test_echo_is_bounded_in_width_depth_and_numbers() -> None:
    deep: object = "\ud800"
    for _ in range(10):
        deep = [deep]
    wide = {f"k{i}": i for i in range(1000)}
    value = {
        "deep": deep,
        "wide": wide,
        "long list": list(range(10_000)),
        "nan": float("nan"),
        "huge": 10**5000,
        "bytes": b"\xff\xfe" * 10_000,
        "error": ValueError("\udc00 bad"),
    }
    out = echo(value)
    body = utf8_json(out)
    assert len(body) < 4000
    assert len(out["wide"]) == ECHO_ITEMS + 1 and out["wide"]["..."] == "980 more"
    assert out["long list"][-1] == "..."
    assert out["nan"] == "nan" and out["huge"] == "an integer of 16610 bits"
    assert out["deep"] == [[["..."]]]  # the answer itself is level 0
    assert ECHO_DEPTH == 4
    assert out["error"] == "\\udc00 bad"


def test_a_validation_issue_keeps_its_shape() -> None:
    raw = {
        "type": "string_unicode",
        "loc": ("body", "params", "\ud800", "[key]", 3),
        "msg": "Input should be a valid string",
        "input": {"name": "\ud800" * 1000},
        "ctx": {"error": ValueError("x" * 100_000)},
    }
    out = issue(raw)
    utf8_json(out)
    assert out["loc"] == ["body", "params", "\\ud800", "[key]", 3]
    assert out["type"] == "string_unicode" and out["msg"] == raw["msg"]
    assert len(out["input"]["name"]) < 6 * ECHO_CHARS + 40
    assert len(out["ctx"]["error"]) < ECHO_CHARS + 40


def test_an_http_detail_stays_a_message_or_a_list_of_issues() -> None:
    assert public_detail("a\ud800b") == "a\\ud800b"
    assert len(public_detail("y" * 100_000)) < DETAIL_CHARS + 40
    issues = public_detail([{"loc": ["spec", "\ud800"], "msg": "m", "type": "t"}] * 500)
    assert len(issues) == 100 and issues[0] == {"loc": ["spec", "\\ud800"], "msg": "m", "type": "t"}
    utf8_json(issues)


def dataset(name: str) -> DatasetRow:
    return DatasetRow(
        name=name,
        source="test",
        params={},
        num_classes=2,
        class_names=["a", "b"],
        input_shape=[1],
        n_train=1,
        n_test=1,
        artifact_sha="0" * 64,
    )


def test_unique_violations_are_told_from_other_integrity_errors(settings: Settings) -> None:
    migrate(settings.database_url)
    with session_scope(settings.database_url) as s:
        s.add(dataset("taken"))
    with pytest.raises(IntegrityError) as unique:
        with session_scope(settings.database_url) as s:
            s.add(dataset("taken"))
    assert unique_violation_table(unique.value) == "datasets"
    # a foreign key to nothing (SQLite checks them: PRAGMA foreign_keys=ON)
    orphan = AnalysisRow(
        model_id=999,
        dataset_id=999,
        split="test",
        accuracy=0.0,
        n_samples=0,
        summary={},
        samples_sha="0" * 64,
    )
    with pytest.raises(IntegrityError) as foreign:
        with session_scope(settings.database_url) as s:
            s.add(orphan)
    assert unique_violation_table(foreign.value) is None
