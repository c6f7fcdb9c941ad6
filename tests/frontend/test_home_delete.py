"""The home page's "Delete" buttons and their callbacks (frontend/pages/home.py): buttons only for
users who may write and only on finished jobs; a click asks the real API what would go (a dry
run) for the confirmation dialog; a refusal shows the server's sentence with the cascade offer,
which asks again before deleting with cascade. The browser test (tests/browser/test_delete.py)
clicks through the same in Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dash
import pytest
from dash import html
from dash.development.base_component import Component
from fastapi.testclient import TestClient

from backend.config import Settings
from backend.db.session import session_scope
from backend.db.tables import ComparisonMemberRow, ComparisonRow, DatasetRow, ModelRow
from frontend.pages import home


def walk(node: Any) -> Iterator[Any]:
    if isinstance(node, list | tuple):
        for child in node:
            yield from walk(child)
        return
    yield node
    if isinstance(node, Component):
        yield from walk(getattr(node, "children", None))


def text(node: Any) -> str:
    return " ".join(str(c) for c in walk(node) if isinstance(c, str | int | float))


def delete_buttons(node: Any) -> list[tuple[str, int]]:
    return sorted(
        (c.id["kind"], c.id["index"])
        for c in walk(node)
        if isinstance(c, html.Button)
        and isinstance(c.id, dict)
        and c.id["type"] == home.DELETE_TYPE
    )


def user(scope: str) -> dict[str, Any]:
    return {"auth": True, "kind": "token", "scope": scope, "name": "x", "token_id": 1}


def test_only_a_writer_gets_delete_buttons_and_never_on_a_job_at_work(fake_api, monkeypatch):
    monkeypatch.setattr(home, "current_user", lambda: user("write"))
    page = home.layout()
    # the fake API: comparison 1, models 1-4, dataset 1, jobs 1 (succeeded), 2 (running), 3
    expected = [("comparison", 1), ("dataset", 1), ("job", 1), ("job", 3)]
    assert delete_buttons(page) == sorted(expected + [("model", i) for i in (1, 2, 3, 4)])
    assert not any(getattr(c, "displayed", False) for c in walk(page))
    # the jobs panel's refresh keeps them, as the page's store says
    assert ("job", 1) in delete_buttons(home.refresh_jobs(1, deletable=True))
    assert delete_buttons(home.refresh_jobs(1)) == []
    for scope in ("read", "none"):
        monkeypatch.setattr(home, "current_user", lambda scope=scope: user(scope))
        assert delete_buttons(home.layout()) == [], scope


@pytest.fixture
def rows(server: TestClient, settings: Settings) -> dict[str, int]:
    """On the real API behind the pages' client: an original, its pruned child, a comparison."""
    store = server.app.state.store  # type: ignore[attr-defined]
    with session_scope(settings.database_url) as s:
        ds = DatasetRow(
            name="ds", source="test", params={}, num_classes=2, class_names=["a", "b"],
            input_shape=[4], n_train=1, n_test=1, artifact_sha=store.put_bytes(b"dataset"),
        )  # fmt: skip
        s.add(ds)
        s.flush()

        def model(name: str, parent: int | None) -> ModelRow:
            return ModelRow(
                name=name, architecture="mlp", arch_kwargs={}, dataset_id=ds.id, n_params=1,
                n_nonzero=1, parent_id=parent, checkpoint_sha=store.put_bytes(name.encode()),
            )  # fmt: skip

        a = model("original", None)
        s.add(a)
        s.flush()
        b = model("pruned", a.id)
        s.add(b)
        s.flush()
        comp = ComparisonRow(name="a vs b", dataset_id=ds.id, model_a_id=a.id)
        comp.members = [ComparisonMemberRow(model_id=b.id, position=0)]
        s.add(comp)
        s.flush()
        return {"dataset": ds.id, "original": a.id, "pruned": b.id, "comparison": comp.id}


def click(kind: str, ident: int, n: int = 1) -> tuple[Any, Any]:
    return {"type": home.DELETE_TYPE, "kind": kind, "index": ident}, n


def test_ask_then_confirm_deletes_and_re_renders(rows, settings):
    comparison = rows["comparison"]
    # a table re-rendered under the page brings buttons with no clicks: nothing is asked
    assert home.ask_delete([0], 0, None, trigger=click("comparison", comparison, 0)) == (
        (dash.no_update,) * 6
    )
    message, shown, target, hidden, _text, notice = home.ask_delete(
        [1], 0, None, trigger=click("comparison", comparison)
    )
    assert shown is True and hidden is True and notice is None
    assert message.startswith(f"Delete comparison #{comparison}?\n\nThis deletes comparison")
    assert target == {"kind": "comparison", "id": comparison, "cascade": False}
    with session_scope(settings.database_url) as s:
        assert s.get(ComparisonRow, comparison) is not None  # asking deleted nothing
    out = home.confirm_delete(1, target, True)
    comparisons, models, _datasets, _jobs, told, hidden, _text, target = out
    assert f"Deleted comparison #{comparison}" in text(told) and hidden is True
    assert "No comparisons yet" in text(comparisons)
    assert ("model", rows["original"]) in delete_buttons(models)
    assert home.confirm_delete(None, None) == (dash.no_update,) * 8


def test_a_refusal_offers_the_cascade_which_asks_again(rows, settings):
    original = rows["original"]
    message, shown, target, hidden, refusal, notice = home.ask_delete(
        [1], 0, None, trigger=click("model", original)
    )
    assert (message, shown, hidden, notice) == ("", False, False, None)
    assert f"Model {original} ('original') is used by comparison" in text(refusal)
    assert "With everything that uses it: Would delete model" in text(refusal)
    assert target == {"kind": "model", "id": original, "cascade": True}
    # the offer asks again, saying what the cascade deletes
    message, shown, target, hidden, _refusal, _notice = home.ask_delete(
        [0], 1, target, trigger=(home.ID_DELETE_CASCADE, 1)
    )
    assert shown is True and hidden is True
    assert message.startswith(f"Delete model #{original} with everything that uses it?")
    assert "1 comparison" in message and "stays, as an original" in message
    told = home.confirm_delete(1, target, True)[4]
    assert f"Deleted model #{original}" in text(told)
    with session_scope(settings.database_url) as s:
        assert s.get(ModelRow, original) is None and s.get(ComparisonRow, 1) is None
        kept = s.get(ModelRow, rows["pruned"])
        assert kept is not None and kept.parent_id is None


def test_a_refusal_without_a_cascade_is_a_notice(rows):
    # a comparison has nothing to cascade to; a deleted one is gone already
    home.confirm_delete(1, {"kind": "comparison", "id": rows["comparison"]}, True)
    out = home.ask_delete([1], 0, None, trigger=click("comparison", rows["comparison"]))
    assert out[1] is False and out[3] is True
    assert f"Comparison #{rows['comparison']} is gone already" in text(out[5])
